"""Rewrap a sealed snapshot to a new recovery key without decrypting its payload.

An age file is a text header (recipient stanzas wrapping one random 16-byte *file key*, then a MAC
over the header keyed from the file key) followed by the payload: a nonce and the STREAM chunks,
all keyed from the file key alone. So moving a snapshot to a new key changes only the header: the
file key is unwrapped with the old identity, the old header's MAC checked, the file key wrapped for
the new recipient in a fresh stanza (``mlkem768x25519`` for a hybrid key, ``X25519`` for a classic
one: so a classic history moves to a hybrid key, or back, header only), and the MAC recomputed. Every payload byte after the
header is copied as it was. The manifest gets the new payload size and SHA-256 and the new
recipient, and is signed again with the producer's key.

Crash safety. The new files are written beside the old ones as ``<name>.rewrap`` (each atomically,
the manifest last), checked — the signature trusted for the producer, the payload's size, its new
header's MAC — and only then renamed over the old ones: payload, signature, manifest. A run that
finds ``<id>.manifest.toml.rewrap`` finishes that snapshot's renames once the new files verify
(the payload re-hashed); any other leftover ``.rewrap`` file is deleted, the old files being
untouched until the manifest's ``.rewrap`` exists. So after a kill at any instant and a new run,
every snapshot is either old and valid or new and valid.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from enigm_recover.atomic import atomic_output, fsync_dir, write_atomic
from enigm_recover.bounded import read_bounded
from enigm_recover.errors import DecryptionError, PayloadIntegrityError, SignatureError
from enigm_recover.progress import Progress, ProgressCallback, no_progress
from enigm_recover.quorum.recovery_key import RecoveryIdentity, recipient_fingerprint
from enigm_recover.snapshot import signature
from enigm_recover.snapshot.agecrypt import (
    MAX_HEADER,
    _hkdf,
    _parse_header,
    _unwrap_file_key,
    header_bytes,
)
from enigm_recover.snapshot.manifest import (
    MAX_MANIFEST_BYTES,
    Manifest,
    manifest_name,
    payload_name,
    signature_name,
)

if TYPE_CHECKING:
    import asyncssh

SUFFIX = ".rewrap"
BLOCK = 1 << 20  # in a copy benchmark, 1 MiB blocks took less CPU than 4 MiB ones (they stay in cache)
BUFFERS = 8  # blocks in flight between the reading thread and the writing one
WRITEBACK = 32 << 20  # bytes written between two flushes to disk during a copy


@dataclass(frozen=True)
class RewrapResult:
    id: str
    status: str  # rewrapped | resumed | already
    old_fingerprint: str
    new_fingerprint: str
    old_sha256: str
    new_sha256: str
    new_size: int


# -- the header ---------------------------------------------------------------------------------


def new_header(file_key: bytes, recipient: str) -> bytes:
    """The whole header for one recipient of either kind (an ``mlkem768x25519`` stanza for a hybrid
    ``age1pq1...``, an ``X25519`` one for ``age1...``), MAC included, ending with its newline."""
    return header_bytes(file_key, recipient)


def open_header(head: bytes, identity: RecoveryIdentity) -> tuple[bytes, int]:
    """The file key and the header's length, after checking the header MAC with the unwrapped key."""
    header, offset = _parse_header(head)
    file_key = _unwrap_file_key(header, identity)
    mac = hmac.new(_hkdf(file_key, b"", b"header"), header.mac_input, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, header.mac):
        raise DecryptionError("age header MAC does not match: the header was altered")
    return file_key, offset


def _header_mac_ok(head: bytes, file_key: bytes) -> bool:
    header, _ = _parse_header(head)
    mac = hmac.new(_hkdf(file_key, b"", b"header"), header.mac_input, hashlib.sha256).digest()
    return hmac.compare_digest(mac, header.mac)


# -- one snapshot ---------------------------------------------------------------------------------


def _names(snapshot_id: str) -> tuple[str, str, str]:
    """In the order they are replaced: payload, signature, manifest."""
    return payload_name(snapshot_id), signature_name(snapshot_id), manifest_name(snapshot_id)


def check_signed(manifest_bytes: bytes, sig: bytes | None, allowed: signature.AllowedSigners) -> Manifest:
    manifest = Manifest.from_toml(manifest_bytes)
    signature.require_trusted(signature.check(manifest_bytes, sig, manifest.producer, allowed))
    return manifest


