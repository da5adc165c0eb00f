"""Importing the SSH sources: asyncssh's library search reads the loader's cache, and runs no compiler."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from enigm_recover.sources.load_asyncssh import loader_cache_lookup

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or not Path("/sbin/ldconfig").exists(),
                                reason="the loader's cache is glibc's, on Linux")


def import_in_child(tmp_path: Path, **env: str) -> list[str]:
    """Import the SFTP source in a fresh interpreter with a recording gcc, cc and ld first on PATH; the
    programs it ran."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    ran = tmp_path / "ran"
    for tool in ("gcc", "cc", "ld"):
        script = bin_dir / tool
        script.write_text(f"#!/bin/sh\necho {tool} >> {ran}\nexit 1\n")
        script.chmod(0o755)
    child_env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    child_env |= {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(ROOT), **env}
    subprocess.run([sys.executable, "-c", "import enigm_recover.sources.sftp"], env=child_env, check=True)
    return ran.read_text().split() if ran.exists() else []


def test_importing_the_sftp_source_runs_no_compiler_or_linker(tmp_path: Path) -> None:
    assert import_in_child(tmp_path) == []


def test_with_ld_library_path_set_the_standard_search_runs(tmp_path: Path) -> None:
    # A library found only through LD_LIBRARY_PATH is found as before: ctypes' own search runs, linker included.
    assert "ld" in import_in_child(tmp_path, LD_LIBRARY_PATH=str(tmp_path))


@pytest.mark.parametrize("name", ["c", "m", "nettle", "oqs", "enigmt-no-such-library"])
def test_the_loader_cache_gives_what_ctypes_finds_for_an_installed_library(name: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LD_LIBRARY_PATH", raising=False)
    lookup = loader_cache_lookup()
    assert lookup is not None
    assert lookup(name) == ctypes.util.find_library(name)
