"""A dry run runs the cyclic garbage collector seldom while it streams records, and gives it back as it was."""

from __future__ import annotations

import gc

import pytest

from enigm_recover.recovery.snapshot_rows import YOUNG_OBJECTS, rows_by_kind
from tests.test_authenticated_payload import identity_of
from tests.test_record_worker import verified_of

USUAL = (700, 10, 10)


@pytest.fixture
def usual_collector():
    was, enabled = gc.get_threshold(), gc.isenabled()
    gc.set_threshold(*USUAL)
    gc.enable()
    yield
    gc.set_threshold(*was)
    (gc.enable if enabled else gc.disable)()


def test_the_collector_runs_seldom_while_records_stream_and_as_before_after(drill, usual_collector) -> None:
    seen = []
    for _kind, items in rows_by_kind(verified_of(drill), identity_of(drill)):
        for _ in items:
            seen.append(gc.get_threshold())
    assert seen and set(seen) == {(YOUNG_OBJECTS, *USUAL[1:])}
    assert gc.get_threshold() == USUAL and gc.isenabled()


def test_a_dry_run_stopped_midway_gives_the_collector_back(drill, usual_collector) -> None:
    stream = rows_by_kind(verified_of(drill), identity_of(drill))
    with pytest.raises(RuntimeError):
        for _kind, items in stream:
            next(items)
            assert gc.get_threshold()[0] == YOUNG_OBJECTS
            raise RuntimeError("the consumer fails")
    stream.close()
    assert gc.get_threshold() == USUAL


def test_a_dry_run_left_in_a_reference_cycle_is_collected_and_gives_the_collector_back(drill, usual_collector
                                                                                       ) -> None:
    holder: dict = {}
    holder["self"] = holder
    holder["stream"] = rows_by_kind(verified_of(drill), identity_of(drill))
    next(holder["stream"])
    del holder
    gc.collect()
    assert gc.get_threshold() == USUAL


def test_overlapping_dry_runs_give_the_collector_back_when_the_last_ends(drill, usual_collector) -> None:
    first = rows_by_kind(verified_of(drill), identity_of(drill))
    second = rows_by_kind(verified_of(drill), identity_of(drill))
    next(first), next(second)
    first.close()
    assert gc.get_threshold()[0] == YOUNG_OBJECTS
    second.close()
    assert gc.get_threshold() == USUAL


def test_a_collector_switched_off_before_the_dry_run_stays_off(drill, usual_collector) -> None:
    gc.disable()
    for _kind, items in rows_by_kind(verified_of(drill), identity_of(drill)):
        for _ in items:
            assert not gc.isenabled()
    assert not gc.isenabled() and gc.get_threshold() == USUAL
