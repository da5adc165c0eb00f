"""The scope review: which platform state the snapshots keep, since when, and how that changed.

For each manifest signed by a trusted producer: the kinds and fields in scope and their record counts.
Between consecutive snapshots of an environment: a kind or a field added or removed, and a count that
moved by more than a threshold. Anything outside the tool's allow-list (``snapshot.scope``) is a
finding. A manifest whose scope is outside the allow-list does not parse as a snapshot (unsealing
refuses it), so its scope is read here from the signed TOML as written, to be named, never used.
Reads manifests and signatures only: no payload, no share.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import asyncssh

from enigm_recover.inert import for_markdown
from enigm_recover.snapshot import signature
from enigm_recover.snapshot.catalog import chronological
from enigm_recover.snapshot.scope import ALLOWED_FIELDS
from enigm_recover.snapshot.source import SnapshotEntry
from enigm_recover.snapshot.timeform import utc_iso

DEFAULT_THRESHOLD = 25.0  # percent a kind's count may move between consecutive snapshots before it is named


@dataclass
class KindInScope:
    fields: list[str]
    count: int | None


@dataclass
class Reviewed:
    id: str
    created_at: datetime | None
    environment: str
    producer: str
    scope: dict[str, KindInScope]
    findings: list[str] = field(default_factory=list)  # outside the allow-list

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "created_at": _iso(self.created_at), "environment": self.environment,
                "producer": self.producer,
                "scope": {k: {"fields": s.fields, "count": s.count} for k, s in self.scope.items()},
                "findings": self.findings}


@dataclass
class Change:
    environment: str
    before: str
    after: str
    what: str  # kind-added | kind-removed | field-added | field-removed | count-jump
    kind: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"environment": self.environment, "from": self.before, "to": self.after, "change": self.what,
                "kind": self.kind, "detail": self.detail}


@dataclass
class ScopeReview:
    source: str
    reviewed_at: datetime
    threshold: float
    snapshots: list[Reviewed]  # oldest first
    changes: list[Change]
    skipped: list[tuple[str, str]]  # (id, why it was not reviewed)

    @property
    def findings(self) -> list[str]:
        return [f"{s.id}: {f}" for s in self.snapshots for f in s.findings]

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "reviewed_at": _iso(self.reviewed_at), "threshold_percent": self.threshold,
                "allow_list": {k: list(v) for k, v in ALLOWED_FIELDS.items()},
                "snapshots": [s.as_dict() for s in self.snapshots],
                "changes": [c.as_dict() for c in self.changes],
                "findings": self.findings,
                "skipped": [{"id": i, "reason": why} for i, why in self.skipped]}


def _iso(t: datetime | None) -> str | None:
    return utc_iso(t) if t else None


def _read_signed(entry: SnapshotEntry, allowed: asyncssh.SSHAllowedSigners) -> Reviewed | str:
    """The signed manifest's scope as written, or why it cannot be reviewed."""
    try:
        doc = tomllib.loads(entry.manifest_bytes.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError):
        return "manifest is not TOML"
    producer, environment, scope = doc.get("producer"), doc.get("environment"), doc.get("scope")
    if not isinstance(producer, str) or not isinstance(environment, str) or not isinstance(scope, dict):
        return "manifest lacks its producer, environment or scope"
    verdict = signature.check(entry.manifest_bytes, entry.signature_bytes, producer, allowed)
    if not verdict.trusted:
        return f"signature {verdict.status.value}: {verdict.detail}"
    if doc.get("id") != entry.id:
        return "manifest id does not match its file name"
    created = doc.get("created_at")
    reviewed = Reviewed(entry.id, created if isinstance(created, datetime) else None, environment, producer, {})
    for kind, raw in scope.items():
        raw = raw if isinstance(raw, dict) else {}
        fields = [str(f) for f in raw.get("fields", [])] if isinstance(raw.get("fields"), list) else []
        count = raw.get("count") if isinstance(raw.get("count"), int) and not isinstance(raw.get("count"), bool) \
            else None
        reviewed.scope[str(kind)] = KindInScope(fields, count)
        allowed_fields = ALLOWED_FIELDS.get(str(kind))
        if allowed_fields is None:
            reviewed.findings.append(f"kind {kind} is outside the allow-list")
            continue
        for f in fields:
            if f not in allowed_fields:
                reviewed.findings.append(f"field {kind}.{f} is outside the allow-list")
    return reviewed


