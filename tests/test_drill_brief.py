"""The drill's brief tells what its data holds, and the commands it prints work when pasted."""

from __future__ import annotations

import shlex
import sqlite3
import subprocess
import tomllib
from contextlib import closing
from pathlib import Path


def test_the_brief_matches_the_data_and_its_commands_run_as_printed(cli, tmp_path: Path) -> None:
    folder = tmp_path / "drill"
    code, out, err = cli("--state-dir", tmp_path / "state", "drill", "--no-tui", folder, "--identities", "40",
                         "--devices-per-identity", "2", "--snapshots", "2")
    assert code == 0, err
    doc = tomllib.loads((folder / "drill.toml").read_text())
    inc = doc["incident"]
    with closing(sqlite3.connect(folder / "live.db")) as db:
        rogue = db.execute("SELECT count(*) FROM roles WHERE operator='ops.mallory'").fetchone()[0]
        revoked = db.execute("SELECT count(*) FROM devices WHERE state='revoked'").fetchone()[0]
    assert rogue == inc["roles_added"] and revoked >= inc["devices_revoked_after_snapshot"]
    for phrase in (f"{inc['devices_deleted']} devices deleted", f"{inc['identities_altered']} identit",
                   f"{inc['roles_removed']} auditor role", f"{inc['keys_rotated_after_snapshot']} identity key",
                   f"{inc['accounts_created_after_snapshot']} account"):
        assert phrase in out, phrase
    assert "Legitimately after the last snapshot" in out

    listed = next(line.strip() for line in out.splitlines() if " snapshots list " in line)
    done = subprocess.run(listed, shell=True, capture_output=True, text=True, cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert done.returncode == 0, (listed, done.stderr)
    assert doc["snapshots"]["latest"] in done.stdout
    assert shlex.split(listed)[0] != "enigm-recover" or "enigm-recover" in done.stdout
