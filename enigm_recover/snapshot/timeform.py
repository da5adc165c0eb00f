"""The one form of a manifest's ``created_at`` (docs/FORMAT.md, section 3).

TOML reads many forms of an offset date-time into the same ``datetime`` (fractional seconds, a
lowercase ``t`` or ``z``, the offset ``-00:00``), and a parsed ``datetime`` no longer shows which
was written. The format allows exactly ``YYYY-MM-DDTHH:MM:SSZ``, with a space for the ``T`` and
``+00:00`` for the ``Z`` (the producer writes ``2026-11-26 12:00:00+00:00``), so the text is checked.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from enigm_recover.errors import ManifestError

EXPECTED = "YYYY-MM-DDTHH:MM:SSZ"
_FORM = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:Z|\+00:00)")
# A top-level ``created_at = value`` line (the key bare or quoted; an optional comment after).
_LINE = re.compile(r"""^[ \t]*(?:created_at|"created_at"|'created_at')[ \t]*=[ \t]*([^#\r\n]*?)[ \t]*(?:#.*)?$""",
                   re.MULTILINE)


def check_created_at(text: str) -> None:
    """Refuse a manifest whose top-level ``created_at`` is written in any other form than the format's."""
    top = re.split(r"(?m)^[ \t]*\[", text, maxsplit=1)[0]  # before the first table: the top-level keys
    for match in _LINE.finditer(top):
        value = match.group(1)
        if not _FORM.fullmatch(value):
            shown = value if len(value) <= 40 else value[:40] + "…"
            raise ManifestError(f"manifest created_at {shown!r} is not in the form {EXPECTED} (UTC, whole "
                                "seconds; a space may stand for the T and +00:00 for the Z)")


def utc_iso(t: datetime) -> str:
    """A time as the format writes it: UTC, whole seconds, ``YYYY-MM-DDTHH:MM:SSZ``."""
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
