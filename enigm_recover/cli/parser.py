"""The argument parser: every command, its options and its help."""

from __future__ import annotations

import argparse
from typing import Any

from enigm_recover import __version__
from enigm_recover.cli.commands_app import cmd_app, cmd_default
from enigm_recover.cli.commands_ceremony import cmd_ceremony_join, cmd_ceremony_seal_share
from enigm_recover.cli.commands_audit import cmd_audit_verify
from enigm_recover.cli.commands_completion import SHELLS, cmd_completion
from enigm_recover.cli.commands_drill import cmd_drill
from enigm_recover.cli.commands_keys import cmd_config, cmd_keys_init, cmd_target_init
from enigm_recover.cli.commands_keys import cmd_keys_check, cmd_keys_reshare, cmd_keys_rewrap, cmd_keys_rotate, cmd_keys_test_quorum
from enigm_recover.cli.commands_readiness import cmd_readiness
from enigm_recover.cli.commands_recovery import cmd_diff, cmd_restore
from enigm_recover.cli.commands_runbooks import cmd_run, cmd_runbooks_check, cmd_runbooks_list, cmd_runbooks_show
from enigm_recover.cli.commands_snapshots import cmd_seal, cmd_snapshots_list, cmd_unseal, cmd_verify
from enigm_recover.cli.commands_retention import cmd_snapshots_prune, cmd_snapshots_scope
from enigm_recover.errors import UsageError
from enigm_recover.state.journal import DEFAULT_BATCH


EPILOG_EXIT_CODES = "Exit codes are listed in the README; 0 means success."


# -- presentation helpers ------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors raise UsageError (one line, exit code 2)."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}", f"see `{self.prog} --help`")


ID_HELP = "a snapshot id, a unique prefix of one, or `latest`"
JSON_HELP = "print the result as one JSON document on stdout (messages stay on stderr)"
POLICIES = ("restore-missing", "overwrite-changed", "delete-extra", "overwrite-unreadable")  # recovery.plan.Policy
POLICY_HELP = ("add a policy to a step (repeat); KIND=POLICY[,POLICY], KIND one of identity, device, setting, role; "
               "POLICY one of " + ", ".join(POLICIES))


def _add_snapshot_arguments(p: argparse.ArgumentParser) -> None:
    """SOURCE, ID and --allowed-signers: how every command names the snapshot it trusts."""
    p.add_argument("source", metavar="SOURCE", help="a folder, file:// or sftp:// URL")
    p.add_argument("id", metavar="ID", help=ID_HELP)
    p.add_argument("--allowed-signers", metavar="F", help="trusted producers (env ENIGM_RECOVER_ALLOWED_SIGNERS)")
    p.add_argument("--environment", metavar="NAME", help=ENVIRONMENT_HELP)


ENVIRONMENT_HELP = ("only snapshots of this environment count for `latest` and id prefixes (refused entries always "
                    "count: what they claim is not trusted)")
TARGET_ENVIRONMENT_HELP = ("the target's environment (env ENIGM_RECOVER_TARGET_ENVIRONMENT, config "
                           "target_environment, both only with the target set the same way): a snapshot of another "
                           "environment is refused; also the default of --environment")


def _add_target_environment(p: argparse.ArgumentParser, *, restores: bool) -> None:
    p.add_argument("--target-environment", metavar="NAME", help=TARGET_ENVIRONMENT_HELP)
    if restores:
        p.add_argument("--allow-environment-mismatch", action="store_true",
                       help="restore a snapshot of another environment than the target's (recorded in the "
                            "audit log)")


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
    g.add_argument("--ssh-kex", choices=("prefer-post-quantum", "post-quantum-only"),
                   help="SSH key exchange (env ENIGM_RECOVER_SSH_KEX, config ssh_kex): prefer-post-quantum (default: "
                        "mlkem768x25519-sha256 first) or post-quantum-only (refuse a server offering only classic "
                        "key exchange; exit 75)")


RUNBOOKS_HELP = "another folder of runbooks (repeat); also read: <config dir>/runbooks and the built-in ones"
TARGET_HELP = ("the live target store (sqlite:///PATH or postgresql://user@host/db; env ENIGM_RECOVER_TARGET). "
               "Keep a PostgreSQL password out of the URL: in ~/.pgpass (PGPASSFILE), PGPASSWORD or a service "
               "entry (?service=NAME, PGSERVICE); one in the URL is never shown or stored (***), and a resumed "
               "run asks libpq for it again")


def _add_recovery_locations(p: argparse.ArgumentParser) -> None:
    """Where a runbook run reads and writes: --source, --target, --allowed-signers and --runbooks."""
    p.add_argument("--source", metavar="SOURCE", help="a folder, file:// or sftp:// URL (env ENIGM_RECOVER_SOURCE)")
    p.add_argument("--target", metavar="URL", help=TARGET_HELP)
    p.add_argument("--allowed-signers", metavar="F", help="trusted producers (env ENIGM_RECOVER_ALLOWED_SIGNERS)")
    p.add_argument("--runbooks", action="append", metavar="DIR", help=RUNBOOKS_HELP)


