"""What the app is opened with: where to read and write, who runs it, and the seams tests use.

Plain data only, importing nothing heavy: the app must paint before the engine
(asyncssh, cryptography, the stores) is imported.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from enigm_recover.state.journal import DEFAULT_BATCH


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class DrillInfo:
    """The drill the app was opened on, to tell the room where the custodian cards are."""

    folder: Path
    custodians: dict[str, Path]  # name -> card


@dataclass
class AppOptions:
    source: str | None
    target: str | None
    allowed_signers: Path | None
    state_dir: Path
    cache_dir: Path
    operator: str
    runbook: str | None = None  # preselected on the start screen
    runbook_folders: list[Path] = field(default_factory=list)  # searched before the built-in runbooks
    # SFTP sources: the SSHSettings are built in a worker (asyncssh is heavy)
    ssh_config: list[Path] | None = None
    known_hosts: Path | None = None
    identities: list[Path] = field(default_factory=list)
    accept_host_key: str | None = None
    require_post_quantum_kex: bool = False  # ssh_kex = post-quantum-only: a classic-only server is refused
    recipient: Path | None = None  # recovery.pub: each snapshot says whether it is sealed to it
    recipient_fingerprint: str | None = None  # the same, given directly (the drill knows it)
    signer: Callable[[Callable[[str], str]], Any] | None = None  # (ask passphrase) -> the audit head's signer
    batch_size: int = DEFAULT_BATCH
    restore_pace: float = 0.0  # seconds after each restored batch (drill --slow-restore)
    target_environment: str | None = None  # the configured target's environment: another one's snapshot is refused
    drill: DrillInfo | None = None
    readiness_policy: Any = None  # the readiness view's ReadinessPolicy (the config's [retention]); None: defaults
    resume: bool = False  # open the newest paused run of the runbook straight away
    ceremony_place: Any = None  # where custodians join from their own sessions (None: the environment's, or the default)
    # seams for tests and screenshots: nothing on screen may depend on the clock, the host or chance
    ceremony: str | None = None  # a fixed ceremony id (normally random)
    now: Callable[[], datetime] = _utc_now  # snapshot ages are relative to this
    monotonic: Callable[[], float] = time.monotonic  # transfer rates and ETAs
    still: bool = False  # no animation, no blinking cursor
    redact: Callable[[str], str] | None = None  # applied to paths and hashes before they are shown

    def shown(self, text: object) -> str:
        """``text`` as the screen shows it: controls escaped (``inert.for_terminal``; tests also replace paths
        and hashes that change run to run)."""
        from enigm_recover.inert import for_terminal

        value = str(text)
        return for_terminal(self.redact(value) if self.redact else value, multiline=True)


def drill_options(doc: dict[str, Any], *, state_dir: Path, cache_dir: Path, operator: str,
                  runbook: str = "tabletop-drill", **overrides: Any) -> AppOptions:
    """Options for a drill served over the in-process SSH server (``drill.serve.serve_drill``'s document)."""
    paths = doc["paths"]
    options = AppOptions(
        source=doc["ssh"]["source"], target=paths["target"], allowed_signers=Path(paths["allowed_signers"]),
        state_dir=state_dir, cache_dir=cache_dir, operator=operator, runbook=runbook,
        ssh_config=[Path(doc["ssh"]["config"])], recipient_fingerprint=doc.get("recovery", {}).get("fingerprint"),
        recipient=Path(paths["recipient"]) if paths.get("recipient") else None,
        drill=DrillInfo(Path(paths["snapshots"]).parent, {name: Path(card) for name, card in
                                                          doc.get("custodians", {}).items()}))
    for key, value in overrides.items():
        setattr(options, key, value)
    return options
