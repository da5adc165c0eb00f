"""What a target store keeps about restores into it: runs, batches and steps.

A batch's rows and its journal row commit in one transaction, so after a crash
the journal says exactly how far each step got: resuming continues after the
last committed batch, and nothing is applied twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from enigm_recover.errors import RestoreRefused
from enigm_recover.state.model import Kind

# Records per restore transaction. Larger batches write each touched page to the write-ahead log fewer
# times (most of a batch's commit cost); a crash repeats at most one batch's reads, never its writes.
DEFAULT_BATCH = 20_000


@dataclass(frozen=True)
class RestoreRun:
    run_id: str
    snapshot_id: str
    payload_sha256: str
    plan: str  # JSON: the steps and their policies
    started_at: str
    status: str = "running"  # running | completed | aborted


@dataclass
class Batch:
    """One atomic unit of a step: rows to write, keys to delete, and where the step has got to.

    ``inserts`` are rows whose key live lacked when the batch was decided. A store writes one only if the
    key is still absent: a record the platform created meanwhile (PostgreSQL locks only rows that exist)
    is kept, and ``inserted`` is lowered to what was really written."""

    step: str
    number: int  # 1-based within the step
    kind: Kind
    last_key: tuple[Any, ...]  # the merge position this batch covers up to, inclusive
    upserts: list[tuple[Any, ...]] = field(default_factory=list)  # whole rows in field order, written over live
    deletes: list[tuple[Any, ...]] = field(default_factory=list)  # primary keys
    inserted: int = 0
    updated: int = 0
    inserts: list[tuple[Any, ...]] = field(default_factory=list)  # whole rows, written where the key is absent
    # key -> SHA-256 of the canonical line of the row written there (inserts and upserts): journaled with the
    # batch, so a step's read-back covers every key it wrote, in this process or before an interruption
    expected: dict[tuple[Any, ...], str] = field(default_factory=dict)

    @property
    def deleted(self) -> int:
        return len(self.deletes)

    def __len__(self) -> int:
        return len(self.inserts) + len(self.upserts) + len(self.deletes)

    def count_skipped_inserts(self, written: int) -> None:
        """Only ``written`` of the inserts went in: the others' keys were taken meanwhile."""
        self.inserted -= len(self.inserts) - written

    def drop_skipped_inserts(self, live: dict[tuple[Any, ...], tuple[Any, ...]]) -> None:
        """After a short insert: ``live`` holds the inserted keys' rows as they are now; a key holding another
        row than ours was taken meanwhile (kept, not ours), so it is not read back as ours."""
        for row in self.inserts:
            key = self.kind.key_of_row(row)
            if live.get(key) != row:
                self.expected.pop(key, None)

    def written_record(self) -> tuple[str, str]:
        """The journal's read-back record of this batch: the rows written (key and line hash), the keys deleted."""
        return _written_json(self.expected), json.dumps(self.deletes, separators=(",", ":"))


def _written_json(expected: dict[tuple[Any, ...], str]) -> str:
    """``json.dumps`` of the (key, hash) pairs, compact. Keys of one text value that JSON writes as they are
    (every key of a kind whose values need no escaping), with hashes that JSON writes as they are, are put
    in the text by joins in C instead; anything else goes through the encoder."""
    keys = [key[0] for key in expected if len(key) == 1]
    hashes = list(expected.values())
    if len(keys) == len(expected) and set(map(type, chain(keys, hashes))) <= {str} and \
            _as_is("".join(keys)) and _as_is("".join(hashes)):
        if not keys:
            return "[]"
        return '[[["' + '"],[["'.join(map('"],"'.join, zip(keys, hashes))) + '"]]'
    # JSON writes a tuple as an array: [[key...], hash] pairs without a list made for each.
    return json.dumps([*expected.items()], separators=(",", ":"))


def _as_is(text: str) -> bool:
    """Whether JSON writes ``text`` as it is: printable ASCII without a quote or a backslash."""
    return text.isascii() and text.isprintable() and '"' not in text and "\\" not in text


def decode_written(written: str, deleted: str) -> tuple[list[tuple[tuple[Any, ...], str]], list[tuple[Any, ...]]]:
    """A journaled read-back record (see ``Batch.written_record``)."""
    return [(tuple(k), h) for k, h in json.loads(written)], [tuple(k) for k in json.loads(deleted)]


@dataclass(frozen=True)
class StepPosition:
    batches: int = 0
    last_key: tuple[Any, ...] | None = None
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    status: str | None = None  # None while applying; then applied | verified | not-verified | failed
    result: dict[str, Any] = field(default_factory=dict)


def encode_key(key: tuple[Any, ...]) -> str:
    return json.dumps(list(key), separators=(",", ":"))


def decode_key(text: str) -> tuple[Any, ...]:
    return tuple(json.loads(text))


def another_restore_running(target: str) -> RestoreRefused:
    return RestoreRefused(f"another restore into {target} is running right now (it holds the target's "
                          "restore lock)",
                          "let it finish; the lock goes with its process, so if that process is gone, run "
                          "again (with --resume to continue an interrupted restore)")


JOURNAL_TABLES = ("enigm_meta", "enigm_restore_runs", "enigm_restore_batches", "enigm_restore_steps",
                  "enigm_restore_written")


# -- the journal's SQL, written once for both stores ------------------------------------------------------


