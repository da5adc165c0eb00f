"""A drill you can measure: each step's people and machine time, and the after-action report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from enigm_recover.errors import ShareError
from enigm_recover.quorum.cards import read_share_file
from enigm_recover.runbook.executor import Confirmation, RunbookExecutor, StepClock
from enigm_recover.runbook.loader import BUILTIN_DIR, load_runbook
from enigm_recover.runbook.model import Action
from tests.conftest import Drill
from tests.test_runbooks import CARDS, settings_for


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def drill_run(drill: Drill, state: Path, *, quorum_minutes: float, mistyped: str | None = None) -> RunbookExecutor:
    """A whole tabletop drill; the custodians take ``quorum_minutes``; ``mistyped`` first gets a word wrong."""
    clock = FakeClock()
    ex = RunbookExecutor.start(load_runbook(BUILTIN_DIR / "tabletop-drill.toml"), settings_for(drill, state))
    ex._clock = StepClock(clock)
    while ex.current is not None:
        if ex.current.action is Action.GATHER_QUORUM:
            quorum = ex.quorum()
            for name in CARDS:
                card = read_share_file(drill.card(name))
                if name == mistyped:
                    words = card.words.split()
                    words[3], words[4] = words[4], words[3]
                    with pytest.raises(ShareError):
                        quorum.add(" ".join(words), name)
                clock.now += quorum_minutes * 60 / len(CARDS)
                quorum.add(card.words, card.custodian)
            ex.combine()
        clock.now += 5  # reading the guidance, confirming
        ex.run_current(Confirmation("dana", "lee", note="done"))
    return ex


def test_each_step_records_people_and_machine_time_and_the_quorum_shows_the_ceremony(drill: Drill,
                                                                                    tmp_path: Path) -> None:
    ex = drill_run(drill, tmp_path / "state", quorum_minutes=6)
    quorum = next(r for r in ex.results if r.action is Action.GATHER_QUORUM)
    assert quorum.human_seconds == pytest.approx(6 * 60 + 5)  # the ceremony's real length, not 0 s
    assert all(r.waiting_since and r.machine_seconds >= 0 for r in ex.results)
    text = (ex.folder / "report.md").read_text()
    assert "people 365.0 s" in text


def test_the_after_action_report_has_a_timeline_custodians_errors_and_a_trend(drill: Drill, cli,
                                                                             tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = drill_run(drill, state, quorum_minutes=10)
    drill_run(drill, state, quorum_minutes=1)  # the target is restored already: a second run finds little to do
    second = drill_run(drill, state, quorum_minutes=4, mistyped="chen")

    code, out, err = cli("--state-dir", state, "report", second.ceremony, "--json")
    assert code == 0, err
    aar = json.loads(out)
    assert aar["ceremony"] == second.ceremony and aar["status"] == "completed"
    assert aar["quorum_seconds"] == pytest.approx(4 * 60 + 5)
    assert [s["step"] for s in aar["timeline"]] == [s.id for s in second.runbook.steps]
    assert aar["custodians"]["chen"] == {"accepted": 1, "rejected": 1}
    assert aar["custodians"]["amara"] == {"accepted": 1, "rejected": 0}
    assert any("share-rejected (chen)" in e["what"] for e in aar["errors"])
    trend = aar["trend"]
    assert [r["ceremony"] for r in trend][0] == first.ceremony and trend[-1]["ceremony"] == second.ceremony
    assert [r["rejected_shares"] for r in trend] == [0, 0, 1]
    assert trend[0]["quorum_seconds"] == pytest.approx(10 * 60 + 5)
    assert trend[0]["time_to_recover_seconds"] == pytest.approx(10 * 60 + 9 * 5)  # nine steps, 5 s of people each
    assert Path(aar["files"]["toml"]).exists()

    code, out, err = cli("--state-dir", state, "report", second.ceremony)
    assert code == 0, err
    assert "## Timeline" in out and "| Step | Outcome |" in out and "## Trend: run tabletop-drill" in out
    assert first.ceremony in out and f"{second.ceremony} (this run)" in out
    assert "| quorum | done |" in out and "4 min 05 s" in out
    assert (second.folder / "after-action.md").read_text() in out

    code, _, err = cli("--state-dir", state, "report", "no-such-run-10")
    assert code == 9 and "runs list" in err
