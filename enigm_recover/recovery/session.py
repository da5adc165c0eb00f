"""A recovery: its ceremony id, its audit log and, at the end, its report.

Every command that combines shares or writes to a target opens one. The
ceremony id (short, readable, random) is shown to every custodian before they
enter a share, and written into the audit log with each share's set id and
member index — never the words. The report says honestly how it ended.
"""

from __future__ import annotations

import getpass
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

from shamir_mnemonic.wordlist import WORDLIST

from enigm_recover import tomlfile
from enigm_recover.atomic import write_atomic
from enigm_recover.bounded import OWN_DOCUMENT, load_toml_file
from enigm_recover.errors import CeremonyMismatch
from enigm_recover.private import make_private_dir, refuse_if_others_can_write
from enigm_recover.paths import display_text
from enigm_recover.inert import for_markdown, for_markdown_code
from enigm_recover.quorum.entry import ShareReceipt
from enigm_recover.recovery.audit import AuditLog, readable_head
from enigm_recover.snapshot.manifest import Manifest

if TYPE_CHECKING:
    from enigm_recover.snapshot.signature import Signer


def new_ceremony_id() -> str:
    """Two words and a number, e.g. ``lunar-academic-47``: easy to read aloud and to compare."""
    return f"{secrets.choice(WORDLIST)}-{secrets.choice(WORDLIST)}-{secrets.randbelow(90) + 10}"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def same_ceremony(typed: str, ceremony: str) -> bool:
    """A custodian's typed-back ceremony id, compared without regard to case, spaces or separators."""
    def canonical(text: str) -> str:
        return "-".join(text.lower().replace("_", " ").replace("-", " ").split())
    return canonical(typed) == canonical(ceremony)


