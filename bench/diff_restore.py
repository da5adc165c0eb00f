"""Dry-run diff and restore of a drill incident, beside SQL on the same data sets.

The goals (from the issue), on a drill platform of 1,000,000 identities and
3,000,000 devices with one sealed snapshot and a realistic incident after it:

(a) the dry-run diff costs at most 0.6x the ``sqlite3`` command-line program
    diffing the same two data sets in SQL: the snapshot's records (exported to
    CSV, untimed) imported into an attached new database, then EXCEPT/join
    queries on the primary keys that count, per kind, what the diff reports
    (missing, extra, changed). The whole sqlite3 process is timed, import
    included: it is part of diffing the two data sets. Ours is a fresh process
    that verifies the snapshot (its SHA-256 is checked in the decryption pass),
    combines three of the five share cards, opens the live SQLite target and
    diffs every kind; it is timed whole as well. Its peak memory (VmHWM, its
    own) stays under 300 MiB. The counts of both sides must be equal.

(b) restoring runs at least 0.7x the rate of a plain bulk write of the same
    rows: ours does what ``enigm-recover restore --yes`` does (dry run, then
    ``Restorer.run()``, journaled batches and the verification read-back) on a
    fresh copy of the damaged target, with restore-missing everywhere plus
    ``identity=overwrite-changed``, ``setting=overwrite-changed`` and
    ``role=overwrite-changed,delete-extra``; its rate is the rows it wrote
    (inserted + updated + deleted) over the apply phase (``Restorer.run``).
    The baseline writes exactly those rows (read off the first restored copy,
    untimed) into another fresh copy: for SQLite one transaction of
    ``executemany`` (INSERT, INSERT OR REPLACE for the updated rows, DELETE);
    for PostgreSQL, when a throwaway cluster can be started (tests/postgres.py),
    one transaction that deletes the updated and deleted keys and loads the rows
    with binary COPY.

Every measured pipeline is a fresh child process, timed with wait4, the
pipelines alternating; each timed run starts with the file system synced.
This file is also the child (``python -m bench.diff_restore MODE ...``): it
imports only the standard library (and bench.common, itself standard library
only) at the top, so a child pays the imports a user's process would pay. With ``DIFF_RESTORE_PROFILE=1`` in the environment,
one diff child and one restore child run again under cProfile afterwards
(the restore profiling only its apply phase); their hot spots are printed and
the profiles kept in bench/out/.

All drill files, the CSV export (decrypted records of a throwaway drill) and
the copies live in a temporary folder in bench/out/ that is deleted at the end.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from time import perf_counter
from typing import Any, Callable

from bench.common import Sample, interleaved, log, peak_rss_mib, verdict

IDENTITIES = 1_000_000
DEVICES_PER_IDENTITY = 3
MIN_IDENTITIES = 100
SEED = 1
INCIDENT_AT = datetime(2025, 6, 1, tzinfo=timezone.utc)  # fixed, so every run diffs the same drill
REPEATS = 3
WARM_UP_BELOW_SCALE = 0.5  # below this scale each pipeline gets one untimed warm-up run first
GOAL_DIFF_RATIO = 0.6  # ours / baseline, medians of wall time: at most (the dry run uses both cores)
GOAL_DIFF_RSS_MIB = 300.0  # peak RSS of the diff child: under
GOAL_RESTORE_RATIO = 0.7  # ours / baseline, rows per second: at least
SHARE_HOLDERS = ("amara", "chen", "emeka")  # 3 of the drill's 5 cards
RESTORE_POLICIES = ("identity=overwrite-changed", "setting=overwrite-changed", "role=overwrite-changed,delete-extra")
PROFILE_ENV = "DIFF_RESTORE_PROFILE"
PROFILE_TOP = 15
ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024


@dataclass(frozen=True)
class Drill:
    """The drill made for this run, and the snapshot's records as one CSV file per table."""

    work: Path
    folder: Path
    live: Path  # the damaged target; never written (restores run on copies)
    csvs: dict[str, Path]  # table -> CSV of the snapshot's records, with a header row
    identities: int
    snapshot_records: dict[str, int]
    live_rows: dict[str, int]
    payload_bytes: int
    live_bytes: int
    incident: dict[str, int]
    drill_s: float
    export_s: float


# -- setup ---------------------------------------------------------------------


def child_env() -> dict[str, str]:
    """The environment of every child: no enigm-recover settings, this checkout importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENIGM_RECOVER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


def make_drill_files(work: Path, identities: int) -> Drill:
    """The drill (one snapshot, then the incident), and the snapshot's records exported to CSV."""
    import csv

    from enigm_recover.drill.scenario import DrillSpec, make_drill
    from enigm_recover.state.model import KINDS

    folder = work / "drill"
    start = perf_counter()
    doc = make_drill(folder, DrillSpec(identities, DEVICES_PER_IDENTITY, SEED, snapshots=1, at=INCIDENT_AT))
    made = perf_counter()
    verified, identity, _ = open_sealed(folder)
    from enigm_recover.snapshot.unseal import records

    csvs = {k.table: work / f"snapshot-{k.table}.csv" for k in KINDS}
    files = {table: open(path, "w", newline="", encoding="utf-8") for table, path in csvs.items()}
    try:
        writers = {}
        for kind in KINDS:
            writers[kind.name] = csv.writer(files[kind.table], lineterminator="\n")
            writers[kind.name].writerow(kind.field_names)
        counts = {k.name: 0 for k in KINDS}
        for kind, values, _line in records(verified, identity):
            writers[kind.name].writerow(values)
            counts[kind.name] += 1
    finally:
        for f in files.values():
            f.close()
    exported = perf_counter()
    live = folder / "live.db"
    with sqlite3.connect(live) as conn:
        live_rows = {k.name: conn.execute(f"SELECT count(*) FROM {k.table}").fetchone()[0] for k in KINDS}
    conn.close()
    return Drill(work, folder, live, csvs, identities, counts, live_rows, verified.manifest.payload_size,
                 live.stat().st_size, dict(doc["incident"]), made - start, exported - made)


