"""Reading live rows into the model, whatever state an incident left the live tables in.

A live target is outside the engine's control: a bad migration, a hand edit or
an attacker can leave a column of another type, a NULL, a value outside the
model's syntax, a column missing or one more. This module is the one place
that says whether a live row is a record of the model, and what a live table
lacks for being read or written; the diff, the restore's batches and its
verification all ask it, on every store.

What was found is described in printable ASCII and shortened (``ascii``
escapes control characters), so a live value is shown, never acted on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from enigm_recover.state.model import Kind

Row = tuple[Any, ...]
FOUND_CHARS = 40  # at most this much of a found value is shown


@dataclass(frozen=True, slots=True)
class Unreadable:
    """What keeps a live record, or a whole live table (``key`` None), from being read into the model."""

    kind: str
    column: str | None  # None: the table itself (it does not exist)
    found: str  # what the live side holds, printable and short
    expected: str  # what the model needs there
    key: tuple[str, ...] | None = None  # the record's key, as printable text

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "key": list(self.key) if self.key is not None else None, "column": self.column,
                "found": self.found, "expected": self.expected}

    def detail(self) -> dict[str, Any]:
        """The part a change of a record already names (its kind and key are the change's)."""
        return {"column": self.column, "found": self.found, "expected": self.expected}

    def describe(self) -> str:
        if self.key is None:  # a whole table: ``found`` says where
            return f"{self.found}; the model needs {self.expected}"
        return f"{self.kind} {'/'.join(self.key)}: {self.column} holds {self.found}, not {self.expected}"


@dataclass(frozen=True, slots=True)
class LiveColumn:
    """A column as the live table really has it."""

    name: str
    type: str  # as the engine declares it ("" for SQLite's typeless columns)
    required: bool  # NOT NULL without a default: an insert that leaves it out fails
    compatible: bool = True  # its type (SQLite: its affinity) keeps the model's values as they are written


@dataclass(frozen=True, slots=True)
class LiveTable:
    """A live table as it really is: its columns (none when it does not exist) and the column sets of its
    unique keys (those a write can match records on: whole columns, no condition)."""

    columns: tuple[LiveColumn, ...] = ()
    unique_keys: frozenset[frozenset[str]] = frozenset()


def shown(value: Any) -> str:
    """A live value as printable ASCII, shortened: ``NULL``, ``'text'``, ``42``, ``b'\\x00'``."""
    if value is None:
        return "NULL"
    text = ascii(value)
    return text if len(text) <= FOUND_CHARS else text[:FOUND_CHARS - 3] + "..."


def shown_key(kind: Kind, row: Row) -> tuple[str, ...]:
    """A row's key as text: printable text as it is, any other value as ``shown`` describes it."""
    return tuple(v if type(v) is str and v.isprintable() else shown(v) for v in (row[p] for p in kind.key_positions))


def read_row(kind: Kind, row: Row) -> Row | Unreadable:
    """The row itself when every value is the model's (type and syntax), else what is wrong with its first
    unreadable column."""
    for f, value in zip(kind.fields, row):
        if not f.check(value):
            return Unreadable(kind.name, f.name, shown(value), f.describe, shown_key(kind, row))
    return row


def unreadable(kind: Kind, row: Row) -> Unreadable | None:
    """``read_row`` for a caller that keeps the row: what is wrong with it, or None."""
    read = read_row(kind, row)
    return read if isinstance(read, Unreadable) else None


def exact_types(kind: Kind) -> Callable[[Row], bool] | None:
    """For a row already found equal to a record of the model: whether its values are of the model's types
    too. Python's == is looser than the model only for integers (3.0 == 3 == True); None for a kind without
    integer fields, where equal means readable."""
    positions = tuple(i for i, f in enumerate(kind.fields) if f.sql_type == "INTEGER")
    if not positions:
        return None
    if len(positions) == 1:
        (p,) = positions
        return lambda row: type(row[p]) is int
    return lambda row: all(type(row[p]) is int for p in positions)


def key_is_addressable(kind: Kind, row: Row) -> bool:
    """Whether a live row's key is text a store can be asked for again: only such keys have the payload's
    (byte) order and can be named in a write (text that was not UTF-8 cannot be sent back)."""
    return all(type(v) is str and _encodable(v) for v in (row[p] for p in kind.key_positions))


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def table_unreadable(kind: Kind, table: LiveTable) -> list[Unreadable]:
    """What keeps a live table from being read as ``kind`` at all: the table is missing (no columns), or a
    column of the model is missing or of a type that cannot hold the model's values. Empty when readable."""
    if not table.columns:
        return [Unreadable(kind.name, None, f"table {kind.table} does not exist", f"a table of {kind.name} records")]
    live = {c.name: c for c in table.columns}
    problems = []
    for f in kind.fields:
        column = live.get(f.name)
        if column is None:
            problems.append(Unreadable(kind.name, f.name, f"table {kind.table} has no column {f.name}", f.describe))
        elif not column.compatible:
            problems.append(Unreadable(kind.name, f.name, f"column {kind.table}.{f.name} is of type {column.type}",
                                       f"a {f.sql_type.lower()} column holding {f.describe}"))
    return problems


def table_unwritable(kind: Kind, table: LiveTable) -> list[Unreadable]:
    """What keeps the snapshot's records from being written into a readable live table: no unique key on the
    model's primary key (a write matches records by it), or a column the model does not know that every
    insert must fill (NOT NULL, no default)."""
    problems = []
    if frozenset(kind.primary_key) not in table.unique_keys:
        key = ", ".join(kind.primary_key)
        problems.append(Unreadable(kind.name, kind.primary_key[0], f"table {kind.table} has no primary key or "
                                   f"unique index on ({key})", f"({key}) as its primary key"))
    problems += [Unreadable(kind.name, c.name, f"column {kind.table}.{c.name} must be given a value (NOT NULL "
                            "without a default) and the model has none for it",
                            "no such column, or one with a default or that may be NULL")
                 for c in table.columns if c.required and c.name not in kind.field_names]
    return problems
