"""Commands for stores, the key ceremony and the configuration file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from enigm_recover.cli.context import Context, read_passphrase
from enigm_recover.cli.output import emit_json
from enigm_recover.errors import UsageError


def cmd_target_init(ctx: Context) -> int:
    from enigm_recover.state.stores import open_store

    with open_store(ctx.args.url, create=True) as store:
        store.init_schema()
        print(f"created the schema in {store.display}")
    return 0


def cmd_keys_init(ctx: Context) -> int:
    from enigm_recover.quorum.keygen import GroupSpec, create_recovery_key
    from enigm_recover.quorum.recipients import RecipientKind

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
                                          groups=groups, out_dir=Path(args.out), passphrase=passphrase,
                                          kind=RecipientKind(args.kind))
    result = {"recipient": identity.recipient, "fingerprint": identity.fingerprint, "kind": identity.kind.value,
              "recipient_file": str(Path(args.out) / "recovery.pub"), "cards": [str(c) for c in cards]}
    if args.json:
        emit_json(result)
        return 0
    print(f"recovery key {identity.fingerprint}")
    print(f"  kind       {identity.kind.value}: {identity.kind.label}")
    print(f"  recipient  {result['recipient_file']}")
    for card in cards:
        print(f"  share card {card}")
    print("Hand each card to its custodian; keep no copy together. The secret itself was not written.")
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


# -- the key's lifecycle ----------------------------------------------------------------


def _recipient_arg(ctx: Context, required: bool = True) -> Any:
    from enigm_recover.quorum.keyring import read_recipient

    path = ctx.required(ctx.args.recipient, "recipient", "--recipient") if required else \
        ctx.setting(ctx.args.recipient, "recipient")
    return read_recipient(Path(path)) if path else None


def _ask_words_one_by_one() -> tuple[str, str]:
    """A card's words asked hidden, one at a time; a word not in the list is asked again, by position."""
    import getpass
    import sys

    from enigm_recover.bounded import bounded_lines
    from enigm_recover.quorum.entry import SHARE_WORDS, complete_word
    from shamir_mnemonic.wordlist import WORD_INDEX_MAP

    if not sys.stdin.isatty():  # a script: the words on standard input
        text = " ".join(line for line in bounded_lines(getattr(sys.stdin, "buffer", sys.stdin)))
        return text, ""
    print(f"Type the {SHARE_WORDS} words of your card, one at a time (input hidden; the first four letters "
          "of a word are enough).", file=sys.stderr)
    words: list[str] = []
    while len(words) < SHARE_WORDS:
        token = getpass.getpass(f"word {len(words) + 1} of {SHARE_WORDS}: ").strip().lower()
        word = token if token in WORD_INDEX_MAP else complete_word(token)
        if word is None:
            print(f"word {len(words) + 1} is not in the SLIP-39 word list: type it again", file=sys.stderr)
            continue
        words.append(word)
    return " ".join(words), ""