# What a paused recovery keeps between sessions (never anything secret).
_PERSISTED = ("ceremony", "operator", "command", "started", "facts", "participants", "operators", "steps",
              "findings")


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
    operators: list[str] = field(default_factory=list)  # everyone who confirmed a step
    steps: list[dict[str, Any]] = field(default_factory=list)
    findings: dict[str, int] = field(default_factory=dict)
    signer: Signer | None = None  # the operator's key or ssh-agent, to sign the audit head
    closed: bool = False

    @classmethod
    def open(cls, state_dir: Path, command: str, operator: str | None = None,
             ceremony: str | None = None) -> "Recovery":
        """A new recovery; ``ceremony`` fixes its id (tests and screenshots only; normally random)."""
        ceremony = ceremony or new_ceremony_id()
        started = _now()
        make_private_dir(state_dir, "state folder")  # made if missing, else checked
        recoveries = make_private_dir(state_dir / "recoveries", "recoveries folder")
        folder = make_private_dir(recoveries / f"{started.replace(':', '')}-{ceremony}", "recovery folder",
                                  exclusive=True)
        operator = operator or getpass.getuser()
        recovery = cls(ceremony, folder, operator, command,
                       AuditLog(folder / "audit.jsonl", ceremony=ceremony, operator=operator), started)
        recovery.audit.append("recovery-opened", inputs={"command": command})
        return recovery

    @classmethod
    @contextmanager
    def opened(cls, state_dir: Path, command: str, operator: str | None = None, *, signer: Signer | None = None,
               ceremony: str | None = None) -> Iterator["Recovery"]:
        """``open``, for a command's whole run: an error closes it as aborted, naming the cause (Ctrl-C as
        "interrupted by the operator", anything else that stops it as "interrupted"); the command closes it
        otherwise."""
        from enigm_recover.errors import EnigmError

        recovery = cls.open(state_dir, command, operator, ceremony)
        recovery.signer = signer
        try:
            yield recovery
        except EnigmError as exc:
            recovery.close("aborted", exc.message)
            raise
        except KeyboardInterrupt:
            recovery.close("aborted", "interrupted by the operator")
            raise
        except BaseException:
            recovery.close("aborted", "interrupted")
            raise

    def to_state(self) -> dict[str, Any]:
        """What a resumed session needs to continue this recovery's report (ids, names, counts)."""
        return {name: getattr(self, name) for name in _PERSISTED}

    @classmethod
    def reopen(cls, folder: Path, state: dict[str, Any], *, resumed: bool = True) -> "Recovery":
        """Continue a paused recovery: same ceremony, same audit log (its chain goes on). ``resumed=False``
        only reopens it to close it (an abort), without a "recovery-resumed" entry."""
        values = {name: state[name] for name in _PERSISTED}
        for path, what in ((folder.parent.parent, "state folder"), (folder.parent, "recoveries folder"),
                           (folder, "recovery folder")):
            refuse_if_others_can_write(path, what)
        audit = AuditLog(folder / "audit.jsonl", ceremony=values["ceremony"], operator=values["operator"])
        recovery = cls(folder=folder, audit=audit, **values)
        if resumed:
            recovery.audit.append("recovery-resumed")
        return recovery

    # -- what happened ---------------------------------------------------------

    def snapshot(self, manifest: Manifest, source: str) -> None:
        source = display_text(source)  # a path's raw bytes as \xNN: reports and the audit log are UTF-8 text
        self.facts = {"snapshot": manifest.id, "created_at": manifest.created_at.isoformat(),
                      "environment": manifest.environment, "producer": manifest.producer, "source": source,
                      "payload_sha256": manifest.payload_sha256, "recipient_fingerprint": manifest.recipient_fingerprint,
                      "counts": manifest.counts}
        self.audit.append("snapshot-verified", inputs={"snapshot": manifest.id, "source": source})

    def check_ceremony(self, typed: str | None) -> bool:
        """A custodian may bind their share to this ceremony by typing its id back; a wrong id stops them."""
        if not typed or not typed.strip():
            return False
        from enigm_recover.quorum.names import ceremony_id_problem

        if (problem := ceremony_id_problem(typed)) is not None:
            self.audit.append("ceremony-id-refused", outcome="refused")  # never the text typed
            raise CeremonyMismatch(problem)
        if not same_ceremony(typed, self.ceremony):
            self.audit.append("ceremony-mismatch", outcome="refused")
            raise CeremonyMismatch(f"the ceremony id typed back is not this ceremony's ({self.ceremony})")
        return True

    def share_accepted(self, receipt: ShareReceipt, bound: bool = False,
                       origin: dict[str, str | int] | None = None) -> None:
        entry = {"custodian": receipt.custodian, "set_id": receipt.set_id, "group": receipt.group_index + 1,
                 "member_index": receipt.member_index + 1, "bound_to_ceremony": bound, **(origin or {})}
        self.participants.append(entry)
        self.audit.append("share-accepted", inputs=entry)

    def key_combined(self, fingerprint: str) -> None:
        self.audit.append("key-combined", inputs={"fingerprint": fingerprint, "shares": len(self.participants)})

    def record(self, action: str, *, step: str | None = None, inputs: dict[str, Any] | None = None,
               outcome: str = "ok", counts: dict[str, int] | None = None, started: str | None = None,
               title: str | None = None, detail: str = "", timing: dict[str, Any] | None = None) -> None:
        """An audit entry; with ``step``, also a line of the report (with its timing when ``started``;
        ``timing`` adds the timeline: waiting since, human and machine seconds, who confirmed)."""
        self.audit.append(action, step=step, inputs=inputs, outcome=outcome, counts=counts)
        if step is not None:
            finished = _now()
            self.steps.append({"step": step, "title": title, "action": action, "outcome": outcome,
                               "counts": counts or {}, "started": started or finished, "time": finished,
                               "seconds": _seconds_between(started, finished) if started else 0,
                               "detail": detail, **(timing or {})})

    # -- the end ---------------------------------------------------------------

    def close(self, status: str, reason: str = "") -> Path:
        """Write report.toml and report.md; sign the audit head when a signer is set. Returns the folder."""
        if self.closed:
            return self.folder
        self.closed = True
        self.audit.append("recovery-closed", outcome=status, inputs={"reason": reason} if reason else {})
        return self.write_report(status, reason)

    def pause(self, reason: str) -> Path:
        """Leave a resumable recovery: its report says where it stopped; the head is signed as it stands."""
        self.audit.append("recovery-paused", outcome="paused", inputs={"reason": reason})
        return self.write_report("paused", reason)

    def write_report(self, status: str, reason: str) -> Path:
        head = self.audit.close(self.signer)
        report: dict[str, Any] = {
            "ceremony": self.ceremony, "command": self.command, "operator": self.operator,
            "started": self.started, "finished": _now(), "status": status, "reason": reason,
            "snapshot": self.facts, "participants": self.participants,
            "operators": sorted({self.operator, *self.operators}), "steps": self.steps,
            "findings": self.findings,
            "audit": {"log": "audit.jsonl", "entries": self.audit.seq, "head": head,
                      "signed": self.signer is not None,
                      "signer": self.signer.fingerprint if self.signer is not None else ""},
        }
        write_atomic(self.folder / "report.toml", tomlfile.dumps(report), mode=0o600,
                     overwrite=True)
        write_atomic(self.folder / "report.md", render_markdown(report).encode(), mode=0o600, overwrite=True)
        return self.folder


