"""The key ceremony and incremental share entry."""

from __future__ import annotations

from pathlib import Path

import pytest
import shamir_mnemonic
from shamir_mnemonic.wordlist import WORDLIST

from enigm_recover.errors import (
    DuplicateShare,
    NotEnoughShares,
    OutputExistsError,
    ShareChecksumError,
    ShareSetMismatch,
    ShareWordError,
    UsageError,
    WrongRecoveryKey,
)
from enigm_recover.quorum.cards import read_share_file
from enigm_recover.quorum.entry import ShareEntry
from enigm_recover.quorum.keygen import GroupSpec, create_recovery_key
from enigm_recover.snapshot.seal import read_recipient_file

NAMES = ["amara", "bastien", "chen", "dagny", "emeka"]


@pytest.fixture(scope="module")
def ceremony(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("ceremony")
    identity, cards = create_recovery_key(custodians=NAMES, group_threshold=1, groups=[GroupSpec(3, 5)],
                                          out_dir=out)
    return identity, {name: read_share_file(out / f"{name}.share.txt").words for name in NAMES}, out


def test_cards_and_recipient_are_written_but_never_the_secret(ceremony) -> None:
    identity, words, out = ceremony
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{n}.share.txt" for n in NAMES] + ["keys.toml", "recovery.pub"])
    assert read_recipient_file(out / "recovery.pub") == identity.recipient
    secret_forms = [identity.age_identity_string(), identity.secret_bytes().hex()]
    for path in out.iterdir():
        text = path.read_text()
        assert not any(s.lower() in text.lower() for s in secret_forms)
    card = (out / "chen.share.txt").read_text()
    assert "custodian: chen" in card and "member index: 3" in card and identity.fingerprint in card
    assert (out / "chen.share.txt").stat().st_mode & 0o077 == 0
    assert len(words["chen"].split()) == 33


def test_any_three_of_five_recover_the_key(ceremony) -> None:
    identity, words, _ = ceremony
    for trio in (("amara", "bastien", "chen"), ("chen", "dagny", "emeka"), ("emeka", "amara", "dagny")):
        entry = ShareEntry(identity.fingerprint)
        for name in trio:
            assert not entry.complete
            entry.add(words[name], name)
        assert entry.complete
        assert entry.combine().recipient == identity.recipient


def test_progress_is_reported_per_group(ceremony) -> None:
    identity, words, _ = ceremony
    entry = ShareEntry(identity.fingerprint)
    assert entry.describe_progress() == "no share entered yet"
    receipt = entry.add(words["dagny"], "dagny")
    assert (receipt.custodian, receipt.group_index, receipt.member_index) == ("dagny", 0, 3)
    assert [(g.entered, g.needed) for g in entry.groups()] == [(1, 3)]
    assert "group 1: 1 of 3" in entry.describe_progress()


def test_too_few_shares(ceremony) -> None:
    identity, words, _ = ceremony
    entry = ShareEntry(identity.fingerprint)
    entry.add(words["amara"], "amara")
    entry.add(words["bastien"], "bastien")
    with pytest.raises(NotEnoughShares, match="2 of 3"):
        entry.combine()


def test_mistyped_word_names_its_position_without_echoing_it(ceremony) -> None:
    _, words, _ = ceremony
    ws = words["amara"].split()
    ws[6] = ws[6][:-1] + ("q" if ws[6][-1] != "q" else "z") + "x"
    with pytest.raises(ShareWordError) as exc:
        ShareEntry().add(" ".join(ws), "amara")
    assert "word 7" in exc.value.message
    assert ws[6] not in exc.value.one_line()


def test_four_letter_prefixes_are_enough(ceremony) -> None:
    identity, words, _ = ceremony
    entry = ShareEntry(identity.fingerprint)
    for name in ("amara", "chen", "emeka"):
        entry.add(" ".join(w[:4] for w in words[name].split()), name)
    assert entry.combine().recipient == identity.recipient


def test_swapped_words_fail_the_checksum(ceremony) -> None:
    _, words, _ = ceremony
    ws = words["bastien"].split()
    i = next(i for i in range(10, 30) if ws[i] != ws[i + 1])
    ws[i], ws[i + 1] = ws[i + 1], ws[i]
    with pytest.raises(ShareChecksumError):
        ShareEntry().add(" ".join(ws), "bastien")


def test_a_replaced_valid_word_fails_the_checksum(ceremony) -> None:
    _, words, _ = ceremony
    ws = words["bastien"].split()
    ws[20] = next(w for w in WORDLIST if w != ws[20])
    with pytest.raises(ShareChecksumError):
        ShareEntry().add(" ".join(ws), "bastien")


def test_wrong_length(ceremony) -> None:
    _, words, _ = ceremony
    with pytest.raises(ShareWordError, match="32 words"):
        ShareEntry().add(" ".join(words["chen"].split()[:-1]), "chen")


def test_share_from_another_set_is_refused(ceremony, tmp_path: Path) -> None:
    identity, words, _ = ceremony
    create_recovery_key(custodians=NAMES, group_threshold=1, groups=[GroupSpec(3, 5)], out_dir=tmp_path)
    foreign = read_share_file(tmp_path / "amara.share.txt").words
    entry = ShareEntry(identity.fingerprint)
    entry.add(words["chen"], "chen")
    with pytest.raises(ShareSetMismatch):
        entry.add(foreign, "mallory")
    assert len(entry.receipts) == 1  # the refused share left no trace


def test_same_share_twice_and_same_custodian_twice(ceremony) -> None:
    _, words, _ = ceremony
    entry = ShareEntry()
    entry.add(words["chen"], "chen")
    with pytest.raises(DuplicateShare, match="already entered by chen"):
        entry.add(words["chen"], "dagny")
    with pytest.raises(DuplicateShare, match="chen has already entered"):
        entry.add(words["emeka"], "chen")
    entry.add(words["emeka"], "emeka")
    assert [r.custodian for r in entry.receipts] == ["chen", "emeka"]


def test_wrong_passphrase_is_caught_by_the_fingerprint(tmp_path: Path) -> None:
    identity, _ = create_recovery_key(custodians=NAMES[:3], group_threshold=1, groups=[GroupSpec(2, 3)],
                                      out_dir=tmp_path, passphrase="correct horse")
    entry = ShareEntry(identity.fingerprint)
    for name in NAMES[:2]:
        entry.add(read_share_file(tmp_path / f"{name}.share.txt").words, name)
    with pytest.raises(WrongRecoveryKey) as exc:
        entry.combine("battery staple")
    assert "passphrase" in exc.value.one_line()
    assert entry.combine("correct horse").recipient == identity.recipient


def test_groups_need_the_group_threshold(tmp_path: Path) -> None:
    names = ["s1", "s2", "s3", "x1", "x2"]
    identity, _ = create_recovery_key(custodians=names, group_threshold=2,
                                      groups=[GroupSpec(2, 3), GroupSpec(1, 1), GroupSpec(1, 1)], out_dir=tmp_path)
    words = {n: read_share_file(tmp_path / f"{n}.share.txt").words for n in names}
    entry = ShareEntry(identity.fingerprint)
    entry.add(words["s1"], "s1")
    entry.add(words["s2"], "s2")
    assert not entry.complete  # one group of the two needed
    assert "1 of 2 group(s) complete" in entry.describe_progress()
    entry.add(words["x2"], "x2")
    assert entry.complete
    assert entry.combine().recipient == identity.recipient


def test_combining_uses_exactly_the_threshold(ceremony) -> None:
    """A fourth share is accepted but not needed; the library picks three."""
    identity, words, _ = ceremony
    entry = ShareEntry(identity.fingerprint)
    for name in NAMES[:4]:
        entry.add(words[name], name)
    assert entry.combine().recipient == identity.recipient
    ems = shamir_mnemonic.combine_mnemonics([words[n] for n in NAMES[:3]])
    assert ems == identity.secret_bytes()


def test_ceremony_refuses_bad_plans_and_never_overwrites(ceremony, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="5 shares need 5 custodians"):
        create_recovery_key(custodians=NAMES[:4], group_threshold=1, groups=[GroupSpec(3, 5)], out_dir=tmp_path)
    with pytest.raises(UsageError, match="threshold of 1"):
        create_recovery_key(custodians=NAMES[:2], group_threshold=1, groups=[GroupSpec(1, 2)], out_dir=tmp_path)
    with pytest.raises(UsageError, match="custodian name"):
        create_recovery_key(custodians=["../evil", "b"], group_threshold=1, groups=[GroupSpec(2, 2)],
                            out_dir=tmp_path)
    _, _, out = ceremony
    with pytest.raises(OutputExistsError):
        create_recovery_key(custodians=NAMES, group_threshold=1, groups=[GroupSpec(3, 5)], out_dir=out)


def test_keys_init_command(tmp_path: Path, cli) -> None:
    code, out, err = cli("keys", "init", "--threshold", "2", "--group", "2/3", "--group", "1/1",
                         "--custodian", "a", "--custodian", "b", "--custodian", "c", "--custodian", "d",
                         "--out", tmp_path / "k", "--json")
    assert code == 0, err
    assert (tmp_path / "k" / "d.share.txt").exists()
    code, out, err = cli("keys", "init", "--threshold", "3", "--shares", "5", "--custodian", "a",
                         "--out", tmp_path / "k2")
    assert code == 2 and "5 shares need 5 custodians" in err and "Traceback" not in err
    assert not (tmp_path / "k2").exists()


def test_typing_feedback_names_positions_never_letters() -> None:
    from enigm_recover.quorum.entry import typing_feedback

    assert typing_feedback("") == (0, "word 1: type its first four letters", [])
    assert typing_feedback("acad")[1] == "word 1: recognised — space for the next"
    assert typing_feedback("academic ac")[:2] == (1, "word 2: keep typing")
    finished, verdict, bad = typing_feedback("academic zzzz acid ")
    assert finished == 3 and bad == [2] and verdict == "word 4: type its first four letters"
    assert "zz" not in typing_feedback("zzq")[1] and "no SLIP-39 word" in typing_feedback("zzq")[1]


def test_typing_feedback_counts_to_33_never_word_34() -> None:
    from enigm_recover.quorum.entry import typing_feedback

    full = "acid " * 33
    assert typing_feedback(full)[:2] == (33, "all 33 words typed — Enter to check the share")
    assert typing_feedback(full.strip())[1] == "word 33: recognised — space for the next"
    assert "word 34" not in typing_feedback(full + "ac")[1] and "a share has 33" in typing_feedback(full + "ac")[1]
    assert "a share has 33" in typing_feedback(full + "acid ")[1]


# -- word by word: the draft of one share -----------------------------------------------------------------


def test_draft_flags_a_word_at_its_position_at_once_and_corrects_it_in_place(ceremony) -> None:
    from enigm_recover.quorum.entry import ShareDraft

    identity, words, _ = ceremony
    ws = words["amara"].split()
    draft = ShareDraft()
    for position, word in enumerate(ws, 1):
        draft.set_word(position, word if position != 5 else "qqqq")
        if position == 5:
            assert [p.position for p in draft.problems()] == [5]  # flagged at once, not at the end
    assert not draft.complete
    assert "word 5" in (draft.verdict() or "") and "qqqq" not in (draft.verdict() or "")
    assert draft.set_word(5, ws[4][:4]) == ws[4]  # corrected in place: the other 32 words stay
    assert draft.problems() == [] and draft.complete and draft.verdict() is None
    assert draft.counter() == "33 of 33 words"
    entry = ShareEntry(identity.fingerprint)
    assert entry.add(draft.text(), "amara").custodian == "amara"


def test_draft_checksum_verdict_comes_at_the_end_and_keeps_the_words(ceremony) -> None:
    from enigm_recover.quorum.entry import ShareDraft

    _, words, _ = ceremony
    ws = words["bastien"].split()
    i = next(i for i in range(10, 30) if ws[i] != ws[i + 1])
    draft = ShareDraft()
    draft.load(" ".join(ws[:i] + [ws[i + 1], ws[i]] + ws[i + 2:]))
    assert draft.complete  # every word is a word: only the checksum can tell
    verdict = draft.verdict() or ""
    assert "checksum" in verdict and "re-read the card" in verdict
    sentence = ("the checksum does not match: every word is a SLIP-39 word, so one is mistyped as another or two "
                "are swapped — re-read the card word by word and correct the one that differs")
    assert sentence in verdict  # its own word "that" is in the word list too: the rest holds none
    assert not any(w in verdict.replace(sentence, "").split() for w in ws)
    assert draft.filled == 33  # kept for correction
    draft.set_word(i + 1, ws[i])
    draft.set_word(i + 2, ws[i + 1])
    assert draft.verdict() is None
    draft.clear()
    assert draft.filled == 0 and draft.next_position == 1 and draft.counter() == "0 of 33 words"


def test_draft_counter_never_passes_the_share_length(ceremony) -> None:
    from enigm_recover.quorum.entry import ShareDraft

    _, words, _ = ceremony
    draft = ShareDraft()
    draft.load(words["chen"] + " " + words["chen"].split()[0])
    assert draft.counter() == "33 of 33 words" and draft.next_position is None
    with pytest.raises(ShareWordError, match="no word 34"):
        draft.set_word(34, "acid")
    draft.clear_word(7)
    assert draft.next_position == 7 and "word 7 is still missing" in (draft.verdict() or "")


def test_name_is_checked_before_the_first_word(ceremony) -> None:
    _, words, _ = ceremony
    entry = ShareEntry()
    assert entry.name_problem("amara") is None
    entry.add(words["amara"], "amara")
    assert "already entered" in (entry.name_problem("amara") or "")
    assert entry.name_problem("") is not None


def test_the_terminal_prompt_refuses_a_share_with_a_word_too_many_by_its_count(ceremony, capsys) -> None:
    from enigm_recover.cli.share_words import enter_share_words

    identity, words, _ = ceremony

    class Quorum:
        entry = ShareEntry(identity.fingerprint)

        def add(self, text: str, name: str, typed: str | None):
            return self.entry.add(text, name)

    replies = iter([words["amara"] + " " + words["amara"].split()[3]])
    assert not enter_share_words(Quorum(), "amara", None, ask=lambda prompt: next(replies))
    err = capsys.readouterr().err
    rejection = ("rejected: the share has 34 words; a share of a recovery key has 33 — check that no word was "
                 "skipped or repeated")
    assert rejection in err  # its own words ("check", "that") are in the word list too: the rest holds none
    assert not set(words["amara"].split()) & set(err.replace(rejection, "").split())
    replies = iter([" ".join(words["chen"].split()[:-1]), words["chen"].split()[-1]])
    assert enter_share_words(Quorum(), "chen", None, ask=lambda prompt: next(replies))
