"""Stage 4, verify and fetch: download progress with rate and ETA, then each check with its result."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Label, Static

from enigm_recover.app import format as fmt
from enigm_recover.app.stage import StageScreen
from enigm_recover.app.widgets import ProgressPanel


class VerifyScreen(StageScreen):
    STAGE = "Verify and fetch"
    BINDINGS = [
        Binding("enter", "next", "Continue", priority=True, tooltip="Go on to the next step"),
        Binding("r", "retry", "Verify again", tooltip="Fetch and check the snapshot again"),
        Binding("escape", "cancel_work", "Cancel", tooltip="Stop the download; it resumes next time"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.state = "running"  # running | done | failed
        self.result: Any = None

    def compose_body(self) -> ComposeResult:
        yield Label("Verify the snapshot", classes="section-title")
        yield Static("", id="verify-intro")
        yield ProgressPanel(id="progress")
        yield Label("Checks", classes="section-title")
        yield DataTable(id="checks", cursor_type="none", show_cursor=False)
        yield Static("", id="verify-outcome")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#checks", DataTable).add_columns("check", "result", "detail")
        step = self.ex.current
        intro = Text(fmt.inert(" ".join(step.guidance.split())) + "\n", style="")
        intro.append(f"Snapshot {fmt.inert(self.ex.state.snapshot)}: the manifest's schema and signature, then the payload "
                     "is fetched into the cache (resumable) and its size and SHA-256 checked against the signed "
                     "manifest.", style="dim")
        self.query_one("#verify-intro", Static).update(intro)
        self.verify()

    def verify(self) -> None:
        from enigm_recover.runbook.executor import Confirmation

        ex, operator = self.ex, self.recover.operator_name
        self.state = "running"
        self.query_one(ProgressPanel).start("Checking the manifest and its signature…")
        if self.recover.run_engine(lambda progress: ex.run_current(Confirmation(operator), progress),
                                   done=self._verified, failed=self._failed, label="verifying the snapshot"):
            self.refresh_bindings()

    def on_progress(self, progress: Any) -> None:
        self.query_one(ProgressPanel).report(progress)

    def _verified(self, result: Any) -> None:
        self.state, self.result = "done", result
        table = self.query_one("#checks", DataTable)
        table.clear()
        for check in result.checks:
            mark = {True: "✓ ok", False: "✗ FAILED", None: "– later"}[check.ok]
            table.add_row(fmt.plain(check.name), mark, Text(self.recover.options.shown(check.detail)))
        self.query_one(ProgressPanel).finish("Fetched and checked", "")
        outcome = Text(f"✓ {fmt.inert(result.summary)}. ", style="bold")
        outcome.append(fmt.counts(result.counts))
        outcome.append("\nPress Enter to go on.", style="dim")
        self.query_one("#verify-outcome", Static).update(outcome)
        self.refresh_frame()
        self.refresh_bindings()

    def _failed(self, error: BaseException) -> None:
        self.state = "failed"
        self.query_one(ProgressPanel).finish("Not verified", "press r to verify again")
        self.query_one("#verify-outcome", Static).update(Text(
            "✗ The snapshot did not verify: nothing was read from it. Press r to try again, or quit (ctrl+q) and "
            "choose another snapshot in a new run.", style="bold"))
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "next":
            return True if self.state == "done" else None
        if action == "retry":
            return self.state == "failed"
        if action == "cancel_work":
            return self.state == "running"
        return True

    def action_next(self) -> None:
        if self.state == "done":
            self.recover.show_current()

    def action_retry(self) -> None:
        if self.state == "failed" and not self.recover.busy:
            self.verify()
