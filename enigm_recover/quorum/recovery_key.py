"""The recovery identity: an age identity whose 32-byte secret is split by SLIP-39.

The secret is the same 32 bytes for both kinds of key (``recipients.RecipientKind``): for a hybrid
post-quantum key it is the ``mlkem768x25519`` identity's seed (expanded by SHAKE-256 into the
ML-KEM-768 and X25519 keys), for a classic key the X25519 private key. So the cards are the same for
both; the kind decides which recipient the secret stands for.

The secret lives only in memory. Python cannot promise to wipe memory, so the
code keeps the secret in as few objects as it can and never formats it into
messages, logs or exceptions (``repr`` is redacted).
"""

from __future__ import annotations

import base64
import hashlib
import secrets

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from enigm_recover.quorum.recipients import (  # noqa: F401 - re-exported
    DEFAULT_KIND,
    HYBRID_SECRET_HRP,
    RecipientKind,
    X25519_HRP,
    X25519_SECRET_HRP,
    bech32_encode,
    decode_recipient,
    expand_hybrid_seed,
    recipient_kind,
)

SECRET_HRP = X25519_SECRET_HRP
RECIPIENT_HRP = X25519_HRP


def recipient_fingerprint(recipient: str) -> str:
    """A short, stable fingerprint of an age recipient of either kind: ``SHA256:`` + unpadded base64."""
    digest = hashlib.sha256(recipient.encode("ascii")).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def _bech32(hrp: str, data: bytes) -> str:
    return bech32_encode(hrp, data)


class RecoveryIdentity:
    """An age identity (hybrid or X25519) held in memory only."""

    __slots__ = ("_secret", "kind", "recipient", "_hybrid")

    def __init__(self, secret: bytes, kind: RecipientKind = RecipientKind.X25519) -> None:
        """``kind`` says which recipient the secret stands for: a bare 32-byte secret is the classic
        X25519 identity's (``AGE-SECRET-KEY-1...``) unless told otherwise; new keys are hybrid
        (``generate``, ``keys init``)."""
        if len(secret) != 32:
            raise ValueError("the recovery secret must be 32 bytes")
        self._secret = bytes(secret)
        self.kind = RecipientKind(kind)
        self._hybrid = None
        if self.kind is RecipientKind.HYBRID:
            from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey
            from cryptography.hazmat.primitives.hpke import MLKEM768X25519PrivateKey

            mlkem_seed, x25519_key = expand_hybrid_seed(self._secret)
            mlkem = MLKEM768PrivateKey.from_seed_bytes(mlkem_seed)
            classic = X25519PrivateKey.from_private_bytes(x25519_key)
            self._hybrid = MLKEM768X25519PrivateKey(mlkem, classic)
            public = mlkem.public_key().public_bytes_raw() + classic.public_key().public_bytes_raw()
            self.recipient = _bech32("age1pq", public)
        else:
            public = X25519PrivateKey.from_private_bytes(self._secret).public_key().public_bytes_raw()
            self.recipient = _bech32(RECIPIENT_HRP, public)

    @classmethod
    def generate(cls, kind: RecipientKind = DEFAULT_KIND) -> "RecoveryIdentity":
        return cls(secrets.token_bytes(32), kind)

    def as_kind(self, kind: RecipientKind) -> "RecoveryIdentity":
        """The same secret standing for a key of ``kind``."""
        return self if kind is self.kind else RecoveryIdentity(self._secret, kind)

    @property
    def fingerprint(self) -> str:
        return recipient_fingerprint(self.recipient)

    def secret_bytes(self) -> bytes:
        """The raw secret, for splitting into shares. Never write it anywhere."""
        return self._secret

    def private_key(self) -> X25519PrivateKey:
        """The X25519 private key of a classic identity."""
        if self.kind is not RecipientKind.X25519:
            raise ValueError("a hybrid identity has no classic X25519 private key")
        return X25519PrivateKey.from_private_bytes(self._secret)

    def hybrid_private_key(self):  # -> hpke.MLKEM768X25519PrivateKey
        """The HPKE MLKEM768-X25519 private key of a hybrid identity."""
        if self._hybrid is None:
            raise ValueError("a classic identity has no hybrid private key")
        return self._hybrid

    def age_identity_string(self) -> str:
        """``AGE-SECRET-KEY-PQ-1...`` or ``AGE-SECRET-KEY-1...``, for an age implementation, in memory."""
        hrp = HYBRID_SECRET_HRP if self.kind is RecipientKind.HYBRID else SECRET_HRP
        return _bech32(hrp, self._secret).upper()

    def __repr__(self) -> str:
        return f"RecoveryIdentity(kind={self.kind.value}, recipient={self.recipient[:20]!r}..., secret=<redacted>)"

    __str__ = __repr__
