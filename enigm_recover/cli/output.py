"""How the command line shows things: progress on the terminal, JSON, listings and dry runs."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from datetime import datetime, timezone
from collections.abc import Iterator
from typing import Any, TextIO

from enigm_recover.inert import for_terminal
from enigm_recover.progress import Progress, ProgressCallback, RateMeter, no_progress


class ProgressPrinter:
    """Draws progress (done, rate, ETA) on a terminal's stderr, at most ten times a second. The rate and
    ETA show only once they are measured over a second or more (``RateMeter``)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream: TextIO = getattr(stream, "unescaped", stream)  # its own control sequences pass; text is escaped
        self.last = 0.0
        self.stage = ""
        self.meter = RateMeter()

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        if p.label != self.stage:
            self.stage = p.label
            self.meter.reset()
        rate = self.meter.add(now, p.done)
        if now - self.last < 0.1 and p.done != p.total:
            return
        self.last = now
        from enigm_recover.render import human_size

        done = human_size(p.done) if p.unit == "bytes" else f"{p.done:,}"
        line = f"{p.label}: {done}"
        if p.total:
            line += f" of {human_size(p.total) if p.unit == 'bytes' else f'{p.total:,}'}" \
                    f" ({100 * p.done / p.total:.0f}%)"
        if rate is not None:
            line += f", {human_size(int(rate))}/s" if p.unit == "bytes" else f", {rate:,.0f}/s"
            if (left := RateMeter.seconds_left(rate, p.done, p.total)) is not None:
                line += f", ETA {left:.0f} s"
        self.stream.write("\r\033[K" + fit(for_terminal(line), terminal_width(self.stream)))
        if p.total and p.done >= p.total:
            self.stream.write("\n")
        self.stream.flush()


def terminal_width(stream: TextIO) -> int:
    """Columns of the terminal ``stream`` draws on: $COLUMNS, else the terminal's own size, else 80."""
    if os.environ.get("COLUMNS", "").isdigit() and int(os.environ["COLUMNS"]) > 0:
        return int(os.environ["COLUMNS"])
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (AttributeError, OSError, ValueError):
        return shutil.get_terminal_size().columns


def fit(line: str, columns: int) -> str:
    """``line`` cut to fit in one row less one column: a redrawn line that wrapped would leave a trail."""
    from rich.cells import cell_len, set_cell_size

    room = max(columns - 1, 1)
    if cell_len(line) <= room:
        return line
    return set_cell_size(line, room - 1) + "…"


def progress_for(args: argparse.Namespace) -> ProgressCallback:
    if getattr(args, "json", False) or not sys.stderr.isatty():
        return no_progress
    return ProgressPrinter(sys.stderr)


# The version of every ``--json`` document's shape (docs/JSON.md). Adding a key keeps it; renaming or removing
# a key, or changing a value's type or meaning, raises it.
SCHEMA_VERSION = 1


def emit_json(obj: dict[str, Any]) -> None:
    """Strict JSON: every string is Unicode text, a path's raw bytes shown by ``display_text``. Every document
    is an object whose first key is ``schema_version``."""
    from enigm_recover.paths import display_text

    doc = {"schema_version": SCHEMA_VERSION, **{k: v for k, v in obj.items() if k != "schema_version"}}
    if not any(isinstance(v, Iterator) for v in doc.values()):
        json.dump(_as_text(doc, display_text), sys.stdout, indent=2, default=_shown)
        sys.stdout.write("\n")
        return
    # A value that is an iterator is a list written item by item, never held whole (a total loss's changes):
    # the same text json.dump writes for the whole document.
    out = sys.stdout
    out.write("{")
    for number, (key, value) in enumerate(doc.items()):
        out.write(("," if number else "") + "\n  " + json.dumps(display_text(key)) + ": ")
        if isinstance(value, Iterator):
            first = True
            for item in value:
                out.write(("[" if first else ",") + "\n    " + _dumped(item, "    "))
                first = False
            out.write("[]" if first else "\n  ]")
        else:
            out.write(_dumped(value, "  "))
    out.write("\n}\n")


