"""The benchmark's SQL baselines (bench/restore_baselines.py) do a restore's work: on a drill, each leaves the
target exactly as ``enigm-recover restore`` leaves it, and its verification holds. Otherwise comparing their
time with ours would compare different work."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from bench.restore_baselines import (
    parse_verification,
    policies_of,
    psql_argv,
    psql_script,
    snapshot_csvs,
    sqlite_argv,
    sqlite_script,
)
from enigm_recover.state.model import KINDS
from enigm_recover.state.stores import open_store
from tests.helpers import dump
from tests.test_restore import restore

POLICY_SETS = {
    "benchmark": ("identity=overwrite-changed", "setting=overwrite-changed", "role=overwrite-changed,delete-extra"),
    "missing-only": (),
    "every-policy": ("identity=overwrite-changed,delete-extra", "device=overwrite-changed,delete-extra",
                     "setting=overwrite-changed,delete-extra", "role=overwrite-changed,delete-extra"),
}


def _empty(url: str) -> None:
    """Total loss: the four tables emptied."""
    with open_store(url) as store, store.transaction() as conn:
        for kind in KINDS:
            conn.execute(f"DELETE FROM {kind.table}")


@pytest.mark.parametrize("scenario", ["incident", "total-loss"])
@pytest.mark.parametrize("policy_set", list(POLICY_SETS))
def test_each_baseline_leaves_what_our_restore_leaves(drill, live_target, cli, tmp_path: Path, request,
                                                      scenario: str, policy_set: str) -> None:
    from bench.diff_restore import open_sealed

    if live_target.startswith("sqlite"):
        copy = tmp_path / "baseline.db"
        shutil.copyfile(live_target.removeprefix("sqlite:///"), copy)
        baseline_url = f"sqlite:///{copy}"
    else:
        from tests.postgres import copy_store

        cluster = request.getfixturevalue("postgres_cluster")
        name = cluster.create_database()
        request.addfinalizer(lambda: cluster.drop_database(name))
        baseline_url = cluster.url_for(name)
        copy_store(drill.target, baseline_url)
    if scenario == "total-loss":
        _empty(live_target)
        _empty(baseline_url)

    verified, identity, _ = open_sealed(drill.root)
    csvs = snapshot_csvs(verified, identity, tmp_path)
    policies = policies_of(POLICY_SETS[policy_set])
    args = [a for p in POLICY_SETS[policy_set] for a in ("--policy", p)]
    code, out, err = restore(cli, drill, live_target, "--yes", "--json", *args)
    assert code == 0, err
    ours = {s["step"]: s for s in json.loads(out)["steps"]}

    if baseline_url.startswith("sqlite"):
        ran = subprocess.run(sqlite_argv(copy), input=sqlite_script(copy, csvs, policies), capture_output=True,
                             text=True)
    else:
        script = tmp_path / "baseline.psql"
        script.write_text(psql_script(csvs, policies))
        ran = subprocess.run(psql_argv(baseline_url, script), capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    checked = parse_verification(ran.stdout)

    assert dump(baseline_url) == dump(live_target)
    for step, kind in (("identities", "identity"), ("devices", "device"), ("settings", "setting"), ("roles", "role")):
        assert checked[kind]["unmet"] == 0 and checked[kind]["hashes_equal"], (kind, checked[kind])
        assert checked[kind]["written"] == ours[step]["inserted"] + ours[step]["updated"], (kind, checked, ours)
        assert checked[kind]["deleted"] == ours[step]["deleted"], (kind, checked, ours)
    if scenario == "total-loss":  # every record of the snapshot restored
        assert sum(int(c["written"]) for c in checked.values()) == sum(s.count for s in verified.manifest.scope.values())
