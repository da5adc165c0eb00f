"""A readiness report as files: TOML (for machines), Markdown (for auditors), and a Prometheus textfile.

The TOML and Markdown are written atomically beside the run's audit log, and their SHA-256 digests
are what the audit log records. The textfile follows node_exporter's textfile collector format and
is written atomically too (the collector would otherwise read half a file).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from enigm_recover import tomlfile
from enigm_recover.atomic import write_atomic
from enigm_recover.inert import for_markdown, for_terminal
from enigm_recover.readiness.checks import DESCRIPTIONS, ReadinessReport
from enigm_recover.readiness.post_quantum import POST_QUANTUM

TOML_NAME = "readiness.toml"
MARKDOWN_NAME = "readiness.md"


def report_document(report: ReadinessReport, context: dict[str, Any] | None = None) -> dict[str, Any]:
    """The report as one document: the verdict, the policy, every check with evidence, every snapshot."""
    return {"readiness": {**report.as_dict(), **(context or {})}}


def render_toml(report: ReadinessReport, context: dict[str, Any] | None = None) -> bytes:
    return tomlfile.dumps(report_document(report, context))


def render_markdown(report: ReadinessReport, context: dict[str, Any] | None = None) -> str:
    doc = report.as_dict()
    context = context or {}
    verdict = "READY" if report.ready else "NOT READY"
    lines = [f"# Recovery readiness — {verdict}", ""]
    if not report.ready:
        lines += [f"Failing checks: {', '.join(report.failing)}.", ""]
    md = for_markdown
    lines += [f"- **Source:** {md(report.source)}",
              f"- **Checked at (UTC):** {doc['checked_at']}",
              f"- **Recovery key expected:** {report.recipient_fingerprint}",
              f"- **Policy:** newest usable snapshot at most {doc['policy']['max_age']} old; identities and devices "
              f"may drop at most {report.policy.max_drop:g}% between consecutive snapshots"
              + (f"; environment {md(report.policy.environment)}" if report.policy.environment else "")
              + (f"; retention {report.policy.retention.describe()}" if report.policy.retention else "")]
    if report.newest_id:
        lines.append(f"- **Newest usable snapshot:** {md(report.newest_id)} ({report.newest_age_seconds:,} s old)")
    for key, label in (("ceremony", "Ceremony"), ("operator", "Operator"), ("audit_log", "Audit log")):
        if context.get(key):
            lines.append(f"- **{label}:** {md(context[key])}")
    lines += ["", "## Checks", "", "| check | verdict | summary |", "|---|---|---|"]
    for c in report.checks:
        lines.append(f"| {md(c.name)} | {c.status.upper()} | {md(c.summary)} |")
    for c in report.checks:
        lines += ["", f"### {md(c.name)}: {c.status}", "", f"_{DESCRIPTIONS[c.name]}._", "", md(c.summary), ""]
        lines += [f"- {_md(e)}" for e in c.evidence] or ["- (no evidence)"]
    lines += ["", "## Snapshots (newest first)", ""]
    if report.snapshots:
        lines += ["| id | created (UTC) | environment | signature | recovery key | payload | counts |",
                  "|---|---|---|---|---|---|---|"]
        for s in doc["snapshots"]:
            key = {True: "expected", False: "OTHER", None: "-"}[s["recipient_matches"]]
            counts = ", ".join(f"{k} {n:,}" for k, n in s["counts"].items()) or "-"
            lines.append(f"| {md(s['id'])} | {md(s['created_at'] or '-')} | {md(s['environment'] or '-')} | "
                         f"{md(s['signature'])} | {key} | {md(s['payload'])} | {md(counts)} |")
    else:
        lines.append("- none")
    if report.refused_names:
        lines += ["", "## Refused file names", ""] + [f"- {_md(r)}" for r in report.refused_names]
    lines.append("")
    return "\n".join(lines)


def _md(text: str) -> str:
    return for_markdown(text)


def write_report(report: ReadinessReport, folder: Path, context: dict[str, Any] | None = None) -> dict[str, str]:
    """Write readiness.toml and readiness.md into ``folder``; returns their paths and SHA-256 digests."""
    toml_bytes = render_toml(report, context)
    md_bytes = render_markdown(report, context).encode("utf-8")
    write_atomic(folder / TOML_NAME, toml_bytes, mode=0o600, overwrite=True)
    write_atomic(folder / MARKDOWN_NAME, md_bytes, mode=0o600, overwrite=True)
    return {"toml": str(folder / TOML_NAME), "sha256": hashlib.sha256(toml_bytes).hexdigest(),
            "markdown": str(folder / MARKDOWN_NAME), "markdown_sha256": hashlib.sha256(md_bytes).hexdigest()}


# -- Prometheus (node_exporter textfile collector) --------------------------------------------


def _label(value: str) -> str:
    """A label value: controls shown escaped (``for_terminal``), then the exposition format's escapes."""
    return for_terminal(value).replace("\\", "\\\\").replace('"', '\\"')


