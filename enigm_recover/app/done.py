"""Stage 8, done: the outcome, the counts, where the report and audit log are, and the audit head."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Label, Static

from enigm_recover.app.format import inert, plain
from enigm_recover.app.stage import StageScreen
from enigm_recover.app.widgets import humanize_counts
from enigm_recover.recovery.audit import readable_head


class DoneScreen(StageScreen):
    STAGE = "Done"
    BINDINGS = [Binding("q,enter", "app.quit", "Close", tooltip="Close the app")]

    def compose_body(self) -> ComposeResult:
        yield Static("", id="outcome")
        yield Label("Steps", classes="section-title")
        yield DataTable(id="results", cursor_type="none", show_cursor=False)
        yield Label("Evidence", classes="section-title")
        yield Static("", id="evidence")

    def on_mount(self) -> None:
        super().on_mount()
        ex = self.ex
        shown = self.recover.options.shown
        results = ex.results
        totals: dict[str, int] = {}
        for result in results:
            if result.action == "restore":
                for key, value in result.counts.items():
                    totals[key] = totals.get(key, 0) + value
        outcome = Text(f"Run {inert(ex.status)}", style="bold")
        outcome.append(inert(f" — runbook {ex.runbook.name}, ceremony {ex.ceremony}, snapshot {ex.state.snapshot or '-'}")
                       + "\n")
        unmet = [r.step for r in results if not r.ok]
        if unmet:
            outcome.append(f"Not done or not verified: {inert(', '.join(unmet))}\n", style="bold")
        if totals:
            outcome.append("Restored: " + inert(humanize_counts(totals)))
        self.query_one("#outcome", Static).update(outcome)
        table = self.query_one("#results", DataTable)
        table.add_columns("step", "status", "summary", "confirmed by")
        for result in results:
            summary = shown(result.summary)
            summary = summary if len(summary) <= 70 else summary[:69] + "…"
            table.add_row(plain(result.step), plain(result.status, "bold" if not result.ok else ""), Text(summary),
                          plain(", ".join(result.confirmed_by)))
        evidence = Text()
        groups = readable_head(ex.recovery.audit.head).split()
        for label, value in (("Report", ex.folder / "report.md"), ("Audit log", ex.folder / "audit.jsonl")):
            evidence.append(f"{label}\n", style="bold")
            evidence.append(f"  {shown(value)}\n")
        evidence.append(f"Audit head (entry {ex.recovery.audit.seq})\n", style="bold")
        evidence.append(f"  {shown(' '.join(groups[:8]))}\n  {shown(' '.join(groups[8:]))}\n", style="bold")
        evidence.append("Write the audit head down (or photograph it) and keep it apart from the log; "
                        "`enigm-recover audit verify LOG --head HASH --entries N` checks the log against it.",
                        style="dim")
        self.query_one("#evidence", Static).update(evidence)
