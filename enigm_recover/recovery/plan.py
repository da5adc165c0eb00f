"""A restore plan: ordered steps, each with the policies the operator chose.

Non-destructive by default: every step restores what is missing. Overwriting
changed records and deleting extra ones are explicit per-step choices, shown
with their counts before they run. A live record the model cannot read is
never written over or deleted unless the step says overwrite-unreadable. The
safety rules hold under every policy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Any, Iterable

from enigm_recover.errors import KindNotInSnapshot, UsageError
from enigm_recover.recovery.assess import ChangeType
from enigm_recover.recovery.diff import DiffResult
from enigm_recover.snapshot.manifest import Manifest
from enigm_recover.state.model import DEVICE, IDENTITY, ROLE, SETTING, Kind


class Policy(str, Enum):
    RESTORE_MISSING = "restore-missing"
    OVERWRITE_CHANGED = "overwrite-changed"
    DELETE_EXTRA = "delete-extra"
    OVERWRITE_UNREADABLE = "overwrite-unreadable"  # replace unreadable live records (and delete them, with delete-extra)


STEP_KINDS: dict[str, Kind] = {"identities": IDENTITY, "devices": DEVICE, "settings": SETTING, "roles": ROLE}
_STEP_OF_KIND = {kind.name: step for step, kind in STEP_KINDS.items()}


@dataclass(frozen=True)
class Step:
    name: str
    policies: frozenset[Policy]

    @property
    def kind(self) -> Kind:
        return STEP_KINDS[self.name]

    def describe(self) -> str:
        return ", ".join(p.value for p in Policy if p in self.policies)


@dataclass(frozen=True)
class StepPreview:
    """What a step would do, from the dry run."""

    inserts: int
    updates: int
    deletes: int
    protected: int
    left: int  # changes the chosen policies leave alone
    unreadable: int = 0  # unreadable live records kept (counted among ``protected`` too)
    in_snapshot: bool = True  # False: the snapshot's signed scope does not hold the step's kind


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]

    def to_json(self) -> str:
        return json.dumps([{"step": s.name, "policies": sorted(p.value for p in s.policies)} for s in self.steps])

    @classmethod
    def from_json(cls, text: str) -> "Plan":
        return cls(tuple(Step(item["step"], frozenset(Policy(p) for p in item["policies"]))
                         for item in json.loads(text)))

    def as_dict(self) -> list[dict[str, Any]]:
        return json.loads(self.to_json())


def step_named(text: str) -> str:
    name = _STEP_OF_KIND.get(text, text)
    if name not in STEP_KINDS:
        raise UsageError(f"unknown step {text!r}; steps are {', '.join(STEP_KINDS)} (or kinds "
                         f"{', '.join(_STEP_OF_KIND)})")
    return name


def make_plan(policy_args: Iterable[str] = (), only_steps: Iterable[str] = ()) -> Plan:
    """From ``--policy KIND=POLICY[,POLICY]`` and ``--step NAME`` options."""
    chosen: dict[str, set[Policy]] = {name: {Policy.RESTORE_MISSING} for name in STEP_KINDS}
    for arg in policy_args:
        target, sep, values = arg.partition("=")
        if not sep or not values:
            raise UsageError(f"--policy {arg!r} is not of the form KIND=POLICY (e.g. device=overwrite-changed)")
        for value in values.split(","):
            try:
                chosen[step_named(target.strip())].add(Policy(value.strip()))
            except ValueError:
                raise UsageError(f"unknown policy {value!r}; policies are "
                                 f"{', '.join(p.value for p in Policy)}") from None
    names = [step_named(s) for s in only_steps] or list(STEP_KINDS)
    ordered = [name for name in STEP_KINDS if name in names]  # identities before devices before the rest
    return Plan(tuple(Step(name, frozenset(chosen[name])) for name in ordered))


def decide(change: ChangeType | None, protected: bool, policies: frozenset[Policy],
           unreadable: bool = False) -> str | None:
    """The write a change gets under these policies: insert, update, delete or nothing. A live record the
    model cannot read is left as it is unless the policies include overwrite-unreadable."""
    if change is None or protected:
        return None
    if change is ChangeType.MISSING:
        return "insert"
    if unreadable:
        if Policy.OVERWRITE_UNREADABLE not in policies:
            return None
        if change is ChangeType.CHANGED:
            return "update"
        return "delete" if Policy.DELETE_EXTRA in policies else None
    if change is ChangeType.CHANGED and Policy.OVERWRITE_CHANGED in policies:
        return "update"
    if change is ChangeType.EXTRA and Policy.DELETE_EXTRA in policies:
        return "delete"
    return None


def steps_not_in_snapshot(plan: Plan, manifest: Manifest) -> list[Step]:
    """The plan's steps whose kind lies outside the snapshot's signed scope."""
    return [step for step in plan.steps if step.kind.name not in manifest.scope]


def require_in_snapshot(plan: Plan, manifest: Manifest) -> None:
    """Refuse a plan with a step on a kind the snapshot does not hold. Such a snapshot says nothing about
    the kind: read as "zero records", every live record would look extra, and delete-extra delete them all."""
    absent = steps_not_in_snapshot(plan, manifest)
    if absent:
        held = ", ".join(manifest.scope) or "no kind"
        steps = ", ".join(f"{s.name} ({s.kind.name})" for s in absent)
        named = " ".join(f"--step {_STEP_OF_KIND[k]}" for k in manifest.scope)
        raise KindNotInSnapshot(
            f"step(s) {steps} not in this snapshot: {manifest.id}'s signed scope holds only {held}; "
            "nothing was written",
            f"run only the steps of the kinds it holds ({named}), or choose a snapshot that holds the kind")


def preview(step: Step, result: DiffResult) -> StepPreview:
    summary = result.kinds.get(step.kind.name)
    if summary is not None and not summary.in_snapshot:
        return StepPreview(0, 0, 0, 0, 0, in_snapshot=False)
    # A plain missing record (no findings) is always inserted: counted without being read.
    counts = {"insert": result.changes.plain_missing(step.kind.name), "update": 0, "delete": 0, "protected": 0,
              "left": 0, "unreadable": 0}
    for change in result.changes.in_full(step.kind.name):
        unreadable = change.unreadable is not None
        action = decide(change.change, change.protected, step.policies, unreadable)
        if action:
            counts[action] += 1
        elif change.protected or unreadable:
            counts["protected"] += 1  # kept by the safety rules (an unreadable record among them)
            counts["unreadable"] += unreadable
        else:
            counts["left"] += 1
    return StepPreview(counts["insert"], counts["update"], counts["delete"], counts["protected"], counts["left"],
                       counts["unreadable"])
