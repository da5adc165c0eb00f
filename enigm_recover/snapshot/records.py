"""The payload's record lines: canonical encoding and strict checking.

A payload is JSON Lines, one record per line, ``{"kind": ..., <fields in model
order>}``, grouped by kind in the fixed order and sorted by primary key inside
a kind. The per-kind SHA-256 in the manifest is over exactly these lines
(each with its newline), so the same records always hash the same.
"""

from __future__ import annotations

import hashlib
import json
import operator
import re
import re._parser as _regex_parser  # only for the widest match of the model's fixed syntaxes
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Callable, Iterable, Iterator

from enigm_recover.errors import EnigmError, RecordInvalid, ScopeError, SnapshotContentError
from enigm_recover.snapshot.manifest import KindScope, Manifest
from enigm_recover.state.model import (
    KIND_BY_NAME,
    KIND_ORDER,
    KINDS,
    MAX_SETTING_VALUE_BYTES,
    Field,
    Kind,
    invalid_fields,
)

MAX_LINE_BYTES = 64 * 1024
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def canonical_line(kind: Kind, record: dict[str, Any]) -> bytes:
    """The record's payload line: ``kind`` first, then the fields in model order."""
    return (_encode({"kind": kind.name, **record}) + "\n").encode("utf-8")


def _row_template(kind: Kind) -> str:
    return '{"kind":' + json.dumps(kind.name) + "".join(f",{json.dumps(f.name)}:%s" for f in kind.fields) + "}\n"


def _integer_text(value: Any) -> str:
    if type(value) is not int:  # bool included: JSON writes it as true/false
        raise TypeError("not an integer")
    return int.__repr__(value)


# A row's line without building a dict: strings escaped by the function json's encoder itself uses
# (encode_basestring, without ASCII escaping), integers in decimal.
_ROW_TEMPLATES = {k.name: _row_template(k) for k in KINDS}
_ROW_ENCODERS = {k.name: tuple(_integer_text if f.sql_type == "INTEGER" else json.encoder.encode_basestring
                               for f in k.fields) for k in KINDS}


def row_line(kind: Kind, row: tuple[Any, ...]) -> bytes:
    """``canonical_line`` of a row in field order, byte for byte, in about half the time for the str and
    int values stores return. Raises TypeError, as canonical_line does, for a value JSON cannot hold."""
    try:
        return (_ROW_TEMPLATES[kind.name] % tuple(map(lambda encode, v: encode(v), _ROW_ENCODERS[kind.name], row))
                ).encode("utf-8")
    except TypeError:  # a value of another type than the model's: the general encoder decides
        return canonical_line(kind, dict(zip(kind.field_names, row)))


@dataclass
class KindDigest:
    count: int = 0
    hasher: Any = field(default_factory=hashlib.sha256)

    def add(self, lines: bytes, count: int = 1) -> None:
        """``count`` whole lines, joined: one hash call for many records."""
        self.count += count
        self.hasher.update(lines)

    def scope(self, kind: Kind) -> KindScope:
        return KindScope(kind.field_names, self.count, self.hasher.hexdigest())


def encode_rows(kind: Kind, rows: Iterable[tuple[Any, ...]], digest: KindDigest,
                batch: int = 2048) -> Iterator[bytes]:
    """Canonical lines of ``rows`` joined in batches, updating ``digest``.

    Every record is checked against the model first: a snapshot that could not be
    unsealed later is refused now, naming the record and field.
    """
    lines: list[bytes] = []
    for row in rows:
        record = dict(zip(kind.field_names, row))
        bad = invalid_fields(kind, record)
        if bad:
            key = "/".join(str(v) for v in kind.key_of(record))
            raise RecordInvalid(f"{kind.name} {key!r}: {bad[0]} is not {_describe(kind, bad[0])}; nothing was sealed")
        lines.append(row_line(kind, row))
        if len(lines) >= batch:
            yield _hashed(lines, digest)
    if lines:
        yield _hashed(lines, digest)


def _hashed(lines: list[bytes], digest: KindDigest) -> bytes:
    """The lines joined, added to ``digest``; the list is emptied."""
    block = b"".join(lines)
    digest.add(block, len(lines))
    lines.clear()
    return block


