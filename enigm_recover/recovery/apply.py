"""Apply a restore plan step by step: journaled, exactly once, verified honestly.

A restore works from the dry run that checked the whole payload just before:
its change list holds, in key order, every key a step may act on. A step
takes those changes in batches, re-reads the live rows of each batch (one
keyed query), decides each key again under the step's policies and the safety
rules, and writes the batch in the same transaction as its journal row. After
a crash (even SIGKILL), ``resume`` continues after the last committed batch;
keys after it are still as they were, so the end state is the same as without
the crash. A step's keys are read back after its writes to them and compared
with the snapshot's records (counts and a canonical digest): batch by batch
as a step started afresh goes (no later batch writes an earlier one's keys),
or after the whole step when it was resumed. A step is reported "verified"
only when that check finished and held.
"""

from __future__ import annotations

import hashlib
import logging
import operator
import secrets
import time
from bisect import bisect_right
from contextlib import closing
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import StrEnum
from itertools import islice
from operator import itemgetter
from typing import Any, Callable, Iterator

from enigm_recover.errors import PayloadIntegrityError, RestoreRefused, TargetError
from enigm_recover.progress import Progress, ProgressCallback, Stage, no_progress
from enigm_recover.recovery.assess import (
    MISSING,
    UNCHANGED,
    Assessment,
    Assessor,
    ChangeType,
    Row,
    device_account,
    orphan_assessment,
)
from enigm_recover.recovery.behind import Behind
from enigm_recover.recovery.change_list import ChangeChunk, PlainRun
from enigm_recover.recovery.diff import Change, DiffResult, snapshot_time_of
from enigm_recover.recovery.plan import Plan, Policy, Step, decide, require_in_snapshot
from enigm_recover.snapshot.records import VERBATIM_KINDS, parse_checked_line, row_line
from enigm_recover.snapshot.verify import VerifiedSnapshot
from enigm_recover.state.journal import DEFAULT_BATCH, Batch, RestoreRun, StepPosition
from enigm_recover.state.live import Unreadable, table_unreadable, table_unwritable, unreadable
from enigm_recover.state.model import DEVICE, IDENTITY, Kind
from enigm_recover.state.store import ACCOUNTS, READ_BACK, TargetStore

log = logging.getLogger(__name__)


class RestoreStepStatus(StrEnum):
    """How a plan step stands; "verified" only when its read-back check finished and held."""

    VERIFIED = "verified"
    NOT_VERIFIED = "not-verified"
    SKIPPED = "skipped"
    APPLIED = "applied"  # interrupted before its verification
    FAILED = "failed"


class RestoreStatus(StrEnum):
    COMPLETED = "completed"  # every step verified
    PARTIAL = "partial"


@dataclass
class StepOutcome:
    step: str
    status: RestoreStepStatus
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    verification: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:  # the journal keeps the status as text
        self.status = RestoreStepStatus(self.status)

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.step, "status": self.status, "inserted": self.inserted, "updated": self.updated,
                "deleted": self.deleted, "verification": self.verification}


@dataclass
class RestoreOutcome:
    run_id: str
    snapshot_id: str
    resumed: bool
    steps: list[StepOutcome]
    status: RestoreStatus

    def __post_init__(self) -> None:
        self.status = RestoreStatus(self.status)

    def as_dict(self) -> dict[str, Any]:
        return {"run": self.run_id, "snapshot": self.snapshot_id, "resumed": self.resumed, "status": self.status,
                "steps": [s.as_dict() for s in self.steps]}


