"""The tool as users install it: the wheel, the offline bundle and the single-file executable.

``make bundle`` (scripts/make-bundle) is run once per session into a temporary folder, signed with a
throwaway SSH key. From it, outside the checkout: the wheel and its wheelhouse are installed into a
fresh virtual environment with no network at all (a network namespace of its own), and the installed
tool — not the checkout — runs its version, the shipped runbooks, a drill, a full restore and the app's
first screen; the single file runs with a bare environment (no Python, no virtual environment on the
PATH). Nothing here is editable or imported from the checkout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import enigm_recover

ROOT = Path(__file__).resolve().parents[1]
AT = "2026-11-27T12:00:00Z"
SHIPPED = ["device-lifecycle", "identity-and-devices", "tabletop-drill"]
SIGNER = "release@enigm.example"
pytestmark = [pytest.mark.install, pytest.mark.timeout(900)]


def run(args: list[str | Path], *, env: dict[str, str], cwd: Path, timeout: float = 600) -> str:
    done = subprocess.run([str(a) for a in args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"{args[:3]} exited {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def bare_env(home: Path, path: str) -> dict[str, str]:
    """Only what a login on a bare host has: no virtual environment, no PYTHONPATH, no checkout."""
    return {"PATH": path, "HOME": str(home), "LANG": "C.UTF-8", "TERM": "dumb",
            "ENIGM_RECOVER_STATE_DIR": str(home / "state"), "ENIGM_RECOVER_CACHE_DIR": str(home / "cache"),
            "ENIGM_RECOVER_CONFIG": str(home / "config.toml")}


def offline(args: list[str | Path]) -> list[str | Path]:
    """The command in a network namespace of its own: no interface but a loopback that is down."""
    return ["unshare", "--net", "--", *args]


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make bundle` once per session: the bundle folder, with a throwaway signing key beside it."""
    for tool in ("git", "ssh-keygen", "objdump", "sha256sum"):
        assert shutil.which(tool), f"{tool} is needed to make the bundle"
    work = tmp_path_factory.mktemp("bundle")
    key = work / "release_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", SIGNER, "-f", key], check=True)
    (work / "allowed_signers").write_text(f"{SIGNER} {(work / 'release_key.pub').read_text()}")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    run([ROOT / "scripts" / "make-bundle", work / "dist", key], env=env, cwd=ROOT, timeout=900)
    return work / "dist"


def can_unshare() -> bool:
    return subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode == 0


def make_drill(tool: list[str | Path], folder: Path, env: dict[str, str]) -> dict:
    return json.loads(run([*tool, "drill", "--no-tui", "--json", "--at", AT, folder], env=env, cwd=folder.parent))


def restore(tool: list[str | Path], doc: dict, env: dict[str, str], cwd: Path) -> str:
    paths, cards = doc["paths"], doc["custodians"]
    out = run([*tool, "restore", paths["snapshots"], "latest", "--target", paths["target"],
               "--allowed-signers", paths["allowed_signers"], "--share-file", cards["amara"],
               "--share-file", cards["chen"], "--share-file", cards["emeka"], "--policy", "identity=overwrite-changed",
               "--yes", "--operator", "dana"], env=env, cwd=cwd)
    assert "completed" in out
    for kind in ("identities", "devices", "settings", "roles"):
        assert any(line.split()[:2] == [kind, "verified"] for line in out.splitlines()), out
    return out


# -- the signed bundle -----------------------------------------------------------------------------------


def test_the_bundle_is_checksummed_and_signed(bundle: Path, tmp_path: Path) -> None:
    names = set((bundle / "SHA256SUMS").read_text().split()[1::2])
    wheel = f"enigm_recover-{enigm_recover.__version__}-py3-none-any.whl"
    assert {wheel, "enigm-recover", "requirements.lock", "BUNDLE.txt", "man/enigm-recover.1"} <= names
    assert {f"completions/enigm-recover.{shell}" for shell in ("bash", "zsh", "fish")} <= names
    assert {f"wheelhouse/{p.name}" for p in (bundle / "wheelhouse").iterdir()} <= names
    env = {"PATH": os.environ["PATH"]}
    run(["sha256sum", "-c", "--strict", "SHA256SUMS"], env=env, cwd=bundle)
    allowed = bundle.parent / "allowed_signers"
    verify = ["ssh-keygen", "-Y", "verify", "-f", allowed, "-I", SIGNER, "-n", "enigm-bundle", "-s",
              bundle / "SHA256SUMS.sig"]
    ok = subprocess.run([str(a) for a in verify], input=(bundle / "SHA256SUMS").read_bytes(), capture_output=True)
    assert ok.returncode == 0, ok.stderr
    forged = (bundle / "SHA256SUMS").read_bytes().replace(b"  enigm-recover\n", b"  enigm-recover-x\n")
    assert subprocess.run([str(a) for a in verify], input=forged, capture_output=True).returncode != 0
    other = [*verify[:-3], "another-namespace", *verify[-2:]]
    assert subprocess.run([str(a) for a in other], input=(bundle / "SHA256SUMS").read_bytes(),
                          capture_output=True).returncode != 0
    about = (bundle / "BUNDLE.txt").read_text()  # what the host needs, read off the binaries built
    assert re.search(r"wheelhouse.*Python 3\.\d+ on Linux x86-64 with glibc 2\.\d+ or newer", about)
    assert re.search(r"enigm-recover .*needs no Python; Linux x86-64 with glibc 2\.\d+ or newer", about)


