"""`snapshots prune` over SFTP, against a real OpenSSH sshd."""

from __future__ import annotations

import getpass
import json
import os
import shutil
from pathlib import Path

import pytest

from enigm_recover.errors import PruneRefused
from enigm_recover.snapshot.manifest import manifest_name, payload_name, signature_name
from enigm_recover.sources.removal import tombstone_name
from tests.sshd import Sshd
from tests.test_prune import daily, listed

pytestmark = pytest.mark.skipif(not shutil.which("ssh-keygen"), reason="needs ssh-keygen")


@pytest.fixture
def ssh_config(sshd: Sshd, ssh_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    known = tmp_path / "known_hosts"
    known.write_text(sshd.known_hosts_line + "\n")
    config = tmp_path / "ssh_config"
    config.write_text(f"Host backup\n  HostName 127.0.0.1\n  Port {sshd.port}\n  User {getpass.getuser()}\n"
                      f"  IdentityFile {ssh_home / 'client'}\n  IdentitiesOnly yes\n  UserKnownHostsFile {known}\n")
    return config


def test_prune_over_sftp_removes_whole_snapshots_on_the_host(drill, cli, tmp_path: Path, ssh_config: Path) -> None:
    folder = tmp_path / "host"
    ids = daily(folder, drill, 5)
    source = f"sftp://backup{folder}"
    base = ["snapshots", "prune", source, "--ssh-config", ssh_config, "--allowed-signers", drill.allowed_signers,
            "--keep-last", "2", "--json"]
    code, out, err = cli(*base)
    assert code == 0, err
    assert set(json.loads(out)["remove"]) == set(ids[:3]) and listed(folder) == ids
    # an earlier prune was killed just after its first step on one snapshot: the host holds its tombstone
    os.rename(folder / manifest_name(ids[0]), folder / tombstone_name(ids[0]))
    code, out, err = cli(*base, "--apply")
    assert code == 0, err
    result = json.loads(out)
    assert result["unfinished_removals"] == [ids[0]]
    assert sorted(result["removed"]) == ids[:3]
    assert listed(folder) == ids[3:]
    assert sorted(os.listdir(folder)) == sorted(n for i in ids[3:] for n in (
        manifest_name(i), signature_name(i), payload_name(i)))


def test_prune_over_sftp_refuses_a_broken_newest(drill, cli, tmp_path: Path, ssh_config: Path) -> None:
    folder = tmp_path / "host"
    ids = daily(folder, drill, 3)
    (folder / payload_name(ids[-1])).write_bytes(b"short")
    code, _, err = cli("snapshots", "prune", f"sftp://backup{folder}", "--ssh-config", ssh_config,
                       "--allowed-signers", drill.allowed_signers, "--keep-last", "1", "--apply")
    assert code == PruneRefused.exit_code, err
    assert ids[-1] in err and listed(folder) == ids
