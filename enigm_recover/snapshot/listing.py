"""Summaries of a source's snapshots for listing: facts, signature and key match."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from enigm_recover.snapshot import signature
from enigm_recover.snapshot.catalog import REFUSED_SIGNATURES, latest_candidate, newest_first
from enigm_recover.snapshot.clock import age_seconds, in_future
from enigm_recover.snapshot.signature import SignatureStatus
from enigm_recover.snapshot.source import Listing

if TYPE_CHECKING:
    import asyncssh


@dataclass(frozen=True)
class SnapshotSummary:
    id: str
    created_at: datetime | None
    environment: str | None
    producer: str | None
    counts: dict[str, int]
    payload_size: int | None
    signature: SignatureStatus
    signature_detail: str
    recipient_matches: bool | None  # None when no recovery key is configured
    previous_id: str | None
    refusal: str | None = None  # why the snapshot cannot be used (manifest or signature); None: usable

    @property
    def status(self) -> str:
        return "refused" if self.refusal else "ok"

    def age_seconds(self, now: datetime | None = None) -> int | None:
        """Never negative: a snapshot from the future is age 0 and flagged by ``in_future``."""
        if self.created_at is None:
            return None
        return age_seconds(self.created_at, now or datetime.now(timezone.utc))

    def in_future(self, now: datetime | None = None) -> bool:
        return self.created_at is not None and in_future(self.created_at, now or datetime.now(timezone.utc))

    def as_dict(self, now: datetime | None = None) -> dict[str, object]:
        return {
            "id": self.id,
            "created_at": self.created_at.isoformat().replace("+00:00", "Z") if self.created_at else None,
            "age_seconds": self.age_seconds(now),
            "in_future": self.in_future(now),
            "environment": self.environment,
            "producer": self.producer,
            "counts": self.counts,
            "payload_size": self.payload_size,
            "signature": self.signature.value,
            "signature_detail": self.signature_detail,
            "recipient_matches": self.recipient_matches,
            "previous_id": self.previous_id,
            "status": self.status,
            "refusal": self.refusal,
        }


def summarize(listing: Listing, allowed: asyncssh.SSHAllowedSigners | None,
              recipient_fingerprint: str | None, environment: str | None = None) -> list[SnapshotSummary]:
    """One summary per listed entry, newest first; with ``environment``, the usable snapshots of other
    environments are left out (refused ones stay: what they claim is not trusted)."""
    out = []
    for entry in newest_first(listing.entries):
        m = entry.manifest
        if m is None:
            detail = f"manifest unreadable: {entry.error}"
            out.append(SnapshotSummary(entry.id, None, None, None, {}, None, SignatureStatus.INVALID,
                                       detail, None, None, detail))
            continue
        verdict = signature.check(entry.manifest_bytes, entry.signature_bytes, m.producer, allowed)
        refused = verdict.status in REFUSED_SIGNATURES
        if environment is not None and not refused and m.environment != environment:
            continue
        matches = None if recipient_fingerprint is None else m.recipient_fingerprint == recipient_fingerprint
        out.append(SnapshotSummary(m.id, m.created_at, m.environment, m.producer, m.counts, m.payload_size,
                                   verdict.status, verdict.detail, matches, m.previous_id,
                                   f"signature {verdict.status.value}: {verdict.detail}" if refused else None))
    return out


@dataclass(frozen=True)
class LatestVerdict:
    """What ``latest`` resolves to in a listing: a snapshot, or the refused entry it stops at."""

    id: str | None
    refused: str | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "refused": self.refused, "reason": self.reason}

    def describe(self) -> str:
        if self.id:
            return f"latest is {self.id}"
        if self.refused:
            return (f"latest stops at {self.refused}, which is refused ({self.reason}): it never falls back to "
                    "an older snapshot; name an older snapshot's id explicitly to use it")
        return "latest names no snapshot"


def latest_verdict(listing: Listing, allowed: asyncssh.SSHAllowedSigners | None,
                   environment: str | None = None) -> LatestVerdict:
    newest = latest_candidate(listing, allowed, environment)
    if newest is None:
        return LatestVerdict(None)
    if newest.refusal is not None:
        return LatestVerdict(None, newest.name, newest.refusal.message)
    return LatestVerdict(newest.name)
