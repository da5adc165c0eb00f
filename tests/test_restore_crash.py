"""Kill the restoring process with SIGKILL at many random points; resuming must reach the same end state."""

from __future__ import annotations

import json
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest

from enigm_recover.drill.scenario import DrillSpec, make_drill
from tests.conftest import DRILL_AT, Drill
from tests.test_restore import state_of

KILLS = 30  # kills that must land inside a started restore
MAX_TRIALS = 150  # a loaded machine shifts the timing; only as many as needed are run
POLICIES = ("--policy", "device=overwrite-changed,delete-extra", "--policy", "identity=overwrite-changed",
            "--policy", "setting=overwrite-changed", "--policy", "role=overwrite-changed,delete-extra")
SCRIPT = Path(sys.executable).parent / "enigm-recover"


@pytest.fixture(scope="module")
def crash_drill(tmp_path_factory: pytest.TempPathFactory) -> Drill:
    root = tmp_path_factory.mktemp("crash") / "drill"
    doc = make_drill(root, DrillSpec(identities=800, devices_per_identity=3, seed=3, snapshots=1, at=DRILL_AT))
    return Drill(root, doc)


def restore_argv(drill: Drill, target: Path, *extra: str) -> list[str]:
    argv = [str(SCRIPT), "restore", str(drill.snapshots), "latest", "--target", f"sqlite:///{target}",
            "--allowed-signers", str(drill.allowed_signers), "--yes", "--json", "--batch-size", "1", *POLICIES]
    for name in ("amara", "chen", "emeka"):
        argv += ["--share-file", str(drill.card(name))]
    return argv + list(extra)


def journal_position(target: Path) -> tuple[str, int]:
    """Where the killed run had got to: "not started" (no run in the journal), "finished", or the step
    it was in, with the batches committed in all."""
    with closing(sqlite3.connect(target)) as conn:
        try:
            run = conn.execute("SELECT status FROM enigm_restore_runs").fetchone()
            batches = conn.execute("SELECT step, count(*) FROM enigm_restore_batches GROUP BY step").fetchall()
            steps = [r[0] for r in conn.execute("SELECT step FROM enigm_restore_steps")]
        except sqlite3.OperationalError:
            return "not started", 0
    if run is None:
        return "not started", 0
    if run[0] != "running":
        return "finished", sum(n for _, n in batches)
    order = ["identities", "devices", "settings", "roles"]
    current = next((s for s in order if s not in steps), "roles")
    return current, sum(n for _, n in batches)


ORDER = ["identities", "devices", "settings", "roles"]


def batches_per_step(target: Path) -> dict[str, int]:
    with closing(sqlite3.connect(target)) as conn:
        return dict(conn.execute("SELECT step, count(*) FROM enigm_restore_batches GROUP BY step").fetchall())


def kill_when(process: subprocess.Popen, target: Path, step: str, batches: int, jitter: float) -> None:
    """SIGKILL the restore once its journal shows ``batches`` committed in ``step`` (or a later step),
    then a random instant more: aimed by progress, not by the clock, so a loaded machine aims as well."""
    while process.poll() is None:
        try:
            done = batches_per_step(target)
        except sqlite3.Error:
            done = {}
        later = any(done.get(s) for s in ORDER[ORDER.index(step) + 1:])
        if later or done.get(step, 0) >= batches:
            time.sleep(jitter)
            break
        time.sleep(0.001)
    process.send_signal(signal.SIGKILL)
    process.wait()


