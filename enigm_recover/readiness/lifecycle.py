"""Readiness checks of the recovery key's life: the last quorum test, and retired keys.

- ``quorum-test``: the latest successful ``keys test-quorum`` of the expected key (from the state
  folder, vouched for by its audit log) is younger than ``--max-quorum-age``; without that option
  the check only reports when the quorum was last proven;
- ``keys``: the expected ``recovery.pub`` is not retired, and the newest snapshot is not sealed to a
  key the keyring beside it lists as retired; every snapshot still sealed to a retired key is
  listed, since it still needs that key's old quorum (or ``keys rewrap``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from enigm_recover.quorum.keyring import KeyRecord
from enigm_recover.readiness.policy import format_duration
from enigm_recover.readiness.result import CheckResult, hours
from enigm_recover.recovery.quorum_test import QuorumTest
from enigm_recover.snapshot.source import SnapshotEntry

QUORUM_TEST = "quorum-test"
KEYS = "keys"
DESCRIPTIONS = {
    QUORUM_TEST: "the custodians proved recently (keys test-quorum) that their shares still combine to the key",
    KEYS: "the expected key is not retired, and the newest snapshot is not sealed to a retired key",
}


@dataclass
class KeyLife:
    """What readiness knows of the expected key's life, gathered by the caller from files."""

    quorum_test: QuorumTest | None = None
    quorum_notes: list[str] = field(default_factory=list)
    retired: dict[str, KeyRecord] = field(default_factory=dict)  # fingerprint -> its keyring record
    expected_retired: str = ""  # the retirement line of --recipient itself, if any


def check_quorum_test(life: KeyLife, max_age: timedelta | None, now: datetime) -> CheckResult:

    test = life.quorum_test
    evidence = list(life.quorum_notes)
    if test is None:
        summary = "no successful quorum test of this key in this state folder (run `keys test-quorum`)"
        return CheckResult(QUORUM_TEST, False if max_age is not None else None, summary, evidence)
    age = int((now - test.tested_at).total_seconds())
    names = ", ".join(str(c.get("custodian", "?")) for c in test.custodians) or "none named"
    evidence.insert(0, f"ceremony {test.ceremony} at {test.as_dict()['tested_at']} by {test.operator}: "
                       f"custodians {names}")
    said = f"the quorum was last proven {hours(max(age, 0))} ago ({test.as_dict()['tested_at']})"
    if max_age is None:
        return CheckResult(QUORUM_TEST, True, said + " (no --max-quorum-age set)", evidence)
    if age > max_age.total_seconds():
        return CheckResult(QUORUM_TEST, False, f"{said}: older than the {format_duration(max_age)} allowed",
                           evidence)
    return CheckResult(QUORUM_TEST, True, f"{said} (at most {format_duration(max_age)} allowed)", evidence)


def check_keys(parsed: list[SnapshotEntry], life: KeyLife, expected: str) -> CheckResult:

    evidence: list[str] = []
    problems: list[str] = []
    if life.expected_retired:
        problems.append(f"the expected recovery key {expected} is itself retired ({life.expected_retired}): "
                        "point --recipient at the recovery.pub that replaced it")
    for e in parsed:  # newest first
        m = e.manifest
        assert m is not None
        record = life.retired.get(m.recipient_fingerprint)
        if record is not None:
            evidence.append(f"{m.id}: sealed to the retired key {m.recipient_fingerprint} (retired "
                            f"{record.retired}: {record.reason}): still needs that key's old quorum, or "
                            "`keys rewrap`")
    if parsed and parsed[0].manifest is not None and parsed[0].manifest.recipient_fingerprint in life.retired:
        problems.append(f"the newest snapshot {parsed[0].id} is sealed to a retired key "
                        f"({parsed[0].manifest.recipient_fingerprint}): the producer still seals to it")
    waiting = len(evidence)
    evidence = problems + evidence
    if problems:
        return CheckResult(KEYS, False, problems[0], evidence, problems)
    if waiting:
        return CheckResult(KEYS, True, f"the newest snapshot uses a current key; {waiting} older snapshot(s) still "
                                       "need a retired key's quorum", evidence)
    return CheckResult(KEYS, True, "no snapshot is sealed to a retired key", evidence or ["no retired key involved"])