def test_make_bundle_refuses_to_run_without_a_signing_key(tmp_path: Path) -> None:
    done = subprocess.run([ROOT / "scripts" / "make-bundle", tmp_path / "dist", ""], capture_output=True, text=True)
    assert done.returncode == 2 and "BUNDLE_SIGN_KEY" in done.stderr
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("not a bundle")
    done = subprocess.run([ROOT / "scripts" / "make-bundle", tmp_path / "mine", tmp_path / "mine" / "keep.txt"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "holds other files" in done.stderr
    assert (tmp_path / "mine" / "keep.txt").read_text() == "not a bundle"


# -- the wheel, installed from the wheelhouse with no network ---------------------------------------------

APP_FIRST_SCREEN = """
import asyncio, json, sys
from pathlib import Path
from enigm_recover.app.app import RecoverApp
from enigm_recover.app.options import AppOptions
from enigm_recover.app.tour import on, until

doc, home = json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2])
paths = doc["paths"]
app = RecoverApp(AppOptions(source=paths["snapshots"], target=paths["target"],
                            allowed_signers=Path(paths["allowed_signers"]), state_dir=home / "app-state",
                            cache_dir=home / "app-cache", operator="dana", runbook="tabletop-drill", still=True))

async def first_screen():
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: on(app, "StartScreen") and app.screen.runbooks is not None, 60)
        print(json.dumps({"screen": type(app.screen).__name__,
                          "runbooks": sorted(r.name for r in app.screen.runbooks),
                          "stylesheets": [str(p) for p in app.css_path],
                          "errors": app.internal_errors}))

asyncio.run(first_screen())
"""


def test_the_wheel_installs_from_the_wheelhouse_offline_and_recovers(bundle: Path, tmp_path: Path) -> None:
    if not can_unshare():
        pytest.fail("unshare --net does not work here: the offline install needs a network namespace (run as root)")
    home = tmp_path / "host"
    home.mkdir()
    venv = home / "venv"
    base_python = getattr(sys, "_base_executable", sys.executable)
    run([base_python, "-m", "venv", venv], env={"PATH": "/usr/bin:/bin"}, cwd=home)
    env = bare_env(home, f"{venv / 'bin'}:/usr/bin:/bin")
    env["PIP_CONFIG_FILE"] = os.devnull  # no index or find-links of this machine's: the wheelhouse only
    pip = [venv / "bin" / "python", "-m", "pip", "--disable-pip-version-check", "install", "--no-index"]
    run(offline([*pip, "--find-links", bundle / "wheelhouse", "--require-hashes", "-r", bundle / "requirements.lock"]),
        env=env, cwd=home)
    wheel = next(bundle.glob("enigm_recover-*.whl"))
    run(offline([*pip, "--no-deps", wheel]), env=env, cwd=home)

    tool = [venv / "bin" / "enigm-recover"]
    assert run(offline([*tool, "--version"]), env=env, cwd=home).strip() == f"enigm-recover {enigm_recover.__version__}"
    listed = json.loads(run(offline([*tool, "runbooks", "list", "--json"]), env=env, cwd=home))
    assert sorted(r["name"] for r in listed["runbooks"]) == SHIPPED and listed["invalid"] == []
    site = Path(run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                    env=env, cwd=home).strip())
    assert all(Path(r["path"]).is_relative_to(site) for r in listed["runbooks"])  # from the package, not a checkout

    doc = json.loads(run(offline([*tool, "drill", "--no-tui", "--json", "--at", AT, home / "drill"]), env=env,
                         cwd=home))
    restore(["unshare", "--net", "--", *tool], doc, env, home)

    (home / "drill.json").write_text(json.dumps(doc))
    (home / "first_screen.py").write_text(APP_FIRST_SCREEN)
    shown = json.loads(run(offline([venv / "bin" / "python", home / "first_screen.py", home / "drill.json", home]),
                           env=env, cwd=home))
    assert shown["screen"] == "StartScreen" and shown["runbooks"] == SHIPPED and shown["errors"] == []
    assert [Path(p).name for p in shown["stylesheets"]] == ["app.tcss"]
    assert all(Path(p).is_relative_to(site) for p in shown["stylesheets"])


# -- the single file, with no Python or virtual environment ------------------------------------------------


def test_the_single_file_runs_outside_any_virtualenv(bundle: Path, tmp_path: Path) -> None:
    home = tmp_path / "host"
    home.mkdir()
    exe = home / "enigm-recover"
    shutil.copy2(bundle / "enigm-recover", exe)
    env = bare_env(home, "/usr/bin:/bin")
    assert ROOT.as_posix() not in json.dumps(env) and sysconfig.get_paths()["purelib"] not in json.dumps(env)
    assert run([exe, "--version"], env=env, cwd=home).strip() == f"enigm-recover {enigm_recover.__version__}"
    listed = json.loads(run([exe, "runbooks", "list", "--json"], env=env, cwd=home))
    assert sorted(r["name"] for r in listed["runbooks"]) == SHIPPED
    doc = make_drill([exe], home / "drill", env)
    restore([exe], doc, env, home)
