"""Commands that seal, list, verify and unseal snapshots."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from enigm_recover.cli.context import Context, ask_hidden, open_pipeline, open_recovery, share_source
from enigm_recover.cli.output import audit_head_line, check_mark, emit_json, print_listing, progress_for
from enigm_recover.errors import InputFileError, OutputExistsError, UsageError


def cmd_seal(ctx: Context) -> int:
    from enigm_recover.snapshot.seal import read_sealing_recipient, seal
    from enigm_recover.sources.local import LocalFolderSource
    from enigm_recover.snapshot.signature import load_signing_key
    from enigm_recover.state.stores import open_store

    args = ctx.args
    recipient = read_sealing_recipient(Path(ctx.required(args.recipient, "recipient", "--recipient")))
    key = load_signing_key(Path(args.sign_key), ask_hidden)
    producer = args.producer or (key.get_comment() or "")
    if not producer:
        raise UsageError("the signing key has no comment to name the producer", "pass --producer PRINCIPAL")
    out = Path(args.out)
    if not out.is_dir():
        raise InputFileError(f"output folder {out} does not exist", "create it first")
    with open_store(ctx.required(args.from_url, "target", "--from")) as store:
        manifest = seal(store, recipient=recipient, signing_key=key, environment=args.environment,
                        producer=producer, out_dir=out, existing=LocalFolderSource(out).list(),
                        progress=progress_for(args))
    if args.json:
        emit_json({"id": manifest.id, "counts": manifest.counts, "payload_size": manifest.payload_size,
                   "payload_sha256": manifest.payload_sha256, "previous_id": manifest.previous_id})
    else:
        counts = ", ".join(f"{n:,} {k}" for k, n in manifest.counts.items())
        print(f"sealed {manifest.id}: {counts}; payload {manifest.payload_size:,} bytes")
    return 0


def cmd_snapshots_list(ctx: Context) -> int:
    from enigm_recover.quorum.recovery_key import recipient_fingerprint
    from enigm_recover.snapshot.listing import latest_verdict, summarize
    from enigm_recover.snapshot.seal import read_recipient_file
    from enigm_recover.snapshot.signature import load_allowed_signers
    from enigm_recover.snapshot.source import transport_of

    args = ctx.args
    signers_path = ctx.setting(args.allowed_signers, "allowed_signers")
    allowed = load_allowed_signers(Path(signers_path)) if signers_path else None
    recipient_path = ctx.setting(args.recipient, "recipient")
    fingerprint = recipient_fingerprint(read_recipient_file(Path(recipient_path))) if recipient_path else None
    with ctx.open_source() as source:
        listing = source.list()
        description = source.description
        transport = transport_of(source)
    summaries = summarize(listing, allowed, fingerprint, args.environment)
    latest = latest_verdict(listing, allowed, args.environment)
    if args.json:
        now = datetime.now(timezone.utc)
        emit_json({"source": description, "snapshots": [s.as_dict(now) for s in summaries],
                   "rejected": listing.rejected, "refused": [r.__dict__ for r in listing.refused],
                   "latest": latest.as_dict(), "transport": transport.as_dict() if transport else None})
        return 0
    print(f"source {description}")
    if transport is not None:
        print(f"transport {transport.describe()}")
    print_listing(summaries, allowed is not None)
    print(latest.describe())
    for reason in listing.rejected:
        print(f"refused: {reason}", file=sys.stderr)
    return 0


def verify_chosen(ctx: Context, *, hash_payload: bool = True) -> tuple[Any, Any, Any]:
    """Verify the chosen snapshot, fetching its payload into the cache if the source is remote; also how the
    source was reached (None for a local folder)."""
    from enigm_recover.snapshot.source import transport_of

    with open_pipeline(ctx, None) as pipeline:
        report, verified = pipeline.verify(ctx.args.id, progress_for(ctx.args), hash_payload=hash_payload,
                                           environment=ctx.snapshot_environment(ctx.args.id))
        return report, verified, transport_of(pipeline.source)


def cmd_verify(ctx: Context) -> int:
    report, _verified, transport = verify_chosen(ctx)
    if ctx.args.json:
        emit_json({**report.as_dict(), "transport": transport.as_dict() if transport else None})
    else:
        if transport is not None:
            print(f"transport {transport.describe()}")
        for check in report.checks:
            print(f"{check_mark(check.ok)}  {check.name}: {check.detail}")
        print(f"snapshot {report.snapshot_id} is {'verified' if report.ok else 'NOT verified'}")
    if report.error:
        if ctx.args.json:
            return report.error.exit_code
        raise report.error
    return 0


def cmd_unseal(ctx: Context) -> int:
    from enigm_recover.snapshot.unseal import unseal_to_file

    args = ctx.args
    out = Path(args.out)
    if out.exists() and not args.force:
        raise OutputExistsError(f"{out} already exists", "choose another --out or pass --force")
    with open_recovery(ctx, "unseal") as recovery, open_pipeline(ctx, recovery) as pipeline:
        verified, identity = open_sealed(ctx, pipeline)
        counts = unseal_to_file(verified, identity, out, overwrite=args.force, progress=progress_for(args))
        recovery.record("unseal", step="unseal", inputs={"out": str(out)}, counts=counts)
        folder = recovery.close("completed")
    if args.json:
        emit_json({"snapshot": verified.manifest.id, "out": str(out), "counts": counts,
                   "recovery": recovery_facts(recovery)})
    else:
        shown = ", ".join(f"{n:,} {k}" for k, n in counts.items())
        print(f"unsealed {verified.manifest.id} to {out} ({shown}); the file holds decrypted records: "
              "keep it on protected storage and delete it when done")
        print(f"report {folder / 'report.md'}; audit log {folder / 'audit.jsonl'}")
        print(audit_head_line(recovery.audit))
    return 0


def recovery_facts(recovery: Any) -> dict[str, Any]:
    return {"ceremony": recovery.ceremony, "report": str(recovery.folder / "report.md"),
            "audit_log": str(recovery.folder / "audit.jsonl"), "audit_head": recovery.audit.head}


def open_sealed(ctx: Context, pipeline: Any, before_shares: Any = None) -> tuple[Any, Any]:
    """Verify the snapshot (its SHA-256 is checked in the decryption pass) and combine the custodians' shares;
    ``before_shares(manifest)`` may refuse the verified snapshot before any custodian is asked. A pipeline
    that may write holds the target's restore lock before the first share is asked for."""
    verified = pipeline.require_verified(ctx.args.id, progress_for(ctx.args),
                                         environment=ctx.snapshot_environment(ctx.args.id))
    if before_shares is not None:
        before_shares(verified.manifest)
    return verified, pipeline.gather(share_source(ctx))
