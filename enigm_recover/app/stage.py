"""The frame every stage screen shares: the header, the runbook on the left, the footer with the keys."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import events, on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input

from enigm_recover.app.widgets import RunbookPanel, StageHeader, StatusLine

if TYPE_CHECKING:
    from enigm_recover.app.app import RecoverApp


class StageScreen(Screen[None]):
    """A stage of the runbook. Subclasses fill the body; they call the engine only through the app."""

    STAGE = ""
    step_index: int | None = None  # the runbook step this screen is about (set by the app)

    @property
    def recover(self) -> "RecoverApp":
        return self.app  # type: ignore[return-value]

    @property
    def ex(self) -> Any:
        return self.recover.executor

    def compose(self) -> ComposeResult:
        yield StageHeader(self.stage_label())
        with Horizontal(id="main"):
            yield RunbookPanel()
            with Vertical(id="body"):
                yield from self.compose_body()
        yield StatusLine(id="status-line")
        yield Footer()

    def stage_label(self) -> str:
        """The word at the header's right: the stage this screen is."""
        return self.STAGE

    def compose_body(self) -> ComposeResult:
        yield from ()

    def on_mount(self) -> None:
        self.set_class(self.app.size.width < 100, "narrow")
        if self.recover.options.still:
            for field in self.query(Input):
                field.cursor_blink = False

    @on(events.ScreenResume)
    def _show_messages_on_resume(self) -> None:
        """The app's messages carry to the screen shown next (e.g. "key combined" onto the dry run)."""
        self.show_messages(self.recover.messages)

    def show_messages(self, messages: list[tuple[str, str]]) -> None:
        """What the app says now, in this screen's status line (never a toast over the content)."""
        self.query_one(StatusLine).show(messages)

    def on_resize(self) -> None:
        self.set_class(self.app.size.width < 100, "narrow")

    def refresh_frame(self) -> None:
        """After the run moved on: the header's step and the runbook's statuses."""
        self.query_one(StageHeader).refresh_header()
        self.query_one(RunbookPanel).refresh_steps()

    # -- engine work (through the app, which owns the one worker) ---------------------------------------

    def on_progress(self, progress: Any) -> None:
        """A progress report from the running work (throttled)."""

    def action_cancel_work(self) -> None:
        self.recover.cancel_work()