def _add_shares_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--share-file", action="append", metavar="F",
                   help="a custodian's share card (repeat per custodian); without it, shares are read "
                        "from stdin one per line, or asked for on the terminal with input hidden")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--ask-passphrase", action="store_true", help="ask for the SLIP-39 passphrase (hidden)")
    g.add_argument("--passphrase-file", metavar="F", help="read the SLIP-39 passphrase from a file")
    a = p.add_argument_group("accountability (each run leaves an audit log and a report in the state folder)")
    a.add_argument("--operator", metavar="NAME", help="who runs the recovery (default: the login name)")
    a.add_argument("--audit-key", metavar="SSH_KEY",
                   help="signs the audit log's head: a private key file, or a .pub whose key the ssh-agent "
                        "holds (default: the agent's first key when SSH_AUTH_SOCK is set)")


def _add_accountability(p: argparse.ArgumentParser) -> None:
    a = p.add_argument_group("accountability (each run leaves an audit log and a report in the state folder)")
    a.add_argument("--operator", metavar="NAME", help="who runs the command (default: the login name)")
    a.add_argument("--audit-key", metavar="SSH_KEY", help="signs the audit log's head (a private key, or a .pub "
                                                          "the ssh-agent holds)")


def _add_keys_lifecycle(ksub: Any) -> None:
    """keys check / test-quorum / rotate / reshare / rewrap: the recovery key after its birth."""
    p = ksub.add_parser(
        "check", help="check one share card alone (offline, no other share, nothing combined)",
        description="Check each CARD alone: every word in the SLIP-39 list and the checksum right; which set, "
                    "group and member it is and the thresholds it belongs to; with --recipient, that it belongs "
                    "to that recovery key (the fingerprint printed on the card, and the set id keys.toml records). "
                    "Without CARD, the words are asked hidden, one at a time. Nothing is combined or written but "
                    "an audit entry without any word.",
        epilog="Exit 0 when every card is good; otherwise the first failure's code: 20 a word not in the list or a "
               "wrong length, 21 a bad checksum, 22 another set or another key, 60 a retired key, 61 nothing ties "
               "the card to the key.")
    p.add_argument("cards", nargs="*", metavar="CARD", help="a share card file (or a file of the words alone)")
    p.add_argument("--recipient", metavar="FILE", help="recovery.pub of the key the card should belong to")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    _add_accountability(p)
    p.set_defaults(func=cmd_keys_check)

    p = ksub.add_parser(
        "test-quorum", help="prove that a quorum of custodians can still recover the key (nothing decrypted)",
        description="Combine the custodians' shares in memory, derive the public recipient, compare it with "
                    "--recipient and forget everything; no snapshot is touched. Leaves an audit log and a report "
                    "(quorum-test.toml: which custodians, when, the result) that `readiness --max-quorum-age` reads.",
        epilog="Exit 0 when the shares combine to the key; 25 when they combine to another key (a wrong passphrase "
               "or cards of another key); 20-24 for a share refused as it is entered.")
    p.add_argument("--recipient", metavar="FILE", help="recovery.pub of the key to prove (env ENIGM_RECOVER_RECIPIENT)")
    _add_shares_options(p)
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(func=cmd_keys_test_quorum)

    for name, func, text in (
        ("rotate", cmd_keys_rotate,
         "With a quorum of the current key (--recipient OLD.pub and its shares), make a new recovery key and new "
         "cards in --out DIR (the same options as `keys init`). The old recovery.pub is marked retired in place "
         "(a comment line `age -R` ignores) and keys.toml beside each recovery.pub records the change; `seal` "
         "refuses a retired recipient. Snapshots sealed to the old key still need its old quorum until "
         "`keys rewrap` moves them."),
        ("reshare", cmd_keys_reshare,
         "With a quorum of the current key, split the SAME key again into new cards in --out DIR (a card lost, "
         "nobody suspected). Every old card still works together with the rest of its old set: a card that may be "
         "in the wrong hands calls for `keys rotate`, not this."),
    ):
        p = ksub.add_parser(name, help=text.split(".")[0][:90], description=text)
        p.add_argument("--recipient", metavar="FILE", help="recovery.pub of the current key")
        p.add_argument("--threshold", type=int, required=True, metavar="K",
                       help="shares needed (one group) or groups needed (with --group), for the new cards")
        p.add_argument("--shares", type=int, metavar="N", help="number of new shares in a single group")
        p.add_argument("--group", action="append", metavar="K/N", help="a group needing K of its N shares")
        p.add_argument("--custodian", action="append", required=True, metavar="NAME",
                       help="a custodian of the new cards, in share order (repeat)")
        p.add_argument("--out", required=True, metavar="DIR", help="a new folder for the new cards and recovery.pub")
        if name == "rotate":
            p.add_argument("--reason", default="rotated", metavar="TEXT",
                           help="why the key is retired (recorded in keys.toml and recovery.pub)")
            _add_kind_option(p)
        g = p.add_mutually_exclusive_group()
        g.add_argument("--ask-new-passphrase", action="store_true", help="protect the new cards with a passphrase")
        g.add_argument("--new-passphrase-file", metavar="F", help="the new cards' SLIP-39 passphrase, from a file")
        _add_shares_options(p)
        p.add_argument("--json", action="store_true", help=JSON_HELP)
        p.set_defaults(func=func)

    p = ksub.add_parser(
        "rewrap", help="move snapshots to the new recovery key (only the age header changes)",
        description="Re-encrypt snapshots in the local folder SOURCE to --to NEW.pub without decrypting their "
                    "payloads: the file key is unwrapped with the old key (the old quorum's shares), wrapped for the "
                    "new recipient and the header MAC recomputed; every payload byte after the header stays as it "
                    "was. Each manifest gets the new payload size, SHA-256 and recipient and is signed again with "
                    "--sign-key (the producer's key). New files are written beside the old and replace them only "
                    "after they verify; an interrupted rewrap is finished (or undone) by the next run.",
        epilog="The old key is --from OLD.pub, or else the key the keyring beside NEW.pub says NEW replaced. With "
               "--all, snapshots sealed to other keys are left as they are and listed. " + EPILOG_EXIT_CODES)
    p.add_argument("source", nargs="?", metavar="SOURCE", help="a local snapshot folder (env ENIGM_RECOVER_SOURCE)")
    p.add_argument("ids", nargs="*", metavar="ID", help=ID_HELP)
    p.add_argument("--all", action="store_true", help="every snapshot sealed to the old key")
    p.add_argument("--to", required=True, metavar="NEW.pub", help="recovery.pub of the new key")
    p.add_argument("--from", dest="from_recipient", metavar="OLD.pub", help="recovery.pub of the old key")
    p.add_argument("--sign-key", required=True, metavar="KEY", help="the producer's SSH private key, to sign the "
                                                                    "new manifests")
    p.add_argument("--allowed-signers", metavar="F", help="trusted producers (env ENIGM_RECOVER_ALLOWED_SIGNERS)")
    _add_shares_options(p)
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(func=cmd_keys_rewrap)


