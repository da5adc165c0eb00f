"""The payload's record lines: canonical encoding and strict checking.

A payload is JSON Lines, one record per line, ``{"kind": ..., <fields in model
order>}``, grouped by kind in the fixed order and sorted by primary key inside
a kind. The per-kind SHA-256 in the manifest is over exactly these lines
(each with its newline), so the same records always hash the same.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from enigm_recover.errors import RecordInvalid, ScopeError, SnapshotContentError
from enigm_recover.snapshot.manifest import KindScope, Manifest
from enigm_recover.state.model import KIND_BY_NAME, KIND_ORDER, Kind, invalid_fields

MAX_LINE_BYTES = 64 * 1024
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def canonical_line(kind: Kind, record: dict[str, Any]) -> bytes:
    """The record's payload line: ``kind`` first, then the fields in model order."""
    return (_encode({"kind": kind.name, **record}) + "\n").encode("utf-8")


@dataclass
class KindDigest:
    count: int = 0
    hasher: Any = field(default_factory=hashlib.sha256)

    def add(self, line: bytes) -> None:
        self.count += 1
        self.hasher.update(line)

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
        line = canonical_line(kind, record)
        digest.add(line)
        lines.append(line)
        if len(lines) >= batch:
            yield b"".join(lines)
            lines.clear()
    if lines:
        yield b"".join(lines)


class RecordChecker:
    """Checks a stream of payload lines against the model and the signed manifest.

    Finds: unparseable lines, kinds out of order or outside the manifest's
    scope, fields outside the scope, values that break the model, keys out of
    order or repeated, and (at ``finish``) counts or digests that differ from
    the manifest. Messages never quote record values.
    """

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.kind: Kind | None = None
        self.digest = KindDigest()
        self.last_key: tuple[Any, ...] | None = None
        self.seen: list[str] = []
        self.line_no = 0

    def check(self, line: bytes) -> tuple[Kind, dict[str, Any]]:
        self.line_no += 1
        where = f"payload record {self.line_no}"
        if len(line) > MAX_LINE_BYTES:
            raise SnapshotContentError(f"{where} is longer than {MAX_LINE_BYTES} bytes")
        try:
            record = json.loads(line.decode("utf-8"))  # decoding first skips json's encoding sniffing
        except (ValueError, UnicodeDecodeError):
            raise SnapshotContentError(f"{where} is not a JSON object") from None
        if not isinstance(record, dict):
            raise SnapshotContentError(f"{where} is not a JSON object")
        kind_name = record.pop("kind", None)
        if kind_name != (self.kind.name if self.kind else None):
            self._switch(kind_name, where)
        kind = self.kind
        assert kind is not None
        if tuple(record) != kind.field_names:
            extra = [k for k in record if k not in kind.field_names]
            if extra:
                raise ScopeError(f"{where} has field {kind.name}.{extra[0]}, which is outside the snapshot scope")
            raise SnapshotContentError(f"{where} does not have exactly the fields of a {kind.name}")
        bad = invalid_fields(kind, record)
        if bad:
            raise SnapshotContentError(f"{where}: {kind.name}.{bad[0]} is not {_describe(kind, bad[0])}")
        key = kind.key_of(record)
        if self.last_key is not None and key <= self.last_key:
            raise SnapshotContentError(f"{where}: {kind.name} records are not in strictly increasing key order")
        self.last_key = key
        self.digest.add(line if line.endswith(b"\n") else line + b"\n")
        return kind, record

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
        self.seen.append(kind_name)
        self.digest = KindDigest()
        self.last_key = None

    def _close_kind(self) -> None:
        assert self.kind is not None
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


def _describe(kind: Kind, name: str) -> str:
    return next(f.describe for f in kind.fields if f.name == name)
