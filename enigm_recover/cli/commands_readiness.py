"""Recovery readiness: the check a security team schedules and an auditor reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from enigm_recover.cli.commands_snapshots import recovery_facts
from enigm_recover.cli.context import Context, TerminalShares, open_recovery
from enigm_recover.cli.output import emit_json, progress_for
from enigm_recover.errors import InputFileError, NotReady, UsageError

MARKS = {True: "ok  ", False: "FAIL", None: "-   "}
SHOWN_PROBLEMS = 8


def cmd_readiness(ctx: Context) -> int:
    from enigm_recover.readiness.policy import ReadinessPolicy, parse_duration, parse_percent
    from enigm_recover.readiness.run import ReadinessRun, run_readiness
    from enigm_recover.sources.open import open_source

    args = ctx.args
    from enigm_recover.cli.commands_retention import retention_policy

    retention = retention_policy(ctx)
    if args.retention and retention.empty:
        raise UsageError("--retention needs a retention policy",
                         "add --keep-last/--keep-daily/--keep-weekly/--keep-monthly/--keep-within, or a [retention] "
                         "table in the config file")
    policy = ReadinessPolicy(parse_duration(args.max_age), parse_percent(args.max_drop), args.environment,
                             retention=None if retention.empty else retention,
                             max_quorum_age=(parse_duration(args.max_quorum_age, "--max-quorum-age")
                                             if args.max_quorum_age else None))
    if args.share_file and not args.test_restore:
        raise UsageError("--share-file is used only with --test-restore", "add --test-restore or leave the cards out")
    prometheus = Path(args.prometheus) if args.prometheus else None
    if prometheus is not None and not prometheus.parent.is_dir():
        raise InputFileError(f"folder {prometheus.parent} for --prometheus does not exist",
                             "create it first (node_exporter's --collector.textfile.directory)")
    spec = ctx.required(args.source, "source", "SOURCE")
    run = ReadinessRun(spec, lambda cache: open_source(spec, ctx.ssh_settings(), cache), ctx.allowed_signers,
                       lambda: Path(ctx.required(args.recipient, "recipient", "--recipient")),
                       ctx.locations.state_dir, ctx.locations.cache_dir, policy, prometheus)
    outcome = run_readiness(run, lambda: open_recovery(ctx, "readiness"), progress=progress_for(args),
                            shares=TerminalShares(ctx) if args.test_restore else None)
    report, files, recovery = outcome.report, outcome.files, outcome.recovery
    if args.json:
        emit_json({**report.as_dict(), "report": files, "prometheus": str(prometheus) if prometheus else None,
                   "recovery": recovery_facts(recovery)})
    else:
        print_readiness(report)
        print(f"report {files['markdown']} (readiness.toml SHA-256 {files['sha256']}, in the audit log)")
        print(f"audit log {recovery.folder / 'audit.jsonl'} (head {recovery.audit.head})")
        if prometheus is not None:
            print(f"prometheus textfile {prometheus}")
    if report.source_error is not None:
        raise report.source_error
    if not report.ready:
        raise NotReady(f"not ready: failing checks: {', '.join(report.failing)}")
    return 0


def print_readiness(report: Any) -> None:
    policy = report.policy.as_dict()
    print(f"readiness of {report.source} at {report.as_dict()['checked_at']} (newest usable snapshot at most "
          f"{policy['max_age']} old; drops of at most {report.policy.max_drop:g}%)")
    width = max(len(c.name) for c in report.checks)
    for check in report.checks:
        print(f"  {MARKS[check.ok]}  {check.name:<{width}}  {check.summary}")
        if check.ok is False:
            for line in [p for p in check.problems if p != check.summary][:SHOWN_PROBLEMS]:
                print(f"  {'':4}  {'':<{width}}    {line}")
            if len(check.problems) > SHOWN_PROBLEMS:
                print(f"  {'':4}  {'':<{width}}    ... and {len(check.problems) - SHOWN_PROBLEMS} more (see the report)")
    print("READY" if report.ready else f"NOT READY: failing checks: {', '.join(report.failing)}")
