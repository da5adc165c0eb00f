"""A drill's slow restore (``drill --slow-restore``) practised through the app: the restore starts, the
operator quits in the middle of it, a new app on the same state folder offers the paused run, resumes it, and
the restore ends verified with every record written once.

Driven through Pilot over the smallest drill the fixtures make, served by the in-process SSH server, with
the very batch size and pace ``drill --slow-restore`` sets; every wait is on a condition, never a fixed time.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from enigm_recover.app.tour import SECOND_OPERATOR, enter_share, on, read_cards, until, walk
from enigm_recover.cli.commands_app import SLOW_BATCH, SLOW_PACE
from enigm_recover.recovery.audit import verify_log
from enigm_recover.runbook.executor import RunState
from tests.restore_oracle import expected_end_state, safety_holds
from tests.test_app import POLICIES, make_app, run, served, text_of  # noqa: F401 - served is a fixture
from tests.test_restore import snapshot_state, state_of


def journal(target: str) -> tuple[list[tuple[str, str]], list[tuple[str, str, int, str, int, int, int]]]:
    """The target's restore journal: its runs (id, status) and their batches (run, step, number, last key,
    inserted, updated, deleted)."""
    with closing(sqlite3.connect(target.removeprefix("sqlite:///"))) as conn:
        try:
            runs = conn.execute("SELECT run_id, status FROM enigm_restore_runs ORDER BY started_at").fetchall()
            batches = conn.execute("SELECT run_id, step, batch, last_key, inserted, updated, deleted "
                                   "FROM enigm_restore_batches ORDER BY run_id, step, batch").fetchall()
        except sqlite3.OperationalError:  # no restore has started yet: no journal tables
            return [], []
    return runs, batches


def planned(app) -> dict[str, tuple[int, int, int]]:
    """The restore plan the operator was shown: step -> (insert, overwrite, delete)."""
    table = app.screen.query_one("#plan")
    rows = [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]
    return {row[0]: tuple(int(n.replace(",", "")) for n in row[2:5]) for row in rows}


def test_quit_in_the_middle_of_a_slow_restore_then_resume_it_in_a_new_app(served, tmp_path: Path, cli) -> None:
    doc, drill = served
    snapshot, live = snapshot_state(drill, cli, tmp_path), state_of(drill.target)
    cards = read_cards({name: Path(path) for name, path in doc["custodians"].items()})
    first = make_app(doc, tmp_path, batch_size=SLOW_BATCH, restore_pace=SLOW_PACE)  # drill --slow-restore
    plan: dict[str, tuple[int, int, int]] = {}

    async def until_mid_restore() -> None:
        async with first.run_test(size=(120, 40)) as pilot:
            await walk(pilot, cards, "restore", paste=True)
            assert first.executor.current.id == "restore"
            plan.update(planned(first))
            await pilot.press("ctrl+r")
            # a batch or more committed, with more to come: the restore is under way
            await until(pilot, lambda: len(journal(drill.target)[1]) >= 1, 60, "the first committed batch")
            assert on(first, "StepScreen", state="running") and first.busy
            await pilot.press("ctrl+q")  # stops at the next batch, then pauses the run
            await until(pilot, lambda: first.return_value is not None, 60, "the app to pause the run and end")
        assert first.internal_errors == []

    run(until_mid_restore)
    assert "paused at step restore" in first.return_value
    ceremony, folder = first.executor.ceremony, first.executor.folder
    state = RunState.from_file(folder / "run.toml")
    assert state.status == "paused" and "restore" in state.restore_started
    [(run_id, status)], before = journal(drill.target)
    assert status == "running" and 0 < len(before)  # interrupted part-way, the committed batches journaled
    assert sum(b[4] + b[5] + b[6] for b in before) < sum(sum(counts) for counts in plan.values())

    second = make_app(doc, tmp_path, batch_size=SLOW_BATCH)  # the same state folder; resumed at full speed

    async def resume_to_the_end() -> None:
        async with second.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: on(second, "StartScreen") and second.screen.runbooks is not None)
            offered = text_of(second, "#paused-runs")
            assert ceremony in offered and "Restore" in offered, offered
            await pilot.press("r")
            await until(pilot, lambda: on(second, "QuorumScreen"), 60, "the share entry (the key is never kept)")
            assert second.executor.ceremony == ceremony
            for name in ("amara", "chen", "emeka"):
                await enter_share(pilot, name, cards[name], paste=True)
            await until(pilot, lambda: on(second, "SecretDialog"))
            await pilot.press("enter")
            await until(pilot, lambda: on(second, "StepScreen", state="confirm"), 60, "the restore step again")
            assert second.executor.current.id == "restore"
            second.screen.query_one("#second-operator").focus()
            await pilot.press(*SECOND_OPERATOR, "ctrl+r")
            await until(pilot, lambda: on(second, "StepScreen", state="done"), 60, "the resumed restore")
            result = second.screen.result
            assert result.status == "verified" and result.detail["resumed"] and result.detail["run"] == run_id
            await pilot.press("enter")
            while not on(second, "DoneScreen"):  # the roles, the target's verification, the sign-off
                await until(pilot, lambda: on(second, "StepScreen", state="confirm"), 60, "the next step")
                step = second.executor.current.id
                await pilot.press("ctrl+r")
                await until(pilot, lambda: on(second, "StepScreen", state="done"), 60, f"step {step}")
                assert second.screen.result.ok, (step, second.screen.result.summary)
                await pilot.press("enter")
                await until(pilot, lambda: on(second, "DoneScreen") or on(second, "StepScreen", state="confirm"))
            assert second.executor.status == "completed"
            await pilot.press("q")
        assert second.internal_errors == []

    run(resume_to_the_end)

    # the records are right: what the policies promise, the safety rules kept
    end = state_of(drill.target)
    assert end == expected_end_state(snapshot, live, POLICIES)
    assert safety_holds(live, end) == []
    # every batch applied once: the interrupted run went on (no second run for the step), its batches number
    # on without a gap or a repeat over ever later keys, and they add up to the plan the operator was shown
    runs, batches = journal(drill.target)
    assert runs[0] == (run_id, "completed") and len(runs) == 2  # the restore, then the roles' own restore
    ours = [b for b in batches if b[0] == run_id]
    assert set(before) <= set(ours)  # the batches committed before the quit are kept as they were
    for step in {b[1] for b in ours}:
        numbers = [b[2] for b in ours if b[1] == step]
        assert numbers == list(range(1, len(numbers) + 1)), (step, numbers)
        keys = [b[3] for b in ours if b[1] == step]
        assert len(set(keys)) == len(keys), (step, "a batch's keys applied twice")
    done = {step: tuple(sum(b[i] for b in ours if b[1] == step) for i in (4, 5, 6)) for step in {b[1] for b in ours}}
    assert {step: counts for step, counts in done.items() if any(counts)} == \
        {step: counts for step, counts in plan.items() if any(counts)}
    verdict = verify_log(folder / "audit.jsonl")
    assert verdict.intact, verdict
