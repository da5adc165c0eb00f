"""A resumed run is checked before any custodian is asked again; a paused run can be aborted and cleaned up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from enigm_recover.recovery.session import load_report
from enigm_recover.runbook.executor import RunbookExecutor
from enigm_recover.runbook.loader import BUILTIN_DIR, load_runbook
from tests.conftest import Drill
from tests.test_runbooks import settings_for, share_args, walk_until

RESUME = ["run", "tabletop-drill", "--resume", "--yes", "--operator", "lee", "--second-operator", "dana"]


def paused_at_restore(drill: Drill, state: Path) -> RunbookExecutor:
    ex = RunbookExecutor.start(load_runbook(BUILTIN_DIR / "tabletop-drill.toml"), settings_for(drill, state))
    walk_until(ex, drill, "restore")
    ex.pause("the shift ended")
    return ex


def audit_actions(folder: Path) -> list[str]:
    return [json.loads(line)["action"] for line in (folder / "audit.jsonl").read_text().splitlines()]


def assert_refused_before_any_share(folder: Path, code: int, err: str, expected_code: int) -> None:
    assert code == expected_code, err
    assert "cannot continue" in err and "--another-snapshot" in err and "--abort REASON" in err, err
    actions = audit_actions(folder)
    resumed = len(actions) - actions[::-1].index("recovery-resumed")
    assert "share-accepted" not in actions[resumed:]  # no custodian was asked again
    assert "resume-check" in actions[resumed:]
    assert load_report(folder)["status"] == "paused"  # the run waits for a decision


def test_a_resume_whose_snapshot_was_deleted_is_refused_before_any_share(drill: Drill, cli, tmp_path: Path) -> None:
    ex = paused_at_restore(drill, tmp_path / "state")
    for path in drill.snapshots.glob(f"{ex.state.snapshot}.*"):
        path.unlink()
    code, _, err = cli("--state-dir", tmp_path / "state", *RESUME, *share_args(drill))
    assert_refused_before_any_share(ex.folder, code, err, 6)

    # the first way forward: choose another snapshot, and the run goes on from there
    code, _, err = cli("--state-dir", tmp_path / "state", *RESUME, "--another-snapshot", "--snapshot", "latest",
                       *share_args(drill))
    assert code == 0, err
    report = load_report(ex.folder)
    assert report["status"] == "completed" and report["snapshot"]["snapshot"] != ex.state.snapshot
    assert "snapshot-unchosen" in audit_actions(ex.folder)


def test_a_resume_whose_source_is_gone_is_refused_before_any_share(drill: Drill, cli, tmp_path: Path) -> None:
    ex = paused_at_restore(drill, tmp_path / "state")
    drill.snapshots.rename(drill.snapshots.with_name("moved-away"))
    code, _, err = cli("--state-dir", tmp_path / "state", *RESUME, *share_args(drill))
    assert code != 0 and "Traceback" not in err
    assert_refused_before_any_share(ex.folder, code, err, code)


def test_a_resume_while_another_restore_holds_the_lock_is_refused_before_any_share(drill: Drill, cli,
                                                                                   tmp_path: Path) -> None:
    from enigm_recover.state.stores import open_store

    ex = paused_at_restore(drill, tmp_path / "state")
    holder = open_store(drill.target)
    holder.lock_restores()
    try:
        code, _, err = cli("--state-dir", tmp_path / "state", *RESUME, *share_args(drill))
    finally:
        holder.close()
    assert_refused_before_any_share(ex.folder, code, err, 17)
    # the second way forward: abort the paused run, with a reason for the audit log and the report
    code, out, err = cli("--state-dir", tmp_path / "state", "run", "tabletop-drill", "--run", ex.ceremony,
                         "--abort", "the drill moved to Thursday")
    assert code == 0, err
    report = load_report(ex.folder)
    assert report["status"] == "aborted" and "the drill moved to Thursday" in report["reason"]
    assert "the drill moved to Thursday" in (ex.folder / "audit.jsonl").read_text()


def test_the_executor_check_refuses_a_deleted_snapshot_and_holds_the_lock_when_it_passes(drill: Drill,
                                                                                        tmp_path: Path) -> None:
    from enigm_recover.errors import RestoreRefused, SnapshotNotFound
    from enigm_recover.state.stores import open_store

    state = tmp_path / "state"
    runbook = load_runbook(BUILTIN_DIR / "tabletop-drill.toml")
    ex = paused_at_restore(drill, state)
    again = RunbookExecutor.resume(runbook, settings_for(drill, state, "lee"))
    again.check_can_continue()  # passes, and now holds the lock: another restore is refused
    other = open_store(drill.target)
    try:
        with pytest.raises(RestoreRefused):
            other.lock_restores()
    finally:
        other.close()
    again.pause("checked")
    for path in drill.snapshots.glob(f"{ex.state.snapshot}.*"):
        path.unlink()
    again = RunbookExecutor.resume(runbook, settings_for(drill, state, "lee"))
    with pytest.raises(SnapshotNotFound):
        again.check_can_continue()
    assert not again.quorum_open
    again.close()


def test_runs_are_listed_aborted_with_a_reason_and_old_ones_cleaned_up(drill: Drill, cli, tmp_path: Path) -> None:
    import os
    import time

    state = tmp_path / "state"
    old = paused_at_restore(drill, state)
    recent = paused_at_restore(drill, state)
    code, out, err = cli("--state-dir", state, "runs", "list", "--json")
    assert code == 0, err
    listed = json.loads(out)["runs"]
    assert {r["ceremony"] for r in listed} == {old.ceremony, recent.ceremony}
    assert all(r["status"] == "paused" and r["runbook"] == "tabletop-drill" for r in listed)
    code, out, _ = cli("--state-dir", state, "runs", "list")
    assert old.ceremony in out and "NEXT STEP" in out

    week_ago = time.time() - 8 * 86400
    os.utime(old.folder / "run.toml", (week_ago, week_ago))
    code, out, _ = cli("--state-dir", state, "runs", "clean", "--older-than", "7d", "--dry-run")
    assert code == 0 and f"would abort run {old.ceremony}" in out and recent.ceremony not in out
    assert load_report(old.folder)["status"] == "paused"
    code, out, err = cli("--state-dir", state, "runs", "clean", "--older-than", "7d", "--operator", "dana", "--json")
    assert code == 0, err
    assert json.loads(out)["aborted"] == [old.ceremony]
    report = load_report(old.folder)
    assert report["status"] == "aborted" and "paused for more than 7d" in report["reason"]
    assert (old.folder / "audit.jsonl").exists()  # evidence is kept

    code, _, err = cli("--state-dir", state, "runs", "abort", recent.ceremony, "--reason", "exercise over")
    assert code == 0, err
    assert load_report(recent.folder)["status"] == "aborted"
    entries = [json.loads(line) for line in (recent.folder / "audit.jsonl").read_text().splitlines()]
    assert any(e["action"] == "run-aborted" and e["inputs"]["reason"] == "exercise over" for e in entries)
    from enigm_recover.recovery.audit import verify_log

    assert verify_log(recent.folder / "audit.jsonl").intact
    code, out, _ = cli("--state-dir", state, "runs", "list", "--json")
    assert json.loads(out)["runs"] == []
    code, _, err = cli("--state-dir", state, "runs", "abort", recent.ceremony, "--reason", "again")
    assert code == 9 and "runs list" in err
    code, _, err = cli("--state-dir", state, "runs", "clean", "--older-than", "soon")
    assert code == 2 and "7d" in err


def test_a_paused_run_whose_runbook_changed_can_still_be_aborted(drill: Drill, cli, tmp_path: Path) -> None:
    import shutil

    state = tmp_path / "state"
    own = tmp_path / "runbooks"
    own.mkdir()
    shutil.copy(BUILTIN_DIR / "tabletop-drill.toml", own / "my-drill.toml")
    text = (own / "my-drill.toml").read_text().replace('name = "tabletop-drill"', 'name = "my-drill"')
    (own / "my-drill.toml").write_text(text)
    ex = RunbookExecutor.start(load_runbook(own / "my-drill.toml"), settings_for(drill, state))
    walk_until(ex, drill, "dry-run")
    ex.pause()
    (own / "my-drill.toml").write_text(text + "\n# edited since\n")
    code, _, err = cli("--state-dir", state, "run", "my-drill", "--runbooks", own, "--abort", "runbook rewritten")
    assert code == 0, err
    assert load_report(ex.folder)["status"] == "aborted"


# -- the app: the same check, a dialog with both ways forward ------------------------------------------------


def test_the_app_offers_another_snapshot_or_abort_when_a_resume_cannot_continue(drill: Drill, tmp_path: Path) -> None:
    import asyncio

    from enigm_recover.app.app import RecoverApp
    from enigm_recover.app.options import drill_options
    from enigm_recover.app.tour import on, until
    from enigm_recover.drill.serve import serve_drill
    from tests.conftest import DRILL_AT

    state = tmp_path / "state"
    runs = {ex.ceremony: ex for ex in (paused_at_restore(drill, state), paused_at_restore(drill, state))}
    for path in drill.snapshots.glob(f"{next(iter(runs.values())).state.snapshot}.*"):
        path.unlink()  # both runs chose the newest snapshot: it is gone
    server, doc = serve_drill(drill.root)
    aborted: list[str] = []

    def make_app() -> RecoverApp:
        return RecoverApp(drill_options(doc, state_dir=state, cache_dir=tmp_path / "cache", operator="dana",
                                        now=lambda: DRILL_AT, still=True))

    async def abort_it() -> None:
        app = make_app()
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: on(app, "StartScreen") and app.screen.runbooks is not None)
            await pilot.press("r")
            await until(pilot, lambda: on(app, "ResumeBlockedDialog"), 60)
            assert app.executor is None  # no share entry opened
            assert "cannot continue" in str(app.screen.query_one(".dialog-title").content)
            aborted.append(app.screen.blocked.ceremony)
            app.screen.query_one("#abort").press()
            await until(pilot, lambda: on(app, "QuestionDialog"))
            await pilot.press(*"retention", "space", *"deleted", "space", *"it")
            await pilot.press("enter")
            await until(pilot, lambda: load_report(runs[aborted[0]].folder)["status"] == "aborted", 60)
        assert app.internal_errors == []

    async def choose_another() -> None:
        app = make_app()
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: on(app, "StartScreen") and app.screen.runbooks is not None)
            await pilot.press("r")
            await until(pilot, lambda: on(app, "ResumeBlockedDialog"), 60)
            assert app.screen.blocked.ceremony != aborted[0]
            app.screen.query_one("#another-snapshot").press()
            await until(pilot, lambda: app.executor is not None, 60)
            assert app.executor.ceremony != aborted[0] and app.executor.current.id == "select"
            await pilot.press("ctrl+q")
        assert app.internal_errors == []

    try:
        asyncio.run(asyncio.wait_for(abort_it(), timeout=240))
        folder = runs[aborted[0]].folder
        assert "retention deleted it" in load_report(folder)["reason"]
        assert "retention deleted it" in (folder / "audit.jsonl").read_text()
        assert "share-accepted" not in audit_actions(folder)[-8:]
        asyncio.run(asyncio.wait_for(choose_another(), timeout=240))
    finally:
        server.stop()


def test_a_new_drill_never_silently_replaces_one_with_a_paused_run(drill: Drill, cli, tmp_path: Path) -> None:
    state = tmp_path / "state"
    ex = paused_at_restore(drill, state)
    before = (drill.root / "drill.toml").read_text()
    small = ["--identities", "20", "--devices-per-identity", "1", "--snapshots", "1"]
    code, _, err = cli("--state-dir", state, "drill", "--no-tui", "--replace", drill.root, *small)
    assert code == 2, err
    assert ex.ceremony in err and "--resume" in err and "--fresh" in err
    assert (drill.root / "drill.toml").read_text() == before and load_report(ex.folder)["status"] == "paused"

    code, out, err = cli("--state-dir", state, "drill", "--no-tui", "--resume", drill.root)
    assert code == 0, err
    assert ex.ceremony in out and "drill --resume" in out
    assert (drill.root / "drill.toml").read_text() == before

    code, out, err = cli("--state-dir", state, "drill", "--no-tui", "--replace", "--fresh", drill.root, *small,
                         "--operator", "dana")
    assert code == 0, err
    assert f"aborted paused run {ex.ceremony}" in out
    report = load_report(ex.folder)
    assert report["status"] == "aborted" and "a fresh drill replaced" in report["reason"]
