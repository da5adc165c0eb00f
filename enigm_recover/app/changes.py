"""A browsable, filterable list of a dry run's changes that stays fast with 100,000+ of them.

Virtualised: the table holds one page, asked from the engine's
``DiffResult.page(offset, limit, kind=, change=, finding=)``; nothing else is
ever turned into widgets. The highlighted change's fields are shown before and
after (live now, snapshot) below the table, and in full — every value, path and
hash unshortened, in a pane that scrolls — with ``d``, at any terminal size.
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


KEY_WIDTH = 24  # the key column: long keys are shortened in the middle (their ends tell them apart)


def middle(text: str, limit: int) -> str:
    """``text`` shortened in the middle to ``limit`` characters, its start and end kept."""
    if len(text) <= limit:
        return text
    head = limit // 2
    return text[:head] + "…" + text[len(text) - (limit - 1 - head):]


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
        Binding("d", "details", "Details", tooltip="The highlighted change in full: every field, before and after"),
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
        self.query_one("#changes", DataTable).add_columns("#", "kind", "key", "change", "findings", "fields")

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
            table.add_row(str(number), plain(change.kind), Text(middle(_key(change), KEY_WIDTH)),
                          plain(change.change.value), plain(findings or "—", "bold" if findings else "dim"),
                          Text(_value(fields or None, 28)), key=str(number))
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

    def highlighted(self) -> Any:
        table = self.query_one("#changes", DataTable)
        row = table.cursor_row
        if not self._page or row is None or row >= len(self._page):
            return None
        return self._page[row]

    def _show_detail(self) -> None:
        detail = self.query_one("#change-detail", Static)
        change = self.highlighted()
        detail.update(describe_change(change, 60) if change is not None else "")

    def action_details(self) -> None:
        from enigm_recover.app.dialogs import DetailDialog

        change = self.highlighted()
        if change is not None:
            self.app.navigator.ask(DetailDialog("The highlighted change", describe_change(change, None, full=True)),
                                   lambda _closed: None)

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


def describe_change(change: Any, limit: int | None, full: bool = False) -> Text:
    """A change's kind, key, findings and fields. With ``full`` every field is given on lines of its own
    (before, then after), unshortened, so it reads at any width; otherwise as a table of ``limit``-wide values."""
    from enigm_recover.recovery.assess import REASONS

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
    elif change.fields and full:
        for name, live, snap in change.fields:
            text.append(f"\n{inert(name)}\n", style="bold")
            text.append("  live (now)\n", style="dim")  # each value on a line of its own: a hash or path fits whole
            text.append(f"    {'—' if live is None else inert(live)}\n")
            text.append("  snapshot (a restore writes)\n", style="dim")
            text.append(f"    {'—' if snap is None else inert(snap)}\n")
    elif change.fields:
        width = max(len(inert(f)) for f, _live, _snap in change.fields)
        text.append(f"{'field':<{width}}  {'live (now)':<30}  snapshot (a restore writes)\n", style="dim")
        for name, live, snap in change.fields:
            text.append(f"{inert(name):<{width}}  {_value(live, limit or 60):<30}  {_value(snap, limit or 60)}\n")
    text.rstrip()
    return text
