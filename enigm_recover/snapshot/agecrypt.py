"""age v1 encryption to, and decryption with, an X25519 recovery identity.

Encryption uses pyrage (the age reference implementation in Rust). Decryption of
payloads is implemented here on ``cryptography``'s OpenSSL ChaCha20-Poly1305,
following the age specification (C2SP age v1) for the one recipient type we
use: pyrage holds the GIL and decrypts at a fraction of OpenSSL's speed, and
decryption is the hot path of every recovery. Parsing is strict: anything the
specification does not allow is refused. Tests check this module against
pyrage and the real ``age`` program in both directions.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import io
import re
from hashlib import sha256
from typing import BinaryIO, Iterable, Iterator

import pyrage
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from enigm_recover.errors import DecryptionError
from enigm_recover.quorum.recovery_key import RecoveryIdentity

VERSION_LINE = b"age-encryption.org/v1"
X25519_LABEL = b"age-encryption.org/v1/X25519"
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


def encrypt_stream(chunks: Iterable[bytes], recipient: str, out: BinaryIO) -> None:
    """Encrypt a stream of plaintext chunks to ``recipient`` (``age1...``) into ``out``."""
    source = _IteratorReader(chunks)
    try:
        pyrage.encrypt_io(io.BufferedReader(source, buffer_size=1 << 20), out,
                          [pyrage.x25519.Recipient.from_str(recipient)])
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


def _unwrap_file_key(header: _Header, identity: RecoveryIdentity) -> bytes:
    our_public = identity.private_key().public_key().public_bytes_raw()
    for args, body in header.stanzas:
        if args[0] == b"scrypt" and len(header.stanzas) > 1:
            raise DecryptionError("age header: an scrypt stanza must be alone")
        if args[0] != b"X25519":
            continue
        if len(args) != 2 or len(body) != 32:
            raise DecryptionError("age header: malformed X25519 stanza")
        share = _b64(args[1], 32, "X25519 share")
        try:
            shared = identity.private_key().exchange(X25519PublicKey.from_public_bytes(share))
        except ValueError:
            raise DecryptionError("age header: X25519 share is a low-order point") from None
        wrap_key = _hkdf(shared, share + our_public, X25519_LABEL)
        try:
            return ChaCha20Poly1305(wrap_key).decrypt(b"\x00" * 12, body, None)
        except InvalidTag:
            continue
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
