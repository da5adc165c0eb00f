"""The dry-run diff: what a restore would change in the live target, and what it must not.

Both sides stream sorted by primary key (the payload is sorted; the store reads
in key order), so the diff is one merge pass per kind: linear in records, with
memory bounded by the changes it keeps. A change keeps its key, the differing
fields and, where a restore would write it, the record's canonical line (one
compact bytes object, in the ``LineStore``): the restore applies the change
list without reading the payload again. A record only the snapshot has, without
findings, is kept as its line's reference alone (``change_list``), so a total
loss costs bytes per record, not a ``Change`` object each. Decrypted records
stay in memory, or past a bound sealed under a key of the process's own.

Live tables are read as an incident left them (``state.live``): a record the
model cannot read is a change with a finding, a record whose very key cannot
be read and a table that cannot be read (or written) as its kind are listed
apart; none of them stops the dry run.
"""

from __future__ import annotations

import logging
from array import array
from collections import Counter
from dataclasses import dataclass, field
from datetime import timezone
from itertools import islice
from typing import Any, Iterable, Iterator

from enigm_recover.memory import keep_large_blocks_off_the_heap
from enigm_recover.logs import timed
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
    orphan_assessment,
)
from enigm_recover.recovery.change_list import Change, ChangeList, KindChanges
from enigm_recover.recovery.line_store import LineStore
from enigm_recover.recovery.restorable_accounts import RestorableAccounts
from enigm_recover.recovery.snapshot_rows import rows_by_kind
from enigm_recover.snapshot.records import CHECKED_LINE, parse_checked_line
from enigm_recover.snapshot.unseal import PayloadConfirmation
from enigm_recover.snapshot.verify import VerifiedSnapshot
from enigm_recover.state.live import Unreadable, exact_types, key_is_addressable, table_unreadable, table_unwritable
from enigm_recover.state.model import DEVICE, IDENTITY, KINDS, Kind

log = logging.getLogger(__name__)
from enigm_recover.state.store import TargetStore


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
    changes: ChangeList = field(default_factory=ChangeList)
    # Live tables that cannot be read (or written) as their kind, and live records whose key itself cannot be
    # read: findings without a change a restore could act on.
    unreadable_live: list[Unreadable] = field(default_factory=list)
    # The payload SHA-256 its stream confirmed, set as the dry run ends: a result without it was not made
    # from the signed payload (anyone can encrypt to the recipient), and a restore refuses it.
    payload_sha256: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.changes, ChangeList):
            self.changes = ChangeList(self.changes)

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
        # Only changes kept in full can have findings; a kind's changes are read without making the others'.
        source = self.changes.in_full(kind) if finding else self.changes.of_kind(kind) if kind else self.changes
        for c in source:
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

    def as_dict(self, limit: int | None = None, *, stream: bool = False) -> dict[str, Any]:
        """The result as a JSON document; with ``stream``, its changes are an iterator of their dicts, made one
        at a time as a writer reads them (a total loss's are millions)."""
        ordered = self.changes.by_findings(by_kind_name=True)
        shown = ordered if limit is None else islice(ordered, limit)
        total = len(self.changes)
        changes = (c.as_dict() for c in shown)
        return {
            "snapshot": self.snapshot_id,
            "snapshot_time": self.snapshot_time,
            "target": self.target,
            "kinds": {k: s.as_dict() for k, s in self.kinds.items()},
            "findings": {code: {"count": n, "reason": REASONS[Finding(code)]} for code, n in self.findings().items()},
            "changes": changes if stream else list(changes),
            "changes_total": total,
            "changes_shown": total if limit is None else min(max(limit, 0), total),
            "unreadable_live": [u.as_dict() for u in self.unreadable_live],
        }


def snapshot_time_of(verified: VerifiedSnapshot) -> str:
    return verified.manifest.created_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _account_of(change: Change) -> str | None:
    if change.account is not None:
        return change.account
    if change.change is ChangeType.MISSING and change.snapshot_line is not None:
        row = change.row if change.row is not None else parse_checked_line(DEVICE, change.snapshot_line)
        return device_account(row, None)
    return None


