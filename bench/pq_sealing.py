"""Post-quantum sealing: unsealing a snapshot sealed to a hybrid key beside the same data sealed to X25519,
and ``keys init --kind hybrid`` against interpreter start-up.

Goals (from the issue):

- verify+decrypt+decompress of the 1,000,000-identity (4,000,000-record) snapshot sealed to a hybrid
  (mlkem768x25519) key costs at most 1.02x the same platform sealed to an X25519 key, in the same run:
  the payload is the same STREAM, only its header differs. Both run as child processes (the seal/unseal
  benchmark's worker), interleaved; medians of wall time.
- ``keys init --kind hybrid`` (3 of 5 cards) finishes within a quarter of a second past interpreter
  start-up (``python -c pass``), medians of interleaved runs.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import Sample, interleaved, log, spawn, summary, verdict
from bench.snapshot_seal_unseal import DEVICES_PER_IDENTITY, make_keys, make_snapshot, ours
from enigm_recover.quorum.recipients import RecipientKind

IDENTITIES = 1_000_000
REPEATS = 5
GOAL_RATIO = 1.02  # hybrid / X25519, medians of wall time
GOAL_PAST_STARTUP_S = 0.25
CLI = [sys.executable, "-m", "enigm_recover"]
CUSTODIANS = ["amara", "bastien", "chen", "dagny", "emeka"]


def _env(work: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"ENIGM_RECOVER_STATE_DIR": str(work / "state"), "ENIGM_RECOVER_CACHE_DIR": str(work / "cache"),
                "ENIGM_RECOVER_CONFIG": str(work / "config.toml")})
    return env


def measure(work: Path, identities: int) -> dict[str, Any]:
    for kind in RecipientKind:
        (work / f"{kind.value}-keys").mkdir()
    classic_keys = make_keys(work / "x25519-keys", RecipientKind.X25519)
    hybrid_keys = make_keys(work / "hybrid-keys", RecipientKind.HYBRID)
    log(f"  building and sealing {identities:,} identities x {DEVICES_PER_IDENTITY} devices, to X25519 ...")
    classic = make_snapshot(work, "classic", identities, classic_keys)
    log("  ... and the same platform to a hybrid key ...")
    hybrid = make_snapshot(work, "hybrid", identities, hybrid_keys)
    env = _env(work)
    runs = iter(range(1_000_000))

    def keys_init(kind: str) -> Sample:
        out = work / f"ceremony-{next(runs)}"
        argv = [*CLI, "keys", "init", "--kind", kind, "--threshold", "3", "--shares", "5", "--out", str(out)]
        for name in CUSTODIANS:
            argv += ["--custodian", name]
        sample = spawn(argv, work / "init.out", env)
        shutil.rmtree(out, ignore_errors=True)
        return sample

    log(f"  timing unseal hybrid / X25519 and keys init / python -c pass ({REPEATS} rounds + warm-up) ...")
    samples = interleaved({
        "unseal_x25519": lambda: ours(classic, classic_keys),
        "unseal_hybrid": lambda: ours(hybrid, hybrid_keys),
        "interpreter": lambda: spawn([sys.executable, "-c", "pass"], work / "python.out", env),
        "keys_init_hybrid": lambda: keys_init("hybrid"),
        "keys_init_x25519": lambda: keys_init("x25519"),
    }, REPEATS)
    measured = {name: summary(runs_) for name, runs_ in samples.items()}
    return {"records": classic.records, "payload_bytes": {"x25519": classic.payload_bytes,
                                                          "hybrid": hybrid.payload_bytes},
            "measured": measured}


def goals(m: dict[str, Any]) -> dict[str, Any]:
    ratio = m["unseal_hybrid"]["wall_s"] / m["unseal_x25519"]["wall_s"]
    past = m["keys_init_hybrid"]["wall_s"] - m["interpreter"]["wall_s"]
    return {"ratio": ratio, "ratio_goal": GOAL_RATIO, "ratio_ok": ratio <= GOAL_RATIO,
            "in_process_ratio": (m["unseal_hybrid"]["child"]["unseal_s"] / m["unseal_x25519"]["child"]["unseal_s"]),
            "keys_init_past_startup_s": past, "keys_init_ok": past <= GOAL_PAST_STARTUP_S,
            "past_startup_goal_s": GOAL_PAST_STARTUP_S}


def report(result: dict[str, Any]) -> str:
    m, g = result["measured"], result["goals"]

    def row(label: str, name: str) -> str:
        runs = " ".join(f"{r['wall_s']:.2f}" for r in m[name]["runs"])
        return f"  {label:<40}{m[name]['wall_s']:8.3f} s   {runs}"

    return "\n".join([
        "",
        f"== pq_sealing: {result['identities']:,} identities ({result['records']:,} records; scale "
        f"{result['scale']}); {REPEATS} interleaved runs each, medians",
        f"  payload {result['payload_bytes']['x25519']:,} bytes (X25519), {result['payload_bytes']['hybrid']:,} "
        "bytes (hybrid)",
        row("unseal, sealed to X25519", "unseal_x25519"),
        row("unseal, sealed to hybrid", "unseal_hybrid"),
        row("interpreter start-up (python -c pass)", "interpreter"),
        row("keys init --kind hybrid (3 of 5)", "keys_init_hybrid"),
        row("keys init --kind x25519 (informational)", "keys_init_x25519"),
        f"  ratio hybrid / X25519, wall             {g['ratio']:6.3f}x   goal <= {GOAL_RATIO}x   "
        f"{verdict(g['ratio_ok'])}",
        f"  ratio hybrid / X25519, in-process       {g['in_process_ratio']:6.3f}x   informational",
        f"  keys init --kind hybrid past start-up   {g['keys_init_past_startup_s']:6.3f} s   goal <= "
        f"{GOAL_PAST_STARTUP_S} s   {verdict(g['keys_init_ok'])}",
        "",
    ])


def run(scale: float, out_dir: Path) -> dict[str, Any]:
    identities = max(10, round(IDENTITIES * scale))
    log(f"pq_sealing: {identities:,} identities (scale {scale})")
    work = Path(tempfile.mkdtemp(prefix="pq_sealing-", dir=out_dir))
    try:
        result = {"scale": scale, "identities": identities, "repeats": REPEATS, **measure(work, identities)}
    finally:
        shutil.rmtree(work)
    result["goals"] = goals(result["measured"])
    result["goals_met"] = result["goals"]["ratio_ok"] and result["goals"]["keys_init_ok"]
    log(report(result))
    return result