def cmd_keys_check(ctx: Context) -> int:
    """Check cards one by one; nothing is combined; the audit log holds each verdict (never a word)."""
    import sys

    from enigm_recover.bounded import SHARE_FILE, read_text_bounded
    from enigm_recover.cli.context import open_recovery
    from enigm_recover.cli.commands_snapshots import recovery_facts
    from enigm_recover.errors import EnigmError
    from enigm_recover.paths import display_text
    from enigm_recover.quorum.cardcheck import CardHeader, check_card, parse_header
    from enigm_recover.quorum.cards import parse_share_text

    args = ctx.args
    recipient = _recipient_arg(ctx, required=False)
    results: list[dict[str, Any]] = []
    first_failure: EnigmError | None = None
    with open_recovery(ctx, "keys check") as recovery:
        sources: list[tuple[str, str, CardHeader]] = []
        if args.cards:
            for name in args.cards:
                text = read_text_bounded(Path(name), SHARE_FILE, "share card")
                assert text is not None
                sources.append((name, parse_share_text(text).words, parse_header(text)))
        else:
            words, _ = _ask_words_one_by_one()
            sources.append(("(typed)", words, CardHeader()))
        for name, words, header in sources:
            name = display_text(name)  # a path's raw bytes as \xNN: the audit log and the report are UTF-8 text
            try:
                verdict = check_card(words, header, recipient)
            except EnigmError as exc:
                first_failure = first_failure or exc
                results.append({"card": name, "ok": False, "exit_code": exc.exit_code, "error": exc.message,
                                "hint": exc.hint, "custodian": header.custodian})
                recovery.record("card-checked", outcome="refused",
                                inputs={"card": name, "custodian": header.custodian or "", "reason": exc.message})
                continue
            results.append({"card": name, **verdict.as_dict()})
            recovery.record("card-checked", outcome="ok",
                            inputs={"card": name, "custodian": verdict.custodian or "", "set_id": verdict.set_id,
                                    "group": verdict.group, "member_index": verdict.member,
                                    "recipient_fingerprint": verdict.recipient_fingerprint or "",
                                    "belongs": verdict.belongs})
        recovery.close("completed" if first_failure is None else "failed",
                       "" if first_failure is None else first_failure.message)
    if args.json:
        emit_json({"ok": first_failure is None, "cards": results, "recovery": recovery_facts(recovery)})
    else:
        for r in results:
            if not r["ok"]:
                print(f"{r['card']}: NOT OK: {r['error']} — {r['hint']}")
                continue
            who = f" ({r['custodian']})" if r["custodian"] else ""
            print(f"{r['card']}{who}: OK — a well-formed share of set {r['set_id']}: group {r['group']} of "
                  f"{r['group_count']} ({r['group_threshold']} group(s) needed), member {r['member']} "
                  f"(this group needs {r['member_threshold']})")
            if r["kind"]:
                from enigm_recover.quorum.recipients import RecipientKind

                print(f"  kind of key: {r['kind']} ({RecipientKind(r['kind']).label})")
            if r["belongs"]:
                print(f"  belongs to recovery key {r['recipient_fingerprint']}")
            elif r["belongs"] is None:
                print("  not checked against a recovery key (give --recipient recovery.pub)")
            for line in r["evidence"]:
                print(f"  - {line}")
        print(f"audit log {recovery.folder / 'audit.jsonl'}", file=sys.stderr)
    if first_failure is not None:
        if args.json:
            return first_failure.exit_code
        raise first_failure
    return 0


def cmd_keys_test_quorum(ctx: Context) -> int:
    """Combine the custodians' shares in memory, compare the derived recipient with recovery.pub, forget."""
    import sys

    from enigm_recover.cli.commands_snapshots import recovery_facts
    from enigm_recover.cli.context import enter_shares, open_recovery
    from enigm_recover.recovery.quorum_session import QuorumSession
    from enigm_recover.recovery.quorum_test import prove_quorum

    args = ctx.args
    recipient = _recipient_arg(ctx)
    with open_recovery(ctx, "keys test-quorum") as recovery:
        recovery.record("quorum-test-opened", inputs={"recipient_fingerprint": recipient.fingerprint,
                                                      "recipient_file": str(recipient.path)})
        quorum = QuorumSession(recovery, recipient.fingerprint, recipient.recipient)
        enter_shares(ctx, quorum)
        try:
            test = prove_quorum(recovery, quorum, recipient.recipient, recipient.fingerprint, read_passphrase(args))
        except Exception:
            recovery.close("failed", "the quorum did not combine to the key")
            raise
        recovery.close("completed", "the quorum combines to the key")
    if args.json:
        emit_json({**test.as_dict(), "recovery": recovery_facts(recovery)})
    else:
        names = ", ".join(str(c["custodian"]) for c in test.custodians)
        print(f"quorum proven: the shares of {names} combine to {recipient.fingerprint}; nothing was kept")
        print(f"report {recovery.folder / 'report.md'}")
        print(f"audit log {recovery.folder / 'audit.jsonl'} (head {recovery.audit.head})", file=sys.stderr)
    return 0


