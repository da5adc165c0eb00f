"""The dry-run diff: what a restore would change in the live target, and what it must not.

Both sides stream sorted by primary key (the payload is sorted; the store reads
in key order), so the diff is one merge pass per kind: linear in records, with
memory bounded by the changes it keeps. A change keeps its key, the differing
fields and, where a restore would write it, the record's canonical line (one
compact bytes object): the restore applies the change list without reading
the payload again. Decrypted records stay in memory only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import timezone
from typing import Any, Iterable, Iterator

from enigm_recover.memory import keep_large_blocks_off_the_heap
from enigm_recover.progress import ProgressCallback, no_progress
from enigm_recover.quorum.recovery_key import RecoveryIdentity
from enigm_recover.recovery.assess import (
    REASONS,
    Assessment,
    Assessor,
    ChangeType,
    as_key,
    Finding,
    device_account,
    differing_fields,
    merge,
    orphan_assessment,
)
from enigm_recover.recovery.line_store import LineStore
from enigm_recover.recovery.snapshot_rows import rows_by_kind
from enigm_recover.snapshot.records import parse_checked_line
from enigm_recover.snapshot.verify import VerifiedSnapshot
from enigm_recover.state.model import DEVICE, IDENTITY, KIND_BY_NAME, KINDS
from enigm_recover.state.store import TargetStore


@dataclass(slots=True)
class Change:
    kind: str
    key: tuple[Any, ...]
    change: ChangeType
    fields: tuple[tuple[str, Any, Any], ...] = ()  # (field, live value, snapshot value) when changed
    findings: tuple[Finding, ...] = ()
    protected: bool = False
    line_ref: int | None = None  # the canonical record a restore would write (missing, changed), in `lines`
    account: str | None = None  # an extra device's account, for the orphan check (a missing one's is in its line)
    lines: LineStore | None = None

    @property
    def snapshot_line(self) -> bytes | None:
        return None if self.line_ref is None or self.lines is None else self.lines.get(self.line_ref)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "key": list(self.key),
            "change": self.change.value,
            "fields": [{"field": f, "live": live, "snapshot": snap} for f, live, snap in self.fields],
            "findings": [f.value for f in self.findings],
            "protected": self.protected,
        }


NOT_IN_SNAPSHOT = "not in this snapshot"


@dataclass
class KindSummary:
    snapshot: int = 0
    live: int = 0
    missing: int = 0
    extra: int = 0
    changed: int = 0
    unchanged: int = 0
    findings: Counter[str] = field(default_factory=Counter)
    in_snapshot: bool = True  # False: outside the snapshot's signed scope, not compared (never "zero records")

    def as_dict(self) -> dict[str, Any]:
        if not self.in_snapshot:
            return {"in_snapshot": False, "status": NOT_IN_SNAPSHOT}
        return {"in_snapshot": True, "snapshot": self.snapshot, "live": self.live, "missing": self.missing, "extra": self.extra,
                "changed": self.changed, "unchanged": self.unchanged, "findings": dict(self.findings)}


@dataclass
class DiffResult:
    snapshot_id: str
    snapshot_time: str
    target: str
    kinds: dict[str, KindSummary]
    changes: list[Change] = field(default_factory=list)

    def findings(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for summary in self.kinds.values():
            total.update(summary.findings)
        return total

    def totals(self) -> dict[str, int]:
        """Missing, extra, changed and unchanged records over every kind compared."""
        return {change: sum(getattr(s, change) for s in self.kinds.values())
                for change in ("missing", "extra", "changed", "unchanged")}

    def select(self, *, kind: str | None = None, change: str | None = None,
               finding: str | None = None) -> Iterator[Change]:
        for c in self.changes:
            if kind and c.kind != kind:
                continue
            if change and c.change.value != change:
                continue
            if finding and finding not in {f.value for f in c.findings}:
                continue
            yield c

    def page(self, offset: int, limit: int, **filters: str | None) -> list[Change]:
        """A window of the (filtered) changes, for views that show a few at a time."""
        out = []
        for i, c in enumerate(self.select(**filters)):
            if i >= offset + limit:
                break
            if i >= offset:
                out.append(c)
        return out

    def as_dict(self, limit: int | None = None) -> dict[str, Any]:
        ordered = sorted(self.changes, key=lambda c: (not c.findings, KIND_BY_NAME[c.kind].name))
        shown = ordered if limit is None else ordered[:limit]
        return {
            "snapshot": self.snapshot_id,
            "snapshot_time": self.snapshot_time,
            "target": self.target,
            "kinds": {k: s.as_dict() for k, s in self.kinds.items()},
            "findings": {code: {"count": n, "reason": REASONS[Finding(code)]} for code, n in self.findings().items()},
            "changes": [c.as_dict() for c in shown],
            "changes_total": len(self.changes),
            "changes_shown": len(shown),
        }


def snapshot_time_of(verified: VerifiedSnapshot) -> str:
    return verified.manifest.created_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _account_of(change: Change) -> str | None:
    if change.account is not None:
        return change.account
    if change.change is ChangeType.MISSING and change.snapshot_line is not None:
        return device_account(parse_checked_line(DEVICE, change.snapshot_line), None)
    return None


ORPHAN_CHUNK = 20_000


def resolve_orphans(changes: list[Change], restorable_accounts: set[str], store: TargetStore) -> None:
    """Flag missing or extra devices whose account exists neither in live nor among the snapshot's
    missing identities (a missing one is then not restored). Batched lookups, not one per device."""
    for start in range(0, len(changes), ORPHAN_CHUNK):  # in chunks: memory stays bounded
        pending = [(c, account) for c in changes[start:start + ORPHAN_CHUNK]
                   if (account := _account_of(c)) is not None]
        known = store.existing_accounts({account for _, account in pending} - restorable_accounts)
        for change, account in pending:
            if account not in known and account not in restorable_accounts:
                verdict = orphan_assessment(Assessment(change.change, change.findings, change.protected))
                change.findings, change.protected = verdict.findings, verdict.protected


def diff(verified: VerifiedSnapshot, identity: RecoveryIdentity, store: TargetStore, *,
         kinds: Iterable[str] | None = None, progress: ProgressCallback = no_progress) -> DiffResult:
    """Compare the snapshot with the live target, kind by kind, in one pass over the payload."""
    keep_large_blocks_off_the_heap()  # a dry run keeps many small objects between the payload's blocks
    selected = set(kinds) if kinds else {k.name for k in KINDS}
    snapshot_time = snapshot_time_of(verified)
    result = DiffResult(verified.manifest.id, snapshot_time, store.display,
                        {k.name: KindSummary() for k in KINDS if k.name in selected})
    missing_accounts: set[str] = set()  # the snapshot's identities that live lacks: a restore brings them back
    lines = LineStore()
    for kind, items in rows_by_kind(verified, identity, progress):
        if kind.name not in verified.manifest.scope:
            # The snapshot says nothing about this kind: live records are not compared with an empty stream
            # (they would all look extra), and the kind is shown as not in this snapshot.
            for _ in items:
                pass
            if kind.name in selected:
                result.kinds[kind.name] = KindSummary(in_snapshot=False)
            continue
        wanted = kind.name in selected or (kind is IDENTITY and DEVICE.name in selected)
        if not wanted:
            for _ in items:
                pass
            continue
        summary = KindSummary()
        changes: list[Change] = []
        assess = Assessor(kind, snapshot_time)
        unchanged = 0
        for key, snap, line, live in merge(kind, items, store.stream(kind)):
            if snap == live:  # the common case, counted without a call (merge never yields two Nones)
                unchanged += 1
                continue
            verdict = assess(snap, live)
            assert verdict.change is not None
            setattr(summary, verdict.change.value, getattr(summary, verdict.change.value) + 1)
            changed = verdict.change is ChangeType.CHANGED
            fields = differing_fields(kind, snap, live) if changed else ()  # type: ignore[arg-type]
            account = device_account(snap, live) if kind is DEVICE and verdict.change is ChangeType.EXTRA else None
            changes.append(Change(kind.name, as_key(kind, key), verdict.change, fields, verdict.findings,
                                  verdict.protected, lines.add(line) if line is not None else None, account,
                                  lines))
            if kind is IDENTITY and verdict.change is ChangeType.MISSING:
                missing_accounts.add(key)
        summary.unchanged = unchanged
        summary.snapshot = unchanged + summary.missing + summary.changed
        summary.live = unchanged + summary.extra + summary.changed
        if kind is DEVICE:
            resolve_orphans(changes, missing_accounts, store)
        if kind.name in selected:
            for change in changes:
                summary.findings.update(f.value for f in change.findings)
            result.kinds[kind.name] = summary
            result.changes.extend(changes)
    return result
