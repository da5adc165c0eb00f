"""The keyring: every recovery key's life, kept beside its ``recovery.pub``.

``keys.toml`` lists each key the folder has known — fingerprint, recipient, SLIP-39 set id, when it
was created, and when and why it was retired (and by which key it was replaced). A retired
``recovery.pub`` also says so itself, in a comment line that ``age -R`` ignores, so the mark travels
with the one file a producer is given::

    # RETIRED 2026-12-07T08:00:00Z: rotated (custodian left); replaced by SHA256:...

Nothing here is secret: fingerprints, set ids and dates only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from enigm_recover import tomlfile
from enigm_recover.atomic import write_atomic
from enigm_recover.bounded import KEY_FILE, OWN_DOCUMENT, load_toml_file, read_text_bounded
from enigm_recover.errors import InputFileError, RecoveryKeyRetired
from enigm_recover.quorum.recovery_key import decode_recipient, recipient_fingerprint

KEYRING_FILE = "keys.toml"
RETIRED_MARK = "# RETIRED "
KEYRING_FORMAT = "enigm-keyring/1"


def now_utc() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class KeyRecord:
    fingerprint: str
    recipient: str
    set_id: int | None  # None: a key made before keyrings (its cards still carry their set id)
    created: str
    retired: str = ""
    reason: str = ""
    replaced_by: str = ""
    older_sets: tuple[int, ...] = ()  # earlier splits of the same key (keys reshare): their cards still work

    @property
    def is_retired(self) -> bool:
        return bool(self.retired)

    def as_dict(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "recipient": self.recipient, "set_id": self.set_id,
                "created": self.created, "retired": self.retired, "reason": self.reason,
                "replaced_by": self.replaced_by, "older_sets": list(self.older_sets)}


@dataclass(frozen=True)
class RecipientFile:
    """A ``recovery.pub`` as read: its one recipient, and its retirement line if it has one."""

    path: Path
    recipient: str
    retired: str  # the text after "# RETIRED ", or ""

    @property
    def fingerprint(self) -> str:
        return recipient_fingerprint(self.recipient)


def read_recipient(path: Path) -> RecipientFile:
    """The one ``age1...`` line of a recipients file (``#`` comments allowed, like ``age -R``)."""
    text = read_text_bounded(path, KEY_FILE, "recipient file")
    assert text is not None
    lines = text.splitlines()
    recipients = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if len(recipients) != 1:
        raise InputFileError(f"recipient file {path} must hold exactly one age recipient line")
    try:
        decode_recipient(recipients[0])
    except ValueError as exc:
        raise InputFileError(f"recipient file {path} does not hold an age recipient (age1pq1... or age1...): {exc}",
                             "use the recovery.pub that keys init wrote, unchanged") from None
    retired = next((ln.strip()[len(RETIRED_MARK):].strip() for ln in lines
                    if ln.strip().startswith(RETIRED_MARK.strip() + " ")), "")
    return RecipientFile(path, recipients[0], retired)


def refuse_retired(recipient: RecipientFile) -> None:
    if recipient.retired:
        raise RecoveryKeyRetired(f"recipient file {recipient.path} is marked retired ({recipient.retired}): "
                                 "nothing new may be sealed to it")


def mark_retired(path: Path, when: str, reason: str, replaced_by: str) -> None:
    """Add the retirement comment to ``recovery.pub`` in place (atomically); the recipient line stays."""
    current = read_recipient(path)
    if current.retired:
        return
    text = read_text_bounded(path, KEY_FILE, "recipient file") or ""
    line = f"{RETIRED_MARK}{when}: {_one_line(reason)}; replaced by {replaced_by}\n"
    write_atomic(path, (line + text).encode("ascii", "replace"), mode=0o644, overwrite=True)


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "no reason given"


# -- keys.toml ------------------------------------------------------------------------------------


def keyring_path(recipient_path: Path) -> Path:
    return recipient_path.parent / KEYRING_FILE


def load_keyring(folder: Path) -> list[KeyRecord]:
    """The keys listed in ``folder/keys.toml``, oldest first (none when there is no keyring)."""
    path = folder / KEYRING_FILE
    if not path.exists():
        return []
    doc = load_toml_file(path, OWN_DOCUMENT, "keyring") or {}
    out = []
    for item in doc.get("key", []):
        if not isinstance(item, dict) or not isinstance(item.get("fingerprint"), str):
            raise InputFileError(f"keyring {path}: every [[key]] needs a fingerprint")
        set_id = item.get("set_id")
        out.append(KeyRecord(item["fingerprint"], str(item.get("recipient", "")),
                             set_id if isinstance(set_id, int) else None, str(item.get("created", "")),
                             str(item.get("retired", "")), str(item.get("reason", "")),
                             str(item.get("replaced_by", "")),
                             tuple(i for i in item.get("older_sets", []) if isinstance(i, int))))
    return out


def save_keyring(folder: Path, keys: list[KeyRecord]) -> None:
    doc = {"format": KEYRING_FORMAT,
           "note": "Every recovery key this folder has known. Retired keys still open the snapshots sealed "
                   "to them, with their own old cards.",
           "key": [k.as_dict() for k in keys]}
    write_atomic(folder / KEYRING_FILE, tomlfile.dumps(doc), mode=0o644, overwrite=True)


def find_key(keys: list[KeyRecord], fingerprint: str) -> KeyRecord | None:
    return next((k for k in keys if k.fingerprint == fingerprint), None)


def record_key(folder: Path, record: KeyRecord) -> None:
    """Add (or update) one key in ``folder/keys.toml``."""
    keys = load_keyring(folder)
    keys = [k for k in keys if k.fingerprint != record.fingerprint] + [record]
    save_keyring(folder, keys)


def retire_key(folder: Path, fingerprint: str, when: str, reason: str, replaced_by: str) -> None:
    keys = load_keyring(folder)
    existing = find_key(keys, fingerprint)
    if existing is None:  # a key made before keyrings: it enters the keyring as it leaves service
        existing = KeyRecord(fingerprint, "", None, "")
    record_key(folder, replace(existing, retired=when, reason=_one_line(reason), replaced_by=replaced_by))


def retired_fingerprints(recipient_path: Path) -> dict[str, KeyRecord]:
    """Every retired key the keyring beside ``recipient_path`` knows, by fingerprint."""
    return {k.fingerprint: k for k in load_keyring(recipient_path.parent) if k.is_retired}
