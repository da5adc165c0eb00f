"""An output path that names a device, a pipe, a folder or a link is never replaced by a file.

Writing whole-or-nothing means writing beside the path and moving the result over it; done to
``/dev/null`` (``unseal --out /dev/null --force``, ``readiness --prometheus /dev/null``) that would
leave the host without its null device. These tests use a FIFO, a folder and links of their own.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from enigm_recover.atomic import write_atomic
from enigm_recover.errors import OutputExistsError
from enigm_recover.invisible import invisible_output
from tests.test_snapshot import unseal_args


def _specials(tmp_path: Path) -> dict[str, Path]:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    folder = tmp_path / "folder"
    folder.mkdir()
    regular = tmp_path / "regular"
    regular.write_text("keep me")
    link = tmp_path / "link"
    link.symlink_to(regular)
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    return {"fifo": fifo, "folder": folder, "link": link, "dangling": dangling}


def _kind(path: Path) -> int:
    return stat.S_IFMT(os.lstat(path).st_mode)


@pytest.mark.parametrize("writer", ["write_atomic", "invisible_output"])
def test_no_writer_replaces_what_is_not_a_regular_file(tmp_path: Path, writer: str) -> None:
    for name, path in _specials(tmp_path).items():
        before = _kind(path)
        with pytest.raises(OutputExistsError, match="not a regular file"):
            if writer == "write_atomic":
                write_atomic(path, b"data", overwrite=True)
            else:
                with invisible_output(path, overwrite=True) as f:
                    f.write(b"data")
        assert _kind(path) == before, name
    assert (tmp_path / "regular").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling", "fifo", "folder", "link", "regular"]


def test_unseal_force_onto_a_pipe_refuses_and_leaves_it(drill, cli, tmp_path: Path) -> None:
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    code, _, err = cli(*unseal_args(drill, fifo), "--force")
    assert code == OutputExistsError.exit_code, err
    assert "not a regular file" in err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_readiness_textfile_onto_a_pipe_refuses_and_leaves_it(drill, cli, tmp_path: Path) -> None:
    fifo = tmp_path / "readiness.prom"
    os.mkfifo(fifo)
    code, _, err = cli("readiness", drill.snapshots, "--allowed-signers", drill.allowed_signers,
                       "--recipient", drill.recipient, "--prometheus", fifo)
    assert code != 0 and "not a regular file" in err, err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
