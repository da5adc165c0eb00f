"""The custodians' screens of the app (check my card, test the quorum), driven through Textual's Pilot.

They drive the engine ``keys check`` and ``keys test-quorum`` drive: the same verdicts, the same audit
entries, a quorum test ``readiness`` then counts. Every wait is on a condition; shares are typed key by key.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from shamir_mnemonic import Share

from enigm_recover.app.app import RecoverApp
from enigm_recover.app.options import AppOptions
from enigm_recover.app.tour import enter_share, on, read_cards, share_keys, until
from enigm_recover.quorum.keyring import read_recipient
from enigm_recover.recovery.quorum_test import latest_quorum_test
from tests.conftest import DRILL_AT
from tests.test_readiness import check, readiness

THREE = ("amara", "chen", "emeka")


def _state_dir() -> Path:
    return Path(os.environ["ENIGM_RECOVER_STATE_DIR"])  # the CLI's too: readiness reads what the app wrote


def make_app(drill, tmp_path: Path, **overrides) -> RecoverApp:
    options = AppOptions(source=str(drill.snapshots), target=drill.target, allowed_signers=drill.allowed_signers,
                         state_dir=_state_dir(), cache_dir=tmp_path / "cache", operator="dana",
                         recipient=drill.recipient, now=lambda: DRILL_AT, still=True)
    for key, value in overrides.items():
        setattr(options, key, value)
    return RecoverApp(options)


def run(scenario) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout=240))


def text_of(app, selector: str) -> str:
    return str(app.screen.query_one(selector).content)


def audit_actions(folder: Path) -> list[tuple[str, str]]:
    return [(e["action"], e["outcome"]) for e in map(json.loads, (folder / "audit.jsonl").read_text().splitlines())]


def recoveries(command: str) -> list[Path]:
    """The recovery folders of one command, oldest first."""
    found = []
    for folder in sorted(_state_dir().glob("recoveries/*")):
        first = json.loads((folder / "audit.jsonl").read_text().splitlines()[0])
        if first["inputs"].get("command") == command:
            found.append(folder)
    return found


def other_key(cli, tmp_path: Path) -> Path:
    out = tmp_path / "other"
    code, _, err = cli("keys", "init", "--threshold", "2", "--shares", "2", "--custodian", "xavier",
                       "--custodian", "yusuf", "--out", out)
    assert code == 0, err
    return out


@pytest.fixture
def operator_key(tmp_path: Path):
    """The operator's audit key as the app builds it (``AppOptions.signer``), and who may verify its heads."""
    import asyncssh

    from enigm_recover.recovery.audit import NAMESPACE
    from enigm_recover.snapshot.signature import audit_signer

    key = asyncssh.generate_private_key("ssh-ed25519")
    key.write_private_key(str(tmp_path / "operator"))
    allowed = tmp_path / "operator_allowed_signers"
    allowed.write_text(f'dana namespaces="{NAMESPACE}" {key.export_public_key().decode().strip()}\n')
    return (lambda ask: audit_signer(tmp_path / "operator", ask)), allowed


async def open_start(pilot) -> None:
    app = pilot.app
    await until(pilot, lambda: on(app, "StartScreen") and app.screen.runbooks is not None)


async def press_test_the_quorum(pilot) -> None:
    """``t`` on the start screen, until the quorum test's screen is there."""
    await pilot.press("t")
    await until(pilot, lambda: on(pilot.app, "TestQuorumScreen"), 60)


async def open_quorum_test(pilot) -> None:
    await open_start(pilot)
    await press_test_the_quorum(pilot)


# -- check my card --------------------------------------------------------------------------------------


