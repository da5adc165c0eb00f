"""Prove the quorum: combine the custodians' shares in memory, derive the recipient, compare, forget.

No snapshot is touched. The test is a recovery of its own (``command = "keys test-quorum"``): its
audit log names each custodian's share (set id, group, member — never a word), and
``quorum-test.toml`` beside it says which key was tested, when, by whom and with what result; the
audit log's ``quorum-test-report`` entry holds that file's SHA-256, so the signed audit head vouches
for it. ``readiness`` reads the latest test of a key from the state folder.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from enigm_recover import tomlfile
from enigm_recover.atomic import write_atomic
from enigm_recover.bounded import AUDIT_LOG, OWN_DOCUMENT, load_toml_file, read_bounded
from enigm_recover.errors import EnigmError, ShareError
from enigm_recover.quorum.keyring import RecipientFile
from enigm_recover.recovery.audit import verify_log
from enigm_recover.recovery.quorum_session import QuorumSession
from enigm_recover.recovery.session import Recovery

QUORUM_TEST_FILE = "quorum-test.toml"
COMMAND = "keys test-quorum"

if TYPE_CHECKING:
    from enigm_recover.snapshot.signature import Signer


@dataclass(frozen=True)
class QuorumTest:
    """One test of a key's quorum, as recorded (never a share or the key)."""

    fingerprint: str
    ok: bool
    tested_at: datetime
    ceremony: str
    operator: str
    custodians: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""
    folder: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"recipient_fingerprint": self.fingerprint, "ok": self.ok,
                "tested_at": self.tested_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "timestamp_seconds": int(self.tested_at.timestamp()), "ceremony": self.ceremony,
                "operator": self.operator, "custodians": self.custodians, "reason": self.reason,
                "folder": str(self.folder) if self.folder else None}


def prove_quorum(recovery: Recovery, quorum: QuorumSession, recipient: str, fingerprint: str,
                 passphrase: str = "") -> QuorumTest:
    """Combine the shares entered, compare the derived recipient with ``recipient``, record the result.

    A wrong key (other shares, a wrong passphrase) or too few shares is a failed test, recorded, and
    the error re-raised; the combined identity is dropped before this returns.
    """
    try:
        identity = quorum.combine(passphrase)
        ok = identity.recipient == recipient
        reason = "" if ok else f"the shares combine to {identity.fingerprint}, not {fingerprint}"
        del identity
        error: EnigmError | None = None
    except ShareError as exc:
        ok, reason, error = False, exc.message, exc
    test = QuorumTest(fingerprint, ok, datetime.now(timezone.utc).replace(microsecond=0), recovery.ceremony,
                      recovery.operator, list(recovery.participants), reason, recovery.folder)
    data = tomlfile.dumps({"quorum_test": {k: v for k, v in test.as_dict().items() if k != "folder"}})
    write_atomic(recovery.folder / QUORUM_TEST_FILE, data, mode=0o600, overwrite=True)
    recovery.record("quorum-tested", step="quorum-test", title="combine the shares and compare the recipient",
                    outcome="ok" if ok else "failed",
                    inputs={"recipient_fingerprint": fingerprint, "report": QUORUM_TEST_FILE,
                            "sha256": hashlib.sha256(data).hexdigest(), "reason": reason},
                    counts={"shares": len(recovery.participants)}, detail=reason)
    if error is not None:
        raise error
    return test


def open_quorum_test(recovery: Recovery, recipient: RecipientFile) -> QuorumSession:
    """Start a quorum test of ``recipient``'s key: the shares are entered into the session this returns."""
    recovery.record("quorum-test-opened", inputs={"recipient_fingerprint": recipient.fingerprint,
                                                  "recipient_file": str(recipient.path)})
    return QuorumSession(recovery, recipient.fingerprint, recipient.recipient)


def finish_quorum_test(recovery: Recovery, quorum: QuorumSession, recipient: RecipientFile,
                       passphrase: str = "") -> QuorumTest:
    """Prove the quorum entered and close the recovery (its report signed like a recovery's): completed when
    the shares combine to the key; otherwise failed, recorded, and the error re-raised."""
    try:
        test = prove_quorum(recovery, quorum, recipient.recipient, recipient.fingerprint, passphrase)
    except Exception:
        recovery.close("failed", "the quorum did not combine to the key")
        raise
    recovery.close("completed", "the quorum combines to the key")
    return test


@dataclass(frozen=True)
class QuorumTestOutcome:
    """How a quorum test fed by a face ended: proven, or why not (the error's message and hint)."""

    ok: bool
    fingerprint: str  # the key tested
    folder: Path  # its audit log and report
    test: QuorumTest | None = None
    reason: str = ""
    hint: str = ""