def _seconds_between(start: str, end: str) -> int:
    parse = lambda t: datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    return int((parse(end) - parse(start)).total_seconds())


def render_markdown(report: dict[str, Any]) -> str:
    """report.md: every value that came from outside (names, paths, ids, messages) passes ``for_markdown`` or,
    in a code span, ``for_markdown_code``."""
    md, code = for_markdown, for_markdown_code
    snap = report["snapshot"]
    lines = [
        f"# Recovery report — ceremony {md(report['ceremony'])}",
        "",
        f"- **Status:** {md(report['status'])}" + (f" ({md(report['reason'])})" if report["reason"] else ""),
        f"- **Command:** {code(report['command'])} by {md(report['operator'])}",
        f"- **Started / finished (UTC):** {md(report['started'])} / {md(report['finished'])}",
    ]
    if snap:
        counts = ", ".join(f"{n:,} {md(k)}" for k, n in snap.get("counts", {}).items())
        lines += [f"- **Snapshot:** {md(snap['snapshot'])} ({md(snap['environment'])}, by {md(snap['producer'])}, "
                  f"taken {md(snap['created_at'])}) from {md(snap['source'])}: {counts}",
                  f"- **Payload SHA-256:** {code(snap['payload_sha256'])}",
                  f"- **Recovery key:** {md(snap['recipient_fingerprint'])}"]
    lines += ["", "## Operators", ""]
    lines += [f"- {md(name)}" for name in report.get("operators", [report["operator"]])]
    lines += ["", "## Custodians", ""]
    lines += [f"- {md(p['custodian'])}: set {p['set_id']}, group {p['group']}, member {p['member_index']}"
              + (" (bound to this ceremony)" if p.get("bound_to_ceremony") else "")
              + (f"; joined from OS user {md(p['os_user'])} (uid {p.get('uid', '?')}) over the ceremony socket"
                 if p.get("os_user") else "")
              + (f"; came sealed, from {md(p['sealed_by'])} (the name inside, for member {p['sealed_member_index']})"
                 if p.get("sealed_by") else "")
              for p in report["participants"]] or ["- none (no shares were combined)"]
    lines += ["", "## Steps", ""]
    for step in report["steps"]:
        counts = ", ".join(f"{md(k)} {v:,}" for k, v in step["counts"].items())
        title = f" — {md(step['title'])}" if step.get("title") else ""
        detail = f"; {md(step['detail'])}" if step.get("detail") else ""
        lines.append(f"- {md(step['step'])}{title}: **{md(step['outcome'])}** ({md(step['action'])}; "
                     f"{counts or 'no counts'}{detail}) {md(step.get('started', step['time']))} → {md(step['time'])} "
                     f"({step.get('seconds', 0)} s" + (f"; people {step['human_seconds']:.1f} s, machine "
                                                        f"{step['machine_seconds']:.1f} s"
                                                        if "human_seconds" in step else "") + ")")
    if not report["steps"]:
        lines.append("- none")
    if report["findings"]:
        lines += ["", "## Conflicts and how they were resolved", "",
                  "Records where the snapshot and the live state disagree in a way a safety rule decides "
                  "(per restore step, `kept_by_safety_rules` and `left_by_policy` above count what stayed live):", ""]
        lines += [f"- {md(code)}: {n:,} — {_finding_reason(code)}" for code, n in sorted(report["findings"].items())]
    audit = report["audit"]
    verify_command = f"enigm-recover audit verify {audit['log']} --head HASH --entries {audit['entries']}"
    lines += ["", "## Audit", "", f"- log: {code(audit['log'])}, {audit['entries']} entries",
              f"- head: {code(audit['head'])} ("
              + (f"signed by {md(audit['signer'])}" if audit["signed"] else "not signed: no operator key or agent")
              + ")",
              f"- head to write down: entry {audit['entries']}, {code(readable_head(audit['head']))}",
              "",
              "Write the head down (or photograph it) and keep it apart from the log, e.g. in the incident "
              "ticket: whoever can rewrite the log can rewrite its head file too. "
              f"{code(verify_command)} checks "
              "the log against it.",
              ""]
    return "\n".join(lines)


def _finding_reason(code: str) -> str:
    """How the conflict a finding names was resolved (the safety rule that kept the live record)."""
    from enigm_recover.recovery.assess import REASONS, Finding

    try:
        return REASONS[Finding(code)]
    except ValueError:
        return "kept"


def load_report(folder: Path) -> dict[str, Any]:
    return load_toml_file(folder / "report.toml", OWN_DOCUMENT, "report") or {}
