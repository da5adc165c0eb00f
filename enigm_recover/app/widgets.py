"""Widgets the stage screens share: where you are in the runbook, progress, big type, the share field."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Label, ProgressBar, Static

from enigm_recover.app import format as fmt
from enigm_recover.progress import Progress, RateMeter
from enigm_recover.runbook.model import StepStatus

STATUS_ICONS = {StepStatus.DONE: "✓", StepStatus.VERIFIED: "✓", StepStatus.NOT_VERIFIED: "!", StepStatus.SKIPPED: "–",
                StepStatus.FAILED: "✗"}
_FLAGGED = (StepStatus.FAILED, StepStatus.NOT_VERIFIED, StepStatus.SKIPPED)


def step_statuses(executor: Any) -> list[StepStatus | str]:
    """One status per runbook step: the step's StepStatus once it ended, else 'current' or 'pending'."""
    results = executor.results
    out = []
    for index, _step in enumerate(executor.runbook.steps):
        if index < len(results):
            out.append(results[index].status)
        elif index == executor.state.position and executor.current is not None:
            out.append("current")
        else:
            out.append("pending")
    return out


class StageHeader(Static):
    """Two lines on top of every stage: the runbook and ceremony, then the step this screen is about."""

    def __init__(self, stage: str) -> None:
        super().__init__(id="stage-header")
        self.stage = stage

    def on_mount(self) -> None:
        self.refresh_header()

    def refresh_header(self) -> None:
        app: Any = self.app
        ex = app.executor
        width = self.size.width or 120
        runbook = ex.runbook if ex is not None else app.selected_runbook
        line1 = Text("enigm-recover", style="bold")
        ceremony = Text(f"ceremony {ex.ceremony}", style="bold") if ex is not None else Text()
        if runbook is not None:
            room = width - line1.cell_len - ceremony.cell_len - 7
            if room > 8:
                title = fmt.plain(runbook.title)
                title.truncate(room, overflow="ellipsis")
                line1.append("  ·  ")
                line1.append_text(title)
        line2 = Text()
        index = getattr(self.screen, "step_index", None)
        if ex is not None and index is not None and index < len(ex.runbook.steps):
            line2.append(f"Step {index + 1} of {len(ex.runbook.steps)}", style="bold")
            line2.append(f": {fmt.inert(ex.runbook.steps[index].title)}")
        elif ex is not None and ex.current is None:
            line2.append(f"Runbook finished ({ex.status})", style="bold")
        else:
            line2.append("Choose what to run", style="bold")
        if ex is not None:
            _right(line1, ceremony, width)
        _right(line2, Text(self.stage, style="reverse bold"), width)
        line1.truncate(width, overflow="ellipsis")
        line2.truncate(width, overflow="ellipsis")
        self.update(Text("\n").join([line1, line2]))

    def on_resize(self) -> None:
        self.refresh_header()


def _right(line: Text, tail: Text, width: int) -> None:
    """Append ``tail`` to ``line``, pushed to the right edge (or after two spaces when narrow)."""
    pad = width - line.cell_len - tail.cell_len - 2
    line.append(" " * max(2, pad))
    line.append_text(tail)


class RunbookPanel(Static):
    """The runbook's steps with their status; the step this screen is about highlighted."""

    def __init__(self) -> None:
        super().__init__(id="runbook-panel")

    def on_mount(self) -> None:
        self.border_title = "Runbook"
        self.refresh_steps()

    def refresh_steps(self) -> None:
        app: Any = self.app
        ex = app.executor
        runbook = ex.runbook if ex is not None else app.selected_runbook
        if runbook is None:
            self.update("no runbook chosen yet")
            return
        statuses = step_statuses(ex) if ex is not None else ["pending"] * len(runbook.steps)
        viewing = getattr(self.screen, "step_index", None)
        width = max(10, (self.size.width or 26))
        lines = []
        for index, (step, status) in enumerate(zip(runbook.steps, statuses)):
            icon = "▶" if status == "current" else "·" if status == "pending" else STATUS_ICONS.get(status, "?")
            style = "dim" if status == "pending" else "bold" if status in _FLAGGED[:2] else ""
            if index == viewing:
                style = "bold reverse"
            line = Text(f"{icon} {index + 1}. {fmt.inert(step.title)}", style=style, no_wrap=True, overflow="ellipsis")
            if status in _FLAGGED:
                line.append(f" ({status})")
            line.truncate(width, overflow="ellipsis")
            lines.append(line)
        self.update(Text("\n").join(lines))

    def on_resize(self) -> None:
        self.refresh_steps()


