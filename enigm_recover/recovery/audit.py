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
from typing import TYPE_CHECKING, Any

from enigm_recover.atomic import write_atomic
from enigm_recover.bounded import AUDIT_LOG, KEY_FILE, read_bounded
from enigm_recover.private import create_private_file, make_private_dir

if TYPE_CHECKING:  # asyncssh is imported only to check a signature: a command that signs nothing starts faster
    import asyncssh

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
        for line in f:
            seq, head = json.loads(line)["seq"], line_hash(line)
    return seq, head


@dataclass(frozen=True)
class AuditVerdict:
    intact: bool
    entries: int
    head: str
    problem: str | None = None  # the first bad entry, in words
    signature: str | None = None  # trusted | invalid | missing | unchecked


def verify_log(path: Path, allowed: asyncssh.SSHAllowedSigners | None = None) -> AuditVerdict:
    data = read_bounded(path, AUDIT_LOG, "audit log")
    assert data is not None
    lines = data.splitlines(keepends=True)
    prev, seq = GENESIS, 0
    hashes = [GENESIS]  # the chain's hash after each entry
    for number, line in enumerate(lines, 1):
        try:
            entry = json.loads(line)
        except (ValueError, RecursionError):  # RecursionError: arrays nested past the parser's stack
            return AuditVerdict(False, seq, prev, f"entry {number} is not JSON (edited or damaged)")
        if not isinstance(entry, dict):
            return AuditVerdict(False, seq, prev, f"entry {number} is not a JSON object (edited or damaged)")
        if not line.endswith(b"\n"):
            return AuditVerdict(False, seq, prev, f"entry {number} is cut short (the log was truncated)")
        if entry.get("seq") != number:
            return AuditVerdict(False, seq, prev, f"entry {number} has sequence number {entry.get('seq')!r}: "
                                                  "an entry was deleted, inserted or moved before it")
        if entry.get("prev") != prev:
            return AuditVerdict(False, seq, prev, f"entry {number} does not chain to the entry before it: "
                                                  f"entry {number - 1 if number > 1 else 'before it'} was edited, "
                                                  "or entries were removed or reordered")
        prev, seq = line_hash(line), number
        hashes.append(prev)
    head_path = path.with_name(path.name + HEAD_SUFFIX)
    if not head_path.exists():
        return AuditVerdict(True, seq, prev, None, "missing")
    head_bytes = read_bounded(head_path, KEY_FILE, "audit head") or b""
    try:
        head = json.loads(head_bytes)
    except (ValueError, RecursionError):
        return AuditVerdict(False, seq, prev, "the head file is not JSON")
    if not isinstance(head, dict):
        return AuditVerdict(False, seq, prev, "the head file is not a JSON object")
    if head.get("entries") != seq or head.get("head") != prev:
        if isinstance(head.get("entries"), int) and head["entries"] > seq:
            return AuditVerdict(False, seq, prev, f"the log ends after entry {seq} but its signed head counts "
                                                  f"{head['entries']}: the tail was truncated")
        signed = head.get("entries")
        if isinstance(signed, int) and 1 <= signed < seq and hashes[signed] == head.get("head"):
            tail = f"entry {seq} was" if signed + 1 == seq else f"entries {signed + 1}-{seq} were"
            return AuditVerdict(False, seq, prev, f"{tail} written after the head (entry {signed}): the recovery "
                                                  "stopped before it could write the head again (killed or "
                                                  "crashed; resuming the run covers the whole log), or entries "
                                                  f"were appended. Entries 1-{signed} match the head (its "
                                                  "signature is checked once the log matches it)")
        return AuditVerdict(False, seq, prev, "the log does not match its head: entries were added or changed "
                                              "after it was closed")
    sig_path = path.with_name(path.name + SIG_SUFFIX)
    if allowed is None or not sig_path.exists():
        return AuditVerdict(True, seq, prev, None, "missing" if not sig_path.exists() else "unchecked")
    from enigm_recover.snapshot import signature

    verdict = signature.check(head_bytes, read_bounded(sig_path, KEY_FILE, "audit head signature") or b"", str(head.get("operator")), allowed,
                              namespace=NAMESPACE)
    if not verdict.trusted:
        return AuditVerdict(False, seq, prev, f"the head signature is {verdict.status.value}: {verdict.detail}",
                            verdict.status.value)
    return AuditVerdict(True, seq, prev, None, "trusted")
