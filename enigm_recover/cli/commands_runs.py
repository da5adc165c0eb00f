"""`runs`: the runbook runs kept in the state folder: list, abort, clean up."""

from __future__ import annotations

import getpass

from enigm_recover.cli.context import Context
from enigm_recover.cli.output import emit_json


def cmd_runs_list(ctx: Context) -> int:
    from enigm_recover.render import table
    from enigm_recover.runbook.runs import list_runs

    runs = list_runs(ctx.locations.state_dir, include_closed=ctx.args.all)
    if ctx.args.json:
        emit_json({"runs": [r.as_dict() for r in runs]})
        return 0
    if not runs:
        print("no paused or interrupted runs" if not ctx.args.all else "no runs")
        return 0
    print(table(["CEREMONY", "RUNBOOK", "STATUS", "NEXT STEP", "STARTED", "LAST ACTIVE"],
                [[r.ceremony, r.runbook, r.status, str(r.position + 1), r.started,
                  r.last_active.strftime("%Y-%m-%d %H:%M")] for r in runs]))
    return 0


def cmd_runs_abort(ctx: Context) -> int:
    from enigm_recover.runbook.runs import abort_run, find_run

    args = ctx.args
    run = find_run(ctx.locations.state_dir, args.ceremony)
    folder = abort_run(run, args.reason, args.operator or getpass.getuser(), ctx.audit_signer())
    if args.json:
        emit_json({"aborted": [run.ceremony], "report": str(folder / "report.md")})
    else:
        print(f"run {run.ceremony} ({run.runbook}) aborted; report {folder / 'report.md'}")
    return 0


def cmd_runs_clean(ctx: Context) -> int:
    from enigm_recover.runbook.runs import abort_run, idle_runs, parse_age

    args = ctx.args
    runs = idle_runs(ctx.locations.state_dir, parse_age(args.older_than))
    operator = args.operator or getpass.getuser()
    if not args.dry_run:
        signer = ctx.audit_signer()
        for run in runs:
            abort_run(run, args.reason or f"cleaned up: paused for more than {args.older_than}", operator, signer)
    if args.json:
        emit_json({"dry_run": args.dry_run, "aborted": [] if args.dry_run else [r.ceremony for r in runs],
                   "would_abort": [r.ceremony for r in runs] if args.dry_run else []})
        return 0
    verb = "would abort" if args.dry_run else "aborted"
    for run in runs:
        print(f"{verb} run {run.ceremony} ({run.runbook}), idle since {run.last_active:%Y-%m-%d %H:%M}")
    if not runs:
        print(f"no run has been idle for more than {args.older_than}")
    return 0
