"""A recovery: its ceremony id, its audit log and, at the end, its report.

Every command that combines shares or writes to a target opens one. The
ceremony id (short, readable, random) is shown to every custodian before they
enter a share, and written into the audit log with each share's set id and
member index — never the words. The report says honestly how it ended.
"""

from __future__ import annotations

import getpass
import secrets
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import asyncssh
import tomli_w
from shamir_mnemonic.wordlist import WORDLIST

from enigm_recover.atomic import write_atomic
from enigm_recover.quorum.entry import ShareReceipt
from enigm_recover.recovery.audit import AuditLog
from enigm_recover.snapshot.manifest import Manifest


def new_ceremony_id() -> str:
    """Two words and a number, e.g. ``lunar-academic-47``: easy to read aloud and to compare."""
    return f"{secrets.choice(WORDLIST)}-{secrets.choice(WORDLIST)}-{secrets.randbelow(90) + 10}"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Recovery:
    ceremony: str
    folder: Path
    operator: str
    command: str
    audit: AuditLog
    started: str
    facts: dict[str, Any] = field(default_factory=dict)
    participants: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    findings: dict[str, int] = field(default_factory=dict)
    signing_key: asyncssh.SSHKey | None = None  # the operator's key, to sign the audit head
    closed: bool = False

    @classmethod
    def open(cls, state_dir: Path, command: str, operator: str | None = None) -> "Recovery":
        ceremony = new_ceremony_id()
        started = _now()
        folder = state_dir / "recoveries" / f"{started.replace(':', '')}-{ceremony}"
        folder.mkdir(parents=True, exist_ok=False)
        operator = operator or getpass.getuser()
        recovery = cls(ceremony, folder, operator, command,
                       AuditLog(folder / "audit.jsonl", ceremony=ceremony, operator=operator), started)
        recovery.audit.append("recovery-opened", inputs={"command": command})
        return recovery

    # -- what happened ---------------------------------------------------------

    def snapshot(self, manifest: Manifest, source: str) -> None:
        self.facts = {"snapshot": manifest.id, "created_at": manifest.created_at.isoformat(),
                      "environment": manifest.environment, "producer": manifest.producer, "source": source,
                      "payload_sha256": manifest.payload_sha256, "recipient_fingerprint": manifest.recipient_fingerprint,
                      "counts": manifest.counts}
        self.audit.append("snapshot-verified", inputs={"snapshot": manifest.id, "source": source})

    def share_accepted(self, receipt: ShareReceipt) -> None:
        entry = {"custodian": receipt.custodian, "set_id": receipt.set_id, "group": receipt.group_index + 1,
                 "member_index": receipt.member_index + 1}
        self.participants.append(entry)
        self.audit.append("share-accepted", inputs=entry)

    def key_combined(self, fingerprint: str) -> None:
        self.audit.append("key-combined", inputs={"fingerprint": fingerprint, "shares": len(self.participants)})

    def record(self, action: str, *, step: str | None = None, inputs: dict[str, Any] | None = None,
               outcome: str = "ok", counts: dict[str, int] | None = None) -> None:
        self.audit.append(action, step=step, inputs=inputs, outcome=outcome, counts=counts)
        if step is not None:
            self.steps.append({"step": step, "action": action, "outcome": outcome, "counts": counts or {},
                               "time": _now()})

    # -- the end ---------------------------------------------------------------

    def close(self, status: str, reason: str = "", signing_key: asyncssh.SSHKey | None = None) -> Path:
        """Write report.toml and report.md; sign the audit head when a key is given. Returns the folder."""
        if self.closed:
            return self.folder
        self.closed = True
        signing_key = signing_key or self.signing_key
        self.audit.append("recovery-closed", outcome=status, inputs={"reason": reason} if reason else {})
        head = self.audit.close(signing_key)
        report: dict[str, Any] = {
            "ceremony": self.ceremony, "command": self.command, "operator": self.operator,
            "started": self.started, "finished": _now(), "status": status, "reason": reason,
            "snapshot": self.facts, "participants": self.participants, "steps": self.steps,
            "findings": self.findings,
            "audit": {"log": "audit.jsonl", "entries": self.audit.seq, "head": head,
                      "signed": signing_key is not None},
        }
        write_atomic(self.folder / "report.toml", tomli_w.dumps(_plain(report)).encode(), mode=0o600,
                     overwrite=True)
        write_atomic(self.folder / "report.md", render_markdown(report).encode(), mode=0o600, overwrite=True)
        return self.folder


def _plain(value: Any) -> Any:
    """TOML has no null: drop None values."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def render_markdown(report: dict[str, Any]) -> str:
    snap = report["snapshot"]
    lines = [
        f"# Recovery report — ceremony {report['ceremony']}",
        "",
        f"- **Status:** {report['status']}" + (f" ({report['reason']})" if report["reason"] else ""),
        f"- **Command:** `{report['command']}` by {report['operator']}",
        f"- **Started / finished (UTC):** {report['started']} / {report['finished']}",
    ]
    if snap:
        counts = ", ".join(f"{n:,} {k}" for k, n in snap.get("counts", {}).items())
        lines += [f"- **Snapshot:** {snap['snapshot']} ({snap['environment']}, by {snap['producer']}, "
                  f"taken {snap['created_at']}) from {snap['source']}: {counts}",
                  f"- **Payload SHA-256:** `{snap['payload_sha256']}`",
                  f"- **Recovery key:** {snap['recipient_fingerprint']}"]
    lines += ["", "## Custodians", ""]
    lines += [f"- {p['custodian']}: set {p['set_id']}, group {p['group']}, member {p['member_index']}"
              for p in report["participants"]] or ["- none (no shares were combined)"]
    lines += ["", "## Steps", ""]
    for step in report["steps"]:
        counts = ", ".join(f"{k} {v:,}" for k, v in step["counts"].items())
        lines.append(f"- {step['step']}: {step['outcome']} ({step['action']}; {counts or 'no counts'}) at "
                     f"{step['time']}")
    if not report["steps"]:
        lines.append("- none")
    if report["findings"]:
        lines += ["", "## Safety findings kept", ""]
        lines += [f"- {code}: {n:,}" for code, n in sorted(report["findings"].items())]
    audit = report["audit"]
    lines += ["", "## Audit", "", f"- log: `{audit['log']}`, {audit['entries']} entries",
              f"- head: `{audit['head']}` ({'signed' if audit['signed'] else 'not signed: no operator key given'})",
              ""]
    return "\n".join(lines)


def load_report(folder: Path) -> dict[str, Any]:
    return tomllib.loads((folder / "report.toml").read_text())
