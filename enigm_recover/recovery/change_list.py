"""The dry run's changes, kept compactly and read back as ``Change`` objects.

A total loss makes every record of the snapshot a change: millions of them.
Kept as one ``Change`` each (with its key's tuple and text), they cost about
300 bytes a record, which is what made a large total-loss restore need
gigabytes. Almost all of them are alike: a record only the snapshot has,
without findings. Such a change is kept in the ``LineStore`` (as its values
for a kind whose line is made from them byte for byte, else as its line) and
referenced by 8 bytes in an array; it is made a ``Change`` again when it is
iterated, a run of them at once, and a restore takes a run of them whole
(``ChangeChunk``). Every other change (changed, extra,
unreadable, or any change with findings) is kept whole: pickled into a
``LineStore`` of its own, compressed and, past its bound, sealed on disk as the
lines are, and made a ``Change`` again when it is read. A change is therefore
a new object each time it is read: the orphan check, which changes a change's
findings, puts it back with ``KindChanges.replace``.

Changes are kept in the dry run's order: kind by kind, each kind in key order.
"""

from __future__ import annotations

import marshal
import pickle
from array import array
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Iterable, Iterator, Sequence

from enigm_recover.recovery.assess import ChangeType, Finding, as_key
from enigm_recover.recovery.line_store import MAX_LINE_BYTES, LineStore
from enigm_recover.snapshot.records import CHECKED_LINE, parse_checked_line, parse_checked_lines
from enigm_recover.state.live import Unreadable
from enigm_recover.state.model import KIND_BY_NAME, Kind


@dataclass(slots=True)
class Change:
    """What the dry run found for one record: missing, extra or changed, with its findings."""

    kind: str
    key: tuple[Any, ...]
    change: ChangeType
    fields: tuple[tuple[str, Any, Any], ...] = ()  # (field, live value, snapshot value) when changed
    findings: tuple[Finding, ...] = ()
    protected: bool = False
    # Where ``lines`` keeps the canonical record a restore would write (missing, changed), when it keeps it as
    # a line: not part of what the change is.
    line_ref: int | None = field(default=None, compare=False)
    account: str | None = None  # an extra device's account, for the orphan check (a missing one's is in its line)
    lines: LineStore | None = None
    unreadable: Unreadable | None = None  # the live record cannot be read into the model: what was found
    # The snapshot record's values, where they were read from its line already (a plain missing record made
    # again from the change list): the restore need not read the line a second time.
    row: tuple[Any, ...] | None = field(default=None, repr=False, compare=False)
    line: bytes | None = field(default=None, repr=False, compare=False)  # its line, where read already

    @property
    def snapshot_line(self) -> bytes | None:
        if self.line is not None:
            return self.line
        return None if self.line_ref is None or self.lines is None else self.lines.get(self.line_ref)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "key": list(self.key),
            "change": self.change.value,
            "fields": [{"field": f, "live": live, "snapshot": snap} for f, live, snap in self.fields],
            "findings": [f.value for f in self.findings],
            "protected": self.protected,
            "unreadable": self.unreadable.detail() if self.unreadable is not None else None,
        }


_CHANGE_TYPES = {c.value: c for c in ChangeType}
_PARSED_RUN = 1024  # plain missing records read back together (values sliced, or lines parsed)
ROW_BLOCK = 1024  # a verbatim kind's plain missing records kept in one block of values
_FINDINGS = {f.value: f for f in Finding}


@dataclass(slots=True)
class PlainRun:
    """Consecutive plain missing records of one kind (only the snapshot has them, without findings) as
    lists: their keys, their values and their checked lines, and where those lines are kept."""

    keys: list[tuple[Any, ...]]
    rows: list[tuple[Any, ...]]
    lines: list[bytes]
    line_refs: Sequence[int] | None  # None: kept as their values, not their lines

    def changes(self, kind: Kind, store: LineStore | None) -> list[Change]:
        """Each record as the Change ``KindChanges`` makes of a plain missing record."""
        name, missing = kind.name, ChangeType.MISSING
        refs = self.line_refs if self.line_refs is not None else [None] * len(self.keys)
        return [Change(name, key, missing, (), (), False, ref, None, store, None, row, line)
                for key, ref, row, line in zip(self.keys, refs, self.rows, self.lines)]


