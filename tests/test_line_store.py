"""The dry run's compressed line store gives back every line exactly, in any order, across blocks."""

from __future__ import annotations

import os
import random
import tempfile

import pytest
from hypothesis import given, settings, strategies as st

from enigm_recover.errors import PayloadIntegrityError
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


def _lines(count: int, seed: int = 1) -> list[bytes]:
    rnd = random.Random(seed)
    return [b'{"kind":"device","device_id":"dev_%016x","account_id":"acct_%08d","state":"active"}\n'
            % (rnd.getrandbits(64), i // 3) for i in range(count)]


def _unnamed_files_in(folder: str) -> list[int]:
    """This process's open descriptors on files in ``folder`` that have no name there (O_TMPFILE or unlinked)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(folder + "/") and target.endswith("(deleted)"):
            found.append(int(fd))
    return found


def test_past_its_memory_bound_a_large_dry_runs_lines_are_sealed_in_a_file_without_a_name(
        tmp_path, monkeypatch) -> None:
    """A total loss keeps every line: past the bound, blocks go to the temporary folder sealed with a key only
    this process holds. Every line comes back exactly, memory holds at most the bound, the folder shows no
    file, and the file holds no line in the clear nor anything zstd can read."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    lines = _lines(60_000)
    store = LineStore(memory_bytes=BLOCK_BYTES // 4)
    refs = [store.add(line) for line in lines]
    assert store.memory_bytes <= BLOCK_BYTES // 4 + BLOCK_BYTES  # the bound, and the block being filled
    assert store.compressed_bytes - store.memory_bytes > BLOCK_BYTES // 2  # the rest is in the sealed file
    assert os.listdir(tmp_path) == []
    (fd,) = _unnamed_files_in(str(tmp_path))
    with open(f"/proc/self/fd/{fd}", "rb") as f:
        on_disk = f.read()
    assert len(on_disk) > BLOCK_BYTES // 8
    assert b"dev_" not in on_disk and b"acct_" not in on_disk and b"device_id" not in on_disk
    assert b"\x28\xb5\x2f\xfd" not in on_disk  # no zstd frame: each block is sealed after compression
    assert [store.get(r) for r in refs] == lines
    order = list(range(len(lines)))
    random.Random(2).shuffle(order)
    assert all(store.get(refs[i]) == lines[i] for i in order[:2000])


def test_a_sealed_block_changed_on_disk_is_refused_not_used(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    lines = _lines(20_000)
    store = LineStore(memory_bytes=0)
    refs = [store.add(line) for line in lines]
    (fd,) = _unnamed_files_in(str(tmp_path))
    byte = os.pread(fd, 1, 100)
    os.pwrite(fd, bytes([byte[0] ^ 1]), 100)
    with pytest.raises(PayloadIntegrityError, match="changed on disk"):
        store.get(refs[0])
    assert store.get(refs[-1]) == lines[-1]  # the last line's block is still being filled, in memory


def test_when_the_temporary_folder_fills_up_the_lines_after_stay_in_memory(tmp_path, monkeypatch, caplog) -> None:
    """A disk that fills mid-way: the blocks already sealed are still read from the file, the later ones are
    kept in memory, and every line comes back exactly."""
    import enigm_recover.recovery.line_store as line_store

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    writes = {"left": 2}
    real_pwrite = os.pwrite

    def filling_pwrite(fd: int, data: bytes, offset: int) -> int:
        if writes["left"] == 0:
            raise OSError(28, "No space left on device")
        writes["left"] -= 1
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(line_store.os, "pwrite", filling_pwrite)
    lines = _lines(40_000)
    store = LineStore(memory_bytes=0)
    refs = [store.add(line) for line in lines]
    assert 0 < store.memory_bytes < store.compressed_bytes  # two blocks sealed on disk, the rest in memory
    assert [store.get(r) for r in refs] == lines
    assert "No space left on device" in caplog.text and "stay in memory" in caplog.text


def test_lines_read_on_two_threads_at_once_are_each_their_own(monkeypatch) -> None:
    """A restore reads lines on two threads at once (its writes, and its read-back of the batch before):
    each read is its own line, whichever block the other thread has just decompressed."""
    import sys
    import threading

    import enigm_recover.recovery.line_store as line_store

    monkeypatch.setattr(line_store, "BLOCK_BYTES", 512)
    store = LineStore(memory_bytes=4096)  # most blocks sealed on disk: reading one takes longer
    lines = [(b"%d:" % i) * (i % 9 + 1) for i in range(6000)]
    refs = [store.add(line) for line in lines]
    wrong: list[int] = []
    failed: list[BaseException] = []

    def read(order: list[int]) -> None:
        try:
            for _ in range(10):
                wrong.extend(i for i in order if store.get(refs[i]) != lines[i])
        except BaseException as exc:  # noqa: BLE001 - a read that fails is a wrong read
            failed.append(exc)

    forward = list(range(len(lines)))
    readers = [threading.Thread(target=read, args=(order,))
               for order in (forward, forward[::-1], forward[::2] + forward[1::2], forward[::-3])]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns as often as they can
    try:
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join()
    finally:
        sys.setswitchinterval(interval)
    assert failed == [] and wrong == []
