"""Open a target store from its URL."""

from __future__ import annotations

from typing import TYPE_CHECKING, Union

from enigm_recover.errors import TargetError
from enigm_recover.state.sqlite_store import SQLiteStore
from enigm_recover.state.url import parse_target_url

if TYPE_CHECKING:
    from enigm_recover.state.postgres_store import PostgresStore


def open_store(url: str, *, create: bool = False) -> Union[SQLiteStore, "PostgresStore"]:
    target = parse_target_url(url)
    if target.scheme == "postgresql":
        try:  # imported here, so SQLite users never load psycopg
            from enigm_recover.state.postgres_store import PostgresStore
        except ImportError as exc:
            raise TargetError(f"the PostgreSQL store needs psycopg, which cannot be imported: {exc}",
                              "install it: pip install 'psycopg[binary]~=3.3.9'") from None
        return PostgresStore(target, create=create)
    assert target.path is not None
    return SQLiteStore(target.path, create=create)