def _line_pattern(kind: Kind) -> re.Pattern[str]:
    """The whole canonical line of a ``kind`` record, capturing each field's value."""
    parts = [re.escape('{"kind":' + json.dumps(kind.name))]
    for f in kind.fields:
        if f.sql_type == "INTEGER":
            value = r"([1-9][0-9]{0,9})"
        elif f.json_text:
            value = r'"((?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*)"'
        else:
            value = f'"({f.syntax})"'
        parts.append(re.escape(f",{json.dumps(f.name)}:") + value)
    return re.compile("".join(parts) + r"\}\n")


_LINE_PATTERNS: dict[str, re.Pattern[str]] = {k.name: _line_pattern(k) for k in KINDS}
# The same, anchored at a line's start: in a block of lines, a match starts where a line starts and ends with
# that line's newline (no value can hold one), so each match is one whole line. A block that ends with a
# newline, with as many newlines as matches, is exactly one match per line, nothing around or between them.
_BLOCK_PATTERNS: dict[str, re.Pattern[str]] = {name: re.compile("^" + p.pattern, re.MULTILINE)
                                               for name, p in _LINE_PATTERNS.items()}


def _widest_value(f: Field) -> int:
    """The most bytes a value of ``f`` takes in a line the checker accepts, quotes included."""
    if f.sql_type == "INTEGER":
        return 10  # [1-9][0-9]{0,9}
    if f.json_text:
        return 2 + 6 * MAX_SETTING_VALUE_BYTES  # each byte of the value at most a six-byte escape, \u00xx
    assert f.syntax is not None
    widest = _regex_parser.parse(f.syntax).getwidth()[1]  # ASCII without quotes or backslashes: as is
    if widest >= _regex_parser.MAXREPEAT:  # pragma: no cover - every syntax of the model is bounded
        raise ValueError(f"the syntax of {f.name} is unbounded")
    return 2 + widest


def _widest_line(kind: Kind) -> int:
    fixed = len((_ROW_TEMPLATES[kind.name] % tuple("" for _ in kind.fields)).encode("utf-8"))
    return min(MAX_LINE_BYTES, fixed + sum(_widest_value(f) for f in kind.fields))


WIDEST_LINE: dict[str, int] = {k.name: _widest_line(k) for k in KINDS}
# Kinds whose pattern matches no line longer than MAX_LINE_BYTES (its widest match, in characters of at most 4
# bytes each): a block of them that matches needs no check of its lines' lengths (a longer line does not match,
# and is then found line by line).
_MATCH_BOUNDED = frozenset(name for name, p in _LINE_PATTERNS.items()
                           if 4 * _regex_parser.parse(p.pattern).getwidth()[1] <= MAX_LINE_BYTES)


def plaintext_bound(manifest: Manifest) -> int:
    """The most bytes a payload's records can decompress to, from its signed counts: each kind's count
    times the longest line a record of that kind can have. More is a decompression bomb, not records."""
    return sum(scope.count * WIDEST_LINE[kind] for kind, scope in manifest.scope.items())
HASH_BATCH = 1024  # accepted lines hashed together
_KIND_PREFIX = re.compile(r'\{"kind":"([a-z]+)"')


def chunk_lines(chunk: bytes, head: int = 0) -> list[bytes]:
    """The lines of a chunk of whole payload lines (``unseal.payload_chunks``): its first ``head`` bytes begin
    its first line whatever they hold (the line was cut where a block ended), the rest is split as
    bytes.splitlines splits."""
    if not head:
        return chunk.splitlines(keepends=True)
    lines = chunk[head:].splitlines(keepends=True)
    lines[0] = chunk[:head] + lines[0]
    return lines


