"""``keys rewrap`` reads each payload body once: in that one read it checks the old payload against its signed
SHA-256 and makes the new one's. These tests hold the copy to every byte at every block boundary, make a write
error reach the caller, and refuse a payload altered anywhere after its header, changing nothing."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from enigm_recover.progress import no_progress
from enigm_recover.snapshot import rewrap
from enigm_recover.snapshot.manifest import payload_name
from tests.test_keys_lifecycle import _ids, _rewrap, rotated  # noqa: F401  (rotated: a fixture)

BLOCK = 4096
OLD_HEAD, NEW_HEAD = b"old header\n", b"the new header, longer\n"


def _copy(tmp_path: Path, body: bytes, block: int = BLOCK) -> tuple[tuple[int, str, int, str], bytes]:
    src, dst = tmp_path / "old", tmp_path / "new"
    src.write_bytes(OLD_HEAD + body)
    with open(src, "rb") as f, open(dst, "wb") as out:
        f.seek(len(OLD_HEAD))
        result = rewrap._copy_hashing(f, out, OLD_HEAD, NEW_HEAD, no_progress, "copy", len(OLD_HEAD + body), block)
    return result, dst.read_bytes()


@pytest.mark.parametrize("size", [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK, 7 * BLOCK + 3])
def test_the_copy_keeps_every_byte_and_hashes_both_files_at_every_block_boundary(tmp_path: Path, size: int,
                                                                                 monkeypatch) -> None:
    monkeypatch.setattr(rewrap, "WRITEBACK", 2 * BLOCK)  # the disk flushes run during the copy, too
    body = os.urandom(size)
    (old_size, old_sha, new_size, new_sha), written = _copy(tmp_path, body)
    assert written == NEW_HEAD + body
    assert (old_size, old_sha) == (len(OLD_HEAD + body), hashlib.sha256(OLD_HEAD + body).hexdigest())
    assert (new_size, new_sha) == (len(written), hashlib.sha256(written).hexdigest())


def test_a_write_error_during_the_copy_reaches_the_caller(tmp_path: Path) -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    src = tmp_path / "old"
    src.write_bytes(OLD_HEAD + os.urandom(5 * BLOCK))
    out = open("/dev/full", "wb")  # the header waits in its buffer: the blocks' writes (on the other thread) fail
    try:
        with open(src, "rb") as f, pytest.raises(OSError) as raised:
            f.seek(len(OLD_HEAD))
            rewrap._copy_hashing(f, out, OLD_HEAD, NEW_HEAD, no_progress, "copy", 0, BLOCK)
        assert "No space left" in str(raised.value)
    finally:
        try:
            out.close()
        except OSError:
            pass  # the buffered header cannot be written either


@pytest.mark.parametrize("how", ["first byte of the body", "last byte", "one byte more", "one byte less"])
def test_rewrap_refuses_a_payload_altered_after_its_header_and_changes_nothing(drill, cli, rotated: Path,  # noqa: F811
                                                                               how: str) -> None:
    snapshot_id = _ids(drill)[0]
    path = drill.snapshots / payload_name(snapshot_id)
    data = bytearray(path.read_bytes())
    header_end = data.index(b"\n---") + 1
    header_end = data.index(b"\n", header_end) + 1
    if how == "first byte of the body":
        data[header_end] ^= 1
    elif how == "last byte":
        data[-1] ^= 1
    elif how == "one byte more":
        data += b"\0"
    else:
        del data[-1]
    path.write_bytes(bytes(data))
    before = {p.name: p.read_bytes() for p in drill.snapshots.iterdir()}

    code, _, err = _rewrap(cli, drill, rotated / "recovery.pub", snapshot_id)
    assert code == 12 and snapshot_id in err, err
    assert {p.name: p.read_bytes() for p in drill.snapshots.iterdir()} == before  # no leftover, nothing replaced
