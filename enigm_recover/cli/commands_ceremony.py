"""``ceremony join``: a custodian enters their share from their own session; and how the operator's terminal shows
each join and verdict."""

from __future__ import annotations

import getpass
import sys
from typing import Any

from enigm_recover.cli.context import Context
from enigm_recover.errors import ShareError, UsageError
from enigm_recover.inert import for_terminal


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def print_join_event(event: Any) -> None:
    """The operator's terminal: who joined (the OS user the kernel named) and each verdict; never a word."""
    from enigm_recover.ceremony.server import JoinEventKind as K

    who = f"{for_terminal(event.custodian)} (OS user {for_terminal(event.os_user)})" if event.custodian \
        else f"OS user {for_terminal(event.os_user)}"
    text = {
        K.OPENED: f"ceremony open: custodians on this host run `enigm-recover ceremony join` (socket in "
                  f"{for_terminal(event.reason)}); Ctrl-C closes it",
        K.JOINED: f"joined: {who} is entering a share",
        K.ACCEPTED: f"accepted: {who}, {event.reason} — {event.progress}",
        K.REJECTED: f"rejected: {who}: {for_terminal(event.reason)} — {event.progress}",
        K.REFUSED: f"refused: {who}: {for_terminal(event.reason)}",
        K.LEFT: f"left without a share: {who}",
        K.COMPLETE: f"quorum complete: {event.progress}",
        K.CLOSED: f"ceremony closed: {for_terminal(event.reason)}",
    }[event.kind]
    _say(text)


def _typed_ceremony() -> str:
    from enigm_recover.quorum.names import ceremony_id_problem

    while True:
        typed = getpass.getpass("Type the ceremony id the operator gave you, to confirm it: ").strip()
        if not typed:
            continue
        if (problem := ceremony_id_problem(typed)) is not None:
            _say(problem)  # never the text: it may be share words typed at the wrong prompt
            continue
        _say(f"ceremony id typed: {for_terminal(typed)}")
        return typed


class _Offer:
    """The connection's ``add``, remembering the last refusal for the exit code."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.last: ShareError | None = None

    def add(self, words: str, custodian: str | None = None, typed: str | None = None) -> None:
        try:
            self.conn.add(words, custodian, typed)
        except ShareError as exc:
            self.last = exc
            raise


def cmd_ceremony_join(ctx: Context) -> int:
    from enigm_recover.bounded import bounded_lines
    from enigm_recover.ceremony.client import CeremonyConnection
    from enigm_recover.cli.share_words import enter_share_words
    from enigm_recover.errors import CustodianNameInvalid
    from enigm_recover.quorum.names import custodian_name_problem

    args = ctx.args
    name = (args.name or getpass.getuser()).strip()
    if (problem := custodian_name_problem(name)) is not None:
        raise CustodianNameInvalid(problem, "pass --name with your name as on your card")
    terminal = sys.stdin.isatty()
    with CeremonyConnection(ctx.ceremony_place(), args.ceremony) as conn:
        hello = conn.connect()
        _say(f"ceremony     {for_terminal(hello.ceremony)}\n"
             f"recovery key {for_terminal(hello.fingerprint)}\n"
             f"operator     {for_terminal(hello.operator)} (OS user {for_terminal(hello.operator_os_user)})\n"
             f"host         {for_terminal(hello.host)}\n"
             f"running      {for_terminal(hello.runbook)}\n"
             "Check that this is the ceremony you were called for before you enter your share.")
        lines = None if terminal else (line.strip() for line in bounded_lines(getattr(sys.stdin, "buffer", sys.stdin))
                                       if line.strip())
        if lines is None:
            typed = _typed_ceremony()
        else:
            typed = next(lines, "")
            if not typed:
                raise UsageError("without a terminal, the ceremony id typed back is the first line of stdin")
        os_user = conn.confirm(typed, name)
        _say(f"joined as {for_terminal(name)} (OS user {for_terminal(os_user)})")
        if lines is None:
            offer = _Offer(conn)
            _say("Your share: every word is hidden as you type.")
            if not enter_share_words(offer, name, typed):
                raise offer.last or ShareError("the share was not entered")
        else:
            words = next(lines, "")
            if not words:
                raise UsageError("without a terminal, the share is the second line of stdin")
            conn.add(words, name, typed)
        _say(f"accepted: {conn.progress}")
    return 0
