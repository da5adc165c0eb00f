"""Hybrid post-quantum recovery keys (age's mlkem768x25519): keys, sealing, opening, and interop with the
independent JavaScript implementation (npm age-encryption) in both directions.

The session's drill has a hybrid key (the default for new keys), so every face's tests (CLI, runbook,
app, readiness, drill) run on hybrid snapshots; this file holds what is particular to the kind.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import shamir_mnemonic
import zstandard

from enigm_recover.errors import RecipientMixRefused
from enigm_recover.quorum.recipients import RecipientKind, bech32_encode, decode_recipient, recipient_kind
from enigm_recover.quorum.recovery_key import RecoveryIdentity
from enigm_recover.snapshot import agecrypt, signature
from enigm_recover.snapshot.manifest import Manifest, manifest_name, payload_name, signature_name
from enigm_recover.snapshot.rewrap import open_header

THREE = ("amara", "chen", "emeka")


def card_words(path: Path) -> str:
    section = path.read_text(encoding="utf-8").split("\nwords:\n", 1)[1]
    return " ".join(word for _, word in re.findall(r"(\d+)\.\s+([a-z]+)", section))


def reference_identity(drill) -> str:
    """AGE-SECRET-KEY-PQ-1...: the cards combined by the reference SLIP-39 library, then Bech32 (no enigm code
    but the Bech32 helper, which test_format_by_hand checks against two libraries)."""
    secret = shamir_mnemonic.combine_mnemonics([card_words(drill.card(n)) for n in THREE])
    return bech32_encode("age-secret-key-pq-", secret).upper()


def shares(drill, names=THREE) -> list:
    out: list = []
    for name in names:
        out += ["--share-file", drill.card(name)]
    return out


def unseal(cli, drill, out: Path, *extra) -> tuple[int, str, str]:
    return cli("unseal", drill.snapshots, drill.latest, "--allowed-signers", drill.allowed_signers,
               "--out", out, *extra)


def resign(drill, snapshot_id: str, payload: bytes) -> None:
    """Replace a snapshot's payload and sign its manifest again with the producer's key (a producer's act)."""
    (drill.snapshots / payload_name(snapshot_id)).write_bytes(payload)
    path = drill.snapshots / manifest_name(snapshot_id)
    manifest = Manifest.from_toml(path.read_bytes())
    data = dataclasses.replace(manifest, payload_size=len(payload),
                               payload_sha256=hashlib.sha256(payload).hexdigest()).to_toml()
    path.write_bytes(data)
    key = signature.load_signing_key(drill.signing_key)
    (drill.snapshots / signature_name(snapshot_id)).write_bytes(signature.sign(data, key))


def drill_identity(drill) -> RecoveryIdentity:
    secret = shamir_mnemonic.combine_mnemonics([card_words(drill.card(n)) for n in THREE])
    return RecoveryIdentity(secret, recipient_kind(drill.recipient.read_text().split()[-1]))


# -- keys ---------------------------------------------------------------------------------------------


def test_keys_init_makes_a_hybrid_key_by_default_and_a_classic_one_when_asked(cli, tmp_path: Path) -> None:
    custodians = ["--custodian", "ana", "--custodian", "ben", "--custodian", "cy"]
    code, out, err = cli("keys", "init", "--threshold", "2", "--shares", "3", *custodians, "--out", tmp_path / "pq",
                         "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["kind"] == "hybrid" and doc["recipient"].startswith("age1pq1")
    pub = (tmp_path / "pq" / "recovery.pub").read_text()
    assert doc["recipient"] in pub and "mlkem768x25519" in pub and doc["fingerprint"] in pub
    card = (tmp_path / "pq" / "ana.share.txt").read_text()
    assert "recovery key kind: hybrid" in card and doc["fingerprint"] in card
    assert len(card_words(tmp_path / "pq" / "ana.share.txt").split()) == 33  # the same 33-word cards
    code, out, err = cli("keys", "check", tmp_path / "pq" / "ana.share.txt", "--recipient",
                         tmp_path / "pq" / "recovery.pub")
    assert code == 0 and "kind of key: hybrid" in out, err

    code, out, err = cli("keys", "init", "--threshold", "2", "--shares", "3", *custodians, "--out", tmp_path / "classic",
                         "--kind", "x25519", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["kind"] == "x25519" and doc["recipient"].startswith("age1") and not doc["recipient"].startswith("age1pq")
    assert "recovery key kind: x25519" in (tmp_path / "classic" / "ben.share.txt").read_text()
    code, out, err = cli("keys", "check", tmp_path / "classic" / "ben.share.txt", "--json")
    assert code == 0 and json.loads(out)["cards"][0]["kind"] == "x25519", err


def _corrupt(recipient: str, how: str) -> str:
    if how == "case":
        return recipient[:20] + recipient[20:40].upper() + recipient[40:]
    if how == "checksum":
        last = recipient[-1]
        return recipient[:-1] + ("q" if last != "q" else "p")
    if how == "length":  # a valid Bech32 string of one byte too few
        return bech32_encode("age1pq", decode_recipient(recipient)[:-1])
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["case", "checksum", "length"])
def test_a_malformed_hybrid_recipient_is_refused_when_read(drill, cli, tmp_path: Path, how: str) -> None:
    good = drill.recipient.read_text().split()[-1]
    bad = tmp_path / "recovery.pub"
    bad.write_text(_corrupt(good, how) + "\n")
    with pytest.raises(ValueError):
        decode_recipient(_corrupt(good, how))
    code, _, err = cli("seal", "--from", drill.target, "--recipient", bad, "--sign-key", drill.signing_key,
                       "--environment", "drill", "--out", tmp_path / "out")
    assert code == 3 and "age1pq1" in err and "Traceback" not in err, err


def test_sealing_refuses_a_hybrid_recipient_beside_a_classic_one(drill) -> None:
    hybrid = RecoveryIdentity.generate(RecipientKind.HYBRID).recipient
    classic = RecoveryIdentity.generate(RecipientKind.X25519).recipient
    with pytest.raises(RecipientMixRefused):
        agecrypt.encrypt_stream([b"data"], [hybrid, classic], io.BytesIO())
    with pytest.raises(RecipientMixRefused):
        agecrypt.header_bytes(b"k" * 16, [classic, hybrid])


# -- opening --------------------------------------------------------------------------------------------


def test_the_drill_is_sealed_with_one_hybrid_stanza(drill) -> None:
    head = (drill.snapshots / payload_name(drill.latest)).read_bytes()[:agecrypt.MAX_HEADER]
    header, _ = agecrypt._parse_header(head)
    assert [args[0] for args, _ in header.stanzas] == [b"mlkem768x25519"]
    assert drill.doc["recovery"]["kind"] == "hybrid"


def test_cards_of_the_other_kind_are_refused_before_any_payload_byte(drill, classic_drill, cli, tmp_path: Path) -> None:
    # Classic cards for a hybrid snapshot, and hybrid cards for a classic one: refused as the first card is
    # entered, before the payload is decrypted (its header included).
    for snapshots_of, cards_of in ((drill, classic_drill), (classic_drill, drill)):
        code, _, err = unseal(cli, snapshots_of, tmp_path / "out.jsonl", *shares(cards_of))
        assert code == 70, err
        assert "hybrid post-quantum" in err and "classic X25519" in err
        assert not (tmp_path / "out.jsonl").exists()


def test_the_decryptor_names_the_kind_when_the_identity_is_of_the_other_kind(drill) -> None:
    identity = drill_identity(drill).as_kind(RecipientKind.X25519)
    with open(drill.snapshots / payload_name(drill.latest), "rb") as f:
        with pytest.raises(Exception) as raised:
            next(agecrypt.decrypt_chunks(f, identity))
        assert getattr(raised.value, "exit_code", None) == 70
        assert f.tell() <= agecrypt.MAX_HEADER  # only the header was read


def test_a_hybrid_header_with_an_extra_classic_stanza_is_refused(drill, cli, tmp_path: Path) -> None:
    payload = (drill.snapshots / payload_name(drill.latest)).read_bytes()
    identity = drill_identity(drill)
    file_key, offset = open_header(payload[:agecrypt.MAX_HEADER], identity)
    classic = RecoveryIdentity.generate(RecipientKind.X25519).recipient
    stanzas = agecrypt.recipient_stanza(file_key, identity.recipient) + agecrypt.recipient_stanza(file_key, classic)
    mac_input = agecrypt.VERSION_LINE + b"\n" + stanzas + b"---"
    import base64
    import hmac as hmac_

    mac = hmac_.new(agecrypt._hkdf(file_key, b"", b"header"), mac_input, hashlib.sha256).digest()
    forged = mac_input + b" " + base64.b64encode(mac).rstrip(b"=") + b"\n" + payload[offset:]
    resign(drill, drill.latest, forged)  # even signed by the producer, the header is refused
    code, _, err = unseal(cli, drill, tmp_path / "out.jsonl", *shares(drill))
    assert code == 71, err
    assert "classic X25519 stanza" in err and not (tmp_path / "out.jsonl").exists()


# -- interop with the independent implementation (npm age-encryption) -------------------------------------------


def test_the_independent_implementation_decrypts_our_hybrid_payload(drill, cli, age_js, tmp_path: Path) -> None:
    payload = (drill.snapshots / payload_name(drill.latest)).read_bytes()
    opened = age_js.decrypt(reference_identity(drill), payload)
    assert opened.returncode == 0, opened.stderr
    records = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(opened.stdout)).read()
    code, _, err = unseal(cli, drill, tmp_path / "ours.jsonl", *shares(drill))
    assert code == 0, err
    assert records == (tmp_path / "ours.jsonl").read_bytes()
    # ... and refuses it with an identity of another key
    other = RecoveryIdentity.generate(RecipientKind.HYBRID).age_identity_string()
    assert age_js.decrypt(other, payload).returncode != 0


def test_we_open_a_snapshot_the_independent_implementation_encrypted(drill, cli, age_js, tmp_path: Path) -> None:
    identity = drill_identity(drill)
    with open(drill.snapshots / payload_name(drill.latest), "rb") as f:
        compressed = b"".join(agecrypt.decrypt_chunks(f, identity))
    theirs = age_js.encrypt(identity.recipient, compressed)
    header, _ = agecrypt._parse_header(theirs[:agecrypt.MAX_HEADER])
    assert [args[0] for args, _ in header.stanzas] == [b"mlkem768x25519"]
    code, _, err = unseal(cli, drill, tmp_path / "before.jsonl", *shares(drill))
    assert code == 0, err
    resign(drill, drill.latest, theirs)
    code, _, err = unseal(cli, drill, tmp_path / "after.jsonl", *shares(drill))
    assert code == 0, err
    assert (tmp_path / "after.jsonl").read_bytes() == (tmp_path / "before.jsonl").read_bytes()


def _age_version() -> tuple[int, ...] | None:
    if shutil.which("age") is None:
        return None
    out = subprocess.run(["age", "--version"], capture_output=True, text=True).stdout.strip().lstrip("v")
    return tuple(int(p) for p in re.findall(r"\d+", out)[:3])


def test_the_real_age_decrypts_our_hybrid_payload_where_it_knows_hybrid_keys(drill, tmp_path: Path) -> None:
    version = _age_version()
    if version is None or version < (1, 3):
        pytest.skip(f"the real age here is {'.'.join(map(str, version or ())) or 'missing'}: hybrid recipients "
                    "(mlkem768x25519) need age 1.3 or newer (Debian's is older)")
    key = tmp_path / "identity"
    key.write_text(reference_identity(drill) + "\n")
    opened = subprocess.run(["age", "-d", "-i", key, drill.snapshots / payload_name(drill.latest)],
                            capture_output=True)
    key.unlink()
    assert opened.returncode == 0, opened.stderr


# -- rewrap between kinds -----------------------------------------------------------------------------------


def _rotate(cli, drill, cards: list, recipient: Path, out: Path, kind: str) -> None:
    code, _, err = cli("keys", "rotate", "--recipient", recipient, *cards, "--threshold", "2", "--shares", "3",
                       "--out", out, "--kind", kind, "--custodian", "ines", "--custodian", "kofi",
                       "--custodian", "lena")
    assert code == 0, err


def test_rewrap_moves_classic_history_to_a_hybrid_key_and_back_header_only(classic_drill, cli, age_js,
                                                                            tmp_path: Path) -> None:
    drill = classic_drill
    ids = sorted(p.name.removesuffix(".manifest.toml") for p in drill.snapshots.glob("*.manifest.toml"))
    body = {i: (drill.snapshots / payload_name(i)).read_bytes() for i in ids}
    code, _, err = unseal(cli, drill, tmp_path / "classic.jsonl", *shares(drill))
    assert code == 0, err
    plain = (tmp_path / "classic.jsonl").read_bytes()

    hybrid = tmp_path / "hybrid"
    _rotate(cli, drill, shares(drill), drill.recipient, hybrid, "hybrid")
    assert (hybrid / "recovery.pub").read_text().split()[-1].startswith("age1pq1")
    code, _, err = cli("keys", "rewrap", drill.snapshots, "--all", "--to", hybrid / "recovery.pub", "--sign-key",
                       drill.signing_key, "--allowed-signers", drill.allowed_signers, *shares(drill))
    assert code == 0, err
    new_cards = ["--share-file", hybrid / "ines.share.txt", "--share-file", hybrid / "kofi.share.txt"]
    for i in ids:
        now = (drill.snapshots / payload_name(i)).read_bytes()
        header, offset = agecrypt._parse_header(now[:agecrypt.MAX_HEADER])
        assert [args[0] for args, _ in header.stanzas] == [b"mlkem768x25519"]
        assert body[i].endswith(now[offset:])  # not a payload byte touched
    code, _, err = unseal(cli, drill, tmp_path / "hybrid.jsonl", *new_cards)
    assert code == 0, err
    assert (tmp_path / "hybrid.jsonl").read_bytes() == plain
    # The independent implementation opens the rewrapped payload with the new cards' identity.
    secret = shamir_mnemonic.combine_mnemonics([card_words(hybrid / f"{n}.share.txt") for n in ("ines", "kofi")])
    opened = age_js.decrypt(bech32_encode("age-secret-key-pq-", secret).upper(),
                            (drill.snapshots / payload_name(drill.latest)).read_bytes())
    assert opened.returncode == 0, opened.stderr
    # The old (classic) cards no longer open it: they are of the other kind.
    code, _, err = unseal(cli, drill, tmp_path / "old.jsonl", *shares(drill))
    assert code == 70, err

    back = tmp_path / "back"
    _rotate(cli, drill, new_cards, hybrid / "recovery.pub", back, "x25519")
    code, _, err = cli("keys", "rewrap", drill.snapshots, "--all", "--to", back / "recovery.pub", "--sign-key",
                       drill.signing_key, "--allowed-signers", drill.allowed_signers, *new_cards)
    assert code == 0, err
    for i in ids:
        now = (drill.snapshots / payload_name(i)).read_bytes()
        header, offset = agecrypt._parse_header(now[:agecrypt.MAX_HEADER])
        assert [args[0] for args, _ in header.stanzas] == [b"X25519"]
        assert body[i].endswith(now[offset:])
    code, _, err = unseal(cli, drill, tmp_path / "back.jsonl", "--share-file", back / "ines.share.txt",
                          "--share-file", back / "lena.share.txt")
    assert code == 0, err
    assert (tmp_path / "back.jsonl").read_bytes() == plain


# -- a killed hybrid seal -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_platform(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A platform large enough (30,000 records) that sealing it takes a while to aim at."""
    from datetime import timedelta

    from enigm_recover.drill.platform import SyntheticPlatform
    from enigm_recover.state.sqlite_store import SQLiteStore
    from tests.conftest import DRILL_AT

    path = tmp_path_factory.mktemp("hybrid-seal") / "platform.db"
    with SQLiteStore(path, create=True) as store:
        SyntheticPlatform(5, 10_000, 3, genesis=DRILL_AT - timedelta(days=400)).build(store)
    return f"sqlite:///{path}"


def test_sigkill_during_a_hybrid_seal_leaves_nothing_that_lists_as_valid(drill, big_platform: str, cli,
                                                                         tmp_path: Path) -> None:
    import random

    from tests.test_unseal_crash import kill_while_writing

    out = tmp_path / "out"
    out.mkdir()
    argv = [sys.executable, "-m", "enigm_recover", "seal", "--from", big_platform, "--recipient", str(drill.recipient),
            "--sign-key", str(drill.signing_key), "--environment", "drill", "--out", str(out)]
    rng = random.Random(20261207)
    landed = 0
    for trial in range(8):
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        landed += kill_while_writing(process, out, rng.uniform(0, 0.4))
        code, listed, err = cli("snapshots", "list", out, "--allowed-signers", drill.allowed_signers, "--json")
        assert code in (0, 6), err
        for snapshot in json.loads(listed)["snapshots"] if listed.strip() else []:
            # whatever lists was sealed whole: it verifies, payload hash included
            code, _, err = cli("verify", out, snapshot["id"], "--allowed-signers", drill.allowed_signers)
            assert code == 0, (trial, err)
    assert landed >= 4, f"only {landed} kills landed while the seal was writing"


# -- every face, on a hybrid snapshot ---------------------------------------------------------------------------
# The session's drill is hybrid, so every face's own tests run on hybrid snapshots; these name the path
# end to end in one place: a fresh hybrid seal by the CLI, then diff, restore, run, readiness's test restore.


def test_cli_seal_diff_restore_on_a_hybrid_snapshot(drill, cli, tmp_path: Path) -> None:
    out = tmp_path / "sealed"
    out.mkdir()
    code, _, err = cli("seal", "--from", drill.target, "--recipient", drill.recipient, "--sign-key",
                       drill.signing_key, "--environment", "drill", "--out", out)
    assert code == 0, err
    (payload,) = out.glob("*.payload.age")
    header, _ = agecrypt._parse_header(payload.read_bytes()[:agecrypt.MAX_HEADER])
    assert [args[0] for args, _ in header.stanzas] == [b"mlkem768x25519"]
    code, listed, err = cli("snapshots", "list", out, "--allowed-signers", drill.allowed_signers, "--json")
    assert code == 0 and json.loads(listed)["snapshots"][0]["id"] in payload.name, err
    code, doc, err = cli("diff", drill.snapshots, "latest", "--target", drill.target, "--allowed-signers",
                         drill.allowed_signers, *shares(drill), "--json")
    assert code == 0, err
    code, _, err = cli("restore", drill.snapshots, "latest", "--target", drill.target, "--allowed-signers",
                       drill.allowed_signers, *shares(drill), "--yes")
    assert code == 0, err


def test_runbook_run_and_readiness_test_restore_on_a_hybrid_snapshot(drill, cli) -> None:
    code, _, err = cli("run", "tabletop-drill", "--source", drill.snapshots, "--target", drill.target,
                       "--allowed-signers", drill.allowed_signers, *shares(drill), "--operator", "dana", "--yes",
                       "--second-operator", "eli")
    assert code == 0, err
    code, out, err = cli("readiness", drill.snapshots, "--allowed-signers", drill.allowed_signers, "--recipient",
                         drill.recipient, "--max-age", "3650d", "--test-restore", *shares(drill), "--json")
    assert code == 0, err
    restore = next(c for c in json.loads(out)["checks"] if c["name"] == "test-restore")
    assert restore["status"] == "pass"


@pytest.mark.parametrize("kind", ["hybrid", "x25519"])
def test_drill_makes_its_key_of_the_kind_asked(cli, tmp_path: Path, kind: str) -> None:
    args = ["drill", tmp_path / "d", "--no-tui", "--identities", "10", "--snapshots", "1", "--json"]
    code, out, err = cli(*args, *(["--kind", kind] if kind != "hybrid" else []))
    assert code == 0, err
    doc = json.loads(out)
    assert doc["recovery"]["kind"] == kind
    recipient = Path(doc["paths"]["recipient"]).read_text().split()[-1]
    assert recipient_kind(recipient) is RecipientKind(kind)
    assert f"recovery key kind: {kind}" in Path(doc["custodians"]["amara"]).read_text()
