"""TOML documents the tool writes (reports, run state): tomli-w, with None values left out."""

from __future__ import annotations

from typing import Any

import tomli_w


def without_none(value: Any) -> Any:
    """TOML has no null: drop None values, at every depth."""
    if isinstance(value, dict):
        return {k: without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_none(v) for v in value]
    return value


def dumps(document: dict[str, Any]) -> bytes:
    return tomli_w.dumps(without_none(document)).encode("utf-8")
