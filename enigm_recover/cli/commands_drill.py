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
    from enigm_recover.snapshot.source import transport_of
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
            transport = transport_of(source)
            if transport is not None:
                print(f"  {transport.describe()}")
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
    from enigm_recover.cli.program import program

    print(f"  try       {program()} snapshots list {ssh['source']} --ssh-config {ssh['config']} "
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


def _paused_drill_runs(ctx: Context, folder: Path) -> list:
    """The paused runs that restore into this drill's live target."""
    from enigm_recover.drill.scenario import DRILL_FILE
    from enigm_recover.runbook.runs import runs_on_target

    if not (folder / DRILL_FILE).exists():
        return []
    return runs_on_target(ctx.locations.state_dir, f"sqlite:///{(folder / 'live.db').resolve()}")


def _ask_resume_or_fresh(paused: list) -> str:
    """At a terminal: resume the paused run or start afresh; elsewhere a refusal naming both flags."""
    run = paused[0]
    what = f"run {run.ceremony} of {run.runbook}, paused before step {run.position + 1}"
    if not sys.stdin.isatty():
        raise UsageError(f"this drill has a paused {what}; a new drill would replace it",
                         "pass --resume to continue it, or --fresh to abort it and make a new drill")
    print(f"This drill has a paused {what}.", file=sys.stderr)
    while True:
        try:
            answer = input("[r]esume it / start a [f]resh drill (aborts it) / [q]uit: ").strip().lower()
        except EOFError:
            answer = "q"
        if answer in ("r", "resume"):
            return "resume"
        if answer in ("f", "fresh"):
            return "fresh"
        if answer in ("q", "quit"):
            raise UsageError("nothing changed: the drill and its paused run are as they were",
                             "run again with --resume or --fresh")


def _resume_drill(ctx: Context, folder: Path, paused: list) -> int:
    """Continue the drill's paused run: in the app at a terminal; otherwise say how."""
    from enigm_recover.cli.program import command

    if not paused:
        raise UsageError(f"the drill in {folder} has no paused run", "start one: run the drill without --resume")
    if not ctx.args.no_tui and sys.stdin.isatty() and sys.stdout.isatty():
        from enigm_recover.cli.commands_app import open_drill

        return open_drill(ctx, folder, paused[0].runbook, resume=True)
    run = paused[0]
    print(f"paused run {run.ceremony} ({run.runbook}) before step {run.position + 1}; the drill is unchanged")
    print(f"  continue it in the app:  {command('drill', '--resume', str(folder))}")
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
    if args.resume and args.fresh:
        raise UsageError("--resume and --fresh exclude each other", "choose one")
    paused = _paused_drill_runs(ctx, folder) if replace or args.resume else []
    if args.resume:
        return _resume_drill(ctx, folder, paused)
    if paused and not args.fresh:
        choice = _ask_resume_or_fresh(paused)
        if choice == "resume":
            return _resume_drill(ctx, folder, paused)
    if paused:  # a fresh drill: the paused runs end for good, saying why
        import getpass

        from enigm_recover.runbook.runs import abort_run

        for run in paused:
            abort_run(run, "a fresh drill replaced the one this run restored", args.operator or getpass.getuser())
            if not args.json:
                print(f"aborted paused run {run.ceremony} ({run.runbook}): a fresh drill replaces it")
    from enigm_recover.quorum.recipients import RecipientKind

    spec = DrillSpec(args.identities, args.devices_per_identity, args.seed, args.snapshots, at,
                     RecipientKind(getattr(args, "kind", None) or "hybrid"))
    if args.dir is None:
        from enigm_recover.private import make_private_dir

        make_private_dir(ctx.locations.state_dir, "state folder")  # the drill goes inside: private, checked
    started = time.monotonic()
    doc = make_drill(folder, spec, replace=replace, progress=progress_for(args))
    if args.json:
        emit_json(doc)
        return 0
    from enigm_recover.cli.program import program

    print(describe(doc, program()))
    print(f"(made in {time.monotonic() - started:.1f} s; drill file {folder / 'drill.toml'})")
    if not args.no_tui:
        if sys.stdin.isatty() and sys.stdout.isatty():  # a person at a terminal: walk it in the app
            from enigm_recover.cli.commands_app import open_drill

            return open_drill(ctx, folder)
        print()
        _drill_over_ssh(ctx, folder)
        print(f"\nServe it over SSH for the exercise with: {program()} drill --serve {folder}")
    return 0
