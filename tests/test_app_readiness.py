"""The app's readiness view: the `readiness` command's run, from the start screen, driven through Pilot.

The drill is served over the in-process SSH server; the app's clock is the drill's, so the drill's snapshots
are fresh. No share is asked: the view runs every check but the test restore.
"""

from __future__ import annotations

import json
import socket
import tomllib
from pathlib import Path

import pytest

from enigm_recover.app.tour import on, until
from enigm_recover.readiness.post_quantum import POST_QUANTUM
from enigm_recover.recovery.audit import verify_log
from tests.test_app import make_app, run, text_of

ESCAPE_HATCH = 90  # seconds: the first readiness run imports the engine and hashes every payload


@pytest.fixture
def served_classic(classic_drill):
    """The drill with a classic X25519 recovery key, served over SFTP on 127.0.0.1: (doc, drill)."""
    from enigm_recover.drill.serve import serve_drill

    server, doc = serve_drill(classic_drill.root)
    yield doc, classic_drill
    server.stop()


@pytest.fixture
def served(drill):
    from enigm_recover.drill.serve import serve_drill

    server, doc = serve_drill(drill.root)
    yield doc, drill
    server.stop()


async def open_readiness(pilot) -> None:
    app = pilot.app
    await until(pilot, lambda: on(app, "StartScreen") and app.screen.runbooks is not None, what="the runbooks")
    await pilot.press("e")
    await until(pilot, lambda: on(app, "ReadinessScreen", state="done"), ESCAPE_HATCH, what="the readiness run")
    await pilot.pause()


async def highlight(pilot, name: str) -> None:
    screen = pilot.app.screen
    names = [c.name for c in screen.outcome.report.checks]
    while screen.highlighted.name != name:
        await pilot.press("down" if names.index(screen.highlighted.name) < names.index(name) else "up")
    await pilot.pause()


def rows(app) -> dict[str, str]:
    """The table's rows: check name -> result and summary as shown."""
    out = {}
    for line in text_of(app, "#readiness-checks").splitlines():
        name, _, rest = line.partition(" ")
        out[name] = rest
    return out


