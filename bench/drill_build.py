"""The drill's platform build beside a plain ``executemany`` of the same rows.

The goal (from the issue): ``drill --identities 1000000`` builds its platform
(1,000,000 identities, 3,000,000 devices, the settings and roles) at no less
than half the rate of a plain ``executemany`` of the same rows.

Ours is ``SyntheticPlatform.build`` as ``make_drill`` calls it: it makes every
row (ids, keys, timestamps, states) and inserts it into a new SQLite store.
The baseline inserts exactly those rows, made beforehand and untimed, with one
``executemany`` per table in one transaction, into a new store with the same
schema and the same settings (``synchronous=OFF`` during the load, as ours).
Both end states are compared once. Each run is a fresh child process
(``python -m bench.drill_build MODE DB IDENTITIES``) timing its own build or
load phase; the two alternate.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from datetime import datetime, timezone
from pathlib import Path
from time import perf_counter
from typing import Any

from bench.common import Sample, interleaved, log, spawn, summary, verdict

IDENTITIES = 1_000_000
DEVICES_PER_IDENTITY = 3
SEED = 1
GENESIS = datetime(2025, 1, 1, tzinfo=timezone.utc)
REPEATS = 3
GOAL_RATE_RATIO = 0.5  # ours / baseline, records per second: at least
ROOT = Path(__file__).resolve().parent.parent


def _platform(identities: int) -> Any:
    from enigm_recover.drill.platform import SyntheticPlatform

    return SyntheticPlatform(SEED, identities, DEVICES_PER_IDENTITY, genesis=GENESIS)


def worker_build(db: str, identities: str) -> dict[str, Any]:
    """Ours: the platform built into a new store; the build alone is timed."""
    from enigm_recover.state.sqlite_store import SQLiteStore

    with SQLiteStore(Path(db), create=True) as store:
        start = perf_counter()
        _platform(int(identities)).build(store)
        elapsed = perf_counter() - start
    return {"build_s": elapsed, "records": _records(db)}


def worker_executemany(db: str, identities: str) -> dict[str, Any]:
    """The baseline: the same rows made first (untimed), then one executemany per table, one transaction."""
    from enigm_recover.drill.platform import OPERATORS, SETTINGS, ts
    from enigm_recover.state.model import DEVICE, IDENTITY, ROLE, SETTING
    from enigm_recover.state.sqlite_store import SQLiteStore

    platform = _platform(int(identities))
    when = ts(platform.genesis)
    rows = {IDENTITY: list(platform._identity_rows()), DEVICE: list(platform._device_rows()),
            SETTING: [(k, json.dumps(v, sort_keys=True), when) for k, v in SETTINGS.items()],
            ROLE: [(op, role, by, when) for op, role, by in OPERATORS]}
    with SQLiteStore(Path(db), create=True) as store:
        store.init_schema()
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    start = perf_counter()
    conn.execute("BEGIN")
    for kind, kind_rows in rows.items():
        conn.executemany(f"INSERT INTO {kind.table} ({', '.join(kind.field_names)}) "
                         f"VALUES ({', '.join('?' for _ in kind.fields)})", kind_rows)
    conn.execute("COMMIT")
    elapsed = perf_counter() - start
    conn.close()
    return {"build_s": elapsed, "records": _records(db)}


def _records(db: str) -> int:
    conn = sqlite3.connect(db)
    try:
        return sum(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                   for t in ("identities", "devices", "settings", "roles"))
    finally:
        conn.close()


def same_tables(a: Path, b: Path) -> bool:
    conn = sqlite3.connect(a)
    conn.execute("ATTACH ? AS o", (str(b),))
    try:
        return all(conn.execute(f"SELECT count(*) FROM (SELECT * FROM main.{t} EXCEPT SELECT * FROM o.{t})")
                   .fetchone()[0] == 0 for t in ("identities", "devices", "settings", "roles"))
    finally:
        conn.close()


def _child(work: Path, mode: str, identities: int, keep: bool = False) -> Sample:
    import os

    db = work / f"{mode}.db"
    for stale in work.glob(f"{mode}.db*"):
        stale.unlink()
    out = work / f"{mode}.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    os.sync()
    sample = spawn([sys.executable, "-m", "bench.drill_build", mode, str(db), str(identities)], out, env)
    report = json.loads(out.read_text())
    if not keep:
        for stale in work.glob(f"{mode}.db*"):
            stale.unlink()
    return Sample(sample.wall_s, sample.cpu_s, report)


def run(scale: float, out_dir: Path) -> dict[str, Any]:
    import shutil
    import tempfile

    identities = max(100, round(IDENTITIES * scale))
    log(f"drill_build: {identities:,} identities x {DEVICES_PER_IDENTITY} devices (scale {scale})")
    work = Path(tempfile.mkdtemp(prefix="drill_build-", dir=out_dir))
    try:
        _child(work, "build", identities, keep=True)
        _child(work, "executemany", identities, keep=True)
        if not same_tables(work / "build.db", work / "executemany.db"):
            raise RuntimeError("the baseline's rows differ from the platform ours built")
        samples = interleaved({"ours": lambda: _child(work, "build", identities),
                               "baseline": lambda: _child(work, "executemany", identities)}, REPEATS, warm_up=False)
    finally:
        shutil.rmtree(work)
    measured = {name: summary(runs) for name, runs in samples.items()}
    records = measured["ours"]["child"]["records"]
    rate = {name: records / m["child"]["build_s"] for name, m in measured.items()}
    ratio = rate["ours"] / rate["baseline"]
    rounds = [b.child["build_s"] / o.child["build_s"] for o, b in zip(samples["ours"], samples["baseline"])]
    result = {"scale": scale, "identities": identities, "records": records, "measured": measured,
              "rate_per_s": rate, "ratio": ratio, "each_round": rounds, "goals_met": ratio >= GOAL_RATE_RATIO}
    log("\n".join([
        "", f"== drill_build: {identities:,} identities ({records:,} records); {REPEATS} interleaved runs, medians", "",
        f"  OURS SyntheticPlatform.build (rows made + inserted)  {measured['ours']['child']['build_s']:7.2f} s "
        f"{rate['ours']:>11,.0f} records/s",
        f"  BASELINE executemany of the same rows (made before)  {measured['baseline']['child']['build_s']:7.2f} s "
        f"{rate['baseline']:>11,.0f} records/s",
        f"  ratio of rates ours/baseline {ratio:.2f}x (rounds {' '.join(f'{r:.2f}' for r in rounds)})   "
        f"goal >= {GOAL_RATE_RATIO}x   {verdict(ratio >= GOAL_RATE_RATIO)}", ""]))
    return result


WORKERS = {"build": worker_build, "executemany": worker_executemany}

if __name__ == "__main__":
    mode, *arguments = sys.argv[1:]
    print(json.dumps(WORKERS[mode](*arguments)))