def _suspect_account(changes: KindChanges, position: int) -> str | None:
    """``_account_of`` the device change at ``position``, without making a plain missing one's Change."""
    row = changes.plain_missing_row(position)
    return _account_of(changes.at(position)) if row is None else device_account(row, None)


ORPHAN_CHUNK = 20_000


def resolve_orphans(changes: KindChanges, suspects: Iterable[int], store: TargetStore,
                    accounts_readable: bool = True) -> None:
    """Flag the missing or extra devices at ``suspects`` (positions in ``changes`` whose account is not among
    the snapshot's missing identities, which a restore brings back) whose account live lacks as well: a
    missing one is then not restored. Batched lookups, not one per device. Where live's accounts cannot be
    read, no account is known to exist there. A plain missing device (most of them) has its account read from
    its line alone; a change is made only for the devices found orphaned."""
    positions = list(suspects)
    for start in range(0, len(positions), ORPHAN_CHUNK):  # in chunks: memory stays bounded
        pending = [(p, account) for p in positions[start:start + ORPHAN_CHUNK]
                   if (account := _suspect_account(changes, p)) is not None]
        wanted = {account for _, account in pending}
        known = store.existing_accounts(wanted) if accounts_readable else set()
        for position, account in pending:
            if account not in known:
                change = changes.at(position)
                verdict = orphan_assessment(Assessment(change.change, change.findings, change.protected))
                change.findings, change.protected = verdict.findings, verdict.protected
                changes.replace(position, change)


@timed(log, "the dry run (diff)")
def diff(verified: VerifiedSnapshot, identity: RecoveryIdentity, store: TargetStore, *,
         kinds: Iterable[str] | None = None, progress: ProgressCallback = no_progress) -> DiffResult:
    """Compare the snapshot with the live target, kind by kind, in one pass over the payload."""
    keep_large_blocks_off_the_heap()  # a dry run keeps many small objects between the payload's blocks
    selected = set(kinds) if kinds else {k.name for k in KINDS}
    snapshot_time = snapshot_time_of(verified)
    result = DiffResult(verified.manifest.id, snapshot_time, store.display,
                        {k.name: KindSummary() for k in KINDS if k.name in selected})
    log.info("comparing snapshot %s with %s (%s)", verified.manifest.id, store.display, ", ".join(sorted(selected)))
    missing_accounts = RestorableAccounts()  # the snapshot's identities that live lacks: a restore brings them back
    lines = LineStore()
    confirmation = PayloadConfirmation()
    # Most records are unchanged: their lines are not needed, and those of a verbatim kind are not even sent.
    for kind, items in rows_by_kind(verified, identity, progress, confirmation, verbatim_lines=False):
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
        changes = KindChanges(kind, lines)
        table = store.live_table(kind)
        unreadable = table_unreadable(kind, table)
        if unreadable:  # the live table cannot be read as this kind: one finding per missing or odd column
            summary.snapshot = sum(1 for _ in items)
            summary.findings[Finding.UNREADABLE_LIVE_TABLE.value] = len(unreadable)
        else:
            unwritable = table_unwritable(kind, table)
            keyless, suspects = _compare(kind, items, store, snapshot_time, summary, changes, missing_accounts)
            summary.findings[Finding.UNWRITABLE_LIVE_TABLE.value] = len(unwritable)
            summary.findings[Finding.UNREADABLE_LIVE_RECORD.value] = len(keyless)
            unreadable = unwritable + keyless
            if kind is DEVICE:
                identities = table_unreadable(IDENTITY, store.live_table(IDENTITY))
                resolve_orphans(changes, suspects, store,
                                accounts_readable=not any(u.column in (None, "account_id") for u in identities))
        if kind.name in selected:
            for change in changes.with_findings():
                summary.findings.update(f.value for f in change.findings)
            summary.findings = +summary.findings  # only the findings there are
            result.kinds[kind.name] = summary
            result.changes.extend(changes)
            result.unreadable_live.extend(unreadable)
    result.payload_sha256 = confirmation.sha256()  # nothing of the result leaves before the payload is the signed one
    return result


