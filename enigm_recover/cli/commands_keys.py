"""Commands for stores, the key ceremony and the configuration file."""

from __future__ import annotations

from pathlib import Path

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
