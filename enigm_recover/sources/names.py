"""File names a source offers are never trusted: check them before use."""

from __future__ import annotations

from dataclasses import dataclass

from enigm_recover.snapshot.manifest import SNAPSHOT_ID_RE

MANIFEST_SUFFIX = ".manifest.toml"
MAX_NAME_BYTES = 255


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


def classify(name: str | bytes) -> NameVerdict:
    """Sort a directory entry: a snapshot manifest, a name to refuse, or something else."""
    reason = hostile_name_reason(name)
    shown = repr(name.decode("utf-8", "replace") if isinstance(name, bytes) else name)[:80]
    if reason:
        return NameVerdict(None, f"{shown}: {reason}")
    text = name.decode() if isinstance(name, bytes) else name
    if not text.endswith(MANIFEST_SUFFIX):
        return NameVerdict(None, None)
    snapshot_id = text[: -len(MANIFEST_SUFFIX)]
    if not SNAPSHOT_ID_RE.fullmatch(snapshot_id):
        return NameVerdict(None, f"{shown}: not a snapshot id")
    return NameVerdict(snapshot_id, None)
