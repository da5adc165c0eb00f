"""The snapshot lines a dry run keeps for the restore, compressed, and past a bound sealed on disk.

A restore writes the snapshot's canonical line of every missing or changed
record; the dry run keeps those lines so the restore need not read the payload
again. Kept one bytes object each, they are the largest part of a large dry
run's memory, so they are appended to blocks that are zstd-compressed as they
fill, and a change holds only a reference (block, offset, length). The restore
reads them back in key order, block after block, so one decompressed block is
cached.

A total loss keeps every line of the payload: compressed, about as large as
the payload itself. Past ``memory_bytes`` of compressed blocks, further blocks
are sealed with ChaCha20-Poly1305 under a key made for this store alone, which
lives only in this process's memory, and written to a file without a name in
the temporary folder (``TMPDIR``): what reaches the disk is ciphertext nobody
can read once the process ends, and the file itself goes with the process,
SIGKILL included. Each block is authenticated as it is read back, so a block
changed on disk is refused, never used. Where that file cannot be made or
written, blocks stay in memory, as below the bound.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from typing import IO

import zstandard

from enigm_recover.errors import PayloadIntegrityError

log = logging.getLogger(__name__)

BLOCK_BYTES = 256 * 1024
MEMORY_BYTES = 8 * 1024 * 1024  # compressed blocks kept in memory before further ones go to the sealed file
# A reference is (block << 40) | (offset << 20) | length, kept in 64-bit arrays: an offset is below BLOCK_BYTES
# (a block is sealed once it reaches it), a line is shorter than 1 MiB, and 2^23 blocks hold 2 TiB of lines.
_OFFSET_BITS = 20
MAX_LINE_BYTES = (1 << _OFFSET_BITS) - 1


class _SealedFile:
    """Blocks sealed with a key of this process's alone, in an unnamed temporary file."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

        self._aead = ChaCha20Poly1305(ChaCha20Poly1305.generate_key())
        self._file: IO[bytes] = tempfile.TemporaryFile(prefix="enigm-recover-lines-")
        self._size = 0

    def write(self, number: int, block: bytes) -> tuple[int, int]:
        """Seal block ``number`` (its number is its nonce, and bound to it); returns (offset, length)."""
        sealed = self._aead.encrypt(number.to_bytes(12, "big"), block, None)
        offset = self._size
        written = os.pwrite(self._file.fileno(), sealed, offset)
        if written != len(sealed):
            raise OSError(28, "short write")  # as ENOSPC: a block is whole or not kept there
        self._size += len(sealed)
        return offset, len(sealed)

    def read(self, number: int, offset: int, length: int) -> bytes:
        from cryptography.exceptions import InvalidTag

        sealed = os.pread(self._file.fileno(), length, offset)
        try:
            return self._aead.decrypt(number.to_bytes(12, "big"), sealed, None)
        except InvalidTag:
            raise PayloadIntegrityError("the dry run's lines kept in the temporary folder were changed on disk; "
                                        "nothing of them was used") from None


# zstd's level 1: records' lines compress about as well as at its default level 3 (they are alike, and a block
# is small), in about half the time; a total loss compresses every line of the payload.
LEVEL = 1


class LineStore:
    def __init__(self, level: int = LEVEL, memory_bytes: int | None = None) -> None:
        self._compressor = zstandard.ZstdCompressor(level=level)
        self._decompressor = zstandard.ZstdDecompressor()
        # A block in memory (bytes), or where the sealed file holds it (offset, length).
        self._blocks: list[bytes | tuple[int, int]] = []
        self._in_memory = 0
        self._memory_bytes = MEMORY_BYTES if memory_bytes is None else memory_bytes
        self._sealed: _SealedFile | None = None
        self._sealing = True  # False once the sealed file could not be made or written: memory only
        self._open = bytearray()
        self._cached: tuple[int, bytes] | None = None
        self._reading = threading.Lock()  # a restore reads lines on two threads (its writes, its read-back)

    def add(self, line: bytes) -> int:
        """Keep a line; returns its reference."""
        offset = len(self._open)
        if len(line) > MAX_LINE_BYTES:
            raise ValueError("a line longer than the store keeps")
        ref = (len(self._blocks) << (2 * _OFFSET_BITS)) | (offset << _OFFSET_BITS) | len(line)
        self._open += line
        if len(self._open) >= BLOCK_BYTES:
            self._seal()
        return ref

    def _seal(self) -> None:
        # A copy: zstandard hands back the compressed bytes in a buffer of the input's size, which would stay
        # allocated (a mapping of its own past the mmap threshold) as long as the block is kept.
        block = bytes(memoryview(self._compressor.compress(bytes(self._open))))
        self._open = bytearray()
        if self._in_memory + len(block) > self._memory_bytes and self._sealing:
            try:
                if self._sealed is None:
                    self._sealed = _SealedFile()
                self._blocks.append(self._sealed.write(len(self._blocks), block))
                return
            except OSError as exc:
                self._sealing = False
                log.warning("cannot keep the dry run's lines sealed in the temporary folder (%s): they stay in "
                            "memory", exc.strerror or type(exc).__name__)
        self._in_memory += len(block)
        self._blocks.append(block)

    def get(self, ref: int) -> bytes:
        mask = (1 << _OFFSET_BITS) - 1
        number, offset, length = ref >> (2 * _OFFSET_BITS), (ref >> _OFFSET_BITS) & mask, ref & mask
        if number == len(self._blocks):
            return bytes(self._open[offset:offset + length])
        cached = self._cached
        if cached is None or cached[0] != number:
            with self._reading:  # a decompressor serves one thread at a time
                block = self._blocks[number]
                if isinstance(block, tuple):
                    assert self._sealed is not None
                    block = self._sealed.read(number, *block)
                cached = self._cached = (number, self._decompressor.decompress(block))
        return cached[1][offset:offset + length]

    @property
    def compressed_bytes(self) -> int:
        return sum(b[1] if isinstance(b, tuple) else len(b) for b in self._blocks) + len(self._open)

    @property
    def memory_bytes(self) -> int:
        """Compressed bytes held in this process's memory (the sealed file's aside)."""
        return self._in_memory + len(self._open)