class RecordChecker:
    """Checks a stream of payload lines against the model and the signed manifest.

    Finds: unparseable lines, kinds out of order or outside the manifest's
    scope, fields outside the scope, values that break the model, keys out of
    order or repeated, and (at ``finish``) counts or digests that differ from
    the manifest. Messages never quote record values.

    A canonical line is checked by one regular expression for its kind, which
    validates every field and captures the values; only a line that does not
    match is parsed as JSON, to say precisely what is wrong with it.
    """

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.kind: Kind | None = None
        self.pattern: re.Pattern[str] | None = None
        self.conversions: tuple[tuple[int, Callable[[str], Any]], ...] = ()  # fields that are not plain text
        self.digest = KindDigest()
        self.unhashed: list[bytes] = []  # accepted lines of the current kind not yet in its digest
        self.last_key: tuple[Any, ...] | None = None
        self.seen: list[str] = []
        self.line_no = 0

    def check(self, line: bytes) -> tuple[Kind, tuple[Any, ...]]:
        """The record's kind and its values in field order; ``line`` ends with its newline."""
        self.line_no += 1
        if len(line) > MAX_LINE_BYTES:
            raise SnapshotContentError(f"payload record {self.line_no} is longer than {MAX_LINE_BYTES} bytes")
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise SnapshotContentError(f"payload record {self.line_no} is not UTF-8") from None
        match = self.pattern.fullmatch(text) if self.pattern else None
        if match is None:
            kind_match = _KIND_PREFIX.match(text)
            kind_name = kind_match.group(1) if kind_match else None
            if self.kind is None or kind_name != self.kind.name:
                self._switch(kind_name, f"payload record {self.line_no}")
                assert self.pattern is not None
                match = self.pattern.fullmatch(text)
            if match is None:
                self._explain(text)
        assert self.kind is not None and match is not None
        values = match.groups()
        if self.conversions:
            converted = list(values)
            for position, convert in self.conversions:
                converted[position] = convert(converted[position])
            values = tuple(converted)
        kind = self.kind
        key = kind.sort_key(values)
        if self.last_key is not None and key <= self.last_key:
            raise SnapshotContentError(
                f"payload record {self.line_no}: {kind.name} records are not in strictly increasing key order")
        self.last_key = key
        self.unhashed.append(line)
        if len(self.unhashed) >= HASH_BATCH:
            self._hash_accepted()
        return kind, values

    def check_chunk(self, chunk: bytes, head: int = 0, without_lines: frozenset[str] = frozenset()
                    ) -> list[tuple[Kind, list[tuple[Any, ...]], list[bytes] | None]]:
        """``check_lines`` of the lines of ``chunk`` (``chunk_lines(chunk, head)``), the same runs and the
        same errors. A chunk of the current kind is checked whole without making its lines: a run of a kind in
        ``without_lines`` then comes without them (None)."""
        kind = self.kind
        if kind is not None and chunk and kind.name in _MATCH_BOUNDED:
            run = self._check_block(kind, chunk, None)
            if run is not None:
                return [(kind, run, None if kind.name in without_lines else chunk_lines(chunk, head))]
        return self.check_lines(chunk_lines(chunk, head))  # type: ignore[return-value]

    def check_lines(self, lines: list[bytes]) -> list[tuple[Kind, list[tuple[Any, ...]], list[bytes]]]:
        """``check`` of every line, in order, as runs of one kind: (kind, values, lines).

        A list of lines of the current kind is checked at once (one regular-expression search over the
        block, whose matches must cover it exactly; key order compared in C); anything else (a new kind, a line that does not match, a key out
        of order) is checked line by line, so every error is the one ``check`` raises, for the same line."""
        if self.kind is not None and lines:
            run = self._check_run(self.kind, lines)
            if run is not None:
                return [(self.kind, run, lines)]
        runs: list[tuple[Kind, list[tuple[Any, ...]], list[bytes]]] = []
        for line in lines:
            kind, values = self.check(line)
            if runs and runs[-1][0] is kind:
                runs[-1][1].append(values)
                runs[-1][2].append(line)
            else:
                runs.append((kind, [values], [line]))
        return runs

    def _check_run(self, kind: Kind, lines: list[bytes]) -> list[tuple[Any, ...]] | None:
        """The values of ``lines`` when every one is a canonical ``kind`` record in increasing key order after
        the last; None (and nothing changed) otherwise."""
        if kind.name not in _MATCH_BOUNDED and max(map(len, lines)) > MAX_LINE_BYTES:
            return None
        return self._check_block(kind, b"".join(lines), len(lines))

    def _check_block(self, kind: Kind, block: bytes, count: int | None) -> list[tuple[Any, ...]] | None:
        """``_check_run`` of the ``count`` lines joined in ``block`` (None: the lines ``bytes.splitlines``
        finds in it), their lengths checked already or bounded by the kind's pattern."""
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError:
            return None
        found = _BLOCK_PATTERNS[kind.name].findall(text)
        # Every line a match: as many matches as newlines, the last character one. (A line that
        # bytes.splitlines would cut in two, at a carriage return, holds one no match can hold.)
        if not found or (count is not None and len(found) != count) or text.count("\n") != len(found) \
                or not text.endswith("\n"):
            return None
        count = len(found)
        convert = _BLOCK_CONVERTERS[kind.name]
        if convert is not None:
            try:
                found = convert(found)
            except EnigmError:
                return None
        keys = list(map(kind.sort_key, found))
        if self.last_key is not None and not keys[0] > self.last_key:
            return None
        if not all(map(operator.lt, keys, islice(keys, 1, None))):
            return None
        self.line_no += count
        self.last_key = keys[-1]
        if self.unhashed:
            _hashed(self.unhashed, self.digest)
        self.digest.add(block, count)
        self._check_count()
        return found

    def _hash_accepted(self) -> None:
        """Lines go into the digest many at a time: one hash call per batch, not one per record. A kind
        with more records than the manifest says is refused here, a batch past its count, not at its end."""
        _hashed(self.unhashed, self.digest)
        self._check_count()

    def _check_count(self) -> None:
        assert self.kind is not None
        signed = self.manifest.scope[self.kind.name].count
        if self.digest.count > signed:
            raise SnapshotContentError(
                f"the payload holds more {self.kind.name} records than the {signed} the manifest says")

    def _explain(self, text: str) -> None:
        """Raise the precise reason a line is not a canonical record of the current kind."""
        kind = self.kind
        assert kind is not None
        where = f"payload record {self.line_no}"
        try:
            record = json.loads(text)
        except ValueError:
            raise SnapshotContentError(f"{where} is not a JSON object") from None
        if not isinstance(record, dict):
            raise SnapshotContentError(f"{where} is not a JSON object")
        record.pop("kind", None)
        extra = [k for k in record if k not in kind.field_names]
        if extra:
            raise ScopeError(f"{where} has field {kind.name}.{extra[0]}, which is outside the snapshot scope")
        if tuple(record) != kind.field_names:
            raise SnapshotContentError(f"{where} does not have exactly the fields of a {kind.name}, in order")
        bad = invalid_fields(kind, record)
        if bad:
            raise SnapshotContentError(f"{where}: {kind.name}.{bad[0]} is not {_describe(kind, bad[0])}")
        raise SnapshotContentError(f"{where} is not in the canonical encoding")

    def _switch(self, kind_name: Any, where: str) -> None:
        if self.kind is not None:
            self._close_kind()
        if not isinstance(kind_name, str) or kind_name not in KIND_BY_NAME:
            raise ScopeError(f"{where} has a kind outside the snapshot scope")
        if kind_name not in self.manifest.scope:
            raise ScopeError(f"{where} is a {kind_name}, which the manifest's scope does not include")
        if kind_name in self.seen or (self.seen and KIND_ORDER[kind_name] < KIND_ORDER[self.seen[-1]]):
            raise SnapshotContentError(f"{where}: kinds are not grouped in the fixed order")
        self.kind = KIND_BY_NAME[kind_name]
        self.pattern = _LINE_PATTERNS[kind_name]
        self.conversions = _CONVERSIONS[kind_name]
        self.seen.append(kind_name)
        self.digest = KindDigest()
        self.last_key = None

    def _close_kind(self) -> None:
        assert self.kind is not None
        self._hash_accepted()
        expected = self.manifest.scope[self.kind.name]
        if self.digest.count != expected.count:
            raise SnapshotContentError(
                f"the payload holds {self.digest.count} {self.kind.name} records but the manifest "
                f"says {expected.count}")
        if self.digest.hasher.hexdigest() != expected.sha256:
            raise SnapshotContentError(f"the {self.kind.name} records do not match the manifest's digest")

    def finish(self) -> None:
        if self.kind is not None:
            self._close_kind()
        missing = [k for k in self.manifest.scope if k not in self.seen and self.manifest.scope[k].count]
        if missing:
            raise SnapshotContentError(
                f"the payload holds no {missing[0]} records but the manifest says "
                f"{self.manifest.scope[missing[0]].count}")


