"""The snapshot lines a dry run keeps for the restore, compressed in memory.

A restore writes the snapshot's canonical line of every missing or changed
record; the dry run keeps those lines so the restore need not read the payload
again. Kept one bytes object each, they are the largest part of a large dry
run's memory, so they are appended to blocks that are zstd-compressed as they
fill, and a change holds only a reference (block, offset, length). The restore
reads them back in key order, block after block, so one decompressed block is
cached. Nothing here touches disk: decrypted records stay in memory only.
"""

from __future__ import annotations

import zstandard

BLOCK_BYTES = 256 * 1024
_OFFSET_BITS = 24  # offsets and lengths within a block (blocks may exceed BLOCK_BYTES by one line)


class LineStore:
    def __init__(self, level: int = 3) -> None:
        self._compressor = zstandard.ZstdCompressor(level=level)
        self._decompressor = zstandard.ZstdDecompressor()
        self._blocks: list[bytes] = []
        self._open = bytearray()
        self._cached: tuple[int, bytes] | None = None

    def add(self, line: bytes) -> int:
        """Keep a line; returns its reference."""
        offset = len(self._open)
        if offset + len(line) >= 1 << _OFFSET_BITS:
            raise ValueError("a line longer than a block")
        ref = (len(self._blocks) << (2 * _OFFSET_BITS)) | (offset << _OFFSET_BITS) | len(line)
        self._open += line
        if len(self._open) >= BLOCK_BYTES:
            self._seal()
        return ref

    def _seal(self) -> None:
        self._blocks.append(self._compressor.compress(bytes(self._open)))
        self._open = bytearray()

    def get(self, ref: int) -> bytes:
        mask = (1 << _OFFSET_BITS) - 1
        number, offset, length = ref >> (2 * _OFFSET_BITS), (ref >> _OFFSET_BITS) & mask, ref & mask
        if number == len(self._blocks):
            return bytes(self._open[offset:offset + length])
        if self._cached is None or self._cached[0] != number:
            self._cached = (number, self._decompressor.decompress(self._blocks[number]))
        return self._cached[1][offset:offset + length]

    @property
    def compressed_bytes(self) -> int:
        return sum(len(b) for b in self._blocks) + len(self._open)
