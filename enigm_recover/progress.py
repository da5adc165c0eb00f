"""Progress reporting shared by the engine's long operations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Progress:
    stage: str  # e.g. "seal identity", "hash payload"
    done: int
    total: int | None
    unit: str  # "records" or "bytes"


ProgressCallback = Callable[[Progress], None]


def no_progress(_: Progress) -> None:
    pass
