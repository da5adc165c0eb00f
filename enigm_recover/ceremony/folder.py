"""Where ceremonies open: a folder only the operator and the custodians' group can reach.

``<ceremonies>/<ceremony id>/socket``: the ceremonies folder and each ceremony's folder belong to the operator
(or root) and the custodians' group, mode 0750, never writable by anyone else, so only the group's members can
reach a socket and nobody but the operator can put one there. The socket is removed when the ceremony ends;
if the operator's process is killed, a small sweeper process started with the ceremony removes it (it waits
for the operator's process to end), and a socket left behind anyway is found stale on the next open
(nothing answers on it) and removed, never trusted.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from enigm_recover.errors import CeremonyFolderUnsafe, CeremonyRefused, CeremonyUnavailable

DEFAULT_DIR = Path("/run/enigm-recover/ceremonies")
DEFAULT_GROUP = "enigm-custodians"
SOCKET = "socket"


@dataclass(frozen=True)
class CeremonyPlace:
    """The ceremonies folder and the custodians' group, as the operator's and the custodian's side resolve them."""

    folder: Path = DEFAULT_DIR
    group: str = DEFAULT_GROUP

    def gid(self) -> int:
        try:
            return grp.getgrnam(self.group).gr_gid
        except KeyError:
            raise CeremonyFolderUnsafe(
                f"the custodians' group {self.group!r} does not exist",
                f"create it (groupadd {self.group}) and add each custodian's OS user to it, or name another "
                "group with the custodian_group setting (ENIGM_RECOVER_CUSTODIAN_GROUP)") from None


def place_from_environment() -> CeremonyPlace:
    """The place as the environment names it (ENIGM_RECOVER_CEREMONY_DIR, ENIGM_RECOVER_CUSTODIAN_GROUP), else the
    defaults: for a face that was given none (the CLI resolves flags, environment and config file first)."""
    folder = os.environ.get("ENIGM_RECOVER_CEREMONY_DIR")
    return CeremonyPlace(Path(folder) if folder else DEFAULT_DIR,
                         os.environ.get("ENIGM_RECOVER_CUSTODIAN_GROUP") or DEFAULT_GROUP)


def os_user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid-{uid}"


def in_group(uid: int, gid: int) -> bool:
    """The OS user ``uid`` is a member of group ``gid`` (as its primary group or a supplementary one)."""
    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        return False
    return gid in os.getgrouplist(entry.pw_name, entry.pw_gid)


def _check_folder(path: Path, what: str, owners: set[int]) -> os.stat_result:
    try:
        info = path.lstat()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise CeremonyFolderUnsafe(f"the {what} {path} cannot be read: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise CeremonyFolderUnsafe(f"the {what} {path} is not a folder (a symbolic link or a file)",
                                   "remove it, or choose another folder with --ceremony-dir")
    if info.st_uid not in owners:
        raise CeremonyFolderUnsafe(f"the {what} {path} belongs to {os_user(info.st_uid)}, not to the operator or root",
                                   "remove it, or choose another folder with --ceremony-dir")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise CeremonyFolderUnsafe(f"others can write in the {what} {path}: someone could put a socket of theirs "
                                   "there", f"chmod 0750 {path}")
    return info


def prepare(place: CeremonyPlace) -> tuple[Path, int]:
    """The ceremonies folder, made when missing (mode 0750, the custodians' group) or checked; and the group's id."""
    gid = place.gid()
    me = os.geteuid()
    base = place.folder
    try:
        _check_folder(base, "ceremonies folder", {me, 0})
    except FileNotFoundError:
        try:
            base.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            base.mkdir(mode=0o700)
            os.chown(base, -1, gid)
            os.chmod(base, 0o750)
        except PermissionError:
            raise CeremonyFolderUnsafe(
                f"cannot make the ceremonies folder {base} (or give it to group {place.group})",
                f"ask an administrator to make it (owner: you, group {place.group}, mode 0750), or choose one with "
                "--ceremony-dir or ENIGM_RECOVER_CEREMONY_DIR; you must be a member of the group") from None
        _check_folder(base, "ceremonies folder", {me, 0})
    info = base.lstat()
    if info.st_gid != gid or info.st_mode & 0o050 != 0o050:
        raise CeremonyFolderUnsafe(f"the ceremonies folder {base} is not open to the custodians' group {place.group} "
                                   "(its group must be that group, with read and search permission)",
                                   f"chgrp {place.group} {base} && chmod 0750 {base}")
    return base, gid


