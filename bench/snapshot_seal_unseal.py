"""Seal a drill platform, then verify+decrypt+decompress it beside ``age -d | zstd -d``.

The goal (from the issue): decrypting and checking our snapshot costs at most
1.3x the standard-tool pipeline on the same payload in every one of the five
interleaved rounds (ours over the baseline run beside it), not only their
median, with memory bounded by a
constant, not by snapshot size. Both pipelines run as child processes,
interleaved, so each one's wall and CPU time cover only that pipeline. Our
worker runs as an installed copy does, from compiled bytecode: its cache is the
run's own (PYTHONPYCACHEPREFIX), filled by the untimed warm-up, whether or not
the checkout's environment forbids writing bytecode (PYTHONDONTWRITEBYTECODE,
under which every run would compile every changed module again). Our
worker reports its own peak RSS (VmHWM); the baseline's is not measured,
because a child's ru_maxrss starts from its parent's peak at exec. Memory is
shown bounded by unsealing a snapshot 1/10 the size as well.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from time import perf_counter
from typing import Any

from bench.common import Sample, interleaved, log, spawn, summary, verdict

import asyncssh

from enigm_recover.drill.platform import SyntheticPlatform
from enigm_recover.quorum.recipients import RecipientKind
from enigm_recover.quorum.recovery_key import RecoveryIdentity
from enigm_recover.snapshot.manifest import payload_name
from enigm_recover.snapshot.seal import seal
from enigm_recover.sources.local import LocalFolderSource
from enigm_recover.snapshot.signature import NAMESPACE
from enigm_recover.state.sqlite_store import SQLiteStore

IDENTITIES = 1_000_000
DEVICES_PER_IDENTITY = 3
SMALL_DIVISOR = 10  # the memory check's second snapshot is this many times smaller
REPEATS = 5
GOAL_RATIO = 1.3  # ours / baseline wall time, in every round (and so their medians too)
GOAL_RSS_FACTOR = 1.2  # peak RSS at full size / peak RSS at 1/SMALL_DIVISOR size
SEED = 1
GENESIS = datetime(2025, 1, 1, tzinfo=timezone.utc)
PRODUCER = "backup@bench"
ENVIRONMENT = "bench"
WORKER = Path(__file__).with_name("unseal_worker.py")
MIB = 1024 * 1024


@dataclass(frozen=True)
class Keys:
    """Throwaway keys for one run, with the files the pipelines read."""

    recipient: str
    identity_file: Path  # AGE-SECRET-KEY-1..., for both our worker and ``age -i``
    signing_key: asyncssh.SSHKey
    allowed_signers: Path


@dataclass(frozen=True)
class Snapshot:
    """A sealed snapshot alone in its folder, and what it cost to make."""

    folder: Path
    payload: Path
    records: int
    payload_bytes: int
    build_s: float
    seal_s: float


# -- setup ---------------------------------------------------------------------


def make_keys(work: Path, kind: RecipientKind = RecipientKind.X25519) -> Keys:
    """A recovery identity and a producer key, written where the pipelines read them (X25519 by default:
    the baseline ``age -d`` may predate hybrid keys)."""
    identity = RecoveryIdentity.generate(kind)
    identity_file = work / "recovery.key"
    identity_file.touch(mode=0o600)
    identity_file.write_text(identity.age_identity_string() + "\n")
    signing_key = asyncssh.generate_private_key("ssh-ed25519")
    public_line = signing_key.export_public_key().decode().strip()
    allowed_signers = work / "allowed_signers"
    allowed_signers.write_text(f'{PRODUCER} namespaces="{NAMESPACE}" {public_line}\n')
    return Keys(identity.recipient, identity_file, signing_key, allowed_signers)


def make_snapshot(work: Path, name: str, identities: int, keys: Keys) -> Snapshot:
    """Build a platform of ``identities`` in a fresh SQLite store and seal it; drop the store."""
    folder = work / name
    folder.mkdir()
    platform = SyntheticPlatform(SEED, identities, DEVICES_PER_IDENTITY, genesis=GENESIS)
    with SQLiteStore(work / f"{name}.db", create=True) as store:
        start = perf_counter()
        platform.build(store)
        built = perf_counter()
        manifest = seal(store, recipient=keys.recipient, signing_key=keys.signing_key,
                        environment=ENVIRONMENT, producer=PRODUCER, out_dir=folder,
                        existing=LocalFolderSource(folder).list())
        sealed = perf_counter()
    for path in work.glob(f"{name}.db*"):
        path.unlink()
    return Snapshot(folder, folder / payload_name(manifest.id), sum(s.count for s in manifest.scope.values()),
                    manifest.payload_size, built - start, sealed - built)


# -- measuring -----------------------------------------------------------------


def worker_env(work: Path) -> dict[str, str]:
    """The environment of our worker: bytecode cached in ``work`` (as an installed copy has it compiled)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    return env


