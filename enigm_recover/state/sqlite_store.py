"""The SQLite target store: the embedded default.

Tables are STRICT and carry CHECK constraints, so a damaged or hand-edited
store is caught by SQLite itself. Reads stream in primary-key order (SQLite's
binary collation, the payload's order) on a connection of their own, so a
restore can read a table in one merge pass while it writes batches to it; in
WAL mode the reader keeps a consistent view.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import sqlite3
from contextlib import contextmanager
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator, TypeVar

from enigm_recover.errors import TargetError
from enigm_recover.private import create_private_file
from enigm_recover.state.journal import (
    Batch,
    RestoreRun,
    StepPosition,
    another_restore_running,
    batch_row,
    decode_written,
    journal_sql,
    step_position,
    step_result_row,
    written_row,
)
from enigm_recover.state.live import LiveColumn, LiveTable
from enigm_recover.state.model import (
    DEVICE_STATES,
    IDENTITY,
    IDENTITY_STATUSES,
    KINDS,
    Kind,
)
from enigm_recover.state.store import ACCOUNTS

_CHECKS: dict[tuple[str, str], str] = {
    ("identity", "status"): "status IN (" + ",".join(f"'{s}'" for s in IDENTITY_STATUSES) + ")",
    ("identity", "key_version"): "key_version >= 1",
    ("device", "state"): "state IN (" + ",".join(f"'{s}'" for s in DEVICE_STATES) + ")",
}


IN_CHUNK = 500  # keys per IN (...) lookup, well under SQLite's parameter limit
# A keyed read of at least RANGE_MIN_KEYS text keys reads their whole key range in one pass when that range
# holds at most 1/RANGE_SLACK more rows than keys asked for (a total loss's batches, read back): about half
# the cost of IN (...) lookups. Sparser keys (an incident's devices, spread over the table) are looked up.
RANGE_MIN_KEYS = 256
RANGE_SLACK = 8
# Rows per fetch of a stream: few enough that a batch's rows are still in the CPU's cache when the consumer
# reads them (a dry run's merge took a quarter longer on batches of 4,096). Streams are read on the consumer's
# thread: sqlite3 holds the GIL while it turns a row into Python values, which is most of a read's work, so a
# thread of their own only took turns with the consumer (and cost it more than it saved).
STREAM_BATCH = 256

JOURNAL = journal_sql(placeholder="?", key_text="TEXT", text="TEXT", integer="INTEGER", counter="INTEGER",
                      table_suffix=" STRICT")


def restore_lock_path(database: Path) -> Path:
    """The restore lock's file for a database, however its path is spelled: beside the file it resolves to."""
    real = database.resolve()
    return real.with_name(real.name + ".restore-lock")


