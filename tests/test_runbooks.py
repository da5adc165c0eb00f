"""Runbooks: strict loading, the executor's state machine, the ceremony and the two-person rule."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from enigm_recover.errors import CeremonyMismatch, RunbookInvalid, RunStateError, StepNotConfirmed
from enigm_recover.quorum.cards import read_share_file
from enigm_recover.progress import Stage
from enigm_recover.recovery.audit import NAMESPACE, verify_log
from enigm_recover.recovery.session import load_report
from enigm_recover.runbook.executor import Confirmation, RunbookExecutor, RunSettings
from enigm_recover.runbook.loader import BUILTIN_DIR, load_runbook
from enigm_recover.runbook.model import Action, StepStatus
from tests.conftest import DRILL_AT, Drill
from tests.helpers import dump

CARDS = ("amara", "chen", "emeka")
SCRIPT = Path(sys.executable).parent / "enigm-recover"


def share_args(drill: Drill) -> list:
    return sum((["--share-file", drill.card(n)] for n in CARDS), [])


def run_args(drill: Drill, runbook: str = "tabletop-drill") -> list:
    return ["run", runbook, "--source", drill.snapshots, "--target", drill.target, "--allowed-signers",
            drill.allowed_signers, *share_args(drill), "--operator", "dana"]


def live_state(drill: Drill) -> dict[str, list[tuple]]:
    return dump(drill.target)


def diff_json(cli, drill: Drill) -> dict:
    code, out, err = cli("diff", drill.snapshots, "latest", "--target", drill.target, "--allowed-signers",
                         drill.allowed_signers, *share_args(drill), "--json")
    assert code == 0, err
    return json.loads(out)


# -- loading ------------------------------------------------------------------------------------------


def test_the_shipped_runbooks_load_and_are_listed(cli) -> None:
    code, out, err = cli("runbooks", "list", "--json")
    assert code == 0, err
    listed = {r["name"]: r for r in json.loads(out)["runbooks"]}
    assert {"identity-and-devices", "device-lifecycle", "tabletop-drill"} <= set(listed)
    code, out, _ = cli("runbooks", "show", "device-lifecycle", "--json")
    shown = json.loads(out)
    assert code == 0 and {s["action"] for s in shown["steps"]} >= {"select-snapshot", "restore", "sign-off"}
    restore = next(s for s in shown["steps"] if s["action"] == "restore")
    assert restore["kinds"] == ["device"] and restore["two_person"]
    main = load_runbook(BUILTIN_DIR / "identity-and-devices.toml")
    assert [s.action for s in main.steps][-1] is Action.SIGN_OFF
    assert all(s.two_person for s in main.steps if s.action is Action.RESTORE)
    assert load_runbook(BUILTIN_DIR / "tabletop-drill.toml").steps[0].prompts


GOOD = """name = "tiny"
title = "A tiny runbook"
purpose = "For tests."

[[steps]]
id = "select"
title = "Select"
action = "select-snapshot"
guidance = "Pick one."

[[steps]]
id = "verify"
title = "Verify"
action = "verify-snapshot"
guidance = \"\"\"
Check it.
id = "not-a-key"
\"\"\"

[[steps]]
id = "quorum"
title = "Quorum"
action = "gather-quorum"
guidance = "Shares."

[[steps]]
id = "dry-run"
title = "Dry run"
action = "dry-run"
kinds = ["device"]
guidance = "Look."

[[steps]]
id = "restore"
title = "Restore"
action = "restore"
kinds = ["device"]
policy = ["overwrite-changed"]
guidance = "Write."

