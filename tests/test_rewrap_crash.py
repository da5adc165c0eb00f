"""Kill `keys rewrap` with SIGKILL at random points: after the next run resumes, every snapshot is either
old and valid (its old key opens it, its signature and hash hold) or new and valid — never broken."""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from enigm_recover.drill.scenario import DrillSpec, make_drill
from enigm_recover.errors import EnigmError
from enigm_recover.quorum.entry import ShareEntry
from enigm_recover.quorum.cards import read_share_file
from enigm_recover.quorum.keygen import GroupSpec
from enigm_recover.quorum.keyring import read_recipient
from enigm_recover.quorum.lifecycle import NewSplit, rotate
from enigm_recover.snapshot import rewrap
from enigm_recover.snapshot.agecrypt import decrypt_chunks
from enigm_recover.snapshot.manifest import manifest_name, payload_name, signature_name
from enigm_recover.snapshot.signature import load_allowed_signers
from tests.conftest import DRILL_AT, Drill
from tests.test_restore_crash import SCRIPT
from tests.test_unseal_crash import writing_into

THREE = ("amara", "chen", "emeka")
TRIALS = 12


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("rewrap-crash") / "drill"
    doc = make_drill(root, DrillSpec(identities=5_000, devices_per_identity=3, seed=9, snapshots=3, at=DRILL_AT))
    drill = Drill(root, doc)
    old = _identity(*(drill.card(n) for n in THREE))
    out = root / "new-ceremony"
    rotate(old, read_recipient(drill.recipient), NewSplit(["ines", "jun", "kofi"], 1, [GroupSpec(2, 3)]), out,
           "drill")
    new = _identity(out / "ines.share.txt", out / "jun.share.txt")
    return drill, out / "recovery.pub", old, new


def _identity(*paths: Path):
    entry = ShareEntry()
    for path in paths:
        entry.add(read_share_file(path).words)
    return entry.combine()


def _state(folder: Path, snapshot_id: str, allowed, old, new) -> str:
    """'old' or 'new' when the snapshot verifies and decrypts with that key; raises when it is broken."""
    import hashlib

    manifest = rewrap.check_signed((folder / manifest_name(snapshot_id)).read_bytes(),
                                   (folder / signature_name(snapshot_id)).read_bytes(), allowed)
    data = (folder / payload_name(snapshot_id)).read_bytes()
    assert len(data) == manifest.payload_size and hashlib.sha256(data).hexdigest() == manifest.payload_sha256
    which = "new" if manifest.recipient == new.recipient else "old"
    assert manifest.recipient == (new if which == "new" else old).recipient
    with open(folder / payload_name(snapshot_id), "rb") as f:
        for _ in decrypt_chunks(f, new if which == "new" else old):
            pass
    return which


def test_sigkill_at_random_points_leaves_every_snapshot_old_or_new_and_valid(world, tmp_path: Path) -> None:
    drill, new_pub, old, new = world
    allowed = load_allowed_signers(drill.allowed_signers)
    ids = sorted(p.name.removesuffix(".manifest.toml") for p in drill.snapshots.glob("*.manifest.toml"))
    rng = random.Random(20261207)
    seen = {"old": 0, "new": 0, "pending": 0}
    for trial in range(TRIALS):
        folder = tmp_path / f"trial{trial}"
        shutil.copytree(drill.snapshots, folder)
        argv = [str(SCRIPT), "keys", "rewrap", str(folder), "--all", "--to", str(new_pub), "--sign-key",
                str(drill.signing_key), "--allowed-signers", str(drill.allowed_signers)]
        for name in THREE:
            argv += ["--share-file", str(drill.card(name))]
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while process.poll() is None and not writing_into(process.pid, folder):
            time.sleep(0.0005)
        time.sleep(rng.uniform(0, 0.2))  # a random instant once it works in the folder
        process.send_signal(signal.SIGKILL)
        process.wait()
        seen["pending"] += bool(rewrap.pending_ids(folder))
        for snapshot_id in rewrap.pending_ids(folder):  # what the next run does first
            rewrap.resume(folder, snapshot_id, allowed)
        assert rewrap.pending_ids(folder) == [], trial
        for snapshot_id in ids:
            try:
                seen[_state(folder, snapshot_id, allowed, old, new)] += 1
            except (EnigmError, AssertionError) as exc:
                raise AssertionError(f"trial {trial}: {snapshot_id} is broken: {exc}") from None
    # Finally a whole run over a killed folder finishes the job: every snapshot new and valid.
    done = subprocess.run(argv, capture_output=True)
    assert done.returncode == 0, done.stderr
    assert all(_state(folder, i, allowed, old, new) == "new" for i in ids)
    print("snapshots found old / new after the kills:", seen)
    assert seen["old"] and seen["new"]  # the kills landed on both sides of the switch