def _shown(value: Any) -> str:
    from enigm_recover.paths import display_text

    return display_text(str(value))


def _dumped(value: Any, indent: str) -> str:
    """``value`` as json.dump writes it nested at ``indent``."""
    from enigm_recover.paths import display_text

    return json.dumps(_as_text(value, display_text), indent=2, default=_shown).replace("\n", "\n" + indent)


def _as_text(value: Any, show: Any) -> Any:
    if isinstance(value, str):
        return show(value)
    if isinstance(value, dict):
        return {show(k) if isinstance(k, str) else k: _as_text(v, show) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_text(v, show) for v in value]
    return value


def print_listing(summaries: list[Any], signers_checked: bool) -> None:
    from enigm_recover.render import human_age, human_size, table

    if not summaries:
        print("no snapshots")
        return
    now = datetime.now(timezone.utc)
    rows = []
    for s in summaries:
        key = "-" if s.recipient_matches is None else ("yes" if s.recipient_matches else "NO")
        counts = " ".join(f"{k[0]}:{n:,}" for k, n in s.counts.items()) or "-"
        rows.append([s.id, s.created_at.strftime("%Y-%m-%d %H:%M") if s.created_at else "-",
                     "FUTURE" if s.in_future(now) else human_age(s.age_seconds(now)), s.environment or "-",
                     s.producer or "-", counts, human_size(s.payload_size),
                     "unreadable" if s.created_at is None else s.signature.value, key])
    print(table(["ID", "CREATED (UTC)", "AGE", "ENV", "PRODUCER", "COUNTS", "PAYLOAD", "SIGNATURE", "KEY"], rows))
    if not signers_checked:
        print("signatures were checked for validity only: pass --allowed-signers to check trust")


def check_mark(ok: bool | None) -> str:
    return {True: "ok  ", False: "FAIL", None: "... "}[ok]


def print_diff(result: Any, limit: int) -> None:
    from enigm_recover.recovery.assess import REASONS, Finding
    from enigm_recover.render import table

    print(f"dry run of snapshot {result.snapshot_id} (taken {result.snapshot_time}) against {result.target}")
    rows = [[k, f"{s.snapshot:,}", f"{s.live:,}", f"{s.missing:,}", f"{s.extra:,}", f"{s.changed:,}",
             f"{s.unchanged:,}"] if s.in_snapshot else [k, "not in this snapshot", "", "", "", "", ""]
            for k, s in result.kinds.items()]
    print(table(["KIND", "SNAPSHOT", "LIVE", "MISSING", "EXTRA", "CHANGED", "UNCHANGED"], rows))
    findings = result.findings()
    if findings:
        print("\nsafety findings:")
        for code, count in findings.most_common():
            print(f"  {count:>8,}  {code}: {REASONS[Finding(code)]}")
    shown = result.changes.findings_first(limit)
    if shown:
        print(f"\nchanges (first {len(shown):,} of {len(result.changes):,}; findings first; --limit shows more):")
    for change in shown:
        key = for_terminal("/".join(str(k) for k in change.key))
        notes = f"  [{', '.join(f.value for f in change.findings)}]" if change.findings else ""
        print(f"  {change.change.value:<8} {change.kind} {key}{notes}")
        for name, live, snap in change.fields:
            print(f"             {name}: live {live!r} -> snapshot {snap!r}")
        if change.unreadable is not None:
            u = change.unreadable
            print(f"             {u.column}: live holds {u.found}, not {u.expected}")
    unreadable = getattr(result, "unreadable_live", [])
    if unreadable:
        print(f"\nlive tables and records that cannot be read ({len(unreadable):,}):")
        for u in unreadable[:limit] if limit else unreadable[:20]:
            print(f"  {u.describe()}")


def audit_head_line(audit: Any) -> str:
    """The last line of a recovery's output: its audit head, grouped to be written down or photographed."""
    from enigm_recover.recovery.audit import readable_head

    return (f"audit head (entry {audit.seq}): {readable_head(audit.head)} — write it down and keep it apart "
            "from the log")
