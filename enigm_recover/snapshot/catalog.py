"""Resolve a snapshot reference (full id, unique prefix or ``latest``) in a listing."""

from __future__ import annotations

from enigm_recover.errors import SnapshotNotFound
from enigm_recover.snapshot.source import Listing, SnapshotEntry


def newest_first(entries: list[SnapshotEntry]) -> list[SnapshotEntry]:
    """Entries newest first. Ids begin with the creation time (checked against the signed
    manifest), so unreadable manifests keep their place instead of sinking out of sight."""
    return sorted(entries, key=lambda e: e.id, reverse=True)


def resolve(listing: Listing, ref: str) -> SnapshotEntry:
    if not listing.entries:
        raise SnapshotNotFound("the source holds no snapshots")
    if ref == "latest":
        # The newest, even if damaged: verifying it then says what is wrong. Falling back to an
        # older snapshot would hide tampering with the newest one.
        return newest_first(listing.entries)[0]
    exact = [e for e in listing.entries if e.id == ref]
    if exact:
        return exact[0]
    matches = [e for e in listing.entries if e.id.startswith(ref)]
    if not matches:
        raise SnapshotNotFound(f"no snapshot id starts with {ref!r}")
    if len(matches) > 1:
        shown = ", ".join(e.id for e in matches[:5])
        raise SnapshotNotFound(f"{ref!r} matches {len(matches)} snapshots ({shown}{', …' if len(matches) > 5 else ''})",
                               "give more characters of the id")
    return matches[0]
