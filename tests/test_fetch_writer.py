"""The fetch's writer thread: blocks land in order and hashed, and a failed write reaches the download."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
from pathlib import Path

import pytest

from enigm_recover.sources.sftp import WRITES_IN_FLIGHT, _Download, _Writer

HANG_GUARD_S = 60  # only so that a deadlock fails the test instead of stopping the suite


def write_all(download: _Download, blocks: list[bytes]) -> None:
    async def run() -> None:
        writer = _Writer(download)
        try:
            for block in blocks:
                await writer.put(block)
        finally:
            await writer.close()

    asyncio.run(asyncio.wait_for(run(), HANG_GUARD_S))


def test_blocks_are_appended_and_hashed_in_the_order_handed_over(tmp_path: Path) -> None:
    blocks = [os.urandom(1000 + i) for i in range(3 * WRITES_IN_FLIGHT)]  # more than may wait at once
    whole = b"".join(blocks)
    partial = tmp_path / "p.payload.age.partial"
    partial.write_bytes(whole[:500])  # a resumed download: the prefix already on disk is hashed first
    download = _Download(partial, len(whole) + 500)
    write_all(download, [whole[500:1000]] + blocks[1:])
    assert partial.read_bytes() == whole[:1000] + b"".join(blocks[1:])
    assert download.size == partial.stat().st_size
    assert download.hasher.hexdigest() == hashlib.sha256(partial.read_bytes()).hexdigest()


def test_a_failed_write_is_raised_to_the_download_and_never_hangs_it(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    download = _Download(tmp_path / "p.payload.age.partial", 10**9)
    written = []

    def persist(out: object, block: bytes) -> None:
        if len(written) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(block)

    monkeypatch.setattr(download, "persist", persist)
    with pytest.raises(OSError, match="No space left"):
        write_all(download, [b"x" * 100] * (4 * WRITES_IN_FLIGHT))  # the writer stops; the room fills up
    assert len(written) == 3