def _new_split(args: Any) -> Any:
    """The new cards' split, from the same options as ``keys init`` (and the new cards' passphrase)."""
    from enigm_recover.bounded import PASSPHRASE_FILE, read_text_bounded
    from enigm_recover.cli.context import ask_hidden
    from enigm_recover.quorum.keygen import GroupSpec, validate_plan
    from enigm_recover.quorum.lifecycle import NewSplit

    if args.group:
        if args.shares is not None:
            raise UsageError("give either --shares (one group) or --group K/N (several), not both")
        groups, group_threshold = [GroupSpec.parse(g) for g in args.group], args.threshold
    else:
        if args.shares is None:
            raise UsageError("--shares N is required without --group")
        groups, group_threshold = [GroupSpec(args.threshold, args.shares)], 1
    validate_plan(group_threshold, groups, args.custodian)  # before any custodian types a share
    passphrase = ""
    if args.new_passphrase_file:
        passphrase = (read_text_bounded(Path(args.new_passphrase_file), PASSPHRASE_FILE, "passphrase file")
                      or "").rstrip("\r\n")
    elif args.ask_new_passphrase:
        passphrase = ask_hidden("SLIP-39 passphrase of the new cards: ")
        if ask_hidden("Repeat it: ") != passphrase:
            raise UsageError("the two passphrases differ", "run the command again")
    if not all(32 <= ord(c) <= 126 for c in passphrase):
        raise UsageError("a SLIP-39 passphrase may hold only printable ASCII characters")
    from enigm_recover.quorum.recipients import DEFAULT_KIND, RecipientKind

    return NewSplit(args.custodian, group_threshold, groups, passphrase,
                    RecipientKind(getattr(args, "kind", None) or DEFAULT_KIND))


def _change_key(ctx: Context, command: str) -> int:
    """keys rotate / keys reshare: a quorum of the current key, then new cards (and, to rotate, a new key)."""
    import sys

    from enigm_recover.cli.commands_snapshots import recovery_facts
    from enigm_recover.cli.context import gather_shares, open_recovery
    from enigm_recover.quorum import lifecycle

    args = ctx.args
    old = _recipient_arg(ctx)
    split = _new_split(args)
    out = Path(args.out)
    if (out / "recovery.pub").exists():
        from enigm_recover.errors import OutputExistsError

        raise OutputExistsError(f"{out / 'recovery.pub'} already exists; new cards go to a new folder")
    if command == "keys reshare":
        print(f"enigm-recover: {lifecycle.RESHARE_WARNING}", file=sys.stderr)
    elif old.retired:
        from enigm_recover.errors import RecoveryKeyRetired

        raise RecoveryKeyRetired(f"{old.path} is already retired ({old.retired})")
    with open_recovery(ctx, command) as recovery:
        identity = gather_shares(ctx, old.fingerprint, recovery)
        if command == "keys rotate":
            change = lifecycle.rotate(identity, old, split, out, args.reason)
        else:
            change = lifecycle.reshare(identity, old, split, out)
        del identity
        recovery.record("key-rotated" if command == "keys rotate" else "key-reshared", step=command.split()[1],
                        inputs={"old_fingerprint": change.old_fingerprint, "new_fingerprint": change.new_fingerprint,
                                "old_set_id": change.old_set_id, "new_set_id": change.new_set_id,
                                "custodians": split.custodians, "out": str(out),
                                "reason": getattr(args, "reason", "") or ""},
                        detail=f"{change.old_fingerprint} -> {change.new_fingerprint}, set {change.new_set_id}")
        recovery.close("completed")
    result = {"old_fingerprint": change.old_fingerprint, "new_fingerprint": change.new_fingerprint,
              "new_set_id": change.new_set_id, "recipient_file": str(out / "recovery.pub"),
              "keyring": str(out / "keys.toml"), "cards": [str(c) for c in change.cards],
              "old_cards_still_work": command == "keys reshare", "recovery": recovery_facts(recovery)}
    if args.json:
        emit_json(result)
        return 0
    if command == "keys rotate":
        print(f"new recovery key {change.new_fingerprint} (set {change.new_set_id}) in {out}")
        print(f"  retired {change.old_fingerprint}: {old.path} is marked retired; seal now refuses it")
        print("  snapshots sealed to the old key still need its old quorum: `keys rewrap` moves them to the new key")
    else:
        print(f"recovery key {change.new_fingerprint}: new cards (set {change.new_set_id}) in {out}")
        print(f"  {lifecycle.RESHARE_WARNING}")
    for card in change.cards:
        print(f"  share card {card}")
    return 0


