"""The guided recovery app, driven through Textual's Pilot over the drill served by the in-process SSH server.

Every wait is on a condition (``tour.until``), never a fixed sleep; shares are
typed key by key.
"""

from __future__ import annotations

import asyncio
import re
import threading
from pathlib import Path

import pytest

from enigm_recover.app.app import RecoverApp, scrub
from enigm_recover.app.options import drill_options
from enigm_recover.app.tour import enter_share, on, read_cards, share_keys, until, walk, wrong_share
from enigm_recover.progress import Stage
from enigm_recover.recovery.audit import readable_head, verify_log
from enigm_recover.runbook.executor import RunState
from enigm_recover.state.stores import open_store
from tests.conftest import DRILL_AT
from tests.restore_oracle import expected_end_state, safety_holds
from tests.test_restore import snapshot_state, state_of

POLICIES = {"identity": {"overwrite-changed"}, "device": {"overwrite-changed"}, "setting": {"overwrite-changed"},
            "role": {"overwrite-changed", "delete-extra"}}  # what the tabletop-drill runbook restores with


@pytest.fixture
def served(drill):
    """The drill served over SFTP on 127.0.0.1: (doc, drill)."""
    from enigm_recover.drill.serve import serve_drill

    server, doc = serve_drill(drill.root)
    yield doc, drill
    server.stop()


def make_app(doc: dict, tmp_path: Path, **overrides) -> RecoverApp:
    options = drill_options(doc, state_dir=tmp_path / "state", cache_dir=tmp_path / "cache", operator="dana",
                            **{"now": lambda: DRILL_AT, "still": True, **overrides})
    return RecoverApp(options)


def run(scenario) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout=240))


def text_of(app, selector: str) -> str:
    """The plain text a widget shows (a Static's content, an option list's prompts)."""
    widget = app.screen.query_one(selector)
    if hasattr(widget, "options"):
        return "\n".join(str(option.prompt) for option in widget.options)
    if hasattr(widget, "get_row_at"):
        return "\n".join(" ".join(str(cell) for cell in widget.get_row_at(i)) for i in range(widget.row_count))
    return str(widget.content)


async def first_steps_until_an_error(pilot) -> None:
    """From the start screen: confirm the first (checkpoint) step and go on to the snapshot listing, which
    is expected to fail; returns once the error dialog shows."""
    app = pilot.app
    await until(pilot, lambda: on(app, "StartScreen") and app.screen.runbooks is not None)
    await pilot.press("enter")
    await until(pilot, lambda: on(app, "StepScreen", state="confirm"))
    await pilot.press("ctrl+r")
    await until(pilot, lambda: on(app, "StepScreen", state="done"))
    await pilot.press("enter")
    await until(pilot, lambda: on(app, "ErrorDialog"), 60)


# -- the whole drill -------------------------------------------------------------------------------------


