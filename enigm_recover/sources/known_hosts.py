"""Which known_hosts files vouch for a host, as OpenSSH reads them, and recording an accepted key.

OpenSSH trusts a host key found in the user's files (``UserKnownHostsFile``, by default
``~/.ssh/known_hosts`` and ``~/.ssh/known_hosts2``) or in the global ones (``GlobalKnownHostsFile``, by
default ``/etc/ssh/ssh_known_hosts`` and ``/etc/ssh/ssh_known_hosts2``); ``@revoked`` and
``@cert-authority`` lines count wherever they are. A key the operator accepts is appended to the first user
file, its host name hashed when ``HashKnownHosts yes``.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from enigm_recover.sources.load_asyncssh import asyncssh
from asyncssh.config import SSHClientConfig, SSHConfig

from enigm_recover.bounded import TRUST_FILE, read_text_bounded
from enigm_recover.errors import SourceError
from enigm_recover.private import create_private_file, make_private_dir

DEFAULT_USER_FILES = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
DEFAULT_GLOBAL_FILES = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")


class _TrustConfig(SSHClientConfig):
    """asyncssh's reading of the client config, plus the option it skips that trust needs."""

    _handlers = {**SSHClientConfig._handlers, "hashknownhosts": ("HashKnownHosts", SSHConfig._set_bool)}


@dataclass(frozen=True)
class KnownHostsFiles:
    user: tuple[Path, ...]  # the first records accepted keys; empty with `UserKnownHostsFile none`
    global_: tuple[Path, ...]
    hash_names: bool = False

    @property
    def record_to(self) -> Path | None:
        return self.user[0] if self.user else None

    def describe(self) -> str:
        """The files read, for messages: the one that records, and every other that exists."""
        files = [f for f in (*self.user, *self.global_) if f == self.record_to or f.exists()]
        return ", ".join(str(f) for f in files) if files else "no known_hosts file"

    def load(self) -> asyncssh.SSHKnownHosts:
        """Every file's lines, as one list (a missing file holds none)."""
        texts = [read_text_bounded(path, TRUST_FILE, "known_hosts file", SourceError, missing_ok=True) or ""
                 for path in (*self.user, *self.global_)]
        try:
            return asyncssh.import_known_hosts("\n".join(texts))
        except (ValueError, asyncssh.KeyImportError) as exc:
            raise SourceError(f"a known_hosts file cannot be read ({self.describe()}): {exc}") from None


def _paths(values: Any, defaults: tuple[str, ...]) -> tuple[Path, ...]:
    if values is None:
        values = defaults
    return tuple(Path(os.path.expanduser(str(v))) for v in values if str(v).lower() != "none")


def known_hosts_files(probe: asyncssh.SSHClientConnectionOptions, override: Path | None,
                      config_paths: list[Path], host: str | None = None) -> KnownHostsFiles:
    """The files for ``host`` (as given: a name or a config alias) that ``probe`` describes; ``override``
    replaces the user's files, as ``-o UserKnownHostsFile=`` does with ssh (the global files still count)."""
    user = (override,) if override else _paths(probe.config.get("UserKnownHostsFile"), DEFAULT_USER_FILES)
    global_ = _paths(probe.config.get("GlobalKnownHostsFile"), DEFAULT_GLOBAL_FILES)
    return KnownHostsFiles(user, global_, _hash_known_hosts(probe, config_paths, host or probe.host))


def _hash_known_hosts(probe: asyncssh.SSHClientConnectionOptions, config_paths: list[Path], host: str) -> bool:
    readable = [str(p) for p in config_paths if os.access(p, os.R_OK)]
    if not readable:
        return False
    try:
        config = _TrustConfig.load(None, readable, False, False, False, getpass.getuser(), (), host, probe.port)
    except (OSError, ValueError, asyncssh.ConfigParseError):
        return False  # asyncssh already read these files for the connection; it reports their errors
    return bool(config.get("HashKnownHosts", False))


def host_pattern(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def hashed_name(name: str, salt: bytes | None = None) -> str:
    """OpenSSH's hashed host name: ``|1|base64(salt)|base64(HMAC-SHA1(salt, name))``."""
    salt = salt if salt is not None else os.urandom(20)
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


def record_host_key(files: KnownHostsFiles, host: str, port: int, key: asyncssh.SSHKey) -> Path:
    """Append an accepted host key to the first user file (private, created if missing)."""
    path = files.record_to
    if path is None:
        raise SourceError("UserKnownHostsFile is none: there is no file to record an accepted host key in",
                          "name a known_hosts file with --known-hosts")
    name = host_pattern(host, port)
    line = f"{hashed_name(name) if files.hash_names else name} {key.export_public_key().decode().strip()}\n"
    make_private_dir(path.parent, "known_hosts folder", check=False)
    with os.fdopen(create_private_file(path, append=True), "a", encoding="utf-8") as f:
        f.write(line)
    return path
