"""The dry run and the restore."""

from __future__ import annotations

import sys
from typing import Any

from enigm_recover.cli.commands_snapshots import open_sealed, recovery_facts
from enigm_recover.cli.context import Context, open_pipeline, open_recovery
from enigm_recover.cli.output import audit_head_line, emit_json, print_diff, progress_for
from enigm_recover.errors import UsageError


def cmd_diff(ctx: Context) -> int:
    from enigm_recover.state.model import kind_named

    args = ctx.args
    kinds = []
    for name in args.kind or []:
        try:
            kinds.append(kind_named(name).name)
        except KeyError as exc:
            raise UsageError(str(exc.args[0])) from None
    target = ctx.required(args.target, "target", "--target")
    with open_recovery(ctx, "diff") as recovery, open_pipeline(ctx, recovery, target=target) as pipeline:
        open_sealed(ctx, pipeline)
        result = pipeline.dry_run(kinds, progress_for(args))
        record_dry_run(recovery, result)
        folder = recovery.close("completed")
    if args.json:
        emit_json({**result.as_dict(limit=args.limit, stream=True), "recovery": recovery_facts(recovery)})
    else:
        print_diff(result, args.limit if args.limit is not None else 20)
        print(f"\nreport {folder / 'report.md'}")
    return 0


def record_dry_run(recovery: Any, result: Any) -> None:
    recovery.findings = dict(result.findings())
    recovery.record("dry-run", step="dry-run", inputs={"target": result.target}, counts=result.totals())


def _ask_step(step: Any, preview: Any) -> bool:
    if not sys.stdin.isatty():
        raise UsageError("restore asks before each step on a terminal", "pass --yes to run the plan unattended")
    answer = input(f"run step {step.name} ({step.describe()}): {preview.inserts:,} to insert, "
                   f"{preview.updates:,} to overwrite, {preview.deletes:,} to delete? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def cmd_restore(ctx: Context) -> int:
    from enigm_recover.errors import RestoreNotVerified
    from enigm_recover.recovery.apply import RestoreStepStatus
    from enigm_recover.recovery.environment import bind_environment
    from enigm_recover.recovery.plan import make_plan, preview, require_in_snapshot

    args = ctx.args
    plan = make_plan(args.policy or [], args.step or [])
    target = ctx.required(args.target, "target", "--target")
    with open_recovery(ctx, "restore") as recovery, \
            open_pipeline(ctx, recovery, target=target, writes=not args.dry_run) as pipeline:

        def before_shares(manifest: Any) -> None:
            require_in_snapshot(plan, manifest)
            bind_environment(recovery, manifest, pipeline.store().display, ctx.target_environment(),
                             args.allow_environment_mismatch)

        # The pipeline takes the restore lock before the first share is asked for.
        open_sealed(ctx, pipeline, before_shares)
        result = pipeline.dry_run(None, progress_for(args))
        record_dry_run(recovery, result)
        previews = {step.name: preview(step, result) for step in plan.steps}
        if not args.json:
            print_diff(result, 0)
            print("\nplan:")
            for step in plan.steps:
                p = previews[step.name]
                print(f"  {step.name:<11} {step.describe():<45} insert {p.inserts:,}, overwrite {p.updates:,}, "
                      f"delete {p.deletes:,}; kept by safety rules {p.protected:,}; left by policy {p.left:,}")
        if args.dry_run:
            recovery.close("completed", "dry run: nothing written")
            if args.json:
                emit_json({"dry_run": True, "diff": result.as_dict(limit=0), "plan": plan.as_dict(),
                           "previews": {k: v.__dict__ for k, v in previews.items()},
                           "recovery": recovery_facts(recovery)})
            return 0
        confirm = (lambda step: True) if args.yes else (lambda step: _ask_step(step, previews[step.name]))
        outcome = pipeline.restore(plan, resume=args.resume, confirm=confirm, batch_size=args.batch_size,
                                   progress=progress_for(args))
        for o in outcome.steps:
            recovery.record("restore-step", step=o.step, outcome=o.status,
                            counts={"inserted": o.inserted, "updated": o.updated, "deleted": o.deleted})
        incomplete = [o.step for o in outcome.steps if o.status is not RestoreStepStatus.VERIFIED]
        folder = recovery.close(outcome.status, f"not verified: {', '.join(incomplete)}" if incomplete else "")
    if args.json:
        emit_json({**outcome.as_dict(), "recovery": recovery_facts(recovery)})
    else:
        print(f"\nrestore {outcome.run_id}{' (resumed)' if outcome.resumed else ''}: {outcome.status}")
        for o in outcome.steps:
            detail = ""
            if o.verification:
                v = o.verification
                detail = (f"; {v.get('equal', 0):,} equal to the snapshot, {v.get('protected', 0):,} kept by safety "
                          f"rules, {v.get('changed_left', 0):,} changed and {v.get('extra_left', 0):,} extra left")
            print(f"  {o.step:<11} {o.status:<13} inserted {o.inserted:,}, overwritten {o.updated:,}, "
                  f"deleted {o.deleted:,}{detail}")
        print(f"report {folder / 'report.md'}; audit log {folder / 'audit.jsonl'}")
        print(audit_head_line(recovery.audit))
    failed = [o.step for o in outcome.steps if o.status is RestoreStepStatus.NOT_VERIFIED]
    if failed:
        raise RestoreNotVerified(f"the restore ran but step(s) {', '.join(failed)} did not verify")
    return 0
