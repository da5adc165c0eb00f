"""The app's messages never lie over what they talk about: a refused snapshot's reason, the combined key, a
cancelled restore's "stopping" each show in the screen's own status line, in the layout (at 80x24 and
120x40), and no toast covers the content it describes or the focused widget.

Driven through Pilot with notifications on (``run_test`` hides toasts by default), over the drill served by
the in-process SSH server; every wait is on a condition.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.geometry import Region
from textual.widgets._toast import Toast

from enigm_recover.app.tour import on, read_cards, until, walk
from tests.test_app import hold_the_first_restore_batch, make_app, run, served, text_of  # noqa: F401 - served is a fixture

SIZES = [(80, 24), (120, 40)]


def on_screen(app, selector_or_widget) -> Region:
    """The part of a widget the screen shows (empty when it is scrolled out of sight or hidden)."""
    from textual.errors import NoWidget

    widget = app.screen.query_one(selector_or_widget) if isinstance(selector_or_widget, str) else selector_or_widget
    if not widget.display:
        return Region()
    try:
        geometry = app.screen.find_widget(widget)
    except NoWidget:
        return Region()
    return geometry.region.intersection(geometry.clip)


def meet(a: Region, b: Region) -> bool:
    return a.intersection(b).area > 0


def toasts(app) -> list[Region]:
    return [on_screen(app, toast) for toast in app.screen.query(Toast)]


def assert_uncovered(app, *described: str) -> None:
    """No toast lies over the described widgets nor over the focused one."""
    widgets = [app.screen.query_one(s) for s in described] + ([app.focused] if app.focused is not None else [])
    for widget in widgets:
        region = on_screen(app, widget)
        for toast in toasts(app):
            assert not meet(toast, region), f"a toast {toast} covers {widget} {region}"


def assert_said(app, words: str, *described: str) -> None:
    """``words`` show in the status line, which is on screen and apart from the described widgets."""
    line = on_screen(app, "#status-line")
    assert words in text_of(app, "#status-line") and line.area > 0, text_of(app, "#status-line")
    for selector in described:
        assert not meet(line, on_screen(app, selector)), selector
    assert line.bottom <= app.screen.query_one("Footer").region.y  # above the keys, never over them


@pytest.mark.parametrize("size", SIZES)
def test_a_refused_snapshot_says_why_beside_the_manifest_not_over_it(served, tmp_path: Path, size) -> None:
    doc, drill = served
    (drill.snapshots / f"{drill.latest}.manifest.toml.sig").unlink()
    app = make_app(doc, tmp_path)

    async def scenario() -> None:
        async with app.run_test(size=size, notifications=True) as pilot:
            await walk(pilot, {}, "snapshots")
            await pilot.press("up")
            await until(pilot, lambda: app.screen.highlighted.id == drill.latest)
            await pilot.press("enter")  # refused: it is unsigned
            await until(pilot, lambda: bool(app.screen.query(Toast)) or "cannot be chosen" in status(app))
            await pilot.pause()
            assert_uncovered(app, "#manifest-pane", "#snapshot-table")
            assert_said(app, f"{drill.latest} cannot be chosen", "#manifest-pane", "#snapshot-table")
            await pilot.press("down")  # the operator moves on: the message goes, the body has its line back
            await until(pilot, lambda: not app.screen.query_one("#status-line").display)
            await pilot.press("ctrl+q")
        assert app.internal_errors == []

    run(scenario)


@pytest.mark.parametrize("size", SIZES)
def test_the_combined_key_is_said_on_the_dry_run_without_covering_it(served, tmp_path: Path, size) -> None:
    doc, _ = served
    cards = read_cards({name: Path(path) for name, path in doc["custodians"].items()})
    app = make_app(doc, tmp_path)

    async def scenario() -> None:
        async with app.run_test(size=size, notifications=True) as pilot:
            await walk(pilot, cards, "dry-run", paste=True)
            await pilot.pause()
            assert_uncovered(app, "#browser", "#change-detail", "#dry-run-summary")
            fingerprint = app.executor.quorum().entry.expected_fingerprint
            assert_said(app, f"recovery key {fingerprint} combined", "#browser", "#change-detail")
            await pilot.press("ctrl+q")
        assert app.internal_errors == []

    run(scenario)


@pytest.mark.parametrize("size", SIZES)
def test_stopping_a_restore_is_said_apart_from_its_progress(served, tmp_path: Path, monkeypatch, size) -> None:
    doc, _ = served
    cards = read_cards({name: Path(path) for name, path in doc["custodians"].items()})
    reached, go_on = hold_the_first_restore_batch(monkeypatch)  # until the test has looked
    app = make_app(doc, tmp_path, batch_size=2)

    async def scenario() -> None:
        async with app.run_test(size=size, notifications=True) as pilot:
            await walk(pilot, cards, "restore", paste=True)
            app.clear_notifications()
            await pilot.press("ctrl+r")
            await until(pilot, reached.is_set)
            await pilot.press("escape")
            await until(pilot, lambda: bool(app.screen.query(Toast)) or "Stopping" in status(app))
            await pilot.pause()
            assert_uncovered(app, "#progress", "#step-result")
            assert_said(app, "Stopping at the next safe point", "#progress", "#step-result")
            await pilot.press("x")  # a key does not take back what is still true
            assert "Stopping" in status(app)
            go_on.set()
            await until(pilot, lambda: on(app, "ErrorDialog"))
            await until(pilot, lambda: "Stopping" not in status(app))  # the work ended: the message with it
            await pilot.press("enter")
            await until(pilot, lambda: on(app, "StepScreen", state="failed"))
            await pilot.press("ctrl+q")
        assert app.internal_errors == []

    run(scenario)


def status(app) -> str:
    found = app.screen.query("#status-line")
    return str(found.first().content) if found and found.first().display else ""
