"""docs/FORMAT.md is enough to recover by hand: the real ssh-keygen, age and zstd, a third-party
SLIP-39 implementation (shamir-mnemonic) and the document's own code, with no enigm-recover code in
the recovery path. enigm-recover is used only to compare results, and to check that it accepts what
the standard tools produce.

The procedure's shell and Python blocks are read from FORMAT.md itself (the blocks marked
``<!-- by-hand: NAME -->``), so the document cannot drift from what works.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import bech32
import pytest
import shamir_mnemonic

from enigm_recover.quorum.recovery_key import RecoveryIdentity
from enigm_recover.snapshot import signature
from enigm_recover.snapshot.agecrypt import decrypt_chunks

pytestmark = pytest.mark.tools

FORMAT_MD = Path(__file__).resolve().parents[1] / "docs" / "FORMAT.md"
THREE = ("amara", "chen", "emeka")
KINDS = ("identity", "device", "setting", "role")
_BLOCK = re.compile(r"^[ \t]*<!-- by-hand: (\S+) -->\n[ \t]*```\w+\n(.*?)^[ \t]*```[ \t]*$", re.M | re.S)


# -- the document ----------------------------------------------------------------


def doc_blocks() -> dict[str, str]:
    """The marked code blocks of FORMAT.md, by name, without their list indentation."""
    blocks: dict[str, str] = {}
    for match in _BLOCK.finditer(FORMAT_MD.read_text(encoding="utf-8")):
        assert match.group(1) not in blocks, f"two blocks named {match.group(1)} in FORMAT.md"
        blocks[match.group(1)] = textwrap.dedent(match.group(2))
    return blocks


def doc_age_identity():
    """The ``age_identity`` function of FORMAT.md's converter, exactly as printed there."""
    namespace: dict = {"__name__": "age_identity"}  # not "__main__": define, do not run
    exec(compile(doc_blocks()["age_identity.py"], "FORMAT.md:age_identity.py", "exec"), namespace)
    return namespace["age_identity"]


# -- the real programs -------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def real_tools() -> None:
    missing = [t for t in ("age", "ssh-keygen", "zstd", "sha256sum", "bash") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"these tests need the real {', '.join(missing)} (`make tools` installs them)")


def have_age_keygen() -> bool:
    return shutil.which("age-keygen") is not None


def run(*args: str | Path, input: bytes | None = None, cwd: Path | None = None,
        env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], input=input, capture_output=True, cwd=cwd, env=env,
                          timeout=120)


def sha256sum(path: Path) -> str:
    result = run("sha256sum", path)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()[0].decode()


def ssh_verify(allowed: Path, principal: str, sig: Path, data: bytes,
               namespace: str = "enigm-snapshot") -> subprocess.CompletedProcess:
    return run("ssh-keygen", "-Y", "verify", "-f", allowed, "-I", principal, "-n", namespace, "-s", sig,
               input=data)


def ssh_sign(key: Path, data: bytes, namespace: str = "enigm-snapshot", *options: str) -> bytes:
    result = run("ssh-keygen", "-Y", "sign", "-f", key, "-n", namespace, *options, input=data)
    assert result.returncode == 0, result.stderr
    return result.stdout


def recipient_of(identity_line: str, tmp_path: Path) -> str:
    key = tmp_path / "recipient-of.key"
    key.write_text(identity_line + "\n")
    key.chmod(0o600)
    result = run("age-keygen", "-y", key)
    key.unlink()
    assert result.returncode == 0, result.stderr
    return result.stdout.decode().strip()


# -- the drill, read without enigm-recover ---------------------------------------------


@pytest.fixture
def drill(classic_drill):
    """The classic (X25519) procedure runs on a drill with a classic key: the real age here may predate
    the hybrid recipient type (test_format_by_hand_hybrid.py covers hybrid keys)."""
    return classic_drill



def manifest_bytes(drill) -> bytes:
    return (drill.snapshots / f"{drill.latest}.manifest.toml").read_bytes()


def manifest_doc(drill) -> dict:
    return tomllib.loads(manifest_bytes(drill).decode("utf-8"))


def card_words(path: Path) -> str:
    """A share card's words in number order: the section after the ``words:`` line."""
    section = path.read_text(encoding="utf-8").split("\nwords:\n", 1)[1]
    numbered = re.findall(r"(\d+)\.\s+([a-z]+)", section)
    assert [int(n) for n, _ in numbered] == list(range(1, 34))
    return " ".join(word for _, word in numbered)


