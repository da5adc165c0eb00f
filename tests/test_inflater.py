"""The bounded zstd inflater: the frame's structure is walked across any cut of the decrypted blocks, each
call to the decoder is bounded, and every malformed frame is refused as content, never decoded further."""

from __future__ import annotations

import random

import pytest
import zstandard

from enigm_recover.errors import SnapshotContentError
from enigm_recover.snapshot import unseal
from enigm_recover.snapshot.unseal import DECOMPRESSED_BLOCK, MAX_BLOCK, _BoundedInflater, walking

MAGIC = b"\x28\xb5\x2f\xfd"
HEADER = MAGIC + bytes([0x00, (17 - 10) << 3])  # no size, no checksum, no dictionary; 128 KiB window
LIMIT = 1 << 30


def block(kind: int, size: int, content: bytes, last: bool = False) -> bytes:
    return (size << 3 | kind << 1 | last).to_bytes(3, "little") + content


WALK_AHEAD = False


@pytest.fixture(autouse=True, params=["walked as fed", "walked ahead"])
def walk_ahead(request, monkeypatch) -> None:
    """Each test twice: the frame walked as each piece is fed, and walked ahead of the decoder (as the
    decrypting thread walks it, up to the whole payload ahead): the same output and the same refusals."""
    monkeypatch.setattr(f"{__name__}.WALK_AHEAD", request.param == "walked ahead")


def inflate(pieces: list[bytes], limit: int = LIMIT) -> bytes:
    inflater = _BoundedInflater(limit)
    if WALK_AHEAD:
        walked = list(zip(pieces, [inflater.walker.walk(piece) for piece in pieces]))
        return b"".join(inflater.inflate(walked))
    return b"".join(inflater.inflate(walking(pieces, inflater.walker)))


def refused(pieces: list[bytes], message: str, limit: int = LIMIT) -> None:
    with pytest.raises(SnapshotContentError, match=message):
        inflate(pieces, limit)


def varied_frame() -> tuple[bytes, bytes]:
    """A frame of many small blocks of every kind (compressed, raw, RLE), with its content size and checksum."""
    rng = random.Random(7)
    compressor = zstandard.ZstdCompressor(level=3, write_checksum=True).compressobj()
    plain, frame = [], []
    for i in range(40):
        chunk = [b'{"kind":"device","n":%d}\n' % (i * 50 + j) for j in range(20 + i)]
        chunk = b"".join(chunk) if i % 3 == 0 else rng.randbytes(200 + i) if i % 3 == 1 else bytes([i]) * 3000
        plain.append(chunk)
        frame.append(compressor.compress(chunk))
        frame.append(compressor.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK))
    frame.append(compressor.flush())
    return b"".join(frame), b"".join(plain)


def test_a_frame_cut_at_every_byte_inflates_as_zstd_does() -> None:
    varied, plain = varied_frame()
    whole = zstandard.ZstdCompressor(level=3, write_checksum=True).compress(plain)  # single segment, sized
    for frame in (varied, whole):
        assert zstandard.ZstdDecompressor().decompressobj().decompress(frame) == plain
        for cut in range(len(frame) + 1):
            assert inflate([frame[:cut], frame[cut:]]) == plain, cut


def test_a_frame_cut_in_many_random_pieces_inflates_as_zstd_does() -> None:
    frame, plain = varied_frame()
    rng = random.Random(1)
    for _ in range(200):
        pieces, at = [], 0
        while at < len(frame):
            step = rng.choice((1, 2, 3, rng.randint(1, 64), rng.randint(1, 4096)))
            pieces.append(frame[at:at + step])
            at += step
        assert inflate(pieces) == plain


def test_a_large_frame_inflates_as_zstd_does_in_bounded_calls(monkeypatch) -> None:
    plain = b"".join(b'{"kind":"identity","account_id":"a%08d","handle":"h%d"}\n' % (i, i * 7) for i in range(400_000))
    frame = zstandard.ZstdCompressor(level=3).compress(plain)
    sizes = bounded_calls(monkeypatch)
    assert inflate([frame[i:i + (1 << 20)] for i in range(0, len(frame), 1 << 20)]) == plain
    assert max(sizes) <= DECOMPRESSED_BLOCK and len(sizes) <= len(plain) // DECOMPRESSED_BLOCK + 2


