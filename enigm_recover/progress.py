"""Progress reporting shared by the engine's long operations."""

from __future__ import annotations

from collections import deque
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


class RateMeter:
    """A rate that means something: measured over the last ``window`` seconds of samples, and None until
    they span ``min_span`` seconds (a rate over a few milliseconds reads "200,000,000/s").

    Feed it (time, amount done) pairs of one stage; ``reset`` when the stage changes."""

    def __init__(self, min_span: float = 1.0, window: float = 5.0) -> None:
        self.min_span = min_span
        self.window = window
        self._samples: deque[tuple[float, int]] = deque()

    def reset(self) -> None:
        self._samples.clear()

    def add(self, now: float, done: int) -> float | None:
        """Record a sample; the rate per second over the window, or None while it spans too little time."""
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window:
            self._samples.popleft()  # keep one sample at or beyond the window's start, so the span stays wide
        return self.rate

    @property
    def rate(self) -> float | None:
        if len(self._samples) < 2:
            return None
        (t0, d0), (t1, d1) = self._samples[0], self._samples[-1]
        if t1 - t0 < self.min_span or d1 <= d0:
            return None
        return (d1 - d0) / (t1 - t0)

    @staticmethod
    def seconds_left(rate: float | None, done: int, total: int | None) -> float | None:
        if rate is None or not total or total <= done:
            return None
        return (total - done) / rate


def paced(progress: ProgressCallback, seconds: float, stage: Stage = Stage.RESTORE,
          sleep: Callable[[float], None] | None = None) -> ProgressCallback:
    """``progress``, waiting ``seconds`` after each report of ``stage`` (one per committed batch): a drill's
    slow restore, long enough to practise quitting and resuming. The report comes first, so a cancelled run
    stops at the next batch as usual."""
    import time

    wait = sleep or time.sleep

    def report(p: Progress) -> None:
        progress(p)
        if p.stage is stage and seconds > 0:
            wait(seconds)

    return report
