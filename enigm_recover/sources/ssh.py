"""Opening SSH connections the way OpenSSH users expect, with strict host keys.

Honours the OpenSSH client config (User, Port, HostName, IdentityFile,
ProxyJump, UserKnownHostsFile, GlobalKnownHostsFile, HashKnownHosts,
HostKeyAlias), known_hosts with @cert-authority and @revoked lines, the ssh-agent,
passphrase-protected keys and keyboard-interactive second factors. Prompts go
through a ``Prompter`` the caller supplies (the terminal or a dialog).

Host keys: an unknown host is refused with its fingerprint, and accepted only
when the caller passes that exact fingerprint (then it is recorded in
known_hosts). A changed or revoked key is always refused. Every hop of a
ProxyJump chain gets the same treatment. Transient connection failures are
retried a bounded, visible number of times; authentication and host-key
failures never are.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from enigm_recover.sources.load_asyncssh import asyncssh

from enigm_recover.bounded import KEY_FILE, TRUST_FILE, check_regular, read_bounded
from enigm_recover.sources.known_hosts import KnownHostsFiles, known_hosts_files, record_host_key
from enigm_recover.sources.kex import offered_kex, refusal, server_offer, usable_post_quantum
from enigm_recover.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    HostKeyChanged,
    HostKeyUnknown,
    SourceError,
)

DEFAULT_IDENTITIES = ("id_ed25519", "id_ecdsa", "id_rsa")
MAX_JUMP_DEPTH = 4
MAX_KBDINT_ROUNDS = 3  # a server may keep asking; we stop, as OpenSSH's client would
# When the user's config names no Ciphers: AES-GCM first (hardware-accelerated, and far cheaper in
# asyncssh than ChaCha20-Poly1305, which it runs packet by packet in Python), then OpenSSH's others.
PREFERRED_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com",
                     "aes256-ctr", "aes192-ctr", "aes128-ctr")
WINDOW = 16 << 20  # bytes in flight on the SFTP channel
MAX_PACKET = 256 << 10

log = logging.getLogger(__name__)


class Prompter(Protocol):
    def ask_secret(self, prompt: str) -> str:
        """Ask for a secret (passphrase, one-time code); never echoed."""
        ...

    def notice(self, message: str) -> None:
        """Tell the operator something (retries, banners)."""
        ...


class NoPrompter:
    """For non-interactive use: every prompt fails, naming what was asked."""

    def ask_secret(self, prompt: str) -> str:
        raise AuthenticationFailed(f"the SSH connection asked for input ({prompt.strip()}) but none can be given")

    def notice(self, message: str) -> None:
        pass


@dataclass(frozen=True)
class SSHTarget:
    host: str  # a host name, an address or a config alias
    port: int | None = None
    user: str | None = None

    @classmethod
    def parse_hop(cls, text: str) -> "SSHTarget":
        user, _, hostport = text.rpartition("@")
        host, port = hostport, None
        if hostport.startswith("["):
            host, _, rest = hostport[1:].partition("]")
            port = int(rest[1:]) if rest.startswith(":") else None
        elif hostport.count(":") == 1:
            host, port_text = hostport.split(":")
            port = int(port_text)
        return cls(host, port, user or None)

    def __str__(self) -> str:
        text = f"{self.user}@{self.host}" if self.user else self.host
        return f"{text}:{self.port}" if self.port else text


@dataclass
class SSHSettings:
    config_files: list[Path] | None = None  # None: the user's ~/.ssh/config
    known_hosts: Path | None = None  # None: UserKnownHostsFile from config, else ~/.ssh/known_hosts
    identities: list[Path] = field(default_factory=list)  # empty: IdentityFile from config, else defaults
    accept_host_key: str | None = None  # an unknown host's fingerprint the operator confirmed
    prompter: Prompter = field(default_factory=NoPrompter)
    connect_timeout: float = 15.0
    keepalive_interval: float = 15.0
    keepalive_count_max: int = 3
    attempts: int = 3
    retry_delay: float = 1.0
    require_post_quantum_kex: bool = False  # refuse a server that offers only classic key exchange

    def config_arg(self) -> Any:
        return () if self.config_files is None else [str(p) for p in self.config_files]


def _probe(target: SSHTarget, settings: SSHSettings) -> asyncssh.SSHClientConnectionOptions:
    """The config's view of a target (HostName, Port, User, ProxyJump, ...), without connecting."""
    default = [Path(os.path.expanduser("~/.ssh/config"))]
    for config in settings.config_files if settings.config_files is not None else default:
        check_regular(config, TRUST_FILE, "SSH client config", SourceError)  # asyncssh reads it itself
    try:
        return asyncssh.SSHClientConnectionOptions(
            config=settings.config_arg(), host=target.host, port=target.port or (),
            username=target.user or (), known_hosts=None, client_keys=None, agent_path=None)
    except (OSError, ValueError, asyncssh.ConfigParseError) as exc:
        raise SourceError(f"cannot use the SSH client config: {exc}") from None


