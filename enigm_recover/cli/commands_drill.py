"""The drill: make a tabletop exercise, and serve it over SSH."""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path

from enigm_recover.cli.context import Context, TerminalPrompter
from enigm_recover.cli.output import check_mark, emit_json, print_listing, progress_for
from enigm_recover.errors import UsageError


def _drill_over_ssh(ctx: Context, folder: Path) -> None:
    """Serve the drill over the in-process SFTP server and list and verify its newest snapshot through it."""
    from enigm_recover.drill.serve import serve_drill
    from enigm_recover.snapshot.catalog import resolve
    from enigm_recover.snapshot.listing import summarize
    from enigm_recover.snapshot.signature import load_allowed_signers
    from enigm_recover.snapshot.verify import verify_entry
    from enigm_recover.sources.open import open_source
    from enigm_recover.sources.ssh import SSHSettings

    server, doc = serve_drill(folder)
    try:
        settings = SSHSettings(config_files=[Path(doc["ssh"]["config"])], prompter=TerminalPrompter())
        allowed = load_allowed_signers(Path(doc["paths"]["allowed_signers"]))
        with open_source(doc["ssh"]["source"], settings, ctx.locations.cache_dir) as source:
            print(f"Over SSH ({doc['ssh']['source']}, host key pinned in {doc['ssh']['known_hosts']}):")
            listing = source.list()
            print_listing(summarize(listing, allowed, doc["recovery"]["fingerprint"]), True)
            report, _ = verify_entry(source, resolve(listing, "latest", allowed), allowed, progress_for(ctx.args))
        for check in report.checks:
            print(f"{check_mark(check.ok)}  {check.name}: {check.detail}")
        if report.error:
            raise report.error
    finally:
        server.stop()


def _serve_until_interrupted(folder: Path) -> int:
    import threading

    from enigm_recover.drill.serve import serve_drill

    server, doc = serve_drill(folder)
    ssh = doc["ssh"]
    print(f"serving {doc['paths']['snapshots']} read-only at {ssh['source']} (127.0.0.1:{ssh['port']})")
    print(f"  host key  {ssh['host_key']}")
    print(f"  try       enigm-recover snapshots list {ssh['source']} --ssh-config {ssh['config']} "
          f"--allowed-signers {doc['paths']['allowed_signers']}")
    print("press Ctrl-C to stop", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    print("stopped")
    return 0


def cmd_drill(ctx: Context) -> int:
    from enigm_recover.drill.scenario import DrillSpec, describe, make_drill

    args = ctx.args
    folder = Path(args.dir) if args.dir else ctx.locations.state_dir / "drill"
    if args.serve:
        return _serve_until_interrupted(folder)
    replace = args.replace or args.dir is None
    at = None
    if args.at:
        try:
            at = datetime.fromisoformat(args.at.replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(f"--at {args.at!r} is not an ISO time like 2026-11-27T12:00:00Z") from None
        if at.tzinfo is None:
            raise UsageError("--at needs a time zone, e.g. 2026-11-27T12:00:00Z")
    spec = DrillSpec(args.identities, args.devices_per_identity, args.seed, args.snapshots, at)
    if args.dir is None:
        from enigm_recover.private import make_private_dir

        make_private_dir(ctx.locations.state_dir, "state folder")  # the drill goes inside: private, checked
    started = time.monotonic()
    doc = make_drill(folder, spec, replace=replace, progress=progress_for(args))
    if args.json:
        emit_json(doc)
        return 0
    print(describe(doc))
    print(f"(made in {time.monotonic() - started:.1f} s; drill file {folder / 'drill.toml'})")
    if not args.no_tui:
        if sys.stdin.isatty() and sys.stdout.isatty():  # a person at a terminal: walk it in the app
            from enigm_recover.cli.commands_app import open_drill

            return open_drill(ctx, folder)
        print()
        _drill_over_ssh(ctx, folder)
        print(f"\nServe it over SSH for the exercise with: enigm-recover drill --serve {folder}")
    return 0
