"""The tamper-evident audit log of a recovery: append-only JSON Lines, hash-chained, head signed.

Each entry carries its sequence number and the SHA-256 of the previous entry's
line, and is fsynced before the action it records is reported done. At close
the head (entry count and hash of the last line) is written to ``<log>.head``
and signed with SSHSIG (namespace ``enigm-audit``), so an edited, deleted,
inserted or reordered entry, and a truncated tail, are all detected. Entries
hold ids, counts and outcomes — never share words, keys or records.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import asyncssh

from enigm_recover.atomic import write_atomic
from enigm_recover.bounded import AUDIT_LOG, KEY_FILE, read_bounded
from enigm_recover.private import create_private_file, make_private_dir
from enigm_recover.errors import AuditLogTampered
from enigm_recover.snapshot import signature

NAMESPACE = "enigm-audit"
GENESIS = "0" * 64
HEAD_SUFFIX = ".head"
SIG_SUFFIX = ".head.sig"


def line_hash(line: bytes) -> str:
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()


class AuditLog:
    """Appends entries to one recovery's log; each write is fsynced."""

    def __init__(self, path: Path, *, ceremony: str, operator: str) -> None:
        self.path = path
        self.ceremony = ceremony
        self.operator = operator
        self.host = socket.gethostname()
        self.seq, self.head = _tail(path)
        self.current_step: str | None = None  # the runbook step entries belong to, unless they name one
        make_private_dir(path.parent, "recovery folder")

    def append(self, action: str, *, step: str | None = None, inputs: dict[str, Any] | None = None,
               outcome: str = "ok", counts: dict[str, int] | None = None) -> str:
        entry = {
            "seq": self.seq + 1,
            "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "operator": self.operator,
            "host": self.host,
            "ceremony": self.ceremony,
            "step": step if step is not None else self.current_step,
            "action": action,
            "inputs": inputs or {},
            "outcome": outcome,
            "counts": counts or {},
            "prev": self.head,
        }
        line = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode() + b"\n"
        fd = create_private_file(self.path, append=True)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.seq += 1
        self.head = line_hash(line)
        return self.head

    def close(self, signer: signature.Signer | None) -> str:
        """Write the head (and its SSHSIG when a signer is given); returns the head hash."""
        head = json.dumps({"entries": self.seq, "head": self.head, "ceremony": self.ceremony,
                           "operator": self.operator}, sort_keys=True).encode() + b"\n"
        write_atomic(self.path.with_name(self.path.name + HEAD_SUFFIX), head, mode=0o600, overwrite=True)
        if signer is not None:
            sig = signer.sign(head, NAMESPACE)
            write_atomic(self.path.with_name(self.path.name + SIG_SUFFIX), sig, mode=0o600, overwrite=True)
        return self.head


def _tail(path: Path) -> tuple[int, str]:
    """The last entry's sequence number and hash, to continue an existing log."""
    if not path.exists():
        return 0, GENESIS
    seq, head = 0, GENESIS
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            try:
                entry = _strict_json(line)
            except ValueError:
                entry = None
            if _entry_problem(entry) is not None or entry["seq"] != number:
                raise AuditLogTampered(f"audit log {path}: entry {number} is not a well-formed entry, so the "
                                       "chain cannot go on", "check it with `enigm-recover audit verify`; keep this "
                                       "copy as evidence")
            seq, head = entry["seq"], line_hash(line)
    return seq, head


@dataclass(frozen=True)
class AuditVerdict:
    intact: bool
    entries: int
    head: str
    problem: str | None = None  # the first bad entry, in words
    signature: str | None = None  # trusted | invalid | missing | unchecked
    head_missing: bool = False  # the chain holds, but without a head its tail cannot be checked


# What every entry holds, and of which JSON type (bool is not an int here, nor an int a float).
_FIELDS: dict[str, tuple[type, ...]] = {
    "seq": (int,), "time": (str,), "operator": (str,), "host": (str,), "ceremony": (str,),
    "step": (str, type(None)), "action": (str,), "inputs": (dict,), "outcome": (str,), "counts": (dict,),
    "prev": (str,),
}
_HEX64 = frozenset("0123456789abcdef")


def _is_hash(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and set(value) <= _HEX64


def _strict_json(line: bytes) -> Any:
    """One JSON value, strictly: UTF-8, no NaN or Infinity, no repeated key, no number beyond reason.
    Raises ValueError for anything else (deep nesting included)."""
    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(pairs)
        if len(out) != len(pairs):
            raise ValueError("a key is repeated")
        return out

    def number(text: str) -> float:
        value = float(text)
        if value in (float("inf"), float("-inf")):
            raise ValueError("a number is out of range")
        return value

    try:
        return json.loads(line.decode("utf-8"), parse_constant=no_constant, object_pairs_hook=unique,
                          parse_float=number)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _entry_problem(entry: Any) -> str | None:
    """Why a parsed line is not a well-formed entry (None when it is)."""
    if not isinstance(entry, dict):
        return f"is a JSON {type(entry).__name__}, not an entry"
    for name, types in _FIELDS.items():
        value = entry.get(name)
        if name not in entry or not isinstance(value, types) or isinstance(value, bool):
            return f"has no well-formed {name!r} field"
    if not _is_hash(entry["prev"]):
        return "has a 'prev' that is not a SHA-256 hash"
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in entry["counts"].values()):
        return "has counts that are not whole numbers"
    return None


def normalize_head(text: str) -> str | None:
    """A head as a person wrote it down (any case, grouped with spaces or dashes) as the log's form, or None."""
    head = "".join(text.split()).replace("-", "").lower()
    return head if _is_hash(head) else None


def readable_head(head: str) -> str:
    """The head in groups of four hex digits, to write down or photograph and compare by eye."""
    return " ".join(head[i:i + 4] for i in range(0, len(head), 4))


