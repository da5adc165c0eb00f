"""Rates mean something: never computed over a few milliseconds, steady over a window."""

from __future__ import annotations

import io

from enigm_recover.app.format import describe_rate, rate_and_eta
from enigm_recover.progress import Progress, RateMeter, Stage


def test_a_rate_is_hidden_until_it_spans_a_second_then_follows_a_window() -> None:
    meter = RateMeter(min_span=1.0, window=5.0)
    assert meter.add(0.0, 0) is None
    assert meter.add(0.001, 200_000) is None  # 200,000,000/s over a millisecond: not shown
    assert meter.add(0.5, 300_000) is None
    assert meter.add(1.0, 1_000_000) == 1_000_000.0  # a second of work: now a rate
    meter.reset()
    for second in range(0, 11):
        rate = meter.add(float(second), second * 100)
    assert rate == 100.0
    rate = meter.add(11.0, 1_100 + 5_000)  # a burst moves a windowed rate, without jumping to the burst's rate
    assert rate is not None and 100 < rate < 5_000


def test_the_app_shows_no_rate_over_a_tiny_interval() -> None:
    p = Progress(Stage.FETCH, 50 << 30, 100 << 30, "bytes", "x.payload.age")
    assert rate_and_eta(p, 0.2) == ""  # "250 GiB/s" over a fifth of a second means nothing
    assert describe_rate(p, None) == ""
    assert describe_rate(p, float(10 << 20)).startswith("10.0 MiB/s · about ")


def test_the_terminal_progress_line_omits_the_rate_until_it_is_measured(monkeypatch) -> None:
    from enigm_recover.cli import output

    clock = iter([0.0, 0.001, 0.2, 1.5])
    monkeypatch.setattr(output.time, "monotonic", lambda: next(clock))
    stream = io.StringIO()
    printer = output.ProgressPrinter(stream)
    printer(Progress(Stage.RESTORE, 0, 1000, "records", "device"))
    printer(Progress(Stage.RESTORE, 200, 1000, "records", "device"))
    printer(Progress(Stage.RESTORE, 300, 1000, "records", "device"))
    assert "/s" not in stream.getvalue()
    printer(Progress(Stage.RESTORE, 600, 1000, "records", "device"))
    assert "400/s, ETA 1 s" in stream.getvalue()


def test_a_paced_restore_waits_after_each_restored_batch_only() -> None:
    from enigm_recover.progress import paced

    seen, waits = [], []
    report = paced(seen.append, 1.5, sleep=waits.append)
    report(Progress(Stage.FETCH, 10, 100, "bytes"))
    report(Progress(Stage.RESTORE, 2, 10, "records", "device"))
    report(Progress(Stage.RESTORE, 4, 10, "records", "device"))
    assert len(seen) == 3 and waits == [1.5, 1.5]


def test_a_drill_run_with_a_restore_pace_waits_per_batch(drill, tmp_path, monkeypatch) -> None:
    from enigm_recover.runbook.executor import RunbookExecutor
    from enigm_recover.runbook.loader import BUILTIN_DIR, load_runbook
    from tests.test_runbooks import settings_for, walk_until

    waits: list[float] = []
    monkeypatch.setattr("time.sleep", waits.append)
    settings = settings_for(drill, tmp_path / "state")
    settings.batch_size, settings.restore_pace = 2, 1.0
    ex = RunbookExecutor.start(load_runbook(BUILTIN_DIR / "tabletop-drill.toml"), settings)
    walk_until(ex, drill, "restore-roles")
    restored = sum(ex.results[-1].counts.get(k, 0) for k in ("inserted", "updated", "deleted"))
    assert restored > 10 and len(waits) >= restored // 2  # one wait per batch of two