[[steps]]
id = "done"
title = "Done"
action = "sign-off"
guidance = "Sign."
"""

MISTAKES = [
    # (replace this, with this, the line named, the step named, words in the message)
    ('action = "dry-run"', 'action = "dryrun"', 29, "dry-run", "is not one of"),
    ('kinds = ["device"]\nguidance = "Look."', 'kinds = ["devices", "phones"]\nguidance = "Look."', 30,
     "dry-run", "unknown kind 'phones'"),
    ('policy = ["overwrite-changed"]', 'policy = ["overwrite-all"]', 38, "restore", "unknown policy"),
    ('guidance = "Shares."', 'guidance = "Shares."\ncolour = "red"', 25, "quorum", "unknown key 'colour'"),
    ('id = "quorum"\ntitle = "Quorum"\n', 'id = "quorum"\n', 20, "quorum", "title is missing"),
    ('id = "done"', 'id = "select"', 41, "select", "id is used twice (first on line 5)"),
    ('kinds = ["device"]\nguidance = "Look."', 'kinds = ["role"]\nguidance = "Look."', 33, "restore",
     "restores device without a dry-run of them"),
    ('action = "gather-quorum"', 'action = "checkpoint"', 26, "dry-run", "needs a gather-quorum step before"),
    ('action = "sign-off"', 'action = "sign-off"\ntwo_person = "yes"', 45, "done", "two_person must be true"),
    ('guidance = "Pick one."', 'guidance = "Pick one."\nkinds = ["role"]', 10, "select", "kinds applies only"),
    ('name = "tiny"', 'name = "other"', 1, None, "must match the file name"),
]


@pytest.mark.parametrize("old,new,line,step,words", MISTAKES, ids=[m[4] for m in MISTAKES])
def test_a_runbook_mistake_is_named_with_file_line_and_step(tmp_path: Path, cli, old: str, new: str, line: int,
                                                           step: str | None, words: str) -> None:
    path = tmp_path / "tiny.toml"
    path.write_text(GOOD)
    assert load_runbook(path).steps[-1].id == "done"
    assert GOOD.count(old) == 1
    path.write_text(GOOD.replace(old, new))
    with pytest.raises(RunbookInvalid) as caught:
        load_runbook(path)
    message = caught.value.message
    assert message.startswith(f"{path}:{line}: "), message
    assert (f"step {step!r}" in message) if step else "step" not in message.split(": ", 2)[1]
    assert words in message
    code, _, err = cli("runbooks", "check", path)
    assert code == 8 and f"{path}:{line}" in err


def test_broken_toml_and_a_sign_off_in_the_middle_are_named(tmp_path: Path) -> None:
    path = tmp_path / "tiny.toml"
    path.write_text(GOOD.replace('title = "Verify"', 'title = "Verify'))
    with pytest.raises(RunbookInvalid, match=r"not valid TOML: .*line 13"):
        load_runbook(path)
    order = GOOD.replace('action = "gather-quorum"', 'action = "sign-off"')
    path.write_text(order)
    with pytest.raises(RunbookInvalid, match=rf"{path}:20: step 'quorum': sign-off must be the last step"):
        load_runbook(path)


# -- the executor -----------------------------------------------------------------------------------------


def settings_for(drill: Drill, state: Path, operator: str = "dana") -> RunSettings:
    return RunSettings(str(drill.snapshots), drill.target, drill.allowed_signers, state, state.parent / "cache",
                       operator)


def enter_cards(ex: RunbookExecutor, drill: Drill, names=CARDS) -> None:
    quorum = ex.quorum()
    for name in names:
        card = read_share_file(drill.card(name))
        quorum.add(card.words, card.custodian)
    ex.combine()


def walk_until(ex: RunbookExecutor, drill: Drill, stop_before: str | None) -> None:
    while ex.current is not None and ex.current.id != stop_before:
        if ex.current.action is Action.GATHER_QUORUM or ex.needs_quorum:
            enter_cards(ex, drill)
        ex.run_current(Confirmation("dana", "lee", note="done"))


def test_quit_and_resume_continue_at_the_same_step_and_ask_for_the_key_again(drill: Drill, tmp_path: Path) -> None:
    runbook = load_runbook(BUILTIN_DIR / "tabletop-drill.toml")
    ex = RunbookExecutor.start(runbook, settings_for(drill, tmp_path / "state"))
    walk_until(ex, drill, "restore")
    assert ex.results[-1].step == "dry-run" and ex.dry_run is not None
    folder = ex.pause("lunch")
    assert load_report(folder)["status"] == "paused" and "paused at step restore" in load_report(folder)["reason"]
    assert verify_log(folder / "audit.jsonl").intact

    again = RunbookExecutor.resume(runbook, settings_for(drill, tmp_path / "state", "lee"))
    assert again.ceremony == ex.ceremony and again.current.id == "restore"
    assert again.needs_quorum  # the key never left the first process's memory
    with pytest.raises(Exception, match="not combined"):
        again.run_current(Confirmation("lee", "dana"))
    enter_cards(again, drill)
    walk_until(again, drill, None)
    assert again.status == "completed"
    report = load_report(folder)
    assert report["status"] == "completed" and report["ceremony"] == ex.ceremony
    steps = [s["step"] for s in report["steps"]]
    assert steps == [s.id for s in runbook.steps]
    assert {"dana", "lee"} <= set(report["operators"])
    assert len(report["participants"]) == 6  # three shares before the pause, three after
    verdict = verify_log(folder / "audit.jsonl")
    assert verdict.intact, verdict.problem
    actions = [json.loads(line)["action"] for line in (folder / "audit.jsonl").read_text().splitlines()]
    assert "recovery-paused" in actions and "recovery-resumed" in actions and "snapshot-reverified" in actions


def test_resume_refuses_a_changed_runbook_and_a_missing_run(drill: Drill, tmp_path: Path, cli) -> None:
    book = tmp_path / "books" / "tabletop-drill.toml"
    book.parent.mkdir()
    shutil.copy(BUILTIN_DIR / "tabletop-drill.toml", book)
    ex = RunbookExecutor.start(load_runbook(book), settings_for(drill, tmp_path / "state"))
    walk_until(ex, drill, "verify")
    ex.pause()
    book.write_text(book.read_text().replace("The newest snapshot is proposed.", "Take the oldest."))
    with pytest.raises(RunStateError, match="changed since run"):
        RunbookExecutor.resume(load_runbook(book), settings_for(drill, tmp_path / "state"))
    code, _, err = cli("--state-dir", tmp_path / "empty", "run", "device-lifecycle", "--resume")
    assert code == 9 and "no paused or interrupted runbook device-lifecycle" in err


def test_a_custodian_binds_a_share_by_typing_the_ceremony_back(drill: Drill, tmp_path: Path) -> None:
    ex = RunbookExecutor.start(load_runbook(BUILTIN_DIR / "tabletop-drill.toml"), settings_for(drill, tmp_path))
    walk_until(ex, drill, "quorum")
    quorum = ex.quorum()
    amara, chen = read_share_file(drill.card("amara")), read_share_file(drill.card("chen"))
    with pytest.raises(CeremonyMismatch) as wrong:
        quorum.add(amara.words, "amara", "other-ceremony-12")
    assert wrong.value.exit_code == 26 and not quorum.entry.receipts  # not counted
    quorum.add(amara.words, "amara", ex.ceremony.upper().replace("-", " "))
    quorum.add(chen.words, "chen")
    entries = [json.loads(line) for line in (ex.folder / "audit.jsonl").read_text().splitlines()]
    accepted = [e["inputs"] for e in entries if e["action"] == "share-accepted"]
    assert [(a["custodian"], a["bound_to_ceremony"]) for a in accepted] == [("amara", True), ("chen", False)]
    assert any(e["action"] == "ceremony-mismatch" for e in entries)
    assert any(e["action"] == "share-rejected" for e in entries)


# -- the headless walk ----------------------------------------------------------------------------------------


def test_a_scripted_drill_restores_the_target_and_leaves_evidence(drill: Drill, cli, tmp_path: Path) -> None:
    before = diff_json(cli, drill)
    assert before["kinds"]["role"]["extra"] >= 1 and before["kinds"]["device"]["missing"] >= 1
    code, out, err = cli("--state-dir", tmp_path / "state", *run_args(drill), "--yes", "--second-operator", "lee",
                         "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "completed" and result["next_step"] is None
    restores = [s for s in result["steps"] if s["action"] == "restore"]
    assert all(s["status"] == "verified" and s["confirmed_by"] == ["dana", "lee"] for s in restores)
    after = diff_json(cli, drill)["kinds"]
    assert after["role"]["extra"] == 0 and after["role"]["changed"] == 0  # the attacker's role is gone
    assert after["identity"]["missing"] == 0 and after["setting"]["changed"] == 0
    assert after["device"]["missing"] < before["kinds"]["device"]["missing"] or after["device"]["missing"] == 0
    folder = Path(result["report"]).parent
    assert cli("audit", "verify", folder / "audit.jsonl")[0] == 0
    report = load_report(folder)
    assert report["status"] == "completed" and report["snapshot"]["snapshot"] == drill.latest
    assert {p["custodian"] for p in report["participants"]} == set(CARDS)


def test_the_two_person_rule_pauses_the_run_until_a_second_operator_confirms(drill: Drill, cli,
                                                                             tmp_path: Path) -> None:
    state = tmp_path / "state"
    code, _, err = cli("--state-dir", state, *run_args(drill), "--yes")
    assert code == 27 and "needs a second operator, other than dana" in err and "--resume" in err
    untouched = live_state(drill)
    code, _, err = cli("--state-dir", state, "run", "tabletop-drill", "--resume", *share_args(drill), "--yes",
                       "--operator", "dana", "--second-operator", "DANA")
    assert code == 27  # the same person twice is not two people
    assert live_state(drill) == untouched
    code, out, err = cli("--state-dir", state, "run", "tabletop-drill", "--resume", *share_args(drill), "--yes",
                         "--operator", "dana", "--second-operator", "lee", "--json")
    assert code == 0, err
    folder = Path(json.loads(out)["report"]).parent
    entries = [json.loads(line) for line in (folder / "audit.jsonl").read_text().splitlines()]
    assert sum(e["action"] == "two-person-rule-unmet" for e in entries) == 2
    assert live_state(drill) != untouched


def test_a_skipped_restore_is_reported_partially_completed_and_an_abort_says_where(drill: Drill, tmp_path: Path,
                                                                                cli) -> None:
    runbook = load_runbook(BUILTIN_DIR / "tabletop-drill.toml")
    ex = RunbookExecutor.start(runbook, settings_for(drill, tmp_path / "a"))
    walk_until(ex, drill, "restore-roles")
    ex.skip_current("dana", "roles are handled by the identity team")
    walk_until(ex, drill, None)
    report = load_report(ex.folder)
    assert report["status"] == "partially completed" and "restore-roles" in report["reason"]
    assert "**skipped**" in (ex.folder / "report.md").read_text()

    other = RunbookExecutor.start(runbook, settings_for(drill, tmp_path / "b"))
    walk_until(other, drill, "dry-run")
    other.pause()
    code, out, _ = cli("--state-dir", tmp_path / "b", "run", "tabletop-drill", "--abort", "wrong snapshot chosen")
    assert code == 0
    report = load_report(other.folder)
    assert report["status"] == "aborted" and report["reason"] == "aborted at step dry-run: wrong snapshot chosen"
    with pytest.raises(StepNotConfirmed):
        RunbookExecutor.start(runbook, settings_for(drill, tmp_path / "c")).run_current(None)


def test_the_audit_head_is_signed_by_the_operators_ssh_agent(drill: Drill, cli, tmp_path: Path) -> None:
    """A real ssh-agent holds the key; ssh-keygen -Y verify checks the head's signature."""
    if not shutil.which("ssh-agent") or not shutil.which("ssh-keygen"):
        pytest.fail("ssh-agent and ssh-keygen are needed: run scripts/ensure-tools")
    key = tmp_path / "operator"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dana", "-f", key], check=True)
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", sock], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        subprocess.run(["ssh-add", "-q", key], env=env, check=True, capture_output=True)
        os.environ["SSH_AUTH_SOCK"] = str(sock)
        try:
            code, out, err = cli("--state-dir", tmp_path / "state", *run_args(drill), "--yes", "--second-operator",
                                 "lee", "--json", "--audit-key", f"{key}.pub")
        finally:
            del os.environ["SSH_AUTH_SOCK"]
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait()
    assert code == 0, err
    log = Path(json.loads(out)["audit_log"])
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f'dana namespaces="{NAMESPACE}" {Path(f"{key}.pub").read_text().strip()}\n')
    assert cli("audit", "verify", log, "--allowed-signers", allowed)[0] == 0
    head, sig = Path(f"{log}.head"), Path(f"{log}.head.sig")
    checked = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", allowed, "-I", "dana", "-n", NAMESPACE,
                              "-s", sig], stdin=head.open("rb"), capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert load_report(log.parent)["audit"]["signed"]