class QuorumTestSession:
    """A quorum test a face feeds share by share (the app's "Test the quorum"), shaped like a run's quorum
    step: ``quorum()`` is the share entry, ``restart_quorum()`` discards it, ``combine()`` proves the key
    and closes the recovery as ``keys test-quorum`` does, ``abandon()`` closes it when the custodians stop
    first. Nothing of the shares or the key outlives it."""

    current = None  # no runbook step: the test is the whole recovery

    def __init__(self, recovery: Recovery, recipient: RecipientFile) -> None:
        self.recovery = recovery
        self.recipient = recipient
        self._quorum: QuorumSession | None = open_quorum_test(recovery, recipient)
        self.outcome: QuorumTestOutcome | None = None

    @classmethod
    def open(cls, state_dir: Path, recipient_path: Path, operator: str, signer: Signer | None = None,
             ceremony: str | None = None) -> "QuorumTestSession":
        from enigm_recover.quorum.keyring import read_recipient

        recipient = read_recipient(recipient_path)
        recovery = Recovery.open(state_dir, COMMAND, operator, ceremony)
        recovery.signer = signer
        return cls(recovery, recipient)

    @property
    def ceremony(self) -> str:
        return self.recovery.ceremony

    @property
    def finished(self) -> bool:
        return self.recovery.closed

    def quorum(self) -> QuorumSession:
        if self._quorum is None:
            raise EnigmError("this quorum test is over", "start another one")
        return self._quorum

    def restart_quorum(self) -> QuorumSession:
        """Discard the shares entered so far and start the entry again (recorded)."""
        self.quorum()
        self.recovery.audit.append("quorum-restarted")
        self._quorum = QuorumSession(self.recovery, self.recipient.fingerprint)
        return self._quorum

    def combine(self, passphrase: str = "") -> QuorumTestOutcome:
        """Prove the key with the shares entered; a failed test is an outcome (recorded), not an error."""
        quorum = self.quorum()
        try:
            test = finish_quorum_test(self.recovery, quorum, self.recipient, passphrase)
            outcome = QuorumTestOutcome(True, self.recipient.fingerprint, self.recovery.folder, test)
        except ShareError as exc:
            outcome = QuorumTestOutcome(False, self.recipient.fingerprint, self.recovery.folder, None,
                                        exc.message, exc.hint)
        finally:
            self._quorum = None  # the shares go with it, whatever happened
        self.outcome = outcome
        return outcome

    def abandon(self, reason: str) -> None:
        """Stop before the test: the shares are dropped and the recovery closed as aborted."""
        self._quorum = None
        self.recovery.close("aborted", reason)


def latest_quorum_test(state_dir: Path, fingerprint: str) -> tuple[QuorumTest | None, list[str]]:
    """The newest *successful* quorum test of ``fingerprint`` in the state folder, and what was set aside.

    A test counts only when its record's SHA-256 is the one its audit log holds and the log's chain is
    intact: an edited record or log is named, not believed.
    """
    best: QuorumTest | None = None
    notes: list[str] = []
    for path in sorted((state_dir / "recoveries").glob(f"*/{QUORUM_TEST_FILE}")):
        try:
            test = _load(path)
        except EnigmError as exc:
            notes.append(f"{path.parent.name}: unreadable quorum test ({exc.message})")
            continue
        if test.fingerprint != fingerprint or not test.ok:
            continue
        problem = _vouched(path)
        if problem:
            notes.append(f"{path.parent.name}: not counted: {problem}")
            continue
        if best is None or test.tested_at > best.tested_at:
            best = test
    return best, notes


def _load(path: Path) -> QuorumTest:
    doc = (load_toml_file(path, OWN_DOCUMENT, "quorum test") or {}).get("quorum_test", {})
    try:
        tested = datetime.strptime(str(doc["tested_at"]), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        custodians = [c for c in doc.get("custodians", []) if isinstance(c, dict)]
        return QuorumTest(str(doc["recipient_fingerprint"]), doc["ok"] is True, tested, str(doc["ceremony"]),
                          str(doc.get("operator", "")), custodians, str(doc.get("reason", "")), path.parent)
    except (KeyError, ValueError, TypeError):
        raise EnigmError("fields missing or malformed") from None


def _vouched(path: Path) -> str:
    """Why the record is not vouched for by its audit log ("" when it is)."""
    import json

    log = path.parent / "audit.jsonl"
    if not log.exists():
        return "no audit log beside it"
    verdict = verify_log(log)
    if not verdict.intact:
        return f"its audit log is not intact ({verdict.problem})"
    digest = hashlib.sha256(read_bounded(path, OWN_DOCUMENT, "quorum test") or b"").hexdigest()
    for line in (read_bounded(log, AUDIT_LOG, "audit log") or b"").splitlines():
        entry = json.loads(line)
        if entry.get("action") == "quorum-tested" and entry.get("inputs", {}).get("sha256") == digest:
            return ""
    return "its SHA-256 is not the one its audit log records (edited after the test)"