def cmd_keys_rotate(ctx: Context) -> int:
    return _change_key(ctx, "keys rotate")


def cmd_keys_reshare(ctx: Context) -> int:
    return _change_key(ctx, "keys reshare")


def cmd_keys_rewrap(ctx: Context) -> int:
    """Move snapshots to the new key: only each age header changes; the manifests are signed again."""
    import sys

    from enigm_recover.cli.commands_snapshots import recovery_facts
    from enigm_recover.cli.context import ask_hidden, gather_shares, open_recovery
    from enigm_recover.cli.output import progress_for
    from enigm_recover.quorum.keyring import load_keyring, read_recipient, refuse_retired
    from enigm_recover.recovery import rewrap as rewrapping
    from enigm_recover.snapshot.signature import load_signing_key

    args = ctx.args
    if bool(args.ids) == bool(args.all):
        raise UsageError("name the snapshots to rewrap (ID ...) or give --all, not both")
    new = read_recipient(Path(args.to))
    refuse_retired(new)
    old_fp = read_recipient(Path(args.from_recipient)).fingerprint if args.from_recipient else None
    if old_fp is None:  # after `keys rotate`, the keyring beside the new key names the key it replaced
        replaced = [k for k in load_keyring(new.path.parent) if k.replaced_by == new.fingerprint]
        old_fp = replaced[-1].fingerprint if len(replaced) == 1 else None
    allowed = ctx.allowed_signers()
    key = load_signing_key(Path(args.sign_key), ask_hidden)
    folder = Path(ctx.required(args.source, "source", "SOURCE"))
    todo = rewrapping.plan(folder, args.ids or [], args.all, new.recipient, key, allowed, old_fp)
    with open_recovery(ctx, "keys rewrap") as recovery:
        recovery.record("rewrap-planned", inputs={"source": str(folder), "new_fingerprint": new.fingerprint,
                                                  "old_fingerprint": todo.old_fingerprint or "",
                                                  "snapshots": [m.id for m in todo.todo], "already": todo.already,
                                                  "not_covered": todo.not_covered})
        identity = gather_shares(ctx, todo.old_fingerprint, recovery) if todo.todo else None
        results = rewrapping.run(recovery, todo, identity, key, allowed, progress_for(args))
        del identity
        recovery.close("completed", f"{len(results)} snapshot(s) rewrapped to {new.fingerprint}")
    doc = {"new_fingerprint": new.fingerprint, "old_fingerprint": todo.old_fingerprint,
           "rewrapped": [r.__dict__ for r in results], "resumed": [r.id for r in todo.resumed],
           "already": todo.already, "not_covered": todo.not_covered, "recovery": recovery_facts(recovery)}
    if args.json:
        emit_json(doc)
        return 0
    for r in todo.resumed:
        print(f"{r.id}: interrupted rewrap finished (now {r.new_fingerprint})")
    for r in results:
        print(f"{r.id}: rewrapped {r.old_fingerprint} -> {r.new_fingerprint} (payload SHA-256 {r.new_sha256})")
    for snapshot_id in todo.already:
        print(f"{snapshot_id}: already sealed to {new.fingerprint}")
    for line in todo.not_covered:
        print(f"{line}: not covered (it keeps working with its own key)")
    print(f"audit log {recovery.folder / 'audit.jsonl'} (head {recovery.audit.head})", file=sys.stderr)
    return 0


# -- parser ----------------------------------------------------------------------
