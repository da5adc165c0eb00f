"""The audit log: check that it is intact."""

from __future__ import annotations

from pathlib import Path

from enigm_recover.cli.context import Context
from enigm_recover.cli.output import emit_json
from enigm_recover.errors import AuditHeadMissing, AuditLogTampered, UsageError


def _recorded_head(args) -> tuple[str | None, int | None]:  # type: ignore[no-untyped-def]
    from enigm_recover.recovery.audit import normalize_head

    if args.head is None:
        if args.entries is not None:
            raise UsageError("--entries goes with --head (the head and its entry count, as written down)")
        return None, None
    head = normalize_head(args.head)
    if head is None:
        raise UsageError(f"--head {args.head!r} is not a SHA-256 hash (64 hex digits)")
    if args.entries is None:
        return head, None
    if not args.entries.isdigit() or int(args.entries) < 1 or len(args.entries) > 12:
        raise UsageError(f"--entries {args.entries!r} is not a whole number of entries")
    return head, int(args.entries)


def cmd_audit_verify(ctx: Context) -> int:
    from enigm_recover.recovery.audit import verify_log
    from enigm_recover.snapshot.signature import load_allowed_signers

    args = ctx.args
    head, entries = _recorded_head(args)
    allowed = load_allowed_signers(Path(args.allowed_signers)) if args.allowed_signers else None
    verdict = verify_log(Path(args.file), allowed, head=head, entries=entries)
    failure = AuditHeadMissing if verdict.head_missing else AuditLogTampered
    if args.json:
        emit_json({"file": args.file, "intact": verdict.intact, "entries": verdict.entries, "head": verdict.head,
                   "problem": verdict.problem, "signature": verdict.signature,
                   "checked_against": "recorded head" if head is not None else "head file"})
    elif verdict.intact:
        against = " (the head written down)" if head is not None else ""
        print(f"{args.file}: intact, {verdict.entries} entries, head {verdict.head}{against} "
              f"(head signature: {verdict.signature})")
    if not verdict.intact:
        if args.json:
            return failure.exit_code
        raise failure(f"{args.file}: {verdict.problem}")
    return 0
