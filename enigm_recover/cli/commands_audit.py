"""The audit log: check that it is intact."""

from __future__ import annotations

from pathlib import Path

from enigm_recover.cli.context import Context
from enigm_recover.cli.output import emit_json
from enigm_recover.errors import AuditLogTampered


def cmd_audit_verify(ctx: Context) -> int:
    from enigm_recover.recovery.audit import verify_log
    from enigm_recover.snapshot.signature import load_allowed_signers

    args = ctx.args
    allowed = load_allowed_signers(Path(args.allowed_signers)) if args.allowed_signers else None
    verdict = verify_log(Path(args.file), allowed)
    if args.json:
        emit_json({"file": args.file, "intact": verdict.intact, "entries": verdict.entries, "head": verdict.head,
                   "problem": verdict.problem, "signature": verdict.signature})
    elif verdict.intact:
        print(f"{args.file}: intact, {verdict.entries} entries, head {verdict.head} "
              f"(head signature: {verdict.signature})")
    if not verdict.intact:
        if args.json:
            return AuditLogTampered.exit_code
        raise AuditLogTampered(f"{args.file}: {verdict.problem}")
    return 0
