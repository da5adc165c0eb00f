"""TOML documents the tool writes (reports, run state): tomli-w, with None values left out, and every
character a terminal acts on written as an escape (``inert.for_toml``), so that reading the file with
``cat`` or ``less`` is safe too."""

from __future__ import annotations

from typing import Any

import tomli_w

from enigm_recover.inert import for_toml


def without_none(value: Any) -> Any:
    """TOML has no null: drop None values, at every depth."""
    if isinstance(value, dict):
        return {k: without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_none(v) for v in value]
    return value


def dumps(document: dict[str, Any]) -> bytes:
    return for_toml(tomli_w.dumps(without_none(document))).encode("utf-8")