def test_the_whole_drill_through_the_app(served, tmp_path: Path, cli) -> None:
    doc, drill = served
    assert doc["recovery"]["kind"] == "hybrid"  # the walk opens a snapshot sealed to a post-quantum key
    snapshot, live = snapshot_state(drill, cli, tmp_path), state_of(drill.target)
    cards = read_cards({name: Path(path) for name, path in doc["custodians"].items()})
    app = make_app(doc, tmp_path)

    async def scenario() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: on(app, "StartScreen") and app.screen.runbooks is not None)
            assert "tabletop-drill" in text_of(app, "#runbooks")
            await pilot.press("enter")
            await until(pilot, lambda: on(app, "StepScreen", state="confirm"))
            assert app.executor.current.id == "brief"
            header = str(app.screen.query_one("#stage-header").content)
            assert header.rstrip().endswith("Checkpoint")
            await pilot.press(*"roles assigned", "ctrl+r")
            await until(pilot, lambda: on(app, "StepScreen", state="done"))
            assert not app.screen.query_one("#progress").display  # no machine work: no progress bar
            await pilot.press("enter")
            await until(pilot, lambda: on(app, "SnapshotsScreen"), 60)
            table = app.screen.query_one("#snapshot-table")
            assert table.row_count == 3 and app.screen.highlighted.id == drill.latest
            assert "signed by trusted principal backup@drill" in text_of(app, "#manifest")
            await pilot.press("enter")
            await until(pilot, lambda: on(app, "VerifyScreen", state="done"), 60)
            checks = app.screen.query_one("#checks")
            assert checks.row_count == 4
            await pilot.press("enter")
            await until(pilot, lambda: on(app, "QuorumScreen"))
            assert app.executor.ceremony in text_of(app, "#ceremony-note")

            # a share typed letter by letter, bound to the ceremony by typing its id back
            await enter_share(pilot, "amara", cards["amara"], typed_ceremony=app.executor.ceremony, prefixes=False)
            await until(pilot, lambda: "Accepted: amara" in text_of(app, "#verdict"))
            # a wrong share (two words swapped; pasted) is rejected with its verdict, and nothing of it is shown
            await enter_share(pilot, "chen", wrong_share(cards["chen"]), paste=True)
            await until(pilot, lambda: "Rejected, chen" in text_of(app, "#verdict"))
            assert "checksum" in text_of(app, "#verdict") and "re-read the card" in text_of(app, "#verdict")
            assert app.screen.query_one("#share").value == wrong_share(cards["chen"])  # kept, masked, to correct
            assert app.screen.query_one("#share").password
            await pilot.press("ctrl+l")
            # a word no card can hold is named by its position as it is typed
            await pilot.press(*"xqzz", "space")
            await until(pilot, lambda: "not SLIP-39 words: word 1" in text_of(app, "#word-state"))
            assert text_of(app, "#verdict") == ""  # a new attempt: the last verdict went
            await pilot.press("ctrl+l")
            await pilot.press(*share_keys(cards["chen"]), "enter")
            await until(pilot, lambda: "Accepted: chen" in text_of(app, "#verdict"))
            progress = text_of(app, "#quorum-progress")
            assert "2 of 3" in progress and "amara" in progress and "chen" in progress
            await enter_share(pilot, "emeka", cards["emeka"])
            await until(pilot, lambda: on(app, "SecretDialog"))
            await pilot.press("enter")  # no passphrase on the drill's cards
            await until(pilot, lambda: on(app, "DryRunScreen", state="done"), 60)

            # the dry run: findings first, then the changes, filtered and paged
            findings = text_of(app, "#findings")
            assert "revocation-kept" in findings and "key-version-kept" in findings
            browser = app.screen.query_one("#browser")
            total = len(app.executor.dry_run.changes)
            assert browser.total() == total > 0
            await pilot.press("k", "k")  # kind: identity, then device
            await until(pilot, lambda: browser.filters["kind"] == "device")
            assert all(c.kind == "device" for c in browser._page)
            await pilot.press("c")  # change: missing
            await until(pilot, lambda: browser.filters["change"] == "missing")
            assert browser.total() == drill.doc["incident"]["devices_deleted"]
            assert "missing from live" in text_of(app, "#change-detail")
            await pilot.press("x", "f")  # every change with the first finding
            await until(pilot, lambda: browser.filters["finding"] is not None)
            assert browser.filters["finding"] in text_of(app, "#change-detail")
            await pilot.press("x", "n")  # one page only: next page stays
            assert browser.page_start == 0
            await pilot.press("enter")

            # the restore steps, each confirmed by a second operator, whose name carries to the next step
            for step_id in ("restore", "restore-roles"):
                await until(pilot, lambda: on(app, "StepScreen", state="confirm"), 60)
                assert app.executor.current.id == step_id
                assert app.screen.query_one("#plan").row_count >= 1
                if step_id == "restore":
                    await pilot.press("ctrl+r")  # without the second operator: refused, the run stays
                    await until(pilot, lambda: on(app, "ErrorDialog"))
                    assert "second operator" in text_of(app, "#error-message")
                    await pilot.press("enter")
                    await until(pilot, lambda: on(app, "StepScreen", state="failed"))
                    app.screen.query_one("#second-operator").focus()
                    await pilot.press(*"lee")
                else:
                    assert app.screen.query_one("#operator").value == "dana"
                    assert app.screen.query_one("#second-operator").value == "lee"  # editable, prefilled
                await pilot.press("ctrl+r")
                await until(pilot, lambda: on(app, "StepScreen", state="done"), 60)
                assert app.screen.result.status == "verified"
                assert "; verified" not in text_of(app, "#step-result")  # the status is said once, in front
                assert app.screen.result.confirmed_by == ["dana", "lee"]
                await pilot.press("enter")
            for step_id in ("verify-target", "debrief"):
                await until(pilot, lambda: on(app, "StepScreen", state="confirm"), 60)
                assert app.executor.current.id == step_id
                await pilot.press("ctrl+r")
                await until(pilot, lambda: on(app, "StepScreen", state="done"), 60)
                await pilot.press("enter")
            await until(pilot, lambda: on(app, "DoneScreen"))
            evidence = text_of(app, "#evidence")
            grouped = readable_head(app.executor.recovery.audit.head)  # written down in groups of four
            assert " ".join(evidence.split()).count(grouped) == 1 and "report.md" in evidence
            assert "apart from the log" in evidence
            assert app.executor.status == "completed"
            await pilot.press("q")
        assert app.internal_errors == []

    run(scenario)
    assert "completed" in app.return_value
    end = state_of(drill.target)
    assert end == expected_end_state(snapshot, live, POLICIES)
    assert safety_holds(live, end) == []
    assert not any(r[0] == "ops.mallory" for r in end["role"].values())
    folder = app.executor.folder
    verdict = verify_log(folder / "audit.jsonl")
    assert verdict.intact and verdict.head == app.executor.recovery.audit.head, verdict
    log = (folder / "audit.jsonl").read_text()
    assert '"share-rejected"' in log and '"bound_to_ceremony":true' in log
    for words in cards.values():  # no share word reached the log (words shared with other text aside)
        assert " ".join(words.split()[:3]) not in log


