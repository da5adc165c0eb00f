"""Readiness knows the retention policy: no snapshot may be older than the policy keeps.

The check runs only when a policy is given (``readiness --retention``, the ``--keep-*`` options, or the
config file's ``[retention]`` table). It applies the same rules as ``snapshots prune`` to the
snapshots readiness listed: those signed by a trusted producer, per environment, with the newest usable
one of each environment always kept. A snapshot the policy would remove is a failure: it is kept
longer than continuity needs, and ``snapshots prune`` would remove it.
"""

from __future__ import annotations

from datetime import datetime

from enigm_recover.readiness.result import CheckResult, SnapshotFacts
from enigm_recover.snapshot.retention import Candidate, RetentionPolicy, decide
from enigm_recover.snapshot.signature import SignatureStatus

RETENTION = "retention"
DESCRIPTION = "no snapshot is older than the retention policy keeps (the rules of `snapshots prune`)"


def retention_figures(snapshots: list[SnapshotFacts], policy: RetentionPolicy | None,
                      now: datetime) -> tuple[int | None, int]:
    """The age of the oldest listed snapshot (None when no time is known), and how many snapshots are
    retained: those the policy keeps, or every signed one without a policy."""
    ages = [a for a in (s.age_seconds(now) for s in snapshots) if a is not None]
    oldest = max(ages) if ages else None
    signed = _candidates(snapshots)
    if policy is None or policy.empty:
        return oldest, len(signed)
    return oldest, sum(1 for d in decide(signed, policy, _newest_usable(snapshots)) if d.keep)


def check_retention(snapshots: list[SnapshotFacts], policy: RetentionPolicy, now: datetime) -> CheckResult:

    decisions = decide(_candidates(snapshots), policy, _newest_usable(snapshots))
    evidence, problems = [], []
    for d in decisions:
        age = _days(int((now - d.created_at).total_seconds()))
        if d.keep:
            evidence.append(f"{d.id} ({d.environment}, {age} old): kept: {'; '.join(d.reasons)}")
        else:
            problems.append(f"{d.id} ({d.environment}, {age} old) is older than the policy keeps "
                            f"({policy.describe()}): `snapshots prune` would remove it")
            evidence.append(problems[-1])
    if problems:
        return CheckResult(RETENTION, False, f"{len(problems)} snapshot(s) kept longer than the retention policy "
                                             f"allows ({policy.describe()})", evidence, problems)
    if not decisions:
        return CheckResult(RETENTION, None, "no signed snapshot to hold against the retention policy", evidence)
    return CheckResult(RETENTION, True, f"{len(decisions)} snapshot(s), all within the retention policy "
                                        f"({policy.describe()})", evidence)


def _candidates(snapshots: list[SnapshotFacts]) -> list[Candidate]:
    return [Candidate(s.id, s.created_at, s.environment) for s in snapshots
            if s.created_at is not None and s.environment is not None
            and s.signature == SignatureStatus.TRUSTED.value]


def _newest_usable(snapshots: list[SnapshotFacts]) -> dict[str, str]:
    out: dict[str, str] = {}
    seen: set[str] = set()
    for s in snapshots:  # newest first
        if s.usable and s.environment is not None and s.environment not in seen:
            seen.add(s.environment)
            out[s.id] = f"newest usable snapshot of environment {s.environment}"
    return out


def _days(seconds: int) -> str:
    return f"{seconds / 86400:.1f} d" if seconds >= 172800 else f"{seconds / 3600:.1f} h"