class _Writeback:
    """Has the disk write the copy while it goes on, so that the fsync at the end finds little left to write.

    Each time another ``WRITEBACK`` bytes were written and the last flush returned, ``fdatasync`` runs on a
    thread of its own (it waits on the disk, not the CPU). The fsync at the end (``atomic_output``'s) is still
    what makes the file durable. An error of a flush here is raised by ``close``: the kernel reports a write
    error to one fsync only, so it must not be lost on this thread.
    """

    def __init__(self, out: BinaryIO) -> None:
        self._fd = out.fileno()
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._pending: Future[None] | None = None
        self._since = 0

    def wrote(self, count: int) -> None:
        self._since += count
        if self._since >= WRITEBACK and (self._pending is None or self._pending.done()):
            if self._pending is not None:
                self._pending.result()
            self._pending = self._pool.submit(os.fdatasync, self._fd)
            self._since = 0

    def close(self) -> None:
        self._pool.shutdown(wait=True)  # before the file is closed, on error too
        if self._pending is not None:
            self._pending.result()


def _copy_hashing(src: BinaryIO, out: BinaryIO, old_head: bytes, new_head: bytes,
                  progress: ProgressCallback, label: str, total: int,
                  block: int = BLOCK, buffers: int = BUFFERS) -> tuple[int, str, int, str]:
    """Copy the body after the header, hashing the old file and the new one in the one read of the body,
    without decrypting anything. Returns (old size, old SHA-256, new size, new SHA-256).

    Two threads share the work (hashlib and file I/O release the GIL on big buffers): this one reads each
    block into the next of a ring of buffers and hashes it into the old file's SHA-256; the other hashes the
    blocks, in order, into the new file's SHA-256 and writes them. A buffer is read into again only once its
    block is written, so the new SHA-256 is of exactly the bytes handed to ``write``, after the new header.
    Several blocks in flight let each thread go on while the other waits for a core.
    """
    old_hash, new_hash = hashlib.sha256(old_head), hashlib.sha256(new_head)
    out.write(new_head)
    size = 0
    views = [memoryview(bytearray(block)) for _ in range(buffers)]
    writeback = _Writeback(out)

    def emit(chunk: memoryview) -> None:
        new_hash.update(chunk)
        out.write(chunk)
        writeback.wrote(len(chunk))

    pending: deque[Future[None]] = deque()
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:  # one worker: the blocks are written in order
            try:
                turn = 0
                while True:
                    if len(pending) == buffers:
                        pending.popleft().result()  # the oldest block is written: its buffer is free
                    view = views[turn % buffers]
                    count = src.readinto(view)
                    if not count:
                        break
                    chunk = view[:count]
                    old_hash.update(chunk)
                    pending.append(pool.submit(emit, chunk))
                    size += count
                    turn += 1
                    progress(Progress(label, len(old_head) + size, total, "bytes"))
                while pending:
                    pending.popleft().result()
            except BaseException:
                for waiting in pending:
                    waiting.cancel()  # on failure the partial file is discarded: write no more of it
                raise
    finally:
        writeback.close()
    return len(old_head) + size, old_hash.hexdigest(), len(new_head) + size, new_hash.hexdigest()


def rewrap_snapshot(folder: Path, manifest: Manifest, identity: RecoveryIdentity, new_recipient: str,
                    signing_key: asyncssh.SSHKey, allowed: signature.AllowedSigners,
                    progress: ProgressCallback = no_progress) -> RewrapResult:
    """Rewrap one verified snapshot in ``folder`` (its manifest already checked as trusted)."""
    new_fp = recipient_fingerprint(new_recipient)
    if manifest.recipient_fingerprint == new_fp:
        return RewrapResult(manifest.id, "already", new_fp, new_fp, manifest.payload_sha256,
                            manifest.payload_sha256, manifest.payload_size)
    if manifest.recipient_fingerprint != identity.fingerprint:
        raise DecryptionError(f"snapshot {manifest.id} is sealed to {manifest.recipient_fingerprint}, not to the key "
                              f"the shares make ({identity.fingerprint}); nothing was changed")
    payload, sig_name, manifest_file = _names(manifest.id)
    with open(folder / payload, "rb") as src:
        head = src.read(MAX_HEADER)
        file_key, offset = open_header(head, identity)
        head_new = new_header(file_key, new_recipient)
        src.seek(offset)
        with atomic_output(folder / (payload + SUFFIX), mode=0o644, overwrite=True) as out:
            old_size, old_sha, new_size, new_sha = _copy_hashing(
                src, out, head[:offset], head_new, progress, f"rewrap {manifest.id}", manifest.payload_size)
            if (old_size, old_sha) != (manifest.payload_size, manifest.payload_sha256):
                raise PayloadIntegrityError(f"payload of {manifest.id} does not match its signed size and SHA-256; "
                                            "it was not rewrapped")
    rewrapped = replace(manifest, recipient=new_recipient, recipient_fingerprint=new_fp,
                        payload_size=new_size, payload_sha256=new_sha)
    data = rewrapped.to_toml()
    sig = signature.sign(data, signing_key)
    write_atomic(folder / (sig_name + SUFFIX), sig, overwrite=True)
    write_atomic(folder / (manifest_file + SUFFIX), data, overwrite=True)  # last: from here on, resume finishes
    # The new payload is not read back to hash it: ``new_sha`` is the SHA-256 of exactly the bytes handed to
    # ``write`` (the new header, then every block in order, each hashed before its buffer is reused), and the
    # file was fsynced before its ``.rewrap`` name appeared. A read-back now would be served from the page cache
    # those writes filled — the same bytes hashed again, not the disk. What it could still catch (another size,
    # another header) is checked here: the signature, the size against the new manifest, the new header's MAC.
    # A resumed run, which did not write the bytes itself, hashes the file again (``rehash=True``).
    _verify_new(folder, manifest.id, allowed, file_key=file_key, rehash=False)
    _replace(folder, manifest.id)
    return RewrapResult(manifest.id, "rewrapped", manifest.recipient_fingerprint, new_fp, old_sha, new_sha, new_size)


