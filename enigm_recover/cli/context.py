"""What every command needs: settings, locations, the terminal's prompts and the custodians' shares."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from contextlib import AbstractContextManager
from typing import Any

from enigm_recover.errors import ShareError, UsageError


def ask_hidden(prompt: str) -> str:
    if not sys.stdin.isatty():
        raise UsageError(f"{prompt.strip()} needs a terminal", "give it with a --*-file option instead")
    return getpass.getpass(prompt)


class TerminalPrompter:
    """Answers SSH prompts (key passphrases, one-time codes) on the terminal, never echoed."""

    def ask_secret(self, prompt: str) -> str:
        from enigm_recover.errors import AuthenticationFailed

        try:
            return getpass.getpass(prompt, stream=sys.stderr)
        except (EOFError, OSError):
            raise AuthenticationFailed(f"the SSH connection asked for input ({prompt.strip()}) "
                                       "but there is no terminal to ask on") from None

    def notice(self, message: str) -> None:
        print(f"enigm-recover: {message}", file=sys.stderr)


# -- shared option resolution --------------------------------------------------


class Context:
    """What every command may need: locations, the config file, and resolved settings."""

    def __init__(self, args: argparse.Namespace) -> None:
        from enigm_recover import config

        self.args = args
        self.locations = config.locations(args.config, args.state_dir, args.cache_dir)
        self.config = config.load_config(self.locations.config_file)

    def setting(self, flag: str | None, key: str) -> str | None:
        from enigm_recover import config

        return config.setting(flag, key, self.config)

    def required(self, flag: str | None, key: str, option: str) -> str:
        value = self.setting(flag, key)
        if not value:
            from enigm_recover.config import SETTINGS

            raise UsageError(f"{option} is required",
                             f"pass {option}, set {SETTINGS[key][0]}, or `enigm-recover config set {key} VALUE`")
        return value

    def target_environment(self) -> str | None:
        """The configured environment of the command's target (see config.target_environment)."""
        from enigm_recover import config

        if not hasattr(self.args, "target_environment"):
            return None
        return config.target_environment(self.args.target, self.args.target_environment, self.config)

    def snapshot_environment(self, ref: str) -> str | None:
        """The environment ``ref`` resolves in: --environment; for `latest`, else the target's environment (an id
        named explicitly is then resolved as named, and a mismatch refused as such)."""
        return getattr(self.args, "environment", None) or (self.target_environment() if ref == "latest" else None)

    def ssh_settings(self) -> Any:
        from enigm_recover.config import require_post_quantum_kex
        from enigm_recover.sources.ssh import SSHSettings

        args = self.args
        config = self.setting(getattr(args, "ssh_config", None), "ssh_config")
        known_hosts = self.setting(getattr(args, "known_hosts", None), "known_hosts")
        return SSHSettings(
            config_files=[Path(config)] if config else None,
            known_hosts=Path(known_hosts) if known_hosts else None,
            identities=[Path(p) for p in (getattr(args, "identity", None) or [])],
            accept_host_key=getattr(args, "accept_new_host_key", None),
            prompter=TerminalPrompter(),
            require_post_quantum_kex=require_post_quantum_kex(self.setting(getattr(args, "ssh_kex", None), "ssh_kex")),
        )

    def open_source(self) -> Any:
        from enigm_recover.sources.open import needs_ssh, open_source

        spec = self.required(self.args.source, "source", "SOURCE")
        return open_source(spec, self.ssh_settings() if needs_ssh(spec) else None, self.locations.cache_dir)

    def own_runbook_folders(self) -> list[Path]:
        """The operator's runbook folders: each --runbooks DIR, then <config dir>/runbooks (the built-in
        ones are added by the runbook loader)."""
        from enigm_recover.private import refuse_if_others_can_write

        given = [Path(p) for p in (getattr(self.args, "runbooks", None) or [])]
        own = self.locations.config_file.parent / "runbooks"
        refuse_if_others_can_write(own, "runbooks folder")  # a runbook planted there would shadow a built-in
        return [*given, own]

    def audit_signer(self) -> Any:
        import os

        key = getattr(self.args, "audit_key", None)
        if key is None and not os.environ.get("SSH_AUTH_SOCK"):
            return None  # no key and no agent: nothing signs (and asyncssh need not load)
        from enigm_recover.snapshot.signature import audit_signer

        return audit_signer(Path(key) if key else None, ask_hidden)

    def ceremony_place(self) -> Any:
        """Where ceremonies open and the custodians' group: --ceremony-dir, the environment, the config file."""
        from enigm_recover.ceremony.folder import DEFAULT_DIR, DEFAULT_GROUP, CeremonyPlace

        folder = self.setting(getattr(self.args, "ceremony_dir", None), "ceremony_dir")
        return CeremonyPlace(Path(folder) if folder else DEFAULT_DIR,
                             self.setting(None, "custodian_group") or DEFAULT_GROUP)

    def allowed_signers(self) -> Any:
        from enigm_recover.snapshot.signature import load_allowed_signers

        return load_allowed_signers(Path(self.required(self.args.allowed_signers, "allowed_signers",
                                                       "--allowed-signers")))


