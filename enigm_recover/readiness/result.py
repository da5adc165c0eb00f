"""What a readiness check found: its verdict with evidence, and the facts learnt about each snapshot.

These types are shared by the checks' modules (checks, lifecycle, retention), so they live below all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from enigm_recover.snapshot.clock import age_seconds, in_future
from enigm_recover.snapshot.signature import SignatureStatus
from enigm_recover.snapshot.timeform import utc_iso


@dataclass
class CheckResult:
    name: str
    ok: bool | None  # None: not run (the summary says why)
    summary: str
    evidence: list[str] = field(default_factory=list)  # every line looked at, passing or not
    problems: list[str] = field(default_factory=list)  # the evidence lines that fail the check

    @property
    def status(self) -> str:
        return {True: "pass", False: "fail", None: "not-run"}[self.ok]

    def as_dict(self, description: str) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "status": self.status, "description": description,
                "summary": self.summary, "problems": self.problems, "evidence": self.evidence}


@dataclass
class SnapshotFacts:
    """What readiness learnt about one listed snapshot."""

    id: str
    created_at: datetime | None
    environment: str | None
    producer: str | None
    counts: dict[str, int]
    payload_size: int | None
    signature: str
    recipient_matches: bool | None
    previous_id: str | None
    payload: str = "not checked"  # verified | failed | not checked
    payload_detail: str = ""

    @property
    def usable(self) -> bool:
        """Could a recovery use it: trusted signature, expected key, and a payload not found bad."""
        return (self.signature == SignatureStatus.TRUSTED.value and self.recipient_matches is True
                and self.payload != "failed")

    def age_seconds(self, now: datetime) -> int | None:
        """Never negative: a snapshot from the future is age 0 and flagged by ``in_future``."""
        return None if self.created_at is None else age_seconds(self.created_at, now)

    def in_future(self, now: datetime) -> bool:
        return self.created_at is not None and in_future(self.created_at, now)

    def as_dict(self, now: datetime) -> dict[str, Any]:
        return {"id": self.id, "created_at": utc_iso(self.created_at) if self.created_at else None,
                "age_seconds": self.age_seconds(now), "in_future": self.in_future(now),
                "environment": self.environment, "producer": self.producer,
                "counts": self.counts, "payload_size": self.payload_size, "signature": self.signature,
                "recipient_matches": self.recipient_matches, "previous_id": self.previous_id,
                "payload": self.payload, "payload_detail": self.payload_detail, "usable": self.usable}


def hours(seconds: int) -> str:
    """A duration the way the checks' summaries say it: minutes, hours or days."""
    if abs(seconds) < 7200:
        return f"{seconds // 60} min"
    if abs(seconds) < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
