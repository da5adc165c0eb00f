"""A browsable, filterable list of a dry run's changes that stays fast with 100,000+ of them.

Virtualised: the table holds one page, asked from the engine's
``DiffResult.page(offset, limit, kind=, change=, finding=)``; nothing else is
ever turned into widgets. The highlighted change's fields are shown before and
after (live now, snapshot).
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from enigm_recover.app.format import inert, plain

PAGE = 100
KINDS = (None, "identity", "device", "setting", "role")
CHANGES = (None, "missing", "extra", "changed")


def _key(change: Any) -> str:
    return inert(" / ".join(str(k) for k in change.key))


def _value(value: Any, limit: int = 60) -> str:
    if value is None:
        return "—"
    text = inert(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


class ChangeBrowser(Vertical):
    """The filter line, one page of changes, and the highlighted change's fields."""

    BINDINGS = [
        Binding("k", "cycle('kind')", "Kind", tooltip="Show one kind of record (identity, device, setting, role)"),
        Binding("c", "cycle('change')", "Change", tooltip="Show one kind of change (missing, extra, changed)"),
        Binding("f", "cycle('finding')", "Finding", tooltip="Show the changes with one safety finding"),
        Binding("x", "clear_filters", "All", tooltip="Show every change again"),
        Binding("n", "page(1)", "Next", tooltip=f"The next {PAGE} changes"),
        Binding("p", "page(-1)", "Prev", tooltip=f"The previous {PAGE} changes"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.result: Any = None
        self.filters: dict[str, str | None] = {"kind": None, "change": None, "finding": None}
        self.page_start = 0
        self._counts: dict[tuple[Any, ...], int] = {}
        self._page: list[Any] = []

    def compose(self) -> ComposeResult:
        yield Static("", id="change-filter")
        yield DataTable(id="changes", cursor_type="row")
        yield Static("", id="change-detail")

    def on_mount(self) -> None:
        self.query_one("#changes", DataTable).add_columns("#", "kind", "key", "change", "fields", "findings")

    def show(self, result: Any) -> None:
        self.result = result
        self._counts.clear()
        self.page_start = 0
        self._load()

    # -- paging ---------------------------------------------------------------------------------------

    def total(self) -> int:
        key = tuple(self.filters.values())
        if key not in self._counts:
            self._counts[key] = sum(1 for _ in self.result.select(**self.filters)) if any(key) \
                else len(self.result.changes)
        return self._counts[key]

    def _load(self) -> None:
        table = self.query_one("#changes", DataTable)
        table.clear()
        if self.result is None:
            return
        self._page = self.result.page(self.page_start, PAGE, **self.filters)
        for number, change in enumerate(self._page, self.page_start + 1):
            findings = ", ".join(f.value for f in change.findings)
            names = [f for f, _live, _snap in change.fields]
            if change.unreadable is not None and change.unreadable.column:
                names.append(change.unreadable.column)  # the column the model cannot read
            fields = ", ".join(names)
            table.add_row(str(number), plain(change.kind), Text(_key(change)), plain(change.change.value),
                          Text(_value(fields or None, 28)), plain(findings, "bold"), key=str(number))
        self._show_filter()
        self._show_detail()

    def _show_filter(self) -> None:
        total = self.total()
        text = Text("Filter: ", style="bold")
        for name in ("kind", "change", "finding"):
            value = self.filters[name]
            text.append(f"{name} ")
            text.append(value or "all", style="bold" if value else "")
            text.append("  ")
        if total:
            text.append(f"— changes {self.page_start + 1:,}–{self.page_start + len(self._page):,} of {total:,}")
        else:
            text.append("— no change matches")
        self.query_one("#change-filter", Static).update(text)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._show_detail()

    def _show_detail(self) -> None:
        detail = self.query_one("#change-detail", Static)
        table = self.query_one("#changes", DataTable)
        row = table.cursor_row
        if not self._page or row is None or row >= len(self._page):
            detail.update("")
            return
        from enigm_recover.recovery.assess import REASONS

        change = self._page[row]
        text = Text(f"{inert(change.kind)} {_key(change)}", style="bold")
        text.append(f" — {inert(change.change.value)}\n")
        for finding in change.findings:
            text.append(f"{finding.value}: ", style="bold")
            text.append(f"{REASONS[finding]}\n")
        if change.unreadable is not None:
            u = change.unreadable
            text.append(f"{u.column}: live holds {u.found}, not {u.expected}\n")
        if change.protected:
            text.append("Kept as it is in live by the safety rules, whatever the policy.\n", style="bold")
        if change.change.value == "missing":
            text.append("In the snapshot, missing from live: every restore step of this kind inserts it.")
        elif change.change.value == "extra":
            text.append("Only in live: kept unless the step chooses delete-extra.")
        elif change.fields:
            width = max(len(inert(f)) for f, _live, _snap in change.fields)
            text.append(f"{'field':<{width}}  {'live (now)':<30}  snapshot (a restore writes)\n", style="dim")
            for name, live, snap in change.fields:
                text.append(f"{inert(name):<{width}}  {_value(live):<30}  {_value(snap)}\n")
        text.rstrip()
        detail.update(text)

    # -- filters -------------------------------------------------------------------------------------------

    def _choices(self, name: str) -> tuple[str | None, ...]:
        if name == "kind":
            return KINDS
        if name == "change":
            return CHANGES
        present = sorted(self.result.findings()) if self.result is not None else []
        return (None, *present)

    def action_cycle(self, name: str) -> None:
        if self.result is None:
            return
        choices = self._choices(name)
        current = self.filters[name]
        index = choices.index(current) if current in choices else 0
        self.filters[name] = choices[(index + 1) % len(choices)]
        self.page_start = 0
        self._load()

    def action_clear_filters(self) -> None:
        self.filters = {"kind": None, "change": None, "finding": None}
        self.page_start = 0
        if self.result is not None:
            self._load()

    def action_page(self, direction: int) -> None:
        if self.result is None:
            return
        offset = self.page_start + direction * PAGE
        if offset < 0 or offset >= max(self.total(), 1):
            return
        self.page_start = offset
        self._load()
