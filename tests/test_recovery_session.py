"""Every recovery leaves an audit log and an honest report, and nothing secret in any file it writes."""

from __future__ import annotations

import json
from pathlib import Path

import asyncssh

from enigm_recover.quorum.cards import read_share_file
from enigm_recover.recovery.audit import NAMESPACE, verify_log
from enigm_recover.recovery.session import load_report

CARDS = ("amara", "chen", "emeka")


def share_args(drill) -> list:
    return sum((["--share-file", drill.card(n)] for n in CARDS), [])


def recovery_folder(out: str) -> Path:
    return Path(json.loads(out)["recovery"]["report"]).parent


def test_restore_leaves_a_signed_audit_log_and_a_report(drill, cli, tmp_path: Path) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    key.write_private_key(str(tmp_path / "operator"))
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f'dana namespaces="{NAMESPACE}" {key.export_public_key().decode().strip()}\n')
    code, out, err = cli("--state-dir", tmp_path / "state", "restore", drill.snapshots, "latest", "--target",
                         drill.target, "--allowed-signers", drill.allowed_signers, *share_args(drill), "--yes",
                         "--json", "--operator", "dana", "--audit-key", tmp_path / "operator")
    assert code == 0, err
    folder = recovery_folder(out)
    assert folder.parent == tmp_path / "state" / "recoveries"
    ceremony = json.loads(out)["recovery"]["ceremony"]
    assert ceremony in folder.name and len(ceremony.split("-")) == 3
    code, _, err = cli("audit", "verify", folder / "audit.jsonl", "--allowed-signers", allowed)
    assert code == 0, err
    entries = [json.loads(line) for line in (folder / "audit.jsonl").read_text().splitlines()]
    actions = [e["action"] for e in entries]
    assert actions[:2] == ["recovery-opened", "snapshot-verified"]
    assert actions.count("share-accepted") == 3 and "key-combined" in actions and actions[-1] == "recovery-closed"
    assert {e["inputs"]["custodian"] for e in entries if e["action"] == "share-accepted"} == set(CARDS)
    assert all(e["operator"] == "dana" and e["ceremony"] == ceremony for e in entries)
    report = load_report(folder)
    assert report["status"] == "completed" and report["audit"]["signed"]
    assert [s["step"] for s in report["steps"]] == ["dry-run", "identities", "devices", "settings", "roles"]
    assert report["findings"]["revocation-kept"] >= 1
    markdown = (folder / "report.md").read_text()
    assert ceremony in markdown and "completed" in markdown and drill.latest in markdown


def test_a_failed_recovery_is_reported_as_aborted_with_its_cause(drill, cli, tmp_path: Path) -> None:
    code, out, err = cli("--state-dir", tmp_path / "state", "unseal", drill.snapshots, "latest",
                         "--allowed-signers", drill.allowed_signers, "--share-file", drill.card("amara"),
                         "--share-file", drill.card("chen"), "--out", tmp_path / "r.jsonl")
    assert code == 24
    [folder] = (tmp_path / "state" / "recoveries").iterdir()
    report = load_report(folder)
    assert report["status"] == "aborted" and "not enough shares" in report["reason"]
    assert verify_log(folder / "audit.jsonl").intact


def test_nothing_secret_reaches_any_file_the_tool_writes(drill, cli, tmp_path: Path) -> None:
    """A whole drill recovery; then every file written is searched for share words and the recovery key."""
    state, cache = tmp_path / "state", tmp_path / "cache"
    common = ["--state-dir", state, "--cache-dir", cache]
    assert cli(*common, "diff", drill.snapshots, "latest", "--target", drill.target, "--allowed-signers",
               drill.allowed_signers, *share_args(drill))[0] == 0
    assert cli(*common, "restore", drill.snapshots, "latest", "--target", drill.target, "--allowed-signers",
               drill.allowed_signers, *share_args(drill), "--yes")[0] == 0
    assert cli(*common, "unseal", drill.snapshots, "latest", "--allowed-signers", drill.allowed_signers,
               *share_args(drill), "--out", tmp_path / "records.jsonl")[0] == 0
    assert cli(*common, "run", "tabletop-drill", "--source", drill.snapshots, "--target", drill.target,
               "--allowed-signers", drill.allowed_signers, *share_args(drill), "--yes", "--second-operator",
               "lee")[0] == 0
    from enigm_recover.quorum.entry import ShareEntry

    words = {name: read_share_file(drill.card(name)).words for name in ("amara", "bastien", "chen", "dagny", "emeka")}
    entry = ShareEntry()
    for name in CARDS:
        entry.add(words[name], name)
    identity = entry.combine()
    secrets = [identity.age_identity_string(), identity.age_identity_string().lower(), identity.secret_bytes().hex()]
    secrets += list(words.values())  # whole mnemonics
    secrets += [" ".join(w.split()[i:i + 4]) for w in words.values() for i in range(0, 30, 6)]  # runs of words
    written = [p for p in (state.rglob("*") if state.exists() else []) if p.is_file()]
    written += [p for p in cache.rglob("*") if p.is_file()] if cache.exists() else []
    written += [tmp_path / "records.jsonl", Path(drill.target.removeprefix("sqlite:///"))]
    written += [p for p in Path(drill.target.removeprefix("sqlite:///")).parent.glob("live.db*")]
    assert any(p.name == "audit.jsonl" for p in written) and any(p.name == "report.md" for p in written)
    assert any(p.name == "run.toml" for p in written)
    for path in written:
        data = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in data, f"{path} holds a secret"