def test_quit_mid_run_and_resume_at_the_same_step(served, tmp_path: Path) -> None:
    doc, _ = served
    cards = read_cards({name: Path(path) for name, path in doc["custodians"].items()})
    first = make_app(doc, tmp_path)

    async def until_restore() -> None:
        async with first.run_test(size=(120, 40)) as pilot:
            await walk(pilot, cards, "restore", paste=True)
            await pilot.press("ctrl+q")
        assert first.internal_errors == []

    run(until_restore)
    assert "paused at step restore" in first.return_value
    ceremony = first.executor.ceremony
    state = RunState.from_file(first.executor.folder / "run.toml")
    assert state.status == "paused" and state.runbook == "tabletop-drill"
    second = make_app(doc, tmp_path)

    async def resume() -> None:
        async with second.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: on(second, "StartScreen") and second.screen.runbooks is not None)
            assert ceremony in text_of(second, "#paused-runs")
            await pilot.press("r")
            # the key is not kept between sessions: the custodians come back, for the same ceremony
            await until(pilot, lambda: on(second, "QuorumScreen"))
            assert second.executor.ceremony == ceremony
            assert "resumed" in text_of(second, "#ceremony-note")
            for name in ("amara", "chen", "emeka"):
                await enter_share(pilot, name, cards[name], paste=True)
            await until(pilot, lambda: on(second, "SecretDialog"))
            await pilot.press("enter")
            await until(pilot, lambda: on(second, "StepScreen", state="confirm"), 60)
            assert second.executor.current.id == "restore"
            assert second.screen.step_index == state.position
        assert second.internal_errors == []

    run(resume)


def test_no_share_is_asked_while_another_restore_holds_the_target(served, tmp_path: Path) -> None:
    """The app opens the share entry only under the target's restore lock, as every face does."""
    doc, drill = served
    cards = read_cards({name: Path(path) for name, path in doc["custodians"].items()})
    app = make_app(doc, tmp_path)
    holder = open_store(drill.target)
    holder.lock_restores()

    async def scenario() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await walk(pilot, cards, "verify")
            await pilot.press("enter")
            await until(pilot, lambda: on(app, "ErrorDialog"), 60)
            assert "is running right now" in text_of(app, "#error-message")
            assert not app.executor.quorum_open and app.executor.current.id == "quorum"
            holder.close()
            await pilot.press("escape")
            await until(pilot, lambda: on(app, "VerifyScreen"))
            await pilot.press("enter")  # the holder is gone: the share entry opens
            await until(pilot, lambda: on(app, "QuorumScreen"), 60)
        assert app.internal_errors == []

    try:
        run(scenario)
    finally:
        holder.close()


def hold_the_first_restore_batch(monkeypatch) -> tuple[threading.Event, threading.Event]:
    """The first restore batch, committed, waits until the test sets the second event; the first is set when it
    is reached."""
    import enigm_recover.cancellation as cancellation

    reached, go_on = threading.Event(), threading.Event()
    real = cancellation.cancellable

    def held(progress, token):
        wrapped = real(progress, token)

        def report(p):
            if p.stage is Stage.RESTORE and not reached.is_set():
                reached.set()
                go_on.wait(30)
            wrapped(p)
        return report

    monkeypatch.setattr(cancellation, "cancellable", held)
    return reached, go_on


def test_cancelling_a_restore_leaves_the_run_resumable(served, tmp_path: Path, monkeypatch) -> None:
    doc, drill = served
    cards = read_cards({name: Path(path) for name, path in doc["custodians"].items()})
    reached, go_on = hold_the_first_restore_batch(monkeypatch)  # until the test pressed Esc
    app = make_app(doc, tmp_path, batch_size=2)

    async def scenario() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await walk(pilot, cards, "restore", paste=True)
            await pilot.press("ctrl+r")
            await until(pilot, reached.is_set)
            await pilot.press("escape")
            await until(pilot, lambda: app._token is not None and app._token.cancelled)
            go_on.set()
            await until(pilot, lambda: on(app, "ErrorDialog"))
            assert "cancelled by the operator" in text_of(app, "#error-message")
            assert "continue where it stopped" in text_of(app, "#error-hint")
            await pilot.press("enter")
            await until(pilot, lambda: on(app, "StepScreen", state="failed"))
            ex = app.executor
            assert ex.current.id == "restore"
            state = RunState.from_file(ex.folder / "run.toml")
            assert state.results[-1]["step"] == "dry-run" and "restore" in state.restore_started
            with open_store(drill.target) as store:
                assert store.unfinished_run() is not None  # the journal holds the batch that committed
            await pilot.press("ctrl+r")  # run again: it continues from the journal
            await until(pilot, lambda: on(app, "StepScreen", state="done"), 60)
            assert app.screen.result.status == "verified" and app.screen.result.detail["resumed"]
        assert app.internal_errors == []

    run(scenario)