def _add_keep_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("retention policy (restic's `forget` rules; each overrides the config's [retention])")
    g.add_argument("--keep-last", type=int, metavar="N", help="keep the N newest snapshots")
    g.add_argument("--keep-daily", type=int, metavar="N",
                   help="keep the newest snapshot of each of the last N days (UTC) that have one")
    g.add_argument("--keep-weekly", type=int, metavar="N",
                   help="keep the newest snapshot of each of the last N ISO weeks that have one")
    g.add_argument("--keep-monthly", type=int, metavar="N",
                   help="keep the newest snapshot of each of the last N months that have one")
    g.add_argument("--keep-within", metavar="DURATION",
                   help="keep every snapshot younger than DURATION before the newest one (e.g. 30d, 2w)")


def _add_retention_commands(ssub: Any) -> None:
    p = ssub.add_parser(
        "prune", help="remove snapshots a retention policy no longer keeps (shows first; --apply removes)",
        description="Apply a retention policy to each environment's signed snapshots, with restic's `forget` "
                    "rules: a snapshot kept by any rule is kept. Without --apply, only show what would be kept "
                    "(with the rules that keep it) and removed. Never removed: the newest verified snapshot of "
                    "each environment, any snapshot a paused or interrupted run refers to, and any snapshot whose "
                    "manifest is unreadable or not signed by a trusted producer. Refused when the newest snapshot "
                    "does not verify. Each removal is atomic (the snapshot leaves the listing in one rename) and "
                    "is recorded in an audit log with the policy that decided it.",
        epilog="Exit 0 on success; 50 when the prune is refused (nothing removed). " + EPILOG_EXIT_CODES)
    p.add_argument("source", nargs="?", metavar="SOURCE", help="a folder, file:// or sftp:// URL")
    p.add_argument("--allowed-signers", metavar="F", help="trusted producers (env ENIGM_RECOVER_ALLOWED_SIGNERS)")
    p.add_argument("--environment", metavar="NAME", help="prune only the snapshots of this environment")
    _add_keep_options(p)
    p.add_argument("--apply", action="store_true", help="remove the snapshots (default: only show)")
    p.add_argument("--operator", metavar="NAME", help="who prunes, in the audit log (default: the login name)")
    p.add_argument("--audit-key", metavar="SSH_KEY", help="signs the audit log's head (default: the ssh-agent's "
                                                         "first key when SSH_AUTH_SOCK is set)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    _add_ssh_options(p)
    p.set_defaults(func=cmd_snapshots_prune)

    p = ssub.add_parser(
        "scope", help="review the recovery scope: kinds, fields and counts per snapshot, and what changed",
        description="For each manifest signed by a trusted producer: the kinds and fields in scope and their "
                    "record counts; between consecutive snapshots of an environment, a kind or field added or "
                    "removed and counts that moved beyond --threshold. Anything outside the allow-list is a "
                    "finding. --markdown writes a page for auditors. Reads manifests only.",
        epilog="Exit 0 when every signed snapshot is within the allow-list, 13 when any is not. " + EPILOG_EXIT_CODES)
    p.add_argument("source", nargs="?", metavar="SOURCE", help="a folder, file:// or sftp:// URL")
    p.add_argument("ids", nargs="*", metavar="ID", help="only these snapshots (ids, prefixes or latest)")
    p.add_argument("--allowed-signers", metavar="F", help="trusted producers (env ENIGM_RECOVER_ALLOWED_SIGNERS)")
    p.add_argument("--threshold", default="25", metavar="PERCENT",
                   help="name a kind's count that moved by more than this between consecutive snapshots (default 25)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.add_argument("--markdown", action="store_true", help="an auditor-readable page on stdout")
    _add_ssh_options(p)
    p.set_defaults(func=cmd_snapshots_scope)


def _add_runs_commands(sub: Any) -> None:
    from enigm_recover.cli.commands_runs import cmd_runs_abort, cmd_runs_clean, cmd_runs_list

    runs = sub.add_parser("runs", help="the runbook runs kept here: list, abort, clean up paused ones",
                          description="Runs are kept in the state folder with their audit log and report; "
                                      "nothing is deleted: aborting ends a paused run for good, saying why.")
    rsub = runs.add_subparsers(dest="runs_command", metavar="ACTION", required=True, parser_class=_Parser)
    p = rsub.add_parser("list", help="paused or interrupted runs, newest first")
    p.add_argument("--all", action="store_true", help="also the completed and aborted runs")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(func=cmd_runs_list)
    for name, helptext in (("abort", "end one paused run for good, with a reason for the audit log and report"),
                           ("clean", "abort every run left paused longer than an age")):
        p = rsub.add_parser(name, help=helptext)
        if name == "abort":
            p.add_argument("ceremony", metavar="CEREMONY", help="the run's ceremony id (see `runs list`)")
            p.add_argument("--reason", required=True, metavar="TEXT", help="why, for the audit log and the report")
            p.set_defaults(func=cmd_runs_abort)
        else:
            p.add_argument("--older-than", required=True, metavar="AGE",
                           help="idle for longer than this: 30m, 12h, 7d or 2w")
            p.add_argument("--reason", metavar="TEXT", help="why (default: paused for more than AGE)")
            p.add_argument("--dry-run", action="store_true", help="only list the runs it would abort")
            p.set_defaults(func=cmd_runs_clean)
        p.add_argument("--operator", metavar="NAME", help="who aborts, in the audit log (default: the login name)")
        p.add_argument("--audit-key", metavar="SSH_KEY", help="signs the audit log's head (default: the "
                                                             "ssh-agent's first key when SSH_AUTH_SOCK is set)")
        p.add_argument("--json", action="store_true", help=JSON_HELP)


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
    g = parser.add_argument_group("without a COMMAND: open the guided recovery app (also when the config file "
                                  "names a source and a target)")
    g.add_argument("--source", dest="app_source", metavar="SOURCE", help="a folder, file:// or sftp:// URL")
    g.add_argument("--target", dest="app_target", metavar="URL", help="the live target store URL")
    g.add_argument("--runbook", dest="app_runbook", metavar="NAME", help="the runbook to propose")
    g.add_argument("--allowed-signers", dest="app_allowed_signers", metavar="F", help="trusted producers")
    g.add_argument("--operator", dest="app_operator", metavar="NAME", help="who runs the recovery")
    parser.set_defaults(func=cmd_default)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    target = sub.add_parser("target", help="manage target stores")
    tsub = target.add_subparsers(dest="target_command", metavar="ACTION", required=True, parser_class=_Parser)
    p = tsub.add_parser("init", help="create the platform schema in a target store",
                        description="Create the identity, device, setting and role tables.")
    p.add_argument("url", metavar="URL", help="sqlite:///relative.db, sqlite:////absolute/path.db or "
                                              "postgresql://user@host[:port]/db")
    p.set_defaults(func=cmd_target_init)

    keys = sub.add_parser("keys", help="the recovery key ceremony")
    ksub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True, parser_class=_Parser)
    p = ksub.add_parser(
        "init", help="create a recovery key split among custodians",
        description="Create an age recovery identity (hybrid post-quantum ML-KEM-768 + X25519 by default, or "
                    "classic X25519), split its 32-byte secret with SLIP-39 and write one share card per custodian "
                    "plus recovery.pub. The secret itself is never written.",
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
    _add_kind_option(p)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--ask-passphrase", action="store_true", help="protect the shares with a SLIP-39 passphrase")
    g.add_argument("--passphrase-file", metavar="F", help="read the SLIP-39 passphrase from a file")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(func=cmd_keys_init)
    _add_keys_lifecycle(ksub)

    p = sub.add_parser("seal", help="seal a store into a signed, encrypted snapshot",
                       description="Stream the store's records into <id>.payload.age (JSON Lines, zstd, age), "
                                   "then write and sign <id>.manifest.toml.")
    p.add_argument("--from", dest="from_url", metavar="URL",
                   help="the store to seal (sqlite:///PATH or postgresql://user@host/db)")
    p.add_argument("--recipient", metavar="FILE", help="recovery.pub (env ENIGM_RECOVER_RECIPIENT)")
    p.add_argument("--sign-key", required=True, metavar="SSH_KEY", help="OpenSSH private key signing the manifest")
    p.add_argument("--producer", metavar="PRINCIPAL",
                   help="principal named in the manifest and allowed_signers (default: the key's comment)")
    p.add_argument("--environment", required=True, metavar="NAME", help="e.g. prod, staging, drill")
    p.add_argument("--out", required=True, metavar="DIR", help="snapshot folder")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(func=cmd_seal)

    snaps = sub.add_parser("snapshots", help="list snapshots in a source")
    ssub = snaps.add_subparsers(dest="snapshots_command", metavar="ACTION", required=True, parser_class=_Parser)
    p = ssub.add_parser("list", help="list snapshots, newest first, with signature status",
                        description="Read only manifests and signatures (never payloads).")
    p.add_argument("source", nargs="?", metavar="SOURCE", help="a folder, file:// or sftp:// URL")
    p.add_argument("--allowed-signers", metavar="F", help="check trust against this allowed_signers file")
    p.add_argument("--recipient", metavar="FILE", help="recovery.pub to compare each snapshot's recipient with")
    p.add_argument("--environment", metavar="NAME", help="only this environment's snapshots (and refused entries)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    _add_ssh_options(p)
    p.set_defaults(func=cmd_snapshots_list)
    _add_retention_commands(ssub)

    p = sub.add_parser("verify", help="verify a snapshot's signature, manifest and payload",
                       description="Check the manifest schema, its SSHSIG signature against allowed_signers "
                                   "for the manifest's producer, and the payload's size and SHA-256. A remote "
                                   "payload is fetched into the cache first (resumable; reused once verified).")
    _add_snapshot_arguments(p)
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    _add_ssh_options(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("unseal", help="verify, then decrypt a snapshot to JSON Lines (break-glass, drills)",
                       description="Verify the snapshot, combine the custodians' shares in memory, then "
                                   "decrypt, decompress and check every record into --out (mode 0600), "
                                   "written whole or not at all.")
    _add_snapshot_arguments(p)
    _add_shares_options(p)
    _add_remote_shares(p)
    p.add_argument("--out", required=True, metavar="FILE.jsonl",
                   help="write the decrypted records here as JSON Lines (refused if it exists, unless --force)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    _add_ssh_options(p)
    p.set_defaults(func=cmd_unseal)

    p = sub.add_parser("diff", help="dry run: compare a snapshot with the live target, with safety findings",
                       description="Verify the snapshot, combine the custodians' shares, and compare its records "
                                   "with the live target kind by kind: missing, extra, changed (field by field) "
                                   "and unchanged, with the safety findings first. Writes nothing.")
    _add_snapshot_arguments(p)
    p.add_argument("--target", metavar="URL", help=TARGET_HELP)
    p.add_argument("--kind", action="append", metavar="K", help="only this kind (repeat): identity, device, "
                                                               "setting, role")
    p.add_argument("--limit", type=_count, metavar="N", help="changes to show (default 20; with --json: all)")
    _add_target_environment(p, restores=False)
    _add_shares_options(p)
    _add_remote_shares(p)
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    _add_ssh_options(p)
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser(
        "restore", help="restore step by step: journaled, resumable, verified",
        description="Dry-run first, show the plan, then apply it step by step (identities, devices, settings, "
                    "roles). Each batch commits with its journal row, so an interrupted restore resumes "
                    "(--resume) without losing or repeating anything. Each step is verified afterwards.",
        epilog="Policies: restore-missing (always), overwrite-changed, delete-extra, overwrite-unreadable (replace "
               "live records the model cannot read, which are otherwise kept); e.g. "
               "--policy device=overwrite-changed --policy role=overwrite-changed,delete-extra. The safety rules "
               "(revocations kept, identity keys never rolled back, no orphan devices) hold under every policy.")
    _add_snapshot_arguments(p)
    p.add_argument("--target", metavar="URL", help=TARGET_HELP)
    p.add_argument("--step", action="append", metavar="NAME", help="only this step (repeat): identities, "
                                                                   "devices, settings, roles")
    p.add_argument("--policy", action="append", metavar="KIND=POLICY", help=POLICY_HELP)
    p.add_argument("--dry-run", action="store_true", help="show the plan and write nothing")
    p.add_argument("--yes", action="store_true", help="do not ask before each step")
    p.add_argument("--resume", action="store_true", help="continue the interrupted restore in the target")
    _add_target_environment(p, restores=True)
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, metavar="N", help=argparse.SUPPRESS)
    _add_shares_options(p)
    _add_remote_shares(p)
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    _add_ssh_options(p)
    p.set_defaults(func=cmd_restore)

    rbs = sub.add_parser("runbooks", help="the recovery procedures: list, show and check them")
    rsub = rbs.add_subparsers(dest="runbooks_command", metavar="ACTION", required=True, parser_class=_Parser)
    p = rsub.add_parser("list", help="every runbook found, by name")
    p.add_argument("--runbooks", action="append", metavar="DIR", help=RUNBOOKS_HELP)
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(func=cmd_runbooks_list)
    p = rsub.add_parser("show", help="a runbook's purpose and steps, with their guidance")
    p.add_argument("name", metavar="NAME", help="a runbook name, or the path of a runbook file")
    p.add_argument("--runbooks", action="append", metavar="DIR", help=RUNBOOKS_HELP)
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(func=cmd_runbooks_show)
    p = rsub.add_parser("check", help="validate a runbook file (mistakes are named with file, line and step)")
    p.add_argument("file", metavar="FILE")
    p.set_defaults(func=cmd_runbooks_check)

    p = sub.add_parser(
        "run", help="walk a runbook step by step on the terminal (or scripted)",
        description="Walk a runbook: each step shows its guidance and asks where a person must act (custodians' "
                    "shares, confirmations, the second operator of a two-person step). Progress is saved after "
                    "every step in the state folder: quit (answer q) and continue later with --resume.",
        epilog="Scripted drills: --yes confirms every step as --operator, --second-operator NAME confirms "
               "two-person steps, --share-file gives the custodians' cards, --snapshot answers select-snapshot. "
               "Example: enigm-recover run tabletop-drill --source DIR --target URL --allowed-signers F "
               "--share-file a.txt --share-file b.txt --share-file c.txt --yes --operator dana "
               "--second-operator lee")
    p.add_argument("runbook", metavar="RUNBOOK", help="a runbook name (see `runbooks list`) or file")
    _add_recovery_locations(p)
    r = p.add_mutually_exclusive_group()
    r.add_argument("--resume", action="store_true", help="continue the newest paused run of RUNBOOK at its step")
    r.add_argument("--abort", metavar="REASON", help="end the paused run of RUNBOOK for good, saying why")
    p.add_argument("--run", metavar="CEREMONY", help="with --resume/--abort: the run of this ceremony id")
    p.add_argument("--another-snapshot", action="store_true",
                   help="with --resume: go back to choosing the snapshot (when the run's snapshot is gone or "
                        "no longer verifies; refused once a restore began)")
    a = p.add_argument_group("answers for scripted runs")
    a.add_argument("--yes", action="store_true", help="confirm every step as the operator")
    a.add_argument("--second-operator", metavar="NAME", help="confirms two-person steps (another name)")
    a.add_argument("--snapshot", metavar="ID", help="the snapshot for select-snapshot (id, prefix or latest)")
    a.add_argument("--note", metavar="TEXT", help="a note recorded with confirmed steps")
    p.add_argument("--environment", metavar="NAME", help=ENVIRONMENT_HELP)
    _add_target_environment(p, restores=True)
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, metavar="N", help=argparse.SUPPRESS)
    _add_shares_options(p)
    _add_remote_shares(p)
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    _add_ssh_options(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "app", help="the guided recovery app: a runbook walked screen by screen (a terminal UI)",
        description="Open the app on a source and a target: choose a runbook (or resume a paused run), list and "
                    "verify the snapshots, gather the custodians' shares, read the dry run and restore step by "
                    "step, with a report and an audit log at the end. Keys are shown at the bottom of every screen.",
        epilog="A tabletop exercise: `enigm-recover drill` makes one and opens the app on it; `app --drill DIR` "
               "opens the app on an earlier drill.")
    _add_recovery_locations(p)
    p.add_argument("--runbook", metavar="NAME", help="the runbook to propose (a name or a file)")
    p.add_argument("--recipient", metavar="FILE", help="recovery.pub: each snapshot says whether it is sealed to it")
    p.add_argument("--resume", action="store_true", help="resume the newest paused run of --runbook at once")
    p.add_argument("--drill", metavar="DIR", help="serve an earlier drill over SSH and open the app on it")
    p.add_argument("--operator", metavar="NAME", help="who runs the recovery (default: the login name)")
    p.add_argument("--audit-key", metavar="SSH_KEY", help="signs the audit log's head (default: the ssh-agent's "
                                                         "first key when SSH_AUTH_SOCK is set)")
    _add_ssh_options(p)
    p.set_defaults(func=cmd_app)

    p = sub.add_parser("drill", help="make a complete tabletop exercise",
                       description="Build a synthetic platform, keys, five custodian cards, snapshots over "
                                   "simulated days and a live target damaged by an incident.")
    p.add_argument("dir", nargs="?", metavar="DIR", help="drill folder (default: <state dir>/drill, replaced)")
    p.add_argument("--no-tui", action="store_true", help="only build the drill and print what it made (without "
                                                          "it, the app opens on the drill served over SSH)")
    p.add_argument("--identities", type=int, default=200, metavar="N",
                   help="synthetic identities on the platform (default %(default)s)")
    p.add_argument("--devices-per-identity", type=int, default=3, metavar="M",
                   help="devices enrolled per identity (default %(default)s)")
    p.add_argument("--snapshots", type=int, default=3, metavar="K", help="snapshots over K simulated days")
    p.add_argument("--seed", type=int, default=1, metavar="S",
                   help="random seed: the same seed makes the same drill (default %(default)s)")
    _add_kind_option(p)
    p.add_argument("--at", metavar="TIME", help="the incident time (ISO UTC; default now): fixes every date")
    p.add_argument("--replace", action="store_true", help="replace an earlier drill in DIR")
    p.add_argument("--resume", action="store_true", help="continue the drill's paused run instead of making "
                                                         "a new drill (the drill is left as it is)")
    p.add_argument("--fresh", action="store_true", help="make a new drill even though the old one has a paused "
                                                        "run (that run is aborted, saying why)")
    p.add_argument("--operator", metavar="NAME", help="who aborts a paused run with --fresh (default: the login name)")
    p.add_argument("--slow-restore", action="store_true",
                   help="restore in small batches with a pause after each, so the restore lasts long enough to "
                        "practise quitting (ctrl+q) and resuming")
    p.add_argument("--serve", action="store_true",
                   help="only serve the drill in DIR read-only over SFTP on 127.0.0.1 until interrupted")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(func=cmd_drill)

    p = sub.add_parser(
        "readiness", help="check that the snapshots would restore today (for schedules and auditors)",
        description="Check the snapshots in SOURCE without any share: the newest usable one is younger than "
                    "--max-age; every manifest is signed by a trusted principal, sealed to --recipient and within "
                    "the allow-listed scope; every payload is present and matches its signed size and SHA-256 "
                    "(a remote one downloaded afresh on every run); the chain of previous snapshot ids has no gaps; "
                    "identities and devices do not drop by more than --max-drop between consecutive snapshots. "
                    "With --test-restore and the custodians' shares, also unseal the newest snapshot into a "
                    "scratch SQLite target, verify its counts and canonical hashes against the manifest and "
                    "delete it. Writes readiness.toml and readiness.md beside the run's audit log, whose entry "
                    "holds their SHA-256.",
        epilog="Exit 0 when every check passes, 40 when any fails (named on stderr); source errors keep their "
               "own codes. " + EPILOG_EXIT_CODES)
    p.add_argument("source", nargs="?", metavar="SOURCE", help="a folder, file:// or sftp:// URL")
    p.add_argument("--allowed-signers", metavar="F", help="trusted producers (env ENIGM_RECOVER_ALLOWED_SIGNERS)")
    p.add_argument("--recipient", metavar="FILE", help="the expected recovery.pub (env ENIGM_RECOVER_RECIPIENT)")
    p.add_argument("--max-age", default="26h", metavar="DURATION",
                   help="the newest usable snapshot may be at most this old: 26h, 90m, 2d, 3600s (default 26h)")
    p.add_argument("--max-drop", default="25", metavar="PERCENT",
                   help="flag a drop of identities or devices larger than this between consecutive snapshots "
                        "(default 25)")
    p.add_argument("--environment", metavar="NAME", help="check only the snapshots of this environment")
    p.add_argument("--test-restore", action="store_true",
                   help="also unseal and restore the newest snapshot into a scratch target (needs shares)")
    p.add_argument("--max-quorum-age", metavar="DURATION",
                   help="fail when the last successful `keys test-quorum` of the expected key is older (e.g. 90d)")
    p.add_argument("--prometheus", metavar="FILE",
                   help="write the verdict as a node_exporter textfile (e.g. .../textfile/enigm_readiness.prom)")
    p.add_argument("--retention", action="store_true",
                   help="also fail when a snapshot is older than the retention policy keeps (the --keep-* options "
                        "or the config file's [retention]; a [retention] table turns this on by itself)")
    _add_keep_options(p)
    _add_shares_options(p)
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    _add_ssh_options(p)
    p.set_defaults(func=cmd_readiness)

    audit = sub.add_parser("audit", help="the audit logs of recoveries")
    asub = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True, parser_class=_Parser)
    p = asub.add_parser("verify", help="check that an audit log is intact",
                        description="Recompute the hash chain and compare it with the signed head: any edited, "
                                    "deleted, inserted or reordered entry, and a truncated tail, is named. "
                                    "Exit 0 only when the log is intact.")
    p.add_argument("file", metavar="FILE", help="an audit.jsonl")
    p.add_argument("--allowed-signers", metavar="F", help="check the head's signature against these signers")
    p.add_argument("--head", metavar="HASH", help="the head written down at the end of the recovery (64 hex "
                   "digits, spaces or dashes between groups allowed): the log must end there")
    p.add_argument("--entries", metavar="N", help="the entry count written down with --head")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(func=cmd_audit_verify)

    _add_runs_commands(sub)

    from enigm_recover.cli.commands_report import cmd_report

    p = sub.add_parser("report", help="the after-action report of a run: timeline, who did what, trend",
                       description="For the facilitator: each step's time waiting for people and the machine's "
                                   "time, the custodians' accepted and rejected share attempts, the errors met, "
                                   "and a trend table against earlier runs of the same runbook on this machine. "
                                   "Written as after-action.md and after-action.toml in the run's folder.")
    p.add_argument("run", metavar="RUN", help="the run's ceremony id (see `runs list --all`) or its folder")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(func=cmd_report)

    cfg = sub.add_parser("config", help="show or change the configuration file")
    csub = cfg.add_subparsers(dest="config_command", metavar="ACTION", required=True, parser_class=_Parser)
    p = csub.add_parser("show", help="effective settings and locations")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    csub.add_parser("path", help="where the config file is")
    p = csub.add_parser("set", help="set a default (source, target, allowed_signers, recipient)")
    p.add_argument("key")
    p.add_argument("value")
    p = csub.add_parser("unset", help="remove a default")
    p.add_argument("key")
    for action in ("show", "path", "set", "unset"):
        csub.choices[action].set_defaults(func=cmd_config)

    cer = sub.add_parser("ceremony", help="custodians: join a ceremony from your own session")
    cersub = cer.add_subparsers(dest="ceremony_command", metavar="ACTION", required=True, parser_class=_Parser)
    p = cersub.add_parser(
        "join", help="enter your share into the operator's ceremony on this host, from your own session",
        description="Join the ceremony an operator opened (a run with --remote-shares, or the app's quorum step) "
                    "on this host: check its id, recovery key, operator, host and what is being run, type the "
                    "ceremony id back, then your share, hidden, word by word. The operator's process learns your "
                    "OS user from the system, and its screen shows only that you joined and the verdict.",
        epilog="Without a terminal, the ceremony id typed back is read from the first line of stdin and the "
               "share from the next one (for scripts).")
    p.add_argument("ceremony", nargs="?", metavar="CEREMONY", help="the ceremony id (default: the only one open)")
    p.add_argument("--name", metavar="CUSTODIAN", help="your name as on your card (default: your login name)")
    _add_ceremony_dir(p)
    p.set_defaults(func=cmd_ceremony_join)
    p = cersub.add_parser(
        "seal-share", help="seal your share for a ceremony you join from afar (prints an armored age message)",
        description="On your own machine (it may be offline): check your share, typed hidden word by word, and seal "
                    "it to the ceremony's recipient, bound to its id, with your name inside. Send the printed message "
                    "to the operator over any channel; only that ceremony's process can open it, and only once.",
        epilog="The operator pastes the message into the app's quorum step, or into the terminal of a run with "
               "--remote-shares. Without a terminal, the share is read from the first line of stdin.")
    p.add_argument("--to", required=True, metavar="RECIPIENT", help="the ceremony's age recipient (age1...)")
    p.add_argument("--ceremony", required=True, metavar="ID", help="the ceremony id the operator gave you")
    p.add_argument("--name", metavar="CUSTODIAN", help="your name as on your card (default: your login name)")
    p.set_defaults(func=cmd_ceremony_seal_share)

    p = sub.add_parser(
        "completion", help="print a shell completion script (bash, zsh or fish)",
        description="Print the completion script of SHELL, generated from these very options.",
        epilog="bash: enigm-recover completion bash > ~/.local/share/bash-completion/completions/enigm-recover;  "
               "zsh: enigm-recover completion zsh > a folder of $fpath as _enigm-recover;  "
               "fish: enigm-recover completion fish > ~/.config/fish/completions/enigm-recover.fish")
    p.add_argument("shell", metavar="SHELL", choices=SHELLS, help="bash, zsh or fish")
    p.set_defaults(func=cmd_completion)
    _add_log_options(parser)
    return parser


def _add_ceremony_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ceremony-dir", metavar="DIR",
                   help="where ceremonies open (env ENIGM_RECOVER_CEREMONY_DIR; default /run/enigm-recover/ceremonies)")


def _add_remote_shares(p: argparse.ArgumentParser) -> None:
    p.add_argument("--remote-shares", action="store_true",
                   help="custodians join from their own sessions on this host (`enigm-recover ceremony join`), "
                        "or from afar with sealed shares pasted here (`ceremony seal-share`): the ceremony opens on "
                        "a socket only the custodians' group can reach")
    p.add_argument("--sealed-share", metavar="FILE", action="append", default=[],
                   help="a custodian's sealed share (`ceremony seal-share`), offered as soon as FILE holds the whole "
                        "armored message: the run waits for it while the ceremony is open, since the share can only "
                        "be sealed to the recipient this run shows (repeatable; implies --remote-shares)")
    _add_ceremony_dir(p)


def _add_log_options(parser: argparse.ArgumentParser, top: bool = True) -> None:
    """-v and --debug, before or after the command (a command's own copy leaves the top level's value)."""
    default: Any = {"verbose": 0, "debug": False} if top else {"verbose": argparse.SUPPRESS,
                                                                "debug": argparse.SUPPRESS}
    g = parser.add_argument_group("diagnostics (on stderr; never a secret)") if top else parser
    g.add_argument("-v", "--verbose", action="count", default=default["verbose"],
                   help="say what is being done: connections, steps, files")
    g.add_argument("--debug", action="store_true", default=default["debug"],
                   help="also SSH negotiation (algorithms, authentication) and timings")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _add_log_options(sub, top=False)


def _add_kind_option(p: argparse.ArgumentParser) -> None:
    """--kind: the kind of a new recovery key."""
    p.add_argument("--kind", choices=("hybrid", "x25519"), default="hybrid",
                   help="the new recovery key's kind: hybrid (post-quantum ML-KEM-768 + X25519, age1pq1..., "
                        "opened by age 1.3 or newer) or x25519 (classic age1...) (default %(default)s)")


def _count(text: str) -> int:
    """A number of things to show: a whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is less than 0")
    return value
