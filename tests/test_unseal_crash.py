"""Kill `unseal --out F` with SIGKILL at random points: no decrypted record may be left in any file.

The SIGKILL suite's unseal half (the restore half is test_restore_crash.py). While `unseal` writes, the
records are in a file without a name; a kill at any instant leaves either nothing or F, complete.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from enigm_recover.drill.scenario import DrillSpec, make_drill
from tests.conftest import DRILL_AT, Drill
from tests.test_restore_crash import SCRIPT

KILLS_WHILE_WRITING = 10  # kills that must land while the records are being written
MAX_TRIALS = 60  # a loaded machine shifts the timing; only as many as needed are run


@pytest.fixture(scope="module")
def big_drill(tmp_path_factory: pytest.TempPathFactory) -> Drill:
    """Large enough (about 10 MB of records) that writing them takes a while to aim at."""
    root = tmp_path_factory.mktemp("unseal-crash") / "drill"
    doc = make_drill(root, DrillSpec(identities=10_000, devices_per_identity=3, seed=5, snapshots=1, at=DRILL_AT))
    return Drill(root, doc)


def unseal_argv(drill: Drill, out: Path) -> list[str]:
    argv = [str(SCRIPT), "unseal", str(drill.snapshots), "latest", "--allowed-signers", str(drill.allowed_signers),
            "--out", str(out)]
    for name in ("amara", "chen", "emeka"):
        argv += ["--share-file", str(drill.card(name))]
    return argv


def writing_into(pid: int, folder: Path) -> bool:
    """Whether the process has a file in ``folder`` open (named or not): it is writing the records."""
    try:
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    except OSError:  # it ended meanwhile
        return False
    return any(link.startswith(f"{folder}/") for link in links)


def kill_while_writing(process: subprocess.Popen, folder: Path, jitter: float) -> bool:
    """SIGKILL the unseal a random instant after it starts writing (aimed by what it has open, not by the
    clock); whether the kill landed while it was writing."""
    seen = False
    while process.poll() is None:
        if writing_into(process.pid, folder):
            seen = True
            time.sleep(jitter)
            break
        time.sleep(0.0005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return seen and process.returncode == -signal.SIGKILL


def files_holding(marker: bytes, *roots: Path) -> list[Path]:
    return [path for root in roots if root.exists() for path in root.rglob("*")
            if path.is_file() and marker in path.read_bytes()]


def test_sigkill_at_random_points_leaves_no_decrypted_record(big_drill: Drill, tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "records.jsonl"
    assert subprocess.run(unseal_argv(big_drill, out), capture_output=True).returncode == 0
    complete = out.read_bytes()
    marker = complete.splitlines()[len(complete.splitlines()) // 2]  # one whole record line
    out.unlink()
    state = Path(os.environ["ENIGM_RECOVER_STATE_DIR"])
    cache = Path(os.environ["ENIGM_RECOVER_CACHE_DIR"])

    rng = random.Random(20261207)
    landed = 0
    for trial in range(MAX_TRIALS):
        if landed >= KILLS_WHILE_WRITING:
            break
        process = subprocess.Popen(unseal_argv(big_drill, out), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        landed += kill_while_writing(process, folder, rng.uniform(0, 0.15))
        left = sorted(p.name for p in folder.iterdir())
        assert left in ([], [out.name]), (trial, left)  # no temporary, hidden or not
        if left:
            assert out.read_bytes() == complete, trial  # F exists only complete
            out.unlink()
        assert files_holding(marker, folder, state, cache) == [], trial
    assert landed >= KILLS_WHILE_WRITING // 2, f"only {landed} kills landed while writing"
    print("kills while writing:", landed)
