"""The safety rules of restore, applied to one record at a time.

A snapshot is older than the live state. For each key, ``assess`` says how the
snapshot and live records differ, which findings a human should see, and
whether the safety rules forbid touching the live side:

- revocation is monotonic: a device revoked or retired in live is never
  re-activated, changed or deleted by a restore;
- an identity key never rolls back to an older version;
- a device is never restored under an account that exists nowhere;
- a live record changed after the snapshot was taken, or that the snapshot
  never had, is flagged (and kept unless the operator chose otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Iterator

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


REASONS: dict[Finding, str] = {
    Finding.REVOCATION_KEPT: "the device is revoked or retired in live; revocation is never undone by a restore",
    Finding.KEY_VERSION_KEPT: "the live identity key is newer than the snapshot's; identity keys never roll back",
    Finding.CHANGED_AFTER_SNAPSHOT: "the live record changed after the snapshot was taken; overwriting it loses "
                                    "that change",
    Finding.ORPHAN_DEVICE: "the device's account exists neither in live nor in the snapshot",
    Finding.ONLY_IN_LIVE: "the snapshot never had this record (created after it, or removed before it); "
                          "kept unless delete-extra is chosen",
}

_STATE = DEVICE.position("state")
_DEVICE_ACCOUNT = DEVICE.position("account_id")
_KEY_VERSION = IDENTITY.position("key_version")


@dataclass(frozen=True, slots=True)
class Assessment:
    change: ChangeType | None  # None: unchanged
    findings: tuple[Finding, ...] = ()
    protected: bool = False  # the safety rules forbid acting on this key


UNCHANGED = Assessment(None)


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
            return Assessment(ChangeType.MISSING)
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
    return Assessment(verdict.change, findings, verdict.protected or verdict.change is ChangeType.MISSING)


def merge(kind: Kind, snapshot: Iterator[tuple[Row, bytes]],
          live: Iterator[Row]) -> Iterator[tuple[tuple[Any, ...], Row | None, bytes | None, Row | None]]:
    """Join two streams sorted by primary key: (key, snapshot row, its line, live row), Nones where absent.

    The key is yielded as ``Kind.sort_key`` gives it (the value itself for one-column keys): see ``as_key``."""
    key = kind.sort_key
    s = next(snapshot, None)
    l = next(live, None)  # noqa: E741
    while s is not None or l is not None:
        ks = key(s[0]) if s is not None else None
        kl = key(l) if l is not None else None
        if kl is None or (ks is not None and ks < kl):
            yield ks, s[0], s[1], None  # type: ignore[index,misc]
            s = next(snapshot, None)
        elif ks is None or kl < ks:
            yield kl, None, None, l
            l = next(live, None)  # noqa: E741
        else:
            yield ks, s[0], s[1], l  # type: ignore[index]
            s = next(snapshot, None)
            l = next(live, None)  # noqa: E741


def differing_fields(kind: Kind, snap: Row, live: Row) -> tuple[tuple[str, Any, Any], ...]:
    """(field, live value, snapshot value) for each field that differs."""
    return tuple((name, lv, sv) for name, sv, lv in zip(kind.field_names, snap, live) if sv != lv)
