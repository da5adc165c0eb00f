"""A verified snapshot as one sorted stream per kind, for merging with live rows."""

from __future__ import annotations

import gc
import threading
from contextlib import contextmanager
from itertools import chain, repeat
from typing import Any, Iterator

from enigm_recover.progress import ProgressCallback, no_progress
from enigm_recover.quorum.recovery_key import RecoveryIdentity
from enigm_recover.snapshot.record_worker import Batch, checked_batches
from enigm_recover.snapshot.unseal import PayloadConfirmation
from enigm_recover.snapshot.verify import VerifiedSnapshot
from enigm_recover.state.model import KINDS, Kind

Row = tuple[Any, ...]
# A record's values and its canonical line (None where not asked for: ``records.CHECKED_LINE`` of the values).
Item = tuple[Row, bytes | None]


def rows_by_kind(verified: VerifiedSnapshot, identity: RecoveryIdentity,
                 progress: ProgressCallback = no_progress,
                 confirmation: PayloadConfirmation | None = None, *,
                 parallel: bool | None = None, verbatim_lines: bool = True) -> Iterator[tuple[Kind, Iterator[Item]]]:
    """(kind, records) for every kind in the fixed order; an empty stream for kinds the snapshot lacks.

    A kind's records are read before the next kind is handed out: what a consumer
    left unread is read (and checked) then. The whole payload, with the integrity
    checks at its end, has been read once this generator is exhausted. The records
    are checked in a child process when the payload is large (``record_worker``), so
    the consumer's merge runs beside the checking on another core; a record the checker
    refuses is judged with the rest of the payload (``unseal.judge``) either way. Without ``verbatim_lines``,
    a record of a kind whose lines are their values' canonical encoding (``records.VERBATIM_KINDS``) may come
    with None for its line: ``records.CHECKED_LINE`` of its values is the line, byte for byte.
    """
    with collector_paused():
        yield from _rows_by_kind(verified, identity, progress, confirmation, parallel, verbatim_lines)


def _rows_by_kind(verified: VerifiedSnapshot, identity: RecoveryIdentity, progress: ProgressCallback,
                  confirmation: PayloadConfirmation | None, parallel: bool | None, verbatim_lines: bool
                  ) -> Iterator[tuple[Kind, Iterator[Item]]]:
    batches = checked_batches(verified, identity, progress, confirmation, parallel=parallel,
                              verbatim_lines=verbatim_lines)
    pending: list[Batch | None] = [next(batches, None)]

    def batches_of(kind: Kind) -> Iterator[Iterator[Item]]:
        while (batch := pending[0]) is not None and batch[0] is kind:
            pending[0] = next(batches, None)  # the batch after it is read (and checked) now: its kind ends this one
            yield zip(batch[1], repeat(None) if batch[2] is None else batch[2])

    def records_of(kind: Kind) -> Iterator[Item]:
        return chain.from_iterable(batches_of(kind))  # record by record without a Python frame per record

    try:
        current: Iterator[Item] = iter(())
        for kind in KINDS:
            for _ in current:  # the rest of the previous kind, unread by the consumer, is still checked
                pass
            current = records_of(kind)
            yield kind, current
        for _ in current:
            pass
        for _ in batches:  # the stream's end: its final checks
            pass
    finally:
        batches.close()


_pause_lock = threading.Lock()
_pauses: list[Any] = [0, None]  # dry runs under way, and the collector's thresholds before the first
YOUNG_OBJECTS = 100_000  # new objects between two collections of the youngest generation, while a dry run streams


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector run seldom while a dry run streams its records (process-wide, until the
    last dry run under way ends; its thresholds are then as they were). A dry run makes millions of
    short-lived tuples and no reference cycles: every 700 of them set off a collection that walked the rows
    in flight. Not switched off: a dry run left in a reference cycle is still collected, and its end
    restores the thresholds."""
    with _pause_lock:
        if _pauses[0] == 0:
            _pauses[1] = gc.get_threshold()
            young, *older = _pauses[1]
            gc.set_threshold(max(young, YOUNG_OBJECTS), *older)
        _pauses[0] += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pauses[0] -= 1
            if _pauses[0] == 0:
                gc.set_threshold(*_pauses[1])
