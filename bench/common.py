"""What every benchmark shares: timing child processes, interleaving runs, medians, peak memory."""

from __future__ import annotations

import os
import shlex
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any, Callable


@dataclass(frozen=True)
class Sample:
    """One child process: its wall and CPU time (user+sys, its children included), and its report."""

    wall_s: float
    cpu_s: float
    child: dict[str, Any] = field(default_factory=dict)  # what the child reports about itself


def log(message: str) -> None:
    print(message, flush=True)


def spawn(argv: list[str], stdout: Path, env: dict[str, str] | None = None, stdin: Path | None = None) -> Sample:
    """Run ``argv`` with stdout to a file; time it (and its children) alone with wait4."""
    actions: list[tuple[Any, ...]] = [(os.POSIX_SPAWN_OPEN, 1, str(stdout), os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                                       0o600)]
    if stdin is not None:
        actions.append((os.POSIX_SPAWN_OPEN, 0, str(stdin), os.O_RDONLY, 0))
    start = perf_counter()
    pid = os.posix_spawnp(argv[0], argv, env if env is not None else os.environ, file_actions=actions)
    _, status, usage = os.wait4(pid, 0)
    wall = perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed with status {os.waitstatus_to_exitcode(status)}")
    return Sample(wall, usage.ru_utime + usage.ru_stime)


def interleaved(jobs: dict[str, Callable[[], Sample]], repeats: int, warm_up: bool = True) -> dict[str, list[Sample]]:
    """Optionally one untimed warm-up of each job, then ``repeats`` rounds, alternating the order."""
    if warm_up:
        for job in jobs.values():
            job()
    samples: dict[str, list[Sample]] = {name: [] for name in jobs}
    for round_no in range(repeats):
        order = list(jobs) if round_no % 2 == 0 else list(reversed(jobs))
        for name in order:
            samples[name].append(jobs[name]())
    return samples


def summary(samples: list[Sample]) -> dict[str, Any]:
    """Medians of the times and of the child's numeric report, and all raw runs."""
    numeric = [k for k, v in samples[0].child.items() if isinstance(v, (int, float))]
    return {
        "wall_s": statistics.median(s.wall_s for s in samples),
        "cpu_s": statistics.median(s.cpu_s for s in samples),
        "child": {k: statistics.median(s.child[k] for s in samples) for k in numeric},
        "runs": [asdict(s) for s in samples],
    }


def peak_rss_mib() -> float:
    """This process's own peak resident set (VmHWM).

    Not ``ru_maxrss``: on Linux that starts from the parent's peak at exec, so a child of a big parent
    would report the parent's memory.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"
