"""Load runbooks strictly: every mistake is reported with its file, line and step id.

``tomllib`` parses but keeps no positions, so a small line scan maps each
``[[steps]]`` table and each key to the line it starts on; validation then
names the exact place. Built-in runbooks are package data
(``enigm_recover/runbooks/``, also reachable as the checkout's top-level ``runbooks/``); the operator's own go in ``<config dir>/runbooks`` or any folder given
with ``--runbooks``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from enigm_recover.bounded import RUNBOOK_FILE, loads_toml, read_bounded
from enigm_recover.errors import RunbookInvalid, UsageError
from enigm_recover.resources import builtin_runbooks
from enigm_recover.recovery.plan import Policy
from enigm_recover.runbook.model import Action, Runbook, RunbookStep
from enigm_recover.state.model import KIND_BY_NAME

BUILTIN_DIR = builtin_runbooks()
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
MAX_STEPS = 100
MAX_TEXT = 4000
_KEY = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=")
_STEPS_HEADER = re.compile(r"^\s*\[\[\s*steps\s*\]\]\s*(#.*)?$")
_STEP_NAMES = {"identities": "identity", "devices": "device", "settings": "setting", "roles": "role"}

TOP_KEYS = {"name": True, "title": True, "purpose": True, "steps": True, "shares_per_os_user": False}
MAX_SHARES_PER_OS_USER = 16
STEP_KEYS = {"id": True, "title": True, "guidance": True, "action": True, "two_person": False, "kinds": False,
             "policy": False, "prompts": False, "snapshot": False}


@dataclass
class _Positions:
    """Line numbers of top-level keys and of each step's header and keys."""

    top: dict[str, int] = field(default_factory=dict)
    steps: list[tuple[int, dict[str, int]]] = field(default_factory=list)


def _scan(text: str) -> _Positions:
    positions = _Positions()
    open_quote: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if open_quote is None:
            if _STEPS_HEADER.match(line):
                positions.steps.append((number, {}))
            elif (m := _KEY.match(line)):
                keys = positions.steps[-1][1] if positions.steps else positions.top
                keys.setdefault(m.group(1), number)
        for quote in ('"""', "'''"):
            if line.count(quote) % 2 == 1 and open_quote in (None, quote):
                open_quote = None if open_quote == quote else quote
    return positions


class _Checker:
    def __init__(self, path: Path, positions: _Positions) -> None:
        self.path = path
        self.positions = positions

    def fail(self, problem: str, *, line: int | None = None, step: str | None = None) -> RunbookInvalid:
        where = f"{self.path}:{line}" if line else str(self.path)
        return RunbookInvalid(f"{where}: {f'step {step!r}: ' if step else ''}{problem}")

    def line_of(self, key: str, index: int | None = None) -> int | None:
        if index is None:
            return self.positions.top.get(key)
        if index < len(self.positions.steps):
            start, keys = self.positions.steps[index]
            return keys.get(key, start)
        return None

    def text(self, table: dict[str, Any], key: str, index: int | None, step: str | None,
             *, limit: int = MAX_TEXT) -> str:
        value = table.get(key)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{key} must be a non-empty string", line=self.line_of(key, index), step=step)
        if len(value) > limit:
            raise self.fail(f"{key} is longer than {limit} characters", line=self.line_of(key, index), step=step)
        return value.strip()

    def strings(self, table: dict[str, Any], key: str, index: int, step: str) -> tuple[str, ...]:
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.fail(f"{key} must be a list of non-empty strings", line=self.line_of(key, index), step=step)
        if any(len(v) > MAX_TEXT for v in value):
            raise self.fail(f"an entry of {key} is longer than {MAX_TEXT} characters",
                            line=self.line_of(key, index), step=step)
        return tuple(v.strip() for v in value)

    def unknown_keys(self, table: dict[str, Any], allowed: dict[str, bool], index: int | None,
                     step: str | None) -> None:
        for key in table:
            if key not in allowed:
                raise self.fail(f"unknown key {key!r} (allowed: {', '.join(allowed)})",
                                line=self.line_of(key, index), step=step)
        for key, required in allowed.items():
            if required and key not in table:
                start = self.positions.steps[index][0] if index is not None and index < len(self.positions.steps) \
                    else None
                raise self.fail(f"{key} is missing", line=start, step=step)