# -- a crash in the middle of a runbook's restore ---------------------------------------------------------------


def test_sigkill_during_a_runbook_restore_then_resume_finishes_it(tmp_path: Path, cli) -> None:
    from enigm_recover.drill.scenario import DrillSpec, make_drill

    root = tmp_path / "drill"
    drill = Drill(root, make_drill(root, DrillSpec(identities=400, devices_per_identity=3, seed=5, snapshots=1,
                                                    at=DRILL_AT)))
    reference_root = tmp_path / "reference"
    shutil.copytree(root, reference_root)
    reference = Drill(reference_root, {**drill.doc, "paths": {**drill.doc["paths"],
                      "target": drill.target.replace(str(root), str(reference_root))}})
    state = tmp_path / "state"
    argv = [str(SCRIPT), "--state-dir", str(state), *map(str, run_args(drill)), "--yes", "--second-operator",
            "lee", "--batch-size", "1"]
    target = Path(drill.target.removeprefix("sqlite:///"))
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while process.poll() is None:  # aimed by the journal's progress, not by the clock
        try:
            with closing(sqlite3.connect(target)) as conn:
                done = conn.execute("SELECT count(*) FROM enigm_restore_batches WHERE step = 'devices'").fetchone()[0]
        except sqlite3.Error:
            done = 0
        if done >= 3:
            break
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, "the run ended before the kill: the drill is too small"
    code, out, err = cli("--state-dir", state, "run", "tabletop-drill", "--resume", *share_args(drill), "--yes",
                         "--operator", "dana", "--second-operator", "lee", "--json")
    assert code == 0, err
    result = json.loads(out)
    restore = next(s for s in result["steps"] if s["step"] == "restore")
    assert restore["status"] == "verified"
    assert cli("--state-dir", tmp_path / "state-ref", *run_args(reference), "--yes", "--second-operator", "lee")[0] == 0
    assert live_state(drill) == live_state(reference)