Confirm = Callable[[Step], bool]


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Restorer:
    """Runs a plan against a store from ``checked``, the dry run of the same snapshot just before, which read
    and checked the whole payload (hash, records, counts, digests) before anything is written."""

    def __init__(self, verified: VerifiedSnapshot, store: TargetStore, plan: Plan, checked: DiffResult, *,
                 batch_size: int = DEFAULT_BATCH, progress: ProgressCallback = no_progress) -> None:
        if checked.snapshot_id != verified.manifest.id:
            raise ValueError("the dry run is of another snapshot")
        if checked.payload_sha256 != verified.manifest.payload_sha256:
            raise PayloadIntegrityError("the dry run did not confirm the payload's signed SHA-256: nothing was written")
        self.verified = verified
        self.store = store
        self.plan = plan
        self.checked = checked
        self.batch_size = batch_size
        self._applied_at = 0.0  # when the last step's writes ended: its verification's timing starts there
        self.progress = progress
        self.snapshot_time = snapshot_time_of(verified)

    # -- the run ---------------------------------------------------------------

    def open_run(self, resume: bool) -> tuple[RestoreRun, bool]:
        """The run to work on: a new one, or the interrupted one when resuming (same snapshot only)."""
        manifest = self.verified.manifest
        self.store.lock_restores()  # two restores, or two resumes, into one target never run at once
        current = self.store.unfinished_run()
        if current is not None:
            if not resume:
                raise RestoreRefused(f"an interrupted restore (run {current.run_id}, snapshot {current.snapshot_id}) "
                                     f"is in progress in {self.store.display}")
            if (current.snapshot_id, current.payload_sha256) != (manifest.id, manifest.payload_sha256):
                raise RestoreRefused(f"the interrupted restore in {self.store.display} is of snapshot "
                                     f"{current.snapshot_id}, not {manifest.id}")
            self.plan = Plan.from_json(current.plan)  # the plan the operator confirmed, not a new one
            self.check_tables()
            return current, True
        if resume:
            raise RestoreRefused(f"there is no interrupted restore to resume in {self.store.display}",
                                 "start the restore without --resume")
        self.check_tables()
        run = RestoreRun(secrets.token_hex(6), manifest.id, manifest.payload_sha256, self.plan.to_json(), _now())
        self.store.start_run(run)
        return run, False

    def check_tables(self) -> None:
        """Refuse, before anything is written, a plan with a step whose live table cannot be read as its kind
        (missing, a column missing or of another type) or cannot take the snapshot's records (a column the
        model does not know that must be given a value). A device step also reads the identities' ids."""
        problems: list[tuple[Step, Unreadable]] = []
        for step in self.plan.steps:
            table = self.store.live_table(step.kind)
            problems += [(step, u) for u in table_unreadable(step.kind, table) or table_unwritable(step.kind, table)]
            if step.kind is DEVICE:
                problems += [(step, u) for u in table_unreadable(IDENTITY, self.store.live_table(IDENTITY))
                             if u.column in (None, "account_id")]
        if problems:
            steps = list(dict.fromkeys(step.name for step, _ in problems))
            raise TargetError(f"cannot restore {', '.join(steps)} into {self.store.display}: "
                              + "; ".join(u.describe() for _, u in problems) + "; nothing was written",
                              "repair the live table first, or leave the step out (--step names the steps to run)")

    def run(self, *, resume: bool = False, confirm: Confirm = lambda step: True) -> RestoreOutcome:
        require_in_snapshot(self.plan, self.verified.manifest)  # before anything is written, the journal too
        run, resumed = self.open_run(resume)
        require_in_snapshot(self.plan, self.verified.manifest)  # a resumed run's own plan
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
            position, verification = self.apply_step(run.run_id, step, position)
            if verification is None:  # resumed: verified after its writes, with its journal as the store keeps it
                verification = self.verify_step(step, run.run_id)
            status = "verified" if verification["verified"] else "not-verified"
            log.info("restore step %s: %s (verification took %.3f s)", step.name, status,
                     time.perf_counter() - self._applied_at)
            self.store.record_step(run.run_id, step.name, status, verification)
            outcomes.append(_outcome(step, position, status, verification))
        status = "completed" if all(o.status == "verified" for o in outcomes) else "partial"
        self.store.finish_run(run.run_id, status)
        return RestoreOutcome(run.run_id, run.snapshot_id, resumed, outcomes, status)

    # -- one step --------------------------------------------------------------

    def _chunks(self, kind: Kind) -> Iterator[list[Change]]:
        """The kind's changes in key order, a batch at a time: only a batch of them is ever made from the dry
        run's compact change list at once."""
        for chunk in self.checked.changes.chunks_of_kind(kind.name, self.batch_size):
            yield chunk.changes()

    def _reassess(self, kind: Kind, chunk: list[Change], live_now: dict[tuple[Any, ...], Row],
                  store: TargetStore | None = None
                  ) -> Iterator[tuple[Change, Row | None, Row | None, Assessment, bytes | None]]:
        """Each change judged again against the live rows as they are now, with its snapshot line (read from
        the dry run's compressed store once). A record live still lacks is missing, as the dry run found it,
        without a second look; a device's account is still asked of the store (``store``, else the one
        written), for the whole chunk at once."""
        assess = Assessor(kind, self.snapshot_time)
        judged = []
        for change in chunk:
            line = change.snapshot_line
            snap = change.row if change.row is not None else parse_checked_line(kind, line) if line else None
            judged.append((change, snap, line))
        known: set[str] = set()
        if kind is DEVICE:
            known = (store or self.store).existing_accounts({device_account(snap, live_now.get(change.key))
                                                  for change, snap, _ in judged
                                                  if snap is not None or change.key in live_now})
        for change, snap, line in judged:
            live = live_now.get(change.key)
            if live is None:
                if snap is None:  # an extra record that is gone
                    yield change, None, None, UNCHANGED, line
                    continue
                verdict = MISSING
            else:
                verdict = assess(snap, live)
            if (kind is DEVICE and verdict.change in (ChangeType.MISSING, ChangeType.EXTRA)
                    and device_account(snap, live) not in known):
                verdict = orphan_assessment(verdict)
            yield change, snap, live, verdict, line

    def _still_missing(self, kind: Kind, step: Step, plain: PlainRun, live_now: dict[tuple[Any, ...], Row],
                       ahead: _AccountsAhead | None = None) -> bool:
        """Whether a run of plain missing records is judged now, record by record, exactly as the dry run
        found it: missing (live holds none of their keys), a device's account known to live (no orphan), and
        inserted (what ``decide`` makes of a missing record), each journaled with its checked line's hash
        (a verbatim kind's line is its canonical encoding). ``_insert_missing`` then writes the batch
        ``_reassess`` and ``decide`` would make, without a judgment per record. ``ahead``: the run's accounts
        looked up ahead (``_with_accounts``), used where that lookup still holds."""
        if live_now or kind.name not in VERBATIM_KINDS or decide(ChangeType.MISSING, False, step.policies) != "insert":
            return False
        if kind is DEVICE:
            if ahead is not None and ahead.holds(self.store):
                return ahead.found.result() >= ahead.wanted
            accounts = ahead.wanted if ahead is not None else _accounts_of(plain)
            return self.store.existing_accounts(accounts) >= accounts
        return True

    def apply_step(self, run_id: str, step: Step,
                   position: StepPosition) -> tuple[StepPosition, dict[str, Any] | None]:
        """Write the step's batches from ``position`` on. A step started afresh is verified as it goes (its
        verification is returned): each batch's keys are read back once the batch has committed (no later
        batch writes them), beside the rows it journaled; where the store has a second session to read them
        back on, that is done there while the next batch is written. A resumed step is verified after (None
        here)."""
        log.info("restore step %s: applying (policies %s)", step.name,
                 ", ".join(sorted(p.value for p in step.policies)))
        started = time.perf_counter()
        check, reader = None, None
        if position.batches == 0 and position.status is None:
            reader = self.store.reading_session(READ_BACK)
            check = _StepCheck(self, step, _ReadBack(reader or self.store, step.kind, iter(()), self.batch_size),
                               fresh=True, store=reader)
        with Behind(threaded=reader is not None) as behind:
            self._write_batches(run_id, step, position, check, behind)
        self._applied_at = time.perf_counter()
        log.debug("restore step %s: applying took %.3f s", step.name, self._applied_at - started)
        if check is None:
            return self.store.step_position(run_id, step.name), None
        total = self.checked.changes.count(step.kind.name)
        self.progress(Progress(Stage.VERIFY, total, total, "records", step.name))
        return self.store.step_position(run_id, step.name), check.result()

    def _write_batches(self, run_id: str, step: Step, position: StepPosition, check: _StepCheck | None,
                       behind: Behind) -> None:
        """``apply_step``'s writes, each batch handed to ``check`` (through ``behind``) once committed."""
        kind = step.kind
        total = self.checked.changes.count(kind.name)
        done = 0 if position.last_key is None else self.checked.changes.count_through(kind.name, position.last_key)
        number = position.batches
        chunks = self.checked.changes.chunks_of_kind(kind.name, self.batch_size, position.last_key)
        with closing(self._with_accounts(kind, chunks)) as ahead:
            for chunk, accounts in ahead:
                batch = self._write_batch(run_id, step, chunk, accounts, number + 1)
                if len(batch):
                    number += 1
                done += len(chunk)
                self.progress(Progress(Stage.RESTORE, done, total, "records", step.name))
                if check is not None:
                    behind.submit(check.add_written, chunk, batch)

    def _write_batch(self, run_id: str, step: Step, chunk: ChangeChunk, accounts: _AccountsAhead | None,
                     number: int) -> Batch:
        """Write ``chunk`` as batch ``number`` (nothing when it has nothing to write); ``accounts``: see
        ``_still_missing``."""
        kind = step.kind

        def build(live_now: dict[tuple[Any, ...], Row]) -> Batch:
            batch = Batch(step.name, number, kind, last_key=chunk.last_key)
            if chunk.plain is not None and self._still_missing(kind, step, chunk.plain, live_now, accounts):
                _insert_missing(batch, chunk.plain)
                return batch
            for change, snap, _live, verdict, line in self._reassess(kind, chunk.changes(), live_now):
                action = decide(verdict.change, verdict.protected, step.policies, verdict.unreadable is not None)
                if action == "insert":
                    batch.inserts.append(snap)  # type: ignore[arg-type]
                    batch.inserted += 1
                    batch.expected[change.key] = _snapshot_hash(kind, snap, line)
                elif action == "update":
                    batch.upserts.append(snap)  # type: ignore[arg-type]
                    batch.updated += 1
                    batch.expected[change.key] = _snapshot_hash(kind, snap, line)
                elif action == "delete":
                    batch.deletes.append(change.key)
            return batch

        # The live rows are read inside the batch's own transaction, locked until it commits.
        return self.store.apply_with(run_id, kind, chunk.keys, build)

    def _with_accounts(self, kind: Kind, chunks: Iterator[ChangeChunk]
                       ) -> Iterator[tuple[ChangeChunk, _AccountsAhead | None]]:
        """Each chunk, with (a device run of plain missing records, where the store has a session to spare)
        its accounts looked up there while the chunk before is written: such a chunk is made, and held, one
        chunk ahead. No batch of a device step writes an account."""
        session = self.store.reading_session(ACCOUNTS) if kind is DEVICE else None
        if session is None:
            yield from ((chunk, None) for chunk in chunks)
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="enigm-accounts") as lookups:
            held: list[tuple[ChangeChunk, _AccountsAhead | None]] = []
            try:
                for chunk in chunks:
                    accounts = None
                    if chunk.plain is not None:
                        wanted = _accounts_of(chunk.plain)
                        accounts = _AccountsAhead(self.store.commit_mark(), wanted,
                                                  lookups.submit(session.existing_accounts, wanted))
                    yield from held
                    held = [(chunk, accounts)]
                    if accounts is None:  # nothing to wait for: not held
                        yield held.pop()
                yield from held
            finally:
                lookups.shutdown(wait=True, cancel_futures=True)

    def verify_step(self, step: Step, run_id: str | None = None) -> dict[str, Any]:
        """Read the step's keys back and check what its policies promised (see ``_StepCheck``). With ``run_id``,
        every row the step wrote, as its journal says (batches committed before an interruption included),
        must also read back as written, and every key it deleted must be absent. The journal is read beside the
        change list, both in key order: a key the verification reads anyway is checked on that read; the
        others (written before an interruption, no longer a change) are read apart."""
        kind = step.kind
        read_back = _ReadBack(self.store, kind, self.store.written_rows(run_id, step.name), self.batch_size) \
            if run_id is not None else None
        check = _StepCheck(self, step, read_back)
        total, done = self.checked.changes.count(kind.name), 0
        for chunk in self._chunks(kind):
            check.add(chunk, self.store.rows_by_key(kind, [c.key for c in chunk]))
            done += len(chunk)
            self.progress(Progress(Stage.VERIFY, done, total, "records", step.name))
        return check.result()


