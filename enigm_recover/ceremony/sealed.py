"""Shares from afar: sealed on the custodian's machine to the ceremony's ephemeral age recipient, bound to its id.

An open ceremony holds an X25519 identity made for it and kept only in memory (``SealedShareInbox``); its
recipient (``age1...``) and a short fingerprint to compare by phone are shown to the operator. A custodian, on
their own machine and possibly offline, runs ``ceremony seal-share --to RECIPIENT --ceremony ID``: the share is
checked there, then sealed with age, in an envelope that names the ceremony, the recipient, the custodian, the
share's set id, group and member index, and a random nonce; the armored message travels over any channel.

The operator's process opens it with the ceremony's identity: a message sealed to another recipient does not
open, one bound to another ceremony is refused, and each nonce is taken once (a replay is refused). The name
inside is checked like a typed one, and the member index inside against the share's own.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

from enigm_recover.errors import (DecryptionError, RecipientKindMismatch, SealedShareRefused, ShareChecksumError,
                                  ShareWordError, UsageError)
from enigm_recover.quorum.entry import SHARE_WORDS, normalize_words
from enigm_recover.quorum.names import custodian_name_problem
from enigm_recover.quorum.recipients import RecipientKind
from enigm_recover.quorum.recovery_key import RecoveryIdentity, decode_recipient
from enigm_recover.snapshot.agecrypt import decrypt_chunks, encrypt_stream

FORMAT = "enigm-sealed-share/1"
BEGIN = "-----BEGIN AGE ENCRYPTED FILE-----"
END = "-----END AGE ENCRYPTED FILE-----"
MAX_ARMORED = 16 * 1024  # a sealed share is about 3 KiB (most of it the hybrid stanza)
_LINE = 64
_ENVELOPE = {"format": str, "ceremony": str, "recipient": str, "custodian": str, "nonce": str, "set_id": int,
             "group": int, "member": int, "words": str}


def short_fingerprint(recipient: str) -> str:
    """Four groups of four hex digits of the recipient's SHA-256, easy to read out over a phone."""
    digest = hashlib.sha256(recipient.encode("ascii")).hexdigest()[:16]
    return " ".join(digest[i:i + 4] for i in range(0, 16, 4))


# -- armor (age's ASCII armor: PEM-like, canonical base64 in 64-column lines) ------------------------------------


def armor(data: bytes) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    lines = [encoded[i:i + _LINE] for i in range(0, len(encoded), _LINE)]
    return "\n".join([BEGIN, *lines, END]) + "\n"


def dearmor(text: str) -> bytes:
    """The message inside one armored block (whitespace around the block is allowed; inside, none)."""
    if len(text) > MAX_ARMORED:
        raise SealedShareRefused(f"the sealed share is longer than {MAX_ARMORED:,} characters")
    lines = [line.strip() for line in text.strip().splitlines()]
    if len(lines) < 3 or lines[0] != BEGIN or lines[-1] != END:
        raise SealedShareRefused("this is not an armored age message (-----BEGIN AGE ENCRYPTED FILE----- ...)")
    body = lines[1:-1]
    if any(len(line) != _LINE for line in body[:-1]) or not 0 < len(body[-1]) <= _LINE:
        raise SealedShareRefused("the armored message's lines are not 64 characters wide: it was altered in transit")
    try:
        return base64.b64decode("".join(body), validate=True)
    except (binascii.Error, ValueError):
        raise SealedShareRefused("the armored message is not valid base64: it was altered in transit") from None


# -- the custodian's side -----------------------------------------------------------------------------------------


def _share(words: str) -> Any:
    from shamir_mnemonic import MnemonicError, Share

    normalized = normalize_words(words)
    if len(normalized) != SHARE_WORDS:
        raise ShareWordError(f"the share has {len(normalized)} words; a share of a recovery key has {SHARE_WORDS}",
                             "check that no word was skipped or repeated")
    try:
        return " ".join(normalized), Share.from_mnemonic(" ".join(normalized))
    except MnemonicError:
        raise ShareChecksumError("the share's checksum does not match: a word is mistyped or out of order",
                                 "re-read the card word by word") from None


