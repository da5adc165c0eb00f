"""The headless command line: argument parsing and presentation only.

Every command calls the engine (state, snapshot, quorum, sources, drill) and
formats what it returns. A user-caused failure is an ``EnigmError``: it prints
one line naming the cause and the next step, and exits with the error's
stable code (see the README).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence, TextIO

from enigm_recover import __version__
from enigm_recover.errors import (
    EnigmError,
    InputFileError,
    InterruptedByUser,
    ShareError,
    UsageError,
)
from enigm_recover.progress import Progress, ProgressCallback, no_progress

EPILOG_EXIT_CODES = "Exit codes are listed in the README; 0 means success."


# -- presentation helpers ------------------------------------------------------


class ProgressPrinter:
    """Draws progress (done, rate, ETA) on a terminal's stderr, at most ten times a second."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.started = time.monotonic()
        self.last = 0.0
        self.stage = ""

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        if p.stage != self.stage:
            self.stage, self.started = p.stage, now
        if now - self.last < 0.1 and p.done != p.total:
            return
        self.last = now
        elapsed = max(now - self.started, 1e-6)
        rate = p.done / elapsed
        from enigm_recover.render import human_size

        done = human_size(p.done) if p.unit == "bytes" else f"{p.done:,}"
        rate_s = f"{human_size(int(rate))}/s" if p.unit == "bytes" else f"{rate:,.0f}/s"
        line = f"{p.stage}: {done}"
        if p.total:
            eta = (p.total - p.done) / rate if rate > 0 else 0
            line += f" of {human_size(p.total) if p.unit == 'bytes' else f'{p.total:,}'}" \
                    f" ({100 * p.done / p.total:.0f}%), {rate_s}, ETA {eta:.0f} s"
        self.stream.write("\r\033[K" + line)
        if p.total and p.done >= p.total:
            self.stream.write("\n")
        self.stream.flush()


def progress_for(args: argparse.Namespace) -> ProgressCallback:
    if getattr(args, "json", False) or not sys.stderr.isatty():
        return no_progress
    return ProgressPrinter(sys.stderr)


def emit_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


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

    def ssh_settings(self) -> Any:
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
        )

    def open_source(self) -> Any:
        from enigm_recover.sources.open import open_source

        spec = self.required(self.args.source, "source", "SOURCE")
        return open_source(spec, self.ssh_settings(), self.locations.cache_dir)

    def allowed_signers(self) -> Any:
        from enigm_recover.snapshot.signature import load_allowed_signers

        return load_allowed_signers(Path(self.required(self.args.allowed_signers, "allowed_signers",
                                                       "--allowed-signers")))


