"""Where the app goes next: the one place that switches screens.

Screens never push or switch to each other: they ask the navigator, which
decides from the run (the executor's current step) or from the request (the
listing done, a dry run to browse, back from it, a question to ask).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from textual.screen import ModalScreen, Screen


class Navigator:
    def __init__(self, app: Any) -> None:
        self.app = app

    # -- the screen of the run's current step -----------------------------------------------------------

    def screen_for_current(self) -> Screen[Any]:
        from enigm_recover.runbook.model import Action

        ex = self.app.executor
        step = ex.current
        if step is None:
            from enigm_recover.app.done import DoneScreen
            return DoneScreen()
        if ex.needs_quorum or step.action is Action.GATHER_QUORUM:
            from enigm_recover.app.quorum import QuorumScreen
            return QuorumScreen()
        if step.action is Action.SELECT_SNAPSHOT:
            from enigm_recover.app.source import SourceScreen
            return SourceScreen()
        if step.action is Action.VERIFY_SNAPSHOT:
            from enigm_recover.app.verify import VerifyScreen
            return VerifyScreen()
        if step.action is Action.DRY_RUN:
            from enigm_recover.app.dryrun import DryRunScreen
            return DryRunScreen()
        from enigm_recover.app.step import StepScreen
        return StepScreen()

    def show_current(self) -> None:
        """The screen of the step the run is at (above the start screen, which stays at the bottom)."""
        app = self.app
        while len(app.screen_stack) > 1 and isinstance(app.screen, ModalScreen):
            app.pop_screen()
        if app.executor is None:
            while len(app.screen_stack) > 1:
                app.pop_screen()
            return
        ex = app.executor
        screen = self.screen_for_current()
        index = ex.state.position if ex.current is not None else None
        from enigm_recover.app.quorum import QuorumScreen

        if isinstance(screen, QuorumScreen) and not ex.quorum_open:
            # Opening the share entry takes the target's restore lock (a connection, perhaps a wait): in the
            # engine's worker, and a refusal is a dialog naming the cause, before any custodian is asked.
            app.run_engine(lambda progress: ex.quorum(), done=lambda _: self._replace(screen, index),
                           label="opening the share entry")
            return
        self._replace(screen, index)

    # -- places within one step ---------------------------------------------------------------------------

    def listed(self, summaries: list[Any], step_index: int | None) -> None:
        """The source listed: choose among its snapshots."""
        from enigm_recover.app.snapshots import SnapshotsScreen

        self._replace(SnapshotsScreen(summaries), step_index)

    def relist(self, step_index: int | None) -> None:
        """List the source afresh (the operator asked)."""
        from enigm_recover.app.source import SourceScreen

        self._replace(SourceScreen(refresh=True), step_index)

    def browse_dry_run(self, step_index: int | None) -> None:
        """This session's dry run, to browse above the current step's screen."""
        from enigm_recover.app.dryrun import DryRunScreen

        screen = DryRunScreen(browse=True)
        screen.step_index = step_index
        self.app.push_screen(screen)

    def back(self) -> None:
        """Leave a screen shown above the current step's (a browsed dry run)."""
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()

    def check_readiness(self) -> None:
        """The readiness view, above the start screen (no run needed: it asks for no share)."""
        from enigm_recover.app.readiness import ReadinessScreen

        self.app.push_screen(ReadinessScreen())

    def leave_readiness(self, screen: Screen[Any]) -> None:
        """Back from the readiness view to where it was opened."""
        if self.app.screen is screen:
            self.app.pop_screen()

    def resume_blocked(self, blocked: Any) -> None:
        """A paused run failed its resume check: say why, then choose another snapshot or abort it."""
        from enigm_recover.app.dialogs import QuestionDialog
        from enigm_recover.app.resume import ABORT, ANOTHER, ResumeBlockedDialog

        def reason_given(reason: str | None) -> None:
            if reason:
                self.app.abort_paused_run(blocked.ceremony, reason)

        def chosen(choice: str | None) -> None:
            if choice == ANOTHER:
                self.app.resume_with_another_snapshot(blocked)
            elif choice == ABORT:
                self.ask(QuestionDialog(f"Abort run {blocked.ceremony}",
                                        "The run ends for good (its audit log and report are kept). Why?",
                                        placeholder="the reason, for the audit log and the report",
                                        required=True), reason_given)

        self.ask(ResumeBlockedDialog(blocked), chosen)

    # -- the custodians' screens, above the start screen ---------------------------------------------------

    def check_card(self) -> None:
        """A custodian checks a card alone (against the recovery.pub the app was opened with, if any)."""
        from enigm_recover.app.custodians import CheckCardScreen

        self.app.push_screen(CheckCardScreen(self.app.options.recipient))

    def test_quorum(self) -> None:
        """The custodians prove the quorum: of the recovery.pub the app knows, else of the one named."""
        from enigm_recover.app.dialogs import QuestionDialog

        known = self.app.options.recipient
        if known is not None:
            self._open_quorum_test(known)
            return
        self.ask(QuestionDialog("Test the quorum", "Which recovery key? The path of its recovery.pub.",
                                placeholder="path of recovery.pub", required=True),
                 lambda path: self._open_quorum_test(Path(path)) if path else None)

    def _open_quorum_test(self, recipient: Path) -> None:
        from enigm_recover.app.bridge import UIPrompter
        from enigm_recover.app.custodians import TestQuorumScreen

        app, options = self.app, self.app.options

        def work(progress: Any) -> Any:
            from enigm_recover.recovery.quorum_test import QuorumTestSession

            signer = options.signer(UIPrompter(app).ask_secret) if options.signer else None
            return QuorumTestSession.open(options.state_dir, recipient, options.operator, signer, options.ceremony)

        app.run_engine(work, done=lambda session: app.push_screen(TestQuorumScreen(session)),
                       label="opening the quorum test")

    def leave(self, screen: Screen[Any]) -> None:
        """Close a custodian's screen: back to the screen below it (the start screen)."""
        if self.app.screen is screen and len(self.app.screen_stack) > 1:
            self.app.pop_screen()

    def ask(self, dialog: ModalScreen[Any], answered: Callable[[Any], None]) -> None:
        """A question above the current screen; ``answered`` gets the answer (None when dismissed)."""
        self.app.push_screen(dialog, callback=answered)

    def _replace(self, screen: Screen[Any], step_index: int | None) -> None:
        screen.step_index = step_index  # type: ignore[attr-defined]
        if len(self.app.screen_stack) == 1:
            self.app.push_screen(screen)
        else:
            self.app.switch_screen(screen)
