"""The guided recovery app: one screen per stage of a runbook, over the runbook executor.

The app owns the one executor and the one worker that may call it: every long
engine call runs in a thread worker with a cancel token (``run_engine``), its
progress throttled onto the screen, its result or error delivered back on the
app's thread. Errors become a dialog naming the cause and the next step; an
unexpected exception anywhere becomes a dialog too, never a traceback. Screens
decide nothing about recovery: they show what the executor says and pass on
what people answer.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from typing import Any, Callable, Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import ModalScreen, Screen

from enigm_recover.app import format as fmt
from enigm_recover.app.dialogs import ErrorDialog, HostKeyDialog, SecretDialog
from enigm_recover.app.navigation import Navigator
from enigm_recover.app.options import AppOptions
from enigm_recover.progress import Progress
from enigm_recover.resources import app_stylesheet

PROGRESS_INTERVAL = 0.05  # seconds between progress updates on screen


def scrub(text: str) -> str:
    """An unexpected error's text, with any run of SLIP-39 words blanked (a share must never be shown):
    a word is blanked when four of the seven words around it are in the SLIP-39 word list."""
    try:
        from shamir_mnemonic.wordlist import WORD_INDEX_MAP
    except ImportError:  # pragma: no cover
        return text
    tokens = text.split(" ")
    marks = [re.sub(r"[^a-z]", "", t.lower()) in WORD_INDEX_MAP for t in tokens]
    out = []
    for i, token in enumerate(tokens):
        run = marks[i] and sum(marks[max(0, i - 3):i + 4]) >= 4
        out.append("…" if run else token)
    return " ".join(out)


class RecoverApp(App[str]):
    """``RecoverApp(options).run()``; returns the line to print on exit (where the run stands)."""

    CSS_PATH = app_stylesheet()
    TITLE = "enigm-recover"
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True, tooltip="Stop here; the run is paused and resumes later"),
        Binding("f1", "toggle_keys", "Keys", tooltip="Show or hide every key of this screen"),
    ]

    def __init__(self, options: AppOptions) -> None:
        super().__init__()
        if self.no_color:  # the focused field then shows by a double border or reverse video, not a shade
            self.css_path = [*self.css_path, app_stylesheet().with_name("no_color.tcss")]
        self.options = options
        self.executor: Any = None  # RunbookExecutor once a run started or resumed
        self.selected_runbook: Any = None  # the runbook highlighted on the start screen
        self.crew: tuple[str, str] = ("", "")  # the operator and second operator who confirmed the last step
        self.ssh_settings: Any = None
        self.internal_errors: list[str] = []  # unexpected exceptions (tests assert there are none)
        self.notices: list[str] = []
        self._messages: list[tuple[str, str, bool]] = []  # (text, severity, lasts while the work runs)
        self.outcome = ""
        self._worker: Any = None
        self._token: Any = None
        self._work_label = ""
        self._quitting = False
        self._prompts: list[tuple[ModalScreen[Any], asyncio.Future[Any]]] = []
        self.navigator = Navigator(self)
        if options.still:
            self.animation_level = "none"

    # -- start ------------------------------------------------------------------------------------------

    def get_default_screen(self) -> Screen[Any]:
        from enigm_recover.app.start import StartScreen

        return StartScreen()

    # -- the one engine worker ----------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._worker is not None

    def run_engine(self, work: Callable[[Callable[[Progress], None]], Any], *, done: Callable[[Any], None],
                   failed: Callable[[BaseException], None] | None = None, label: str = "work") -> bool:
        """Run ``work(progress)`` in a thread; then ``done(result)`` or ``failed(error)`` and an error
        dialog, on the app's thread. Cancelling (Escape, quitting) raises at the work's next progress
        report. Returns False when other work is still running."""
        if self._worker is not None:
            self.say(f"wait: {self._work_label} is still running (Esc cancels it)", "warning", while_working=True)
            return False
        from enigm_recover.cancellation import CancelToken, cancellable

        token = CancelToken()
        last = [0.0]

        def forward(p: Progress) -> None:
            now = time.monotonic()
            if now - last[0] >= PROGRESS_INTERVAL or (p.total is not None and p.done >= p.total):
                last[0] = now
                self.call_later(self._deliver_progress, p)

        progress = cancellable(forward, token)

        def job() -> None:
            try:
                result = work(progress)
            except BaseException as exc:  # noqa: BLE001 - every failure goes to a dialog
                self.call_later(self._engine_finished, False, exc, done, failed)
            else:
                self.call_later(self._engine_finished, True, result, done, failed)

        self._token, self._work_label = token, label
        self._worker = self.run_worker(job, name=label, group="engine", thread=True, exit_on_error=False)
        return True

    @property
    def operator_name(self) -> str:
        """Who confirms a step: the name confirmed last (it carries from step to step), else the option's."""
        return self.crew[0] or self.options.operator

    def cancel_work(self, reason: str = "cancelled by the operator") -> bool:
        if self._token is None:
            return False
        self._token.cancel(reason)
        self.say("Stopping at the next safe point…", while_working=True)
        return True

    def _deliver_progress(self, p: Progress) -> None:
        from enigm_recover.app.stage import StageScreen

        for screen in reversed(self.screen_stack):
            if isinstance(screen, StageScreen):
                screen.on_progress(p)
                return

    def _engine_finished(self, ok: bool, value: Any, done: Callable[[Any], None],
                         failed: Callable[[BaseException], None] | None) -> None:
        self._worker, self._token = None, None
        if any(working for *_, working in self._messages):  # "stopping…", "wait: …" no longer hold
            self._messages = [m for m in self._messages if not m[2]]
            self._show_messages()
        if self._quitting:
            self._finish_quit()
            return
        try:
            if ok:
                done(value)
                return
            if failed is not None:
                failed(value)
        except Exception as exc:  # noqa: BLE001 - a bug in a screen must not stop the app's message loop
            self._handle_exception(exc)
            return
        self.show_error(value)

    # -- errors -------------------------------------------------------------------------------------------

    def show_error(self, exc: BaseException) -> None:
        from enigm_recover.errors import EnigmError

        if isinstance(exc, EnigmError):
            title, message, hint = fmt.error_title(exc), exc.message, exc.hint
        else:
            title = "Internal error"
            message = f"{type(exc).__name__}: {scrub(str(exc))}"
            hint = ("this is a bug: please report it. The run is saved at its current step: try again, or quit "
                    "(ctrl+q) and resume it later")
        self.push_screen(ErrorDialog(title, self.options.shown(message), self.options.shown(hint)))

    def _handle_exception(self, error: Exception) -> None:
        """An exception escaped a handler: a dialog, never a traceback (and never the locals, which may hold
        what a custodian typed). After a few, or before the app runs, stop cleanly."""
        self.internal_errors.append(f"{type(error).__name__}: {scrub(str(error))}")
        if os.environ.get("ENIGM_RECOVER_DEBUG"):  # a developer's own terminal: the traceback, no locals
            import traceback

            self.internal_errors.append("".join(traceback.format_exception(error)))
        if len(self.internal_errors) > 3 or not self.is_running or not self.screen_stack:
            self._pause_quietly(f"internal error {type(error).__name__}")
            self.outcome = (f"internal error: {type(error).__name__}: {scrub(str(error))} — this is a bug; please "
                            "report it. " + self.outcome)
            self.exit(self.outcome, return_code=1)
            return
        self.push_screen(ErrorDialog("Internal error", f"{type(error).__name__}: {scrub(str(error))}",
                                     "this is a bug: please report it. Close this to go on from the current step"),
                         callback=lambda _: self.show_current())

    # -- prompts from engine threads ------------------------------------------------------------------------

    async def _ask_modal(self, screen: ModalScreen[Any]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def finish(result: Any) -> None:
            if not future.done():
                future.set_result(result)

        self._prompts.append((screen, future))
        try:
            await self.push_screen(screen, callback=finish)
            return await future
        finally:
            self._prompts = [(s, f) for s, f in self._prompts if f is not future]

    async def ask_secret(self, prompt: str) -> str | None:
        return await self._ask_modal(SecretDialog(prompt, "The answer is not shown, stored or logged."))

    async def ask_host_key(self, source: str, fingerprint: str, detail: str) -> bool:
        return bool(await self._ask_modal(HostKeyDialog(source, fingerprint, detail)))

    # -- messages: the screen's status line, never a toast over the content ------------------------------

    @property
    def messages(self) -> list[tuple[str, str]]:
        """What the app says now, oldest first: (text, severity)."""
        return [(text, severity) for text, severity, _ in self._messages]

    def say(self, message: str, severity: str = "information", *, while_working: bool = False) -> None:
        """Show ``message`` in the status line of the stage screen (under any dialog), in the layout so it
        covers nothing. It stays until the operator presses a key on a stage screen (it carries to the next
        screen until then), or with ``while_working`` until the engine work ends. Never markup; control
        characters show escaped."""
        from enigm_recover.inert import for_terminal

        text = for_terminal(message, multiline=True)
        self._messages = [m for m in self._messages if m[0] != text][-5:] + [(text, severity, while_working)]
        self._show_messages()

    def _stage_screen(self) -> Any:
        """The topmost screen with a status line (a dialog above it has none: the message shows under it)."""
        from enigm_recover.app.stage import MessageScreen

        return next((s for s in reversed(self.screen_stack) if isinstance(s, MessageScreen)), None)

    def _show_messages(self) -> None:
        screen = self._stage_screen()
        if screen is not None and screen.is_mounted:
            screen.show_messages(self.messages)

    def notify(self, message: str, *, title: str = "", severity: Any = "information", markup: bool = False,
               **kwargs: Any) -> None:
        """Every notification, the app's and Textual's own, goes to the status line (``say``); a toast only
        while no stage screen is there to hold it. Never markup, control characters escaped."""
        from enigm_recover.inert import for_terminal

        if self._stage_screen() is not None:
            self.say(f"{title}: {message}" if title else message, severity)
            return
        super().notify(for_terminal(message, multiline=True), title=for_terminal(title), severity=severity,
                       markup=False, **kwargs)

    def clear_notifications(self) -> None:
        self._messages.clear()
        self._show_messages()
        super().clear_notifications()

    async def on_event(self, event: Any) -> None:
        """A key pressed on a stage screen: the operator has moved on, the messages said so far go (those about
        running work stay until it ends)."""
        from textual import events

        if (isinstance(event, events.Key) and not event.is_forwarded and self._messages
                and self._stage_screen() is self.screen):
            self._messages = [m for m in self._messages if m[2]]
            self._show_messages()
        await super().on_event(event)

    def post_notice(self, message: str) -> None:
        """An engine notice: in the screen's notice list where it has one, else in the status line."""
        self.notices.append(message)
        screen = self.screen
        if hasattr(screen, "add_notice"):
            screen.add_notice(message)
        else:
            self.say(self.options.shown(message))

    # -- engine calls the screens share -------------------------------------------------------------------

    def run_settings(self) -> Any:
        """The executor's settings from the options (in a worker: this imports asyncssh)."""
        from pathlib import Path

        from enigm_recover.app.bridge import UIPrompter
        from enigm_recover.runbook.executor import RunSettings
        from enigm_recover.sources.ssh import SSHSettings

        o = self.options
        self.ssh_settings = SSHSettings(config_files=o.ssh_config, known_hosts=o.known_hosts,
                                        identities=list(o.identities), accept_host_key=o.accept_host_key,
                                        prompter=UIPrompter(self), require_post_quantum_kex=o.require_post_quantum_kex)
        return RunSettings(source=o.source or "", target=o.target or "", allowed_signers=o.allowed_signers or Path(),
                           state_dir=o.state_dir, cache_dir=o.cache_dir, operator=o.operator, ssh=self.ssh_settings,
                           signer=o.signer(UIPrompter(self).ask_secret) if o.signer else None,
                           batch_size=o.batch_size, target_environment=o.target_environment,
                           restore_pace=o.restore_pace)

    def start_run(self, runbook: Any, resume: str | None = None) -> bool:
        def work(progress: Any) -> Any:
            from enigm_recover.errors import UsageError
            from enigm_recover.runbook.executor import RunbookExecutor

            settings = self.run_settings()
            if resume:
                return self._resumed(runbook, settings, resume, progress)
            missing = [flag for flag, value in (("--source", settings.source), ("--target", settings.target),
                                                ("--allowed-signers", str(self.options.allowed_signers or "")))
                       if not value]
            if missing:
                raise UsageError(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set",
                                 "pass it when opening the app, or set it with `enigm-recover config set`")
            return RunbookExecutor.start(runbook, settings, ceremony=self.options.ceremony)

        return self.run_engine(work, done=self._run_started, label="starting the run")

    def _resumed(self, runbook: Any, settings: Any, ceremony: str, progress: Any, *,
                 another_snapshot: bool = False) -> Any:
        """The paused run, checked before any share is asked (the engine's resume check); a
        ``ResumeBlocked`` when it cannot go on."""
        from enigm_recover.app.resume import ResumeBlocked
        from enigm_recover.errors import EnigmError
        from enigm_recover.runbook.executor import RunbookExecutor

        ex = RunbookExecutor.resume(runbook, settings, ceremony)
        try:
            if another_snapshot:
                ex.choose_another_snapshot()
            ex.check_can_continue(progress)
        except EnigmError as exc:
            ex.pause(f"the resume check failed: {exc.message}")
            return ResumeBlocked(ex.ceremony, runbook, exc)
        return ex

    def _run_started(self, executor: Any) -> None:
        """A run started or resumed in a worker: show its step, or the resume check's choices."""
        from enigm_recover.app.resume import ResumeBlocked

        if isinstance(executor, ResumeBlocked):
            self.navigator.resume_blocked(executor)
            return
        self.executor = executor
        self.show_current()

    def resume_with_another_snapshot(self, blocked: Any) -> bool:
        return self.run_engine(lambda progress: self._resumed(blocked.runbook, self.run_settings(), blocked.ceremony,
                                                              progress, another_snapshot=True),
                               done=self._run_started, label="going back to the snapshot choice")

    def abort_paused_run(self, ceremony: str, reason: str) -> bool:
        """End a paused run for good; the reason goes to its audit log and report."""
        def work(progress: Any) -> Any:
            from enigm_recover.runbook.runs import abort_run, find_run

            settings = self.run_settings()
            return abort_run(find_run(settings.state_dir, ceremony), reason, settings.operator, settings.signer)

        def aborted(folder: Any) -> None:
            self.notify(f"run {ceremony} aborted; report {folder / 'report.md'}")
            self.navigator.show_current()

        return self.run_engine(work, done=aborted, label="aborting the paused run")

    def list_snapshots(self, refresh: bool = False) -> list[Any]:
        """The source's snapshots (in a worker), asking about an unknown host key in a dialog; ``refresh``
        reads the source again instead of this run's listing."""
        from enigm_recover.errors import HostKeyUnknown

        ex = self.executor
        fingerprint = self.recipient_fingerprint()
        while True:
            try:
                return ex.snapshots(fingerprint, refresh=refresh)
            except HostKeyUnknown as exc:
                offered = exc.fingerprint
                ssh = ex.settings.ssh
                if not offered or ssh is None or ssh.accept_host_key == offered:
                    raise
                if not self.call_from_thread(self.ask_host_key, ex.settings.source, self.options.shown(offered),
                                             self.options.shown(exc.message)):
                    raise
                ssh.accept_host_key = offered

    def recipient_fingerprint(self) -> str | None:
        o = self.options
        if o.recipient_fingerprint:
            return o.recipient_fingerprint
        if o.recipient:
            from enigm_recover.quorum.recovery_key import recipient_fingerprint
            from enigm_recover.snapshot.seal import read_recipient_file

            return recipient_fingerprint(read_recipient_file(o.recipient))
        return None

    # -- where the run is --------------------------------------------------------------------------------------

    def show_current(self) -> None:
        """The screen of the step the run is at (the navigator decides every change of screen)."""
        self.navigator.show_current()

    # -- quitting: pause the run where it stands ------------------------------------------------------------

    async def action_quit(self) -> None:
        if self._quitting:
            return
        if self._worker is not None:
            self._quitting = True
            self._token.cancel("the operator quit")
            for screen, future in list(self._prompts):
                if not future.done():
                    future.set_result(None)
                if screen.is_attached:
                    screen.dismiss(None)
            self.say("Stopping at the next safe point, then pausing the run…", while_working=True)
            return
        self._finish_quit()

    def _pause_quietly(self, reason: str) -> None:
        ex = self.executor
        if ex is None or ex.current is None:
            return
        try:
            ex.pause(reason)
        except Exception as exc:  # noqa: BLE001 - quitting must not fail
            self.internal_errors.append(f"pause failed: {type(exc).__name__}: {scrub(str(exc))}")
            return
        self.outcome = (f"run {ex.ceremony} of {ex.runbook.name} paused at step {ex.current.id}; open the app "
                        "again and press r on the start screen to resume it")

    def _finish_quit(self) -> None:
        ex = self.executor
        if ex is not None and ex.current is not None:
            self._pause_quietly("the operator quit")
        elif ex is not None:
            self.outcome = (f"run {ex.ceremony} of {ex.runbook.name}: {ex.status}; report "
                            f"{ex.folder / 'report.md'}; audit log {ex.folder / 'audit.jsonl'} "
                            f"(head {ex.recovery.audit.head})")
        self.exit(self.outcome)

    # -- keys and the command palette ------------------------------------------------------------------------

    def action_toggle_keys(self) -> None:
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """The palette offers this screen's actions (each also has its key in the footer)."""
        seen = set()
        for key, active in screen.active_bindings.items():
            binding = active.binding
            if not binding.show or not binding.description or not active.enabled or binding.action in seen:
                continue
            if binding.action in ("quit", "toggle_keys", "command_palette"):
                continue
            seen.add(binding.action)
            keys = binding.key_display or self.get_key_display(binding)
            yield SystemCommand(binding.description, f"{binding.tooltip or binding.description} (key: {keys})",
                                self._palette_action(active.node, binding.action))
        yield SystemCommand("Quit", "Stop here; the run is paused and resumes later (key: ctrl+q)", self.action_quit)
        yield SystemCommand("Keys", "Show or hide every key of this screen (key: f1)", self.action_toggle_keys)
        yield from (c for c in super().get_system_commands(screen) if c.title not in ("Quit", "Keys"))

    def _palette_action(self, node: Any, action: str) -> Callable[[], Any]:
        async def run() -> None:
            await self.run_action(action, node)
        return run
