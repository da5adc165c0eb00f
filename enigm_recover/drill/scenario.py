"""A complete, reproducible tabletop exercise.

Builds a synthetic platform, a producer signing key and allowed_signers, a
3-of-5 recovery key among five custodians, snapshots sealed over simulated
days, and a live target damaged by an incident after the last snapshot —
with some legitimate changes in between, so the dry run has real safety
findings to show. Everything is named in ``drill.toml``.

Drill keys derive from the seed so a drill is reproducible; they protect
nothing and must never be used for real data.
"""

from __future__ import annotations

import hashlib
import random
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import asyncssh
import tomli_w
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from enigm_recover.atomic import write_atomic
from enigm_recover.private import make_private_dir
from enigm_recover.drill.platform import SyntheticPlatform, ts
from enigm_recover.errors import OutputExistsError, UsageError
from enigm_recover.paths import display_text
from enigm_recover.progress import ProgressCallback, no_progress
from enigm_recover.quorum.keygen import RECIPIENT_FILE, GroupSpec, create_recovery_key
from enigm_recover.quorum.recipients import DEFAULT_KIND, RecipientKind
from enigm_recover.snapshot.seal import seal
from enigm_recover.sources.local import LocalFolderSource
from enigm_recover.snapshot.signature import NAMESPACE
from enigm_recover.state.sqlite_store import SQLiteStore

DRILL_FILE = "drill.toml"
CUSTODIANS = ("amara", "bastien", "chen", "dagny", "emeka")
PRODUCER = "backup@drill"
ENVIRONMENT = "drill"


@dataclass(frozen=True)
class DrillSpec:
    identities: int = 200
    devices_per_identity: int = 3
    seed: int = 1
    snapshots: int = 3
    at: datetime | None = None  # the incident's "now"; defaults to the current minute
    kind: RecipientKind = DEFAULT_KIND  # the recovery key's kind


@dataclass(frozen=True)
class IncidentSummary:
    devices_deleted: int
    identities_altered: int
    settings_altered: int
    roles_added: int
    roles_removed: int
    devices_revoked_after_snapshot: int
    accounts_created_after_snapshot: int
    keys_rotated_after_snapshot: int


def _seeded_bytes(seed: int, label: str) -> Callable[[int], bytes]:
    rng = random.Random(hashlib.sha256(f"{label}:{seed}".encode()).digest())
    return rng.randbytes


def _producer_key(seed: int) -> asyncssh.SSHKey:
    raw = _seeded_bytes(seed, "producer-key")(32)
    pem = Ed25519PrivateKey.from_private_bytes(raw).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    key = asyncssh.import_private_key(pem)
    key.set_comment(PRODUCER)
    return key


def prepare_folder(folder: Path, replace: bool) -> None:
    if folder.exists() and any(folder.iterdir()):
        if not (folder / DRILL_FILE).exists():
            raise OutputExistsError(f"{folder} is not empty and holds no drill; refusing to touch it")
        if not replace:
            raise OutputExistsError(f"{folder} already holds a drill", "pass --replace to make a new one there")
        shutil.rmtree(folder)
    make_private_dir(folder, "drill folder")


def _incident(platform: SyntheticPlatform, store: SQLiteStore, when: datetime) -> tuple[int, int, int, int, int]:
    device_ids = [platform.device_id(d) for d in platform._sample(platform.next_device, 0.08)]
    account_ids = [platform.account_id(a) for a in platform._sample(platform.identities, 0.02)]
    with store.transaction() as conn:
        deleted = sum(conn.execute("DELETE FROM devices WHERE device_id=?", (d,)).rowcount for d in device_ids)
        altered = 0
        for account_id in account_ids:
            altered += conn.execute(
                "UPDATE identities SET identity_key=?, status='suspended', handle='x' || handle, updated_at=? "
                "WHERE account_id=?", (platform.public_key(), ts(when), account_id)).rowcount
        settings = 0
        for key in ("auth.mfa_required", "admin.two_person_rule"):
            settings += conn.execute("UPDATE settings SET value='false', updated_at=? WHERE key=?",
                                     (ts(when), key)).rowcount
        conn.execute("INSERT INTO roles VALUES ('ops.mallory', 'security-admin', 'ops.mallory', ?)", (ts(when),))
        removed = conn.execute("DELETE FROM roles WHERE operator='ops.emeka'").rowcount
    return deleted, altered, settings, 1, removed


