"""Stage 7, restore (and the other steps a person confirms): guidance, the plan, confirmation, progress, result.

A restore step shows what each plan step would insert, overwrite, delete and
keep, then asks the operator (and a second operator where the runbook says
so) to confirm; it runs with live progress and can be cancelled at the next
batch boundary (each batch commits with its journal row, so the step resumes
where it stopped). Checkpoints, target verification and the sign-off use the
same screen.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Input, Label, Static

from enigm_recover.app.dialogs import QuestionDialog
from enigm_recover.app.format import inert, plain
from enigm_recover.app.stage import StageScreen
from enigm_recover.app.widgets import ProgressPanel, humanize_counts
from enigm_recover.runbook.model import Action, StepStatus

ACTION_LABELS = {"restore": "Restore", "verify-target": "Verify the target", "checkpoint": "Checkpoint",
                 "sign-off": "Sign-off"}


class StepScreen(StageScreen):
    STAGE = "Restore"
    BINDINGS = [
        Binding("ctrl+r", "run", "Confirm and run", tooltip="Confirm the step with the names typed, and run it"),
        Binding("ctrl+s", "skip", "Skip step", tooltip="Leave this step undone (the report says so)"),
        Binding("ctrl+d", "dry_run", "Dry run", priority=True, tooltip="Browse the dry run's changes"),
        Binding("escape", "cancel_work", "Cancel", tooltip="Stop at the next batch; the step resumes from there"),
        Binding("enter", "next", "Continue", priority=True, tooltip="Go on to the next step"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.step = None
        self.state = "confirm"  # preview | confirm | running | done | failed
        self.result: Any = None
        self.planned = False

    def stage_label(self) -> str:
        """Named after the step's action: a checkpoint or a sign-off is no restore."""
        step = self.step or self.ex.current
        return ACTION_LABELS.get(step.action.value, self.STAGE) if step is not None else self.STAGE

    def compose_body(self) -> ComposeResult:
        step = self.ex.current
        self.step = step
        yield Static("", id="step-title")
        yield Static(plain(" ".join(step.guidance.split())), id="guidance")
        if step.prompts:
            yield Static(self._prompts_text(step), id="prompts")
        if step.action is Action.RESTORE:
            yield Label("Plan", classes="section-title")
            yield DataTable(id="plan", cursor_type="none", show_cursor=False)
        with Vertical(id="confirm-form"):
            if self.ex.needs_confirmation(step):
                yield Label("Operator confirming this step", classes="field-label")
                yield Input(value=self.recover.operator_name, id="operator")
            if step.two_person:
                yield Label("Second operator (two-person rule: another person types their name)",
                            classes="field-label")
                yield Input(value=self.recover.crew[1], id="second-operator", placeholder="the second operator's name")
            if step.action.value in ("checkpoint", "sign-off"):
                yield Label("Note for the record (optional)", classes="field-label")
                yield Input(id="note", placeholder="what the room decided")
        yield ProgressPanel(id="progress")
        yield Static("", id="step-result")

    def on_mount(self) -> None:
        super().on_mount()
        step = self.step
        title = plain(ACTION_LABELS.get(step.action.value, step.action.value), "bold")
        flags = []
        if step.kinds:
            flags.append("kinds: " + ", ".join(step.kinds))
        if step.policies:
            flags.append("policy: " + "; ".join(sorted({p.split('=', 1)[1] for p in step.policies})))
        if step.two_person:
            flags.append("two-person")
        if flags:
            title.append(inert("  ·  " + "  ·  ".join(flags)), style="dim")
        self.query_one("#step-title", Static).update(title)
        self.query_one(ProgressPanel).display = False
        if step.action is Action.RESTORE:
            self.query_one("#plan", DataTable).add_columns("step", "policies", "insert", "overwrite", "delete",
                                                           "kept", "left")
            self.load_plan()
        else:
            self._ready()

    def _prompts_text(self, step: Any) -> Text:
        text = Text()
        text.append("For the room:\n", style="bold")
        for prompt in step.prompts:
            text.append(f"  ? {inert(prompt)}\n")
        text.rstrip()
        return text

    # -- the plan (a restore's preview needs a dry run: after a restore, a fresh one) --------------------------

    def load_plan(self) -> None:
        ex = self.ex
        self.state = "preview"
        self.query_one(ProgressPanel).start("Working out the plan from the dry run…")
        self.query_one(ProgressPanel).display = True
        if not self.recover.run_engine(lambda progress: ex.restore_preview(progress), done=self._planned,
                                       failed=self._plan_failed, label="the restore plan"):
            self.set_timer(0.2, self.load_plan)
        self.refresh_bindings()

    def on_progress(self, progress: Any) -> None:
        self.query_one(ProgressPanel).report(progress)

    def _planned(self, preview: list[Any]) -> None:
        table = self.query_one("#plan", DataTable)
        table.clear()
        for plan_step, p in preview:
            policies = plan_step.describe().replace("restore-missing", "missing").replace(
                "overwrite-changed", "overwrite").replace("delete-extra", "delete")
            if not p.in_snapshot:  # refused when run: the snapshot says nothing about the kind
                table.add_row(plain(plan_step.name), plain(policies), "not in this snapshot", "", "", "", "")
                continue
            table.add_row(plain(plan_step.name), plain(policies), f"{p.inserts:,}", f"{p.updates:,}",
                          f"{p.deletes:,}", f"{p.protected:,}", f"{p.left:,}")
        self.planned = True
        self.query_one(ProgressPanel).display = False
        self._ready()

    def _plan_failed(self, error: BaseException) -> None:
        self.state = "failed"
        self.query_one(ProgressPanel).finish("No plan", "press ctrl+r to try again")
        self.refresh_bindings()

    def _ready(self) -> None:
        self.state = "confirm"
        step = self.step
        text = Text()
        if step.two_person:
            text.append("Two-person step: ", style="bold")
            text.append("the operator and a second operator each type their name; ")
        elif self.ex.needs_confirmation(step):
            text.append("Check the names, ")
        text.append("press ctrl+r to confirm and run", style="bold")
        if self.ex.can_skip(step):
            text.append(", or ctrl+s to skip it")
        text.append(".")
        self.query_one("#step-result", Static).update(text)
        fields = list(self.query("#confirm-form Input").results(Input))
        empty = [f for f in fields if not f.value]
        if fields:
            (empty[0] if empty else fields[-1]).focus()
        self.refresh_bindings()

    # -- running ------------------------------------------------------------------------------------------

    def _confirmation(self) -> Any:
        from enigm_recover.runbook.executor import Confirmation

        def value(selector: str) -> str | None:
            found = self.query(selector)
            return found.first(Input).value.strip() if found else None

        return Confirmation(value("#operator") or self.recover.operator_name, value("#second-operator"),
                            note=value("#note") or "")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        fields = list(self.query("#confirm-form Input").results(Input))
        index = fields.index(event.input) if event.input in fields else -1
        if 0 <= index < len(fields) - 1:
            fields[index + 1].focus()
        else:
            self.action_run()

    def action_run(self) -> None:
        if self.state == "failed" and self.step.action is Action.RESTORE and not self.planned:
            if not self.recover.busy:
                self.load_plan()
            return
        if self.state not in ("confirm", "failed") or self.recover.busy:
            return
        ex, confirmation = self.ex, self._confirmation()
        # the names carry to the next step (still editable there, e.g. when the shift changes)
        self.recover.crew = (confirmation.operator, confirmation.second_operator or self.recover.crew[1])
        self.state = "running"
        for field in self.query("#confirm-form Input").results(Input):
            field.disabled = True
        if self.step.action in (Action.RESTORE, Action.VERIFY_TARGET):  # machine work: a bar; a checkpoint has none
            self.query_one(ProgressPanel).start(plain(f"{ACTION_LABELS.get(self.step.action.value, 'Step')}: "
                                                      "starting…"))
            self.query_one(ProgressPanel).display = True
        self.query_one("#step-result", Static).update(Text("Running; Esc stops it at the next safe point.",
                                                           style="dim"))
        self.recover.run_engine(lambda progress: ex.run_current(confirmation, progress), done=self._done,
                                failed=self._failed, label=f"step {self.step.id}")
        self.refresh_bindings()

    def _done(self, result: Any) -> None:
        self.state, self.result = "done", result
        mark = "✓" if result.ok else ("–" if result.status is StepStatus.SKIPPED else "!")
        text = Text(f"{mark} {inert(result.status)}: ", style="bold")
        summary = result.summary
        for tail in (f"; {result.status.value}", f", {result.status.value}"):  # said once, in front
            summary = summary[:-len(tail)] if summary.endswith(tail) else summary
        text.append(inert(summary, multiline=True))
        for outcome in result.detail.get("steps", []) if isinstance(result.detail, dict) else []:
            text.append(inert(f"\n  {outcome.get('step', '?')}: {outcome.get('status', '?')}", multiline=True),
                        style="bold")
            counts = {k: outcome[k] for k in ("inserted", "updated", "deleted") if k in outcome}
            if counts:
                text.append("  " + humanize_counts(counts))
        if result.confirmed_by:
            text.append(f"\nConfirmed by {inert(', '.join(result.confirmed_by))}.", style="dim")
        text.append("\nPress Enter to go on.", style="dim")
        self.query_one("#step-result", Static).update(text)
        panel = self.query_one(ProgressPanel)
        if panel.display:
            panel.finish("Done", humanize_counts(result.counts))
        self.set_focus(None)
        self.refresh_frame()
        self.refresh_bindings()

    def _failed(self, error: BaseException) -> None:
        self.state = "failed"
        for field in self.query("#confirm-form Input").results(Input):
            field.disabled = False
        self.query_one(ProgressPanel).finish("Stopped", "the step can be run again: it continues where it stopped")
        self.query_one("#step-result", Static).update(Text(
            "The step did not finish; the run stays at this step. Press ctrl+r to run it again (a restore "
            "continues from its journal), or quit (ctrl+q) and resume later.", style="bold"))
        self.refresh_frame()
        self.refresh_bindings()

    # -- skipping, browsing, going on --------------------------------------------------------------------------

    def action_skip(self) -> None:
        if self.state not in ("confirm", "failed") or not self.ex.can_skip(self.step) or self.recover.busy:
            return
        self.recover.navigator.ask(QuestionDialog("Skip this step?", f"Step {inert(self.step.id)} "
                                                  f"({inert(self.step.title)}) will be left undone and the report "
                                                  "says so. Why?", "the reason, for the record", required=True),
                                   self._skip)

    def _skip(self, reason: str | None) -> None:
        if not reason:
            return
        ex, operator = self.ex, self._confirmation().operator
        self.state = "running"
        self.recover.run_engine(lambda progress: ex.skip_current(operator, reason), done=self._done,
                                failed=self._failed, label=f"skipping step {self.step.id}")

    def action_dry_run(self) -> None:
        if self.ex.dry_run is None or self.state == "running":
            return
        self.recover.navigator.browse_dry_run(self.step_index)

    def action_next(self) -> None:
        if self.state == "done":
            self.recover.show_current()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        state = self.state
        if action == "run":
            return True if state in ("confirm", "failed") else None if state in ("preview", "running") else False
        if action == "skip":
            return state in ("confirm", "failed") and self.ex.can_skip(self.step)
        if action == "dry_run":
            return (self.step.action is Action.RESTORE and self.ex.dry_run is not None
                    and state in ("confirm", "failed"))
        if action == "cancel_work":
            return state in ("running", "preview")
        if action == "next":
            return state == "done"
        return True
