"""The safety rules of restore, applied to one record at a time.

A snapshot is older than the live state. For each key, ``assess`` says how the
snapshot and live records differ, which findings a human should see, and
whether the safety rules forbid touching the live side:

- revocation is monotonic: a device revoked or retired in live is never
  re-activated, changed or deleted by a restore;
- an identity key never rolls back to an older version;
- a device is never restored under an account that exists nowhere;
- a live record changed after the snapshot was taken, or that the snapshot
  never had, is flagged (and kept unless the operator chose otherwise);
- a live record the model cannot read (a wrong type, a NULL, a value outside
  its syntax) is flagged and kept unless the operator chose to overwrite it;
  the rules above still hold on whatever of it can be read.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Iterator

from enigm_recover.state.live import Unreadable, unreadable
from enigm_recover.state.model import DEVICE, IDENTITY, TERMINAL_DEVICE_STATES, Kind

Row = tuple[Any, ...]


class ChangeType(str, Enum):
    MISSING = "missing"  # in the snapshot, not in live
    EXTRA = "extra"  # in live, not in the snapshot
    CHANGED = "changed"  # in both, different


class Finding(str, Enum):
    REVOCATION_KEPT = "revocation-kept"
    KEY_VERSION_KEPT = "key-version-kept"
    CHANGED_AFTER_SNAPSHOT = "changed-after-snapshot"
    ORPHAN_DEVICE = "orphan-device"
    ONLY_IN_LIVE = "only-in-live"
    UNREADABLE_LIVE_RECORD = "unreadable-live-record"
    UNREADABLE_LIVE_TABLE = "unreadable-live-table"
    UNWRITABLE_LIVE_TABLE = "unwritable-live-table"


REASONS: dict[Finding, str] = {
    Finding.REVOCATION_KEPT: "the device is revoked or retired in live; revocation is never undone by a restore",
    Finding.KEY_VERSION_KEPT: "the live identity key is newer than the snapshot's; identity keys never roll back",
    Finding.CHANGED_AFTER_SNAPSHOT: "the live record changed after the snapshot was taken; overwriting it loses "
                                    "that change",
    Finding.ORPHAN_DEVICE: "the device's account exists neither in live nor in the snapshot",
    Finding.ONLY_IN_LIVE: "the snapshot never had this record (created after it, or removed before it); "
                          "kept unless delete-extra is chosen",
    Finding.UNREADABLE_LIVE_RECORD: "the live record holds a value the model cannot read (a wrong type, NULL, or a "
                                    "value outside its syntax); a restore keeps it as it is unless "
                                    "overwrite-unreadable is chosen",
    Finding.UNREADABLE_LIVE_TABLE: "the live table is missing, lacks a column of the model or has one of a type that "
                                   "cannot hold its values; that kind is not compared and its restore refuses",
    Finding.UNWRITABLE_LIVE_TABLE: "the live table has a column the model does not know that every new record must "
                                   "fill (NOT NULL without a default); the restore of that kind refuses",
}

_STATE = DEVICE.position("state")
_DEVICE_ACCOUNT = DEVICE.position("account_id")
_KEY_VERSION = IDENTITY.position("key_version")


@dataclass(frozen=True, slots=True)
class Assessment:
    change: ChangeType | None  # None: unchanged
    findings: tuple[Finding, ...] = ()
    protected: bool = False  # the safety rules forbid acting on this key
    unreadable: Unreadable | None = None  # what keeps the live record from being read into the model


UNCHANGED = Assessment(None)
MISSING = Assessment(ChangeType.MISSING)  # in the snapshot only: restored, unless an orphan device


class Assessor:
    """Assesses keys of one kind against a snapshot taken at ``snapshot_time`` (ISO UTC).

    Whether a device's account exists is not known here (it needs the store, and
    is asked in batches): see ``orphan_assessment``.
    """

    def __init__(self, kind: Kind, snapshot_time: str) -> None:
        self.kind = kind
        self.snapshot_time = snapshot_time
        self.changed_at = kind.position(kind.changed_at)

    def __call__(self, snap: Row | None, live: Row | None) -> Assessment:
        kind = self.kind
        if live is None:
            return MISSING
        bad = unreadable(kind, live)
        if bad is not None:
            return self._unreadable(snap, live, bad)
        if snap is None:
            if kind is DEVICE and live[_STATE] in TERMINAL_DEVICE_STATES:
                return Assessment(ChangeType.EXTRA, (Finding.ONLY_IN_LIVE, Finding.REVOCATION_KEPT), True)
            return Assessment(ChangeType.EXTRA, (Finding.ONLY_IN_LIVE,))
        if snap == live:
            return UNCHANGED
        findings = []
        protected = False
        if kind is DEVICE and live[_STATE] in TERMINAL_DEVICE_STATES:
            findings.append(Finding.REVOCATION_KEPT)
            protected = True
        if kind is IDENTITY and live[_KEY_VERSION] > snap[_KEY_VERSION]:
            findings.append(Finding.KEY_VERSION_KEPT)
            protected = True
        if live[self.changed_at] > self.snapshot_time:
            findings.append(Finding.CHANGED_AFTER_SNAPSHOT)
        return Assessment(ChangeType.CHANGED, tuple(findings), protected)

    def _unreadable(self, snap: Row | None, live: Row, bad: Unreadable) -> Assessment:
        """A live record the model cannot read: flagged, and the safety rules applied to what can be read.
        A device state or key version read loosely (any case, a number as text) still protects."""
        kind = self.kind
        findings = [Finding.ONLY_IN_LIVE] if snap is None else []
        protected = False
        if kind is DEVICE and _loose_text(live[_STATE]) in TERMINAL_DEVICE_STATES:
            findings.append(Finding.REVOCATION_KEPT)
            protected = True
        if kind is IDENTITY and snap is not None and (_loose_int(live[_KEY_VERSION]) or 0) > snap[_KEY_VERSION]:
            findings.append(Finding.KEY_VERSION_KEPT)
            protected = True
        changed_at = kind.fields[self.changed_at]
        if snap is not None and changed_at.check(live[self.changed_at]) and live[self.changed_at] > self.snapshot_time:
            findings.append(Finding.CHANGED_AFTER_SNAPSHOT)
        findings.append(Finding.UNREADABLE_LIVE_RECORD)
        change = ChangeType.EXTRA if snap is None else ChangeType.CHANGED
        return Assessment(change, tuple(findings), protected, bad)


def _loose_text(value: Any) -> str | None:
    return value.strip().lower() if isinstance(value, str) else None


def _loose_int(value: Any) -> int | None:
    """An integer however a drifted column holds it (3, 3.0, '3'), or None."""
    if isinstance(value, str):
        value = value.strip()
        return int(value) if value.isascii() and value.isdigit() else None
    try:
        return int(value) if value == int(value) else None
    except (TypeError, ValueError, OverflowError):
        return None


def as_key(kind: Kind, key: Any) -> tuple[Any, ...]:
    """A merge key as the tuple the rest of the engine uses."""
    return key if len(kind.primary_key) > 1 else (key,)


def device_account(snap: Row | None, live: Row | None) -> str:
    row = snap if snap is not None else live
    assert row is not None
    return str(row[_DEVICE_ACCOUNT])


def orphan_assessment(verdict: Assessment) -> Assessment:
    """A missing or extra device whose account exists nowhere: flagged, and a missing one is not restored."""
    findings = verdict.findings + (Finding.ORPHAN_DEVICE,)
    return Assessment(verdict.change, findings, verdict.protected or verdict.change is ChangeType.MISSING,
                      verdict.unreadable)


def merge(kind: Kind, snapshot: Iterator[tuple[Row, bytes]],
          live: Iterator[Row]) -> Iterator[tuple[tuple[Any, ...], Row | None, bytes | None, Row | None]]:
    """Join two streams sorted by primary key: (key, snapshot row, its line, live row), Nones where absent.

    The key is yielded as ``Kind.sort_key`` gives it (the value itself for one-column keys): see ``as_key``.
    A live key that is not text (NULL, a number, bytes: a drifted table) has no place in the payload's order:
    its row is yielded alone, as if only in live, for the caller to judge unreadable."""
    key = kind.sort_key
    s = next(snapshot, None)
    l = next(live, None)  # noqa: E741
    while s is not None and l is not None:
        ks, kl = key(s[0]), key(l)
        try:
            snap_first = ks < kl
            live_first = not snap_first and kl < ks
        except TypeError:  # the snapshot's keys are all text: this live key is not
            snap_first, live_first = False, True
        if snap_first:
            yield ks, s[0], s[1], None
            s = next(snapshot, None)
        elif live_first:
            yield kl, None, None, l
            l = next(live, None)  # noqa: E741
        else:
            yield ks, s[0], s[1], l
            s = next(snapshot, None)
            l = next(live, None)  # noqa: E741
    while s is not None:
        yield key(s[0]), s[0], s[1], None
        s = next(snapshot, None)
    while l is not None:
        yield key(l), None, None, l
        l = next(live, None)  # noqa: E741


def differing_fields(kind: Kind, snap: Row, live: Row) -> tuple[tuple[str, Any, Any], ...]:
    """(field, live value, snapshot value) for each field that differs."""
    return tuple((name, lv, sv) for name, sv, lv in zip(kind.field_names, snap, live) if sv != lv)