# -- measuring -----------------------------------------------------------------


def spawn(argv: list[str], stdout: Path, stdin: Path | None = None) -> Sample:
    """Run ``argv`` with stdout (and stderr, to show when it fails) to files; time it (and its children)
    alone with wait4. Like bench.common.spawn, with stderr kept."""
    stderr = stdout.with_suffix(".err")
    actions = [(os.POSIX_SPAWN_OPEN, 1, str(stdout), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
               (os.POSIX_SPAWN_OPEN, 2, str(stderr), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)]
    if stdin is not None:
        actions.append((os.POSIX_SPAWN_OPEN, 0, str(stdin), os.O_RDONLY, 0))
    start = perf_counter()
    pid = os.posix_spawnp(argv[0], argv, child_env(), file_actions=actions)
    _, status, usage = os.wait4(pid, 0)
    wall = perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed with status {os.waitstatus_to_exitcode(status)}:\n"
                           f"{stderr.read_text(errors='replace')[-3000:]}")
    return Sample(wall, usage.ru_utime + usage.ru_stime)


def child(work: Path, mode: str, *args: str) -> Sample:
    """This module as a child process in ``mode``, started with the file system synced; its JSON report."""
    out = work / f"child-{mode}.json"
    os.sync()
    sample = spawn([sys.executable, "-m", "bench.diff_restore", mode, *args], out)
    return replace(sample, child=json.loads(out.read_text()))


def fresh_copy(drill: Drill, name: str) -> Path:
    """A copy of the damaged target for one restore, synced to disk."""
    path = drill.work / name
    for stale in drill.work.glob(f"{name}*"):
        stale.unlink()
    shutil.copyfile(drill.live, path)
    return path


# -- (a) the diff ----------------------------------------------------------------


def table_ddl(db: Path, table: str, schema: str) -> str:
    """The live table's own CREATE TABLE statement (columns, types, checks, primary key, table options),
    creating ``schema.table`` instead: the snapshot's rows go into a table defined exactly like live's."""
    conn = sqlite3.connect(db)
    try:
        row = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
    finally:
        conn.close()
    match = re.match(r"\s*CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\S+)", row[0] if row else "", re.I)
    if match is None or match.group(1).strip('"`[]') != table:
        raise RuntimeError(f"cannot read the definition of table {table} in {db}")
    return f"CREATE TABLE {schema}.{table}" + row[0][match.end():]


def baseline_diff_script(drill: Drill, snap_db: Path) -> str:
    """The sqlite3 program's input: attach a new database, import the CSVs, count per kind with SQL."""
    from enigm_recover.state.model import KINDS

    lines = [".bail on", f"ATTACH '{snap_db}' AS snap;"]
    for kind in KINDS:
        lines.append(f"{table_ddl(drill.live, kind.table, 'snap')};")
        lines.append(f".import --csv --skip 1 --schema snap {drill.csvs[kind.table]} {kind.table}")
    for kind in KINDS:
        t, pk = kind.table, ", ".join(kind.primary_key)
        on = " AND ".join(f"l.{c} = s.{c}" for c in kind.primary_key)
        differs = " OR ".join(f"s.{c} IS NOT l.{c}" for c in kind.field_names if c not in kind.primary_key)
        lines += [
            f"SELECT '{kind.name}', 'missing', count(*) FROM (SELECT {pk} FROM snap.{t} EXCEPT SELECT {pk} FROM main.{t});",
            f"SELECT '{kind.name}', 'extra', count(*) FROM (SELECT {pk} FROM main.{t} EXCEPT SELECT {pk} FROM snap.{t});",
            f"SELECT '{kind.name}', 'changed', count(*) FROM snap.{t} s JOIN main.{t} l ON {on} WHERE {differs};",
        ]
    return "\n".join(lines) + "\n"


def diff_ours(drill: Drill) -> Sample:
    return child(drill.work, "diff", str(drill.folder), sqlite_url(drill.live))


def diff_baseline(drill: Drill, script: Path, snap_db: Path) -> Sample:
    """``sqlite3 -bail LIVE < script``: the import into a new attached file database, then the queries."""
    for stale in snap_db.parent.glob(f"{snap_db.name}*"):
        stale.unlink()
    out = drill.work / "sqlite3-diff.out"
    os.sync()
    sample = spawn(["sqlite3", "-bail", str(drill.live)], out, stdin=script)
    counts: dict[str, dict[str, int]] = {}
    for line in out.read_text().splitlines():
        kind, what, n = line.split("|")
        counts.setdefault(kind, {})[what] = int(n)
    for stale in snap_db.parent.glob(f"{snap_db.name}*"):
        stale.unlink()
    return replace(sample, child={"counts": counts})


def check_diff_counts(ours: Sample, base: Sample) -> dict[str, Any]:
    """Both sides must count the same missing, extra and changed records per kind."""
    theirs = base.child["counts"]
    mine = {k: {w: s[w] for w in ("missing", "extra", "changed")} for k, s in ours.child["kinds"].items()}
    if mine != theirs:
        raise RuntimeError(f"the diff counts differ: ours {mine}, sqlite3 {theirs}")
    return mine


# -- (b) and (c) the restore -----------------------------------------------------


