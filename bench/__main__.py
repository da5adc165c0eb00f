"""Run the benchmarks: ``python -m bench [NAME ...] [--scale FLOAT]``.

Each benchmark prints a readable report to stdout; all results also go to one
JSON file in ``bench/out/``. The exit status is 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from bench import (
    OUT_DIR,
    app_startup,
    diff_restore,
    drill_build,
    keys_lifecycle,
    pq_sealing,
    restore_same_work,
    scaling,
    sftp_list_fetch,
    snapshot_seal_unseal,
)

Benchmark = Callable[[float, Path], dict[str, Any]]

BENCHMARKS: dict[str, Benchmark] = {
    "snapshot_seal_unseal": snapshot_seal_unseal.run,
    "sftp_list_fetch": sftp_list_fetch.run,
    "diff_restore": diff_restore.run,
    "app_startup": app_startup.run,
    "keys_lifecycle": keys_lifecycle.run,
    "pq_sealing": pq_sealing.run,
    "restore_same_work": restore_same_work.run,
    "drill_build": drill_build.run,
    "scaling": scaling.run,
    "dry_run": scaling.run_dry_run,
}


def _scale(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("the scale must be a positive number")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Run the benchmarks; results also go to bench/out/.")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run (default: all): {', '.join(BENCHMARKS)}")
    parser.add_argument("--scale", type=_scale, default=1.0,
                        help="multiply record counts (default 1.0; e.g. 0.01 for a quick smoke run)")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")
    return args


def host() -> dict[str, Any]:
    """Where the numbers come from."""
    return {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count()}


def write_results(started: datetime, scale: float, results: dict[str, Any]) -> Path:
    """Write all results to a timestamped JSON file in OUT_DIR; return its path."""
    path = OUT_DIR / f"results-{started:%Y%m%dT%H%M%SZ}.json"
    doc = {"started": started.isoformat(), "scale": scale, "host": host(), "benchmarks": results}
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    OUT_DIR.mkdir(exist_ok=True)
    started = datetime.now(timezone.utc)
    results = {name: BENCHMARKS[name](args.scale, OUT_DIR) for name in args.names or BENCHMARKS}
    print(f"results: {write_results(started, args.scale, results)}")
    return 0 if all(r["goals_met"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
