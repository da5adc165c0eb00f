"""A payload's checked records, produced by a child process so that a dry run uses two cores.

Turning millions of payload lines into checked records (decrypt, decompress,
match each line, check key order, counts and digests) is Python work that
holds the GIL, and so is the dry run's merge with live rows. So the first runs
in a child interpreter: ``checked_batches`` starts it, hands it the verified
snapshot and the recovery identity over a pipe (memory only; nothing reaches
disk, argv or the environment), and reads back, in payload order, batches of
one kind's records as ``marshal`` frames of a few hundred records (values in
field order and canonical lines: of a kind whose lines are their values' canonical
encoding byte for byte, only when asked), the progress of decryption, and at the end
either the confirmed payload SHA-256 or the error that stopped it. The child runs
``unseal.record_batches``: ``unseal.records``' checks, in the same order, with
the same verdicts (an altered payload is judged with the rest of the payload
first). Its stderr goes nowhere: nothing of the records reaches a log.

Small payloads, a process allowed one core, or a child that cannot be started
(or ends before its first frame) leave the reading to this process: the same
records, the same errors.
"""

from __future__ import annotations

import marshal
import os
import pickle
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

from enigm_recover import errors
from enigm_recover.errors import EnigmError, PayloadIntegrityError
from enigm_recover.progress import Progress, ProgressCallback, Stage, no_progress
from enigm_recover.quorum.recipients import RecipientKind
from enigm_recover.quorum.recovery_key import RecoveryIdentity
from enigm_recover.state.model import KIND_BY_NAME, Kind

Row = tuple[Any, ...]
# One kind's records in payload order: values and canonical lines; the lines None where they were not asked for
# (a kind of records.VERBATIM_KINDS: ``records.CHECKED_LINE`` of the values makes each again, byte for byte).
Batch = tuple[Kind, list[Row], list[bytes] | None]

# Below this payload size the child's start-up (a fresh interpreter, ~0.2 s) costs more than it saves.
PARALLEL_MIN_PAYLOAD = 16 << 20
PIPE_BYTES = 1 << 20
# Records per frame: the parent unpacks a frame just before its merge reads it, so a small one is still in the
# CPU's cache when the merge gets there (a whole block's records, a few MiB of objects, are not).
FRAME_RECORDS = 256
_FRAME = struct.Struct("<I")


def _cores() -> int:
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)


def _want_child(payload_size: int) -> bool:
    return payload_size >= PARALLEL_MIN_PAYLOAD and _cores() > 1


def checked_batches(verified: Any, identity: RecoveryIdentity, progress: ProgressCallback = no_progress,
                    confirmation: Any = None, *, parallel: bool | None = None,
                    verbatim_lines: bool = True) -> Iterator[Batch]:
    """The payload's checked records in payload order, a batch (of one kind) at a time; raises what
    ``unseal.records`` raises, where it raises it. The stream is exhausted only once every check at the
    payload's end passed and ``confirmation`` (a ``PayloadConfirmation``) holds the confirmed SHA-256.

    ``parallel`` None: in a child process when the payload is large and there is a second core. Without
    ``verbatim_lines``, a batch of a kind whose lines are their values' canonical encoding may come without
    its lines (None): a consumer that needs only a few of them makes those again (``records.CHECKED_LINE``), and
    the child does not send the pipe every line of the payload beside its values."""
    if parallel is None:
        parallel = _want_child(verified.manifest.payload_size)
    child = _start_child(verified, identity, verbatim_lines) if parallel else None
    if child is None:
        return _local_batches(verified, identity, progress, confirmation, verbatim_lines)
    return _child_batches(child, progress, confirmation,
                          lambda: _local_batches(verified, identity, progress, confirmation, verbatim_lines))


def _local_batches(verified: Any, identity: RecoveryIdentity, progress: ProgressCallback,
                   confirmation: Any, verbatim_lines: bool = True) -> Iterator[Batch]:
    from enigm_recover.snapshot.records import VERBATIM_KINDS
    from enigm_recover.snapshot.unseal import record_batches

    return record_batches(verified, identity, progress, confirmation,
                          without_lines=frozenset() if verbatim_lines else VERBATIM_KINDS)


# -- the parent's side ----------------------------------------------------------


