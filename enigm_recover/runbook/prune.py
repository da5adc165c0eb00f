"""Pruning a source: which snapshots a retention policy removes, and removing them with care.

Planning reads only what it can trust. The newest entry of the source (of the chosen environment) and
the newest signed snapshot of each environment are verified in full (signature, payload size and
SHA-256) before anything is decided: a broken newest must never make older snapshots look removable,
so a failure refuses the whole prune. The rules see only snapshots whose manifest is signed by a
trusted producer; an unreadable or untrusted entry is never removed (its dates cannot be believed).
Never removed either: the newest verified snapshot of each environment, and every snapshot that an
interrupted or paused run in the state folder refers to.

Applying removes each snapshot atomically as listing sees it (``sources.removal``), and records
each removal, before and after, in the audit log with the policy that decided it. Removals an earlier
prune began and could not finish are finished first.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import asyncssh

from enigm_recover.errors import EnigmError, PruneRefused, RunStateError
from enigm_recover.progress import ProgressCallback, no_progress
from enigm_recover.recovery.session import Recovery
from enigm_recover.runbook.executor import OPEN_STATUSES, STATE_FILE, RunState
from enigm_recover.snapshot import signature
from enigm_recover.snapshot.catalog import latest_candidate, newest_first
from enigm_recover.snapshot.clock import refuse_from_future
from enigm_recover.snapshot.retention import Candidate, Decision, RetentionPolicy, decide
from enigm_recover.snapshot.verify import verify_entry
from enigm_recover.sources.base import SnapshotEntry, SnapshotSource


class RemovableSource(SnapshotSource, Protocol):
    def remove(self, entry: SnapshotEntry) -> None: ...

    def finish_removal(self, snapshot_id: str) -> None: ...

    def tombstoned(self) -> list[str]: ...


@dataclass
class PrunePlan:
    source: str
    policy: RetentionPolicy
    environment: str | None
    decisions: list[Decision]  # verified snapshots: keep (with the rules) or remove
    left_alone: list[tuple[str, str]] = field(default_factory=list)  # (id, why prune does not touch it)
    unfinished: list[str] = field(default_factory=list)  # removals an earlier prune did not finish
    entries: dict[str, SnapshotEntry] = field(default_factory=dict)

    @property
    def to_remove(self) -> list[Decision]:
        return [d for d in self.decisions if not d.keep]

    @property
    def kept(self) -> list[Decision]:
        return [d for d in self.decisions if d.keep]

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "policy": self.policy.as_dict(), "environment": self.environment,
                "snapshots": [d.as_dict() for d in self.decisions],
                "keep": [d.id for d in self.kept], "remove": [d.id for d in self.to_remove],
                "left_alone": [{"id": i, "reason": why} for i, why in self.left_alone],
                "unfinished_removals": self.unfinished}


def referenced_by_runs(state_dir: Path) -> dict[str, str]:
    """Snapshot id -> why: every snapshot a paused or interrupted run refers to. A run state that cannot be
    read refuses the prune: the snapshot it needs is unknown."""
    out: dict[str, str] = {}
    for path in sorted((state_dir / "recoveries").glob(f"*/{STATE_FILE}")):
        try:
            state = RunState.from_file(path)
        except RunStateError as exc:
            raise PruneRefused(f"cannot tell which snapshot the run in {path.parent} refers to: {exc.message}; "
                               "nothing was removed",
                               "resume or abort that run (enigm-recover run RUNBOOK --abort REASON), then prune "
                               "again") from None
        if state.status in OPEN_STATUSES and state.snapshot:
            out.setdefault(state.snapshot, f"referenced by the {state.status} run {state.ceremony} "
                                           f"({state.runbook})")
    return out


def _of_environment(entries: list[SnapshotEntry], environment: str | None) -> list[SnapshotEntry]:
    """The entries of one environment; unreadable manifests always stay (they might belong to it)."""
    if environment is None:
        return list(entries)
    return [e for e in entries if e.manifest is None or e.manifest.environment == environment]


def plan_prune(source: RemovableSource, allowed: asyncssh.SSHAllowedSigners, policy: RetentionPolicy, *,
               environment: str | None = None, state_dir: Path, now: datetime | None = None,
               progress: ProgressCallback = no_progress) -> PrunePlan:
    """Decide, without removing anything. Raises ``PruneRefused`` when the decision cannot be trusted."""
    if policy.empty:
        raise PruneRefused("no retention rule given: every snapshot would be removed",
                           "give at least one of --keep-last, --keep-daily, --keep-weekly, --keep-monthly, "
                           "--keep-within, or a [retention] table in the config file")
    protected = referenced_by_runs(state_dir)
    listing = source.list()
    entries = _of_environment(listing.entries, environment)
    plan = PrunePlan(source.description, policy, environment, [], unfinished=source.tombstoned(),
                     entries={e.id: e for e in entries})
    newest = latest_candidate(listing, allowed, environment)  # refused names that may be manifests count too
    if newest is not None and newest.refusal is not None:
        raise PruneRefused(f"the newest entry {newest.name} is refused ({newest.refusal.message}): a broken newest "
                           "must never make older snapshots look removable; nothing was removed")
    if not entries:
        return plan
    trusted: list[SnapshotEntry] = []
    for entry in newest_first(entries):
        m = entry.manifest
        if m is None:
            plan.left_alone.append((entry.id, f"not verified (manifest unreadable: "
                                              f"{entry.error.message if entry.error else 'unknown'}): never removed"))
            continue
        verdict = signature.check(entry.manifest_bytes, entry.signature_bytes, m.producer, allowed)
        if not verdict.trusted:
            plan.left_alone.append((entry.id, f"not verified (signature {verdict.status.value}): never removed"))
            continue
        trusted.append(entry)
    newest_entries = [newest_first(entries)[0]]
    for env in sorted({e.manifest.environment for e in entries if e.manifest is not None}):
        newest_entries.append(newest_first([e for e in entries if e.manifest is not None
                                            and e.manifest.environment == env])[0])
    for entry in {e.id: e for e in newest_entries}.values():  # in order, each once
        refuse_from_future(entry.id, now)
        report, verified = verify_entry(source, entry, allowed, progress, hash_payload=True)
        if verified is None:
            where = f"of environment {entry.manifest.environment} " if entry.manifest else ""
            cause = report.error.message if report.error else "it did not verify"
            raise PruneRefused(f"the newest snapshot {where}{entry.id} does not verify ({cause}): a broken newest "
                               "must never make older snapshots look removable; nothing was removed")
        assert entry.manifest is not None
        protected.setdefault(entry.id, f"newest verified snapshot of environment {entry.manifest.environment}")
    candidates = []
    for entry in trusted:
        assert entry.manifest is not None
        candidates.append(Candidate(entry.id, entry.manifest.created_at, entry.manifest.environment))
    plan.decisions = decide(candidates, policy, protected)
    return plan


def apply_prune(source: RemovableSource, plan: PrunePlan, recovery: Recovery) -> list[str]:
    """Remove what the plan removes, each snapshot atomically, every removal in the audit log before and
    after. Returns the ids removed (unfinished removals included)."""
    policy = plan.policy.as_dict()
    recovery.record("prune-started", inputs={"source": plan.source, "policy": policy,
                                             "environment": plan.environment or "",
                                             "keep": len(plan.kept), "remove": len(plan.to_remove)})
    removed: list[str] = []
    for snapshot_id in plan.unfinished:
        recovery.record("snapshot-removal-finishing", inputs={"snapshot": snapshot_id, "source": plan.source})
        source.finish_removal(snapshot_id)
        recovery.record("snapshot-removed", inputs={"snapshot": snapshot_id, "source": plan.source,
                                                    "finished": True})
        removed.append(snapshot_id)
    for d in plan.to_remove:
        entry = plan.entries[d.id]
        facts = {"snapshot": d.id, "created_at": d.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                 "environment": d.environment, "source": plan.source, "policy": policy,
                 "manifest_sha256": hashlib.sha256(entry.manifest_bytes).hexdigest(),
                 "reason": f"kept by no rule of the policy ({plan.policy.describe()})"}
        recovery.record("snapshot-removing", inputs=facts)
        try:
            source.remove(entry)
        except EnigmError:
            recovery.record("snapshot-removed", inputs=facts, outcome="failed")
            raise
        recovery.record("snapshot-removed", inputs=facts)
        removed.append(d.id)
    return removed
