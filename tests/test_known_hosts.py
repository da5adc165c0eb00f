"""Host keys trusted as OpenSSH trusts them: global known_hosts files, hashed names, host certificates."""

from __future__ import annotations

import getpass
import subprocess
from pathlib import Path

import asyncssh
import pytest

from enigm_recover.sources.known_hosts import DEFAULT_GLOBAL_FILES, DEFAULT_USER_FILES, known_hosts_files
from tests.sshd import keygen, start_sshd

pytestmark = pytest.mark.tools


@pytest.fixture(autouse=True)
def no_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("ssh-keys")
    keygen(home / "client")
    keygen(home / "host_ca", "host-ca")
    keygen(home / "other_ca", "other-ca")
    return home


@pytest.fixture(scope="module")
def sshd(keys: Path, tmp_path_factory: pytest.TempPathFactory):
    server = start_sshd(tmp_path_factory.mktemp("sshd"), [keys / "client"])
    yield server
    server.stop()


@pytest.fixture(scope="module")
def certified_sshd(keys: Path, tmp_path_factory: pytest.TempPathFactory):
    server = start_sshd(tmp_path_factory.mktemp("sshd-cert"), [keys / "client"], host_ca=keys / "host_ca")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def misnamed_sshd(keys: Path, tmp_path_factory: pytest.TempPathFactory):
    """Its host certificate names another host."""
    server = start_sshd(tmp_path_factory.mktemp("sshd-misnamed"), [keys / "client"], host_ca=keys / "host_ca",
                        host_principals="backup.example")
    yield server
    server.stop()


def ssh_config(tmp_path: Path, server, keys: Path, **options: object) -> Path:
    lines = ["Host backup", "  HostName 127.0.0.1", f"  Port {server.port}", f"  User {getpass.getuser()}",
             f"  IdentityFile {keys / 'client'}", "  IdentitiesOnly yes"]
    lines += [f"  {name} {value}" for name, value in options.items()]
    path = tmp_path / "ssh_config"
    path.write_text("\n".join(lines) + "\n")
    return path


def listing(cli, drill, config: Path, *extra: object) -> tuple[int, str, str]:
    return cli("snapshots", "list", f"sftp://backup{drill.snapshots}", "--ssh-config", config, *extra)


def test_a_key_in_the_global_known_hosts_file_is_trusted(drill, sshd, keys, cli, tmp_path: Path) -> None:
    user, global_ = tmp_path / "known_hosts", tmp_path / "ssh_known_hosts"
    user.write_text("")
    global_.write_text("# no key yet\n")
    config = ssh_config(tmp_path, sshd, keys, UserKnownHostsFile=user, GlobalKnownHostsFile=global_)
    code, _, err = listing(cli, drill, config)
    assert code == 31 and sshd.fingerprint() in err and str(global_) in err  # unknown: both files were read
    global_.write_text(sshd.known_hosts_line + "\n")
    code, out, err = listing(cli, drill, config)
    assert code == 0, err
    assert drill.latest in out and user.read_text() == ""  # nothing recorded: the global file vouched
    # --known-hosts replaces the user's files only, as ssh -o UserKnownHostsFile= does
    code, _, err = listing(cli, drill, config, "--known-hosts", tmp_path / "elsewhere")
    assert code == 0, err


def test_a_key_revoked_in_the_global_file_is_refused_though_the_user_file_trusts_it(
        drill, sshd, keys, cli, tmp_path: Path) -> None:
    user, global_ = tmp_path / "known_hosts", tmp_path / "ssh_known_hosts"
    user.write_text(sshd.known_hosts_line + "\n")
    kind, key = sshd.host_key.with_suffix(".pub").read_text().split()[:2]
    global_.write_text(f"@revoked * {kind} {key}\n")
    config = ssh_config(tmp_path, sshd, keys, UserKnownHostsFile=user, GlobalKnownHostsFile=global_)
    code, _, err = listing(cli, drill, config)
    assert code == 32 and "revoked" in err