def _start_child(verified: Any, identity: RecoveryIdentity,
                 verbatim_lines: bool = True) -> subprocess.Popen[bytes] | None:
    """The child, given its request; None when it cannot be started (the caller reads in-process)."""
    request = pickle.dumps((verified.manifest, str(verified.payload_path), identity.secret_bytes(), identity.kind.value,
                            verbatim_lines), protocol=pickle.HIGHEST_PROTOCOL)
    # -P: the working folder is not put on the child's import path; this package's own location is.
    package_root = str(Path(__file__).resolve().parent.parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
    try:
        child = subprocess.Popen([sys.executable, "-P", "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, close_fds=True, env=env)
    except OSError:
        return None
    assert child.stdin is not None and child.stdout is not None
    _widen_pipe(child.stdout)
    try:
        child.stdin.write(_FRAME.pack(len(request)) + request)
        child.stdin.close()
    except OSError:
        _stop(child)
        return None
    finally:
        del request
    return child


def _widen_pipe(stream: BinaryIO) -> None:
    """A larger pipe buffer (Linux): the child writes a batch or more ahead of the parent, in fewer steps."""
    try:
        import fcntl

        fcntl.fcntl(stream.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)
    except (ImportError, OSError):
        pass


def _read_frame(stream: BinaryIO) -> Any:
    head = _read_exactly(stream, _FRAME.size)
    return marshal.loads(_read_exactly(stream, _FRAME.unpack(head)[0]))


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    """``size`` bytes of a buffered stream (which reads until it has them, or the end)."""
    data = stream.read(size)
    if len(data) < size:
        raise _child_failed()
    return data


def _child_failed() -> EnigmError:
    return PayloadIntegrityError("the process reading the payload's records stopped before the payload's end",
                                 "run the command again; if it recurs, unseal the snapshot to check it")


def _stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.kill()
    child.wait()
    if child.stdout is not None:
        child.stdout.close()


def _child_batches(child: subprocess.Popen[bytes], progress: ProgressCallback, confirmation: Any,
                   in_process: Callable[[], Iterator[Batch]]) -> Iterator[Batch]:
    """The child's frames as batches; a child that ends before its first frame (it could not start: an
    interpreter without this package, say) leaves the reading to this process."""
    assert child.stdout is not None
    stream = child.stdout
    try:
        if not stream.peek(1):
            _stop(child)
            yield from in_process()
            return
        while True:
            frame = _read_frame(stream)
            tag = frame[0]
            if tag == "b":
                yield KIND_BY_NAME[frame[1]], frame[2], frame[3]
            elif tag == "p":
                progress(Progress(Stage(frame[1]), frame[2], frame[3], frame[4], frame[5]))
            elif tag == "e":
                if confirmation is not None:
                    confirmation._confirm(frame[1])
                _child_peak[0] = frame[2]
                return
            elif tag == "x":
                raise _error(frame[1], frame[2], frame[3])
            else:  # pragma: no cover - only this module writes frames
                raise _child_failed()
    finally:
        _stop(child)


_child_peak = [0]  # the last child's peak resident memory, KiB (its own VmHWM): a dry run's memory is both's


def last_child_peak_mib() -> float:
    """The peak resident memory of the last child that read a payload to its end (0 when none has)."""
    return _child_peak[0] / 1024


def _own_peak_kib() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _error(name: str, message: str, hint: str) -> EnigmError:
    """The child's error as the same class (one of enigm_recover.errors), message and hint."""
    cls = getattr(errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, EnigmError)):
        cls = PayloadIntegrityError
    error = cls.__new__(cls)
    EnigmError.__init__(error, message, hint)
    return error


# -- the child's side -----------------------------------------------------------

AHEAD_BYTES = 4 << 20  # frames the child may have made and not yet written (besides what the pipe holds)


class _FrameWriter:
    """Writes the child's frames on a thread of its own, so that checking goes on while the parent is busy
    with the frames before: the pipe alone holds only a few frames, less than one block of the payload
    makes, and the two processes took turns waiting for each other. Up to ``AHEAD_BYTES`` wait here; what
    is waiting is written in one system call (the GIL is released while it blocks)."""

    def __init__(self, out: BinaryIO) -> None:
        out.flush()
        self._fd = out.fileno()
        self._ready = threading.Condition()
        self._pending: list[bytes] = []
        self._size = 0
        self._closed = False
        self._error: OSError | None = None
        self._thread = threading.Thread(target=self._write, name="enigm-frames", daemon=True)
        self._thread.start()

    def put(self, data: bytes) -> None:
        with self._ready:
            while self._size >= AHEAD_BYTES and self._error is None:
                self._ready.wait()
            if self._error is not None:
                raise self._error
            self._pending.append(data)
            self._size += len(data)
            self._ready.notify_all()

    def close(self) -> None:
        """Write what is waiting, then stop; raises what stopped the writing (the parent left, say)."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()
        self._thread.join()
        if self._error is not None:
            raise self._error

    def _write(self) -> None:
        while True:
            with self._ready:
                while not self._pending and not self._closed:
                    self._ready.wait()
                if not self._pending:
                    return
                chunks, self._pending = self._pending, []
            try:
                _write_all(self._fd, chunks)
            except OSError as exc:
                with self._ready:
                    self._error = exc
                    self._ready.notify_all()
                return
            with self._ready:  # written: room for as many more
                self._size -= sum(map(len, chunks))
                self._ready.notify_all()


def _write_all(fd: int, chunks: list[bytes]) -> None:
    views = [memoryview(c) for c in chunks]
    while views:
        written = os.writev(fd, views[:1024])  # IOV_MAX
        while written and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if written:
            views[0] = views[0][written:]



def _child_main(source: BinaryIO, out: BinaryIO) -> None:
    from enigm_recover.snapshot.unseal import PayloadConfirmation
    from enigm_recover.snapshot.verify import VerifiedSnapshot

    head = _read_exactly(source, _FRAME.size)
    manifest, payload_path, secret, kind, verbatim_lines = pickle.loads(_read_exactly(source, _FRAME.unpack(head)[0]))
    verified = VerifiedSnapshot(manifest, Path(payload_path))
    identity = RecoveryIdentity(secret, RecipientKind(kind))
    del secret

    writer = _FrameWriter(out)

    def send(frame: tuple[Any, ...]) -> None:
        data = marshal.dumps(frame)
        writer.put(_FRAME.pack(len(data)) + data)

    def report(p: Progress) -> None:
        send(("p", str(p.stage), p.done, p.total, p.unit, p.subject))

    confirmation = PayloadConfirmation()
    try:
        for kind, values, lines in _local_batches(verified, identity, report, confirmation, verbatim_lines):
            for start in range(0, len(values), FRAME_RECORDS):
                end = start + FRAME_RECORDS
                send(("b", kind.name, values[start:end], None if lines is None else lines[start:end]))
        send(("e", confirmation.sha256(), _own_peak_kib()))
    except EnigmError as exc:
        send(("x", type(exc).__name__, exc.message, exc.hint))
    writer.close()


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops this process
    try:
        _child_main(sys.stdin.buffer, sys.stdout.buffer)
    except (BrokenPipeError, KeyboardInterrupt):  # the parent stopped reading: it has its answer
        pass
