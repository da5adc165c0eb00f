"""Read-ahead of batches on a producer thread (used by the SQLite store's row streams)."""

from __future__ import annotations

import threading
from typing import Iterator

import pytest

from enigm_recover.prefetch import prefetched


def test_items_come_in_order_across_batches() -> None:
    batches = iter([[1, 2], [], [3], [4, 5, 6]])
    assert list(prefetched(batches, depth=1)) == [1, 2, 3, 4, 5, 6]


def test_a_producer_error_reaches_the_consumer_after_the_items_before_it() -> None:
    def batches() -> Iterator[list[int]]:
        yield [1, 2]
        raise ValueError("disk gone")

    seen = []
    with pytest.raises(ValueError, match="disk gone"):
        for item in prefetched(batches()):
            seen.append(item)
    assert seen == [1, 2]


def test_a_consumer_that_stops_early_stops_and_closes_the_producer() -> None:
    closed_on: list[str] = []

    def batches() -> Iterator[list[int]]:
        try:
            n = 0
            while True:  # endless: only closing ends it
                yield [n]
                n += 1
        finally:
            closed_on.append(threading.current_thread().name)

    stream = prefetched(batches(), depth=2)
    assert [next(stream) for _ in range(3)] == [0, 1, 2]
    stream.close()
    assert closed_on == ["enigm-prefetch"]
    assert not any(t.name == "enigm-prefetch" for t in threading.enumerate())
