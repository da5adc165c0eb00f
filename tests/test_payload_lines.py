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


def reference_line_lists(blocks: list[bytes], part: int) -> list[list[bytes]] | str:
    """How the payload's lines were cut when each list was made with bytes.splitlines: the lists, or the error."""
    out, tail = [], b""
    for block in blocks:
        start, size = 0, len(block)
        while start < size:
            cut = block.rfind(b"\n", start, start + part) + 1 if size - start > part else size
            if cut <= start:
                cut = min(size, start + part)
            lines = block[start:cut].splitlines(keepends=True)
            start = cut
            if tail:
                lines[0] = tail + lines[0]
            tail = b"" if lines[-1].endswith(b"\n") else lines.pop()
            if len(tail) > unseal.MAX_LINE_BYTES:
                return "longer"
            if lines:
                out.append(lines)
    return "not terminated" if tail else out


# Lines as a hostile payload may hold them: carriage returns alone, before a newline, at a block's end.
ODD_LINE = st.lists(st.sampled_from([b"a", b"\r", b"\r\n", b"\n", b"{}", b"\xff"]), max_size=8).map(b"".join)


@settings(max_examples=400, deadline=None)
@given(st.lists(ODD_LINE, max_size=30), st.lists(st.integers(min_value=0, max_value=300), max_size=12),
       st.integers(min_value=1, max_value=40))
def test_chunks_of_joined_lines_give_back_the_lists_splitlines_made(lines: list[bytes], cuts: list[int],
                                                                    part: int) -> None:
    """The payload is handed on as chunks of whole lines, not lists of them: the lines made from each chunk
    are exactly the lists made before with bytes.splitlines, carriage returns and blocks' ends included, and
    so are the errors."""
    from enigm_recover.snapshot.records import chunk_lines

    data = b"".join(lines)
    points = sorted({min(c, len(data)) for c in cuts})
    blocks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]
    expected = reference_line_lists(blocks, part)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(unseal, "plaintext_blocks", lambda *a, **k: iter(blocks))
        mp.setattr(unseal, "LINES_BYTES", part)
        try:
            chunks = list(unseal.payload_chunks(None, None))  # type: ignore[arg-type]
        except SnapshotContentError as exc:
            assert isinstance(expected, str) and expected in str(exc)
            return
    assert [chunk_lines(*c) for c in chunks] == expected
    assert all(b"".join(chunk_lines(*c)) == c[0] for c in chunks)
