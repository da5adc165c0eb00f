"""Stage 5, quorum: the custodians enter their shares one after another into a masked field.

Each share is judged the moment it is entered (a bad word and its position, a
bad checksum, another set, a duplicate) by the engine's share entry; the screen
shows the verdict, the progress per group and who entered a share — never a
word. When the quorum is complete the key is combined (after an optional
SLIP-39 passphrase, asked in a hidden field).
"""

from __future__ import annotations

import threading
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static, TextArea

from enigm_recover.app.dialogs import ConfirmDialog, QuestionDialog, SecretDialog
from enigm_recover.app.format import folded_recipient, inert
from enigm_recover.app.stage import StageScreen
from enigm_recover.app.widgets import BigText, FormField, ShareInput
from enigm_recover.runbook.model import Action

SHARE_WORDS = 33
# Keys typed ahead of a focus change (a fast typist, a password manager's auto-type) are passed on by the
# visible fields to the field that has the focus (FormField); as a second guard the visible fields take at most
# three words — a share's first three hold the set id, exponent and group parameters, which are not secret.
VISIBLE_FIELD = r"[^ ]*( [^ ]*){0,2}"


class QuorumScreen(StageScreen):
    STAGE = "Quorum"
    BINDINGS = [
        Binding("ctrl+k", "combine", "Combine the key", priority=True,
                tooltip="Combine the entered shares into the recovery key"),
        Binding("ctrl+t", "correct_word", "Correct a word",
                tooltip="Retype one word of the share by its position; the other words stay"),
        Binding("ctrl+l", "clear_share", "Clear the share", tooltip="Empty the share field and start it again"),
        Binding("ctrl+n", "restart", "Discard all shares",
                tooltip="Discard every accepted share and start the entry again (asks first)"),
        Binding("ctrl+o", "remote", "Own sessions",
                tooltip="Open the ceremony to custodians joining from their own sessions on this host "
                        "(`enigm-recover ceremony join`), or close it"),
        Binding("ctrl+g", "paste_sealed", "Sealed share",
                tooltip="Paste a share a custodian sealed from afar (`enigm-recover ceremony seal-share`)"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rejected: list[tuple[str, str]] = []  # (custodian, reason)
        self.combining = False
        self._verdict_on: str | None = None  # the share field's value the verdict is about
        self.remote: Any = None  # the ceremony's socket, while custodians may join from their own sessions
        self.remote_lines: list[Text] = []
        self._showing = True  # False once the screen is going away
        self._ui_thread = threading.get_ident()

    @property
    def quorum(self) -> Any:
        return self.ex.quorum()

    def compose_body(self) -> ComposeResult:
        yield Label("Ceremony", classes="section-title")
        yield BigText(self.ex.ceremony, id="ceremony-big")
        yield Static("", id="ceremony-note")
        with Horizontal(id="quorum-split"):
            with Vertical(id="share-form"):
                yield Label("Custodian name", classes="field-label")
                yield FormField(id="custodian", placeholder="who is entering a share", restrict=VISIBLE_FIELD,
                                max_length=48, next_field="#typed-ceremony")
                yield Label("Ceremony id, typed back (optional; binds your share to it)", classes="field-label")
                yield FormField(id="typed-ceremony", placeholder="e.g. the words above, dashes optional",
                                restrict=VISIBLE_FIELD, max_length=48, next_field="#share")
                yield Label("Share words (hidden; four letters fix a word)", classes="field-label")
                yield ShareInput(id="share", placeholder="type the 33 words from your card, Enter when done")
                yield Static("", id="word-state")
                yield Static("", id="verdict")
                remote = Static("", id="ceremony-remote")
                remote.display = False  # shown once the ceremony is opened to custodians' own sessions
                yield remote
            yield Static("", id="quorum-progress")

    def on_mount(self) -> None:
        super().on_mount()
        ex = self.ex
        note = Text()
        note.append(f"Ceremony {ex.ceremony}. ", style="bold")
        note.append("Custodians: check that this is the ceremony you were called for before you enter your share. ")
        if ex.current is not None and ex.current.action is not Action.GATHER_QUORUM:
            note.append("The run was resumed: the recovery key is needed again for this step.", style="bold")
        note.append(f"\nRecovery key expected: {self.quorum.entry.expected_fingerprint}", style="dim")
        self.query_one("#ceremony-note", Static).update(note)
        self.query_one("#quorum-progress", Static).border_title = "Quorum"
        self._show_progress()
        self.query_one("#custodian", Input).focus()

    # -- entering ---------------------------------------------------------------------------------------

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "share":
            try:
                self.submit()
            except Exception as exc:  # noqa: BLE001 - e.g. the audit log cannot be written: a dialog
                self.query_one("#share", ShareInput).value = ""
                self.recover.show_error(exc)
            return
        if event.input.id == "custodian":  # the focus has moved on already (FormField); the name is checked now
            self._check_name()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "custodian" and event.value.strip() and self._verdict_on is not None:
            self._verdict(Text(""))  # a new custodian: the last verdict was someone else's

    def _check_name(self) -> bool:
        """The custodian's name, checked before the first word (empty, malformed, already used)."""
        name = self.query_one("#custodian", Input).value.strip()
        problem = ("type your name first: the report records who entered each share" if not name
                   else self.quorum.entry.name_problem(name))
        if problem is None:
            return True
        verdict = Text("✗ Name: ", style="bold")
        verdict.append(inert(problem))
        verdict.append(" — correct the name (shift+tab) before the share is checked", style="dim")
        self._verdict(verdict)
        return False

    def on_share_input_word_state(self, event: ShareInput.WordState) -> None:
        if self._verdict_on is not None and self._verdict_on != self.query_one("#share", ShareInput).value:
            self._verdict(Text(""))  # the share is being changed: a new attempt, the old verdict no longer holds
        text = Text(f"{min(event.words, SHARE_WORDS)} of {SHARE_WORDS} words · {event.current}")
        if event.bad:
            text.append(f"\nnot SLIP-39 words: {', '.join(f'word {n}' for n in event.bad)} — check them on the card",
                        style="bold")
        self.query_one("#word-state", Static).update(text)

    def submit(self) -> None:
        from enigm_recover.errors import ShareError

        if self.quorum.complete:
            self._verdict(Text("The quorum is complete: press ctrl+k to combine the key.", style="bold"))
            return
        from enigm_recover.quorum.entry import ShareDraft

        name_field = self.query_one("#custodian", Input)
        share = self.query_one("#share", ShareInput)
        name = name_field.value.strip()
        if not self._check_name():
            name_field.focus()
            return
        typed = self.query_one("#typed-ceremony", Input).value.strip() or None
        try:
            receipt = self.quorum.add(share.value, name, typed)
        except ShareError as exc:
            self.rejected.append((name, exc.message))
            draft = ShareDraft()
            draft.load(share.value)
            what = draft.verdict() if draft.filled == len(share.value.split()) else None
            verdict = Text(f"✗ Rejected, {inert(name)}: ", style="bold")
            verdict.append(inert(what or exc.message))
            if exc.hint and what is None:
                verdict.append(f" — {inert(exc.hint)}", style="dim")
            if share.value:
                verdict.append("\nYour words are kept (hidden): ctrl+t corrects one word by its position, "
                               "ctrl+l clears them.", style="dim")
            self._verdict(verdict, share.value)
            share.focus()
            self._show_progress()
            return
        share.value = ""
        self.query_one("#typed-ceremony", Input).value = ""
        name_field.value = ""
        verdict = Text(f"✓ Accepted: {inert(receipt.custodian)}", style="bold")
        verdict.append(f" (group {receipt.group_index + 1}, member {receipt.member_index + 1})")
        self._verdict(verdict, "")
        self._show_progress()
        if self.quorum.complete:
            self._close_remote("the quorum is complete")
            self.action_combine()
        else:
            name_field.focus()

    def _verdict(self, text: Text, about: str | None = None) -> None:
        """Show a verdict; ``about`` is the share field's value it judges (a change to the field clears it)."""
        self._verdict_on = about if text.plain else None
        self.query_one("#verdict", Static).update(text)

    def _show_progress(self) -> None:
        entry = self.quorum.entry
        text = Text()
        groups = entry.groups()
        if not groups:
            text.append("No share entered yet.\n", style="bold")
            text.append("The first share tells how many are needed.\n", style="dim")
        for g in groups:
            need = g.needed or "?"
            label = f"group {g.group_index + 1}" if len(groups) > 1 else "shares"
            filled = "■" * g.entered + "□" * max(0, (g.needed or 0) - g.entered)
            text.append(f"{label}: {g.entered} of {need}  {filled}\n", style="bold" if g.complete else "")
        if len(groups) > 1:
            text.append(f"groups complete: {sum(g.complete for g in groups)} of {entry.groups_needed}\n")
        if entry.complete:
            text.append("Quorum reached.\n", style="bold")
        text.append("\nEntered by\n", style="bold")
        for receipt in entry.receipts:
            text.append(f"✓ {inert(receipt.custodian)}", style="bold")
            text.append(f"  group {receipt.group_index + 1}, member {receipt.member_index + 1}\n", style="dim")
        if not entry.receipts:
            text.append("nobody yet\n", style="dim")
        if self.rejected:
            text.append("\nRejected\n", style="bold")
            for name, reason in self.rejected[-5:]:
                text.append(f"✗ {inert(name)}", style="bold")
                reason = inert(reason)
                text.append(f"  {reason[:60]}{'…' if len(reason) > 60 else ''}\n", style="dim")
        text.rstrip()
        self.query_one("#quorum-progress", Static).update(text)
        self.refresh_bindings()

    # -- custodians joining from their own sessions -------------------------------------------------------

    def action_remote(self) -> None:
        """Open the ceremony's socket (or close it): custodians on this host join with `ceremony join`."""
        if self.remote is not None:
            self._close_remote("closed by the operator")
            return
        if self.quorum.complete or self.combining:
            return
        from enigm_recover.ceremony.folder import place_from_environment
        from enigm_recover.ceremony.source import RemoteShares

        self._ui_thread = threading.get_ident()
        place = self.recover.options.ceremony_place or place_from_environment()
        try:
            per_user = getattr(getattr(self.ex, "runbook", None), "shares_per_os_user", 1)  # a quorum test: 1
            self.remote = RemoteShares(place, lambda: "", self._join_event, per_user) \
                .open(self.quorum, run_on_face=self._on_face)
        except Exception as exc:  # noqa: BLE001 - no group, a folder that is not safe: a dialog naming it
            self.remote = None
            self.recover.show_error(exc)
            return
        self._show_remote()

    def action_paste_sealed(self) -> None:
        if self.remote is not None:
            inbox = self.remote.inbox
            self.recover.navigator.ask(SealedShareDialog(self.ex.ceremony, inbox.fingerprint, inbox.recipient),
                                       self._offer_sealed)

    def _offer_sealed(self, armored: str | None) -> None:
        from enigm_recover.errors import EnigmError

        if not armored or self.remote is None:
            return
        try:
            self.remote.offer_sealed(armored)
        except EnigmError as exc:  # shown in the ceremony's lines already; the verdict names the next step
            verdict = Text("✗ Sealed share refused: ", style="bold")
            verdict.append(inert(exc.one_line()))
            self._verdict(verdict)

    def _on_face(self, work: Any) -> Any:
        """An engine call from the ceremony's threads runs on the app's thread, one at a time."""
        if threading.get_ident() == self._ui_thread:
            return work()
        return self.app.call_from_thread(work)

    def _join_event(self, event: Any) -> None:
        self._on_face(lambda: self._show_join(event))

    def _show_join(self, event: Any) -> None:
        from enigm_recover.ceremony.server import JoinEventKind as K

        if event.sealed:
            who = f"sealed share from {event.custodian}" if event.custodian else "a sealed share"
        else:
            who = f"{event.custodian} (OS user {event.os_user})" if event.custodian else f"OS user {event.os_user}"
        line = {
            K.JOINED: ("→ ", f"{who} joined and is entering a share", ""),
            K.ACCEPTED: ("✓ ", f"{who}: accepted", "bold"),
            K.REJECTED: ("✗ ", f"{who}: rejected — {event.reason}", "bold"),
            K.REFUSED: ("✗ ", f"{who}: refused — {event.reason}", ""),
            K.LEFT: ("· ", f"{who} left without a share", "dim"),
        }.get(event.kind)
        if line is not None:
            text = Text(line[0], style=line[2])
            text.append(inert(line[1]), style=line[2])
            self.remote_lines = [*self.remote_lines, text][-6:]
        if event.kind is K.REJECTED and event.custodian:
            self.rejected.append((event.custodian, event.reason))
        if self._showing and self.is_mounted:
            self._show_remote()
            self._show_progress()
        if event.kind is K.COMPLETE:
            self._close_remote("the quorum is complete")
            self.action_combine()

    def _close_remote(self, reason: str, *, show: bool = True) -> None:
        remote, self.remote = self.remote, None
        self._showing = show
        if remote is not None:
            remote.close(reason)
        if show and self.is_mounted:
            self._show_remote()

    def _show_remote(self) -> None:
        text = Text()
        if self.remote is not None:
            text.append("Open to custodians' own sessions: ", style="bold")
            text.append(f"on this host, `enigm-recover ceremony join {self.ex.ceremony}` (group "
                        f"{inert(self.remote.place.group)}); ctrl+o closes it.\n", style="dim")
            text.append("From afar: ", style="bold")
            text.append(f"`ceremony seal-share --to {folded_recipient(self.remote.inbox.recipient)} --ceremony "
                        f"{self.ex.ceremony}` (recipient fingerprint {self.remote.inbox.fingerprint}); ctrl+g shows "
                        "the recipient in full, to copy, and pastes the sealed share.\n", style="dim")
        elif self.remote_lines:
            text.append("Closed to custodians' own sessions (ctrl+o opens it again).\n", style="dim")
        for line in self.remote_lines:
            text.append_text(line)
            text.append("\n")
        text.rstrip()
        shown = self.query_one("#ceremony-remote", Static)
        shown.update(text)
        shown.display = bool(text.plain)

    def on_unmount(self) -> None:
        self._close_remote("the quorum step ended", show=False)  # the widgets are gone already

    # -- combining ----------------------------------------------------------------------------------------

    def action_combine(self) -> None:
        if not self.quorum.complete or self.combining or self.recover.busy:
            return
        self.recover.navigator.ask(SecretDialog("SLIP-39 passphrase",
                                                "If the share cards were made with a passphrase, type it now; "
                                                "otherwise press Enter. It is not shown, stored or logged."),
                                   self._combine)

    def _combine(self, passphrase: str | None) -> None:
        if passphrase is None:
            self._verdict(Text("The key is not combined yet: press ctrl+k when ready.", style="bold"))
            return
        from enigm_recover.runbook.executor import Confirmation
        from enigm_recover.runbook.model import Action

        ex, operator = self.ex, self.recover.operator_name

        def work(progress: Any) -> Any:
            fingerprint = ex.combine(passphrase)
            if ex.current is not None and ex.current.action is Action.GATHER_QUORUM:
                ex.run_current(Confirmation(operator), progress)
            return fingerprint

        self.combining = True
        self._verdict(Text("Combining the shares…", style="bold"))
        self.recover.run_engine(work, done=self._combined, failed=self._not_combined, label="combining the key")

    def _combined(self, fingerprint: str) -> None:
        self.combining = False
        self.recover.notify(f"recovery key {fingerprint} combined")
        self.recover.show_current()

    def _not_combined(self, error: BaseException) -> None:
        self.combining = False
        self._verdict(Text("The key was not combined: press ctrl+k to try another passphrase, or ctrl+n to discard "
                           "the shares and start the entry again.", style="bold"))
        self.refresh_bindings()

    # -- starting again -------------------------------------------------------------------------------------

    def action_clear_share(self) -> None:
        self.query_one("#share", ShareInput).value = ""
        self.query_one("#share", ShareInput).focus()

    def action_correct_word(self) -> None:
        """Retype one word, by its position, in a hidden field; the other words stay as they are."""
        share = self.query_one("#share", ShareInput)
        count = len(share.value.split())
        if not count or self.recover.busy:
            self._verdict(Text("No words to correct yet: type the share first.", style="bold"))
            return
        last = min(count, SHARE_WORDS)
        self.recover.navigator.ask(QuestionDialog("Correct a word", f"Which word? Its position on the card, 1 to "
                                                  f"{last}. The other words stay as typed.", "a number",
                                                  required=True), self._correct_at)

    def _correct_at(self, answer: str | None) -> None:
        share = self.query_one("#share", ShareInput)
        last = min(len(share.value.split()), SHARE_WORDS)
        if not answer:
            return
        if not answer.isdigit() or not 1 <= int(answer) <= last:
            self._verdict(Text(f"Type a position from 1 to {last} (ctrl+t).", style="bold"))  # never the answer
            return
        position = int(answer)

        def replace(word: str | None) -> None:
            from enigm_recover.quorum.entry import ShareDraft

            if not word or not word.split():
                return
            draft = ShareDraft(max(SHARE_WORDS, len(share.value.split())))
            draft.load(share.value)
            draft.set_word(position, word.split()[0])
            share.value = draft.text() + (" " if draft.filled < SHARE_WORDS else "")
            share.cursor_position = len(share.value)
            flagged = [p.position for p in draft.problems()]
            note = Text(f"Word {position} replaced. ", style="bold")
            note.append("Still not SLIP-39 words: " + ", ".join(f"word {p}" for p in flagged) if flagged
                        else "Enter checks the share again.")
            self._verdict(note, share.value)
            share.focus()

        self.recover.navigator.ask(SecretDialog(f"Word {position} of {SHARE_WORDS}",
                                                "Type the word from the card (its first four letters are enough). "
                                                "It is hidden.", allow_empty=False), replace)

    def action_restart(self) -> None:
        if self.recover.busy:
            return
        receipts = self.quorum.entry.receipts
        if not receipts:
            self._restart(True)
            return
        names = ", ".join(r.custodian for r in receipts)  # ConfirmDialog shows them inert
        self.recover.navigator.ask(ConfirmDialog(
            "Discard every accepted share?",
            f"{len(receipts)} accepted share{'s' if len(receipts) > 1 else ''} ({names}) will be discarded: each of "
            "these custodians must enter their share again. The audit log records the restart.",
            "Discard the shares"), self._restart)

    def _restart(self, confirmed: bool | None) -> None:
        if not confirmed:
            self._verdict(Text("Nothing discarded: the accepted shares are kept.", style="dim"))
            return
        self._close_remote("the share entry was restarted")  # its socket fed the discarded entry
        try:
            self.ex.restart_quorum()
        except Exception as exc:  # noqa: BLE001 - the audit log cannot be written: a dialog
            self.recover.show_error(exc)
            return
        self.rejected.clear()
        for field in self.query(Input):
            field.value = ""
        self._verdict(Text("Entry restarted: every share must be entered again.", style="bold"))
        self._show_progress()
        self.query_one("#custodian", Input).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "remote":
            return not self.combining
        if action == "paste_sealed":
            return self.remote is not None and not self.combining
        if action == "combine":
            try:
                return self.quorum.complete and not self.combining
            except Exception:  # noqa: BLE001 - no verified snapshot: nothing to combine
                return False
        return True


class SealedShareDialog(ModalScreen["str | None"]):
    """A sealed share pasted whole (an armored age message); never shown back once submitted."""

    DEFAULT_CSS = ("SealedShareDialog #sealed-text { height: 10; }\n"
                   "SealedShareDialog #sealed-recipient { height: 5; }")
    BINDINGS = [Binding("ctrl+e", "submit", "Offer the share", priority=True),
                Binding("ctrl+y", "copy_recipient", "Copy the recipient", priority=True,
                        tooltip="Copy the ceremony's recipient to the clipboard, to send to a custodian"),
                Binding("escape", "cancel", "Cancel")]

    def __init__(self, ceremony: str, fingerprint: str, recipient: str) -> None:
        super().__init__(classes="dialog-screen")
        self.ceremony, self.fingerprint, self.recipient = ceremony, fingerprint, recipient

    def compose(self) -> ComposeResult:
        with Vertical(id="sealed-dialog", classes="dialog"):
            yield Label(Text("Paste a sealed share", style="bold"), classes="dialog-title")
            yield Static(Text(f"Ceremony {self.ceremony}, recipient fingerprint {self.fingerprint}. Paste the whole "
                              "message, from -----BEGIN AGE ENCRYPTED FILE----- to its END line; ctrl+e offers it, "
                              "Esc cancels."))
            yield Label("The ceremony's recipient, for `ceremony seal-share --to` (ctrl+y copies it):")
            yield TextArea(self.recipient, id="sealed-recipient", read_only=True, soft_wrap=True,
                           show_line_numbers=False)
            yield TextArea(id="sealed-text", soft_wrap=False, show_line_numbers=False)

    def on_mount(self) -> None:
        self.query_one("#sealed-text", TextArea).focus()

    def action_submit(self) -> None:
        self.dismiss(self.query_one("#sealed-text", TextArea).text)

    def action_copy_recipient(self) -> None:
        """The recipient is public: the terminal's clipboard (OSC 52) may hold it."""
        self.app.copy_to_clipboard(self.recipient)

    def action_cancel(self) -> None:
        self.dismiss(None)