# -- on a terminal ------------------------------------------------------------------------------------------------


class Terminal:
    """A command on a pseudo-terminal of its own (its controlling tty, so hidden prompts work as for a person)."""

    def __init__(self, argv: list[str]) -> None:
        import fcntl
        import pty
        import termios

        self.master, slave = pty.openpty()

        def controlling_tty() -> None:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, preexec_fn=controlling_tty,
                                        env={**os.environ, "COLUMNS": "120"})
        os.close(slave)
        self.seen = ""  # output not yet matched
        self.transcript = ""  # everything the terminal showed

    def expect(self, text: str, timeout: float = 60) -> str:
        import selectors

        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as waiting:  # poll/epoll: any descriptor number, unlike select()
            waiting.register(self.master, selectors.EVENT_READ)
            while text not in self.seen:
                if not waiting.select(max(0.0, deadline - time.monotonic())):
                    raise AssertionError(f"{text!r} did not appear; the terminal shows:\n{self.seen[-2000:]}")
                try:
                    chunk = os.read(self.master, 65536).decode(errors="replace")
                except OSError:
                    chunk = ""
                if not chunk:
                    raise AssertionError(f"the program ended before {text!r}:\n{self.seen[-2000:]}")
                self.seen += chunk
                self.transcript += chunk
        shown, self.seen = self.seen, self.seen[self.seen.index(text) + len(text):]
        return shown

    def answer(self, prompt: str, reply: str) -> str:
        shown = self.expect(prompt)
        os.write(self.master, reply.encode() + b"\r")
        return shown

    def finish(self) -> int:
        try:
            while os.read(self.master, 65536):
                pass
        except OSError:
            pass
        finally:
            os.close(self.master)
        return self.process.wait(timeout=60)


