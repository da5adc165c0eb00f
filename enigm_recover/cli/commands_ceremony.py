"""``ceremony join``: a custodian enters their share from their own session; and how the operator's terminal shows
each join and verdict."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Any, Sequence

from enigm_recover.cli.context import Context
from enigm_recover.errors import ShareError, UsageError
from enigm_recover.inert import for_terminal


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def print_join_event(event: Any) -> None:
    """The operator's terminal: who joined (the OS user the kernel named) and each verdict; never a word."""
    from enigm_recover.ceremony.server import JoinEventKind as K

    if event.sealed:
        who = f"sealed share from {for_terminal(event.custodian)}" if event.custodian else "sealed share"
    elif event.custodian:
        who = f"{for_terminal(event.custodian)} (OS user {for_terminal(event.os_user)})"
    else:
        who = f"OS user {for_terminal(event.os_user)}"
    text = {
        K.OPENED: f"ceremony open: custodians on this host run `enigm-recover ceremony join` (socket in "
                  f"{for_terminal(event.reason)}); Ctrl-C closes it.\n"
                  f"custodians from afar: `enigm-recover ceremony seal-share --to {event.recipient} --ceremony "
                  "CEREMONY`, then paste the sealed share here\n"
                  f"sealed-share recipient {event.recipient} (fingerprint {event.fingerprint})",
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


def wait_taking_sealed_shares(server: Any, files: Sequence[Path] = ()) -> None:
    """Wait for the quorum while reading stdin (the terminal, or a pipe) for sealed shares pasted in, and watching
    ``files`` (``--sealed-share``) for theirs; each armored block is offered as soon as its END line arrives, each
    file once, when it holds a whole block. Stdin's end leaves the files and the socket to wait on."""
    import os
    import select
    import time

    from enigm_recover.ceremony.sealed import BEGIN, END, MAX_ARMORED

    fd = sys.stdin.fileno() if sys.stdin is not None else -1
    waiting = list(files)
    if waiting:
        _say("waiting for the sealed shares in " + ", ".join(for_terminal(str(f)) for f in waiting))
    pending, block, inside = b"", [], False
    while (fd >= 0 or waiting) and not (server.closed or server.quorum.complete):
        waiting = _offer_arrived(server, waiting)
        if fd < 0:
            time.sleep(0.25)
            continue
        ready, _, _ = select.select([fd], [], [], 0.25)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            fd = -1  # stdin ended: the files and the socket remain
            continue
        pending += chunk
        if len(pending) > MAX_ARMORED:
            pending, block, inside = b"", [], False  # an endless line: dropped, never shown
            _say("refused: a pasted line longer than a sealed share; paste the armored block as it was printed")
            continue
        *lines, pending = pending.split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", "replace").strip()
            if line == BEGIN:
                block, inside = [line], True
            elif inside:
                block.append(line)
                if line == END:
                    inside = False
                    _offer(server, "\n".join(block))
                    block = []
                elif sum(map(len, block)) > MAX_ARMORED:
                    block, inside = [], False
            if server.quorum.complete:
                break
    server.wait()


def _offer(server: Any, armored: str) -> None:
    from enigm_recover.errors import EnigmError

    try:
        server.offer_sealed(armored)
    except EnigmError:
        pass  # the ceremony's event printed the refusal or the verdict


def _offer_arrived(server: Any, files: list[Path]) -> list[Path]:
    """Offer each file that now holds a whole armored message (read bounded, a regular file only); the files
    still waiting. A file that cannot be a sealed share is said and dropped."""
    from enigm_recover.bounded import read_text_bounded
    from enigm_recover.ceremony.sealed import END, MAX_ARMORED
    from enigm_recover.errors import EnigmError

    still = []
    for path in files:
        try:
            text = read_text_bounded(path, MAX_ARMORED, "sealed share", missing_ok=True)
        except EnigmError as exc:
            _say(f"refused: {exc.message}")
            continue
        if text is None or END not in text:
            still.append(path)  # not there yet, or still being written
            continue
        _say(f"offering the sealed share in {for_terminal(str(path))}")
        _offer(server, text)
    return still


class _Sealer:
    """``add`` for the word-by-word prompt: the share, checked and sealed, kept as the armored message."""

    def __init__(self, recipient: str, ceremony: str) -> None:
        self.recipient, self.ceremony = recipient, ceremony
        self.armored = ""
        self.last: ShareError | None = None

    def add(self, words: str, custodian: str | None = None, typed: str | None = None) -> None:
        from enigm_recover.ceremony.sealed import seal_share

        try:
            self.armored = seal_share(words, custodian or "", self.ceremony, self.recipient)
        except ShareError as exc:
            self.last = exc
            raise


def cmd_ceremony_seal_share(ctx: Context) -> int:
    """Seal a share to a ceremony's recipient, bound to its id; print the armored message on stdout."""
    from enigm_recover.ceremony.sealed import short_fingerprint
    from enigm_recover.cli.share_words import enter_share_words
    from enigm_recover.quorum.recovery_key import decode_recipient

    args = ctx.args
    name = (args.name or getpass.getuser()).strip()
    try:
        decode_recipient(args.to)
    except ValueError:
        raise UsageError("--to must be the ceremony's age recipient (age1...), as the operator reads it out") from None
    sealer = _Sealer(args.to, args.ceremony)
    _say(f"sealing to ceremony {for_terminal(args.ceremony)}, recipient fingerprint {short_fingerprint(args.to)}: "
         "compare both with the operator before you send the message")
    if sys.stdin.isatty():
        _say("Your share: every word is hidden as you type.")
        if not enter_share_words(sealer, name, None):
            raise sealer.last or ShareError("the share was not entered")
    else:
        from enigm_recover.bounded import bounded_lines

        words = next((line for line in bounded_lines(getattr(sys.stdin, "buffer", sys.stdin)) if line.strip()), "")
        if not words.strip():
            raise UsageError("without a terminal, the share is the first line of stdin")
        sealer.add(words, name)
    sys.stdout.write(sealer.armored)
    _say(f"sealed share of {for_terminal(name)} for ceremony {for_terminal(args.ceremony)}: send it to the operator "
         "over any channel; only that ceremony's process can open it, once")
    return 0
