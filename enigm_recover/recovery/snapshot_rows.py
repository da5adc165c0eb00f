"""A verified snapshot as one sorted row stream per kind, for merging with live rows."""

from __future__ import annotations

import itertools
from typing import Any, Callable, Iterator

from enigm_recover.progress import ProgressCallback, no_progress
from enigm_recover.quorum.recovery_key import RecoveryIdentity
from enigm_recover.snapshot.unseal import records
from enigm_recover.snapshot.verify import VerifiedSnapshot
from enigm_recover.state.model import IDENTITY, KINDS, Kind

Row = tuple[Any, ...]


def rows_by_kind(verified: VerifiedSnapshot, identity: RecoveryIdentity,
                 progress: ProgressCallback = no_progress,
                 on_line: Callable[[Kind, bytes], None] | None = None) -> Iterator[tuple[Kind, Iterator[Row]]]:
    """(kind, rows) for every kind in the fixed order, an empty stream for kinds the snapshot lacks.

    Each kind's rows must be consumed before the next kind is asked for; the whole
    payload (and with it the integrity checks at its end) is read by the time the
    last kind's rows are exhausted. ``on_line`` sees each record's canonical line.
    """
    stream = records(verified, identity, progress)
    if on_line is not None:
        stream = _tap(stream, on_line)
    groups = itertools.groupby(stream, key=lambda item: item[0])
    pending = next(groups, None)
    for kind in KINDS:
        if pending is not None and pending[0] is kind:
            yield kind, (values for _, values, _ in pending[1])
            pending = next(groups, None)
        else:
            yield kind, iter(())
    if pending is not None:  # pragma: no cover - the record checker enforces the order
        raise AssertionError("snapshot kinds out of order")
    for _ in groups:  # pragma: no cover
        pass


def _tap(stream: Iterator[tuple[Kind, Row, bytes]], on_line: Callable[[Kind, bytes], None]) -> Iterator[tuple[Kind, Row, bytes]]:
    for item in stream:
        on_line(item[0], item[2])
        yield item


class AccountIndex:
    """Which account ids the snapshot holds, kept as 64-bit hashes to bound memory."""

    def __init__(self) -> None:
        self._hashes: set[int] = set()

    def collect(self, rows: Iterator[Row]) -> Iterator[Row]:
        position = IDENTITY.position("account_id")
        for row in rows:
            self._hashes.add(hash(row[position]))
            yield row

    def __contains__(self, account_id: str) -> bool:
        return hash(account_id) in self._hashes
