"""Paths as the operating system gives them: names that are not UTF-8 work, and output stays text."""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

from enigm_recover.errors import ConfigError, InputFileError, SourceError, UsageError
from enigm_recover.paths import display_path
from tests.conftest import DRILL_AT, Drill

THREE = ("amara", "chen", "emeka")


def cards(drill: Drill) -> list:
    return sum((["--share-file", drill.card(name)] for name in THREE), [])


def generous() -> str:
    return f"{(datetime.now(timezone.utc) - DRILL_AT).days + 3}d"


def raw(path: Path, name: bytes) -> Path:
    """``path / name`` where ``name`` is bytes that are not UTF-8, as Python gives such a name (PEP 383)."""
    return Path(os.fsdecode(os.fsencode(path) + b"/" + name))


def strict_json(text: str) -> object:
    """Parse JSON and insist that every string is Unicode text (no lone surrogates, which strict parsers refuse)."""
    doc = json.loads(text)

    def walk(value: object) -> None:
        if isinstance(value, str):
            value.encode("utf-8")  # raises on a lone surrogate
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(k)
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(doc)
    return doc


def label(path: Path) -> str:
    """The source label of a Prometheus sample: the displayed path, its backslashes escaped."""
    return display_path(path).replace("\\", "\\\\")


def parse_textfile(text: str) -> dict[str, float]:
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line and not line.startswith("#")}


# -- paths that are not UTF-8 -------------------------------------------------------------------------


def test_display_path_shows_undecodable_bytes_as_escapes() -> None:
    assert display_path(Path(os.fsdecode(b"/tmp/snap\xff"))) == "/tmp/snap\\xff"
    assert display_path(b"/tmp/caf\xc3\xa9") == "/tmp/café"
    assert display_path("/tmp/plain") == "/tmp/plain"


def test_a_source_folder_not_in_utf8_lists_in_text_and_in_strict_json(drill: Drill, cli, tmp_path: Path) -> None:
    folder = raw(tmp_path, b"snap\xff")
    shutil.copytree(drill.snapshots, folder)
    code, out, err = cli("snapshots", "list", folder)
    assert code == 0, err
    code, out, err = cli("snapshots", "list", folder, "--json")
    assert code == 0, err
    doc = strict_json(out)
    assert doc["source"] == display_path(folder) == str(tmp_path) + "/snap\\xff"
    code, out, err = cli("verify", folder, "latest", "--allowed-signers", drill.allowed_signers, "--json")
    assert code == 0, err
    strict_json(out)


def test_a_file_url_with_percent_encoded_bytes_names_the_folder(drill: Drill, cli, tmp_path: Path) -> None:
    folder = raw(tmp_path, b"snap\xff")
    shutil.copytree(drill.snapshots, folder)
    code, out, err = cli("snapshots", "list", f"file://{tmp_path}/snap%FF", "--json")
    assert code == 0, err
    assert len(strict_json(out)["snapshots"]) == len(drill.doc["snapshots"]["ids"])


def test_unseal_writes_to_an_output_path_not_in_utf8(drill: Drill, cli, tmp_path: Path) -> None:
    out_path = raw(tmp_path, b"records\xff.jsonl")
    code, out, err = cli("unseal", drill.snapshots, "latest", "--allowed-signers", drill.allowed_signers,
                         "--out", out_path, *cards(drill))
    assert code == 0, err
    assert "records\\xff.jsonl" in out + err
    assert out_path.stat().st_size > 0
    other = raw(tmp_path, b"again\xfe.jsonl")
    code, out, err = cli("unseal", drill.snapshots, "latest", "--allowed-signers", drill.allowed_signers,
                         "--out", other, *cards(drill), "--json")
    assert code == 0, err
    strict_json(out)
    assert other.exists()


def test_a_sqlite_target_not_in_utf8_is_created_and_compared(drill: Drill, cli, tmp_path: Path) -> None:
    target = "sqlite:///" + str(raw(tmp_path, b"live\xff.db"))
    code, out, err = cli("target", "init", target)
    assert code == 0, err
    assert "live\\xff.db" in out
    code, out, err = cli("diff", drill.snapshots, "latest", "--allowed-signers", drill.allowed_signers,
                         "--target", target, *cards(drill))
    assert code == 0, err
    code, out, err = cli("diff", drill.snapshots, "latest", "--allowed-signers", drill.allowed_signers,
                         "--target", target, *cards(drill), "--json")
    assert code == 0, err
    strict_json(out)


def readiness_args(drill: Drill, source: Path | str) -> list:
    return ["readiness", source, "--allowed-signers", drill.allowed_signers, "--recipient", drill.recipient,
            "--max-age", generous()]


def test_readiness_with_every_path_not_in_utf8_reports_and_writes_the_textfile(drill: Drill, cli,
                                                                              tmp_path: Path) -> None:
    folder = raw(tmp_path, b"snap\xff")
    shutil.copytree(drill.snapshots, folder)
    state, cache, prom = raw(tmp_path, b"state\xfe"), raw(tmp_path, b"cache\xfd"), raw(tmp_path, b"r\xfc.prom")
    code, out, err = cli("--state-dir", state, "--cache-dir", cache, *readiness_args(drill, folder),
                         "--prometheus", prom)
    assert code == 0, err
    assert "snap\\xff" in out and "r\\xfc.prom" in out
    samples = parse_textfile(prom.read_text())
    assert samples[f'enigm_recover_readiness_ok{{source="{label(folder)}"}}'] == 1
    code, out, err = cli("--state-dir", state, *readiness_args(drill, folder), "--prometheus", prom, "--json")
    assert code == 0, err
    doc = strict_json(out)
    assert doc["source"] == display_path(folder) and doc["ready"] is True
    assert Path(os.fsdecode(os.fsencode(doc["report"]["toml"]).replace(b"\\xfe", b"\xfe"))).exists()


