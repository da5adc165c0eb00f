"""Opening the guided recovery app: `enigm-recover app`, a bare `enigm-recover` with a source, and the drill.

Textual and the app are imported only here, when the app opens, so the
headless commands never pay for them.
"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Any

from enigm_recover.cli.context import Context
from enigm_recover.errors import UsageError


def _signer_factory(audit_key: str | None) -> Any:
    """Builds the audit head's signer in the app's worker, asking a key passphrase in a hidden dialog."""
    def build(ask_passphrase: Any) -> Any:
        from enigm_recover.snapshot.signature import audit_signer

        return audit_signer(Path(audit_key) if audit_key else None, ask_passphrase)
    return build


def app_options(ctx: Context, *, source: str | None, target: str | None, allowed_signers: str | None,
                runbook: str | None, operator: str | None, resume: bool = False) -> Any:
    """The app's options from flags, the environment and the config file (as every command resolves them)."""
    from enigm_recover import config
    from enigm_recover.app.options import AppOptions

    args = ctx.args
    folders = ctx.own_runbook_folders()  # the loader adds the built-in ones, in a worker: it is heavy
    signers = ctx.setting(allowed_signers, "allowed_signers")
    recipient = ctx.setting(getattr(args, "recipient", None), "recipient")
    ssh_config = ctx.setting(getattr(args, "ssh_config", None), "ssh_config")
    known_hosts = ctx.setting(getattr(args, "known_hosts", None), "known_hosts")
    return AppOptions(
        source=ctx.setting(source, "source"), target=ctx.setting(target, "target"),
        allowed_signers=Path(signers) if signers else None, state_dir=ctx.locations.state_dir,
        cache_dir=ctx.locations.cache_dir, operator=operator or getpass.getuser(), runbook=runbook,
        runbook_folders=folders, ssh_config=[Path(ssh_config)] if ssh_config else None,
        known_hosts=Path(known_hosts) if known_hosts else None,
        identities=[Path(p) for p in (getattr(args, "identity", None) or [])],
        accept_host_key=getattr(args, "accept_new_host_key", None), recipient=Path(recipient) if recipient else None,
        require_post_quantum_kex=config.require_post_quantum_kex(ctx.setting(getattr(args, "ssh_kex", None), "ssh_kex")),
        signer=_signer_factory(getattr(args, "audit_key", None)), resume=resume,
        target_environment=config.target_environment(target, None, ctx.config), ceremony_place=ctx.ceremony_place(),
        readiness_policy=_readiness_policy(ctx))


def _readiness_policy(ctx: Context) -> Any:
    """The readiness view's policy: the defaults of `readiness`, with the config file's [retention] table."""
    from enigm_recover.cli.commands_retention import retention_policy
    from enigm_recover.readiness.policy import ReadinessPolicy

    retention = retention_policy(ctx)
    return ReadinessPolicy(retention=None if retention.empty else retention)


def launch(options: Any) -> int:
    """Open the app in this terminal (a real one: the app is interactive)."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("the app needs a terminal", "run it in a terminal, or walk a runbook headlessly with "
                                                     "`enigm-recover run RUNBOOK`")
    from enigm_recover.app import run_app

    return run_app(options)


SLOW_BATCH, SLOW_PACE = 2, 1.0  # drill --slow-restore: two records per batch, a second after each


def open_drill(ctx: Context, folder: Path, runbook: str = "tabletop-drill", operator: str | None = None, *,
               resume: bool = False) -> int:
    """Serve a drill over the in-process SFTP server and open the app on it (``resume``: on its paused run)."""
    from enigm_recover.app.options import drill_options
    from enigm_recover.drill.serve import serve_drill

    server, doc = serve_drill(folder)
    try:
        options = drill_options(doc, state_dir=ctx.locations.state_dir, cache_dir=ctx.locations.cache_dir,
                                operator=operator or getpass.getuser(), runbook=runbook, resume=resume)
        if getattr(ctx.args, "slow_restore", False):
            options.batch_size, options.restore_pace = SLOW_BATCH, SLOW_PACE
        return launch(options)
    finally:
        server.stop()


def cmd_app(ctx: Context) -> int:
    args = ctx.args
    if args.drill:
        return open_drill(ctx, Path(args.drill), args.runbook or "tabletop-drill", args.operator)
    return launch(app_options(ctx, source=args.source, target=args.target, allowed_signers=args.allowed_signers,
                              runbook=args.runbook, operator=args.operator, resume=args.resume))


def cmd_default(ctx: Context) -> int:
    """No command: open the app when a source and target are given or configured; otherwise the help."""
    args = ctx.args
    given = any((args.app_source, args.app_target, args.app_runbook))
    configured = ctx.setting(None, "source") and ctx.setting(None, "target")
    if not (given or configured):
        from enigm_recover.cli.parser import build_parser

        build_parser().print_help()
        return 0
    return launch(app_options(ctx, source=args.app_source, target=args.app_target,
                              allowed_signers=args.app_allowed_signers, runbook=args.app_runbook,
                              operator=args.app_operator))