def test_check_my_card_keeps_keys_typed_ahead_masked_and_names_set_member_and_key(drill, cli, operator_key,
                                                                                 tmp_path: Path) -> None:
    """Keys arriving all at once land where they belong (every word in the masked field, none shown), and the
    verdict is the one ``keys check`` gives: set, group, member, thresholds, and the key it belongs to."""
    from textual import events

    cards = read_cards({n: drill.card(n) for n in THREE})
    share = Share.from_mnemonic(cards["chen"])
    fingerprint = read_recipient(drill.recipient).fingerprint
    signer, allowed = operator_key
    app = make_app(drill, tmp_path, signer=signer)

    async def scenario() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await open_start(pilot)
            assert "m checks one share card alone" in text_of(app, "#custodian-entries")
            await pilot.press("m")
            await until(pilot, lambda: on(app, "CheckCardScreen") and app.focused.id == "custodian")
            assert str(app.screen.query_one("#recipient-known").content) == str(drill.recipient)  # the app's key
            keys = [*"chen", "enter"]
            for word in cards["chen"].split():
                keys += [*word, "space"]
            keys.append("enter")
            for key in keys:  # all queued before the app handles the first: no waiting between them
                app._driver.send_message(events.Key(key, {"space": " ", "enter": "\r"}.get(key, key)))
            await until(pilot, lambda: "Well-formed" in text_of(app, "#verdict"), 60)
            assert app.screen.query_one("#custodian").value == "chen"
            assert app.screen.query_one("#share").password and app.screen.query_one("#share").value == ""
            verdict = text_of(app, "#verdict")
            assert f"Set {share.identifier}, group 1 of 1" in verdict and f"member {share.index + 1}" in verdict
            assert "this group needs 3" in verdict
            assert f"Belongs to recovery key {fingerprint}" in verdict
            screen_text = str(app.screen._compositor) + " ".join(w.value for w in app.screen.query("Input"))
            for a, b in zip(cards["chen"].split(), cards["chen"].split()[1:]):
                assert f"{a} {b}" not in screen_text
            await pilot.press("escape")  # nothing typed any more: straight back
            await until(pilot, lambda: on(app, "StartScreen"))
            await pilot.press("ctrl+q")
        assert app.internal_errors == []

    run(scenario)
    [folder] = recoveries("keys check")
    actions = audit_actions(folder)
    assert ("card-checked", "ok") in actions and actions[-1] == ("recovery-closed", "completed")
    entry = next(json.loads(line) for line in (folder / "audit.jsonl").read_text().splitlines()
                 if '"card-checked"' in line)
    assert entry["inputs"] == {"card": "(typed in the app)", "custodian": "chen", "set_id": share.identifier,
                               "group": 1, "member_index": share.index + 1, "recipient_fingerprint": fingerprint,
                               "belongs": True}
    code, _, err = cli("audit", "verify", folder / "audit.jsonl", "--allowed-signers", allowed)
    assert code == 0, err  # intact, and its head signed by the operator's key, as keys check signs it
    assert not any(w in (folder / "audit.jsonl").read_text().split('"') for w in cards["chen"].split()[5:])


def test_check_my_card_says_a_card_of_another_key_does_not_belong(drill, cli, tmp_path: Path) -> None:
    other = read_cards({"xavier": other_key(cli, tmp_path) / "xavier.share.txt"})["xavier"]
    app = make_app(drill, tmp_path)

    async def scenario() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await open_start(pilot)
            await pilot.press("m")
            await until(pilot, lambda: on(app, "CheckCardScreen") and app.focused.id == "custodian")
            await pilot.press("enter", *share_keys(other), "enter")
            await until(pilot, lambda: "Does not belong" in text_of(app, "#verdict"), 60)
            verdict = text_of(app, "#verdict")
            assert f"set {Share.from_mnemonic(other).identifier}" in verdict
            assert read_recipient(drill.recipient).fingerprint in verdict
            # leaving with the words still typed asks first; Esc keeps them
            await pilot.press("escape")
            await until(pilot, lambda: on(app, "ConfirmDialog"))
            await pilot.press("escape")
            await until(pilot, lambda: on(app, "CheckCardScreen"))
            assert app.screen.query_one("#share").value.split() == other.split()
            await pilot.press("escape")
            await until(pilot, lambda: on(app, "ConfirmDialog"))
            await pilot.press("y")
            await until(pilot, lambda: on(app, "StartScreen"))
            await pilot.press("ctrl+q")
        assert app.internal_errors == []

    run(scenario)
    [folder] = recoveries("keys check")
    assert ("card-checked", "refused") in audit_actions(folder)
    assert audit_actions(folder)[-1] == ("recovery-closed", "failed")