def load_runbook(path: Path) -> Runbook:
    """Read and validate one runbook file."""
    raw = read_bounded(path, RUNBOOK_FILE, "runbook", RunbookInvalid,
                       missing_hint="see `enigm-recover runbooks list`")
    assert raw is not None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RunbookInvalid(f"{path}: not UTF-8 text") from None
    doc = loads_toml(text, str(path), RunbookInvalid)
    check = _Checker(path, _scan(text))
    check.unknown_keys(doc, TOP_KEYS, None, None)
    name = check.text(doc, "name", None, None, limit=63)
    if not SLUG.match(name):
        raise check.fail("name must be lower-case letters, digits and dashes", line=check.line_of("name"))
    if name != path.stem:
        raise check.fail(f"name {name!r} must match the file name ({path.stem}.toml)", line=check.line_of("name"))
    title = check.text(doc, "title", None, None, limit=200)
    purpose = check.text(doc, "purpose", None, None)
    tables = doc["steps"]
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        raise check.fail("steps must be one or more [[steps]] tables", line=check.line_of("steps"))
    if len(tables) > MAX_STEPS:
        raise check.fail(f"more than {MAX_STEPS} steps")
    steps = [_step(check, table, index) for index, table in enumerate(tables)]
    _check_order(check, steps)
    per_user = doc.get("shares_per_os_user", 1)
    if isinstance(per_user, bool) or not isinstance(per_user, int) or not 1 <= per_user <= MAX_SHARES_PER_OS_USER:
        raise check.fail(f"shares_per_os_user must be a whole number from 1 to {MAX_SHARES_PER_OS_USER}",
                         line=check.line_of("shares_per_os_user"))
    return Runbook(name, title, purpose, tuple(steps), path, hashlib.sha256(raw).hexdigest(), per_user)


def _step(check: _Checker, table: dict[str, Any], index: int) -> RunbookStep:
    line = check.positions.steps[index][0] if index < len(check.positions.steps) else 0
    step_id = table.get("id")
    label = step_id if isinstance(step_id, str) else f"#{index + 1}"
    check.unknown_keys(table, STEP_KEYS, index, label)
    step_id = check.text(table, "id", index, label, limit=63)
    if not SLUG.match(step_id):
        raise check.fail("id must be lower-case letters, digits and dashes", line=check.line_of("id", index),
                         step=label)
    try:
        action = Action(table["action"])
    except (ValueError, TypeError):
        raise check.fail(f"action {table['action']!r} is not one of {', '.join(a.value for a in Action)}",
                         line=check.line_of("action", index), step=step_id) from None
    two_person = table.get("two_person", False)
    if not isinstance(two_person, bool):
        raise check.fail("two_person must be true or false", line=check.line_of("two_person", index), step=step_id)
    kinds = tuple(_STEP_NAMES.get(k, k) for k in check.strings(table, "kinds", index, step_id))
    for kind in kinds:
        if kind not in KIND_BY_NAME:
            raise check.fail(f"unknown kind {kind!r} (kinds: {', '.join(KIND_BY_NAME)})",
                             line=check.line_of("kinds", index), step=step_id)
    if kinds and not action.needs_key:
        raise check.fail(f"kinds applies only to dry-run, restore and verify-target, not {action.value}",
                         line=check.line_of("kinds", index), step=step_id)
    policies = check.strings(table, "policy", index, step_id)
    if policies and action is not Action.RESTORE:
        raise check.fail("policy applies only to restore steps", line=check.line_of("policy", index), step=step_id)
    for policy in policies:
        if policy not in {p.value for p in Policy}:
            raise check.fail(f"unknown policy {policy!r} (policies: {', '.join(p.value for p in Policy)})",
                             line=check.line_of("policy", index), step=step_id)
    snapshot = table.get("snapshot", "latest")
    if "snapshot" in table and action is not Action.SELECT_SNAPSHOT:
        raise check.fail("snapshot applies only to select-snapshot steps", line=check.line_of("snapshot", index),
                         step=step_id)
    if snapshot not in ("latest", "ask"):
        raise check.fail("snapshot must be \"latest\" or \"ask\"", line=check.line_of("snapshot", index),
                         step=step_id)
    return RunbookStep(
        id=step_id, title=check.text(table, "title", index, step_id, limit=200),
        guidance=check.text(table, "guidance", index, step_id), action=action, two_person=two_person,
        kinds=kinds, policies=tuple(f"{kind}={','.join(policies)}" for kind in (kinds or KIND_BY_NAME))
        if policies else (), prompts=check.strings(table, "prompts", index, step_id), snapshot=snapshot, line=line)


