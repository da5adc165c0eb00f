"""`snapshots prune`: shows first, removes with --apply, never what continuity needs, atomically, audited."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from enigm_recover.errors import PruneRefused
from enigm_recover.recovery.audit import verify_log
from enigm_recover.runbook.executor import RunState
from enigm_recover.snapshot import signature
from enigm_recover.snapshot.manifest import KindScope, Manifest, manifest_name, new_snapshot_id, payload_name, \
    signature_name
from enigm_recover.snapshot.seal import read_recipient_file
from enigm_recover.snapshot.signature import load_allowed_signers
from enigm_recover.snapshot.verify import verify_entry
from enigm_recover.sources.local import LocalFolderSource
from enigm_recover.state.model import KINDS
from tests.conftest import Drill

SCRIPT = Path(sys.executable).parent / "enigm-recover"
START = datetime(2024, 3, 1, 2, 0, tzinfo=timezone.utc)


def make_snapshot(folder: Path, drill: Drill, created: datetime, environment: str = "prod",
                  counts: int = 5) -> str:
    """A snapshot signed by the drill's producer key, with a payload whose size and SHA-256 are as signed
    (prune verifies payloads by hash; it never decrypts)."""
    payload = os.urandom(256)
    m = Manifest(id=new_snapshot_id(created), created_at=created, environment=environment, producer="backup@drill",
                 recipient=read_recipient_file(drill.recipient), payload_size=len(payload),
                 payload_sha256=hashlib.sha256(payload).hexdigest(),
                 scope={k.name: KindScope(k.field_names, counts, "0" * 64) for k in KINDS})
    data = m.to_toml()
    (folder / payload_name(m.id)).write_bytes(payload)
    (folder / manifest_name(m.id)).write_bytes(data)
    (folder / signature_name(m.id)).write_bytes(signature.sign(data, signature.load_signing_key(drill.signing_key)))
    return m.id


def daily(folder: Path, drill: Drill, days: int, environment: str = "prod", start: datetime = START) -> list[str]:
    """One snapshot a day for ``days`` days, oldest first."""
    folder.mkdir(exist_ok=True)
    return [make_snapshot(folder, drill, start + timedelta(days=i), environment) for i in range(days)]


def listed(folder: Path) -> list[str]:
    return sorted(e.id for e in LocalFolderSource(folder).list().entries)


def prune(cli, folder: Path, drill: Drill, *extra):
    code, out, err = cli("snapshots", "prune", folder, "--allowed-signers", drill.allowed_signers, "--json", *extra)
    return code, (json.loads(out) if out.strip() else None), err


def test_without_apply_it_only_shows_what_it_would_keep_and_why(drill, cli, tmp_path: Path) -> None:
    folder = tmp_path / "snaps"
    ids = daily(folder, drill, 10)
    code, plan, err = prune(cli, folder, drill, "--keep-last", "2", "--keep-weekly", "2")
    assert code == 0, err
    assert listed(folder) == ids  # nothing removed
    decisions = {s["id"]: s for s in plan["snapshots"]}
    # 2024-03-01 is a Friday: the days run Fri 1 .. Sun 10; weeks W09 (1-3) and W10 (4-10)
    assert set(plan["keep"]) == {ids[9], ids[8], ids[2]}
    assert decisions[ids[9]]["reasons"][:2] == ["last snapshot (1 of 2)", "weekly snapshot (1 of 2, 2024-W10)"]
    assert decisions[ids[2]]["reasons"] == ["weekly snapshot (2 of 2, 2024-W09)"]
    assert decisions[ids[0]]["action"] == "remove" and decisions[ids[0]]["reasons"] == []
    assert plan["applied"] is False and plan["removed"] == [] and plan["audit_log"] is None
    code, out, err = cli("snapshots", "prune", folder, "--allowed-signers", drill.allowed_signers, "--keep-last", "2")
    assert code == 0, err
    assert f"keep    {ids[9]}" in out and f"remove  {ids[0]}" in out and "nothing was removed" in out


def test_apply_removes_whole_snapshots_and_audits_each_with_its_policy(drill, cli, tmp_path: Path) -> None:
    folder = tmp_path / "snaps"
    ids = daily(folder, drill, 6)
    code, plan, err = prune(cli, folder, drill, "--keep-daily", "3", "--apply")
    assert code == 0, err
    assert listed(folder) == ids[3:] and sorted(plan["removed"]) == ids[:3]
    assert sorted(os.listdir(folder)) == sorted(n for i in ids[3:] for n in (manifest_name(i), signature_name(i),
                                                                               payload_name(i)))
    log = Path(plan["audit_log"])
    assert verify_log(log).intact
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    removing = [e for e in entries if e["action"] == "snapshot-removing"]
    removed = [e for e in entries if e["action"] == "snapshot-removed"]
    assert [e["inputs"]["snapshot"] for e in removing] == [e["inputs"]["snapshot"] for e in removed]
    assert sorted(e["inputs"]["snapshot"] for e in removed) == ids[:3]
    assert all(e["inputs"]["policy"] == {"keep_daily": 3} for e in removed)
    assert all(e["outcome"] == "ok" for e in removed)
    # a second run finds nothing more to remove
    code, plan, err = prune(cli, folder, drill, "--keep-daily", "3", "--apply")
    assert code == 0 and plan["remove"] == [] and plan["audit_log"] is None


def test_policy_from_the_config_file(drill, cli, tmp_path: Path) -> None:
    folder = tmp_path / "snaps"
    ids = daily(folder, drill, 5)
    Path(os.environ["ENIGM_RECOVER_CONFIG"]).write_text('[retention]\nkeep_last = 2\nkeep_within = "2d"\n')
    code, plan, err = prune(cli, folder, drill)
    assert code == 0, err
    assert plan["policy"] == {"keep_last": 2, "keep_within": "2d"} and set(plan["keep"]) == set(ids[3:])
    code, plan, err = prune(cli, folder, drill, "--keep-last", "4")  # a flag overrides its rule only
    assert plan["policy"] == {"keep_last": 4, "keep_within": "2d"} and set(plan["keep"]) == set(ids[1:])


def test_bad_policies_are_named(drill, cli, tmp_path: Path) -> None:
    folder = tmp_path / "snaps"
    daily(folder, drill, 2)
    code, _, err = prune(cli, folder, drill)
    assert code == PruneRefused.exit_code and "no retention rule given" in err
    code, _, err = prune(cli, folder, drill, "--keep-within", "soon")
    assert code == 2 and "--keep-within 'soon' is not a duration" in err
    code, _, err = prune(cli, folder, drill, "--keep-last", "0")
    assert code == 2 and "--keep-last must be at least 1" in err
    Path(os.environ["ENIGM_RECOVER_CONFIG"]).write_text('[retention]\nkeep_forever = 1\n')
    code, _, err = prune(cli, folder, drill, "--keep-last", "1")
    assert code == 4 and "unknown retention rule 'keep_forever'" in err
    assert "Traceback" not in err


def test_a_snapshot_a_paused_run_refers_to_is_never_removed(drill, cli, tmp_path: Path) -> None:
    folder = tmp_path / "snaps"
    ids = daily(folder, drill, 4)
    run = Path(os.environ["ENIGM_RECOVER_STATE_DIR"]) / "recoveries" / "2024-run"
    run.mkdir(parents=True, mode=0o700)
    state = RunState("CEREMONY-1", "tabletop-drill", "x.toml", "0" * 64, str(folder), "sqlite:///t.db", "signers",
                     status="paused", snapshot=ids[0])
    (run / "run.toml").write_bytes(state.to_toml())
    code, plan, err = prune(cli, folder, drill, "--keep-last", "1", "--apply")
    assert code == 0, err
    assert listed(folder) == [ids[0], ids[3]]
    kept = {s["id"]: s["reasons"] for s in plan["snapshots"] if s["action"] == "keep"}
    assert kept[ids[0]] == ["referenced by the paused run CEREMONY-1 (tabletop-drill)"]
    # a run state that cannot be read refuses the prune: the snapshot it needs is unknown
    (run / "run.toml").write_text("not = [toml")
    code, _, err = prune(cli, folder, drill, "--keep-last", "1", "--apply")
    assert code == PruneRefused.exit_code and "cannot tell which snapshot the run" in err
    assert listed(folder) == [ids[0], ids[3]]


@pytest.mark.parametrize("damage", ["payload", "signature", "manifest"])
def test_a_broken_newest_refuses_the_prune_and_removes_nothing(drill, cli, tmp_path: Path, damage: str) -> None:
    folder = tmp_path / "snaps"
    ids = daily(folder, drill, 4)
    newest = ids[-1]
    if damage == "payload":
        (folder / payload_name(newest)).write_bytes(b"altered")
    elif damage == "signature":
        (folder / signature_name(newest)).unlink()
    else:
        (folder / manifest_name(newest)).write_bytes(b"format = 'nonsense'\n")
    code, _, err = prune(cli, folder, drill, "--keep-last", "1", "--apply")
    assert code == PruneRefused.exit_code, err
    assert "a broken newest must never make older snapshots look removable" in err and newest in err
    assert "nothing was removed" in err
    assert listed(folder) == ids


def test_broken_newest_of_another_environment_refuses_too(drill, cli, tmp_path: Path) -> None:
    folder = tmp_path / "snaps"
    prod = daily(folder, drill, 3, "prod", START + timedelta(hours=1))
    staging = daily(folder, drill, 3, "staging")
    (folder / payload_name(staging[-1])).unlink()
    code, _, err = prune(cli, folder, drill, "--keep-last", "1", "--apply")
    assert code == PruneRefused.exit_code and f"environment staging {staging[-1]}" in err
    # pruning prod alone does not rest on staging's snapshots
    code, plan, err = prune(cli, folder, drill, "--keep-last", "1", "--apply", "--environment", "prod")
    assert code == 0, err
    assert listed(folder) == sorted([prod[-1], *staging])


def test_untrusted_and_unreadable_entries_are_left_alone(drill, cli, tmp_path: Path) -> None:
    folder = tmp_path / "snaps"
    ids = daily(folder, drill, 4)
    (folder / signature_name(ids[0])).unlink()
    (folder / manifest_name(ids[1])).write_bytes(b"garbage = 1\n")
    code, plan, err = prune(cli, folder, drill, "--keep-last", "1", "--apply")
    assert code == 0, err
    assert listed(folder) == [ids[0], ids[1], ids[3]]
    assert {a["id"] for a in plan["left_alone"]} == {ids[0], ids[1]}
    assert all("never removed" in a["reason"] for a in plan["left_alone"])


def test_each_environment_keeps_its_own_newest(drill, cli, tmp_path: Path) -> None:
    folder = tmp_path / "snaps"
    prod = daily(folder, drill, 3, "prod", START + timedelta(hours=1))
    staging = daily(folder, drill, 3, "staging")
    code, plan, err = prune(cli, folder, drill, "--keep-last", "1", "--apply")
    assert code == 0, err
    assert listed(folder) == sorted([prod[-1], staging[-1]])


# -- an interrupted prune ---------------------------------------------------------------------------------


def assert_every_listed_snapshot_is_whole(folder: Path, drill: Drill) -> None:
    allowed = load_allowed_signers(drill.allowed_signers)
    source = LocalFolderSource(folder)
    for entry in source.list().entries:
        report, verified = verify_entry(source, entry, allowed)
        assert verified is not None, (entry.id, report.as_dict())


def test_a_prune_killed_at_random_points_never_leaves_a_listed_snapshot_half_removed(drill, tmp_path: Path) -> None:
    """SIGKILL the prune once it has removed a random number of snapshots (aimed by progress, then a random
    number of scheduler yields more): whatever it had done, every listed snapshot verifies whole, and the
    next prune finishes what the killed one began."""
    rng = random.Random(18)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    kills = 0
    for trial in range(6):
        folder = tmp_path / f"snaps{trial}"
        ids = daily(folder, drill, 24)
        argv = [str(SCRIPT), "snapshots", "prune", str(folder), "--allowed-signers", str(drill.allowed_signers),
                "--keep-last", "2", "--apply", "--json"]
        aim = rng.randrange(0, 20)
        process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while process.poll() is None:
            gone = sum(1 for i in ids if not (folder / signature_name(i)).exists())
            if gone >= aim:
                for _ in range(rng.randrange(0, 200)):
                    os.sched_yield()
                process.send_signal(signal.SIGKILL)
                break
        process.wait()
        if process.returncode == -signal.SIGKILL:
            kills += 1
        assert_every_listed_snapshot_is_whole(folder, drill)
        # the next prune finishes the interrupted removal and removes the rest
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert listed(folder) == ids[-2:]
        assert sorted(os.listdir(folder)) == sorted(n for i in ids[-2:] for n in (
            manifest_name(i), signature_name(i), payload_name(i)))
    assert kills >= 3  # most trials were killed inside the prune, not after it


class Crash(BaseException):
    """A power cut: nothing after it runs (not an EnigmError, so nothing catches it)."""


def test_a_prune_stopped_after_any_single_file_operation_never_lists_a_half_removed_snapshot(
        drill, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every point, not a sample: stop the prune after each rename or deletion in the folder in turn."""
    from enigm_recover.recovery.session import Recovery
    from enigm_recover.runbook.prune import apply_prune, plan_prune
    from enigm_recover.snapshot.retention import RetentionPolicy

    allowed = load_allowed_signers(drill.allowed_signers)
    state = Path(os.environ["ENIGM_RECOVER_STATE_DIR"])
    real_rename, real_unlink = os.rename, os.unlink
    steps = 3 * 4  # three snapshots to remove: a rename and three deletions each
    for stop_after in range(steps):
        folder = tmp_path / f"snaps{stop_after}"
        ids = daily(folder, drill, 4)
        done = [0]

        def counted(real):
            def op(path, *args, **kwargs):
                if Path(path).parent == folder:
                    if done[0] == stop_after:
                        raise Crash()
                    done[0] += 1
                return real(path, *args, **kwargs)
            return op

        source = LocalFolderSource(folder)
        plan = plan_prune(source, allowed, RetentionPolicy(keep_last=1), state_dir=state)
        with monkeypatch.context() as m:
            m.setattr(os, "rename", counted(real_rename))
            m.setattr(os, "unlink", counted(real_unlink))
            with pytest.raises(Crash):
                apply_prune(source, plan, Recovery.open(state, "test"))
        assert_every_listed_snapshot_is_whole(folder, drill)
        assert len(listed(folder)) == 4 - stop_after // 4 - (1 if stop_after % 4 else 0)
        plan = plan_prune(source, allowed, RetentionPolicy(keep_last=1), state_dir=state)
        apply_prune(source, plan, Recovery.open(state, "test"))
        assert listed(folder) == ids[-1:]
        assert sorted(os.listdir(folder)) == sorted([manifest_name(ids[-1]), signature_name(ids[-1]),
                                                     payload_name(ids[-1])])


def test_a_newest_file_that_cannot_even_be_listed_refuses_the_prune(drill, cli, tmp_path: Path) -> None:
    folder = tmp_path / "snaps"
    ids = daily(folder, drill, 3)
    newer = new_snapshot_id(START + timedelta(days=5))
    (folder / manifest_name(newer)).mkdir()  # a folder where the newest manifest should be
    code, _, err = prune(cli, folder, drill, "--keep-last", "1", "--apply")
    assert code == PruneRefused.exit_code, err
    assert newer in err and "nothing was removed" in err
    assert listed(folder) == ids
