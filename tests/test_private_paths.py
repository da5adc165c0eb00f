"""What the tool creates is private whatever the umask, and a folder or config file of its own that other
users can write is refused with the fix, as OpenSSH refuses such a ~/.ssh.

The umask cases run the CLI in a process of its own with umask 000 (tests/hostile_files.run_cli).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from enigm_recover.private import make_private_dir
from tests.hostile_files import run_cli

SECRET_NAMES = ("audit.jsonl", "audit.jsonl.head", "report.toml", "report.md", "run.toml", "producer",
                "client_key", "config.toml")


def _modes(root: Path) -> dict[Path, int]:
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(folder) / name
            found[path] = stat.S_IMODE(path.lstat().st_mode)
    return found


def _assert_private(root: Path) -> None:
    """Every folder under ``root`` is 0700, every secret file 0600, and nothing is writable by others."""
    modes = _modes(root)
    assert modes
    for path, mode in modes.items():
        if path.is_symlink():
            continue
        if path.is_dir():
            assert mode == 0o700, f"{path}: {mode:04o}"
        elif path.name.endswith(".share.txt") or path.name in SECRET_NAMES:
            assert mode == 0o600, f"{path}: {mode:04o}"
        else:
            assert not mode & 0o022, f"{path}: {mode:04o}"


def _home() -> tuple[Path, Path, Path]:
    return (Path(os.environ["ENIGM_RECOVER_STATE_DIR"]), Path(os.environ["ENIGM_RECOVER_CACHE_DIR"]),
            Path(os.environ["ENIGM_RECOVER_CONFIG"]))


def test_everything_created_under_umask_000_is_private(tmp_path: Path) -> None:
    state, cache, config = _home()
    work = tmp_path / "work"
    work.mkdir(mode=0o700)
    custodians = [arg for name in ("ana", "ben", "cy") for arg in ("--custodian", name)]
    made = run_cli("keys", "init", "--threshold", "2", "--shares", "3", *custodians,
                   "--out", work / "ceremonies" / "2026", umask=0)
    assert made.code == 0, made.stderr
    # A drill without a terminal also serves itself over SSH (a client key of its own) and fetches its
    # newest payload through it into the cache folder.
    drill = work / "drills" / "tabletop"
    made = run_cli("drill", drill, "--identities", "10", "--snapshots", "2", umask=0)
    assert made.code == 0, made.stderr
    assert (drill / "ssh" / "client_key").exists() and cache.exists()
    shares = [arg for name in ("amara", "chen", "emeka")
              for arg in ("--share-file", drill / "custodians" / f"{name}.share.txt")]
    common = [drill / "snapshots", "latest", "--target", f"sqlite:///{drill / 'live.db'}",
              "--allowed-signers", drill / "keys" / "allowed_signers", *shares]
    assert run_cli("diff", *common, umask=0).code == 0
    restored = run_cli("restore", *common, "--yes", umask=0)
    assert restored.code == 0, restored.stderr
    assert run_cli("config", "set", "recipient", drill / "custodians" / "recovery.pub", umask=0).code == 0
    assert len(list((state / "recoveries").iterdir())) == 2
    for root in (work, state, cache):
        _assert_private(root)
    assert stat.S_IMODE(config.stat().st_mode) == 0o600


def test_missing_parents_are_made_private_too(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        make_private_dir(tmp_path / "a" / "b" / "c", "state folder")
    finally:
        os.umask(old)
    for path in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path


# -- refused: the tool's own folders and config file when others can write them --------------------------


def _one_line(err: str, path: Path) -> None:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert str(path) in err and f"chmod go-w {path}" in err, err


def test_a_state_folder_others_can_write_is_refused(drill, cli) -> None:
    state, _, _ = _home()
    state.mkdir(mode=0o700)
    state.chmod(0o770)
    shares = [arg for name in ("amara", "chen", "emeka") for arg in ("--share-file", drill.card(name))]
    code, _, err = cli("diff", drill.snapshots, "latest", "--target", drill.target,
                       "--allowed-signers", drill.allowed_signers, *shares)
    assert code == 47
    _one_line(err, state)
    assert not (state / "recoveries").exists()  # refused before anything was written into it
    state.chmod(0o700)
    (state / "recoveries").mkdir(mode=0o777)
    (state / "recoveries").chmod(0o777)
    code, _, err = cli("diff", drill.snapshots, "latest", "--target", drill.target,
                       "--allowed-signers", drill.allowed_signers, *shares)
    assert code == 47
    _one_line(err, state / "recoveries")


def test_a_config_file_others_can_write_is_refused(drill, cli) -> None:
    _, _, config = _home()
    config.write_text(f"allowed_signers = '{drill.allowed_signers}'\n")
    config.chmod(0o666)
    code, _, err = cli("verify", drill.snapshots, "latest")
    assert code == 47
    _one_line(err, config)
    config.chmod(0o644)
    assert cli("verify", drill.snapshots, "latest")[0] == 0


def test_a_ceremony_folder_others_can_write_is_refused(cli, tmp_path: Path) -> None:
    out = tmp_path / "ceremony"
    out.mkdir()
    out.chmod(0o777)
    custodians = [arg for name in ("ana", "ben", "cy") for arg in ("--custodian", name)]
    code, _, err = cli("keys", "init", "--threshold", "2", "--shares", "3", *custodians, "--out", out)
    assert code == 47
    _one_line(err, out)
    assert not list(out.iterdir())  # no card was written


def test_a_cache_folder_others_can_write_is_refused(tmp_path: Path) -> None:
    _, cache, _ = _home()
    cache.mkdir(mode=0o777)
    cache.chmod(0o777)
    outcome = run_cli("drill", tmp_path / "drill", "--identities", "10", "--snapshots", "1")
    assert outcome.code == 47, outcome.stderr
    assert f"chmod go-w {cache}" in outcome.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_a_state_folder_of_another_user_is_refused(drill, cli) -> None:
    state, _, _ = _home()
    state.mkdir(mode=0o700)
    os.chown(state, 65534, 65534)
    shares = [arg for name in ("amara", "chen", "emeka") for arg in ("--share-file", drill.card(name))]
    code, _, err = cli("diff", drill.snapshots, "latest", "--target", drill.target,
                       "--allowed-signers", drill.allowed_signers, *shares)
    assert code == 47 and str(state) in err and "another user" in err


def test_an_input_folder_others_can_write_is_not_the_tools_own(drill, cli) -> None:
    """A snapshot folder on removable media is input: checked by signatures and hashes, not by mode."""
    drill.snapshots.chmod(0o777)
    code, _, err = cli("verify", drill.snapshots, "latest", "--allowed-signers", drill.allowed_signers)
    assert code == 0, err


def test_a_runbooks_folder_of_the_config_others_can_write_is_refused(cli) -> None:
    """A runbook planted in <config dir>/runbooks would shadow a built-in one of the same name."""
    _, _, config = _home()
    own = config.parent / "runbooks"
    own.mkdir(mode=0o777)
    own.chmod(0o777)
    code, _, err = cli("runbooks", "list")
    assert code == 47
    _one_line(err, own)
    own.chmod(0o755)
    assert cli("runbooks", "list")[0] == 0
