"""Recovery readiness: a healthy drill is ready, and every failure mode is produced and named."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import asyncssh
import pytest

from enigm_recover.drill.scenario import DrillSpec, make_drill
from enigm_recover.errors import NotReady, SourceError, UsageError
from enigm_recover.quorum.recovery_key import RecoveryIdentity
from enigm_recover.readiness.checks import CHECKS
from enigm_recover.readiness.policy import parse_duration, parse_percent
from enigm_recover.snapshot.manifest import manifest_name, payload_name, signature_name
from enigm_recover.snapshot.seal import read_recipient_file, seal
from enigm_recover.snapshot.signature import load_signing_key
from enigm_recover.sources.local import LocalFolderSource
from enigm_recover.state.sqlite_store import SQLiteStore
from tests.conftest import DRILL_AT, Drill
from tests.helpers import manifest_path, read_manifest, sign_as_producer, write_payload

THREE = ("amara", "chen", "emeka")


def generous() -> str:
    """A --max-age the session drill (made at a fixed past time) always meets, so only the check under test fails."""
    return f"{(datetime.now(timezone.utc) - DRILL_AT).days + 3}d"


def readiness(cli, drill: Drill, *extra, max_age: str | None = None, json_out: bool = True):
    args: list = ["readiness", drill.snapshots, "--allowed-signers", drill.allowed_signers,
                  "--recipient", drill.recipient, "--max-age", max_age or generous()]
    code, out, err = cli(*args, *extra, *(["--json"] if json_out else []))
    return code, (json.loads(out) if json_out and out.strip() else out), err


def cards(drill: Drill) -> list:
    return sum((["--share-file", drill.card(name)] for name in THREE), [])


def check(result: dict, name: str) -> dict:
    return next(c for c in result["checks"] if c["name"] == name)


def assert_not_ready(code: int, result: dict, err: str, failing: list[str]) -> None:
    assert code == NotReady.exit_code, err
    assert result["ready"] is False and result["failing"] == failing, result["failing"]
    assert err.strip().splitlines()[-1].startswith(f"enigm-recover: error: not ready: failing checks: "
                                                   f"{', '.join(failing)}"), err
    assert "Traceback" not in err


def seal_next(drill: Drill, tmp_path: Path, *, recipient: str | None = None, keep_devices: int | None = None) -> str:
    """Seal the drill's live store (after the incident) as a newer snapshot, like the nightly job would."""
    db = tmp_path / "next.db"
    src = sqlite3.connect(drill.target.removeprefix("sqlite:///"))
    dst = sqlite3.connect(db)
    src.backup(dst)
    src.close()
    if keep_devices is not None:
        dst.execute("DELETE FROM devices WHERE device_id NOT IN "
                    "(SELECT device_id FROM devices ORDER BY device_id LIMIT ?)", (keep_devices,))
        dst.commit()
    dst.close()
    with SQLiteStore(db) as store:
        manifest = seal(store, recipient=recipient or read_recipient_file(drill.recipient),
                        signing_key=load_signing_key(drill.signing_key), environment="drill", producer="backup@drill",
                        out_dir=drill.snapshots, existing=LocalFolderSource(drill.snapshots).list(),
                        created_at=DRILL_AT)
    return manifest.id


# -- ready ----------------------------------------------------------------------------------------------


def test_a_fresh_healthy_drill_is_ready_under_the_default_policy(tmp_path: Path, cli) -> None:
    doc = make_drill(tmp_path / "fresh", DrillSpec(identities=20, devices_per_identity=2, seed=5, snapshots=3))
    drill = Drill(tmp_path / "fresh", doc)
    code, out, err = cli("readiness", drill.snapshots, "--allowed-signers", drill.allowed_signers,
                         "--recipient", drill.recipient)
    assert code == 0, err
    for name in CHECKS[:-1]:
        if name != "quorum-test":
            assert re.search(rf"^  ok\s+{re.escape(name)}\s", out, re.M), (name, out)
    assert re.search(r"^  -\s+test-restore\s+not requested", out, re.M), out
    assert re.search(r"^  -\s+quorum-test\s+no successful quorum test", out, re.M), out  # no --max-quorum-age
    assert "\nREADY\n" in out and err == ""