def test_a_bad_source_shows_its_cause_and_the_app_goes_on(served, tmp_path: Path) -> None:
    doc, _ = served
    app = make_app(doc, tmp_path, source=str(tmp_path / "no-such-folder"))

    async def scenario() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await first_steps_until_an_error(pilot)
            assert "no-such-folder" in text_of(app, "#error-message")
            assert text_of(app, "#error-hint")
            await pilot.press("enter")
            await until(pilot, lambda: on(app, "SourceScreen") and app.screen.failed)
            assert app.screen.check_action("retry", ()) is True
            await pilot.press("ctrl+q")
        assert app.internal_errors == []

    run(scenario)
    assert "paused at step select" in app.return_value


def test_a_share_typed_ahead_of_the_focus_never_shows(served, tmp_path: Path) -> None:
    """Keys arriving all at once (auto-type, a paste of keystrokes), queued before the app handles the first:
    the name lands in the name field, and every word of the share in the masked share field — none in a
    visible field or anywhere on the screen."""
    from textual import events

    doc, _ = served
    cards = read_cards({name: Path(path) for name, path in doc["custodians"].items()})
    app = make_app(doc, tmp_path)

    async def scenario() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await walk(pilot, cards, "verify", paste=True)
            await pilot.press("enter")
            await until(pilot, lambda: on(app, "QuorumScreen") and app.focused is not None
                        and app.focused.id == "custodian")
            keys = [*"amara", "enter", "enter"]
            for word in cards["amara"].split():
                keys += [*word, "space"]
            for key in keys:  # all queued before the app handles the first: no waiting between them
                app._driver.send_message(events.Key(key, {"space": " ", "enter": "\r"}.get(key, key)))
            fields, before = app.screen.query("Input"), None
            while (now := [f.value for f in fields]) != before:  # until every key was taken
                before = now
                await pilot.pause()
            secret_words = cards["amara"].split()
            assert app.screen.query_one("#custodian").value == "amara"
            assert app.screen.query_one("#typed-ceremony").value == ""
            assert app.screen.query_one("#share").value.split() == secret_words  # every word, in order, masked
            shown = " ".join(w.value for w in app.screen.query("Input") if not w.password)
            visible = " ".join(str(w.content) for w in app.screen.query("Static")) + str(app.screen._compositor)
            for word in secret_words:
                assert f" {word} " not in f" {shown} " and f" {word} " not in f" {visible} "
            await pilot.press("enter")
            await until(pilot, lambda: "Accepted: amara" in text_of(app, "#verdict"))

            # a paste of name, blank line and the share's rows lands the same way: the words in the masked field
            app._driver.send_message(events.Paste("chen\n\n" + "\n".join(
                " ".join(cards["chen"].split()[i:i + 11]) for i in range(0, 33, 11))))
            await until(pilot, lambda: app.screen.query_one("#share").value.split() == cards["chen"].split())
            assert app.screen.query_one("#custodian").value == "chen"
            assert app.focused.id == "share"
            shown = " ".join(w.value for w in app.screen.query("Input") if not w.password)
            assert not set(cards["chen"].split()) & set(shown.split())
            await pilot.press("enter")
            await until(pilot, lambda: "Accepted: chen" in text_of(app, "#verdict"))
            await pilot.press("ctrl+q")
        assert app.internal_errors == []

    run(scenario)


