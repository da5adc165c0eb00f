"""Check one share card alone: one custodian, offline, no other share, nothing reconstructed.

The verdict says whether the words are a well-formed SLIP-39 share (every word in the list, the
checksum right), which set, group and member it is, the thresholds it belongs to, and whether it
belongs to the recovery key of a ``recovery.pub``: the fingerprint printed on the card must be the
key's, and the share's set id must be the one the keyring beside ``recovery.pub`` records for it.
A card whose printed header disagrees with its own words is refused too. Each failure is an
EnigmError with its own exit code; the verdict never holds a word.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shamir_mnemonic import MnemonicError, Share

from enigm_recover.errors import (
    CardUnmatched,
    RecipientKindMismatch,
    RecoveryKeyRetired,
    ShareChecksumError,
    ShareSetMismatch,
    ShareWordError,
)
from enigm_recover.quorum.cards import CARD_TITLE, KIND_LINE, card_kind
from enigm_recover.quorum.recipients import RecipientKind, recipient_kind
from enigm_recover.quorum.entry import SHARE_WORDS, normalize_words
from enigm_recover.quorum.keyring import KeyRecord, RecipientFile, find_key, load_keyring


@dataclass(frozen=True)
class CardHeader:
    """What a card prints about itself (never the words)."""

    custodian: str | None = None
    set_id: int | None = None
    fingerprint: str | None = None
    kind: RecipientKind | None = None


@dataclass(frozen=True)
class CardVerdict:
    custodian: str | None
    set_id: int
    group: int  # 1-based, as printed
    group_count: int
    group_threshold: int
    member: int  # 1-based
    member_threshold: int
    recipient_fingerprint: str | None  # the key the card was checked against, or None
    belongs: bool | None  # None: no recovery.pub given
    evidence: tuple[str, ...]
    kind: RecipientKind | None = None  # the kind of key: the card's, or its recovery.pub's

    def as_dict(self) -> dict[str, Any]:
        return {"ok": True, "custodian": self.custodian, "set_id": self.set_id, "group": self.group,
                "group_count": self.group_count, "group_threshold": self.group_threshold, "member": self.member,
                "member_threshold": self.member_threshold, "recipient_fingerprint": self.recipient_fingerprint,
                "belongs": self.belongs, "evidence": list(self.evidence),
                "kind": self.kind.value if self.kind else None}


def parse_header(text: str) -> CardHeader:
    lines = text.splitlines()
    if not lines or lines[0].strip() != CARD_TITLE:
        return CardHeader()
    values: dict[str, str] = {}
    for line in lines[1:]:
        if line.strip() == "words:":
            break
        if ":" in line:
            key, value = line.split(":", 1)
            values[key.strip()] = value.strip()
    set_id = values.get("set id", "")
    kind = card_kind(values[KIND_LINE]) if values.get(KIND_LINE) else None
    return CardHeader(values.get("custodian") or None, int(set_id) if set_id.isdigit() else None,
                      values.get("recovery key fingerprint") or None, kind)


def parse_share(words_text: str) -> Share:
    """The share the words spell, or the one error naming what is wrong (a position, never a word)."""
    words = normalize_words(words_text)
    if len(words) != SHARE_WORDS:
        raise ShareWordError(f"the share has {len(words)} words; a share of a recovery key has {SHARE_WORDS}",
                             "check that no word was skipped or repeated")
    try:
        return Share.from_mnemonic(" ".join(words))
    except MnemonicError:
        raise ShareChecksumError("the share's checksum does not match: a word is mistyped or out of order",
                                 "re-read the card word by word") from None


def check_card(words_text: str, header: CardHeader = CardHeader(),
               recipient: RecipientFile | None = None) -> CardVerdict:
    """Check one card; raise the failure's EnigmError, or return what the card is."""
    share = parse_share(words_text)
    evidence = [f"{SHARE_WORDS} words, every one in the SLIP-39 list; checksum correct"]
    if header.set_id is not None and header.set_id != share.identifier:
        raise ShareSetMismatch(f"the card prints set id {header.set_id} but its words are a share of set "
                               f"{share.identifier}: the words were copied from another card",
                               "ask for a fresh card from the ceremony that made this set")
    belongs: bool | None = None
    kind = header.kind
    if recipient is not None:
        key_kind = recipient_kind(recipient.recipient)
        belongs = _check_membership(share, header, recipient, evidence)
        if kind is not None and kind is not key_kind:
            raise RecipientKindMismatch(f"this card is of a {kind.label} recovery key, and {recipient.path} is a "
                                        f"{key_kind.label} key")
        kind = key_kind
        evidence.append(f"the key is {kind.value}: {kind.label}")
    return CardVerdict(header.custodian, share.identifier, share.group_index + 1, share.group_count,
                       share.group_threshold, share.index + 1, share.member_threshold,
                       recipient.fingerprint if recipient else None, belongs, tuple(evidence), kind)


def _check_membership(share: Share, header: CardHeader, recipient: RecipientFile, evidence: list[str]) -> bool:
    keys = load_keyring(recipient.path.parent)
    record: KeyRecord | None = find_key(keys, recipient.fingerprint)
    printed = header.fingerprint
    if printed is not None and printed != recipient.fingerprint:
        other = find_key(keys, printed)
        if other is not None and other.is_retired:
            raise RecoveryKeyRetired(f"this card belongs to the retired recovery key {printed} (retired "
                                     f"{other.retired}: {other.reason}), not to {recipient.fingerprint}",
                                     "keep it only while snapshots sealed to that key remain; your card of "
                                     "the new key is the one that counts now")
        raise ShareSetMismatch(f"this card belongs to recovery key {printed}, not to {recipient.fingerprint} "
                               f"({recipient.path})")
    if record is not None and share.identifier in record.older_sets:
        evidence.append(f"set {share.identifier} is an earlier split of this key (keys reshare made set "
                        f"{record.set_id}): this card still works together with the rest of its old set")
    elif record is not None and record.set_id is not None and record.set_id != share.identifier:
        raise ShareSetMismatch(f"this card is a share of set {share.identifier}; the recovery key "
                               f"{recipient.fingerprint} was split as set {record.set_id} (per "
                               f"{recipient.path.parent / 'keys.toml'})")
    if printed is None and (record is None or record.set_id is None):
        raise CardUnmatched(f"the share is well-formed (set {share.identifier}), but nothing ties it to "
                            f"{recipient.fingerprint}: the words carry no fingerprint and no keyring beside "
                            f"{recipient.path} names the key's set id")
    if printed is not None:
        evidence.append(f"the card's fingerprint is the key's: {printed}")
    if record is not None and record.set_id == share.identifier:
        evidence.append(f"set id {share.identifier} is the set the keyring records for the key")
    elif record is None or record.set_id is None:
        evidence.append("no keys.toml beside recovery.pub records the key's set id: membership rests on the "
                        "fingerprint printed on the card")
    if recipient.retired or (record is not None and record.is_retired):
        why = recipient.retired or (f"{record.retired}: {record.reason}" if record else "")
        raise RecoveryKeyRetired(f"the card belongs to {recipient.fingerprint}, but that key is retired ({why})",
                                 "keep the card only while snapshots sealed to that key remain")
    return True