def seal_share(words: str, custodian: str, ceremony: str, recipient: str) -> str:
    """The share, checked, sealed to the ceremony's ``recipient`` and bound to ``ceremony``: an armored age message."""
    try:
        decode_recipient(recipient)
    except ValueError:
        raise UsageError("--to must be the ceremony's age recipient (age1...), as the operator reads it out",
                         "copy it from the operator's screen") from None
    if (problem := custodian_name_problem(custodian.strip())) is not None:
        raise UsageError(problem, "pass --name with your name as on your card")
    if not re.fullmatch(r"[a-z]+(-[a-z]+)*-[0-9]{2}", ceremony.strip().lower()):
        raise UsageError("--ceremony must be the ceremony id the operator gave you (like lunar-academic-47)")
    text, share = _share(words)
    envelope = {"format": FORMAT, "ceremony": ceremony.strip().lower(), "recipient": recipient,
                "custodian": custodian.strip(), "nonce": secrets.token_hex(16), "set_id": share.identifier,
                "group": share.group_index + 1, "member": share.index + 1, "words": text}
    out = io.BytesIO()
    encrypt_stream([json.dumps(envelope).encode()], recipient, out)
    return armor(out.getvalue())


# -- the operator's side ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SealedShare:
    custodian: str
    words: str
    set_id: int
    group: int
    member: int
    nonce: str

    def __repr__(self) -> str:
        return f"SealedShare(custodian={self.custodian!r}, member={self.member}, words=<redacted>)"


class SealedShareInbox:
    """One ceremony's ephemeral recipient and the nonces already taken."""

    def __init__(self, ceremony: str) -> None:
        self.ceremony = ceremony
        # hybrid post-quantum (mlkem768x25519), in memory only, for this ceremony: a share sealed to it may cross a
        # channel that is recorded, and k of them would open every snapshot, however long they are kept
        self._identity = RecoveryIdentity(secrets.token_bytes(32), RecipientKind.HYBRID)
        self._seen: set[str] = set()

    @property
    def recipient(self) -> str:
        return self._identity.recipient

    @property
    def fingerprint(self) -> str:
        return short_fingerprint(self.recipient)

    def open(self, text: str) -> SealedShare:
        """The share inside ``text``; SealedShareRefused naming why it cannot be taken."""
        from shamir_mnemonic import MnemonicError, Share

        from enigm_recover.recovery.session import same_ceremony

        data = dearmor(text)
        try:
            plain = b"".join(decrypt_chunks(io.BytesIO(data), self._identity))
        except (DecryptionError, RecipientKindMismatch):
            raise SealedShareRefused(
                f"this share was sealed to another recipient, not to ceremony {self.ceremony}'s "
                f"({self.fingerprint}): it was sealed for another ceremony, or the recipient was mistyped") from None
        try:
            envelope = json.loads(plain.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise SealedShareRefused("the sealed message holds no share envelope") from None
        if (not isinstance(envelope, dict) or set(envelope) != set(_ENVELOPE)
                or any(type(envelope[k]) is not t for k, t in _ENVELOPE.items()) or envelope["format"] != FORMAT):
            raise SealedShareRefused("the sealed message holds no share envelope of this version")
        if envelope["recipient"] != self.recipient or not same_ceremony(envelope["ceremony"], self.ceremony):
            raise SealedShareRefused(f"this sealed share is bound to ceremony {envelope['ceremony'][:40]!r}, not to "
                                     f"this ceremony ({self.ceremony})")
        if envelope["nonce"] in self._seen:
            raise SealedShareRefused(f"this sealed share (from {envelope['custodian'][:48]!r}) was already offered in "
                                     "this ceremony: a replay is refused")
        self._seen.add(envelope["nonce"])
        try:
            share = Share.from_mnemonic(envelope["words"])
        except MnemonicError:
            raise SealedShareRefused("the sealed share's words do not form a share") from None
        if (share.identifier, share.group_index + 1, share.index + 1) != (envelope["set_id"], envelope["group"],
                                                                          envelope["member"]):
            raise SealedShareRefused("the sealed share's envelope names another set, group or member index than "
                                     "its share")
        return SealedShare(envelope["custodian"], envelope["words"], share.identifier, share.group_index + 1,
                           share.index + 1, envelope["nonce"])
