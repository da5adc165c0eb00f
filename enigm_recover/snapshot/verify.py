"""Verify a snapshot before anything in it is trusted.

Checks, in order: the manifest parses and its scope is allowed; its
signature is by a principal trusted in allowed_signers for the manifest's
producer; the payload's size and SHA-256 equal the signed values. Only a
fully verified snapshot yields a ``VerifiedSnapshot``, which is what
unsealing requires.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from enigm_recover.errors import EnigmError, PayloadIntegrityError, SourceError
from enigm_recover.hashing import hash_file
from enigm_recover.logs import timed
from enigm_recover.progress import ProgressCallback, no_progress
from enigm_recover.snapshot.manifest import Manifest
from enigm_recover.snapshot.source import SnapshotEntry, SnapshotSource, checked_payload

if TYPE_CHECKING:  # the signature check (and asyncssh) is imported when a snapshot is verified, not before
    import asyncssh

log = logging.getLogger(__name__)

@dataclass
class Check:
    name: str
    ok: bool | None  # None: deferred to a later step, which reports it
    detail: str


@dataclass
class VerifyReport:
    snapshot_id: str
    checks: list[Check] = field(default_factory=list)
    manifest: Manifest | None = None
    error: EnigmError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict[str, object]:
        return {
            "snapshot": self.snapshot_id,
            "ok": self.ok,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
            "error": self.error.message if self.error else None,
            "exit_code": self.error.exit_code if self.error else 0,
        }


@dataclass(frozen=True)
class VerifiedSnapshot:
    """A snapshot whose manifest, signature and payload hash all checked out."""

    manifest: Manifest
    payload_path: Path


@timed(log, "verifying the snapshot")
def verify_entry(
    source: SnapshotSource,
    entry: SnapshotEntry,
    allowed: asyncssh.SSHAllowedSigners,
    progress: ProgressCallback = no_progress,
    *,
    hash_payload: bool = True,
) -> tuple[VerifyReport, VerifiedSnapshot | None]:
    """Check a listed snapshot; without ``hash_payload`` the SHA-256 is left to unsealing,
    which checks it in the same pass as decryption (and reports it honestly as deferred here)."""
    from enigm_recover.snapshot import signature

    report = VerifyReport(entry.id)
    log.info("verifying snapshot %s (payload %s)", entry.id, "hashed now" if hash_payload else "hashed when unsealed")

    def fail(name: str, error: EnigmError) -> tuple[VerifyReport, None]:
        report.checks.append(Check(name, False, error.message))
        report.error = error
        return report, None

    if entry.manifest is None:
        assert entry.error is not None
        return fail("manifest", entry.error)
    manifest = report.manifest = entry.manifest
    report.checks.append(Check("manifest", True, "schema and scope are valid"))

    verdict = signature.check(entry.manifest_bytes, entry.signature_bytes, manifest.producer, allowed)
    if not verdict.trusted:
        try:
            signature.require_trusted(verdict)
        except EnigmError as exc:
            return fail("signature", exc)
    report.checks.append(Check("signature", True, verdict.detail))

    try:
        path = source.payload(entry, progress)
    except SourceError as exc:
        return fail("payload size", exc)
    except PayloadIntegrityError as exc:  # a remote source checks size and SHA-256 while downloading
        return fail("payload sha256", exc)
    actual = os.path.getsize(path)
    if actual != manifest.payload_size:
        return fail("payload size", PayloadIntegrityError(
            f"payload is {actual} bytes but the signed manifest says {manifest.payload_size}"))
    report.checks.append(Check("payload size", True, f"{actual} bytes"))

    if not hash_payload:
        report.checks.append(Check("payload sha256", None, "checked while decrypting, before anything is written"))
        return report, VerifiedSnapshot(manifest, path)
    # A remote source checked size and SHA-256 against this manifest as it fetched (or reused) the payload,
    # a moment ago; reading it all again would only repeat that.
    checked = checked_payload(source, path)
    size, digest = checked if checked is not None else hash_file(path, progress)
    if size != manifest.payload_size or digest != manifest.payload_sha256:
        return fail("payload sha256", PayloadIntegrityError(
            "payload SHA-256 does not match the signed manifest: the payload was altered"))
    report.checks.append(Check("payload sha256", True, digest))
    return report, VerifiedSnapshot(manifest, path)