def master_secret(drill, names=THREE, passphrase: bytes = b"") -> bytes:
    return shamir_mnemonic.combine_mnemonics([card_words(drill.card(n)) for n in names], passphrase)


def fingerprint(recipient: str) -> str:
    """As FORMAT.md defines it (section 3), with the standard library only."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(recipient.encode("ascii")).digest()).decode().rstrip("=")


def unseal_with_cli(cli, drill, out: Path) -> bytes:
    args: list = ["unseal", drill.snapshots, drill.latest, "--allowed-signers", drill.allowed_signers,
                  "--out", out]
    for name in THREE:
        args += ["--share-file", drill.card(name)]
    code, _, err = cli(*args)
    assert code == 0, err
    return out.read_bytes()


# -- the document's code ------------------------------------------------------------


def test_the_document_has_every_block_the_procedure_needs() -> None:
    assert set(doc_blocks()) == {
        "helpers", "verify-signature", "check-payload", "age_identity.py", "convert", "combine.py",
        "combine-cards", "check-key", "decrypt", "check-records",
        "combine-cards-pq", "age-js.mjs", "check-key-js", "decrypt-js",  # 9.1: hybrid keys
    }


def test_the_documented_bech32_converter_agrees_with_two_bech32_libraries() -> None:
    age_identity = doc_age_identity()
    rng = random.Random(20261127)
    secrets = [bytes(32), b"\xff" * 32] + [rng.randbytes(32) for _ in range(50)]
    for secret in secrets:
        line = age_identity(secret)
        assert line == RecoveryIdentity(secret).age_identity_string()
        assert line.startswith("AGE-SECRET-KEY-1") and len(line) == 74
        hrp, words = bech32.bech32_decode(line.lower())
        assert hrp == "age-secret-key-" and bytes(bech32.convertbits(words, 5, 8, False)) == secret
    with pytest.raises(ValueError):
        age_identity(bytes(31))


def test_the_documented_fingerprint_is_the_manifests(drill) -> None:
    recovery = manifest_doc(drill)["recovery"]
    assert fingerprint(recovery["recipient"]) == recovery["fingerprint"]
    assert recovery["fingerprint"] in drill.card("amara").read_text()


# -- recovering by hand, step by step ---------------------------------------------------


def test_recover_by_hand_with_the_real_programs(drill, cli, tmp_path: Path) -> None:
    raw = manifest_bytes(drill)
    manifest = manifest_doc(drill)
    snap = drill.snapshots
    payload = snap / manifest["payload"]["file"]
    assert payload.name == f"{drill.latest}.payload.age"

    # 1. The signature, with the principal the manifest names.
    verified = ssh_verify(drill.allowed_signers, manifest["producer"], snap / f"{drill.latest}.manifest.toml.sig", raw)
    assert verified.returncode == 0, verified.stderr
    assert f'Good "enigm-snapshot" signature for {manifest["producer"]}' in verified.stdout.decode()

    # 2. The payload's size and SHA-256, by sha256sum.
    assert payload.stat().st_size == manifest["payload"]["size"] > 0
    assert sha256sum(payload) == manifest["payload"]["sha256"]

    # 3. Three shares, combined by the third-party SLIP-39 implementation.
    secret = master_secret(drill)
    assert len(secret) == 32

    # 4. The age identity, by the document's Bech32 converter.
    key = tmp_path / "key.txt"
    key.write_text(doc_age_identity()(secret) + "\n")
    key.chmod(0o600)
    if have_age_keygen():
        derived = recipient_of(key.read_text().strip(), tmp_path)
        assert derived == manifest["recovery"]["recipient"]
        assert fingerprint(derived) == manifest["recovery"]["fingerprint"]

    # 5. age, then zstd.
    decrypted = run("age", "-d", "-i", key, payload)
    assert decrypted.returncode == 0, decrypted.stderr
    decompressed = run("zstd", "-d", input=decrypted.stdout)
    assert decompressed.returncode == 0, decompressed.stderr
    records = decompressed.stdout

    # 6. The records: canonical lines, kinds in order, counts and digests as signed.
    lines = records.splitlines(keepends=True)
    assert lines and all(line.endswith(b"\n") for line in lines)
    by_kind: dict[str, list[bytes]] = {}
    for line in lines:
        pairs = json.loads(line, object_pairs_hook=list)
        assert pairs[0][0] == "kind"
        kind = pairs[0][1]
        assert [name for name, _ in pairs[1:]] == manifest["scope"][kind]["fields"]
        assert line == (json.dumps(dict(pairs), ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        by_kind.setdefault(kind, []).append(line)
    assert list(by_kind) == list(manifest["scope"]) == list(KINDS)
    assert b"".join(b"".join(by_kind[k]) for k in KINDS) == records  # grouped, in the fixed order
    for kind in KINDS:
        scope = manifest["scope"][kind]
        assert len(by_kind[kind]) == scope["count"] > 0
        assert hashlib.sha256(b"".join(by_kind[kind])).hexdigest() == scope["sha256"]
    roles = [json.loads(line) for line in by_kind["role"]]
    keys = [(r["operator"], r["role"]) for r in roles]
    assert keys == sorted(set(keys))

    # 7. The same bytes as enigm-recover's own unseal.
    assert unseal_with_cli(cli, drill, tmp_path / "unsealed.jsonl") == records


# -- the document's procedure, run as printed ----------------------------------------------


def procedure_env(drill, work: Path) -> dict:
    return dict(
        os.environ,
        SNAP=str(drill.snapshots),
        ID=drill.latest,
        SIGNERS=str(drill.allowed_signers),
        WORK=str(work),
        # python3 with shamir-mnemonic installed, as the document asks for combine.py
        PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
        LC_ALL="C",
    )


def run_procedure(drill, tmp_path: Path, steps: list[str], stdin: bytes | None = None):
    """Run FORMAT.md's blocks in one bash, like an operator's session, in a folder holding the
    document's scripts and the three card files."""
    blocks = doc_blocks()
    here = tmp_path / "by-hand"
    work = tmp_path / "work"
    for folder in (here, work):
        folder.mkdir(exist_ok=True, mode=0o700)
    for script in ("age_identity.py", "combine.py"):
        (here / script).write_text(blocks[script])
    for name in THREE:
        shutil.copyfile(drill.card(name), here / f"{name}.share.txt")
    script = "\n".join(blocks[s] for s in ["helpers", *steps])
    result = run("bash", "-eu", "-o", "pipefail", "-c", script, input=stdin, cwd=here,
                 env=procedure_env(drill, work))
    return result, work


