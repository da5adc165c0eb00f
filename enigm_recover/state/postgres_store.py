"""The PostgreSQL target store, through psycopg 3: the same interface and semantics as the SQLite store.

Tables carry the same columns, primary keys and CHECK constraints. Text
columns are created with the "C" collation, and every read orders by
``key COLLATE "C"`` as well, so rows stream in byte order of their UTF-8 keys
(the payload's order, SQLite's, Python's) whatever the database's default
collation is, and also from tables the platform created itself. A linguistic
collation (en_US, ICU) would put "a" before "B" and "a-b" before "a.b" and
break every merge pass.

Reads stream through a server-side cursor on a connection of their own, in a
REPEATABLE READ read-only transaction: a restore reads a table in one merge
pass from a fixed view while it writes batches to the same table on the main
connection. A batch is loaded with COPY into a temporary staging table, then
upserted (INSERT ... ON CONFLICT DO UPDATE) and deleted (DELETE ... USING)
from there, and its journal row inserted, all in one transaction. A restore
reads each batch back, and looks up the accounts of the next batch of
devices, on sessions of their own (``reading_session``), while the main
connection writes: both sides wait on the server much of the time, so each
fills the other's waits.
"""

from __future__ import annotations

import logging
import secrets
from contextlib import contextmanager
from itertools import chain
from operator import itemgetter
from typing import Any, Callable, Iterable, Iterator

import psycopg
from psycopg import sql
from psycopg.errors import UndefinedTable

