"""age v1 encryption to, and decryption with, a recovery identity of either kind.

Two recipient types of the age specification (C2SP age v1) are used: the hybrid post-quantum
``mlkem768x25519`` (HPKE with the MLKEM768-X25519 KEM, from ``cryptography``) and the classic
``X25519``. Encryption to an X25519 recipient uses pyrage (the age reference implementation in
Rust); encryption to a hybrid recipient, which pyrage does not know, writes the header here and the
payload's STREAM with ``cryptography``'s ChaCha20-Poly1305. Decryption of payloads of both kinds is
implemented here: pyrage holds the GIL and decrypts at a fraction of OpenSSL's speed, and decryption
is the hot path of every recovery. The payload is the same for both kinds; only the header differs.

Parsing is strict: anything the specification does not allow is refused. A hybrid stanza is never
accepted or written beside a classic one (a classic stanza for the same file key would undo the
post-quantum protection; age refuses to mix them when encrypting). Tests check this module against
the C2SP CCTV test vectors, pyrage, the real ``age`` program and the independent JavaScript
implementation (npm ``age-encryption``) in both directions.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import io
import re
from hashlib import sha256
from typing import BinaryIO, Iterable, Iterator

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from enigm_recover.errors import DecryptionError, RecipientKindMismatch, RecipientMixRefused
from enigm_recover.quorum.recipients import RecipientKind, decode_recipient, hybrid_public_key, recipient_kind
from enigm_recover.quorum.recovery_key import RecoveryIdentity

VERSION_LINE = b"age-encryption.org/v1"
X25519_LABEL = b"age-encryption.org/v1/X25519"
HYBRID_LABEL = b"age-encryption.org/mlkem768x25519"
HYBRID_TYPE = b"mlkem768x25519"
HYBRID_ENC = 1120  # the MLKEM768-X25519 encapsulated key: ML-KEM-768 ciphertext, then the X25519 share
FILE_KEY = 16
CHUNK = 64 * 1024
TAG = 16
CT_CHUNK = CHUNK + TAG
MAX_HEADER = 64 * 1024
_B64_NOPAD = re.compile(rb"^[A-Za-z0-9+/]*$")
_ARG = re.compile(rb"^[\x21-\x7e]+$")


# -- encryption (pyrage) -------------------------------------------------------


class _IteratorReader(io.RawIOBase):
    """A readable file over an iterator of byte chunks (pull model for pyrage)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._pending = memoryview(b"")
        self.error: BaseException | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            try:
                nxt = next(self._chunks, None)
            except BaseException as exc:  # pyrage would wrap it in an EncryptError: keep the original
                self.error = exc
                raise
            if nxt is None:
                return 0
            self._pending = memoryview(nxt)
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def _hybrid_suite():  # -> hpke.Suite
    from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

    return Suite(KEM.MLKEM768_X25519, KDF.HKDF_SHA256, AEAD.CHACHA20_POLY1305)


def _b64_nopad(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b"=")


def _body_lines(data: bytes) -> bytes:
    """A stanza body: unpadded base64 wrapped at 64 columns, its last line shorter (possibly empty)."""
    encoded = _b64_nopad(data)
    lines = [encoded[i:i + 64] for i in range(0, len(encoded), 64)]
    if not lines or len(lines[-1]) == 64:
        lines.append(b"")
    return b"\n".join(lines) + b"\n"


def _x25519_stanza(file_key: bytes, their_public: bytes) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    ephemeral = X25519PrivateKey.generate()
    share = ephemeral.public_key().public_bytes_raw()
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(their_public))
    if shared == b"\x00" * 32:
        raise DecryptionError("the recipient is a low-order point")
    wrap_key = _hkdf(shared, share + their_public, X25519_LABEL)
    body = ChaCha20Poly1305(wrap_key).encrypt(b"\x00" * 12, file_key, None)
    return b"-> X25519 " + _b64_nopad(share) + b"\n" + _body_lines(body)