def verify_log(path: Path, allowed: asyncssh.SSHAllowedSigners | None = None, *, head: str | None = None,
               entries: int | None = None) -> AuditVerdict:
    """Check the chain, the head file (or ``head``/``entries`` recorded elsewhere) and, with ``allowed``,
    the head's signature. Without a head file and without ``head``, the verdict is ``head_missing``."""
    data = read_bounded(path, AUDIT_LOG, "audit log")
    assert data is not None
    lines = data.splitlines(keepends=True)
    prev, seq = GENESIS, 0
    hashes = [GENESIS]  # the chain's hash after each entry
    for number, line in enumerate(lines, 1):
        try:
            entry = _strict_json(line)
        except ValueError:
            return AuditVerdict(False, seq, prev, f"entry {number} is not JSON (edited or damaged)")
        if not isinstance(entry, dict):
            return AuditVerdict(False, seq, prev, f"entry {number} is not a JSON object (edited or damaged)")
        if not line.endswith(b"\n"):
            return AuditVerdict(False, seq, prev, f"entry {number} is cut short (the log was truncated)")
        if (why := _entry_problem(entry)) is not None:
            return AuditVerdict(False, seq, prev, f"entry {number} {why} (edited or damaged)")
        if entry["seq"] != number:
            return AuditVerdict(False, seq, prev, f"entry {number} has sequence number {entry['seq']!r}: "
                                                  "an entry was deleted, inserted or moved before it")
        if entry["prev"] != prev:
            return AuditVerdict(False, seq, prev, f"entry {number} does not chain to the entry before it: "
                                                  f"entry {number - 1 if number > 1 else 'before it'} was edited, "
                                                  "or entries were removed or reordered")
        prev, seq = line_hash(line), number
        hashes.append(prev)
    if head is not None:
        problem = _against_recorded(hashes, head, entries)
        if problem is not None:
            return AuditVerdict(False, seq, prev, problem)
    head_path = path.with_name(path.name + HEAD_SUFFIX)
    if not head_path.exists():
        if allowed is not None:
            return AuditVerdict(False, seq, prev, f"the head file {head_path.name} is missing: the log's tail cannot "
                                                  "be checked, and there is no signed head to check",
                                "missing", head_missing=True)
        if head is not None:
            return AuditVerdict(True, seq, prev, None, "missing")
        return AuditVerdict(False, seq, prev, f"the head file {head_path.name} is missing: the {seq} entries chain "
                                              "together, but the tail cannot be checked (entries cut from the end "
                                              "leave no trace without the head)", "missing", head_missing=True)
    head_bytes = read_bounded(head_path, KEY_FILE, "audit head") or b""
    try:
        recorded = _strict_json(head_bytes)
    except ValueError:
        return AuditVerdict(False, seq, prev, "the head file is not JSON")
    if (not isinstance(recorded, dict) or not isinstance(recorded.get("entries"), int)
            or isinstance(recorded.get("entries"), bool) or not _is_hash(recorded.get("head"))):
        return AuditVerdict(False, seq, prev, "the head file is not a well-formed head (edited or damaged)")
    if recorded["entries"] != seq or recorded["head"] != prev:
        if recorded["entries"] > seq:
            return AuditVerdict(False, seq, prev, f"the log ends after entry {seq} but its signed head counts "
                                                  f"{recorded['entries']}: the tail was truncated")
        signed = recorded["entries"]
        if 1 <= signed < seq and hashes[signed] == recorded["head"]:
            tail = f"entry {seq} was" if signed + 1 == seq else f"entries {signed + 1}-{seq} were"
            return AuditVerdict(False, seq, prev, f"{tail} written after the head (entry {signed}): the recovery "
                                                  "stopped before it could write the head again (killed or "
                                                  "crashed; resuming the run covers the whole log), or entries "
                                                  f"were appended. Entries 1-{signed} match the head (its "
                                                  "signature is checked once the log matches it)")
        return AuditVerdict(False, seq, prev, "the log does not match its head: entries were added or changed "
                                              "after it was closed")
    sig_path = path.with_name(path.name + SIG_SUFFIX)
    if allowed is None:
        return AuditVerdict(True, seq, prev, None, "missing" if not sig_path.exists() else "unchecked")
    if not sig_path.exists():
        return AuditVerdict(False, seq, prev, f"the head is not signed ({sig_path.name} is missing): who closed "
                                              "the log cannot be checked", "missing")
    verdict = signature.check(head_bytes, read_bounded(sig_path, KEY_FILE, "audit head signature") or b"", str(recorded.get("operator")), allowed,
                              namespace=NAMESPACE)
    if not verdict.trusted:
        return AuditVerdict(False, seq, prev, f"the head signature is {verdict.status.value}: {verdict.detail}",
                            verdict.status.value)
    return AuditVerdict(True, seq, prev, None, "trusted")


def _against_recorded(hashes: list[str], head: str, entries: int | None) -> str | None:
    """Why the chain (``hashes[n]``: the hash after entry n) does not end at a head recorded elsewhere."""
    seq = len(hashes) - 1
    if entries is not None and entries > seq:
        return (f"the log ends after entry {seq} but the recorded head counts {entries}: "
                "the tail was cut")
    at = entries if entries is not None else (hashes.index(head) if head in hashes[1:] else None)
    if at is None or hashes[at] != head:
        where = f"entry {entries}" if entries is not None else "any entry"
        return (f"the recorded head {readable_head(head)} does not match {where} of the log: the log was "
                "rewritten or is another recovery's")
    if at < seq:
        return (f"entries 1-{at} match the recorded head, but entries {at + 1}-{seq} were written after it "
                "was recorded")
    return None