def written_rows(restored: Path, damaged: Path) -> dict[str, dict[str, list[tuple[Any, ...]]]]:
    """What a restore wrote, read off the restored copy against the damaged target, in key order:
    per kind the inserted rows, the updated rows (as they are now) and the deleted keys."""
    from enigm_recover.state.model import KINDS

    conn = sqlite3.connect(restored)
    conn.execute("ATTACH ? AS d", (str(damaged),))
    rows: dict[str, dict[str, list[tuple[Any, ...]]]] = {}
    try:
        for kind in KINDS:
            t, pk = kind.table, ", ".join(kind.primary_key)
            cols = ", ".join(f"r.{c}" for c in kind.field_names)
            on = " AND ".join(f"x.{c} = r.{c}" for c in kind.primary_key)
            differs = " OR ".join(f"r.{c} IS NOT x.{c}" for c in kind.field_names if c not in kind.primary_key)
            order = ", ".join(f"r.{c}" for c in kind.primary_key)
            rows[kind.name] = {
                "insert": conn.execute(f"SELECT {cols} FROM main.{t} r WHERE NOT EXISTS "
                                       f"(SELECT 1 FROM d.{t} x WHERE {on}) ORDER BY {order}").fetchall(),
                "update": conn.execute(f"SELECT {cols} FROM main.{t} r JOIN d.{t} x ON {on} WHERE {differs} "
                                       f"ORDER BY {order}").fetchall(),
                "delete": conn.execute(f"SELECT {pk} FROM d.{t} r WHERE NOT EXISTS "
                                       f"(SELECT 1 FROM main.{t} x WHERE {on}) ORDER BY {order}").fetchall(),
            }
    finally:
        conn.close()
    return rows


def same_tables(a: Path, b: Path) -> bool:
    """Whether two SQLite targets hold the same records in every kind's table."""
    from enigm_recover.state.model import KINDS

    conn = sqlite3.connect(a)
    conn.execute("ATTACH ? AS o", (str(b),))
    try:
        return all(conn.execute(f"SELECT count(*) FROM (SELECT * FROM main.{k.table} EXCEPT SELECT * FROM o.{k.table})"
                                ).fetchone()[0] == 0 and
                   conn.execute(f"SELECT count(*) FROM (SELECT * FROM o.{k.table} EXCEPT SELECT * FROM main.{k.table})"
                                ).fetchone()[0] == 0 for k in KINDS)
    finally:
        conn.close()


def counts_of(rows: dict[str, dict[str, list[Any]]]) -> dict[str, int]:
    return {"inserted": sum(len(r["insert"]) for r in rows.values()),
            "updated": sum(len(r["update"]) for r in rows.values()),
            "deleted": sum(len(r["delete"]) for r in rows.values())}


class RestoreJobs:
    """The restore pipelines on one backend; the first run of ours yields the rows the baseline writes."""

    def __init__(self, drill: Drill, backend: str, rows_file: Path, pg: "PgTarget | None" = None) -> None:
        self.drill = drill
        self.backend = backend
        self.rows_file = rows_file
        self.pg = pg
        self.written: dict[str, int] | None = None  # what ours wrote (the same every run)
        self.checked_equal: bool | None = None  # the baseline's end state equals ours (SQLite, checked once)

    def _target(self, name: str) -> tuple[str, Any]:
        if self.pg is not None:
            db = self.pg.fresh_database(name)
            return self.pg.cluster.url_for(db), db
        path = fresh_copy(self.drill, f"{name}.db")
        return sqlite_url(path), path

    def ours(self) -> Sample:
        url, target = self._target("ours")
        sample = child(self.drill.work, "restore", str(self.drill.folder), url)
        c = sample.child
        if c["status"] != "completed":
            raise RuntimeError(f"our restore ended {c['status']}: {c['steps']}")
        written = {k: c[k] for k in ("inserted", "updated", "deleted")}
        if self.written is None:
            self.written = written
            if not self.rows_file.exists():  # the first SQLite restore: read off what it wrote
                rows = written_rows(target, self.drill.live)
                if counts_of(rows) != written:
                    raise RuntimeError(f"the restored copy differs from the damaged target by {counts_of(rows)}, "
                                       f"but the restore reported {written}")
                with open(self.rows_file, "wb") as f:
                    pickle.dump(rows, f, protocol=pickle.HIGHEST_PROTOCOL)
                shutil.copyfile(target, self.drill.work / "ours-restored.db")
        elif written != self.written:
            raise RuntimeError(f"restores wrote different rows: {written} and {self.written}")
        if self.pg is None:
            for path in self.drill.work.glob("ours.db*"):
                path.unlink()
        return sample

    def baseline(self) -> Sample:
        if not self.rows_file.exists():
            raise RuntimeError("the baseline needs the rows of a first restore (ours runs first)")
        url, target = self._target("baseline")
        if self.pg is not None:
            sample = child(self.drill.work, "pg-copy", url, str(self.rows_file))
        else:
            sample = child(self.drill.work, "sqlite-insert", str(target), str(self.rows_file))
            if self.checked_equal is None:
                self.checked_equal = same_tables(target, self.drill.work / "ours-restored.db")
                if not self.checked_equal:
                    raise RuntimeError("the baseline's end state differs from our restore's")
            for path in self.drill.work.glob("baseline.db*"):
                path.unlink()
        if self.written is not None and sample.child["rows"] != sum(self.written.values()):
            raise RuntimeError(f"the baseline wrote {sample.child['rows']} rows, ours {sum(self.written.values())}")
        return sample


@dataclass
class PgTarget:
    """A throwaway PostgreSQL cluster with a template database holding the damaged target."""

    cluster: Any
    template: str
    version: str
    load_s: float
    current: dict[str, str] = field(default_factory=dict)  # job name -> its database now

    def fresh_database(self, name: str) -> str:
        """A new database cloned from the template (the previous one of this job dropped)."""
        old = self.current.pop(name, None)
        if old:
            self.cluster.drop_database(old)
        db = f"bench_{name}_{os.urandom(4).hex()}"
        self.cluster.admin(f'CREATE DATABASE "{db}" TEMPLATE "{self.template}" STRATEGY FILE_COPY')
        self.current[name] = db
        return db


