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
    for word in read_share_file(card).words.split():  # no word of the card, in the audit log or the output
        assert f'"{word}"' not in audit and f" {word} " not in out


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

    # The same card checked against its own key's fingerprint but another recovery.pub: 22 as well.
    code, _, err = cli("keys", "check", ceremony / "amara.share.txt", "--recipient", path.parent / "nope.pub")
    assert code == 3  # a missing recovery.pub is an input-file error


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
        for word in set(words):
            assert f" {word} " not in err
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
    assert code == 29, err
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