def render_prometheus(report: ReadinessReport) -> str:
    """The text exposition format: HELP and TYPE once per metric, every sample labelled with the source."""
    source = f'source="{_label(report.source)}"'
    out: list[str] = []

    def metric(name: str, help_text: str, samples: list[tuple[str, int]]) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} gauge")
        out.extend(f"{name}{{{labels}}} {value}" for labels, value in samples)

    metric("enigm_recover_readiness_ok", "1 when every recovery readiness check passed, 0 otherwise.",
           [(source, int(report.ready))])
    if report.newest_age_seconds is not None:
        metric("enigm_recover_newest_snapshot_age_seconds",
               "Age of the newest usable snapshot (trusted signature, expected key, intact payload) in seconds.",
               [(source, int(report.newest_age_seconds))])
    metric("enigm_recover_readiness_check_ok", "1 when the readiness check passed, 0 when it failed "
                                               "(checks that did not run are absent).",
           [(f'{source},check="{_label(c.name)}"', int(bool(c.ok))) for c in report.checks if c.ok is not None])
    metric("enigm_recover_readiness_snapshots", "Snapshots listed in the source (of the checked environment).",
           [(source, len(report.snapshots))])
    if report.oldest_age_seconds is not None:
        metric("enigm_recover_snapshot_oldest_age_seconds",
               "Age of the oldest snapshot listed in the source (of the checked environment) in seconds.",
               [(source, int(report.oldest_age_seconds))])
    if report.checks:
        metric("enigm_recover_snapshots_retained", "Snapshots the retention policy keeps (every signed snapshot "
                                                   "when no policy is set).", [(source, report.retained)])
    post_quantum = next((c for c in report.checks if c.name == POST_QUANTUM and c.ok is not None), None)
    if post_quantum is not None:
        metric("enigm_recover_recovery_key_post_quantum",
               "1 when the newest signed snapshot is sealed to a post-quantum hybrid recovery key (age "
               "mlkem768x25519), 0 when to a classic X25519 key.", [(source, int(bool(post_quantum.ok)))])
    if report.quorum_test is not None:
        metric("enigm_recover_quorum_test_timestamp_seconds",
               "When the custodians last proved the expected key's quorum (keys test-quorum; Unix time).",
               [(source, int(report.quorum_test["timestamp_seconds"]))])
    metric("enigm_recover_readiness_last_run_timestamp_seconds",
           "When the readiness checks ran (Unix time): alert when this file goes stale.",
           [(source, int(report.checked_at.timestamp()))])
    return "\n".join(out) + "\n"


def write_prometheus(report: ReadinessReport, path: Path) -> None:
    """Write the textfile atomically (node_exporter must never read half of it), readable by the collector."""
    write_atomic(path, render_prometheus(report).encode("utf-8"), mode=0o644, overwrite=True)
