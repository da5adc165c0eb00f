"""Custodians join a ceremony from their own sessions, as real OS users the test makes (root only)."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from enigm_recover.ceremony import protocol
from enigm_recover.ceremony.server import JoinLimiter
from enigm_recover.errors import CeremonyProtocolError
from enigm_recover.quorum.cards import read_share_file
from tests.os_users import OSUsers, make_os_users, remove_os_users

ROOT = Path(__file__).resolve().parent.parent
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="making OS users for the custodians needs root")


# -- the wire: small, typed, bounded ----------------------------------------------------------------------------


def _pair() -> tuple[socket.socket, socket.socket]:
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)


def test_a_message_round_trips_and_anything_else_is_refused() -> None:
    a, b = _pair()
    with a, b:
        protocol.send(a, "confirm", ceremony="lunar-academic-47", custodian="amara")
        assert protocol.receive(b, "confirm") == {"type": "confirm", "ceremony": "lunar-academic-47",
                                                  "custodian": "amara"}
        for bad in ({"type": "confirm", "ceremony": "x"}, {"type": "confirm", "ceremony": 1, "custodian": "a"},
                    {"type": "share", "words": "a", "extra": 1}, {"type": "nope"}, ["confirm"],
                    {"type": "verdict", "accepted": 1, "code": 0, "reason": "", "hint": "", "progress": ""}):
            body = json.dumps(bad).encode()
            a.sendall(len(body).to_bytes(4, "big") + body)
            with pytest.raises(CeremonyProtocolError):
                protocol.receive(b)


def test_an_announced_length_past_the_bound_is_refused_before_it_is_read() -> None:
    a, b = _pair()
    with a, b:
        a.sendall((protocol.MAX_MESSAGE + 1).to_bytes(4, "big"))
        with pytest.raises(CeremonyProtocolError, match="more than"):
            protocol.receive(b)


def test_joins_are_rate_limited_per_os_user() -> None:
    now = [0.0]
    limiter = JoinLimiter(per_window=3, window=60, clock=lambda: now[0])
    assert [limiter.allow(1001) for _ in range(4)] == [True, True, True, False]
    assert limiter.allow(1002)  # another OS user is not held back
    now[0] = 61
    assert limiter.allow(1001)


# -- end to end, with OS users ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def os_users() -> Iterator[OSUsers]:
    if os.geteuid() != 0:
        pytest.skip("making OS users for the custodians needs root")
    users = make_os_users(3)
    try:
        yield users
    finally:
        remove_os_users(users)


@pytest.fixture
def ceremonies(os_users: OSUsers, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ceremonies folder the test's users can reach the parent of (pytest's own tmp folders are root's only)."""
    base = os_users.home.parent / f"ceremonies-{os.getpid()}-{time.monotonic_ns()}"
    monkeypatch.setenv("ENIGM_RECOVER_CEREMONY_DIR", str(base))
    monkeypatch.setenv("ENIGM_RECOVER_CUSTODIAN_GROUP", os_users.group)
    return base


def _operator(*args: str | Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "enigm_recover", *map(str, args)], env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)