def _candidate(folder: Path, name: str) -> Path:
    pending = folder / (name + SUFFIX)
    return pending if pending.exists() else folder / name


def _verify_new(folder: Path, snapshot_id: str, allowed: signature.AllowedSigners, *,
                file_key: bytes | None, rehash: bool) -> Manifest:
    """Check the new files (each the pending one if present, else the one already moved into place)."""
    payload, sig_name, manifest_file = _names(snapshot_id)
    data = read_bounded(_candidate(folder, manifest_file), MAX_MANIFEST_BYTES, "manifest") or b""
    sig = read_bounded(_candidate(folder, sig_name), MAX_MANIFEST_BYTES, "signature")
    manifest = check_signed(data, sig, allowed)
    path = _candidate(folder, payload)
    if path.stat().st_size != manifest.payload_size:
        raise PayloadIntegrityError(f"rewrapped payload of {snapshot_id} has the wrong size")
    with open(path, "rb") as f:
        if file_key is not None and not _header_mac_ok(f.read(MAX_HEADER), file_key):
            raise PayloadIntegrityError(f"rewrapped header of {snapshot_id} does not authenticate")
        if rehash:
            f.seek(0)
            if hashlib.file_digest(f, "sha256").hexdigest() != manifest.payload_sha256:
                raise PayloadIntegrityError(f"rewrapped payload of {snapshot_id} does not match its new manifest")
    return manifest


def _replace(folder: Path, snapshot_id: str) -> None:
    for name in _names(snapshot_id):
        pending = folder / (name + SUFFIX)
        if pending.exists():
            os.replace(pending, folder / name)
    fsync_dir(folder)


# -- resuming ---------------------------------------------------------------------------------------


def pending_ids(folder: Path) -> list[str]:
    """Snapshots with leftover ``.rewrap`` files (or partial files of them) from an interrupted run."""
    ids = set()
    for name in os.listdir(folder):
        if name.endswith(SUFFIX) or (name.startswith(".") and f"{SUFFIX}." in name and name.endswith(".partial")):
            base = name.lstrip(".")
            for suffix in (".payload.age", ".manifest.toml"):
                if suffix in base:
                    ids.add(base.split(suffix)[0])
    return sorted(ids)


def resume(folder: Path, snapshot_id: str, allowed: signature.AllowedSigners) -> RewrapResult | None:
    """Finish or undo an interrupted rewrap of one snapshot. Returns the finished result, or None when the
    leftovers were only discarded (the old files being intact)."""
    payload, sig_name, manifest_file = _names(snapshot_id)
    if (folder / (manifest_file + SUFFIX)).exists():
        try:
            manifest = _verify_new(folder, snapshot_id, allowed, file_key=None, rehash=True)
        except (SignatureError, PayloadIntegrityError, OSError):
            if not (folder / (payload + SUFFIX)).exists():
                raise  # renames had begun: the new files must verify (never reached: they are checked first)
            manifest = None
        if manifest is not None:
            _replace(folder, snapshot_id)
            return RewrapResult(snapshot_id, "resumed", "", manifest.recipient_fingerprint, "",
                                manifest.payload_sha256, manifest.payload_size)
    for name in os.listdir(folder):  # undo: the old files were never touched
        base = name.lstrip(".")
        if base.startswith(snapshot_id) and (name.endswith(SUFFIX) or (name.startswith(".") and
                                                                       name.endswith(".partial") and SUFFIX in name)):
            os.unlink(folder / name)
    fsync_dir(folder)
    return None