def test_the_documented_procedure_recovers_the_snapshot(drill, cli, tmp_path: Path) -> None:
    steps = ["verify-signature", "check-payload", "combine-cards", "check-key", "decrypt", "check-records"]
    if not have_age_keygen():
        steps.remove("check-key")
    result, work = run_procedure(drill, tmp_path, steps)
    out = result.stdout.decode()
    assert result.returncode == 0, out + result.stderr.decode()
    assert f'Good "enigm-snapshot" signature for {manifest_doc(drill)["producer"]}' in out
    assert "MISMATCH" not in out
    oks = [line.split(None, 1)[1] for line in out.splitlines() if line.startswith("ok ")]
    expected = ["payload size", "payload sha256"]
    if have_age_keygen():
        expected += ["recovery key", "recovery key fingerprint"]
    expected += [f"{k} {what}" for k in KINDS for what in ("count", "sha256")]
    expected += ["kinds grouped in order, no other lines"]
    assert oks == expected
    recovered = (work / "records.jsonl").read_bytes()
    assert recovered == unseal_with_cli(cli, drill, tmp_path / "unsealed.jsonl")


def test_the_documented_converter_reads_the_hex_a_slip39_tool_prints(drill, tmp_path: Path) -> None:
    secret = master_secret(drill)
    result, work = run_procedure(drill, tmp_path, ["convert", "decrypt"], stdin=secret.hex().encode() + b"\n")
    assert result.returncode == 0, result.stderr.decode()
    assert (work / "key.txt").read_text() == RecoveryIdentity(secret).age_identity_string() + "\n"
    manifest = manifest_doc(drill)
    assert sum(1 for _ in (work / "records.jsonl").open("rb")) == sum(
        manifest["scope"][k]["count"] for k in KINDS)


