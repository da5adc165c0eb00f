"""Write a file so that it appears whole or not at all."""

from __future__ import annotations

import os
import secrets
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

from enigm_recover.errors import InputFileError, OutputExistsError


def fsync_dir(folder: Path) -> None:
    """Make a folder's entries (a rename, a link, an unlink) durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def refuse_unless_regular(path: Path) -> None:
    """An existing ``path`` that is not a regular file is never replaced: a device, a pipe, a folder or a
    link swapped for a file breaks what it was (``--out /dev/null`` would leave the system without one)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        raise OutputExistsError(f"{path} exists and is not a regular file (a device, pipe, folder or link); "
                                "it is never replaced", "name a new file, or a regular file to replace")


@contextmanager
def atomic_output(path: Path, *, mode: int = 0o600, overwrite: bool = False) -> Iterator[BinaryIO]:
    """Yield a file for writing; on success it is fsynced and moved to ``path``.

    On any failure (including KeyboardInterrupt) the partial file is removed,
    so a reader never sees half a file. Without ``overwrite`` an existing
    ``path`` is refused, also when it appears while we write.
    """
    refuse_unless_regular(path)
    if not overwrite and path.exists():
        raise OutputExistsError(f"{path} already exists")
    if not path.parent.is_dir():
        raise InputFileError(f"folder {path.parent} does not exist", "create it first")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails if path appeared meanwhile: never clobber
            except FileExistsError:
                raise OutputExistsError(f"{path} already exists") from None
            os.unlink(tmp)
        fsync_dir(path.parent)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644, overwrite: bool = False) -> None:
    with atomic_output(path, mode=mode, overwrite=overwrite) as f:
        f.write(data)
