"""age recipients and identities of the two kinds a recovery key can have, as strings.

- ``hybrid``: the post-quantum ``mlkem768x25519`` recipient type (ML-KEM-768 + X25519, X-Wing, in
  HPKE): recipient ``age1pq1...`` (1216 bytes), identity ``AGE-SECRET-KEY-PQ-1...``.
- ``x25519``: the classic recipient type: recipient ``age1...`` (32 bytes), identity
  ``AGE-SECRET-KEY-1...``.

Both identities are the same 32 random bytes, so the custodians' cards (SLIP-39 of those bytes) are
the same shape for both. The recipients are Bech32 strings; a hybrid one is far longer than the 90
characters BIP-173 allows, and age (like this module) lifts that limit and nothing else: the checksum,
one case throughout and the exact length are checked.
"""

from __future__ import annotations

import enum
import hashlib

import bech32

HYBRID_PREFIX = "age1pq1"
HYBRID_HRP = "age1pq"
X25519_HRP = "age"
HYBRID_SECRET_HRP = "age-secret-key-pq-"
X25519_SECRET_HRP = "age-secret-key-"
HYBRID_PUBLIC_BYTES = 1184 + 32  # ML-KEM-768 encapsulation key, then the X25519 public key
X25519_PUBLIC_BYTES = 32


class RecipientKind(str, enum.Enum):
    """The kind of a recovery key (and of the snapshots sealed to it)."""

    HYBRID = "hybrid"
    X25519 = "x25519"

    @property
    def label(self) -> str:
        return "hybrid post-quantum (ML-KEM-768 + X25519)" if self is RecipientKind.HYBRID else "classic X25519"

    @property
    def post_quantum(self) -> bool:
        return self is RecipientKind.HYBRID


DEFAULT_KIND = RecipientKind.HYBRID


def recipient_kind(recipient: str) -> RecipientKind:
    """The kind of an ``age1...`` recipient string, by its prefix alone (``decode_recipient`` checks it)."""
    if recipient.startswith(HYBRID_PREFIX):
        return RecipientKind.HYBRID
    if recipient.startswith(X25519_HRP + "1"):
        return RecipientKind.X25519
    raise ValueError("not an age recipient (age1...)")


def bech32_encode(hrp: str, data: bytes) -> str:
    words = bech32.convertbits(data, 8, 5, True)
    assert words is not None
    return bech32.bech32_encode(hrp, words)


def bech32_decode(text: str) -> tuple[str, bytes]:
    """(lower-case HRP, data) of a Bech32 string of any length; ValueError if it is not one."""
    if not text or any(not 33 <= ord(c) <= 126 for c in text) or (text.lower() != text and text.upper() != text):
        raise ValueError("not a Bech32 string (a character out of range, or mixed case)")
    low = text.lower()
    pos = low.rfind("1")
    if pos < 1 or pos + 7 > len(low) or any(c not in bech32.CHARSET for c in low[pos + 1:]):
        raise ValueError("not a Bech32 string")
    hrp, words = low[:pos], [bech32.CHARSET.find(c) for c in low[pos + 1:]]
    if not bech32.bech32_verify_checksum(hrp, words):
        raise ValueError("the Bech32 checksum does not match")
    data = bech32.convertbits(words[:-6], 5, 8, False)
    if data is None:
        raise ValueError("the Bech32 data is not whole bytes")
    return hrp, bytes(data)


def decode_recipient(recipient: str) -> bytes:
    """The public key bytes of an ``age1...`` or ``age1pq1...`` recipient, or ValueError naming the fault."""
    if recipient != recipient.lower():
        raise ValueError("an age recipient is written in lower case only")
    hrp, data = bech32_decode(recipient)
    if hrp == HYBRID_HRP:
        if len(data) != HYBRID_PUBLIC_BYTES:
            raise ValueError(f"a hybrid recipient (age1pq1...) holds {HYBRID_PUBLIC_BYTES} bytes, not {len(data)}")
        hybrid_public_key(data)  # the ML-KEM encapsulation key must be valid (FIPS 203 modulus check)
        return data
    if hrp == X25519_HRP:
        if len(data) != X25519_PUBLIC_BYTES:
            raise ValueError(f"an X25519 recipient (age1...) holds {X25519_PUBLIC_BYTES} bytes, not {len(data)}")
        return data
    raise ValueError("not an age recipient (age1... or age1pq1...)")


def hybrid_public_key(data: bytes):  # -> hpke.MLKEM768X25519PublicKey
    from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PublicKey
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
    from cryptography.hazmat.primitives.hpke import MLKEM768X25519PublicKey

    try:
        return MLKEM768X25519PublicKey(MLKEM768PublicKey.from_public_bytes(data[:1184]),
                                       X25519PublicKey.from_public_bytes(data[1184:]))
    except ValueError:
        raise ValueError("the hybrid recipient's ML-KEM-768 key is not valid") from None


def expand_hybrid_seed(seed: bytes) -> tuple[bytes, bytes]:
    """The ML-KEM-768 seed (64 bytes) and the X25519 private key (32) of a hybrid identity's 32-byte seed
    (SHAKE-256, as the MLKEM768-X25519 KEM of draft-ietf-hpke-pq specifies)."""
    expanded = hashlib.shake_256(seed).digest(96)
    return expanded[:64], expanded[64:]


def decode_identity(text: str) -> tuple[RecipientKind, bytes]:
    """The kind and 32-byte secret of ``AGE-SECRET-KEY-1...`` / ``AGE-SECRET-KEY-PQ-1...``."""
    if text != text.upper():
        raise ValueError("an age identity is written in upper case only")
    hrp, data = bech32_decode(text)
    if len(data) != 32 or hrp not in (HYBRID_SECRET_HRP, X25519_SECRET_HRP):
        raise ValueError("not an age X25519 or hybrid identity")
    return (RecipientKind.HYBRID if hrp == HYBRID_SECRET_HRP else RecipientKind.X25519), data
