"""Snapshot tests of every stage of the app at 120x40 (pytest-textual-snapshot).

The drill is seeded with a fixed incident time, the ceremony id is fixed, ages
are relative to the drill's time, nothing animates, and what still changes
from run to run (temporary paths, payload sizes from multi-threaded zstd,
hashes, the drill server's port and host key) is shown in a fixed form by the
app's ``redact`` seam — the same one ``make screenshots`` uses. Update the
snapshots after an intended change with ``pytest tests/test_app_snapshots.py
--snapshot-update`` and look at each SVG before committing it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_textual_snapshot

from enigm_recover.app.app import RecoverApp
from enigm_recover.app.options import drill_options
from enigm_recover.app.screenshots import CEREMONY, stable
from enigm_recover.app.tour import read_cards, until, walk
from tests.conftest import DRILL_AT

# pytest-textual-snapshot 1.0 names its extension with syrupy 4's attribute; syrupy 5+ reads file_extension
pytest_textual_snapshot.SVGImageExtension.file_extension = "svg"


@pytest.fixture
def served(drill):
    from enigm_recover.drill.serve import serve_drill

    server, doc = serve_drill(drill.root)
    yield doc
    server.stop()


def app_for(doc: dict, tmp_path: Path, **overrides) -> RecoverApp:
    options = drill_options(doc, state_dir=tmp_path / "state", cache_dir=tmp_path / "cache", operator="dana",
                            ceremony=CEREMONY, now=lambda: DRILL_AT, monotonic=lambda: 0.0, still=True,
                            redact=stable(tmp_path, keep=(doc["recovery"]["fingerprint"],)), **overrides)
    return RecoverApp(options)


def walk_to(stage: str, doc: dict):
    cards = read_cards({name: Path(path) for name, path in doc["custodians"].items()})

    async def run_before(pilot) -> None:
        await walk(pilot, cards, stage, paste=True)
        pilot.app.clear_notifications()
        await pilot.pause()
        await until(pilot, lambda: tables_measured(pilot.app.screen), what="the tables' column widths")
    return run_before


def tables_measured(screen) -> bool:
    """Every table on the screen has sized its columns to the rows it holds: a DataTable measures them when
    it is next idle, which a loaded machine can put after the picture is taken (Textual keeps the pending
    measurement in a private flag; no public one says so)."""
    from textual.widgets import DataTable

    return not any(table._require_update_dimensions for table in screen.query(DataTable))


@pytest.mark.parametrize("stage", ["start", "snapshots", "verify", "quorum", "dry-run", "restore", "done"])
def test_stage(stage: str, served, tmp_path: Path, snap_compare) -> None:
    assert snap_compare(app_for(served, tmp_path), terminal_size=(120, 40), run_before=walk_to(stage, served))


def test_source_with_an_unknown_host_key(served, tmp_path: Path, snap_compare) -> None:
    Path(served["ssh"]["known_hosts"]).write_text("")
    assert snap_compare(app_for(served, tmp_path), terminal_size=(120, 40), run_before=walk_to("source", served))


def test_error_dialog(served, tmp_path: Path, snap_compare) -> None:
    from tests.test_app import first_steps_until_an_error

    async def run_before(pilot) -> None:
        await walk(pilot, {}, "start")
        await first_steps_until_an_error(pilot)
        pilot.app.clear_notifications()
        await pilot.pause()

    app = app_for(served, tmp_path, source=str(tmp_path / "no-such-folder"))
    assert snap_compare(app, terminal_size=(120, 40), run_before=run_before)


def test_quorum_at_80x24(served, tmp_path: Path, snap_compare) -> None:
    assert snap_compare(app_for(served, tmp_path), terminal_size=(80, 24), run_before=walk_to("quorum", served))


def test_dry_run_at_80x24_with_the_highlighted_change_in_full(served, tmp_path: Path, snap_compare) -> None:
    async def run_before(pilot) -> None:
        await walk_to("dry-run", served)(pilot)
        await pilot.press("down", "d")  # a changed identity: its fields before and after, in a pane that scrolls
        await pilot.pause()
        # The change list behind the dialog shows in the picture too: its columns measured as well.
        await until(pilot, lambda: all(tables_measured(screen) for screen in pilot.app.screen_stack),
                    what="the tables' column widths behind the dialog")

    assert snap_compare(app_for(served, tmp_path), terminal_size=(80, 24), run_before=run_before)


def test_a_refused_snapshot_says_why_in_the_status_line_at_80x24(served, drill, tmp_path: Path, snap_compare) -> None:
    (drill.snapshots / f"{drill.latest}.manifest.toml.sig").unlink()

    async def run_before(pilot) -> None:
        await walk(pilot, {}, "snapshots")
        await pilot.press("up", "enter")  # the newest, unsigned: refused, and the line above the keys says why
        await until(pilot, lambda: pilot.app.screen.query_one("#status-line").display, what="the status line")
        await until(pilot, lambda: tables_measured(pilot.app.screen), what="the tables' column widths")

    assert snap_compare(app_for(served, tmp_path), terminal_size=(80, 24), run_before=run_before)


def test_check_my_card_at_80x24(served, tmp_path: Path, snap_compare) -> None:
    """A custodian's card checked alone: the verdict names the set, group, member and the key."""
    from enigm_recover.app.tour import on, share_keys

    words = read_cards({"chen": Path(served["custodians"]["chen"])})["chen"]

    async def run_before(pilot) -> None:
        app = pilot.app
        await walk(pilot, {}, "start")
        await pilot.press("m")
        await until(pilot, lambda: on(app, "CheckCardScreen") and app.focused.id == "custodian")
        await pilot.press(*"chen", "enter", *share_keys(words), "enter")
        await until(pilot, lambda: "Well-formed" in str(app.screen.query_one("#verdict").content), 60)
        app.clear_notifications()
        await pilot.pause()

    assert snap_compare(app_for(served, tmp_path), terminal_size=(80, 24), run_before=run_before)


