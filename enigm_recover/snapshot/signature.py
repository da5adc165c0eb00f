"""OpenSSH SSHSIG signatures over manifests (namespace ``enigm-snapshot``).

Trust lives in an ordinary OpenSSH ``allowed_signers`` file, so
``ssh-keygen -Y verify -f allowed_signers -I PRODUCER -n enigm-snapshot``
checks the same thing this module does. Parsing and key handling come from
asyncssh; this module adds the namespace pinning and the three-way verdict
(trusted / unknown signer / invalid) a listing needs.
"""

from __future__ import annotations

import binascii
import hashlib
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Callable

import asyncssh
from asyncssh.packet import PacketDecodeError, SSHPacket, String
from asyncssh.public_key import decode_ssh_public_key

from enigm_recover.errors import InputFileError, SignatureError

NAMESPACE = "enigm-snapshot"
_MAGIC = b"SSHSIG"
_HASHES = {b"sha256": hashlib.sha256, b"sha512": hashlib.sha512}
_ARMOR_BEGIN = b"-----BEGIN SSH SIGNATURE-----"
_ARMOR_END = b"-----END SSH SIGNATURE-----"


class SignatureStatus(str, Enum):
    TRUSTED = "trusted"
    UNKNOWN_SIGNER = "unknown-signer"
    INVALID = "invalid"
    MISSING = "missing"
    UNCHECKED = "unchecked"  # no allowed_signers given: the signature is valid but trust is unknown


@dataclass(frozen=True)
class SignatureVerdict:
    status: SignatureStatus
    detail: str
    signer_fingerprint: str | None = None

    @property
    def trusted(self) -> bool:
        return self.status is SignatureStatus.TRUSTED


def load_allowed_signers(path: Path) -> asyncssh.SSHAllowedSigners:
    try:
        return asyncssh.read_allowed_signers(str(path))
    except FileNotFoundError:
        raise InputFileError(f"allowed_signers file {path} does not exist") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InputFileError(f"allowed_signers file {path} cannot be used: {exc}") from None


PassphraseCallback = Callable[[str], str]


def load_signing_key(path: Path, ask_passphrase: PassphraseCallback | None = None) -> asyncssh.SSHKey:
    """Read an OpenSSH private key, asking for its passphrase when it has one."""
    try:
        return asyncssh.read_private_key(str(path))
    except FileNotFoundError:
        raise InputFileError(f"signing key {path} does not exist") from None
    except asyncssh.KeyImportError as exc:
        if "passphrase" not in str(exc).lower() or ask_passphrase is None:
            raise InputFileError(f"signing key {path} cannot be read: {exc}") from None
    except OSError as exc:
        raise InputFileError(f"signing key {path} cannot be read: {exc}") from None
    passphrase = ask_passphrase(f"Passphrase for signing key {path}: ")
    try:
        return asyncssh.read_private_key(str(path), passphrase)
    except asyncssh.KeyImportError:
        raise InputFileError(f"wrong passphrase for signing key {path}", "try again") from None


def sign(data: bytes, key: asyncssh.SSHKey, namespace: str = NAMESPACE) -> bytes:
    """An armored SSHSIG signature of ``data`` (by default in the enigm-snapshot namespace)."""
    return asyncssh.create_sshsig(key, data, namespace=namespace, hash_name="sha512")


def _dearmor(sig: bytes) -> bytes:
    lines = sig.strip().splitlines()
    if len(lines) < 3 or lines[0].strip() != _ARMOR_BEGIN or lines[-1].strip() != _ARMOR_END:
        raise ValueError("not an armored SSH signature")
    return binascii.a2b_base64(b"".join(line.strip() for line in lines[1:-1]))


def check(data: bytes, sig: bytes | None, principal: str,
          allowed: asyncssh.SSHAllowedSigners | None, *, namespace: str = NAMESPACE) -> SignatureVerdict:
    """Check an SSHSIG over ``data`` claimed by ``principal`` in ``namespace``; never raises for bad input."""
    if sig is None:
        return SignatureVerdict(SignatureStatus.MISSING, "no signature file")
    try:
        packet = SSHPacket(_dearmor(sig))
        if packet.get_bytes(6) != _MAGIC or packet.get_uint32() != 1:
            raise ValueError("not an SSHSIG v1 blob")
        key = decode_ssh_public_key(packet.get_string())
        signed_namespace = packet.get_string()
        packet.get_string()  # reserved
        hash_name = packet.get_string()
        signature = packet.get_string()
        packet.check_end()
    except (ValueError, PacketDecodeError, asyncssh.KeyImportError, binascii.Error) as exc:
        return SignatureVerdict(SignatureStatus.INVALID, f"malformed signature: {exc}")
    fingerprint = key.get_fingerprint()
    if signed_namespace != namespace.encode():
        return SignatureVerdict(SignatureStatus.INVALID,
                                f"signed for namespace {signed_namespace.decode(errors='replace')!r}, "
                                f"not {namespace!r}", fingerprint)
    if hash_name not in _HASHES:
        return SignatureVerdict(SignatureStatus.INVALID, "unsupported signature hash", fingerprint)
    signed = (_MAGIC + String(signed_namespace) + String(b"") + String(hash_name)
              + String(_HASHES[hash_name](data).digest()))
    if not key.verify(signed, signature):
        return SignatureVerdict(SignatureStatus.INVALID,
                                "signature does not match the manifest (altered manifest or signature)",
                                fingerprint)
    if allowed is None:
        return SignatureVerdict(SignatureStatus.UNCHECKED,
                                f"valid signature by {fingerprint}; no allowed_signers given", fingerprint)
    if allowed.validate(key, principal, namespace):
        return SignatureVerdict(SignatureStatus.TRUSTED, f"signed by trusted principal {principal}", fingerprint)
    return SignatureVerdict(SignatureStatus.UNKNOWN_SIGNER,
                            f"signer {fingerprint} is not in allowed_signers for principal {principal}",
                            fingerprint)


def require_trusted(verdict: SignatureVerdict) -> None:
    if not verdict.trusted:
        raise SignatureError(f"manifest signature is {verdict.status.value}: {verdict.detail}")
