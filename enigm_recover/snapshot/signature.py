"""OpenSSH SSHSIG signatures over manifests (namespace ``enigm-snapshot``).

Trust lives in an ordinary OpenSSH ``allowed_signers`` file, so
``ssh-keygen -Y verify -f allowed_signers -I PRODUCER -n enigm-snapshot``
checks the same thing this module does. Parsing and key handling come from
asyncssh; this module adds the namespace pinning and the three-way verdict
(trusted / unknown signer / invalid) a listing needs.
"""

from __future__ import annotations

import asyncio
import binascii
import hashlib
import os
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Callable, Protocol

import asyncssh
from asyncssh.packet import PacketDecodeError, SSHPacket, String, UInt32
from asyncssh.public_key import CERT_TYPE_USER, SSHOpenSSHCertificate, decode_ssh_certificate, decode_ssh_public_key

from enigm_recover.bounded import KEY_FILE, TRUST_FILE, read_bounded, read_text_bounded
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
    text = read_text_bounded(path, TRUST_FILE, "allowed_signers file")
    assert text is not None
    try:
        return asyncssh.import_allowed_signers(text)
    except (ValueError, asyncssh.KeyImportError) as exc:
        raise InputFileError(f"allowed_signers file {path} cannot be used: {exc}") from None


PassphraseCallback = Callable[[str], str]


def load_signing_key(path: Path, ask_passphrase: PassphraseCallback | None = None) -> asyncssh.SSHKey:
    """Read an OpenSSH private key, asking for its passphrase when it has one."""
    data = read_bounded(path, KEY_FILE, "signing key")
    assert data is not None
    try:
        return asyncssh.import_private_key(data)
    except asyncssh.KeyImportError as exc:
        if "passphrase" not in str(exc).lower() or ask_passphrase is None:
            raise InputFileError(f"signing key {path} cannot be read: {exc}") from None
    passphrase = ask_passphrase(f"Passphrase for signing key {path}: ")
    try:
        return asyncssh.import_private_key(data, passphrase)
    except asyncssh.KeyImportError:
        raise InputFileError(f"wrong passphrase for signing key {path}", "try again") from None


def sign(data: bytes, key: asyncssh.SSHKey, namespace: str = NAMESPACE) -> bytes:
    """An armored SSHSIG signature of ``data`` (by default in the enigm-snapshot namespace)."""
    return asyncssh.create_sshsig(key, data, namespace=namespace, hash_name="sha512")


class Signer(Protocol):
    """Something that makes SSHSIG signatures: a key in memory, or a key held by the ssh-agent."""

    fingerprint: str

    def sign(self, data: bytes, namespace: str) -> bytes: ...


@dataclass(frozen=True)
class KeySigner:
    key: asyncssh.SSHKey

    @property
    def fingerprint(self) -> str:
        return self.key.get_fingerprint()

    def sign(self, data: bytes, namespace: str) -> bytes:
        return sign(data, self.key, namespace)


def _signed_data(data: bytes, namespace: str) -> bytes:
    """What an SSHSIG signature covers (PROTOCOL.sshsig): the namespace and the data's SHA-512."""
    return _MAGIC + String(namespace) + String(b"") + String(b"sha512") + String(hashlib.sha512(data).digest())


def _armor(blob: bytes) -> bytes:
    text = binascii.b2a_base64(blob, newline=False)
    lines = [text[i:i + 70] for i in range(0, len(text), 70)]
    return b"\n".join([_ARMOR_BEGIN, *lines, _ARMOR_END]) + b"\n"


@dataclass(frozen=True)
class AgentSigner:
    """Signs with a key the ssh-agent holds, so the private key never enters this process."""

    agent_path: str
    public_key: asyncssh.SSHKey

    @property
    def fingerprint(self) -> str:
        return self.public_key.get_fingerprint()

    def sign(self, data: bytes, namespace: str) -> bytes:
        return asyncio.run(self._sign(data, namespace))

    async def _sign(self, data: bytes, namespace: str) -> bytes:
        async with asyncssh.connect_agent(self.agent_path) as agent:
            for pair in await agent.get_keys():
                if pair.public_data == self.public_key.public_data:
                    if pair.sig_algorithm == b"ssh-rsa":
                        pair.set_sig_algorithm(b"rsa-sha2-512")
                    sig = await pair.sign_async(_signed_data(data, namespace))
                    return _armor(_MAGIC + UInt32(1) + String(pair.public_data) + String(namespace) + String(b"")
                                  + String(b"sha512") + String(sig))
        raise InputFileError(f"the ssh-agent no longer holds key {self.fingerprint}",
                             "add it again with ssh-add, or pass --audit-key with the private key file")


