"""The recovery key after its birth: check a card alone, prove the quorum, rotate, reshare, rewrap."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import shamir_mnemonic
from shamir_mnemonic import Share

from enigm_recover.quorum.cards import ShareCard, read_share_file

NAMES = ["amara", "bastien", "chen", "dagny", "emeka"]


def _init(cli, out: Path, names: list[str] = NAMES, threshold: int = 3) -> None:
    args = ["keys", "init", "--threshold", str(threshold), "--shares", str(len(names)), "--out", out]
    for name in names:
        args += ["--custodian", name]
    code, _out, err = cli(*args)
    assert code == 0, err


@pytest.fixture
def ceremony(tmp_path: Path, cli) -> Path:
    out = tmp_path / "ceremony"
    _init(cli, out)
    return out


def _audit_text(state_dir: Path) -> str:
    return "".join(p.read_text() for p in state_dir.glob("recoveries/*/audit.jsonl"))


def _leaks(words: list[str], text: str) -> bool:
    """Whether two consecutive words of a share appear together in ``text`` (one common word alone may be prose)."""
    flat = " ".join(text.replace('"', " ").split())
    return any(f"{a} {b}" in flat for a, b in zip(words, words[1:]))


def _state_dir() -> Path:
    import os

    return Path(os.environ["ENIGM_RECOVER_STATE_DIR"])


# -- keys check ---------------------------------------------------------------------------------


def test_keys_check_names_set_group_member_and_the_key(ceremony: Path, cli) -> None:
    card = ceremony / "chen.share.txt"
    code, out, err = cli("keys", "check", card, "--recipient", ceremony / "recovery.pub", "--json")
    assert code == 0, err
    doc = json.loads(out)
    share = Share.from_mnemonic(" ".join(read_share_file(card).words.split()))  # the reference library's view
    [result] = doc["cards"]
    assert result["ok"] and result["belongs"] is True
    assert (result["set_id"], result["group"], result["member"]) == (share.identifier, 1, share.index + 1)
    assert (result["group_threshold"], result["member_threshold"]) == (1, 3)
    assert result["custodian"] == "chen"
    audit = _audit_text(_state_dir())
    assert '"card-checked"' in audit and str(share.identifier) in audit
    words = read_share_file(card).words.split()  # no words of the card, in the audit log or the output
    assert not _leaks(words, audit) and not _leaks(words, out)


def test_keys_check_reads_the_words_alone_from_stdin(ceremony: Path, cli, monkeypatch) -> None:
    import io

    words = read_share_file(ceremony / "amara.share.txt").words
    monkeypatch.setattr("sys.stdin", io.StringIO(words + "\n"))
    code, out, err = cli("keys", "check", "--recipient", ceremony / "recovery.pub")
    assert code == 0, err
    assert "OK" in out and "belongs to recovery key" in out


def test_keys_check_asks_word_by_word_hidden_on_a_terminal(ceremony: Path, cli, monkeypatch) -> None:
    words = read_share_file(ceremony / "amara.share.txt").words.split()
    typed = iter(["zzzz"] + [w[:4] for w in words])  # a word not in the list is asked again, by position
    prompts: list[str] = []

    def getpass(prompt: str = "", stream=None) -> str:
        prompts.append(prompt)
        return next(typed)

    monkeypatch.setattr("sys.stdin.isatty", lambda: True, raising=False)
    monkeypatch.setattr("getpass.getpass", getpass)
    code, out, err = cli("keys", "check", "--recipient", ceremony / "recovery.pub")
    assert code == 0, err
    assert prompts[0] == prompts[1] == "word 1 of 33: " and prompts[-1] == "word 33 of 33: "
    assert "word 1 is not in the SLIP-39 word list" in err


def test_keys_check_refuses_a_card_of_another_set(ceremony: Path, tmp_path: Path, cli) -> None:
    # A share made by the reference implementation for another secret, on a card claiming this key.
    other = shamir_mnemonic.generate_mnemonics(1, [(3, 5)], b"\x07" * 32)[0][0]
    share = Share.from_mnemonic(other)
    from enigm_recover.quorum.keyring import read_recipient

    fp = read_recipient(ceremony / "recovery.pub").fingerprint
    card = ShareCard("mallory", share.identifier, 0, 1, 1, share.index, 3, 5, fp, tuple(other.split()))
    path = tmp_path / "mallory.share.txt"
    path.write_text(card.render())
    code, out, err = cli("keys", "check", path, "--recipient", ceremony / "recovery.pub")
    assert code == 22, err
    assert f"share of set {share.identifier}" in err and "keys.toml" in err

    # A recovery.pub that is not there is an input-file error, not a verdict on the card.
    code, _, err = cli("keys", "check", ceremony / "amara.share.txt", "--recipient", path.parent / "nope.pub")
    assert code == 3


def test_keys_check_refuses_a_card_of_another_key(ceremony: Path, tmp_path: Path, cli) -> None:
    other = tmp_path / "other"
    _init(cli, other, ["x", "y"], 2)
    code, out, err = cli("keys", "check", other / "x.share.txt", "--recipient", ceremony / "recovery.pub", "--json")
    assert code == 22
    doc = json.loads(out)
    assert doc["ok"] is False and "belongs to recovery key" in doc["cards"][0]["error"]


def test_keys_check_each_failure_has_its_code(ceremony: Path, tmp_path: Path, cli) -> None:
    words = read_share_file(ceremony / "bastien.share.txt").words.split()
    cases = {
        20: words[:-1],  # a word missing
        21: words[:5] + [words[6], words[5]] + words[7:],  # two words swapped
    }
    for code_expected, ws in cases.items():
        path = tmp_path / f"case{code_expected}.txt"
        path.write_text(" ".join(ws) + "\n")
        code, _, err = cli("keys", "check", path, "--recipient", ceremony / "recovery.pub")
        assert code == code_expected, err
        assert not _leaks(words, err)
    bad = tmp_path / "notaword.txt"
    bad.write_text(" ".join(["zzzzzz"] + words[1:]) + "\n")
    code, _, err = cli("keys", "check", bad)
    assert code == 20 and "word 1 is not in the SLIP-39 word list" in err
    # The words alone, with no keyring to name the set id: well-formed but not tied to the key.
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "recovery.pub").write_text((ceremony / "recovery.pub").read_text())
    plain = tmp_path / "plain.txt"
    plain.write_text(" ".join(words) + "\n")
    code, _, err = cli("keys", "check", plain, "--recipient", tmp_path / "bare" / "recovery.pub")
    assert code == 61, err
    # ... and with the keyring beside it, the set id ties it.
    code, _, err = cli("keys", "check", plain, "--recipient", ceremony / "recovery.pub")
    assert code == 0, err


def test_keys_check_refuses_a_card_whose_header_is_not_its_words(ceremony: Path, tmp_path: Path, cli) -> None:
    text = (ceremony / "chen.share.txt").read_text()
    set_line = next(line for line in text.splitlines() if line.startswith("set id:"))
    forged = tmp_path / "forged.txt"
    forged.write_text(text.replace(set_line, "set id: 1"))
    code, _, err = cli("keys", "check", forged)
    assert code == 22 and "prints set id 1" in err


# -- keys test-quorum and readiness ----------------------------------------------------------------


from tests.test_readiness import THREE, cards, check, readiness  # noqa: E402


def test_test_quorum_proves_the_key_and_readiness_reads_it(drill, cli, tmp_path: Path) -> None:
    code, result, err = readiness(cli, drill, "--max-quorum-age", "30d")
    assert code == 40 and result["failing"] == ["quorum-test"], err
    assert "no successful quorum test" in check(result, "quorum-test")["summary"]

    code, out, err = cli("keys", "test-quorum", "--recipient", drill.recipient, *cards(drill), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["ok"] is True and [c["custodian"] for c in doc["custodians"]] == list(THREE)
    folder = Path(doc["recovery"]["report"]).parent
    record = (folder / "quorum-test.toml").read_text()
    audit = (folder / "audit.jsonl").read_text()
    for name in THREE:  # nothing secret anywhere it wrote
        words = read_share_file(drill.card(name)).words.split()
        assert not _leaks(words, record) and not _leaks(words, audit)
    assert '"quorum-tested"' in audit and "custodians" in (folder / "report.md").read_text().lower()
    code, out, err = cli("audit", "verify", folder / "audit.jsonl")
    assert code == 0, err

    prom = tmp_path / "r.prom"
    code, result, err = readiness(cli, drill, "--max-quorum-age", "30d", "--prometheus", prom)
    assert code == 0, err
    assert result["quorum_test"]["custodians"][0]["custodian"] == "amara"
    assert check(result, "quorum-test")["status"] == "pass"
    assert f"enigm_recover_quorum_test_timestamp_seconds{{source=\"{drill.snapshots}\"}} " \
           f"{result['quorum_test']['timestamp_seconds']}" in prom.read_text()

    # An edited record is not believed: readiness names it and fails again.
    (folder / "quorum-test.toml").write_text(record.replace("amara", "amara2"))
    code, result, err = readiness(cli, drill, "--max-quorum-age", "30d")
    assert code == 40 and result["failing"] == ["quorum-test"]
    assert "edited after the test" in " ".join(check(result, "quorum-test")["evidence"])


def test_test_quorum_with_shares_of_another_key_fails_and_says_so(drill, cli, tmp_path: Path) -> None:
    other = tmp_path / "other"
    _init(cli, other, ["x", "y"], 2)
    code, out, err = cli("keys", "test-quorum", "--recipient", drill.recipient,
                         "--share-file", other / "x.share.txt", "--share-file", other / "y.share.txt")
    assert code == 25, err
    assert "not the snapshot's recovery key" in err or "is not" in err
    [record] = list(_state_dir().glob("recoveries/*/quorum-test.toml"))
    assert "ok = false" in record.read_text()
    code, result, _ = readiness(cli, drill, "--max-quorum-age", "30d")
    assert code == 40 and result["failing"] == ["quorum-test"]  # a failed test proves nothing


def test_a_quorum_test_whose_log_was_edited_is_not_believed(drill, cli) -> None:
    code, out, err = cli("keys", "test-quorum", "--recipient", drill.recipient, *cards(drill), "--json")
    assert code == 0, err
    record = Path(json.loads(out)["recovery"]["report"]).parent / "quorum-test.toml"
    import hashlib
    import re

    old = re.sub(r'tested_at = "[^"]+"', 'tested_at = "2020-01-01T00:00:00Z"', record.read_text())
    old = re.sub(r"timestamp_seconds = \d+", "timestamp_seconds = 1577836800", old)
    # Backdate the record and make its audit entry hold the new SHA-256, as a forger would.
    audit_path = record.parent / "audit.jsonl"
    audit = audit_path.read_text().replace(hashlib.sha256(record.read_bytes()).hexdigest(),
                                           hashlib.sha256(old.encode()).hexdigest())
    record.write_text(old)
    audit_path.write_text(audit)
    code, result, err = readiness(cli, drill, "--max-quorum-age", "30d")
    # The edited log no longer chains: readiness sets the test aside rather than trusting it.
    assert code == 40 and result["failing"] == ["quorum-test"]


def test_max_quorum_age_fails_when_the_last_test_is_older(drill, cli) -> None:
    from datetime import timedelta

    from enigm_recover.readiness.lifecycle import KeyLife, check_quorum_test
    from enigm_recover.recovery.quorum_test import latest_quorum_test
    from enigm_recover.quorum.keyring import read_recipient

    code, _, err = cli("keys", "test-quorum", "--recipient", drill.recipient, *cards(drill))
    assert code == 0, err
    test, notes = latest_quorum_test(_state_dir(), read_recipient(drill.recipient).fingerprint)
    assert test is not None and not notes
    life = KeyLife(test)
    assert check_quorum_test(life, timedelta(days=30), test.tested_at + timedelta(days=29)).ok is True
    late = check_quorum_test(life, timedelta(days=30), test.tested_at + timedelta(days=31))
    assert late.ok is False and "older than the 30d allowed" in late.summary
    assert check_quorum_test(life, None, test.tested_at + timedelta(days=400)).ok is True  # no policy: report only


# -- keys rotate and keys reshare -----------------------------------------------------------------


import shutil  # noqa: E402
import subprocess  # noqa: E402
from datetime import timedelta  # noqa: E402

from tests.conftest import DRILL_AT  # noqa: E402

NEW = ["ines", "jun", "kofi"]


def _rotate(cli, drill, out: Path, *extra: str) -> tuple[int, str, str]:
    args = ["keys", "rotate", "--recipient", drill.recipient, *cards(drill), "--threshold", "2", "--shares", "3",
            "--out", out, "--reason", "bastien left", *extra]
    for name in NEW:
        args += ["--custodian", name]
    return cli(*args)


def _seal_live(drill, recipient: str, hours: int) -> str:
    from enigm_recover.snapshot.seal import seal
    from enigm_recover.snapshot.signature import load_signing_key
    from enigm_recover.sources.local import LocalFolderSource
    from enigm_recover.state.sqlite_store import SQLiteStore

    with SQLiteStore(Path(drill.target.removeprefix("sqlite:///"))) as store:
        return seal(store, recipient=recipient, signing_key=load_signing_key(drill.signing_key),
                    environment="drill", producer="backup@drill", out_dir=drill.snapshots,
                    existing=LocalFolderSource(drill.snapshots).list(),
                    created_at=DRILL_AT + timedelta(hours=hours)).id


def test_rotate_makes_a_new_key_and_retires_the_old_where_it_lives(classic_drill, cli, tmp_path: Path) -> None:
    from enigm_recover.quorum.keyring import load_keyring, read_recipient

    drill = classic_drill  # a classic key: the real age here (Debian's) may predate hybrid recipients

    old = read_recipient(drill.recipient)
    out = tmp_path / "new-ceremony"
    code, stdout, err = _rotate(cli, drill, out, "--json")
    assert code == 0, err
    doc = json.loads(stdout)
    new = read_recipient(out / "recovery.pub")
    assert doc["new_fingerprint"] == new.fingerprint != old.fingerprint
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{n}.share.txt" for n in NEW] + ["keys.toml",
                                                                                               "recovery.pub"])
    # The old recovery.pub says it is retired, in a comment the real age ignores.
    retired = read_recipient(drill.recipient)
    assert retired.retired and "bastien left" in retired.retired and new.fingerprint in retired.retired
    if shutil.which("age"):
        sealed = subprocess.run(["age", "-R", str(drill.recipient)], input=b"hello", capture_output=True)
        assert sealed.returncode == 0, sealed.stderr
    # Both keyrings tell the story: the old key retired (when, why, by what), the new one current.
    for folder in (out, drill.recipient.parent):
        keys = {k.fingerprint: k for k in load_keyring(folder)}
        assert keys[old.fingerprint].retired and keys[old.fingerprint].reason == "bastien left"
        assert keys[old.fingerprint].replaced_by == new.fingerprint
        assert not keys[new.fingerprint].retired and keys[new.fingerprint].set_id == doc["new_set_id"]
    # seal refuses the retired recipient file; the new one works.
    args = ["seal", "--from", drill.target, "--sign-key", drill.signing_key, "--environment", "drill",
            "--out", drill.snapshots]
    code, _, err = cli(*args, "--recipient", drill.recipient)
    assert code == 60 and "retired" in err
    # The new cards check against the new key; an old card is told its key is retired.
    code, _, err = cli("keys", "check", out / "ines.share.txt", "--recipient", out / "recovery.pub")
    assert code == 0, err
    code, _, err = cli("keys", "check", drill.card("amara"), "--recipient", out / "recovery.pub")
    assert code == 60 and "retired" in err
    # Rotating a retired key again is refused before any share is asked.
    code, _, err = _rotate(cli, drill, tmp_path / "again")
    assert code == 60 and not (tmp_path / "again").exists()
    # The audit log of the rotation names both keys and no word.
    audit = _audit_text(_state_dir())
    assert '"key-rotated"' in audit and new.fingerprint in audit
    for name in THREE:
        assert not _leaks(read_share_file(drill.card(name)).words.split(), audit)


def test_readiness_after_rotation(drill, cli, tmp_path: Path) -> None:
    from enigm_recover.quorum.keyring import read_recipient

    out = tmp_path / "new-ceremony"
    code, _, err = _rotate(cli, drill, out)
    assert code == 0, err
    old_fp = read_recipient(drill.recipient).fingerprint
    new_pub = out / "recovery.pub"

    class NewKey:  # the drill, seen with the new recovery.pub
        snapshots, allowed_signers, recipient = drill.snapshots, drill.allowed_signers, new_pub

    # The producer still seals to the old key (a copy made before the rotation): readiness fails and lists.
    stale = _seal_live(drill, read_recipient(drill.recipient).recipient, 1)
    code, result, err = readiness(cli, NewKey)
    assert code == 40 and "keys" in result["failing"], err
    keys = check(result, "keys")
    assert f"the newest snapshot {stale} is sealed to a retired key" in keys["summary"]
    assert sum("still needs that key's old quorum" in line for line in keys["evidence"]) == 4
    assert old_fp in keys["summary"]
    # Readiness pointed at the retired recovery.pub itself says so.
    code, result, err = readiness(cli, drill)
    assert code == 40 and "keys" in result["failing"]
    assert "is itself retired" in check(result, "keys")["summary"]

    # Once the producer seals to the new key, the newest snapshot is fine; the older ones are listed.
    _seal_live(drill, read_recipient(new_pub).recipient, 2)
    code, result, err = readiness(cli, NewKey)
    keys = check(result, "keys")
    assert keys["status"] == "pass" and "4 older snapshot(s) still need a retired key's quorum" in keys["summary"]
    assert check(result, "recipient")["status"] == "pass"


def test_reshare_keeps_the_key_and_says_old_cards_still_work(drill, cli, tmp_path: Path) -> None:
    from enigm_recover.quorum.keyring import load_keyring, read_recipient

    before = read_recipient(drill.recipient)
    out = tmp_path / "reshared"
    args = ["keys", "reshare", "--recipient", drill.recipient, *cards(drill), "--threshold", "2", "--shares", "3",
            "--out", out]
    for name in NEW:
        args += ["--custodian", name]
    code, stdout, err = cli(*args)
    assert code == 0, err
    assert "Every old card still works together with the rest of its old set" in err + stdout
    assert "keys rotate" in err + stdout
    assert read_recipient(out / "recovery.pub").recipient == before.recipient
    assert not read_recipient(drill.recipient).retired
    [record] = [k for k in load_keyring(drill.recipient.parent) if k.fingerprint == before.fingerprint]
    # New cards and old cards both check as the key's; two new cards prove the quorum.
    code, out_text, err = cli("keys", "check", out / "ines.share.txt", drill.card("amara"), "--recipient",
                              drill.recipient)
    assert code == 0, err
    assert record.older_sets and record.set_id not in record.older_sets
    code, _, err = cli("keys", "test-quorum", "--recipient", out / "recovery.pub",
                       "--share-file", out / "ines.share.txt", "--share-file", out / "kofi.share.txt")
    assert code == 0, err
    code, _, err = cli("keys", "test-quorum", "--recipient", drill.recipient, *cards(drill))
    assert code == 0, err  # the old set still works: that is why a suspected card calls for rotate


def test_rotate_with_shares_of_the_wrong_key_changes_nothing(drill, cli, tmp_path: Path) -> None:
    other = tmp_path / "other"
    _init(cli, other, ["x", "y"], 2)
    before = drill.recipient.read_bytes()
    keyring_before = (drill.recipient.parent / "keys.toml").read_bytes()
    args = ["keys", "rotate", "--recipient", drill.recipient, "--share-file", other / "x.share.txt",
            "--share-file", other / "y.share.txt", "--threshold", "2", "--shares", "3", "--out", tmp_path / "n"]
    for name in NEW:
        args += ["--custodian", name]
    code, _, err = cli(*args)
    assert code == 25, err
    assert drill.recipient.read_bytes() == before and not (tmp_path / "n").exists()
    assert (drill.recipient.parent / "keys.toml").read_bytes() == keyring_before


# -- keys rewrap --------------------------------------------------------------------------------------


from enigm_recover.quorum.entry import ShareEntry  # noqa: E402
from enigm_recover.snapshot.manifest import manifest_name, payload_name, signature_name  # noqa: E402
from enigm_recover.snapshot.agecrypt import _parse_header  # noqa: E402


def _identity(*card_paths: Path):
    entry = ShareEntry()
    for path in card_paths:
        card = read_share_file(path)
        entry.add(card.words, kind=card.kind)  # the card names its key's kind
    return entry.combine()


def _ids(drill) -> list[str]:
    return sorted(p.name.removesuffix(".manifest.toml") for p in drill.snapshots.glob("*.manifest.toml"))


def _body(path: Path) -> bytes:
    data = path.read_bytes()
    return data[_parse_header(data[:65536])[1]:]


def _rewrap(cli, drill, new_pub: Path, *refs: str, share_cards=None) -> tuple[int, str, str]:
    shares = share_cards if share_cards is not None else cards(drill)
    return cli("keys", "rewrap", drill.snapshots, *refs, "--to", new_pub, "--sign-key", drill.signing_key,
               "--allowed-signers", drill.allowed_signers, *shares, "--json")


@pytest.fixture
def rotated(drill, cli, tmp_path: Path) -> Path:
    out = tmp_path / "new-ceremony"
    code, _, err = _rotate(cli, drill, out)
    assert code == 0, err
    return out


def test_rewrap_changes_only_the_header_and_the_real_tools_agree(classic_drill, cli, tmp_path: Path) -> None:
    if not (shutil.which("age") and shutil.which("ssh-keygen")):
        pytest.skip("needs the real age and ssh-keygen")
    drill = classic_drill  # classic to classic: the real age here (Debian's) may predate hybrid recipients
    rotated = tmp_path / "new-ceremony"
    code, _, err = _rotate(cli, drill, rotated, "--kind", "x25519")
    assert code == 0, err
    ids = _ids(drill)
    before = {i: (drill.snapshots / payload_name(i)).read_bytes() for i in ids}
    old_key, new_key = tmp_path / "old.key", tmp_path / "new.key"
    old_key.write_text(_identity(*(drill.card(n) for n in THREE)).age_identity_string() + "\n")
    new_key.write_text(_identity(rotated / "ines.share.txt", rotated / "kofi.share.txt").age_identity_string() + "\n")
    plain = {i: subprocess.run(["age", "-d", "-i", old_key, drill.snapshots / payload_name(i)],
                               capture_output=True, check=True).stdout for i in ids}

    code, out, err = _rewrap(cli, drill, rotated / "recovery.pub", "--all")
    assert code == 0, err
    doc = json.loads(out)
    assert sorted(r["id"] for r in doc["rewrapped"]) == ids
    for i in ids:
        payload = drill.snapshots / payload_name(i)
        assert _body(payload) == before[i][len(before[i]) - len(_body(payload)):]  # every byte after the header
        assert len(before[i]) - len(_body(payload)) < 400  # ... and the header alone was replaced
        # The real age opens it with the new identity, and refuses the old one.
        opened = subprocess.run(["age", "-d", "-i", new_key, payload], capture_output=True)
        assert opened.returncode == 0 and opened.stdout == plain[i], opened.stderr
        assert subprocess.run(["age", "-d", "-i", old_key, payload], capture_output=True).returncode != 0
        # ssh-keygen accepts the manifest signed again; it names the new recipient, size and SHA-256.
        manifest = (drill.snapshots / manifest_name(i)).read_bytes()
        verified = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", drill.allowed_signers, "-I", "backup@drill",
                                   "-n", "enigm-snapshot", "-s", drill.snapshots / signature_name(i)],
                                  input=manifest, capture_output=True)
        assert verified.returncode == 0, verified.stderr
        import hashlib

        text = manifest.decode()
        assert hashlib.sha256(payload.read_bytes()).hexdigest() in text and f"size = {payload.stat().st_size}" in text
        assert (rotated / "recovery.pub").read_text().split()[-1] in text
    assert not [p for p in drill.snapshots.iterdir() if "rewrap" in p.name]  # nothing left beside
    # The new cards open the snapshot end to end; the old cards no longer do.
    new_cards = ["--share-file", rotated / "ines.share.txt", "--share-file", rotated / "kofi.share.txt"]
    code, _, err = cli("unseal", drill.snapshots, "latest", "--allowed-signers", drill.allowed_signers, *new_cards,
                       "--out", tmp_path / "records.jsonl")
    assert code == 0, err
    code, _, err = cli("unseal", drill.snapshots, "latest", "--allowed-signers", drill.allowed_signers, *cards(drill),
                       "--out", tmp_path / "records2.jsonl")
    assert code == 25, err
    # Every snapshot rewrapped is in the audit log; readiness with the new key passes its recipient check.
    audit = _audit_text(_state_dir())
    assert audit.count('"snapshot-rewrapped"') == len(ids)

    class NewKey:
        snapshots, allowed_signers, recipient = drill.snapshots, drill.allowed_signers, rotated / "recovery.pub"

    code, result, err = readiness(cli, NewKey)
    assert check(result, "recipient")["status"] == "pass" and check(result, "keys")["status"] == "pass"
    assert check(result, "payloads")["status"] == "pass"
    # Running it again changes nothing and needs no share.
    code, out, err = _rewrap(cli, drill, rotated / "recovery.pub", "--all", share_cards=[])
    assert code == 0 and sorted(json.loads(out)["already"]) == ids, err


def test_a_snapshot_the_rewrap_did_not_cover_keeps_its_old_key(drill, cli, rotated: Path, tmp_path: Path) -> None:
    first, *rest = _ids(drill)
    code, out, err = _rewrap(cli, drill, rotated / "recovery.pub", first)
    assert code == 0, err
    for snapshot_id in rest:
        code, _, err = cli("unseal", drill.snapshots, snapshot_id, "--allowed-signers", drill.allowed_signers,
                           *cards(drill), "--out", tmp_path / f"{snapshot_id}.jsonl")
        assert code == 0, err


def test_rewrap_refuses_bad_requests_and_changes_nothing(drill, cli, rotated: Path, tmp_path: Path) -> None:
    def state() -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in drill.snapshots.iterdir()}

    before = state()
    # A snapshot sealed to a third key, named explicitly.
    third = tmp_path / "third"
    _init(cli, third, ["x", "y"], 2)
    from enigm_recover.quorum.keyring import read_recipient

    odd = _seal_live(drill, read_recipient(third / "recovery.pub").recipient, 3)
    before = state()
    code, _, err = _rewrap(cli, drill, rotated / "recovery.pub", odd)
    assert code == 14 and "neither the old key" in err and state() == before
    # Shares of the wrong key: refused, nothing changed.
    wrong = ["--share-file", third / "x.share.txt", "--share-file", third / "y.share.txt"]
    code, _, err = _rewrap(cli, drill, rotated / "recovery.pub", "--all", share_cards=wrong)
    assert code == 25 and state() == before, err
    # The new key must not be retired; the signing key must be the producer's.
    code, _, err = _rewrap(cli, drill, drill.recipient, "--all")
    assert code == 60 and state() == before
    other_key = tmp_path / "id_other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other_key], check=True)
    code, _, err = cli("keys", "rewrap", drill.snapshots, "--all", "--to", rotated / "recovery.pub", "--sign-key",
                       other_key, "--allowed-signers", drill.allowed_signers, *cards(drill))
    assert code == 10 and "not trusted" in err and state() == before
    # --all covers the old key's snapshots and lists the third-key one.
    code, out, err = _rewrap(cli, drill, rotated / "recovery.pub", "--all")
    assert code == 0, err
    doc = json.loads(out)
    assert [line.split(":")[0] for line in doc["not_covered"]] == [odd] and len(doc["rewrapped"]) == 3