def test_check_my_card_flags_a_typo_at_its_position_and_corrects_it_in_place(drill, tmp_path: Path) -> None:
    words = read_cards({"amara": drill.card("amara")})["amara"].split()
    typo = [*words[:6], "xqzzy", *words[7:]]  # word 7 is no SLIP-39 word
    app = make_app(drill, tmp_path)

    async def scenario() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await open_start(pilot)
            await pilot.press("m")
            await until(pilot, lambda: on(app, "CheckCardScreen") and app.focused.id == "custodian")
            await pilot.press("enter", *share_keys(" ".join(typo[:8])))
            await until(pilot, lambda: "not SLIP-39 words: word 7" in text_of(app, "#word-state"))
            await pilot.press(*share_keys(" ".join(typo[8:])), "enter")
            await until(pilot, lambda: "Not a well-formed share" in text_of(app, "#verdict"), 60)
            assert "word 7 not in the SLIP-39 word list" in text_of(app, "#verdict")
            await pilot.press("ctrl+t")
            await until(pilot, lambda: on(app, "QuestionDialog"))
            await pilot.press("7", "enter")
            await until(pilot, lambda: on(app, "SecretDialog"))
            await pilot.press(*words[6][:4], "enter")
            await until(pilot, lambda: on(app, "CheckCardScreen") and "Word 7 replaced" in text_of(app, "#verdict"))
            assert app.screen.query_one("#share").value.split() == words  # the other words stayed as typed
            await pilot.press("enter")
            await until(pilot, lambda: "Well-formed" in text_of(app, "#verdict"), 60)
            await pilot.press("ctrl+q")
        assert app.internal_errors == []

    run(scenario)


# -- test the quorum ------------------------------------------------------------------------------------


def test_test_the_quorum_in_the_app_is_the_test_readiness_reads(drill, cli, operator_key, tmp_path: Path) -> None:
    code, result, err = readiness(cli, drill, "--max-quorum-age", "30d")
    assert code == 40 and result["failing"] == ["quorum-test"], err
    cards = read_cards({n: drill.card(n) for n in THREE})
    fingerprint = read_recipient(drill.recipient).fingerprint
    signer, allowed = operator_key
    app = make_app(drill, tmp_path, signer=signer)

    async def scenario() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await open_quorum_test(pilot)
            ceremony = app.screen.session.ceremony
            assert ceremony in text_of(app, "#ceremony-note") and fingerprint in text_of(app, "#ceremony-note")
            await enter_share(pilot, "amara", cards["amara"], typed_ceremony=ceremony)
            await until(pilot, lambda: "Accepted: amara" in text_of(app, "#verdict"))
            await enter_share(pilot, "chen", cards["chen"])
            await until(pilot, lambda: "Accepted: chen" in text_of(app, "#verdict"))
            await enter_share(pilot, "emeka", cards["emeka"])
            await until(pilot, lambda: on(app, "SecretDialog"))
            await pilot.press("enter")  # no passphrase on the drill's cards
            await until(pilot, lambda: on(app, "TestQuorumScreen") and "Quorum proven" in text_of(app, "#verdict"), 60)
            assert fingerprint in text_of(app, "#verdict") and "amara, chen, emeka" in text_of(app, "#verdict")
            assert all(field.value == "" and field.disabled for field in app.screen.query("Input"))
            await pilot.press("escape")  # the test is over: nothing to lose
            await until(pilot, lambda: on(app, "StartScreen"))
            await pilot.press("ctrl+q")
        assert app.internal_errors == []

    run(scenario)
    test, notes = latest_quorum_test(_state_dir(), fingerprint)
    assert test is not None and notes == []
    assert [c["custodian"] for c in test.custodians] == list(THREE)
    assert test.custodians[0]["bound_to_ceremony"] is True
    [folder] = recoveries("keys test-quorum")
    from enigm_recover.recovery.session import load_report

    report = load_report(folder)
    assert report["status"] == "completed" and report["audit"]["signed"] and report["command"] == "keys test-quorum"
    code, _, err = cli("audit", "verify", folder / "audit.jsonl", "--allowed-signers", allowed)
    assert code == 0, err
    code, result, err = readiness(cli, drill, "--max-quorum-age", "30d")
    assert code == 0, err
    assert check(result, "quorum-test")["status"] == "pass"
    assert [c["custodian"] for c in result["quorum_test"]["custodians"]] == list(THREE)


