"""Stage 1, start: choose a runbook (or resume a paused run); the source and target come from the options."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Label, OptionList, Static
from textual.widgets.option_list import Option

from enigm_recover.app.format import inert, plain
from enigm_recover.app.stage import StageScreen
from enigm_recover.state.url import safe_url


class StartScreen(StageScreen):
    STAGE = "Start"
    BINDINGS = [
        Binding("enter", "start", "Start", priority=True, tooltip="Start the highlighted runbook"),
        Binding("r", "resume", "Resume paused run", tooltip="Continue the newest paused run of this runbook"),
        Binding("m", "check_card", "Check my card", tooltip="A custodian checks one share card alone"),
        Binding("t", "test_quorum", "Test the quorum",
                tooltip="The custodians prove they can combine the recovery key; nothing is restored"),
        Binding("e", "check_readiness", "Check readiness",
                tooltip="Would the source's snapshots restore today? Every readiness check, no share needed"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.runbooks: list[Any] | None = None
        self.problems: list[str] = []
        self.paused: list[Any] = []

    def compose_body(self) -> ComposeResult:
        yield Label("Choose a runbook", classes="section-title")
        yield OptionList(id="runbooks")
        yield Static("", id="runbook-purpose")
        yield Label("This recovery", classes="section-title")
        yield Static(self._settings_text(), id="settings")
        yield Static("", id="paused-runs")
        yield Static(Text.assemble(("Custodians: ", "bold"), "m checks one share card alone; "
                                   "t tests that the quorum can combine the recovery key.\n",
                                   ("Readiness: ", "bold"), "e checks that the source's snapshots would restore "
                                   "today (no share is needed)."), id="custodian-entries")
        if self.recover.options.drill is not None:
            yield Static(self._drill_text(), id="drill-note")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#runbooks", OptionList).loading = True
        self.call_after_refresh(self._load)  # after the first paint: the loader imports the engine

    def _load(self) -> None:
        state_dir = self.recover.options.state_dir
        folders = self.recover.options.runbook_folders

        def work(progress: Any) -> Any:
            from enigm_recover.runbook.executor import open_runs
            from enigm_recover.runbook.loader import available_runbooks, runbook_folders

            runbooks, problems = available_runbooks(runbook_folders(folders))
            return runbooks, problems, open_runs(state_dir)

        if not self.recover.run_engine(work, done=self._loaded, label="reading the runbooks"):
            self.set_timer(0.2, self._load)

    def _loaded(self, found: Any) -> None:
        self.runbooks, self.problems, self.paused = found
        options = self.query_one("#runbooks", OptionList)
        options.loading = False
        options.clear_options()
        for runbook in self.runbooks:
            options.add_option(Option(Text.assemble((inert(runbook.name), "bold"), f"  {inert(runbook.title)} "
                                                    f"({len(runbook.steps)} steps)"), id=runbook.name))
        wanted = self.recover.options.runbook
        names = [r.name for r in self.runbooks]
        if wanted and wanted not in names and not wanted.endswith(".toml"):
            from enigm_recover.errors import UsageError

            self.recover.show_error(UsageError(f"no runbook named {wanted!r} (available: {', '.join(names)})",
                                               "choose one here, or see `enigm-recover runbooks list`"))
        if names:
            options.highlighted = names.index(wanted) if wanted in names else 0
        options.focus()
        self._show_selected()
        for problem in self.problems:
            self.recover.notify(self.recover.options.shown(f"invalid runbook: {problem}"), severity="warning")
        if self.recover.options.resume:
            self.recover.options.resume = False
            self.action_resume()

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self._show_selected()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.action_start()

    @property
    def selected(self) -> Any:
        if not self.runbooks:
            return None
        index = self.query_one("#runbooks", OptionList).highlighted
        return self.runbooks[index] if index is not None and index < len(self.runbooks) else None

    def _paused_of(self, runbook: Any) -> list[Any]:
        return [run for run in self.paused if runbook is not None and run.runbook == runbook.name]

    def _show_selected(self) -> None:
        runbook = self.selected
        self.recover.selected_runbook = runbook
        if runbook is None:
            return
        purpose = plain(" ".join(runbook.purpose.split()))
        purpose.append("\n")
        for number, step in enumerate(runbook.steps, 1):
            flags = step.action.value + (", two-person" if step.two_person else "")
            purpose.append(f"\n{number:>2}. {inert(step.title)} ", style="bold")
            purpose.append(f"({inert(flags)})", style="dim")
        self.query_one("#runbook-purpose", Static).update(purpose)
        paused = self._paused_of(runbook)
        text = Text()
        if paused:
            run = paused[0]
            where = runbook.steps[run.position].title if run.position < len(runbook.steps) else "the end"
            text.append("Paused run: ", style="bold")
            text.append(inert(f"ceremony {run.ceremony}, at step {run.position + 1} ({where})") + " — press r to resume it")
            if len(paused) > 1:
                text.append(f" ({len(paused) - 1} older paused run(s) too)", style="dim")
        self.query_one("#paused-runs", Static).update(text)
        self.refresh_frame()

    def _settings_text(self) -> Text:
        o = self.recover.options
        shown = o.shown
        text = Text()
        for label, value, flag in (("Source", o.source, "--source"), ("Target", safe_url(o.target) if o.target else o.target, "--target"),
                                   ("Trusted signers", o.allowed_signers, "--allowed-signers")):
            text.append(f"{label + ':':<17}", style="bold")
            text.append(shown(value) if value else f"not set (pass {flag})")
            text.append("\n")
        text.append(f"{'Operator:':<17}", style="bold")
        text.append(inert(o.operator))
        return text

    def _drill_text(self) -> Text:
        drill = self.recover.options.drill
        assert drill is not None
        names = inert(", ".join(drill.custodians))
        folder = self.recover.options.shown(next(iter(drill.custodians.values())).parent) if drill.custodians else ""
        return Text.assemble(("Tabletop drill. ", "bold"),
                             f"Print the five custodian cards ({names}) from {folder} and hand one to each "
                             "custodian: the quorum step asks them to type their share.")

    def action_start(self) -> None:
        runbook = self.selected
        if runbook is None:
            self.recover.notify("the runbooks are still being read", severity="warning")
            return
        self.recover.start_run(runbook)

    def action_check_card(self) -> None:
        self.recover.navigator.check_card()

    def action_test_quorum(self) -> None:
        self.recover.navigator.test_quorum()
    def action_check_readiness(self) -> None:
        self.recover.navigator.check_readiness()

    def action_resume(self) -> None:
        runbook = self.selected
        paused = self._paused_of(runbook)
        if not paused:
            self.recover.notify("no paused run of this runbook", severity="warning")
            return
        self.recover.start_run(runbook, resume=paused[0].ceremony)
