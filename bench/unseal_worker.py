"""Child process of the seal/unseal benchmark: verify a snapshot, then unseal it.

Usage: ``python unseal_worker.py FOLDER IDENTITY_FILE ALLOWED_SIGNERS {blocks,records}``

``blocks`` consumes ``plaintext_blocks`` (verify + decrypt + decompress);
``records`` consumes ``records`` (the full record check as well). It prints
one JSON object: its phase timings, what it consumed, and its own peak RSS.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from time import perf_counter

from enigm_recover.quorum.recipients import decode_identity
from enigm_recover.quorum.recovery_key import RecoveryIdentity
from enigm_recover.snapshot.catalog import resolve
from enigm_recover.snapshot.signature import load_allowed_signers
from enigm_recover.snapshot.unseal import plaintext_blocks, records
from enigm_recover.snapshot.verify import VerifiedSnapshot, verify_entry
from enigm_recover.sources.local import LocalFolderSource


def read_identity(path: Path) -> RecoveryIdentity:
    """The recovery identity in an age key file of one ``AGE-SECRET-KEY-1...`` or ``AGE-SECRET-KEY-PQ-1...`` line."""
    try:
        kind, secret = decode_identity(path.read_text().strip())
    except ValueError:
        raise SystemExit(f"{path} does not hold an age X25519 or hybrid identity") from None
    return RecoveryIdentity(secret, kind)


def verify(folder: Path, allowed_signers: Path) -> VerifiedSnapshot:
    """Verify the folder's latest snapshot: signature and size (the SHA-256 is checked while decrypting)."""
    source = LocalFolderSource(folder)
    entry = resolve(source.list(), "latest")
    report, verified = verify_entry(source, entry, load_allowed_signers(allowed_signers), hash_payload=False)
    if verified is None:
        raise SystemExit(f"verification failed: {report.as_dict()['error']}")
    return verified


def unseal(verified: VerifiedSnapshot, identity: RecoveryIdentity, mode: str) -> dict[str, int]:
    """Consume the snapshot, discarding it; count the records or the plaintext bytes."""
    if mode == "records":
        return {"records": sum(1 for _ in records(verified, identity))}
    return {"plaintext_bytes": sum(len(block) for block in plaintext_blocks(verified, identity))}


def peak_rss_mib() -> float:
    """This process's own peak resident set (VmHWM).

    Not ``ru_maxrss``: on Linux that starts from the parent's peak at exec, so
    a child of a big parent would report the parent's memory.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def main(argv: list[str]) -> None:
    folder, identity_file, allowed_signers, mode = argv
    identity = read_identity(Path(identity_file))
    start = perf_counter()
    verified = verify(Path(folder), Path(allowed_signers))
    verified_at = perf_counter()
    consumed = unseal(verified, identity, mode)
    done = perf_counter()
    print(json.dumps({"verify_s": verified_at - start, "unseal_s": done - verified_at, **consumed,
                      "peak_rss_mib": peak_rss_mib()}))


if __name__ == "__main__":
    main(sys.argv[1:])
