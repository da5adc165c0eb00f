"""Modal dialogs: an error with its cause and next step, the host-key check, hidden prompts, questions."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from enigm_recover.app.format import plain
from enigm_recover.app.widgets import HiddenInput


class ErrorDialog(ModalScreen[None]):
    """What went wrong and what to do next. Enter or Escape closes it."""

    BINDINGS = [Binding("escape,enter", "close", "Close")]

    def __init__(self, title: str, message: str, hint: str = "") -> None:
        super().__init__(classes="dialog-screen")
        self.title_text, self.message, self.hint = title, message, hint

    def compose(self) -> ComposeResult:
        with Vertical(id="error-dialog", classes="dialog"):
            yield Label(plain(self.title_text, "bold"), classes="dialog-title")
            yield Static(plain(self.message, multiline=True), id="error-message")
            if self.hint:
                yield Label("What to do next", classes="dialog-subtitle")
                yield Static(plain(self.hint, multiline=True), id="error-hint")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Close (Enter)", id="close", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#close", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)


class HostKeyDialog(ModalScreen[bool]):
    """An unknown host: compare its fingerprint with the one the host's owner gives, then accept or refuse."""

    BINDINGS = [Binding("a", "accept", "Accept this key"), Binding("escape", "refuse", "Refuse")]

    def __init__(self, source: str, fingerprint: str, detail: str) -> None:
        super().__init__(classes="dialog-screen")
        self.source, self.fingerprint, self.detail = source, fingerprint, detail

    def compose(self) -> ComposeResult:
        with Vertical(id="host-key-dialog", classes="dialog"):
            yield Label(Text("Unknown host key", style="bold"), classes="dialog-title")
            yield Static(plain(f"The backup host of {self.source} is not in known_hosts. It offers the key"))
            yield Static(plain(self.fingerprint, "bold"), id="fingerprint")
            yield Static(plain(self.detail, "dim", multiline=True), id="host-key-detail")
            yield Static(Text("Compare it, character by character, with the fingerprint the host's owner gives "
                              "you out of band. Accepting records it in known_hosts; a changed key is always "
                              "refused."), id="host-key-advice")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Accept (a)", id="accept", variant="warning")
                yield Button("Refuse (Esc)", id="refuse", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#refuse", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "accept")

    def action_accept(self) -> None:
        self.dismiss(True)

    def action_refuse(self) -> None:
        self.dismiss(False)


class SecretDialog(ModalScreen["str | None"]):
    """A hidden answer: an SSH key passphrase, a one-time code, a SLIP-39 passphrase."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, prompt: str, explanation: str = "", allow_empty: bool = True) -> None:
        super().__init__(classes="dialog-screen")
        self.prompt, self.explanation, self.allow_empty = prompt, explanation, allow_empty

    def compose(self) -> ComposeResult:
        with Vertical(id="secret-dialog", classes="dialog"):
            yield Label(plain(self.prompt.strip().rstrip(":"), "bold"), classes="dialog-title")
            if self.explanation:
                yield Static(plain(self.explanation, multiline=True))
            yield HiddenInput(id="secret", placeholder="hidden; Enter to confirm")
            yield Static("", id="secret-note")

    def on_mount(self) -> None:
        secret = self.query_one("#secret", Input)
        if getattr(self.app, "options", None) is not None and self.app.options.still:  # type: ignore[attr-defined]
            secret.cursor_blink = False
        secret.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if not event.value and not self.allow_empty:
            self.query_one("#secret-note", Static).update("an answer is needed (Esc to cancel)")
            return
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class QuestionDialog(ModalScreen["str | None"]):
    """A question with an optional line of text (a reason, a note); Escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, question: str, placeholder: str = "", default: str = "",
                 required: bool = False) -> None:
        super().__init__(classes="dialog-screen")
        self.title_text, self.question, self.placeholder = title, question, placeholder
        self.default, self.required = default, required

    def compose(self) -> ComposeResult:
        with Vertical(id="question-dialog", classes="dialog"):
            yield Label(plain(self.title_text, "bold"), classes="dialog-title")
            yield Static(plain(self.question, multiline=True))
            yield Input(value=self.default, placeholder=self.placeholder, id="answer")
            yield Static(Text("Enter to confirm, Esc to cancel", style="dim"), id="question-note")

    def on_mount(self) -> None:
        answer = self.query_one("#answer", Input)
        if getattr(self.app, "options", None) is not None and self.app.options.still:  # type: ignore[attr-defined]
            answer.cursor_blink = False
        answer.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self.required and not event.value.strip():
            self.query_one("#question-note", Static).update("an answer is needed (Esc to cancel)")
            return
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmDialog(ModalScreen[bool]):
    """Before work is thrown away: what will be lost, in words, and a choice that defaults to keeping it.

    ``y`` (or the button) confirms; Escape, or Enter on the focused Keep button, keeps the work.
    """

    BINDINGS = [Binding("y", "confirm", "Yes, discard"), Binding("escape", "keep", "No, keep")]

    def __init__(self, title: str, lost: str, confirm: str = "Discard") -> None:
        super().__init__(classes="dialog-screen")
        self.title_text, self.lost, self.confirm_label = title, lost, confirm

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog", classes="dialog"):
            yield Label(plain(self.title_text, "bold"), classes="dialog-title")
            yield Static(plain(self.lost, multiline=True), id="confirm-lost")
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.confirm_label} (y)", id="confirm", variant="error")
                yield Button("Keep (Esc)", id="keep", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#keep", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm")

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_keep(self) -> None:
        self.dismiss(False)


class DetailDialog(ModalScreen[None]):
    """Something too wide for its place on the screen, in full, in a pane that scrolls; Enter or Escape
    closes it."""

    BINDINGS = [Binding("escape,enter", "close", "Close")]

    def __init__(self, title: str, body: Text) -> None:
        super().__init__(classes="dialog-screen")
        self.title_text, self.body = title, body

    def compose(self) -> ComposeResult:
        from textual.containers import VerticalScroll

        with Vertical(id="detail-dialog", classes="dialog"):
            yield Label(plain(self.title_text, "bold"), classes="dialog-title")
            with VerticalScroll(id="detail-scroll"):
                yield Static(self.body, id="detail-body")
            yield Static(Text("↑/↓ scroll · Enter or Esc closes", style="dim"))

    def on_mount(self) -> None:
        self.query_one("#detail-scroll").focus()

    def action_close(self) -> None:
        self.dismiss(None)
