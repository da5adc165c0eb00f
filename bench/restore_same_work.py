"""The restore, beside the store's own engine doing the same safe restore (bench/restore_baselines.py).

Goal: ``enigm-recover restore`` from start to verified end takes at most 1.0x the
wall time of the baseline, in two scenarios on the drill (1,000,000 identities,
4 million records at scale 1), into SQLite and PostgreSQL, with a peak memory
under 300 MiB:

- incident: the drill's damaged target (devices deleted, identities and settings
  altered, roles changed; after the snapshot, devices revoked, keys rotated,
  accounts created);
- total loss: the same target with the identity, device, setting and role tables
  emptied, so every record is restored.

Ours is the real command, in a fresh process (``python -m bench.restore_same_work
ours ...`` runs ``enigm_recover.cli.main`` with the arguments a user types):
verify the snapshot, the restore lock, three share cards, the dry run, the
journaled apply and the verification read-back. Its apply phase
(``Restorer.run``: batches, journal, verification) is timed inside it as well,
and reported apart. The baseline is the whole ``sqlite3`` or ``psql`` process,
its import of the snapshot's records (CSV files, exported untimed) included.
The policies are the drill's usual ones (restore-missing everywhere,
identity and setting overwrite-changed, role overwrite-changed and delete-extra).

For the total loss, records per second are also printed beside a blind bulk
insert of the same records (the sqlite3 program's ``.import`` straight into the
empty live tables; psql's ``\\copy`` into them): informational, as that checks
and verifies nothing.

Every run is a fresh child process on a fresh copy of the target, timed with
wait4, ours and the baseline alternating; medians are reported. Run it alone
with ``python -m bench.restore_same_work run [--scale S] [--store sqlite|postgresql]
[--scenario incident|total-loss]`` or with the others through ``python -m bench``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from time import perf_counter
from typing import Any

from bench.common import Sample, interleaved, log, peak_rss_mib, verdict

IDENTITIES = 1_000_000
MIN_IDENTITIES = 100
REPEATS = 3
WARM_UP_BELOW_SCALE = 0.5
GOAL_RATIO = 1.0  # ours / baseline, median wall time: at most
GOAL_RSS_MIB = 300.0  # peak memory of our restore: under
SCENARIOS = ("incident", "total-loss")
STORES = ("sqlite", "postgresql")
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Setup:
    work: Path
    drill: Any  # bench.diff_restore.Drill
    targets: dict[str, Path]  # scenario -> its SQLite target (never written: runs use copies)
    records: dict[str, int]  # scenario -> records restored (total loss: all of them)


def _policies() -> tuple[str, ...]:
    from bench.diff_restore import RESTORE_POLICIES

    return RESTORE_POLICIES


def make_setup(work: Path, identities: int) -> Setup:
    from bench.diff_restore import make_drill_files

    drill = make_drill_files(work, identities)
    lost = work / "total-loss.db"
    shutil.copyfile(drill.live, lost)
    conn = sqlite3.connect(lost)
    try:
        for table in ("identities", "devices", "settings", "roles"):
            conn.execute(f"DELETE FROM {table}")
        conn.commit()
        conn.execute("VACUUM")
    finally:
        conn.close()
    return Setup(work, drill, {"incident": drill.live, "total-loss": lost},
                 {"total-loss": sum(drill.snapshot_records.values())})


def child_env(work: Path) -> dict[str, str]:
    from bench.diff_restore import child_env as base

    env = base()
    env["ENIGM_RECOVER_STATE_DIR"] = str(work / "state")
    env["ENIGM_RECOVER_CACHE_DIR"] = str(work / "cache")
    env["ENIGM_RECOVER_CONFIG"] = str(work / "config.toml")
    return env


def spawn(argv: list[str], stdout: Path, env: dict[str, str], stdin: Path | None = None) -> Sample:
    """bench.common.spawn, with stderr kept beside stdout and shown when the child fails."""
    import shlex

    stderr = stdout.with_suffix(".err")
    actions: list[tuple[Any, ...]] = [
        (os.POSIX_SPAWN_OPEN, 1, str(stdout), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
        (os.POSIX_SPAWN_OPEN, 2, str(stderr), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)]
    if stdin is not None:
        actions.append((os.POSIX_SPAWN_OPEN, 0, str(stdin), os.O_RDONLY, 0))
    os.sync()
    start = perf_counter()
    pid = os.posix_spawnp(argv[0], argv, env, file_actions=actions)
    _, status, usage = os.wait4(pid, 0)
    wall = perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed with status {os.waitstatus_to_exitcode(status)}:\n"
                           f"{stderr.read_text(errors='replace')[-3000:]}")
    return Sample(wall, usage.ru_utime + usage.ru_stime)


class Cluster:
    """A throwaway PostgreSQL cluster with one template database per scenario."""

    def __init__(self, setup: Setup) -> None:
        from tests.postgres import copy_store, start_cluster

        self.cluster = start_cluster()
        self.templates: dict[str, str] = {}
        self.current: dict[str, str] = {}
        try:
            for scenario, path in setup.targets.items():
                name = self.cluster.create_database(f"tpl_{scenario.replace('-', '_')}")
                copy_store(f"sqlite:///{path}", self.cluster.url_for(name))
                import psycopg

                with psycopg.connect(self.cluster.url_for(name), autocommit=True) as conn:
                    conn.execute("VACUUM ANALYZE")
                    self.version = str(conn.execute("SHOW server_version").fetchone()[0])
                self.templates[scenario] = name
        except BaseException:
            self.cluster.stop()
            raise

    def fresh(self, job: str, scenario: str) -> str:
        old = self.current.pop(job, None)
        if old:
            self.cluster.drop_database(old)
        db = f"run_{job}_{os.urandom(4).hex()}"
        self.cluster.admin(f'CREATE DATABASE "{db}" TEMPLATE "{self.templates[scenario]}" STRATEGY FILE_COPY')
        self.current[job] = db
        return self.cluster.url_for(db)

    def stop(self) -> None:
        self.cluster.stop()


class Jobs:
    """Ours, the baseline and the blind bulk insert, for one scenario on one store."""

    def __init__(self, setup: Setup, scenario: str, store: str, cluster: Cluster | None) -> None:
        from bench.restore_baselines import policies_of, psql_script, sqlite_script

        self.setup, self.scenario, self.store, self.cluster = setup, scenario, store, cluster
        self.env = child_env(setup.work)
        tag = f"{store}-{scenario}"
        self.script = setup.work / f"baseline-{tag}.sql"
        policies = policies_of(_policies())
        csvs = setup.drill.csvs
        if store == "sqlite":
            self.script.write_text(sqlite_script(setup.targets[scenario], csvs, policies))
        else:
            self.script.write_text(psql_script(csvs, policies))
        self.bulk = setup.work / f"bulk-{tag}.sql"
        if store == "sqlite":
            self.bulk.write_text(".bail on\n" + "".join(
                f".import --csv --skip 1 {path} {table}\n" for table, path in csvs.items()))
        else:
            self.bulk.write_text("".join(f"\\copy {table} FROM '{path}' WITH (FORMAT csv, HEADER true, "
                                         f"FORCE_NOT_NULL ({', '.join(_fields(table))}))\n"
                                         for table, path in csvs.items()))
        self.written: int | None = None

    def _target(self, job: str) -> tuple[str, Path | None]:
        if self.cluster is not None:
            return self.cluster.fresh(job, self.scenario), None
        path = self.setup.work / f"{job}.db"
        for stale in self.setup.work.glob(f"{job}.db*"):
            stale.unlink()
        shutil.copyfile(self.setup.targets[self.scenario], path)
        return f"sqlite:///{path}", path

    def ours(self) -> Sample:
        url, _ = self._target("ours")
        out = self.setup.work / "ours.json"
        report = self.setup.work / "ours-report.json"
        sample = spawn([sys.executable, "-m", "bench.restore_same_work", "ours", str(self.setup.drill.folder), url,
                        str(report)], out, self.env)
        child = json.loads(report.read_text())
        outcome = json.loads(out.read_text())
        if outcome["status"] != "completed" or any(s["status"] != "verified" for s in outcome["steps"]):
            raise RuntimeError(f"our restore ended {outcome['status']}: {outcome['steps']}")
        written = sum(s["inserted"] + s["updated"] + s["deleted"] for s in outcome["steps"])
        if self.written is not None and written != self.written:
            raise RuntimeError(f"our restore wrote {written}, the baseline {self.written}")
        self.written = written
        return replace(sample, child={**child, "rows": written})

    def baseline(self) -> Sample:
        from bench.restore_baselines import parse_verification, psql_argv, sqlite_argv

        url, path = self._target("baseline")
        out = self.setup.work / "baseline.out"
        if path is not None:
            sample = spawn(sqlite_argv(path), out, self.env, stdin=self.script)
        else:
            sample = spawn(psql_argv(url, self.script), out, self.env)
        checked = parse_verification(out.read_text())
        if any(c["unmet"] or not c["hashes_equal"] for c in checked.values()):
            raise RuntimeError(f"the baseline's verification failed: {checked}")
        written = sum(int(c["written"]) + int(c["deleted"]) for c in checked.values())
        if self.written is not None and written != self.written:
            raise RuntimeError(f"the baseline wrote {written}, our restore {self.written}")
        self.written = written
        return replace(sample, child={"rows": written})

    def blind(self) -> Sample:
        url, path = self._target("blind")
        out = self.setup.work / "blind.out"
        if path is not None:
            return spawn(["sqlite3", "-bail", str(path)], out, self.env, stdin=self.bulk)
        from bench.restore_baselines import psql_argv

        return spawn(psql_argv(url, self.bulk), out, self.env)


def _fields(table: str) -> tuple[str, ...]:
    from enigm_recover.state.model import KINDS

    return next(k.field_names for k in KINDS if k.table == table)


def measure_pair(jobs: Jobs, warm_up: bool) -> dict[str, Any]:
    samples = interleaved({"ours": jobs.ours, "baseline": jobs.baseline}, REPEATS, warm_up)
    result: dict[str, Any] = {name: summary(runs) for name, runs in samples.items()}
    if jobs.scenario == "total-loss":
        result["blind"] = summary([jobs.blind() for _ in range(REPEATS)])
    ours, base = result["ours"], result["baseline"]
    rss = max(r["child"]["peak_rss_mib"] for r in ours["runs"])
    ratio = ours["wall_s"] / base["wall_s"]
    result["goal"] = {"ratio": ratio, "ok": ratio <= GOAL_RATIO, "peak_rss_mib": rss, "rss_ok": rss < GOAL_RSS_MIB,
                      "apply_ratio": ours["child"]["apply_s"] / base["wall_s"]}
    return result


def summary(samples: list[Sample]) -> dict[str, Any]:
    numeric = [k for k, v in samples[0].child.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return {"wall_s": statistics.median(s.wall_s for s in samples),
            "cpu_s": statistics.median(s.cpu_s for s in samples),
            "child": {k: statistics.median(s.child[k] for s in samples) for k in numeric},
            "runs": [{"wall_s": s.wall_s, "cpu_s": s.cpu_s, "child": s.child} for s in samples]}


def report(result: dict[str, Any]) -> str:
    lines = ["", f"== restore_same_work: {result['identities']:,} identities x 3 devices (scale {result['scale']}), "
             f"{REPEATS} interleaved runs each, medians; policies {', '.join(result['policies'])}",
             f"   PostgreSQL {result.get('postgres_version', '-')}; engine commit {result['commit']}", ""]
    for key, m in result["measured"].items():
        o, b, g = m["ours"], m["baseline"], m["goal"]
        c = o["child"]
        runs = lambda s: " ".join(f"{r['wall_s']:.2f}" for r in s["runs"])  # noqa: E731
        lines += [
            f"  {key}: {int(c['rows']):,} records written",
            f"    OURS enigm-recover restore (whole process)   {o['wall_s']:8.2f} s  CPU {o['cpu_s']:7.2f} s  "
            f"peak {g['peak_rss_mib']:6.1f} MiB   runs {runs(o)}",
            f"      in it: apply+journal+verification {c['apply_s']:.2f} s; before it (start-up, verify, lock, "
            f"shares, dry run) {c['before_apply_s']:.2f} s; after {c['after_apply_s']:.2f} s",
            f"    BASELINE {'sqlite3' if key.startswith('sqlite') else 'psql'} import+merge+verify        "
            f"{b['wall_s']:8.2f} s  CPU {b['cpu_s']:7.2f} s                runs {runs(b)}",
            f"    ratio ours/baseline, wall {g['ratio']:.2f}x   goal <= {GOAL_RATIO}x   {verdict(g['ok'])};   "
            f"peak memory goal < {GOAL_RSS_MIB:.0f} MiB   {verdict(g['rss_ok'])};   "
            f"apply phase alone / baseline {g['apply_ratio']:.2f}x (informational)",
        ]
        if "blind" in m:
            n = c["rows"]
            lines.append(f"    records/s: ours end to end {n / o['wall_s']:,.0f}/s, ours apply phase "
                         f"{n / c['apply_s']:,.0f}/s, baseline {n / b['wall_s']:,.0f}/s, blind bulk insert "
                         f"{n / m['blind']['wall_s']:,.0f}/s ({m['blind']['wall_s']:.2f} s; informational)")
        lines.append("")
    return "\n".join(lines)


def reusable_setup(folder: Path, identities: int) -> Setup:
    """The drill, its CSV export and the total-loss target kept in ``folder`` (made there the first time): the
    setup takes minutes at full scale, and the runs never write to it."""
    import pickle

    saved = folder / "setup.pickle"
    if saved.exists():
        with open(saved, "rb") as f:
            setup: Setup = pickle.load(f)
        if setup.drill.identities != identities:
            raise SystemExit(f"{folder} holds a drill of {setup.drill.identities:,} identities, not {identities:,}")
        return setup
    folder.mkdir(parents=True, exist_ok=True)
    setup = make_setup(folder, identities)
    with open(saved, "wb") as f:
        pickle.dump(setup, f)
    return setup


def run(scale: float, out_dir: Path, stores: tuple[str, ...] = STORES,
        scenarios: tuple[str, ...] = SCENARIOS, keep: Path | None = None) -> dict[str, Any]:
    import subprocess

    identities = max(MIN_IDENTITIES, round(IDENTITIES * scale))
    warm_up = scale < WARM_UP_BELOW_SCALE
    work = keep or Path(tempfile.mkdtemp(prefix="restore_same_work-", dir=out_dir))
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    result: dict[str, Any] = {"scale": scale, "identities": identities, "policies": list(_policies()),
                              "commit": commit, "measured": {}}
    cluster = None
    try:
        log(f"restore_same_work: {'reusing or making' if keep else 'making'} the drill ({identities:,} identities) "
            "and the CSV export ...")
        setup = reusable_setup(work, identities) if keep else make_setup(work, identities)
        if "postgresql" in stores:
            log("  starting PostgreSQL and loading the targets into template databases ...")
            cluster = Cluster(setup)
            result["postgres_version"] = cluster.version
        for store in stores:
            for scenario in scenarios:
                log(f"  timing {store} {scenario}: ours and the baseline ...")
                jobs = Jobs(setup, scenario, store, cluster if store == "postgresql" else None)
                result["measured"][f"{store} {scenario}"] = measure_pair(jobs, warm_up)
    finally:
        if cluster is not None:
            cluster.stop()
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
    result["goals_met"] = all(m["goal"]["ok"] and m["goal"]["rss_ok"] for m in result["measured"].values())
    log(report(result))
    return result


# -- our side, as a child process ---------------------------------------------------------------------------


def worker_ours(drill_folder: str, target: str, report_path: str) -> int:
    """``enigm-recover restore SNAPSHOTS latest --target URL ... --yes --json`` in this process, with the
    apply phase (Restorer.run) timed; the command's JSON goes to stdout, the timings to ``report_path``."""
    started = perf_counter()
    import tomllib

    from bench.diff_restore import _record_checker_peak_mib
    from enigm_recover.cli import main
    from enigm_recover.recovery.apply import Restorer

    doc = tomllib.loads((Path(drill_folder) / "drill.toml").read_text())
    argv = ["restore", doc["paths"]["snapshots"], "latest", "--target", target, "--allowed-signers",
            doc["paths"]["allowed_signers"], "--yes", "--json"]
    for name in ("amara", "chen", "emeka"):
        argv += ["--share-file", doc["custodians"][name]]
    for policy in _policies():
        argv += ["--policy", policy]
    marks: dict[str, float] = {}
    original = Restorer.run

    def timed_run(self: Any, *args: Any, **kwargs: Any) -> Any:
        marks["apply_start"] = perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            marks["apply_end"] = perf_counter()

    Restorer.run = timed_run  # type: ignore[method-assign]
    code = main(argv)
    ended = perf_counter()
    Path(report_path).write_text(json.dumps({
        "code": code, "apply_s": marks["apply_end"] - marks["apply_start"],
        "before_apply_s": marks["apply_start"] - started, "after_apply_s": ended - marks["apply_end"],
        # The sum of both processes' peaks (the dry run's record checker is a second one): never less than what
        # they held together at any moment.
        "peak_rss_mib": peak_rss_mib() + _record_checker_peak_mib()}))
    return code


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "ours":
        return worker_ours(*args[1:])
    parser = argparse.ArgumentParser(prog="python -m bench.restore_same_work")
    parser.add_argument("command", choices=["run"])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--store", action="append", choices=STORES)
    parser.add_argument("--scenario", action="append", choices=SCENARIOS)
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="make the drill in DIR and keep it, or reuse the one made there before")
    opts = parser.parse_args(args)
    globals()["REPEATS"] = opts.repeats
    from bench import OUT_DIR

    OUT_DIR.mkdir(exist_ok=True)
    result = run(opts.scale, OUT_DIR, tuple(opts.store or STORES), tuple(opts.scenario or SCENARIOS),
                 opts.keep.resolve() if opts.keep else None)
    return 0 if result["goals_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
