"""The readiness policy: how old the newest snapshot may be, and how large a drop in counts is plausible."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from enigm_recover.errors import UsageError
from enigm_recover.snapshot.retention import RetentionPolicy

DEFAULT_MAX_AGE = timedelta(hours=26)  # nightly snapshots, with two hours of slack
DEFAULT_MAX_DROP = 25.0  # percent of identities or devices lost between two consecutive snapshots
MAX_DURATION = timedelta(days=3650)  # ten years: past that, a duration is a typing mistake
DROP_KINDS = ("identity", "device")

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(?:[0-9]+[smhdw])+")
_PART = re.compile(r"([0-9]+)([smhdw])")
_PERCENT = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*%?")


@dataclass(frozen=True)
class ReadinessPolicy:
    max_age: timedelta = DEFAULT_MAX_AGE
    max_drop: float = DEFAULT_MAX_DROP
    environment: str | None = None  # only snapshots of this environment; None: all
    retention: RetentionPolicy | None = None  # no snapshot may be older than this policy keeps

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"max_age_seconds": int(self.max_age.total_seconds()),
                                  "max_age": format_duration(self.max_age), "max_drop_percent": self.max_drop}
        if self.environment:
            out["environment"] = self.environment
        if self.retention is not None:
            out["retention"] = self.retention.as_dict()
        return out


def parse_duration(text: str, option: str = "--max-age") -> timedelta:
    """``26h``, ``90m``, ``2d``, ``3600s``, ``1w``, or a sum such as ``1d12h``; more than zero."""
    value = text.strip().lower()
    if not _DURATION.fullmatch(value):
        raise UsageError(f"{option} {text!r} is not a duration",
                         f"give a number and a unit (s, m, h, d, w), e.g. {option} 26h, 90m, 2d or 3600s")
    try:
        seconds = sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(value))
    except ValueError:  # more digits than Python converts: far past the bound anyway
        seconds = int(MAX_DURATION.total_seconds()) + 1
    if seconds <= 0:
        raise UsageError(f"{option} {text!r} must be longer than zero", f"e.g. {option} 26h")
    if seconds > MAX_DURATION.total_seconds():
        shown = text if len(text) <= 40 else text[:40] + "…"
        raise UsageError(f"{option} {shown!r} is longer than the {format_duration(MAX_DURATION)} allowed: it must "
                         f"be at most {format_duration(MAX_DURATION)} (ten years)", f"e.g. {option} 26h")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """The shortest exact form: ``26h``, ``90m``, ``2d``, ``3601s``."""
    seconds = int(delta.total_seconds())
    for unit in ("w", "d", "h", "m"):
        if seconds and seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


def parse_percent(text: str, option: str = "--max-drop") -> float:
    """``25``, ``25%`` or ``12.5%``: more than 0, at most 100."""
    match = _PERCENT.fullmatch(text.strip())
    value = float(match.group(1)) if match else -1.0
    if not 0 < value <= 100:
        raise UsageError(f"{option} {text!r} is not a percentage between 0 and 100",
                         f"e.g. {option} 25 (a drop of more than 25% between consecutive snapshots is flagged)")
    return value
