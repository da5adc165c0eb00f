"""Text from outside never acts: hostile strings (tests/hostile_strings.py) through every output surface.

Live records, custodian names, runbook texts and file names, operator names and paths are planted with
each hostile string, then every surface that may show them is read back: the command line's text and
``--json``, the recovery and readiness reports (Markdown, TOML), the Prometheus textfile, and the app
through Pilot. None may carry a raw control character, and no markup of any kind may act.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sqlite3
import tomllib
from contextlib import closing
from pathlib import Path

import pytest

from enigm_recover.errors import InputFileError, NotReady
from enigm_recover.paths import display_text
from tests.hostile_strings import HOSTILE, HOSTILE_IDS, NOT_IN_SQLITE, as_file_name, markdown_html, raw_controls

ALL = "".join(text for _, text in HOSTILE)  # every hostile string in one (an operator name, an environment)
SHARES = ("amara", "chen", "emeka")
ACTIVE_HTML = re.compile(r"<(a|img|em|strong|code|h[1-6]|script|b|table|blockquote|ol|ul)[\s>]")


def leaks(**surfaces: str) -> dict[str, list[str]]:
    """The raw control characters each named surface carries (empty when none does)."""
    return {name: found for name, text in surfaces.items() if (found := raw_controls(text))}


def share_args(drill) -> list[str]:
    return [arg for name in SHARES for arg in ("--share-file", str(drill.card(name)))]


def only_recovery(state: Path) -> Path:
    [folder] = (state / "recoveries").iterdir()
    return folder


# -- the escaping layer itself ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", [t for _, t in HOSTILE], ids=HOSTILE_IDS)
def test_each_kind_of_output_escapes_every_hostile_string(text: str) -> None:
    from enigm_recover.inert import for_markdown, for_terminal, for_toml

    shown = for_terminal(text)
    assert raw_controls(shown, allowed="") == []
    assert raw_controls(for_terminal(text, multiline=True)) == []
    assert for_terminal(shown) == shown  # escaping twice shows the same
    markdown = for_markdown(text)
    assert raw_controls(markdown, allowed="") == []
    for line in (f"- {markdown}", f"| cell | {markdown} |\n|---|---|\n| {markdown} | x |", markdown):
        html = markdown_html(line)
        assert not re.search(r"<(a|img|em|strong|code|h[1-6]|script|b)[\s>]", html), (line, html)
    document = for_toml('value = "' + text.replace("\\", "\\\\").replace('"', '\\"').translate(
        {c: f"\\u{c:04x}" for c in [*range(0x20), 0x7F] if c != 0x09}) + '"\n')
    assert raw_controls(document) == []
    value = tomllib.loads(document)["value"]
    assert value == text if "\udcff" not in text else raw_controls(value) == []


def test_a_visible_escape_names_the_character() -> None:
    from enigm_recover.inert import for_markdown, for_terminal

    assert for_terminal("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert for_terminal("x\u202ey") == "x\\u202ey"
    assert for_terminal(b"\xff".decode("utf-8", "surrogateescape")) == "\\xff"
    assert for_terminal("one\ntwo") == "one\\x0atwo"
    assert for_terminal("one\ntwo\tthree", multiline=True) == "one\ntwo\tthree"
    assert for_terminal("café — naïve 日本") == "café — naïve 日本"  # printable text is left alone
    assert for_markdown("2026-12-01 lunar-academic-47 /tmp/test_x0") == "2026-12-01 lunar-academic-47 /tmp/test_x0"


# -- the command line and the recovery report ---------------------------------------------------------


def plant_live_rows(target: str) -> dict[str, str]:
    """A live role and a live setting for each hostile string (what an attacker with the store could write),
    on either store; returns {id: the role's operator}."""
    rows = [(name, number, text) for number, (name, text) in enumerate(HOSTILE)
            if name not in NOT_IN_SQLITE and not (target.startswith("postgresql") and "\x00" in text)]
    roles = [(text, f"role{number}", text, "2026-11-27T11:00:00Z") for _, number, text in rows]
    settings = [(f"{text}{number}", text, "2026-11-27T11:00:00Z") for _, number, text in rows]
    if target.startswith("postgresql"):  # PostgreSQL text holds no NUL: those strings reach it only on SQLite
        import psycopg

        with psycopg.connect(target) as conn:
            conn.cursor().executemany("INSERT INTO roles VALUES (%s, %s, %s, %s)", roles)
            conn.cursor().executemany("INSERT INTO settings VALUES (%s, %s, %s)", settings)
    else:
        with closing(sqlite3.connect(target.removeprefix("sqlite:///"))) as db, db:
            db.executemany("INSERT INTO roles VALUES (?, ?, ?, ?)", roles)
            db.executemany("INSERT INTO settings VALUES (?, ?, ?)", settings)
    return {name: text for name, _, text in rows}


def test_hostile_live_rows_and_operator_are_inert_in_diff_text_json_and_report(drill, live_target, cli) -> None:
    planted = plant_live_rows(live_target)
    base = ["diff", drill.snapshots, "latest", "--target", live_target, "--allowed-signers", drill.allowed_signers,
            *share_args(drill), "--operator", ALL, "--limit", "1000"]
    code, out, err = cli(*base)
    assert code == 0, err
    assert leaks(stdout=out, stderr=err) == {}
    assert "[link=https://evil.example]click[/link]" in out and "\\x1b[2J" in out and "\\u202e" in out
    state = Path(os.environ["ENIGM_RECOVER_STATE_DIR"])
    folder = only_recovery(state)
    markdown = (folder / "report.md").read_text(encoding="utf-8")
    toml_text = (folder / "report.toml").read_text(encoding="utf-8")
    assert leaks(report_md=markdown, report_toml=toml_text) == {}
    assert not ACTIVE_HTML.search(markdown_html(markdown).replace("<ul>", "").replace("<code>", "")
                                  .replace("<strong>", "").replace("<h1>", "").replace("<h2>", "")), markdown
    report = tomllib.loads(toml_text)  # escaped in the file, the same value for a program that reads it
    assert report["operator"] == ALL.replace("\udcff", "\\xff").replace("\udcfe", "\\xfe")

    shutil.rmtree(folder)
    code, out, err = cli(*base, "--json")
    assert code == 0, err
    assert leaks(stdout=out, stderr=err) == {}
    result = json.loads(out)  # strict: no raw control character inside a string
    keys = {tuple(c["key"]) for c in result["changes"] if c["kind"] == "role"}
    for number, (name, text) in enumerate(HOSTILE):
        if name in planted:
            assert (text, f"role{number}") in keys, name  # the data itself, exactly, for a program to read


def test_a_card_whose_custodian_line_is_hostile_is_refused(drill, cli, tmp_path: Path) -> None:
    from enigm_recover.quorum.cards import read_share_file
    from enigm_recover.quorum.names import custodian_name_problem

    for name, text in HOSTILE:
        card = drill.card("amara").read_text().replace("custodian: amara", f"custodian: {text}")
        path = tmp_path / f"{name}.share.txt"
        path.write_text(card, encoding="utf-8", errors="surrogateescape")
        if custodian_name_problem(text.splitlines()[0]) is None:  # a line break ends the name: the rest is no name
            assert read_share_file(path).custodian == text.splitlines()[0], name
            continue
        with pytest.raises(InputFileError, match="custodian name|not UTF-8|cannot be read"):
            read_share_file(path)
    path = tmp_path / "osc-title.share.txt"
    code, out, err = cli("diff", drill.snapshots, "latest", "--target", drill.target, "--allowed-signers",
                         drill.allowed_signers, "--share-file", path, "--share-file", drill.card("chen"),
                         "--share-file", drill.card("emeka"))
    assert code == InputFileError.exit_code, err
    assert "custodian name" in err and "\\x1b]0;pwned\\x07" in err and leaks(stderr=err, stdout=out) == {}


def test_a_name_given_with_a_share_meets_the_rule_of_keys_init() -> None:
    from enigm_recover.errors import CustodianNameInvalid
    from enigm_recover.quorum.entry import ShareEntry
    from enigm_recover.quorum.names import custodian_name_problem

    for name, text in HOSTILE:
        assert custodian_name_problem(text), name
        with pytest.raises(CustodianNameInvalid):
            ShareEntry().add("any words", text)
    assert custodian_name_problem("ops.amara-2") is None
    with pytest.raises(CustodianNameInvalid):
        ShareEntry().add("any words", "Amara Okafor")  # the card file is named after it: no spaces


def test_a_name_typed_at_the_prompt_is_asked_again_until_it_meets_the_rule(drill, cli, monkeypatch) -> None:
    import builtins
    import getpass
    import io

    from enigm_recover.quorum.cards import read_share_file

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    names = iter(["\x1b]0;pwned\x07[b]amara[/b]", "amara", "chen", "emeka"])
    words = iter(read_share_file(drill.card(name)).words for name in SHARES)
    monkeypatch.setattr("sys.stdin", Terminal())
    def answer(prompt: str = "", stream: object = None) -> str:  # every prompt is read hidden
        if prompt.startswith("Custodian"):
            return next(names)
        return "" if prompt.startswith("Type the ceremony id") else next(words)

    monkeypatch.setattr(builtins, "input", answer)
    monkeypatch.setattr(getpass, "getpass", answer)
    code, out, err = cli("diff", drill.snapshots, "latest", "--target", drill.target, "--allowed-signers",
                         drill.allowed_signers)
    assert code == 0, err
    assert "custodian name '\\x1b]0;pwned\\x07[b]amara[/b]'" in err and leaks(stdout=out, stderr=err) == {}
    report = tomllib.loads((only_recovery(Path(os.environ["ENIGM_RECOVER_STATE_DIR"])) / "report.toml").read_text())
    assert [p["custodian"] for p in report["participants"]] == list(SHARES)


def test_the_error_printer_escapes_what_an_error_quotes(drill, cli, tmp_path: Path) -> None:
    folder = tmp_path / as_file_name("\x1b]0;pwned\x07[b]x[/b]\u202e")
    code, out, err = cli("snapshots", "list", folder / "missing")
    assert code != 0 and "\\x1b]0;pwned\\x07" in err and "\\u202e" in err
    assert leaks(stdout=out, stderr=err) == {}


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string, every non-printable character as a \\u escape."""
    return '"' + "".join(c if c.isprintable() and c not in '"\\' else "\\" + c if c in '"\\'
                         else f"\\u{ord(c):04x}" for c in text) + '"'


def test_hostile_runbook_texts_and_file_names_are_inert(cli, tmp_path: Path) -> None:
    folder = tmp_path / "runbooks"
    folder.mkdir()
    for name, text in HOSTILE:
        (folder / f"{as_file_name(text)}.toml").write_bytes(os.fsencode(text) + b" = [\n")
    texts = [text for name, text in HOSTILE if name not in NOT_IN_SQLITE]  # a runbook is UTF-8 text
    title = toml_string("".join(texts)[:200])
    (folder / "hostile.toml").write_text(
        f'name = "hostile"\ntitle = {title}\npurpose = {toml_string(" ".join(texts))}\n'
        f'[[steps]]\nid = "brief"\naction = "checkpoint"\ntitle = {title}\n'
        f'guidance = {toml_string(" ".join(texts))}\nprompts = [{", ".join(toml_string(t) for t in texts)}]\n')
    code, out, err = cli("runbooks", "list", "--runbooks", folder)
    assert "hostile" in out
    assert leaks(stdout=out, stderr=err) == {}
    assert err.count("invalid runbook") >= len(HOSTILE)
    code, out, err = cli("runbooks", "show", "hostile", "--runbooks", folder)
    assert code == 0, err
    assert "[link=https://evil.example]click[/link]" in out and leaks(stdout=out, stderr=err) == {}


def test_the_recovery_report_in_markdown_is_inert() -> None:
    from enigm_recover.recovery.session import render_markdown

    report = {
        "ceremony": "lunar-academic-47", "command": ALL, "operator": ALL, "started": ALL, "finished": ALL,
        "status": "aborted", "reason": ALL, "operators": [ALL, "dana"],
        "snapshot": {"snapshot": ALL, "environment": ALL, "producer": ALL, "created_at": ALL, "source": ALL,
                     "payload_sha256": ALL, "recipient_fingerprint": ALL, "counts": {ALL: 3}},
        "participants": [{"custodian": ALL, "set_id": 1, "group": 1, "member_index": 1}],
        "steps": [{"step": ALL, "title": ALL, "outcome": ALL, "action": ALL, "counts": {ALL: 1}, "time": ALL,
                   "started": ALL, "seconds": 0, "detail": ALL}],
        "findings": {ALL: 1},
        "audit": {"log": ALL, "entries": 3, "head": ALL, "signed": True, "signer": ALL},
    }
    markdown = render_markdown(report)
    assert leaks(markdown=markdown) == {}
    html = markdown_html(markdown)
    assert "evil.example" in html and not re.search(r"<(a|img|script|b|em)[\s>]", html), html


# -- readiness: Markdown, TOML, Prometheus, text and JSON -------------------------------------------------


def test_readiness_of_a_hostile_source_and_environment_is_inert(drill, cli, tmp_path: Path) -> None:
    source = tmp_path / "sources"
    for _, text in HOSTILE:
        source = source / as_file_name(text)
    shutil.copytree(drill.snapshots, source)
    prom = tmp_path / "readiness.prom"
    args = ["readiness", source, "--allowed-signers", drill.allowed_signers, "--recipient", drill.recipient,
            "--environment", ALL, "--operator", ALL, "--prometheus", prom]
    code, out, err = cli(*args)
    assert code == NotReady.exit_code, err  # no snapshot of that environment: not ready
    assert leaks(stdout=out, stderr=err) == {}
    folder = only_recovery(Path(os.environ["ENIGM_RECOVER_STATE_DIR"]))
    markdown = (folder / "readiness.md").read_text(encoding="utf-8")
    toml_text = (folder / "readiness.toml").read_text(encoding="utf-8")
    textfile = prom.read_text(encoding="utf-8")
    assert leaks(readiness_md=markdown, readiness_toml=toml_text, prometheus=textfile,
                 report_md=(folder / "report.md").read_text(encoding="utf-8")) == {}
    tomllib.loads(toml_text)
    html = markdown_html(markdown)
    assert not re.search(r"<(a|img|script|b)[\s>]", html), html  # (the checks' descriptions are in italics)
    for line in textfile.splitlines():  # each sample: name{label="value",...} number, on one line
        assert line.startswith("#") or re.fullmatch(r'[a-z_]+\{(?:[a-z_]+="(?:[^"\\]|\\.)*",?)+\} [0-9.e+-]+', line), line

    shutil.rmtree(folder)
    code, out, err = cli(*args, "--json")
    assert leaks(stdout=out, stderr=err) == {}
    result = json.loads(out)
    assert result["policy"]["environment"] == display_text(ALL)  # strict JSON: no lone surrogate, its byte shown


# -- the app, through Pilot ---------------------------------------------------------------------------


def app_for(drill, tmp_path: Path, **overrides):
    from enigm_recover.app.app import RecoverApp
    from enigm_recover.app.options import AppOptions
    from tests.conftest import DRILL_AT

    options = AppOptions(source=str(drill.snapshots), target=drill.target, allowed_signers=drill.allowed_signers,
                         state_dir=tmp_path / "state", cache_dir=tmp_path / "cache", operator="dana",
                         runbook="tabletop-drill", recipient_fingerprint=drill.doc["recovery"]["fingerprint"],
                         now=lambda: DRILL_AT, still=True, **overrides)
    return RecoverApp(options)


def screen_text(app) -> str:
    """What the screen shows, as text (the SVG screenshot's text runs, entities decoded)."""
    import html

    svg = app.export_screenshot()
    runs = re.findall(r"<text[^>]*>(.*?)</text>", svg, re.S)
    return html.unescape("".join(runs)).replace("\xa0", " ")


def test_a_hostile_live_key_shows_literally_on_the_dry_run_screen(drill, tmp_path: Path) -> None:
    from enigm_recover.app.changes import KEY_WIDTH, middle
    from enigm_recover.app.tour import on, read_cards, walk

    db = sqlite3.connect(drill.target.removeprefix("sqlite:///"))
    db.execute("INSERT INTO roles VALUES (?, ?, ?, ?)", ("[link=https://evil.example]click[/link][/b]", "[b]x[/b]",
                                                        "\x1b]0;pwned\x07", "2026-11-27T11:00:00Z"))
    db.execute("INSERT INTO settings VALUES (?, ?, ?)", ("[reverse]z[/]\x1b[2J", '"\u202eq"', "2026-11-27T11:00:00Z"))
    db.commit()
    db.close()
    cards = read_cards({name: drill.card(name) for name in SHARES})
    app = app_for(drill, tmp_path)

    async def scenario() -> None:
        async with app.run_test(size=(200, 60)) as pilot:
            await walk(pilot, cards, stop="dry-run", paste=True)
            assert on(app, "DryRunScreen", state="done") and app.internal_errors == []
            table = app.screen.query_one("#changes")
            for row in range(table.row_count):  # the hostile rows on screen, each highlighted in turn
                table.move_cursor(row=row)
                await pilot.pause()
                shown = screen_text(app)
                assert "\x1b" not in shown and "\u202e" not in shown
            rows = [" ".join(str(c) for c in table.get_row_at(i)) for i in range(table.row_count)]
            # long keys are shortened in the middle in the list (literally), and shown whole below it
            assert any(middle("[link=https://evil.example]click[/link][/b] / [b]x[/b]", KEY_WIDTH) in r
                       for r in rows), rows
            assert any("[reverse]z[/]\\x1b[2J" in r for r in rows), rows
            for row in range(table.row_count):
                for cell in table.get_row_at(row):
                    assert not getattr(cell, "spans", None) or "[" not in str(cell)  # no style from markup
            table.move_cursor(row=next(i for i, r in enumerate(rows) if "[link=" in r))
            await pilot.pause()
            shown = screen_text(app)
            assert "[link=https://evil.example]click[/link][/b]" in shown
            assert app.internal_errors == []

    asyncio.run(asyncio.wait_for(scenario(), timeout=240))


def test_an_invalid_runbook_with_markup_in_its_name_and_message_shows_on_the_start_screen(drill, tmp_path) -> None:
    from enigm_recover.app.tour import on, until

    folder = tmp_path / "runbooks["  # the path then holds "[/b]...": a closing tag that matches no open one
    folder.mkdir()
    (folder / "b]bad[reverse]x\x1b]0;t\x07.toml").write_text("[link=https://evil.example]x[/link] = [\n")
    app = app_for(drill, tmp_path, runbook_folders=[folder])

    async def scenario() -> None:
        async with app.run_test(size=(160, 50), notifications=True) as pilot:
            await until(pilot, lambda: on(app, "StartScreen") and app.screen.runbooks is not None)
            await until(pilot, lambda: any("invalid runbook" in text for text, _ in app.messages))
            await pilot.pause()
            assert app.internal_errors == []
            line = app.screen.query_one("#status-line")
            shown = str(line.render())  # what the screen's status line shows, as text
            assert "runbooks[/b]bad[reverse]x\\x1b]0;t\\x07.toml" in shown and "\x1b" not in shown
            assert not line.content.spans or all("link" not in str(span.style) for span in line.content.spans)
            assert app.internal_errors == []

    asyncio.run(asyncio.wait_for(scenario(), timeout=120))


def test_a_custodian_name_with_markup_is_rejected_and_shown_literally(drill, tmp_path: Path) -> None:
    from enigm_recover.app.tour import enter_share, read_cards, until, walk

    cards = read_cards({name: drill.card(name) for name in SHARES})
    app = app_for(drill, tmp_path)

    async def scenario() -> None:
        async with app.run_test(size=(160, 50)) as pilot:
            await walk(pilot, cards, stop="verify")
            await pilot.press("enter")
            await enter_share(pilot, "[b]x[/b][/]", cards["amara"], paste=True)
            # the name is checked before the share: refused, shown literally, the share's words kept (masked)
            await until(pilot, lambda: "Name:" in str(app.screen.query_one("#verdict").render()))
            verdict = str(app.screen.query_one("#verdict").render())
            assert "custodian name '[b]x[/b][/]'" in verdict, verdict
            assert app.screen.query_one("#share").value == cards["amara"]
            assert app.executor.quorum().entry.receipts == [] and app.internal_errors == []

    asyncio.run(asyncio.wait_for(scenario(), timeout=240))
