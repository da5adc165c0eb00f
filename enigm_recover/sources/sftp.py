"""Snapshots on a backup host, over SFTP.

Listing reads only manifests and signatures, with the requests pipelined so a
folder of a thousand snapshots lists in a few round trips' time. Fetching a
payload downloads into the cache with progress, resumes after a dropped
connection, checks size and SHA-256 against the signed manifest and renames
into place only when whole; a verified cached payload is reused.

The source offers a synchronous interface (like the local folder) backed by a
private event loop thread, so the CLI and the app's workers can use it alike.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import posixpath
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Coroutine, TypeVar
from urllib.parse import unquote, urlsplit

from enigm_recover.sources.load_asyncssh import asyncssh

from enigm_recover.errors import (
    ConnectionFailed,
    PayloadIntegrityError,
    SourceError,
)
from enigm_recover.hashing import hash_file
from enigm_recover.logs import timed
from enigm_recover.private import create_private_file, make_private_dir
from enigm_recover.paths import display_text
from enigm_recover.progress import Progress, ProgressCallback, Stage, no_progress
from enigm_recover.snapshot.manifest import MAX_MANIFEST_BYTES, manifest_name, payload_name, signature_name
from enigm_recover.snapshot.source import Listing, RefusedName, SnapshotEntry, parse_entry
from enigm_recover.sources.names import claimed_time, classify, hostile_name_reason
from enigm_recover.sources.removal import removal_order, tombstone_name, tombstoned_id
from enigm_recover.sources.kex import Transport, negotiated
from enigm_recover.sources.ssh import SSHSettings, SSHTarget, connect

log = logging.getLogger(__name__)

LIST_CONCURRENCY = 64
WRITES_IN_FLIGHT = 64  # blocks handed to the writer thread and not yet written
FETCH_READ_SIZE = -1  # bytes per SFTP read request; -1: the largest the server allows
T = TypeVar("T")


@dataclass(frozen=True)
class SftpURL:
    target: SSHTarget
    path: str  # absolute, or relative to the login folder when the URL path starts with /~/

    @classmethod
    def parse(cls, url: str) -> "SftpURL":
        parts = urlsplit(url)
        if parts.scheme != "sftp" or not parts.hostname:
            raise SourceError(f"{url!r} is not of the form sftp://[user@]host[:port]/path")
        try:
            port = parts.port
        except ValueError:
            raise SourceError(f"{url!r} has an invalid port") from None
        path = unquote(parts.path, errors="surrogateescape") or "/"  # %FF: the byte 0xFF, as a local path
        if path == "/~" or path.startswith("/~/"):
            path = path[3:] or "."
        if "\x00" in path:
            raise SourceError(f"{url!r} has a NUL in its path")
        return cls(SSHTarget(parts.hostname, port, unquote(parts.username) if parts.username else None), path)

    def __str__(self) -> str:
        shown = self.path if self.path.startswith("/") else "/~/" + self.path
        return display_text(f"sftp://{self.target}{shown}")


class _LoopThread:
    """An event loop on a daemon thread, for running coroutines from synchronous code."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(_quiet_connection_errors)
        self.thread = threading.Thread(target=self.loop.run_forever, name="enigm-sftp", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except KeyboardInterrupt:
            future.cancel()
            raise

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        if not self.thread.is_alive():
            self.loop.close()


def _quiet_connection_errors(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """After a dropped connection, asyncssh's parallel readers leave failed tasks behind; the
    download already reports the drop, so do not print their tracebacks on the terminal."""
    if isinstance(context.get("exception"), (asyncssh.Error, OSError)):
        return
    loop.default_exception_handler(context)


def _cache_key(url: SftpURL) -> str:
    return hashlib.sha256(str(url).encode()).hexdigest()[:16]


class SftpSource:
    def __init__(self, url: SftpURL, settings: SSHSettings, cache_dir: Path) -> None:
        self.url = url
        self.settings = settings
        self.description = str(url)
        self.cache_root = cache_dir
        self.cache_dir = cache_dir / "payloads" / _cache_key(url)
        self._loop = _LoopThread()
        self._conn: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self._folder: str | None = None
        self.transport: Transport | None = None  # the negotiated key exchange, once connected
        # Size and SHA-256 of each payload path payload() returned, checked against the signed manifest
        # just before it returned (see snapshot.source.checked_payload).
        self.checked_payloads: dict[Path, tuple[int, str]] = {}

    # -- lifecycle ---------------------------------------------------------

    def close(self) -> None:
        self._loop.run(self._disconnect())
        self._loop.stop()

    def __enter__(self) -> "SftpSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def _disconnect(self) -> None:
        if self._sftp is not None:
            self._sftp.exit()
        if self._conn is not None:
            self._conn.close()
            try:
                await asyncio.wait_for(self._conn.wait_closed(), 5)
            except (asyncio.TimeoutError, OSError):
                pass
        self._conn = self._sftp = None

    async def _client(self) -> asyncssh.SFTPClient:
        if self._sftp is None:
            with timed(log, f"connecting to {self.url.target}"):
                self._conn = await connect(self.url.target, self.settings)
            self.transport = negotiated(self._conn, str(self.url.target))
            log.info("%s: %s", self.url.target, self.transport.describe())
            try:
                # Remote names are bytes: one that is not UTF-8 travels as surrogates, as local paths do.
                self._sftp = await self._conn.start_sftp_client(path_errors="surrogateescape")
                self._folder = await self._sftp.realpath(self.url.path)
            except asyncssh.SFTPNoSuchFile:
                raise SourceError(f"folder {self.url.path} does not exist on {self.url.target}") from None
            except (asyncssh.Error, OSError) as exc:
                await self._disconnect()
                raise ConnectionFailed(f"cannot start SFTP on {self.url.target}: {exc}") from None
        return self._sftp

    # -- listing -----------------------------------------------------------

    def list(self) -> Listing:
        raw, rejected, refused = self._loop.run(self._list())
        # Parse here, on the caller's thread, so the event loop only moves bytes.
        return Listing([parse_entry(*item) for item in raw], rejected, refused)

    async def _list(self) -> tuple[list[tuple[str, bytes, bytes | None]], list[str], list[RefusedName]]:
        sftp = await self._client()
        assert self._folder is not None
        try:
            names = await sftp.readdir(self._folder.encode("utf-8", "surrogateescape"))
        except asyncssh.SFTPError as exc:
            raise SourceError(f"cannot list {self._folder} on {self.url.target}: {exc.reason}") from None
        rejected: list[str] = []
        refused: list[RefusedName] = []
        present: dict[str, asyncssh.SFTPAttrs] = {}
        wanted: list[str] = []
        for entry in names:
            if entry.filename in (b".", b".."):
                continue
            verdict = classify(entry.filename)
            if verdict.refusal:
                rejected.append(verdict.refusal)
                if verdict.claims_manifest:
                    refused.append(RefusedName(verdict.shown, verdict.refusal, verdict.created))
            if hostile_name_reason(entry.filename) is None:
                present[entry.filename.decode()] = entry.attrs
            if verdict.snapshot_id:
                wanted.append(verdict.snapshot_id)
        gate = asyncio.Semaphore(LIST_CONCURRENCY)

        async def fetch(snapshot_id: str) -> tuple[str, bytes, bytes | None] | RefusedName:
            manifest_file = f"{snapshot_id}.manifest.toml"
            sig_file = signature_name(snapshot_id)
            try:
                async with gate:
                    manifest = await self._read_small(sftp, manifest_file, present[manifest_file])
                    sig = await self._read_small(sftp, sig_file, present[sig_file]) if sig_file in present else None
            except SourceError as exc:
                return RefusedName(snapshot_id, exc.message, claimed_time(snapshot_id))
            return snapshot_id, manifest, sig

        raw = []
        for result in await asyncio.gather(*(fetch(i) for i in sorted(wanted))):
            if isinstance(result, RefusedName):
                rejected.append(f"{manifest_name(result.name)!r}: {result.reason}")
                refused.append(result)
            else:
                raw.append(result)
        return raw, rejected, refused

    async def _inside(self, sftp: asyncssh.SFTPClient, name: str, attrs: asyncssh.SFTPAttrs) -> str:
        """The remote path of ``name``; a symlink must resolve inside the folder, to a regular file."""
        assert self._folder is not None
        path = posixpath.join(self._folder, name)
        if attrs.type == asyncssh.FILEXFER_TYPE_SYMLINK:
            try:
                real = await sftp.realpath(path)
            except asyncssh.SFTPError:
                raise SourceError(f"{name} is a symbolic link that does not resolve inside the snapshot folder; "
                                  "refused") from None
            if not real.startswith(self._folder.rstrip("/") + "/"):
                raise SourceError(f"{name} is a symbolic link leading outside the snapshot folder; refused")
            path = real
        elif attrs.type not in (asyncssh.FILEXFER_TYPE_REGULAR, asyncssh.FILEXFER_TYPE_UNKNOWN, None):
            raise SourceError(f"{name} is not a regular file; refused")
        return path

    async def _read_small(self, sftp: asyncssh.SFTPClient, name: str, attrs: asyncssh.SFTPAttrs) -> bytes:
        path = await self._inside(sftp, name, attrs)
        if attrs.size is not None and attrs.size > MAX_MANIFEST_BYTES:
            raise SourceError(f"{name} is {attrs.size} bytes, more than a manifest may be; refused")
        # The size from the listing saves the read that would only find the end of the file.
        want = attrs.size if attrs.size and attrs.type != asyncssh.FILEXFER_TYPE_SYMLINK else MAX_MANIFEST_BYTES + 1
        try:
            async with sftp.open(path, "rb") as f:
                return await f.read(want)
        except asyncssh.SFTPError as exc:
            raise SourceError(f"cannot read {name}: {exc.reason}") from None

    # -- removal (snapshots prune) -------------------------------------------

    def remove(self, entry: SnapshotEntry) -> None:
        """Remove a snapshot on the host: its manifest renamed to a hidden tombstone first (listing stops
        showing it at once), then its signature, payload and tombstone deleted (see ``sources.removal``)."""
        self.finish_removal(entry.id)

    def finish_removal(self, snapshot_id: str) -> None:
        """Remove what is left of a snapshot, from any point an earlier removal stopped at."""
        self._loop.run(self._remove(snapshot_id))

    def tombstoned(self) -> list[str]:
        """Snapshots whose removal began but did not finish (their manifest is already a tombstone)."""
        return self._loop.run(self._tombstoned())

    async def _tombstoned(self) -> list[str]:
        sftp = await self._client()
        assert self._folder is not None
        try:
            names = await sftp.listdir(self._folder)
        except asyncssh.SFTPError as exc:
            raise SourceError(f"cannot list {self._folder} on {self.url.target}: {exc.reason}") from None
        return sorted(i for i in (tombstoned_id(n) for n in names if isinstance(n, str)) if i is not None)

    async def _remove(self, snapshot_id: str) -> None:
        sftp = await self._client()
        assert self._folder is not None
        first, rest = removal_order(snapshot_id)
        tombstone = posixpath.join(self._folder, tombstone_name(snapshot_id))
        try:
            try:
                await sftp.posix_rename(posixpath.join(self._folder, first), tombstone)
            except asyncssh.SFTPOpUnsupported:
                await sftp.rename(posixpath.join(self._folder, first), tombstone)
            except asyncssh.SFTPNoSuchFile:
                pass
            for name in rest:
                try:
                    await sftp.remove(posixpath.join(self._folder, name))
                except asyncssh.SFTPNoSuchFile:
                    pass
        except asyncssh.SFTPError as exc:
            raise SourceError(f"cannot remove snapshot {snapshot_id} on {self.url.target}: {exc.reason}",
                              "check that the SFTP account may delete and rename files in the folder") from None

    # -- fetching ----------------------------------------------------------

    def payload(self, entry: SnapshotEntry, progress: ProgressCallback = no_progress) -> Path:
        return self._loop.run(self._fetch(entry, progress))

    async def _fetch(self, entry: SnapshotEntry, progress: ProgressCallback) -> Path:
        manifest = entry.manifest
        if manifest is None:
            raise SourceError(f"snapshot {entry.id} has no readable manifest to check its payload against")
        for folder in (self.cache_root, self.cache_dir.parent, self.cache_dir):  # made if missing, else checked
            make_private_dir(folder, "cache folder")
        dest = self.cache_dir / payload_name(entry.id)
        partial = dest.with_name(dest.name + ".partial")
        expected = (manifest.payload_size, manifest.payload_sha256)
        self.checked_payloads.pop(dest, None)
        if dest.exists():
            if hash_file(dest) == expected:
                progress(Progress(Stage.CACHED, manifest.payload_size, manifest.payload_size, "bytes"))
                self.checked_payloads[dest] = expected
                return dest
            dest.unlink()
        download = _Download(partial, manifest.payload_size)
        log.info("fetching %s (%d bytes, %d already here)", payload_name(entry.id), manifest.payload_size,
                 download.size)
        attempt = 0
        while True:
            try:
                with timed(log, f"fetching {payload_name(entry.id)}"):
                    await self._download(entry.id, download, progress)
                break
            except (asyncssh.DisconnectError, OSError, asyncio.TimeoutError,
                    asyncssh.SFTPConnectionLost, asyncssh.SFTPNoConnection) as exc:
                attempt += 1
                await self._disconnect()
                if attempt >= self.settings.attempts:
                    raise ConnectionFailed(
                        f"download of {payload_name(entry.id)} failed: {exc or type(exc).__name__} "
                        f"({attempt} attempts; the partial download is kept and resumes next time)") from None
                download.received = download.size
                self.settings.prompter.notice(
                    f"connection lost after {download.size:,} bytes; resuming (attempt {attempt + 1} of "
                    f"{self.settings.attempts})")
                await asyncio.sleep(self.settings.retry_delay * attempt)
        if (download.size, download.hasher.hexdigest()) != expected:
            partial.unlink()
            raise PayloadIntegrityError(
                f"the downloaded payload of {entry.id} does not match the signed size and SHA-256")
        os.replace(partial, dest)
        self.checked_payloads[dest] = expected
        return dest

    async def _download(self, snapshot_id: str, download: "_Download", progress: ProgressCallback) -> None:
        sftp = await self._client()
        name = payload_name(snapshot_id)
        assert self._folder is not None
        try:
            attrs = await sftp.lstat(posixpath.join(self._folder, name))
        except asyncssh.SFTPNoSuchFile:
            raise SourceError(f"payload {name} is missing on {self.url.target}") from None
        path = await self._inside(sftp, name, attrs)
        writer = _Writer(download)
        try:
            async with sftp.open(path, "rb", block_size=FETCH_READ_SIZE) as remote:
                # One pipeline of parallel reads for the whole file. Blocks may arrive out of order; they
                # are written and hashed in order on the writer's thread, and the partial file is always a
                # prefix.
                blocks = await remote.read_parallel(download.total - download.received, download.received)
                async for offset, data in blocks:
                    for block in download.in_order(offset, data):
                        await writer.put(block)
                    progress(Progress(Stage.FETCH, download.received, download.total, "bytes", name))
        finally:
            download.waiting.clear()  # blocks past a gap are fetched again on resume
            await writer.close()
            # No fsync: a partial or cached payload is never used without its SHA-256 being checked
            # against the signed manifest, so a write torn by a power cut is caught and fetched again.


class _Writer:
    """Appends a download's blocks to its partial file and hashes them, on a thread of its own.

    The network is never kept waiting on the disk: the event loop only hands each block over (a queue
    put) and waits only when ``WRITES_IN_FLIGHT`` blocks are already waiting to be written. Writing and
    hashing release the GIL, so they run beside the loop's decryption. A failed write is raised to the
    download at its next block, or when it closes."""

    def __init__(self, download: "_Download") -> None:
        self._download = download
        self._out = os.fdopen(create_private_file(download.partial, append=True), "ab")
        self._blocks: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._room = threading.Semaphore(WRITES_IN_FLIGHT)
        self._error: BaseException | None = None
        self._finished: Future[None] = Future()
        threading.Thread(target=self._run, name="enigm-fetch-writer", daemon=True).start()

    async def put(self, block: bytes) -> None:
        if not self._room.acquire(blocking=False):  # the disk is behind: wait on a thread, not on the loop
            await asyncio.get_running_loop().run_in_executor(None, self._room.acquire)
        if self._error is not None:
            raise self._error
        self._blocks.put(block)

    async def close(self) -> None:
        """Wait until every block handed over is written and the file closed; raise a failed write."""
        self._blocks.put(None)
        await asyncio.wrap_future(self._finished)
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            while (block := self._blocks.get()) is not None:
                if self._error is None:
                    try:
                        self._download.persist(self._out, block)
                    except BaseException as exc:  # noqa: BLE001 - raised to the download by put() or close()
                        self._error = exc
                self._room.release()
            self._out.close()
        except BaseException as exc:  # noqa: BLE001 - the close failed (a write-back error): same as a write
            self._error = self._error or exc
        finally:
            self._finished.set_result(None)


class _Download:
    """A payload download in progress: a prefix on disk, its hash, and blocks waiting their turn."""

    def __init__(self, partial: Path, total: int) -> None:
        self.partial = partial
        self.total = total
        self.hasher = hashlib.sha256()
        self.size = 0  # bytes written to the partial file (and hashed)
        self.waiting: dict[int, bytes] = {}
        if partial.exists() and partial.stat().st_size > total:
            partial.unlink()
        if partial.exists():
            with open(partial, "rb") as f:
                while block := f.read(1 << 20):
                    self.persist(None, block)
        self.received = self.size  # bytes taken in order from the network

    def in_order(self, offset: int, data: bytes) -> list[bytes]:
        """The blocks that now follow the received prefix, in order."""
        self.waiting[offset] = data
        ready = []
        while (block := self.waiting.pop(self.received, None)) is not None:
            ready.append(block)
            self.received += len(block)
        return ready

    def persist(self, out: Any, block: bytes) -> None:
        if out is not None:
            out.write(block)
        self.hasher.update(block)
        self.size += len(block)
