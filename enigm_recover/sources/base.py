"""The snapshot source interface and the listing entry it produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from enigm_recover.errors import EnigmError
from enigm_recover.snapshot.manifest import Manifest


@dataclass
class SnapshotEntry:
    """One snapshot as listed: its manifest and signature bytes, parsed if possible."""

    id: str
    manifest_bytes: bytes
    signature_bytes: bytes | None
    manifest: Manifest | None = None
    error: EnigmError | None = None


@dataclass
class Listing:
    entries: list[SnapshotEntry]
    rejected: list[str] = field(default_factory=list)  # names refused, with the reason


class SnapshotSource(Protocol):
    description: str

    def list(self) -> Listing: ...

    def payload(self, snapshot_id: str) -> Path:
        """A local path to the snapshot's payload (fetched into the cache if remote)."""
        ...
