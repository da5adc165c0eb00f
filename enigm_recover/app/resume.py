"""A paused run that cannot go on (its snapshot gone, the source unreachable, the target locked): say why,
and offer the two ways forward, before any custodian is asked for a share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from enigm_recover.app.format import error_title, plain

ANOTHER, ABORT = "another-snapshot", "abort"


@dataclass
class ResumeBlocked:
    """The engine's answer to a resume that failed its check: the run (paused again) and the cause."""

    ceremony: str
    runbook: Any
    error: Any  # the EnigmError that stopped it


class ResumeBlockedDialog(ModalScreen["str | None"]):
    """Why the run cannot continue; then: choose another snapshot, abort the paused run, or close."""

    BINDINGS = [Binding("escape", "close", "Close")]

    def __init__(self, blocked: ResumeBlocked) -> None:
        super().__init__(classes="dialog-screen")
        self.blocked = blocked

    def compose(self) -> ComposeResult:
        error = self.blocked.error
        with Vertical(id="resume-blocked-dialog", classes="dialog"):
            yield Label(plain(f"Run {self.blocked.ceremony} cannot continue", "bold"), classes="dialog-title")
            yield Static(plain(f"{error_title(error)}: {error.message}", multiline=True), id="resume-blocked-cause")
            if error.hint:
                yield Static(plain(error.hint, multiline=True))
            yield Static(plain("No custodian has been asked for a share. Choose another snapshot (the run goes "
                               "back to its snapshot choice), or abort the paused run with a reason for the "
                               "audit log and the report.", multiline=True))
            with Horizontal(classes="dialog-buttons"):
                yield Button("Choose another snapshot", id=ANOTHER, variant="primary")
                yield Button("Abort the paused run…", id=ABORT, variant="error")
                yield Button("Close", id="close")

    def on_mount(self) -> None:
        self.query_one(f"#{ANOTHER}", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None if event.button.id == "close" else event.button.id)

    def action_close(self) -> None:
        self.dismiss(None)