@dataclass(frozen=True)
class _AccountsAhead:
    """A run of devices' accounts (``wanted``) and those of them live has (``found``), looked up on a session
    of their own before the batch's transaction began, with the write session's commit mark read just before
    that lookup."""

    mark: object | None
    wanted: set[str]
    found: Future[set[str]]

    def holds(self, store: TargetStore) -> bool:
        """Whether the lookup is what ``store``'s transaction would read now: no other session has committed
        since the mark (a store that keeps no mark locks no account in its transactions either)."""
        return self.mark is None or store.commit_mark() == self.mark


class _StepCheck:
    """A step's verification, chunk by chunk of its changes in key order: each key's live row, read after the
    step's writes to it, judged against the snapshot and the step's policies. The records that now equal the
    snapshot's are hashed from both sides (live rows re-encoded, snapshot lines as sealed). ``fresh``: a step
    started afresh, whose read-back holds only the batches this process wrote (see ``_as_snapshot``)."""

    def __init__(self, restorer: Restorer, step: Step, read_back: _ReadBack | None, *, fresh: bool = False,
                 store: TargetStore | None = None) -> None:
        self.restorer, self.step, self.read_back = restorer, step, read_back
        self.store = store or restorer.store  # where the rows are read back
        self.fresh = fresh and read_back is not None and step.kind.name in VERBATIM_KINDS
        self.numeric_columns = [itemgetter(i) for i, f in enumerate(step.kind.fields) if f.sql_type != "TEXT"]
        self.counts = {"equal": 0, "deleted": 0, "protected": 0, "changed_left": 0, "extra_left": 0, "missing": 0,
                       "unreadable": 0}
        self.unmet = {"missing": 0, "changed": 0, "extra": 0, "unreadable": 0}
        self.digests = _Digests()

    def committed(self, batch: Batch) -> None:
        """A batch this process has just committed: what it wrote is read back as it journaled it."""
        if self.read_back is not None and len(batch):
            self.read_back.take(batch)

    def add(self, chunk: list[Change], live_now: dict[tuple[Any, ...], Row]) -> None:
        """Judge ``chunk`` against ``live_now``, its keys' live rows as read after the writes."""
        if self.fresh:  # tried only where every change holds its snapshot row (a change kept whole holds none)
            snaps = [c.row for c in chunk]
            if None not in snaps and self._as_snapshot([c.key for c in chunk], snaps, [c.line for c in chunk],
                                                       live_now):
                return
        kind, counts, unmet, policies = self.step.kind, self.counts, self.unmet, self.step.policies
        encodings: dict[tuple[Any, ...], bytes | None] = {}  # live rows re-encoded, for the read-back
        residual = []  # keys not (yet) equal to the snapshot: judged in full, account checks included
        verbatim = kind.name in VERBATIM_KINDS
        for change in chunk:
            live, line = live_now.get(change.key), change.snapshot_line
            if live is not None and line is not None:
                if verbatim and (snap_row := change.row) is not None and _identical(live, snap_row):
                    encoded: bytes | None = line  # the same values of the same types: the line is their encoding
                else:
                    try:
                        encoded = row_line(kind, live)
                    except (TypeError, ValueError):  # a live value JSON cannot hold (bytes, NaN): not equal
                        encoded = None
                encodings[change.key] = encoded
                # Equal bytes mean equal records: the line was checked against the model, so the live row
                # holds the model's values in the model's types. A sealed line may escape a settings value
                # otherwise than the encoder: compared by value (a row the model can read, so == is exact),
                # and hashed in the canonical encoding on both sides.
                if encoded == line:
                    canonical = line
                elif (encoded is not None and unreadable(kind, live) is None
                      and (snap := parse_checked_line(kind, line)) == live):
                    canonical = row_line(kind, snap)
                else:
                    residual.append(change)
                    continue
                counts["equal"] += 1
                self.digests.update(encoded, canonical)  # type: ignore[arg-type]
                continue
            residual.append(change)
        for change, _snap, _live, verdict, _line in self.restorer._reassess(kind, residual, live_now, self.store):
            if verdict.change is None:  # equal keys were counted above: this is an extra record now gone
                counts["deleted"] += 1
            elif verdict.unreadable is not None:
                # Kept unless the policies said to replace it; a record the dry run found missing must now
                # read back as the snapshot's (a column that mangles what is written breaks that promise).
                counts["unreadable"] += 1
                if (change.change is ChangeType.MISSING
                        or decide(verdict.change, verdict.protected, policies, True) is not None):
                    unmet["unreadable"] += 1
                else:
                    counts["protected"] += 1
            elif verdict.protected:
                counts["protected"] += 1
            elif verdict.change is ChangeType.MISSING:
                counts["missing"] += 1
                unmet["missing"] += 1
            elif verdict.change is ChangeType.CHANGED:
                counts["changed_left"] += 1
                unmet["changed"] += Policy.OVERWRITE_CHANGED in policies
            else:
                counts["extra_left"] += 1
                unmet["extra"] += Policy.DELETE_EXTRA in policies
        if self.read_back is not None:
            self.read_back.up_to(chunk[-1].key, live_now, encodings, {c.key for c in chunk})

    def add_written(self, chunk: ChangeChunk, batch: Batch) -> None:
        """A chunk this process has just written as ``batch`` (committed): ``committed``, then ``add_chunk``."""
        self.committed(batch)
        self.add_chunk(chunk, batch)

    def add_chunk(self, chunk: ChangeChunk, batch: Batch) -> None:
        """``add`` of a chunk just written as ``batch``, its keys read back now. A run of plain missing records
        is judged as one when it reads back as the values written: told by the store where it can (the rows
        it has just inserted, still staged), else compared here with the rows read back."""
        store, kind, plain = self.store, self.step.kind, chunk.plain
        if plain is None or not self.fresh:
            self.add(chunk.changes(), store.rows_by_key(kind, chunk.keys))
            return
        if (batch.inserts is plain.rows and store.identical_rows(kind, plain.rows) == len(plain.rows)
                and self._count_as_snapshot(plain.keys, plain.lines)):
            return
        live_now = store.rows_by_key(kind, plain.keys)
        if not self._as_snapshot(plain.keys, plain.rows, plain.lines, live_now):
            self.add(chunk.changes(), live_now)

    def _as_snapshot(self, keys: list[tuple[Any, ...]], snaps: list[Row | None], lines: list[bytes | None],
                     live_now: dict[tuple[Any, ...], Row]) -> bool:
        """The common case after a restore, judged for the whole chunk at once: every key reads back with the
        very values, of the very types, of its snapshot record (``_count_as_snapshot``). False (nothing
        counted) otherwise."""
        if None in lines or None in snaps:
            return False
        live = list(map(live_now.get, keys))
        if live != snaps:
            return False
        # Only a str equals a str; a number may equal one of another type (1.0, Decimal(1), True == 1).
        for column in self.numeric_columns:
            if list(map(type, map(column, live))) != list(map(type, map(column, snaps))):  # type: ignore[arg-type]
                return False
        return self._count_as_snapshot(keys, lines)  # type: ignore[arg-type]

    def _count_as_snapshot(self, keys: list[tuple[Any, ...]], lines: list[bytes]) -> bool:
        """Count a chunk whose every key reads back with the values and types of its snapshot record: each is
        equal, its line the encoding of both sides (as ``add`` finds one by one), and each row the chunk's
        batch journaled reads back as written (its journaled hash is that of the same line). False (nothing
        counted) when the journal holds a key of the chunk otherwise (deleted, or not among ``keys``)."""
        assert self.read_back is not None
        if not self.read_back.as_snapshot_up_to(keys[-1], set(keys)):
            return False
        self.counts["equal"] += len(keys)
        joined = b"".join(lines)
        self.digests.update(joined, joined)
        return True

    def result(self) -> dict[str, Any]:
        counts, unmet = dict(self.counts), dict(self.unmet)
        if self.read_back is not None:
            counts["written"], unmet["written"] = self.read_back.finish()
        live, snapshot = self.digests.live_and_snapshot()
        verified = not any(unmet.values()) and live.digest() == snapshot.digest()
        return {"verified": verified, "unmet": unmet, **counts, "digest": live.hexdigest()}


