"""Helpers for tests that forge or damage snapshots the way an attacker or a bug would."""

from __future__ import annotations

import hashlib
import io
from datetime import datetime, timedelta, timezone
from pathlib import Path

import zstandard

from enigm_recover.snapshot import signature
from enigm_recover.snapshot.agecrypt import encrypt_stream
from enigm_recover.snapshot.manifest import (
    KindScope,
    Manifest,
    manifest_name,
    new_snapshot_id,
    payload_name,
    signature_name,
)
from enigm_recover.state.model import KINDS


def manifest_path(folder: Path, snapshot_id: str) -> Path:
    return folder / manifest_name(snapshot_id)


def read_manifest(folder: Path, snapshot_id: str) -> Manifest:
    return Manifest.from_toml(manifest_path(folder, snapshot_id).read_bytes())


def sign_as_producer(folder: Path, snapshot_id: str, manifest_bytes: bytes, key_path: Path) -> None:
    """Write a manifest and a valid producer signature over it (a producer-side bug, not an attack)."""
    key = signature.load_signing_key(key_path)
    manifest_path(folder, snapshot_id).write_bytes(manifest_bytes)
    (folder / signature_name(snapshot_id)).write_bytes(signature.sign(manifest_bytes, key))


def write_payload(folder: Path, snapshot_id: str, plaintext: bytes, recipient: str) -> tuple[int, str]:
    """Compress and encrypt ``plaintext`` as the snapshot's payload; returns (size, sha256)."""
    compressed = zstandard.ZstdCompressor().compress(plaintext)
    out = io.BytesIO()
    encrypt_stream([compressed], recipient, out)
    data = out.getvalue()
    (folder / payload_name(snapshot_id)).write_bytes(data)
    return len(data), hashlib.sha256(data).hexdigest()


def write_signed_manifests(folder: Path, key_path: Path, count: int, recipient: str) -> None:
    """Write ``count`` manifests, an hour apart from 2024-01-01, each with a valid signature by the key at
    ``key_path`` (producer ``backup@drill``); their payloads do not exist (size 1, a fake SHA-256)."""
    key = signature.load_signing_key(key_path)
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    for i in range(count):
        created = start + timedelta(hours=i)
        m = Manifest(id=new_snapshot_id(created, f"{i:08x}"), created_at=created, environment="prod",
                     producer="backup@drill", recipient=recipient, payload_size=1, payload_sha256="0" * 64,
                     scope={k.name: KindScope(k.field_names, i, "0" * 64) for k in KINDS})
        data = m.to_toml()
        (folder / manifest_name(m.id)).write_bytes(data)
        (folder / signature_name(m.id)).write_bytes(signature.sign(data, key))


def dump(url: str) -> dict[str, list[tuple]]:
    """Every kind's rows in a target store, in stream order (to compare end states across stores)."""
    from enigm_recover.state.stores import open_store

    with open_store(url) as store:
        return {kind.name: list(store.stream(kind)) for kind in KINDS}
