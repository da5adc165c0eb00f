"""-v and --debug: what the tool does, SSH negotiation and timings on stderr, and never a secret."""

from __future__ import annotations

import getpass
import logging
import re
from pathlib import Path

import pytest

from enigm_recover import logs
from tests.sshd import keygen, start_sshd

CARDS = ("amara", "chen", "emeka")


def share_words(card: Path) -> list[str]:
    text = card.read_text().split("words:", 1)[1]
    return re.findall(r"\d+\.\s+([a-z]+)", text)


def runs_of(words: list[str], n: int = 3) -> list[str]:
    return [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)]


@pytest.fixture(scope="module")
def sshd_source(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("ssh-home")
    keygen(home / "client")
    server = start_sshd(tmp_path_factory.mktemp("sshd"), [home / "client"])
    yield home, server
    server.stop()


def test_debug_of_a_recovery_over_ssh_shows_negotiation_and_timings_and_no_secret(
        drill, sshd_source, cli, tmp_path: Path, monkeypatch) -> None:
    home, server = sshd_source
    known = tmp_path / "known_hosts"
    known.write_text(server.known_hosts_line + "\n")
    config = tmp_path / "ssh_config"
    config.write_text(f"Host backup\n  HostName 127.0.0.1\n  Port {server.port}\n  User {getpass.getuser()}\n"
                      f"  IdentityFile {home / 'client'}\n  IdentitiesOnly yes\n  UserKnownHostsFile {known}\n")
    shares = sum((["--share-file", drill.card(n)] for n in CARDS), [])
    code, out, err = cli("restore", f"sftp://backup{drill.snapshots}", "latest", "--allowed-signers",
                         drill.allowed_signers, "--target", drill.target, *shares, "--yes", "--ssh-config", config,
                         "--debug", "--json")
    assert code == 0, err
    assert out.lstrip().startswith("{")  # diagnostics never mix into the document
    assert "key exchange" in err.lower() and "Auth for user" in err  # asyncssh's negotiation
    assert re.search(r"Encryption algs: .*aes128-gcm@openssh.com", err)  # the algorithms offered
    assert re.search(r"fetching \S+ took \d+\.\d{3} s", err) and re.search(r"restore step \w+: applying took", err)
    # no secret: no three share words in a row from any card, no key material, no age identity
    for name in drill.doc["custodians"]:
        for run in runs_of(share_words(drill.card(name))):
            assert run not in err.lower()
    key_body = [line for line in (home / "client").read_text().splitlines() if "PRIVATE KEY" not in line]
    assert not any(line in err for line in key_body)
    assert "AGE-SECRET-KEY" not in err.upper()


def test_verbose_is_quieter_than_debug_and_default_is_silent(drill, cli) -> None:
    shares = sum((["--share-file", drill.card(n)] for n in CARDS), [])
    argv = ["diff", drill.snapshots, "latest", "--allowed-signers", drill.allowed_signers, "--target", drill.target,
            *shares, "--json"]
    _, _, quiet = cli(*argv)
    _, _, verbose = cli(*argv, "-v")
    _, _, debug = cli("--debug", *argv)
    assert "enigm-recover: INFO" not in quiet and "DEBUG" not in quiet
    assert "DEBUG" not in verbose
    assert re.search(r"DEBUG enigm_recover\.recovery\.diff: the dry run \(diff\) took \d", debug)


def test_redaction_covers_what_secrets_look_like_even_in_tracebacks(drill, capsys) -> None:
    logs.configure(logs.DEBUG)
    try:
        words = share_words(drill.card("amara"))
        log = logging.getLogger("enigm_recover.test")
        log.debug("typed %s", " ".join(words))
        log.debug("key %s", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END OPENSSH PRIVATE KEY-----")
        log.debug("identity AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ")
        log.debug("target postgresql://dana:hunter2@db.example/enigm and host=db password=hunter2 sslmode=require")
        try:
            raise ValueError(f"bad share {' '.join(words[:5])}")
        except ValueError:
            log.exception("failed")
        logging.getLogger("asyncssh").debug("a library too: %s", " ".join(words[5:10]))
        err = capsys.readouterr().err
    finally:
        logs.configure(logs.QUIET)
    for run in runs_of(words):
        assert run not in err
    assert "b3BlbnNzaC1rZXk" not in err and "QQQQQQQQ" not in err and "hunter2" not in err
    assert "postgresql://dana:[redacted]@db.example/enigm" in err and "password=[redacted]" in err
    assert err.count("[redacted]") >= 7 and "ValueError" in err


def test_without_v_a_librarys_log_lines_stay_off_the_terminal(capsys) -> None:
    """asyncio logs a pending task it garbage-collects as an ERROR: noise for a user, kept for -v."""
    try:
        logs.configure(logs.QUIET)
        logging.getLogger("asyncio").error("Task was destroyed but it is pending!")
        logging.getLogger("enigm_recover.test").warning("the tool's own warning")
        err = capsys.readouterr().err
        assert "Task was destroyed" not in err and "the tool's own warning" in err
        logs.configure(logs.VERBOSE)
        logging.getLogger("asyncio").error("Task was destroyed but it is pending!")
        assert "Task was destroyed" in capsys.readouterr().err
    finally:
        logs.configure(logs.QUIET)