def _known_hosts(target: SSHTarget, probe: asyncssh.SSHClientConnectionOptions,
                 settings: SSHSettings) -> KnownHostsFiles:
    configs = settings.config_files if settings.config_files is not None else \
        [Path(os.path.expanduser("~/.ssh/config"))]
    return known_hosts_files(probe, settings.known_hosts, configs, target.host)


def _identity_files(probe: asyncssh.SSHClientConnectionOptions, settings: SSHSettings) -> tuple[list[Path], bool]:
    """The key files to try, and whether they were named explicitly (then they must exist)."""
    if settings.identities:
        return settings.identities, True
    configured = probe.config.get("IdentityFile")
    if configured:
        return [Path(os.path.expanduser(p)) for p in configured], False
    return [Path.home() / ".ssh" / name for name in DEFAULT_IDENTITIES], False


def _load_keys(paths: list[Path], explicit: bool) -> tuple[list[asyncssh.SSHKey], list[Path]]:
    """Keys that load without a passphrase, and the files that need one (asked for lazily)."""
    plain, encrypted = [], []
    for path in paths:
        try:
            data = read_bounded(path, KEY_FILE, "identity file", SourceError, missing_ok=not explicit)
        except SourceError:
            if explicit:
                raise
            continue  # a default key file that cannot be read is skipped, as ssh does
        if data is None:
            continue
        try:
            plain.append(asyncssh.import_private_key(data))
        except asyncssh.KeyImportError as exc:
            if "passphrase" in str(exc).lower():
                encrypted.append(path)
            elif explicit:
                raise SourceError(f"identity file {path} cannot be used: {exc}") from None
    return plain, encrypted


