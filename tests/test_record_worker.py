"""A large payload's records are checked in a child process, beside the dry run's merge: the same records,
the same results, the same refusals as when they are checked in-process."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from enigm_recover.errors import EnigmError, PayloadIntegrityError, ScopeError, SnapshotContentError
from enigm_recover.snapshot import record_worker
from enigm_recover.snapshot.manifest import payload_name
from enigm_recover.snapshot.records import RecordChecker
from enigm_recover.snapshot.unseal import PayloadConfirmation
from enigm_recover.snapshot.verify import VerifiedSnapshot
from tests.helpers import read_manifest
from tests.test_authenticated_payload import identity_of, re_encrypt, shares
from tests.test_snapshot import _forge_payload, _latest_lines


def verified_of(drill) -> VerifiedSnapshot:
    return VerifiedSnapshot(read_manifest(drill.snapshots, drill.latest), drill.snapshots / payload_name(drill.latest))


def stream(drill, parallel: bool) -> tuple[list, str]:
    """Every record the batches hold, as (kind, values, line), and the confirmed SHA-256."""
    confirmation = PayloadConfirmation()
    out = [(kind.name, values, line)
           for kind, rows, lines in record_worker.checked_batches(verified_of(drill), identity_of(drill),
                                                                  confirmation=confirmation, parallel=parallel)
           for values, line in zip(rows, lines, strict=True)]
    return out, confirmation.sha256()


def outcome(drill, parallel: bool) -> tuple[type, str] | tuple[list, str]:
    try:
        return stream(drill, parallel)
    except EnigmError as exc:
        return type(exc), exc.one_line()


def test_the_child_hands_back_exactly_the_records_checked_in_process(drill) -> None:
    records, sha = stream(drill, parallel=True)
    assert (records, sha) == stream(drill, parallel=False)
    assert sha == read_manifest(drill.snapshots, drill.latest).payload_sha256
    assert len(records) == sum(s.count for s in read_manifest(drill.snapshots, drill.latest).scope.values())


def test_a_dry_run_with_the_child_finds_the_same_changes_in_the_same_order(drill, cli, monkeypatch) -> None:
    args = ("diff", drill.snapshots, "latest", "--allowed-signers", drill.allowed_signers, "--target", drill.target,
            "--json", *shares(drill))
    code, alone, err = cli(*args)
    assert code == 0, err
    monkeypatch.setattr(record_worker, "PARALLEL_MIN_PAYLOAD", 0)
    started = []
    real_start = record_worker._start_child
    monkeypatch.setattr(record_worker, "_start_child", lambda *a: started.append(1) or real_start(*a))
    code, beside, err = cli(*args)
    assert code == 0, err
    same, other = json.loads(beside), json.loads(alone)
    same.pop("recovery"), other.pop("recovery")  # each run is a ceremony of its own
    assert started and same == other
    assert same["changes"]  # the drill's incident: there is something to compare


def test_a_verbatim_kinds_line_made_from_its_checked_values_is_the_line_checked(drill) -> None:
    """The child need not send a verbatim kind's lines: made again from the values, each is byte for byte the
    line the checker accepted (and hashed) in the payload."""
    from enigm_recover.snapshot.records import CHECKED_LINE, VERBATIM_KINDS

    records, _ = stream(drill, parallel=False)
    verbatim = [(kind, values, line) for kind, values, line in records if kind in VERBATIM_KINDS]
    assert {kind for kind, _, _ in verbatim} == {"identity", "device", "role"}
    assert all(CHECKED_LINE[kind](values) == line for kind, values, line in verbatim)


@pytest.mark.parametrize("loss", ["incident", "total loss"])
def test_a_dry_run_with_the_child_keeps_the_same_lines_for_the_restore(drill, monkeypatch, loss: str) -> None:
    """Without a verbatim kind's lines from the child, a dry run keeps the same changes, each with the same
    snapshot line (what a restore writes), as a dry run that read the payload itself."""
    from enigm_recover.recovery.diff import diff
    from enigm_recover.state.model import KINDS
    from enigm_recover.state.stores import open_store

    if loss == "total loss":
        with open_store(drill.target) as store, store.transaction() as conn:
            for kind in KINDS:
                conn.execute(f"DELETE FROM {kind.table}")

    def kept(parallel: bool) -> list[tuple]:
        monkeypatch.setattr(record_worker, "PARALLEL_MIN_PAYLOAD", 0 if parallel else 1 << 62)
        started: list[int] = []
        real_start = record_worker._start_child
        monkeypatch.setattr(record_worker, "_start_child", lambda *a: started.append(1) or real_start(*a))
        with open_store(drill.target) as store:
            result = diff(verified_of(drill), identity_of(drill), store)
        assert bool(started) is parallel
        return [(c.kind, c.key, c.change, c.fields, c.findings, c.protected, c.snapshot_line) for c in result.changes]

    beside = kept(parallel=True)
    assert beside == kept(parallel=False)
    assert sum(1 for c in beside if c[-1] is not None) > 20


def test_a_re_encrypted_payload_is_refused_by_the_child_as_in_process(drill) -> None:
    re_encrypt(drill)
    refused = outcome(drill, parallel=True)
    assert refused == outcome(drill, parallel=False)
    assert refused[0] is PayloadIntegrityError and "the payload was altered" in refused[1]


@pytest.mark.parametrize("damage", ["order", "scope", "count", "junk"])
def test_a_signed_payload_with_bad_records_is_refused_by_the_child_as_in_process(drill, cli, tmp_path,
                                                                                  damage: str) -> None:
    lines = _latest_lines(drill, cli, tmp_path)
    devices = [i for i, line in enumerate(lines) if line.startswith(b'{"kind":"device"')]
    if damage == "order":
        a, b = devices[3], devices[4]
        lines[a], lines[b] = lines[b], lines[a]
    elif damage == "scope":
        record = json.loads(lines[devices[5]])
        record["last_message_preview"] = "see you at 5"
        lines[devices[5]] = (json.dumps(record, separators=(",", ":")) + "\n").encode()
    elif damage == "count":
        del lines[devices[-1]]
    else:  # characters before a canonical record on its line
        lines[devices[7]] = b" " + lines[devices[7]]
    _forge_payload(drill, lines)
    refused = outcome(drill, parallel=True)
    assert refused == outcome(drill, parallel=False)
    assert issubclass(refused[0], (SnapshotContentError, ScopeError)), refused  # type: ignore[arg-type]
    assert "see you at 5" not in str(refused[1])


def test_a_consumer_that_stops_early_stops_the_child(drill, monkeypatch) -> None:
    children: list[subprocess.Popen] = []
    real_start = record_worker._start_child
    monkeypatch.setattr(record_worker, "_start_child", lambda *a: children.append(real_start(*a)) or children[-1])
    batches = record_worker.checked_batches(verified_of(drill), identity_of(drill), parallel=True)
    next(batches)
    batches.close()
    assert len(children) == 1 and children[0].returncode is not None  # stopped and reaped


def test_the_child_is_not_started_for_a_small_payload(drill, monkeypatch) -> None:
    monkeypatch.setattr(record_worker, "_start_child", lambda *a: pytest.fail("a child was started"))
    assert stream(drill, parallel=None)[0]


def test_lines_checked_as_a_block_are_checked_as_one_by_one(drill, cli, tmp_path) -> None:
    """``check_lines`` takes a whole block at once only where ``check`` would accept every line of it:
    a line with anything around its record, a key out of order or a record of another kind is found
    line by line, with the same error for the same line."""
    manifest = read_manifest(drill.snapshots, drill.latest)
    lines = _latest_lines(drill, cli, tmp_path)
    devices = [line for line in lines if line.startswith(b'{"kind":"device"')]
    head = [line for line in lines if not line.startswith(b'{"kind":"device"')][:-3]  # identities (and roles...)
    head = [line for line in head if line.startswith(b'{"kind":"identity"')]

    def one_by_one(block: list[bytes]) -> object:
        checker = RecordChecker(manifest)
        try:
            for line in head + block:
                checker.check(line)
        except EnigmError as exc:
            return type(exc), exc.message
        checker._hash_accepted()
        return checker.line_no, checker.digest.count, checker.digest.hasher.hexdigest()

    def as_block(block: list[bytes]) -> object:
        checker = RecordChecker(manifest)
        try:
            checker.check_lines(head)
            checker.check_lines(block[:2])
            runs = checker.check_lines(block[2:])
        except EnigmError as exc:
            return type(exc), exc.message
        assert [line for _, _, run in runs for line in run] == block[2:]
        checker._hash_accepted()
        return checker.line_no, checker.digest.count, checker.digest.hasher.hexdigest()

    damaged = {
        "none": devices,
        "prefix": [*devices[:5], b"x" + devices[5], *devices[6:]],
        "suffix": [*devices[:5], devices[5][:-1] + b" \n", *devices[6:]],
        "two in one": [*devices[:5], devices[5][:-1] + devices[6], *devices[7:]],
        "order": [*devices[:5], devices[6], devices[5], *devices[7:]],
        "repeat": [*devices[:5], devices[5], *devices[5:]],
        "not utf-8": [*devices[:5], devices[5].replace(b"active", b"\xff\xfe"), *devices[6:]],
        "an empty line": [*devices[:5], b"\n", *devices[5:]],
        "a carriage return": [*devices[:5], devices[5].replace(b'","state"', b'\r","state"'), *devices[6:]],
        "a line too long": [*devices[:5], devices[5][:-2] + b" " * 70_000 + b"}\n", *devices[6:]],
        "no last newline": [*devices[:-1], devices[-1][:-1]],
    }
    def as_chunk(block: list[bytes], without_lines: frozenset[str]) -> object:
        checker = RecordChecker(manifest)
        try:
            checker.check_lines(head)
            checker.check_chunk(b"".join(block[:2]))
            runs = checker.check_chunk(b"".join(block[2:]), 0, without_lines)
        except EnigmError as exc:
            return type(exc), exc.message
        kept = [line for _, _, run in runs if run is not None for line in run]
        assert kept == ([] if "device" in without_lines else b"".join(block[2:]).splitlines(keepends=True))
        checker._hash_accepted()
        return checker.line_no, checker.digest.count, checker.digest.hasher.hexdigest()

    for name, block in damaged.items():
        alone = one_by_one(block)
        assert as_block(block) == alone, name
        if name != "none":
            assert isinstance(alone[0], type) and issubclass(alone[0], EnigmError), name
        # Joined in a chunk, the lines are those bytes.splitlines finds (a carriage return ends one too).
        split = b"".join(block).splitlines(keepends=True)
        for without_lines in (frozenset(), frozenset({"device"})):
            assert as_chunk(block, without_lines) == one_by_one(split), (name, without_lines)


def test_integers_checked_as_a_block_are_checked_as_one_by_one(drill, cli, tmp_path) -> None:
    """A block's integers are converted a column at a time: a value past the model's bound, or written
    otherwise than canonically, is refused as it is line by line, with the same error."""
    manifest = read_manifest(drill.snapshots, drill.latest)
    identities = [line for line in _latest_lines(drill, cli, tmp_path) if line.startswith(b'{"kind":"identity"')]
    assert len(identities) > 8

    def with_version(line: bytes, version: bytes) -> bytes:
        return re.sub(rb'"key_version":[0-9]+', b'"key_version":' + version, line)

    def outcome(block: list[bytes], at_once: bool) -> object:
        checker = RecordChecker(manifest)
        try:
            if at_once:
                checker.check_lines(block[:1])
                runs = checker.check_lines(block[1:])
                assert [line for _, _, run in runs for line in run] == block[1:]
                values = [v for _, rows, _ in runs for v in rows]
            else:
                values = [checker.check(line)[1] for line in block][1:]
        except EnigmError as exc:
            return type(exc), exc.message
        checker._hash_accepted()
        return values, checker.line_no, checker.digest.hasher.hexdigest()

    for version in (b"1", b"2147483647", b"2147483648", b"9999999999", b"0", b"01", b"-1", b"1.0", b'"1"'):
        block = [*identities[:4], with_version(identities[4], version), *identities[5:]]
        alone = outcome(block, at_once=False)
        assert outcome(block, at_once=True) == alone, version
        accepted = version in (b"1", b"2147483647")
        assert isinstance(alone[0], list) is accepted, version
        if accepted:
            assert alone[0][3][3] == int(version) and type(alone[0][3][3]) is int


def test_the_child_starts_without_the_working_folder_on_its_import_path(drill, tmp_path, monkeypatch) -> None:
    """The child imports this package, never a module of the same name in the folder it was started from."""
    trap = tmp_path / "enigm_recover"
    trap.mkdir()
    (trap / "__init__.py").write_text("raise SystemExit('imported from the working folder')\n")
    monkeypatch.chdir(tmp_path)
    assert stream(drill, parallel=True)[0]
    assert sys.modules["enigm_recover"].__file__ != str(trap / "__init__.py")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=60).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b"") + b"\n"), max_size=40),
       st.lists(st.integers(min_value=0, max_value=2000), max_size=12), st.integers(min_value=1, max_value=90))
def test_a_block_handed_on_in_parts_gives_back_the_same_lines(lines: list[bytes], cuts: list[int], part: int) -> None:
    """A decompressed block is split into lists of about LINES_BYTES: any cut of the payload into blocks, any
    part size, the same lines in the same order."""
    from enigm_recover.snapshot import unseal

    data = b"".join(lines)
    points = sorted({min(c, len(data)) for c in cuts})
    blocks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(unseal, "plaintext_blocks", lambda *a, **k: iter(blocks))
        mp.setattr(unseal, "LINES_BYTES", part)
        assert [line for chunk in unseal.payload_line_lists(None, None) for line in chunk] == lines  # type: ignore[arg-type]


def test_a_child_that_cannot_start_leaves_the_reading_to_this_process(drill, monkeypatch) -> None:
    """A child that ends before it says anything (an interpreter that cannot import this package, say):
    the records are read in-process instead, the same ones."""
    def silent_child(*_: object) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", "raise SystemExit(1)"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    expected = stream(drill, parallel=False)
    monkeypatch.setattr(record_worker, "_start_child", silent_child)
    assert stream(drill, parallel=True) == expected


def test_the_frame_writer_writes_every_frame_in_order_while_the_reader_lags(monkeypatch) -> None:
    import os
    import threading

    monkeypatch.setattr(record_worker, "AHEAD_BYTES", 4096)  # the child waits for the reader, it does not run away
    read_end, write_end = os.pipe()
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(os.fdopen(read_end, "rb").read()))
    reader.start()
    frames = [bytes([i % 251]) * (1 + i * 37 % 70_000) for i in range(300)]
    with os.fdopen(write_end, "wb") as out:
        writer = record_worker._FrameWriter(out)
        for frame in frames:
            writer.put(frame)
        writer.close()
    reader.join()
    assert received == [b"".join(frames)]


def test_the_frame_writer_stops_when_the_parent_has_left(monkeypatch) -> None:
    import os

    monkeypatch.setattr(record_worker, "AHEAD_BYTES", 4096)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the parent has its answer and stopped reading
    with os.fdopen(write_end, "wb") as out:
        writer = record_worker._FrameWriter(out)
        with pytest.raises(BrokenPipeError):
            for _ in range(100):
                writer.put(b"x" * 1000)
            writer.close()
