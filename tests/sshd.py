"""A real OpenSSH sshd on 127.0.0.1 that the test suite starts itself, with its own keys and config."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"sshd did not listen on {port} within {timeout} s")


def keygen(path: Path, comment: str = "test", passphrase: str = "") -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", comment, "-f", str(path)],
                   check=True)
    return path


@dataclass
class Sshd:
    root: Path
    port: int
    host_key: Path
    log: Path
    process: subprocess.Popen

    @property
    def known_hosts_line(self) -> str:
        kind, key, *_ = self.host_key.with_suffix(".pub").read_text().split()
        return f"[127.0.0.1]:{self.port} {kind} {key}"

    def fingerprint(self) -> str:
        out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(self.host_key.with_suffix(".pub"))],
                             capture_output=True, text=True, check=True).stdout
        return out.split()[1]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_sshd(root: Path, authorized_keys: list[Path], log_level: str = "ERROR", host_ca: Path | None = None,
               host_principals: str = "127.0.0.1", extra_config: str = "") -> Sshd:
    """A running sshd; with ``host_ca`` its host key is certified by that CA for ``host_principals``;
    ``extra_config``: more sshd_config lines (e.g. ``KexAlgorithms curve25519-sha256``)."""
    root.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation folder
    host_key = keygen(root / "host_ed25519", "host")
    certificate = ""
    if host_ca is not None:
        subprocess.run(["ssh-keygen", "-q", "-s", str(host_ca), "-h", "-I", "test-host", "-n", host_principals,
                        "-V", "-5m:+1h", str(host_key.with_suffix(".pub"))], check=True)
        certificate = f"HostCertificate {root / 'host_ed25519-cert.pub'}\n"
    (root / "authorized_keys").write_text("".join(p.with_suffix(".pub").read_text() for p in authorized_keys))
    port = free_port()
    log = root / "sshd.log"
    config = root / "sshd_config"
    config.write_text(f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {root / 'sshd.pid'}
AuthorizedKeysFile {root / 'authorized_keys'}
AllowUsers {getpass.getuser()}
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
AllowTcpForwarding yes
Subsystem sftp internal-sftp
LogLevel {log_level}
{certificate}{extra_config}""")
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config), "-E", str(log)])
    wait_for_port(port, process)
    return Sshd(root, port, host_key, log, process)


def wait_for_socket(path: Path, process: subprocess.Popen, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{path} did not appear")
        time.sleep(0.02)
