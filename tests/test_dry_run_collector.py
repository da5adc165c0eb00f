"""A dry run pauses the cyclic garbage collector while it streams records, and gives it back as it was."""

from __future__ import annotations

import gc

import pytest

from enigm_recover.recovery.snapshot_rows import rows_by_kind
from tests.test_authenticated_payload import identity_of
from tests.test_record_worker import verified_of


@pytest.fixture
def collector_enabled():
    was = gc.isenabled()
    gc.enable()
    yield
    (gc.enable if was else gc.disable)()


def test_the_collector_is_paused_while_records_stream_and_enabled_after(drill, collector_enabled) -> None:
    seen = []
    for _kind, items in rows_by_kind(verified_of(drill), identity_of(drill)):
        for _ in items:
            seen.append(gc.isenabled())
    assert seen and not any(seen)
    assert gc.isenabled()


def test_a_dry_run_stopped_midway_gives_the_collector_back(drill, collector_enabled) -> None:
    stream = rows_by_kind(verified_of(drill), identity_of(drill))
    with pytest.raises(RuntimeError):
        for _kind, items in stream:
            next(items)
            assert not gc.isenabled()
            raise RuntimeError("the consumer fails")
    stream.close()
    assert gc.isenabled()


def test_overlapping_dry_runs_enable_the_collector_only_when_the_last_ends(drill, collector_enabled) -> None:
    first = rows_by_kind(verified_of(drill), identity_of(drill))
    second = rows_by_kind(verified_of(drill), identity_of(drill))
    next(first), next(second)
    first.close()
    assert not gc.isenabled()
    second.close()
    assert gc.isenabled()


def test_a_collector_paused_before_the_dry_run_stays_paused(drill, collector_enabled) -> None:
    gc.disable()
    for _kind, items in rows_by_kind(verified_of(drill), identity_of(drill)):
        for _ in items:
            pass
    assert not gc.isenabled()