def test_an_operator_walks_a_runbook_on_the_terminal_quits_and_resumes(drill: Drill, tmp_path: Path, cli) -> None:
    words = {n: read_share_file(drill.card(n)).words for n in CARDS}
    state = tmp_path / "state"
    term = Terminal([str(SCRIPT), "--state-dir", str(state), "run", "device-lifecycle", "--source",
                     str(drill.snapshots), "--target", drill.target, "--allowed-signers", str(drill.allowed_signers),
                     "--operator", "dana"])
    shown = term.answer("dana, confirm step declare? [y]es / [s]kip / [q]uit: ", "y")
    assert "[1/8] declare" in shown
    term.answer("Note for the record (Enter for none): ", "only devices affected")
    shown = term.answer("Snapshot id (or a unique prefix; Enter for the newest): ", drill.latest[:12])
    assert "SIGNATURE" in shown and drill.latest in shown
    shown = term.answer("Custodian name: ", "amara")
    ceremony = shown.split("Ceremony ", 1)[1].split(".", 1)[0]
    term.answer("Type the ceremony id to bind your share to it (Enter to skip): ", "some-other-ceremony-10")
    term.answer("Share words of amara: ", words["amara"])
    assert "rejected: the ceremony id typed back is not this ceremony's" in term.expect("Custodian name: ")
    os.write(term.master, b"amara\r")
    term.answer("(Enter to skip): ", "")
    mistyped = words["amara"].split()
    mistyped[4] = "zzzz"
    term.answer("Share words of amara: ", " ".join(mistyped))
    assert "word 5 is not in the SLIP-39 word list" in term.answer("Word 5 of 33: ", "")  # Enter: submit as is
    assert "rejected: word 5 is not in the SLIP-39 word list" in term.expect("Custodian name: ")
    for index, name in enumerate(CARDS):
        if index:
            term.expect("Custodian name: ")
        os.write(term.master, f"{name}\r".encode())
        term.answer("(Enter to skip): ", ceremony.upper() if name == "amara" else "")
        term.answer(f"Share words of {name}: ", words[name])
    shown = term.answer("dana, confirm step restore-devices? [y]es / [s]kip / [q]uit: ", "q")
    assert "plan: devices (restore-missing, overwrite-changed)" in shown
    rest = term.expect("resume with `enigm-recover run device-lifecycle --resume`")
    assert term.finish() == 0, rest
    runs = [" ".join(card.split()[i:i + 3]) for card in words.values() for i in range(0, 30, 3)]
    assert len(term.transcript) > 2000 and not any(run in term.transcript for run in runs)  # never echoed

    term = Terminal([str(SCRIPT), "--state-dir", str(state), "run", "device-lifecycle", "--resume", "--operator",
                     "lee"])
    assert "(resumed)" in term.expect("Custodian name: ")  # the key is needed again
    for index, name in enumerate(CARDS):
        if index:
            term.expect("Custodian name: ")
        os.write(term.master, f"{name}\r".encode())
        term.answer("(Enter to skip): ", "")
        term.answer(f"Share words of {name}: ", words[name])
    term.answer("lee, confirm step restore-devices? [y]es / [s]kip / [q]uit: ", "y")
    term.answer("second operator, type your name to confirm: ", "dana")
    shown = term.answer("lee, confirm step sign-off? [y]es / [q]uit: ", "y")
    assert "→ verified: inserted" in shown
    assert "run " + ceremony + ": completed" in term.expect("audit log")
    assert term.finish() == 0
    report = load_report(next((state / "recoveries").iterdir()))
    assert report["status"] == "completed"
    assert [p["bound_to_ceremony"] for p in report["participants"]] == [True, False, False, False, False, False]


