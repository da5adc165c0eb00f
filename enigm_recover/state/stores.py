"""Open a target store from its URL."""

from __future__ import annotations

from enigm_recover.state.sqlite_store import SQLiteStore
from enigm_recover.state.url import parse_target_url


def open_store(url: str, *, create: bool = False) -> SQLiteStore:
    target = parse_target_url(url)
    assert target.path is not None  # parse_target_url only admits sqlite for now
    return SQLiteStore(target.path, create=create)
