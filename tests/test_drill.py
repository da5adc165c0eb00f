"""The drill scenario generator."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from enigm_recover.drill.scenario import DrillSpec, make_drill
from tests.conftest import DRILL_AT
from tests.helpers import dump, read_manifest


def test_drill_file_names_everything_that_exists(pristine_drill) -> None:
    doc = tomllib.loads((pristine_drill.root / "drill.toml").read_text())
    for key in ("snapshots", "allowed_signers", "recipient", "signing_key"):
        assert Path(doc["paths"][key]).exists(), key
    assert Path(doc["paths"]["target"].removeprefix("sqlite:///")).exists()
    assert sorted(doc["custodians"]) == ["amara", "bastien", "chen", "dagny", "emeka"]
    assert all(Path(p).exists() for p in doc["custodians"].values())
    assert len(doc["snapshots"]["ids"]) == 3 and doc["snapshots"]["latest"] == doc["snapshots"]["ids"][-1]


def test_same_seed_same_drill_other_seed_other_drill(tmp_path: Path) -> None:
    spec = DrillSpec(identities=40, devices_per_identity=2, seed=11, snapshots=2, at=DRILL_AT)
    a = make_drill(tmp_path / "a", spec)
    b = make_drill(tmp_path / "b", spec)
    c = make_drill(tmp_path / "c", DrillSpec(identities=40, devices_per_identity=2, seed=12, snapshots=2,
                                             at=DRILL_AT))
    assert a["snapshots"]["ids"] == b["snapshots"]["ids"]
    assert dump(a["paths"]["target"]) == dump(b["paths"]["target"])
    assert dump(a["paths"]["target"]) != dump(c["paths"]["target"])
    card = lambda d: Path(d["custodians"]["amara"]).read_text().split("words:")[1]  # noqa: E731
    assert card(a) == card(b) != card(c)
    ma = read_manifest(Path(a["paths"]["snapshots"]), a["snapshots"]["latest"])
    mb = read_manifest(Path(b["paths"]["snapshots"]), b["snapshots"]["latest"])
    assert ma.scope == mb.scope  # identical records, hence identical per-kind digests


def test_the_incident_damaged_the_target_after_the_last_snapshot(pristine_drill) -> None:
    live = dump(pristine_drill.target)
    manifest = read_manifest(pristine_drill.snapshots, pristine_drill.latest)
    incident = pristine_drill.doc["incident"]
    assert incident["devices_deleted"] > 0 and incident["identities_altered"] > 0
    assert incident["devices_revoked_after_snapshot"] > 0 and incident["accounts_created_after_snapshot"] > 0
    expected_devices = (manifest.counts["device"] - incident["devices_deleted"]
                        + incident["accounts_created_after_snapshot"] * 3)
    assert len(live["device"]) == expected_devices
    assert any(r[0] == "ops.mallory" for r in live["role"])
    assert dict((r[0], r[1]) for r in live["setting"])["auth.mfa_required"] == "false"
    assert sum(1 for r in live["identity"] if r[4] == "suspended") >= incident["identities_altered"]


def test_drill_command_refuses_a_foreign_folder_and_replaces_its_own(tmp_path: Path, cli) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("important")
    code, _, err = cli("drill", "--no-tui", tmp_path / "mine", "--identities", "20")
    assert code == 3 and "holds no drill" in err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "important"
    args = ("drill", "--no-tui", tmp_path / "d", "--identities", "20", "--at", "2026-11-27T12:00:00Z")
    assert cli(*args)[0] == 0
    code, _, err = cli(*args)
    assert code == 3 and "--replace" in err
    code, out, err = cli(*args, "--replace", "--json")
    assert code == 0, err
    assert json.loads(out)["drill"]["identities"] == 20


def test_drill_rejects_silly_sizes(tmp_path: Path, cli) -> None:
    code, _, err = cli("drill", "--no-tui", tmp_path / "d", "--identities", "3")
    assert code == 2 and "at least 10 identities" in err
    code, _, err = cli("drill", "--no-tui", tmp_path / "d", "--at", "yesterday")
    assert code == 2 and "--at" in err


@pytest.mark.parametrize("seed", [1, 2])
def test_every_drill_snapshot_verifies(tmp_path: Path, cli, seed: int) -> None:
    doc = make_drill(tmp_path / "d", DrillSpec(identities=15, devices_per_identity=1, seed=seed, snapshots=2,
                                                at=DRILL_AT))
    for snapshot_id in doc["snapshots"]["ids"]:
        code, _, err = cli("verify", doc["paths"]["snapshots"], snapshot_id, "--allowed-signers",
                           doc["paths"]["allowed_signers"])
        assert code == 0, err


def test_drill_exercises_the_real_ssh_path(tmp_path: Path, cli) -> None:
    code, out, err = cli("--cache-dir", tmp_path / "cache", "drill", tmp_path / "d", "--identities", "15",
                         "--devices-per-identity", "1", "--snapshots", "2", "--at", "2026-11-27T12:00:00Z")
    assert code == 0, err
    assert "Over SSH (sftp://enigm-drill/" in out
    assert "  SSH key exchange mlkem768x25519-sha256 (post-quantum)" in out  # the drill's server offers ML-KEM
    assert "ok    payload sha256" in out
    doc = tomllib.loads((tmp_path / "d" / "drill.toml").read_text())
    assert doc["ssh"]["source"] == "sftp://enigm-drill/"
    assert doc["ssh"]["host_key"].startswith(f"[127.0.0.1]:{doc['ssh']['port']} ssh-ed25519 ")
    assert (tmp_path / "d" / "ssh" / "known_hosts").read_text().strip() == doc["ssh"]["host_key"]


def test_drill_serve_until_interrupted(tmp_path: Path, cli) -> None:
    import signal
    import subprocess
    import sys

    assert cli("drill", "--no-tui", tmp_path / "d", "--identities", "12", "--devices-per-identity", "1",
               "--snapshots", "1")[0] == 0
    script = Path(sys.executable).parent / "enigm-recover"
    server = subprocess.Popen([script, "drill", "--serve", str(tmp_path / "d")], stdout=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in server.stdout:  # wait for the server to say it is ready
            lines.append(line)
            if "press Ctrl-C" in line:
                break
        assert any(line.startswith("serving ") for line in lines), lines
        doc = tomllib.loads((tmp_path / "d" / "drill.toml").read_text())
        code, out, err = cli("--cache-dir", tmp_path / "cache", "verify", doc["ssh"]["source"], "latest",
                             "--ssh-config", doc["ssh"]["config"], "--allowed-signers",
                             doc["paths"]["allowed_signers"], "--json")
        assert code == 0, err
        assert json.loads(out)["ok"]
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=20) == 0
        assert "stopped" in server.stdout.read()
    finally:
        if server.poll() is None:
            server.kill()