def read_passphrase(args: argparse.Namespace, *, confirm: bool = False) -> str:
    if getattr(args, "passphrase_file", None):
        from enigm_recover.bounded import PASSPHRASE_FILE, read_text_bounded

        text = read_text_bounded(Path(args.passphrase_file), PASSPHRASE_FILE, "passphrase file")
        assert text is not None
        return text.rstrip("\r\n")
    if getattr(args, "ask_passphrase", False):
        first = ask_hidden("SLIP-39 passphrase: ")
        if confirm and ask_hidden("Repeat the passphrase: ") != first:
            raise UsageError("the two passphrases differ", "run the command again")
        return first
    return ""


# -- commands ------------------------------------------------------------------


class TerminalShares:
    """The terminal's share source for the pipeline: share files, stdin lines, or hidden prompts."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def enter(self, quorum: Any) -> None:
        enter_shares(self.ctx, quorum)

    def passphrase(self) -> str:
        return read_passphrase(self.ctx.args)


def share_source(ctx: Context, shares_per_os_user: int = 1) -> Any:
    """The pipeline's share source for this command: custodians joining over the ceremony socket
    (--remote-shares), or the terminal's (share files, stdin lines, hidden prompts)."""
    sealed_files = [Path(f) for f in getattr(ctx.args, "sealed_share", None) or []]
    if not (getattr(ctx.args, "remote_shares", False) or sealed_files):
        return TerminalShares(ctx)
    if getattr(ctx.args, "share_file", None):
        raise UsageError("--remote-shares (or --sealed-share) and --share-file both say where the shares come from",
                         "choose one")
    from functools import partial

    from enigm_recover.ceremony.source import RemoteShares
    from enigm_recover.cli.commands_ceremony import print_join_event, wait_taking_sealed_shares

    return RemoteShares(ctx.ceremony_place(), lambda: read_passphrase(ctx.args),
                        (lambda e: None) if getattr(ctx.args, "json", False) else print_join_event,
                        shares_per_os_user, partial(wait_taking_sealed_shares, files=sealed_files))


def gather_shares(ctx: Context, expected_fingerprint: str, recovery: Any) -> Any:
    """The recovery identity from a new quorum of ``recovery``, for the commands that combine the key
    without a snapshot (``keys rotate``, ``keys rewrap``): the same share source as the pipeline's."""
    from enigm_recover.recovery.quorum_session import QuorumSession

    quorum = QuorumSession(recovery, expected_fingerprint)
    shares = TerminalShares(ctx)
    shares.enter(quorum)
    return quorum.combine(shares.passphrase())


