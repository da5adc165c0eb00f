"""The runbook executor: a UI-free state machine the CLI and the app both drive.

It knows the current step, what each step produced and what may come next.
Its progress (never anything secret) is written to ``run.toml`` in the
recovery's folder after every step, so an operator can quit and resume at the
same step; steps that changed the target also rely on the target's restore
journal. What cannot be persisted — the verified snapshot's handle, the
combined recovery key, the dry run — is rebuilt on resume: the snapshot is
verified again, and the custodians are asked for their shares again before
the next step that reads the payload (``needs_quorum``).

Every step works through one ``RecoveryPipeline`` per session: the source is
opened and listed once, and the target's restore lock is taken before the first
share is asked for whenever a restore step lies ahead.

A face drives it like this::

    ex = RunbookExecutor.start(runbook, settings)      # or .resume(...)
    while (step := ex.current) is not None:
        if ex.needs_quorum: gather shares through ex.quorum(), then continue
        show step.guidance (and ex.restore_preview() for a restore step)
        ex.run_current(Confirmation(...), progress)     # raises EnigmError; the run stays at the step
    ex.folder / "report.md"
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from enigm_recover import tomlfile
from enigm_recover.atomic import write_atomic
from enigm_recover.bounded import OWN_DOCUMENT, load_toml_file
from enigm_recover.errors import EnigmError, RunStateError, StepNotConfirmed, UsageError
from enigm_recover.logs import timed
from enigm_recover.paths import display_text, is_text
from enigm_recover.progress import ProgressCallback, no_progress
from enigm_recover.recovery.pipeline import RecoveryPipeline, source_opener
from enigm_recover.recovery.quorum_session import QuorumSession
from enigm_recover.recovery.session import Recovery
from enigm_recover.runbook.model import Action, Runbook, RunbookStep, RunStatus, StepStatus
from enigm_recover.snapshot.signature import Signer
from enigm_recover.snapshot.verify import Check
from enigm_recover.state.journal import DEFAULT_BATCH
from enigm_recover.state.url import safe_url, without_password

log = logging.getLogger(__name__)

STATE_FILE = "run.toml"
FORMAT = 1
OPEN_STATUSES = (RunStatus.IN_PROGRESS, RunStatus.PAUSED)
# Steps a person must confirm even without the two-person rule.
_ALWAYS_CONFIRMED = (Action.RESTORE, Action.CHECKPOINT, Action.SIGN_OFF)
_SKIPPABLE = (Action.RESTORE, Action.CHECKPOINT, Action.VERIFY_TARGET)


# What a step's handler returns: its status, a one-line summary, counts and details for the report.
Outcome = tuple[StepStatus, str, dict[str, int], dict[str, Any]]


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class RunSettings:
    """Where the run reads and writes, and who runs it."""

    source: str
    target: str
    allowed_signers: Path
    state_dir: Path
    cache_dir: Path
    operator: str
    ssh: Any = None  # SSHSettings for sftp:// sources
    signer: Signer | None = None
    batch_size: int = DEFAULT_BATCH  # records per restore transaction
    environment: str | None = None  # `latest` and prefixes resolve among this environment's snapshots
    target_environment: str | None = None  # the target's configured environment: another one's snapshot is refused
    allow_environment_mismatch: bool = False  # the operator's explicit override (recorded in the audit log)
    restore_pace: float = 0.0  # seconds to wait after each restored batch (a drill's --slow-restore)


@dataclass(frozen=True)
class Confirmation:
    """A person's answer to a step: who confirms, the second operator where the step needs one, and the
    choices a step takes (the snapshot for select-snapshot, a note for a checkpoint)."""

    operator: str
    second_operator: str | None = None
    snapshot: str | None = None
    note: str = ""


@dataclass
class StepResult:
    """What one step did; kept in run.toml (as plain values) and shown by every face."""

    step: str
    action: Action
    status: StepStatus
    summary: str
    started: str
    finished: str
    counts: dict[str, int] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)
    confirmed_by: list[str] = field(default_factory=list)
    # The timeline: when the step began waiting for people, and how long people and the machine took.
    waiting_since: str = ""
    human_seconds: float = 0.0
    machine_seconds: float = 0.0

    def __post_init__(self) -> None:  # from run.toml, the values come as text
        self.action, self.status = Action(self.action), StepStatus(self.status)

    @property
    def ok(self) -> bool:
        return self.status.ok

    @property
    def checks(self) -> list[Check]:
        """A verify-snapshot step's checks, in order (empty for other steps)."""
        return [Check(c["name"], c.get("ok"), c["detail"]) for c in self.detail.get("checks", [])]


