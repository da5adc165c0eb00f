"""Resolve a snapshot reference (full id, unique prefix or ``latest``) in a listing."""

from __future__ import annotations

from datetime import datetime
from itertools import groupby

from enigm_recover.errors import SnapshotNotFound
from enigm_recover.snapshot.clock import refuse_from_future
from enigm_recover.snapshot.source import Listing, SnapshotEntry


def chronological(entries: list[SnapshotEntry]) -> list[SnapshotEntry]:
    """Entries oldest first. Ids begin with the creation time (checked against the signed manifest),
    so unreadable manifests keep their place instead of sinking out of sight.

    Snapshots of the same second are ordered by their chain: one that names another of that second as
    its previous snapshot comes after it (sealing names the newest one present); where the chain says
    nothing, by id as a plain string."""
    out: list[SnapshotEntry] = []
    for _second, group in groupby(sorted(entries, key=lambda e: e.id), key=lambda e: e.id[:16]):
        out += _by_chain(list(group))
    return out


def _by_chain(group: list[SnapshotEntry]) -> list[SnapshotEntry]:
    ordered: list[SnapshotEntry] = []
    waiting = list(group)  # sorted by id
    while waiting:
        ids = {e.id for e in waiting}
        ready = [e for e in waiting if e.manifest is None or e.manifest.previous_id not in ids]
        chosen = (ready or waiting)[0]  # a cycle (forged) falls back to id order
        ordered.append(chosen)
        waiting.remove(chosen)
    return ordered


def newest_first(entries: list[SnapshotEntry]) -> list[SnapshotEntry]:
    """Entries newest first: ``chronological`` reversed."""
    return chronological(entries)[::-1]


def resolve(listing: Listing, ref: str, *, now: datetime | None = None) -> SnapshotEntry:
    if not listing.entries:
        raise SnapshotNotFound("the source holds no snapshots")
    if ref == "latest":
        # The newest, even if damaged: verifying it then says what is wrong. Falling back to an
        # older snapshot would hide tampering with the newest one; one dated in the future is
        # refused by name, never taken or skipped.
        newest = newest_first(listing.entries)[0]
        refuse_from_future(newest.id, now)
        return newest
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
