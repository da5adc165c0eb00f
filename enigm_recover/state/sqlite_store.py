"""The SQLite target store: the embedded default.

Tables are STRICT and carry CHECK constraints, so a damaged or hand-edited
store is caught by SQLite itself. Reads stream in primary-key order, which is
the order the snapshot payload uses, so a diff can run in one merge pass.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Iterable, Iterator

from enigm_recover.errors import TargetError
from enigm_recover.state.model import (
    DEVICE_STATES,
    IDENTITY_STATUSES,
    KINDS,
    Kind,
)

_CHECKS: dict[tuple[str, str], str] = {
    ("identity", "status"): "status IN (" + ",".join(f"'{s}'" for s in IDENTITY_STATUSES) + ")",
    ("identity", "key_version"): "key_version >= 1",
    ("device", "state"): "state IN (" + ",".join(f"'{s}'" for s in DEVICE_STATES) + ")",
}


def schema_sql(kind: Kind) -> str:
    cols = [f"{f.name} {f.sql_type} NOT NULL" for f in kind.fields]
    cols += [f"CHECK ({c})" for (k, _), c in _CHECKS.items() if k == kind.name]
    cols.append(f"PRIMARY KEY ({', '.join(kind.primary_key)})")
    return f"CREATE TABLE IF NOT EXISTS {kind.table} (\n  " + ",\n  ".join(cols) + "\n) STRICT"


class SQLiteStore:
    """A platform state store in one SQLite file."""

    def __init__(self, path: Path, *, create: bool = False) -> None:
        self.path = path
        if not create and not path.exists():
            raise TargetError(
                f"target database {path} does not exist",
                f"create it with `enigm-recover target init sqlite:///{path}`",
            )
        if create and not path.parent.exists():
            raise TargetError(f"folder {path.parent} for the target database does not exist")
        try:
            self.conn = sqlite3.connect(path, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as exc:
            raise TargetError(f"cannot open target database {path}: {exc}") from None

    # -- lifecycle ---------------------------------------------------------

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "SQLiteStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def init_schema(self) -> None:
        try:
            with self.transaction():
                for kind in KINDS:
                    self.conn.execute(schema_sql(kind))
        except sqlite3.DatabaseError as exc:
            raise TargetError(f"cannot create the schema in {self.path}: {exc}") from None

    def transaction(self) -> "_Transaction":
        return _Transaction(self.conn)

    # -- reading -----------------------------------------------------------

    def columns(self, kind: Kind) -> list[str]:
        """The columns the live table really has (may differ from the model)."""
        rows = self._query(f"PRAGMA table_info({kind.table})")
        if not rows:
            raise TargetError(
                f"target {self.path} has no table {kind.table!r}",
                f"create the schema with `enigm-recover target init sqlite:///{self.path}`",
            )
        return [r[1] for r in rows]

    def count(self, kind: Kind) -> int:
        return int(self._query(f"SELECT count(*) FROM {kind.table}")[0][0])

    def stream(self, kind: Kind, columns: Iterable[str] | None = None) -> Iterator[tuple[Any, ...]]:
        """Rows of `kind` in primary-key order, as tuples in `columns` order."""
        cols = ", ".join(columns or kind.field_names)
        order = ", ".join(kind.primary_key)
        try:
            cursor = self.conn.execute(f"SELECT {cols} FROM {kind.table} ORDER BY {order}")
            while batch := cursor.fetchmany(4096):
                yield from batch
        except sqlite3.DatabaseError as exc:
            raise TargetError(f"cannot read {kind.table} from {self.path}: {exc}") from None

    # -- writing (drills and, later, restore) ------------------------------

    def insert_many(self, kind: Kind, rows: Iterable[tuple[Any, ...]]) -> None:
        cols = ", ".join(kind.field_names)
        marks = ", ".join("?" for _ in kind.fields)
        self.conn.executemany(f"INSERT INTO {kind.table} ({cols}) VALUES ({marks})", rows)

    def _query(self, sql: str) -> list[tuple[Any, ...]]:
        try:
            return self.conn.execute(sql).fetchall()
        except sqlite3.DatabaseError as exc:
            raise TargetError(f"cannot read target {self.path}: {exc}") from None


class _Transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