def test_a_rejected_share_is_corrected_word_by_word_and_discarding_shares_asks_first(served, tmp_path: Path) -> None:
    from enigm_recover.app.tour import CUSTODIANS

    doc, _ = served
    cards = read_cards({name: Path(path) for name, path in doc["custodians"].items()})
    first, second = CUSTODIANS[:2]
    app = make_app(doc, tmp_path)

    async def scenario() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await walk(pilot, cards, "quorum", paste=True)  # the first share accepted, the second (swapped) not
            share = app.screen.query_one("#share")
            assert share.value == wrong_share(cards[second]) and share.password  # kept, masked
            right = cards[second].split()
            for position in (5, 6):  # the two swapped words, retyped in place; the other 31 stay
                await pilot.press("ctrl+t")
                await until(pilot, lambda: on(app, "QuestionDialog"))
                await pilot.press(*str(position), "enter")
                await until(pilot, lambda: on(app, "SecretDialog"))
                await pilot.press(*right[position - 1][:4], "enter")
                await until(pilot, lambda: on(app, "QuorumScreen") and f"Word {position} replaced" in
                            text_of(app, "#verdict"))
            assert share.value.split() == right
            await pilot.press("enter")
            await until(pilot, lambda: f"Accepted: {second}" in text_of(app, "#verdict"))
            assert "word 34" not in text_of(app, "#word-state")

            # a name already used is refused before the first word
            await until(pilot, lambda: app.focused is not None and app.focused.id == "custodian")
            await pilot.press(*first, "enter")
            await until(pilot, lambda: "already entered a share" in text_of(app, "#verdict"))
            assert len(app.executor.quorum().entry.receipts) == 2

            # discarding the accepted shares names them and asks; Escape keeps them, y discards
            await pilot.press("ctrl+n")
            await until(pilot, lambda: on(app, "ConfirmDialog"))
            lost = text_of(app, "#confirm-lost")
            assert "2 accepted shares" in lost and first in lost and second in lost
            await pilot.press("escape")
            await until(pilot, lambda: on(app, "QuorumScreen"))
            assert len(app.executor.quorum().entry.receipts) == 2
            await pilot.press("ctrl+n")
            await until(pilot, lambda: on(app, "ConfirmDialog"))
            await pilot.press("y")
            await until(pilot, lambda: on(app, "QuorumScreen") and not app.executor.quorum().entry.receipts)
            await pilot.press("ctrl+q")
        assert app.internal_errors == []

    run(scenario)


def test_the_dry_run_reads_at_80x24(served, tmp_path: Path) -> None:
    """At 80x24 the changes' findings are whole, long keys are shortened in the middle, and the highlighted
    change's fields, before and after, read in full (d) — every value unshortened, on the screen."""
    from enigm_recover.app.changes import middle

    doc, _ = served
    cards = read_cards({name: Path(path) for name, path in doc["custodians"].items()})
    app = make_app(doc, tmp_path)

    def screen_text() -> str:
        return "\n".join(strip.text for strip in app.screen._compositor.render_strips())

    async def scenario() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await walk(pilot, cards, "dry-run", paste=True)
            browser = app.screen.query_one("#browser")
            shown = screen_text()
            for change in browser._page[:5]:
                for finding in change.findings:
                    assert finding.value in shown  # whole, never cut to two letters
            changed = next(i for i, c in enumerate(browser._page) if c.fields and c.change.value == "changed")
            for _ in range(changed):
                await pilot.press("down")
            await pilot.press("d")
            await until(pilot, lambda: on(app, "DetailDialog"))
            await pilot.pause()
            change, seen = browser._page[changed], ""
            for _ in range(10):  # the pane scrolls: gather what it shows, a page at a time
                seen += screen_text()
                await pilot.press("pagedown")
                await pilot.pause()
            for name, live, snap in change.fields:
                assert name in seen and str(live) in seen and str(snap) in seen
            await pilot.press("escape")
            await until(pilot, lambda: on(app, "DryRunScreen"))
            await pilot.press("ctrl+q")
        assert app.internal_errors == []

    run(scenario)
    assert middle("identity / acct_0123456789abcdef0123", 16) == "identity…def0123" and middle("short", 16) == "short"


def test_one_meaning_per_key_across_the_app() -> None:
    """No key confirms on one screen and discards on another: each key has one action everywhere, except
    Enter (always onward), Escape (always the safe way out) and r (always again: list, connect, verify, run,
    resume)."""
    import importlib
    import inspect
    import pkgutil
    from collections import defaultdict

    from textual.binding import Binding
    from textual.dom import DOMNode

    import enigm_recover.app as package

    actions: dict[str, set[str]] = defaultdict(set)
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"enigm_recover.app.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__ or not issubclass(cls, DOMNode):
                continue
            for binding in cls.__dict__.get("BINDINGS", []):
                binding = binding if isinstance(binding, Binding) else Binding(*binding)
                for key in binding.key.split(","):
                    actions[key.strip()].add(binding.action)
    shared = {"enter": {"next", "start", "choose", "close", "app.quit"},
              "escape": {"cancel", "cancel_work", "close", "escape", "keep", "refuse"},
              "r": {"retry", "relist", "resume"}}
    for key, found in actions.items():
        assert found <= shared.get(key, found) and (key in shared or len(found) == 1), (key, found)
    destructive = {"restart", "skip"}
    assert not any(found & destructive and len(found) > 1 for found in actions.values())