class _Digests:
    """A verification's two SHA-256 digests, of the live records' lines and of the snapshot's, fed in step.
    While both have been fed the same bytes (the common case) they are one digest, computed once; the first
    difference makes them two."""

    def __init__(self) -> None:
        self._live = hashlib.sha256()
        self._snapshot: Any = None  # the snapshot's digest once it differs from the live one

    def update(self, live: bytes, snapshot: bytes) -> None:
        if self._snapshot is None:
            if live == snapshot:
                self._live.update(live)
                return
            self._snapshot = self._live.copy()
        self._live.update(live)
        self._snapshot.update(snapshot)

    def live_and_snapshot(self) -> tuple[Any, Any]:
        return self._live, self._live if self._snapshot is None else self._snapshot


class _ReadBack:
    """Checks that every row a step's journal says it wrote reads back as written (the SHA-256 of its
    canonical line), and that every key it deleted is absent, taking the journal's batches in key order."""

    def __init__(self, store: TargetStore, kind: Kind,
                 batches: Iterator[tuple[list[tuple[tuple[Any, ...], str]], list[tuple[Any, ...]]]],
                 chunk: int) -> None:
        self.store, self.kind, self.chunk = store, kind, chunk
        self.batches = batches
        self.written: list[tuple[tuple[Any, ...], str]] = []  # journaled, not yet checked
        self.deleted: list[tuple[Any, ...]] = []
        self.apart_written: list[tuple[tuple[Any, ...], str]] = []  # keys the verification does not read
        self.apart_deleted: list[tuple[Any, ...]] = []
        self.more = True
        self.checked = 0
        self.differ = 0

    def take(self, batch: Batch) -> None:
        """A batch this process has just committed: its rows and deletions, as it journaled them."""
        self.written += batch.expected.items()
        self.deleted += batch.deletes

    def as_snapshot_up_to(self, last: tuple[Any, ...], read: set[tuple[Any, ...]]) -> bool:
        """Only for batches this process wrote (``take``), whose rows' hashes are those of their snapshot lines:
        the journaled keys up to ``last``, all in ``read`` and each read back as its snapshot line, are checked.
        False (nothing done) when a key up to ``last`` was deleted or is not in ``read``."""
        # Both lists are in key order: the batches come in key order, and each journals its keys in order.
        if self.deleted and self.deleted[0] <= last:
            return False
        upto = bisect_right(self.written, last, key=itemgetter(0))
        if not read.issuperset(map(itemgetter(0), islice(self.written, upto))):
            return False
        del self.written[:upto]
        self.checked += upto
        return True

    def _pull_to(self, last: tuple[Any, ...] | None) -> None:
        """Journaled batches until one ends after ``last`` (all of them when ``last`` is None)."""
        while self.more:
            tail = [k for k, _ in self.written[-1:]] + self.deleted[-1:]
            if last is not None and tail and max(tail) > last:
                return
            batch = next(self.batches, None)
            if batch is None:
                self.more = False
                return
            self.written += batch[0]
            self.deleted += batch[1]

    def up_to(self, last: tuple[Any, ...], live: dict[tuple[Any, ...], Row],
              encodings: dict[tuple[Any, ...], bytes | None], read: set[tuple[Any, ...]]) -> None:
        """Check the journaled keys up to ``last``: those in ``read`` against ``live`` (the rows read for them
        now, ``encodings`` their canonical lines where computed), the others apart."""
        self._pull_to(last)
        kind = self.kind
        keep_w: list[tuple[tuple[Any, ...], str]] = []
        for key, expected in self.written:
            if key > last:
                keep_w.append((key, expected))
            elif key in read:
                row = live.get(key)
                if row is None:
                    self.differ += 1
                else:
                    encoded = encodings.get(key)
                    got = hashlib.sha256(encoded).hexdigest() if encoded is not None else _line_hash(kind, row)
                    self.differ += got != expected
                self.checked += 1
            else:
                self.apart_written.append((key, expected))
        keep_d: list[tuple[Any, ...]] = []
        for key in self.deleted:
            if key > last:
                keep_d.append(key)
            elif key in read:
                self.differ += key in live
                self.checked += 1
            else:
                self.apart_deleted.append(key)
        self.written, self.deleted = keep_w, keep_d
        if len(self.apart_written) + len(self.apart_deleted) >= self.chunk:
            self._check_apart()

    def _check_apart(self) -> None:
        written, deleted = self.apart_written, self.apart_deleted
        self.apart_written, self.apart_deleted = [], []
        for start in range(0, max(len(written), len(deleted)), self.chunk):
            w, d = written[start:start + self.chunk], deleted[start:start + self.chunk]
            live = self.store.rows_by_key(self.kind, [key for key, _ in w] + d)
            for key, expected in w:
                row = live.get(key)
                self.differ += row is None or _line_hash(self.kind, row) != expected
            self.differ += sum(key in live for key in d)
            self.checked += len(w) + len(d)

    def finish(self) -> tuple[int, int]:
        """(keys checked, keys that do not read back as the step's journal says it left them)."""
        self._pull_to(None)
        self.apart_written += self.written
        self.apart_deleted += self.deleted
        self.written, self.deleted = [], []
        self._check_apart()
        return self.checked, self.differ


