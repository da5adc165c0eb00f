"""Real OS users and a group for end-to-end tests of custodians joining a ceremony from their own processes.

Made with useradd/groupadd (names start with ``enigmt``) and removed again; only root can do this, so the tests
that use them are skipped, saying why, when not run as root. The users must be able to run the interpreter and
this checkout of the package: an interpreter under root's home (pyenv, a venv there) is not reachable by them,
so another one of the same Python version is looked for, and the package (and, when needed, its installed
dependencies) is copied into a world-readable temporary folder.
"""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import shutil
import site
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import enigm_recover

IMPORTS = "import enigm_recover.cli, enigm_recover.ceremony.client, shamir_mnemonic, platformdirs, tomli_w"


@dataclass(frozen=True)
class OSUser:
    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]


@dataclass
class OSUsers:
    """The test's group, its member users and one user outside it; ``run`` runs a command as one of them."""

    group: str
    gid: int
    members: list[OSUser]
    outsider: OSUser
    python: str = ""
    python_env: dict[str, str] = field(default_factory=dict)  # PYTHONHOME etc. for a copied interpreter
    pythonpath: str = ""
    home: Path = Path("/nonexistent")
    made: list[str] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(self.home), "LANG": "C.UTF-8",
                "PYTHONPATH": self.pythonpath, "PYTHONDONTWRITEBYTECODE": "1",
                "ENIGM_RECOVER_CONFIG": str(self.home / "no-config.toml"),
                "ENIGM_RECOVER_STATE_DIR": str(self.home / "state"), **self.python_env, **extra}

    def popen(self, user: OSUser, argv: list[str], env: dict[str, str], **kwargs: object) -> subprocess.Popen:
        return subprocess.Popen(argv, user=user.uid, group=user.gid, extra_groups=list(user.groups), env=env,
                                cwd=str(self.home), **kwargs)  # type: ignore[call-overload]

    def run(self, user: OSUser, argv: list[str], env: dict[str, str], input: str = "") -> subprocess.CompletedProcess:
        with self.popen(user, argv, env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        text=True) as proc:
            out, err = proc.communicate(input, timeout=120)
        return subprocess.CompletedProcess(argv, proc.returncode, out, err)

    def tool(self) -> list[str]:
        return [self.python, "-m", "enigm_recover"]


def _user(name: str) -> OSUser:
    entry = pwd.getpwnam(name)
    return OSUser(name, entry.pw_uid, entry.pw_gid, tuple(os.getgrouplist(name, entry.pw_gid)))


def _runs_as(user: OSUser, argv: list[str], env: dict[str, str], cwd: str) -> bool:
    try:
        done = subprocess.run(argv, user=user.uid, group=user.gid, extra_groups=list(user.groups), env=env,
                              cwd=cwd, capture_output=True, timeout=120)
    except OSError:
        return False
    return done.returncode == 0