def test_a_failing_worker_becomes_a_dialog_not_a_crash(served, tmp_path: Path, monkeypatch) -> None:
    from enigm_recover.runbook.executor import RunbookExecutor

    def broken(self, fingerprint=None, *, refresh=False):
        raise ValueError("the listing broke in an unexpected way")

    monkeypatch.setattr(RunbookExecutor, "snapshots", broken)
    doc, _ = served
    app = make_app(doc, tmp_path)

    async def scenario() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await first_steps_until_an_error(pilot)
            assert "ValueError: the listing broke" in text_of(app, "#error-message")
            assert "bug" in text_of(app, "#error-hint")
            await pilot.press("enter")
            await until(pilot, lambda: on(app, "SourceScreen") and app.screen.failed)
            await pilot.press("ctrl+q")
        assert app.internal_errors == []  # handled: the worker's failure is a dialog, the app went on

    run(scenario)
    assert "paused at step select" in app.return_value


def test_an_unknown_host_key_is_shown_and_accepted_only_when_confirmed(served, tmp_path: Path) -> None:
    doc, _ = served
    known_hosts = Path(doc["ssh"]["known_hosts"])
    line = known_hosts.read_text()
    known_hosts.write_text("")
    app = make_app(doc, tmp_path)

    async def scenario() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await walk(pilot, {}, "source")
            shown = text_of(app, "#fingerprint")
            assert re.fullmatch(r"SHA256:[A-Za-z0-9+/]{43}", shown.strip())
            await pilot.press("escape")  # refused: the connection is not made
            await until(pilot, lambda: on(app, "ErrorDialog"), 60)
            assert "not in" in text_of(app, "#error-message")
            assert known_hosts.read_text() == ""
            await pilot.press("enter")
            await until(pilot, lambda: on(app, "SourceScreen") and app.screen.failed)
            await pilot.press("r")
            await until(pilot, lambda: on(app, "HostKeyDialog"), 60)
            await pilot.press("a")
            await until(pilot, lambda: on(app, "SnapshotsScreen"), 60)
            await pilot.press("ctrl+q")
        assert app.internal_errors == []

    run(scenario)
    recorded = known_hosts.read_text().split()
    assert recorded[1:3] == line.split()[1:3]  # the same key as the server's


# -- keys, palette, colours and size --------------------------------------------------------------------


def test_every_action_has_a_key_and_the_palette_offers_it(served, tmp_path: Path) -> None:
    doc, _ = served
    app = make_app(doc, tmp_path)

    async def scenario() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await walk(pilot, {}, "snapshots")
            commands = {c.title for c in app.get_system_commands(app.screen)}
            assert {"Use this snapshot", "List again", "Quit", "Keys"} <= commands
            footer_keys = {b.binding.description for b in app.screen.active_bindings.values() if b.binding.show}
            assert {"Use this snapshot", "List again", "Quit", "Keys"} <= footer_keys
            await pilot.press("ctrl+p")
            await until(pilot, lambda: type(app.screen).__name__ == "CommandPalette")
            await pilot.press(*"use this snap")
            await until(pilot, lambda: any(c.option_count for c in app.screen.query("CommandList")))
            await pilot.press("enter")
            await until(pilot, lambda: on(app, "VerifyScreen"), 60)
            await until(pilot, lambda: on(app, "VerifyScreen", state="done"), 60)
            await pilot.press("ctrl+q")
        assert app.internal_errors == []

    run(scenario)


def test_a_snapshot_from_the_future_is_not_proposed_silently(served, tmp_path: Path) -> None:
    from datetime import timedelta

    doc, drill = served
    app = make_app(doc, tmp_path, now=lambda: DRILL_AT - timedelta(days=30))  # this host's clock is behind

    async def scenario() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await walk(pilot, {}, "snapshots")
            proposal = text_of(app, "#proposal")
            assert drill.latest in proposal and "clock" in proposal and "is proposed" not in proposal, proposal
            assert "IN THE FUTURE" in text_of(app, "#snapshot-table")
            assert "ago" not in text_of(app, "#snapshot-table")
            await pilot.press("ctrl+q")
        assert app.internal_errors == []

    run(scenario)