def test_the_documented_checks_stop_at_a_damaged_payload(drill, tmp_path: Path) -> None:
    payload = drill.snapshots / f"{drill.latest}.payload.age"
    data = bytearray(payload.read_bytes())
    data[len(data) // 2] ^= 0x01
    payload.write_bytes(bytes(data))
    result, _ = run_procedure(drill, tmp_path, ["verify-signature", "check-payload"])
    out = result.stdout.decode()
    assert result.returncode != 0
    assert "ok        payload size" in out
    assert "MISMATCH  payload sha256" in out


def test_the_documented_checks_stop_at_an_altered_manifest(drill, tmp_path: Path) -> None:
    path = drill.snapshots / f"{drill.latest}.manifest.toml"
    text = path.read_text()
    count = manifest_doc(drill)["scope"]["role"]["count"]
    path.write_text(text.replace(f"count = {count}\n", f"count = {count + 1}\n"))
    assert path.read_text() != text
    result, _ = run_procedure(drill, tmp_path, ["verify-signature", "check-payload"])
    assert result.returncode != 0
    assert b"Good" not in result.stdout
    assert b"ok " not in result.stdout  # stopped before any other check


def test_a_wrong_passphrase_silently_yields_another_key(drill, tmp_path: Path) -> None:
    right = master_secret(drill)
    wrong = master_secret(drill, passphrase=b"not the passphrase")
    assert len(wrong) == 32 and wrong != right  # SLIP-39 does not notice
    manifest = manifest_doc(drill)
    wrong_key = tmp_path / "wrong.txt"
    wrong_key.write_text(doc_age_identity()(wrong) + "\n")
    payload = drill.snapshots / f"{drill.latest}.payload.age"
    refused = run("age", "-d", "-i", wrong_key, payload)
    assert refused.returncode != 0 and refused.stdout == b""
    if not have_age_keygen():
        pytest.skip("age-keygen is not installed: the recipient comparison is not checked")
    derived = recipient_of(wrong_key.read_text().strip(), tmp_path)
    assert derived != manifest["recovery"]["recipient"]
    assert fingerprint(derived) != manifest["recovery"]["fingerprint"]
    # and the document's check says so
    result, _ = run_procedure(drill, tmp_path, ["convert", "check-key"], stdin=wrong.hex().encode())
    assert result.returncode != 0
    assert b"MISMATCH  recovery key:" in result.stdout


# -- signatures, both directions ---------------------------------------------------------


def replace_signature(drill, sig: bytes) -> Path:
    path = drill.snapshots / f"{drill.latest}.manifest.toml.sig"
    path.write_bytes(sig)
    return path


def test_ssh_keygen_signature_with_the_producer_key_verifies_with_ours(drill, cli) -> None:
    raw = manifest_bytes(drill)
    producer = manifest_doc(drill)["producer"]
    ours = (drill.snapshots / f"{drill.latest}.manifest.toml.sig").read_bytes()
    theirs = ssh_sign(drill.signing_key, raw)
    assert theirs.startswith(b"-----BEGIN SSH SIGNATURE-----\n")
    assert theirs == ours  # Ed25519 is deterministic: the same armored SSHSIG, byte for byte
    replace_signature(drill, theirs)
    allowed = signature.load_allowed_signers(drill.allowed_signers)
    verdict = signature.check(raw, theirs, producer, allowed)
    assert verdict.status is signature.SignatureStatus.TRUSTED, verdict.detail
    code, out, err = cli("verify", drill.snapshots, drill.latest, "--allowed-signers", drill.allowed_signers)
    assert code == 0, err
    assert f"snapshot {drill.latest} is verified" in out


@pytest.mark.parametrize(("key_type", "hash_name"), [("ecdsa", "sha256"), ("ed25519", "sha512"), ("rsa", "sha512")])
def test_ssh_keygen_signature_by_another_key_verifies_with_ours(drill, cli, tmp_path: Path,
                                                                 key_type: str, hash_name: str) -> None:
    raw = manifest_bytes(drill)
    producer = manifest_doc(drill)["producer"]
    key = tmp_path / f"producer-{key_type}"
    made = run("ssh-keygen", "-q", "-t", key_type, *(["-b", "2048"] if key_type == "rsa" else []),
               "-N", "", "-C", producer, "-f", key)
    assert made.returncode == 0, made.stderr
    allowed_file = tmp_path / "allowed_signers"
    allowed_file.write_text(f'{producer} namespaces="enigm-snapshot" {key.with_suffix(".pub").read_text().strip()}\n')
    sig = ssh_sign(key, raw, "enigm-snapshot", "-O", f"hashalg={hash_name}")
    assert ssh_verify(allowed_file, producer, replace_signature(drill, sig), raw).returncode == 0

    trusted = signature.check(raw, sig, producer, signature.load_allowed_signers(allowed_file))
    assert trusted.status is signature.SignatureStatus.TRUSTED, trusted.detail
    # the drill's allowed_signers does not know this key
    unknown = signature.check(raw, sig, producer, signature.load_allowed_signers(drill.allowed_signers))
    assert unknown.status is signature.SignatureStatus.UNKNOWN_SIGNER
    # nor may another principal use it
    other = signature.check(raw, sig, "someone@else", signature.load_allowed_signers(allowed_file))
    assert other.status is signature.SignatureStatus.UNKNOWN_SIGNER

    code, out, err = cli("verify", drill.snapshots, drill.latest, "--allowed-signers", allowed_file)
    assert code == 0, err
    code, _, err = cli("verify", drill.snapshots, drill.latest, "--allowed-signers", drill.allowed_signers)
    assert code == 10, err


def test_a_signature_for_another_namespace_is_refused_by_both(drill, cli) -> None:
    raw = manifest_bytes(drill)
    producer = manifest_doc(drill)["producer"]
    sig = ssh_sign(drill.signing_key, raw, "file")
    path = replace_signature(drill, sig)
    verdict = signature.check(raw, sig, producer, signature.load_allowed_signers(drill.allowed_signers))
    assert verdict.status is signature.SignatureStatus.INVALID
    assert "namespace" in verdict.detail
    refused = ssh_verify(drill.allowed_signers, producer, path, raw)
    assert refused.returncode != 0
    assert b"Good" not in refused.stdout
    code, _, err = cli("verify", drill.snapshots, drill.latest, "--allowed-signers", drill.allowed_signers)
    assert code == 10 and "namespace" in err


def test_our_signature_over_an_altered_manifest_is_refused_by_both(drill) -> None:
    raw = manifest_bytes(drill) + b"# appended\n"
    producer = manifest_doc(drill)["producer"]
    path = drill.snapshots / f"{drill.latest}.manifest.toml.sig"
    assert ssh_verify(drill.allowed_signers, producer, path, raw).returncode != 0
    verdict = signature.check(raw, path.read_bytes(), producer, signature.load_allowed_signers(drill.allowed_signers))
    assert verdict.status is signature.SignatureStatus.INVALID


# -- age, both directions -------------------------------------------------------------------


def recovery_identity(drill) -> RecoveryIdentity:
    identity = RecoveryIdentity(master_secret(drill))
    assert identity.recipient == manifest_doc(drill)["recovery"]["recipient"]
    return identity


def decrypt_with_ours(path: Path, identity: RecoveryIdentity) -> bytes:
    with path.open("rb") as f:
        return b"".join(decrypt_chunks(f, identity, read_size=4096))


@pytest.mark.parametrize("size", [0, 1, 64 * 1024 - 1, 64 * 1024, 2 * 64 * 1024 + 17, 300_000])
def test_real_age_encryption_decrypts_with_ours(drill, tmp_path: Path, size: int) -> None:
    identity = recovery_identity(drill)
    plaintext = random.Random(size).randbytes(size)
    source = tmp_path / "plain.bin"
    source.write_bytes(plaintext)
    encrypted = tmp_path / "plain.bin.age"
    made = run("age", "-r", identity.recipient, "-o", encrypted, source)
    assert made.returncode == 0, made.stderr
    assert decrypt_with_ours(encrypted, identity) == plaintext


def test_real_age_encryption_with_recovery_pub_and_a_second_recipient_decrypts_with_ours(
        drill, tmp_path: Path) -> None:
    identity = recovery_identity(drill)
    other = RecoveryIdentity(bytes(range(32)))
    plaintext = b"".join(b'{"kind":"setting","n":%d}\n' % i for i in range(5000))
    encrypted = tmp_path / "two.age"
    made = run("age", "-R", drill.recipient, "-r", other.recipient, "-o", encrypted, input=plaintext)
    assert made.returncode == 0, made.stderr
    assert decrypt_with_ours(encrypted, identity) == plaintext
    assert decrypt_with_ours(encrypted, other) == plaintext


def test_our_payload_decrypts_the_same_with_age_and_with_ours(drill, tmp_path: Path) -> None:
    identity = recovery_identity(drill)
    payload = drill.snapshots / f"{drill.latest}.payload.age"
    key = tmp_path / "key.txt"
    key.write_text(identity.age_identity_string() + "\n")
    by_age = run("age", "-d", "-i", key, payload)
    assert by_age.returncode == 0, by_age.stderr
    assert by_age.stdout[:4] == b"\x28\xb5\x2f\xfd"  # a zstd frame
    assert decrypt_with_ours(payload, identity) == by_age.stdout
