"""``keys rewrap``: move snapshots in a local folder from the old recovery key to the new one.

Everything that can be checked before the custodians type a share is checked first — interrupted
rewraps finished or undone, the snapshots chosen, each manifest's signature trusted, each sealed to
the old key (or already to the new one), the producer's key trusted to sign again for every
producer — so a bad request (a snapshot sealed to a third key, a retired new key, an untrusted
signing key) changes nothing. Each snapshot rewrapped is an audit entry (old and new key, old and
new SHA-256).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from enigm_recover.errors import DecryptionError, SignatureError, SnapshotNotFound, SourceError
from enigm_recover.progress import ProgressCallback, no_progress
from enigm_recover.quorum.recovery_key import RecoveryIdentity, recipient_fingerprint
from enigm_recover.recovery.session import Recovery
from enigm_recover.snapshot import rewrap, signature
from enigm_recover.snapshot.catalog import newest_first, resolve
from enigm_recover.snapshot.manifest import Manifest
from enigm_recover.sources.local import LocalFolderSource


@dataclass
class RewrapPlan:
    folder: Path
    new_recipient: str
    todo: list[Manifest] = field(default_factory=list)  # sealed to the old key
    already: list[str] = field(default_factory=list)  # sealed to the new key already
    not_covered: list[str] = field(default_factory=list)  # --all: sealed to yet another key, left as they are
    resumed: list[rewrap.RewrapResult] = field(default_factory=list)

    @property
    def old_fingerprint(self) -> str | None:
        return self.todo[0].recipient_fingerprint if self.todo else None


def _signs_for(key: asyncssh.SSHKey, producer: str, allowed: asyncssh.SSHAllowedSigners) -> bool:
    probe = b"enigm-recover rewrap probe"
    return signature.check(probe, signature.sign(probe, key), producer, allowed).trusted


def plan(folder: Path, ids: list[str], everything: bool, new_recipient: str, signing_key: asyncssh.SSHKey,
         allowed: asyncssh.SSHAllowedSigners, old_fingerprint: str | None = None) -> RewrapPlan:
    """Finish interrupted rewraps, then choose and check the snapshots (no share needed)."""
    if not folder.is_dir():
        raise SourceError(f"{folder} is not a local snapshot folder", "keys rewrap works on a local folder (the "
                                                                      "producer's, or a copy to put back)")
    result = RewrapPlan(folder, new_recipient)
    for snapshot_id in rewrap.pending_ids(folder):
        done = rewrap.resume(folder, snapshot_id, allowed)
        if done is not None:
            result.resumed.append(done)
    listing = LocalFolderSource(folder).list()
    chosen = newest_first([e for e in listing.entries if e.manifest is not None]) if everything else \
        [resolve(listing, ref) for ref in ids]
    if not chosen:
        raise SnapshotNotFound(f"no snapshot in {folder}")
    new_fp = recipient_fingerprint(new_recipient)
    keys: set[str] = set()
    for entry in chosen:
        if entry.manifest is None:
            raise entry.error or SnapshotNotFound(f"{entry.id}: unreadable manifest")
        manifest = rewrap.check_signed(entry.manifest_bytes, entry.signature_bytes, allowed)
        if manifest.recipient_fingerprint == new_fp:
            result.already.append(manifest.id)
            continue
        if old_fingerprint is not None and manifest.recipient_fingerprint != old_fingerprint:
            if everything:
                result.not_covered.append(f"{manifest.id}: sealed to {manifest.recipient_fingerprint}")
                continue
            raise DecryptionError(f"snapshot {manifest.id} is sealed to {manifest.recipient_fingerprint}, neither the "
                                  f"old key {old_fingerprint} nor the new one {new_fp}; nothing was changed",
                                  "rewrap it with the quorum of its own key, or leave it out")
        keys.add(manifest.recipient_fingerprint)
        if not _signs_for(signing_key, manifest.producer, allowed):
            raise SignatureError(f"the signing key is not trusted in allowed_signers for producer {manifest.producer} "
                                 f"of {manifest.id}; nothing was changed", "give the producer's own key (--sign-key)")
        result.todo.append(manifest)
    if len(keys) > 1:
        raise DecryptionError(f"the snapshots chosen are sealed to {len(keys)} different keys "
                              f"({', '.join(sorted(keys))}); one quorum opens one key", "rewrap one key's snapshots "
                                                                                         "at a time: name the old key with --from OLD.pub")
    return result


def run(recovery: Recovery, todo: RewrapPlan, identity: RecoveryIdentity | None, signing_key: asyncssh.SSHKey,
        allowed: asyncssh.SSHAllowedSigners, progress: ProgressCallback = no_progress) -> list[rewrap.RewrapResult]:
    results = []
    for done in todo.resumed:
        recovery.record("snapshot-rewrap-resumed", inputs={"snapshot": done.id, "new_fingerprint": done.new_fingerprint,
                                                           "new_sha256": done.new_sha256})
    for manifest in todo.todo:
        assert identity is not None, "snapshots to rewrap need the old key"
        result = rewrap.rewrap_snapshot(todo.folder, manifest, identity, todo.new_recipient, signing_key, allowed,
                                        progress)
        recovery.record("snapshot-rewrapped", step="rewrap", title=f"rewrap {manifest.id}",
                        inputs={"snapshot": result.id, "old_fingerprint": result.old_fingerprint,
                                "new_fingerprint": result.new_fingerprint, "old_sha256": result.old_sha256,
                                "new_sha256": result.new_sha256, "new_size": result.new_size},
                        detail=f"{result.old_fingerprint} -> {result.new_fingerprint}")
        results.append(result)
    return results
