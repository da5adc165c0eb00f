"""Decrypt and decompress a verified snapshot into a stream of checked records.

age's AEAD does not authenticate the sender: anyone with the public recipient
can encrypt a payload that decrypts fine. Only the signed SHA-256 says the
payload is the producer's, so nothing decrypted is trusted until the stream
ends: the ciphertext is hashed as it is read and compared with the signed
size and SHA-256 at the end, age authenticates every chunk, and the record
checker compares counts and digests with the signed manifest. A consumer
holds back whatever it makes from the stream until the stream is exhausted
without error and its ``PayloadConfirmation`` holds the confirmed SHA-256.

Decompression is bounded: each call to the zstd decoder regenerates at most
DECOMPRESSED_BLOCK bytes (1 MiB), the frame's structure is walked before the
decoder sees each block (exactly one whole frame, nothing after it), and the
whole stream may not expand past what the signed record counts allow
(``plaintext_bound``): a decompression bomb is refused at that point, in
bounded memory.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator, NoReturn

import zstandard

from enigm_recover.errors import (
    DecryptionError,
    EnigmError,
    PayloadIntegrityError,
    SnapshotContentError,
    WrongRecoveryKey,
)
from enigm_recover.prefetch import prefetched
from enigm_recover.progress import Progress, ProgressCallback, Stage, no_progress
from enigm_recover.quorum.recovery_key import RecoveryIdentity
from enigm_recover.snapshot.agecrypt import decrypt_chunks
from enigm_recover.snapshot.records import MAX_LINE_BYTES, RecordChecker, chunk_lines, plaintext_bound
from enigm_recover.snapshot.verify import VerifiedSnapshot
from enigm_recover.state.model import Kind


class PayloadConfirmation:
    """Whether a stream of the payload reached its end with the signed size and SHA-256.

    Whatever a consumer made from the stream before then (a dry run's result, an unsealed file)
    may come from anyone who knows the public recipient: it is shown, written or acted on only
    after ``sha256`` returns.
    """

    def __init__(self) -> None:
        self._sha256: str | None = None

    def _confirm(self, sha256: str) -> None:
        self._sha256 = sha256

    def sha256(self) -> str:
        """The confirmed SHA-256; raises while the payload is not confirmed."""
        if self._sha256 is None:
            raise PayloadIntegrityError("the payload was not read to its end: its signed SHA-256 is not confirmed")
        return self._sha256


class _HashingReader:
    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.hasher = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.hasher.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(READ_BLOCK):
            pass


READ_BLOCK = 1 << 20
LINES_BYTES = 1 << 20  # lines handed on together (payload_line_lists)
DECOMPRESSED_BLOCK = 1 << 20  # the most one call to the zstd decoder regenerates
READ_AHEAD_BLOCKS = 8  # decrypted blocks waiting for the decompressor
MAX_BLOCK = 128 << 10  # RFC 8878: a block's content is at most 128 KiB
ZSTD_MAGIC = 0xFD2FB528
MAX_WINDOW = 1 << 23  # the producer's level 3 uses 2 MiB; a frame asking for more is refused


def require_matching_identity(verified: VerifiedSnapshot, identity: RecoveryIdentity) -> None:
    if identity.fingerprint != verified.manifest.recipient_fingerprint:
        raise WrongRecoveryKey(
            f"the combined recovery key ({identity.fingerprint}) is not the one this snapshot was "
            f"sealed to ({verified.manifest.recipient_fingerprint})")


def _altered(verified: VerifiedSnapshot, reader: _HashingReader) -> PayloadIntegrityError | None:
    manifest = verified.manifest
    if reader.size == manifest.payload_size and reader.hasher.hexdigest() == manifest.payload_sha256:
        return None
    return PayloadIntegrityError("payload SHA-256 does not match the signed manifest: the payload was altered")


Walked = SnapshotContentError | None  # what walking a block through the frame's structure refused, if anything


def _decrypted_blocks(verified: VerifiedSnapshot, identity: RecoveryIdentity, confirmation: PayloadConfirmation,
                      walker: _FrameWalker) -> Iterator[list[tuple[bytes, int, Walked]]]:
    """Each decrypted block with the payload bytes read so far and its walk through the frame's structure
    (one per batch, for ``prefetched``): walking is pure Python, so it is done here, beside decryption, and
    the decompressing thread only decompresses.

    The whole file is always hashed: when anything fails, a payload that does not
    match its signed SHA-256 is reported as altered, whatever else went wrong.
    """
    with open(verified.payload_path, "rb") as f:
        reader = _HashingReader(f)
        try:
            for block in decrypt_chunks(reader, identity, READ_BLOCK):  # type: ignore[arg-type]
                yield [(block, reader.size, walker.walk(block))]
        except DecryptionError as exc:
            reader.drain()
            raise _altered(verified, reader) or exc from None
        altered = _altered(verified, reader)
        if altered is not None:
            raise altered
        confirmation._confirm(reader.hasher.hexdigest())


def plaintext_blocks(verified: VerifiedSnapshot, identity: RecoveryIdentity,
                     progress: ProgressCallback = no_progress,
                     confirmation: PayloadConfirmation | None = None) -> Iterator[bytes]:
    """Decompressed payload bytes, in blocks; raises at the end if anything is off.

    The payload's SHA-256 is checked here, in the same pass as decryption, so a
    caller may skip hashing it beforehand; nothing is trusted until the end, when
    ``confirmation`` (if given) holds the confirmed SHA-256. Reading, hashing and
    ChaCha20-Poly1305 run on a thread of their own and zstd here: all release the
    GIL, so the two use two cores.
    """
    require_matching_identity(verified, identity)
    total = verified.manifest.payload_size
    inflater = _BoundedInflater(plaintext_bound(verified.manifest))
    blocks = prefetched(_decrypted_blocks(verified, identity, confirmation or PayloadConfirmation(), inflater.walker),
                        depth=READ_AHEAD_BLOCKS)
    upstream: list[BaseException] = []

    def walked_blocks() -> Iterator[tuple[bytes, Walked]]:
        try:
            for block, done, walked in blocks:
                yield block, walked
                progress(Progress(Stage.DECRYPT, done, total, "bytes"))
        except BaseException as exc:  # the payload's own verdict (altered, not decryptable): raised as it is
            upstream.append(exc)
            raise

    try:
        yield from inflater.inflate(walked_blocks())
    except EnigmError as error:  # the inflater's, or one a consumer found in the records (judge)
        if upstream and error is upstream[0]:
            raise
        raise _final_verdict(blocks) or error from None
    finally:
        blocks.close()


def judge(source: Iterator[Any], error: EnigmError) -> NoReturn:
    """Raise what is wrong with the payload behind ``source`` when a consumer found ``error`` in its content.

    Until the stream has ended, the content may be anyone's: the rest of the payload is read and hashed
    first, and a payload that is not the signed one is reported as altered, naming nothing it holds.
    """
    throw = getattr(source, "throw", None)
    if throw is not None:
        throw(error)  # the stream raises its own verdict, or ``error`` once the payload is confirmed
    raise error


class _FrameWalker:
    """Walks one zstd frame's structure (RFC 8878 §3.1.1) across arbitrary cuts, without decoding it.

    python-zstandard's stream reader does not say whether its input ended inside the frame, and skips
    skippable frames. Reading the frame's headers is cheap: it tells where the frame ends, so a payload
    that is not exactly one whole frame is refused. Decoding and checking the content is left to zstd.
    """

    def __init__(self) -> None:
        self._header = bytearray()  # the header being read (frame or block), possibly cut across inputs
        self._header_size = 6  # magic and descriptor first; the frame header's full size is known from them
        self._in_frame_header = True
        self._block_left = 0  # content bytes of the current block still to come
        self._last_block = False
        self._checksum_size = 0
        self._checksum_left = 0
        self.done = False
        self._refused: SnapshotContentError | None = None

    def walk(self, data: bytes) -> Walked:
        """Walk ``data``, the frame's next bytes; what it refused, if anything (then every later walk has it)."""
        if self._refused is None:
            try:
                self._advance(memoryview(data))
            except SnapshotContentError as exc:
                self._refused = exc
        return self._refused

    def _advance(self, data: memoryview) -> None:
        pos, size = 0, len(data)
        while pos < size:
            if self.done:
                raise SnapshotContentError("the payload holds data after the end of its zstd stream")
            if self._block_left:
                take = min(self._block_left, size - pos)
                pos += take
                self._block_left -= take
                if not self._block_left:
                    self._block_ended()
            elif self._checksum_left:
                take = min(self._checksum_left, size - pos)
                pos += take
                self._checksum_left -= take
                if not self._checksum_left:
                    self.done = True
            else:
                take = min(self._header_size - len(self._header), size - pos)
                self._header += data[pos:pos + take]
                pos += take
                if len(self._header) < self._header_size:
                    continue
                if self._in_frame_header:
                    self._frame_header()
                    continue
                self._block_header()
                if not self._block_left:
                    self._block_ended()

    def _frame_header(self) -> None:
        header = self._header
        if int.from_bytes(header[:4], "little") != ZSTD_MAGIC:
            raise _invalid()
        descriptor = header[4]
        if descriptor & 0x08:  # reserved bit
            raise _invalid()
        single_segment = bool(descriptor & 0x20)
        fcs_size = (1 if single_segment else 0, 2, 4, 8)[descriptor >> 6]
        full = 5 + (0 if single_segment else 1) + (0, 1, 2, 4)[descriptor & 3] + fcs_size
        if self._header_size < full:
            self._header_size = full
            if len(header) < full:
                return
        self._checksum_size = 4 if descriptor & 0x04 else 0
        self._in_frame_header = False
        self._header = bytearray()
        self._header_size = 3

    def _block_header(self) -> None:
        value = int.from_bytes(self._header, "little")
        self._header = bytearray()
        self._last_block = bool(value & 1)
        block_type = (value >> 1) & 3
        block_size = value >> 3
        if block_type == 3 or block_size > MAX_BLOCK:
            raise _invalid()
        self._block_left = 1 if block_type == 1 else block_size

    def _block_ended(self) -> None:
        if self._last_block:
            self._checksum_left = self._checksum_size
            self.done = not self._checksum_left


def _invalid() -> SnapshotContentError:
    return SnapshotContentError("the decrypted payload is not a valid zstd stream")


class _BoundedInflater:
    """One zstd frame, decompressed from a stream of blocks at most DECOMPRESSED_BLOCK bytes per call to the
    decoder, to at most ``limit`` bytes in all.

    A 64 KiB chunk can expand to gigabytes. python-zstandard's stream reader decompresses straight into the
    block it returns, no larger than asked, and pulls its input as it needs it: each call's output is
    bounded, nothing is copied twice, and a bomb is refused once ``limit`` is passed, in bounded memory. The
    reader does not say whether its input ended inside the frame and skips a skippable frame, so
    ``_FrameWalker`` walks the frame's structure alongside (here, or ahead on the decrypting thread):
    anything but one whole frame is refused.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.produced = 0
        self.walker = _FrameWalker()

    def inflate(self, walked: Iterable[tuple[bytes, Walked]]) -> Iterator[bytes]:
        """The frame in the blocks of ``walked``, each with what ``walker.walk`` said of it (see ``walking``)."""
        source = _WalkedBlocks(walked)
        reader = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW).stream_reader(source, read_size=READ_BLOCK)
        while True:
            try:
                out = reader.read(DECOMPRESSED_BLOCK)
            except zstandard.ZstdError:
                raise _invalid() from None
            if not out:
                break
            self.produced += len(out)
            if self.produced > self.limit:
                raise SnapshotContentError(
                    f"the payload decompresses to more than the {self.limit:,} bytes its signed record "
                    "counts allow: a decompression bomb, refused")
            yield out
        source.drain()  # the frame ended: any block left is walked, and refused
        if not self.walker.done:
            raise SnapshotContentError("the decrypted payload's zstd stream is truncated")


class _WalkedBlocks:
    """The stream reader's input: the walked blocks; a block whose walk refused it raises that instead."""

    def __init__(self, walked: Iterable[tuple[bytes, Walked]]) -> None:
        self._blocks = iter(walked)

    def read(self, _size: int = -1) -> bytes:
        """The next non-empty block; an empty one only at the end (the reader takes it for the end of input)."""
        for block, refused in self._blocks:
            if refused is not None:
                raise refused
            if block:
                return block
        return b""

    def drain(self) -> None:
        while self.read():
            pass


def walking(blocks: Iterable[bytes], walker: _FrameWalker) -> Iterator[tuple[bytes, Walked]]:
    """Each block with what ``walker`` said of it, walked as it is taken."""
    return ((block, walker.walk(block)) for block in blocks)


def _final_verdict(blocks: Iterator[Any]) -> Exception | None:
    """Read (and hash) the rest of the payload; what that found wrong, such as an altered payload."""
    try:
        for _ in blocks:
            pass
    except Exception as exc:  # noqa: BLE001 - returned to take precedence over the content error
        return exc
    return None


def payload_lines(verified: VerifiedSnapshot, identity: RecoveryIdentity,
                  progress: ProgressCallback = no_progress,
                  confirmation: PayloadConfirmation | None = None) -> Iterator[bytes]:
    """Each record line, with its newline. A block is split as it is (no copy of the whole block): only the
    line cut at a block's end is joined with the start of the next. An error found in a line (here, or
    thrown in by ``judge``) is judged with the rest of the payload first."""
    lists = payload_line_lists(verified, identity, progress, confirmation)
    try:
        for lines in lists:
            yield from lines
    except EnigmError as exc:
        judge(lists, exc)


def payload_line_lists(verified: VerifiedSnapshot, identity: RecoveryIdentity,
                       progress: ProgressCallback = no_progress,
                       confirmation: PayloadConfirmation | None = None) -> Iterator[list[bytes]]:
    """``payload_lines``, the whole lines of about ``LINES_BYTES`` of a decompressed block at a time (a block
    may be a few MiB: its lines are not all made at once)."""
    chunks = payload_chunks(verified, identity, progress, confirmation)
    try:
        for chunk in chunks:
            yield chunk_lines(*chunk)
    except EnigmError as exc:  # thrown in by ``judge``: the chunks judge it
        judge(chunks, exc)


def payload_chunks(verified: VerifiedSnapshot, identity: RecoveryIdentity,
                   progress: ProgressCallback = no_progress,
                   confirmation: PayloadConfirmation | None = None) -> Iterator[tuple[bytes, int]]:
    """``payload_line_lists`` without the lines made: each list's lines joined, as (bytes, the length of the
    start of its first line that an earlier block held); ``records.chunk_lines`` makes the list. A consumer
    that checks a whole chunk at once makes no bytes object per line."""
    source = plaintext_blocks(verified, identity, progress, confirmation)
    tail = b""
    try:
        for block in source:
            start, size = 0, len(block)
            while start < size:
                cut = block.rfind(b"\n", start, start + LINES_BYTES) + 1 if size - start > LINES_BYTES else size
                if cut <= start:  # no newline in this stretch: one long line, cut where the block allows
                    cut = min(size, start + LINES_BYTES)
                piece = block[start:cut]
                start = cut
                # Where the piece's last line ends, as bytes.splitlines sees lines: the rest (a line not ended by
                # a newline) goes on to the next piece, as the start of its first line.
                end = len(piece) if piece.endswith(b"\n") else \
                    max(piece.rfind(b"\n", 0, len(piece) - 1), piece.rfind(b"\r", 0, len(piece) - 1)) + 1
                if end == 0:
                    tail += piece
                else:
                    head = len(tail)
                    chunk = tail + piece[:end] if head or end < len(piece) else piece
                    tail = piece[end:]
                if len(tail) > MAX_LINE_BYTES:
                    raise SnapshotContentError(f"a payload record is longer than {MAX_LINE_BYTES} bytes")
                if end:
                    yield chunk, head
    except EnigmError as exc:
        judge(source, exc)
    if tail:
        raise SnapshotContentError("the payload's last record is not terminated by a newline")


def record_batches(verified: VerifiedSnapshot, identity: RecoveryIdentity,
                   progress: ProgressCallback = no_progress,
                   confirmation: PayloadConfirmation | None = None, *,
                   without_lines: frozenset[str] = frozenset()
                   ) -> Iterator[tuple[Kind, list[tuple[Any, ...]], list[bytes] | None]]:
    """``records``, a run of one kind's records at a time: (kind, values, canonical lines). The same checks,
    the same errors; a chunk of lines of one kind is checked at once (``RecordChecker.check_chunk``). A run
    of a kind in ``without_lines`` may come without its lines (None)."""
    checker = RecordChecker(verified.manifest)
    chunks = payload_chunks(verified, identity, progress, confirmation)
    for chunk, head in chunks:
        try:
            runs = checker.check_chunk(chunk, head, without_lines)
        except EnigmError as exc:
            judge(chunks, exc)
        yield from runs
    checker.finish()


def records(verified: VerifiedSnapshot, identity: RecoveryIdentity,
            progress: ProgressCallback = no_progress,
            confirmation: PayloadConfirmation | None = None) -> Iterator[tuple[Kind, tuple[Any, ...], bytes]]:
    """Checked records in payload order: (kind, values in field order, canonical line)."""
    checker = RecordChecker(verified.manifest)
    lines = payload_lines(verified, identity, progress, confirmation)
    for line in lines:
        try:
            kind, values = checker.check(line)
        except EnigmError as exc:
            judge(lines, exc)
        yield kind, values, line
    checker.finish()


def unseal_to_file(verified: VerifiedSnapshot, identity: RecoveryIdentity, out: Path, *,
                   overwrite: bool = False, progress: ProgressCallback = no_progress) -> dict[str, int]:
    """Write the checked records as JSON Lines to ``out`` (mode 0600), whole or not at all.

    The records go to a file without a name (``invisible_output``), which gets its name only once the
    payload is confirmed and every record checked: until then nobody can open it, and a crash, even
    SIGKILL, leaves nothing behind.
    """
    from enigm_recover.invisible import invisible_output  # only this consumer writes a file

    counts: dict[str, int] = {}
    confirmation = PayloadConfirmation()
    with invisible_output(out, mode=0o600, overwrite=overwrite) as f:
        for kind, _values, line in records(verified, identity, progress, confirmation):
            f.write(line)
            counts[kind.name] = counts.get(kind.name, 0) + 1
        confirmation.sha256()
    return counts