def test_a_share_typed_on_the_terminal_is_corrected_word_by_word_and_never_echoed(drill: Drill,
                                                                                   tmp_path: Path) -> None:
    words = {n: read_share_file(drill.card(n)).words for n in CARDS}
    out = tmp_path / "records.jsonl"
    term = Terminal([str(SCRIPT), "--state-dir", str(tmp_path / "state"), "unseal", str(drill.snapshots), "latest",
                     "--allowed-signers", str(drill.allowed_signers), "--out", str(out)])
    # amara: word 5 not in the list and the last word left out -> asked for each, by position, hidden
    slipped = words["amara"].split()
    right5, right33 = slipped[4], slipped[32]
    slipped[4] = "zzzz"
    term.answer("Custodian name: ", "amara")
    term.answer("(Enter to skip): ", "")
    term.answer("Share words of amara: ", " ".join(slipped[:32]))
    assert "word 5 is not in the SLIP-39 word list" in term.answer("Word 5 of 33: ", right5[:4])
    assert "32 of 33 words so far: word 33 is missing" in term.answer("Word 33 of 33: ", right33)
    assert "accepted" in term.expect("Custodian name: ")
    # chen: two words swapped -> the checksum verdict at the end; the words are kept, two corrected in place
    swapped = words["chen"].split()
    i = next(i for i in range(10, 30) if swapped[i] != swapped[i + 1])
    swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
    os.write(term.master, b"chen\r")
    term.answer("(Enter to skip): ", "")
    term.answer("Share words of chen: ", " ".join(swapped))
    shown = term.answer("(Enter to clear the share): ", str(i + 1))
    assert "rejected: the share's checksum does not match" in shown and "the words are kept" in shown
    term.answer(f"Word {i + 1} of 33: ", swapped[i + 1])
    term.answer("(Enter to clear the share): ", str(i + 2))
    term.answer(f"Word {i + 2} of 33: ", swapped[i])
    assert "accepted" in term.expect("Custodian name: ")
    os.write(term.master, b"emeka\r")
    term.answer("(Enter to skip): ", "")
    term.answer("Share words of emeka: ", words["emeka"])
    assert term.finish() == 0, term.transcript[-2000:]
    assert out.exists()
    every_word = {w for card in words.values() for w in card.split()}
    shown_words = set(term.transcript.lower().replace(":", " ").split())
    assert not (every_word - {"amara", "chen", "emeka"}) & shown_words, "a share word was echoed"


