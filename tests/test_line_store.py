"""The dry run's compressed line store gives back every line exactly, in any order, across blocks."""

from __future__ import annotations

import random

from hypothesis import given, settings, strategies as st

from enigm_recover.recovery.line_store import BLOCK_BYTES, LineStore


@settings(max_examples=30, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=3000), min_size=1, max_size=400), st.randoms())
def test_every_line_comes_back_exactly(lines: list[bytes], rnd: random.Random) -> None:
    store = LineStore()
    refs = [store.add(line) for line in lines]
    order = list(range(len(lines)))
    rnd.shuffle(order)
    for i in order:
        assert store.get(refs[i]) == lines[i]


def test_lines_of_a_large_dry_run_are_kept_compressed() -> None:
    rnd = random.Random(1)
    lines = [b'{"id":"dev_%016x","account":"acct_%016x","status":"active"}\n' % (rnd.getrandbits(64), i // 3)
             for i in range(40_000)]
    store = LineStore()
    refs = [store.add(line) for line in lines]
    total = sum(map(len, lines))
    assert total > 4 * BLOCK_BYTES and store.compressed_bytes < total / 2
    assert [store.get(r) for r in refs] == lines  # in order, block after block
    assert store.get(refs[5]) == lines[5] and store.get(refs[-1]) == lines[-1]
