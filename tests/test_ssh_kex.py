"""The SSH key exchange: post-quantum first, named in the JSON, classic refused on request.

Against real servers: Debian's OpenSSH (9.2 offers sntrup761x25519-sha512@openssh.com and the classic
curve25519, not ML-KEM), an OpenSSH limited to classic key exchange, and the in-process asyncssh
server of the drill (which offers mlkem768x25519-sha256). The server's own log says which key
exchange it ran, so the client's report is checked against the other end.
"""

from __future__ import annotations

import getpass
import json
import re
import shutil
from pathlib import Path

import pytest

from enigm_recover.errors import ClassicKeyExchangeRefused, ConfigError
from enigm_recover.sources.kex import POST_QUANTUM_KEX, server_offer, usable_post_quantum
from tests.sshd import Sshd, keygen, start_sshd

pytestmark = pytest.mark.skipif(not shutil.which("ssh-keygen"), reason="needs ssh-keygen")

SNTRUP = "sntrup761x25519-sha512@openssh.com"
MLKEM = "mlkem768x25519-sha256"


@pytest.fixture(autouse=True)
def no_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.delenv("ENIGM_RECOVER_SSH_KEX", raising=False)


@pytest.fixture(scope="module")
def client_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return keygen(tmp_path_factory.mktemp("kex-client") / "client")


@pytest.fixture(scope="module")
def debian_sshd(client_key: Path, tmp_path_factory: pytest.TempPathFactory):
    """The machine's OpenSSH with its default key exchanges; its log names the one each connection ran."""
    server = start_sshd(tmp_path_factory.mktemp("sshd-default"), [client_key], log_level="DEBUG1")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def classic_sshd(client_key: Path, tmp_path_factory: pytest.TempPathFactory):
    server = start_sshd(tmp_path_factory.mktemp("sshd-classic"), [client_key], log_level="DEBUG1",
                        extra_config="KexAlgorithms curve25519-sha256\n")
    yield server
    server.stop()


def ssh_config(tmp_path: Path, server: Sshd, client_key: Path) -> Path:
    known = tmp_path / "known_hosts"
    known.write_text(server.known_hosts_line + "\n")
    config = tmp_path / "ssh_config"
    config.write_text(f"Host backup\n  HostName 127.0.0.1\n  Port {server.port}\n  User {getpass.getuser()}\n"
                      f"  IdentityFile {client_key}\n  IdentitiesOnly yes\n  UserKnownHostsFile {known}\n")
    return config


def list_json(cli, drill, config: Path, tmp_path: Path, *extra: str) -> tuple[int, dict | None, str]:
    code, out, err = cli("--cache-dir", tmp_path / "cache", "snapshots", "list", f"sftp://backup{drill.snapshots}",
                         "--ssh-config", config, "--allowed-signers", drill.allowed_signers, *extra, "--json")
    return code, (json.loads(out) if code == 0 else None), err


def kex_in_log(server: Sshd) -> list[str]:
    """The key exchanges the server says it ran (OpenSSH logs ``kex: algorithm: NAME`` at DEBUG1)."""
    return re.findall(r"kex: algorithm: ([^\s(]\S*)", server.log.read_text())


def server_kex_list(server: Sshd) -> list[str]:
    out = shutil.which("sshd") or "/usr/sbin/sshd"
    import subprocess

    text = subprocess.run([out, "-T", "-f", str(server.root / "sshd_config")], capture_output=True, text=True,
                          check=True).stdout
    return next(line.split()[1] for line in text.splitlines() if line.startswith("kexalgorithms ")).split(",")


# -- Debian's OpenSSH 9.2: sntrup761 offered, ML-KEM not ------------------------------------------------


def test_the_negotiated_key_exchange_with_openssh_is_named_in_the_json_as_the_server_ran_it(
        drill, debian_sshd: Sshd, client_key: Path, cli, tmp_path: Path) -> None:
    offered = server_kex_list(debian_sshd)
    assert SNTRUP in offered and "curve25519-sha256" in offered
    code, listed, err = list_json(cli, drill, ssh_config(tmp_path, debian_sshd, client_key), tmp_path)
    assert code == 0, err
    transport = listed["transport"]
    # The best both ends can run: post-quantum when this client can run one the server offers.
    expected = next(a for a in [*usable_post_quantum(), "curve25519-sha256"] if a in offered)
    assert transport == {"protocol": "ssh", "host": "backup", "key_exchange": expected,
                         "post_quantum": expected in POST_QUANTUM_KEX, "cipher": transport["cipher"]}
    assert kex_in_log(debian_sshd)[-1] == expected  # what the server itself ran
    assert transport["cipher"] and transport["cipher"] in debian_sshd.log.read_text()


