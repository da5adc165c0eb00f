"""Removing a snapshot from a source, atomically as listing sees it.

The manifest is first renamed to a hidden tombstone (``.<id>.removing``): one rename, after which
listing no longer shows the snapshot at all. Only then are the signature, the payload and the
tombstone deleted. A removal interrupted at any point therefore never leaves a listed snapshot
without its signature or payload; its leftovers are hidden files that the next removal finishes
(``tombstoned`` names them).
"""

from __future__ import annotations

from enigm_recover.snapshot.manifest import SNAPSHOT_ID_RE, manifest_name, payload_name, signature_name

TOMBSTONE_PREFIX = "."
TOMBSTONE_SUFFIX = ".removing"


def tombstone_name(snapshot_id: str) -> str:
    return f"{TOMBSTONE_PREFIX}{snapshot_id}{TOMBSTONE_SUFFIX}"


def tombstoned_id(name: str) -> str | None:
    """The snapshot id of a tombstone's file name, or None for any other name."""
    if not (name.startswith(TOMBSTONE_PREFIX) and name.endswith(TOMBSTONE_SUFFIX)):
        return None
    snapshot_id = name[len(TOMBSTONE_PREFIX):-len(TOMBSTONE_SUFFIX)]
    return snapshot_id if SNAPSHOT_ID_RE.fullmatch(snapshot_id) else None


def removal_order(snapshot_id: str) -> tuple[str, list[str]]:
    """The manifest to rename to the tombstone, then the files to delete, in order."""
    return manifest_name(snapshot_id), [signature_name(snapshot_id), payload_name(snapshot_id),
                                        tombstone_name(snapshot_id)]