def test_an_unsigned_snapshot_is_shown_but_cannot_be_chosen(served, tmp_path: Path) -> None:
    doc, drill = served
    (drill.snapshots / f"{drill.latest}.manifest.toml.sig").unlink()
    app = make_app(doc, tmp_path)

    async def scenario() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await walk(pilot, {}, "snapshots")
            screen = app.screen
            assert screen.query_one("#snapshot-table").row_count == 3
            assert screen.highlighted.id != drill.latest  # the newest usable one is proposed
            await pilot.press("up")
            await until(pilot, lambda: screen.highlighted.id == drill.latest)
            assert "Cannot be chosen" in text_of(app, "#manifest") and "UNSIGNED" in text_of(app, "#manifest")
            await pilot.press("enter")
            await pilot.pause()
            assert on(app, "SnapshotsScreen") and app.executor.current.id == "select" and not app.busy
            await pilot.press("ctrl+q")
        assert app.internal_errors == []

    run(scenario)


def test_no_color_is_respected(served, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    doc, _ = served
    app = make_app(doc, tmp_path)

    async def scenario() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await walk(pilot, {}, "start")
            svg = app.export_screenshot()
        colours = set(re.findall(r'fill(?:=")?:? ?#([0-9a-f]{6})', svg)) - {"ff5f57", "febc2e", "28c840"}
        assert len(colours) > 2, "no shades at all in the screenshot"  # (the window's buttons aside)

        def grey(colour: str) -> bool:
            r, g, b = (int(colour[i:i + 2], 16) for i in (0, 2, 4))
            return max(r, g, b) - min(r, g, b) <= 8
        assert all(grey(c) for c in colours), sorted(c for c in colours if not grey(c))

    assert make_app(doc, tmp_path).no_color
    run(scenario)


def test_with_no_color_the_focused_field_shows_by_its_shape(served, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    doc, _ = served
    cards = read_cards({name: Path(path) for name, path in doc["custodians"].items()})

    async def scenario(size: tuple[int, int]) -> None:
        app = make_app(doc, tmp_path / f"{size[0]}")
        async with app.run_test(size=size) as pilot:
            await walk(pilot, cards, "quorum", paste=True)
            focused = app.focused
            others = [f for f in app.screen.query("Input") if f is not focused]
            assert focused.id == "share" and others
            if size[0] >= 100:
                assert focused.styles.border.top[0] == "double"
                assert all(f.styles.border.top[0] != "double" for f in others)
            else:
                assert "reverse" in str(focused.styles.text_style)
                assert all("reverse" not in str(f.styles.text_style) for f in others)
            await pilot.press("ctrl+q")

    for size in ((120, 40), (80, 24)):
        asyncio.run(asyncio.wait_for(scenario(size), timeout=240))


def test_the_app_works_at_80x24(served, tmp_path: Path) -> None:
    doc, _ = served
    cards = read_cards({name: Path(path) for name, path in doc["custodians"].items()})
    app = make_app(doc, tmp_path)

    async def scenario() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            async def check(stage: str) -> None:
                screen = app.screen
                assert screen.has_class("narrow"), stage
                assert not screen.query_one("#runbook-panel").display, stage
                assert "Step" in text_of(app, "#stage-header") or stage == "start", stage
                assert screen.query_one("Footer").region.bottom == 24, stage

            await walk(pilot, cards, "restore", check, paste=True)
            await pilot.press("ctrl+q")
        assert app.internal_errors == []

    run(scenario)


# -- small pieces ---------------------------------------------------------------------------------------


def test_share_words_never_reach_an_error_dialog() -> None:
    from shamir_mnemonic.wordlist import WORDLIST

    words = " ".join(WORDLIST[100:133])
    assert not any(w in scrub(f"ValueError: cannot use {words}!") for w in WORDLIST[100:133])
    assert scrub("KeyError: 'identity' is not a kind") == "KeyError: 'identity' is not a kind"


def test_cancel_token_raises_at_the_next_report() -> None:
    from enigm_recover.cancellation import CancelToken, cancellable
    from enigm_recover.errors import InterruptedByUser
    from enigm_recover.progress import Progress, Stage

    seen = []
    token = CancelToken()
    report = cancellable(seen.append, token)
    report(Progress(Stage.RESTORE, 10, 100, "records", "devices"))
    token.cancel()
    with pytest.raises(InterruptedByUser) as info:
        report(Progress(Stage.RESTORE, 20, 100, "records", "devices"))
    assert len(seen) == 2 and "restore devices (20 of 100 records)" in info.value.message
    assert info.value.exit_code == 130


def test_heavy_imports_wait_until_after_the_first_paint(tmp_path: Path) -> None:
    """Everything the command line does before the app paints imports neither SSH, crypto, the stores nor
    the engine (the start screen reads the runbooks in a worker after the first paint)."""
    import json
    import subprocess
    import sys

    code = (
        "import json, sys\n"
        "from enigm_recover.cli.context import Context\n"
        "from enigm_recover.cli.parser import build_parser\n"
        "from enigm_recover.cli.commands_app import app_options\n"
        "import enigm_recover.app.app, enigm_recover.app.start, enigm_recover.app.stage\n"
        "args = build_parser().parse_args(['app', '--source', 'x', '--target', 'sqlite:///x.db', "
        "'--allowed-signers', 'a', '--runbook', 'tabletop-drill'])\n"
        "ctx = Context(args)\n"
        "options = app_options(ctx, source=args.source, target=args.target, allowed_signers=args.allowed_signers, "
        "runbook=args.runbook, operator=None)\n"
        "app = enigm_recover.app.app.RecoverApp(options)\n"
        "heavy = ('asyncssh', 'cryptography', 'psycopg', 'pyrage', 'zstandard', 'enigm_recover.runbook.executor', "
        "'enigm_recover.runbook.loader', 'enigm_recover.recovery.diff', 'enigm_recover.state.stores')\n"
        "print(json.dumps([m for m in heavy if m in sys.modules]))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert json.loads(out.stdout) == []


def test_the_change_list_pages_100000_changes_from_the_engine() -> None:
    """The table holds one page; paging and filtering a dry run of 100,000+ changes asks the engine for
    one page at a time (how fast it stays is measured in bench/app_startup.py)."""
    from textual.app import App

    from enigm_recover.app.changes import PAGE, ChangeBrowser
    from enigm_recover.recovery.assess import ChangeType, Finding
    from enigm_recover.recovery.diff import Change, DiffResult, KindSummary

    changes = [Change("device", (f"dev_{i:07d}",), ChangeType.CHANGED if i % 3 else ChangeType.MISSING,
                      (("state", "active", "suspended"),) if i % 3 else (),
                      (Finding.REVOCATION_KEPT,) if i % 1000 == 0 else ()) for i in range(120_000)]
    result = DiffResult("snap", "2026-11-26T12:00:00Z", "sqlite:///x.db", {"device": KindSummary()}, changes)
    result.kinds["device"].findings[Finding.REVOCATION_KEPT.value] = 120

    class Browse(App[None]):
        def compose(self):
            yield ChangeBrowser(id="browser")

    async def scenario() -> None:
        app = Browse()
        async with app.run_test(size=(120, 40)) as pilot:
            browser = app.query_one(ChangeBrowser)
            table = browser.query_one("#changes")
            browser.show(result)
            await pilot.pause()
            assert table.row_count == PAGE and browser.total() == 120_000
            table.focus()
            for key in ("n", "n", "c", "c", "n", "f", "x", "p"):
                await pilot.press(key)
                assert table.row_count <= PAGE
            assert browser.filters == {"kind": None, "change": None, "finding": None}
            await pilot.press("c", "c", "c")  # missing, extra, then changed: 80,000
            assert browser.total() == 80_000
            while browser.page_start + PAGE < browser.total() and browser.page_start < 5 * PAGE:
                await pilot.press("n")
            assert "changes 501–600 of 80,000" in str(browser.query_one("#change-filter").content)
            assert table.row_count == PAGE  # one page in widgets, however many changes the engine holds

    run(scenario)


def test_an_ssh_prompt_is_asked_in_a_hidden_dialog(served, tmp_path: Path) -> None:
    """The engine's SSH prompts (key passphrases, one-time codes) come from its threads into a masked dialog."""
    from enigm_recover.app.bridge import UIPrompter

    doc, _ = served
    app = make_app(doc, tmp_path)
    answers = []

    async def scenario() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: on(app, "StartScreen") and app.screen.runbooks is not None)
            app.run_engine(lambda progress: UIPrompter(app).ask_secret("Verification code: "), done=answers.append)
            await until(pilot, lambda: on(app, "SecretDialog"))
            field = app.screen.query_one("#secret")
            assert field.password
            await pilot.press(*"123456", "enter")
            await until(pilot, lambda: answers == ["123456"])
            app.run_engine(lambda progress: UIPrompter(app).ask_secret("Passphrase for key k: "),
                           done=answers.append)
            await until(pilot, lambda: on(app, "SecretDialog"))
            await pilot.press("escape")  # cancelled: the connection fails as unauthenticated, in a dialog
            await until(pilot, lambda: on(app, "ErrorDialog"))
            assert "Passphrase for key k" in text_of(app, "#error-message")
        assert app.internal_errors == []

    run(scenario)


def test_rates_and_times_left() -> None:
    from enigm_recover.app.format import rate_and_eta
    from enigm_recover.progress import Progress, Stage

    p = Progress(Stage.FETCH, 10 << 20, 40 << 20, "bytes", "x.payload.age")
    assert rate_and_eta(p, 2.0) == "5.0 MiB/s · about 6 s left"
    assert rate_and_eta(Progress(Stage.RESTORE, 500, 1000, "records", "device"), 1.0) == "500 records/s · about 1 s left"
    assert rate_and_eta(p, 0.0) == ""