class _Client(asyncssh.SSHClient):
    """Answers the server's authentication questions through the Prompter."""

    def __init__(self, label: str, encrypted_keys: list[Path], prompter: Prompter) -> None:
        self.label = label
        self.encrypted_keys = list(encrypted_keys)
        self.prompter = prompter
        self.password_asked = False
        self.kbdint_rounds = 0

    async def _ask(self, prompt: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(None, self.prompter.ask_secret, prompt)

    def auth_banner_received(self, msg: str, lang: str) -> None:
        self.prompter.notice(f"{self.label}: {msg.strip()}")

    async def public_key_auth_requested(self) -> asyncssh.SSHKey | None:  # type: ignore[override]
        while self.encrypted_keys:
            path = self.encrypted_keys.pop(0)
            for _ in range(3):
                passphrase = await self._ask(f"Passphrase for key {path}: ")
                if not passphrase:
                    break
                try:
                    return asyncssh.import_private_key(
                        read_bounded(path, KEY_FILE, "identity file", SourceError) or b"", passphrase)
                except SourceError as exc:
                    self.prompter.notice(exc.message)
                    break
                except asyncssh.KeyImportError:
                    self.prompter.notice(f"wrong passphrase for {path}")
        return None

    def kbdint_auth_requested(self) -> str | None:
        self.kbdint_rounds += 1
        return "" if self.kbdint_rounds <= MAX_KBDINT_ROUNDS else None

    async def kbdint_challenge_received(self, name: str, instructions: str, lang: str,  # type: ignore[override]
                                        prompts: list[tuple[str, bool]]) -> list[str]:
        if instructions.strip():
            self.prompter.notice(f"{self.label}: {instructions.strip()}")
        return [await self._ask(f"{self.label} {prompt.strip() or 'code'} ") for prompt, _echo in prompts]

    async def password_auth_requested(self) -> str | None:  # type: ignore[override]
        if self.password_asked:
            return None
        self.password_asked = True
        return await self._ask(f"Password for {self.label}: ")


async def _check_unverified_host(target: SSHTarget, probe: asyncssh.SSHClientConnectionOptions,
                                 settings: SSHSettings, tunnel: Any, known: KnownHostsFiles) -> None:
    """Explain a refused host key; record it when the operator confirmed this fingerprint."""
    key = await asyncssh.get_server_host_key(target.host, target.port or (), tunnel=tunnel,
                                             config=settings.config_arg())
    if key is None:
        raise HostKeyUnknown(f"{target} presented no host key")
    fingerprint = key.get_fingerprint("sha256")
    host = str(probe.config.get("HostKeyAlias") or probe.host)
    log.info("%s:%s offers the %s host key %s, not trusted by %s", host, probe.port, key.get_algorithm(),
             fingerprint, known.describe())
    trusted, _cas, revoked, *_ = known.load().match(host, host, probe.port)
    if any(k == key for k in revoked):
        raise HostKeyChanged(f"the host key of {host}:{probe.port} ({fingerprint}) is marked revoked in "
                             f"{known.describe()}")
    if trusted:
        raise HostKeyChanged(
            f"the host key of {host}:{probe.port} has CHANGED: {known.describe()} holds another key; "
            f"the host now offers {fingerprint}")
    if settings.accept_host_key != fingerprint:
        raise HostKeyUnknown(f"{host}:{probe.port} is not in {known.describe()}; it offers the "
                             f"{key.get_algorithm()} host key {fingerprint}", fingerprint=fingerprint)
    path = record_host_key(known, host, probe.port, key)
    settings.prompter.notice(f"recorded the host key of {host}:{probe.port} ({fingerprint}) in {path}")


async def _connect_direct(target: SSHTarget, settings: SSHSettings,
                          tunnel: asyncssh.SSHClientConnection | None) -> asyncssh.SSHClientConnection:
    probe = _probe(target, settings)
    known = _known_hosts(target, probe, settings)
    plain, encrypted = _load_keys(*_identity_files(probe, settings))
    label = f"{probe.username}@{probe.host}"
    ciphers: Any = () if probe.config.get("Ciphers") else list(PREFERRED_CIPHERS)
    kex: Any = offered_kex(require_post_quantum=settings.require_post_quantum_kex,
                           configured=bool(probe.config.get("KexAlgorithms")))
    if settings.require_post_quantum_kex and not usable_post_quantum():
        raise refusal(str(target), None)
    log.info("connecting to %s (port %s%s)", label, probe.port, f" through {tunnel!r}" if tunnel else "")
    log.debug("known hosts: %s; identity files: %d loaded, %d needing a passphrase", known.describe(), len(plain),
              len(encrypted))
    host_key_checked = False
    attempt = 0
    while True:
        attempt += 1
        try:
            return await asyncssh.connect(
                target.host, target.port or (), username=target.user or (), config=settings.config_arg(),
                tunnel=tunnel, known_hosts=known.load(), client_keys=plain,
                client_factory=lambda: _Client(label, encrypted, settings.prompter),
                kex_algs=kex, encryption_algs=ciphers, window=WINDOW, max_pktsize=MAX_PACKET,
                connect_timeout=settings.connect_timeout, keepalive_interval=settings.keepalive_interval,
                keepalive_count_max=settings.keepalive_count_max)
        except asyncssh.HostKeyNotVerifiable:
            if host_key_checked:
                raise HostKeyChanged(f"the host key of {target} changed while connecting") from None
            await _check_unverified_host(target, probe, settings, tunnel, known)
            host_key_checked = True
            attempt -= 1  # recording an accepted key is not a retry
        except asyncssh.PermissionDenied:
            raise AuthenticationFailed(f"{label} refused every authentication method offered") from None
        except asyncssh.KeyExchangeFailed as exc:  # no algorithm in common: trying again changes nothing
            offered = server_offer(exc.reason)
            if settings.require_post_quantum_kex and offered is not None:
                raise refusal(str(target), offered) from None
            raise ConnectionFailed(f"cannot agree on SSH algorithms with {target}: {exc.reason}") from None
        except (OSError, asyncio.TimeoutError, asyncssh.DisconnectError) as exc:
            reason = str(exc) or type(exc).__name__
            if attempt >= settings.attempts:
                raise ConnectionFailed(f"cannot connect to {target}: {reason} "
                                       f"(tried {settings.attempts} times)") from None
            delay = settings.retry_delay * attempt
            settings.prompter.notice(f"connecting to {target} failed ({reason}); "
                                     f"retry {attempt + 1} of {settings.attempts} in {delay:.0f} s")
            await asyncio.sleep(delay)


async def connect(target: SSHTarget, settings: SSHSettings, depth: int = 0) -> asyncssh.SSHClientConnection:
    """Connect to ``target``, hopping through its ProxyJump chain if the config gives one."""
    if depth > MAX_JUMP_DEPTH:
        raise SourceError(f"ProxyJump chain to {target} is deeper than {MAX_JUMP_DEPTH} hops")
    jump_spec = _probe(target, settings).tunnel
    jump: asyncssh.SSHClientConnection | None = None
    try:
        if isinstance(jump_spec, str) and jump_spec.lower() != "none":
            for hop in jump_spec.split(","):
                hop_target = SSHTarget.parse_hop(hop.strip())
                jump = await (connect(hop_target, settings, depth + 1) if jump is None
                              else _through(jump, await _connect_direct(hop_target, settings, jump)))
        conn = await _connect_direct(target, settings, jump)
    except BaseException:
        if jump is not None:
            jump.close()
        raise
    return _through(jump, conn) if jump is not None else conn


def _through(jump: asyncssh.SSHClientConnection, conn: asyncssh.SSHClientConnection) -> asyncssh.SSHClientConnection:
    """Tie a tunnelled connection to its jump host, so closing one closes the chain."""
    conn.set_tunnel(jump)
    return conn
