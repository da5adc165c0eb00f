"""Commands import only what they use: on local files, unseal, diff and restore load neither the SSH client
(asyncssh, the SFTP source) nor the app (Textual), nor pyrage (only sealing to an X25519 key encrypts with it);
a fresh interpreter per command, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

THREE = ("amara", "chen", "emeka")
HEAVY = ("asyncssh", "textual", "rich", "psycopg", "pyrage", "enigm_recover.sources.sftp", "enigm_recover.sources.ssh",
         "enigm_recover.app")
RUNNER = ("import json, sys\n"
          "from enigm_recover.cli import main\n"
          "code = main(sys.argv[1:])\n"
          f"print(json.dumps([code, [m for m in {HEAVY!r} if m in sys.modules]]), file=sys.__stderr__)\n")


def loaded(args: list, cwd: Path) -> tuple[int, list[str]]:
    """The exit code of ``enigm-recover ARGS`` in a fresh interpreter, and which heavy modules it loaded."""
    done = subprocess.run([sys.executable, "-c", RUNNER, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          stdin=subprocess.DEVNULL)
    code, modules = json.loads(done.stderr.strip().splitlines()[-1])
    return code, modules


@pytest.mark.parametrize("command", ["unseal", "diff", "restore"])
def test_commands_on_local_files_load_no_ssh_client_and_no_app(drill, tmp_path: Path, command: str) -> None:
    shares = [a for name in THREE for a in ("--share-file", drill.card(name))]
    where = {"unseal": ["--out", tmp_path / "records.jsonl"], "diff": ["--target", drill.target],
             "restore": ["--target", drill.target, "--yes"]}[command]
    code, modules = loaded([command, drill.snapshots, "latest", "--allowed-signers", drill.allowed_signers,
                            *where, *shares], tmp_path)
    assert code == 0
    assert modules == []


def test_an_sftp_source_still_loads_the_ssh_client(tmp_path: Path) -> None:
    """The SSH client is loaded where it is used: an sftp:// source (here one that cannot be reached)."""
    config = tmp_path / "ssh_config"
    config.write_text("Host nowhere\n  HostName 127.0.0.1\n  Port 9\n  ConnectTimeout 1\n")
    code, modules = loaded(["snapshots", "list", "sftp://nowhere/snapshots", "--ssh-config", config], tmp_path)
    assert code != 0 and "asyncssh" in modules and "enigm_recover.sources.sftp" in modules