def schema_sql(kind: Kind) -> str:
    cols = [f"{f.name} {f.sql_type} NOT NULL" for f in kind.fields]
    cols += [f"CHECK ({c})" for (k, _), c in _CHECKS.items() if k == kind.name]
    cols.append(f"PRIMARY KEY ({', '.join(kind.primary_key)})")
    # WITHOUT ROWID: rows are stored in primary-key order, so the key-order scans of a diff or a seal
    # read the table sequentially instead of looking every row up through an index.
    return f"CREATE TABLE IF NOT EXISTS {kind.table} (\n  " + ",\n  ".join(cols) + "\n) STRICT, WITHOUT ROWID"


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
            # One recovery keeps its target open from the quorum to the end, and the app runs each step in a
            # worker thread of its own (one at a time): the connection may move between threads.
            self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as exc:
            raise TargetError(f"cannot open target database {path}: {exc}") from None
        self._reader: sqlite3.Connection | None = None
        self._lenient: sqlite3.Connection | None = None  # decodes text that is not UTF-8 (see _row_batches)
        self._restore_lock: IO[str] | None = None
        self._ranged: dict[str, bool] = {}  # table -> whether a keyed read may read a key range (see _rows_by_key)
        self._staged: tuple[Kind, list[tuple[Any, ...]]] | None = None  # the rows a committed batch left staged
        self._sessions: dict[str, SQLiteStore] = {}  # see reading_session
        self.display = f"sqlite:///{path}"

    # -- lifecycle ---------------------------------------------------------

    def close(self) -> None:
        for session in self._sessions.values():
            session.close()
        self._sessions.clear()
        for reader in (self._reader, self._lenient):
            if reader is not None:
                reader.close()
        self.conn.close()
        if self._restore_lock is not None:
            self._restore_lock.close()
            self._restore_lock = None

    @contextmanager
    def consistent_reads(self) -> Iterator[None]:
        """Every stream inside reads one snapshot of the store (a single read transaction)."""
        conn = self._read_conn()
        conn.execute("BEGIN")
        try:
            yield
        finally:
            conn.execute("COMMIT")

    def _read_conn(self) -> sqlite3.Connection:
        if self._reader is None:
            # One recovery keeps its target open from the quorum to the end, in the app on worker threads.
            self._reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        return self._reader

    def __enter__(self) -> "SQLiteStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def init_schema(self) -> None:
        try:
            with self.transaction():
                for kind in KINDS:
                    self.conn.execute(schema_sql(kind))
                for statement in JOURNAL.create:
                    self.conn.execute(statement)
        except sqlite3.DatabaseError as exc:
            raise TargetError(f"cannot create the schema in {self.path}: {exc}") from None

    def transaction(self) -> "_Transaction":
        return _Transaction(self.conn, self.path)

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

    def live_table(self, kind: Kind) -> LiveTable:
        """The live table as it really is (no columns when it does not exist). SQLite types values, not
        columns, but a column's declared type gives it an affinity that converts what is written: a model
        column is compatible when its affinity keeps the model's values as they are."""
        model = {f.name: f.sql_type for f in kind.fields}
        # (cid, name, type, notnull, default, pk, hidden): a generated (hidden) column needs no value.
        columns = tuple(
            LiveColumn(name := str(name_).lower(), str(type_), bool(notnull) and default is None and not hidden,
                       _affinity(str(type_)) in _KEEPS.get(model.get(name, ""), _ANY_AFFINITY))
            for _cid, name_, type_, notnull, default, _pk, hidden
            in self._query("SELECT * FROM pragma_table_xinfo(?)", (kind.table,)))
        keys = set()
        for (index,) in self._query("SELECT name FROM pragma_index_list(?) WHERE \"unique\" AND NOT partial",
                                    (kind.table,)):
            names = [r[0] for r in self._query("SELECT name FROM pragma_index_info(?)", (index,))]
            if None not in names:  # an index on an expression matches no column
                keys.add(frozenset(str(n).lower() for n in names))
        return LiveTable(columns, frozenset(keys))

    def count(self, kind: Kind) -> int:
        return int(self._query(f"SELECT count(*) FROM {kind.table}")[0][0])

    def stream(self, kind: Kind, columns: Iterable[str] | None = None) -> Iterator[tuple[Any, ...]]:
        """Rows of `kind` in primary-key order, as tuples in `columns` order (its own read view); read from
        the first ``next``, row by row without a Python frame per row."""
        return chain.from_iterable(self._stream_batches(kind, list(columns or kind.field_names)))

    def _stream_batches(self, kind: Kind, names: list[str]) -> Iterator[list[tuple[Any, ...]]]:
        try:
            cursor = self._read_conn().execute(_stream_sql(kind, names))
        except sqlite3.DatabaseError as exc:
            raise TargetError(f"cannot read {kind.table} from {self.path}: {_safe(exc)}") from None
        yield from self._row_batches(kind, names, cursor)

    def _row_batches(self, kind: Kind, names: list[str], cursor: sqlite3.Cursor) -> Iterator[list[tuple[Any, ...]]]:
        last: tuple[Any, ...] | None = None
        try:
            while batch := cursor.fetchmany(STREAM_BATCH):
                last = batch[-1]
                yield batch
            return
        except sqlite3.OperationalError as exc:
            if not _undecodable(exc):
                raise TargetError(f"cannot read {kind.table} from {self.path}: {_safe(exc)}") from None
        except sqlite3.DatabaseError as exc:
            raise TargetError(f"cannot read {kind.table} from {self.path}: {_safe(exc)}") from None
        finally:
            try:
                cursor.close()
            except sqlite3.ProgrammingError:  # the store was closed before the stream was dropped: nothing to close
                pass
        # Text that is not UTF-8 (a drifted table): the rest of the stream, after the last row read, from a
        # connection that decodes leniently, for the reader of the rows to find unreadable.
        yield from self._lenient_batches(kind, names, last)

    def _lenient_batches(self, kind: Kind, names: list[str],
                         last: tuple[Any, ...] | None) -> Iterator[list[tuple[Any, ...]]]:
        if last is not None and not all(k in names for k in kind.primary_key):
            raise TargetError(f"cannot read {kind.table} from {self.path}: it holds text that is not UTF-8",
                              "read it with all its key columns, or repair the text")
        if self._lenient is None:
            self._lenient = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._lenient.text_factory = _lenient_text
        after = () if last is None else tuple(last[names.index(k)] for k in kind.primary_key)
        try:
            cursor = self._lenient.execute(_stream_sql(kind, names, after=bool(after)), after)
            try:
                while batch := cursor.fetchmany(STREAM_BATCH):
                    yield batch
            finally:
                cursor.close()
        except sqlite3.DatabaseError as exc:
            raise TargetError(f"cannot read {kind.table} from {self.path}: {_safe(exc)}") from None

    # -- writing (drills and, later, restore) ------------------------------

    def insert_many(self, kind: Kind, rows: Iterable[tuple[Any, ...]]) -> None:
        cols = ", ".join(kind.field_names)
        marks = ", ".join("?" for _ in kind.fields)
        self.conn.executemany(f"INSERT INTO {kind.table} ({cols}) VALUES ({marks})", rows)

    def rows_by_key(self, kind: Kind, keys: list[tuple[Any, ...]]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
        """The live rows of these keys (absent keys are missing from the result)."""
        conn = self._read_conn()
        try:
            return _leniently(conn, lambda: _rows_by_key(conn, kind, keys, self._range_readable(kind)))
        except sqlite3.DatabaseError as exc:
            raise TargetError(f"cannot read {kind.table} from {self.path}: {_safe(exc)}") from None

    def _range_readable(self, kind: Kind) -> bool:
        """Whether the live table has an index led by its one key column in binary order, so that a key range
        (compared in binary order: the payload's) is read from that index, not by a scan."""
        if kind.table not in self._ranged:
            (key,) = kind.primary_key if len(kind.primary_key) == 1 else (None,)
            found = key is not None and bool(self._query(
                "SELECT 1 FROM pragma_index_list(?) AS l, pragma_index_xinfo(l.name) AS x "
                "WHERE NOT l.partial AND x.seqno = 0 AND lower(x.name) = ? AND upper(x.coll) = 'BINARY'",
                (kind.table, key)))
            self._ranged[kind.table] = found
        return self._ranged[kind.table]

    def existing_accounts(self, account_ids: set[str]) -> set[str]:
        """Which of these accounts live has: only the ids are read, never whole rows. Inside a write
        transaction (a restore batch) through that transaction, which sees what it locked."""
        conn = self.conn if self.conn.in_transaction else self._read_conn()
        # In key order: consecutive lookups share the table's pages (a random order reads ~3x more of them).
        try:
            return _leniently(conn, lambda: {row[0] for row in _select_in(conn, "account_id", IDENTITY.table,
                                                                          "account_id", sorted(account_ids))})
        except sqlite3.DatabaseError as exc:
            raise TargetError(f"cannot read {IDENTITY.table} from {self.path}: {_safe(exc)}") from None

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self.conn.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as exc:
            raise TargetError(f"cannot read target {self.path}: {exc}") from None

    # -- the restore journal -----------------------------------------------

    def _ensure_journal(self) -> None:
        try:
            for statement in JOURNAL.create:
                self.conn.execute(statement)
        except sqlite3.DatabaseError as exc:
            raise TargetError(f"cannot create the restore journal in {self.path}: {exc}") from None

    def lock_restores(self) -> None:
        """Hold the target's restore lock until this store closes (or the process ends, even killed).

        An exclusive flock on ``<database>.restore-lock`` beside the database (never on the database file
        itself: closing another descriptor of that file would drop SQLite's own locks). The database's
        path is resolved first, so every spelling of one file (a symlink, ``..``, a relative path) takes
        the same lock."""
        if self._restore_lock is not None:
            return
        lock = os.fdopen(create_private_file(restore_lock_path(self.path), append=True), "a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise another_restore_running(self.display) from None
        self._restore_lock = lock

    def target_id(self) -> str:
        """A random id this store keeps for life, so a resume can tell one target from another."""
        self._ensure_journal()
        with self.transaction() as conn:
            row = conn.execute("SELECT value FROM enigm_meta WHERE key='target_id'").fetchone()
            if row:
                return str(row[0])
            value = secrets.token_hex(8)
            conn.execute("INSERT INTO enigm_meta VALUES ('target_id', ?)", (value,))
            return value

    def unfinished_run(self) -> RestoreRun | None:
        self._ensure_journal()
        row = self.conn.execute(JOURNAL.unfinished_run).fetchone()
        return RestoreRun(*row) if row else None

    def start_run(self, run: RestoreRun) -> None:
        self._ensure_journal()
        with self.transaction() as conn:
            conn.execute(JOURNAL.start_run, (run.run_id, run.snapshot_id, run.payload_sha256, run.plan, run.started_at, run.status))

    def finish_run(self, run_id: str, status: str) -> None:
        with self.transaction() as conn:
            conn.execute(JOURNAL.finish_run, (str(status), run_id))

    def step_position(self, run_id: str, step: str) -> StepPosition:
        totals = self.conn.execute(JOURNAL.step_totals, (run_id, step, run_id, step)).fetchone()
        return step_position(totals, self.conn.execute(JOURNAL.step_result, (run_id, step)).fetchone())

    def apply_batch(self, run_id: str, batch: Batch) -> None:
        """The batch's rows and its journal row, in one transaction: all or nothing."""
        with self.transaction() as conn:
            self._write_batch(conn, run_id, batch)

    def apply_with(self, run_id: str, kind: Kind, keys: list[tuple[Any, ...]],
                   build: Callable[[dict[tuple[Any, ...], tuple[Any, ...]]], Batch]) -> Batch:
        """Read the keys' live rows and write the batch ``build`` makes of them, in ONE transaction.

        BEGIN IMMEDIATE takes SQLite's write lock first, so nothing can change those rows between the
        read the decisions rest on and the commit (a device revoked meanwhile is never overwritten)."""
        staged = False
        with self.transaction() as conn:
            batch = build(_leniently(conn, lambda: _rows_by_key(conn, kind, keys, self._range_readable(kind))))
            if len(batch):
                staged = self._write_batch(conn, run_id, batch)
        if staged:
            self._staged = (kind, batch.inserts)  # committed: the staging table holds them as bound
        return batch

    def commit_mark(self) -> int:
        """``PRAGMA data_version`` of the main connection: it changes when another connection commits."""
        return int(self._query("PRAGMA data_version")[0][0])

    def reading_session(self, name: str) -> SQLiteStore | None:
        """For looking accounts up (``ACCOUNTS``), a store of its own on the same file, opened once and closed
        with this one: in WAL mode it reads what has committed while this one writes. None for reading
        batches back (``READ_BACK``): ``identical_rows`` compares in this session, with the rows a batch
        left staged in it."""
        if name != ACCOUNTS:
            return None
        if name not in self._sessions:
            self._sessions[name] = SQLiteStore(self.path)
        return self._sessions[name]

    def identical_rows(self, kind: Kind, rows: list[tuple[Any, ...]]) -> int | None:
        """How many of ``rows`` the live table holds now exactly: the same values of the same types (text
        compared byte for byte, whatever the column's collation). Told without reading them back only when
        ``rows`` are the inserts of the batch just committed, still in the staging table (``_insert_absent``);
        None otherwise."""
        if self._staged is None or self._staged[0] is not kind or self._staged[1] is not rows:
            return None
        try:
            (count,) = self.conn.execute(self._identical_sql(kind)).fetchone()
        except sqlite3.DatabaseError:  # the table changed under the restore: read back and judged row by row
            return None
        return int(count)

    def _identical_sql(self, kind: Kind) -> str:
        """The count of staged rows the live table holds with the same values of the same types. Text is
        compared byte for byte (BINARY, whatever the column's collation). A column whose affinity is the
        model type's keeps no other type that compares equal to a model value (TEXT stores numbers as text;
        INTEGER stores an integral real as an integer; a blob never equals text): it is compared with IS
        alone. Any other column (typeless, NUMERIC, REAL, ANY) is compared by type as well (3.0 = 3)."""
        declared = {str(name).lower(): str(type_)
                    for _cid, name, type_, *_ in self.conn.execute("SELECT * FROM pragma_table_xinfo(?)",
                                                                  (kind.table,))}
        same = []
        for f in kind.fields:
            exact = f"l.{f.name} IS s.{f.name} COLLATE BINARY"
            if _affinity(declared.get(f.name, "")) != f.sql_type:
                exact = f"typeof(l.{f.name}) = typeof(s.{f.name}) AND {exact}"
            same.append(exact)
        join = " AND ".join(f"l.{c} = s.{c}" for c in kind.primary_key)
        return (f"SELECT count(*) FROM temp.enigm_stage_{kind.table} AS s JOIN main.{kind.table} AS l ON {join} "
                f"WHERE {' AND '.join(same)}")

    def _write_batch(self, conn: sqlite3.Connection, run_id: str, batch: Batch) -> bool:
        """The batch's writes and journal rows; whether its inserts went through the staging table."""
        self._staged = None  # the staging table is about to hold other rows, or none
        kind = batch.kind
        cols = ", ".join(kind.field_names)
        marks = ", ".join("?" for _ in kind.fields)
        keys = ", ".join(kind.primary_key)
        updates = ", ".join(f"{c}=excluded.{c}" for c in kind.field_names if c not in kind.primary_key)
        where = " AND ".join(f"{c}=?" for c in kind.primary_key)
        staged = len(batch.inserts) >= STAGE_MIN_ROWS
        if batch.inserts:
            written = _insert_absent(conn, kind, batch.inserts)
            batch.count_skipped_inserts(written)
            if written != len(batch.inserts):
                batch.drop_skipped_inserts(_rows_by_key(conn, kind, [kind.key_of_row(r) for r in batch.inserts],
                                                        self._range_readable(kind)))
        if batch.upserts:
            conn.executemany(f"INSERT INTO {kind.table} ({cols}) VALUES ({marks}) "
                             f"ON CONFLICT ({keys}) DO UPDATE SET {updates}", batch.upserts)
        if batch.deletes:
            conn.executemany(f"DELETE FROM {kind.table} WHERE {where}", batch.deletes)
        conn.execute(JOURNAL.record_batch, batch_row(run_id, batch))
        conn.execute(JOURNAL.record_written, written_row(run_id, batch))
        return staged

    def written_rows(self, run_id: str,
                     step: str) -> Iterator[tuple[list[tuple[tuple[Any, ...], str]], list[tuple[Any, ...]]]]:
        """Per committed batch of the step: the rows it wrote (key, line hash) and the keys it deleted."""
        self._ensure_journal()
        numbers = [r[0] for r in self.conn.execute(JOURNAL.written_batches, (run_id, step))]
        for number in numbers:
            row = self.conn.execute(JOURNAL.written_batch, (run_id, step, number)).fetchone()
            yield decode_written(row[0], row[1])

    def record_step(self, run_id: str, step: str, status: str, result: dict[str, Any]) -> None:
        with self.transaction() as conn:
            conn.execute(JOURNAL.record_step, step_result_row(run_id, step, status, result))


STAGE_MIN_ROWS = 64  # inserts of a batch at least this many go through a staging table


def _insert_absent(conn: sqlite3.Connection, kind: Kind, rows: list[tuple[Any, ...]]) -> int:
    """Insert ``rows`` where their keys are absent (a taken key keeps its row); how many went in.

    Many rows are bound into a session-temporary staging table first, then inserted in one statement: SQLite
    then fills the live table's pages in one pass, about a fifth faster than a statement run per row. The
    staging table's columns have no type, so it keeps every value exactly as bound; it keeps them until the
    next batch stages its own (``SQLiteStore.identical_rows`` reads them back beside the live rows)."""
    cols = ", ".join(kind.field_names)
    marks = ", ".join("?" for _ in kind.fields)
    keys = ", ".join(kind.primary_key)
    if len(rows) < STAGE_MIN_ROWS:
        return conn.executemany(f"INSERT INTO main.{kind.table} ({cols}) VALUES ({marks}) "
                                f"ON CONFLICT ({keys}) DO NOTHING", rows).rowcount
    stage = f"temp.enigm_stage_{kind.table}"
    conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS enigm_stage_{kind.table} ({cols})")
    conn.execute(f"DELETE FROM {stage}")
    conn.executemany(f"INSERT INTO {stage} ({cols}) VALUES ({marks})", rows)
    # "WHERE true": without it SQLite would read ON CONFLICT as a join's ON.
    return conn.execute(f"INSERT INTO main.{kind.table} ({cols}) SELECT {cols} FROM {stage} WHERE true "
                        f"ON CONFLICT ({keys}) DO NOTHING").rowcount


def _affinity(declared: str) -> str:
    """The affinity SQLite gives a column declared with this type (its documented rules, in order)."""
    upper = declared.upper()
    if "INT" in upper:
        return "INTEGER"
    if any(t in upper for t in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if not upper or "BLOB" in upper or upper == "ANY":  # ANY: a STRICT table's column that keeps any value
        return "BLOB"
    if any(t in upper for t in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


# The affinities that keep a model value as written: integers stay integers (REAL would make 3 into 3.0),
# text stays text (a numeric affinity would make the text '30' into the integer 30).
_ANY_AFFINITY = frozenset({"INTEGER", "TEXT", "BLOB", "REAL", "NUMERIC"})
_KEEPS = {"INTEGER": frozenset({"INTEGER", "NUMERIC", "BLOB"}), "TEXT": frozenset({"TEXT", "BLOB"})}


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error; SQLite's own errors become TargetError."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    def __enter__(self) -> sqlite3.Connection:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise TargetError(f"cannot write to {self.path}: {exc}") from None
        return self.conn

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        if exc_type is None:
            try:
                self.conn.execute("COMMIT")
                return False
            except sqlite3.Error as commit_error:
                exc = commit_error
        self.conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise TargetError(f"writing to {self.path} failed and was rolled back: {exc}",
                              "nothing of this batch was kept; fix the cause, then run again (a restore "
                              "continues with --resume)") from None
        return False


def _stream_sql(kind: Kind, names: list[str], after: bool = False) -> str:
    """A kind's rows in key order; with ``after``, only those whose key is greater than the one bound."""
    keys = ", ".join(kind.primary_key)
    where = f" WHERE ({keys}) > ({', '.join('?' for _ in kind.primary_key)})" if after else ""
    return f"SELECT {', '.join(names)} FROM {kind.table}{where} ORDER BY {keys}"


def _lenient_text(data: bytes) -> str:
    """Text as SQLite holds it, even when it is not UTF-8 (undecodable bytes become lone surrogates, which
    no value of the model admits)."""
    return data.decode("utf-8", "surrogateescape")


def _undecodable(exc: sqlite3.Error) -> bool:
    return str(exc).startswith("Could not decode to UTF-8")


def _safe(exc: sqlite3.Error) -> str:
    """SQLite's message without the live text some quote (a message is shown; a value is never shown raw)."""
    return "a column holds text that is not UTF-8" if _undecodable(exc) else str(exc)


T = TypeVar("T")


def _leniently(conn: sqlite3.Connection, read: Callable[[], T]) -> T:
    """``read()``, once more decoding text leniently if some of it is not UTF-8 (a keyed read of a drifted
    table; ``read`` must read everything it returns)."""
    try:
        return read()
    except sqlite3.OperationalError as exc:
        if not _undecodable(exc):
            raise
    conn.text_factory = _lenient_text
    try:
        return read()
    finally:
        conn.text_factory = str


def _rows_by_key(conn: sqlite3.Connection, kind: Kind, keys: list[tuple[Any, ...]],
                 ranged: bool = False) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """The live rows of ``keys``. With ``ranged`` (see ``SQLiteStore._range_readable``), keys dense in their
    range are read as that range; the rows of other keys in it are left out."""
    cols = ", ".join(kind.field_names)
    found: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    if len(kind.primary_key) == 1:
        values = list(map(itemgetter(0), keys))
        if ranged and len(values) >= RANGE_MIN_KEYS and set(map(type, values)) == {str}:
            rows = _dense_range(conn, kind, cols, min(values), max(values), len(values))
            if rows is not None:
                # Keyed as the caller keys them (1-tuples), made in C; the range's other rows left out.
                found = dict(zip(zip(map(itemgetter(kind.key_positions[0]), rows)), rows))
                wanted = set(keys)
                if found.keys() <= wanted:
                    return found
                return {key: row for key, row in found.items() if key in wanted}
        for row in _select_in(conn, cols, kind.table, kind.primary_key[0], values):
            found[kind.key_of_row(row)] = row
    else:
        where = " AND ".join(f"{c}=?" for c in kind.primary_key)
        for key in keys:
            row = conn.execute(f"SELECT {cols} FROM {kind.table} WHERE {where}", key).fetchone()
            if row is not None:
                found[key] = row
    return found


def _dense_range(conn: sqlite3.Connection, kind: Kind, cols: str, low: str, high: str,
                 wanted: int) -> list[tuple[Any, ...]] | None:
    """The rows whose key lies from ``low`` to ``high`` (binary order), or None when that range holds more
    than 1/RANGE_SLACK more rows than the ``wanted`` keys (counted, not read, up to that bound)."""
    (key,) = kind.primary_key
    within = f"{key} >= ? COLLATE BINARY AND {key} <= ? COLLATE BINARY"
    bound = wanted + wanted // RANGE_SLACK + 1
    (held,) = conn.execute(f"SELECT count(*) FROM (SELECT 1 FROM {kind.table} WHERE {within} LIMIT ?)",
                           (low, high, bound)).fetchone()
    if held >= bound:
        return None
    return conn.execute(f"SELECT {cols} FROM {kind.table} WHERE {within}", (low, high)).fetchall()


def _select_in(conn: sqlite3.Connection, columns: str, table: str, column: str,
               values: list[Any]) -> Iterator[tuple[Any, ...]]:
    """``SELECT columns FROM table WHERE column IN (values)``, IN_CHUNK values per query."""
    for start in range(0, len(values), IN_CHUNK):
        chunk = values[start:start + IN_CHUNK]
        marks = ", ".join("?" for _ in chunk)
        yield from conn.execute(f"SELECT {columns} FROM {table} WHERE {column} IN ({marks})", chunk)
