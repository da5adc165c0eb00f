"""Work that follows the caller's in order, on a thread of its own, so the two overlap.

A restore into PostgreSQL reads each batch back on a second session while it
writes the next: each side spends much of its time waiting on the server with
the GIL released, so the other's Python work fills that time on another core.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any, Callable


class Behind:
    """Calls run in the order given: on one thread of their own when ``threaded`` (at most ``depth`` of them
    not yet done, so the caller never runs far ahead), else at once, in the caller's thread. A call's
    exception is raised to the caller at its next ``submit``, or when the ``with`` block ends; leaving the
    block by an exception drops the calls not yet started and waits for the one running."""

    def __init__(self, *, threaded: bool, depth: int = 1, name: str = "enigm-behind") -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name) if threaded else None
        self._pending: deque[Future[None]] = deque()
        self._depth = depth

    def submit(self, call: Callable[..., None], *args: Any) -> None:
        if self._pool is None:
            call(*args)
            return
        while self._pending and (self._pending[0].done() or len(self._pending) >= self._depth):
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(call, *args))

    def __enter__(self) -> Behind:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._pool is None:
            return
        try:
            if kind is None:
                while self._pending:
                    self._pending.popleft().result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