def agent_signer(public_key_path: Path | None = None) -> AgentSigner | None:
    """The agent's key matching ``public_key_path`` (or its first key); None without an agent."""
    path = os.environ.get("SSH_AUTH_SOCK")
    if not path:
        if public_key_path is not None:
            raise InputFileError(f"{public_key_path} is a public key, but no ssh-agent is running",
                                 "start ssh-agent and ssh-add the key, or pass the private key file")
        return None
    wanted = None
    if public_key_path is not None:
        data = read_bounded(public_key_path, KEY_FILE, "public key")
        assert data is not None
        try:
            wanted = asyncssh.import_public_key(data)
        except asyncssh.KeyImportError as exc:
            raise InputFileError(f"public key {public_key_path} cannot be read: {exc}") from None

    async def keys() -> list[asyncssh.SSHKey]:
        async with asyncssh.connect_agent(path) as agent:
            return [decode_ssh_public_key(pair.public_data) for pair in await agent.get_keys()]

    try:
        held = asyncio.run(keys())
    except (OSError, asyncssh.Error, ValueError) as exc:
        raise InputFileError(f"cannot reach the ssh-agent at {path}: {exc}",
                             "check SSH_AUTH_SOCK, or pass --audit-key with a private key file") from None
    for key in held:
        if wanted is None or key.public_data == wanted.public_data:
            return AgentSigner(path, key)
    if wanted is not None:
        raise InputFileError(f"the ssh-agent holds no key matching {public_key_path}",
                             "ssh-add the private key first")
    return None


def audit_signer(key_path: Path | None, ask_passphrase: PassphraseCallback | None = None) -> Signer | None:
    """The operator's signer for audit heads: a private key file, a public key whose private half the
    ssh-agent holds, or (without a path) the agent's first key when an agent runs; None otherwise."""
    if key_path is not None and not key_path.name.endswith(".pub"):
        return KeySigner(load_signing_key(key_path, ask_passphrase))
    return agent_signer(key_path)


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
        key, cert = _signing_key(packet.get_string())
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
    if cert is not None:
        return _check_certificate(cert, principal, allowed, namespace, fingerprint)
    if allowed.validate(key, principal, namespace):
        return SignatureVerdict(SignatureStatus.TRUSTED, f"signed by trusted principal {principal}", fingerprint)
    return SignatureVerdict(SignatureStatus.UNKNOWN_SIGNER,
                            f"signer {fingerprint} is not in allowed_signers for principal {principal}",
                            fingerprint)


def _signing_key(blob: bytes) -> tuple[asyncssh.SSHKey, SSHOpenSSHCertificate | None]:
    """The key an SSHSIG names: a plain public key, or an OpenSSH certificate (its CA's signature checked)."""
    algorithm = SSHPacket(blob).get_string()
    if not algorithm.endswith(b"-cert-v01@openssh.com"):
        return decode_ssh_public_key(blob), None
    cert = decode_ssh_certificate(blob)
    if not isinstance(cert, SSHOpenSSHCertificate):
        raise ValueError("not an OpenSSH certificate")
    return cert.key, cert


def _certificate_problem(cert: SSHOpenSSHCertificate, principal: str, now: float) -> str | None:
    """Why ``ssh-keygen -Y verify`` would not accept this certificate for ``principal`` now (OpenSSH's
    sshkey_cert_check_authority: a user certificate, within its validity, listing the principal)."""
    if cert._cert_type != CERT_TYPE_USER:
        return "it is a host certificate, not a user certificate"
    if now < cert._valid_after:
        return "it is not yet valid"
    if now >= cert._valid_before:
        return "it has expired"
    if not cert.principals:
        return "it lists no principal"
    if principal not in cert.principals:
        return f"it is for {', '.join(cert.principals)}, not {principal}"
    return None


def _check_certificate(cert: SSHOpenSSHCertificate, principal: str, allowed: asyncssh.SSHAllowedSigners,
                       namespace: str, fingerprint: str) -> SignatureVerdict:
    """A certificate's signature is trusted where allowed_signers names its CA with ``cert-authority`` for the
    principal (and namespace, and time), and the certificate itself is valid for that principal now."""
    import time

    ca = cert.signing_key.get_fingerprint()
    if not allowed.validate(cert.signing_key, principal, namespace, ca=True):
        return SignatureVerdict(SignatureStatus.UNKNOWN_SIGNER,
                                f"the certificate of {fingerprint} is signed by CA {ca}, which allowed_signers does "
                                f"not name as cert-authority for principal {principal}", fingerprint)
    problem = _certificate_problem(cert, principal, time.time())
    if problem is not None:
        return SignatureVerdict(SignatureStatus.UNKNOWN_SIGNER,
                                f"the signer's certificate (CA {ca}) is not valid: {problem}", fingerprint)
    return SignatureVerdict(SignatureStatus.TRUSTED,
                            f"signed by trusted principal {principal} (certificate from CA {ca})", fingerprint)


def require_trusted(verdict: SignatureVerdict) -> None:
    if not verdict.trusted:
        raise SignatureError(f"manifest signature is {verdict.status.value}: {verdict.detail}")