class ProgressPanel(Vertical):
    """A stage label, a bar, and the amount done with its rate and time left."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._stage: str | None = None
        self._meter = RateMeter()  # hides the rate until it is measured over a second or more

    def compose(self) -> ComposeResult:
        yield Label("", classes="progress-stage")
        yield ProgressBar(total=None, show_eta=False, show_percentage=True, classes="progress-bar")
        yield Label("", classes="progress-amount")

    def start(self, label: str | Text) -> None:
        self._stage = None
        self.query_one(".progress-stage", Label).update(label if isinstance(label, Text) else fmt.plain(label))
        self.query_one(".progress-bar", ProgressBar).update(total=None, progress=0)
        self.query_one(".progress-amount", Label).update("")
        self.display = True

    def report(self, p: Progress) -> None:
        now = self.app.options.monotonic()  # type: ignore[attr-defined]
        if p.label != self._stage:
            self._stage = p.label
            self._meter.reset()
        self.query_one(".progress-stage", Label).update(fmt.plain(fmt.humanize_stage(p)))
        self.query_one(".progress-bar", ProgressBar).update(total=p.total or None, progress=p.done)
        rate = fmt.describe_rate(p, self._meter.add(now, p.done))
        self.query_one(".progress-amount", Label).update(fmt.plain(fmt.amount(p) + (f"  ·  {rate}" if rate else "")))

    def finish(self, label: str, amount: str = "") -> None:
        bar = self.query_one(".progress-bar", ProgressBar)
        bar.update(total=100, progress=100)
        self.query_one(".progress-stage", Label).update(fmt.plain(label))
        self.query_one(".progress-amount", Label).update(fmt.plain(amount))


def humanize_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in counts.items())


# -- big type: a 3x5 pixel font drawn with half blocks, three rows high ---------------------------------

_FONT = {
    "a": (".#.", "#.#", "###", "#.#", "#.#"), "b": ("##.", "#.#", "##.", "#.#", "##."),
    "c": (".##", "#..", "#..", "#..", ".##"), "d": ("##.", "#.#", "#.#", "#.#", "##."),
    "e": ("###", "#..", "##.", "#..", "###"), "f": ("###", "#..", "##.", "#..", "#.."),
    "g": (".##", "#..", "#.#", "#.#", ".##"), "h": ("#.#", "#.#", "###", "#.#", "#.#"),
    "i": ("###", ".#.", ".#.", ".#.", "###"), "j": ("..#", "..#", "..#", "#.#", ".#."),
    "k": ("#.#", "#.#", "##.", "#.#", "#.#"), "l": ("#..", "#..", "#..", "#..", "###"),
    "m": ("#.#", "###", "###", "#.#", "#.#"), "n": ("##.", "#.#", "#.#", "#.#", "#.#"),
    "o": (".#.", "#.#", "#.#", "#.#", ".#."), "p": ("##.", "#.#", "##.", "#..", "#.."),
    "q": (".#.", "#.#", "#.#", "##.", ".##"), "r": ("##.", "#.#", "##.", "#.#", "#.#"),
    "s": (".##", "#..", ".#.", "..#", "##."), "t": ("###", ".#.", ".#.", ".#.", ".#."),
    "u": ("#.#", "#.#", "#.#", "#.#", "###"), "v": ("#.#", "#.#", "#.#", "#.#", ".#."),
    "w": ("#.#", "#.#", "###", "###", "#.#"), "x": ("#.#", "#.#", ".#.", "#.#", "#.#"),
    "y": ("#.#", "#.#", ".#.", ".#.", ".#."), "z": ("###", "..#", ".#.", "#..", "###"),
    "0": ("###", "#.#", "#.#", "#.#", "###"), "1": (".#.", "##.", ".#.", ".#.", "###"),
    "2": ("##.", "..#", ".#.", "#..", "###"), "3": ("##.", "..#", ".#.", "..#", "##."),
    "4": ("#.#", "#.#", "###", "..#", "..#"), "5": ("###", "#..", "##.", "..#", "##."),
    "6": (".##", "#..", "###", "#.#", "###"), "7": ("###", "..#", ".#.", ".#.", ".#."),
    "8": ("###", "#.#", "###", "#.#", "###"), "9": ("###", "#.#", "###", "..#", "##."),
    "-": ("...", "...", "###", "...", "..."), " ": ("...", "...", "...", "...", "..."),
}
_HALVES = {(False, False): " ", (True, False): "▀", (False, True): "▄", (True, True): "█"}


def big_text(text: str) -> list[str] | None:
    """Three lines of half-block glyphs for ``text`` (None when a character has no glyph)."""
    glyphs = []
    for char in text.lower():
        glyph = _FONT.get(char)
        if glyph is None:
            return None
        glyphs.append((*glyph, "..."))
    lines = []
    for row in range(0, 6, 2):
        cells = []
        for glyph in glyphs:
            top, bottom = glyph[row], glyph[row + 1]
            cells.append("".join(_HALVES[(t == "#", b == "#")] for t, b in zip(top, bottom)))
        lines.append(" ".join(cells).rstrip())
    return lines


class BigText(Static):
    """A word in big type when it fits the width, in bold spaced capitals otherwise."""

    def __init__(self, text: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.text = text

    def on_mount(self) -> None:
        self._draw()

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> None:
        lines = big_text(self.text)
        width = self.size.width or 200
        if lines is not None and max(len(line) for line in lines) <= width:
            self.update(Text("\n".join(lines), style="bold"))
        else:
            self.update(Text(" ".join(self.text.upper()), style="bold"))


# -- the share field ----------------------------------------------------------------------------------


def _complete_word() -> Any:
    from enigm_recover.quorum.entry import complete_word  # imported at the first keystroke, not at start-up

    return complete_word


def _typing_feedback(value: str) -> tuple[int, str, list[int]]:
    from enigm_recover.quorum.entry import typing_feedback

    return typing_feedback(value)


class FormField(Input):
    """A visible field of a form that is typed in one go (a name, then a ceremony id, then a share).

    Enter moves the focus on at once, inside this field's own key handling — not later, when the
    submission has travelled up to the screen — and any key or paste that still reaches this field after
    the focus left it (typed ahead, queued before the move) is passed on to the field that has the focus.
    So a burst of "name, Enter, Enter, share words" leaves every word in the masked share field. A paste of
    several lines fills this field with the first and hands the rest on the same way.
    """

    def __init__(self, *, next_field: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.next_field = next_field

    def _elsewhere(self) -> Any:
        """The widget that has the focus when it is not this field (keys typed ahead belong there)."""
        focused = self.app.focused
        return focused if focused is not None and focused is not self else None

    def _advance(self) -> None:
        self.post_message(self.Submitted(self, self.value))
        if self.next_field is not None:
            self.screen.set_focus(self.screen.query_one(self.next_field))

    def on_key(self, event: events.Key) -> None:
        """Runs before Input's own key handling (the subclass's handler comes first); prevent_default skips it."""
        target = self._elsewhere()
        if target is not None:
            event.prevent_default()
            event.stop()
            target._forward_event(events.Key(event.key, event.character))
            return
        if event.key == "enter" and self.next_field is not None:
            event.prevent_default()
            event.stop()
            self._advance()

    def on_paste(self, event: events.Paste) -> None:
        target = self._elsewhere()
        if target is not None:
            event.prevent_default()
            event.stop()
            target._forward_event(events.Paste(event.text))
            return
        first, newline, rest = event.text.replace("\r\n", "\n").replace("\r", "\n").partition("\n")
        if not newline or self.next_field is None:
            return  # Input's own paste handling follows
        event.prevent_default()
        event.stop()
        if first:
            self.insert_text_at_cursor(first)
        self._advance()
        if rest and (target := self._elsewhere()) is not None:
            target._forward_event(events.Paste(rest))


class HiddenInput(Input):
    """A masked field whose content never leaves it: copying or cutting it to the clipboard is refused."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("password", True)
        super().__init__(**kwargs)

    def action_copy(self) -> None:
        self.app.bell()

    def action_cut(self) -> None:
        self.app.bell()