EARLIEST_AT = datetime(1980, 1, 1, tzinfo=timezone.utc)
LATEST_AT = datetime(9000, 1, 1, tzinfo=timezone.utc)


def make_drill(folder: Path, spec: DrillSpec, *, replace: bool = False,
               progress: ProgressCallback = no_progress) -> dict[str, Any]:
    """Build the drill in ``folder``; returns the contents written to drill.toml."""
    if spec.identities < 10 or spec.devices_per_identity < 1 or not 1 <= spec.snapshots <= 30:
        raise UsageError("a drill needs at least 10 identities, 1 device each and 1 to 30 snapshots")
    at = (spec.at or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(second=0, microsecond=0)
    if not EARLIEST_AT <= at <= LATEST_AT:  # the drill dates its history years before the incident
        raise UsageError(f"the incident time {at:%Y-%m-%dT%H:%M:%SZ} is out of range: it must be between "
                         f"{EARLIEST_AT:%Y-%m-%d} and {LATEST_AT:%Y-%m-%d}", "e.g. --at 2026-11-27T12:00:00Z")
    where = str(folder.resolve())
    if display_text(where) != where:
        raise UsageError(f"drill folder {display_text(where)} is not UTF-8 text, and drill.toml records the drill's "
                         "paths as text", "choose a drill folder whose path is UTF-8")
    prepare_folder(folder, replace)
    folder = folder.resolve()
    keys_dir, cards_dir, snap_dir = folder / "keys", folder / "custodians", folder / "snapshots"
    for d in (keys_dir, cards_dir, snap_dir):
        make_private_dir(d, exclusive=True)

    producer = _producer_key(spec.seed)
    write_atomic(keys_dir / "producer", producer.export_private_key(), mode=0o600)
    write_atomic(keys_dir / "producer.pub", producer.export_public_key())
    allowed = keys_dir / "allowed_signers"
    public_line = producer.export_public_key().decode().strip()
    write_atomic(allowed, f'{PRODUCER} namespaces="{NAMESPACE}" {public_line}\n'.encode())

    identity, _cards = create_recovery_key(
        custodians=list(CUSTODIANS), group_threshold=1, groups=[GroupSpec(3, 5)], out_dir=cards_dir,
        random_bytes=_seeded_bytes(spec.seed, "recovery-key"), kind=spec.kind)

    platform = SyntheticPlatform(spec.seed, spec.identities, spec.devices_per_identity,
                                 genesis=at - timedelta(days=400))
    target = folder / "live.db"
    ids = []
    token_rng = random.Random(spec.seed)
    with SQLiteStore(target, create=True) as store:
        platform.build(store)
        for day in range(spec.snapshots, 0, -1):
            when = at - timedelta(days=day)
            if day != spec.snapshots:
                platform.evolve_day(store, when - timedelta(hours=6))
            manifest = seal(store, recipient=identity.recipient, signing_key=producer, environment=ENVIRONMENT,
                            producer=PRODUCER, out_dir=snap_dir, existing=LocalFolderSource(snap_dir).list(),
                            created_at=when,
                            id_token=token_rng.randbytes(4).hex(), progress=progress)
            ids.append(manifest.id)
        # Legitimate changes after the last snapshot: the restore must respect them.
        after = at - timedelta(hours=12)
        revoked = platform.revoke_devices(store, 0.01, after, "compromised")
        created = platform.add_accounts(store, max(1, spec.identities // 100), after)
        rotated = platform.rotate_keys(store, 0.005, after)
        # The incident itself.
        deleted, altered, settings, added, removed = _incident(platform, store, at - timedelta(hours=2))

    incident = IncidentSummary(deleted, altered, settings, added, removed, len(revoked), len(created), len(rotated))
    doc: dict[str, Any] = {
        "drill": {
            "seed": spec.seed,
            "identities": spec.identities,
            "devices_per_identity": spec.devices_per_identity,
            "incident_at": at,
            "note": "Drill keys derive from the seed: they protect nothing. Never use them for real data.",
        },
        "paths": {
            "snapshots": str(snap_dir),
            "target": f"sqlite:///{target}",
            "allowed_signers": str(allowed),
            "recipient": str(cards_dir / RECIPIENT_FILE),
            "signing_key": str(keys_dir / "producer"),
        },
        "recovery": {"fingerprint": identity.fingerprint, "kind": identity.kind.value, "threshold": 3, "shares": 5},
        "custodians": {name: str(cards_dir / f"{name}.share.txt") for name in CUSTODIANS},
        "snapshots": {"ids": ids, "latest": ids[-1], "producer": PRODUCER, "environment": ENVIRONMENT},
        "incident": incident.__dict__,
    }
    write_atomic(folder / DRILL_FILE, tomli_w.dumps(doc).encode())
    return doc


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def brief(inc: dict[str, Any]) -> str:
    """The incident and what happened legitimately after the last snapshot, from the drill's own counts."""
    return (f"The incident: {_count(inc['devices_deleted'], 'device', 'devices')} deleted, "
            f"{_count(inc['identities_altered'], 'identity', 'identities')} altered (identity key replaced, "
            f"account suspended, handle changed), {_count(inc['settings_altered'], 'security setting', 'security settings')} "
            f"weakened, {_count(inc['roles_added'], 'rogue operator role', 'rogue operator roles')} added and "
            f"{_count(inc['roles_removed'], 'auditor role', 'auditor roles')} removed.\n"
            f"Legitimately after the last snapshot: {_count(inc['devices_revoked_after_snapshot'], 'device', 'devices')} "
            f"revoked, {_count(inc['accounts_created_after_snapshot'], 'account', 'accounts')} created and "
            f"{_count(inc['keys_rotated_after_snapshot'], 'identity key', 'identity keys')} rotated: a restore must not "
            "undo those.")


def describe(doc: dict[str, Any], program: str = "enigm-recover") -> str:
    """What the drill made and how a facilitator continues, as plain text; ``program`` is how the commands
    name the tool (a full path when it is not on PATH), so they work when pasted."""
    paths, inc = doc["paths"], doc["incident"]
    cards = "\n".join(f"    {name:<8} {path}" for name, path in doc["custodians"].items())
    cards_args = " ".join(f"--share-file {doc['custodians'][name]}" for name in ("amara", "chen", "emeka"))
    return f"""Drill ready (seed {doc['drill']['seed']}).

  snapshots        {paths['snapshots']}  ({len(doc['snapshots']['ids'])} sealed, latest {doc['snapshots']['latest']})
  live target      {paths['target']}
  allowed_signers  {paths['allowed_signers']}
  recovery key     {paths['recipient']}  ({doc['recovery']['fingerprint']}, {doc['recovery'].get('kind', 'x25519')}, 3 of 5)
  share cards:
{cards}

{brief(inc)}

Continue the exercise (any three custodians' cards will do):
  {program} snapshots list {paths['snapshots']} --allowed-signers {paths['allowed_signers']}
  {program} verify {paths['snapshots']} latest --allowed-signers {paths['allowed_signers']}
  {program} diff {paths['snapshots']} latest --target {paths['target']} \\
      --allowed-signers {paths['allowed_signers']} {cards_args}
  {program} restore {paths['snapshots']} latest --target {paths['target']} \\
      --allowed-signers {paths['allowed_signers']} {cards_args} \\
      --policy identity=overwrite-changed --policy setting=overwrite-changed \\
      --policy role=overwrite-changed,delete-extra
"""
