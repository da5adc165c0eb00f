"""The custodian's side: connect to the operator's process, check who it is, confirm, send the share.

The process answering on the socket must run as the owner of the ceremony's folder (the kernel's peer
credentials say so); the custodian sees the ceremony id, the recovery key's fingerprint, the operator, the host
and what is being run before typing anything, types the ceremony id back, and only then the share, which is
checked here (words, checksum) before it is sent and judged there (set, duplicates) after.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

from enigm_recover.ceremony import protocol
from enigm_recover.ceremony.folder import CeremonyPlace, OpenCeremony, find, not_in_group, os_user
from enigm_recover.ceremony.server import peer_credentials
from enigm_recover.errors import (CeremonyMismatch, CeremonyProtocolError, CeremonyRefused, CeremonyUnavailable,
                                  DuplicateShare, EnigmError, NotEnoughShares, ShareChecksumError, ShareError,
                                  ShareSetMismatch, ShareWordError, WrongRecoveryKey, CustodianNameInvalid)
from enigm_recover.quorum.entry import SHARE_WORDS, normalize_words

_SHARE_ERRORS: dict[int, type[ShareError]] = {
    e.exit_code: e for e in (ShareWordError, ShareChecksumError, ShareSetMismatch, DuplicateShare, NotEnoughShares,
                             WrongRecoveryKey, CeremonyMismatch)}


@dataclass(frozen=True)
class Hello:
    ceremony: str
    fingerprint: str
    operator: str
    operator_os_user: str
    host: str
    runbook: str


def _refusal(message: dict[str, Any]) -> EnigmError:
    code = message["code"]
    cls: type[EnigmError] = CeremonyRefused
    if code == CeremonyMismatch.exit_code:
        cls = CeremonyMismatch
    elif code == CustodianNameInvalid.exit_code:
        cls = CustodianNameInvalid
    return cls(f"the operator's process refused the join: {message['reason']}", message["hint"] or None)


class CeremonyConnection:
    """One join, step by step: ``connect`` → ``hello`` (shown to the custodian) → ``confirm`` → ``add`` (the share;
    shaped like a quorum's ``add`` so the terminal's word-by-word prompt drives it)."""

    def __init__(self, place: CeremonyPlace, ceremony: str | None) -> None:
        self.target: OpenCeremony = find(place, ceremony)
        self.place = place
        self._sock: socket.socket | None = None
        self.hello: Hello | None = None
        self.progress = ""

    def __enter__(self) -> "CeremonyConnection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def connect(self) -> Hello:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(self.target.socket))
        except PermissionError:
            sock.close()
            raise not_in_group(self.place.folder) from None
        except OSError:
            sock.close()
            raise CeremonyUnavailable(f"ceremony {self.target.ceremony} is not open: nothing answers on its socket "
                                      "(left by an operator's process that ended)",
                                      "ask the operator to open the ceremony again") from None
        self._sock = sock
        _, uid, _ = peer_credentials(sock)
        if uid != self.target.owner_uid:
            self.close()
            raise CeremonyRefused(f"the process answering on ceremony {self.target.ceremony}'s socket runs as "
                                  f"{os_user(uid)}, not as the ceremony folder's owner "
                                  f"{os_user(self.target.owner_uid)}: it is not the operator's",
                                  "do not enter your share; call the operator")
        sock.settimeout(60)
        message = self._receive("hello")
        if message["version"] != protocol.VERSION:
            raise CeremonyProtocolError(f"the operator's process speaks ceremony protocol {message['version']}, "
                                        f"this one {protocol.VERSION}")
        self.hello = Hello(message["ceremony"], message["fingerprint"], message["operator"], os_user(uid),
                           message["host"], message["runbook"])
        return self.hello

    def _receive(self, *expected: str) -> dict[str, Any]:
        assert self._sock is not None
        try:
            message = protocol.receive(self._sock, *expected, "refused")
        except (OSError, ConnectionError):
            raise CeremonyUnavailable("the operator's process ended the connection: the ceremony closed or it "
                                      "ended; nothing of your share was kept", "call the operator") from None
        if message["type"] == "refused":
            raise _refusal(message)
        return message

    def confirm(self, typed_ceremony: str, custodian: str) -> str:
        """Send the ceremony id typed back and the name; returns the OS user the operator's process sees."""
        assert self._sock is not None
        protocol.send(self._sock, "confirm", ceremony=typed_ceremony, custodian=custodian)
        return self._receive("ready")["os_user"]

    def add(self, words: str, custodian: str | None = None, typed: str | None = None) -> None:
        """Check the share here (words, length, checksum), then send it; raise the operator's verdict."""
        from shamir_mnemonic import MnemonicError, Share

        normalized = normalize_words(words)
        if len(normalized) != SHARE_WORDS:
            raise ShareWordError(f"the share has {len(normalized)} words; a share of a recovery key has "
                                 f"{SHARE_WORDS}", "check that no word was skipped or repeated")
        try:
            Share.from_mnemonic(" ".join(normalized))
        except MnemonicError:
            raise ShareChecksumError("the share's checksum does not match: a word is mistyped or out of order",
                                     "re-read the card word by word") from None
        assert self._sock is not None
        try:
            protocol.send(self._sock, "share", words=" ".join(normalized))
        except OSError:
            raise CeremonyUnavailable("the operator's process ended the connection before the share was sent: nothing of your "
                                      "share was kept",
                                      "call the operator") from None
        verdict = self._receive("verdict")
        self.progress = verdict["progress"]
        if not verdict["accepted"]:
            cls = _SHARE_ERRORS.get(verdict["code"], ShareError)
            raise cls(verdict["reason"], verdict["hint"] or None)