def answers(path: Path) -> bool:
    """Something listens on the socket ``path`` (False for a socket left by a process that ended)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def sweep_stale(base: Path) -> list[str]:
    """Remove the operator's own ceremony folders whose socket nobody answers on (a killed operator's); returns
    their ceremony ids."""
    removed = []
    me = os.geteuid()
    for folder in sorted(base.iterdir()):
        try:
            info = folder.lstat()
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != me:
            continue
        sock = folder / SOCKET
        if sock.exists() and answers(sock):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder.name)
    return removed


def make_ceremony_folder(base: Path, ceremony: str, gid: int) -> Path:
    """``<base>/<ceremony>``, made private first (0700), given to the group once the socket is in place."""
    folder = base / ceremony
    try:
        folder.mkdir(mode=0o700)
        os.chown(folder, -1, gid)
    except FileExistsError:
        raise CeremonyFolderUnsafe(f"a ceremony folder {folder} already exists",
                                   "another process opened this ceremony; close it first") from None
    except PermissionError:
        shutil.rmtree(folder, ignore_errors=True)
        raise CeremonyFolderUnsafe(f"cannot give the ceremony folder to the custodians' group (gid {gid})",
                                   "the operator must be a member of the custodians' group") from None
    return folder


def start_sweeper(folder: Path) -> subprocess.Popen[bytes]:
    """A small process that removes ``folder`` once this process ends however it ends (its stdin, a pipe from
    this process, reaches its end). Started in its own session so a terminal's signals leave it alone."""
    return subprocess.Popen([sys.executable, "-m", "enigm_recover.ceremony.sweeper", str(folder)],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, close_fds=True)


# -- the custodian's side -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenCeremony:
    ceremony: str
    socket: Path
    owner_uid: int


def find(place: CeremonyPlace, ceremony: str | None) -> OpenCeremony:
    """The ceremony ``ceremony`` names (or the only one open). Its folder must belong to the ceremonies folder's
    owner (or root), and neither may be writable by anyone else; the process answering on its socket is checked
    against the folder's owner when it connects (see client.py)."""
    from enigm_recover.quorum.names import ceremony_id_problem

    base = place.folder
    try:
        base_owner = base.lstat().st_uid
        _check_folder(base, "ceremonies folder", {base_owner})
    except FileNotFoundError:
        raise CeremonyUnavailable(f"no ceremony is open: the ceremonies folder {base} does not exist",
                                  "ask the operator to open the ceremony, or pass the operator's --ceremony-dir") \
            from None
    except PermissionError:
        raise not_in_group(base) from None
    if ceremony is not None:
        ceremony = ceremony.strip().lower()
        if ceremony_id_problem(ceremony) is not None or not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,80}", ceremony):
            raise CeremonyUnavailable("that is not a ceremony id", "ceremony ids look like lunar-academic-47")
        names = [ceremony]
    else:
        try:
            names = sorted(p.name for p in base.iterdir() if (p / SOCKET).exists())
        except PermissionError:
            raise not_in_group(base) from None
        if not names:
            raise CeremonyUnavailable(f"no ceremony is open in {base}")
        if len(names) > 1:
            raise CeremonyUnavailable(f"{len(names)} ceremonies are open: {', '.join(names)}",
                                      "name the one you were called for: enigm-recover ceremony join CEREMONY")
    folder = base / names[0]
    try:
        info = _check_folder(folder, "ceremony folder", {base_owner, 0})
    except FileNotFoundError:
        raise CeremonyUnavailable(f"ceremony {names[0]} is not open", "check the id the operator gave you") from None
    except CeremonyFolderUnsafe as exc:
        if "cannot be read" in exc.message:
            raise not_in_group(base) from None
        raise
    return OpenCeremony(names[0], folder / SOCKET, info.st_uid)


def not_in_group(base: Path) -> CeremonyRefused:
    return CeremonyRefused(f"you cannot reach the ceremonies in {base}: your OS user is not in the custodians' group",
                           "ask an administrator to add your OS user to the group (then log in again)")
