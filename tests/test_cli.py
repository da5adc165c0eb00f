"""The command line as a user meets it: help, usage errors, configuration."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_help_teaches_every_command(cli) -> None:
    import pytest

    with pytest.raises(SystemExit) as exc:
        cli("--help")
    assert exc.value.code == 0
    for command in ("keys init", "seal", "snapshots list", "verify", "unseal", "drill"):
        with pytest.raises(SystemExit):
            cli(*command.split(), "--help")


def test_usage_errors_are_one_line_with_exit_code_2(cli) -> None:
    code, out, err = cli("verify")
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err and "--help" in err
    code, _, err = cli("frobnicate")
    assert code == 2 and "invalid choice" in err


def test_module_entry_point_and_console_script() -> None:
    result = subprocess.run([sys.executable, "-m", "enigm_recover", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("enigm-recover ")
    script = Path(sys.executable).parent / "enigm-recover"
    result = subprocess.run([script, "verify", "/nonexistent", "latest", "--allowed-signers", "/nonexistent"],
                            capture_output=True, text=True)
    assert result.returncode == 3 and "allowed_signers file /nonexistent does not exist" in result.stderr


def test_settings_come_from_flag_then_environment_then_config(drill, cli, tmp_path: Path, monkeypatch) -> None:
    config = tmp_path / "config.toml"
    monkeypatch.setenv("ENIGM_RECOVER_CONFIG", str(config))
    monkeypatch.delenv("ENIGM_RECOVER_ALLOWED_SIGNERS", raising=False)
    code, _, err = cli("verify", drill.snapshots, "latest")
    assert code == 2 and "ENIGM_RECOVER_ALLOWED_SIGNERS" in err
    assert cli("config", "set", "allowed_signers", drill.allowed_signers)[0] == 0
    assert cli("verify", drill.snapshots, "latest")[0] == 0
    monkeypatch.setenv("ENIGM_RECOVER_ALLOWED_SIGNERS", str(tmp_path / "missing"))
    assert cli("verify", drill.snapshots, "latest")[0] == 3  # environment beats the config file
    assert cli("verify", drill.snapshots, "latest", "--allowed-signers", drill.allowed_signers)[0] == 0
    code, out, _ = cli("config", "show", "--json")
    shown = json.loads(out)
    assert shown["config_file"] == str(config) and shown["settings"]["allowed_signers"] == str(tmp_path / "missing")


def test_bad_config_file_is_named(cli, tmp_path: Path, monkeypatch) -> None:
    config = tmp_path / "config.toml"
    config.write_text("allowed_signer = 'typo'\n")
    monkeypatch.setenv("ENIGM_RECOVER_CONFIG", str(config))
    code, _, err = cli("config", "show")
    assert code == 4 and "unknown setting 'allowed_signer'" in err
    assert cli("config", "set", "colour", "blue")[0] == 4


def test_state_and_cache_dirs_follow_flags_and_environment(cli, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ENIGM_RECOVER_CACHE_DIR", str(tmp_path / "cache-env"))
    code, out, _ = cli("--state-dir", tmp_path / "state", "config", "show", "--json")
    shown = json.loads(out)
    assert shown["state_dir"] == str(tmp_path / "state") and shown["cache_dir"] == str(tmp_path / "cache-env")


def test_default_drill_goes_to_the_state_dir(cli, tmp_path: Path) -> None:
    args = ("--state-dir", tmp_path / "state", "drill", "--no-tui", "--identities", "12",
            "--devices-per-identity", "1", "--snapshots", "1")
    code, out, err = cli(*args)
    assert code == 0, err
    assert (tmp_path / "state" / "drill" / "drill.toml").exists()
    assert " restore " in out and "--share-file" in out  # named so it runs when pasted: see test_drill_brief
    assert cli(*args)[0] == 0  # the default drill is replaced on each run
