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


# -- a missing head, a missing signature -------------------------------------------------------------


def test_a_log_without_its_head_is_not_intact(log: Path, cli) -> None:
    log.with_name(log.name + ".head").unlink()
    verdict = verify_log(log)
    assert not verdict.intact and "cannot be checked" in verdict.problem
    code, out, err = cli("audit", "verify", log)
    assert code == 28 and "intact" not in out and "the tail cannot be checked" in err and "--head" in err
    code, out, _ = cli("audit", "verify", log, "--json")
    assert code == 28 and json.loads(out)["intact"] is False


@pytest.mark.parametrize("damage", ["unsigned", "signature-removed", "head-removed"])
def test_allowed_signers_require_a_signed_head(log: Path, operator_key, cli, tmp_path: Path, damage: str) -> None:
    if damage == "unsigned":
        path = tmp_path / "unsigned" / "audit.jsonl"
        audit = AuditLog(path, ceremony="brave-otter-42", operator="alice")
        audit.append("verify-snapshot")
        audit.close(None)
        log = path
    elif damage == "signature-removed":
        log.with_name(log.name + ".head.sig").unlink()
    else:
        log.with_name(log.name + ".head").unlink()
    code, out, err = cli("audit", "verify", log, "--allowed-signers", operator_key[1])
    assert code in (19, 28) and "intact" not in out
    assert ("not signed" in err) if damage != "head-removed" else ("cannot be checked" in err)


def test_a_head_signed_by_a_foreign_key_fails(log: Path, operator_key, cli) -> None:
    head = log.with_name(log.name + ".head")
    sig = KeySigner(asyncssh.generate_private_key("ssh-ed25519")).sign(head.read_bytes(), NAMESPACE)
    log.with_name(log.name + ".head.sig").write_bytes(sig)
    code, out, err = cli("audit", "verify", log, "--allowed-signers", operator_key[1])
    assert code == 19 and "intact" not in out


# -- every malformed line is tampering, never a crash -------------------------------------------------


def _entry(line: bytes) -> dict:
    return json.loads(line)


def _with(line: bytes, **fields) -> bytes:
    entry = _entry(line)
    entry.update(fields)
    return json.dumps(entry, sort_keys=True, separators=(",", ":")).encode() + b"\n"


