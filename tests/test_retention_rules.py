"""The retention rules against tables of dates, written from restic's documented `forget` semantics.

restic: snapshots are grouped (here: by environment) and each group is walked newest first; keep-last N
keeps the N newest; keep-daily/weekly/monthly N keep the newest snapshot of each of the last N periods
that have a snapshot; when there are fewer such periods than N, the group's oldest snapshot is kept as
well; keep-within D keeps every snapshot newer than D before the group's newest snapshot (strictly
newer: one exactly D older is not kept). A snapshot kept by any rule is kept.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from enigm_recover.snapshot.retention import Candidate, RetentionPolicy, decide


def at(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=timezone.utc)


# The forum's example of restic's keep-daily (https://forum.restic.net/t/keep-vs-keep-within/6243), plus an
# earlier snapshot on the first day.
DAYS = {"a0": "2024-05-01 06:00", "a1": "2024-05-01 08:00", "a2": "2024-05-02 08:00", "a3": "2024-05-02 11:00",
        "a4": "2024-05-04 09:00", "a5": "2024-05-05 10:00"}
# 2024-01-01 is a Monday: ISO week 2024-W01 runs from it to Sunday 2024-01-07; 2023-12-31 is in 2023-W52.
WEEKS = {"w0": "2023-12-31 12:00", "w1": "2024-01-01 12:00", "w2": "2024-01-07 23:00", "w3": "2024-01-08 00:30"}
MONTHS = {"m0": "2024-01-31 23:59", "m1": "2024-02-01 00:00", "m2": "2024-02-29 12:00", "m3": "2024-03-15 12:00"}

CASES = [
    # (dates, policy, kept)
    (DAYS, RetentionPolicy(keep_last=2), {"a5", "a4"}),
    (DAYS, RetentionPolicy(keep_last=10), set(DAYS)),
    (DAYS, RetentionPolicy(keep_daily=4), {"a5", "a4", "a3", "a1"}),  # a2: not the newest of 05-02
    (DAYS, RetentionPolicy(keep_daily=1), {"a5"}),
    # five days asked, four hold snapshots: the oldest snapshot (a0, same day as a1) is kept as well
    (DAYS, RetentionPolicy(keep_daily=5), {"a5", "a4", "a3", "a1", "a0"}),
    # newest 05-05 10:00 minus 4 days is 05-01 10:00: a1 and a0 are older
    (DAYS, RetentionPolicy(keep_within=timedelta(days=4)), {"a5", "a4", "a3", "a2"}),
    # exactly the duration before the newest is not within it (restic: strictly newer)
    (DAYS, RetentionPolicy(keep_within=timedelta(days=4, hours=2)), {"a5", "a4", "a3", "a2"}),
    (DAYS, RetentionPolicy(keep_within=timedelta(days=4, hours=2, minutes=1)), {"a5", "a4", "a3", "a2", "a1"}),
    # any rule keeps: last 1 or daily 2
    (DAYS, RetentionPolicy(keep_last=1, keep_daily=2), {"a5", "a4"}),
    (DAYS, RetentionPolicy(keep_last=3, keep_daily=2), {"a5", "a4", "a3"}),
    (WEEKS, RetentionPolicy(keep_weekly=2), {"w3", "w2"}),  # w1 is in the same ISO week as w2
    (WEEKS, RetentionPolicy(keep_weekly=3), {"w3", "w2", "w0"}),  # w0: 2023-W52
    (WEEKS, RetentionPolicy(keep_daily=3), {"w3", "w2", "w1"}),
    (MONTHS, RetentionPolicy(keep_monthly=2), {"m3", "m2"}),
    (MONTHS, RetentionPolicy(keep_monthly=3), {"m3", "m2", "m0"}),
    # four months asked, three hold snapshots: the oldest is kept too; here it already is
    (MONTHS, RetentionPolicy(keep_monthly=4), {"m3", "m2", "m0"}),
    (MONTHS, RetentionPolicy(keep_last=1, keep_monthly=1), {"m3"}),
    (MONTHS, RetentionPolicy(keep_within=timedelta(days=14), keep_monthly=2), {"m3", "m2"}),
]


def candidates(dates: dict[str, str], environment: str = "prod") -> list[Candidate]:
    return [Candidate(name, at(when), environment) for name, when in dates.items()]


@pytest.mark.parametrize(("dates", "policy", "kept"), CASES, ids=[f"{i}-{p.describe()}" for i, (_, p, _) in
                                                                  enumerate(CASES)])
def test_rules_keep_what_restic_keeps(dates: dict[str, str], policy: RetentionPolicy, kept: set[str]) -> None:
    decisions = decide(candidates(dates), policy)
    assert {d.id for d in decisions if d.keep} == kept
    assert all(d.reasons for d in decisions if d.keep) and not any(d.reasons for d in decisions if not d.keep)


def test_each_kept_snapshot_names_every_rule_that_keeps_it() -> None:
    decisions = {d.id: d for d in decide(candidates(DAYS), RetentionPolicy(keep_last=1, keep_daily=5,
                                                                           keep_within=timedelta(days=1)))}
    assert decisions["a5"].reasons == ["last snapshot (1 of 1)", "within 1d of the newest snapshot",
                                       "daily snapshot (1 of 5, 2024-05-05)"]
    assert decisions["a0"].reasons == ["oldest daily snapshot (2024-05-01; fewer than 5 days hold snapshots)"]
    assert not decisions["a2"].keep


def test_each_environment_is_its_own_group() -> None:
    both = candidates({"p1": "2024-05-01 08:00", "p2": "2024-05-03 08:00"}, "prod") + \
        candidates({"s1": "2024-05-02 08:00", "s2": "2024-05-04 08:00"}, "staging")
    decisions = decide(both, RetentionPolicy(keep_last=1))
    assert {d.id for d in decisions if d.keep} == {"p2", "s2"}
    # keep-within counts from each group's own newest snapshot
    decisions = decide(both, RetentionPolicy(keep_within=timedelta(days=2)))
    assert {d.id for d in decisions if d.keep} == {"p2", "s2"}
    decisions = decide(both, RetentionPolicy(keep_within=timedelta(days=2, minutes=1)))
    assert {d.id for d in decisions if d.keep} == {"p1", "p2", "s1", "s2"}


def test_a_protected_snapshot_is_kept_whatever_the_rules_say() -> None:
    decisions = {d.id: d for d in decide(candidates(DAYS), RetentionPolicy(keep_last=1),
                                         {"a0": "referenced by the paused run X"})}
    assert decisions["a0"].keep and decisions["a0"].reasons == ["referenced by the paused run X"]
    assert [d.id for d in decisions.values() if not d.keep] == ["a4", "a3", "a2", "a1"]


def test_command_line_rules_override_the_config_rule_by_rule() -> None:
    config = RetentionPolicy(keep_daily=7, keep_monthly=12)
    merged = config.merged(RetentionPolicy(keep_daily=3, keep_within=timedelta(days=30)))
    assert merged == RetentionPolicy(keep_daily=3, keep_monthly=12, keep_within=timedelta(days=30))
    assert merged.describe() == "keep-daily 3, keep-monthly 12, keep-within 30d"
    assert RetentionPolicy().empty and not merged.empty
