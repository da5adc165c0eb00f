"""A synthetic Enigm platform that grows day by day, reproducibly from a seed.

Ids derive from a keyed hash of a record's index, so any record can be named
without keeping a list, and millions of records generate in seconds. Random
bytes stand in for public keys.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import islice
from typing import Iterator

from enigm_recover.prefetch import prefetched
from enigm_recover.state.model import DEVICE, IDENTITY, ROLE, SETTING
from enigm_recover.state.sqlite_store import SQLiteStore

_ADJECTIVES = ("amber", "brisk", "calm", "dusky", "eager", "fabled", "gentle", "hazel", "ivory", "jolly",
               "keen", "lucid", "mellow", "noble", "olive", "plucky", "quiet", "rustic", "sunny", "tidal",
               "umber", "vivid", "wry", "young", "zesty")
_NOUNS = ("falcon", "otter", "harbor", "meadow", "comet", "lantern", "willow", "badger", "cedar", "delta",
          "ember", "fjord", "glacier", "heron", "island", "juniper", "kestrel", "lagoon", "maple", "nebula",
          "orchid", "pebble", "quartz", "raven", "sparrow", "thistle", "upland", "valley", "walrus", "zephyr")

SETTINGS: dict[str, object] = {
    "auth.mfa_required": True,
    "auth.session_max_age_hours": 12,
    "auth.password_min_length": 14,
    "device.max_per_account": 10,
    "device.enrollment_requires_approval": True,
    "device.inactivity_retire_days": 180,
    "keys.identity_rotation_days": 365,
    "keys.prekey_batch_size": 100,
    "audit.retention_days": 400,
    "recovery.quorum": {"threshold": 3, "shares": 5},
    "admin.two_person_rule": True,
    "network.allowed_admin_cidrs": ["10.20.0.0/16"],
}

OPERATORS = (
    ("ops.amara", "security-admin", "bootstrap"),
    ("ops.bastien", "security-admin", "ops.amara"),
    ("ops.chen", "device-operator", "ops.amara"),
    ("ops.dagny", "identity-operator", "ops.bastien"),
    ("ops.emeka", "auditor", "ops.amara"),
    ("ops.farah", "device-operator", "ops.bastien"),
    ("ops.goran", "recovery-custodian", "ops.amara"),
)


def _batches(rows: Iterator[tuple[object, ...]], size: int = 4096) -> Iterator[list[tuple[object, ...]]]:
    while batch := list(islice(rows, size)):
        yield batch


def ts(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class SyntheticPlatform:
    seed: int
    identities: int
    devices_per_identity: int
    genesis: datetime
    rng: random.Random = field(init=False)
    next_account: int = field(init=False)
    next_device: int = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._key = hashlib.sha256(f"enigm-drill-{self.seed}".encode()).digest()[:16]
        self._epoch = int(self.genesis.timestamp())
        self._dates: dict[int, str] = {}
        self.next_account = self.identities
        self.next_device = self.identities * self.devices_per_identity

    # -- naming ------------------------------------------------------------

    def _token(self, label: bytes, index: int) -> str:
        return hashlib.blake2b(label + index.to_bytes(8, "big"), key=self._key, digest_size=8).hexdigest()

    def _stamp(self, seconds: int) -> str:
        """The UTC time ``seconds`` after genesis, formatted without datetime arithmetic (hot path)."""
        day, rest = divmod(self._epoch + seconds, 86400)  # days since 1970-01-01, seconds into the day
        date = self._dates.get(day)
        if date is None:
            date = self._dates[day] = datetime.fromtimestamp(day * 86400, timezone.utc).strftime("%Y-%m-%d")
        hours, rest = divmod(rest, 3600)
        return f"{date}T{hours:02d}:{rest // 60:02d}:{rest % 60:02d}Z"

    def account_id(self, index: int) -> str:
        return "acct_" + self._token(b"a", index)

    def device_id(self, index: int) -> str:
        return "dev_" + self._token(b"d", index)

    def handle(self, index: int) -> str:
        r = self._token(b"h", index)
        return f"{_ADJECTIVES[ord(r[0]) % len(_ADJECTIVES)]}.{_NOUNS[ord(r[1]) % len(_NOUNS)]}{index}"

    def public_key(self) -> str:
        return base64.b64encode(self.rng.randbytes(32)).decode()

    # -- the base platform ---------------------------------------------------

    def _identity_rows(self) -> Iterator[tuple[object, ...]]:
        span = 86400 * 365
        for i in range(self.identities):
            created = self._stamp(self.rng.randrange(span))
            yield (self.account_id(i), self.handle(i), self.public_key(), 1, "active", created, created)

    def _device_rows(self) -> Iterator[tuple[object, ...]]:
        span, day = 86400 * 365, 86400
        rng = self.rng
        per = self.devices_per_identity
        account = ""
        for d in range(self.identities * per):
            if d % per == 0:  # an identity's devices follow each other: its id is made once
                account = self.account_id(d // per)
            enrolled = rng.randrange(span)
            roll = rng.random()
            if roll < 0.86:
                state, reason, changed = "active", "", enrolled
            elif roll < 0.93:
                state, reason, changed = "retired", "replaced", enrolled + day * rng.randrange(1, 200)
            elif roll < 0.96:
                state, reason = "revoked", rng.choice(("lost", "compromised", "user-request"))
                changed = enrolled + day * rng.randrange(1, 200)
            elif roll < 0.98:
                state, reason, changed = "suspended", "admin-review", enrolled + day * rng.randrange(1, 60)
            else:
                state, reason, changed = "pending", "", enrolled
            yield (self.device_id(d), account, self.public_key(), state, self._stamp(enrolled), self._stamp(changed),
                   reason)

    def build(self, store: SQLiteStore) -> None:
        store.init_schema()
        store.conn.execute("PRAGMA synchronous=OFF")
        with store.transaction():
            # Rows are made on a thread of their own while SQLite inserts the ones before (it releases the GIL
            # as it steps): the two overlap. The rows and their order are the same as made in line.
            store.insert_many(IDENTITY, prefetched(_batches(self._identity_rows())))
            store.insert_many(DEVICE, prefetched(_batches(self._device_rows())))
            when = ts(self.genesis)
            store.insert_many(SETTING, ((k, json.dumps(v, sort_keys=True), when) for k, v in SETTINGS.items()))
            store.insert_many(ROLE, ((op, role, by, when) for op, role, by in OPERATORS))
        store.conn.execute("PRAGMA synchronous=FULL")

    # -- change over time ----------------------------------------------------

    def _sample(self, population: int, fraction: float, minimum: int = 1) -> list[int]:
        k = min(population, max(minimum, int(population * fraction)))
        return self.rng.sample(range(population), k)

    def add_accounts(self, store: SQLiteStore, count: int, when: datetime) -> list[str]:
        ids = []
        identity_rows, device_rows = [], []
        for _ in range(count):
            a = self.next_account
            self.next_account += 1
            ids.append(self.account_id(a))
            identity_rows.append((self.account_id(a), self.handle(a), self.public_key(), 1, "active", ts(when), ts(when)))
            for _ in range(max(1, self.devices_per_identity)):
                d = self.next_device
                self.next_device += 1
                device_rows.append((self.device_id(d), self.account_id(a), self.public_key(), "active",
                                    ts(when), ts(when), ""))
        with store.transaction():
            store.insert_many(IDENTITY, identity_rows)
            store.insert_many(DEVICE, device_rows)
        return ids

    def revoke_devices(self, store: SQLiteStore, fraction: float, when: datetime, reason: str) -> list[str]:
        """Legitimately revoke some active devices; returns their ids."""
        ids = [self.device_id(d) for d in self._sample(self.next_device, fraction)]
        with store.transaction() as conn:
            revoked = []
            for device_id in ids:
                cur = conn.execute(
                    "UPDATE devices SET state='revoked', reason=?, state_changed_at=? "
                    "WHERE device_id=? AND state IN ('active','suspended','pending')",
                    (reason, ts(when), device_id))
                if cur.rowcount:
                    revoked.append(device_id)
        return revoked

    def rotate_keys(self, store: SQLiteStore, fraction: float, when: datetime) -> list[str]:
        ids = [self.account_id(a) for a in self._sample(self.next_account, fraction)]
        with store.transaction() as conn:
            for account_id in ids:
                conn.execute(
                    "UPDATE identities SET identity_key=?, key_version=key_version+1, updated_at=? "
                    "WHERE account_id=?", (self.public_key(), ts(when), account_id))
        return ids

    def evolve_day(self, store: SQLiteStore, when: datetime) -> None:
        """One ordinary day: sign-ups, a few revocations and key rotations."""
        self.add_accounts(store, max(1, self.identities // 200), when)
        self.revoke_devices(store, 0.002, when, "lost")
        self.rotate_keys(store, 0.002, when)