_NEEDS_BEFORE = {
    Action.VERIFY_SNAPSHOT: Action.SELECT_SNAPSHOT,
    Action.GATHER_QUORUM: Action.VERIFY_SNAPSHOT,
    Action.DRY_RUN: Action.GATHER_QUORUM,
    Action.RESTORE: Action.DRY_RUN,
    Action.VERIFY_TARGET: Action.RESTORE,
}


def _check_order(check: _Checker, steps: list[RunbookStep]) -> None:
    seen_ids: dict[str, int] = {}
    seen_actions: set[Action] = set()
    dry_run_kinds: set[str] = set()
    for index, step in enumerate(steps):
        if step.id in seen_ids:
            raise check.fail(f"id is used twice (first on line {steps[seen_ids[step.id]].line})", line=step.line,
                             step=step.id)
        seen_ids[step.id] = index
        needed = _NEEDS_BEFORE.get(step.action)
        if needed is not None and needed not in seen_actions:
            raise check.fail(f"a {step.action.value} step needs a {needed.value} step before it", line=step.line,
                             step=step.id)
        if step.action is Action.DRY_RUN:
            dry_run_kinds.update(step.kinds or KIND_BY_NAME)
        if step.action is Action.RESTORE:
            unseen = [k for k in (step.kinds or KIND_BY_NAME) if k not in dry_run_kinds]
            if unseen:
                raise check.fail(f"restores {', '.join(unseen)} without a dry-run of them before it", line=step.line,
                                 step=step.id)
        if step.action is Action.SIGN_OFF and index != len(steps) - 1:
            raise check.fail("sign-off must be the last step", line=step.line, step=step.id)
        seen_actions.add(step.action)


def runbook_folders(extra: Iterable[Path] = ()) -> list[Path]:
    """Where runbooks are looked for: given folders first, then the built-in ones."""
    return [*extra, BUILTIN_DIR]


def available_runbooks(folders: Iterable[Path]) -> tuple[list[Runbook], list[str]]:
    """Every runbook in the folders (the first of a name wins), and the files that failed to load."""
    found: dict[str, Runbook] = {}
    problems = []
    for folder in folders:
        for path in sorted(folder.glob("*.toml")) if folder.is_dir() else []:
            try:
                runbook = load_runbook(path)
            except RunbookInvalid as exc:
                problems.append(exc.message)
                continue
            found.setdefault(runbook.name, runbook)
    return list(found.values()), problems


def find_runbook(ref: str, folders: Iterable[Path]) -> Runbook:
    """A runbook by name (in the folders) or by path to its file."""
    if ref.endswith(".toml") or "/" in ref:
        return load_runbook(Path(ref))
    folders = list(folders)
    for folder in folders:
        path = folder / f"{ref}.toml"
        if path.is_file():
            return load_runbook(path)
    runbooks, _ = available_runbooks(folders)
    names = ", ".join(sorted(r.name for r in runbooks)) or "none"
    raise UsageError(f"no runbook named {ref!r} (available: {names})", "see `enigm-recover runbooks list`")
