"""Stage 6, dry run: the safety findings first, the per-kind summary, then every change, browsable."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Label, Static

from enigm_recover.app import format as fmt
from enigm_recover.app.changes import ChangeBrowser
from enigm_recover.app.stage import StageScreen
from enigm_recover.app.widgets import ProgressPanel


class DryRunScreen(StageScreen):
    """Runs the current dry-run step; with ``browse=True``, shows the latest dry run again (from a restore
    step) and Enter or Escape goes back."""

    STAGE = "Dry run"
    BINDINGS = [
        Binding("enter", "next", "Continue", priority=True, tooltip="Go on to the next step"),
        Binding("escape", "escape", "Cancel/back", tooltip="Stop the dry run (it can be run again), or go back"),
        Binding("r", "retry", "Run again", tooltip="Run the dry run again"),
    ]

    def __init__(self, browse: bool = False) -> None:
        super().__init__()
        self.browse = browse
        self.state = "done" if browse else "running"  # running | done | failed

    def compose_body(self) -> ComposeResult:
        yield Static("", id="dry-run-intro")
        yield ProgressPanel(id="progress")
        yield Static("", id="dry-run-summary")
        yield Label("Safety findings", classes="section-title")
        yield DataTable(id="findings", cursor_type="none", show_cursor=False)
        yield Label("Per kind", classes="section-title")
        yield DataTable(id="kinds", cursor_type="none", show_cursor=False)
        yield Label("Changes", classes="section-title")
        yield ChangeBrowser(id="browser")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#findings", DataTable).add_columns("finding", "count", "kinds")
        self.query_one("#kinds", DataTable).add_columns("kind", "snapshot", "live", "missing", "extra", "changed",
                                                        "unchanged")
        step = self.ex.current
        intro = Text()
        if self.browse:
            intro.append("The latest dry run: what a restore would change. Enter or Esc goes back to the step.",
                         style="bold")
            self.query_one(ProgressPanel).display = False
            self._show(self.ex.dry_run)
        else:
            intro.append(fmt.inert(" ".join(step.guidance.split())))
            intro.append(" Nothing is written. Highlight a change to see its fields and findings explained; "
                         "d shows it in full.", style="dim")
            self.run_dry_run()
        self.query_one("#dry-run-intro", Static).update(intro)

    def run_dry_run(self) -> None:
        from enigm_recover.runbook.executor import Confirmation

        ex, operator = self.ex, self.recover.operator_name
        self.state = "running"
        self.query_one(ProgressPanel).start("Decrypting the payload and comparing it with the target…")
        self.recover.run_engine(lambda progress: ex.run_current(Confirmation(operator), progress),
                                done=self._ran, failed=self._failed, label="the dry run")
        self.refresh_bindings()

    def on_progress(self, progress: Any) -> None:
        self.query_one(ProgressPanel).report(progress)

    def _ran(self, result: Any) -> None:
        self.state = "done"
        self.query_one(ProgressPanel).display = False
        self.query_one("#dry-run-summary", Static).update(Text(f"✓ Dry run done: {fmt.inert(result.summary)}", style="bold"))
        self._show(self.ex.dry_run)
        self.refresh_frame()
        self.refresh_bindings()

    def _failed(self, error: BaseException) -> None:
        self.state = "failed"
        self.query_one(ProgressPanel).finish("The dry run did not finish", "press r to run it again")
        self.refresh_bindings()

    def _show(self, result: Any) -> None:
        if result is None:
            return
        findings = self.query_one("#findings", DataTable)
        findings.clear()
        counted = result.findings()
        for code, count in sorted(counted.items(), key=lambda item: (-item[1], item[0])):
            kinds_with = ", ".join(k for k, s in result.kinds.items() if s.findings.get(code))
            findings.add_row(fmt.plain(code, "bold"), f"{count:,}", fmt.plain(kinds_with))
        if not counted:
            findings.add_row("none", "", "no change touches a safety rule")
        kinds = self.query_one("#kinds", DataTable)
        kinds.clear()
        for kind, s in result.kinds.items():
            if not s.in_snapshot:
                kinds.add_row(fmt.plain(fmt.KIND_LABELS.get(kind, kind)), "not in this snapshot", "", "", "", "", "")
                continue
            kinds.add_row(fmt.plain(fmt.KIND_LABELS.get(kind, kind)), f"{s.snapshot:,}", f"{s.live:,}", f"{s.missing:,}",
                          f"{s.extra:,}", f"{s.changed:,}", f"{s.unchanged:,}")
        browser = self.query_one(ChangeBrowser)
        browser.show(result)
        browser.query_one("#changes", DataTable).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "next":
            return True if self.state == "done" else None
        if action == "retry":
            return self.state == "failed" and not self.browse
        if action == "escape":
            return self.state == "running" or self.browse
        return True

    def action_next(self) -> None:
        if self.state != "done":
            return
        if self.browse:
            self.recover.navigator.back()
        else:
            self.recover.show_current()

    def action_escape(self) -> None:
        if self.browse:
            self.recover.navigator.back()
        elif self.state == "running":
            self.recover.cancel_work()

    def action_retry(self) -> None:
        if self.state == "failed" and not self.recover.busy:
            self.run_dry_run()
