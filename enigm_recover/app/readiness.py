"""The readiness view: would the source's snapshots restore today? The same run as `enigm-recover readiness`.

The engine's one readiness run (``readiness.run.run_readiness``) with the app's settings, in the app's worker,
without a test restore (no share is asked): every check it returns in a table, the highlighted check's
evidence and problems in a scrolling pane, and the verdict. Like the command, it writes readiness.toml and
readiness.md beside the run's audit log. Nothing here judges a check: the screen shows what the run says.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import DataTable, Footer, Static

from enigm_recover.app.format import inert, plain
from enigm_recover.app.stage import StageScreen
from enigm_recover.app.widgets import ProgressPanel, StatusLine

MARKS = {"pass": "✓ pass", "fail": "✗ FAIL", "not-run": "– not run"}
STAGE = "Readiness"


def readiness_work(app: Any) -> Any:
    """The work for the app's worker: the readiness run over the app's source, trust files and policy."""
    from enigm_recover.errors import InterruptedByUser, UsageError

    o = app.options
    missing = [flag for flag, value in (("--source", o.source), ("--allowed-signers", o.allowed_signers),
                                        ("--recipient", o.recipient)) if not value]

    def work(progress: Any) -> Any:
        from enigm_recover.readiness.policy import ReadinessPolicy
        from enigm_recover.readiness.run import ReadinessRun, opened_recovery, run_readiness
        from enigm_recover.snapshot.signature import load_allowed_signers
        from enigm_recover.sources.open import open_source

        if missing:
            raise UsageError(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set",
                             "pass it when opening the app, or set it with `enigm-recover config set`")
        settings = app.run_settings()  # the SSH settings with the app's prompts, and the audit head's signer
        run = ReadinessRun(settings.source, lambda cache: open_source(settings.source, settings.ssh, cache),
                           lambda: load_allowed_signers(o.allowed_signers), lambda: o.recipient, o.state_dir,
                           o.cache_dir, o.readiness_policy or ReadinessPolicy(), now=o.now())
        try:
            return run_readiness(run, lambda: opened_recovery(o.state_dir, o.operator, settings.signer, o.ceremony),
                                 progress=progress)
        except InterruptedByUser:  # the operator went back: the run is closed as aborted, nothing to show
            return None

    return work


class ReadinessScreen(StageScreen):
    """Every readiness check with its verdict; Escape goes back to the start screen."""

    STAGE = STAGE
    BINDINGS = [
        Binding("r", "retry", "Check again", tooltip="Run every readiness check again"),
        Binding("d", "details", "Details", tooltip="Move to the highlighted check's details, to scroll them"),
        Binding("escape", "close", "Back", tooltip="Back to the start screen (a running check is stopped)"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.state = "waiting"  # waiting | running | done | failed
        self.outcome: Any = None  # the ReadinessOutcome once the run finished
        self.error: BaseException | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="stage-header")
        with Vertical(id="body"):
            yield Static("", id="readiness-verdict")
            yield ProgressPanel(id="readiness-progress")
            yield DataTable(id="readiness-checks", cursor_type="row", zebra_stripes=False)
            with VerticalScroll(id="readiness-detail-pane"):
                yield Static("", id="readiness-detail")
        yield StatusLine(id="status-line")
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#readiness-detail-pane").border_title = "Details"
        self._header()
        self._run()

    def on_resize(self) -> None:
        super().on_resize()
        self._header()
        if self.outcome is not None:
            self._fill(keep=True)

    # -- the run ------------------------------------------------------------------------------------------

    def _run(self) -> None:
        if self.state == "running" or not self.is_attached:
            return
        started = not self.recover.busy and self.recover.run_engine(
            readiness_work(self.recover), done=self._done, failed=self._failed, label="checking readiness")
        if not started:
            self.set_timer(0.2, self._run)  # other work is running or stopping: start when it has ended
            return
        self.state = "running"
        self.query_one(ProgressPanel).start("Checking the source's snapshots…")
        self.query_one("#readiness-verdict", Static).update(Text("Checking readiness (no share is needed)…",
                                                                 style="bold"))
        self.refresh_bindings()

    def on_progress(self, progress: Any) -> None:
        if self.state == "running":
            self.query_one(ProgressPanel).report(progress)

    def _done(self, outcome: Any) -> None:
        if outcome is None or not self.is_attached:  # stopped by going back
            self.state = "waiting"
            return
        self.state, self.outcome, self.error = "done", outcome, None
        self.query_one(ProgressPanel).display = False
        self._fill()
        table = self.query_one("#readiness-checks", DataTable)
        table.focus()
        self.refresh_bindings()

    def _failed(self, error: BaseException) -> None:
        """The run stopped before its checks (a trust file unreadable, a setting missing): the dialog says why."""
        self.state, self.error = "failed", error
        if not self.is_attached:
            return
        from enigm_recover.errors import EnigmError

        self.query_one(ProgressPanel).display = False
        said = error.message if isinstance(error, EnigmError) else type(error).__name__
        self.query_one("#readiness-verdict", Static).update(
            Text.assemble(("Not checked: ", "bold"), self.recover.options.shown(said), "\npress r to check again"))
        self.refresh_bindings()

    # -- what it shows ------------------------------------------------------------------------------------

    def _header(self) -> None:
        width = self.app.size.width
        o = self.recover.options
        line1 = Text("enigm-recover", style="bold")
        line1.append("  ·  Recovery readiness")
        line2 = Text("Source: ", style="bold")
        line2.append(o.shown(o.source) if o.source else "not set (pass --source)")
        tail = Text(STAGE, style="reverse bold")
        line2.truncate(max(8, width - tail.cell_len - 4), overflow="ellipsis")
        line2.append(" " * max(2, width - line2.cell_len - tail.cell_len - 2))
        line2.append_text(tail)
        self.query_one("#stage-header", Static).update(Text("\n").join([line1, line2]))

    def _fill(self, keep: bool = False) -> None:
        report, recovery = self.outcome.report, self.outcome.recovery
        shown = self.recover.options.shown
        verdict = Text()
        if report.ready:
            verdict.append("READY", style="bold reverse")
            not_run = sum(1 for c in report.checks if c.ok is None)
            verdict.append(f"  no check failed ({len(report.checks) - not_run} passed, {not_run} not run)")
        else:
            verdict.append("NOT READY", style="bold reverse")
            verdict.append("  failing: ", style="bold")
            verdict.append(inert(", ".join(report.failing)))
        verdict.append("\n")
        verdict.append(f"readiness.md, readiness.toml and audit.jsonl in {shown(recovery.folder)}", style="dim")
        self.query_one("#readiness-verdict", Static).update(verdict)
        table = self.query_one("#readiness-checks", DataTable)
        row = table.cursor_row if keep else 0
        table.clear(columns=True)
        name_width = max(len(c.name) for c in report.checks)
        mark_width = max(len(m) for m in MARKS.values())
        room = max(12, self.app.size.width - name_width - mark_width - 12)  # cell padding, the scroll bar
        table.add_column("check", width=name_width)
        table.add_column("result", width=mark_width)
        table.add_column("summary", width=room)
        for check in report.checks:
            summary = shown(check.summary)
            summary = summary if len(summary) <= room else summary[:room - 1] + "…"
            table.add_row(plain(check.name), Text(MARKS[check.status], style="bold" if check.ok is False else ""),
                          Text(summary), key=check.name)
        if report.checks:
            table.move_cursor(row=min(row, len(report.checks) - 1))
        self._show_detail()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    @property
    def highlighted(self) -> Any:
        """The highlighted check (a CheckResult), once the run finished."""
        if self.outcome is None or not self.outcome.report.checks:
            return None
        row = self.query_one("#readiness-checks", DataTable).cursor_row
        checks = self.outcome.report.checks
        return checks[row] if 0 <= row < len(checks) else None

    def _show_detail(self) -> None:
        check = self.highlighted
        if check is None:
            return
        from enigm_recover.readiness.checks import DESCRIPTIONS

        shown = self.recover.options.shown
        text = Text()
        text.append(f"{inert(check.name)}: {MARKS[check.status]}\n", style="bold")
        text.append(shown(check.summary) + "\n")
        problems = [p for p in check.problems if p != check.summary] if check.ok is False else []
        if problems:
            text.append("\nProblems\n", style="bold")
            for line in problems:
                text.append(f"• {shown(line)}\n")
        if check.evidence:
            text.append("\nEvidence\n", style="bold")
            for line in check.evidence:
                text.append(f"• {shown(line)}\n")
        text.append("\nWhat it checks: ", style="bold")
        text.append(inert(DESCRIPTIONS.get(check.name, "")), style="dim")
        self.query_one("#readiness-detail", Static).update(text)
        self.query_one("#readiness-detail-pane", VerticalScroll).scroll_home(animate=False)

    # -- keys ---------------------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "retry":
            return True if self.state in ("done", "failed") else None
        if action == "details":
            return True if self.outcome is not None else None
        return True

    def action_retry(self) -> None:
        if self.state in ("done", "failed"):
            self._run()

    def action_details(self) -> None:
        if self.outcome is not None:
            self.query_one("#readiness-detail-pane", VerticalScroll).focus()

    def action_close(self) -> None:
        """Back to the start screen; a running check stops at its next safe point (its run is closed as
        aborted, naming why)."""
        if self.state == "running":
            self.recover.cancel_work("the operator went back")
        self.recover.navigator.leave_readiness(self)