def test_sigkill_at_random_points_then_resume_reaches_the_same_end_state(crash_drill: Drill, tmp_path: Path) -> None:
    pristine = Path(crash_drill.target.removeprefix("sqlite:///"))
    reference = tmp_path / "reference.db"
    shutil.copy(pristine, reference)
    assert subprocess.run(restore_argv(crash_drill, reference), capture_output=True).returncode == 0
    totals = batches_per_step(reference)
    assert len(totals) >= 2, totals
    expected = state_of(f"sqlite:///{reference}")

    rng = random.Random(20261127)
    reached: Counter[str] = Counter()
    aims = [step for step in ORDER if step in totals]
    for trial in range(MAX_TRIALS):
        inside = {s: n for s, n in reached.items() if s not in ("not started", "finished")}
        if sum(inside.values()) >= KILLS and len(inside) >= 2:
            break
        step = aims[trial % len(aims)]  # each step in turn, a random number of batches into it
        target = tmp_path / f"trial{trial}.db"
        shutil.copy(pristine, target)
        process = subprocess.Popen(restore_argv(crash_drill, target), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        kill_when(process, target, step, rng.randrange(totals[step]) + 1, rng.uniform(0, 0.004))
        step, batches = journal_position(target)
        reached[step] += 1
        resumed = subprocess.run(restore_argv(crash_drill, target, "--resume"), capture_output=True, text=True)
        if resumed.returncode == 17 and "no interrupted restore" in resumed.stderr:  # killed before it began,
            resumed = subprocess.run(restore_argv(crash_drill, target), capture_output=True, text=True)  # or after
        assert resumed.returncode == 0, (trial, step, batches, resumed.stderr)
        outcome = json.loads(resumed.stdout)
        assert all(s["status"] == "verified" for s in outcome["steps"]), (trial, outcome)
        assert state_of(f"sqlite:///{target}") == expected, (trial, step, batches)
        target.unlink()
    print("kill points reached:", dict(reached))
    inside = {s: n for s, n in reached.items() if s not in ("not started", "finished")}
    assert sum(inside.values()) >= KILLS, reached
    assert len(inside) >= 2, reached  # across steps


def test_a_row_changed_before_a_total_loss_batch_is_read_back_is_not_verified(drill, live_target, cli,
                                                                               monkeypatch) -> None:
    """A total loss: every batch a run of missing records, written and read back whole. A row changed after
    its batch committed, just before the batch's keys are read back, is caught the same way."""
    from enigm_recover.recovery.apply import _StepCheck
    from enigm_recover.state.model import KINDS
    from enigm_recover.state.stores import open_store
    from tests.test_restore import restore

    with open_store(live_target) as store, store.transaction() as conn:
        for kind in KINDS:
            conn.execute(f"DELETE FROM {kind.table}")
    original = _StepCheck.add_chunk
    tampered: list[bool] = []

    def tampered_first(self, chunk, batch):  # type: ignore[no-untyped-def]
        if self.step.kind.name == "device" and not tampered:
            assert chunk.plain is not None  # a run of missing records, taken whole
            _tamper_device(live_target, chunk.keys[0][0])
            tampered.append(True)
        return original(self, chunk, batch)

    monkeypatch.setattr(_StepCheck, "add_chunk", tampered_first)
    code, out, err = restore(cli, drill, live_target, "--yes", "--json")
    assert code == 18 and tampered, (out, err)
    steps = {s["step"]: s for s in json.loads(out)["steps"]}
    devices = steps["devices"]
    assert devices["status"] == "not-verified" and devices["verification"]["unmet"]["written"] == 1, devices
    assert devices["verification"]["equal"] == devices["inserted"] - 1, devices
    assert steps["identities"]["status"] == "verified"


def _tamper_device(url: str, device_id: str) -> None:
    """Another public key for one device, as an attacker with write access to the target would plant."""
    if url.startswith("sqlite:///"):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn, conn:
            conn.execute("UPDATE devices SET device_key = ? WHERE device_id = ?", ("A" * 43 + "=", device_id))
        return
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE devices SET device_key = %s WHERE device_id = %s", ("A" * 43 + "=", device_id))


def _missing_devices(cli, drill, url: str) -> list[str]:
    code, out, err = cli("diff", drill.snapshots, "latest", "--target", url, "--allowed-signers",
                         drill.allowed_signers, *sum((["--share-file", drill.card(n)] for n in
                                                      ("amara", "chen", "emeka")), []), "--json", "--limit", "100000")
    assert code == 0, err
    return [c["key"][0] for c in json.loads(out)["changes"] if c["kind"] == "device" and c["change"] == "missing"]


def test_a_resumed_step_reads_back_the_batches_written_before_the_interruption(drill, live_target, cli,
                                                                               monkeypatch) -> None:
    """Interrupt after the first batch of devices, change a device that batch inserted, resume: the step
    must not be reported verified, just as it would not be had the change come before its verification."""
    from enigm_recover.errors import InterruptedByUser
    from enigm_recover.state.postgres_store import PostgresStore
    from enigm_recover.state.sqlite_store import SQLiteStore
    from enigm_recover.state.stores import open_store
    from tests.test_restore import restore

    missing = _missing_devices(cli, drill, live_target)
    assert len(missing) >= 2, "the drill has too few deleted devices"
    store_class = SQLiteStore if live_target.startswith("sqlite") else PostgresStore
    original = store_class.apply_with
    written = {"device": 0}

    def interrupted(self, run_id, kind, keys, build):  # type: ignore[no-untyped-def]
        batch = original(self, run_id, kind, keys, build)
        if kind.name == "device" and len(batch):
            written["device"] += 1
            raise InterruptedByUser("interrupted after the first committed batch of devices")
        return batch

    monkeypatch.setattr(store_class, "apply_with", interrupted)
    code, _, err = restore(cli, drill, live_target, "--yes", "--batch-size", "1")
    assert code == 130 and written["device"] == 1, err
    monkeypatch.setattr(store_class, "apply_with", original)

    from enigm_recover.state.model import DEVICE

    with open_store(live_target) as store:
        back = [k[0] for k in store.rows_by_key(DEVICE, [(d,) for d in missing])]
    assert len(back) == 1, back  # the first batch inserted one deleted device
    _tamper_device(live_target, back[0])

    code, out, err = restore(cli, drill, live_target, "--yes", "--batch-size", "1", "--resume", "--json")
    assert code == 18, (out, err)  # RestoreNotVerified
    devices = next(s for s in json.loads(out)["steps"] if s["step"] == "devices")
    assert devices["status"] == "not-verified" and devices["verification"]["unmet"]["written"] == 1, devices


def test_a_row_changed_between_its_write_and_the_read_back_is_not_verified(drill, live_target, cli,
                                                                           monkeypatch) -> None:
    """The same change without an interruption: the read-back catches it the same way. The row is changed
    after the batch that wrote it committed, just before its keys are read back."""
    from enigm_recover.recovery.apply import _StepCheck
    from tests.test_restore import restore

    missing = _missing_devices(cli, drill, live_target)
    original = _StepCheck.add
    tampered = []

    def tampered_first(self, chunk, live_now):  # type: ignore[no-untyped-def]
        if self.step.kind.name == "device" and not tampered:
            _tamper_device(live_target, missing[0])
            live_now = self.restorer.store.rows_by_key(self.step.kind, [c.key for c in chunk])
            tampered.append(True)
        return original(self, chunk, live_now)

    monkeypatch.setattr(_StepCheck, "add", tampered_first)
    code, out, err = restore(cli, drill, live_target, "--yes", "--json")
    assert code == 18, (out, err)
    devices = next(s for s in json.loads(out)["steps"] if s["step"] == "devices")
    assert devices["status"] == "not-verified" and devices["verification"]["unmet"]["written"] == 1, devices