def test_post_quantum_only_against_openssh_9_2_runs_sntrup761_or_is_refused_naming_what_it_offers(
        drill, debian_sshd: Sshd, client_key: Path, cli, tmp_path: Path) -> None:
    config = ssh_config(tmp_path, debian_sshd, client_key)
    code, listed, err = list_json(cli, drill, config, tmp_path, "--ssh-kex", "post-quantum-only")
    if SNTRUP in usable_post_quantum():  # asyncssh with liboqs runs sntrup761
        assert code == 0 and listed["transport"]["key_exchange"] == SNTRUP and listed["transport"]["post_quantum"]
        return
    assert code == ClassicKeyExchangeRefused.exit_code == 75, err
    assert "Traceback" not in err
    # The server's list is named, sntrup761 among it, with why this client cannot run it.
    assert "offers no post-quantum SSH key exchange this client can run" in err
    assert SNTRUP in err and "curve25519-sha256" in err and "liboqs" in err
    assert "ssh_kex = post-quantum-only" in err and "--ssh-kex" in err
    assert "ext-info-s" not in err and "kex-strict" not in err  # extension markers are not key exchanges


# -- a server limited to classic key exchange -----------------------------------------------------------


def test_a_classic_only_server_works_by_default_and_the_json_says_classic(
        drill, classic_sshd: Sshd, client_key: Path, cli, tmp_path: Path) -> None:
    code, listed, err = list_json(cli, drill, ssh_config(tmp_path, classic_sshd, client_key), tmp_path)
    assert code == 0, err
    assert listed["transport"]["key_exchange"] == "curve25519-sha256"
    assert listed["transport"]["post_quantum"] is False
    assert kex_in_log(classic_sshd)[-1] == "curve25519-sha256"
    assert [s["id"] for s in listed["snapshots"]] == list(reversed(drill.doc["snapshots"]["ids"]))


