"""Decrypt and decompress a verified snapshot into a stream of checked records.

Nothing here trusts the payload until the stream ends: the ciphertext is
hashed again as it is read (so a payload swapped after verification is
caught), age authenticates every chunk, and the record checker compares
counts and digests with the signed manifest at the end. Consumers therefore
commit only after the iterator is exhausted without error.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import zstandard

from enigm_recover.atomic import atomic_output
from enigm_recover.errors import PayloadIntegrityError, SnapshotContentError, WrongRecoveryKey
from enigm_recover.progress import Progress, ProgressCallback, no_progress
from enigm_recover.quorum.recovery_key import RecoveryIdentity
from enigm_recover.snapshot.agecrypt import decrypt_chunks
from enigm_recover.snapshot.records import MAX_LINE_BYTES, RecordChecker
from enigm_recover.snapshot.verify import VerifiedSnapshot
from enigm_recover.state.model import Kind


class _HashingReader:
    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.hasher = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.hasher.update(data)
        self.size += len(data)
        return data


def require_matching_identity(verified: VerifiedSnapshot, identity: RecoveryIdentity) -> None:
    if identity.fingerprint != verified.manifest.recipient_fingerprint:
        raise WrongRecoveryKey(
            f"the combined recovery key ({identity.fingerprint}) is not the one this snapshot was "
            f"sealed to ({verified.manifest.recipient_fingerprint})")


def plaintext_blocks(verified: VerifiedSnapshot, identity: RecoveryIdentity,
                     progress: ProgressCallback = no_progress) -> Iterator[bytes]:
    """Decompressed payload bytes, in blocks; raises at the end if anything is off."""
    require_matching_identity(verified, identity)
    manifest = verified.manifest
    decompressor = zstandard.ZstdDecompressor().decompressobj()
    with open(verified.payload_path, "rb") as f:
        reader = _HashingReader(f)
        for block in decrypt_chunks(reader, identity):  # type: ignore[arg-type]
            if decompressor.eof:
                raise SnapshotContentError("the payload holds data after the end of its zstd stream")
            try:
                out = decompressor.decompress(block)
            except zstandard.ZstdError:
                raise SnapshotContentError("the decrypted payload is not a valid zstd stream") from None
            if decompressor.eof and decompressor.unused_data:
                raise SnapshotContentError("the payload holds data after the end of its zstd stream")
            if out:
                yield out
            progress(Progress("decrypt payload", reader.size, manifest.payload_size, "bytes"))
    if not decompressor.eof:
        raise SnapshotContentError("the decrypted payload's zstd stream is truncated")
    if reader.size != manifest.payload_size or reader.hasher.hexdigest() != manifest.payload_sha256:
        raise PayloadIntegrityError("the payload changed after it was verified; verify and try again")


def payload_lines(verified: VerifiedSnapshot, identity: RecoveryIdentity,
                  progress: ProgressCallback = no_progress) -> Iterator[bytes]:
    """Each record line, with its newline."""
    tail = b""
    for block in plaintext_blocks(verified, identity, progress):
        block = tail + block
        end = block.rfind(b"\n") + 1
        tail = block[end:]
        if len(tail) > MAX_LINE_BYTES:
            raise SnapshotContentError(f"a payload record is longer than {MAX_LINE_BYTES} bytes")
        if end:
            yield from block[:end].splitlines(keepends=True)
    if tail:
        raise SnapshotContentError("the payload's last record is not terminated by a newline")


def records(verified: VerifiedSnapshot, identity: RecoveryIdentity,
            progress: ProgressCallback = no_progress) -> Iterator[tuple[Kind, dict[str, Any], bytes]]:
    """Checked records in payload order: (kind, record, canonical line)."""
    checker = RecordChecker(verified.manifest)
    for line in payload_lines(verified, identity, progress):
        kind, record = checker.check(line)
        yield kind, record, line
    checker.finish()


def unseal_to_file(verified: VerifiedSnapshot, identity: RecoveryIdentity, out: Path, *,
                   overwrite: bool = False, progress: ProgressCallback = no_progress) -> dict[str, int]:
    """Write the checked records as JSON Lines to ``out`` (mode 0600), whole or not at all."""
    counts: dict[str, int] = {}
    with atomic_output(out, mode=0o600, overwrite=overwrite) as f:
        for kind, _record, line in records(verified, identity, progress):
            f.write(line)
            counts[kind.name] = counts.get(kind.name, 0) + 1
    return counts