def _hybrid_stanza(file_key: bytes, their_public: bytes) -> bytes:
    sealed = _hybrid_suite().encrypt(file_key, hybrid_public_key(their_public), info=HYBRID_LABEL)
    enc, body = sealed[:HYBRID_ENC], sealed[HYBRID_ENC:]
    return b"-> " + HYBRID_TYPE + b" " + _b64_nopad(enc) + b"\n" + _body_lines(body)


def recipient_stanza(file_key: bytes, recipient: str) -> bytes:
    """One recipient stanza wrapping ``file_key`` for ``recipient`` (``age1pq1...`` or ``age1...``)."""
    public = decode_recipient(recipient)
    if recipient_kind(recipient) is RecipientKind.HYBRID:
        return _hybrid_stanza(file_key, public)
    return _x25519_stanza(file_key, public)


def refuse_mixed(recipients: list[str]) -> RecipientKind:
    """The one kind of ``recipients``; a hybrid recipient beside a classic one is refused (as age does)."""
    kinds = {recipient_kind(r) for r in recipients}
    if not kinds:
        raise DecryptionError("no recipient to encrypt to")
    if len(kinds) > 1:
        raise RecipientMixRefused(
            "a hybrid post-quantum recipient (age1pq1...) cannot be mixed with a classic X25519 one (age1...): "
            "the classic stanza would let a future quantum computer open what the hybrid one protects",
            "seal to the hybrid recipient alone")
    return kinds.pop()


def header_bytes(file_key: bytes, recipients: list[str] | str) -> bytes:
    """A whole age header (stanzas and MAC, ending with its newline) wrapping ``file_key``."""
    if isinstance(recipients, str):
        recipients = [recipients]
    refuse_mixed(recipients)
    mac_input = VERSION_LINE + b"\n" + b"".join(recipient_stanza(file_key, r) for r in recipients) + b"---"
    mac = hmac.new(_hkdf(file_key, b"", b"header"), mac_input, sha256).digest()
    return mac_input + b" " + _b64_nopad(mac) + b"\n"


def _stream_encrypt(chunks: Iterable[bytes], file_key: bytes, out: BinaryIO) -> None:
    """The payload: a fresh nonce, then STREAM chunks of 64 KiB, the last one flagged (and never empty
    unless the whole plaintext is)."""
    nonce = os.urandom(16)
    out.write(nonce)
    aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
    pending = bytearray()
    counter = 0
    for chunk in chunks:
        pending += chunk
        while len(pending) > CHUNK:  # keep at least one byte back: the final chunk is never empty
            out.write(aead.encrypt(counter.to_bytes(11, "big") + b"\x00", bytes(pending[:CHUNK]), None))
            del pending[:CHUNK]
            counter += 1
    out.write(aead.encrypt(counter.to_bytes(11, "big") + b"\x01", bytes(pending), None))


def encrypt_stream(chunks: Iterable[bytes], recipient: str | list[str], out: BinaryIO) -> None:
    """Encrypt a stream of plaintext chunks to ``recipient`` (``age1pq1...`` or ``age1...``) into ``out``."""
    recipients = [recipient] if isinstance(recipient, str) else list(recipient)
    if refuse_mixed(recipients) is RecipientKind.HYBRID:
        file_key = os.urandom(FILE_KEY)
        out.write(header_bytes(file_key, recipients))
        _stream_encrypt(chunks, file_key, out)
        return
    import pyrage  # only encryption to an X25519 recipient uses it: decryption, the hot path, does not load it

    source = _IteratorReader(chunks)
    try:
        pyrage.encrypt_io(io.BufferedReader(source, buffer_size=1 << 20), out,
                          [pyrage.x25519.Recipient.from_str(r) for r in recipients])
    except pyrage.EncryptError:
        if source.error is not None:
            raise source.error from None
        raise


# -- decryption ----------------------------------------------------------------


def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def _b64(data: bytes, expected_len: int | None, what: str) -> bytes:
    """Strict unpadded base64 (canonical, no padding), as the age spec requires."""
    if not _B64_NOPAD.fullmatch(data):
        raise DecryptionError(f"age header: {what} is not unpadded base64")
    try:
        raw = base64.b64decode(data + b"=" * (-len(data) % 4), validate=True)
    except binascii.Error:
        raise DecryptionError(f"age header: {what} is not valid base64") from None
    if base64.b64encode(raw).rstrip(b"=") != data:
        raise DecryptionError(f"age header: {what} is not canonical base64")
    if expected_len is not None and len(raw) != expected_len:
        raise DecryptionError(f"age header: {what} has the wrong length")
    return raw