class ShareInput(HiddenInput):
    """A masked field for a SLIP-39 share. Four letters fix a word: at a space the word is completed in
    place (still masked), and after every keystroke a verdict on the word being typed is posted — its
    position only, never its letters."""

    class WordState(Message):
        def __init__(self, words: int, current: str, bad: list[int]) -> None:
            super().__init__()
            self.words = words  # words finished so far
            self.current = current  # a verdict on the word being typed
            self.bad = bad  # positions (1-based) of finished words that are no SLIP-39 word

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(restrict=r"[A-Za-z ]*", select_on_focus=False, **kwargs)
        self._complete = _complete_word()

    def insert_text_at_cursor(self, text: str) -> None:
        if text == " " and self.cursor_position == len(self.value):
            head, _, token = self.value.rpartition(" ")
            if not token:
                return  # no leading or double spaces
            word = self._complete(token)
            if word is not None and word != token.lower():
                self.value = (f"{head} " if head else "") + word + " "
                self.cursor_position = len(self.value)
                return
        super().insert_text_at_cursor(text)

    def on_paste(self, event: events.Paste) -> None:
        """A share pasted over several lines (a card's rows) is one share: its lines are joined by spaces."""
        event.prevent_default()
        event.stop()
        words = " ".join(event.text.split())
        if words:
            if self.value and not self.value.endswith(" ") and self.cursor_position == len(self.value):
                words = " " + words
            self.insert_text_at_cursor(words)

    def watch_value(self, value: str) -> None:
        """Textual calls this after Input's own watcher of the value."""
        self.post_message(self.WordState(*_typing_feedback(value)))