def test_a_restore_stopped_during_its_verification_is_never_reported_verified(drill: Drill, tmp_path: Path) -> None:
    from enigm_recover.cancellation import CancelToken, cancellable
    from enigm_recover.errors import InterruptedByUser

    runbook = load_runbook(BUILTIN_DIR / "tabletop-drill.toml")
    ex = RunbookExecutor.start(runbook, settings_for(drill, tmp_path / "state"))
    walk_until(ex, drill, "restore")
    token = CancelToken()

    def stop_while_verifying(p) -> None:
        if p.stage is Stage.VERIFY:
            token.cancel()

    with pytest.raises(InterruptedByUser):
        ex.run_current(Confirmation("dana", "lee"), cancellable(stop_while_verifying, token))
    assert token.cancelled and ex.current.id == "restore"  # the run stays at the step
    folder = ex.pause("stopped during verification")
    report = load_report(folder)
    assert report["status"] == "paused" and "restore" not in [s["step"] for s in report["steps"]]
    again = RunbookExecutor.resume(runbook, settings_for(drill, tmp_path / "state"))
    enter_cards(again, drill)
    result = again.run_current(Confirmation("dana", "lee"))
    assert result.status == "verified" and result.detail["resumed"]  # continued from the journal, then verified


# -- one pipeline: the restore lock before any share ----------------------------------------------------------


def test_run_refuses_before_any_share_while_another_process_holds_the_restore_lock(drill: Drill, cli,
                                                                                    tmp_path: Path) -> None:
    """`run` takes the target's restore lock before the first custodian is asked, as `restore` does."""
    from enigm_recover.state.stores import open_store

    state = tmp_path / "state"
    holder = open_store(drill.target)
    holder.lock_restores()
    try:
        code, _, err = cli("--state-dir", state, *run_args(drill), "--yes", "--second-operator", "lee")
    finally:
        holder.close()
    assert code == 17 and "is running right now" in err, err
    assert "accepted share" not in err  # refused before any custodian was asked for a share
    (log,) = (state / "recoveries").glob("*/audit.jsonl")
    actions = [json.loads(line)["action"] for line in log.read_text().splitlines()]
    assert "share-accepted" not in actions and "key-combined" not in actions
    code, _, err = cli("--state-dir", state, "run", "tabletop-drill", "--resume", *share_args(drill), "--yes",
                       "--operator", "dana", "--second-operator", "lee")
    assert code == 0, err  # the lock went with its holder; the run resumes where it stopped


def test_the_executor_asks_for_no_share_while_the_target_is_locked(drill: Drill, tmp_path: Path) -> None:
    """The app drives the same executor: its share entry is refused while another restore holds the lock."""
    from enigm_recover.errors import RestoreRefused
    from enigm_recover.state.stores import open_store

    ex = RunbookExecutor.start(load_runbook(BUILTIN_DIR / "tabletop-drill.toml"), settings_for(drill, tmp_path / "s"))
    walk_until(ex, drill, "quorum")
    holder = open_store(drill.target)
    holder.lock_restores()
    try:
        with pytest.raises(RestoreRefused, match="is running right now"):
            ex.quorum()
    finally:
        holder.close()
    walk_until(ex, drill, None)  # the holder is gone: the share entry opens
    assert ex.status == "completed"


