"""The recovery identity: an age X25519 key whose 32-byte secret is split by SLIP-39.

The secret lives only in memory. Python cannot promise to wipe memory, so the
code keeps the secret in as few objects as it can and never formats it into
messages, logs or exceptions (``repr`` is redacted).
"""

from __future__ import annotations

import base64
import hashlib
import secrets

import bech32
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

SECRET_HRP = "age-secret-key-"
RECIPIENT_HRP = "age"


def recipient_fingerprint(recipient: str) -> str:
    """A short, stable fingerprint of an age recipient: ``SHA256:`` + unpadded base64."""
    digest = hashlib.sha256(recipient.encode("ascii")).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def _bech32(hrp: str, data: bytes) -> str:
    words = bech32.convertbits(data, 8, 5, True)
    assert words is not None
    return bech32.bech32_encode(hrp, words)


def decode_recipient(recipient: str) -> bytes:
    """The 32-byte X25519 public key of an ``age1...`` recipient, or ValueError."""
    hrp, words = bech32.bech32_decode(recipient)
    if hrp != RECIPIENT_HRP or words is None or recipient != recipient.lower():
        raise ValueError("not an age X25519 recipient (age1...)")
    data = bech32.convertbits(words, 5, 8, False)
    if data is None or len(data) != 32:
        raise ValueError("not an age X25519 recipient (age1...)")
    return bytes(data)


class RecoveryIdentity:
    """An age X25519 identity held in memory only."""

    __slots__ = ("_secret", "recipient")

    def __init__(self, secret: bytes) -> None:
        if len(secret) != 32:
            raise ValueError("the recovery secret must be 32 bytes")
        self._secret = bytes(secret)
        public = X25519PrivateKey.from_private_bytes(self._secret).public_key().public_bytes_raw()
        self.recipient = _bech32(RECIPIENT_HRP, public)

    @classmethod
    def generate(cls) -> "RecoveryIdentity":
        return cls(secrets.token_bytes(32))

    @property
    def fingerprint(self) -> str:
        return recipient_fingerprint(self.recipient)

    def secret_bytes(self) -> bytes:
        """The raw secret, for splitting into shares. Never write it anywhere."""
        return self._secret

    def private_key(self) -> X25519PrivateKey:
        return X25519PrivateKey.from_private_bytes(self._secret)

    def age_identity_string(self) -> str:
        """``AGE-SECRET-KEY-1...``, for handing to an age implementation in memory."""
        return _bech32(SECRET_HRP, self._secret).upper()

    def __repr__(self) -> str:
        return f"RecoveryIdentity(recipient={self.recipient!r}, secret=<redacted>)"

    __str__ = __repr__