def start_postgres(drill: Drill) -> tuple[PgTarget | None, str]:
    """A cluster with the damaged target loaded into a template database, or None and why not."""
    if not (ROOT / "enigm_recover" / "state" / "postgres_store.py").exists():
        return None, "enigm_recover/state/postgres_store.py does not exist"
    if not (ROOT / "tests" / "postgres.py").exists():
        return None, "tests/postgres.py does not exist"
    try:
        import psycopg

        from tests.postgres import copy_store, find_server_bindir, start_cluster
    except ImportError as exc:
        return None, f"cannot import what it needs: {exc}"
    bindir = find_server_bindir()
    if bindir is None:
        return None, "no PostgreSQL server binaries (initdb, pg_ctl, postgres)"
    try:
        cluster = start_cluster(bindir)
    except Exception as exc:  # noqa: BLE001 - reported as the reason to skip
        return None, f"the cluster did not start: {str(exc).strip().splitlines()[0]}"
    try:
        start = perf_counter()
        template = cluster.create_database("bench_template")
        copy_store(sqlite_url(drill.live), cluster.url_for(template))
        with psycopg.connect(cluster.url_for(template), autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            version = str(conn.execute("SHOW server_version").fetchone()[0])
        return PgTarget(cluster, template, version, perf_counter() - start), ""
    except BaseException:
        cluster.stop()
        raise


# -- the child processes ---------------------------------------------------------


def open_sealed(drill_folder: Path) -> tuple[Any, Any, dict[str, float]]:
    """What ``enigm-recover diff`` and ``restore`` do first: verify the latest snapshot (its SHA-256 is
    checked while decrypting) and combine three custodians' share cards."""
    import tomllib

    from enigm_recover.quorum.cards import read_share_file
    from enigm_recover.quorum.entry import ShareEntry
    from enigm_recover.snapshot.catalog import resolve
    from enigm_recover.snapshot.signature import load_allowed_signers
    from enigm_recover.snapshot.verify import verify_entry
    from enigm_recover.sources.local import LocalFolderSource

    doc = tomllib.loads((drill_folder / "drill.toml").read_text())
    start = perf_counter()
    with LocalFolderSource(Path(doc["paths"]["snapshots"])) as source:
        entry = resolve(source.list(), "latest")
        report, verified = verify_entry(source, entry, load_allowed_signers(Path(doc["paths"]["allowed_signers"])),
                                        hash_payload=False)
    if verified is None:
        raise SystemExit(f"verification failed: {report.as_dict()['error']}")
    verified_at = perf_counter()
    entry_ = ShareEntry(verified.manifest.recipient_fingerprint)
    for name in SHARE_HOLDERS:
        card = read_share_file(Path(doc["custodians"][name]))
        entry_.add(card.words, card.custodian or name)
    identity = entry_.combine()
    return verified, identity, {"verify_s": verified_at - start, "shares_s": perf_counter() - verified_at}


def loaded_code() -> str:
    """A digest of the enigm_recover modules this process has loaded, as their files are now: runs of one
    pipeline that report different digests ran different code (the checkout changed under the benchmark)."""
    import hashlib

    digest = hashlib.sha256()
    files = sorted(str(m.__file__) for name, m in list(sys.modules.items())
                   if name.split(".")[0] == "enigm_recover" and getattr(m, "__file__", None))
    for file in files:
        digest.update(file.encode() + b"\0" + Path(file).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def profiled(profile: str | None, fn: Callable[[], Any]) -> Any:
    if not profile:
        return fn()
    import cProfile

    profiler = cProfile.Profile()
    try:
        return profiler.runcall(fn)
    finally:
        profiler.dump_stats(profile)


def _record_checker_peak_mib() -> float:
    """The peak memory of the child process that checked the payload's records (0 when checked in-process)."""
    try:
        from enigm_recover.snapshot.record_worker import last_child_peak_mib
    except ImportError:
        return 0.0
    return last_child_peak_mib()


def worker_diff(drill_folder: str, target: str, profile: str | None = None) -> dict[str, Any]:
    """``diff DRILL TARGET_URL``: the dry run of every kind, as ``enigm-recover diff`` runs it."""
    from enigm_recover.recovery.diff import diff
    from enigm_recover.state.stores import open_store

    verified, identity, report = open_sealed(Path(drill_folder))
    start = perf_counter()
    with open_store(target) as store:
        result = profiled(profile, lambda: diff(verified, identity, store))
    report["diff_s"] = perf_counter() - start
    report["changes"] = len(result.changes)
    report["findings"] = sum(result.findings().values())
    report["kinds"] = {k: s.as_dict() for k, s in result.kinds.items()}
    report["peak_rss_mib"] = peak_rss_mib() + _record_checker_peak_mib()  # both processes, alive together
    report["code"] = loaded_code()
    return report


def worker_restore(drill_folder: str, target: str, profile: str | None = None) -> dict[str, Any]:
    """``restore DRILL TARGET_URL``: the dry run, then the plan applied, as ``enigm-recover restore --yes``."""
    from enigm_recover.recovery.apply import Restorer
    from enigm_recover.recovery.diff import diff
    from enigm_recover.recovery.plan import make_plan, preview
    from enigm_recover.state.stores import open_store

    plan = make_plan(RESTORE_POLICIES)
    verified, identity, report = open_sealed(Path(drill_folder))
    with open_store(target) as store:
        start = perf_counter()
        result = diff(verified, identity, store)
        previews = {step.name: preview(step, result) for step in plan.steps}
        dry = perf_counter()
        outcome = profiled(profile, lambda: Restorer(verified, store, plan, result).run())
        done = perf_counter()
    report.update({"dry_run_s": dry - start, "apply_s": done - dry, "status": outcome.status,
                   "steps": {s.step: s.status for s in outcome.steps},
                   "inserted": sum(s.inserted for s in outcome.steps),
                   "updated": sum(s.updated for s in outcome.steps),
                   "deleted": sum(s.deleted for s in outcome.steps),
                   "previewed": sum(p.inserts + p.updates + p.deletes for p in previews.values())})
    report["rows"] = report["inserted"] + report["updated"] + report["deleted"]
    report["peak_rss_mib"] = peak_rss_mib() + _record_checker_peak_mib()  # both processes, alive together
    report["code"] = loaded_code()
    return report


def _load_rows(rows_file: str) -> dict[str, dict[str, list[tuple[Any, ...]]]]:
    with open(rows_file, "rb") as f:
        rows: dict[str, dict[str, list[tuple[Any, ...]]]] = pickle.load(f)
    return rows


def worker_sqlite_insert(db: str, rows_file: str) -> dict[str, Any]:
    """``sqlite-insert DB ROWS``: the rows in one transaction with executemany; only that is timed."""
    from enigm_recover.state.model import KINDS

    rows = _load_rows(rows_file)
    conn = sqlite3.connect(db, isolation_level=None)
    start = perf_counter()
    conn.execute("BEGIN")
    for kind in KINDS:
        r = rows[kind.name]
        cols, marks = ", ".join(kind.field_names), ", ".join("?" for _ in kind.fields)
        where = " AND ".join(f"{c} = ?" for c in kind.primary_key)
        if r["insert"]:
            conn.executemany(f"INSERT INTO {kind.table} ({cols}) VALUES ({marks})", r["insert"])
        if r["update"]:
            conn.executemany(f"INSERT OR REPLACE INTO {kind.table} ({cols}) VALUES ({marks})", r["update"])
        if r["delete"]:
            conn.executemany(f"DELETE FROM {kind.table} WHERE {where}", r["delete"])
    conn.execute("COMMIT")
    elapsed = perf_counter() - start
    conn.close()
    n = sum(len(v) for r in rows.values() for v in r.values())
    return {"rows": n, "write_s": elapsed, "peak_rss_mib": peak_rss_mib(), "code": loaded_code()}


def worker_pg_copy(url: str, rows_file: str) -> dict[str, Any]:
    """``pg-copy URL ROWS``: in one transaction, delete the updated and deleted keys, then load the
    inserted and updated rows with binary COPY; only that is timed."""
    import psycopg
    from psycopg import sql

    from enigm_recover.state.model import KINDS
    from enigm_recover.state.url import parse_target_url

    types = {"TEXT": "text", "INTEGER": "int4"}
    rows = _load_rows(rows_file)
    conn = psycopg.connect(**parse_target_url(url).connect_kwargs())
    start = perf_counter()
    with conn.transaction(), conn.cursor() as cur:
        for kind in KINDS:
            r = rows[kind.name]
            table = sql.Identifier(kind.table)
            positions = kind.key_positions
            gone = [tuple(row[i] for i in positions) for row in r["update"]] + r["delete"]
            if gone:
                key_types = [types[kind.fields[kind.position(c)].sql_type] for c in kind.primary_key]
                arrays = sql.SQL(", ").join(sql.SQL("%s::{}[]").format(sql.SQL(t)) for t in key_types)
                match = sql.SQL(" AND ").join(sql.SQL("t.{0} = k.{0}").format(sql.Identifier(c))
                                              for c in kind.primary_key)
                cur.execute(sql.SQL("DELETE FROM {} AS t USING unnest({}) AS k({}) WHERE {}").format(
                    table, arrays, sql.SQL(", ").join(map(sql.Identifier, kind.primary_key)), match),
                    [[key[i] for key in gone] for i in range(len(kind.primary_key))])
            if r["insert"] or r["update"]:
                query = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
                    table, sql.SQL(", ").join(map(sql.Identifier, kind.field_names)))
                with cur.copy(query) as copy:
                    copy.set_types([types[f.sql_type] for f in kind.fields])
                    for row in r["insert"]:
                        copy.write_row(row)
                    for row in r["update"]:
                        copy.write_row(row)
    elapsed = perf_counter() - start
    conn.close()
    n = sum(len(v) for r in rows.values() for v in r.values())
    return {"rows": n, "write_s": elapsed, "peak_rss_mib": peak_rss_mib(), "code": loaded_code()}


WORKERS: dict[str, Callable[..., dict[str, Any]]] = {
    "diff": worker_diff, "restore": worker_restore, "sqlite-insert": worker_sqlite_insert, "pg-copy": worker_pg_copy,
}


# -- profiles (on request) --------------------------------------------------------


def hot_spots(path: Path, top: int = PROFILE_TOP) -> list[dict[str, Any]]:
    """The functions with the most time of their own in a cProfile file."""
    import pstats

    stats = pstats.Stats(str(path))
    rows = []
    for (file, line, name), (_cc, calls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{Path(file).name}:{line}({name})" if line else name
        rows.append({"function": where, "calls": calls, "tottime_s": tottime, "cumtime_s": cumtime})
    rows.sort(key=lambda r: r["tottime_s"], reverse=True)
    return rows[:top]


def profile_children(drill: Drill, out_dir: Path, started: str) -> dict[str, Any]:
    """One diff and one restore child under cProfile (the restore profiled in its apply phase only)."""
    diff_prof = out_dir / f"diff_restore-{started}-diff.prof"
    apply_prof = out_dir / f"diff_restore-{started}-apply.prof"
    child(drill.work, "diff", str(drill.folder), sqlite_url(drill.live), str(diff_prof))
    target = fresh_copy(drill, "profiled.db")
    child(drill.work, "restore", str(drill.folder), sqlite_url(target), str(apply_prof))
    return {"diff": {"file": str(diff_prof), "top": hot_spots(diff_prof)},
            "apply into SQLite": {"file": str(apply_prof), "top": hot_spots(apply_prof)}}


# -- summarizing and reporting -------------------------------------------------


def summary(samples: list[Sample]) -> dict[str, Any]:
    """Medians of the times and of the child's numeric report, the first run's other facts (the child
    reports nested counts), all raw runs: bench.common.summary plus the facts."""
    first = samples[0].child
    numeric = [k for k, v in first.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return {
        "wall_s": statistics.median(s.wall_s for s in samples),
        "cpu_s": statistics.median(s.cpu_s for s in samples),
        "child": {k: statistics.median(s.child[k] for s in samples) for k in numeric},
        "facts": {k: v for k, v in first.items() if k not in numeric},
        "runs": [asdict(s) for s in samples],
    }


def engine_version() -> dict[str, Any]:
    """The code under test: the checkout's commit and a digest of enigm_recover's sources as they are."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted((ROOT / "enigm_recover").rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return {"commit": head.stdout.strip() or "?", "sources_sha256": digest.hexdigest()[:16]}


def tool_versions() -> dict[str, str]:
    out = subprocess.run(["sqlite3", "--version"], capture_output=True, text=True, check=True).stdout.split()
    return {"sqlite3_cli": f"sqlite3 {out[0]}", "python_sqlite": f"SQLite {sqlite3.sqlite_version} (Python sqlite3)"}


def restore_goal(m: dict[str, Any], prefix: str) -> dict[str, Any]:
    ours, base = m[f"{prefix}_ours"]["child"], m[f"{prefix}_baseline"]["child"]
    ours_rate = ours["rows"] / ours["apply_s"]
    base_rate = base["rows"] / base["write_s"]
    end_to_end = ours["rows"] / (ours["dry_run_s"] + ours["apply_s"])
    ratio = ours_rate / base_rate
    return {"ours_rows_per_s": ours_rate, "baseline_rows_per_s": base_rate, "ratio": ratio,
            "ratio_goal": GOAL_RESTORE_RATIO, "ok": ratio >= GOAL_RESTORE_RATIO,
            "end_to_end_rows_per_s": end_to_end, "end_to_end_ratio": end_to_end / base_rate}


def goals(m: dict[str, Any], postgres: bool) -> dict[str, Any]:
    diff_ratio = m["diff_ours"]["wall_s"] / m["diff_baseline"]["wall_s"]
    in_process = m["diff_ours"]["child"]
    rss = max(r["child"]["peak_rss_mib"] for r in m["diff_ours"]["runs"])
    g: dict[str, Any] = {
        "diff_ratio": diff_ratio, "diff_ratio_goal": GOAL_DIFF_RATIO, "diff_ok": diff_ratio <= GOAL_DIFF_RATIO,
        "diff_cpu_ratio": m["diff_ours"]["cpu_s"] / m["diff_baseline"]["cpu_s"],
        "diff_in_process_ratio": (in_process["verify_s"] + in_process["shares_s"] + in_process["diff_s"])
        / m["diff_baseline"]["wall_s"],
        "diff_peak_rss_mib": rss, "diff_rss_goal_mib": GOAL_DIFF_RSS_MIB, "rss_ok": rss < GOAL_DIFF_RSS_MIB,
        "sqlite_restore": restore_goal(m, "sqlite"),
    }
    if postgres:
        g["postgres_restore"] = restore_goal(m, "pg")
    return g


def _row(label: str, s: dict[str, Any], rss: bool = True) -> str:
    peak = s["child"].get("peak_rss_mib") if rss else None
    peak_text = f"{peak:7.1f} MiB" if peak is not None else f"{'-':>7}    "
    runs = " ".join(f"{r['wall_s']:.2f}" for r in s["runs"])
    return f"  {label:<44}{s['wall_s']:8.2f} s {s['cpu_s']:8.2f} s  {peak_text}   {runs}"


def _rate_row(label: str, rows: float, seconds: float, runs: list[float]) -> str:
    each = " ".join(f"{r:.2f}" for r in runs)
    return f"  {label:<44}{rows:>10,.0f} {seconds:8.2f} s {rows / seconds:>11,.0f}/s   {each}"


def _goal_row(label: str, factor: float, note: str) -> str:
    return f"  {label:<44}{factor:6.2f}x   {note}"


def _restore_block(title: str, m: dict[str, Any], prefix: str, baseline_label: str) -> list[str]:
    ours, base = m[f"{prefix}_ours"], m[f"{prefix}_baseline"]
    o, b = ours["child"], base["child"]
    return [
        f"  {title:<44}{'rows':>10} {'seconds':>10} {'rate':>13}   each run (s)",
        _rate_row("OURS apply (Restorer.run, verification incl.)", o["rows"], o["apply_s"],
                  [r["child"]["apply_s"] for r in ours["runs"]]),
        f"    inserted {o['inserted']:,.0f}, updated {o['updated']:,.0f}, deleted {o['deleted']:,.0f}; "
        f"dry run {o['dry_run_s']:.2f} s, verify+shares {o['verify_s'] + o['shares_s']:.2f} s; "
        f"child wall {ours['wall_s']:.2f} s, peak RSS {o['peak_rss_mib']:.0f} MiB",
        _rate_row("OURS end to end (dry run + apply)", o["rows"], o["dry_run_s"] + o["apply_s"],
                  [r["child"]["dry_run_s"] + r["child"]["apply_s"] for r in ours["runs"]]) + "   (informational)",
        _rate_row(baseline_label, b["rows"], b["write_s"], [r["child"]["write_s"] for r in base["runs"]]),
    ]


def report(result: dict[str, Any]) -> str:
    """The human-readable report of one run."""
    d, m, g = result["drill"], result["measured"], result["goals"]
    o = m["diff_ours"]["child"]
    counts = result["diff_counts"]
    inc = d["incident"]
    warm = " after one warm-up" if result["warm_up"] else ""
    lines = [
        "",
        f"== diff_restore: {d['identities']:,} identities x {DEVICES_PER_IDENTITY} devices (scale {result['scale']}),"
        f" one snapshot, then an incident; {REPEATS} interleaved runs each{warm}, medians",
        f"   snapshot {sum(d['snapshot_records'].values()):,} records (payload {d['payload_bytes'] / MIB:.1f} MiB); "
        f"live target {sum(d['live_rows'].values()):,} rows ({d['live_bytes'] / MIB:.1f} MiB)",
        f"   incident: {inc['devices_deleted']:,} devices deleted, {inc['identities_altered']:,} identities altered, "
        f"{inc['settings_altered']} settings, a role added and {inc['roles_removed']} removed; after the snapshot "
        f"{inc['devices_revoked_after_snapshot']:,} devices revoked, {inc['accounts_created_after_snapshot']:,} "
        f"accounts created, {inc['keys_rotated_after_snapshot']:,} keys rotated",
        f"   baseline tools: {result['tools']['sqlite3_cli']}; {result['tools']['python_sqlite']}"
        + (f"; PostgreSQL {result['postgres']['version']}" if result["postgres"]["available"] else ""),
        f"   setup (untimed): drill {d['drill_s']:.1f} s, CSV export of the snapshot {d['export_s']:.1f} s",
        f"   engine: commit {result['engine']['commit']}, enigm_recover sources {result['engine']['sources_sha256']}"
        + (f" at the start, {result['engine_at_end']['sources_sha256']} at the end"
           if result["engine_changed_during_run"] else ""),
        *([f"   WARNING: the code these pipelines loaded changed between their runs, so they mix versions: "
           f"{', '.join(result['mixed_code'])}"] if result["mixed_code"] else
          ["   the checkout changed during the run, but every pipeline's runs loaded the same enigm_recover code"]
          if result["engine_changed_during_run"] else []),
        "",
        f"  {'(a) diff':<44}{'wall':>10} {'CPU':>10}  {'peak RSS':>11}   wall of each run (s)",
        _row("OURS child: verify, shares, diff()", m["diff_ours"]),
        f"    in-process: verify {o['verify_s']:.2f} s + shares {o['shares_s']:.2f} s + diff {o['diff_s']:.2f} s; "
        f"{o['changes']:,.0f} changes, {o['findings']:,.0f} findings",
        _row("BASELINE sqlite3: .import CSV + EXCEPT/join", m["diff_baseline"], rss=False),
        "    same counts (missing/extra/changed): " + "; ".join(
            f"{k} {c['missing']:,}/{c['extra']:,}/{c['changed']:,}" for k, c in counts.items()),
        "",
        *_restore_block("(b) restore into SQLite", m, "sqlite", "BASELINE executemany, one transaction"),
        "    the baseline's end state equals our restore's (checked once)",
        "",
    ]
    if result["postgres"]["available"]:
        lines += [*_restore_block("(c) restore into PostgreSQL", m, "pg",
                                  "BASELINE binary COPY (+DELETE), one txn"),
                  f"    template loaded once (untimed) in {result['postgres']['load_s']:.1f} s; every run gets a "
                  f"fresh clone; server CPU is not in the CPU column", ""]
    else:
        lines += [f"  PostgreSQL: skipped ({result['postgres']['reason']})", ""]
    sq = g["sqlite_restore"]
    lines += [
        _goal_row("ratio diff ours/baseline, wall", g["diff_ratio"],
                  f"goal <= {GOAL_DIFF_RATIO}x   {verdict(g['diff_ok'])}"),
        _goal_row("ratio diff ours in-process/baseline", g["diff_in_process_ratio"],
                  "informational (ours without interpreter start-up)"),
        _goal_row("ratio diff ours/baseline, CPU", g["diff_cpu_ratio"], "informational"),
        f"  {'peak RSS of the diff (highest run)':<44}{g['diff_peak_rss_mib']:6.1f} MiB   goal < "
        f"{GOAL_DIFF_RSS_MIB:.0f} MiB   {verdict(g['rss_ok'])}",
        _goal_row("ratio restore rate ours/baseline, SQLite", sq["ratio"],
                  f"goal >= {GOAL_RESTORE_RATIO}x   {verdict(sq['ok'])}"),
        _goal_row("  end to end (dry run + apply)/baseline", sq["end_to_end_ratio"], "informational"),
    ]
    if "postgres_restore" in g:
        pg = g["postgres_restore"]
        lines += [
            _goal_row("ratio restore rate ours/baseline, PostgreSQL", pg["ratio"],
                      f"goal >= {GOAL_RESTORE_RATIO}x   {verdict(pg['ok'])}"),
            _goal_row("  end to end (dry run + apply)/baseline", pg["end_to_end_ratio"], "informational"),
        ]
    else:
        lines.append(f"  {'ratio restore rate ours/baseline, PostgreSQL':<44}  skipped")
    for name, prof in result.get("profiles", {}).items():
        lines += ["", f"  cProfile of the {name} ({prof['file']}), top {PROFILE_TOP} by own time:",
                  f"    {'own s':>8} {'cum s':>8} {'calls':>10}  function"]
        lines += [f"    {r['tottime_s']:8.2f} {r['cumtime_s']:8.2f} {r['calls']:>10,}  {r['function']}"
                  for r in prof["top"]]
    lines.append("")
    return "\n".join(lines)


# -- the benchmark -------------------------------------------------------------


def measure(work: Path, identities: int, warm_up: bool, out_dir: Path, started: str) -> dict[str, Any]:
    """Make the drill and the CSVs, then time the pipelines; everything lives in ``work``."""
    log(f"  making the drill ({identities:,} identities x {DEVICES_PER_IDENTITY} devices) and the CSV export ...")
    drill = make_drill_files(work, identities)
    rounds = f"{REPEATS} rounds" + (" + warm-up" if warm_up else "")

    log(f"  (a) timing the diff: ours and sqlite3 ({rounds}) ...")
    snap_db = work / "sqlite3-snapshot.db"
    script = work / "sqlite3-diff.sql"
    script.write_text(baseline_diff_script(drill, snap_db))
    samples = interleaved({"diff_ours": lambda: diff_ours(drill),
                           "diff_baseline": lambda: diff_baseline(drill, script, snap_db)}, REPEATS, warm_up)
    diff_counts = check_diff_counts(samples["diff_ours"][0], samples["diff_baseline"][0])
    for ours_run, base_run in zip(samples["diff_ours"][1:], samples["diff_baseline"][1:]):
        check_diff_counts(ours_run, base_run)

    log(f"  (b) timing the restore into SQLite: ours and executemany ({rounds}) ...")
    rows_file = work / "restore-rows.pickle"
    sqlite_jobs = RestoreJobs(drill, "sqlite", rows_file)
    samples |= {f"sqlite_{k}": v for k, v in
                interleaved({"ours": sqlite_jobs.ours, "baseline": sqlite_jobs.baseline}, REPEATS, warm_up).items()}

    profiles: dict[str, Any] = {}
    log("  (c) starting PostgreSQL and loading the damaged target into a template database ...")
    pg, reason = start_postgres(drill)
    postgres: dict[str, Any] = {"available": pg is not None, "reason": reason}
    if pg is not None:
        try:
            postgres.update(version=pg.version, load_s=pg.load_s)
            log(f"  (c) timing the restore into PostgreSQL: ours and binary COPY ({rounds}) ...")
            pg_jobs = RestoreJobs(drill, "postgresql", rows_file, pg)
            samples |= {f"pg_{k}": v for k, v in
                        interleaved({"ours": pg_jobs.ours, "baseline": pg_jobs.baseline}, REPEATS, warm_up).items()}
            if pg_jobs.written != sqlite_jobs.written:
                raise RuntimeError(f"the restore wrote {pg_jobs.written} into PostgreSQL, "
                                   f"{sqlite_jobs.written} into SQLite")
            if os.environ.get(PROFILE_ENV):
                log("  profiling one restore child's apply phase into PostgreSQL (cProfile) ...")
                prof = out_dir / f"diff_restore-{started}-apply-postgresql.prof"
                db = pg.fresh_database("profiled")
                child(work, "restore", str(drill.folder), pg.cluster.url_for(db), str(prof))
                profiles["apply into PostgreSQL"] = {"file": str(prof), "top": hot_spots(prof)}
        finally:
            pg.cluster.stop()
    else:
        log(f"  PostgreSQL: skipped ({reason})")

    # What each pipeline's runs loaded of enigm_recover (the sqlite3 baseline loads none of it).
    code = {name: sorted({str(r.child["code"]) for r in runs if "code" in r.child}) for name, runs in samples.items()}
    result: dict[str, Any] = {"drill": {k: v for k, v in asdict(drill).items()
                                        if k not in ("work", "folder", "live", "csvs")},
                              "code_by_pipeline": code,
                              "mixed_code": [name for name, digests in code.items() if len(digests) > 1],
                              "diff_counts": diff_counts, "restore_written": sqlite_jobs.written,
                              "postgres": postgres,
                              "measured": {name: summary(runs) for name, runs in samples.items()}}
    if os.environ.get(PROFILE_ENV):
        log("  profiling one diff child and one restore child's apply phase (cProfile) ...")
        result["profiles"] = {**profile_children(drill, out_dir, started), **profiles}
    return result


def run(scale: float, out_dir: Path) -> dict[str, Any]:
    """Run the benchmark at ``scale`` with its temporary files in ``out_dir``; print and return results."""
    identities = max(MIN_IDENTITIES, round(IDENTITIES * scale))
    warm_up = scale < WARM_UP_BELOW_SCALE
    log(f"diff_restore: {identities:,} identities (scale {scale})")
    started = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}"
    work = Path(tempfile.mkdtemp(prefix="diff_restore-", dir=out_dir))
    engine = engine_version()
    try:
        result = {"scale": scale, "engine": engine, "identities": identities, "devices_per_identity": DEVICES_PER_IDENTITY,
                  "repeats": REPEATS, "warm_up": warm_up, "tools": tool_versions(),
                  "restore_policies": list(RESTORE_POLICIES),
                  "baseline_diff": "sqlite3 -bail LIVE: ATTACH a new file database, CREATE the 4 tables as live "
                                   "defines them (its own CREATE TABLE statements: same columns, checks, primary "
                                   "keys and table options), .import --csv --skip 1 each CSV, then per kind: missing and "
                                   "extra keys by EXCEPT, changed rows by a join on the primary key",
                  **measure(work, identities, warm_up, out_dir, started)}
    finally:
        shutil.rmtree(work)
    result["engine_at_end"] = engine_version()
    result["engine_changed_during_run"] = result["engine_at_end"]["sources_sha256"] != engine["sources_sha256"]
    result["goals"] = goals(result["measured"], result["postgres"]["available"])
    g = result["goals"]
    result["goals_met"] = (g["diff_ok"] and g["rss_ok"] and g["sqlite_restore"]["ok"]
                           and g.get("postgres_restore", {"ok": True})["ok"])
    log(report(result))
    return result


if __name__ == "__main__":
    mode, *arguments = sys.argv[1:]
    print(json.dumps(WORKERS[mode](*arguments)))
