"""Retention rules: which snapshots a policy keeps, with restic's ``forget`` meaning.

Pure functions over (id, created_at, environment): nothing here lists, verifies or removes.

Each environment is a group, and the rules apply to each group on its own, newest snapshot first:

- ``keep_last N``: the N newest snapshots;
- ``keep_daily`` / ``keep_weekly`` / ``keep_monthly N``: going back from the newest snapshot, the newest
  snapshot of each of the last N days (weeks, months) that have a snapshot. Periods are UTC calendar
  days, ISO weeks (Monday to Sunday) and calendar months. When there are fewer such periods than N,
  the group's oldest snapshot is kept as well (restic 0.17: the longest history the counts allow);
- ``keep_within DURATION``: every snapshot created less than DURATION before the group's newest one
  (relative to the newest snapshot, not to the clock, so a producer that stopped does not empty the
  source).

A snapshot kept by any rule is kept, and each kept snapshot carries every rule that kept it. A
snapshot protected by the caller (the newest verified one, one a paused run refers to) is kept
whatever the rules say, with the protection as its reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Iterable

RULES = ("keep_last", "keep_daily", "keep_weekly", "keep_monthly", "keep_within")


@dataclass(frozen=True)
class RetentionPolicy:
    keep_last: int | None = None
    keep_daily: int | None = None
    keep_weekly: int | None = None
    keep_monthly: int | None = None
    keep_within: timedelta | None = None

    @property
    def empty(self) -> bool:
        return all(getattr(self, rule) is None for rule in RULES)

    def merged(self, overrides: "RetentionPolicy") -> "RetentionPolicy":
        """This policy with every rule ``overrides`` sets replaced (the command line over the config)."""
        return RetentionPolicy(**{rule: (getattr(overrides, rule) if getattr(overrides, rule) is not None
                                         else getattr(self, rule)) for rule in RULES})

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {}
        for rule in RULES:
            value = getattr(self, rule)
            if value is None:
                continue
            out[rule] = _duration(value) if isinstance(value, timedelta) else value
        return out

    def describe(self) -> str:
        """``keep-last 3, keep-daily 7, keep-within 30d``."""
        return ", ".join(f"{rule.replace('_', '-')} {value}" for rule, value in self.as_dict().items()) or "none"


@dataclass(frozen=True)
class Candidate:
    """A snapshot the rules may decide on: its facts come from a verified, signed manifest."""

    id: str
    created_at: datetime
    environment: str


@dataclass
class Decision:
    id: str
    created_at: datetime
    environment: str
    keep: bool
    reasons: list[str] = field(default_factory=list)  # why it is kept (empty when removed)

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "created_at": self.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "environment": self.environment, "action": "keep" if self.keep else "remove",
                "reasons": list(self.reasons)}


def _day(t: datetime) -> object:
    return (t.year, t.month, t.day)


def _week(t: datetime) -> object:
    year, week, _ = t.isocalendar()
    return (year, week)


def _month(t: datetime) -> object:
    return (t.year, t.month)


_BUCKETS: tuple[tuple[str, str, Callable[[datetime], object]], ...] = (
    ("keep_daily", "daily", _day), ("keep_weekly", "weekly", _week), ("keep_monthly", "monthly", _month))


def decide(candidates: Iterable[Candidate], policy: RetentionPolicy,
           protected: dict[str, str] | None = None) -> list[Decision]:
    """Keep or remove each candidate; the result is grouped by environment (sorted by name), newest first
    inside a group. ``protected`` maps ids to the reason they must stay."""
    protected = protected or {}
    groups: dict[str, list[Candidate]] = {}
    for c in candidates:
        groups.setdefault(c.environment, []).append(c)
    out: list[Decision] = []
    for environment in sorted(groups):
        out += _decide_group(sorted(groups[environment], key=lambda c: (c.created_at, c.id), reverse=True),
                             policy, protected)
    return out


def _decide_group(group: list[Candidate], policy: RetentionPolicy, protected: dict[str, str]) -> list[Decision]:
    decisions = [Decision(c.id, c.created_at, c.environment, False) for c in group]
    if not group:
        return decisions
    newest = group[0].created_at
    for nr, (c, d) in enumerate(zip(group, decisions)):
        if policy.keep_last is not None and nr < policy.keep_last:
            d.reasons.append(f"last snapshot ({nr + 1} of {policy.keep_last})")
        if policy.keep_within is not None and c.created_at > newest - policy.keep_within:
            d.reasons.append(f"within {_duration(policy.keep_within)} of the newest snapshot")
    for rule, name, bucket in _BUCKETS:
        count = getattr(policy, rule)
        if count is None:
            continue
        last: object = None
        left = count
        for nr, (c, d) in enumerate(zip(group, decisions)):
            if left <= 0:
                break
            value = bucket(c.created_at)
            if value != last:
                last = value
                left -= 1
                d.reasons.append(f"{name} snapshot ({count - left} of {count}, {_period(name, c.created_at)})")
            elif nr == len(group) - 1:
                # Fewer periods than the count: keep the oldest snapshot too, for the longest history.
                d.reasons.append(f"oldest {name} snapshot ({_period(name, c.created_at)}; fewer than {count} "
                                 f"{_PERIODS[name]} hold snapshots)")
    for d in decisions:
        if d.id in protected:
            d.reasons.append(protected[d.id])
        d.keep = bool(d.reasons)
    return decisions


_PERIODS = {"daily": "days", "weekly": "weeks", "monthly": "months"}


def _period(name: str, t: datetime) -> str:
    if name == "daily":
        return t.strftime("%Y-%m-%d")
    if name == "weekly":
        year, week, _ = t.isocalendar()
        return f"{year}-W{week:02d}"
    return t.strftime("%Y-%m")


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def oldest_allowed(decisions: list[Decision]) -> dict[str, Decision]:
    """Per environment, the oldest snapshot the policy keeps."""
    out: dict[str, Decision] = {}
    for d in decisions:
        if d.keep and (d.environment not in out or d.created_at < out[d.environment].created_at):
            out[d.environment] = d
    return out