def review_scope(entries: list[SnapshotEntry], allowed: asyncssh.SSHAllowedSigners, source: str, *,
                 threshold: float = DEFAULT_THRESHOLD, now: datetime | None = None) -> ScopeReview:
    """Review the given entries (oldest first by id and chain); consecutive means within one environment."""
    snapshots: list[Reviewed] = []
    skipped: list[tuple[str, str]] = []
    for entry in chronological(entries):
        result = _read_signed(entry, allowed)
        if isinstance(result, str):
            skipped.append((entry.id, result))
        else:
            snapshots.append(result)
    changes: list[Change] = []
    last: dict[str, Reviewed] = {}
    for s in snapshots:
        before = last.get(s.environment)
        if before is not None:
            changes += _compare(before, s, threshold)
        last[s.environment] = s
    return ScopeReview(source, now or datetime.now(timezone.utc), threshold, snapshots, changes, skipped)


def _compare(a: Reviewed, b: Reviewed, threshold: float) -> list[Change]:
    out: list[Change] = []

    def add(what: str, kind: str, detail: str) -> None:
        out.append(Change(b.environment, a.id, b.id, what, kind, detail))

    for kind in b.scope:
        if kind not in a.scope:
            add("kind-added", kind, f"kind {kind} entered the scope ({b.scope[kind].count} records)")
    for kind in a.scope:
        if kind not in b.scope:
            add("kind-removed", kind, f"kind {kind} left the scope (had {a.scope[kind].count} records)")
    for kind in b.scope:
        if kind not in a.scope:
            continue
        old, new = a.scope[kind], b.scope[kind]
        for f in new.fields:
            if f not in old.fields:
                add("field-added", kind, f"field {kind}.{f} entered the scope")
        for f in old.fields:
            if f not in new.fields:
                add("field-removed", kind, f"field {kind}.{f} left the scope")
        if old.count is not None and new.count is not None and old.count != new.count:
            change = (new.count - old.count) * 100 / old.count if old.count else float("inf")
            if abs(change) > threshold:
                shown = f"{change:+.1f}%" if old.count else "from none"
                add("count-jump", kind, f"{kind} {old.count:,} -> {new.count:,} ({shown}, more than the "
                                        f"{threshold:g}% threshold)")
    return out


# -- the auditor's page ----------------------------------------------------------------------------


def _md(text: str) -> str:
    """Outside text (kind and field names, environments, the source) made inert for the page."""
    return for_markdown(text)


def render_markdown(review: ScopeReview) -> str:
    """A page an auditor can read: which platform state is kept, since when, and what changed."""
    lines = ["# Recovery scope review", "",
             f"- **Source:** {_md(review.source)}",
             f"- **Reviewed at (UTC):** {_iso(review.reviewed_at)}",
             f"- **Signed snapshots reviewed:** {len(review.snapshots)}"
             + (f" ({len(review.skipped)} not reviewed: unsigned or unreadable)" if review.skipped else ""),
             f"- **Findings outside the allow-list:** {len(review.findings) or 'none'}",
             f"- **Count changes named when larger than:** {review.threshold:g}% between consecutive snapshots",
             "", "## What the tool may keep (the allow-list)", "",
             "Snapshots hold only these kinds of platform state and these fields; never messages or any "
             "other content.", "", "| kind | fields |", "|---|---|"]
    lines += [f"| {k} | {', '.join(v)} |" for k, v in ALLOWED_FIELDS.items()]
    by_env: dict[str, list[Reviewed]] = {}
    for s in review.snapshots:
        by_env.setdefault(s.environment, []).append(s)
    lines += ["", "## What is kept, and since when", ""]
    if not by_env:
        lines.append("- no signed snapshot")
    for env, snaps in by_env.items():
        kinds = list(dict.fromkeys(k for s in snaps for k in s.scope))
        lines += [f"### Environment {_md(env)}", "",
                  f"Kept since {_iso(snaps[0].created_at) or snaps[0].id} (oldest snapshot held), newest "
                  f"{_iso(snaps[-1].created_at) or snaps[-1].id}; {len(snaps)} snapshot(s).", "",
                  "| snapshot | created (UTC) | " + " | ".join(_md(k) for k in kinds) + " |",
                  "|---|---|" + "---|" * len(kinds)]
        for s in snaps:
            cells = [(f"{s.scope[k].count:,}" if s.scope[k].count is not None else "?") if k in s.scope else "—"
                     for k in kinds]
            lines.append(f"| {s.id} | {_iso(s.created_at) or '-'} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## What changed", ""]
    lines += [f"- {c.after} (after {c.before}, {_md(c.environment)}): {_md(c.detail)}" for c in review.changes] \
        or ["- nothing: every snapshot kept the same kinds and fields, and no count moved beyond the threshold"]
    lines += ["", "## Findings", ""]
    lines += [f"- {_md(f)}" for f in review.findings] or ["- none: every signed snapshot is within the allow-list"]
    if review.skipped:
        lines += ["", "## Not reviewed", ""] + [f"- {i}: {_md(why)}" for i, why in review.skipped]
    lines.append("")
    return "\n".join(lines)