def test_json_report_names_every_check_with_evidence(drill, cli) -> None:
    code, result, err = readiness(cli, drill)
    assert code == 0, err
    assert result["ready"] is True and result["failing"] == [] and result["error"] is None
    assert [c["name"] for c in result["checks"]] == list(CHECKS)
    assert all(c["status"] == "pass" for c in result["checks"][:-1] if c["name"] != "quorum-test")
    assert check(result, "test-restore")["status"] == "not-run" and check(result, "test-restore")["ok"] is None
    for c in result["checks"]:
        assert set(c) == {"name", "ok", "status", "description", "summary", "problems", "evidence"}
    ids = list(reversed(drill.doc["snapshots"]["ids"]))
    assert [s["id"] for s in result["snapshots"]] == ids
    assert all(s["payload"] == "verified" and s["usable"] and s["signature"] == "trusted" for s in result["snapshots"])
    assert len(check(result, "payloads")["evidence"]) == 3 and len(check(result, "signatures")["evidence"]) == 3
    assert result["newest"]["id"] == drill.latest
    created = read_manifest(drill.snapshots, drill.latest).created_at
    assert abs(result["newest"]["age_seconds"] - (datetime.now(timezone.utc) - created).total_seconds()) < 60
    assert result["policy"]["max_drop_percent"] == 25.0
    assert result["recipient_fingerprint"] == drill.doc["recovery"]["fingerprint"]
    assert Path(result["report"]["toml"]).exists() and Path(result["report"]["markdown"]).exists()
    assert Path(result["recovery"]["audit_log"]).exists()


# -- each failure mode, produced and named --------------------------------------------------------------


def test_a_stale_newest_snapshot_fails_freshness(drill, cli) -> None:
    code, result, err = readiness(cli, drill, max_age="26h")  # the session drill's newest is days old
    assert_not_ready(code, result, err, ["freshness"])
    assert "older than the 26h allowed" in check(result, "freshness")["summary"]
    code, result, err = readiness(cli, drill, max_age=generous())
    assert code == 0, err


def test_an_unsigned_snapshot_fails_signatures(drill, cli) -> None:
    middle = drill.doc["snapshots"]["ids"][1]
    os.unlink(drill.snapshots / signature_name(middle))
    code, result, err = readiness(cli, drill)
    assert_not_ready(code, result, err, ["signatures"])
    assert check(result, "signatures")["problems"] == [f"{middle}: signature missing: no signature file"]
    facts = {s["id"]: s for s in result["snapshots"]}
    assert facts[middle]["payload"] == "not checked" and not facts[middle]["usable"]


def test_a_foreign_signed_snapshot_fails_signatures(drill, cli, tmp_path: Path) -> None:
    stranger = asyncssh.generate_private_key("ssh-ed25519")
    stranger.write_private_key(str(tmp_path / "stranger"))
    sign_as_producer(drill.snapshots, drill.latest, manifest_path(drill.snapshots, drill.latest).read_bytes(),
                     tmp_path / "stranger")
    code, result, err = readiness(cli, drill)
    assert_not_ready(code, result, err, ["signatures"])
    (problem,) = check(result, "signatures")["problems"]
    assert problem.startswith(f"{drill.latest}: signature unknown-signer")
    # The forged newest is not usable: freshness measures the newest snapshot a recovery could use.
    assert result["newest"]["id"] == drill.doc["snapshots"]["ids"][1]


