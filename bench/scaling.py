"""The dry run and the incident restore on two drill sizes: cost per record and memory as the data grows.

The goals (from the issue), on the 250,000- and the 1,000,000-identity drills
(3 devices each, the drill's incident after one sealed snapshot):

- time per record at the larger size within 1.15x of the smaller, for the dry
  run and for the incident restore (dry run + apply, as ``enigm-recover restore
  --yes`` runs them, with bench.diff_restore's policies);
- their peak memory (VmHWM of the child, its own) at the larger size within
  1.2x of the smaller;
- the dry run at most 0.6x the ``sqlite3`` program's SQL diff of the same data
  sets (bench.diff_restore's baseline: the snapshot's records imported from CSV
  into an attached database, then EXCEPT/join counts), at each size: it
  uses both cores (the payload's records are checked in a child process).

Every measured pipeline is a child process of bench.diff_restore (``diff`` and
``restore`` modes), timed with wait4; the dry run and the sqlite3 baseline
alternate. A record is a snapshot record (identities + devices + settings +
roles). Run it alone: ``python -m bench scaling`` (``--scale 0.1`` for
25,000 and 100,000 identities). ``python -m bench dry_run`` times only the dry
run beside sqlite3 on the 1,000,000-identity drill, in five interleaved rounds,
with its peak memory (the parent's and the record checker's together).
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench.common import interleaved, log, summary, verdict
from bench.diff_restore import (
    baseline_diff_script,
    check_diff_counts,
    child,
    diff_baseline,
    diff_ours,
    fresh_copy,
    make_drill_files,
    sqlite_url,
)

SIZES = (250_000, 1_000_000)
REPEATS = 3
GOAL_TIME_PER_RECORD = 1.15  # larger / smaller: at most
GOAL_PEAK_MEMORY = 1.2  # larger / smaller: at most
GOAL_DIFF_RATIO = 0.6  # ours / sqlite3, medians of wall time: at most


def measure_size(out_dir: Path, identities: int, restores: bool = True, repeats: int = REPEATS) -> dict[str, Any]:
    """One drill of ``identities``: the dry run beside sqlite3, then (with ``restores``) the incident restore on
    fresh copies."""
    work = Path(tempfile.mkdtemp(prefix=f"scaling-{identities}-", dir=out_dir))
    try:
        log(f"  {identities:,} identities: making the drill and the CSV export ...")
        drill = make_drill_files(work, identities)
        records = sum(drill.snapshot_records.values())
        snap_db, script = work / "sqlite3-snapshot.db", work / "sqlite3-diff.sql"
        script.write_text(baseline_diff_script(drill, snap_db))
        log(f"  {identities:,} identities: the dry run and sqlite3, {repeats} rounds interleaved ...")
        samples = interleaved({"diff": lambda: diff_ours(drill),
                               "sqlite3": lambda: diff_baseline(drill, script, snap_db)}, repeats, warm_up=False)
        for ours, base in zip(samples["diff"], samples["sqlite3"]):
            check_diff_counts(ours, base)

        def restore() -> Any:
            target = fresh_copy(drill, "restored.db")
            sample = child(work, "restore", str(drill.folder), sqlite_url(target))
            if sample.child["status"] != "completed":
                raise RuntimeError(f"the restore ended {sample.child['status']}")
            return sample

        if restores:
            log(f"  {identities:,} identities: the incident restore, {repeats} runs ...")
            samples |= interleaved({"restore": restore}, repeats, warm_up=False)
        measured = {name: summary(runs) for name, runs in samples.items()}
        return {"identities": identities, "records": records, "measured": measured,
                "diff_ratios": [o.wall_s / b.wall_s for o, b in zip(samples["diff"], samples["sqlite3"])]}
    finally:
        shutil.rmtree(work)


def goals(small: dict[str, Any], large: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("diff", "restore"):
        per_small = small["measured"][name]["wall_s"] / small["records"]
        per_large = large["measured"][name]["wall_s"] / large["records"]
        rss = large["measured"][name]["child"]["peak_rss_mib"] / small["measured"][name]["child"]["peak_rss_mib"]
        out[name] = {"us_per_record": [per_small * 1e6, per_large * 1e6], "time_ratio": per_large / per_small,
                     "time_ok": per_large / per_small <= GOAL_TIME_PER_RECORD, "rss_ratio": rss,
                     "rss_ok": rss <= GOAL_PEAK_MEMORY}
    for size in (small, large):
        ratio = size["measured"]["diff"]["wall_s"] / size["measured"]["sqlite3"]["wall_s"]
        out[f"diff_ratio_{size['identities']}"] = {"ratio": ratio, "ok": ratio <= GOAL_DIFF_RATIO,
                                                   "each_round": size["diff_ratios"]}
    return out


def report(result: dict[str, Any]) -> str:
    small, large, g = result["sizes"][0], result["sizes"][1], result["goals"]
    lines = ["", f"== scaling: {small['identities']:,} and {large['identities']:,} identities x 3 devices; "
             f"{REPEATS} runs each, medians (dry run and sqlite3 interleaved)", ""]
    for size in result["sizes"]:
        m = size["measured"]
        lines.append(f"  {size['identities']:>9,} identities, {size['records']:,} snapshot records")
        for name, label in (("diff", "OURS dry run (diff)"), ("sqlite3", "BASELINE sqlite3 SQL diff"),
                            ("restore", "OURS incident restore (dry run + apply)")):
            rss = m[name]["child"].get("peak_rss_mib")
            runs = " ".join(f"{r['wall_s']:.2f}" for r in m[name]["runs"])
            lines.append(f"    {label:<42}{m[name]['wall_s']:8.2f} s {m[name]['cpu_s']:8.2f} s CPU "
                         f"{(f'{rss:7.1f} MiB') if rss else ' ' * 11}   {runs}")
        ratio = g[f"diff_ratio_{size['identities']}"]
        lines.append(f"    ratio dry run/sqlite3 {ratio['ratio']:.2f}x (rounds "
                     f"{' '.join(f'{r:.2f}' for r in ratio['each_round'])})   goal <= {GOAL_DIFF_RATIO}x   "
                     f"{verdict(ratio['ok'])}")
    lines.append("")
    for name in ("diff", "restore"):
        x = g[name]
        lines.append(f"  {name:<8} time per record {x['us_per_record'][0]:.2f} -> {x['us_per_record'][1]:.2f} us: "
                     f"{x['time_ratio']:.2f}x (goal <= {GOAL_TIME_PER_RECORD}x {verdict(x['time_ok'])}); "
                     f"peak memory {x['rss_ratio']:.2f}x (goal <= {GOAL_PEAK_MEMORY}x {verdict(x['rss_ok'])})")
    lines.append("")
    return "\n".join(lines)


def run(scale: float, out_dir: Path) -> dict[str, Any]:
    sizes = [max(1000, round(n * scale)) for n in SIZES]
    log(f"scaling: {sizes[0]:,} and {sizes[1]:,} identities (scale {scale})")
    result: dict[str, Any] = {"scale": scale, "repeats": REPEATS, "sizes": [measure_size(out_dir, n) for n in sizes]}
    result["goals"] = goals(*result["sizes"])
    g = result["goals"]
    result["goals_met"] = all(g[n]["time_ok"] and g[n]["rss_ok"] for n in ("diff", "restore")) and all(
        v["ok"] for k, v in g.items() if k.startswith("diff_ratio_"))
    result["median_diff_ratio"] = statistics.median(r for s in result["sizes"] for r in s["diff_ratios"])
    log(report(result))
    return result


DRY_RUN_IDENTITIES = 1_000_000
DRY_RUN_REPEATS = 5
GOAL_DRY_RUN_RSS_MIB = 300.0  # both processes of the dry run together: under


def run_dry_run(scale: float, out_dir: Path) -> dict[str, Any]:
    """``python -m bench dry_run``: only the dry run beside sqlite3, on the 1,000,000-identity drill, in
    DRY_RUN_REPEATS rounds interleaved: every round's ratio, their median, and the peak memory."""
    identities = max(1000, round(DRY_RUN_IDENTITIES * scale))
    log(f"dry_run: {identities:,} identities (scale {scale})")
    load_before = os.getloadavg()
    size = measure_size(out_dir, identities, restores=False, repeats=DRY_RUN_REPEATS)
    load_after = os.getloadavg()
    m = size["measured"]
    ratio = m["diff"]["wall_s"] / m["sqlite3"]["wall_s"]
    rss = max(r["child"]["peak_rss_mib"] for r in m["diff"]["runs"])
    ok = ratio <= GOAL_DIFF_RATIO and rss < GOAL_DRY_RUN_RSS_MIB
    runs = {name: " ".join(f"{r['wall_s']:.2f}" for r in m[name]["runs"]) for name in ("diff", "sqlite3")}
    log("\n".join([
        "", f"== dry_run: {identities:,} identities, {size['records']:,} snapshot records; {DRY_RUN_REPEATS} rounds "
        "interleaved, medians", "",
        f"  OURS dry run (diff)          {m['diff']['wall_s']:8.2f} s {m['diff']['cpu_s']:8.2f} s CPU   "
        f"{runs['diff']}",
        f"  BASELINE sqlite3 SQL diff    {m['sqlite3']['wall_s']:8.2f} s {m['sqlite3']['cpu_s']:8.2f} s CPU   "
        f"{runs['sqlite3']}",
        f"  ratio ours/sqlite3 {ratio:.2f}x (rounds {' '.join(f'{r:.2f}' for r in size['diff_ratios'])})   "
        f"goal <= {GOAL_DIFF_RATIO}x   {verdict(ratio <= GOAL_DIFF_RATIO)}",
        f"  ratio of CPU ours/sqlite3 {m['diff']['cpu_s'] / m['sqlite3']['cpu_s']:.2f}x (both processes of ours)",
        f"  peak memory of the dry run (parent + record checker) {rss:.1f} MiB   goal < {GOAL_DRY_RUN_RSS_MIB:.0f} MiB   "
        f"{verdict(rss < GOAL_DRY_RUN_RSS_MIB)}",
        f"  machine load (1, 5, 15 min) before {' '.join(f'{x:.2f}' for x in load_before)}, after "
        f"{' '.join(f'{x:.2f}' for x in load_after)} on {os.cpu_count()} CPUs: the dry run uses two cores, so "
        "other work on the machine slows it more than sqlite3", ""]))
    return {"scale": scale, **size, "ratio": ratio, "peak_rss_mib": rss, "goals_met": ok,
            "load_before": load_before, "load_after": load_after}
