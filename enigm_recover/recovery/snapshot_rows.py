"""A verified snapshot as one sorted stream per kind, for merging with live rows."""

from __future__ import annotations

import itertools
from typing import Any, Iterator

from enigm_recover.progress import ProgressCallback, no_progress
from enigm_recover.quorum.recovery_key import RecoveryIdentity
from enigm_recover.snapshot.unseal import records
from enigm_recover.snapshot.verify import VerifiedSnapshot
from enigm_recover.state.model import KINDS, Kind

Row = tuple[Any, ...]
Item = tuple[Row, bytes]  # a record's values and its canonical line


def rows_by_kind(verified: VerifiedSnapshot, identity: RecoveryIdentity,
                 progress: ProgressCallback = no_progress) -> Iterator[tuple[Kind, Iterator[Item]]]:
    """(kind, records) for every kind in the fixed order; an empty stream for kinds the snapshot lacks.

    Each kind's records must be consumed before the next kind is asked for; the
    whole payload (and with it the integrity checks at its end) has been read
    when the last kind's records are exhausted.
    """
    groups = itertools.groupby(records(verified, identity, progress), key=lambda item: item[0])
    pending = next(groups, None)
    for kind in KINDS:
        if pending is not None and pending[0] is kind:
            yield kind, ((values, line) for _, values, line in pending[1])
            pending = next(groups, None)
        else:
            yield kind, iter(())
