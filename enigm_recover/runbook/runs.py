"""The runs kept in the state folder: list them, abort a paused one, clean up those left paused too long.

A run is never deleted: its folder holds the audit log and the report, which are evidence. Aborting
ends it for good, with the reason in both; "cleaning up" aborts runs idle longer than a given age.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from enigm_recover.atomic import write_atomic
from enigm_recover.errors import RunStateError, UsageError
from enigm_recover.recovery.session import Recovery
from enigm_recover.runbook.executor import OPEN_STATUSES, STATE_FILE, RunState, run_states
from enigm_recover.runbook.model import RunStatus
from enigm_recover.snapshot.signature import Signer

_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class RunInfo:
    """One run as a listing shows it (nothing secret)."""

    ceremony: str
    runbook: str
    status: str
    position: int  # the next step's index
    snapshot: str
    started: str
    last_active: datetime  # when run.toml was last written
    folder: Path

    def as_dict(self) -> dict[str, object]:
        return {"ceremony": self.ceremony, "runbook": self.runbook, "status": self.status,
                "next_step": self.position + 1, "snapshot": self.snapshot, "started": self.started,
                "last_active": self.last_active.strftime("%Y-%m-%dT%H:%M:%SZ"), "folder": str(self.folder)}


def parse_age(text: str) -> timedelta:
    """'30m', '12h', '7d' or '2w'."""
    match = re.fullmatch(r"\s*(\d+)\s*([mhdw])\s*", text.lower())
    if not match:
        raise UsageError(f"{text!r} is not an age like 30m, 12h, 7d or 2w")
    return timedelta(seconds=int(match[1]) * _UNITS[match[2]])


def list_runs(state_dir: Path, *, include_closed: bool = False) -> list[RunInfo]:
    """The runs in the state folder, newest first: the open ones (paused or interrupted), or all."""
    out = []
    for path, state in run_states(state_dir):
        if not include_closed and state.status not in OPEN_STATUSES:
            continue
        active = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
        out.append(RunInfo(state.ceremony, state.runbook, str(state.status), state.position, state.snapshot,
                           str(state.recovery.get("started", "")), active, path.parent))
    return out


def runs_on_target(state_dir: Path, target: str) -> list[RunInfo]:
    """The open runs that restore into ``target`` (compared without a password), newest first."""
    from enigm_recover.state.url import without_password

    wanted = without_password(target)
    out = []
    for run in list_runs(state_dir):
        state = RunState.from_file(run.folder / STATE_FILE)
        if without_password(state.target) == wanted:
            out.append(run)
    return out


def find_run(state_dir: Path, ceremony: str) -> RunInfo:
    """The open run of ``ceremony``."""
    for run in list_runs(state_dir):
        if run.ceremony == ceremony:
            return run
    raise RunStateError(f"there is no paused or interrupted run {ceremony} in {state_dir / 'recoveries'}",
                        "see `enigm-recover runs list`")


def abort_run(run: RunInfo, reason: str, operator: str, signer: Signer | None = None) -> Path:
    """End a paused run for good, whatever its runbook is now: the reason and who aborted it go to the
    audit log and the report. Returns the run's folder."""
    if not reason.strip():
        raise UsageError("an abort needs a reason", "say why, e.g. --reason 'drill cancelled'")
    state = RunState.from_file(run.folder / STATE_FILE)
    if state.status not in OPEN_STATUSES:
        raise RunStateError(f"run {run.ceremony} is already {state.status}")
    recovery = Recovery.reopen(run.folder, state.recovery, resumed=False)
    recovery.signer = signer
    where = _step_name(state)
    recovery.audit.append("run-aborted", inputs={"reason": reason, "by": operator, "step": where})
    state.status = RunStatus.ABORTED
    recovery.close(RunStatus.ABORTED, f"aborted at step {where}: {reason}")
    state.recovery = recovery.to_state()
    write_atomic(run.folder / STATE_FILE, state.to_toml(), mode=0o600, overwrite=True)
    return run.folder


def _step_name(state: RunState) -> str:
    """The id of the run's next step, from its runbook file; its number when the file cannot be read."""
    from enigm_recover.errors import EnigmError
    from enigm_recover.runbook.loader import load_runbook

    try:
        return load_runbook(Path(state.runbook_path)).steps[state.position].id
    except (EnigmError, OSError, IndexError):
        return str(state.position + 1)


def idle_runs(state_dir: Path, older_than: timedelta, now: datetime | None = None) -> list[RunInfo]:
    """Open runs untouched for longer than ``older_than``."""
    now = now or datetime.now(timezone.utc)
    return [run for run in list_runs(state_dir) if now - run.last_active > older_than]