def test_without_a_config_the_files_are_openssh_defaults(tmp_path: Path) -> None:
    probe = asyncssh.SSHClientConnectionOptions(config=[], host="backup", known_hosts=None, client_keys=None,
                                                agent_path=None)
    files = known_hosts_files(probe, None, [])
    assert files.user == tuple(Path(p).expanduser() for p in DEFAULT_USER_FILES)
    assert files.global_ == tuple(Path(p) for p in DEFAULT_GLOBAL_FILES) and not files.hash_names


@pytest.mark.parametrize("hashed", [True, False])
def test_an_accepted_key_is_recorded_hashed_when_hash_known_hosts_says_so(drill, sshd, keys, cli, tmp_path: Path,
                                                                            hashed: bool) -> None:
    user = tmp_path / "known_hosts"
    options = {"UserKnownHostsFile": user, "GlobalKnownHostsFile": tmp_path / "none"}
    if hashed:
        options["HashKnownHosts"] = "yes"
    config = ssh_config(tmp_path, sshd, keys, **options)
    code, _, err = listing(cli, drill, config, "--accept-new-host-key", sshd.fingerprint())
    assert code == 0, err
    recorded = user.read_text()
    assert ("127.0.0.1" not in recorded and recorded.startswith("|1|")) if hashed else \
        recorded.startswith(f"[127.0.0.1]:{sshd.port} ")
    # OpenSSH itself finds the host in the file it reads
    found = subprocess.run(["ssh-keygen", "-F", f"[127.0.0.1]:{sshd.port}", "-f", str(user)], capture_output=True,
                           text=True)
    assert found.returncode == 0 and sshd.host_key.with_suffix(".pub").read_text().split()[1] in found.stdout
    code, _, err = listing(cli, drill, config)  # and so does the next connection, with no acceptance
    assert code == 0, err


def ca_line(keys: Path, name: str, pattern: str = "*") -> str:
    return f"@cert-authority {pattern} {(keys / f'{name}.pub').read_text().strip()}\n"


def test_a_host_certificate_from_a_trusted_ca_is_accepted(drill, certified_sshd, keys, cli, tmp_path: Path) -> None:
    user = tmp_path / "known_hosts"
    user.write_text(ca_line(keys, "host_ca", "[127.0.0.1]:*"))
    config = ssh_config(tmp_path, certified_sshd, keys, UserKnownHostsFile=user,
                        GlobalKnownHostsFile=tmp_path / "none")
    code, out, err = listing(cli, drill, config)
    assert code == 0, err
    assert drill.latest in out
    # the CA line may live in the global file as well
    user.write_text("")
    (tmp_path / "global").write_text(ca_line(keys, "host_ca"))
    config = ssh_config(tmp_path, certified_sshd, keys, UserKnownHostsFile=user,
                        GlobalKnownHostsFile=tmp_path / "global")
    code, _, err = listing(cli, drill, config)
    assert code == 0, err


@pytest.mark.parametrize("case", ["another CA", "a CA for other hosts", "a certificate for another host"])
def test_a_host_certificate_is_refused_unless_its_ca_vouches_for_this_host(
        drill, certified_sshd, misnamed_sshd, keys, cli, tmp_path: Path, case: str) -> None:
    server = misnamed_sshd if case == "a certificate for another host" else certified_sshd
    line = {"another CA": ca_line(keys, "other_ca"), "a CA for other hosts": ca_line(keys, "host_ca", "*.example"),
            "a certificate for another host": ca_line(keys, "host_ca")}[case]
    user = tmp_path / "known_hosts"
    user.write_text(line)
    config = ssh_config(tmp_path, server, keys, UserKnownHostsFile=user, GlobalKnownHostsFile=tmp_path / "none")
    code, _, err = listing(cli, drill, config)
    assert code in (31, 32), err  # not trusted: unknown host key, never a connection
    assert "Traceback" not in err