# -- the screen's own line for short messages ---------------------------------------------------------------

_SEVERITY_MARKS = {"information": "·", "warning": "!", "error": "✗"}


class StatusLine(Static):
    """Short messages (what a toast would say) in a line of their own between the body and the keys.

    The line takes its place in the layout instead of lying over it, so a message never covers the
    content it talks about nor the focused field; it is hidden while there is nothing to say."""

    def show(self, messages: list[tuple[str, str]]) -> None:
        """``messages``: (text, severity) pairs, oldest first; the newest three are shown."""
        text = Text()
        for message, severity in messages[-3:]:
            if text:
                text.append("\n")
            text.append(f"{_SEVERITY_MARKS.get(severity, '·')} ", style="bold")
            text.append(message, style="bold" if severity != "information" else "")
        severities = {severity for _, severity in messages}
        for severity in ("warning", "error"):
            self.set_class(severity in severities, f"-{severity}")
        self.update(text)
        appearing = bool(messages) and not self.display
        self.display = bool(messages)
        if appearing:  # the body just lost a line or more: keep the focused field in sight
            self.call_after_refresh(self._keep_focus_in_view)

    def _keep_focus_in_view(self) -> None:
        if not self.is_attached or not self.screen.is_current:  # the screen was left meanwhile
            return
        focused = self.screen.focused
        if focused is not None:
            focused.scroll_visible(animate=False)
