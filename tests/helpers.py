"""Helpers for tests that forge or damage snapshots the way an attacker or a bug would."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import zstandard

from enigm_recover.snapshot import signature
from enigm_recover.snapshot.agecrypt import encrypt_stream
from enigm_recover.snapshot.manifest import Manifest, manifest_name, payload_name, signature_name


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
