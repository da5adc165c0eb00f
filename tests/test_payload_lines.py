"""Records are cut out of decrypted blocks exactly, wherever the block boundaries fall."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from enigm_recover.errors import SnapshotContentError
from enigm_recover.snapshot import unseal

LINE = st.binary(max_size=60).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b"") + b"\n")


def lines_of(blocks: list[bytes], monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    monkeypatch.setattr(unseal, "plaintext_blocks", lambda *a, **k: iter(blocks))
    return list(unseal.payload_lines(None, None))  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.lists(LINE, max_size=40), st.lists(st.integers(min_value=0, max_value=2000), max_size=12))
def test_any_cut_into_blocks_gives_back_the_same_lines(lines: list[bytes], cuts: list[int]) -> None:
    data = b"".join(lines)
    points = sorted({min(c, len(data)) for c in cuts})
    blocks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]
    with pytest.MonkeyPatch.context() as mp:
        assert lines_of(blocks, mp) == lines


def test_a_record_longer_than_the_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    huge = b"x" * (unseal.MAX_LINE_BYTES + 1)
    with pytest.raises(SnapshotContentError, match="longer than"):
        lines_of([b"a\n", huge[:1000], huge[1000:]], monkeypatch)


def test_an_unterminated_last_record_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SnapshotContentError, match="not terminated"):
        lines_of([b"a\nb", b"c"], monkeypatch)
