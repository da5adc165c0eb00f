"""Runbooks on the command line: list, show and check them, and walk one headlessly (`run`)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

from enigm_recover.cli.context import Context, share_source
from enigm_recover.cli.output import audit_head_line, emit_json, print_listing, progress_for
from enigm_recover.errors import EnigmError, RestoreNotVerified, RunStateError, UsageError
from enigm_recover.runbook.model import Action, StepStatus
from enigm_recover.state.url import safe_url


def runbook_folders(ctx: Context) -> list[Path]:
    from enigm_recover.runbook.loader import runbook_folders as folders

    return folders(ctx.own_runbook_folders())


def _step_dict(step: Any) -> dict[str, Any]:
    return {"id": step.id, "title": step.title, "action": step.action.value, "two_person": step.two_person,
            "kinds": list(step.kinds), "policies": list(step.policies), "guidance": step.guidance,
            "prompts": list(step.prompts), "line": step.line}


def cmd_runbooks_list(ctx: Context) -> int:
    from enigm_recover.render import table
    from enigm_recover.runbook.loader import available_runbooks

    runbooks, problems = available_runbooks(runbook_folders(ctx))
    if ctx.args.json:
        emit_json({"runbooks": [{"name": r.name, "title": r.title, "steps": len(r.steps), "path": str(r.path)}
                                for r in runbooks], "invalid": problems})
        return 0
    print(table(["NAME", "STEPS", "TITLE"], [[r.name, str(len(r.steps)), r.title] for r in runbooks]))
    for problem in problems:
        print(f"invalid runbook: {problem}", file=sys.stderr)
    return 0


def cmd_runbooks_show(ctx: Context) -> int:
    from enigm_recover.runbook.loader import find_runbook

    runbook = find_runbook(ctx.args.name, runbook_folders(ctx))
    if ctx.args.json:
        emit_json({"name": runbook.name, "title": runbook.title, "purpose": runbook.purpose,
                   "path": str(runbook.path), "sha256": runbook.sha256,
                   "steps": [_step_dict(s) for s in runbook.steps]})
        return 0
    print(f"{runbook.name}: {runbook.title}\n({runbook.path})\n")
    print(textwrap.fill(" ".join(runbook.purpose.split()), 100))
    for number, step in enumerate(runbook.steps, 1):
        print()
        _print_step(step, number, len(runbook.steps))
    return 0


def cmd_runbooks_check(ctx: Context) -> int:
    from enigm_recover.runbook.loader import load_runbook

    runbook = load_runbook(Path(ctx.args.file))
    print(f"{runbook.path}: runbook {runbook.name} is valid ({len(runbook.steps)} steps)")
    return 0


def _print_step(step: Any, number: int, total: int) -> None:
    flags = [step.action.value] + (["two-person"] if step.two_person else [])
    if step.kinds:
        flags.append("kinds " + ", ".join(step.kinds))
    if step.policies:
        flags.append("policy " + "; ".join(step.policies))
    print(f"[{number}/{total}] {step.id} — {step.title} ({', '.join(flags)})")
    print(textwrap.indent(textwrap.fill(" ".join(step.guidance.split()), 96), "    "))
    for prompt in step.prompts:
        print(f"    ? {prompt}")


# -- run -------------------------------------------------------------------------


class _Quit(Exception):
    """The operator chose to stop here and resume later."""


def _ask(question: str) -> str:
    try:
        return input(question).strip()
    except EOFError:
        raise _Quit() from None


def _confirmation(ctx: Context, ex: Any, step: Any) -> Any:
    """The step's confirmation, from flags (--yes, --second-operator) or asked on the terminal.
    Returns None when the operator chose to skip the step."""
    from enigm_recover.runbook.executor import Confirmation

    args = ctx.args
    operator = ex.settings.operator
    if args.yes or not ex.needs_confirmation(step):
        return Confirmation(operator, args.second_operator, args.snapshot, args.note or "")
    if not sys.stdin.isatty():
        raise UsageError(f"step {step.id} needs a person's confirmation and there is no terminal",
                         "pass --yes (and --second-operator NAME for two-person steps) for a scripted run")
    options = "[y]es / [s]kip / [q]uit" if ex.can_skip(step) else "[y]es / [q]uit"
    while True:
        answer = _ask(f"{operator}, confirm step {step.id}? {options}: ").lower()
        if answer in ("q", "quit"):
            raise _Quit()
        if answer in ("s", "skip") and ex.can_skip(step):
            return None
        if answer in ("y", "yes"):
            break
    second = None
    if step.two_person:
        second = args.second_operator or _ask("Two-person step: second operator, type your name to confirm: ")
    note = args.note or (_ask("Note for the record (Enter for none): ") if step.action is Action.CHECKPOINT else "")
    return Confirmation(operator, second, args.snapshot, note)


def _choose_snapshot(ctx: Context, ex: Any, step: Any) -> None:
    summaries = ex.snapshots()
    if not ctx.args.json:
        print_listing(summaries, True)
    if step.snapshot == "ask" and not ctx.args.snapshot:
        if not sys.stdin.isatty():
            raise UsageError(f"step {step.id} asks which snapshot to use", "pass --snapshot ID")
        choice = _ask("Snapshot id (or a unique prefix; Enter for the newest): ") or "latest"
        ctx.args.snapshot = choice


def _walk(ctx: Context, ex: Any) -> None:
    args = ctx.args
    progress = progress_for(args)
    say = (lambda m: None) if args.json else print
    total = len(ex.runbook.steps)
    while (step := ex.current) is not None:
        say("")
        if not args.json:
            _print_step(step, ex.state.position + 1, total)
        if step.action is Action.SELECT_SNAPSHOT:
            _choose_snapshot(ctx, ex, step)
        if step.action is Action.GATHER_QUORUM or ex.needs_quorum:
            if ex.needs_quorum and step.action is not Action.GATHER_QUORUM:
                say(f"the recovery key is needed again after the resume: custodians, ceremony {ex.ceremony}")
            shares = share_source(ctx, ex.runbook.shares_per_os_user)
            shares.enter(ex.quorum())
            ex.combine(shares.passphrase())
        if step.action is Action.RESTORE and not args.json:
            for plan_step, p in ex.restore_preview(progress):
                say(f"    plan: {plan_step.name} ({plan_step.describe()}): insert {p.inserts:,}, overwrite "
                    f"{p.updates:,}, delete {p.deletes:,}; kept by safety rules {p.protected:,}; "
                    f"left by policy {p.left:,}")
        confirmation = _confirmation(ctx, ex, step)
        if confirmation is None:
            result = ex.skip_current(ex.settings.operator, "skipped by the operator")
        else:
            result = ex.run_current(confirmation, progress)
        say(f"    → {result.status}: {result.summary}")


def _check_can_continue(ctx: Context, ex: Any) -> None:
    """A resumed run is checked before any custodian is asked for a share; if it cannot go on, it stays
    paused and the error names the two ways forward, as commands to paste."""
    from enigm_recover.cli.program import command

    try:
        ex.check_can_continue(progress_for(ctx.args))
    except EnigmError as exc:
        ex.pause(f"the resume check failed: {exc.message}")
        name, ceremony = ex.runbook.name, ex.ceremony
        ways = (f"choose another snapshot: `{command('run', name, '--resume', '--run', ceremony, '--another-snapshot')}`"
                f"; or abort the paused run: `{command('run', name, '--run', ceremony, '--abort', 'REASON')}`")
        exc.message = f"run {ceremony} cannot continue: {exc.message}"
        exc.args = (exc.message,)
        exc.hint = f"{exc.hint}; then resume again, or {ways}" if exc.hint else ways
        raise exc from None


def cmd_run(ctx: Context) -> int:
    from enigm_recover.runbook.executor import RunbookExecutor, RunSettings
    import getpass

    from enigm_recover.runbook.loader import find_runbook

    args = ctx.args
    if args.another_snapshot and not args.resume:
        raise UsageError("--another-snapshot goes with --resume", "add --resume (and --run CEREMONY for an older run)")
    runbook = find_runbook(args.runbook, runbook_folders(ctx))
    operator = args.operator or getpass.getuser()
    settings = RunSettings(source="", target="", allowed_signers=Path(), state_dir=ctx.locations.state_dir,
                           cache_dir=ctx.locations.cache_dir, operator=operator, ssh=ctx.ssh_settings(),
                           signer=ctx.audit_signer(), batch_size=args.batch_size, environment=args.environment,
                           target_environment=ctx.target_environment(),
                           allow_environment_mismatch=args.allow_environment_mismatch)
    if args.abort:  # any paused run, even one whose runbook changed since
        from enigm_recover.runbook.runs import abort_run, find_run, list_runs

        if args.run:
            run = find_run(ctx.locations.state_dir, args.run)
        else:
            runs = [r for r in list_runs(ctx.locations.state_dir) if r.runbook == runbook.name]
            if not runs:
                raise RunStateError(f"there is no paused or interrupted run of runbook {runbook.name}",
                                    "see `enigm-recover runs list`")
            run = runs[0]
        folder = abort_run(run, args.abort, operator, settings.signer)
        print(f"run {run.ceremony} aborted; report {folder / 'report.md'}")
        return 0
    if args.resume:
        settings.target = args.target or ""  # the run's own target again, with its password: kept in memory only
        ex = RunbookExecutor.resume(runbook, settings, args.run, strict_target=bool(args.target))
        if args.another_snapshot:
            ex.choose_another_snapshot()
        _check_can_continue(ctx, ex)
    else:
        settings.source = ctx.required(args.source, "source", "--source")
        settings.target = ctx.required(args.target, "target", "--target")
        settings.allowed_signers = Path(ctx.required(args.allowed_signers, "allowed_signers", "--allowed-signers"))
        ex = RunbookExecutor.start(runbook, settings)
    if not args.json:
        print(f"runbook {runbook.name} — {runbook.title}")
        print(f"ceremony {ex.ceremony}{' (resumed)' if args.resume else ''}; operator {operator}; "
              f"source {ex.settings.source}; target {safe_url(ex.settings.target)}")
    try:
        _walk(ctx, ex)
    except _Quit:
        folder = ex.pause("the operator quit")
        return _summary(ctx, ex, folder, paused=True)
    except EnigmError as exc:
        ex.pause(exc.message)
        print(f"run {ex.ceremony} paused at step {ex.current.id if ex.current else '-'}; fix the cause, then "
              f"resume with `enigm-recover run {runbook.name} --resume`", file=sys.stderr)
        raise
    except KeyboardInterrupt:
        ex.pause("interrupted by the operator")
        raise
    finally:
        ex.close()
    return _summary(ctx, ex, ex.folder, paused=False)


def _summary(ctx: Context, ex: Any, folder: Path, *, paused: bool) -> int:
    results = ex.results
    if ctx.args.json:
        emit_json({"ceremony": ex.ceremony, "runbook": ex.runbook.name, "status": ex.status,
                   "next_step": ex.current.id if ex.current else None,
                   "steps": [{"step": r.step, "action": r.action, "status": r.status, "summary": r.summary,
                              "counts": r.counts, "confirmed_by": r.confirmed_by} for r in results],
                   "report": str(folder / "report.md"), "audit_log": str(folder / "audit.jsonl"),
                   "audit_head": ex.recovery.audit.head})
    else:
        print()
        if paused:
            print(f"paused before step {ex.current.id}; resume with `enigm-recover run {ex.runbook.name} --resume`")
        print(f"run {ex.ceremony}: {ex.status}")
        print(f"report {folder / 'report.md'}; audit log {folder / 'audit.jsonl'}")
        print(audit_head_line(ex.recovery.audit))
    failed = [r.step for r in results if r.status is StepStatus.NOT_VERIFIED]
    if failed:
        raise RestoreNotVerified(f"step(s) {', '.join(failed)} did not verify", "read the report, then investigate")
    return 0
