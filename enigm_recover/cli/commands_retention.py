"""Commands that keep snapshots only as long as needed (`snapshots prune`) and review their scope
(`snapshots scope`)."""

from __future__ import annotations

import sys
from typing import Any

from enigm_recover.cli.context import Context, open_recovery
from enigm_recover.cli.output import emit_json, progress_for
from enigm_recover.errors import ScopeError, UsageError

KEEP_OPTIONS = ("keep_last", "keep_daily", "keep_weekly", "keep_monthly", "keep_within")


def retention_policy(ctx: Context) -> Any:
    """The policy: the config file's [retention] table, each rule overridden by its command-line option."""
    from enigm_recover.config import retention_rules
    from enigm_recover.readiness.policy import parse_duration
    from enigm_recover.snapshot.retention import RetentionPolicy

    def build(values: dict[str, Any], where: str) -> RetentionPolicy:
        rules: dict[str, Any] = {}
        for rule in KEEP_OPTIONS:
            value = values.get(rule)
            if value is None:
                continue
            option = f"--{rule.replace('_', '-')}" if where == "flag" else f"[retention] {rule}"
            if rule == "keep_within":
                rules[rule] = parse_duration(str(value), option)
            elif value < 1:
                raise UsageError(f"{option} must be at least 1", f"e.g. {option} 7")
            else:
                rules[rule] = value
        return RetentionPolicy(**rules)

    flags = {rule: getattr(ctx.args, rule, None) for rule in KEEP_OPTIONS}
    return build(retention_rules(ctx.config), "config").merged(build(flags, "flag"))


def cmd_snapshots_prune(ctx: Context) -> int:
    from enigm_recover.runbook.prune import apply_prune, plan_prune

    args = ctx.args
    policy = retention_policy(ctx)
    allowed = ctx.allowed_signers()
    with ctx.open_source() as source:
        plan = plan_prune(source, allowed, policy, environment=args.environment, state_dir=ctx.locations.state_dir,
                          progress=progress_for(args))
        removed: list[str] = []
        recovery = None
        if args.apply and (plan.to_remove or plan.unfinished):
            with open_recovery(ctx, "snapshots prune") as recovery:
                removed = apply_prune(source, plan, recovery)
                recovery.close("completed", f"removed {len(removed)} snapshot(s)")
    if args.json:
        emit_json({**plan.as_dict(), "applied": bool(args.apply), "removed": removed,
                   "audit_log": str(recovery.folder / "audit.jsonl") if recovery else None})
        return 0
    print(f"source {plan.source}; policy {policy.describe()}"
          + (f"; environment {plan.environment}" if plan.environment else ""))
    for d in plan.decisions:
        when = d.created_at.strftime("%Y-%m-%d %H:%M")
        if d.keep:
            print(f"  keep    {d.id}  {d.environment:<12} {when}  {'; '.join(d.reasons)}")
        else:
            print(f"  {'removed' if d.id in removed else 'remove '} {d.id}  {d.environment:<12} {when}  "
                  "kept by no rule")
    for snapshot_id, why in plan.left_alone:
        print(f"  leave   {snapshot_id}  {why}")
    for snapshot_id in plan.unfinished:
        print(f"  {'finished' if snapshot_id in removed else 'finish '} {snapshot_id}  removal an earlier prune "
              "began (hidden, not listed)")
    if not args.apply:
        print(f"would keep {len(plan.kept)} and remove {len(plan.to_remove)} snapshot(s); nothing was removed "
              "(add --apply to remove them)")
    else:
        print(f"kept {len(plan.kept)}, removed {len(removed)} snapshot(s)")
        if recovery is not None:
            print(f"audit log {recovery.folder / 'audit.jsonl'} (head {recovery.audit.head})")
    return 0


def cmd_snapshots_scope(ctx: Context) -> int:
    from enigm_recover.snapshot.catalog import resolve
    from enigm_recover.snapshot.scope_review import render_markdown, review_scope

    args = ctx.args
    if args.json and args.markdown:
        raise UsageError("--json and --markdown are alternatives", "choose one")
    threshold = _percent(args.threshold)
    allowed = ctx.allowed_signers()
    with ctx.open_source() as source:
        listing = source.list()
        description = source.description
    entries = listing.entries
    if args.ids:
        chosen = {resolve(listing, ref).id for ref in args.ids}
        entries = [e for e in entries if e.id in chosen]
    review = review_scope(entries, allowed, description, threshold=threshold)
    if args.json:
        emit_json(review.as_dict())
    elif args.markdown:
        sys.stdout.write(render_markdown(review))
    else:
        print(f"scope of {len(review.snapshots)} signed snapshot(s) in {description}")
        for s in review.snapshots:
            counts = ", ".join(f"{k} {v.count:,}" if v.count is not None else k for k, v in s.scope.items())
            print(f"  {s.id}  {s.environment:<12} {counts}")
        for c in review.changes:
            print(f"  change  {c.after} (after {c.before}): {c.detail}")
        for snapshot_id, why in review.skipped:
            print(f"  skipped {snapshot_id}: {why}")
        print(f"{len(review.changes)} change(s), {len(review.findings)} finding(s) outside the allow-list")
    if review.findings:
        error = ScopeError(f"{len(review.findings)} finding(s) outside the allow-list: {review.findings[0]}",
                           "a snapshot holds state the tool does not allow: find out why its producer sealed it")
        if args.json or args.markdown:
            print(f"enigm-recover: error: {error.one_line()}", file=sys.stderr)
            return error.exit_code
        raise error
    return 0


def _percent(text: str) -> float:
    from enigm_recover.readiness.policy import parse_percent

    return parse_percent(text, "--threshold")