def _identical(live: Row, snap: Row) -> bool:
    """The same values of the same types (``==`` alone takes 1.0 for 1; a drifted column may hold the one)."""
    return live == snap and all(map(operator.is_, map(type, live), map(type, snap)))


def _accounts_of(plain: PlainRun) -> set[str]:
    """The accounts of a run of devices."""
    return set(map(itemgetter(DEVICE.position("account_id")), plain.rows))


def _insert_missing(batch: Batch, plain: PlainRun) -> None:
    """``batch`` inserts the run's records, each journaled with its line's hash (see ``_still_missing``)."""
    batch.inserts = plain.rows  # the very list: a store that staged it can tell how it reads back
    batch.inserted = len(plain.rows)
    batch.expected = dict(zip(plain.keys, [hashlib.sha256(line).hexdigest() for line in plain.lines]))


def _snapshot_hash(kind: Kind, snap: Row, line: bytes | None) -> str:
    """``_line_hash`` of a snapshot record, from its checked line where that is already canonical."""
    if line is not None and kind.name in VERBATIM_KINDS:
        return hashlib.sha256(line).hexdigest()
    return _line_hash(kind, snap)


def _line_hash(kind: Kind, row: Row) -> str:
    """The SHA-256 of a row's canonical line (a live value of a type the model does not have: no line)."""
    try:
        return hashlib.sha256(row_line(kind, row)).hexdigest()
    except TypeError:
        return ""


def _outcome(step: Step, position: StepPosition, status: str, verification: dict[str, Any] | None = None) -> StepOutcome:
    return StepOutcome(step.name, status, position.inserted, position.updated, position.deleted,
                       verification if verification is not None else position.result)
