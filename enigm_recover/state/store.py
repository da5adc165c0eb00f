"""What the recovery engine needs of a target store (SQLite and PostgreSQL provide it)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Callable, Iterable, Iterator, Protocol

from enigm_recover.state.journal import Batch, RestoreRun, StepPosition
from enigm_recover.state.live import LiveTable
from enigm_recover.state.model import Kind


READ_BACK = "read back"  # the session a restore reads its batches back on
ACCOUNTS = "accounts"  # the session a restore looks up the next batch's accounts on


class TargetStore(Protocol):
    display: str  # the target's URL, without secrets

    def close(self) -> None: ...

    def init_schema(self) -> None: ...

    def columns(self, kind: Kind) -> list[str]: ...

    def live_table(self, kind: Kind) -> LiveTable:
        """The live table as it really is: its columns (none when it does not exist) and its unique keys."""
        ...

    def count(self, kind: Kind) -> int: ...

    def stream(self, kind: Kind, columns: Iterable[str] | None = None) -> Iterator[tuple[Any, ...]]:
        """Rows in primary-key order (byte order of the UTF-8 keys), on a read view of their own."""
        ...

    def consistent_reads(self) -> AbstractContextManager[None]:
        """A context in which every stream reads the same snapshot of the store (for sealing)."""
        ...

    def rows_by_key(self, kind: Kind, keys: list[tuple[Any, ...]]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
        """The live rows of these keys, on the read view (absent keys are left out)."""
        ...

    def existing_accounts(self, account_ids: set[str]) -> set[str]: ...

    def commit_mark(self) -> object | None:
        """A mark that changes whenever another session commits to the target (SQLite's ``data_version``):
        equal marks, read before a lookup on another session and inside a transaction of this one, mean
        that lookup is what this transaction would read. None where the store keeps none (PostgreSQL, whose
        reads of accounts lock nothing anyway, in a transaction or not)."""
        ...

    def identical_rows(self, kind: Kind, rows: list[tuple[Any, ...]]) -> int | None:
        """How many of ``rows`` the live table holds now with the very same values of the same types, when
        the store can tell without reading them back (the inserts of the batch it has just committed, still
        staged); None when it cannot."""
        ...

    def reading_session(self, name: str) -> TargetStore | None:
        """A session of its own on the same target, one per ``name`` (``READ_BACK``, ``ACCOUNTS``; owned
        and closed by this store), that reads what has committed while this one writes: a restore reads a
        batch back, and looks up the next batch's accounts, while it writes. None where the store has none
        to give for that use, and the reads share this session."""
        ...

    # the restore journal
    def lock_restores(self) -> None:
        """Hold the target's restore lock for as long as this store is open; RestoreRefused while another
        process holds it. The lock goes with its process, so a killed restore never leaves it behind."""
        ...

    def target_id(self) -> str: ...

    def unfinished_run(self) -> RestoreRun | None: ...

    def start_run(self, run: RestoreRun) -> None: ...

    def finish_run(self, run_id: str, status: str) -> None: ...

    def step_position(self, run_id: str, step: str) -> StepPosition: ...

    def apply_batch(self, run_id: str, batch: Batch) -> None:
        """The batch's writes and its journal row in one transaction."""
        ...

    def apply_with(self, run_id: str, kind: Kind, keys: list[tuple[Any, ...]],
                   build: Callable[[dict[tuple[Any, ...], tuple[Any, ...]]], Batch]) -> Batch:
        """Read (and lock) the keys' live rows and write the batch ``build`` makes of them, in one
        transaction: the decisions rest on rows nobody can change before the commit."""
        ...

    def record_step(self, run_id: str, step: str, status: str, result: dict[str, Any]) -> None: ...

    def written_rows(self, run_id: str,
                     step: str) -> Iterator[tuple[list[tuple[tuple[Any, ...], str]], list[tuple[Any, ...]]]]:
        """Per committed batch of the step, from the journal: the rows it wrote (key and SHA-256 of the row's
        canonical line) and the keys it deleted."""
        ...
