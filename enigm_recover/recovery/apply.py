"""Apply a restore plan step by step: journaled, exactly once, verified honestly.

Each step merges the snapshot's rows of its kind with the live rows, decides
each key under the step's policies and the safety rules, and writes batches.
A batch commits in the same transaction as its journal row, so after a crash
(even SIGKILL) ``resume`` continues after the last committed batch: keys up to
its position are skipped, and keys after it are still as they were, so the end
state is the same as without the crash. After a step, a verification pass
re-reads live and checks what the policies promised; a step is reported
"verified" only when that pass finished and held.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from enigm_recover.errors import RestoreRefused
from enigm_recover.progress import Progress, ProgressCallback, no_progress
from enigm_recover.quorum.recovery_key import RecoveryIdentity
from enigm_recover.recovery.assess import Assessor, ChangeType, merge
from enigm_recover.recovery.diff import DiffResult, account_lookup, snapshot_time_of
from enigm_recover.recovery.plan import Plan, Policy, Step, decide
from enigm_recover.recovery.snapshot_rows import AccountIndex, rows_by_kind
from enigm_recover.snapshot.records import canonical_line
from enigm_recover.snapshot.verify import VerifiedSnapshot
from enigm_recover.state.journal import Batch, RestoreRun, StepPosition
from enigm_recover.state.model import IDENTITY, Kind
from enigm_recover.state.store import TargetStore

DEFAULT_BATCH = 5000


@dataclass
class StepOutcome:
    step: str
    status: str  # verified | not-verified | skipped | applied (interrupted before verification)
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    verification: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.step, "status": self.status, "inserted": self.inserted, "updated": self.updated,
                "deleted": self.deleted, "verification": self.verification}


@dataclass
class RestoreOutcome:
    run_id: str
    snapshot_id: str
    resumed: bool
    steps: list[StepOutcome]
    status: str  # completed | partial

    def as_dict(self) -> dict[str, Any]:
        return {"run": self.run_id, "snapshot": self.snapshot_id, "resumed": self.resumed, "status": self.status,
                "steps": [s.as_dict() for s in self.steps]}


Confirm = Callable[[Step], bool]


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Restorer:
    """Runs a plan against a store. ``checked`` is the dry run of the same snapshot: it read and checked
    the whole payload (hash, records, counts, digests), which must happen before any batch is written."""

    def __init__(self, verified: VerifiedSnapshot, identity: RecoveryIdentity, store: TargetStore, plan: Plan,
                 checked: DiffResult, *, batch_size: int = DEFAULT_BATCH,
                 progress: ProgressCallback = no_progress) -> None:
        if checked.snapshot_id != verified.manifest.id:
            raise ValueError("the dry run is of another snapshot")
        self.verified = verified
        self.identity = identity
        self.store = store
        self.plan = plan
        self.batch_size = batch_size
        self.progress = progress
        self.snapshot_time = snapshot_time_of(verified)

    # -- the run ---------------------------------------------------------------

    def open_run(self, resume: bool) -> tuple[RestoreRun, bool]:
        """The run to work on: a new one, or the interrupted one when resuming (same snapshot only)."""
        manifest = self.verified.manifest
        current = self.store.unfinished_run()
        if current is not None:
            if not resume:
                raise RestoreRefused(f"an interrupted restore (run {current.run_id}, snapshot {current.snapshot_id}) "
                                     f"is in progress in {self.store.display}")
            if (current.snapshot_id, current.payload_sha256) != (manifest.id, manifest.payload_sha256):
                raise RestoreRefused(f"the interrupted restore in {self.store.display} is of snapshot "
                                     f"{current.snapshot_id}, not {manifest.id}")
            self.plan = Plan.from_json(current.plan)  # the plan the operator confirmed, not a new one
            return current, True
        if resume:
            raise RestoreRefused(f"there is no interrupted restore to resume in {self.store.display}",
                                 "start the restore without --resume")
        run = RestoreRun(secrets.token_hex(6), manifest.id, manifest.payload_sha256, self.plan.to_json(), _now())
        self.store.start_run(run)
        return run, False

    def run(self, *, resume: bool = False, confirm: Confirm = lambda step: True) -> RestoreOutcome:
        run, resumed = self.open_run(resume)
        outcomes = []
        for step in self.plan.steps:
            position = self.store.step_position(run.run_id, step.name)
            if position.status in ("verified", "not-verified", "skipped"):
                outcomes.append(_outcome(step, position, position.status))
                continue
            if position.batches == 0 and position.status is None and not confirm(step):
                self.store.record_step(run.run_id, step.name, "skipped", {})
                outcomes.append(StepOutcome(step.name, "skipped"))
                continue
            position = self.apply_step(run.run_id, step, position)
            verification = self.verify_step(step)
            status = "verified" if verification["verified"] else "not-verified"
            self.store.record_step(run.run_id, step.name, status, verification)
            outcomes.append(_outcome(step, position, status, verification))
        status = "completed" if all(o.status == "verified" for o in outcomes) else "partial"
        self.store.finish_run(run.run_id, status)
        return RestoreOutcome(run.run_id, run.snapshot_id, resumed, outcomes, status)

    # -- one step --------------------------------------------------------------

    def _step_rows(self, kind: Kind, accounts: AccountIndex) -> Any:
        """The snapshot's rows of ``kind``, reading (and checking) the whole payload around them."""
        for each, rows in rows_by_kind(self.verified, self.identity):
            if each is IDENTITY:
                rows = accounts.collect(rows)
            if each is kind:
                yield from rows
            else:
                for _ in rows:
                    pass

    def apply_step(self, run_id: str, step: Step, position: StepPosition) -> StepPosition:
        kind = step.kind
        accounts = AccountIndex()
        assess = Assessor(kind, self.snapshot_time, account_lookup(accounts, self.store))
        start_after = position.last_key
        batch = Batch(step.name, position.batches + 1, kind, last_key=())
        done = 0
        for key, snap, live in merge(kind, self._step_rows(kind, accounts), self.store.stream(kind)):
            if start_after is not None and key <= start_after:
                continue
            verdict = assess(snap, live)
            action = decide(verdict.change, verdict.protected, step.policies)
            if action == "insert" or action == "update":
                batch.upserts.append(snap)  # type: ignore[arg-type]
                if action == "insert":
                    batch.inserted += 1
                else:
                    batch.updated += 1
            elif action == "delete":
                batch.deletes.append(key)
            batch.last_key = key
            if len(batch) >= self.batch_size:
                self.store.apply_batch(run_id, batch)
                done += len(batch)
                self.progress(Progress(f"restore {step.name}", done, None, "records"))
                batch = Batch(step.name, batch.number + 1, kind, last_key=())
        if len(batch):
            self.store.apply_batch(run_id, batch)
        return self.store.step_position(run_id, step.name)

    def verify_step(self, step: Step) -> dict[str, Any]:
        """Re-read live and check what the step's policies promised, with digests of both sides."""
        kind = step.kind
        accounts = AccountIndex()
        assess = Assessor(kind, self.snapshot_time, account_lookup(accounts, self.store))
        counts = {"missing": 0, "changed_left": 0, "extra_left": 0, "protected": 0, "equal": 0}
        unmet = {"missing": 0, "changed": 0, "extra": 0}
        live_digest, snapshot_digest = hashlib.sha256(), hashlib.sha256()
        for _key, snap, live in merge(kind, self._step_rows(kind, accounts), self.store.stream(kind)):
            verdict = assess(snap, live)
            if verdict.change is None:
                counts["equal"] += 1
                snapshot_digest.update(canonical_line(kind, dict(zip(kind.field_names, snap))))  # type: ignore[arg-type]
                live_digest.update(canonical_line(kind, dict(zip(kind.field_names, live))))  # type: ignore[arg-type]
                continue
            if verdict.protected:
                counts["protected"] += 1
                continue
            if verdict.change is ChangeType.MISSING:
                unmet["missing"] += 1
            elif verdict.change is ChangeType.CHANGED:
                counts["changed_left"] += 1
                unmet["changed"] += Policy.OVERWRITE_CHANGED in step.policies
            else:
                counts["extra_left"] += 1
                unmet["extra"] += Policy.DELETE_EXTRA in step.policies
        counts["missing"] = unmet["missing"]
        verified = not any(unmet.values()) and live_digest.digest() == snapshot_digest.digest()
        return {"verified": verified, "unmet": unmet, **counts, "digest": live_digest.hexdigest()}


def _outcome(step: Step, position: StepPosition, status: str, verification: dict[str, Any] | None = None) -> StepOutcome:
    return StepOutcome(step.name, status, position.inserted, position.updated, position.deleted,
                       verification if verification is not None else position.result)
