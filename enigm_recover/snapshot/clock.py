"""The host's clock against a snapshot's time.

A snapshot's time is its sealing time (its id begins with it, checked against the signed
manifest). A time later than the host's clock by more than ``CLOCK_SKEW`` cannot be right: the
producer's clock or this host's is wrong, or the time was forged. Such a snapshot is never taken
as ``latest`` (nor silently skipped: resolving ``latest`` stops and names it), readiness fails on
it, and an age is never negative: it is clamped to zero and the snapshot flagged as from the future.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from enigm_recover.errors import SnapshotFromTheFuture
from enigm_recover.snapshot.timeform import utc_iso

CLOCK_SKEW = timedelta(minutes=5)  # clocks kept by NTP agree far better; more than this is a finding
ID_TIME_FORMAT = "%Y%m%dT%H%M%SZ"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def id_time(snapshot_id: str) -> datetime | None:
    """The sealing time an id begins with, or None if it does not begin with one."""
    try:
        return datetime.strptime(snapshot_id[:16], ID_TIME_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def in_future(created: datetime, now: datetime) -> bool:
    """Later than ``now`` by more than the tolerated skew."""
    return created - now > CLOCK_SKEW


def age_seconds(created: datetime, now: datetime) -> int:
    """Whole seconds since ``created``; never negative (a time ahead of ``now`` is age 0)."""
    return max(0, int((now - created).total_seconds()))




def refuse_from_future(snapshot_id: str, now: datetime | None = None) -> None:
    """Raise ``SnapshotFromTheFuture`` when the snapshot ``latest`` would name is dated in the future."""
    created = id_time(snapshot_id)
    now = now or utc_now()
    if created is None or not in_future(created, now):
        return
    ahead = created - now
    raise SnapshotFromTheFuture(
        f"the newest snapshot {snapshot_id} is dated {utc_iso(created)}, {_span(ahead)} after this host's clock "
        f"({utc_iso(now)}, {int(CLOCK_SKEW.total_seconds() // 60)} min of skew tolerated): `latest` does not take a "
        "snapshot from the future",
        f"check this host's clock and the producer's (NTP); to use that snapshot all the same, name it: "
        f"{snapshot_id}")


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