def ours(snapshot: Snapshot, keys: Keys, mode: str = "blocks") -> Sample:
    """Our pipeline in a fresh interpreter: verify, then unseal (see unseal_worker)."""
    out = snapshot.folder.parent / "worker.json"
    argv = [sys.executable, str(WORKER), str(snapshot.folder), str(keys.identity_file),
            str(keys.allowed_signers), mode]
    sample = spawn(argv, out, env=worker_env(snapshot.folder.parent))
    return replace(sample, child={k: float(v) for k, v in json.loads(out.read_text()).items()})


def baseline(snapshot: Snapshot, keys: Keys) -> Sample:
    """The standard tools on the same payload: ``age -d -i KEY PAYLOAD | zstd -d > /dev/null``."""
    pipeline = (f"set -o pipefail; age -d -i {shlex.quote(str(keys.identity_file))} "
                f"{shlex.quote(str(snapshot.payload))} | zstd -d -q > /dev/null")
    return spawn(["bash", "-c", pipeline], snapshot.folder.parent / "baseline.out")


# -- summarizing and reporting -------------------------------------------------


def tool_versions() -> dict[str, str]:
    """The versions of the standard tools in the baseline."""
    def version(argv: list[str]) -> str:
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip(" *\n")

    return {"age": "age " + version(["age", "--version"]), "zstd": version(["zstd", "--version"])}


def snapshot_facts(snapshot: Snapshot) -> dict[str, Any]:
    facts = asdict(snapshot)
    del facts["folder"], facts["payload"]
    return facts


