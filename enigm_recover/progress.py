"""Progress reporting shared by the engine's long operations."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Callable


class Stage(StrEnum):
    """What a long operation is doing; a face picks its own words for each."""

    SEAL = "seal"
    FETCH = "fetch"
    CACHED = "payload (cached)"
    HASH = "hash payload"
    DECRYPT = "decrypt payload"
    RESTORE = "restore"
    VERIFY = "verify"


@dataclass(frozen=True)
class Progress:
    stage: Stage
    done: int
    total: int | None
    unit: str  # "records" or "bytes"
    subject: str = ""  # what the stage works on: a kind, a file name, a plan step

    @property
    def label(self) -> str:
        """The stage and its subject in the engine's plain words, e.g. "restore device"."""
        return f"{self.stage} {self.subject}" if self.subject else str(self.stage)


ProgressCallback = Callable[[Progress], None]


def no_progress(_: Progress) -> None:
    pass
