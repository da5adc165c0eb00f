"""Produce batches on a thread of their own, so producing overlaps the consumer's work.

In both places it serves, one side works with the GIL released while the
other runs Python: a payload's reading, hashing and decryption (while the
consumer decompresses), and a drill's platform, whose rows are made while the
store inserts the batch before (sqlite3 and psycopg release the GIL as they
write). So the two use two cores.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterator, TypeVar

T = TypeVar("T")

_END = object()


def prefetched(batches: Iterator[list[T]], depth: int = 4) -> Iterator[T]:
    """The items of ``batches``, read ahead by up to ``depth`` batches on a producer thread.

    An exception in the producer is raised in the consumer, at the point the stream reached; a consumer
    that stops early (or fails) stops the producer, which closes ``batches`` on its own thread."""
    handoff: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not put(batch):
                    return
            put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            put(exc)
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()

    producer = threading.Thread(target=produce, name="enigm-prefetch", daemon=True)
    producer.start()
    try:
        while (item := handoff.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield from item  # type: ignore[misc]
    finally:
        stop.set()
        producer.join()