def read_passphrase(args: argparse.Namespace, *, confirm: bool = False) -> str:
    if getattr(args, "passphrase_file", None):
        try:
            text = Path(args.passphrase_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise InputFileError(f"cannot read passphrase file {args.passphrase_file}: {exc}") from None
        return text.rstrip("\r\n")
    if getattr(args, "ask_passphrase", False):
        first = ask_hidden("SLIP-39 passphrase: ")
        if confirm and ask_hidden("Repeat the passphrase: ") != first:
            raise UsageError("the two passphrases differ", "run the command again")
        return first
    return ""


# -- commands ------------------------------------------------------------------


def cmd_target_init(ctx: Context) -> int:
    from enigm_recover.state.stores import open_store

    with open_store(ctx.args.url, create=True) as store:
        store.init_schema()
    print(f"created the schema in {ctx.args.url}")
    return 0


def cmd_keys_init(ctx: Context) -> int:
    from enigm_recover.quorum.keygen import GroupSpec, create_recovery_key

    args = ctx.args
    if args.group:
        if args.shares is not None:
            raise UsageError("give either --shares (one group) or --group K/N (several), not both")
        groups = [GroupSpec.parse(g) for g in args.group]
        group_threshold = args.threshold
    else:
        if args.shares is None:
            raise UsageError("--shares N is required without --group")
        groups = [GroupSpec(args.threshold, args.shares)]
        group_threshold = 1
    passphrase = read_passphrase(args, confirm=True)
    if not all(32 <= ord(c) <= 126 for c in passphrase):
        raise UsageError("a SLIP-39 passphrase may hold only printable ASCII characters")
    identity, cards = create_recovery_key(custodians=args.custodian, group_threshold=group_threshold,
                                          groups=groups, out_dir=Path(args.out), passphrase=passphrase)
    result = {"recipient": identity.recipient, "fingerprint": identity.fingerprint,
              "recipient_file": str(Path(args.out) / "recovery.pub"), "cards": [str(c) for c in cards]}
    if args.json:
        emit_json(result)
        return 0
    print(f"recovery key {identity.fingerprint}")
    print(f"  recipient  {result['recipient_file']}")
    for card in cards:
        print(f"  share card {card}")
    print("Hand each card to its custodian; keep no copy together. The secret itself was not written.")
    return 0


def cmd_seal(ctx: Context) -> int:
    from enigm_recover.snapshot.seal import read_recipient_file, seal
    from enigm_recover.snapshot.signature import load_signing_key
    from enigm_recover.state.stores import open_store

    args = ctx.args
    recipient = read_recipient_file(Path(ctx.required(args.recipient, "recipient", "--recipient")))
    key = load_signing_key(Path(args.sign_key), ask_hidden)
    producer = args.producer or (key.get_comment() or "")
    if not producer:
        raise UsageError("the signing key has no comment to name the producer", "pass --producer PRINCIPAL")
    out = Path(args.out)
    if not out.is_dir():
        raise InputFileError(f"output folder {out} does not exist", "create it first")
    with open_store(ctx.required(args.from_url, "target", "--from")) as store:
        manifest = seal(store, recipient=recipient, signing_key=key, environment=args.environment,
                        producer=producer, out_dir=out, progress=progress_for(args))
    if args.json:
        emit_json({"id": manifest.id, "counts": manifest.counts, "payload_size": manifest.payload_size,
                   "payload_sha256": manifest.payload_sha256, "previous_id": manifest.previous_id})
    else:
        counts = ", ".join(f"{n:,} {k}" for k, n in manifest.counts.items())
        print(f"sealed {manifest.id}: {counts}; payload {manifest.payload_size:,} bytes")
    return 0


def _print_listing(summaries: list[Any], signers_checked: bool) -> None:
    from enigm_recover.render import human_age, human_size, table

    if not summaries:
        print("no snapshots")
        return
    now = datetime.now(timezone.utc)
    rows = []
    for s in summaries:
        key = "-" if s.recipient_matches is None else ("yes" if s.recipient_matches else "NO")
        counts = " ".join(f"{k[0]}:{n:,}" for k, n in s.counts.items()) or "-"
        rows.append([s.id, s.created_at.strftime("%Y-%m-%d %H:%M") if s.created_at else "-",
                     human_age(s.age_seconds(now)), s.environment or "-", s.producer or "-", counts,
                     human_size(s.payload_size), s.signature.value, key])
    print(table(["ID", "CREATED (UTC)", "AGE", "ENV", "PRODUCER", "COUNTS", "PAYLOAD", "SIGNATURE", "KEY"], rows))
    if not signers_checked:
        print("signatures were checked for validity only: pass --allowed-signers to check trust")


def cmd_snapshots_list(ctx: Context) -> int:
    from enigm_recover.quorum.recovery_key import recipient_fingerprint
    from enigm_recover.snapshot.listing import summarize
    from enigm_recover.snapshot.seal import read_recipient_file
    from enigm_recover.snapshot.signature import load_allowed_signers

    args = ctx.args
    signers_path = ctx.setting(args.allowed_signers, "allowed_signers")
    allowed = load_allowed_signers(Path(signers_path)) if signers_path else None
    recipient_path = ctx.setting(args.recipient, "recipient")
    fingerprint = recipient_fingerprint(read_recipient_file(Path(recipient_path))) if recipient_path else None
    with ctx.open_source() as source:
        listing = source.list()
        description = source.description
    summaries = summarize(listing, allowed, fingerprint)
    if args.json:
        now = datetime.now(timezone.utc)
        emit_json({"source": description, "snapshots": [s.as_dict(now) for s in summaries],
                   "rejected": listing.rejected})
        return 0
    print(f"source {description}")
    _print_listing(summaries, allowed is not None)
    for reason in listing.rejected:
        print(f"refused: {reason}", file=sys.stderr)
    return 0


def _verify(ctx: Context, *, hash_payload: bool = True) -> tuple[Any, Any]:
    """Verify the chosen snapshot, fetching its payload into the cache if the source is remote."""
    from enigm_recover.snapshot.catalog import resolve
    from enigm_recover.snapshot.verify import verify_entry

    allowed = ctx.allowed_signers()
    with ctx.open_source() as source:
        entry = resolve(source.list(), ctx.args.id)
        return verify_entry(source, entry, allowed, progress_for(ctx.args), hash_payload=hash_payload)


def _mark(ok: bool | None) -> str:
    return {True: "ok  ", False: "FAIL", None: "... "}[ok]


def cmd_verify(ctx: Context) -> int:
    report, _verified = _verify(ctx)
    if ctx.args.json:
        emit_json(report.as_dict())
    else:
        for check in report.checks:
            print(f"{_mark(check.ok)}  {check.name}: {check.detail}")
        print(f"snapshot {report.snapshot_id} is {'verified' if report.ok else 'NOT verified'}")
    if report.error:
        if ctx.args.json:
            return report.error.exit_code
        raise report.error
    return 0


def gather_shares(ctx: Context, expected_fingerprint: str) -> Any:
    """Feed shares into a ShareEntry from files, stdin lines, or the terminal."""
    from enigm_recover.quorum.cards import parse_share_text, read_share_file
    from enigm_recover.quorum.entry import ShareEntry

    args = ctx.args
    entry = ShareEntry(expected_fingerprint)
    say = (lambda m: None) if args.json else (lambda m: print(m, file=sys.stderr))
    if args.share_file:
        for path in args.share_file:
            share = read_share_file(Path(path))
            try:
                receipt = entry.add(share.words, share.custodian)
            except ShareError as exc:
                raise type(exc)(f"{path}: {exc.message}", exc.hint) from None
            say(f"accepted share of {receipt.custodian}: {entry.describe_progress()}")
            if entry.complete:
                break
    elif not sys.stdin.isatty():
        for number, line in enumerate(sys.stdin, 1):
            if not line.strip():
                continue
            try:
                entry.add(parse_share_text(line).words, f"stdin share {number}")
            except ShareError as exc:
                raise type(exc)(f"share on stdin line {number}: {exc.message}", exc.hint) from None
            if entry.complete:
                break
    else:
        print(f"Recovery key {expected_fingerprint}. Each custodian enters their share; input is hidden.",
              file=sys.stderr)
        while not entry.complete:
            name = input("Custodian name: ").strip()
            words = getpass.getpass(f"Share words of {name or 'custodian'}: ")
            try:
                entry.add(words, name or None)
            except ShareError as exc:
                print(f"rejected: {exc.one_line()}", file=sys.stderr)
                continue
            print(f"accepted: {entry.describe_progress()}", file=sys.stderr)
    return entry.combine(read_passphrase(args))


def cmd_unseal(ctx: Context) -> int:
    from enigm_recover.snapshot.unseal import unseal_to_file

    args = ctx.args
    out = Path(args.out)
    if out.exists() and not args.force:
        raise UsageError(f"{out} already exists", "choose another --out or pass --force")
    report, verified = _verify(ctx, hash_payload=False)  # unsealing hashes in its decryption pass
    if verified is None:
        raise report.error
    identity = gather_shares(ctx, verified.manifest.recipient_fingerprint)
    counts = unseal_to_file(verified, identity, out, overwrite=args.force, progress=progress_for(args))
    if args.json:
        emit_json({"snapshot": verified.manifest.id, "out": str(out), "counts": counts})
    else:
        shown = ", ".join(f"{n:,} {k}" for k, n in counts.items())
        print(f"unsealed {verified.manifest.id} to {out} ({shown}); the file holds decrypted records: "
              "keep it on protected storage and delete it when done")
    return 0


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
            _print_listing(summarize(listing, allowed, doc["recovery"]["fingerprint"]), True)
            report, _ = verify_entry(source, resolve(listing, "latest"), allowed, progress_for(ctx.args))
        for check in report.checks:
            print(f"{_mark(check.ok)}  {check.name}: {check.detail}")
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


def _open_sealed(ctx: Context) -> tuple[Any, Any]:
    """Verify the snapshot (its SHA-256 is checked in the decryption pass) and combine the custodians' shares."""
    report, verified = _verify(ctx, hash_payload=False)
    if verified is None:
        raise report.error
    return verified, gather_shares(ctx, verified.manifest.recipient_fingerprint)


def _print_diff(result: Any, limit: int) -> None:
    from enigm_recover.recovery.assess import REASONS, Finding
    from enigm_recover.render import table

    print(f"dry run of snapshot {result.snapshot_id} (taken {result.snapshot_time}) against {result.target}")
    rows = [[k, f"{s.snapshot:,}", f"{s.live:,}", f"{s.missing:,}", f"{s.extra:,}", f"{s.changed:,}",
             f"{s.unchanged:,}"] for k, s in result.kinds.items()]
    print(table(["KIND", "SNAPSHOT", "LIVE", "MISSING", "EXTRA", "CHANGED", "UNCHANGED"], rows))
    findings = result.findings()
    if findings:
        print("\nsafety findings:")
        for code, count in findings.most_common():
            print(f"  {count:>8,}  {code}: {REASONS[Finding(code)]}")
    shown = sorted(result.changes, key=lambda c: not c.findings)[:limit]
    if shown:
        print(f"\nchanges (first {len(shown):,} of {len(result.changes):,}; findings first; --limit shows more):")
    for change in shown:
        key = "/".join(str(k) for k in change.key)
        notes = f"  [{', '.join(f.value for f in change.findings)}]" if change.findings else ""
        print(f"  {change.change.value:<8} {change.kind} {key}{notes}")
        for name, live, snap in change.fields:
            print(f"             {name}: live {live!r} -> snapshot {snap!r}")


def cmd_diff(ctx: Context) -> int:
    from enigm_recover.recovery.diff import diff
    from enigm_recover.state.model import kind_named
    from enigm_recover.state.stores import open_store

    args = ctx.args
    kinds = []
    for name in args.kind or []:
        try:
            kinds.append(kind_named(name).name)
        except KeyError as exc:
            raise UsageError(str(exc.args[0])) from None
    target = ctx.required(args.target, "target", "--target")
    verified, identity = _open_sealed(ctx)
    with open_store(target) as store:
        result = diff(verified, identity, store, kinds=kinds, progress=progress_for(args))
    if args.json:
        emit_json(result.as_dict(limit=args.limit))
    else:
        _print_diff(result, args.limit if args.limit is not None else 20)
    return 0


def _ask_step(step: Any, preview: Any) -> bool:
    if not sys.stdin.isatty():
        raise UsageError("restore asks before each step on a terminal", "pass --yes to run the plan unattended")
    answer = input(f"run step {step.name} ({step.describe()}): {preview.inserts:,} to insert, "
                   f"{preview.updates:,} to overwrite, {preview.deletes:,} to delete? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def cmd_restore(ctx: Context) -> int:
    from enigm_recover.errors import RestoreNotVerified
    from enigm_recover.recovery.apply import Restorer
    from enigm_recover.recovery.diff import diff
    from enigm_recover.recovery.plan import make_plan, preview
    from enigm_recover.state.stores import open_store

    args = ctx.args
    plan = make_plan(args.policy or [], args.step or [])
    target = ctx.required(args.target, "target", "--target")
    verified, identity = _open_sealed(ctx)
    with open_store(target) as store:
        result = diff(verified, identity, store, progress=progress_for(args))
        previews = {step.name: preview(step, result) for step in plan.steps}
        if not args.json:
            _print_diff(result, 0)
            print("\nplan:")
            for step in plan.steps:
                p = previews[step.name]
                print(f"  {step.name:<11} {step.describe():<45} insert {p.inserts:,}, overwrite {p.updates:,}, "
                      f"delete {p.deletes:,}; kept by safety rules {p.protected:,}; left by policy {p.left:,}")
        if args.dry_run:
            if args.json:
                emit_json({"dry_run": True, "diff": result.as_dict(limit=0), "plan": plan.as_dict(),
                           "previews": {k: v.__dict__ for k, v in previews.items()}})
            return 0
        confirm = (lambda step: True) if args.yes else (lambda step: _ask_step(step, previews[step.name]))
        restorer = Restorer(verified, store, plan, result, batch_size=args.batch_size,
                            progress=progress_for(args))
        outcome = restorer.run(resume=args.resume, confirm=confirm)
    if args.json:
        emit_json(outcome.as_dict())
    else:
        print(f"\nrestore {outcome.run_id}{' (resumed)' if outcome.resumed else ''}: {outcome.status}")
        for o in outcome.steps:
            detail = ""
            if o.verification:
                v = o.verification
                detail = (f"; {v.get('equal', 0):,} equal to the snapshot, {v.get('protected', 0):,} kept by safety "
                          f"rules, {v.get('changed_left', 0):,} changed and {v.get('extra_left', 0):,} extra left")
            print(f"  {o.step:<11} {o.status:<13} inserted {o.inserted:,}, overwritten {o.updated:,}, "
                  f"deleted {o.deleted:,}{detail}")
    if any(o.status == "not-verified" for o in outcome.steps):
        failed = [o.step for o in outcome.steps if o.status == "not-verified"]
        raise RestoreNotVerified(f"the restore ran but step(s) {', '.join(failed)} did not verify")
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
    started = time.monotonic()
    doc = make_drill(folder, spec, replace=replace, progress=progress_for(args))
    if args.json:
        emit_json(doc)
        return 0
    print(describe(doc))
    print(f"(made in {time.monotonic() - started:.1f} s; drill file {folder / 'drill.toml'})")
    if not args.no_tui:
        print()
        _drill_over_ssh(ctx, folder)
        print(f"\nServe it over SSH for the exercise with: enigm-recover drill --serve {folder}")
    return 0


def cmd_config(ctx: Context) -> int:
    from enigm_recover import config

    args = ctx.args
    if args.config_command == "path":
        print(ctx.locations.config_file)
    elif args.config_command == "show":
        values = {key: ctx.setting(None, key) for key in config.SETTINGS}
        if args.json:
            emit_json({"config_file": str(ctx.locations.config_file), "state_dir": str(ctx.locations.state_dir),
                       "cache_dir": str(ctx.locations.cache_dir), "settings": values})
        else:
            print(f"config file  {ctx.locations.config_file}")
            print(f"state dir    {ctx.locations.state_dir}")
            print(f"cache dir    {ctx.locations.cache_dir}")
            for key, value in values.items():
                print(f"{key:<16} {value or '-'}")
    elif args.config_command == "set":
        config.save_setting(ctx.locations.config_file, args.key, args.value)
        print(f"{args.key} = {args.value} (in {ctx.locations.config_file})")
    elif args.config_command == "unset":
        config.save_setting(ctx.locations.config_file, args.key, None)
        print(f"{args.key} unset (in {ctx.locations.config_file})")
    return 0


# -- parser ----------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors raise UsageError (one line, exit code 2)."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}", f"see `{self.prog} --help`")


def _add_ssh_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("SFTP sources (sftp://[user@]host[:port]/path, host may be a ~/.ssh/config alias)")
    g.add_argument("--ssh-config", metavar="F", help="OpenSSH client config (env ENIGM_RECOVER_SSH_CONFIG; "
                                                     "default ~/.ssh/config)")
    g.add_argument("--known-hosts", metavar="F", help="known_hosts file (env ENIGM_RECOVER_KNOWN_HOSTS; default "
                                                      "the config's UserKnownHostsFile or ~/.ssh/known_hosts)")
    g.add_argument("--identity", action="append", metavar="F",
                   help="private key to authenticate with (repeat; default IdentityFile, then ~/.ssh/id_*; "
                        "the ssh-agent is used too)")
    g.add_argument("--accept-new-host-key", metavar="FINGERPRINT",
                   help="trust an unknown host whose key has this SHA256 fingerprint, and record it in "
                        "known_hosts (a changed key is never accepted)")


def _add_shares_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--share-file", action="append", metavar="F",
                   help="a custodian's share card (repeat per custodian); without it, shares are read "
                        "from stdin one per line, or asked for on the terminal with input hidden")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--ask-passphrase", action="store_true", help="ask for the SLIP-39 passphrase (hidden)")
    g.add_argument("--passphrase-file", metavar="F", help="read the SLIP-39 passphrase from a file")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="enigm-recover",
        description="Recover the Enigm platform's identities, devices, security settings and operator roles "
                    "from sealed (encrypted, signed) snapshots, with a k-of-n custodian quorum.",
        epilog="Start with `enigm-recover drill` for a complete tabletop exercise. " + EPILOG_EXIT_CODES,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--config", metavar="FILE", help="config file (env ENIGM_RECOVER_CONFIG)")
    parser.add_argument("--state-dir", metavar="DIR", help="state folder (env ENIGM_RECOVER_STATE_DIR)")
    parser.add_argument("--cache-dir", metavar="DIR", help="cache folder (env ENIGM_RECOVER_CACHE_DIR)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    target = sub.add_parser("target", help="manage target stores")
    tsub = target.add_subparsers(dest="target_command", metavar="ACTION", required=True, parser_class=_Parser)
    p = tsub.add_parser("init", help="create the platform schema in a target store",
                        description="Create the identity, device, setting and role tables.")
    p.add_argument("url", metavar="URL", help="sqlite:///relative.db or sqlite:////absolute/path.db")
    p.set_defaults(func=cmd_target_init)

    keys = sub.add_parser("keys", help="the recovery key ceremony")
    ksub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True, parser_class=_Parser)
    p = ksub.add_parser(
        "init", help="create a recovery key split among custodians",
        description="Create an age X25519 recovery identity, split its secret with SLIP-39 and write one "
                    "share card per custodian plus recovery.pub. The secret itself is never written.",
        epilog="Examples: --threshold 3 --shares 5 --custodian a --custodian b ... (3 of 5);  "
               "--threshold 2 --group 2/3 --group 1/1 --group 2/2 (2 of 3 groups). Custodians are "
               "assigned to groups in order.")
    p.add_argument("--threshold", type=int, required=True, metavar="K",
                   help="shares needed (one group) or groups needed (with --group)")
    p.add_argument("--shares", type=int, metavar="N", help="number of shares in a single group")
    p.add_argument("--group", action="append", metavar="K/N", help="a group needing K of its N shares")
    p.add_argument("--custodian", action="append", required=True, metavar="NAME",
                   help="a custodian, in share order (repeat)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the cards and recovery.pub")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--ask-passphrase", action="store_true", help="protect the shares with a SLIP-39 passphrase")
    g.add_argument("--passphrase-file", metavar="F", help="read the SLIP-39 passphrase from a file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_keys_init)

    p = sub.add_parser("seal", help="seal a store into a signed, encrypted snapshot",
                       description="Stream the store's records into <id>.payload.age (JSON Lines, zstd, age), "
                                   "then write and sign <id>.manifest.toml.")
    p.add_argument("--from", dest="from_url", metavar="URL", help="the store to seal (sqlite:///...)")
    p.add_argument("--recipient", metavar="FILE", help="recovery.pub (env ENIGM_RECOVER_RECIPIENT)")
    p.add_argument("--sign-key", required=True, metavar="SSH_KEY", help="OpenSSH private key signing the manifest")
    p.add_argument("--producer", metavar="PRINCIPAL",
                   help="principal named in the manifest and allowed_signers (default: the key's comment)")
    p.add_argument("--environment", required=True, metavar="NAME", help="e.g. prod, staging, drill")
    p.add_argument("--out", required=True, metavar="DIR", help="snapshot folder")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_seal)

    snaps = sub.add_parser("snapshots", help="list snapshots in a source")
    ssub = snaps.add_subparsers(dest="snapshots_command", metavar="ACTION", required=True, parser_class=_Parser)
    p = ssub.add_parser("list", help="list snapshots, newest first, with signature status",
                        description="Read only manifests and signatures (never payloads).")
    p.add_argument("source", nargs="?", metavar="SOURCE", help="a folder, file:// or sftp:// URL")
    p.add_argument("--allowed-signers", metavar="F", help="check trust against this allowed_signers file")
    p.add_argument("--recipient", metavar="FILE", help="recovery.pub to compare each snapshot's recipient with")
    p.add_argument("--json", action="store_true")
    _add_ssh_options(p)
    p.set_defaults(func=cmd_snapshots_list)

    id_help = "a snapshot id, a unique prefix of one, or `latest`"
    p = sub.add_parser("verify", help="verify a snapshot's signature, manifest and payload",
                       description="Check the manifest schema, its SSHSIG signature against allowed_signers "
                                   "for the manifest's producer, and the payload's size and SHA-256. A remote "
                                   "payload is fetched into the cache first (resumable; reused once verified).")
    p.add_argument("source", metavar="SOURCE")
    p.add_argument("id", metavar="ID", help=id_help)
    p.add_argument("--allowed-signers", metavar="F")
    p.add_argument("--json", action="store_true")
    _add_ssh_options(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("unseal", help="verify, then decrypt a snapshot to JSON Lines (break-glass, drills)",
                       description="Verify the snapshot, combine the custodians' shares in memory, then "
                                   "decrypt, decompress and check every record into --out (mode 0600), "
                                   "written whole or not at all.")
    p.add_argument("source", metavar="SOURCE")
    p.add_argument("id", metavar="ID", help=id_help)
    p.add_argument("--allowed-signers", metavar="F")
    _add_shares_options(p)
    p.add_argument("--out", required=True, metavar="FILE.jsonl")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--json", action="store_true")
    _add_ssh_options(p)
    p.set_defaults(func=cmd_unseal)

    target_help = "the live target store (sqlite:///PATH; env ENIGM_RECOVER_TARGET)"
    p = sub.add_parser("diff", help="dry run: compare a snapshot with the live target, with safety findings",
                       description="Verify the snapshot, combine the custodians' shares, and compare its records "
                                   "with the live target kind by kind: missing, extra, changed (field by field) "
                                   "and unchanged, with the safety findings first. Writes nothing.")
    p.add_argument("source", metavar="SOURCE")
    p.add_argument("id", metavar="ID", help=id_help)
    p.add_argument("--target", metavar="URL", help=target_help)
    p.add_argument("--allowed-signers", metavar="F")
    p.add_argument("--kind", action="append", metavar="K", help="only this kind (repeat): identity, device, "
                                                               "setting, role")
    p.add_argument("--limit", type=int, metavar="N", help="changes to show (default 20; with --json: all)")
    _add_shares_options(p)
    p.add_argument("--json", action="store_true")
    _add_ssh_options(p)
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser(
        "restore", help="restore step by step: journaled, resumable, verified",
        description="Dry-run first, show the plan, then apply it step by step (identities, devices, settings, "
                    "roles). Each batch commits with its journal row, so an interrupted restore resumes "
                    "(--resume) without losing or repeating anything. Each step is verified afterwards.",
        epilog="Policies: restore-missing (always), overwrite-changed, delete-extra; e.g. "
               "--policy device=overwrite-changed --policy role=overwrite-changed,delete-extra. The safety rules "
               "(revocations kept, identity keys never rolled back, no orphan devices) hold under every policy.")
    p.add_argument("source", metavar="SOURCE")
    p.add_argument("id", metavar="ID", help=id_help)
    p.add_argument("--target", metavar="URL", help=target_help)
    p.add_argument("--allowed-signers", metavar="F")
    p.add_argument("--step", action="append", metavar="NAME", help="only this step (repeat): identities, "
                                                                   "devices, settings, roles")
    p.add_argument("--policy", action="append", metavar="KIND=POLICY", help="add a policy to a step (repeat)")
    p.add_argument("--dry-run", action="store_true", help="show the plan and write nothing")
    p.add_argument("--yes", action="store_true", help="do not ask before each step")
    p.add_argument("--resume", action="store_true", help="continue the interrupted restore in the target")
    p.add_argument("--batch-size", type=int, default=5000, metavar="N", help=argparse.SUPPRESS)
    _add_shares_options(p)
    p.add_argument("--json", action="store_true")
    _add_ssh_options(p)
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("drill", help="make a complete tabletop exercise",
                       description="Build a synthetic platform, keys, five custodian cards, snapshots over "
                                   "simulated days and a live target damaged by an incident.")
    p.add_argument("dir", nargs="?", metavar="DIR", help="drill folder (default: <state dir>/drill, replaced)")
    p.add_argument("--no-tui", action="store_true", help="only build the drill and print what it made")
    p.add_argument("--identities", type=int, default=200, metavar="N")
    p.add_argument("--devices-per-identity", type=int, default=3, metavar="M")
    p.add_argument("--snapshots", type=int, default=3, metavar="K", help="snapshots over K simulated days")
    p.add_argument("--seed", type=int, default=1, metavar="S")
    p.add_argument("--at", metavar="TIME", help="the incident time (ISO UTC; default now): fixes every date")
    p.add_argument("--replace", action="store_true", help="replace an earlier drill in DIR")
    p.add_argument("--serve", action="store_true",
                   help="only serve the drill in DIR read-only over SFTP on 127.0.0.1 until interrupted")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_drill)

    cfg = sub.add_parser("config", help="show or change the configuration file")
    csub = cfg.add_subparsers(dest="config_command", metavar="ACTION", required=True, parser_class=_Parser)
    p = csub.add_parser("show", help="effective settings and locations")
    p.add_argument("--json", action="store_true")
    csub.add_parser("path", help="where the config file is")
    p = csub.add_parser("set", help="set a default (source, target, allowed_signers, recipient)")
    p.add_argument("key")
    p.add_argument("value")
    p = csub.add_parser("unset", help="remove a default")
    p.add_argument("key")
    for action in ("show", "path", "set", "unset"):
        csub.choices[action].set_defaults(func=cmd_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 0
        return args.func(Context(args))
    except EnigmError as exc:
        print(f"enigm-recover: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        err = InterruptedByUser("interrupted")
        print(f"\nenigm-recover: {err.one_line()}", file=sys.stderr)
        return err.exit_code
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug: say so in one line; the traceback only on request
        if os.environ.get("ENIGM_RECOVER_DEBUG"):
            raise
        print(f"enigm-recover: internal error: {type(exc).__name__}: {exc} — this is a bug; please report it "
              "(set ENIGM_RECOVER_DEBUG=1 to see the traceback)", file=sys.stderr)
        return 1


