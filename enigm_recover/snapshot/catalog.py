"""Resolve a snapshot reference (full id, unique prefix or ``latest``) in a listing."""

from __future__ import annotations

from enigm_recover.errors import SnapshotNotFound
from enigm_recover.sources.base import Listing, SnapshotEntry


def newest_first(entries: list[SnapshotEntry]) -> list[SnapshotEntry]:
    """Parsed manifests by creation time, newest first; unparseable ones last, by id."""
    good = [e for e in entries if e.manifest is not None]
    bad = [e for e in entries if e.manifest is None]
    good.sort(key=lambda e: (e.manifest.created_at, e.id), reverse=True)  # type: ignore[union-attr]
    bad.sort(key=lambda e: e.id, reverse=True)
    return good + bad


def resolve(listing: Listing, ref: str) -> SnapshotEntry:
    if not listing.entries:
        raise SnapshotNotFound("the source holds no snapshots")
    if ref == "latest":
        ordered = newest_first(listing.entries)
        if ordered[0].manifest is None:
            raise SnapshotNotFound("the source holds no readable manifest")
        return ordered[0]
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
