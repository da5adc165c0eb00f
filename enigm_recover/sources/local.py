"""A local folder of snapshots: removable media in an air-gapped room, or a mount."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from enigm_recover.bounded import read_bounded
from enigm_recover.errors import SourceError
from enigm_recover.paths import display_path
from enigm_recover.progress import ProgressCallback, no_progress
from enigm_recover.snapshot.manifest import MAX_MANIFEST_BYTES, payload_name, signature_name
from enigm_recover.snapshot.source import Listing, RefusedName, SnapshotEntry, parse_entry
from enigm_recover.sources.names import claimed_time, classify
from enigm_recover.sources.removal import removal_order, tombstone_name, tombstoned_id


class LocalFolderSource:
    transport = None  # read from the file system: no transport to describe

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.description = display_path(folder)
        try:
            is_folder = folder.is_dir()
        except OSError as exc:  # e.g. a name too long, or no permission to look
            raise SourceError(f"snapshot folder {folder} cannot be used: {exc.strerror}") from None
        if not is_folder:
            raise SourceError(f"snapshot folder {folder} does not exist or is not a folder")

    def close(self) -> None:
        pass

    def __enter__(self) -> "LocalFolderSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _safe_file(self, name: str) -> Path | None:
        """The path of ``name`` inside the folder if it is a regular file that stays inside."""
        path = self.folder / name
        try:
            st = path.lstat()
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(st.st_mode):
            real = path.resolve()
            if self.folder.resolve() not in real.parents:
                raise SourceError(f"{name} is a symbolic link leading outside the snapshot folder; refused")
            st = real.stat()
        if not stat.S_ISREG(st.st_mode):
            raise SourceError(f"{name} is not a regular file; refused")
        return path

    @staticmethod
    def _read_small(path: Path) -> bytes:
        """A manifest or signature: a regular file (checked again on the opened file) of at most the
        manifest limit, as over SFTP."""
        data = read_bounded(path, MAX_MANIFEST_BYTES, "file", SourceError)
        assert data is not None
        return data

    def list(self) -> Listing:
        listing = Listing(entries=[])
        try:
            names = sorted(os.listdir(self.folder))
        except OSError as exc:
            raise SourceError(f"cannot read snapshot folder {self.folder}: {exc}") from None
        for name in names:
            verdict = classify(name)
            if verdict.refusal:
                listing.rejected.append(verdict.refusal)
                if verdict.claims_manifest:
                    listing.refused.append(RefusedName(verdict.shown, verdict.refusal, verdict.created))
            if verdict.snapshot_id is None:
                continue
            try:
                manifest_path = self._safe_file(name)
                sig_path = self._safe_file(signature_name(verdict.snapshot_id))
                assert manifest_path is not None
                manifest = self._read_small(manifest_path)
                sig = self._read_small(sig_path) if sig_path else None
            except (SourceError, OSError, RuntimeError) as exc:  # RuntimeError: a symbolic link loop
                reason = exc.message if isinstance(exc, SourceError) else f"{name} cannot be read: " \
                    f"{getattr(exc, 'strerror', None) or exc}; refused"
                listing.rejected.append(f"{name!r}: {reason}")
                listing.refused.append(RefusedName(verdict.snapshot_id, reason, claimed_time(verdict.snapshot_id)))
                continue
            listing.entries.append(parse_entry(verdict.snapshot_id, manifest, sig))
        return listing

    def payload(self, entry: SnapshotEntry, progress: ProgressCallback = no_progress) -> Path:
        name = payload_name(entry.id)
        path = self._safe_file(name)
        if path is None:
            raise SourceError(f"payload {name} is missing from {self.folder}",
                              "copy the whole snapshot (manifest, signature and payload)")
        return path

    # -- removal (snapshots prune) -------------------------------------------------

    def remove(self, entry: SnapshotEntry) -> None:
        """Remove a snapshot: its manifest renamed to a hidden tombstone first (listing stops showing it at
        once), then its signature, payload and tombstone deleted (see ``sources.removal``)."""
        self.finish_removal(entry.id)

    def finish_removal(self, snapshot_id: str) -> None:
        """Remove what is left of a snapshot, from any point an earlier removal stopped at."""
        first, rest = removal_order(snapshot_id)
        try:
            try:
                os.rename(self.folder / first, self.folder / tombstone_name(snapshot_id))
            except FileNotFoundError:
                pass
            _sync_folder(self.folder)
            for name in rest:
                try:
                    os.unlink(self.folder / name)
                except FileNotFoundError:
                    pass
            _sync_folder(self.folder)
        except OSError as exc:
            raise SourceError(f"cannot remove snapshot {snapshot_id} from {self.description}: {exc.strerror}",
                              "check that the folder is writable by you (removable media may be read-only)") from None

    def tombstoned(self) -> list[str]:
        """Snapshots whose removal began but did not finish (their manifest is already a tombstone)."""
        try:
            names = os.listdir(self.folder)
        except OSError as exc:
            raise SourceError(f"cannot read snapshot folder {self.folder}: {exc}") from None
        return sorted(i for i in (tombstoned_id(n) for n in names) if i is not None)


def _sync_folder(folder: Path) -> None:
    """Make the folder's renames and deletions durable before the next step (and before the audit entry)."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems (e.g. FAT on removable media) cannot sync a folder
    finally:
        os.close(fd)
