"""The after-action report of a drill or a recovery, for the facilitator.

Built from what the run left in its folder (report.toml, and the hash-chained audit.jsonl) and from the
earlier runs of the same runbook on this machine: a timeline (per step, when it began waiting for
people, the people's time and the machine's time), who did what, the rejected share attempts per
custodian, the errors met, and a trend table (time to recover, time in quorum, rejected shares). Nothing
secret is in either source, so nothing secret is in the report.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from enigm_recover.bounded import AUDIT_LOG, OWN_DOCUMENT, load_toml_file, read_bounded
from enigm_recover.errors import InputFileError, RunStateError
from enigm_recover.inert import for_markdown as md

QUORUM_ACTION = "gather-quorum"
ERROR_ACTIONS = {"step-failed", "key-not-combined", "resume-check", "snapshot-unchosen", "ceremony-mismatch",
                 "ceremony-id-refused"}


@dataclass(frozen=True)
class TimelineStep:
    step: str
    title: str
    outcome: str
    waiting_since: str
    ended: str
    human_seconds: float
    machine_seconds: float
    confirmed_by: list[str]


@dataclass(frozen=True)
class TrendRow:
    ceremony: str
    started: str
    status: str
    time_to_recover_seconds: float
    quorum_seconds: float
    rejected_shares: int


@dataclass
class AfterAction:
    ceremony: str
    command: str
    status: str
    reason: str
    started: str
    finished: str
    time_to_recover_seconds: float
    quorum_seconds: float
    timeline: list[TimelineStep]
    operators: list[str]
    custodians: dict[str, dict[str, int]]  # name -> {"accepted": n, "rejected": n}
    errors: list[dict[str, str]]  # {"time", "step", "what"}
    trend: list[TrendRow] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _parse(time: str) -> datetime | None:
    for layout in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(time, layout)
        except (TypeError, ValueError):
            continue
    return None


def _seconds(start: str, end: str) -> float:
    a, b = _parse(start), _parse(end)
    return max(0.0, (b - a).total_seconds()) if a and b else 0.0


def _audit_entries(folder: Path) -> list[dict[str, Any]]:
    data = read_bounded(folder / "audit.jsonl", AUDIT_LOG, "audit log", missing_ok=True)
    entries = []
    for line in (data or b"").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # `audit verify` judges a damaged log; the report shows what it can read
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def _quorum_seconds(report: dict[str, Any]) -> float:
    return round(sum(float(s.get("human_seconds", 0)) + float(s.get("machine_seconds", 0))
                     for s in report.get("steps", []) if s.get("action") == QUORUM_ACTION), 3)


def _rejected(entries: list[dict[str, Any]]) -> int:
    return sum(1 for e in entries if e.get("action") == "share-rejected")


def _time_to_recover(report: dict[str, Any]) -> float:
    """The people's and the machine's time over every step (a pause overnight is not recovery time); the
    wall-clock span for a run recorded before steps were timed."""
    steps = report.get("steps", [])
    if steps and all("human_seconds" in s for s in steps):
        return round(sum(float(s["human_seconds"]) + float(s["machine_seconds"]) for s in steps), 3)
    return _seconds(str(report.get("started", "")), str(report.get("finished", "")))


def build(folder: Path, recoveries: Path | None = None) -> AfterAction:
    """The after-action report of the run in ``folder``; ``recoveries`` (default: its parent) holds the
    earlier runs compared in the trend table."""
    report = load_toml_file(folder / "report.toml", OWN_DOCUMENT, "report", missing_ok=True)
    if not report:
        raise InputFileError(f"{folder} holds no recovery report (report.toml)",
                             "name a run by its ceremony id or folder; see `enigm-recover runs list --all`")
    entries = _audit_entries(folder)
    timeline = [TimelineStep(str(s["step"]), str(s.get("title") or ""), str(s.get("outcome", "")),
                             str(s.get("waiting_since") or s.get("started", "")), str(s.get("time", "")),
                             float(s.get("human_seconds", 0)), float(s.get("machine_seconds", s.get("seconds", 0))),
                             [str(n) for n in s.get("confirmed_by", [])])
                for s in report.get("steps", [])]
    custodians: dict[str, dict[str, int]] = {}
    errors = []
    for entry in entries:
        action, inputs = entry.get("action"), entry.get("inputs") or {}
        if action in ("share-accepted", "share-rejected"):
            name = str(inputs.get("custodian") or "(no name)")
            if inputs.get("os_user"):  # joined from their own session: the OS user the kernel named
                name = f"{name} (OS user {inputs['os_user']})"
            elif inputs.get("sealed_by"):
                name = f"{name} (sealed share)"
            tally = custodians.setdefault(name, {"accepted": 0, "rejected": 0})
            tally["accepted" if action == "share-accepted" else "rejected"] += 1
        failed = action in ERROR_ACTIONS and entry.get("outcome") != "ok"
        if failed or action == "share-rejected":
            what = str(inputs.get("reason") or action)
            who = f" ({inputs['custodian']})" if action == "share-rejected" and inputs.get("custodian") else ""
            errors.append({"time": str(entry.get("time", "")), "step": str(entry.get("step") or ""),
                           "what": f"{action}{who}: {what}"})
    result = AfterAction(
        ceremony=str(report.get("ceremony", "")), command=str(report.get("command", "")),
        status=str(report.get("status", "")), reason=str(report.get("reason", "")),
        started=str(report.get("started", "")), finished=str(report.get("finished", "")),
        time_to_recover_seconds=_time_to_recover(report), quorum_seconds=_quorum_seconds(report),
        timeline=timeline, operators=[str(o) for o in report.get("operators", [])], custodians=custodians,
        errors=errors)
    result.trend = trend(recoveries or folder.parent, result.command, until=folder)
    return result


def _opened_at(entries: list[dict[str, Any]], report: dict[str, Any]) -> str:
    """When the run opened, to the microsecond (its first audit entry), for ordering runs of one second."""
    return str(entries[0].get("time", "")) if entries else str(report.get("started", ""))


def trend(recoveries: Path, command: str, *, until: Path | None = None) -> list[TrendRow]:
    """The runs of ``command`` (e.g. ``run tabletop-drill``) in ``recoveries``, oldest first, up to and
    including ``until`` (the run reported on)."""
    rows = []
    for folder in (p for p in recoveries.iterdir() if p.is_dir()):
        try:
            report = load_toml_file(folder / "report.toml", OWN_DOCUMENT, "report", missing_ok=True)
        except InputFileError:
            continue
        if not report or report.get("command") != command:
            continue
        entries = _audit_entries(folder)
        rows.append((_opened_at(entries, report), folder,
                     TrendRow(str(report.get("ceremony", "")), str(report.get("started", "")),
                              str(report.get("status", "")), _time_to_recover(report), _quorum_seconds(report),
                              _rejected(entries))))
    rows.sort(key=lambda row: row[0])
    if until is not None:
        last = next((i for i, (_, folder, _) in enumerate(rows) if folder == until), len(rows) - 1)
        rows = rows[:last + 1]
    return [row for _, _, row in rows]


def find_run_folder(state_dir: Path, run: str) -> Path:
    """A run's folder from its ceremony id (or the folder itself)."""
    given = Path(run)
    if (given / "report.toml").exists():
        return given
    matches = sorted(p.parent for p in (state_dir / "recoveries").glob("*/report.toml")
                     if p.parent.name.endswith(f"-{run}"))
    if not matches:
        raise RunStateError(f"there is no run {run} in {state_dir / 'recoveries'}",
                            "see `enigm-recover runs list --all` for the ceremony ids")
    return matches[-1]