def bounded_calls(monkeypatch) -> list[int]:
    """The output size of each call to the decoder."""
    sizes: list[int] = []
    real = zstandard.ZstdDecompressor

    class Recording:
        def __init__(self, obj) -> None:
            self.obj = obj

        def read(self, size):
            out = self.obj.read(size)
            sizes.append(len(out))
            return out

    class Decompressor:
        def __init__(self, **kwargs) -> None:
            self.real = real(**kwargs)

        def stream_reader(self, source, **kwargs):
            return Recording(self.real.stream_reader(source, **kwargs))

    monkeypatch.setattr(unseal.zstandard, "ZstdDecompressor", Decompressor)
    return sizes


def test_a_bomb_in_one_piece_is_refused_with_every_call_bounded(monkeypatch) -> None:
    bomb = HEADER + b"".join(block(1, MAX_BLOCK, b"\n") for _ in range(10_000)) + block(1, 1, b"\n", last=True)
    sizes = bounded_calls(monkeypatch)
    refused([bomb], "decompression bomb", limit=100 << 20)
    assert max(sizes) <= DECOMPRESSED_BLOCK and sum(sizes) <= (100 << 20) + DECOMPRESSED_BLOCK


def test_raw_and_rle_blocks_of_the_largest_size_inflate() -> None:
    frame = HEADER + block(1, MAX_BLOCK, b"x") + block(0, 5, b"hello") + block(0, 0, b"", last=True)
    assert inflate([frame]) == b"x" * MAX_BLOCK + b"hello"


def test_a_reserved_block_type_is_refused() -> None:
    refused([HEADER + block(3, 10, b"0123456789", last=True)], "not a valid zstd stream")


def test_an_rle_block_claiming_more_than_a_block_may_hold_is_refused() -> None:
    refused([HEADER + block(1, MAX_BLOCK + 1, b"\n", last=True)], "not a valid zstd stream")


def test_a_raw_block_claiming_more_than_a_block_may_hold_is_refused() -> None:
    refused([HEADER + block(0, MAX_BLOCK + 1, b"\n" * (MAX_BLOCK + 1), last=True)], "not a valid zstd stream")


def test_a_reserved_frame_header_bit_is_refused() -> None:
    refused([MAGIC + bytes([0x08, 7 << 3]) + block(0, 1, b"x", last=True)], "not a valid zstd stream")


def test_a_window_larger_than_allowed_is_refused() -> None:
    refused([MAGIC + bytes([0x00, (31 - 10) << 3]) + block(0, 1, b"x", last=True)], "not a valid zstd stream")


def test_a_wrong_checksum_is_refused() -> None:
    frame, _ = varied_frame()
    refused([frame[:-1] + bytes([frame[-1] ^ 1])], "not a valid zstd stream")


def test_bytes_after_the_frame_are_refused_wherever_they_come() -> None:
    frame, _ = varied_frame()
    refused([frame + b"\0"], "after the end of its zstd stream")
    refused([frame, b"\0"], "after the end of its zstd stream")
    refused([frame[:-2], frame[-2:] + b"junk"], "after the end of its zstd stream")
    refused([HEADER + block(0, 1, b"x", last=True) + b"x"], "after the end of its zstd stream")


def test_a_second_frame_is_refused() -> None:
    frame, _ = varied_frame()
    refused([frame + frame], "after the end of its zstd stream")
    refused([frame, frame], "after the end of its zstd stream")


def test_a_skippable_frame_is_refused_before_or_after_the_frame() -> None:
    frame, _ = varied_frame()
    skippable = (0x184D2A50).to_bytes(4, "little") + (4).to_bytes(4, "little") + b"skip"
    refused([skippable + frame], "not a valid zstd stream")
    refused([frame + skippable], "after the end of its zstd stream")


def test_a_frame_truncated_anywhere_is_refused() -> None:
    frame, _ = varied_frame()
    for cut in range(len(frame)):
        refused([frame[:cut]], "truncated")


def test_an_empty_payload_is_refused_as_truncated() -> None:
    refused([b""], "truncated")


def test_a_payload_that_is_not_zstd_is_refused() -> None:
    refused([b"not a zstd frame at all\n"], "not a valid zstd stream")