class ChangeChunk:
    """Consecutive changes of one kind in key order (a restore batch's worth). A chunk of plain missing
    records only is kept as its ``PlainRun`` (``plain``), its Change objects made only when asked for."""

    def __init__(self, kind: Kind, store: LineStore | None, plain: PlainRun | None,
                 changes: list[Change] | None) -> None:
        self.kind, self._store, self.plain, self._changes = kind, store, plain, changes
        self._keys = plain.keys if plain is not None else None

    def changes(self) -> list[Change]:
        if self._changes is None:
            assert self.plain is not None
            self._changes = self.plain.changes(self.kind, self._store)
        return self._changes

    @property
    def keys(self) -> list[tuple[Any, ...]]:
        """The chunk's keys in order (made once: a batch asks for them to write, then to read back)."""
        if self._keys is None:
            self._keys = [c.key for c in self.changes()]
        return self._keys

    @property
    def last_key(self) -> tuple[Any, ...]:
        return self.plain.keys[-1] if self.plain is not None else self.changes()[-1].key

    def __len__(self) -> int:
        return len(self.plain.keys) if self.plain is not None else len(self.changes())


class KindChanges:
    """One kind's changes in key order. An entry >= 0 is a plain missing record: its number among the records
    kept as values (a verbatim kind's, see ``__init__``), or its line's reference in ``lines``; an entry < 0
    is ``-(ref + 1)`` for a change kept whole, pickled, at ``ref`` in ``records`` (a store of its own,
    compressed and bounded in memory as the lines are)."""

    def __init__(self, kind: Kind, lines: LineStore | None) -> None:
        self.kind = kind
        self.lines = lines
        self.entries = array("q")
        self.records = LineStore()
        self.whole = 0  # changes kept whole
        self._large: list[Change] = []  # a change too large for the store (a huge live key): kept as it is
        # A verbatim kind's plain missing records are kept as their values, ROW_BLOCK at a time (one marshal
        # of a list, stored in ``lines``), an entry being the record's number among them: a line is made
        # again from its values byte for byte when asked for, and a restore need not parse it. Any other
        # kind's are kept as their lines, an entry being the line's reference.
        self._line_of = CHECKED_LINE.get(kind.name)
        self._row_blocks: list[list[int]] = []  # per full block, the references of its part(s) in ``lines``
        self._open_rows: list[tuple[Any, ...]] = []  # the block being filled
        self._read_block: tuple[int, list[tuple[Any, ...]]] = (-1, [])  # the block last read back

    def _keep(self, change: Change) -> int:
        line_ref = change.line_ref
        if line_ref is None and change.line is not None:  # a plain missing record kept as its values until now
            assert self.lines is not None
            line_ref = self.lines.add(change.line)
        # The change's type and findings as their values: pickling an enum member costs a few times a string.
        encoded = pickle.dumps((change.key, change.change.value, change.fields, tuple(f.value for f in change.findings),
                                change.protected, line_ref, change.account, change.unreadable),
                               pickle.HIGHEST_PROTOCOL)
        if len(encoded) > MAX_LINE_BYTES:
            self._large.append(change)
            encoded = pickle.dumps(len(self._large) - 1)
        return -(self.records.add(encoded) + 1)

    def _whole(self, entry: int) -> Change:
        kept = pickle.loads(self.records.get(-entry - 1))
        if isinstance(kept, int):
            return self._large[kept]
        key, change, fields, findings, protected, line_ref, account, unreadable = kept
        return Change(self.kind.name, key, _CHANGE_TYPES[change], fields, tuple(map(_FINDINGS.__getitem__, findings)),
                      protected, line_ref, account, self.lines, unreadable)

    def append(self, change: Change) -> None:
        self.entries.append(self._keep(change))
        self.whole += 1

    def add_missing(self, row: tuple[Any, ...], line: bytes | None) -> None:
        """A record only the snapshot has, without findings, its values and checked line (None: a verbatim
        kind's, made from its values): kept in ``lines``, as its values or its line (see ``__init__``)."""
        assert self.lines is not None
        if self._line_of is None:
            assert line is not None
            self.entries.append(self.lines.add(line))
            return
        self.entries.append(len(self._row_blocks) * ROW_BLOCK + len(self._open_rows))
        self._open_rows.append(row)
        if len(self._open_rows) == ROW_BLOCK:
            self._row_blocks.append(self._store_rows(self._open_rows))
            self._open_rows = []

    def _store_rows(self, rows: list[tuple[Any, ...]]) -> list[int]:
        """Keep ``rows`` in ``lines`` as one marshal of their list, or in parts each within a line's bound."""
        assert self.lines is not None
        kept = marshal.dumps(rows)
        if len(kept) <= MAX_LINE_BYTES or len(rows) == 1:
            return [self.lines.add(kept)]
        half = len(rows) // 2
        return self._store_rows(rows[:half]) + self._store_rows(rows[half:])

    def _block(self, number: int) -> list[tuple[Any, ...]]:
        """The values of block ``number`` of a verbatim kind's plain missing records."""
        if number == len(self._row_blocks):
            return self._open_rows
        if self._read_block[0] != number:
            assert self.lines is not None
            rows: list[tuple[Any, ...]] = []
            for ref in self._row_blocks[number]:
                rows += marshal.loads(self.lines.get(ref))
            self._read_block = (number, rows)
        return self._read_block[1]

    def _rows(self, entries: Sequence[int]) -> list[tuple[Any, ...]]:
        """The values of a verbatim kind's plain missing records ``entries``: a run of consecutive ones taken
        from its blocks a slice at a time."""
        rows: list[tuple[Any, ...]] = []
        at, end = 0, len(entries)
        while at < end:
            first = entries[at]
            number, index = divmod(first, ROW_BLOCK)
            take = min(end - at, ROW_BLOCK - index)
            if entries[at + take - 1] == first + take - 1:  # consecutive: one slice of the block
                rows += self._block(number)[index:index + take]
                at += take
            else:
                rows.append(self._block(number)[index])
                at += 1
        return rows

    def _values(self, entry: int) -> tuple[Any, ...]:
        """The values of the plain missing record at ``entry`` (its line is not made)."""
        if self._line_of is not None:
            return self._block(entry // ROW_BLOCK)[entry % ROW_BLOCK]
        assert self.lines is not None
        return parse_checked_line(self.kind, self.lines.get(entry))

    def _plain(self, entry: int) -> tuple[tuple[Any, ...], bytes]:
        """The values and line of the plain missing record at ``entry``."""
        if self._line_of is not None:
            row = self._values(entry)
            return row, self._line_of(row)
        assert self.lines is not None
        kept = self.lines.get(entry)
        return parse_checked_line(self.kind, kept), kept

    def __len__(self) -> int:
        return len(self.entries)

    def at(self, position: int) -> Change:
        entry = self.entries[position]
        return self._whole(entry) if entry < 0 else self._missing(entry)

    def plain_missing_row(self, position: int) -> tuple[Any, ...] | None:
        """The values of the change at ``position`` when it is a plain missing record; None for a change kept
        whole."""
        entry = self.entries[position]
        return None if entry < 0 else self._values(entry)

    def replace(self, position: int, change: Change) -> None:
        """Keep ``change`` at ``position`` instead (a change that got a finding)."""
        self.whole += self.entries[position] >= 0
        self.entries[position] = self._keep(change)

    def _missing(self, ref: int) -> Change:
        """The Change of the plain missing record kept at ``ref``, with its values and line (its line's
        reference only where it is kept as its line)."""
        kind = self.kind
        row, line = self._plain(ref)
        return Change(kind.name, as_key(kind, kind.sort_key(row)), ChangeType.MISSING, (), (), False,
                      None if self._line_of is not None else ref, None, self.lines, None, row, line)

    def __iter__(self) -> Iterator[Change]:
        return self.changes()

    def changes(self, start: int = 0, stop: int | None = None) -> Iterator[Change]:
        """In order, from position ``start`` to ``stop``; a run of plain missing records read back at once."""
        if stop is None:
            stop = len(self.entries)
        entries, whole, position = self.entries, self._whole, start
        while position < stop:
            if entries[position] < 0:
                yield whole(entries[position])
                position += 1
                continue
            run = position + 1
            while run < stop and run - position < _PARSED_RUN and entries[run] >= 0:
                run += 1
            yield from self._plain_run(entries[position:run]).changes(self.kind, self.lines)
            position = run

    def _plain_run(self, refs: Sequence[int]) -> PlainRun:
        """The plain missing records kept at ``refs``: values read back (or lines parsed) in one go."""
        kind = self.kind
        if self._line_of is not None:
            rows = self._rows(refs)
            lines, line_refs = list(map(self._line_of, rows)), None
        else:
            assert self.lines is not None
            lines = list(map(self.lines.get, refs))
            rows, line_refs = parse_checked_lines(kind, lines), refs
        keys = list(zip(map(kind.sort_key, rows))) if len(kind.primary_key) == 1 else list(map(kind.sort_key, rows))
        return PlainRun(keys, rows, lines, line_refs)

    def chunks(self, size: int, start: int = 0) -> Iterator[ChangeChunk]:
        """The changes from ``start`` on, ``size`` at a time: a chunk of plain missing records only as its
        ``PlainRun``, any other as its Change objects."""
        entries = self.entries
        for position in range(start, len(entries), size):
            stop = min(position + size, len(entries))
            if min(entries[position:stop]) >= 0:
                yield ChangeChunk(self.kind, self.lines, self._plain_run(entries[position:stop]), None)
            else:
                yield ChangeChunk(self.kind, self.lines, None, list(self.changes(position, stop)))

    def key_at(self, position: int) -> tuple[object, ...]:
        entry = self.entries[position]
        if entry < 0:
            return self._whole(entry).key
        return as_key(self.kind, self.kind.sort_key(self._values(entry)))

    def first_after(self, key: tuple[object, ...]) -> int:
        """The position of the first change whose key follows ``key`` (the changes are in key order): a
        resumed restore starts there without reading the changes before it."""
        low, high = 0, len(self.entries)
        while low < high:
            middle = (low + high) // 2
            if self.key_at(middle) > key:  # type: ignore[operator]
                high = middle
            else:
                low = middle + 1
        return low

    def kept_whole(self) -> Iterator[Change]:
        """The changes kept whole, in order: every change but the plain missing records."""
        return (self._whole(e) for e in self.entries if e < 0)

    def with_findings(self) -> Iterator[Change]:
        """The changes with findings, in order (a plain missing record never has one)."""
        return (c for c in self.kept_whole() if c.findings)

    def without_findings(self) -> Iterator[Change]:
        whole, missing = self._whole, self._missing
        for entry in self.entries:
            if entry >= 0:
                yield missing(entry)
            elif not (change := whole(entry)).findings:
                yield change


class ChangeList:
    """Every kind's changes, in the dry run's order; iterating makes each ``Change`` as it is reached, so a
    reader that keeps only what it needs keeps memory bounded."""

    def __init__(self, changes: Iterable[Change] = ()) -> None:
        self._parts: list[KindChanges] = []
        self.extend(changes)

    def append(self, change: Change) -> None:
        if not self._parts or self._parts[-1].kind.name != change.kind:
            self._parts.append(KindChanges(KIND_BY_NAME[change.kind], change.lines))
        self._parts[-1].append(change)

    def extend(self, changes: Iterable[Change]) -> None:
        if isinstance(changes, KindChanges):
            self._parts.append(changes)
            return
        for change in changes:
            self.append(change)

    def __len__(self) -> int:
        return sum(len(p) for p in self._parts)

    def __bool__(self) -> bool:
        return any(len(p) for p in self._parts)

    def __iter__(self) -> Iterator[Change]:
        for part in self._parts:
            yield from part

    def __getitem__(self, index: int) -> Change:
        if index < 0:
            index += len(self)
        for part in self._parts:
            if index < len(part):
                return part.at(index)
            index -= len(part)
        raise IndexError("change index out of range")

    def count(self, kind: str) -> int:
        return sum(len(p) for p in self._parts if p.kind.name == kind)

    def of_kind(self, kind: str, after: tuple[object, ...] | None = None) -> Iterator[Change]:
        """The kind's changes in key order; with ``after``, only those whose key follows it."""
        for part in self._parts:
            if part.kind.name == kind:
                yield from part.changes(0 if after is None else part.first_after(after))

    def chunks_of_kind(self, kind: str, size: int, after: tuple[object, ...] | None = None) -> Iterator[ChangeChunk]:
        """``of_kind`` ``size`` changes at a time (see ``KindChanges.chunks``)."""
        for part in self._parts:
            if part.kind.name == kind:
                yield from part.chunks(size, 0 if after is None else part.first_after(after))

    def count_through(self, kind: str, key: tuple[object, ...]) -> int:
        """How many of the kind's changes have a key up to ``key``."""
        return sum(p.first_after(key) for p in self._parts if p.kind.name == kind)

    def in_full(self, kind: str | None = None) -> Iterator[Change]:
        """The changes kept in full (of ``kind``), in order: every change but the plain missing records, so
        every change with findings, every change, extra and unreadable record among them."""
        for part in self._parts:
            if kind is None or part.kind.name == kind:
                yield from part.kept_whole()

    def plain_missing(self, kind: str) -> int:
        """How many of the kind's changes are records only the snapshot has, without findings, kept compactly."""
        return sum(len(p) - p.whole for p in self._parts if p.kind.name == kind)

    def findings_first(self, limit: int | None = None, *, by_kind_name: bool = False) -> list[Change]:
        """The changes with findings, then the others, each in order (kinds by name with ``by_kind_name``):
        a stable sort on "has findings" that makes only the ``limit`` changes it returns."""
        ordered = self.by_findings(by_kind_name=by_kind_name)
        return list(ordered if limit is None else islice(ordered, limit))

    def by_findings(self, *, by_kind_name: bool = False) -> Iterator[Change]:
        """``findings_first``'s order, one change at a time."""
        parts = sorted(self._parts, key=lambda p: p.kind.name) if by_kind_name else self._parts
        for part in parts:
            yield from part.with_findings()
        for part in parts:
            yield from part.without_findings()