from enigm_recover.errors import TargetError
from enigm_recover.state.journal import (
    JOURNAL_TABLES,
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
from enigm_recover.state.model import IDENTITY, KINDS, Kind
from enigm_recover.state.sqlite_store import _CHECKS
from enigm_recover.state.url import TargetURL, parse_target_url

log = logging.getLogger(__name__)

STREAM_CHUNK = 5000  # rows per FETCH from a server-side cursor
KEYS_CHUNK = 10000  # keys per keyed lookup

_TYPES = {"TEXT": 'text COLLATE "C"', "INTEGER": "integer"}

JOURNAL = journal_sql(placeholder="%s", key_text='text COLLATE "C"', text="text", integer="integer",
                      counter="bigint")


# The types (by their regtype names) that hold each model type's values as the model reads them.
_COMPATIBLE = {"INTEGER": ("smallint", "integer", "bigint"), "TEXT": ("text", "character varying", "character")}

RESTORE_LOCK = "enigm-recover restore"  # the advisory lock's name (locks are per database)


def schema_sql(kind: Kind) -> str:
    cols = [f"{f.name} {_TYPES[f.sql_type]} NOT NULL" for f in kind.fields]
    cols += [f"CHECK ({c})" for (k, _), c in _CHECKS.items() if k == kind.name]
    cols.append(f"PRIMARY KEY ({', '.join(kind.primary_key)})")
    return f"CREATE TABLE IF NOT EXISTS {kind.table} (\n  " + ",\n  ".join(cols) + "\n)"


# Many text keys sent as one text that the server splits: psycopg dumps a list element by element in Python.
_JOINED_TEXT = sql.SQL("string_to_array(%s::text, chr(31))")


def _joined_text(values: list[str]) -> str | None:
    """``values`` joined by a unit separator for ``_JOINED_TEXT``, when splitting gives them back exactly:
    none empty, none holding the separator or a NUL (which PostgreSQL text cannot hold); None otherwise."""
    joined = "\x1f".join(values)
    if not all(values) or joined.count("\x1f") != len(values) - 1 or "\x00" in joined:
        return None
    return joined


def _ids(names: Iterable[str]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)


def _cause(exc: BaseException) -> str:
    """What went wrong, in one line, never with row contents (PostgreSQL's DETAIL shows failing rows)."""
    diag = getattr(exc, "diag", None)
    primary = diag.message_primary if diag is not None else None
    if primary:
        return primary.strip()
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _connect_cause(exc: BaseException, password: str | None) -> tuple[str, str]:
    """The cause of a failed connection and the hint that goes with it."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    for prefix in ("connection failed: ", "connection is bad: "):
        first = first.removeprefix(prefix)
    if " failed: " in first and first.startswith("connection to server"):
        first = first.rpartition(" failed: ")[2]
    first = first.replace("FATAL:  ", "").replace("FATAL: ", "").strip()
    if password:
        first = first.replace(password, "***")
    low = first.lower()
    if "database" in low and "does not exist" in low:
        hint = "create the database first (createdb, or CREATE DATABASE), then run `enigm-recover target init URL`"
    elif any(s in low for s in ("authentication failed", "no password supplied", "pg_hba.conf", "role ")):
        hint = ("check the user name and its password (in the URL, ~/.pgpass or PGPASSWORD) and that pg_hba.conf "
                "lets this user connect from here")
    else:
        hint = "check the host and port, that the server is running and that the network lets you reach it"
    return first, hint


class PostgresStore:
    """A platform state store in one PostgreSQL database."""

    def __init__(self, url: str | TargetURL, *, create: bool = False) -> None:
        self.url = url if isinstance(url, TargetURL) else parse_target_url(url)
        if self.url.scheme != "postgresql":
            raise TargetError(f"target URL {self.url.display()!r} is not a PostgreSQL URL")
        self.display = self.url.display()
        self._kwargs: dict[str, Any] = {"application_name": "enigm-recover", **self.url.connect_kwargs()}
        self._idle_reader: psycopg.Connection[Any] | None = None
        self._pinned_reader: psycopg.Connection[Any] | None = None  # inside consistent_reads()
        self._readers: list[psycopg.Connection[Any]] = []
        self._staged: set[str] = set()  # staging tables that exist in this session
        self._byte_ordered: dict[str, bool] = {}  # per table: its one-column key is "C"-collated (its index too)
        self._reading_sessions: dict[str, PostgresStore] = {}
        self._journal_ready = False
        self.conn = self._connect(autocommit=True)
        self._restore_locked = False  # the advisory lock goes with the session
        if not create:
            try:
                missing = self._missing_tables([k.table for k in KINDS])
            except BaseException:
                self.conn.close()
                raise
            if len(missing) == len(KINDS):
                self.conn.close()
                raise TargetError(f"target {self.display} holds no platform schema (no table {KINDS[0].table!r})",
                                  f"create it with `enigm-recover target init {self.display}`")

    # -- lifecycle ---------------------------------------------------------

    def _connect(self, *, autocommit: bool) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(**self._kwargs, autocommit=autocommit)
        except psycopg.Error as exc:
            cause, hint = _connect_cause(exc, self._kwargs.get("password"))
            raise TargetError(f"cannot connect to {self.display}: {cause}", hint) from None

    def close(self) -> None:
        for session in self._reading_sessions.values():
            session.close()
        self._reading_sessions.clear()
        for conn in self._readers:
            conn.close()
        self._readers.clear()
        self._idle_reader = None
        if self._restore_locked and not self.conn.closed:
            # Released before disconnecting: the server ends a closed session's backend (and drops its
            # locks) a moment later, and a restore started right after this one ends must not be refused.
            try:
                self.conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (RESTORE_LOCK,))
            except psycopg.Error:
                pass  # a broken session: its end releases the lock
            self._restore_locked = False
        self.conn.close()

    def __enter__(self) -> "PostgresStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _error(self, doing: str, exc: BaseException, hint: str | None = None) -> TargetError:
        if isinstance(exc, UndefinedTable):
            return TargetError(f"cannot {doing} in {self.display}: {_cause(exc)}",
                               f"create the schema with `enigm-recover target init {self.display}`")
        return TargetError(f"cannot {doing} in {self.display}: {_cause(exc)}", hint)

    def init_schema(self) -> None:
        missing = self._missing_tables(list(JOURNAL_TABLES))
        try:
            with self.conn.transaction():
                for kind in KINDS:
                    self.conn.execute(schema_sql(kind))  # type: ignore[arg-type]
                self._create_journal(missing)
        except psycopg.Error as exc:
            raise self._error("create the schema", exc) from None
        self._journal_ready = True

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """One transaction on the main connection (nested ones become savepoints)."""
        with self.conn.transaction():
            yield self.conn

    # -- reading -----------------------------------------------------------

    def _query(self, doing: str, query: Any, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self.conn.execute(query, args).fetchall()
        except psycopg.Error as exc:
            raise self._error(doing, exc) from None

    def _execute(self, doing: str, statement: Any, args: tuple[Any, ...] = ()) -> None:
        try:
            self.conn.execute(statement, args)
        except psycopg.Error as exc:
            raise self._error(doing, exc) from None

    def _create_journal(self, missing: list[str]) -> None:
        """Create the journal's tables (those in ``missing`` are new: only their storage is set)."""
        for statement in JOURNAL.create:
            self.conn.execute(statement)  # type: ignore[arg-type]
        if "enigm_restore_written" in missing:
            # A batch's read-back record is mostly SHA-256 in hex, which pglz tries and fails to shrink, at
            # tens of milliseconds a batch: it is stored out of line as it is.
            self.conn.execute("ALTER TABLE enigm_restore_written ALTER COLUMN written SET STORAGE EXTERNAL")

    def _missing_tables(self, tables: list[str]) -> list[str]:
        rows = self._query("read the catalog", "SELECT t FROM unnest(%s::text[]) WITH ORDINALITY AS u(t, i) "
                                               "WHERE to_regclass(t) IS NULL ORDER BY i", (tables,))
        return [r[0] for r in rows]

    def columns(self, kind: Kind) -> list[str]:
        """The columns the live table really has (may differ from the model)."""
        rows = self._query("read the catalog",
                           "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s::text) "
                           "AND attnum > 0 AND NOT attisdropped ORDER BY attnum", (kind.table,))
        if not rows:
            raise TargetError(
                f"target {self.display} has no table {kind.table!r}",
                f"create the schema with `enigm-recover target init {self.display}`",
            )
        return [r[0] for r in rows]

    def live_table(self, kind: Kind) -> LiveTable:
        """The live table as it really is (no columns when it does not exist). A column of the model is
        compatible when its type (a domain's base type) holds the model's values as the model reads them: an
        integer type for integers; for text, a character type, whose "C" collation orders bytes (citext, say,
        would order without case and break the merge). Unique keys: those ON CONFLICT can use."""
        rows = self._query(
            "read the catalog",
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), "
            "a.attnotnull AND NOT a.atthasdef AND a.attidentity = '' AND a.attgenerated = '', "
            "CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END::regtype::text "
            "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid WHERE a.attrelid = to_regclass(%s::text) "
            "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum", (kind.table,))
        model = {f.name: f.sql_type for f in kind.fields}
        columns = tuple(LiveColumn(name, type_, required, base in _COMPATIBLE.get(model.get(name, ""), (base,)))
                        for name, type_, required, base in rows)
        keys = self._query(
            "read the catalog",
            "SELECT array_agg(a.attname::text) FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = to_regclass(%s::text) AND i.indisunique "
            "AND i.indimmediate AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL "
            "GROUP BY i.indexrelid", (kind.table,))
        return LiveTable(columns, frozenset(frozenset(names) for (names,) in keys))

    def count(self, kind: Kind) -> int:
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(kind.table))
        return int(self._query(f"count {kind.table}", query)[0][0])

    def stream(self, kind: Kind, columns: Iterable[str] | None = None) -> Iterator[tuple[Any, ...]]:
        """Rows of `kind` in primary-key byte order, as tuples in `columns` order (its own read view); read from
        the first ``next``, row by row without a Python frame per row."""
        return chain.from_iterable(self._stream_batches(kind, columns))

    def _stream_batches(self, kind: Kind, columns: Iterable[str] | None) -> Iterator[list[tuple[Any, ...]]]:
        order = sql.SQL(", ").join(sql.SQL('{} COLLATE "C"').format(sql.Identifier(k)) for k in kind.primary_key)
        query = sql.SQL("SELECT {} FROM {} ORDER BY {}").format(
            _ids(list(columns or kind.field_names)), sql.Identifier(kind.table), order)
        conn = None
        try:
            conn = self._pinned_reader or self._take_reader()
            with conn.cursor(name="enigm_stream") as cursor:
                cursor.itersize = STREAM_CHUNK
                cursor.execute(query)
                while rows := cursor.fetchmany(STREAM_CHUNK):
                    yield rows
        except psycopg.Error as exc:
            raise self._error(f"read {kind.table}", exc) from None
        finally:
            if conn is not None and conn is not self._pinned_reader:
                self._release_reader(conn)

    @contextmanager
    def consistent_reads(self) -> Iterator[None]:
        """Every stream inside reads one snapshot of the store (one REPEATABLE READ transaction)."""
        self._pinned_reader = self._take_reader()
        try:
            yield
        finally:
            conn, self._pinned_reader = self._pinned_reader, None
            self._release_reader(conn)

    def _take_reader(self) -> psycopg.Connection[Any]:
        """A connection for one stream: the idle one if there is one, else a new one."""
        conn, self._idle_reader = self._idle_reader, None
        if conn is None or conn.closed:
            conn = self._connect(autocommit=False)
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            self._readers.append(conn)
        return conn

    def _release_reader(self, conn: psycopg.Connection[Any]) -> None:
        """End the stream's read transaction; keep one healthy connection for the next stream."""
        try:
            if not conn.closed:
                conn.rollback()
        except psycopg.Error:
            conn.close()
        if conn.closed or conn.broken or self._idle_reader is not None or self.conn.closed:
            conn.close()
            if conn in self._readers:
                self._readers.remove(conn)
        else:
            self._idle_reader = conn

    # -- writing (drills, tests and restore) --------------------------------

    def insert_many(self, kind: Kind, rows: Iterable[tuple[Any, ...]]) -> None:
        """Load rows with COPY (psycopg errors, such as a CHECK violation, propagate as they are)."""
        with self.conn.cursor() as cursor:
            copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(kind.table), _ids(kind.field_names))
            with cursor.copy(copy_sql) as copy:
                for row in rows:
                    copy.write_row(row)

    def rows_by_key(self, kind: Kind, keys: list[tuple[Any, ...]]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
        """The live rows of these keys, as committed now (absent keys are missing from the result)."""
        return self._rows_by_key(kind, keys, lock=False)

    def _rows_by_key(self, kind: Kind, keys: list[tuple[Any, ...]], *,
                     lock: bool) -> dict[tuple[Any, ...], tuple[Any, ...]]:
        """One query per KEYS_CHUNK keys: the keys travel as one array per key column, joined on the table.
        With ``lock``, on the write connection and FOR UPDATE, inside the caller's transaction."""
        found: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        if not keys:
            return found
        single = len(kind.primary_key) == 1
        if lock and single and self._none_between(kind, keys):
            return found
        types = {f.name: f.sql_type.lower() for f in kind.fields}
        arrays = sql.SQL(", ").join(sql.SQL("%b::{}[]").format(sql.SQL(types[c])) for c in kind.primary_key)
        match = sql.SQL(" AND ").join(sql.SQL("t.{0} = k.{0}").format(sql.Identifier(c)) for c in kind.primary_key)
        # A one-column key is also bounded by the chunk's least and greatest key (in byte order, the "C"
        # collation): the planner's merge join then reads the key index from the chunk's first key, not from
        # the table's, so reading a large table chunk by chunk stays linear.
        bounds = sql.SQL(" WHERE t.{0} COLLATE \"C\" >= %s AND t.{0} COLLATE \"C\" <= %s").format(
            sql.Identifier(kind.primary_key[0])) if single else sql.SQL("")
        queries = [sql.SQL("SELECT {} FROM {} AS t JOIN unnest({}) AS k({}) ON {}{}{}").format(
            sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in kind.field_names),
            sql.Identifier(kind.table), keys_sql, _ids(kind.primary_key), match, where,
            sql.SQL(" FOR UPDATE OF t") if lock else sql.SQL(""))
            for keys_sql, where in ((arrays, sql.SQL("")), (arrays, bounds), (_JOINED_TEXT, bounds))]
        for start in range(0, len(keys), KEYS_CHUNK):
            chunk = keys[start:start + KEYS_CHUNK]
            columns: tuple[Any, ...] = tuple([key[i] for key in chunk] for i in range(len(kind.primary_key)))
            query = queries[0]
            # Python orders text by code point, which is UTF-8's byte order; a key that is not text has no
            # place in it, and its chunk is read unbounded.
            if single and set(map(type, columns[0])) == {str}:
                bounded = (min(columns[0]), max(columns[0]))
                joined = _joined_text(columns[0])
                query, columns = (queries[1], columns + bounded) if joined is None else \
                    (queries[2], (joined, *bounded))
            if lock:
                with self.conn.cursor() as cursor:
                    rows = cursor.execute(query, columns).fetchall()
            else:
                rows = self._query(f"read {kind.table}", query, columns)
            if single:
                found.update(zip(zip(map(itemgetter(kind.key_positions[0]), rows)), rows))
            else:
                found.update(zip(map(kind.key_of_row, rows), rows))
        return found

    def _none_between(self, kind: Kind, keys: list[tuple[Any, ...]]) -> bool:
        """Whether the table holds no key from the least to the greatest of ``keys`` (text keys, in byte
        order): one probe of the key's index, where the index is in byte order ("C"). A batch of records
        the table lost (a total loss) is told so without sending its keys; there is no row to lock."""
        table, column = kind.table, kind.primary_key[0]
        if table not in self._byte_ordered:
            collation = self._query(
                "read the catalog",
                "SELECT c.collname FROM pg_attribute a JOIN pg_collation c ON c.oid = a.attcollation "
                "WHERE a.attrelid = to_regclass(%s::text) AND a.attname = %s", (table, column))
            self._byte_ordered[table] = bool(collation) and collation[0][0] in ("C", "POSIX")
        values = [key[0] for key in keys]
        if not self._byte_ordered[table] or set(map(type, values)) != {str}:
            return False
        probe = sql.SQL("SELECT 1 FROM {} WHERE {column} >= %s AND {column} <= %s LIMIT 1").format(
            sql.Identifier(table), column=sql.Identifier(column))
        with self.conn.cursor() as cursor:
            return cursor.execute(probe, (min(values), max(values))).fetchone() is None

    def apply_with(self, run_id: str, kind: Kind, keys: list[tuple[Any, ...]],
                   build: Callable[[dict[tuple[Any, ...], tuple[Any, ...]]], Batch]) -> Batch:
        """Lock and read the keys' live rows, and write the batch ``build`` makes of them, in ONE transaction,
        so the platform cannot change a row between the read the decisions rest on and the commit."""
        try:
            with self.conn.transaction():
                batch = build(self._rows_by_key(kind, keys, lock=True))
                if len(batch):
                    self.apply_batch(run_id, batch)
        except psycopg.Error as exc:
            raise self._error(f"read and lock {kind.table}", exc) from None
        return batch

    def commit_mark(self) -> None:
        """None: an account read inside a batch's transaction is no more locked than one read before it."""
        return None

    def reading_session(self, name: str) -> PostgresStore | None:
        """A connection of its own to the same database, one per ``name``: opened once, closed with this
        store. None when the server takes no more connections (or refuses one): the reads then share the
        main connection, as they would without one."""
        if name not in self._reading_sessions:
            try:
                self._reading_sessions[name] = PostgresStore(self.url)
            except TargetError as exc:
                log.warning("reading on the main connection instead of one of its own (%s)", exc.message)
                return None
        return self._reading_sessions[name]

    def identical_rows(self, kind: Kind, rows: list[tuple[Any, ...]]) -> int | None:
        """Not told without reading the rows back: a batch's staging table empties as it commits (and keeping
        its rows for a comparison in SQL measured slower than reading them back)."""
        return None

    def existing_accounts(self, account_ids: set[str]) -> set[str]:
        """Which of these accounts the live store has."""
        if not account_ids:
            return set()
        queries = [sql.SQL("SELECT account_id FROM {} WHERE account_id = ANY({})").format(
            sql.Identifier(IDENTITY.table), values) for values in (sql.SQL("%b::text[]"), _JOINED_TEXT)]
        wanted = sorted(account_ids)
        found: set[str] = set()
        for start in range(0, len(wanted), KEYS_CHUNK):
            chunk = wanted[start:start + KEYS_CHUNK]
            joined = _joined_text(chunk)
            query, args = (queries[0], (chunk,)) if joined is None else (queries[1], (joined,))
            found.update(map(itemgetter(0), self._query(f"read {IDENTITY.table}", query, args)))
        return found

    # -- the restore journal -----------------------------------------------

    def _ensure_journal(self) -> None:
        if self._journal_ready:
            return
        # Only create what is missing: CREATE TABLE IF NOT EXISTS needs the CREATE privilege even when the
        # table exists, and a restore role may have none.
        missing = self._missing_tables(list(JOURNAL_TABLES))
        if missing:
            try:
                with self.conn.transaction():
                    self._create_journal(missing)
            except psycopg.Error as exc:
                raise self._error("create the restore journal", exc) from None
        self._journal_ready = True

    def lock_restores(self) -> None:
        """Hold the target's restore lock until this store closes (or its process ends, even killed): a
        session-level advisory lock, which needs no privilege and no table of its own."""
        if self._restore_locked:
            return
        locked = self._query("take the restore lock", "SELECT pg_try_advisory_lock(hashtext(%s))",
                             (RESTORE_LOCK,))[0][0]
        if not locked:
            raise another_restore_running(self.display)
        self._restore_locked = True

    def target_id(self) -> str:
        """A random id this store keeps for life, so a resume can tell one target from another."""
        self._ensure_journal()
        try:
            with self.conn.transaction():
                self.conn.execute("INSERT INTO enigm_meta (key, value) VALUES ('target_id', %s) "
                                  "ON CONFLICT (key) DO NOTHING", (secrets.token_hex(8),))
                row = self.conn.execute("SELECT value FROM enigm_meta WHERE key = 'target_id'").fetchone()
        except psycopg.Error as exc:
            raise self._error("read the target id", exc) from None
        assert row is not None
        return str(row[0])

    def unfinished_run(self) -> RestoreRun | None:
        self._ensure_journal()
        rows = self._query("read the restore journal", JOURNAL.unfinished_run)
        return RestoreRun(*rows[0]) if rows else None

    def start_run(self, run: RestoreRun) -> None:
        self._ensure_journal()
        self._execute("record the restore run", JOURNAL.start_run,
                      (run.run_id, run.snapshot_id, run.payload_sha256, run.plan, run.started_at, run.status))

    def finish_run(self, run_id: str, status: str) -> None:
        self._ensure_journal()
        self._execute("record the end of the restore run", JOURNAL.finish_run, (str(status), run_id))

    def step_position(self, run_id: str, step: str) -> StepPosition:
        self._ensure_journal()
        totals = self._query("read the restore journal", JOURNAL.step_totals, (run_id, step, run_id, step))[0]
        done = self._query("read the restore journal", JOURNAL.step_result, (run_id, step))
        return step_position(totals, done[0] if done else None)

    def _stage(self, kind: Kind, columns: tuple[str, ...], suffix: str, created: list[str],
               nested: bool) -> sql.Identifier:
        """An empty session-temporary table with the live table's `columns` (types and collations)."""
        name = f"enigm_stage_{kind.table}_{suffix}"
        stage = sql.Identifier(name)
        if name not in self._staged:
            self.conn.execute(sql.SQL("CREATE TEMPORARY TABLE IF NOT EXISTS {} ON COMMIT DELETE ROWS AS "
                                      "SELECT {} FROM {} WITH NO DATA").format(stage, _ids(columns),
                                                                               sql.Identifier(kind.table)))
            created.append(name)
        if nested or name not in self._staged:
            # Every commit or rollback empties it: it can hold rows only inside a caller's transaction
            # (or if it outlived our bookkeeping).
            self.conn.execute(sql.SQL("DELETE FROM {}").format(stage))
        return stage

    def _load_stage(self, cursor: psycopg.Cursor[Any], kind: Kind, columns: tuple[str, ...], suffix: str,
                    rows: list[tuple[Any, ...]], created: list[str], nested: bool) -> sql.Identifier:
        """A staging table (see ``_stage``) holding ``rows``, loaded with COPY."""
        stage = self._stage(kind, columns, suffix, created, nested)
        with cursor.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(stage, _ids(columns))) as copy:
            for row in rows:
                copy.write_row(row)
        return stage

    @staticmethod
    def _merge_sql(kind: Kind, stage: sql.Identifier, on_conflict: sql.Composable) -> sql.Composed:
        """Every staged row into the live table; ``on_conflict`` says what happens where its key is taken."""
        return sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT ({}) {}").format(
            sql.Identifier(kind.table), _ids(kind.field_names), _ids(kind.field_names), stage,
            _ids(kind.primary_key), on_conflict)

    def apply_batch(self, run_id: str, batch: Batch) -> None:
        """The batch's rows and its journal row, in one transaction: all or nothing."""
        self._ensure_journal()
        kind = batch.kind
        table = sql.Identifier(kind.table)
        created: list[str] = []
        nested = self.conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
        try:
            with self.conn.transaction(), self.conn.cursor() as cursor:
                if batch.inserts:
                    # Absent when the batch was decided, but not locked (FOR UPDATE locks only rows that
                    # exist): a record the platform created since is kept, not overwritten.
                    stage = self._load_stage(cursor, kind, kind.field_names, "new", batch.inserts, created, nested)
                    cursor.execute(self._merge_sql(kind, stage, sql.SQL("DO NOTHING")))
                    batch.count_skipped_inserts(cursor.rowcount)
                    if cursor.rowcount != len(batch.inserts):
                        batch.drop_skipped_inserts(self._rows_by_key(
                            kind, [kind.key_of_row(r) for r in batch.inserts], lock=True))
                if batch.upserts:
                    stage = self._load_stage(cursor, kind, kind.field_names, "rows", batch.upserts, created, nested)
                    updates = sql.SQL(", ").join(
                        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c))
                        for c in kind.field_names if c not in kind.primary_key)
                    cursor.execute(self._merge_sql(kind, stage, sql.SQL("DO UPDATE SET {}").format(updates)))
                if batch.deletes:
                    stage = self._load_stage(cursor, kind, kind.primary_key, "keys", batch.deletes, created, nested)
                    match = sql.SQL(" AND ").join(sql.SQL("t.{0} = s.{0}").format(sql.Identifier(c))
                                                  for c in kind.primary_key)
                    cursor.execute(sql.SQL("DELETE FROM {} AS t USING {} AS s WHERE {}").format(table, stage, match))
                cursor.execute(JOURNAL.record_batch, batch_row(run_id, batch))  # type: ignore[arg-type]
                cursor.execute(JOURNAL.record_written, written_row(run_id, batch))  # type: ignore[arg-type]
        except psycopg.Error as exc:
            raise self._error(f"write batch {batch.number} of step {batch.step}", exc,
                              "the batch was rolled back; the restore journal says how far the step got: "
                              "run the restore again with --resume once the target is usable") from None
        if self.conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            self._staged.update(created)  # committed (a rollback would have taken the CREATE TABLE with it)

    def written_rows(self, run_id: str,
                     step: str) -> Iterator[tuple[list[tuple[tuple[Any, ...], str]], list[tuple[Any, ...]]]]:
        """Per committed batch of the step: the rows it wrote (key, line hash) and the keys it deleted."""
        self._ensure_journal()
        numbers = [r[0] for r in self._query("read the restore journal", JOURNAL.written_batches, (run_id, step))]
        for number in numbers:
            row = self._query("read the restore journal", JOURNAL.written_batch, (run_id, step, number))[0]
            yield decode_written(row[0], row[1])

    def record_step(self, run_id: str, step: str, status: str, result: dict[str, Any]) -> None:
        self._ensure_journal()
        self._execute("record the step in the restore journal", JOURNAL.record_step,
                      step_result_row(run_id, step, status, result))
