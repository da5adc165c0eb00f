"""Snapshot sources over SSH: a real OpenSSH sshd, a jump host, and the in-process drill server."""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import json
import os
import shutil
from pathlib import Path

import asyncssh
import pytest

from enigm_recover.drill.sftp_server import ReadOnlySFTPServer, ServerKeys, SnapshotServer
from enigm_recover.errors import AuthenticationFailed, ConnectionFailed
from enigm_recover.snapshot.catalog import resolve
from enigm_recover.snapshot.manifest import payload_name
from enigm_recover.snapshot.signature import load_allowed_signers
from enigm_recover.snapshot.verify import verify_entry
from enigm_recover.sources.sftp import SftpSource, SftpURL
from enigm_recover.sources.ssh import SSHSettings
from tests.helpers import read_manifest, write_signed_manifests
from tests.sshd import Sshd, start_sshd

pytestmark = pytest.mark.skipif(not shutil.which("ssh-keygen"), reason="needs ssh-keygen")


class RecordingPrompter:
    def __init__(self, answers: dict[str, str] | None = None) -> None:
        self.answers = answers or {}
        self.asked: list[str] = []
        self.notices: list[str] = []

    def ask_secret(self, prompt: str) -> str:
        self.asked.append(prompt)
        return next((v for k, v in self.answers.items() if k in prompt), "")

    def notice(self, message: str) -> None:
        self.notices.append(message)


@pytest.fixture(autouse=True)
def no_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


@pytest.fixture(scope="module")
def jump_sshd(ssh_home: Path, tmp_path_factory: pytest.TempPathFactory):
    server = start_sshd(tmp_path_factory.mktemp("jump"), [ssh_home / "client"], log_level="DEBUG1")
    yield server
    server.stop()


