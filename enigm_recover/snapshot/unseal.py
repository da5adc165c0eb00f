"""Decrypt and decompress a verified snapshot into a stream of checked records.

Nothing here trusts the payload until the stream ends: the ciphertext is
hashed as it is read and compared with the signed SHA-256 at the end, age
authenticates every chunk, and the record checker compares counts and
digests with the signed manifest. Consumers therefore commit only after the
iterator is exhausted without error.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import zstandard

from enigm_recover.atomic import atomic_output
from enigm_recover.errors import DecryptionError, PayloadIntegrityError, SnapshotContentError, WrongRecoveryKey
from enigm_recover.prefetch import prefetched
from enigm_recover.progress import Progress, ProgressCallback, Stage, no_progress
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

    def drain(self) -> None:
        while self.read(READ_BLOCK):
            pass


READ_BLOCK = 1 << 20
DECOMPRESSED_BLOCK = 1 << 20
READ_AHEAD_BLOCKS = 8  # decrypted blocks waiting for the decompressor


def require_matching_identity(verified: VerifiedSnapshot, identity: RecoveryIdentity) -> None:
    if identity.fingerprint != verified.manifest.recipient_fingerprint:
        raise WrongRecoveryKey(
            f"the combined recovery key ({identity.fingerprint}) is not the one this snapshot was "
            f"sealed to ({verified.manifest.recipient_fingerprint})")


def _altered(verified: VerifiedSnapshot, reader: _HashingReader) -> PayloadIntegrityError | None:
    manifest = verified.manifest
    if reader.size == manifest.payload_size and reader.hasher.hexdigest() == manifest.payload_sha256:
        return None
    return PayloadIntegrityError("payload SHA-256 does not match the signed manifest: the payload was altered")


def _decrypted_blocks(verified: VerifiedSnapshot,
                      identity: RecoveryIdentity) -> Iterator[list[tuple[bytes, int]]]:
    """Each decrypted block with the payload bytes read so far (one per batch, for ``prefetched``).

    The whole file is always hashed: when anything fails, a payload that does not
    match its signed SHA-256 is reported as altered, whatever else went wrong.
    """
    with open(verified.payload_path, "rb") as f:
        reader = _HashingReader(f)
        try:
            for block in decrypt_chunks(reader, identity, READ_BLOCK):  # type: ignore[arg-type]
                yield [(block, reader.size)]
        except DecryptionError as exc:
            reader.drain()
            raise _altered(verified, reader) or exc from None
        altered = _altered(verified, reader)
        if altered is not None:
            raise altered


def plaintext_blocks(verified: VerifiedSnapshot, identity: RecoveryIdentity,
                     progress: ProgressCallback = no_progress) -> Iterator[bytes]:
    """Decompressed payload bytes, in blocks; raises at the end if anything is off.

    The payload's SHA-256 is checked here, in the same pass as decryption, so a
    caller may skip hashing it beforehand; nothing is trusted until the end.
    Reading, hashing and ChaCha20-Poly1305 run on a thread of their own and zstd
    here: all release the GIL, so the two use two cores.
    """
    require_matching_identity(verified, identity)
    total = verified.manifest.payload_size
    decompressor = zstandard.ZstdDecompressor().decompressobj(write_size=DECOMPRESSED_BLOCK)
    blocks = prefetched(_decrypted_blocks(verified, identity), depth=READ_AHEAD_BLOCKS)
    try:
        for block, done in blocks:
            try:
                out = _decompress(decompressor, block)
            except SnapshotContentError as content_error:
                raise _final_verdict(blocks) or content_error from None
            if out:
                yield out
            progress(Progress(Stage.DECRYPT, done, total, "bytes"))
        if not decompressor.eof:
            raise SnapshotContentError("the decrypted payload's zstd stream is truncated")
    finally:
        blocks.close()


def _decompress(decompressor: Any, block: bytes) -> bytes:
    if decompressor.eof:
        raise SnapshotContentError("the payload holds data after the end of its zstd stream")
    try:
        out = decompressor.decompress(block)
    except zstandard.ZstdError:
        raise SnapshotContentError("the decrypted payload is not a valid zstd stream") from None
    if decompressor.eof and decompressor.unused_data:
        raise SnapshotContentError("the payload holds data after the end of its zstd stream")
    return out


def _final_verdict(blocks: Iterator[tuple[bytes, int]]) -> Exception | None:
    """Read (and hash) the rest of the payload; what that found wrong, such as an altered payload."""
    try:
        for _ in blocks:
            pass
    except Exception as exc:  # noqa: BLE001 - returned to take precedence over the content error
        return exc
    return None


def payload_lines(verified: VerifiedSnapshot, identity: RecoveryIdentity,
                  progress: ProgressCallback = no_progress) -> Iterator[bytes]:
    """Each record line, with its newline. A block is split as it is (no copy of the whole block): only the
    line cut at a block's end is joined with the start of the next."""
    tail = b""
    for block in plaintext_blocks(verified, identity, progress):
        lines = block.splitlines(keepends=True)
        if not lines:
            continue
        if tail:
            lines[0] = tail + lines[0]
        tail = b"" if lines[-1].endswith(b"\n") else lines.pop()
        if len(tail) > MAX_LINE_BYTES:
            raise SnapshotContentError(f"a payload record is longer than {MAX_LINE_BYTES} bytes")
        yield from lines
    if tail:
        raise SnapshotContentError("the payload's last record is not terminated by a newline")


def records(verified: VerifiedSnapshot, identity: RecoveryIdentity,
            progress: ProgressCallback = no_progress) -> Iterator[tuple[Kind, tuple[Any, ...], bytes]]:
    """Checked records in payload order: (kind, values in field order, canonical line)."""
    checker = RecordChecker(verified.manifest)
    for line in payload_lines(verified, identity, progress):
        kind, values = checker.check(line)
        yield kind, values, line
    checker.finish()


def unseal_to_file(verified: VerifiedSnapshot, identity: RecoveryIdentity, out: Path, *,
                   overwrite: bool = False, progress: ProgressCallback = no_progress) -> dict[str, int]:
    """Write the checked records as JSON Lines to ``out`` (mode 0600), whole or not at all."""
    counts: dict[str, int] = {}
    with atomic_output(out, mode=0o600, overwrite=overwrite) as f:
        for kind, _values, line in records(verified, identity, progress):
            f.write(line)
            counts[kind.name] = counts.get(kind.name, 0) + 1
    return counts