MALFORMED = {
    "not-json": lambda first: b"hello\n",
    "json-array": lambda first: b"[1, 2, 3]\n",
    "json-string": lambda first: b'"seq"\n',
    "json-null": lambda first: b"null\n",
    "invalid-utf8": lambda first: first.replace(b"verify-snapshot", b"verify-\xff\xfesnapshot"),
    "huge-number": lambda first: first.replace(b'"seq":1', b'"seq":' + b"9" * 5000),
    "huge-float": lambda first: first.replace(b'"seq":1', b'"seq":1e999'),
    "float-seq": lambda first: _with(first, seq=1.0),
    "bool-seq": lambda first: _with(first, seq=True),
    "string-seq": lambda first: _with(first, seq="1"),
    "prev-not-string": lambda first: _with(first, prev=0),
    "inputs-not-object": lambda first: _with(first, inputs=[]),
    "action-not-string": lambda first: _with(first, action={"a": 1}),
    "counts-not-numbers": lambda first: _with(first, counts={"x": "1"}),
    "deep-nesting": lambda first: first.replace(b'"inputs":{', b'"inputs":{"x":' + b"[" * 100_000 + b"]" * 100_000
                                                + b',', 1),
    "nan": lambda first: first.replace(b'"seq":1', b'"seq":NaN'),
    "duplicate-key": lambda first: first.replace(b'"seq":1', b'"seq":1,"seq":1'),
    "empty-line": lambda first: b"\n",
    "nul-bytes": lambda first: b"\x00" * 10 + b"\n",
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_malformed_line_is_named_and_exits_19(log: Path, cli, name: str) -> None:
    ls = lines(log)
    ls[0] = MALFORMED[name](ls[0])
    log.write_bytes(b"".join(ls))
    verdict = verify_log(log)
    assert not verdict.intact and "entry 1" in verdict.problem
    code, out, err = cli("audit", "verify", log)
    assert code == 19 and "entry 1" in err and "Traceback" not in err, err
    code, out, _ = cli("audit", "verify", log, "--json")
    assert code == 19 and json.loads(out)["intact"] is False


@pytest.mark.parametrize("content", [b"[]\n", b"{\"entries\": \"4\"}\n", b"\xff\n", b"{" * 100_000 + b"\n"])
def test_a_malformed_head_file_exits_19(log: Path, cli, content: bytes) -> None:
    log.with_name(log.name + ".head").write_bytes(content)
    code, _, err = cli("audit", "verify", log)
    assert code == 19 and "Traceback" not in err


# -- a head recorded elsewhere ------------------------------------------------------------------------


def _grouped(head: str) -> str:
    return " ".join(head[i:i + 4] for i in range(0, len(head), 4))


def test_a_log_checks_against_a_head_written_down_elsewhere(log: Path, cli) -> None:
    head, entries = verify_log(log).head, len(lines(log))
    for written in (head, head.upper(), _grouped(head), _grouped(head).replace(" ", "-")):
        code, out, err = cli("audit", "verify", log, "--head", written, "--entries", str(entries))
        assert code == 0 and "intact" in out, err
    assert cli("audit", "verify", log, "--head", head)[0] == 0
    log.with_name(log.name + ".head").unlink()  # the head file is not needed when the head is given
    assert cli("audit", "verify", log, "--head", head, "--entries", str(entries))[0] == 0


def test_a_rewritten_log_with_its_head_is_refused_by_the_written_down_head(log: Path, cli, tmp_path: Path) -> None:
    head = verify_log(log).head
    other = tmp_path / "other" / "audit.jsonl"
    rewritten = AuditLog(other, ceremony="brave-otter-42", operator="alice")
    for step in ("a", "b", "c", "d"):
        rewritten.append("restore-step", step=step)
    rewritten.close(None)
    assert verify_log(other).intact  # consistent with its own (rewritten) head file
    code, out, err = cli("audit", "verify", other, "--head", head, "--entries", "4")
    assert code == 19 and "recorded head" in err


def test_a_cut_log_is_refused_by_the_written_down_head(log: Path, cli) -> None:
    head = verify_log(log).head
    log.write_bytes(b"".join(lines(log)[:3]))
    log.with_name(log.name + ".head").unlink()
    code, _, err = cli("audit", "verify", log, "--head", head, "--entries", "4")
    assert code == 19 and "4" in err
    code, _, err = cli("audit", "verify", log, "--head", head)
    assert code == 19


def test_a_wrong_entry_count_is_refused(log: Path, cli) -> None:
    head = verify_log(log).head
    assert cli("audit", "verify", log, "--head", head, "--entries", "3")[0] == 19
    assert cli("audit", "verify", log, "--head", head, "--entries", "5")[0] == 19


def test_a_log_grown_after_the_written_down_head_is_refused(log: Path, cli) -> None:
    head = verify_log(log).head
    AuditLog(log, ceremony="brave-otter-42", operator="alice").append("report")
    code, _, err = cli("audit", "verify", log, "--head", head, "--entries", "4")
    assert code == 19 and "after" in err


@pytest.mark.parametrize("bad", [["--head", "abc"], ["--head", "z" * 64], ["--entries", "4"],
                                 ["--head", "0" * 64, "--entries", "-1"], ["--head", "0" * 64, "--entries", "x"]])
def test_a_malformed_head_option_is_a_usage_error(log: Path, cli, bad: list[str]) -> None:
    code, _, err = cli("audit", "verify", log, *bad)
    assert code == 2 and "Traceback" not in err


def test_the_head_is_shown_grouped_for_writing_down() -> None:
    from enigm_recover.recovery.audit import readable_head

    head = "0123456789abcdef" * 4
    shown = readable_head(head)
    assert shown.replace(" ", "") == head and all(len(g) == 4 for g in shown.split())


def test_a_restore_ends_with_the_head_to_write_down_and_the_report_says_keep_it_apart(drill, cli) -> None:
    import tomllib

    from enigm_recover.recovery.audit import readable_head
    from tests.test_restore import restore

    code, out, err = restore(cli, drill, drill.target, "--yes")
    assert code == 0, err
    report_path = Path(out.split("report ", 1)[1].split(";", 1)[0])
    report = tomllib.loads(report_path.with_name("report.toml").read_text())
    head, entries = report["audit"]["head"], report["audit"]["entries"]
    last = out.strip().splitlines()[-1]
    assert readable_head(head) in last and f"entry {entries}" in last and "apart from the log" in last
    assert "keep it apart from the log" in report_path.read_text()
    log = report_path.with_name("audit.jsonl")
    code, out, err = cli("audit", "verify", log, "--head", readable_head(head), "--entries", str(entries))
    assert code == 0, err


def test_a_damaged_log_is_not_continued(log: Path) -> None:
    from enigm_recover.errors import AuditLogTampered

    log.write_bytes(b"".join(lines(log)[:2]) + b"[1]\n")
    with pytest.raises(AuditLogTampered) as exc:
        AuditLog(log, ceremony="brave-otter-42", operator="alice")
    assert "entry 3" in str(exc.value)