def test_share_words_typed_at_the_name_or_ceremony_prompt_are_never_shown_or_recorded(drill: Drill,
                                                                                      tmp_path: Path) -> None:
    words = {n: read_share_file(drill.card(n)).words for n in CARDS}
    state = tmp_path / "state"
    term = Terminal([str(SCRIPT), "--state-dir", str(state), "run", "device-lifecycle", "--source",
                     str(drill.snapshots), "--target", drill.target, "--allowed-signers", str(drill.allowed_signers),
                     "--operator", "dana"])
    term.answer("dana, confirm step declare? [y]es / [s]kip / [q]uit: ", "y")
    term.answer("Note for the record (Enter for none): ", "")
    term.answer("Snapshot id (or a unique prefix; Enter for the newest): ", "")
    term.answer("Custodian name: ", words["amara"])  # the share, typed at the wrong prompt
    shown = term.answer("Custodian name: ", "amara")
    assert "looks like share words" in shown
    assert "custodian: amara" in term.answer("(Enter to skip): ", words["amara"].replace(" ", "-"))
    assert "looks like share words" in term.answer("(Enter to skip): ", "")
    term.answer("Share words of amara: ", words["amara"])
    term.expect("Custodian name: ")
    term.process.terminate()
    term.finish()
    runs = [" ".join(card.split()[i:i + 3]) for card in words.values() for i in range(0, 30, 3)]
    dashed = [run.replace(" ", "-") for run in runs]
    assert not any(run in term.transcript for run in runs + dashed)
    for path in (state / "recoveries").rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert not any(run in text for run in runs + dashed), path


def test_a_name_or_ceremony_id_made_of_share_words_is_refused_without_quoting_it() -> None:
    from enigm_recover.quorum.names import ceremony_id_problem, custodian_name_problem, looks_like_share_words

    share_like = "academic-acid-acne"
    assert looks_like_share_words("academic acid acne") and looks_like_share_words(share_like)
    assert not looks_like_share_words("lunar-academic-47")  # a ceremony id: two words and a number
    assert custodian_name_problem("amara") is None and ceremony_id_problem("lunar-academic-47") is None
    for problem in (custodian_name_problem(share_like), custodian_name_problem("academic acid acne"),
                    ceremony_id_problem("academic acid acne")):
        assert problem and "share words" in problem and "acid" not in problem


def test_share_words_given_as_a_custodian_name_never_reach_the_audit_log(drill: Drill, tmp_path: Path) -> None:
    from enigm_recover.errors import CustodianNameInvalid

    words = read_share_file(drill.card("amara")).words
    ex = RunbookExecutor.start(load_runbook(BUILTIN_DIR / "tabletop-drill.toml"), settings_for(drill, tmp_path / "s"))
    walk_until(ex, drill, "quorum")
    for name in (words, words.replace(" ", "-")[:60]):
        with pytest.raises(CustodianNameInvalid, match="share words"):
            ex.quorum().add(words, name)
    ex.pause("checked")
    text = "\n".join(p.read_text() for p in ex.folder.iterdir() if p.is_file())
    runs = [" ".join(words.split()[i:i + 3]) for i in range(0, 30, 3)]
    assert "(refused name)" in text and not any(r in text or r.replace(" ", "-") in text for r in runs)


def test_verify_target_counts_restored_records_gone_again_as_a_promise_broken(drill: Drill, tmp_path: Path) -> None:
    """Devices the run restored, deleted again before its fresh verification: each is a record only the
    snapshot has (kept compactly by the dry run), and the step is not verified, naming how many."""

    runbook = load_runbook(BUILTIN_DIR / "tabletop-drill.toml")
    ex = RunbookExecutor.start(runbook, settings_for(drill, tmp_path / "state"))
    walk_until(ex, drill, "verify-target")
    with sqlite3.connect(drill.target.removeprefix("sqlite:///")) as conn:
        gone = conn.execute("DELETE FROM devices WHERE device_id IN "
                            "(SELECT device_id FROM devices ORDER BY device_id LIMIT 7)").rowcount
    assert gone == 7
    result = ex.run_current(Confirmation("dana", "lee", note="done"))
    assert result.step == "verify-target" and result.status is StepStatus.NOT_VERIFIED
    assert result.counts == {"device": 7}
    assert "7 device" in result.summary