_JSON_TEXT_FIELD = next(f for k in KINDS for f in k.fields if f.json_text)


def _decode_json_text(escaped: str) -> str:
    value = json.loads('"' + escaped + '"')
    if not _JSON_TEXT_FIELD.check(value):
        raise SnapshotContentError(f"a payload value is not {_JSON_TEXT_FIELD.describe}")
    return value


def _decoder(f: Field) -> Callable[[str], Any]:
    if f.sql_type == "INTEGER":
        return _bounded_int
    if f.json_text:
        return _decode_json_text
    return str


def _bounded_int(text: str) -> int:
    value = int(text)
    if value >= 2**31:
        raise SnapshotContentError("an integer in the payload is out of range")
    return value


def _describe(kind: Kind, name: str) -> str:
    return next(f.describe for f in kind.fields if f.name == name)


# Kinds whose checked lines are their canonical encoding byte for byte: every field is an integer or text of
# a syntax of plain ASCII without quotes, backslashes or control characters, which JSON writes as it is. (A
# setting's value is JSON text, which a sealed line may escape otherwise than the encoder.)
VERBATIM_KINDS = frozenset(k.name for k in KINDS if not any(f.json_text for f in k.fields))


def _checked_line_maker(kind: Kind) -> Callable[[tuple[Any, ...]], bytes]:
    """``row_line`` of a verbatim kind's checked values: the values put in the line's fixed text as they are
    (no value of such a kind needs escaping), in one formatting operation."""
    template = '{"kind":' + json.dumps(kind.name) + "".join(
        f",{json.dumps(f.name)}:" + ("%d" if f.sql_type == "INTEGER" else '"%s"') for f in kind.fields) + "}\n"
    return lambda row: (template % row).encode("ascii")


