"""The audit log: hash chain, signed head, and every way of altering it is named."""

from __future__ import annotations

import json
from pathlib import Path

import asyncssh
import pytest

from enigm_recover.recovery.audit import NAMESPACE, AuditLog, verify_log
from enigm_recover.snapshot.signature import KeySigner


@pytest.fixture
def operator_key(tmp_path: Path):
    key = asyncssh.generate_private_key("ssh-ed25519")
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f'alice namespaces="{NAMESPACE}" {key.export_public_key().decode().strip()}\n')
    return key, allowed


@pytest.fixture
def log(tmp_path: Path, operator_key) -> Path:
    path = tmp_path / "recovery" / "audit.jsonl"
    audit = AuditLog(path, ceremony="brave-otter-42", operator="alice")
    audit.append("verify-snapshot", inputs={"snapshot": "20261127T000000Z-00000000"})
    audit.append("share-accepted", inputs={"set_id": 11813, "member_index": 3})
    audit.append("restore-step", step="devices", counts={"inserted": 48})
    audit.append("restore-step", step="roles", counts={"inserted": 1, "deleted": 1})
    audit.close(KeySigner(operator_key[0]))
    return path


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_an_intact_log_verifies_with_its_signed_head(log: Path, operator_key, cli) -> None:
    code, out, err = cli("audit", "verify", log, "--allowed-signers", operator_key[1], "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["intact"] and result["entries"] == 4 and result["signature"] == "trusted"
    assert log.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("damage, named", [
    (lambda ls: [ls[0], ls[1].replace(b'"member_index":3', b'"member_index":4'), ls[2], ls[3]], "entry 3"),
    (lambda ls: [ls[0], ls[2], ls[3]], "entry 2"),
    (lambda ls: [ls[0], ls[1], ls[1], ls[2], ls[3]], "entry 3"),
    (lambda ls: [ls[0], ls[2], ls[1], ls[3]], "entry 2"),
    (lambda ls: ls[:3], "truncated"),
    (lambda ls: ls[:3] + [ls[3][:-20]], "entry 4"),
], ids=["edited", "deleted", "inserted", "reordered", "truncated-tail", "cut-short"])
def test_every_alteration_is_named(log: Path, cli, damage, named: str) -> None:
    log.write_bytes(b"".join(damage(lines(log))))
    verdict = verify_log(log)
    assert not verdict.intact and named in verdict.problem
    code, _, err = cli("audit", "verify", log)
    assert code == 19 and named in err and err.count("\n") == 1


def test_a_rewritten_log_with_a_forged_head_fails_the_signature(log: Path, operator_key, tmp_path: Path) -> None:
    """Rewriting every hash is possible for anyone; signing the new head is not."""
    path = tmp_path / "forged.jsonl"
    forged = AuditLog(path, ceremony="brave-otter-42", operator="alice")
    forged.append("verify-snapshot", inputs={"snapshot": "20261127T000000Z-00000000"})
    forged.close(KeySigner(asyncssh.generate_private_key("ssh-ed25519")))  # the attacker's key
    verdict = verify_log(path, asyncssh.read_allowed_signers(str(operator_key[1])))
    assert not verdict.intact and verdict.signature == "unknown-signer"


def test_appending_continues_the_chain(log: Path) -> None:
    AuditLog(log, ceremony="brave-otter-42", operator="alice").append("report")
    entries = [json.loads(line) for line in lines(log)]
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5]
    verdict = verify_log(log)  # the closed head no longer covers the log: reported, not hidden
    assert not verdict.intact and "entry 5 was written after the head (entry 4)" in verdict.problem


def test_a_rewritten_log_longer_than_its_head_is_not_taken_for_an_interrupted_run(log: Path,
                                                                                  tmp_path: Path) -> None:
    """Only a tail after entries that still hash to the signed head reads as an interrupted run."""
    other = tmp_path / "other.jsonl"
    rewritten = AuditLog(other, ceremony="brave-otter-42", operator="alice")
    for step in ("identities", "devices", "settings", "roles", "report"):  # a whole new chain, one entry longer
        rewritten.append("restore-step", step=step)
    log.write_bytes(other.read_bytes())
    verdict = verify_log(log)
    assert not verdict.intact and verdict.problem.startswith("the log does not match its head")
