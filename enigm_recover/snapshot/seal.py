"""Seal the live platform state into a signed, encrypted snapshot.

The store is read in one read transaction (a consistent view across kinds),
streamed kind by kind in key order through canonical JSON lines, zstd and age,
into a temporary payload file. The manifest is written last, so a listing
never shows a snapshot whose payload is incomplete.
"""

from __future__ import annotations

import hashlib
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Iterator

import asyncssh
import zstandard

from enigm_recover.atomic import atomic_output, write_atomic
from enigm_recover.progress import Progress, ProgressCallback, Stage, no_progress
from enigm_recover.snapshot import signature
from enigm_recover.snapshot.agecrypt import encrypt_stream
from enigm_recover.snapshot.manifest import (
    Manifest,
    manifest_name,
    new_snapshot_id,
    payload_name,
    signature_name,
)
from enigm_recover.snapshot.records import KindDigest, encode_rows
from enigm_recover.snapshot.scope import check_live_columns
from enigm_recover.snapshot.catalog import newest_first
from enigm_recover.snapshot.source import Listing
from enigm_recover.state.model import KIND_BY_NAME, KINDS
from enigm_recover.state.store import TargetStore

ZSTD_LEVEL = 3


class _HashingWriter:
    """A write-only file wrapper that counts and hashes what passes through."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.size = 0
        self.hasher = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.hasher.update(data)
        self.size += len(data)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()


def read_recipient_file(path: Path) -> str:
    """The one ``age1...`` line of a recipients file (``#`` comments allowed, like age -R)."""
    from enigm_recover.quorum.keyring import read_recipient

    return read_recipient(path).recipient


def read_sealing_recipient(path: Path) -> str:
    """The recipient to seal to: as ``read_recipient_file``, and never one marked retired (``keys rotate``)."""
    from enigm_recover.quorum.keyring import read_recipient, refuse_retired

    recipient = read_recipient(path)
    refuse_retired(recipient)
    return recipient.recipient


def _previous_id(listing: Listing, environment: str) -> str | None:
    same_env = [e for e in newest_first(listing.entries) if e.manifest and e.manifest.environment == environment]
    return same_env[0].id if same_env else None


def seal(
    store: TargetStore,
    *,
    recipient: str,
    signing_key: asyncssh.SSHKey,
    environment: str,
    producer: str,
    out_dir: Path,
    existing: Listing,
    created_at: datetime | None = None,
    id_token: str | None = None,
    progress: ProgressCallback = no_progress,
) -> Manifest:
    """Seal the store's records into ``out_dir``; ``existing`` is that folder's listing (the newest snapshot
    of the same environment there becomes the new one's previous id)."""
    created = (created_at or datetime.now(timezone.utc)).replace(microsecond=0)
    snapshot_id = new_snapshot_id(created, id_token)
    previous = _previous_id(existing, environment)
    digests: dict[str, KindDigest] = {}

    for kind in KINDS:  # before any file is created
        check_live_columns(kind, store.columns(kind))

    def compressed() -> Iterator[bytes]:
        compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=-1).compressobj()
        for kind in KINDS:
            total = store.count(kind)
            digest = digests[kind.name] = KindDigest()
            for block in encode_rows(kind, store.stream(kind), digest):
                out = compressor.compress(block)
                if out:
                    yield out
                progress(Progress(Stage.SEAL, digest.count, total, "records", kind.name))
        yield compressor.flush()

    payload_path = out_dir / payload_name(snapshot_id)
    with store.consistent_reads(), atomic_output(payload_path, mode=0o644) as f:  # one view across all kinds
        writer = _HashingWriter(f)
        encrypt_stream(compressed(), recipient, writer)  # type: ignore[arg-type]

    manifest = Manifest(
        id=snapshot_id,
        created_at=created,
        environment=environment,
        producer=producer,
        recipient=recipient,
        payload_size=writer.size,
        payload_sha256=writer.hasher.hexdigest(),
        scope={name: digest.scope(KIND_BY_NAME[name]) for name, digest in digests.items()},
        previous_id=previous,
    )
    data = manifest.to_toml()
    try:
        write_atomic(out_dir / signature_name(snapshot_id), signature.sign(data, signing_key))
        write_atomic(out_dir / manifest_name(snapshot_id), data)
    except BaseException:
        for name in (payload_name(snapshot_id), signature_name(snapshot_id)):
            try:
                os.unlink(out_dir / name)
            except FileNotFoundError:
                pass
        raise
    return manifest
