"""Summaries of a source's snapshots for listing: facts, signature and key match."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import asyncssh

from enigm_recover.snapshot import signature
from enigm_recover.snapshot.catalog import newest_first
from enigm_recover.snapshot.clock import age_seconds, in_future
from enigm_recover.snapshot.signature import SignatureStatus
from enigm_recover.snapshot.source import Listing


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
        }


def summarize(listing: Listing, allowed: asyncssh.SSHAllowedSigners | None,
              recipient_fingerprint: str | None) -> list[SnapshotSummary]:
    out = []
    for entry in newest_first(listing.entries):
        m = entry.manifest
        if m is None:
            out.append(SnapshotSummary(entry.id, None, None, None, {}, None, SignatureStatus.INVALID,
                                       f"manifest unreadable: {entry.error}", None, None))
            continue
        verdict = signature.check(entry.manifest_bytes, entry.signature_bytes, m.producer, allowed)
        matches = None if recipient_fingerprint is None else m.recipient_fingerprint == recipient_fingerprint
        out.append(SnapshotSummary(m.id, m.created_at, m.environment, m.producer, m.counts, m.payload_size,
                                   verdict.status, verdict.detail, matches, m.previous_id))
    return out