def duration(seconds: float) -> str:
    """'42 s', '3 min 05 s', '1 h 02 min'."""
    whole = int(round(seconds))
    if whole < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def render_markdown(aar: AfterAction) -> str:
    """The facilitator's page; every value from the run passes ``for_markdown``."""
    lines = [f"# After-action report — ceremony {md(aar.ceremony)}", "",
             f"- **Run:** {md(aar.command)}, {md(aar.status)}" + (f" ({md(aar.reason)})" if aar.reason else ""),
             f"- **Started / finished (UTC):** {md(aar.started)} / {md(aar.finished)}",
             f"- **Time to recover** (people and machine over every step, pauses left out): "
             f"{duration(aar.time_to_recover_seconds)}; "
             f"**time in quorum:** {duration(aar.quorum_seconds)}",
             f"- **Operators:** {', '.join(md(o) for o in aar.operators) or 'none'}",
             "", "## Timeline", "",
             "People's time is waiting for and doing what people do (shares, reading, confirming); machine "
             "time is the tool's work (verifying, decrypting, comparing, restoring).", "",
             "| Step | Outcome | Waiting since (UTC) | People | Machine | Confirmed by |",
             "|---|---|---|---:|---:|---|"]
    for s in aar.timeline:
        lines.append(f"| {md(s.step)} | {md(s.outcome)} | {md(s.waiting_since)} | {duration(s.human_seconds)} | "
                     f"{duration(s.machine_seconds)} | {', '.join(md(n) for n in s.confirmed_by) or '—'} |")
    if not aar.timeline:
        lines.append("| — | no step finished | | | | |")
    lines += ["", "## Custodians", "", "| Custodian | Shares accepted | Rejected attempts |", "|---|---:|---:|"]
    lines += [f"| {md(name)} | {t['accepted']} | {t['rejected']} |" for name, t in sorted(aar.custodians.items())]
    if not aar.custodians:
        lines.append("| — | 0 | 0 |")
    lines += ["", "## Errors met", ""]
    lines += [f"- {md(e['time'])} {md(e['step']) or '—'}: {md(e['what'])}" for e in aar.errors] or ["- none"]
    lines += ["", f"## Trend: {md(aar.command)} on this machine", "",
              "| Ceremony | Started (UTC) | Status | Time to recover | Time in quorum | Rejected shares |",
              "|---|---|---|---:|---:|---:|"]
    lines += [f"| {md(r.ceremony)}{' (this run)' if r.ceremony == aar.ceremony else ''} | {md(r.started)} | "
              f"{md(r.status)} | {duration(r.time_to_recover_seconds)} | {duration(r.quorum_seconds)} | "
              f"{r.rejected_shares} |" for r in aar.trend]
    return "\n".join(lines) + "\n"


def write(aar: AfterAction, folder: Path) -> tuple[Path, Path]:
    """after-action.md and after-action.toml in the run's folder (private, replaced on each call)."""
    from enigm_recover import tomlfile
    from enigm_recover.atomic import write_atomic

    markdown, toml = folder / "after-action.md", folder / "after-action.toml"
    write_atomic(markdown, render_markdown(aar).encode(), mode=0o600, overwrite=True)
    write_atomic(toml, tomlfile.dumps(aar.as_dict()), mode=0o600, overwrite=True)
    return markdown, toml