# A verbatim kind's line from the values a RecordChecker accepted in it, byte for byte the line it accepted.
CHECKED_LINE = {name: _checked_line_maker(KIND_BY_NAME[name]) for name in VERBATIM_KINDS}


def parse_checked_line(kind: Kind, line: bytes) -> tuple[Any, ...]:
    """The values of a line that a RecordChecker already accepted (kept in memory since)."""
    match = _LINE_PATTERNS[kind.name].fullmatch(line.decode("utf-8"))
    if match is None:  # pragma: no cover - only lines that passed the checker get here
        raise SnapshotContentError(f"a {kind.name} record changed in memory")
    values = list(match.groups())
    for position, convert in _CONVERSIONS[kind.name]:
        values[position] = convert(values[position])
    return tuple(values)


def parse_checked_lines(kind: Kind, lines: list[bytes]) -> list[tuple[Any, ...]]:
    """``parse_checked_line`` of each of ``lines`` (all of ``kind``, all accepted by a RecordChecker): one
    search over the lines joined, where the kind's pattern bounds a match to one line (as a RecordChecker
    checks a block); line by line otherwise."""
    if kind.name in _MATCH_BOUNDED and lines:
        text = b"".join(lines).decode("utf-8")
        found = _BLOCK_PATTERNS[kind.name].findall(text)
        if len(found) == len(lines) == text.count("\n") and text.endswith("\n"):
            convert = _BLOCK_CONVERTERS[kind.name]
            return convert(found) if convert is not None else found
    return [parse_checked_line(kind, line) for line in lines]


_CONVERSIONS: dict[str, tuple[tuple[int, Callable[[str], Any]], ...]] = {
    k.name: tuple((i, c) for i, f in enumerate(k.fields) if (c := _decoder(f)) is not str) for k in KINDS}


def _row_converter(conversions: tuple[tuple[int, Callable[[str], Any]], ...]
                   ) -> Callable[[tuple[Any, ...]], tuple[Any, ...]] | None:
    """The captured values of a line with its non-text fields converted (None: all are text)."""
    if not conversions:
        return None
    if len(conversions) == 1:
        ((p, c),) = conversions
        return lambda v: v[:p] + (c(v[p]),) + v[p + 1:]

    def convert(v: tuple[Any, ...]) -> tuple[Any, ...]:
        out = list(v)
        for position, c in conversions:
            out[position] = c(out[position])
        return tuple(out)

    return convert


_ROW_CONVERTERS = {name: _row_converter(c) for name, c in _CONVERSIONS.items()}


def _block_converter(kind: Kind) -> Callable[[list[tuple[str, ...]]], list[tuple[Any, ...]]] | None:
    """The captured values of a block's lines with their non-text fields converted (None: all are text);
    raises SnapshotContentError as the row converter does. A kind whose only such fields are integers has
    them converted a column at a time (``int`` over the column, one bound check, the rows made again by
    ``zip``), not each record's tuple sliced and joined again."""
    row_converter = _ROW_CONVERTERS[kind.name]
    if row_converter is None:
        return None
    conversions = _CONVERSIONS[kind.name]
    if any(c is not _bounded_int for _, c in conversions):
        return lambda found: list(map(row_converter, found))
    positions = tuple(p for p, _ in conversions)

    def convert(found: list[tuple[str, ...]]) -> list[tuple[Any, ...]]:
        columns: list[Any] = list(zip(*found))
        for p in positions:
            column = list(map(int, columns[p]))
            if max(column) >= 2**31:
                raise SnapshotContentError("an integer in the payload is out of range")
            columns[p] = column
        return list(zip(*columns))

    return convert


_BLOCK_CONVERTERS = {k.name: _block_converter(k) for k in KINDS}