def _reachable_python(user: OSUser, root: Path) -> tuple[str, dict[str, str]]:
    """An interpreter of this Python version that ``user`` can run, and the environment it needs: one installed
    where everybody can run it, else a copy of this one's installation (its standard library, without tests)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [sys.executable, os.path.realpath(sys.executable), getattr(sys, "_base_executable", ""),
                  shutil.which(f"python{version}") or "", f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    check = f"import sys, ssl, json; sys.exit(0 if '%d.%d' % sys.version_info[:2] == '{version}' else 1)"
    if not os.environ.get("ENIGMT_COPY_PYTHON"):  # set to try the copy even when an installed one would do
        for candidate in dict.fromkeys(c for c in candidates if c):
            if _runs_as(user, [candidate, "-c", check], {"PATH": "/usr/bin:/bin"}, str(root)):
                return candidate, {}
    home = root / "python"
    ignore = shutil.ignore_patterns("test", "tests", "site-packages", "__pycache__", "idlelib", "turtledemo",
                                    "ensurepip", "config-*", "*.a")
    shutil.copytree(Path(sys.base_prefix) / "lib", home / "lib", symlinks=True, ignore=ignore)
    (home / "bin").mkdir()
    real = Path(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))
    shutil.copy2(real, home / "bin" / f"python{version}")
    env = {"PYTHONHOME": str(home), "LD_LIBRARY_PATH": str(home / "lib")}
    python = str(home / "bin" / f"python{version}")
    if _runs_as(user, [python, "-c", check], {"PATH": "/usr/bin:/bin", **env}, str(root)):
        return python, env
    raise RuntimeError(f"no Python {version} interpreter that an ordinary user can run was found (tried "
                       f"{', '.join(dict.fromkeys(c for c in candidates if c))} and a copy of {sys.base_prefix}): "
                       f"install python{version} system-wide to run these tests")


def _package_path(users: OSUsers, user: OSUser, root: Path) -> str:
    """A PYTHONPATH with this checkout's package and its dependencies, reachable by ``user``."""
    package = root / "package"
    shutil.copytree(Path(enigm_recover.__file__).parent, package / "enigm_recover",
                    ignore=shutil.ignore_patterns("__pycache__"))
    sites = [p for p in dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"],
                                       *site.getsitepackages()]) if Path(p).is_dir()]
    path = ":".join([str(package), *sites])
    env = {**users.env(), "PYTHONPATH": path}
    if _runs_as(user, [users.python, "-c", IMPORTS], env, str(root)):
        return path
    copied = root / "site-packages"  # the installed dependencies are out of the users' reach: copy them
    for index, folder in enumerate(sites):
        shutil.copytree(folder, copied / str(index), symlinks=True, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "enigm_recover*"))
    path = ":".join([str(package), *(str(copied / str(i)) for i in range(len(sites)))])
    env["PYTHONPATH"] = path
    if not _runs_as(user, [users.python, "-c", IMPORTS], env, str(root)):
        raise RuntimeError("the package and its dependencies, copied to a readable folder, still do not import "
                           "for an ordinary user")
    return path


def make_os_users(members: int = 3) -> OSUsers:
    """A fresh group with ``members`` users in it and one user outside it (call ``remove_os_users`` after)."""
    tag = f"enigmt{secrets.token_hex(3)}"
    made: list[str] = []
    users = None
    try:
        subprocess.run(["groupadd", tag], check=True, capture_output=True)
        made.append(f"group:{tag}")
        for suffix in [*(f"c{i}" for i in range(1, members + 1)), "x"]:
            name = f"{tag}{suffix}"
            groups = ["-G", tag] if suffix != "x" else []
            subprocess.run(["useradd", "-M", "-N", "-s", "/usr/sbin/nologin", *groups, name], check=True,
                           capture_output=True)
            made.append(f"user:{name}")
        root = Path(tempfile.mkdtemp(prefix="enigmt-"))
        os.chmod(root, 0o755)
        home = root / "home"
        home.mkdir(mode=0o777)
        os.chmod(home, 0o1777)
        users = OSUsers(tag, grp.getgrnam(tag).gr_gid, [_user(f"{tag}c{i}") for i in range(1, members + 1)],
                        _user(f"{tag}x"), home=home, made=made)
        users.made.append(f"dir:{root}")
        users.python, users.python_env = _reachable_python(users.members[0], root)
        users.pythonpath = _package_path(users, users.members[0], root)
        return users
    except BaseException:
        _remove(made if users is None else users.made)
        raise


def _remove(made: list[str]) -> None:
    for item in reversed(made):
        kind, _, name = item.partition(":")
        if kind == "user":
            subprocess.run(["userdel", name], capture_output=True)
        elif kind == "group":
            subprocess.run(["groupdel", name], capture_output=True)
        elif kind == "dir":
            shutil.rmtree(name, ignore_errors=True)


def remove_os_users(users: OSUsers) -> None:
    _remove(users.made)
