"""The listing contract: what a snapshot source is, the listing it produces and one listed entry.

It belongs with the snapshot format: `sources/` implements it (SFTP, local folders) and the rest of
`snapshot/` reads it, so `snapshot/` never imports `sources/`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from enigm_recover.errors import EnigmError, SourceError
from enigm_recover.progress import ProgressCallback
from enigm_recover.snapshot.manifest import Manifest


@dataclass
class SnapshotEntry:
    """One snapshot as listed: its manifest and signature bytes, parsed if possible."""

    id: str
    manifest_bytes: bytes
    signature_bytes: bytes | None
    manifest: Manifest | None = None
    error: EnigmError | None = None


@dataclass(frozen=True)
class RefusedName:
    """A file that may be a snapshot's manifest but could not be listed (a refused name, a folder, a link,
    an unreadable file): resolving ``latest`` or a prefix must not pass over it as if it were absent."""

    name: str  # the snapshot id, or the refused file name as it may be shown
    reason: str
    created: str | None  # the creation time (YYYYMMDDTHHMMSSZ) its name begins with; None: unknown


@dataclass
class Listing:
    entries: list[SnapshotEntry]
    rejected: list[str] = field(default_factory=list)  # names refused, with the reason
    refused: list[RefusedName] = field(default_factory=list)  # the refused ones that may be snapshots


def parse_entry(snapshot_id: str, manifest_bytes: bytes, signature_bytes: bytes | None) -> SnapshotEntry:
    """An entry with its manifest parsed, or the parse error kept for the listing to show."""
    entry = SnapshotEntry(snapshot_id, manifest_bytes, signature_bytes)
    try:
        entry.manifest = Manifest.from_toml(manifest_bytes)
        if entry.manifest.id != snapshot_id:
            raise SourceError(f"manifest id {entry.manifest.id} does not match its file name")
    except EnigmError as exc:
        entry.manifest, entry.error = None, exc
    return entry


class Transport(Protocol):
    """How a remote source was reached (over SSH: the negotiated key exchange and cipher)."""

    @property
    def post_quantum(self) -> bool: ...

    def as_dict(self) -> dict[str, Any]: ...

    def describe(self) -> str: ...


class SnapshotSource(Protocol):
    description: str
    transport: Transport | None  # None: a local folder (or not connected yet)

    def list(self) -> Listing:
        """Read manifests and signatures only, never payloads."""
        ...

    def payload(self, entry: SnapshotEntry, progress: ProgressCallback) -> Path:
        """A local path to the snapshot's payload (fetched into the cache if remote)."""
        ...

    def close(self) -> None: ...


def transport_of(source: SnapshotSource) -> Transport | None:
    """The source's transport once it listed or fetched; None for local folders."""
    return getattr(source, "transport", None)


def checked_payload(source: SnapshotSource, path: Path) -> tuple[int, str] | None:
    """(size, SHA-256) of the payload at ``path`` as the source itself checked it against the signed manifest
    when its ``payload()`` returned that path (a remote source does, while fetching); None if it did not."""
    checked: dict[Path, tuple[int, str]] = getattr(source, "checked_payloads", {})
    return checked.get(path)
