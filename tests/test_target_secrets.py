"""A password in a PostgreSQL target URL is used to connect and never shown, logged or stored."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from tests.postgres import PASSWORD_ROLE, copy_store
from tests.test_restore import restore, shares

SECRET = "right-password"  # the test cluster's password for PASSWORD_ROLE


def _files_holding(root: Path, secret: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


@pytest.fixture
def no_ambient_password(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("PGPASSWORD", "PGSERVICE", "PGUSER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))


@pytest.fixture
def password_target(postgres_cluster, drill, no_ambient_password) -> str:
    """The drill's live data in a database owned by a role that must give its password."""
    name = postgres_cluster.create_database()
    postgres_cluster.admin(f'ALTER DATABASE "{name}" OWNER TO {PASSWORD_ROLE}')
    with psycopg.connect(host="127.0.0.1", port=postgres_cluster.port, user=postgres_cluster.superuser,
                         dbname=name, autocommit=True) as conn:
        conn.execute(f"ALTER SCHEMA public OWNER TO {PASSWORD_ROLE}")  # type: ignore[arg-type]
    url = postgres_cluster.url_for(name, PASSWORD_ROLE, SECRET)
    copy_store(drill.target, url)
    yield url
    postgres_cluster.drop_database(name)


def _state_root() -> Path:
    import os

    return Path(os.environ["ENIGM_RECOVER_STATE_DIR"]).parent


def test_diff_and_restore_never_show_or_store_the_password(drill, cli, password_target: str) -> None:
    outputs = []
    code, out, err = cli("diff", drill.snapshots, "latest", "--target", password_target, "--allowed-signers",
                         drill.allowed_signers, *shares(drill))
    assert code == 0, err
    outputs.append(out + err)
    code, out, err = cli("diff", drill.snapshots, "latest", "--target", password_target, "--allowed-signers",
                         drill.allowed_signers, *shares(drill), "--json")
    assert code == 0, err
    outputs.append(out + err)
    for extra in (("--dry-run",), ("--yes",), ("--yes", "--json")):
        code, out, err = restore(cli, drill, password_target, *extra)
        assert code == 0, err
        outputs.append(out + err)
    assert all(SECRET not in text for text in outputs)
    assert any("***" in text for text in outputs)
    assert _files_holding(_state_root(), SECRET) == []


def test_a_wrong_password_is_named_without_showing_it(drill, cli, password_target: str) -> None:
    wrong = password_target.replace(SECRET, "hunter2-wrong")
    for command in (["diff", drill.snapshots, "latest", "--target", wrong, "--allowed-signers", drill.allowed_signers,
                     *shares(drill)],
                    ["restore", drill.snapshots, "latest", "--target", wrong, "--allowed-signers",
                     drill.allowed_signers, *shares(drill), "--yes"],
                    ["target", "init", wrong]):
        code, out, err = cli(*command)
        assert code == 5 and "password authentication failed" in err, err
        assert "hunter2-wrong" not in out + err and SECRET not in out + err
    assert _files_holding(_state_root(), "hunter2-wrong") == []


def test_a_runbook_run_keeps_the_password_in_memory_only_and_resume_asks_libpq_for_it(
        drill, cli, password_target: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    state = tmp_path / "state"
    base = ["--state-dir", state, "run", "tabletop-drill"]
    code, out, err = cli(*base, "--source", drill.snapshots, "--target", password_target, "--allowed-signers",
                         drill.allowed_signers, *shares(drill), "--operator", "dana", "--yes")
    assert code == 27, err  # paused at the two-person restore step, after a dry run through the password
    assert SECRET not in out + err and "***" in out
    assert _files_holding(state, SECRET) == []
    run_toml = next(state.rglob("run.toml")).read_text()
    assert f"{PASSWORD_ROLE}@127.0.0.1" in run_toml  # the target, less its password
    resume = [*base, "--resume", *shares(drill), "--yes", "--operator", "dana", "--second-operator", "lee"]
    code, out, err = cli(*resume)
    assert code == 5 and "no password supplied" in err and "PGPASSWORD" in err, err
    assert SECRET not in out + err
    monkeypatch.setenv("PGPASSWORD", SECRET)
    code, out, err = cli(*resume, "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "completed"
    assert SECRET not in out + err
    assert _files_holding(state, SECRET) == []


def test_a_resume_may_give_the_target_again_with_its_password(drill, cli, password_target: str,
                                                               tmp_path: Path) -> None:
    state = tmp_path / "state"
    base = ["--state-dir", state, "run", "tabletop-drill"]
    assert cli(*base, "--source", drill.snapshots, "--target", password_target, "--allowed-signers",
               drill.allowed_signers, *shares(drill), "--operator", "dana", "--yes")[0] == 27
    resume = [*base, "--resume", *shares(drill), "--yes", "--operator", "dana", "--second-operator", "lee"]
    code, out, err = cli(*resume, "--target", drill.target)  # another target: refused
    assert code == 9 and "another target" in err
    code, out, err = cli(*resume, "--target", password_target, "--json")
    assert code == 0, err
    assert SECRET not in out + err and _files_holding(state, SECRET) == []


@pytest.mark.parametrize("command", ["restore", "diff", "run"])
def test_the_target_option_says_where_a_password_belongs(capsys, command: str) -> None:
    from enigm_recover.cli import main

    with pytest.raises(SystemExit):
        main([command, "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "PGPASSWORD" in shown and "pgpass" in shown and "service" in shown and "never shown" in shown
