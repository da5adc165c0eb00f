"""OpenSSH SSHSIG signatures over manifests (namespace ``enigm-snapshot``).

Trust lives in an ordinary OpenSSH ``allowed_signers`` file, so
``ssh-keygen -Y verify -f allowed_signers -I PRODUCER -n enigm-snapshot``
checks the same thing this module does. Parsing and key handling come from
asyncssh; this module adds the namespace pinning and the three-way verdict
(trusted / unknown signer / invalid) a listing needs.

asyncssh is imported only where it is needed: the common case, an Ed25519
signature checked against an allowed_signers file of plain Ed25519 keys (each
line principals, at most a ``namespaces`` option, the key), is checked with
``cryptography`` alone, to the same verdicts, so that a command reading local
files does not load an SSH client. Anything else (certificates, other key
types, patterns, other options, a signature that does not parse) goes to
asyncssh, as before.
"""

from __future__ import annotations

import binascii
import hashlib
import os
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

from enigm_recover.bounded import KEY_FILE, TRUST_FILE, read_bounded, read_text_bounded
from enigm_recover.errors import InputFileError, SignatureError

if TYPE_CHECKING:
    import asyncssh
    from asyncssh.public_key import SSHOpenSSHCertificate

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


def _string(data: bytes) -> bytes:
    """An SSH wire-format string: its length (uint32) and its bytes."""
    return len(data).to_bytes(4, "big") + data


class _Reader:
    """SSH wire-format strings read off a blob; ValueError when it does not parse."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if n > len(self.data) - self.pos:
            raise ValueError("truncated")
        self.pos += n
        return self.data[self.pos - n:self.pos]

    def string(self) -> bytes:
        return self.take(int.from_bytes(self.take(4), "big"))

    def end(self) -> None:
        if self.pos != len(self.data):
            raise ValueError("trailing data")


_ED25519 = b"ssh-ed25519"
_PLAIN_NAME = re.compile(r"[^\s,*?!\[\]\"#]+")  # a principal or namespace that is no pattern: matched as it is
_PLAIN_LINE = re.compile(r"(?P<principals>[^\s\"]+)(?:\s+namespaces=\"(?P<namespaces>[^\"\s]+)\")?"
                         r"\s+ssh-ed25519\s+(?P<key>[A-Za-z0-9+/]+={0,2})(?:\s.*)?")


def _ed25519_blob(blob: bytes) -> bytes | None:
    """The 32-byte key of a plain ssh-ed25519 public key blob; None for anything else."""
    try:
        reader = _Reader(blob)
        if reader.string() != _ED25519:
            return None
        raw = reader.string()
        reader.end()
    except ValueError:
        return None
    return raw if len(raw) == 32 else None


@dataclass(frozen=True)
class _PlainEntry:
    principals: frozenset[str]
    namespaces: frozenset[str] | None
    key_blob: bytes


def _plain_entries(text: str) -> list[_PlainEntry] | None:
    """The entries of an allowed_signers file whose every line is plain (literal principals, at most a
    literal ``namespaces`` option, an Ed25519 key, a comment); None when any line is anything else."""
    entries = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _PLAIN_LINE.fullmatch(line)
        if match is None:
            return None
        names = match["principals"].split(",")
        spaces = match["namespaces"].split(",") if match["namespaces"] is not None else None
        if not all(_PLAIN_NAME.fullmatch(n) for n in [*names, *(spaces or ())]):
            return None
        try:
            blob = binascii.a2b_base64(match["key"], strict_mode=True)
        except binascii.Error:
            return None
        if _ed25519_blob(blob) is None:
            return None
        entries.append(_PlainEntry(frozenset(names), frozenset(spaces) if spaces is not None else None, blob))
    return entries or None


class AllowedSigners:
    """A loaded allowed_signers file: its plain Ed25519 entries when that is all it holds, and asyncssh's
    reading of it (made when first needed; at once when the file is not plain, so errors show on loading)."""

    def __init__(self, text: str, source: str = "allowed_signers") -> None:
        self.text = text
        self.source = source
        self.plain = _plain_entries(text)
        self._full: asyncssh.SSHAllowedSigners | None = None
        if self.plain is None:
            self.full()

    def full(self) -> asyncssh.SSHAllowedSigners:
        if self._full is None:
            import asyncssh

            try:
                self._full = asyncssh.import_allowed_signers(self.text)
            except (ValueError, asyncssh.KeyImportError) as exc:
                raise InputFileError(f"allowed_signers file {self.source} cannot be used: {exc}") from None
        return self._full

    def trusts(self, key_blob: bytes, principal: str, namespace: str) -> bool:
        """asyncssh's ``validate`` for a plain key, on plain entries."""
        assert self.plain is not None
        return any(e.key_blob == key_blob and principal in e.principals
                   and (e.namespaces is None or namespace in e.namespaces) for e in self.plain)


def load_allowed_signers(path: Path) -> AllowedSigners:
    text = read_text_bounded(path, TRUST_FILE, "allowed_signers file")
    assert text is not None
    return AllowedSigners(text, str(path))


def _asyncssh_allowed(allowed: AllowedSigners | asyncssh.SSHAllowedSigners | None
                      ) -> asyncssh.SSHAllowedSigners | None:
    return allowed.full() if isinstance(allowed, AllowedSigners) else allowed


PassphraseCallback = Callable[[str], str]


def load_signing_key(path: Path, ask_passphrase: PassphraseCallback | None = None) -> asyncssh.SSHKey:
    """Read an OpenSSH private key, asking for its passphrase when it has one."""
    import asyncssh

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
    import asyncssh

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