def _open_ceremony(base: Path, operator: subprocess.Popen, log: Path) -> str:
    """The id of the ceremony the operator's process opened (waiting for its socket to appear)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        # open once its folder is the group's (the last step of opening)
        found = [p.parent.name for p in base.glob("*/socket")
                 if stat.S_IMODE(p.parent.stat().st_mode) == 0o750] if base.is_dir() else []
        if found:
            return found[0]
        if operator.poll() is not None:
            pytest.fail(f"the operator's process ended ({operator.returncode}) before the ceremony opened:\n"
                        f"{log.read_text()}")
        time.sleep(0.05)
    pytest.fail("the ceremony did not open")


def _join(users: OSUsers, who: int | str, base: Path, ceremony_typed: str, words: str, *args: str,
          name: str = "") -> subprocess.CompletedProcess:
    user = users.outsider if who == "outsider" else users.members[int(who)]
    return users.run(user, [*users.tool(), "ceremony", "join", *args, "--name", name or user.name],
                     users.env(ENIGM_RECOVER_CEREMONY_DIR=str(base)), f"{ceremony_typed}\n{words}\n")


def _audit(state: Path) -> list[dict]:
    [log] = state.glob("recoveries/*/audit.jsonl")
    return [json.loads(line) for line in log.read_text().splitlines()]


@needs_root
def test_three_custodians_join_a_restore_from_their_own_os_users(os_users: OSUsers, ceremonies: Path, drill,
                                                                   tmp_path: Path) -> None:
    words = {n: read_share_file(drill.card(n)).words for n in ("amara", "chen", "dagny", "emeka")}
    log = tmp_path / "operator.log"
    operator = _operator("restore", drill.snapshots, "latest", "--target", drill.target, "--allowed-signers",
                         drill.allowed_signers, "--yes", "--remote-shares", log=log)
    try:
        ceremony = _open_ceremony(ceremonies, operator, log)
        folder = ceremonies / ceremony
        # only the operator and the custodians' group reach the socket; nobody else may write there
        for path in (ceremonies, folder):
            info = path.stat()
            assert info.st_gid == os_users.gid and stat.S_IMODE(info.st_mode) == 0o750
        assert stat.S_IMODE((folder / "socket").stat().st_mode) == 0o660

        outsider = _join(os_users, "outsider", ceremonies, ceremony, words["amara"], ceremony)
        assert outsider.returncode == 81 and "not in the custodians' group" in outsider.stderr, outsider.stderr
        wrong = _join(os_users, 1, ceremonies, "lunar-academic-47", words["chen"], name="chen")
        assert wrong.returncode == 26 and "not this ceremony's" in wrong.stderr, wrong.stderr
        assert " ".join(words["chen"].split()[4:8]) not in wrong.stderr + wrong.stdout

        first = _join(os_users, 0, ceremonies, ceremony, words["amara"], name="amara")
        assert first.returncode == 0, first.stderr
        assert ceremony in first.stderr and drill.doc["recovery"]["fingerprint"] in first.stderr
        again = _join(os_users, 0, ceremonies, ceremony, words["dagny"], name="dagny")
        assert again.returncode == 81 and "already given a share" in again.stderr, again.stderr
        for index, name in ((1, "chen"), (2, "emeka")):
            done = _join(os_users, index, ceremonies, ceremony, words[name], ceremony, name=name)
            assert done.returncode == 0, done.stderr
        assert operator.wait(timeout=300) == 0, log.read_text()
    finally:
        if operator.poll() is None:
            operator.kill()
    screen = log.read_text()
    assert "joined: amara (OS user " + os_users.members[0].name + ")" in screen
    assert "refused: OS user " + os_users.members[1].name in screen
    for share in words.values():  # never a run of share words on the operator's screen
        runs = [" ".join(share.split()[i:i + 3]) for i in range(3, 30)]
        assert not any(run in screen for run in runs)
    assert not ceremonies.exists() or not any(ceremonies.iterdir())  # the socket went with the ceremony

    state = Path(os.environ["ENIGM_RECOVER_STATE_DIR"])
    entries = _audit(state)
    accepted = [e["inputs"] for e in entries if e["action"] == "share-accepted"]
    assert [(a["custodian"], a["os_user"], a["uid"]) for a in accepted] == [
        ("amara", os_users.members[0].name, os_users.members[0].uid),
        ("chen", os_users.members[1].name, os_users.members[1].uid),
        ("emeka", os_users.members[2].name, os_users.members[2].uid)]
    refused = [e["inputs"] for e in entries if e["action"] == "ceremony-join-refused"]
    assert {r["os_user"] for r in refused} == {os_users.members[0].name, os_users.members[1].name}
    [report] = state.glob("recoveries/*/report.md")
    assert f"joined from OS user {os_users.members[2].name} (uid {os_users.members[2].uid})" in report.read_text()


@needs_root
def test_killing_the_operator_mid_ceremony_leaves_no_socket_and_no_share(os_users: OSUsers, ceremonies: Path, drill,
                                                                         tmp_path: Path) -> None:
    words = {n: read_share_file(drill.card(n)).words for n in ("amara", "chen")}
    log = tmp_path / "operator.log"
    operator = _operator("unseal", drill.snapshots, "latest", "--out", tmp_path / "out.jsonl", "--allowed-signers",
                         drill.allowed_signers, "--remote-shares", log=log)
    try:
        ceremony = _open_ceremony(ceremonies, operator, log)
        assert _join(os_users, 0, ceremonies, ceremony, words["amara"], name="amara").returncode == 0
        typing = os_users.popen(os_users.members[1], [*os_users.tool(), "ceremony", "join", "--name", "chen"],
                                os_users.env(ENIGM_RECOVER_CEREMONY_DIR=str(ceremonies)), stdin=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        typing.stdin.write(f"{ceremony}\n")
        typing.stdin.flush()
        while "joined as" not in (line := typing.stderr.readline()):
            assert line, "the second custodian never joined"
        operator.send_signal(signal.SIGKILL)  # amara's share is in its memory; chen is typing
        operator.wait(timeout=60)
        try:
            typing.stdin.write(f"{words['chen']}\n")
            typing.stdin.close()
        except BrokenPipeError:
            pass
        assert typing.wait(timeout=60) == 80
        assert "nothing of your share was kept" in typing.stderr.read()
        deadline = time.monotonic() + 60
        while (ceremonies / ceremony).exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # the sweeper notices the operator's end
    finally:
        if operator.poll() is None:
            operator.kill()
    assert not (ceremonies / ceremony).exists()
    assert not list(ceremonies.rglob("*"))
    # no share anywhere: not in the state folder, the ceremonies folder, the output, the users' home
    for folder in (Path(os.environ["ENIGM_RECOVER_STATE_DIR"]), ceremonies, tmp_path, os_users.home):
        for path in folder.rglob("*"):
            if path.is_file() and path.name != "operator.log":
                text = path.read_bytes()
                assert not any(" ".join(w.split()[4:9]).encode() in text for w in words.values()), path
    assert not any(" ".join(w.split()[4:9]) in log.read_text() for w in words.values())

    # the next ceremony opens cleanly beside whatever a killed operator could leave
    (ceremonies / "stale-left-behind-10").mkdir()
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(ceremonies / "stale-left-behind-10" / "socket"))
    stale.close()
    again = _join(os_users, 0, ceremonies, "", words["amara"], "stale-left-behind-10", name="amara")
    assert again.returncode in (80, 81), again.stderr  # never trusted: nothing answers (or it is not reachable)


# -- the app's quorum step -----------------------------------------------------------------------------------------


@needs_root
def test_three_custodians_join_the_app_from_their_own_os_users(os_users: OSUsers, ceremonies: Path, drill,
                                                                tmp_path: Path) -> None:
    import asyncio

    from enigm_recover.app.app import RecoverApp
    from enigm_recover.app.options import drill_options
    from enigm_recover.app.tour import on, read_cards, until, walk
    from enigm_recover.drill.serve import serve_drill
    from tests.conftest import DRILL_AT

    server, doc = serve_drill(drill.root)
    words = {n: read_share_file(drill.card(n)).words for n in ("amara", "chen", "emeka")}
    app = RecoverApp(drill_options(doc, state_dir=tmp_path / "state", cache_dir=tmp_path / "cache", operator="dana",
                                   now=lambda: DRILL_AT, still=True))
    joins: list[subprocess.CompletedProcess] = []

    def remote() -> str:
        return str(app.screen.query_one("#ceremony-remote").content)

    async def join(index: int | str, name: str, typed: str = "") -> subprocess.CompletedProcess:
        done = await asyncio.to_thread(_join, os_users, index, ceremonies, typed or app.executor.ceremony,
                                       words[name], name=name)
        joins.append(done)
        return done

    async def scenario() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await walk(pilot, read_cards({n: drill.card(n) for n in words}), "verify")
            await pilot.press("enter")
            await until(pilot, lambda: on(app, "QuorumScreen"))
            await pilot.press("ctrl+o")
            await until(pilot, lambda: (ceremonies / app.executor.ceremony / "socket").exists()
                        and stat.S_IMODE((ceremonies / app.executor.ceremony).stat().st_mode) == 0o750)
            assert "Open to custodians' own sessions" in remote()

            assert (await join("outsider", "amara")).returncode == 81
            assert (await join(0, "amara", "lunar-academic-47")).returncode == 26
            await until(pilot, lambda: ": refused — " in remote())
            assert (await join(0, "amara")).returncode == 0
            await until(pilot, lambda: "amara (OS user " + os_users.members[0].name + "): accepted" in remote())
            assert "amara" in str(app.screen.query_one("#quorum-progress").content)
            assert (await join(1, "chen")).returncode == 0
            assert (await join(2, "emeka")).returncode == 0
            await until(pilot, lambda: on(app, "SecretDialog"))  # the quorum is complete: the passphrase
            assert not (ceremonies / app.executor.ceremony).exists()  # closed with the quorum
            await pilot.press("enter")
            await until(pilot, lambda: on(app, "DryRunScreen", state="done"), 120)

    try:
        asyncio.run(asyncio.wait_for(scenario(), timeout=300))
    finally:
        server.stop()
    assert [j.returncode for j in joins] == [81, 26, 0, 0, 0], [j.stderr for j in joins]
    entries = _audit(tmp_path / "state")
    accepted = [(e["inputs"]["custodian"], e["inputs"]["os_user"]) for e in entries if e["action"] == "share-accepted"]
    assert accepted == [("amara", os_users.members[0].name), ("chen", os_users.members[1].name),
                        ("emeka", os_users.members[2].name)]
    assert any(e["action"] == "ceremony-closed" for e in entries)


# -- sealed shares, from afar --------------------------------------------------------------------------------------


def _verdict_line(stream) -> str:
    """The operator's next verdict on a pasted sealed share."""
    while not (line := stream.readline()).startswith(("accepted:", "refused:", "rejected:")):
        assert line, "the operator's process ended without a verdict"
    return line


