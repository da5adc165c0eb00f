"""Shared fixtures: a small drill made once per session, and a CLI runner."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest

from enigm_recover.cli import main
from enigm_recover.drill.scenario import DrillSpec, make_drill
from enigm_recover.quorum.recipients import RecipientKind

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


@pytest.fixture(scope="session")
def pristine_classic_drill(tmp_path_factory: pytest.TempPathFactory) -> Drill:
    """The same drill with a classic X25519 recovery key (the default is hybrid post-quantum)."""
    root = tmp_path_factory.mktemp("drill-pristine-classic") / "drill"
    doc = make_drill(root, DrillSpec(identities=60, devices_per_identity=3, seed=7, snapshots=3, at=DRILL_AT,
                                     kind=RecipientKind.X25519))
    return Drill(root, doc)


def copy_drill(pristine: Drill, tmp_path: Path, name: str = "drill") -> Drill:
    root = tmp_path / name
    shutil.copytree(pristine.root, root)
    text = (root / "drill.toml").read_text().replace(str(pristine.root), str(root))
    (root / "drill.toml").write_text(text)
    return Drill(root, tomllib.loads(text))


@pytest.fixture
def drill(pristine_drill: Drill, tmp_path: Path) -> Drill:
    """A private copy of the session's drill (its recovery key hybrid post-quantum), free to damage."""
    return copy_drill(pristine_drill, tmp_path)


@pytest.fixture
def classic_drill(pristine_classic_drill: Drill, tmp_path: Path) -> Drill:
    """A private copy of the session's drill with a classic X25519 recovery key, free to damage."""
    return copy_drill(pristine_classic_drill, tmp_path, "classic-drill")


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


# -- the independent age implementation: npm age-encryption on the machine's Node.js ----------------

NODE_DIR = Path(__file__).parent / "node"


@dataclass(frozen=True)
class AgeJs:
    """``node tests/node/age.mjs``: age-encryption (pinned in tests/node/package-lock.json)."""

    script: Path

    def encrypt(self, recipient: str, plain: bytes) -> bytes:
        result = subprocess.run(["node", str(self.script), "encrypt", recipient], input=plain, capture_output=True,
                                timeout=300)
        assert result.returncode == 0, result.stderr.decode(errors="replace")
        return result.stdout

    def decrypt(self, identity: str, sealed: bytes) -> subprocess.CompletedProcess:
        env = {**os.environ, "AGE_IDENTITY": identity}  # in the environment, never on the command line
        return subprocess.run(["node", str(self.script), "decrypt"], input=sealed, capture_output=True, env=env,
                              timeout=300)


@pytest.fixture(scope="session")
def age_js() -> AgeJs:
    """Installed with ``npm ci`` when missing (as ``make tools`` does). Skipped only when npm cannot reach its
    registry outside CI; in CI (``CI`` set) a missing implementation fails the run."""
    installed = NODE_DIR / "node_modules" / "age-encryption" / "package.json"
    if not installed.exists():
        why = "node and npm are not installed" if shutil.which("npm") is None else ""
        if not why:
            result = subprocess.run(["npm", "ci", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund"],
                                    capture_output=True, timeout=600)
            why = "" if result.returncode == 0 else f"npm ci failed: {result.stderr.decode(errors='replace')[-300:]}"
        if why:
            if os.environ.get("CI"):
                pytest.fail(f"the independent age implementation is required in CI: {why}")
            pytest.skip(f"npm age-encryption is not installed and could not be ({why})")
    pinned = json.loads((NODE_DIR / "package.json").read_text())["dependencies"]["age-encryption"]
    assert json.loads(installed.read_text())["version"] == pinned
    return AgeJs(NODE_DIR / "age.mjs")


# -- an OpenSSH server on 127.0.0.1 for the SFTP tests (one per test module) --------------------------------------


@pytest.fixture(scope="module")
def ssh_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Client keys: ``client`` (authorised by ``sshd``) and ``stranger`` (not)."""
    from tests.sshd import keygen

    home = tmp_path_factory.mktemp("ssh-home")
    keygen(home / "client")
    keygen(home / "stranger")
    return home


@pytest.fixture(scope="module")
def sshd(ssh_home: Path, tmp_path_factory: pytest.TempPathFactory):
    from tests.sshd import start_sshd

    server = start_sshd(tmp_path_factory.mktemp("sshd"), [ssh_home / "client"])
    yield server
    server.stop()