def goals(measured: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The speed ratio and the memory factor against their goals."""
    ours_, base, small = measured["ours"], measured["baseline"], measured["ours_small"]
    ratio = ours_["wall_s"] / base["wall_s"]
    rounds = [o["wall_s"] / b["wall_s"] for o, b in zip(ours_["runs"], base["runs"])]
    in_process = ours_["child"]["verify_s"] + ours_["child"]["unseal_s"]
    rss_factor = ours_["child"]["peak_rss_mib"] / small["child"]["peak_rss_mib"]
    return {
        "ratio": ratio,
        "ratio_goal": GOAL_RATIO,
        "goal": f"ours/baseline wall <= {GOAL_RATIO}x in every one of the {len(rounds)} interleaved rounds",
        "ratio_ok": ratio <= GOAL_RATIO and max(rounds) <= GOAL_RATIO,
        "round_ratios": rounds,
        "worst_round_ratio": max(rounds),
        "cpu_ratio": ours_["cpu_s"] / base["cpu_s"],
        "in_process_ratio": in_process / base["wall_s"],
        "rss_factor": rss_factor,
        "rss_factor_goal": GOAL_RSS_FACTOR,
        "rss_ok": rss_factor <= GOAL_RSS_FACTOR,
    }


def _rate_row(label: str, records: int, seconds: float) -> str:
    return f"  {label:<32}{records:>11,} records {seconds:8.1f} s {records / seconds:>10,.0f} records/s"


def _goal_row(label: str, factor: float, note: str) -> str:
    return f"  {label:<32}{factor:6.2f}x   {note}"


def _row(label: str, s: dict[str, Any]) -> str:
    rss = s["child"].get("peak_rss_mib")
    rss_text = f"{rss:7.1f} MiB" if rss is not None else f"{'-':>7}    "
    runs = " ".join(f"{r['wall_s']:.2f}" for r in s["runs"])
    return f"  {label:<36}{s['wall_s']:7.2f} s {s['cpu_s']:7.2f} s  {rss_text}   {runs}"


def report(result: dict[str, Any]) -> str:
    """The human-readable report of one run."""
    full, small, m, g = result["full"], result["small"], result["measured"], result["goals"]
    ours_rss, small_rss = m["ours"]["child"]["peak_rss_mib"], m["ours_small"]["child"]["peak_rss_mib"]
    return "\n".join([
        "",
        f"== snapshot_seal_unseal: {result['identities']:,} identities x {DEVICES_PER_IDENTITY} devices "
        f"(scale {result['scale']}); {REPEATS} interleaved runs each, medians",
        f"   baseline tools: {result['tools']['age']}, {result['tools']['zstd']}",
        "",
        _rate_row("build platform (informational)", full["records"], full["build_s"]),
        _rate_row("seal (informational)", full["records"], full["seal_s"]),
        f"  payload {full['payload_bytes'] / MIB:.1f} MiB ({full['payload_bytes'] / full['records']:.0f} bytes/record),"
        f" plaintext {m['ours']['child']['plaintext_bytes'] / MIB:.1f} MiB;"
        f" 1/{SMALL_DIVISOR} snapshot {small['records']:,} records, {small['payload_bytes'] / MIB:.1f} MiB",
        "",
        f"  {'':<36}{'wall':>9} {'CPU':>9}  {'peak RSS':>11}   wall of each run (s)",
        _row("OURS verify+decrypt+decompress", m["ours"]),
        f"    in-process: verify {m['ours']['child']['verify_s']:.2f} s (signature, size, SHA-256)"
        f" + decrypt+decompress {m['ours']['child']['unseal_s']:.2f} s",
        _row("BASELINE age -d | zstd -d", m["baseline"]),
        _row(f"OURS at 1/{SMALL_DIVISOR} size", m["ours_small"]),
        _row("full record check (records())", m["records"]) + "   (once, informational)",
        "",
        _goal_row("ratio ours/baseline, wall", g["ratio"], f"goal <= {GOAL_RATIO}x in every round   "
                  f"{verdict(g['ratio_ok'])}   (rounds {' '.join(f'{r:.2f}' for r in g['round_ratios'])})"),
        _goal_row("  worst round", g["worst_round_ratio"], f"goal <= {GOAL_RATIO}x"),
        _goal_row("ratio ours/baseline, CPU", g["cpu_ratio"], "informational"),
        _goal_row("ratio ours in-process/baseline", g["in_process_ratio"],
                  "informational (ours without interpreter start-up)"),
        _goal_row(f"peak RSS full / 1/{SMALL_DIVISOR} size", g["rss_factor"],
                  f"goal <= {GOAL_RSS_FACTOR}x   {verdict(g['rss_ok'])}   ({ours_rss:.1f} / {small_rss:.1f} MiB)"),
        "",
    ])


# -- the benchmark -------------------------------------------------------------


def measure(work: Path, identities: int) -> dict[str, Any]:
    """Make both snapshots, then time the pipelines; everything lives in ``work``."""
    keys = make_keys(work)
    log(f"  building and sealing {identities:,} identities x {DEVICES_PER_IDENTITY} devices ...")
    full = make_snapshot(work, "full", identities, keys)
    log(f"  building and sealing the 1/{SMALL_DIVISOR} snapshot ...")
    small = make_snapshot(work, "small", identities // SMALL_DIVISOR, keys)
    log(f"  timing ours, baseline and ours at 1/{SMALL_DIVISOR} size ({REPEATS} rounds + warm-up) ...")
    samples = interleaved({
        "ours": lambda: ours(full, keys),
        "baseline": lambda: baseline(full, keys),
        "ours_small": lambda: ours(small, keys),
    }, REPEATS)
    log("  timing the full record check ...")
    measured: dict[str, Any] = {name: summary(runs) for name, runs in samples.items()}
    measured["records"] = summary([ours(full, keys, mode="records")])
    return {"full": snapshot_facts(full), "small": snapshot_facts(small), "measured": measured}


def run(scale: float, out_dir: Path) -> dict[str, Any]:
    """Run the benchmark at ``scale`` with its temporary files in ``out_dir``; print and return results."""
    identities = max(SMALL_DIVISOR, round(IDENTITIES * scale))
    log(f"snapshot_seal_unseal: {identities:,} identities (scale {scale})")
    work = Path(tempfile.mkdtemp(prefix="snapshot_seal_unseal-", dir=out_dir))
    try:
        result = {"scale": scale, "identities": identities, "devices_per_identity": DEVICES_PER_IDENTITY,
                  "repeats": REPEATS, "tools": tool_versions(), **measure(work, identities)}
    finally:
        shutil.rmtree(work)
    result["goals"] = goals(result["measured"])
    result["goals_met"] = result["goals"]["ratio_ok"] and result["goals"]["rss_ok"]
    log(report(result))
    return result