class _Header:
    def __init__(self, stanzas: list[tuple[list[bytes], bytes]], mac: bytes, mac_input: bytes) -> None:
        self.stanzas = stanzas
        self.mac = mac
        self.mac_input = mac_input


def _parse_header(buf: bytes) -> tuple[_Header, int]:
    """Parse the text header at the start of ``buf``; return it and the payload offset."""
    lines_end = 0
    pos = 0

    def next_line() -> bytes:
        nonlocal pos
        end = buf.find(b"\n", pos)
        if end < 0:
            raise DecryptionError("not an age file, or its header is truncated")
        line = buf[pos:end]
        pos = end + 1
        return line

    if next_line() != VERSION_LINE:
        raise DecryptionError("not an age v1 file")
    stanzas: list[tuple[list[bytes], bytes]] = []
    line = next_line()
    while line.startswith(b"-> "):
        args = line[3:].split(b" ")
        if not args or any(not _ARG.fullmatch(a) for a in args):
            raise DecryptionError("age header: malformed stanza line")
        body = bytearray()
        while True:
            body_line = next_line()
            if len(body_line) > 64:
                raise DecryptionError("age header: stanza body line too long")
            body += body_line
            if len(body_line) < 64:
                break
        stanzas.append((args, _b64(bytes(body), None, "stanza body")))
        line = next_line()
    if not line.startswith(b"--- "):
        raise DecryptionError("age header: missing MAC line")
    lines_end = pos
    mac = _b64(line[4:], 32, "header MAC")
    if not stanzas:
        raise DecryptionError("age header: no recipient stanzas")
    mac_input = buf[: lines_end - len(line) - 1 + 3]  # up to and including "---"
    return _Header(stanzas, mac, mac_input), lines_end


def _x25519_unwrap(args: list[bytes], body: bytes, identity: RecoveryIdentity) -> bytes | None:
    if len(args) != 2 or len(body) != 32:
        raise DecryptionError("age header: malformed X25519 stanza")
    share = _b64(args[1], 32, "X25519 share")
    if identity.kind is not RecipientKind.X25519:
        return None
    private = identity.private_key()
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(share))
    except ValueError:
        raise DecryptionError("age header: X25519 share is a low-order point") from None
    wrap_key = _hkdf(shared, share + private.public_key().public_bytes_raw(), X25519_LABEL)
    try:
        return ChaCha20Poly1305(wrap_key).decrypt(b"\x00" * 12, body, None)
    except InvalidTag:
        return None


def _hybrid_unwrap(args: list[bytes], body: bytes, identity: RecoveryIdentity) -> bytes | None:
    if len(args) != 2:
        raise DecryptionError("age header: malformed mlkem768x25519 stanza")
    enc = _b64(args[1], HYBRID_ENC, "mlkem768x25519 encapsulated key")
    if len(body) != FILE_KEY + TAG:  # checked before decrypting: no partitioning oracle
        raise DecryptionError("age header: malformed mlkem768x25519 stanza body")
    if _low_order(enc[HYBRID_ENC - 32:]):  # the shared secret would be all zeros
        raise DecryptionError("age header: the mlkem768x25519 stanza's X25519 share is a low-order point")
    if identity.kind is not RecipientKind.HYBRID:
        return None
    try:
        return _hybrid_suite().decrypt(enc + body, identity.hybrid_private_key(), info=HYBRID_LABEL)
    except InvalidTag:
        return None
    except ValueError as exc:
        if "zero" in str(exc).lower() or "low" in str(exc).lower():
            raise DecryptionError("age header: the mlkem768x25519 stanza's X25519 share is a low-order point") from None
        return None


