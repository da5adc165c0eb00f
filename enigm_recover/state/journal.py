"""What a target store keeps about restores into it: runs, batches and steps.

A batch's rows and its journal row commit in one transaction, so after a crash
the journal says exactly how far each step got: resuming continues after the
last committed batch, and nothing is applied twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
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
        return (json.dumps([[list(k), h] for k, h in self.expected.items()], separators=(",", ":")),
                json.dumps([list(k) for k in self.deletes], separators=(",", ":")))


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
