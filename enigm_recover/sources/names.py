"""File names a source offers are never trusted: check them before use."""

from __future__ import annotations

import re
from dataclasses import dataclass

from enigm_recover.snapshot.manifest import SNAPSHOT_ID_RE

MANIFEST_SUFFIX = ".manifest.toml"
MAX_NAME_BYTES = 255
_TIME_PREFIX = re.compile(rb"[0-9]{8}T[0-9]{6}Z")


def hostile_name_reason(name: str | bytes) -> str | None:
    """Why a directory entry's name must not be used, or None when it is harmless."""
    raw = name if isinstance(name, bytes) else name.encode("utf-8", "surrogateescape")
    if len(raw) > MAX_NAME_BYTES:
        return f"name longer than {MAX_NAME_BYTES} bytes"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "name is not UTF-8"
    if "/" in text or "\\" in text:
        return "name contains a path separator"
    if text in (".", "..") or text.startswith(".."):
        return "name refers to a parent folder"
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        return "name contains control characters"
    return None


@dataclass(frozen=True)
class NameVerdict:
    snapshot_id: str | None  # set for a manifest with a well-formed id
    refusal: str | None  # a reason to report; None for names that are simply not ours
    shown: str = ""  # the name as it may be shown (escaped, shortened)
    claims_manifest: bool = False  # a refused name that ends like a manifest: it may be a snapshot
    created: str | None = None  # the creation time (YYYYMMDDTHHMMSSZ) the name begins with, if any


def claimed_time(name: str | bytes) -> str | None:
    """The creation time a (possibly hostile) name begins with, as snapshot ids do; None when it has none."""
    raw = name if isinstance(name, bytes) else name.encode("utf-8", "surrogateescape")
    found = _TIME_PREFIX.match(raw)
    return found.group().decode() if found else None


def classify(name: str | bytes) -> NameVerdict:
    """Sort a directory entry: a snapshot manifest, a name to refuse, or something else."""
    reason = hostile_name_reason(name)
    shown = repr(name.decode("utf-8", "replace") if isinstance(name, bytes) else name)[:80]
    raw = name if isinstance(name, bytes) else name.encode("utf-8", "surrogateescape")
    claims = raw.endswith(MANIFEST_SUFFIX.encode())
    if reason:
        return NameVerdict(None, f"{shown}: {reason}", shown, claims, claimed_time(raw))
    text = name.decode() if isinstance(name, bytes) else name
    if not text.endswith(MANIFEST_SUFFIX):
        return NameVerdict(None, None, shown)
    snapshot_id = text[: -len(MANIFEST_SUFFIX)]
    if not SNAPSHOT_ID_RE.fullmatch(snapshot_id):
        return NameVerdict(None, f"{shown}: not a snapshot id", shown, True, claimed_time(raw))
    return NameVerdict(snapshot_id, None, shown)
