"""Shared fixtures: a small drill made once per session, and a CLI runner."""

from __future__ import annotations

import shutil
import tomllib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest

from enigm_recover.cli import main
from enigm_recover.drill.scenario import DrillSpec, make_drill

DRILL_AT = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)


@dataclass
class Drill:
    root: Path
    doc: dict

    @property
    def snapshots(self) -> Path:
        return Path(self.doc["paths"]["snapshots"])

    @property
    def allowed_signers(self) -> Path:
        return Path(self.doc["paths"]["allowed_signers"])

    @property
    def recipient(self) -> Path:
        return Path(self.doc["paths"]["recipient"])

    @property
    def target(self) -> str:
        return self.doc["paths"]["target"]

    @property
    def signing_key(self) -> Path:
        return Path(self.doc["paths"]["signing_key"])

    def card(self, name: str) -> Path:
        return Path(self.doc["custodians"][name])

    @property
    def latest(self) -> str:
        return self.doc["snapshots"]["latest"]


@pytest.fixture(autouse=True)
def private_folders(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Recoveries leave audit logs and reports in the state folder: never the real one in tests."""
    root = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("ENIGM_RECOVER_STATE_DIR", str(root / "state"))
    monkeypatch.setenv("ENIGM_RECOVER_CACHE_DIR", str(root / "cache"))
    monkeypatch.setenv("ENIGM_RECOVER_CONFIG", str(root / "config.toml"))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)  # no developer's agent signs a test's audit log


@pytest.fixture(scope="session")
def pristine_drill(tmp_path_factory: pytest.TempPathFactory) -> Drill:
    root = tmp_path_factory.mktemp("drill-pristine") / "drill"
    doc = make_drill(root, DrillSpec(identities=60, devices_per_identity=3, seed=7, snapshots=3, at=DRILL_AT))
    return Drill(root, doc)


@pytest.fixture
def drill(pristine_drill: Drill, tmp_path: Path) -> Drill:
    """A private copy of the session's drill, free to damage."""
    root = tmp_path / "drill"
    shutil.copytree(pristine_drill.root, root)
    text = (root / "drill.toml").read_text().replace(str(pristine_drill.root), str(root))
    (root / "drill.toml").write_text(text)
    return Drill(root, tomllib.loads(text))


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""

    def run(*args: str | Path) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


# -- target stores: a throwaway PostgreSQL cluster, and the drill's live data on every store ------------


@pytest.fixture(scope="session")
def postgres_cluster():
    """A PostgreSQL cluster of its own on 127.0.0.1 for the session (skipped only without server binaries)."""
    from tests.postgres import find_server_bindir, start_cluster

    bindir = find_server_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl, postgres) on PATH or in "
                    "/usr/lib/postgresql/*/bin: run scripts/ensure-tools (Debian package postgresql)")
    cluster = start_cluster(bindir)
    yield cluster
    cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster):
    """The URL of a fresh, empty database, dropped after the test."""
    name = postgres_cluster.create_database()
    yield postgres_cluster.url_for(name)
    postgres_cluster.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
def live_target(drill: Drill, request: pytest.FixtureRequest) -> str:
    """A target URL holding the drill's live (damaged) data, on each kind of store."""
    if request.param == "sqlite":
        return drill.target
    from tests.postgres import copy_store

    url = request.getfixturevalue("postgres_url")
    copy_store(drill.target, url)
    return url