@dataclass(frozen=True)
class JournalSQL:
    """The restore journal's statements. Each store gives its dialect: its placeholder and column types
    (SQLite's STRICT tables; PostgreSQL's byte-order collation for keys and bigint counters)."""

    create: tuple[str, ...]
    unfinished_run: str
    start_run: str
    finish_run: str
    step_totals: str
    step_result: str
    record_batch: str
    record_step: str
    record_written: str
    written_batches: str
    written_batch: str


def journal_sql(*, placeholder: str, key_text: str, text: str, integer: str, counter: str,
                table_suffix: str = "") -> JournalSQL:
    """The journal's statements in one dialect (``?`` below is written as ``placeholder``)."""

    def q(statement: str) -> str:
        return statement.replace("?", placeholder)

    end = f"){table_suffix}"
    return JournalSQL(
        create=(
            f"CREATE TABLE IF NOT EXISTS enigm_meta (key {key_text} PRIMARY KEY, value {text} NOT NULL{end}",
            f"""CREATE TABLE IF NOT EXISTS enigm_restore_runs (
  run_id {key_text} PRIMARY KEY, snapshot_id {text} NOT NULL, payload_sha256 {text} NOT NULL, plan {text} NOT NULL,
  started_at {text} NOT NULL, status {text} NOT NULL{end}""",
            f"""CREATE TABLE IF NOT EXISTS enigm_restore_batches (
  run_id {key_text} NOT NULL, step {key_text} NOT NULL, batch {integer} NOT NULL, last_key {text} NOT NULL,
  inserted {counter} NOT NULL, updated {counter} NOT NULL, deleted {counter} NOT NULL,
  PRIMARY KEY (run_id, step, batch){end}""",
            f"""CREATE TABLE IF NOT EXISTS enigm_restore_steps (
  run_id {key_text} NOT NULL, step {key_text} NOT NULL, status {text} NOT NULL, result {text} NOT NULL,
  PRIMARY KEY (run_id, step){end}""",
            f"""CREATE TABLE IF NOT EXISTS enigm_restore_written (
  run_id {key_text} NOT NULL, step {key_text} NOT NULL, batch {integer} NOT NULL, written {text} NOT NULL,
  deleted {text} NOT NULL, PRIMARY KEY (run_id, step, batch){end}""",
        ),
        unfinished_run=("SELECT run_id, snapshot_id, payload_sha256, plan, started_at, status FROM enigm_restore_runs "
                        "WHERE status = 'running' ORDER BY started_at, run_id LIMIT 1"),
        start_run=q("INSERT INTO enigm_restore_runs (run_id, snapshot_id, payload_sha256, plan, started_at, status) "
                    "VALUES (?, ?, ?, ?, ?, ?)"),
        finish_run=q("UPDATE enigm_restore_runs SET status = ? WHERE run_id = ?"),
        # (batches, inserted, updated, deleted, last key) of one step; arguments: run, step, run, step
        step_totals=q(f"SELECT count(*), CAST(coalesce(sum(inserted), 0) AS {counter}), "
                      f"CAST(coalesce(sum(updated), 0) AS {counter}), CAST(coalesce(sum(deleted), 0) AS {counter}), "
                      "(SELECT last_key FROM enigm_restore_batches WHERE run_id = ? AND step = ? "
                      "ORDER BY batch DESC LIMIT 1) FROM enigm_restore_batches WHERE run_id = ? AND step = ?"),
        step_result=q("SELECT status, result FROM enigm_restore_steps WHERE run_id = ? AND step = ?"),
        record_batch=q("INSERT INTO enigm_restore_batches (run_id, step, batch, last_key, inserted, updated, deleted) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)"),
        record_step=q("INSERT INTO enigm_restore_steps (run_id, step, status, result) VALUES (?, ?, ?, ?) "
                      "ON CONFLICT (run_id, step) DO UPDATE SET status = excluded.status, result = excluded.result"),
        record_written=q("INSERT INTO enigm_restore_written (run_id, step, batch, written, deleted) "
                         "VALUES (?, ?, ?, ?, ?)"),
        written_batches=q("SELECT batch FROM enigm_restore_written WHERE run_id = ? AND step = ? ORDER BY batch"),
        written_batch=q("SELECT written, deleted FROM enigm_restore_written WHERE run_id = ? AND step = ? "
                        "AND batch = ?"),
    )


def batch_row(run_id: str, batch: Batch) -> tuple[Any, ...]:
    """The arguments of ``record_batch`` for one batch."""
    return (run_id, batch.step, batch.number, encode_key(batch.last_key), batch.inserted, batch.updated,
            batch.deleted)


def written_row(run_id: str, batch: Batch) -> tuple[Any, ...]:
    """The arguments of ``record_written`` for one batch."""
    return (run_id, batch.step, batch.number, *batch.written_record())


def step_position(totals: tuple[Any, ...], result: tuple[Any, ...] | None) -> StepPosition:
    """A step's position from the rows of ``step_totals`` and ``step_result``."""
    return StepPosition(batches=int(totals[0]), inserted=int(totals[1]), updated=int(totals[2]),
                        deleted=int(totals[3]), last_key=decode_key(totals[4]) if totals[4] else None,
                        status=result[0] if result else None, result=json.loads(result[1]) if result else {})


def step_result_row(run_id: str, step: str, status: str, result: dict[str, Any]) -> tuple[Any, ...]:
    """The arguments of ``record_step``."""
    return (run_id, step, str(status), json.dumps(result, sort_keys=True))