def test_a_wrong_quorum_fails_in_the_app_and_leaves_what_the_cli_leaves(drill, cli, tmp_path: Path) -> None:
    out = other_key(cli, tmp_path)
    cards = read_cards({n: out / f"{n}.share.txt" for n in ("xavier", "yusuf")})
    code, _, err = cli("keys", "test-quorum", "--recipient", drill.recipient, "--share-file", out / "xavier.share.txt",
                       "--share-file", out / "yusuf.share.txt")
    assert code == 25, err
    [by_cli] = recoveries("keys test-quorum")
    app = make_app(drill, tmp_path)

    async def scenario() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await open_quorum_test(pilot)
            await enter_share(pilot, "xavier", cards["xavier"])
            await until(pilot, lambda: "Accepted: xavier" in text_of(app, "#verdict"))
            await enter_share(pilot, "yusuf", cards["yusuf"])
            await until(pilot, lambda: on(app, "SecretDialog"))
            await pilot.press("enter")
            await until(pilot, lambda: on(app, "TestQuorumScreen") and "not proven" in text_of(app, "#verdict"), 60)
            assert "not the snapshot's recovery key" in text_of(app, "#verdict")
            await pilot.press("escape")
            await until(pilot, lambda: on(app, "StartScreen"))
            await pilot.press("ctrl+q")
        assert app.internal_errors == []

    run(scenario)
    by_app = next(f for f in recoveries("keys test-quorum") if f != by_cli)
    assert sorted(p.name for p in by_app.iterdir()) == sorted(p.name for p in by_cli.iterdir())
    assert audit_actions(by_app) == audit_actions(by_cli)
    assert "ok = false" in (by_app / "quorum-test.toml").read_text()
    assert latest_quorum_test(_state_dir(), read_recipient(drill.recipient).fingerprint)[0] is None


def test_leaving_a_quorum_test_with_shares_entered_asks_and_ends_the_test(drill, tmp_path: Path) -> None:
    cards = read_cards({"amara": drill.card("amara")})
    app = make_app(drill, tmp_path)

    async def scenario() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await open_quorum_test(pilot)
            await enter_share(pilot, "amara", cards["amara"])
            await until(pilot, lambda: "Accepted: amara" in text_of(app, "#verdict"))
            await pilot.press("escape")
            await until(pilot, lambda: on(app, "ConfirmDialog"))
            assert "amara" in text_of(app, "#confirm-lost")
            await pilot.press("escape")  # keep: the share stays accepted
            await until(pilot, lambda: on(app, "TestQuorumScreen"))
            assert app.screen.session.quorum().entry.receipts[0].custodian == "amara"
            await pilot.press("escape")
            await until(pilot, lambda: on(app, "ConfirmDialog"))
            await pilot.press("y")
            await until(pilot, lambda: on(app, "StartScreen"))
            # a second test: the shares are discarded as in a recovery (asking first), then nothing is lost
            await press_test_the_quorum(pilot)
            await enter_share(pilot, "amara", cards["amara"], paste=True)
            await until(pilot, lambda: "Accepted: amara" in text_of(app, "#verdict"))
            await pilot.press("ctrl+n")
            await until(pilot, lambda: on(app, "ConfirmDialog"))
            await pilot.press("y")
            await until(pilot, lambda: on(app, "TestQuorumScreen") and "Entry restarted" in text_of(app, "#verdict"))
            assert app.screen.session.quorum().entry.receipts == []
            await pilot.press("escape")  # no share, no word: straight back
            await until(pilot, lambda: on(app, "StartScreen"))
            await pilot.press("ctrl+q")
        assert app.internal_errors == []

    run(scenario)
    folders = recoveries("keys test-quorum")
    assert len(folders) == 2 and all(audit_actions(f)[-1] == ("recovery-closed", "aborted") for f in folders)
    assert sum(("quorum-restarted", "ok") in audit_actions(f) for f in folders) == 1
    assert not any((f / "quorum-test.toml").exists() for f in folders)  # no test, no result to believe