@dataclass
class RunState:
    """What run.toml holds: enough to resume, nothing secret."""

    ceremony: str
    runbook: str
    runbook_path: str
    runbook_sha256: str
    source: str
    target: str
    allowed_signers: str
    status: RunStatus = RunStatus.IN_PROGRESS
    position: int = 0
    snapshot: str = ""
    restore_started: list[str] = field(default_factory=list)  # restore steps whose journal run began
    restored: dict[str, list[str]] = field(default_factory=dict)  # kind -> policies applied in this run
    results: list[dict[str, Any]] = field(default_factory=list)
    recovery: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:  # from run.toml, the status comes as text
        self.status = RunStatus(self.status)

    def to_toml(self) -> bytes:
        return tomlfile.dumps({"format": FORMAT, **asdict(self)})

    @classmethod
    def from_file(cls, path: Path) -> "RunState":
        doc = load_toml_file(path, OWN_DOCUMENT, "run state", RunStateError) or {}
        if doc.pop("format", None) != FORMAT:
            raise RunStateError(f"the run state {path} is of another format version")
        try:
            return cls(**doc)
        except TypeError as exc:
            raise RunStateError(f"the run state {path} is damaged: {exc}") from None


def _check_resumable(runbook: Runbook, settings: RunSettings) -> None:
    """run.toml keeps the run's paths as text, to resume with exactly them: a path that is not UTF-8 could
    not be written there, so it is refused before anything starts."""
    for what, value in (("the source", settings.source), ("the target", settings.target),
                        ("the allowed signers file", str(settings.allowed_signers)),
                        ("the runbook file", str(runbook.path))):
        if not is_text(value):
            raise UsageError(f"{what} {display_text(value)} is not UTF-8 text, and a run records it as text to "
                             "resume with it", "give a path in UTF-8 (for instance a symbolic link with a UTF-8 name)")


