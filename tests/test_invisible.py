"""A file written through invisible_output has no name until it is complete."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from enigm_recover.errors import OutputExistsError
from enigm_recover.invisible import invisible_output


def test_nothing_is_in_the_folder_while_writing_and_the_file_is_private_whatever_the_umask(tmp_path: Path) -> None:
    out = tmp_path / "records.jsonl"
    old = os.umask(0o000)
    try:
        with invisible_output(out) as f:
            f.write(b"secret\n")
            f.flush()
            assert list(tmp_path.iterdir()) == []  # not even a hidden temporary
    finally:
        os.umask(old)
    assert out.read_bytes() == b"secret\n"
    assert out.stat().st_mode & 0o777 == 0o600


def test_a_failure_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "records.jsonl"
    with pytest.raises(RuntimeError):
        with invisible_output(out) as f:
            f.write(b"secret\n")
            raise RuntimeError("the payload was altered")
    assert list(tmp_path.iterdir()) == []


def test_an_output_that_appears_meanwhile_is_not_clobbered_unless_asked(tmp_path: Path) -> None:
    out = tmp_path / "records.jsonl"
    with pytest.raises(OutputExistsError):
        with invisible_output(out) as f:
            f.write(b"new\n")
            out.write_bytes(b"someone else's\n")
    assert out.read_bytes() == b"someone else's\n"
    assert [p.name for p in tmp_path.iterdir()] == [out.name]
    with invisible_output(out, overwrite=True) as f:
        f.write(b"new\n")
    assert out.read_bytes() == b"new\n"
    assert [p.name for p in tmp_path.iterdir()] == [out.name]
