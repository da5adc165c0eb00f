"""The custodians' own screens, from the start screen: check my card, test the quorum.

Both drive the engine the CLI drives (``recovery.card_check`` for ``keys check``,
``recovery.quorum_test`` for ``keys test-quorum``), with the quorum step's masked
share field and its word-by-word flagging and correction. Neither belongs to a
runbook run: no runbook panel, Escape goes back to the start screen (asking first
when words or shares would be lost), and nothing typed outlives the screen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, Static

from enigm_recover.app.dialogs import ConfirmDialog
from enigm_recover.app.format import inert
from enigm_recover.app.quorum import VISIBLE_FIELD, QuorumScreen
from enigm_recover.app.stage import MessageScreen
from enigm_recover.app.widgets import FormField, ShareInput, StatusLine, _right

_UNSET = object()
TYPED_CARD = "(typed in the app)"  # how the audit log names a card typed on the "Check my card" screen


class CustodianHeader(Static):
    """Two lines on top: the tool (and the ceremony, when there is one), then what this screen is for."""

    def __init__(self, title: str, stage: str, ceremony: str = "") -> None:
        super().__init__(id="stage-header")
        self.title_text, self.stage, self.ceremony = title, stage, ceremony

    def on_mount(self) -> None:
        self._draw()

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> None:
        width = self.size.width or 120
        line1 = Text("enigm-recover", style="bold")
        line1.append("  ·  custodians")
        if self.ceremony:
            _right(line1, Text(f"ceremony {self.ceremony}", style="bold"), width)
        line2 = Text(self.title_text, style="bold")
        _right(line2, Text(self.stage, style="reverse bold"), width)
        line1.truncate(width, overflow="ellipsis")
        line2.truncate(width, overflow="ellipsis")
        self.update(Text("\n").join([line1, line2]))


def _still(screen: Screen[Any]) -> None:
    screen.set_class(screen.app.size.width < 100, "narrow")
    if screen.app.options.still:  # type: ignore[attr-defined]
        for field in screen.query(Input):
            field.cursor_blink = False


def _leave(screen: Screen[Any], lost: str | None, then: Any = None) -> None:
    """Back to the start screen; when ``lost`` says what would be thrown away, ask first."""
    app: Any = screen.app

    def go(confirmed: bool | None = True) -> None:
        if not confirmed:
            return
        if then is not None:
            then()
        app.navigator.leave(screen)

    if lost:
        app.navigator.ask(ConfirmDialog("Leave this screen?", lost, "Leave"), go)
    else:
        go()


# -- check my card -------------------------------------------------------------------------------------


class CheckCardScreen(MessageScreen):
    """One custodian, one card: well-formed? which set, group and member? does it belong to this key?"""

    STAGE = "Check my card"
    BINDINGS = [
        Binding("escape", "close", "Back", tooltip="Back to the start screen (asks first when words are typed)"),
        Binding("ctrl+t", "correct_word", "Correct a word",
                tooltip="Retype one word of the share by its position; the other words stay"),
        Binding("ctrl+l", "clear_share", "Clear the share", tooltip="Empty the share field and start it again"),
    ]

    # The share field behaves exactly as in the quorum step: the same flagging of each word by its
    # position as it is typed, the same correction of one word in place, the same clearing.
    on_share_input_word_state = QuorumScreen.on_share_input_word_state
    action_correct_word = QuorumScreen.action_correct_word
    _correct_at = QuorumScreen._correct_at
    action_clear_share = QuorumScreen.action_clear_share
    _verdict = QuorumScreen._verdict

    def __init__(self, recipient: Path | None) -> None:
        super().__init__()
        self.recipient = recipient
        self._verdict_on: str | None = None
        self.checking = False
        self.checked: Any = None  # the last CardCheck (a verdict, never a word)
        self._audit_signer: Any = _UNSET  # built at the first check (it may ask a key's passphrase), then kept

    @property
    def recover(self) -> Any:
        return self.app

    def compose(self) -> ComposeResult:
        yield CustodianHeader("One card alone: nothing is combined or kept", self.STAGE)
        with Horizontal(id="main"):
            with Vertical(id="body"):
                yield Static(Text("Type your card's words to check that they are a well-formed share, which set, "
                                  "group and member it is, and whether it belongs to the recovery key. No other "
                                  "share is needed; the audit log records the verdict, never a word.", style="dim"),
                             id="card-note")
                if self.recipient is not None:  # the app's own key (configured, or the drill's)
                    yield Label("Recovery key", classes="field-label")
                    yield Static(inert(self.recover.options.shown(self.recipient)), id="recipient-known")
                else:
                    yield Label("Recovery key (path of recovery.pub; leave empty to check the card alone)",
                                classes="field-label")
                    yield FormField(id="recipient", placeholder="path of recovery.pub", next_field="#custodian")
                yield Label("Your name (optional; for the audit log)", classes="field-label")
                yield FormField(id="custodian", placeholder="who is checking a card", restrict=VISIBLE_FIELD,
                                max_length=48, next_field="#share")
                yield Label("Share words (hidden; four letters fix a word)", classes="field-label")
                yield ShareInput(id="share", placeholder="type the 33 words from your card, Enter to check")
                yield Static("", id="word-state")
                yield Static("", id="verdict")
        yield StatusLine(id="status-line")
        yield Footer()

    def on_mount(self) -> None:
        _still(self)
        self.query_one("#custodian", Input).focus()

    def on_resize(self) -> None:
        self.set_class(self.app.size.width < 100, "narrow")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "share":
            self.check()

    def check(self) -> None:
        from enigm_recover.quorum.cardcheck import CardHeader
        from enigm_recover.recovery.card_check import CardToCheck, check_alone

        if self.checking or self.recover.busy:
            return
        share = self.query_one("#share", ShareInput)
        if not share.value.strip():
            self._verdict(Text("Type the words of your card first.", style="bold"))
            return
        path = self._recipient_path()
        name = self.query_one("#custodian", Input).value.strip() or None
        card = CardToCheck(TYPED_CARD, share.value, CardHeader(custodian=name))
        options, signer = self.recover.options, self._signer

        def work(progress: Any) -> Any:
            return check_alone(options.state_dir, options.operator, card, path, signer())

        self.checking = True
        self._verdict(Text("Checking the card…", style="bold"), share.value)
        if not self.recover.run_engine(work, done=self._checked, failed=self._not_checked, label="checking the card"):
            self.checking = False

    def _recipient_path(self) -> Path | None:
        if self.recipient is not None:
            return self.recipient
        typed = self.query_one("#recipient", Input).value.strip()
        return Path(typed) if typed else None

    def _signer(self) -> Any:
        """The audit head's signer, as a run builds it (in the worker: it may ask a key's passphrase once)."""
        from enigm_recover.app.bridge import UIPrompter

        if self._audit_signer is _UNSET:
            factory = self.recover.options.signer
            self._audit_signer = factory(UIPrompter(self.recover).ask_secret) if factory else None
        return self._audit_signer

    def _checked(self, result: Any) -> None:
        self.checking = False
        self.checked = result
        share = self.query_one("#share", ShareInput)
        if result.ok:
            share.value = ""  # a good card's words are not kept on the screen
            self._verdict(self._good(result.verdict), "")
        else:
            self._verdict(self._refused(result, share.value), share.value)
        share.focus()

    def _not_checked(self, error: BaseException) -> None:
        self.checking = False
        self._verdict(Text("The card was not checked: see the message.", style="bold"),
                      self.query_one("#share", ShareInput).value)

    def _good(self, v: Any) -> Text:
        text = Text("✓ Well-formed: ", style="bold")
        text.append(f"every word in the SLIP-39 list, checksum correct. Set {v.set_id}, group {v.group} of "
                    f"{v.group_count} ({v.group_threshold} group(s) needed), member {v.member} "
                    f"(this group needs {v.member_threshold}).")
        if v.belongs:
            text.append("\n✓ Belongs to recovery key ", style="bold")
            text.append(inert(v.recipient_fingerprint), style="bold")
        elif v.belongs is None:
            text.append("\nNot checked against a recovery key: give the path of its recovery.pub.", style="bold")
        for line in v.evidence[1:]:
            text.append(f"\n· {inert(line)}", style="dim")
        return text

    def _refused(self, result: Any, words: str) -> Text:
        from enigm_recover.quorum.entry import ShareDraft

        error = result.error
        if result.not_this_key:
            path = self._recipient_path()
            text = Text("✗ Does not belong to this recovery key", style="bold")
            text.append(f" ({inert(self.recover.options.shown(path))}): " if path else ": ")
            text.append(inert(error.message))
            if error.hint:
                text.append(f" — {inert(error.hint)}", style="dim")
            return text
        draft = ShareDraft()
        draft.load(words)
        what = draft.verdict() if draft.filled == len(words.split()) else None
        text = Text("✗ Not a well-formed share: ", style="bold")
        text.append(inert(what or error.message))
        if error.hint and what is None:
            text.append(f" — {inert(error.hint)}", style="dim")
        text.append("\nYour words are kept (hidden): ctrl+t corrects one word by its position, ctrl+l clears them.",
                    style="dim")
        return text

    def action_close(self) -> None:
        if self.checking:
            return
        typed = bool(self.query_one("#share", ShareInput).value.strip())
        _leave(self, "The words typed in the share field will be forgotten." if typed else None)


# -- test the quorum ----------------------------------------------------------------------------------


class TestQuorumScreen(QuorumScreen):
    """The quorum step of a recovery, for a test only: the shares are combined in memory, the key derived
    is compared with recovery.pub, the result recorded (audit log, signed report), everything forgotten."""

    __test__ = False  # a screen, not a test case
    STAGE = "Test the quorum"
    BINDINGS = [
        Binding("escape", "close", "Back", tooltip="Back to the start screen (asks first when shares are entered)"),
    ]

    def __init__(self, session: Any) -> None:
        super().__init__()
        self.session = session  # recovery.quorum_test.QuorumTestSession: the quorum step of the screen above

    @property
    def ex(self) -> Any:
        return self.session

    def compose(self) -> ComposeResult:
        yield CustodianHeader("A test only: nothing is restored or kept", self.STAGE, self.session.ceremony)
        with Horizontal(id="main"):
            with Vertical(id="body"):
                yield from self.compose_body()
        yield StatusLine(id="status-line")
        yield Footer()

    def _combined(self, outcome: Any) -> None:
        self.combining = False
        for field in self.query(Input):
            field.value = ""
            field.disabled = True
        shown = self.recover.options.shown
        if outcome.ok:
            names = ", ".join(str(c["custodian"]) for c in outcome.test.custodians)
            text = Text("✓ Quorum proven: ", style="bold")
            text.append(f"the shares of {inert(names)} combine to recovery key ")
            text.append(inert(outcome.fingerprint), style="bold")
            text.append(". Nothing was kept.")
            self.recover.notify(f"quorum proven for recovery key {outcome.fingerprint}")
        else:
            text = Text("✗ Quorum not proven: ", style="bold")
            text.append(inert(outcome.reason))
            if outcome.hint:
                text.append(f" — {inert(outcome.hint)}", style="dim")
        text.append(f"\nReport {inert(shown(outcome.folder / 'report.md'))}", style="dim")
        text.append("\nEsc goes back to the start screen.", style="dim")
        self._verdict(text)
        self.refresh_bindings()

    def _not_combined(self, error: BaseException) -> None:
        self.combining = False
        self._verdict(Text("The test did not finish: see the message. Esc goes back to the start screen.",
                           style="bold"))
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """A test's shares are typed here: the ceremony socket and sealed shares belong to a recovery run."""
        if action in ("remote", "paste_sealed"):
            return False
        if self.session.finished and action in ("combine", "restart", "correct_word", "clear_share"):
            return False
        return super().check_action(action, parameters)

    def action_close(self) -> None:
        if self.combining:
            return
        session = self.session
        if session.finished:
            _leave(self, None)
            return
        receipts = session.quorum().entry.receipts
        typed = any(field.value.strip() for field in self.query(Input))
        lost = None
        if receipts or typed:
            names = ", ".join(r.custodian for r in receipts)
            lost = (f"{len(receipts)} accepted share(s) ({names}) " if receipts else "The words typed ") + \
                "will be forgotten and the test ends without a result; the audit log records that it was stopped."
        _leave(self, lost, then=lambda: self._abandon("the custodians left before the test"))

    def _abandon(self, reason: str) -> None:
        try:
            self.session.abandon(reason)
        except Exception as exc:  # noqa: BLE001 - the audit log cannot be written: a dialog
            self.recover.show_error(exc)

    def on_unmount(self) -> None:
        if not self.session.finished:  # the app quit with the screen open
            self._abandon("the app was closed before the test")