class RunbookExecutor:
    def __init__(self, runbook: Runbook, settings: RunSettings, recovery: Recovery, state: RunState) -> None:
        self.runbook = runbook
        self.settings = settings
        self.recovery = recovery
        self.state = state
        # This session's source, verified snapshot, lock, recovery key (memory only) and dry run.
        self.pipeline = RecoveryPipeline(recovery, open_source=source_opener(settings.source, settings.ssh,
                                                                               settings.cache_dir),
                                         source_name=settings.source, allowed_signers=settings.allowed_signers,
                                         target=settings.target)
        self.manifests: dict[str, str] = {}  # id -> manifest TOML, from the latest snapshots() listing
        self._clock = StepClock()

    # -- starting and resuming ---------------------------------------------------

    @classmethod
    def start(cls, runbook: Runbook, settings: RunSettings, ceremony: str | None = None) -> "RunbookExecutor":
        """A new run; ``ceremony`` fixes the ceremony id (tests and screenshots only; normally random)."""
        _check_resumable(runbook, settings)
        recovery = Recovery.open(settings.state_dir, f"run {runbook.name}", settings.operator, ceremony=ceremony)
        recovery.signer = settings.signer
        recovery.record("runbook-started", inputs={"runbook": runbook.name, "runbook_sha256": runbook.sha256,
                                                   "source": settings.source, "target": safe_url(settings.target)})
        # run.toml keeps the target without its password: a resume gets it again (see ``resume``)
        state = RunState(recovery.ceremony, runbook.name, str(runbook.path), runbook.sha256, settings.source,
                         without_password(settings.target), str(settings.allowed_signers))
        executor = cls(runbook, settings, recovery, state)
        executor._save()
        return executor

    @classmethod
    def resume(cls, runbook: Runbook, settings: RunSettings, ceremony: str | None = None, *,
               strict_target: bool = False) -> "RunbookExecutor":
        """Continue the newest open run of this runbook (or the run of ``ceremony``).

        The run's target was stored without its password: a ``settings.target`` naming the same target
        (with its password) is used as given; otherwise the stored one is, and libpq finds the password
        in PGPASSWORD, ~/.pgpass or a service entry. With ``strict_target``, a ``settings.target`` naming
        another target is refused rather than ignored."""
        folder, state = find_open_run(settings.state_dir, runbook.name, ceremony)
        if state.runbook_sha256 != runbook.sha256:
            raise RunStateError(f"runbook {runbook.name} changed since run {state.ceremony} started "
                                f"({runbook.path})", "restore the runbook as it was, or start a new run")
        given = settings.target
        if strict_target and given and without_password(given) != without_password(state.target):
            raise RunStateError(f"run {state.ceremony} restores into {safe_url(state.target)}, not into another "
                                f"target ({safe_url(given)})", "resume without --target, or give the run's own")
        settings.source = state.source
        settings.target = given if given and without_password(given) == without_password(state.target) \
            else state.target
        settings.allowed_signers = Path(state.allowed_signers)
        recovery = Recovery.reopen(folder, state.recovery)
        recovery.signer = settings.signer
        executor = cls(runbook, settings, recovery, state)
        executor.state.status = RunStatus.IN_PROGRESS
        executor._save()
        return executor

    # -- can a resumed run go on? -------------------------------------------------

    def check_can_continue(self, progress: ProgressCallback = no_progress) -> None:
        """Before any custodian is asked for a share again: the source answers, the run's snapshot is still
        there and verifies, and the target's restore lock is free (it is then held for this session).
        Raises the cause's error (the run stays paused); a face then offers ``choose_another_snapshot`` or
        ``abort``. The check is recorded in the audit log either way."""
        ahead = self.runbook.steps[self.state.position:]
        reads_source = any(s.action is Action.SELECT_SNAPSHOT or s.action.needs_key
                           or s.action is Action.VERIFY_SNAPSHOT for s in ahead)
        restores = any(s.action is Action.RESTORE for s in ahead)
        checked: list[str] = []
        try:
            with self._clock.machine():
                self._check_ahead(reads_source, restores, checked, progress)
        except EnigmError as exc:
            self.recovery.record("resume-check", outcome="failed",
                                 inputs={"passed": checked, "reason": exc.message})
            raise
        self.recovery.record("resume-check", inputs={"passed": checked})

    def _check_ahead(self, reads_source: bool, restores: bool, checked: list[str],
                     progress: ProgressCallback) -> None:
        """The checks in order; ``checked`` names those that passed (for the audit entry)."""
        if reads_source:
            self.pipeline.listing(refresh=True)
            checked.append("source")
            if self.state.snapshot:
                self._verified(progress)
                checked.append("snapshot")
        if restores:
            self.pipeline.writes = True
            self.pipeline.lock()
            checked.append("restore lock")

    def choose_another_snapshot(self) -> None:
        """Go back to the run's select-snapshot step (its later steps are done again with the new choice).
        Refused once a restore began in this run: its journal belongs to the snapshot it started with."""
        if self.state.restore_started:
            raise RunStateError(f"a restore from snapshot {self.state.snapshot} already began in run {self.ceremony}",
                                "abort the paused run and start a new one to use another snapshot")
        ids = [s.id for s in self.runbook.steps]
        select = next((i for i, s in enumerate(self.runbook.steps) if s.action is Action.SELECT_SNAPSHOT), None)
        if select is None:
            raise RunStateError(f"runbook {self.runbook.name} has no select-snapshot step",
                                "abort the paused run and start a new one")
        previous, later = self.state.snapshot, set(ids[select:])
        self.state.position, self.state.snapshot = select, ""
        self.state.results = [r for r in self.state.results if r.get("step") not in later]
        self.pipeline.close()
        self.pipeline.verified, self.pipeline.checked = None, None
        self.pipeline.forget_key()
        self.recovery.record("snapshot-unchosen", inputs={"snapshot": previous, "step": ids[select]})
        self._save()

    # -- where the run is --------------------------------------------------------

    @property
    def ceremony(self) -> str:
        return self.recovery.ceremony

    @property
    def folder(self) -> Path:
        return self.recovery.folder

    @property
    def current(self) -> RunbookStep | None:
        if self.state.status not in OPEN_STATUSES or self.state.position >= len(self.runbook.steps):
            return None
        return self.runbook.steps[self.state.position]

    @property
    def verified(self) -> Any:
        """The selected snapshot, if verified in this session."""
        return self.pipeline.verified

    @property
    def identity(self) -> Any:
        """The combined recovery key, in memory only, this session only."""
        return self.pipeline.identity

    @property
    def dry_run(self) -> Any:
        """This session's latest dry run (None once a restore changed the target)."""
        return self.pipeline.checked

    def close(self) -> None:
        """Let go of the source and the target, and with it the restore lock."""
        self.pipeline.close()

    @property
    def finished(self) -> bool:
        return self.current is None

    @property
    def results(self) -> list[StepResult]:
        return [StepResult(**r) for r in self.state.results]

    @property
    def needs_quorum(self) -> bool:
        """The current step reads the payload, and this session holds no recovery key (after a resume)."""
        step = self.current
        return step is not None and step.action.needs_key and self.identity is None

    def needs_confirmation(self, step: RunbookStep) -> bool:
        return step.two_person or step.action in _ALWAYS_CONFIRMED

    def can_skip(self, step: RunbookStep) -> bool:
        return step.action in _SKIPPABLE

    # -- what steps need from people -----------------------------------------------

    def snapshots(self, recipient_fingerprint: str | None = None, *, refresh: bool = False) -> list[Any]:
        """The source's snapshots, newest first, with signature and recipient status, for select-snapshot.
        With ``recipient_fingerprint`` (the configured recovery key's), each says whether it is sealed to it.
        Each listed manifest's text is kept in ``self.manifests`` (id -> TOML) for a details view. The run
        lists its source once; ``refresh`` (an operator's "list again") reads it afresh."""
        with self._clock.machine():
            summaries = self.pipeline.summaries(recipient_fingerprint, refresh=refresh)
        self.manifests = {e.id: e.manifest_bytes.decode("utf-8", "replace") for e in self.pipeline.listing().entries
                          if e.manifest_bytes}
        return summaries

    def quorum(self) -> QuorumSession:
        """The share entry for this step (or for the key a resumed run needs again). With a restore step
        ahead, the target's restore lock is taken first (RestoreRefused while another restore holds it)."""
        self.pipeline.writes = any(s.action is Action.RESTORE for s in self.runbook.steps[self.state.position:])
        return self.pipeline.quorum(self.recovery.facts.get("recipient_fingerprint"))

    @property
    def quorum_open(self) -> bool:
        """The share entry is open: ``quorum()`` returns at once, without taking the lock."""
        return self.pipeline.quorum_open

    def restart_quorum(self) -> QuorumSession:
        """Discard the shares entered so far (e.g. a card turned out wrong) and start the entry again."""
        return self.pipeline.restart_quorum(self.recovery.facts.get("recipient_fingerprint"))

    def combine(self, passphrase: str = "") -> str:
        """Combine the entered shares into the recovery key (kept in memory); returns its fingerprint."""
        self.quorum()
        with self._clock.machine():
            return self.pipeline.combine(passphrase).fingerprint

    def restore_preview(self, progress: ProgressCallback = no_progress) -> list[tuple[Any, Any]]:
        """For a restore step: each plan step with what it would insert, overwrite, delete and keep."""
        from enigm_recover.recovery.plan import preview

        step = self._expect(Action.RESTORE)
        plan = self._plan(step)
        with self._clock.machine():
            result = self._dry_run_for(step, progress)
        return [(s, preview(s, result)) for s in plan.steps]

    # -- doing the current step ------------------------------------------------------

    def run_current(self, confirmation: Confirmation | None = None,
                    progress: ProgressCallback = no_progress) -> StepResult:
        """Carry out the current step. On an error the run stays at this step (resume retries it)."""
        step = self.current
        if step is None:
            raise RunStateError("the run has no step left", "see the report")
        confirmed_by = self._check_confirmation(step, confirmation)
        started = _now()
        log.info("runbook %s: step %s (%s)", self.runbook.name, step.id, step.action.value)
        try:
            with timed(log, f"step {step.id}"), self._clock.machine():
                status, summary, counts, detail = self._perform(step, confirmation, progress)
        except EnigmError as exc:
            self.recovery.record("step-failed", inputs={"step": step.id, "reason": exc.message}, outcome="failed")
            self._save()
            raise
        return self._finish(step, StepResult(step.id, step.action, status, summary, started, _now(), counts,
                                             detail, confirmed_by, *self._clock.lap()))

    def skip_current(self, operator: str, reason: str) -> StepResult:
        """Leave a restore, checkpoint or target verification undone (the safe direction: one operator
        may decide it); the report says so and the run ends partially completed."""
        step = self.current
        if step is None or not self.can_skip(step):
            raise UsageError(f"step {step.id if step else '?'} cannot be skipped")
        now = _now()
        return self._finish(step, StepResult(step.id, step.action, StepStatus.SKIPPED, f"skipped: {reason}", now, now,
                                             {}, {"reason": reason}, [operator], *self._clock.lap()))

    def pause(self, reason: str = "the operator quit") -> Path:
        """Stop here; ``resume`` continues at the same step."""
        if self.state.status in OPEN_STATUSES:
            self.state.status = RunStatus.PAUSED
            where = self.current.id if self.current else "the end"
            self.recovery.pause(f"paused at step {where}: {reason}")
            self._save()
        self.pipeline.forget_key()
        self.close()
        return self.folder

    def abort(self, reason: str) -> Path:
        """End the run for good, saying where and why."""
        where = self.current.id if self.current else "the end"
        self.state.status = RunStatus.ABORTED
        self.recovery.close(RunStatus.ABORTED, f"aborted at step {where}: {reason}")
        self._save()
        self.close()
        return self.folder

    @property
    def status(self) -> RunStatus:
        return self.state.status

    # -- internals -----------------------------------------------------------------------

    def _check_confirmation(self, step: RunbookStep, confirmation: Confirmation | None) -> list[str]:
        if not self.needs_confirmation(step):
            return [confirmation.operator if confirmation else self.settings.operator]
        if confirmation is None or not confirmation.operator.strip():
            raise StepNotConfirmed(f"step {step.id} ({step.title}) needs an operator's confirmation")
        names = [confirmation.operator.strip()]
        if step.two_person:
            second = (confirmation.second_operator or "").strip()
            if not second or second.casefold() == names[0].casefold():
                self.recovery.record("two-person-rule-unmet", inputs={"step": step.id, "operator": names[0]},
                                     outcome="refused")
                raise StepNotConfirmed(f"step {step.id} ({step.title}) needs a second operator, other than "
                                       f"{names[0]}, to confirm")
            names.append(second)
        self.recovery.operators.extend(n for n in names if n not in self.recovery.operators)
        self.recovery.record("step-confirmed", inputs={"step": step.id, "confirmed_by": names,
                                                       "note": confirmation.note})
        return names

    def _finish(self, step: RunbookStep, result: StepResult) -> StepResult:
        self.recovery.record(step.action.value, step=step.id, title=step.title, outcome=result.status,
                             counts=result.counts, started=result.started, detail=result.summary,
                             inputs={"confirmed_by": result.confirmed_by, **_audit_inputs(result.detail)},
                             timing={"waiting_since": result.waiting_since, "human_seconds": result.human_seconds,
                                     "machine_seconds": result.machine_seconds,
                                     "confirmed_by": result.confirmed_by})
        self.state.results.append({**asdict(result), "action": result.action.value, "status": result.status.value})
        self.state.position += 1
        if self.state.position >= len(self.runbook.steps):
            self._close_finished()
        self._save()
        return result

    def _close_finished(self) -> None:
        unmet = [r.step for r in self.results if not r.ok]
        self.recovery.audit.current_step = None
        self.state.status = RunStatus.COMPLETED if not unmet else RunStatus.PARTIALLY_COMPLETED
        self.recovery.close(self.state.status, f"not done or not verified: {', '.join(unmet)}" if unmet else "")
        self.close()

    def _save(self) -> None:
        self.recovery.audit.current_step = self.current.id if self.current is not None else None
        self.state.recovery = self.recovery.to_state()
        write_atomic(self.folder / STATE_FILE, self.state.to_toml(), mode=0o600, overwrite=True)

    def _expect(self, action: Action) -> RunbookStep:
        step = self.current
        if step is None or step.action is not action:
            raise UsageError(f"the current step is not a {action.value} step")
        return step

    def _verified(self, progress: ProgressCallback) -> Any:
        """The selected snapshot, verified in this session (again, after a resume)."""
        if self.verified is None:
            if not self.state.snapshot:
                raise UsageError("no snapshot selected yet")
            report, verified = self.pipeline.verify(self.state.snapshot, progress, hash_payload=False, screened=False)
            if verified is None:  # the SHA-256 is checked again while decrypting
                raise report.error
            self.recovery.record("snapshot-reverified", inputs={"snapshot": verified.manifest.id})
        return self.verified

    def _plan(self, step: RunbookStep) -> Any:
        from enigm_recover.recovery.plan import make_plan

        return make_plan(step.policies, step.kinds)

    def _diff(self, kinds: tuple[str, ...], progress: ProgressCallback) -> Any:
        self._verified(progress)
        return self.pipeline.diff(kinds, progress)

    def _dry_run_for(self, step: RunbookStep, progress: ProgressCallback) -> Any:
        """This session's dry run when it covers the step's kinds; otherwise a fresh one."""
        if self.pipeline.covered(step.kinds):
            return self.dry_run
        self._verified(progress)
        return self.pipeline.dry_run(step.kinds, progress)

    def _perform(self, step: RunbookStep, confirmation: Confirmation | None,
                 progress: ProgressCallback) -> Outcome:
        handler: Callable[..., Outcome] = getattr(
            self, "_do_" + step.action.value.replace("-", "_"))
        return handler(step, confirmation, progress)

    def _do_select_snapshot(self, step: RunbookStep, confirmation: Confirmation | None,
                            progress: ProgressCallback) -> Outcome:
        ref = (confirmation.snapshot if confirmation and confirmation.snapshot else None) or step.snapshot
        if ref == "ask":
            raise UsageError(f"step {step.id} asks the operator to choose a snapshot", "give its id")
        environment = self.settings.environment or (self.settings.target_environment if ref == "latest" else None)
        entry = self.pipeline.select(ref, environment)
        self.state.snapshot = entry.id
        return StepStatus.DONE, f"chose snapshot {entry.id}", {}, {"snapshot": entry.id, "asked_for": ref}

    def _do_verify_snapshot(self, step: RunbookStep, confirmation: Confirmation | None,
                            progress: ProgressCallback) -> Outcome:
        if not self.state.snapshot:
            raise UsageError("no snapshot selected yet")
        report, verified = self.pipeline.verify(self.state.snapshot, progress, hash_payload=True, screened=False)
        checks = [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in report.checks]
        if verified is None:
            raise report.error
        self.recovery.snapshot(verified.manifest, self.settings.source)
        return (StepStatus.DONE, f"snapshot {verified.manifest.id} verified", dict(verified.manifest.counts),
                {"snapshot": verified.manifest.id, "checks": checks})

    def _do_gather_quorum(self, step: RunbookStep, confirmation: Confirmation | None,
                          progress: ProgressCallback) -> Outcome:
        identity = self.pipeline.key()
        names = [r.custodian for r in self.quorum().entry.receipts]
        return (StepStatus.DONE, f"recovery key {identity.fingerprint} combined from {len(names)} shares",
                {"shares": len(names)}, {"custodians": names, "fingerprint": identity.fingerprint})

    def _do_dry_run(self, step: RunbookStep, confirmation: Confirmation | None,
                    progress: ProgressCallback) -> Outcome:
        self._verified(progress)
        self.pipeline.dry_run(step.kinds, progress)
        totals = self.dry_run.totals()
        findings = dict(self.dry_run.findings())
        self.recovery.findings.update(findings)
        summary = ", ".join(f"{n:,} {c}" for c, n in totals.items())
        return StepStatus.DONE, summary, totals, {"findings": findings,
                                         "kinds": {k: s.as_dict() for k, s in self.dry_run.kinds.items()}}

    def _do_restore(self, step: RunbookStep, confirmation: Confirmation | None,
                    progress: ProgressCallback) -> Outcome:
        from enigm_recover.recovery.apply import RestoreStepStatus

        from enigm_recover.recovery.environment import bind_environment
        from enigm_recover.recovery.plan import require_in_snapshot

        plan = self._plan(step)
        manifest = self._verified(progress).manifest
        require_in_snapshot(plan, manifest)
        bind_environment(self.recovery, manifest, self.settings.target, self.settings.target_environment,
                         self.settings.allow_environment_mismatch)
        self._dry_run_for(step, progress)
        resume = step.id in self.state.restore_started
        if not resume:
            self.state.restore_started.append(step.id)
            self._save()
        # The dry run is spent: the next step that needs one makes it afresh.
        if self.settings.restore_pace > 0:
            from enigm_recover.progress import paced

            progress = paced(progress, self.settings.restore_pace)
        outcome = self.pipeline.restore(plan, resume=resume, batch_size=self.settings.batch_size, progress=progress)
        for plan_step in plan.steps:
            self.state.restored[plan_step.kind.name] = sorted(p.value for p in plan_step.policies)
        counts = {k: sum(getattr(o, k) for o in outcome.steps) for k in ("inserted", "updated", "deleted")}
        counts["kept_by_safety_rules"] = sum(o.verification.get("protected", 0) for o in outcome.steps)
        counts["left_by_policy"] = sum(o.verification.get("changed_left", 0) + o.verification.get("extra_left", 0)
                                       for o in outcome.steps)
        failed = [o.step for o in outcome.steps if o.status is not RestoreStepStatus.VERIFIED]
        status = StepStatus.VERIFIED if not failed else StepStatus.NOT_VERIFIED
        summary = (f"inserted {counts['inserted']:,}, overwrote {counts['updated']:,}, deleted {counts['deleted']:,}; "
                   + ("verified" if not failed else f"NOT verified: {', '.join(failed)}"))
        return status, summary, counts, {"run": outcome.run_id, "resumed": outcome.resumed,
                                         "target": safe_url(self.settings.target), "policies": plan.as_dict(),
                                         "steps": [o.as_dict() for o in outcome.steps]}

    def _do_verify_target(self, step: RunbookStep, confirmation: Confirmation | None,
                          progress: ProgressCallback) -> Outcome:
        """A fresh dry run: what this run restored must now match the snapshot, safety findings aside."""
        from enigm_recover.recovery.plan import Policy, decide

        result = self._diff(step.kinds, progress)
        unmet: dict[str, int] = {}
        for kind in self.state.restored:  # a record only the snapshot has, without findings: always promised
            if missing := result.changes.plain_missing(kind):
                unmet[kind] = missing
        for change in result.changes.in_full():
            policies = self.state.restored.get(change.kind)
            if policies is None or change.protected:
                continue
            promised = decide(change.change, False, frozenset(Policy(p) for p in policies),
                              change.unreadable is not None) is not None  # an unreadable record: as chosen
            if promised:
                unmet[change.kind] = unmet.get(change.kind, 0) + 1
        for kind, summary in result.kinds.items():  # a live table that cannot be read verifies nothing
            if kind in self.state.restored and summary.findings.get("unreadable-live-table"):
                unmet[kind] = unmet.get(kind, 0) + summary.findings["unreadable-live-table"]
        kinds = {k: s.as_dict() for k, s in result.kinds.items()}
        if unmet:
            return (StepStatus.NOT_VERIFIED, "the target differs from the snapshot where this run restored: "
                    + ", ".join(f"{n:,} {k}" for k, n in unmet.items()), unmet, {"unmet": unmet, "kinds": kinds})
        left = sum(s.changed + s.extra + s.missing for s in result.kinds.values())
        return (StepStatus.VERIFIED, f"the target matches the snapshot for every restored kind; {left:,} differences left "
                            "by policy or safety rules", {"left": left}, {"kinds": kinds})

    def _do_checkpoint(self, step: RunbookStep, confirmation: Confirmation | None,
                       progress: ProgressCallback) -> Outcome:
        note = confirmation.note if confirmation else ""
        return StepStatus.DONE, "confirmed" + (f": {note}" if note else ""), {}, {"note": note}

    def _do_sign_off(self, step: RunbookStep, confirmation: Confirmation | None,
                     progress: ProgressCallback) -> Outcome:
        note = confirmation.note if confirmation else ""
        return StepStatus.DONE, "signed off" + (f": {note}" if note else ""), {}, {"note": note}