def _low_order(point: bytes) -> bool:
    """An X25519 point whose shared secret with every key is all zeros (cryptography refuses that output)."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    try:
        X25519PrivateKey.from_private_bytes(b"\x09" * 32).exchange(X25519PublicKey.from_public_bytes(point))
    except ValueError:
        return True
    return False


def header_kind(header: _Header) -> RecipientKind | None:
    """The kind of key a header is for: hybrid if it has an ``mlkem768x25519`` stanza, X25519 if it has an
    ``X25519`` one, None for neither. A hybrid stanza beside a classic one is refused."""
    types = {args[0] for args, _ in header.stanzas}
    if HYBRID_TYPE in types and b"X25519" in types:
        raise RecipientMixRefused(
            "age header: a hybrid post-quantum stanza sits beside a classic X25519 stanza; the classic one "
            "would let a future quantum computer open the file, so it is refused",
            "a file sealed by enigm-recover to a hybrid key never has one: treat this one as altered")
    if HYBRID_TYPE in types:
        return RecipientKind.HYBRID
    return RecipientKind.X25519 if b"X25519" in types else None


def _unwrap_file_key(header: _Header, identity: RecoveryIdentity) -> bytes:
    for args, _body in header.stanzas:
        if args[0] == b"scrypt" and len(header.stanzas) > 1:
            raise DecryptionError("age header: an scrypt stanza must be alone")
    kind = header_kind(header)
    found = None
    for args, body in header.stanzas:
        if args[0] == b"X25519":
            key = _x25519_unwrap(args, body, identity)
        elif args[0] == HYBRID_TYPE:
            key = _hybrid_unwrap(args, body, identity)
        else:
            continue
        if key is not None and found is None:
            if len(key) != FILE_KEY:
                raise DecryptionError("age header: the unwrapped file key is not 16 bytes")
            found = key
    if found is not None:
        return found
    if kind is not None and kind is not identity.kind:
        raise RecipientKindMismatch(
            f"the payload is sealed to a {kind.label} key, and the combined recovery key is a "
            f"{identity.kind.label} key: the cards are of the other kind of key",
            f"bring the cards of the {kind.value} key this snapshot was sealed to")
    raise DecryptionError("the payload is not encrypted to this recovery key")


def decrypt_chunks(source: BinaryIO, identity: RecoveryIdentity, read_size: int = 1 << 20) -> Iterator[bytes]:
    """Decrypt an age file read from ``source``, yielding plaintext in blocks.

    Each yielded block is authenticated; a truncated or altered stream raises
    DecryptionError before its damaged part is yielded (truncation is found
    at the end, so consumers must not commit anything before exhaustion).
    """
    head = source.read(MAX_HEADER)
    header, offset = _parse_header(head)
    file_key = _unwrap_file_key(header, identity)
    mac_key = _hkdf(file_key, b"", b"header")
    if not hmac.compare_digest(hmac.new(mac_key, header.mac_input, sha256).digest(), header.mac):
        raise DecryptionError("age header MAC does not match: the header was altered")
    rest = head[offset:]
    if len(rest) < 16:
        rest += source.read(16 - len(rest))
    if len(rest) < 16:
        raise DecryptionError("age payload is truncated (no nonce)")
    aead = ChaCha20Poly1305(_hkdf(file_key, rest[:16], b"payload"))
    buf = rest[16:]
    counter = 0
    eof = False
    while True:
        while not eof and len(buf) <= CT_CHUNK:
            data = source.read(read_size)
            if not data:
                eof = True
            buf += data
        view = memoryview(buf)
        out = []
        pos = 0
        while len(view) - pos > CT_CHUNK or (eof and pos < len(view)):
            remaining = len(view) - pos
            last = eof and remaining <= CT_CHUNK
            size = remaining if last else CT_CHUNK
            if size < TAG or (last and size == TAG and counter > 0):
                raise DecryptionError("age payload is truncated or has an empty final chunk")
            nonce = counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")
            try:
                out.append(aead.decrypt(nonce, view[pos : pos + size], None))
            except InvalidTag:
                raise DecryptionError(
                    f"age payload chunk {counter} failed authentication: the payload is truncated or altered"
                ) from None
            pos += size
            counter += 1
        buf = bytes(view[pos:])
        view.release()
        if out:
            yield b"".join(out)
        if eof and not buf:
            if counter == 0:
                raise DecryptionError("age payload is empty: truncated")
            return
