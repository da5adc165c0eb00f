"""The key ceremony: create a recovery identity and split it among custodians.

The 32-byte secret is split with SLIP-39 (one group, or several with a group
threshold), one share card is written per custodian, and only the public
recipient is kept (``recovery.pub``). The secret itself is never written.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import shamir_mnemonic
from shamir_mnemonic import Share

from enigm_recover.atomic import write_atomic
from enigm_recover.private import make_private_dir
from enigm_recover.errors import OutputExistsError, UsageError
from enigm_recover.quorum.cards import ShareCard
from enigm_recover.quorum.keyring import KeyRecord, now_utc, record_key, save_keyring
from enigm_recover.quorum.names import CUSTODIAN_RE, custodian_name_problem  # noqa: F401 - CUSTODIAN_RE re-exported
from enigm_recover.quorum.recipients import DEFAULT_KIND, RecipientKind
from enigm_recover.quorum.recovery_key import RecoveryIdentity

RECIPIENT_FILE = "recovery.pub"


@dataclass(frozen=True)
class GroupSpec:
    threshold: int
    count: int

    @classmethod
    def parse(cls, text: str) -> "GroupSpec":
        match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
        if not match:
            raise UsageError(f"group {text!r} is not of the form K/N (e.g. 2/3)")
        return cls(int(match.group(1)), int(match.group(2)))


def validate_plan(group_threshold: int, groups: list[GroupSpec], custodians: list[str]) -> None:
    if not groups:
        raise UsageError("at least one group is needed")
    if len(groups) > 16:
        raise UsageError("SLIP-39 allows at most 16 groups")
    for g in groups:
        if not 1 <= g.threshold <= g.count <= 16:
            raise UsageError(f"group {g.threshold}/{g.count}: need 1 <= K <= N <= 16")
        if g.threshold == 1 and g.count > 1:
            raise UsageError(f"group {g.threshold}/{g.count}: a threshold of 1 with several shares "
                             "would give every holder the whole key; use 1/1 or a higher threshold")
    if not 1 <= group_threshold <= len(groups):
        raise UsageError(f"group threshold {group_threshold} must be between 1 and the {len(groups)} group(s)")
    total = sum(g.count for g in groups)
    if len(custodians) != total:
        raise UsageError(f"{total} shares need {total} custodians; {len(custodians)} were named")
    for name in custodians:
        if (problem := custodian_name_problem(name)) is not None:
            raise UsageError(f"{problem} (it names the card file)")
    if len(set(custodians)) != len(custodians):
        raise UsageError("custodian names must be distinct")


@contextmanager
def _seeded_slip39(random_bytes: Callable[[int], bytes] | None) -> Iterator[None]:
    """Let a seeded drill produce reproducible shares (shamir-mnemonic documents the hook)."""
    if random_bytes is None:
        yield
        return
    saved = shamir_mnemonic.shamir.RANDOM_BYTES
    shamir_mnemonic.shamir.RANDOM_BYTES = random_bytes
    try:
        yield
    finally:
        shamir_mnemonic.shamir.RANDOM_BYTES = saved


_PUB_KIND = {RecipientKind.HYBRID: "an age hybrid post-quantum mlkem768x25519 public key; age 1.3 or newer",
             RecipientKind.X25519: "an age X25519 public key"}


def recipient_file_text(identity: RecoveryIdentity) -> str:
    return (
        f"# enigm-recover recovery recipient ({_PUB_KIND[identity.kind]}; usable with `age -R`)\n"
        f"# fingerprint: {identity.fingerprint}\n"
        f"{identity.recipient}\n"
    )


def create_recovery_key(
    *,
    custodians: list[str],
    group_threshold: int,
    groups: list[GroupSpec],
    out_dir: Path,
    passphrase: str = "",
    random_bytes: Callable[[int], bytes] | None = None,
    identity: RecoveryIdentity | None = None,
    keyring: list[KeyRecord] | None = None,
    kind: RecipientKind = DEFAULT_KIND,
) -> tuple[RecoveryIdentity, list[Path]]:
    """Split a new key (or, for a reshare, ``identity``) among the custodians and write the cards,
    ``recovery.pub`` and ``keys.toml`` (``keyring``: the earlier keys it lists first). A new key is of
    ``kind`` (hybrid post-quantum by default); a reshared one keeps its own."""
    validate_plan(group_threshold, groups, custodians)
    targets = [out_dir / f"{name}.share.txt" for name in custodians] + [out_dir / RECIPIENT_FILE]
    clashes = [p for p in targets if p.exists()]
    if clashes:
        raise OutputExistsError(f"{clashes[0]} already exists; a key ceremony never overwrites cards")
    make_private_dir(out_dir, "ceremony folder")
    if identity is None:
        identity = RecoveryIdentity(random_bytes(32), kind) if random_bytes else RecoveryIdentity.generate(kind)
    with _seeded_slip39(random_bytes):
        mnemonics = shamir_mnemonic.generate_mnemonics(
            group_threshold,
            [(g.threshold, g.count) for g in groups],
            identity.secret_bytes(),
            passphrase.encode("ascii"),
        )
    written = []
    names = iter(custodians)
    for group_mnemonics, spec in zip(mnemonics, groups):
        for mnemonic in group_mnemonics:
            share = Share.from_mnemonic(mnemonic)
            name = next(names)
            card = ShareCard(name, share.identifier, share.group_index, group_threshold, len(groups),
                             share.index, spec.threshold, spec.count, identity.fingerprint,
                             tuple(mnemonic.split()), identity.kind)
            path = out_dir / f"{name}.share.txt"
            write_atomic(path, card.render().encode("utf-8"), mode=0o600)
            written.append(path)
    write_atomic(out_dir / RECIPIENT_FILE, recipient_file_text(identity).encode("ascii"))
    set_id = Share.from_mnemonic(mnemonics[0][0]).identifier
    if keyring:
        save_keyring(out_dir, keyring)
    record_key(out_dir, KeyRecord(identity.fingerprint, identity.recipient, set_id, now_utc()))
    return identity, written
