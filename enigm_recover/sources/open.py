"""Turn a SOURCE argument into a snapshot source."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from typing import TYPE_CHECKING

from enigm_recover.errors import SourceError
from enigm_recover.snapshot.source import SnapshotSource
from enigm_recover.sources.local import LocalFolderSource

if TYPE_CHECKING:  # the SSH client (asyncssh) is imported for an sftp:// source only
    from enigm_recover.sources.ssh import SSHSettings


def needs_ssh(spec: str) -> bool:
    """Whether the source ``spec`` names is reached over SSH (then SSH settings are needed to open it)."""
    return spec.startswith("sftp://")


def open_source(spec: str, ssh: SSHSettings | None = None, cache_dir: Path | None = None) -> SnapshotSource:
    """A folder path, ``file://`` URL or ``sftp://[user@]host[:port]/path`` (host may be a config alias)."""
    if spec.startswith("file://"):
        parts = urlsplit(spec)
        if parts.netloc not in ("", "localhost"):
            raise SourceError(f"file URL {spec!r} names a remote host")
        return LocalFolderSource(Path(unquote(parts.path, errors="surrogateescape")))
    if needs_ssh(spec):
        from enigm_recover.sources.sftp import SftpSource, SftpURL
        from enigm_recover.sources.ssh import SSHSettings

        if cache_dir is None:
            raise SourceError("an SFTP source needs a cache folder")
        return SftpSource(SftpURL.parse(spec), ssh or SSHSettings(), cache_dir)
    if "://" in spec:
        raise SourceError(f"unknown source scheme in {spec!r}", "give a folder path, file:// or sftp:// URL")
    return LocalFolderSource(Path(spec))
