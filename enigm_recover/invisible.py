"""Write a file that nobody can see, or find left over, until it is complete.

On Linux the file is created with O_TMPFILE in the target's folder: an inode
without a name, which no other process can open and which the kernel frees
when the writer ends, however it ends (SIGKILL and power cuts included). Only
once complete and fsynced does it get its name, with linkat through
/proc/self/fd. Where that is not possible (another system, a file system
without O_TMPFILE, no /proc), ``atomic.atomic_output``'s hidden 0600
temporary is used instead: it is removed on every failure the process
survives, but a SIGKILL can leave it.
"""

from __future__ import annotations

import errno
import os
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

from enigm_recover.atomic import atomic_output, refuse_unless_regular
from enigm_recover.errors import InputFileError, OutputExistsError

_PROC_FD = Path("/proc/self/fd")
# What open(2) says when a file system (or an old kernel) has no O_TMPFILE.
_NO_TMPFILE = {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL}


def _nameless(folder: Path, mode: int) -> int | None:
    """A new file without a name in ``folder``, open for writing; None where none can be made."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None or not _PROC_FD.is_dir():
        return None
    try:
        fd = os.open(folder, flag | os.O_WRONLY | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno in _NO_TMPFILE:
            return None
        raise
    os.fchmod(fd, mode)  # exactly ``mode``, whatever the umask
    return fd


def _give_name(fd: int, path: Path, overwrite: bool) -> None:
    """Link the nameless file ``fd`` at ``path``. An existing ``path`` is refused, or with ``overwrite``
    removed first: never renamed over from a second name, which a crash could leave behind."""
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        while True:
            try:
                os.link(_PROC_FD / str(fd), path.name, dst_dir_fd=folder, follow_symlinks=True)
                break
            except FileExistsError:
                if not overwrite:
                    raise OutputExistsError(f"{path} already exists") from None
                try:
                    os.unlink(path.name, dir_fd=folder)
                except FileNotFoundError:
                    pass
        os.fsync(folder)
    finally:
        os.close(folder)


@contextmanager
def invisible_output(path: Path, *, mode: int = 0o600, overwrite: bool = False) -> Iterator[BinaryIO]:
    """Yield a file for writing; when the block ends without error, the file is fsynced and appears at
    ``path``, whole. On any failure nothing appears, and nothing is left (see the module's note)."""
    refuse_unless_regular(path)
    if not overwrite and path.exists():
        raise OutputExistsError(f"{path} already exists")
    if not path.parent.is_dir():
        raise InputFileError(f"folder {path.parent} does not exist", "create it first")
    fd = _nameless(path.parent, mode)
    if fd is None:
        with atomic_output(path, mode=mode, overwrite=overwrite) as f:
            yield f
        return
    with os.fdopen(fd, "wb") as f:
        yield f
        f.flush()
        os.fsync(f.fileno())
        _give_name(f.fileno(), path, overwrite)