def test_a_classic_only_server_is_refused_by_the_flag_the_environment_and_the_config_file(
        drill, classic_sshd: Sshd, client_key: Path, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = ssh_config(tmp_path, classic_sshd, client_key)
    code, _, err = list_json(cli, drill, config, tmp_path, "--ssh-kex", "post-quantum-only")
    assert code == 75, err
    last = err.strip().splitlines()[-1]
    assert "offers only classic SSH key exchange (curve25519-sha256)" in err
    assert "ssh_kex = post-quantum-only (--ssh-kex) refuses classic key exchange" in err and MLKEM in err
    assert "enable mlkem768x25519-sha256 on the server" in err and "Traceback" not in err, last

    monkeypatch.setenv("ENIGM_RECOVER_SSH_KEX", "post-quantum-only")
    assert list_json(cli, drill, config, tmp_path)[0] == 75
    assert list_json(cli, drill, config, tmp_path, "--ssh-kex", "prefer-post-quantum")[0] == 0  # the flag wins
    monkeypatch.delenv("ENIGM_RECOVER_SSH_KEX")

    settings = Path(tmp_path / "config.toml")
    settings.write_text('ssh_kex = "post-quantum-only"\n')
    settings.chmod(0o600)
    code, _, err = cli("--config", settings, "--cache-dir", tmp_path / "cache", "snapshots", "list",
                       f"sftp://backup{drill.snapshots}", "--ssh-config", config, "--json")
    assert code == 75 and "curve25519-sha256" in err, err


def test_an_unknown_ssh_kex_value_is_refused_with_the_values_allowed(drill, cli, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENIGM_RECOVER_SSH_KEX", "quantum-please")
    code, _, err = cli("--cache-dir", tmp_path / "c", "snapshots", "list", "sftp://nowhere.invalid/x", "--json")
    assert code == ConfigError.exit_code, err
    assert "quantum-please" in err and "prefer-post-quantum" in err and "post-quantum-only" in err
    monkeypatch.delenv("ENIGM_RECOVER_SSH_KEX")
    code, _, err = cli("config", "set", "ssh_kex", "quantum-please")
    assert code == ConfigError.exit_code and "post-quantum-only" in err, err
    assert "quantum-please" not in cli("config", "show")[1]  # nothing was saved


# -- the in-process asyncssh server: ML-KEM ---------------------------------------------------------------


@pytest.fixture
def asyncssh_server(drill, tmp_path: Path):
    from enigm_recover.drill.sftp_server import ServerKeys, SnapshotServer

    keys = ServerKeys.generate()
    server = SnapshotServer(drill.snapshots, keys)
    port = server.start()
    key_path = tmp_path / "drill_client"
    keys.client_key.write_private_key(str(key_path))
    known = tmp_path / "known_hosts"
    known.write_text(keys.known_hosts_line(port) + "\n")
    config = tmp_path / "ssh_config"
    config.write_text(f"Host backup\n  HostName 127.0.0.1\n  Port {port}\n  User drill\n  IdentityFile {key_path}\n"
                      f"  UserKnownHostsFile {known}\n")
    yield config
    server.stop()


def test_an_asyncssh_server_offering_mlkem_negotiates_it_even_when_post_quantum_is_required(
        drill, asyncssh_server: Path, cli, tmp_path: Path) -> None:
    for extra in ((), ("--ssh-kex", "post-quantum-only")):
        code, out, err = cli("--cache-dir", tmp_path / "cache", "snapshots", "list", "sftp://backup/",
                             "--ssh-config", asyncssh_server, "--allowed-signers", drill.allowed_signers, *extra,
                             "--json")
        assert code == 0, err
        assert json.loads(out)["transport"]["key_exchange"] == MLKEM
        assert json.loads(out)["transport"]["post_quantum"] is True
    code, out, err = cli("--cache-dir", tmp_path / "cache", "snapshots", "list", "sftp://backup/",
                         "--ssh-config", asyncssh_server)
    assert code == 0, err
    assert f"transport SSH key exchange {MLKEM} (post-quantum)" in out
    code, out, err = cli("--cache-dir", tmp_path / "cache", "verify", "sftp://backup/", "latest", "--ssh-config",
                         asyncssh_server, "--allowed-signers", drill.allowed_signers, "--ssh-kex", "post-quantum-only",
                         "--json")
    assert code == 0, err
    verified = json.loads(out)
    assert verified["ok"] and verified["transport"]["key_exchange"] == MLKEM and verified["transport"]["post_quantum"]


def test_readiness_over_sftp_names_the_key_exchange_in_its_source_evidence(drill, asyncssh_server: Path, cli,
                                                                          tmp_path: Path) -> None:
    code, out, err = cli("--cache-dir", tmp_path / "cache", "--state-dir", tmp_path / "state", "readiness",
                         "sftp://backup/", "--ssh-config", asyncssh_server, "--allowed-signers",
                         drill.allowed_signers, "--recipient", drill.recipient, "--max-age", "3650d", "--json")
    assert out, err
    source = next(c for c in json.loads(out)["checks"] if c["name"] == "source")
    assert source["ok"] is True, err
    assert any(e.startswith(f"reached over SSH key exchange {MLKEM} (post-quantum)") for e in source["evidence"])


def test_the_server_offer_is_read_from_asyncssh_s_refusal_without_extension_markers() -> None:
    reason = ("No matching key exchange algorithm found, sent mlkem768x25519-sha256,ext-info-c and received "
              "curve25519-sha256,ext-info-s,kex-strict-s-v00@openssh.com")
    assert server_offer(reason) == ["curve25519-sha256"]
    assert server_offer("Unable to find compatible server host key") is None


def test_the_app_refuses_classic_key_exchange_as_the_configuration_says(drill, cli, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The app builds its SSH settings from the same flag, environment variable and config file setting."""
    from enigm_recover.app.app import RecoverApp
    from enigm_recover.cli.commands_app import app_options
    from enigm_recover.cli.context import Context
    from enigm_recover.cli.parser import build_parser

    def ssh_settings(*argv: str):
        ctx = Context(build_parser().parse_args(["app", *argv]))
        options = app_options(ctx, source="sftp://backup/", target=drill.target, allowed_signers=None, runbook=None,
                              operator="dana")
        return RecoverApp(options).run_settings().ssh

    assert ssh_settings().require_post_quantum_kex is False
    assert ssh_settings("--ssh-kex", "post-quantum-only").require_post_quantum_kex is True
    assert cli("config", "set", "ssh_kex", "post-quantum-only")[0] == 0
    assert ssh_settings().require_post_quantum_kex is True
    assert ssh_settings("--ssh-kex", "prefer-post-quantum").require_post_quantum_kex is False


def test_without_any_post_quantum_key_exchange_here_post_quantum_only_refuses_before_connecting(
        drill, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An asyncssh that runs no post-quantum key exchange: refused at once, not tried against the server."""
    from enigm_recover.sources import kex

    monkeypatch.setattr(kex, "get_kex_algs", lambda: [b"curve25519-sha256"])
    config = tmp_path / "ssh_config"
    config.write_text("Host backup\n  HostName 127.0.0.1\n  Port 9\n")  # nothing listens on the discard port
    code, _, err = cli("--cache-dir", tmp_path / "c", "snapshots", "list", "sftp://backup/x", "--ssh-config", config,
                       "--ssh-kex", "post-quantum-only")
    assert code == 75, err
    assert "runs no post-quantum one" in err and "--ssh-kex prefer-post-quantum" in err