@pytest.mark.parametrize("screen", ["CheckCardScreen", "TestQuorumScreen"])
def test_a_custodian_screen_without_a_known_key(screen: str, drill, tmp_path: Path) -> None:
    """Without a recovery.pub configured: the card check checks the card alone; the quorum test asks which key."""
    app = make_app(drill, tmp_path, recipient=None)
    words = read_cards({"emeka": drill.card("emeka")})["emeka"]

    async def scenario() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await open_start(pilot)
            if screen == "CheckCardScreen":
                await pilot.press("m")
                await until(pilot, lambda: on(app, screen) and app.focused.id == "custodian")
                assert app.screen.query_one("#recipient").value == ""
                await pilot.press("enter", *share_keys(words), "enter")
                await until(pilot, lambda: "Well-formed" in text_of(app, "#verdict"), 60)
                assert "Not checked against a recovery key" in text_of(app, "#verdict")
                # the custodian names the key in the path field: the same card now belongs to it
                app.screen.set_focus(app.screen.query_one("#recipient"))
                await pilot.press(*str(drill.recipient), "enter", "enter", *share_keys(words), "enter")
                await until(pilot, lambda: "Belongs to recovery key" in text_of(app, "#verdict"), 60)
            else:
                await pilot.press("t")
                await until(pilot, lambda: on(app, "QuestionDialog"))
                await pilot.press(*str(drill.recipient), "enter")
                await until(pilot, lambda: on(app, screen), 60)
                assert app.screen.session.recipient.path == drill.recipient
            await pilot.press("ctrl+q")
        assert app.internal_errors == []

    run(scenario)


def test_quitting_the_app_during_a_quorum_test_ends_the_test(drill, tmp_path: Path) -> None:
    cards = read_cards({"chen": drill.card("chen")})
    app = make_app(drill, tmp_path)

    async def scenario() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await open_quorum_test(pilot)
            await enter_share(pilot, "chen", cards["chen"], paste=True)
            await until(pilot, lambda: "Accepted: chen" in text_of(app, "#verdict"))
            await pilot.press("ctrl+q")
        assert app.internal_errors == []

    run(scenario)
    [folder] = recoveries("keys test-quorum")
    assert audit_actions(folder)[-1] == ("recovery-closed", "aborted")
    assert "the app was closed before the test" in (folder / "report.md").read_text()


def test_check_my_card_refuses_share_words_typed_as_a_name_and_records_nothing(drill, tmp_path: Path) -> None:
    words = read_cards({"amara": drill.card("amara")})["amara"].split()
    app = make_app(drill, tmp_path)

    async def scenario() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await open_start(pilot)
            await pilot.press("m")
            await until(pilot, lambda: on(app, "CheckCardScreen") and app.focused.id == "custodian")
            await pilot.press(*" ".join(words[:3]), "enter", *share_keys(" ".join(words)), "enter")
            await until(pilot, lambda: on(app, "ErrorDialog"), 60)
            assert "looks like share words" in str(app.screen.query_one("#error-message").content)
            await pilot.press("enter")
            await until(pilot, lambda: on(app, "CheckCardScreen"))
            await pilot.press("ctrl+q")
        assert app.internal_errors == []

    run(scenario)
    assert recoveries("keys check") == []