def write_config(path: Path, hosts: dict[str, dict[str, object]]) -> Path:
    lines = []
    for alias, options in hosts.items():
        lines.append(f"Host {alias}")
        lines += [f"  {k} {v}" for k, v in options.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def backup(drill, sshd: Sshd, ssh_home: Path, tmp_path: Path):
    """An ssh config naming the real sshd as `backup`, with its key already known."""
    known = tmp_path / "known_hosts"
    known.write_text(sshd.known_hosts_line + "\n")
    config = write_config(tmp_path / "ssh_config", {"backup": {
        "HostName": "127.0.0.1", "Port": sshd.port, "User": getpass.getuser(),
        "IdentityFile": ssh_home / "client", "IdentitiesOnly": "yes", "UserKnownHostsFile": known}})
    return config, known, f"sftp://backup{drill.snapshots}"


def test_list_verify_and_unseal_over_real_openssh(drill, backup, cli, tmp_path: Path) -> None:
    config, _, source = backup
    cache = tmp_path / "cache"
    code, out, err = cli("--cache-dir", cache, "snapshots", "list", source, "--ssh-config", config,
                         "--allowed-signers", drill.allowed_signers, "--recipient", drill.recipient, "--json")
    assert code == 0, err
    listed = json.loads(out)
    assert listed["rejected"] == []  # OpenSSH's "." and ".." are not hostile names
    assert [s["id"] for s in listed["snapshots"]] == list(reversed(drill.doc["snapshots"]["ids"]))
    assert all(s["signature"] == "trusted" and s["recipient_matches"] for s in listed["snapshots"])
    assert not list(cache.rglob("*.payload.age"))  # listing never reads payloads
    out_file = tmp_path / "r.jsonl"
    code, _, err = cli("--cache-dir", cache, "unseal", source, "latest", "--ssh-config", config,
                       "--allowed-signers", drill.allowed_signers, "--out", out_file,
                       *sum((["--share-file", str(drill.card(n))] for n in ("amara", "chen", "emeka")), []))
    assert code == 0, err
    cached = list(cache.rglob("*.payload.age"))
    assert [p.name for p in cached] == [payload_name(drill.latest)]
    assert cached[0].read_bytes() == (drill.snapshots / payload_name(drill.latest)).read_bytes()


def test_an_altered_remote_payload_fails_verify_with_its_check_named(drill, backup, cli, tmp_path: Path) -> None:
    config, _, source = backup
    payload = drill.snapshots / payload_name(drill.latest)
    data = bytearray(payload.read_bytes())
    data[len(data) // 2] ^= 0x01
    payload.write_bytes(bytes(data))
    code, out, _ = cli("--cache-dir", tmp_path / "cache", "verify", source, "latest", "--ssh-config", config,
                       "--allowed-signers", drill.allowed_signers, "--json")
    report = json.loads(out)
    assert code == 12 and not report["ok"] and report["exit_code"] == 12
    assert [c["name"] for c in report["checks"] if not c["ok"]] == ["payload sha256"]
    assert not list((tmp_path / "cache").rglob("*.payload.age"))  # never renamed into place


def test_unknown_host_key_is_refused_with_its_fingerprint_until_accepted(drill, backup, sshd, cli,
                                                                         tmp_path: Path) -> None:
    config, known, source = backup
    known.write_text("")
    args = ["--cache-dir", tmp_path / "c", "snapshots", "list", source, "--ssh-config", config]
    code, _, err = cli(*args)
    assert code == 31 and sshd.fingerprint() in err and "--accept-new-host-key" in err
    code, _, err = cli(*args, "--accept-new-host-key", "SHA256:" + "A" * 43)
    assert code == 31 and known.read_text() == ""
    code, _, err = cli(*args, "--accept-new-host-key", sshd.fingerprint())
    assert code == 0, err
    assert f"[127.0.0.1]:{sshd.port} ssh-ed25519" in known.read_text()
    assert cli(*args)[0] == 0  # now known: no flag needed


def test_changed_host_key_is_always_refused(drill, backup, sshd, cli, tmp_path: Path) -> None:
    config, known, source = backup
    impostor = ServerKeys.generate().known_hosts_line(sshd.port)
    known.write_text(impostor + "\n")
    code, _, err = cli("--cache-dir", tmp_path / "c", "snapshots", "list", source, "--ssh-config", config,
                       "--accept-new-host-key", sshd.fingerprint())
    assert code == 32 and "CHANGED" in err
    assert known.read_text() == impostor + "\n"


def test_unauthorised_client_key(drill, backup, ssh_home, cli, tmp_path: Path) -> None:
    config, _, source = backup
    code, _, err = cli("--cache-dir", tmp_path / "c", "snapshots", "list", source, "--ssh-config", config,
                       "--identity", ssh_home / "stranger")
    assert code == 33 and "refused" in err


def test_proxyjump_through_a_second_sshd(drill, sshd, jump_sshd, ssh_home, cli, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(sshd.known_hosts_line + "\n" + jump_sshd.known_hosts_line + "\n")
    common = {"User": getpass.getuser(), "IdentityFile": ssh_home / "client", "IdentitiesOnly": "yes",
              "UserKnownHostsFile": known}
    config = write_config(tmp_path / "ssh_config", {
        "bastion": {"HostName": "127.0.0.1", "Port": jump_sshd.port, **common},
        "vault": {"HostName": "127.0.0.1", "Port": sshd.port, "ProxyJump": "bastion", **common},
    })
    code, out, err = cli("--cache-dir", tmp_path / "c", "verify", f"sftp://vault{drill.snapshots}", "latest",
                         "--ssh-config", config, "--allowed-signers", drill.allowed_signers, "--json")
    assert code == 0, err
    assert f"target 127.0.0.1 port {sshd.port}" in jump_sshd.log.read_text()  # the hop really carried it


def test_unknown_jump_host_is_refused_too(drill, sshd, jump_sshd, ssh_home, cli, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(sshd.known_hosts_line + "\n")  # the bastion's key is not known
    common = {"User": getpass.getuser(), "IdentityFile": ssh_home / "client", "UserKnownHostsFile": known}
    config = write_config(tmp_path / "ssh_config", {
        "bastion": {"HostName": "127.0.0.1", "Port": jump_sshd.port, **common},
        "vault": {"HostName": "127.0.0.1", "Port": sshd.port, "ProxyJump": "bastion", **common}})
    code, _, err = cli("--cache-dir", tmp_path / "c", "snapshots", "list", f"sftp://vault{drill.snapshots}",
                       "--ssh-config", config)
    assert code == 31 and jump_sshd.fingerprint() in err


def test_a_thousand_snapshots_list_over_openssh(drill, backup, tmp_path: Path, cli) -> None:
    config, _, _ = backup
    folder = tmp_path / "many"
    folder.mkdir()
    write_signed_manifests(folder, drill.signing_key, 1000, read_manifest(drill.snapshots, drill.latest).recipient)
    code, out, err = cli("--cache-dir", tmp_path / "c", "snapshots", "list", f"sftp://backup{folder}",
                         "--ssh-config", config, "--allowed-signers", drill.allowed_signers, "--json")
    assert code == 0, err
    snaps = json.loads(out)["snapshots"]
    assert len(snaps) == 1000
    assert all(s["signature"] == "trusted" for s in snaps)
    assert snaps[0]["id"].startswith("20240211T1500") and snaps[-1]["id"].startswith("20240101T0000")


# -- the in-process server: faults a real sshd cannot be told to make ---------------------


@pytest.fixture
def served(drill, tmp_path: Path):
    """Start an in-process server for the drill's snapshots with a given SFTP factory."""
    servers: list[SnapshotServer] = []

    def start(sftp_factory=None, server_factory=None, client_passphrase: str | None = None):
        keys = ServerKeys.generate()
        server = SnapshotServer(drill.snapshots, keys, sftp_factory=sftp_factory, server_factory=server_factory,
                                client_key_auth=server_factory is None)
        port = server.start()
        servers.append(server)
        key_path = tmp_path / f"client{len(servers)}"
        keys.client_key.write_private_key(str(key_path), passphrase=client_passphrase)
        known = tmp_path / "known_hosts"
        known.write_text(keys.known_hosts_line(port) + "\n")
        config = write_config(tmp_path / "ssh_config", {"drill": {
            "HostName": "127.0.0.1", "Port": port, "User": "drill", "IdentityFile": key_path,
            "UserKnownHostsFile": known}})
        return config

    yield start
    for server in servers:
        server.stop()


def open_drill_source(config: Path, tmp_path: Path, prompter=None, **settings) -> SftpSource:
    return SftpSource(SftpURL.parse("sftp://drill/"),
                      SSHSettings(config_files=[config], prompter=prompter or RecordingPrompter(), **settings),
                      tmp_path / "cache")


class DroppingSFTP(ReadOnlySFTPServer):
    """Drops the whole connection once, after serving part of a payload."""

    dropped = False
    reads: list[tuple[str, int]] = []  # (file name, offset)

    async def read(self, file_obj, offset, size):
        name = Path(os.fsdecode(file_obj.name)).name
        DroppingSFTP.reads.append((name, offset))
        if not DroppingSFTP.dropped and offset >= 3 * 4096 and name.endswith(".payload.age"):
            DroppingSFTP.dropped = True
            await asyncio.sleep(0.3)  # let the client take in the blocks already sent
            self.connection.abort()
            raise asyncssh.SFTPConnectionLost("dropped")
        return super().read(file_obj, offset, size)


def test_dropped_connection_mid_download_resumes(drill, served, tmp_path: Path) -> None:
    DroppingSFTP.dropped, DroppingSFTP.reads = False, []
    config = served(sftp_factory=lambda chan: DroppingSFTP(chan, drill.snapshots))
    from enigm_recover import sources

    sources.sftp.FETCH_READ_SIZE = 4096  # several reads for a small payload
    try:
        prompter = RecordingPrompter()
        with open_drill_source(config, tmp_path, prompter, retry_delay=0.01) as source:
            entry = resolve(source.list(), "latest")
            report, verified = verify_entry(source, entry, load_allowed_signers(drill.allowed_signers))
    finally:
        sources.sftp.FETCH_READ_SIZE = -1
    assert report.ok, report.as_dict()
    assert DroppingSFTP.dropped and any("resuming" in n for n in prompter.notices)
    assert verified.payload_path.read_bytes() == (drill.snapshots / payload_name(drill.latest)).read_bytes()
    # The second connection continued where the first stopped instead of starting over.
    payload_offsets = [o for name, o in DroppingSFTP.reads if name.endswith(".payload.age")]
    drop = payload_offsets.index(3 * 4096)
    resumed = payload_offsets[drop + 1:]
    assert min(resumed) > 0 and min(resumed) <= 3 * 4096, payload_offsets


def test_verified_cached_payload_is_reused(drill, served, tmp_path: Path) -> None:
    DroppingSFTP.reads = []
    DroppingSFTP.dropped = True  # never drop; just count reads
    config = served(sftp_factory=lambda chan: DroppingSFTP(chan, drill.snapshots))
    allowed = load_allowed_signers(drill.allowed_signers)
    for downloads in (True, False):
        DroppingSFTP.reads = []
        with open_drill_source(config, tmp_path) as source:
            report, _ = verify_entry(source, resolve(source.list(), "latest"), allowed)
        assert report.ok
        assert any(name.endswith(".payload.age") for name, _ in DroppingSFTP.reads) is downloads


def test_verify_reads_a_fetched_or_reused_payload_once(drill, served, tmp_path: Path, monkeypatch) -> None:
    """The source checks size and SHA-256 as it fetches (or reuses) the payload; verify does not read it all
    again, and still reports the digest it was checked against."""
    from enigm_recover.snapshot import verify
    from enigm_recover.sources import sftp

    hashed: list[str] = []

    def counting(module):
        real = module.hash_file

        def hash_file(path, *args, **kwargs):
            hashed.append(module.__name__)
            return real(path, *args, **kwargs)

        monkeypatch.setattr(module, "hash_file", hash_file)

    counting(verify)
    counting(sftp)
    config = served()
    allowed = load_allowed_signers(drill.allowed_signers)
    for reads in ([], ["enigm_recover.sources.sftp"]):  # fetched (hashed as it arrived), then reused from cache
        hashed.clear()
        with open_drill_source(config, tmp_path) as source:
            entry = resolve(source.list(), "latest")
            report, verified = verify_entry(source, entry, allowed, hash_payload=True)
        assert report.ok, report.as_dict()
        assert hashed == reads
        digest = next(c.detail for c in report.checks if c.name == "payload sha256")
        assert digest == entry.manifest.payload_sha256 == hashlib.sha256(verified.payload_path.read_bytes()).hexdigest()


class HostileSFTP(ReadOnlySFTPServer):
    """Offers names a real file system cannot hold: path separators and parent references."""

    def scandir(self, path):  # type: ignore[override]
        async def entries():
            async for entry in super(HostileSFTP, self).scandir(path):
                yield entry
            for name in (b"../../etc/passwd.manifest.toml", b"x/y.manifest.toml", b"\x1b]0;pwned\x07.manifest.toml", b"..evil.manifest.toml",
                         b"a" * 300 + b".manifest.toml"):
                yield asyncssh.SFTPName(name, b"", asyncssh.SFTPAttrs(type=asyncssh.FILEXFER_TYPE_REGULAR))
        return entries()


def test_hostile_remote_names_are_refused_and_reported(drill, served, tmp_path: Path) -> None:
    outside = tmp_path / "outside.toml"
    outside.write_text("secret")
    os.symlink(outside, drill.snapshots / "20261127T000000Z-00000000.manifest.toml")
    config = served(sftp_factory=lambda chan: HostileSFTP(chan, drill.snapshots))
    with open_drill_source(config, tmp_path) as source:
        listing = source.list()
    assert sorted(e.id for e in listing.entries) == sorted(drill.doc["snapshots"]["ids"])
    reasons = "\n".join(listing.rejected)
    for expected in ("path separator", "parent folder", "control characters", "longer than 255",
                     "symbolic link"):
        assert expected in reasons, reasons


def test_invalid_signature_is_listed_as_invalid_not_hidden(drill, served, tmp_path: Path, cli) -> None:
    from tests.helpers import manifest_path

    first = drill.doc["snapshots"]["ids"][0]
    path = manifest_path(drill.snapshots, first)
    path.write_text(path.read_text().replace('environment = "drill"', 'environment = "prod"'))
    config = served()
    code, out, err = cli("--cache-dir", tmp_path / "c", "snapshots", "list", "sftp://drill/", "--ssh-config", config,
                         "--allowed-signers", drill.allowed_signers, "--json")
    assert code == 0, err
    status = {s["id"]: s["signature"] for s in json.loads(out)["snapshots"]}
    assert status[first] == "invalid" and len(status) == 3
    assert all(v == "trusted" for k, v in status.items() if k != first)


class OneTimeCodeServer(asyncssh.SSHServer):
    """Keyboard-interactive only: asks for a one-time code."""

    def begin_auth(self, username: str) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return True

    def get_kbdint_challenge(self, username, lang, submethods):
        return "", "Second factor", "", [("One-time code: ", False)]

    def validate_kbdint_response(self, username, responses):
        return list(responses) == ["492817"]


def test_keyboard_interactive_second_factor(drill, served, tmp_path: Path) -> None:
    config = served(server_factory=OneTimeCodeServer)
    prompter = RecordingPrompter({"One-time code": "492817"})
    with open_drill_source(config, tmp_path, prompter) as source:
        assert len(source.list().entries) == 3
    assert any("One-time code" in p for p in prompter.asked)
    wrong = RecordingPrompter({"One-time code": "000000"})
    with pytest.raises(AuthenticationFailed):
        with open_drill_source(config, tmp_path, wrong) as source:
            source.list()


def test_passphrase_protected_key_is_asked_for(drill, served, tmp_path: Path) -> None:
    config = served(client_passphrase="open sesame")
    prompter = RecordingPrompter({"Passphrase for key": "open sesame"})
    with open_drill_source(config, tmp_path, prompter) as source:
        assert len(source.list().entries) == 3
    assert sum("Passphrase for key" in p for p in prompter.asked) == 1


def test_connection_failures_are_retried_a_bounded_visible_number_of_times(tmp_path: Path) -> None:
    from tests.sshd import free_port

    config = write_config(tmp_path / "c", {"gone": {"HostName": "127.0.0.1", "Port": free_port()}})
    prompter = RecordingPrompter()
    source = SftpSource(SftpURL.parse("sftp://gone/x"),
                        SSHSettings(config_files=[config], known_hosts=tmp_path / "kh", prompter=prompter,
                                    retry_delay=0.01), tmp_path / "cache")
    with pytest.raises(ConnectionFailed, match="tried 3 times"):
        with source:
            source.list()
    assert [n.split(";")[1].strip().split(" in ")[0] for n in prompter.notices] == ["retry 2 of 3", "retry 3 of 3"]


def test_sftp_urls() -> None:
    url = SftpURL.parse("sftp://ops@backup-prod:2222/srv/snapshots")
    assert (url.target.user, url.target.host, url.target.port, url.path) == ("ops", "backup-prod", 2222, "/srv/snapshots")
    assert SftpURL.parse("sftp://backup-prod/~/snaps").path == "snaps"
    assert str(SftpURL.parse("sftp://h/~/snaps")) == "sftp://h/~/snaps"


def test_ssh_agent_is_used(drill, sshd, ssh_home, cli, tmp_path: Path, monkeypatch) -> None:
    """No identity file at all: the key comes from a real ssh-agent."""
    import subprocess

    if not shutil.which("ssh-agent") or not shutil.which("ssh-add"):
        pytest.skip("needs ssh-agent")
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        from tests.sshd import wait_for_socket

        wait_for_socket(sock, agent)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        subprocess.run(["ssh-add", "-q", str(ssh_home / "client")], check=True, env={"SSH_AUTH_SOCK": str(sock)})
        known = tmp_path / "known_hosts"
        known.write_text(sshd.known_hosts_line + "\n")
        config = write_config(tmp_path / "ssh_config", {"backup": {
            "HostName": "127.0.0.1", "Port": sshd.port, "User": getpass.getuser(),
            "IdentityFile": tmp_path / "no-such-key", "UserKnownHostsFile": known}})
        code, out, err = cli("--cache-dir", tmp_path / "c", "snapshots", "list", f"sftp://backup{drill.snapshots}",
                             "--ssh-config", config, "--json")
        assert code == 0, err
        assert len(json.loads(out)["snapshots"]) == 3
    finally:
        agent.terminate()
        agent.wait(timeout=10)


@pytest.mark.parametrize("damage", ["folder", "link-outside", "unsigned"])
def test_a_refused_newest_remote_entry_stops_latest(drill, served, tmp_path: Path, cli, damage: str) -> None:
    """`latest` over SFTP never falls back to an older snapshot when the newest entry is refused."""
    from enigm_recover.snapshot.manifest import manifest_name

    newer = "20261126T130000Z-0badc0de"
    path = drill.snapshots / manifest_name(newer)
    if damage == "folder":
        path.mkdir()
    elif damage == "link-outside":
        (tmp_path / "elsewhere.toml").write_text("x")
        os.symlink(tmp_path / "elsewhere.toml", path)
    else:
        import dataclasses
        from datetime import datetime, timezone

        created = datetime(2026, 11, 26, 13, tzinfo=timezone.utc)
        path.write_bytes(dataclasses.replace(read_manifest(drill.snapshots, drill.latest), id=newer,
                                             created_at=created).to_toml())  # and no signature
    config = served()
    base = ["--cache-dir", tmp_path / "c", "verify", "sftp://drill/", "--ssh-config", config,
            "--allowed-signers", drill.allowed_signers]
    code, _, err = cli(*base[:4], "latest", *base[4:])
    assert code in (7, 10) and newer in err and "older snapshot" in err, err
    code, _, err = cli(*base[:4], drill.latest, *base[4:])
    assert code == 0, err


class CountingSFTP(ReadOnlySFTPServer):
    """Counts SFTP sessions (one per connection) and folder listings."""

    sessions = 0
    listings = 0

    def __init__(self, chan, root) -> None:
        CountingSFTP.sessions += 1
        super().__init__(chan, root)

    def scandir(self, path):  # type: ignore[override]
        CountingSFTP.listings += 1
        return super().scandir(path)


def test_a_run_connects_to_and_lists_its_source_once(drill, served, cli, tmp_path: Path) -> None:
    CountingSFTP.sessions = CountingSFTP.listings = 0
    config = served(sftp_factory=lambda chan: CountingSFTP(chan, drill.snapshots))
    code, out, err = cli("--state-dir", tmp_path / "state", "--cache-dir", tmp_path / "cache", "run",
                         "tabletop-drill", "--source", "sftp://drill/", "--ssh-config", config, "--target",
                         drill.target, "--allowed-signers", drill.allowed_signers, "--operator", "dana",
                         *sum((["--share-file", drill.card(n)] for n in ("amara", "chen", "emeka")), []),
                         "--yes", "--second-operator", "lee", "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "completed"
    assert (CountingSFTP.sessions, CountingSFTP.listings) == (1, 1)


def test_an_unknown_host_key_error_carries_its_fingerprint_as_a_field(drill, served, tmp_path: Path) -> None:
    """A face offers the fingerprint for confirmation from the error's field, never by parsing its text."""
    from enigm_recover.errors import HostKeyUnknown

    config = served()
    _host, algorithm, key = (tmp_path / "known_hosts").read_text().split()[:3]
    (tmp_path / "known_hosts").write_text("")
    with pytest.raises(HostKeyUnknown) as caught:
        open_drill_source(config, tmp_path).list()
    assert caught.value.fingerprint == asyncssh.import_public_key(f"{algorithm} {key}").get_fingerprint("sha256")