@needs_root
def test_sealed_shares_from_afar_and_what_is_refused(os_users: OSUsers, ceremonies: Path, drill, tmp_path: Path,
                                                     cli, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from enigm_recover.ceremony.sealed import seal_share
    from enigm_recover.quorum.recovery_key import RecoveryIdentity

    words = {n: read_share_file(drill.card(n)).words for n in ("amara", "chen", "emeka")}
    operator = subprocess.Popen(
        [sys.executable, "-m", "enigm_recover", "unseal", str(drill.snapshots), "latest", "--out",
         str(tmp_path / "out.jsonl"), "--allowed-signers", str(drill.allowed_signers), "--remote-shares"],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdin=subprocess.PIPE, stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL, text=True)
    try:
        while not (line := operator.stderr.readline()).startswith("sealed-share recipient "):
            assert line, "the ceremony never showed its recipient"
        recipient = line.split()[2]
        assert "(fingerprint " in line
        ceremony = next(p.name for p in ceremonies.iterdir())

        def paste(armored: str) -> str:
            operator.stdin.write(armored)
            operator.stdin.flush()
            return _verdict_line(operator.stderr)

        # the custodian's command, as a custodian on another machine runs it (the share on stdin)
        monkeypatch.setattr(sys, "stdin", io.StringIO(words["amara"] + "\n"))
        code, amara, err = cli("ceremony", "seal-share", "--to", recipient, "--ceremony", ceremony, "--name", "amara")
        assert code == 0 and amara.startswith("-----BEGIN AGE ENCRYPTED FILE-----"), err
        assert words["amara"].split()[6] not in amara
        assert paste(amara).startswith("accepted: sealed share from amara")
        replay = paste(amara)
        assert replay.startswith("refused: sealed share") and "already offered" in replay
        wrong_ceremony = paste(seal_share(words["chen"], "chen", "lunar-academic-47", recipient))
        assert "bound to ceremony 'lunar-academic-47'" in wrong_ceremony
        elsewhere = paste(seal_share(words["chen"], "chen", ceremony, RecoveryIdentity.generate().recipient))
        assert "sealed to another recipient" in elsewhere
        assert paste(seal_share(words["chen"], "chen", ceremony, recipient)).startswith("accepted:")
        assert paste(seal_share(words["emeka"], "emeka", ceremony, recipient)).startswith("accepted:")
        operator.stdin.close()
        assert operator.wait(timeout=120) == 0, operator.stderr.read()
    finally:
        if operator.poll() is None:
            operator.kill()
    assert (tmp_path / "out.jsonl").stat().st_size > 0
    state = Path(os.environ["ENIGM_RECOVER_STATE_DIR"])
    entries = _audit(state)
    refused = [e["inputs"]["reason"] for e in entries if e["action"] == "sealed-share-refused"]
    assert len(refused) == 3 and "already offered" in refused[0]
    accepted = [e["inputs"] for e in entries if e["action"] == "share-accepted"]
    assert [(a["custodian"], a["via"], a["sealed_by"]) for a in accepted] == [
        ("amara", "sealed share", "amara"), ("chen", "sealed share", "chen"), ("emeka", "sealed share", "emeka")]
    assert all(a["bound_to_ceremony"] for a in accepted)
    [report] = state.glob("recoveries/*/report.md")
    assert "came sealed, from chen" in report.read_text()
    assert not any(ceremonies.iterdir())


@needs_root
def test_sealed_share_files_are_offered_once_they_arrive_whole(os_users: OSUsers, ceremonies: Path, drill,
                                                               tmp_path: Path) -> None:
    """--sealed-share FILE: the run shows its recipient, then waits; each file is offered once it holds a whole
    armored message (a half-written one waits), a file for another ceremony is refused, the rest complete it."""
    from enigm_recover.ceremony.sealed import seal_share

    words = {n: read_share_file(drill.card(n)).words for n in ("amara", "chen", "emeka")}
    files = {n: tmp_path / f"{n}.age" for n in ("amara", "chen", "emeka", "stray")}
    operator = subprocess.Popen(
        [sys.executable, "-m", "enigm_recover", "unseal", str(drill.snapshots), "latest", "--out",
         str(tmp_path / "out.jsonl"), "--allowed-signers", str(drill.allowed_signers),
         *(arg for f in files.values() for arg in ("--sealed-share", str(f)))],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL, text=True)
    said: list[str] = []
    try:
        while not (line := operator.stderr.readline()).startswith("sealed-share recipient "):
            assert line, "the ceremony never showed its recipient"
        recipient = line.split()[2]
        assert recipient.startswith("age1pq1")
        ceremony = next(p.name for p in ceremonies.iterdir())

        def next_verdict() -> str:
            while not (line := operator.stderr.readline()).startswith(("accepted:", "refused:", "rejected:")):
                assert line, "the operator's process ended without a verdict"
                said.append(line)
            return line

        files["stray"].write_text(seal_share(words["chen"], "chen", "lunar-academic-47", recipient))
        assert "bound to ceremony 'lunar-academic-47'" in next_verdict()
        amara = seal_share(words["amara"], "amara", ceremony, recipient)
        files["amara"].write_text(amara[: len(amara) // 2])  # still being written: not offered yet
        files["chen"].write_text(seal_share(words["chen"], "chen", ceremony, recipient))
        assert next_verdict().startswith("accepted: sealed share from chen")
        files["amara"].write_text(amara)
        assert next_verdict().startswith("accepted: sealed share from amara")
        files["emeka"].write_text(seal_share(words["emeka"], "emeka", ceremony, recipient))
        assert next_verdict().startswith("accepted: sealed share from emeka")
        assert operator.wait(timeout=120) == 0, operator.stderr.read()
    finally:
        if operator.poll() is None:
            operator.kill()
    assert sum(f"offering the sealed share in {files['amara']}" in line for line in said) == 1
    assert (tmp_path / "out.jsonl").stat().st_size > 0
    assert not any(ceremonies.iterdir())


def test_a_sealed_share_altered_in_transit_is_refused_with_its_reason(drill) -> None:
    from enigm_recover.ceremony.sealed import SealedShareInbox, seal_share
    from enigm_recover.errors import SealedShareRefused, ShareChecksumError

    inbox = SealedShareInbox("lunar-academic-47")
    words = read_share_file(drill.card("amara")).words
    armored = seal_share(words, "amara", "lunar-academic-47", inbox.recipient)
    lines = armored.splitlines()
    lines[2] = lines[2][:10] + ("A" if lines[2][10] != "A" else "B") + lines[2][11:]
    with pytest.raises(SealedShareRefused):
        inbox.open("\n".join(lines))
    with pytest.raises(SealedShareRefused, match="not an armored age message"):
        inbox.open(words)
    assert inbox.open(armored).custodian == "amara"
    swapped = words.split()
    swapped[5], swapped[6] = swapped[6], swapped[5]
    with pytest.raises(ShareChecksumError):  # checked on the custodian's side before anything is sealed
        seal_share(" ".join(swapped), "amara", "lunar-academic-47", inbox.recipient)
    assert "words=<redacted>" in repr(inbox.open(seal_share(words, "amara", "lunar-academic-47", inbox.recipient)))


@needs_root
def test_sealed_shares_pasted_into_the_app(os_users: OSUsers, ceremonies: Path, drill, tmp_path: Path) -> None:
    import asyncio

    from enigm_recover.app.app import RecoverApp
    from enigm_recover.app.options import drill_options
    from enigm_recover.app.tour import on, read_cards, until, walk
    from enigm_recover.ceremony.sealed import seal_share
    from enigm_recover.drill.serve import serve_drill
    from tests.conftest import DRILL_AT

    server, doc = serve_drill(drill.root)
    words = {n: read_share_file(drill.card(n)).words for n in ("amara", "chen", "emeka")}
    app = RecoverApp(drill_options(doc, state_dir=tmp_path / "state", cache_dir=tmp_path / "cache", operator="dana",
                                   now=lambda: DRILL_AT, still=True))

    def remote() -> str:
        return str(app.screen.query_one("#ceremony-remote").content)

    async def paste(pilot, armored: str) -> None:
        await pilot.press("ctrl+g")
        await until(pilot, lambda: on(app, "SealedShareDialog"))
        assert app.screen.query_one("#sealed-recipient").text == app.screen.recipient  # in full, to copy
        app.screen.query_one("#sealed-text").text = armored
        await pilot.press("ctrl+e")
        await until(pilot, lambda: on(app, "QuorumScreen"))

    async def scenario() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await walk(pilot, read_cards({n: drill.card(n) for n in words}), "verify")
            await pilot.press("enter")
            await until(pilot, lambda: on(app, "QuorumScreen"))
            await pilot.press("ctrl+o")
            await until(pilot, lambda: "From afar" in remote())
            quorum_screen = app.screen
            inbox = quorum_screen.remote.inbox
            assert inbox.recipient.startswith("age1pq1")  # post-quantum: a sealed share may cross a recorded channel
            assert inbox.recipient[:20] in remote() and inbox.fingerprint in remote()
            assert inbox.recipient not in remote()  # 1,959 characters: folded on the screen, in full in the dialog
            ceremony = app.executor.ceremony
            amara = seal_share(words["amara"], "amara", ceremony, inbox.recipient)
            await paste(pilot, amara)
            await until(pilot, lambda: "sealed share from amara: accepted" in remote())
            await paste(pilot, amara)
            await until(pilot, lambda: "already offered" in str(app.screen.query_one("#verdict").content))
            await paste(pilot, seal_share(words["chen"], "chen", "lunar-academic-47", inbox.recipient))
            await until(pilot, lambda: "bound to ceremony" in str(app.screen.query_one("#verdict").content))
            assert len(app.executor.quorum().entry.receipts) == 1
            await paste(pilot, seal_share(words["chen"], "chen", ceremony, inbox.recipient))
            assert (await asyncio.to_thread(_join, os_users, 2, ceremonies, ceremony, words["emeka"],
                                            name="emeka")).returncode == 0
            await until(pilot, lambda: on(app, "SecretDialog"))

    try:
        asyncio.run(asyncio.wait_for(scenario(), timeout=300))
    finally:
        server.stop()
    entries = _audit(tmp_path / "state")
    accepted = [(e["inputs"]["custodian"], e["inputs"]["via"]) for e in entries if e["action"] == "share-accepted"]
    assert accepted == [("amara", "sealed share"), ("chen", "sealed share"), ("emeka", "ceremony socket")]
    assert len([e for e in entries if e["action"] == "sealed-share-refused"]) == 2


# -- the folder and the socket's life (the operator's own group: no other OS user needed) --------------------------


def _own_group() -> str:
    import grp

    return grp.getgrgid(os.getegid()).gr_name


def _quorum(tmp_path: Path, fingerprint: str = "SHA256:x"):
    from enigm_recover.recovery.quorum_session import QuorumSession
    from enigm_recover.recovery.session import Recovery

    return QuorumSession(Recovery.open(tmp_path / "state", "restore", "dana"), fingerprint)


def test_a_stale_socket_is_replaced_never_trusted_and_the_socket_goes_with_the_ceremony(tmp_path: Path) -> None:
    from enigm_recover.ceremony.folder import CeremonyPlace
    from enigm_recover.ceremony.server import CeremonyInfo, CeremonyServer

    base = tmp_path / "ceremonies"
    place = CeremonyPlace(base, _own_group())
    quorum = _quorum(tmp_path)
    first = CeremonyServer(quorum, CeremonyInfo("lively-ceremony-12", "SHA256:x", "dana", "host", "restore"), place)
    first.open()  # another ceremony of the same operator, alive: left alone
    # as after a SIGKILL of the operator and of its sweeper: the folder and the socket file stay, nobody answers
    stale = base / "left-behind-11" / "socket"
    stale.parent.mkdir(mode=0o750)
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(stale))
    dead.close()

    server = CeremonyServer(quorum, CeremonyInfo("lunar-academic-47", "SHA256:x", "dana", "host", "restore"), place)
    with server:
        assert not stale.parent.exists()  # found stale and removed before the new one opened
        assert stat.S_IMODE(server.folder.stat().st_mode) == 0o750
        assert stat.S_IMODE(server.socket_path.stat().st_mode) == 0o660
        assert server.folder.stat().st_gid == os.getegid()
        assert first.socket_path.exists()
    first.close()
    assert not server.folder.exists() and list(base.iterdir()) == []
    opened = [e["inputs"] for e in (json.loads(line) for line in quorum.recovery.audit.path.read_text().splitlines())
              if e["action"] == "ceremony-opened"]
    assert opened[-1]["stale_removed"] == "left-behind-11"


def test_a_ceremonies_folder_others_could_write_in_is_refused(tmp_path: Path) -> None:
    from enigm_recover.ceremony.folder import CeremonyPlace, prepare
    from enigm_recover.errors import CeremonyFolderUnsafe

    base = tmp_path / "ceremonies"
    base.mkdir(mode=0o777)
    os.chmod(base, 0o777)
    with pytest.raises(CeremonyFolderUnsafe, match="others can write"):
        prepare(CeremonyPlace(base, _own_group()))
    with pytest.raises(CeremonyFolderUnsafe, match="does not exist"):
        prepare(CeremonyPlace(tmp_path / "other", "enigmt-no-such-group"))


@needs_root
def test_a_run_takes_its_quorum_from_custodians_own_sessions_and_a_runbook_may_allow_more(
        os_users: OSUsers, ceremonies: Path, drill, tmp_path: Path) -> None:
    """``run --remote-shares``; a runbook with shares_per_os_user = 2 lets one OS user give two cards' shares."""
    text = (ROOT / "enigm_recover" / "runbooks" / "tabletop-drill.toml").read_text()
    folder = tmp_path / "runbooks"
    folder.mkdir()
    (folder / "two-cards.toml").write_text(text.replace('name = "tabletop-drill"',
                                                        'name = "two-cards"\nshares_per_os_user = 2', 1))
    words = {n: read_share_file(drill.card(n)).words for n in ("amara", "chen", "emeka")}
    log = tmp_path / "operator.log"
    operator = _operator("run", "two-cards", "--runbooks", folder, "--source", drill.snapshots, "--target",
                         drill.target, "--allowed-signers", drill.allowed_signers, "--yes", "--operator", "dana",
                         "--second-operator", "lee", "--remote-shares", log=log)
    try:
        ceremony = _open_ceremony(ceremonies, operator, log)
        for index, name in ((0, "amara"), (0, "chen"), (1, "emeka")):
            done = _join(os_users, index, ceremonies, ceremony, words[name], name=name)
            assert done.returncode == 0, done.stderr
        assert operator.wait(timeout=300) == 0, log.read_text()
    finally:
        if operator.poll() is None:
            operator.kill()
    accepted = [(e["inputs"]["custodian"], e["inputs"]["os_user"])
                for e in _audit(Path(os.environ["ENIGM_RECOVER_STATE_DIR"])) if e["action"] == "share-accepted"]
    assert accepted == [("amara", os_users.members[0].name), ("chen", os_users.members[0].name),
                        ("emeka", os_users.members[1].name)]


def test_shares_per_os_user_is_checked_where_the_runbook_says_it(tmp_path: Path) -> None:
    from enigm_recover.errors import RunbookInvalid
    from enigm_recover.runbook.loader import load_runbook

    text = (ROOT / "enigm_recover" / "runbooks" / "tabletop-drill.toml").read_text()
    for value in ("0", "17", "true", '"2"'):
        path = tmp_path / "tabletop-drill.toml"
        path.write_text(text.replace('name = "tabletop-drill"', f'name = "tabletop-drill"\nshares_per_os_user = {value}'))
        with pytest.raises(RunbookInvalid, match=r"tabletop-drill.toml:3: shares_per_os_user must be"):
            load_runbook(path)
    path.write_text(text)
    assert load_runbook(path).shares_per_os_user == 1


def test_a_custodian_at_a_terminal_confirms_the_id_then_fixes_a_slip_word_by_word(tmp_path: Path, drill, cli,
                                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The terminal path of `ceremony join`, in this process (the operator's own OS user may join too)."""
    import getpass
    import pwd

    from enigm_recover.ceremony.folder import CeremonyPlace
    from enigm_recover.ceremony.server import CeremonyInfo, CeremonyServer

    fingerprint = drill.doc["recovery"]["fingerprint"]
    quorum = _quorum(tmp_path, fingerprint)
    ceremony = quorum.recovery.ceremony
    place = CeremonyPlace(tmp_path / "c", _own_group())
    words = read_share_file(drill.card("amara")).words.split()
    slipped = [*words[:6], "xqzz", *words[7:]]
    answers = iter(["", ceremony.upper().replace("-", " "), " ".join(slipped), words[6][:4]])
    prompts: list[str] = []

    def ask(prompt: str = "", stream: object = None) -> str:
        prompts.append(prompt)
        return next(answers)

    class Terminal:
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(getpass, "getpass", ask)
    monkeypatch.setattr(sys, "stdin", Terminal())
    monkeypatch.setenv("ENIGM_RECOVER_CEREMONY_DIR", str(place.folder))
    with CeremonyServer(quorum, CeremonyInfo(ceremony, fingerprint, "dana", "jump-1", "restore"), place):
        code, out, err = cli("ceremony", "join", "--name", "amara")
    assert code == 0, err
    assert f"ceremony     {ceremony}" in err and "operator     dana (OS user " in err and "jump-1" in err
    assert prompts[-1] == "Word 7 of 33: "  # only the slip is asked again, by its position
    assert not any(" ".join(words[i:i + 3]) in err + out for i in range(0, 30))
    [receipt] = quorum.entry.receipts
    assert receipt.custodian == "amara"
    accepted = [e["inputs"] for e in (json.loads(line) for line in quorum.recovery.audit.path.read_text().splitlines())
                if e["action"] == "share-accepted"]
    assert accepted[0]["os_user"] == pwd.getpwuid(os.geteuid()).pw_name and accepted[0]["uid"] == os.geteuid()
    assert accepted[0]["bound_to_ceremony"]


def test_a_ceremonies_folder_too_deep_for_a_socket_is_named(tmp_path: Path) -> None:
    from enigm_recover.ceremony.folder import CeremonyPlace
    from enigm_recover.ceremony.server import CeremonyInfo, CeremonyServer
    from enigm_recover.errors import CeremonyFolderUnsafe

    place = CeremonyPlace(tmp_path / ("d" * 100), _own_group())
    server = CeremonyServer(_quorum(tmp_path), CeremonyInfo("lunar-academic-47", "SHA256:x", "dana", "h", "r"), place)
    with pytest.raises(CeremonyFolderUnsafe, match="longer than a UNIX socket's path"):
        server.open()
    assert list(place.folder.iterdir()) == []


def test_a_peer_speaking_garbage_is_dropped_and_the_ceremony_goes_on(tmp_path: Path, drill) -> None:
    from enigm_recover.ceremony.client import CeremonyConnection
    from enigm_recover.ceremony.folder import CeremonyPlace
    from enigm_recover.ceremony.server import CeremonyInfo, CeremonyServer, JoinEventKind
    from enigm_recover.errors import CeremonyUnavailable

    fingerprint = drill.doc["recovery"]["fingerprint"]
    quorum = _quorum(tmp_path, fingerprint)
    ceremony = quorum.recovery.ceremony
    place = CeremonyPlace(tmp_path / "c", _own_group())
    events: list = []
    server = CeremonyServer(quorum, CeremonyInfo(ceremony, fingerprint, "dana", "h", "restore"), place,
                            on_event=events.append).open()
    try:
        for junk in (b"\xff\xff\xff\xff", b"\x00\x00\x00\x05nope!", b"\x00\x00\x00\x02{}"):
            raw = socket.socket(socket.AF_UNIX)
            raw.connect(str(server.socket_path))
            protocol.receive(raw, "hello")
            raw.sendall(junk)
            assert raw.recv(1) == b""  # dropped
            raw.close()
        with CeremonyConnection(place, ceremony) as conn:
            assert conn.connect().fingerprint == fingerprint
            conn.confirm(ceremony, "amara")
            conn.add(read_share_file(drill.card("amara")).words, "amara", ceremony)
        assert [r.custodian for r in quorum.entry.receipts] == ["amara"]
    finally:
        server.close()
    assert events[-1].kind is JoinEventKind.CLOSED
    with pytest.raises(CeremonyUnavailable, match="is not open"):  # a closed ceremony refuses joins
        CeremonyConnection(place, ceremony).connect()
