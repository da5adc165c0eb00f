"""A verified snapshot as one sorted stream per kind, for merging with live rows."""

from __future__ import annotations

from typing import Any, Iterator

from enigm_recover.errors import EnigmError
from enigm_recover.progress import ProgressCallback, no_progress
from enigm_recover.quorum.recovery_key import RecoveryIdentity
from enigm_recover.snapshot.records import RecordChecker
from enigm_recover.snapshot.unseal import PayloadConfirmation, judge, payload_lines
from enigm_recover.snapshot.verify import VerifiedSnapshot
from enigm_recover.state.model import KINDS, Kind

Row = tuple[Any, ...]
Item = tuple[Row, bytes]  # a record's values and its canonical line


def rows_by_kind(verified: VerifiedSnapshot, identity: RecoveryIdentity,
                 progress: ProgressCallback = no_progress,
                 confirmation: PayloadConfirmation | None = None) -> Iterator[tuple[Kind, Iterator[Item]]]:
    """(kind, records) for every kind in the fixed order; an empty stream for kinds the snapshot lacks.

    A kind's records are read before the next kind is handed out: what a consumer
    left unread is read (and checked) then. The whole payload, with the integrity
    checks at its end, has been read once this generator is exhausted. The checked
    lines come straight from the checker, without regrouping every record (4M of
    them in a large snapshot). A record the checker refuses is judged with the rest of the payload
    (``judge``): a payload that is not the signed one is reported as altered, not for its content.
    """
    checker = RecordChecker(verified.manifest)
    lines = payload_lines(verified, identity, progress, confirmation)
    opening: list[tuple[Kind, Row, bytes] | None] = [None]  # the record that opened the next kind

    def next_record() -> tuple[Kind, Row, bytes] | None:
        for line in lines:
            try:
                kind, values = checker.check(line)
            except EnigmError as exc:
                judge(lines, exc)
            return kind, values, line
        checker.finish()
        return None

    def records_of(kind: Kind, values: Row, line: bytes) -> Iterator[Item]:
        yield values, line
        check = checker.check
        try:
            for line in lines:
                found, values = check(line)
                if found is not kind:
                    opening[0] = (found, values, line)
                    return
                yield values, line
        except EnigmError as exc:
            judge(lines, exc)
        opening[0] = None
        checker.finish()

    opening[0] = next_record()
    current: Iterator[Item] = iter(())
    for kind in KINDS:
        for _ in current:  # the rest of the previous kind, unread by the consumer, is still checked
            pass
        first = opening[0]
        current = records_of(*first) if first is not None and first[0] is kind else iter(())
        yield kind, current
    for _ in current:
        pass
