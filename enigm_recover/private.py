"""One way to create the tool's folders and private files: private whatever the umask.

Every folder the tool makes (its state, recoveries and each recovery's folder, the cache, a key
ceremony's output, a drill) is created with mode 0700 — each missing parent too, since
``mkdir(parents=True)`` would give those ``0777 & ~umask`` — and its secret files with 0600 from the
moment they exist (``os.open`` with ``O_CREAT | O_EXCL`` and the final mode: no window in which another
user could open them). An umask can only take bits away, so it never makes either wider.

An existing folder or file of the tool's own that another user can write (or that another user owns)
is refused, as OpenSSH refuses such a ``~/.ssh``: whoever can write the state folder can replace a
recovery's audit log or report, and whoever can write a ceremony's folder can replace ``recovery.pub``.
Folders given as *input* (a snapshot folder on removable media) are not the tool's own: not checked.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from enigm_recover.errors import InputFileError, InsecurePath

FOLDER_MODE = 0o700
SECRET_MODE = 0o600


def refuse_if_others_can_write(path: Path, what: str) -> None:
    """Refuse ``path`` (a folder or file of the tool's own) if a user other than this one (or root) owns
    it or may write it. A missing path is fine."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise InputFileError(f"{what} {path} cannot be used: {exc.strerror or exc}") from None
    me = os.geteuid()
    if st.st_uid not in (me, 0):
        raise InsecurePath(f"{what} {path} belongs to another user (uid {st.st_uid}); refused",
                           f"use a {what} of your own, or make it yours (chown) and writable by you alone "
                           f"(chmod go-w {path})")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise InsecurePath(f"{what} {path} can be written by other users (mode {stat.S_IMODE(st.st_mode):04o}); "
                           "refused", f"chmod go-w {path}")


def make_private_dir(path: Path, what: str = "folder", *, exclusive: bool = False, check: bool = True) -> Path:
    """Create ``path`` and each missing parent with mode 0700; an existing ``path`` must be a folder and,
    with ``check``, one no other user can write. With ``exclusive`` an existing ``path`` is an error
    (FileExistsError), as for a recovery's own new folder."""
    missing: list[Path] = []
    probe = path
    while not os.path.lexists(probe):
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    if not missing:
        if exclusive:
            raise FileExistsError(path)
        if not path.is_dir():
            raise InputFileError(f"{what} {path} is not a folder", "give the path of a folder")
        if check:
            refuse_if_others_can_write(path, what)
        return path
    for folder in reversed(missing):
        try:
            os.mkdir(folder, FOLDER_MODE)
        except FileExistsError:
            if folder == path and exclusive:
                raise
            if folder == path and check:
                refuse_if_others_can_write(path, what)  # made by someone else meanwhile
            continue
        except OSError as exc:
            raise InputFileError(f"cannot create {what} {folder}: {exc.strerror or exc}",
                                 "check the path and its permissions") from None
        # An umask can only have narrowed 0700 (e.g. to 0500): give the owner its rights back.
        # Never wider than 0700, so no window opens.
        if stat.S_IMODE(os.stat(folder).st_mode) != FOLDER_MODE:
            os.chmod(folder, FOLDER_MODE)
    return path


def create_private_file(path: Path, mode: int = SECRET_MODE, *, append: bool = False) -> int:
    """Open ``path`` for writing, created with ``mode`` from its first instant (an existing file keeps
    its mode); returns the descriptor."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_APPEND if append else os.O_EXCL)
    return os.open(path, flags, mode)
