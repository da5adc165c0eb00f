"""Turn a SOURCE argument into a snapshot source."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from enigm_recover.errors import SourceError
from enigm_recover.sources.local import LocalFolderSource


def open_source(spec: str) -> LocalFolderSource:
    if spec.startswith("file://"):
        parts = urlsplit(spec)
        if parts.netloc not in ("", "localhost"):
            raise SourceError(f"file URL {spec!r} names a remote host")
        return LocalFolderSource(Path(unquote(parts.path)))
    if spec.startswith("sftp://"):
        raise SourceError(f"SFTP sources are not available in this version: {spec}",
                          "copy the snapshots to a local folder and give its path")
    if "://" in spec:
        raise SourceError(f"unknown source scheme in {spec!r}", "give a folder path or a file:// URL")
    return LocalFolderSource(Path(spec))