@pytest.mark.parametrize("name", [b"gone\xff", b"gone", b"n" * 300])
def test_readiness_of_an_unusable_source_still_tells_monitoring(drill: Drill, cli, tmp_path: Path,
                                                                name: bytes) -> None:
    prom = tmp_path / "r.prom"
    missing = raw(tmp_path, name)
    code, out, err = cli(*readiness_args(drill, missing), "--prometheus", prom, "--json")
    assert code == SourceError.exit_code, err
    doc = strict_json(out)
    assert doc["ready"] is False and doc["failing"] == ["source"]
    samples = parse_textfile(prom.read_text())
    assert samples[f'enigm_recover_readiness_ok{{source="{label(missing)}"}}'] == 0
    code, out, err = cli(*readiness_args(drill, missing), "--prometheus", prom)
    assert code == SourceError.exit_code, err
    assert "Traceback" not in err and "internal error" not in err


def test_restore_into_a_target_not_in_utf8_with_a_state_folder_not_in_utf8(drill: Drill, cli, tmp_path: Path) -> None:
    live = raw(tmp_path, b"live\xff.db")
    shutil.copy(drill.target.removeprefix("sqlite:///"), live)
    code, out, err = cli("--state-dir", raw(tmp_path, b"state\xfe"), "restore", drill.snapshots, "latest",
                         "--target", f"sqlite:///{live}", "--allowed-signers", drill.allowed_signers,
                         *cards(drill), "--yes", "--operator", "dana", "--json")
    assert code == 0, err
    strict_json(out)


def test_a_runbook_run_refuses_a_path_it_could_not_record_for_resuming(drill: Drill, cli, tmp_path: Path) -> None:
    folder = raw(tmp_path, b"snap\xff")
    shutil.copytree(drill.snapshots, folder)
    code, out, err = cli("run", "tabletop-drill", "--source", folder, "--target", drill.target,
                         "--allowed-signers", drill.allowed_signers, *cards(drill), "--yes", "--operator", "dana",
                         "--second-operator", "lee")
    assert code == UsageError.exit_code, err
    assert "snap\\xff is not UTF-8" in err and "internal error" not in err


def test_settings_and_drills_that_would_record_a_path_as_text_refuse_one_not_in_utf8(cli, tmp_path: Path) -> None:
    config = raw(tmp_path, b"config\xff.toml")
    code, out, err = cli("--config", config, "config", "set", "source", raw(tmp_path, b"snap\xff"))
    assert code == ConfigError.exit_code, err
    assert "snap\\xff" in err and "not UTF-8" in err
    code, out, err = cli("--config", config, "config", "set", "source", tmp_path / "snap")
    assert code == 0, err
    assert "config\\xff.toml" in out
    code, out, err = cli("--config", config, "config", "show", "--json")
    assert code == 0, err
    assert strict_json(out)["config_file"].endswith("config\\xff.toml")
    code, out, err = cli("drill", raw(tmp_path, b"drill\xff"), "--identities", "10", "--snapshots", "1", "--no-tui")
    assert code == UsageError.exit_code, err
    assert "drill\\xff is not UTF-8" in err


class _NoPrompts:
    def ask_secret(self, prompt: str) -> str:
        raise AssertionError(f"unexpected prompt {prompt!r}")

    def notice(self, message: str) -> None:
        pass


def test_an_sftp_folder_not_in_utf8_is_named_by_percent_encoding(drill: Drill, cli, tmp_path: Path) -> None:
    from enigm_recover.drill.sftp_server import ServerKeys, SnapshotServer
    from enigm_recover.sources.sftp import SftpSource, SftpURL
    from enigm_recover.sources.ssh import SSHSettings

    served = tmp_path / "served"
    served.mkdir()
    shutil.copytree(drill.snapshots, raw(served, b"snap\xff"))
    keys = ServerKeys.generate()
    with SnapshotServer(served, keys) as server:
        key_path, known = tmp_path / "client", tmp_path / "known_hosts"
        keys.client_key.write_private_key(str(key_path))
        known.write_text(keys.known_hosts_line(server.port) + "\n")
        config = tmp_path / "ssh_config"
        config.write_text(f"Host drill\n  HostName 127.0.0.1\n  Port {server.port}\n  User drill\n"
                          f"  IdentityFile {key_path}\n  UserKnownHostsFile {known}\n")
        source = SftpSource(SftpURL.parse("sftp://drill/snap%FF"),
                            SSHSettings(config_files=[config], prompter=_NoPrompts()), tmp_path / "cache")
        with source:
            listing = source.list()
            assert sorted(e.id for e in listing.entries) == sorted(drill.doc["snapshots"]["ids"])
            assert source.description == "sftp://drill/snap\\xff"
        code, out, err = cli("--cache-dir", tmp_path / "c", "snapshots", "list", "sftp://drill/snap%FF",
                             "--ssh-config", config, "--json")
        assert code == 0, err
        assert strict_json(out)["source"] == "sftp://drill/snap\\xff"


def test_readiness_stopped_before_its_checks_still_tells_monitoring(drill: Drill, cli, tmp_path: Path) -> None:
    prom = tmp_path / "r.prom"
    code, out, err = cli("readiness", drill.snapshots, "--allowed-signers", raw(tmp_path, b"gone\xff"),
                         "--recipient", drill.recipient, "--max-age", generous(), "--prometheus", prom)
    assert code == InputFileError.exit_code, err
    assert "gone\\xff" in err
    samples = parse_textfile(prom.read_text())
    assert samples[f'enigm_recover_readiness_ok{{source="{label(drill.snapshots)}"}}'] == 0