def _compare(kind: Kind, items: Iterator[tuple[tuple[Any, ...], bytes | None]], store: TargetStore,
             snapshot_time: str,
             summary: KindSummary, changes: KindChanges, missing_accounts: RestorableAccounts
             ) -> tuple[list[Unreadable], array[int]]:
    """One merge pass of a kind: counts into ``summary``, changes into ``changes``. Returns the live records
    whose key cannot be read (they have no place in the key order, and no change a restore could act on), and
    for devices the positions of the missing and extra ones whose account is not among ``missing_accounts``
    (the orphan check looks those up in live). A snapshot record's line None is its values' canonical
    encoding, made here only for the records a change keeps.

    The merge is ``assess.merge``'s, inlined: a record equal on both sides (the common case) costs one
    comparison of two tuples, not a round through a generator."""
    assess = Assessor(kind, snapshot_time)
    exact = exact_types(kind)  # where Python's == is looser than the model (3.0 == 3)
    key = kind.sort_key
    keyless: list[Unreadable] = []
    suspects = array("q")
    unchanged = 0
    lines = changes.lines
    assert lines is not None

    def differs(k: Any, snap: tuple[Any, ...] | None, line: bytes | None, live: tuple[Any, ...] | None) -> None:
        verdict = assess(snap, live)
        assert verdict.change is not None  # equal rows of the model's types never get here
        setattr(summary, verdict.change.value, getattr(summary, verdict.change.value) + 1)
        if verdict.unreadable is not None and not key_is_addressable(kind, live):  # type: ignore[arg-type]
            keyless.append(verdict.unreadable)
            return
        changed = verdict.change is ChangeType.CHANGED and verdict.unreadable is None
        fields = differing_fields(kind, snap, live) if changed else ()  # type: ignore[arg-type]
        account = device_account(snap, live) if kind is DEVICE and verdict.change is ChangeType.EXTRA else None
        if account is not None and account not in missing_accounts:
            suspects.append(len(changes))
        changes.append(Change(kind.name, as_key(kind, k), verdict.change, fields, verdict.findings,
                              verdict.protected, lines.add(line) if line is not None else None, account,
                              lines, verdict.unreadable))

    is_identity, is_device = kind is IDENTITY, kind is DEVICE
    line_of = CHECKED_LINE.get(kind.name)  # a line not sent is a verbatim kind's: made from its values

    def missing(k: Any, row: tuple[Any, ...], line: bytes | None) -> None:
        """``differs`` for a record only in the snapshot: ``assess`` says missing, without findings, always.
        Kept compactly (``KindChanges.add_missing``); a missing device's account is read from what is kept
        again only if the orphan check needs it (kept for every one, they would cost memory)."""
        summary.missing += 1
        if is_identity:
            missing_accounts.add(k)
        elif is_device and device_account(row, None) not in missing_accounts:
            suspects.append(len(changes))
        changes.add_missing(row, line)

    snapshot = iter(items)
    live = iter(store.stream(kind))
    s = next(snapshot, None)
    l = next(live, None)  # noqa: E741
    while s is not None and l is not None:
        if s[0] == l and (exact is None or exact(l)):  # equal rows have equal keys: unchanged
            unchanged += 1
            s = next(snapshot, None)
            l = next(live, None)  # noqa: E741
            continue
        ks, kl = key(s[0]), key(l)
        try:
            snap_first = ks < kl
            live_first = not snap_first and kl < ks
        except TypeError:  # the snapshot's keys are all text: this live key is not
            snap_first, live_first = False, True
        if snap_first:
            missing(ks, s[0], s[1])
            s = next(snapshot, None)
        elif live_first:
            differs(kl, None, None, l)
            l = next(live, None)  # noqa: E741
        else:
            differs(ks, s[0], s[1] if s[1] is not None else line_of(s[0]), l)
            s = next(snapshot, None)
            l = next(live, None)  # noqa: E741
    while s is not None:
        missing(key(s[0]), s[0], s[1])
        s = next(snapshot, None)
    while l is not None:
        differs(key(l), None, None, l)
        l = next(live, None)  # noqa: E741
    summary.unchanged = unchanged
    summary.snapshot = unchanged + summary.missing + summary.changed
    summary.live = unchanged + summary.extra + summary.changed
    return keyless, suspects