def audit_actions(folder: Path) -> list[str]:
    return [json.loads(line)["action"] for line in (folder / "audit.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_the_hybrid_drill_is_ready_with_every_check_shown(served, tmp_path: Path, size) -> None:
    doc, drill = served
    app = make_app(doc, tmp_path)

    async def scenario() -> None:
        async with app.run_test(size=size) as pilot:
            await open_readiness(pilot)
            outcome = app.screen.outcome
            shown = rows(app)
            assert list(shown) == [c.name for c in outcome.report.checks]  # every check the engine returned
            assert len(shown) >= 13
            assert shown[POST_QUANTUM].startswith("✓ pass")
            assert shown["test-restore"].startswith("– not run")  # no share is asked
            verdict = text_of(app, "#readiness-verdict")
            assert verdict.startswith("READY") and "NOT READY" not in verdict
            await highlight(pilot, POST_QUANTUM)
            detail = text_of(app, "#readiness-detail")
            assert "hybrid post-quantum" in detail and "Evidence" in detail
            assert detail.count(": sealed to SHA256:") == len(drill.doc["snapshots"]["ids"])
            await pilot.press("escape")  # back
            await until(pilot, lambda: on(app, "StartScreen"))
            await pilot.press("ctrl+q")
        assert app.internal_errors == []

    run(scenario)


def test_the_view_writes_what_the_command_writes(served, tmp_path: Path, cli) -> None:
    """The same report files beside an audit log with the same entries as `enigm-recover readiness`."""
    doc, drill = served
    app = make_app(doc, tmp_path)
    found: dict = {}

    async def scenario() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await open_readiness(pilot)
            found["outcome"] = app.screen.outcome
            await pilot.press("ctrl+q")
        assert app.internal_errors == []

    run(scenario)
    outcome = found["outcome"]
    folder = outcome.recovery.folder
    assert Path(outcome.files["toml"]) == folder / "readiness.toml" and (folder / "readiness.md").is_file()
    document = tomllib.loads((folder / "readiness.toml").read_text())["readiness"]
    assert document["ready"] is True and document["operator"] == "dana"
    assert verify_log(folder / "audit.jsonl").intact
    entries = [json.loads(line) for line in (folder / "audit.jsonl").read_text().splitlines()]
    report_entry = next(e for e in entries if e["action"] == "readiness-report")
    assert report_entry["inputs"]["sha256"] == outcome.files["sha256"]

    code, out, err = cli("readiness", doc["ssh"]["source"], "--ssh-config", doc["ssh"]["config"],
                         "--allowed-signers", drill.allowed_signers, "--recipient", drill.recipient,
                         "--max-age", "3650d", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert audit_actions(Path(result["recovery"]["audit_log"]).parent) == audit_actions(folder)
    assert [(c["name"], c["status"]) for c in result["checks"]] == \
        [(c["name"], c["status"]) for c in document["checks"]]


def test_a_classic_drill_is_not_ready_and_the_fix_is_readable(served_classic, tmp_path: Path) -> None:
    doc, drill = served_classic
    app = make_app(doc, tmp_path)

    async def scenario() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await open_readiness(pilot)
            assert rows(app)[POST_QUANTUM].startswith("✗ FAIL")
            verdict = text_of(app, "#readiness-verdict")
            assert verdict.startswith("NOT READY") and f"failing: {POST_QUANTUM}" in verdict
            await highlight(pilot, POST_QUANTUM)
            detail = text_of(app, "#readiness-detail")
            assert "Problems" in detail and "classic X25519" in detail
            assert "keys rotate --kind hybrid" in detail and "keys rewrap SOURCE --all --to NEW/recovery.pub" in detail
            await pilot.press("d")  # the details, to scroll them at 80x24
            pane = app.screen.query_one("#readiness-detail-pane")
            assert pane.has_focus
            await pilot.press("end")
            await until(pilot, lambda: pane.scroll_y > 0, what="the details scrolled")
            await pilot.press("escape")
            await until(pilot, lambda: on(app, "StartScreen"))
            await pilot.press("ctrl+q")
        assert app.internal_errors == []

    run(scenario)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_source_fails_the_source_check_with_its_message(served, tmp_path: Path) -> None:
    doc, _ = served
    app = make_app(doc, tmp_path, source=f"sftp://127.0.0.1:{closed_port()}/snapshots", ssh_config=None)

    async def scenario() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await open_readiness(pilot)
            report = app.screen.outcome.report
            assert report.source_error is not None
            shown = rows(app)
            assert shown["source"].startswith("✗ FAIL")
            assert all(r.startswith("– not run") for n, r in shown.items() if n not in ("source", "quorum-test"))
            detail = text_of(app, "#readiness-detail")  # the source check is highlighted first
            assert report.source_error.message in detail
            assert "Traceback" not in detail
            assert text_of(app, "#readiness-verdict").startswith("NOT READY")
            await pilot.press("ctrl+q")
        assert app.internal_errors == []

    run(scenario)


def test_a_burst_of_keys_does_not_break_it(served, tmp_path: Path) -> None:
    """Going back while the run checks stops it (closed as aborted); keys pressed meanwhile are refused
    or wait: one run at a time, and the screen ends showing a finished run."""
    doc, _ = served
    app = make_app(doc, tmp_path)

    async def scenario() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: on(app, "StartScreen") and app.screen.runbooks is not None)
            await pilot.press("e", "r", "d", "escape", "e", "e", "r", "down", "escape", "e", "down", "r", "d", "r")
            await until(pilot, lambda: on(app, "ReadinessScreen", state="done") and not app.busy, ESCAPE_HATCH)
            await pilot.press("r", "r", "down", "up", "d", "end")
            await until(pilot, lambda: on(app, "ReadinessScreen", state="done") and not app.busy, ESCAPE_HATCH)
            assert text_of(app, "#readiness-verdict").startswith("READY")
            assert len([s for s in app.screen_stack if type(s).__name__ == "ReadinessScreen"]) == 1
            await pilot.press("escape")
            await until(pilot, lambda: on(app, "StartScreen"))
            await pilot.press("ctrl+q")
        assert app.internal_errors == []

    run(scenario)
    statuses = []
    for folder in sorted((tmp_path / "state" / "recoveries").iterdir()):
        entries = [json.loads(line) for line in (folder / "audit.jsonl").read_text().splitlines()]
        statuses.append(entries[-1]["action"])
    assert statuses and all(s == "recovery-closed" for s in statuses), statuses


def test_a_cancelled_run_records_no_verdict(drill, tmp_path: Path) -> None:
    """Going back stops the run at its next progress report: the run is closed as aborted, naming why, and no
    payload is reported as failed (a cancelled download is not a damaged payload)."""
    from enigm_recover.cancellation import CancelToken, cancellable
    from enigm_recover.errors import InterruptedByUser
    from enigm_recover.readiness.run import ReadinessRun, opened_recovery, run_readiness
    from enigm_recover.snapshot.signature import load_allowed_signers
    from enigm_recover.sources.local import LocalFolderSource

    token = CancelToken()
    token.cancel("the operator went back")
    run_ = ReadinessRun(str(drill.snapshots), lambda _cache: LocalFolderSource(drill.snapshots),
                        lambda: load_allowed_signers(drill.allowed_signers), lambda: drill.recipient,
                        tmp_path / "state", tmp_path / "cache")
    with pytest.raises(InterruptedByUser, match="the operator went back"):
        run_readiness(run_, lambda: opened_recovery(tmp_path / "state", "dana"),
                      progress=cancellable(lambda p: None, token))
    (folder,) = (tmp_path / "state" / "recoveries").iterdir()
    entries = [json.loads(line) for line in (folder / "audit.jsonl").read_text().splitlines()]
    assert entries[-1]["action"] == "recovery-closed" and entries[-1]["outcome"] == "aborted"
    assert "the operator went back" in entries[-1]["inputs"]["reason"]
    assert not any(e["action"].startswith("readiness-") for e in entries)
    assert not (folder / "readiness.toml").exists()


def test_a_missing_setting_is_named_and_nothing_is_checked(served, tmp_path: Path) -> None:
    doc, _ = served
    app = make_app(doc, tmp_path, recipient=None)

    async def scenario() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: on(app, "StartScreen") and app.screen.runbooks is not None)
            await pilot.press("e")
            await until(pilot, lambda: on(app, "ErrorDialog"), ESCAPE_HATCH)
            assert "--recipient is not set" in text_of(app, "#error-message")
            await pilot.press("enter")
            await until(pilot, lambda: on(app, "ReadinessScreen", state="failed"))
            assert text_of(app, "#readiness-verdict").startswith("Not checked: --recipient is not set")
            await pilot.press("escape")
            await until(pilot, lambda: on(app, "StartScreen"))
            await pilot.press("ctrl+q")
        assert app.internal_errors == []

    run(scenario)
    assert not (tmp_path / "state" / "recoveries").exists() or not any((tmp_path / "state" / "recoveries").iterdir())


def test_the_config_file_s_retention_policy_applies_to_the_view(served, tmp_path: Path) -> None:
    """The app's policy is resolved as the command's: a [retention] table in the config file adds the retention
    check, here failing (keep one snapshot of three)."""
    import os

    from enigm_recover.cli.commands_app import app_options
    from enigm_recover.cli.context import Context
    from enigm_recover.cli.parser import build_parser

    doc, drill = served
    Path(os.environ["ENIGM_RECOVER_CONFIG"]).write_text("[retention]\nkeep_last = 1\n")
    ctx = Context(build_parser().parse_args(["app"]))
    policy = app_options(ctx, source=None, target=None, allowed_signers=None, runbook=None,
                         operator="dana").readiness_policy
    assert policy.retention is not None
    app = make_app(doc, tmp_path, readiness_policy=policy)

    async def scenario() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await open_readiness(pilot)
            assert rows(app)["retention"].startswith("✗ FAIL")
            assert app.screen.outcome.report.failing == ["retention"]
            await highlight(pilot, "retention")
            assert "`snapshots prune` would remove it" in text_of(app, "#readiness-detail")
            await pilot.press("ctrl+q")
        assert app.internal_errors == []

    run(scenario)