def test_test_the_quorum_at_80x24(served, tmp_path: Path, snap_compare) -> None:
    """The quorum test, one custodian's share accepted: the ceremony, the key expected, the progress."""
    from enigm_recover.app.tour import enter_share, on

    cards = read_cards({name: Path(path) for name, path in served["custodians"].items()})

    async def run_before(pilot) -> None:
        app = pilot.app
        await walk(pilot, {}, "start")
        await pilot.press("t")
        await until(pilot, lambda: on(app, "TestQuorumScreen"), 60)
        await enter_share(pilot, "amara", cards["amara"], paste=True)
        await until(pilot, lambda: "Accepted: amara" in str(app.screen.query_one("#verdict").content))
        app.clear_notifications()
        await pilot.pause()

    assert snap_compare(app_for(served, tmp_path), terminal_size=(80, 24), run_before=run_before)


@pytest.fixture
def served_classic(classic_drill):
    from enigm_recover.drill.serve import serve_drill

    server, doc = serve_drill(classic_drill.root)
    yield doc
    server.stop()


def test_readiness_at_80x24_with_the_post_quantum_fix(served_classic, tmp_path: Path, snap_compare) -> None:
    """A drill sealed to a classic key: not ready; the post-quantum check highlighted, its fix in the details."""
    from enigm_recover.app.tour import on
    from enigm_recover.readiness.post_quantum import POST_QUANTUM

    async def run_before(pilot) -> None:
        app = pilot.app
        await walk(pilot, {}, "start")
        await pilot.press("e")
        await until(pilot, lambda: on(app, "ReadinessScreen", state="done"), 90, what="the readiness run")
        names = [c.name for c in app.screen.outcome.report.checks]
        await pilot.press(*["down"] * names.index(POST_QUANTUM))
        app.clear_notifications()
        await pilot.pause()
        await until(pilot, lambda: tables_measured(app.screen), what="the tables' column widths")

    app = app_for(served_classic, tmp_path)
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_readiness_ready_at_120x40(served, tmp_path: Path, snap_compare) -> None:
    """The drill (a hybrid key): ready, every check in the table, the first one's evidence in the details."""
    from enigm_recover.app.tour import on

    async def run_before(pilot) -> None:
        app = pilot.app
        await walk(pilot, {}, "start")
        await pilot.press("e")
        await until(pilot, lambda: on(app, "ReadinessScreen", state="done"), 90, what="the readiness run")
        app.clear_notifications()
        await pilot.pause()
        await until(pilot, lambda: tables_measured(app.screen), what="the tables' column widths")

    assert snap_compare(app_for(served, tmp_path), terminal_size=(120, 40), run_before=run_before)
