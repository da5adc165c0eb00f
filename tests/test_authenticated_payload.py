"""Nothing decrypted is shown, written or acted on before the payload's signed size and SHA-256 hold.

age does not authenticate the sender: anyone with the public recipient can encrypt a payload that
decrypts, decompresses and parses fine. These attacks use exactly that, and decompression bombs whose
payload a (compromised or faulty) producer signed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
import zstandard

from enigm_recover.errors import PayloadIntegrityError
from enigm_recover.snapshot.agecrypt import encrypt_stream
from enigm_recover.snapshot.manifest import payload_name
from tests.helpers import dump, manifest_path, read_manifest, sign_as_producer

SCRIPT = Path(sys.executable).parent / "enigm-recover"
THREE = ("amara", "chen", "emeka")
BOMB_BYTES = 16 << 30  # what the bomb expands to: 16 GiB
ADDRESS_SPACE = 4 << 30  # the CLI's limit in these tests: a bomb decompressed whole fails, not the machine
BOUNDED_RSS = 400 << 20


def shares(drill) -> list[str]:
    return [arg for name in THREE for arg in ("--share-file", str(drill.card(name)))]


def run_measured(argv: list, folder: Path) -> tuple[int, str, str, int]:
    """Run the CLI in a process of its own, its address space limited so that a bomb decompressed whole
    fails rather than exhausts the machine: (exit code, stdout, stderr, the process's peak RSS in bytes)."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    out_path, err_path = folder / "stdout", folder / "stderr"
    with open(os.devnull, "rb") as stdin, open(out_path, "wb") as out, open(err_path, "wb") as err:
        process = subprocess.Popen([str(SCRIPT), *map(str, argv)], stdin=stdin, stdout=out, stderr=err,
                                   preexec_fn=limit)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own rusage, not all children's
        process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, out_path.read_text(), err_path.read_text(), usage.ru_maxrss * 1024


def rle_frame(size: int, byte: bytes = b"\n") -> bytes:
    """One zstd frame (RFC 8878) of ``size`` copies of ``byte``, as RLE blocks of 128 KiB: 4 bytes each."""
    block = 128 * 1024
    frame = bytearray(b"\x28\xb5\x2f\xfd" + bytes([0x00, (17 - 10) << 3]))  # no size, no checksum; 128 KiB window
    blocks = size // block
    for i in range(blocks):
        header = block << 3 | 1 << 1 | (i == blocks - 1)
        frame += header.to_bytes(3, "little") + byte
    return bytes(frame)


def replace_payload(drill, compressed: bytes, *, sign: bool) -> None:
    """The latest payload becomes ``compressed``, encrypted to the snapshot's own recipient; with ``sign``
    the producer's key signs a manifest with its size and SHA-256 (a compromised or faulty producer)."""
    import hashlib

    manifest = read_manifest(drill.snapshots, drill.latest)
    buffer = io.BytesIO()
    encrypt_stream([compressed], manifest.recipient, buffer)
    data = buffer.getvalue()
    (drill.snapshots / payload_name(drill.latest)).write_bytes(data)
    if sign:
        text = manifest_path(drill.snapshots, drill.latest).read_text()
        text = text.replace(f"size = {manifest.payload_size}", f"size = {len(data)}")
        text = text.replace(manifest.payload_sha256, hashlib.sha256(data).hexdigest())
        sign_as_producer(drill.snapshots, drill.latest, text.encode(), drill.signing_key)


def original_records(drill, cli, tmp_path: Path) -> bytes:
    out = tmp_path / "original.jsonl"
    code, _, err = cli("unseal", drill.snapshots, "latest", "--allowed-signers", drill.allowed_signers,
                       "--out", out, *shares(drill))
    assert code == 0, err
    data = out.read_bytes()
    out.unlink()
    return data


def identity_of(drill):
    from enigm_recover.quorum.cards import read_share_file
    from enigm_recover.quorum.entry import ShareEntry

    entry = ShareEntry(read_manifest(drill.snapshots, drill.latest).recipient_fingerprint)
    for name in THREE:
        entry.add(read_share_file(drill.card(name)).words, name)
    return entry.combine()


PADDING = hashlib.sha256(b"padding").hexdigest() * 8  # varied, so that each character counts once compressed


def re_encrypt(drill, plaintext: bytes | Callable[[int], bytes] | None = None) -> None:
    """An attacker's payload: the signed payload's own records (or ``plaintext``), encrypted afresh to the
    public recipient until it has the signed size. Valid age, valid zstd, valid records: only the signed
    SHA-256 tells it apart. ``plaintext`` may be a function of a padding length: the forged records are then
    compressed (at some level, with some padding) to exactly the signed payload's compressed length first."""
    from enigm_recover.snapshot.agecrypt import decrypt_chunks

    manifest = read_manifest(drill.snapshots, drill.latest)
    path = drill.snapshots / payload_name(drill.latest)
    with open(path, "rb") as f:
        original = b"".join(decrypt_chunks(f, identity_of(drill)))
    if plaintext is None:
        compressed = original
    elif callable(plaintext):
        compressed = next((c for level in range(1, 20) for pad in range(256)
                           if len(c := zstandard.ZstdCompressor(level=level).compress(plaintext(pad)))
                           == len(original)), b"")
        if not compressed:
            pytest.fail("no padding compresses the forged records to the signed payload's length")
    else:
        compressed = zstandard.ZstdCompressor(level=3).compress(plaintext)
    for _ in range(20_000):  # age's grease stanza varies the header: try until the size is the signed one
        buffer = io.BytesIO()
        encrypt_stream([compressed], manifest.recipient, buffer)
        if len(buffer.getvalue()) == manifest.payload_size:
            path.write_bytes(buffer.getvalue())
            return
    pytest.fail("no re-encryption of the signed size")


# -- decompression bombs -------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["unseal", "diff"])
def test_a_signed_decompression_bomb_is_refused_as_tampering_in_bounded_memory(drill, tmp_path: Path,
                                                                             command: str) -> None:
    frame = rle_frame(BOMB_BYTES)
    assert len(frame) < 1 << 20  # a payload of well under a megabyte, signed, that expands to 16 GiB
    replace_payload(drill, frame, sign=True)
    out = tmp_path / "out" / "records.jsonl"
    out.parent.mkdir()
    target = ["--out", out] if command == "unseal" else ["--target", drill.target]
    code, stdout, err, peak = run_measured([command, drill.snapshots, "latest", "--allowed-signers",
                                            drill.allowed_signers, *target, *shares(drill)], tmp_path)
    assert code == PayloadIntegrityError.exit_code, err
    assert "decompression bomb" in err and "Traceback" not in err, err
    assert peak < BOUNDED_RSS, f"peak RSS {peak >> 20} MiB"
    assert list(out.parent.iterdir()) == []
    assert "identity" not in stdout


def test_the_bound_is_what_the_signed_counts_allow(drill) -> None:
    """The bound comes from the signed record counts and the model's longest line per kind: a record of
    each kind with every field at its longest fits its kind's bound exactly."""
    from enigm_recover.snapshot.records import WIDEST_LINE, canonical_line, parse_checked_line, plaintext_bound
    from enigm_recover.state.model import KIND_BY_NAME

    widest = {
        "identity": {"account_id": "a" * 128, "handle": "h" * 64, "identity_key": "k" * 43 + "=",
                     "key_version": 2**31 - 1, "status": "suspended", "created_at": "2026-01-01T00:00:00Z",
                     "updated_at": "2026-01-01T00:00:00Z"},
        "device": {"device_id": "d" * 128, "account_id": "a" * 128, "device_key": "k" * 43 + "=",
                   "state": "suspended", "enrolled_at": "2026-01-01T00:00:00Z",
                   "state_changed_at": "2026-01-01T00:00:00Z", "reason": "r" * 64},
        "role": {"operator": "o" * 128, "role": "r" * 128, "granted_by": "g" * 128,
                 "granted_at": "2026-01-01T00:00:00Z"},
    }
    for kind, record in widest.items():
        assert len(canonical_line(KIND_BY_NAME[kind], record)) == WIDEST_LINE[kind]
    value = "\n" * 4095 + "1"  # a 4 KiB JSON document, each byte written as a six-byte escape the checker reads
    escaped = "".join(f"\\u{ord(c):04x}" for c in value)
    line = ('{"kind":"setting","key":"' + "k" * 128 + '","value":"' + escaped
            + '","updated_at":"2026-01-01T00:00:00Z"}\n').encode()
    assert parse_checked_line(KIND_BY_NAME["setting"], line)[1] == value
    assert len(line) == WIDEST_LINE["setting"]
    documented = (Path(__file__).parent.parent / "docs" / "FORMAT.md").read_text()
    assert (f"identity {WIDEST_LINE['identity']} bytes, device {WIDEST_LINE['device']:,}, "
            f"setting {WIDEST_LINE['setting']:,} ") in documented and f"role {WIDEST_LINE['role']})" in documented
    manifest = read_manifest(drill.snapshots, drill.latest)
    assert plaintext_bound(manifest) == sum(s.count * WIDEST_LINE[k] for k, s in manifest.scope.items())


def test_more_records_of_a_kind_than_signed_are_refused_before_the_kind_ends(drill, cli, tmp_path: Path) -> None:
    """A payload with many more devices than the manifest counts is refused a batch past the count,
    not after reading them all."""
    from enigm_recover.snapshot.records import HASH_BATCH, RecordChecker

    lines = original_records(drill, cli, tmp_path).splitlines(keepends=True)
    manifest = read_manifest(drill.snapshots, drill.latest)
    checker = RecordChecker(manifest)
    devices = [line for line in lines if line.startswith(b'{"kind":"device"')]
    identities = [line for line in lines if line.startswith(b'{"kind":"identity"')]
    for line in identities:
        checker.check(line)
    template = devices[-1].replace(b'"device_id":"', b'"device_id":"zz', 1)
    extra = (template.replace(b'"device_id":"zz', b'"device_id":"zz%07d' % i, 1) for i in range(10 ** 6))
    checked = 0
    with pytest.raises(PayloadIntegrityError, match="more device records than"):
        for line in [*devices, *extra]:
            checker.check(line)
            checked += 1
    assert checked <= len(devices) + HASH_BATCH


# -- a payload re-encrypted by an attacker -------------------------------------------------------------


def test_a_re_encrypted_payload_gets_no_dry_run_result(drill, cli, tmp_path: Path) -> None:
    re_encrypt(drill)
    code, stdout, err = cli("diff", drill.snapshots, "latest", "--allowed-signers", drill.allowed_signers,
                            "--target", drill.target, "--json", *shares(drill))
    assert code == PayloadIntegrityError.exit_code, err
    assert "the payload was altered" in err
    assert stdout == ""  # no record counts, no changes


def test_a_re_encrypted_payload_restores_nothing(drill, cli, tmp_path: Path) -> None:
    re_encrypt(drill)
    before = dump(drill.target)
    code, stdout, err = cli("restore", drill.snapshots, "latest", "--allowed-signers", drill.allowed_signers,
                            "--target", drill.target, "--yes", "--json", *shares(drill))
    assert code == PayloadIntegrityError.exit_code, err
    assert "the payload was altered" in err and stdout == ""
    assert dump(drill.target) == before


def test_a_re_encrypted_payload_leaves_no_file_at_all(drill, cli, tmp_path: Path) -> None:
    re_encrypt(drill)
    folder = tmp_path / "out"
    folder.mkdir()
    code, stdout, err = cli("unseal", drill.snapshots, "latest", "--allowed-signers", drill.allowed_signers,
                            "--out", folder / "records.jsonl", *shares(drill))
    assert code == PayloadIntegrityError.exit_code, err
    assert "the payload was altered" in err
    assert list(folder.iterdir()) == []


def test_a_re_encrypted_payload_is_judged_altered_before_anything_in_it_is_named(drill, cli, tmp_path: Path) -> None:
    """The forged records break the scope (a field the allow-list lacks): that would be a scope error
    naming the field, were the payload the signed one. It is not, so nothing of it is named."""
    lines = original_records(drill, cli, tmp_path).splitlines(keepends=True)
    record = json.loads(lines[0])

    def forged(pad: int) -> bytes:
        record["last_message_preview"] = "meet me at the docks " + PADDING[:pad]  # its length nudges the size
        return b"".join([(json.dumps(record, separators=(",", ":")) + "\n").encode(), *lines[1:]])

    re_encrypt(drill, forged)
    for command, where in (("unseal", ["--out", tmp_path / "out.jsonl"]), ("diff", ["--target", drill.target])):
        code, stdout, err = cli(command, drill.snapshots, "latest", "--allowed-signers", drill.allowed_signers,
                                *where, *shares(drill))
        assert code == PayloadIntegrityError.exit_code, (command, err)
        assert "the payload was altered" in err
        assert "last_message_preview" not in err + stdout and "docks" not in err + stdout
    assert not (tmp_path / "out.jsonl").exists()


def test_a_restore_refuses_a_dry_run_that_did_not_confirm_the_payload(drill, tmp_path: Path) -> None:
    """The restore's own guard: a dry-run result carries the SHA-256 its stream confirmed, and a restore
    from one that does not (made any other way) writes nothing."""
    import dataclasses

    from enigm_recover.recovery.apply import Restorer
    from enigm_recover.recovery.diff import diff
    from enigm_recover.recovery.plan import make_plan
    from enigm_recover.snapshot.verify import VerifiedSnapshot
    from enigm_recover.state.stores import open_store

    manifest = read_manifest(drill.snapshots, drill.latest)
    verified = VerifiedSnapshot(manifest, drill.snapshots / payload_name(drill.latest))
    before = dump(drill.target)
    with open_store(drill.target) as store:
        result = diff(verified, identity_of(drill), store)
        assert result.payload_sha256 == manifest.payload_sha256
        unconfirmed = dataclasses.replace(result, payload_sha256=None)
        with pytest.raises(PayloadIntegrityError, match="did not confirm"):
            Restorer(verified, store, make_plan([]), unconfirmed).run()
    assert dump(drill.target) == before


def test_a_payload_swapped_during_a_paused_runbook_is_caught_by_the_resumed_dry_run(drill, tmp_path: Path) -> None:
    """After a resume the snapshot is verified again without a separate hashing pass ("hashed again while
    decrypting"): the restore step's fresh dry run meets the swapped payload, and the engine, not the
    face, withholds its result: no dry run kept, nothing restored."""
    from enigm_recover.runbook.executor import Confirmation, RunbookExecutor
    from enigm_recover.runbook.loader import BUILTIN_DIR, load_runbook
    from tests.test_runbooks import enter_cards, settings_for, walk_until

    runbook = load_runbook(BUILTIN_DIR / "tabletop-drill.toml")
    ex = RunbookExecutor.start(runbook, settings_for(drill, tmp_path / "state"))
    walk_until(ex, drill, "restore")
    ex.pause("lunch")
    re_encrypt(drill)
    before = dump(drill.target)
    again = RunbookExecutor.resume(runbook, settings_for(drill, tmp_path / "state", "lee"))
    enter_cards(again, drill)
    with pytest.raises(PayloadIntegrityError, match="the payload was altered"):
        again.run_current(Confirmation("lee", "dana"))
    assert again.dry_run is None
    assert dump(drill.target) == before
    actions = [json.loads(line)["action"] for line in (again.recovery.folder / "audit.jsonl").read_text().splitlines()]
    assert "snapshot-reverified" in actions  # verified without hashing: the stream's check caught it
