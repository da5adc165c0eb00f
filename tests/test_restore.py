"""Dry-run diff and step-by-step restore, checked against an independent model, on every store."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from enigm_recover.state.model import KIND_BY_NAME, KINDS
from enigm_recover.state.stores import open_store
from tests.helpers import dump
from tests.restore_oracle import State, by_key, diff_counts, expected_end_state, safety_holds

CARDS = ("amara", "chen", "emeka")


def shares(drill) -> list:
    return sum((["--share-file", drill.card(n)] for n in CARDS), [])


def state_of(url: str) -> State:
    return by_key(dump(url))


def snapshot_state(drill, cli, tmp_path: Path) -> State:
    out = tmp_path / "snapshot.jsonl"
    code, _, err = cli("unseal", drill.snapshots, "latest", "--allowed-signers", drill.allowed_signers,
                       "--out", out, *shares(drill))
    assert code == 0, err
    rows: dict[str, list] = {k.name: [] for k in KINDS}
    for line in out.read_text().splitlines():
        record = json.loads(line)
        kind = KIND_BY_NAME[record.pop("kind")]
        rows[kind.name].append(tuple(record[f] for f in kind.field_names))
    out.unlink()
    return by_key(rows)


def restore(cli, drill, target: str, *extra: str) -> tuple[int, str, str]:
    return cli("restore", drill.snapshots, "latest", "--target", target, "--allowed-signers",
               drill.allowed_signers, *shares(drill), *extra)


def test_diff_agrees_with_an_independent_model(drill, live_target, cli, tmp_path: Path) -> None:
    snapshot, live = snapshot_state(drill, cli, tmp_path), state_of(live_target)
    code, out, err = cli("diff", drill.snapshots, "latest", "--target", live_target, "--allowed-signers",
                         drill.allowed_signers, *shares(drill), "--json")
    assert code == 0, err
    result = json.loads(out)
    expected = diff_counts(snapshot, live)
    for kind, counts in expected.items():
        got = result["kinds"][kind]
        assert {k: got[k] for k in counts} == counts, kind
    assert result["changes_total"] == sum(c["missing"] + c["extra"] + c["changed"] for c in expected.values())
    incident = drill.doc["incident"]
    assert result["kinds"]["device"]["missing"] == incident["devices_deleted"]
    assert result["findings"]["revocation-kept"]["count"] >= 1  # revoked after the snapshot: never re-activated
    assert result["findings"]["key-version-kept"]["count"] >= 1  # rotated after the snapshot: never rolled back
    assert result["findings"]["only-in-live"]["count"] >= incident["accounts_created_after_snapshot"]
    changed = [c for c in result["changes"] if c["change"] == "changed" and c["kind"] == "setting"]
    assert {f["field"] for c in changed for f in c["fields"]} >= {"value", "updated_at"}
    assert state_of(live_target) == live  # a dry run writes nothing


@pytest.mark.parametrize("policies", [
    (),
    ("identity=overwrite-changed", "device=overwrite-changed", "setting=overwrite-changed",
     "role=overwrite-changed"),
    ("device=overwrite-changed,delete-extra", "role=delete-extra", "identity=delete-extra"),
], ids=["restore-missing", "overwrite-changed", "delete-extra"])
def test_restore_reaches_exactly_what_the_policies_promise(drill, live_target, cli, tmp_path: Path,
                                                           policies: tuple[str, ...]) -> None:
    snapshot, live = snapshot_state(drill, cli, tmp_path), state_of(live_target)
    chosen: dict[str, set[str]] = {}
    for p in policies:
        kind, _, values = p.partition("=")
        chosen.setdefault(kind, set()).update(values.split(","))
    args = [a for p in policies for a in ("--policy", p)]
    code, out, err = restore(cli, drill, live_target, "--yes", "--json", *args)
    assert code == 0, err
    outcome = json.loads(out)
    assert outcome["status"] == "completed" and all(s["status"] == "verified" for s in outcome["steps"])
    end = state_of(live_target)
    assert end == expected_end_state(snapshot, live, chosen)
    assert safety_holds(live, end) == []
    restored = {s["step"]: s for s in outcome["steps"]}
    assert restored["devices"]["inserted"] == drill.doc["incident"]["devices_deleted"]


def test_dry_run_writes_nothing(drill, live_target, cli) -> None:
    before = state_of(live_target)
    code, out, err = restore(cli, drill, live_target, "--dry-run", "--policy", "device=delete-extra")
    assert code == 0, err
    assert "plan:" in out and "delete" in out
    assert state_of(live_target) == before


def test_steps_can_be_chosen_and_declined(drill, live_target, cli, monkeypatch) -> None:
    before = state_of(live_target)
    code, out, err = restore(cli, drill, live_target, "--yes", "--step", "settings", "--json",
                             "--policy", "setting=overwrite-changed")
    assert code == 0, err
    assert [s["step"] for s in json.loads(out)["steps"]] == ["settings"]
    after = state_of(live_target)
    assert after["device"] == before["device"] and after["identity"] == before["identity"]
    assert after["setting"] != before["setting"]


def test_resume_rules(drill, live_target, cli, tmp_path: Path) -> None:
    code, _, err = restore(cli, drill, live_target, "--yes", "--resume")
    assert code == 17 and "no interrupted restore" in err
    with open_store(live_target) as store:  # an interrupted run of another snapshot
        from enigm_recover.state.journal import RestoreRun

        store.start_run(RestoreRun("feedc0ffee00", drill.doc["snapshots"]["ids"][0], "0" * 64, "[]", "x"))
    code, _, err = restore(cli, drill, live_target, "--yes")
    assert code == 17 and "interrupted restore" in err and "--resume" in err
    code, _, err = restore(cli, drill, live_target, "--yes", "--resume")
    assert code == 17 and "not " + drill.latest in err


def test_a_restore_is_refused_while_another_process_holds_the_target(drill, live_target, cli) -> None:
    """Two restores (or two resumes) into one target never run at once; the lock goes with its holder."""
    holder = open_store(live_target)
    holder.lock_restores()
    code, _, err = restore(cli, drill, live_target, "--yes")
    assert code == 17 and "is running right now" in err and "the lock goes with its process" in err
    assert "accepted share" not in err  # refused before custodians were asked for anything
    with open_store(live_target) as store:
        assert store.unfinished_run() is None  # refused before anything was recorded
    holder.close()
    assert restore(cli, drill, live_target, "--yes")[0] == 0


def test_a_second_restore_finds_nothing_to_do(drill, live_target, cli) -> None:
    assert restore(cli, drill, live_target, "--yes")[0] == 0
    once = state_of(live_target)
    code, out, err = restore(cli, drill, live_target, "--yes", "--json")
    assert code == 0, err
    assert all(s["inserted"] == s["updated"] == s["deleted"] == 0 for s in json.loads(out)["steps"])
    assert state_of(live_target) == once



def test_a_total_loss_restored_with_its_lines_sealed_on_disk_is_the_snapshot(drill, live_target, cli,
                                                                              tmp_path: Path, monkeypatch) -> None:
    """The four tables lost: every record is a change, kept compactly, its line sealed in the temporary folder
    past the line store's bound (here, from the first block). The restore ends verified with live equal to
    the snapshot, and leaves nothing in the temporary folder."""
    import tempfile

    import enigm_recover.recovery.line_store as line_store

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", None)
    monkeypatch.setattr(line_store, "MEMORY_BYTES", 0)
    monkeypatch.setattr(line_store, "BLOCK_BYTES", 2048)
    snapshot = snapshot_state(drill, cli, tmp_path)
    with open_store(live_target) as store, store.transaction() as conn:
        for kind in KINDS:
            conn.execute(f"DELETE FROM {kind.table}")
    code, out, err = restore(cli, drill, live_target, "--yes", "--json")
    assert code == 0, err
    outcome = json.loads(out)
    assert outcome["status"] == "completed" and all(s["status"] == "verified" for s in outcome["steps"])
    assert sum(s["inserted"] for s in outcome["steps"]) == sum(len(rows) for rows in snapshot.values())
    assert state_of(live_target) == snapshot
    assert os.listdir(scratch) == []


def test_an_account_deleted_while_devices_are_restored_leaves_its_devices_out(drill, live_target, cli,
                                                                              tmp_path: Path, monkeypatch) -> None:
    """Every device lost, every account kept: each device batch is a run of missing records, whose accounts
    are looked up before it is written, on a session of their own while the batch before is written. An
    account the platform
    deletes once the device step has begun is gone for its devices' batch: they are left out, as orphans,
    and every other device is restored."""
    from enigm_recover.state.model import DEVICE
    from enigm_recover.state.postgres_store import PostgresStore
    from enigm_recover.state.sqlite_store import SQLiteStore

    snapshot = snapshot_state(drill, cli, tmp_path)
    with open_store(live_target) as store, store.transaction() as conn:
        conn.execute("DELETE FROM devices")
    at = DEVICE.position("account_id")
    order = sorted(snapshot["device"])  # the restore's key order
    first_at: dict[str, int] = {}
    for position, key in enumerate(order):
        first_at.setdefault(snapshot["device"][key][at], position)
    # An account whose devices all come in the fourth batch of 5 or later: looked up after the deletion.
    gone = next(account for account, position in first_at.items() if position >= 15)
    store_class = SQLiteStore if live_target.startswith("sqlite") else PostgresStore
    original = store_class.apply_with

    def deleting_first(self, run_id, kind, keys, build):  # type: ignore[no-untyped-def]
        if kind is DEVICE and not deleted:
            with open_store(live_target) as platform, platform.transaction() as conn:
                conn.execute(f"DELETE FROM identities WHERE account_id = '{gone}'")
            deleted.append(gone)
        return original(self, run_id, kind, keys, build)

    deleted: list[str] = []
    monkeypatch.setattr(store_class, "apply_with", deleting_first)
    code, out, err = restore(cli, drill, live_target, "--yes", "--json", "--batch-size", "5")
    assert deleted and code == 0, (out, err)
    devices = next(s for s in json.loads(out)["steps"] if s["step"] == "devices")
    orphans = {key for key, row in snapshot["device"].items() if row[at] == gone}
    assert orphans and devices["status"] == "verified"
    assert devices["inserted"] == len(snapshot["device"]) - len(orphans), devices
    assert state_of(live_target)["device"] == {k: r for k, r in snapshot["device"].items() if k not in orphans}


def test_on_sqlite_an_account_deleted_after_its_lookup_ahead_still_leaves_its_devices_out(
        drill, cli, tmp_path: Path, monkeypatch) -> None:
    """SQLite keeps a batch's accounts as they were read: the batch's write lock lets nobody delete one
    before it commits. A lookup made ahead, on a session of its own, is used only while no other session has
    committed since (``PRAGMA data_version``): an account deleted after that lookup, before its devices'
    batch, is looked up again inside the batch, and its devices are left out."""
    import sqlite3
    from contextlib import closing

    from enigm_recover.recovery.apply import Restorer
    from enigm_recover.state.model import DEVICE

    target = drill.target
    snapshot = snapshot_state(drill, cli, tmp_path)
    with open_store(target) as store, store.transaction() as conn:
        conn.execute("DELETE FROM devices")
    at = DEVICE.position("account_id")
    order = sorted(snapshot["device"])
    gone = snapshot["device"][order[7]][at]  # in the second batch of 5
    orphans = {key for key, row in snapshot["device"].items() if row[at] == gone}
    original = Restorer._with_accounts
    deleted: list[str] = []

    def deleting_after_the_lookup(self, kind, chunks):  # type: ignore[no-untyped-def]
        for chunk, accounts in original(self, kind, chunks):
            if accounts is not None and any(key in orphans for key in chunk.keys) and not deleted:
                assert gone in accounts.found.result()  # looked up while it was there
                with closing(sqlite3.connect(target.removeprefix("sqlite:///"))) as platform, platform:
                    platform.execute("DELETE FROM identities WHERE account_id = ?", (gone,))
                deleted.append(gone)
            yield chunk, accounts

    monkeypatch.setattr(Restorer, "_with_accounts", deleting_after_the_lookup)
    code, out, err = restore(cli, drill, target, "--yes", "--json", "--batch-size", "5")
    assert deleted and code == 0, (out, err)
    devices = next(s for s in json.loads(out)["steps"] if s["step"] == "devices")
    assert devices["inserted"] == len(snapshot["device"]) - len(orphans), devices
    assert state_of(target)["device"] == {k: r for k, r in snapshot["device"].items() if k not in orphans}
