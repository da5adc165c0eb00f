"""Work handed to ``Behind`` runs in order, beside the caller, and its failures reach the caller."""

from __future__ import annotations

import threading
import time

import pytest

from enigm_recover.recovery.behind import Behind


@pytest.mark.parametrize("threaded", [True, False])
def test_calls_run_in_order_and_all_have_run_when_the_block_ends(threaded: bool) -> None:
    ran: list[tuple[int, str]] = []

    def call(number: int) -> None:
        time.sleep(0.002 * (number % 3))  # uneven: order must not depend on timing
        ran.append((number, threading.current_thread().name))

    with Behind(threaded=threaded) as behind:
        for number in range(20):
            behind.submit(call, number)
    assert [number for number, _ in ran] == list(range(20))
    on_caller = {name for _, name in ran} == {threading.current_thread().name}
    assert on_caller is not threaded


def test_the_caller_never_runs_more_than_depth_calls_ahead() -> None:
    started, release = threading.Event(), threading.Event()
    submitted: list[int] = []

    def first() -> None:
        started.set()
        release.wait(5)

    def check_and_release() -> None:
        started.wait(5)
        time.sleep(0.2)
        # ``first`` is running, one call waits behind it: the third submit is still blocked
        submitted.append(len(submitted))
        release.set()

    with Behind(threaded=True, depth=2) as behind:
        guard = threading.Thread(target=check_and_release)
        guard.start()
        behind.submit(first)
        behind.submit(lambda: None)
        submitted.append(-1)
        behind.submit(lambda: None)  # waits for ``first`` to finish
        submitted.append(-2)
        guard.join()
    assert submitted == [-1, 1, -2]


@pytest.mark.parametrize("threaded", [True, False])
def test_a_failing_call_reaches_the_caller_and_stops_what_comes_after(threaded: bool) -> None:
    ran: list[int] = []

    def call(number: int) -> None:
        if number == 3:
            raise RuntimeError("the read-back of batch 3 failed")
        ran.append(number)

    with pytest.raises(RuntimeError, match="batch 3"):
        with Behind(threaded=threaded) as behind:
            for number in range(50):
                behind.submit(call, number)
                time.sleep(0.001)
    # The caller stops at the failure: at most the ``depth`` calls submitted before it showed ran after it.
    assert ran[:3] == [0, 1, 2] and 3 not in ran and len(ran) <= (5 if threaded else 3)


def test_leaving_the_block_by_an_exception_drops_the_calls_not_started_and_waits_for_the_one_running() -> None:
    ran: list[int] = []
    started, gate = threading.Event(), threading.Event()

    def call(number: int) -> None:
        started.set()
        gate.wait(5)
        ran.append(number)

    with pytest.raises(KeyboardInterrupt):
        with Behind(threaded=True, depth=3) as behind:
            for number in range(3):
                behind.submit(call, number)
            started.wait(5)
            threading.Timer(0.3, gate.set).start()  # call 0 is still running when the block is left
            raise KeyboardInterrupt
    assert ran == [0]
