"""The dry run's merge, inlined for speed and fed values without their lines: it finds exactly what comparing
record by record through ``assess.merge`` finds, in the same order, each change with the snapshot's line."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings, strategies as st

from enigm_recover.recovery.assess import Assessor, as_key, merge
from enigm_recover.recovery.change_list import KindChanges
from enigm_recover.recovery.diff import KindSummary, _compare
from enigm_recover.recovery.line_store import LineStore
from enigm_recover.recovery.restorable_accounts import RestorableAccounts
from enigm_recover.snapshot.records import CHECKED_LINE
from enigm_recover.state.live import exact_types, key_is_addressable
from enigm_recover.state.model import DEVICE, IDENTITY, Kind

SNAPSHOT_TIME = "2025-06-01T00:00:00Z"
KEY = "9999999999999999999999999999999999999999999="


def identity_row(account: str, version: Any = 1, status: str = "active") -> tuple[Any, ...]:
    return (account, "h" + account.lower(), KEY, version, status, "2025-01-01T00:00:00Z", "2025-01-01T00:00:00Z")


def device_row(device: str, state: str = "active") -> tuple[Any, ...]:
    return (device, "acct_" + device, KEY, state, "2025-01-01T00:00:00Z", "2025-01-01T00:00:00Z", "")


class Live:
    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.rows = rows

    def stream(self, kind: Kind) -> Any:
        return iter(self.rows)


# What a live record can be beside the snapshot's: the same, another version (also as a float, equal to
# Python but not to the model), another status, absent; and live records the snapshot lacks, some of them
# with a key that is not text.
LIVE_SIDE = st.sampled_from(["same", "same", "same", "same", "float", "version", "status", "absent"])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(LIVE_SIDE, st.booleans()), max_size=700), st.sampled_from([IDENTITY, DEVICE]),
       st.lists(st.sampled_from([None, 7, b"x"]), max_size=3), st.booleans())
def test_the_merge_finds_what_comparing_record_by_record_finds(sides, kind, odd_keys, lines_sent) -> None:
    snapshot, live = [], []
    for n, (side, extra_after) in enumerate(sides):
        name = f"A{n:05d}"
        row = identity_row(name) if kind is IDENTITY else device_row(name)
        snapshot.append(row)
        if side == "same":
            live.append(row)
        elif side == "float" and kind is IDENTITY:
            live.append(identity_row(name, 1.0))
        elif side == "version" and kind is IDENTITY:
            live.append(identity_row(name, 2))
        elif side in ("status", "version", "float"):
            live.append(identity_row(name, 1, "suspended") if kind is IDENTITY else device_row(name, "revoked"))
        if extra_after:
            extra = f"A{n:05d}x"
            live.append(identity_row(extra) if kind is IDENTITY else device_row(extra))
    for odd in odd_keys:  # a drifted live table: keys that are not text, in SQLite's order (before text)
        live.insert(0, ((odd,) + (identity_row("x") if kind is IDENTITY else device_row("x"))[1:]))

    # What comparing record by record finds: each pair equal (and of the model's types) is unchanged.
    assess, exact = Assessor(kind, SNAPSHOT_TIME), exact_types(kind)
    expected: list[tuple[Any, ...]] = []
    unchanged = keyless = 0
    for k, snap, _, row in merge(kind, iter((r, None) for r in snapshot), iter(live)):
        if snap is not None and snap == row and (exact is None or exact(row)):
            unchanged += 1
            continue
        verdict = assess(snap, row)
        if verdict.unreadable is not None and not key_is_addressable(kind, row):  # type: ignore[arg-type]
            keyless += 1
            continue
        expected.append((as_key(kind, k), verdict.change, verdict.findings))

    lines = LineStore()
    changes, summary = KindChanges(kind, lines), KindSummary()
    items = ((r, None if not lines_sent else CHECKED_LINE[kind.name](r)) for r in snapshot)
    found_keyless, _ = _compare(kind, items, Live(live), SNAPSHOT_TIME, summary, changes,  # type: ignore[arg-type]
                                RestorableAccounts())
    assert [(c.key, c.change, c.findings) for c in changes] == expected
    assert summary.unchanged == unchanged and len(found_keyless) == keyless
    assert summary.snapshot == len(snapshot) and summary.live == len(live)  # a keyless record counted, apart
    for change in changes:  # what a restore would write: the snapshot's line, byte for byte
        row = next((r for r in snapshot if as_key(kind, kind.sort_key(r)) == change.key), None)
        assert change.snapshot_line == (None if row is None else CHECKED_LINE[kind.name](row))