def open_pipeline(ctx: Context, recovery: Any, *, target: str | None = None, writes: bool = False) -> Any:
    """The recovery pipeline over the command's SOURCE (opened when first needed, once)."""
    from enigm_recover.recovery.pipeline import RecoveryPipeline, source_opener
    from enigm_recover.sources.open import needs_ssh

    spec = ctx.required(ctx.args.source, "source", "SOURCE")
    ssh = ctx.ssh_settings() if needs_ssh(spec) else None
    return RecoveryPipeline(recovery, open_source=source_opener(spec, ssh, ctx.locations.cache_dir),
                            source_name=ctx.args.source, allowed_signers=ctx.allowed_signers(), target=target,
                            writes=writes)


def enter_shares(ctx: Context, quorum: Any) -> None:
    """Feed shares into a quorum until it is complete: from share files, stdin lines, or the terminal
    (where each custodian gives a name and may bind the share to the ceremony by typing its id back)."""
    from enigm_recover.quorum.cards import parse_share_text, read_share_file
    from enigm_recover.cli.share_words import enter_share_words
    from enigm_recover.inert import for_terminal
    from enigm_recover.quorum.names import ceremony_id_problem, custodian_name_problem

    args = ctx.args
    recovery = quorum.recovery
    say = (lambda m: None) if args.json else (lambda m: print(m, file=sys.stderr))
    say(f"ceremony {recovery.ceremony}: recovery key {quorum.entry.expected_fingerprint}")
    if args.share_file:
        for path in args.share_file:
            share = read_share_file(Path(path))
            try:
                quorum.add(share.words, share.custodian, kind=share.kind)
            except ShareError as exc:
                raise type(exc)(f"{path}: {exc.message}", exc.hint) from None
            say(f"accepted share of {quorum.entry.receipts[-1].custodian}: {quorum.entry.describe_progress()}")
            if quorum.complete:
                break
    elif not sys.stdin.isatty():
        from enigm_recover.bounded import bounded_lines

        for number, line in enumerate(bounded_lines(getattr(sys.stdin, "buffer", sys.stdin)), 1):
            if not line.strip():
                continue
            try:
                quorum.add(parse_share_text(line).words, f"stdin-share-{number}")
            except ShareError as exc:
                raise type(exc)(f"share on stdin line {number}: {exc.message}", exc.hint) from None
            if quorum.complete:
                break
    else:
        print(f"Ceremony {recovery.ceremony}. Custodians: check that this is the ceremony you were called for, "
              "then enter your share. Every answer is hidden as you type; the name and ceremony id are "
              "shown back once checked, never if they look like share words.", file=sys.stderr)
        while not quorum.complete:
            name = ""
            while not name:
                # Hidden, then shown back: share words typed here by mistake never reach the screen.
                name = getpass.getpass("Custodian name: ").strip()
                if name and (problem := custodian_name_problem(name)) is not None:
                    print(problem, file=sys.stderr)
                    name = ""
                elif name:
                    print(f"custodian: {name}", file=sys.stderr)
            typed = ""
            while True:
                typed = getpass.getpass("Type the ceremony id to bind your share to it "
                                        "(Enter to skip): ").strip()
                if typed and (problem := ceremony_id_problem(typed)) is not None:
                    print(problem, file=sys.stderr)
                    continue
                if typed:
                    print(f"ceremony id typed: {for_terminal(typed)}", file=sys.stderr)
                break
            if not enter_share_words(quorum, name, typed or None):
                continue
            print(f"accepted: {quorum.entry.describe_progress()}", file=sys.stderr)


def open_recovery(ctx: Context, command: str) -> AbstractContextManager[Any]:
    """A recovery for a command that combines shares or writes to a target: its ceremony, audit log and
    report. An error closes it as aborted, naming the cause; the command closes it otherwise."""
    from enigm_recover.recovery.session import Recovery

    return Recovery.opened(ctx.locations.state_dir, command, ctx.args.operator, signer=ctx.audit_signer())