class StepClock:
    """Times the current step: from when it began waiting for people to when it ended, split into the
    machine's work (inside ``machine()``) and the people's time (the rest: share entry, reading, confirming)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._reset()

    def _reset(self) -> None:
        self.waiting_since = _now()
        self._since = self._clock()
        self._machine = 0.0
        self._depth = 0

    @contextmanager
    def machine(self) -> Iterator[None]:
        self._depth += 1
        began = self._clock()
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:  # nested machine work counts once
                self._machine += self._clock() - began

    def lap(self) -> tuple[str, float, float]:
        """(waiting since, human seconds, machine seconds) of the step that just ended; the next one begins."""
        total = self._clock() - self._since
        lap = (self.waiting_since, round(max(0.0, total - self._machine), 3), round(self._machine, 3))
        self._reset()
        return lap


def _audit_inputs(detail: dict[str, Any]) -> dict[str, Any]:
    """The parts of a step's result worth an audit entry (ids and notes; counts go separately)."""
    return {k: v for k, v in detail.items() if k in ("snapshot", "run", "resumed", "note", "custodians",
                                                     "fingerprint", "reason", "asked_for", "target",
                                                     "policies")}


def find_open_run(state_dir: Path, runbook: str, ceremony: str | None = None) -> tuple[Path, RunState]:
    """The newest paused or in-progress run of a runbook (or the run of one ceremony)."""
    candidates = []
    for path in sorted((state_dir / "recoveries").glob(f"*/{STATE_FILE}"), reverse=True):
        state = RunState.from_file(path)
        if ceremony is not None and state.ceremony != ceremony:
            continue
        if state.runbook == runbook and state.status in OPEN_STATUSES:
            candidates.append((path.parent, state))
    if not candidates:
        which = f"run {ceremony} of runbook {runbook}" if ceremony else f"runbook {runbook}"
        raise RunStateError(f"there is no paused or interrupted {which} in {state_dir / 'recoveries'}")
    return candidates[0]


def run_states(state_dir: Path) -> Iterator[tuple[Path, RunState]]:
    """Every readable run state in the state folder, with its file, newest first."""
    for path in sorted((state_dir / "recoveries").glob(f"*/{STATE_FILE}"), reverse=True):
        try:
            yield path, RunState.from_file(path)
        except RunStateError:
            continue


def open_runs(state_dir: Path) -> list[RunState]:
    """Every paused or interrupted run, newest first (for a start screen)."""
    return [state for _, state in run_states(state_dir) if state.status in OPEN_STATUSES]