def test_a_snapshot_sealed_to_another_recipient_fails_recipient(drill, cli, tmp_path: Path) -> None:
    other = RecoveryIdentity.generate()
    newest = seal_next(drill, tmp_path, recipient=other.recipient)
    code, result, err = readiness(cli, drill)
    assert_not_ready(code, result, err, ["recipient"])
    (problem,) = check(result, "recipient")["problems"]
    assert problem.startswith(f"{newest}: sealed to {other.fingerprint}, not the expected recovery key")
    assert result["newest"]["id"] == drill.latest  # the one sealed to another key is not usable


def test_a_missing_payload_fails_payloads(drill, cli) -> None:
    os.unlink(drill.snapshots / payload_name(drill.latest))
    code, result, err = readiness(cli, drill)
    assert_not_ready(code, result, err, ["payloads"])
    (problem,) = check(result, "payloads")["problems"]
    assert drill.latest in problem and "missing" in problem


def test_a_corrupted_payload_fails_payloads(drill, cli) -> None:
    oldest = drill.doc["snapshots"]["ids"][0]
    path = drill.snapshots / payload_name(oldest)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    code, result, err = readiness(cli, drill)
    assert_not_ready(code, result, err, ["payloads"])
    (problem,) = check(result, "payloads")["problems"]
    assert problem.startswith(f"{oldest}: payload sha256: payload SHA-256 does not match the signed manifest")


def test_a_scope_outside_the_allow_list_fails_scope(drill, cli) -> None:
    oldest, middle, newest = drill.doc["snapshots"]["ids"]
    # A validly signed manifest whose scope leaves out the roles: that state could not be recovered from it.
    text = manifest_path(drill.snapshots, oldest).read_text()
    text = text[:text.index("[scope.role]")]
    sign_as_producer(drill.snapshots, oldest, text.encode(), drill.signing_key)
    # One that declares a field outside the allow-list is refused as it is parsed.
    text = manifest_path(drill.snapshots, newest).read_text().replace('"reason",', '"reason", "last_message",', 1)
    sign_as_producer(drill.snapshots, newest, text.encode(), drill.signing_key)
    code, result, err = readiness(cli, drill)
    assert_not_ready(code, result, err, ["scope"])
    assert check(result, "scope")["problems"] == [
        f"{newest}: manifest declares field device.last_message, which is outside the snapshot scope",
        f"{oldest}: lacks role: that state could not be recovered from it"]


def test_a_gap_in_the_chain_fails_chain(drill, cli) -> None:
    oldest, middle, newest = drill.doc["snapshots"]["ids"]
    for name in (manifest_name(middle), signature_name(middle), payload_name(middle)):
        os.unlink(drill.snapshots / name)
    code, result, err = readiness(cli, drill)
    assert_not_ready(code, result, err, ["chain"])
    assert check(result, "chain")["problems"] == [
        f"{newest}: names {middle} as its previous snapshot, which is missing (a gap after {oldest})"]


