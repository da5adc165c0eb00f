"""What a runbook is: a named, ordered list of steps, each with guidance and one action."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum
from pathlib import Path


class Action(str, Enum):
    SELECT_SNAPSHOT = "select-snapshot"
    VERIFY_SNAPSHOT = "verify-snapshot"
    GATHER_QUORUM = "gather-quorum"
    DRY_RUN = "dry-run"
    RESTORE = "restore"
    VERIFY_TARGET = "verify-target"
    CHECKPOINT = "checkpoint"
    SIGN_OFF = "sign-off"

    @property
    def needs_key(self) -> bool:
        """Steps that read the payload need the combined recovery key."""
        return self in (Action.DRY_RUN, Action.RESTORE, Action.VERIFY_TARGET)

    @property
    def writes_target(self) -> bool:
        return self is Action.RESTORE


class StepStatus(StrEnum):
    """How a runbook step ended. Only a finished check makes a step "verified"."""

    DONE = "done"
    VERIFIED = "verified"
    NOT_VERIFIED = "not-verified"
    FAILED = "failed"
    SKIPPED = "skipped"

    @property
    def ok(self) -> bool:
        return self in (StepStatus.DONE, StepStatus.VERIFIED)


class RunStatus(StrEnum):
    """Where a run stands; an open run can be resumed."""

    IN_PROGRESS = "in-progress"
    PAUSED = "paused"
    COMPLETED = "completed"
    PARTIALLY_COMPLETED = "partially completed"
    ABORTED = "aborted"

    @property
    def open(self) -> bool:
        return self in (RunStatus.IN_PROGRESS, RunStatus.PAUSED)


@dataclass(frozen=True)
class RunbookStep:
    id: str
    title: str
    guidance: str
    action: Action
    two_person: bool = False
    kinds: tuple[str, ...] = ()  # dry-run, restore, verify-target: the record kinds (empty: all)
    policies: tuple[str, ...] = ()  # restore: "kind=policy[,policy]" as `restore --policy` takes them
    prompts: tuple[str, ...] = ()  # questions for the room (tabletop exercises)
    snapshot: str = "latest"  # select-snapshot: the default choice
    line: int = 0  # where the step starts in its file


@dataclass(frozen=True)
class Runbook:
    name: str
    title: str
    purpose: str
    steps: tuple[RunbookStep, ...]
    path: Path
    sha256: str
    # custodians joining from their own sessions: shares one OS user may give in a ceremony (one person may hold
    # several cards, e.g. of two groups)
    shares_per_os_user: int = 1

    def step(self, step_id: str) -> RunbookStep:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def index(self, step_id: str) -> int:
        return [s.id for s in self.steps].index(step_id)
