"""Rotate and reshare the recovery key, given a quorum of the current one.

- ``rotate``: a new key and new cards in a new folder; the old ``recovery.pub`` is marked retired in
  place (a comment line ``age -R`` ignores) and both folders' ``keys.toml`` record the change. Every
  snapshot sealed to the old key still needs the old quorum until ``keys rewrap`` moves it.
- ``reshare``: the same key split again (a card lost, nobody suspected). Every old card still works
  together with the rest of its old set — that is what SLIP-39 is — so a card that may be in the
  wrong hands calls for ``rotate``, never ``reshare``.

Order matters for a crash: the new folder is written whole first; only then is the old key retired.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from enigm_recover.errors import RecoveryKeyRetired, WrongRecoveryKey
from enigm_recover.quorum.keygen import GroupSpec, create_recovery_key
from enigm_recover.quorum.keyring import (
    KeyRecord,
    RecipientFile,
    find_key,
    load_keyring,
    mark_retired,
    now_utc,
    record_key,
    retire_key,
    save_keyring,
)
from enigm_recover.quorum.recipients import DEFAULT_KIND, RecipientKind
from enigm_recover.quorum.recovery_key import RecoveryIdentity

RESHARE_WARNING = ("Every old card still works together with the rest of its old set: resharing does not revoke "
                   "a card. If a card may be in the wrong hands, use `keys rotate` (a new key) instead.")


@dataclass(frozen=True)
class KeyChange:
    old_fingerprint: str
    new_fingerprint: str
    new_recipient: str
    new_set_id: int
    old_set_id: int | None
    cards: list[Path]
    out_dir: Path
    when: str


@dataclass(frozen=True)
class NewSplit:
    """How the new cards are split (the same options as ``keys init``)."""

    custodians: list[str]
    group_threshold: int
    groups: list[GroupSpec]
    passphrase: str = ""
    kind: RecipientKind = DEFAULT_KIND  # of a new key (keys rotate); a reshared key keeps its own


def _require_current(identity: RecoveryIdentity, old: RecipientFile) -> None:
    if identity.recipient != old.recipient:
        raise WrongRecoveryKey(f"the shares combine to {identity.fingerprint}, not {old.fingerprint} ({old.path})")
    if old.retired:
        raise RecoveryKeyRetired(f"{old.path} is already retired ({old.retired})")


def _carried_keyring(old: RecipientFile) -> list[KeyRecord]:
    keys = load_keyring(old.path.parent)
    if find_key(keys, old.fingerprint) is None:  # a key made before keyrings
        keys.append(KeyRecord(old.fingerprint, old.recipient, None, ""))
    return keys


def rotate(identity: RecoveryIdentity, old: RecipientFile, split: NewSplit, out_dir: Path,
           reason: str) -> KeyChange:
    """A new recovery key in ``out_dir``; the old one retired where it lives."""
    _require_current(identity, old)
    when = now_utc()
    carried = _carried_keyring(old)
    old_set = next((k.set_id for k in carried if k.fingerprint == old.fingerprint), None)
    new, cards = create_recovery_key(custodians=split.custodians, group_threshold=split.group_threshold,
                                     groups=split.groups, out_dir=out_dir, passphrase=split.passphrase,
                                     keyring=carried, kind=split.kind)
    new_record = find_key(load_keyring(out_dir), new.fingerprint)
    assert new_record is not None and new_record.set_id is not None
    retire_key(out_dir, old.fingerprint, when, reason, new.fingerprint)
    if out_dir.resolve() != old.path.parent.resolve():
        record_key(old.path.parent, new_record)
        retire_key(old.path.parent, old.fingerprint, when, reason, new.fingerprint)
    mark_retired(old.path, when, f"rotated ({reason})", new.fingerprint)
    return KeyChange(old.fingerprint, new.fingerprint, new.recipient, new_record.set_id, old_set, cards, out_dir,
                     when)


def reshare(identity: RecoveryIdentity, old: RecipientFile, split: NewSplit, out_dir: Path) -> KeyChange:
    """The same key, split again into new cards in ``out_dir``; the old cards keep working."""
    _require_current(identity, old)
    when = now_utc()
    carried = _carried_keyring(old)
    before = find_key(carried, old.fingerprint)
    assert before is not None
    _, cards = create_recovery_key(custodians=split.custodians, group_threshold=split.group_threshold,
                                   groups=split.groups, out_dir=out_dir, passphrase=split.passphrase,
                                   identity=identity, keyring=carried)
    made = find_key(load_keyring(out_dir), old.fingerprint)
    assert made is not None and made.set_id is not None
    older = tuple(s for s in (*before.older_sets, before.set_id) if s is not None and s != made.set_id)
    record = replace(before, set_id=made.set_id, older_sets=older, created=before.created or made.created)
    for folder in {out_dir.resolve(), old.path.parent.resolve()}:
        keys = [record if k.fingerprint == old.fingerprint else k for k in load_keyring(folder)]
        if find_key(keys, old.fingerprint) is None:
            keys.append(record)
        save_keyring(folder, keys)
    return KeyChange(old.fingerprint, old.fingerprint, old.recipient, made.set_id, before.set_id, cards, out_dir,
                     when)