def test_a_forty_percent_drop_in_devices_fails_counts(drill, cli, tmp_path: Path) -> None:
    before = read_manifest(drill.snapshots, drill.latest).counts["device"]
    newest = seal_next(drill, tmp_path, keep_devices=before * 6 // 10)
    assert read_manifest(drill.snapshots, newest).previous_id == drill.latest
    code, result, err = readiness(cli, drill)
    assert_not_ready(code, result, err, ["counts"])
    (problem,) = check(result, "counts")["problems"]
    assert problem.startswith(f"{newest} since {drill.latest}:")
    assert re.search(r"device dropped 40\.\d%, more than the 25% allowed$", problem), problem
    code, result, err = readiness(cli, drill, "--max-drop", "50%")  # the threshold is the policy's to set
    assert code == 0, err


def test_a_plausible_change_in_counts_passes(drill, cli, tmp_path: Path) -> None:
    """The incident's own 8% of deleted devices, sealed the next night, is under the threshold."""
    seal_next(drill, tmp_path)
    code, result, err = readiness(cli, drill)
    assert code == 0, err
    assert len(check(result, "counts")["evidence"]) == 3


# -- the test restore -----------------------------------------------------------------------------------


def test_test_restore_unseals_restores_verifies_and_discards(drill, cli, tmp_path: Path, monkeypatch) -> None:
    from enigm_recover.readiness import checks

    assert checks.memory_backed_folder() == "/dev/shm"  # Linux: decrypted records stay in memory-backed storage
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(checks, "memory_backed_folder", lambda: str(scratch))  # to watch it being emptied
    code, result, err = readiness(cli, drill, "--test-restore", *cards(drill))
    assert code == 0, err
    restore = check(result, "test-restore")
    assert restore["status"] == "pass" and result["test_restored"] == drill.latest
    manifest = read_manifest(drill.snapshots, drill.latest)
    for kind, scope in manifest.scope.items():
        assert (f"{kind}: {scope.count:,} restored = {scope.count:,} signed, canonical SHA-256 {scope.sha256} "
                "as signed") in restore["evidence"]
    assert restore["evidence"][-1] == "scratch target deleted" and list(scratch.iterdir()) == []
    audit = [json.loads(line) for line in Path(result["recovery"]["audit_log"]).read_text().splitlines()]
    assert [e["inputs"]["custodian"] for e in audit if e["action"] == "share-accepted"] == list(THREE)
    assert not any("words" in json.dumps(e) for e in audit)


def _forge_latest(drill: Drill, cli, tmp_path: Path, keep) -> None:
    """Replace the newest payload with some of its own records, validly signed, manifest counts untouched."""
    out = tmp_path / "records.jsonl"
    code, _, err = cli("unseal", drill.snapshots, "latest", "--allowed-signers", drill.allowed_signers,
                       "--out", out, *cards(drill))
    assert code == 0, err
    lines = keep(out.read_bytes().splitlines(keepends=True))
    out.unlink()
    manifest = read_manifest(drill.snapshots, drill.latest)
    size, digest = write_payload(drill.snapshots, drill.latest, b"".join(lines), manifest.recipient)
    text = manifest_path(drill.snapshots, drill.latest).read_text()
    text = text.replace(f"size = {manifest.payload_size}", f"size = {size}").replace(manifest.payload_sha256, digest)
    sign_as_producer(drill.snapshots, drill.latest, text.encode(), drill.signing_key)


def test_test_restore_catches_records_that_do_not_match_the_manifest_counts(drill, cli, tmp_path: Path) -> None:
    _forge_latest(drill, cli, tmp_path, lambda lines: lines[:-1])  # one role fewer than the manifest says
    code, result, err = readiness(cli, drill)
    assert code == 0, err  # signed, intact, decryptable: only unsealing it shows what is wrong
    code, result, err = readiness(cli, drill, "--test-restore", *cards(drill))
    assert_not_ready(code, result, err, ["test-restore"])
    restore = check(result, "test-restore")
    assert "the manifest says" in restore["summary"] and "role" in restore["summary"]
    assert restore["problems"][0].startswith("failed (SnapshotContentError)")


def test_test_restore_is_not_attempted_on_a_newest_snapshot_that_did_not_verify(drill, cli) -> None:
    os.unlink(drill.snapshots / payload_name(drill.latest))
    code, result, err = readiness(cli, drill, "--test-restore", *cards(drill))
    assert_not_ready(code, result, err, ["payloads", "test-restore"])
    assert check(result, "test-restore")["summary"] == f"not attempted: the newest snapshot {drill.latest} did not verify"
    audit = Path(result["recovery"]["audit_log"]).read_text()
    assert "share-accepted" not in audit  # no custodian was asked for a share


# -- output for monitoring and auditors ---------------------------------------------------------------


def parse_textfile(text: str) -> tuple[dict[str, float], dict[str, tuple[str, str]]]:
    samples, meta = {}, {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            meta.setdefault(name, ("", ""))
            meta[name] = (line, meta[name][1])
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            meta[name] = (meta[name][0], kind)
        else:
            key, value = line.rsplit(" ", 1)
            samples[key] = float(value)
    return samples, meta


def test_prometheus_textfile_for_node_exporter(drill, cli, tmp_path: Path) -> None:
    textfile_dir = tmp_path / "textfile"
    textfile_dir.mkdir()
    prom = textfile_dir / "enigm_readiness.prom"
    code, result, err = readiness(cli, drill, "--prometheus", prom)
    assert code == 0, err
    source = f'source="{drill.snapshots}"'
    samples, meta = parse_textfile(prom.read_text())
    assert samples[f"enigm_recover_readiness_ok{{{source}}}"] == 1
    assert samples[f"enigm_recover_newest_snapshot_age_seconds{{{source}}}"] == pytest.approx(
        result["newest"]["age_seconds"], abs=1)
    for name in CHECKS[:-1]:
        if name != "quorum-test":
            assert samples[f'enigm_recover_readiness_check_ok{{{source},check="{name}"}}'] == 1
    assert not any('check="test-restore"' in k for k in samples)  # not run: absent, not a false 0
    assert not any('check="quorum-test"' in k for k in samples)  # no --max-quorum-age and no test: not run
    assert all(meta[m][0] and meta[m][1] == "gauge" for m in meta) and "enigm_recover_readiness_ok" in meta
    assert abs(samples[f"enigm_recover_readiness_last_run_timestamp_seconds{{{source}}}"]
               - datetime.now(timezone.utc).timestamp()) < 120

    code, result, err = readiness(cli, drill, "--prometheus", prom, max_age="26h")
    assert code == NotReady.exit_code
    samples, _ = parse_textfile(prom.read_text())
    assert samples[f"enigm_recover_readiness_ok{{{source}}}"] == 0
    assert samples[f'enigm_recover_readiness_check_ok{{{source},check="freshness"}}'] == 0
    assert samples[f'enigm_recover_readiness_check_ok{{{source},check="payloads"}}'] == 1
    assert [p.name for p in textfile_dir.iterdir()] == ["enigm_readiness.prom"]  # written atomically, no leftovers


def test_the_report_digest_is_in_an_intact_audit_log(drill, cli) -> None:
    code, result, err = readiness(cli, drill, max_age="26h")
    assert code == NotReady.exit_code
    folder = Path(result["report"]["toml"]).parent
    toml_bytes, md = (folder / "readiness.toml").read_bytes(), (folder / "readiness.md").read_text()
    entries = [json.loads(line) for line in (folder / "audit.jsonl").read_text().splitlines()]
    (entry,) = [e for e in entries if e["action"] == "readiness-report"]
    assert entry["inputs"]["sha256"] == hashlib.sha256(toml_bytes).hexdigest() == result["report"]["sha256"]
    assert entry["inputs"]["markdown_sha256"] == hashlib.sha256(md.encode()).hexdigest()
    assert entry["outcome"] == "not-ready" and entry["inputs"]["failing"] == ["freshness"]
    assert [e["step"] for e in entries if e["action"] == "readiness-check"] == list(CHECKS)
    assert "# Recovery readiness — NOT READY" in md and "| freshness | FAIL |" in md
    assert f'ceremony = "{result["recovery"]["ceremony"]}"' in toml_bytes.decode()
    code, _, err = cli("audit", "verify", folder / "audit.jsonl")
    assert code == 0, err


def test_human_output_names_the_failing_checks_and_their_evidence(drill, cli) -> None:
    os.unlink(drill.snapshots / signature_name(drill.doc["snapshots"]["ids"][0]))
    code, out, err = readiness(cli, drill, max_age="26h", json_out=False)
    assert code == NotReady.exit_code
    assert re.search(r"^  FAIL\s+freshness\s", out, re.M) and re.search(r"^  FAIL\s+signatures\s", out, re.M)
    assert "signature missing: no signature file" in out
    assert "NOT READY: failing checks: freshness, signatures" in out
    assert err.count("\n") == 1 and "not ready: failing checks: freshness, signatures" in err


# -- sources and options ------------------------------------------------------------------------------


def test_readiness_over_sftp_downloads_and_hashes_every_payload_each_run(drill, cli, tmp_path: Path) -> None:
    from enigm_recover.drill.serve import serve_drill

    server, doc = serve_drill(drill.root)
    try:
        ssh = ["--ssh-config", doc["ssh"]["config"]]
        cache = tmp_path / "cache"
        args = ["--cache-dir", cache, "readiness", doc["ssh"]["source"], "--allowed-signers", drill.allowed_signers,
                "--recipient", drill.recipient, "--max-age", generous(), "--json", *ssh]
        code, out, err = cli(*args)
        assert code == 0, err
        result = json.loads(out)
        assert result["source"].startswith("sftp://") and result["ready"]
        assert all(s["payload"] == "verified" for s in result["snapshots"])
        assert not list(cache.rglob("*.payload.age"))  # the run's own downloads are gone with it
        # A payload damaged on the host after a good run is found: nothing is taken from an earlier run.
        path = drill.snapshots / payload_name(drill.latest)
        data = bytearray(path.read_bytes())
        data[100] ^= 0x01
        path.write_bytes(bytes(data))
        code, out, err = cli(*args)
        result = json.loads(out)
        assert_not_ready(code, result, err, ["payloads"])
        (problem,) = check(result, "payloads")["problems"]
        assert drill.latest in problem and "SHA-256" in problem
    finally:
        server.stop()


def test_an_unusable_source_keeps_its_exit_code_and_tells_monitoring(drill, cli, tmp_path: Path) -> None:
    prom = tmp_path / "r.prom"
    code, result, err = readiness(cli, drill, "--prometheus", prom)
    assert code == 0
    shutil.rmtree(drill.snapshots)
    code, result, err = readiness(cli, drill, "--prometheus", prom)
    assert code == SourceError.exit_code and "does not exist" in err, err
    assert result["error"]["exit_code"] == SourceError.exit_code and result["failing"] == ["source"]
    assert all(c["status"] == "not-run" for c in result["checks"][1:])
    samples, _ = parse_textfile(prom.read_text())
    assert samples[f'enigm_recover_readiness_ok{{source="{drill.snapshots}"}}'] == 0
    assert samples[f'enigm_recover_readiness_check_ok{{source="{drill.snapshots}",check="source"}}'] == 0


@pytest.mark.parametrize("text, seconds", [("26h", 93600), ("90m", 5400), ("2d", 172800), ("3600s", 3600),
                                           ("1w", 604800), ("1d12h", 129600), (" 26H ", 93600)])
def test_max_age_durations(text: str, seconds: int) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["26", "h", "0h", "-1h", "26x", "1.5h", ""])
def test_bad_max_age_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError):
        parse_duration(text)


def test_max_drop_percentages() -> None:
    assert parse_percent("25") == parse_percent("25%") == 25.0 and parse_percent("12.5%") == 12.5
    for bad in ("0", "101", "-5", "lots", "25%%"):
        with pytest.raises(UsageError):
            parse_percent(bad)


def test_environment_selects_the_snapshots_checked(drill, cli) -> None:
    code, result, err = readiness(cli, drill, "--environment", "drill")
    assert code == 0, err
    code, result, err = readiness(cli, drill, "--environment", "prod")
    assert_not_ready(code, result, err, ["manifests", "freshness"])
    assert check(result, "manifests")["summary"] == "the source holds no snapshots of environment prod (3 of other " \
                                                    "environments)"


def test_bad_options_are_usage_errors(drill, cli) -> None:
    for extra, named in ((["--max-age", "tomorrow"], "--max-age 'tomorrow' is not a duration"),
                         (["--max-drop", "200"], "--max-drop '200' is not a percentage"),
                         (["--share-file", drill.card("amara")], "--share-file is used only with --test-restore")):
        code, _, err = readiness(cli, drill, *extra, json_out=False)
        assert code == UsageError.exit_code and named in err and err.count("\n") == 1, err