def _signed_data(data: bytes, namespace: bytes, hash_name: bytes = b"sha512") -> bytes:
    """What an SSHSIG signature covers (PROTOCOL.sshsig): the namespace and the data's hash."""
    return (_MAGIC + _string(namespace) + _string(b"") + _string(hash_name)
            + _string(_HASHES[hash_name](data).digest()))


def _unsigned_verdict(signed_namespace: bytes, hash_name: bytes, namespace: str,
                      fingerprint: str) -> SignatureVerdict | None:
    """The verdict on a signature made for another namespace or with an unknown hash; None when both are right."""
    if signed_namespace != namespace.encode():
        return SignatureVerdict(SignatureStatus.INVALID,
                                f"signed for namespace {signed_namespace.decode(errors='replace')!r}, "
                                f"not {namespace!r}", fingerprint)
    if hash_name not in _HASHES:
        return SignatureVerdict(SignatureStatus.INVALID, "unsupported signature hash", fingerprint)
    return None


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
        import asyncio

        return asyncio.run(self._sign(data, namespace))

    async def _sign(self, data: bytes, namespace: str) -> bytes:
        import asyncssh

        async with asyncssh.connect_agent(self.agent_path) as agent:
            for pair in await agent.get_keys():
                if pair.public_data == self.public_key.public_data:
                    if pair.sig_algorithm == b"ssh-rsa":
                        pair.set_sig_algorithm(b"rsa-sha2-512")
                    sig = await pair.sign_async(_signed_data(data, namespace.encode()))
                    return _armor(_MAGIC + (1).to_bytes(4, "big") + _string(pair.public_data)
                                  + _string(namespace.encode()) + _string(b"") + _string(b"sha512") + _string(sig))
        raise InputFileError(f"the ssh-agent no longer holds key {self.fingerprint}",
                             "add it again with ssh-add, or pass --audit-key with the private key file")


def agent_signer(public_key_path: Path | None = None) -> AgentSigner | None:
    """The agent's key matching ``public_key_path`` (or its first key); None without an agent."""
    import asyncio

    import asyncssh
    from asyncssh.public_key import decode_ssh_public_key

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
          allowed: AllowedSigners | asyncssh.SSHAllowedSigners | None, *,
          namespace: str = NAMESPACE) -> SignatureVerdict:
    """Check an SSHSIG over ``data`` claimed by ``principal`` in ``namespace``; never raises for bad input."""
    if sig is None:
        return SignatureVerdict(SignatureStatus.MISSING, "no signature file")
    if allowed is None or (isinstance(allowed, AllowedSigners) and allowed.plain is not None):
        verdict = _check_plain(data, sig, principal, allowed, namespace)
        if verdict is not None:
            return verdict
    return _check_with_asyncssh(data, sig, principal, _asyncssh_allowed(allowed), namespace)


def _check_plain(data: bytes, sig: bytes, principal: str, allowed: AllowedSigners | None,
                 namespace: str) -> SignatureVerdict | None:
    """``_check_with_asyncssh``'s verdict for a well-formed SSHSIG by a plain Ed25519 key (and plain
    allowed_signers); None for anything else, which asyncssh then checks."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        packet = _Reader(_dearmor(sig))
        if packet.take(6) != _MAGIC or int.from_bytes(packet.take(4), "big") != 1:
            return None
        key_blob = packet.string()
        signed_namespace = packet.string()
        packet.string()  # reserved
        hash_name = packet.string()
        signature = _Reader(packet.string())
        packet.end()
        if signature.string() != _ED25519:
            return None
        raw_signature = signature.string()
        signature.end()
    except (ValueError, binascii.Error):
        return None
    raw_key = _ed25519_blob(key_blob)
    if raw_key is None or len(raw_signature) != 64:
        return None
    fingerprint = "SHA256:" + binascii.b2a_base64(hashlib.sha256(key_blob).digest(), newline=False).decode().rstrip("=")
    if (refused := _unsigned_verdict(signed_namespace, hash_name, namespace, fingerprint)) is not None:
        return refused
    signed = _signed_data(data, signed_namespace, hash_name)
    try:
        Ed25519PublicKey.from_public_bytes(raw_key).verify(raw_signature, signed)
    except (InvalidSignature, ValueError):
        return SignatureVerdict(SignatureStatus.INVALID,
                                "signature does not match the manifest (altered manifest or signature)",
                                fingerprint)
    if allowed is None:
        return SignatureVerdict(SignatureStatus.UNCHECKED,
                                f"valid signature by {fingerprint}; no allowed_signers given", fingerprint)
    if allowed.trusts(key_blob, principal, namespace):
        return SignatureVerdict(SignatureStatus.TRUSTED, f"signed by trusted principal {principal}", fingerprint)
    return SignatureVerdict(SignatureStatus.UNKNOWN_SIGNER,
                            f"signer {fingerprint} is not in allowed_signers for principal {principal}",
                            fingerprint)


def _check_with_asyncssh(data: bytes, sig: bytes, principal: str, allowed: asyncssh.SSHAllowedSigners | None,
                         namespace: str) -> SignatureVerdict:
    import asyncssh
    from asyncssh.packet import PacketDecodeError, SSHPacket

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
    if (refused := _unsigned_verdict(signed_namespace, hash_name, namespace, fingerprint)) is not None:
        return refused
    signed = _signed_data(data, signed_namespace, hash_name)
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
    from asyncssh.packet import SSHPacket
    from asyncssh.public_key import SSHOpenSSHCertificate, decode_ssh_certificate, decode_ssh_public_key

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
    from asyncssh.public_key import CERT_TYPE_USER

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
