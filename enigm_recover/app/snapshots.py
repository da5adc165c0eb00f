"""Stage 3, snapshots: newest first, with signature and recovery-key status; only trusted ones can be chosen."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Label, Static

from enigm_recover.app import format as fmt
from enigm_recover.app.stage import StageScreen

SIGNATURE_LABELS = {"trusted": "trusted", "unknown-signer": "UNTRUSTED signer", "invalid": "INVALID",
                    "missing": "UNSIGNED", "unchecked": "not checked"}


def why_not(summary: Any) -> str | None:
    """Why a snapshot cannot be chosen (None when it can)."""
    if summary.signature.value != "trusted":
        return fmt.inert(f"its signature is {SIGNATURE_LABELS.get(summary.signature.value, summary.signature.value)}: "
                         f"{summary.signature_detail}")
    if summary.recipient_matches is False:
        return "it is sealed to another recovery key than the configured one"
    return None


class SnapshotsScreen(StageScreen):
    STAGE = "Snapshots"
    BINDINGS = [
        Binding("enter", "choose", "Use this snapshot", priority=True, tooltip="Select the highlighted snapshot"),
        Binding("r", "relist", "List again", tooltip="Connect to the source and list it again"),
    ]

    def __init__(self, summaries: list[Any]) -> None:
        super().__init__()
        self.summaries = summaries

    def compose_body(self) -> ComposeResult:
        yield Label("Snapshots, newest first", classes="section-title")
        yield Static("", id="proposal")
        yield DataTable(id="snapshot-table", cursor_type="row", zebra_stripes=False)
        with VerticalScroll(id="manifest-pane"):
            yield Static("", id="manifest")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#manifest-pane").border_title = "Manifest"
        table = self.query_one("#snapshot-table", DataTable)
        table.add_columns("id", "age", "env", "id/dev/set/role", "size", "signature", "key")
        now = self.recover.options.now()
        first_choice = None
        for index, s in enumerate(self.summaries):
            blocked = why_not(s) is not None
            style = "dim strike" if blocked else ""
            key = "—" if s.recipient_matches is None else ("matches" if s.recipient_matches else "OTHER KEY")
            cells = [s.id, "IN THE FUTURE" if s.in_future(now) else fmt.age(s.age_seconds(now)), s.environment or "?",
                     "/".join(f"{n:,}" for n in s.counts.values()) or "?",
                     self.recover.options.shown(fmt.size(s.payload_size)),
                     SIGNATURE_LABELS.get(s.signature.value, s.signature.value), key]
            table.add_row(*(fmt.plain(c, style) for c in cells), key=s.id)
            if not blocked and first_choice is None:
                first_choice = index
        step = self.ex.current
        proposal = Text()
        if not self.summaries:
            proposal.append("The source holds no snapshots.", style="bold")
        elif first_choice is None:
            proposal.append("No snapshot here can be used: none is signed by a trusted producer for this "
                            "recovery key.", style="bold")
        elif self.summaries[first_choice].in_future(now):
            newest = self.summaries[first_choice]
            assert newest.created_at is not None
            proposal.append(f"The newest usable snapshot, {fmt.inert(newest.id)}, is dated "
                            f"{newest.created_at:%Y-%m-%d %H:%M:%S} UTC, after this host's clock "
                            f"({now:%Y-%m-%d %H:%M:%S} UTC): a wrong clock or a forged time. ", style="bold")
            proposal.append("Check this host's clock and the producer's; choose it only if you know it is genuine.",
                            style="dim")
            table.move_cursor(row=first_choice)
        else:
            newest = self.summaries[first_choice].id
            ask = step is not None and step.snapshot == "ask"
            proposal.append("Choose the snapshot to recover from. " if ask else
                            f"The newest usable snapshot, {fmt.inert(newest)}, is proposed. ")
            if first_choice > 0:  # never a silent fallback: say that newer entries are refused
                proposal.append(f"The newer {fmt.inert(self.summaries[0].id)} is refused "
                                f"({fmt.inert(why_not(self.summaries[0]))}): "
                                "using an older snapshot is your explicit choice. ", style="bold")
            proposal.append("Unsigned or untrusted snapshots are shown struck out and cannot be chosen.", style="dim")
            table.move_cursor(row=first_choice)
        self.query_one("#proposal", Static).update(proposal)
        table.focus()
        self._show_details()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_details()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_choose()

    @property
    def highlighted(self) -> Any:
        table = self.query_one("#snapshot-table", DataTable)
        if not self.summaries or table.cursor_row is None or table.cursor_row >= len(self.summaries):
            return None
        return self.summaries[table.cursor_row]

    def _show_details(self) -> None:
        s = self.highlighted
        pane = self.query_one("#manifest", Static)
        if s is None:
            pane.update("")
            return
        text = Text()
        blocked = why_not(s)
        if blocked:
            text.append(f"Cannot be chosen: {blocked}\n\n", style="bold")
        else:
            text.append(f"Signature: {fmt.inert(s.signature_detail)}\n", style="bold")
            if s.recipient_matches:
                text.append("Sealed to the configured recovery key.\n", style="bold")
            text.append("\n")
        manifest = fmt.folded_manifest(self.ex.manifests.get(s.id, "(manifest not readable)"))
        text.append(self.recover.options.shown(manifest).rstrip())
        pane.update(text)

    def action_choose(self) -> None:
        s = self.highlighted
        if s is None:
            return
        blocked = why_not(s)
        if blocked:
            self.recover.notify(f"{s.id} cannot be chosen: {blocked}", severity="error", timeout=8)
            return
        from enigm_recover.runbook.executor import Confirmation

        ex, operator = self.ex, self.recover.operator_name
        self.recover.run_engine(lambda progress: ex.run_current(Confirmation(operator, snapshot=s.id), progress),
                                done=lambda result: self.recover.show_current(), label="selecting the snapshot")

    def action_relist(self) -> None:
        if self.recover.busy:
            return
        self.recover.navigator.relist(self.step_index)
