"""Readiness knows the retention policy: a snapshot older than the policy keeps fails it."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from enigm_recover.errors import NotReady
from tests.test_readiness import assert_not_ready, check, parse_textfile, readiness


def test_a_snapshot_older_than_the_policy_keeps_fails_readiness(drill, cli, tmp_path: Path) -> None:
    ids = drill.doc["snapshots"]["ids"]  # oldest first, a day apart
    prom = tmp_path / "enigm.prom"
    code, result, err = readiness(cli, drill, "--retention", "--keep-last", "1", "--prometheus", prom)
    assert_not_ready(code, result, err, ["retention"])
    retention = check(result, "retention")
    assert retention["problems"] and all("`snapshots prune` would remove it" in p for p in retention["problems"])
    assert {p.split()[0] for p in retention["problems"]} == set(ids[:-1])
    assert result["policy"]["retention"] == {"keep_last": 1}
    assert result["retention"]["retained"] == 1
    oldest = int((datetime.now(timezone.utc) - datetime.strptime(ids[0][:16], "%Y%m%dT%H%M%SZ").replace(
        tzinfo=timezone.utc)).total_seconds())
    assert abs(result["retention"]["oldest_age_seconds"] - oldest) <= 5
    samples, meta = parse_textfile(prom.read_text())
    source = f'source="{drill.snapshots}"'
    assert samples[f"enigm_recover_snapshots_retained{{{source}}}"] == 1
    assert abs(samples[f"enigm_recover_snapshot_oldest_age_seconds{{{source}}}"] - oldest) <= 5
    assert samples[f'enigm_recover_readiness_check_ok{{{source},check="retention"}}'] == 0
    assert meta["enigm_recover_snapshot_oldest_age_seconds"][1] == "gauge"


def test_snapshots_within_the_policy_pass(drill, cli, tmp_path: Path) -> None:
    code, result, err = readiness(cli, drill, "--keep-daily", "7")
    assert code == 0, err
    retention = check(result, "retention")
    assert retention["status"] == "pass" and result["retention"]["retained"] == len(drill.doc["snapshots"]["ids"])


def test_the_config_files_policy_turns_the_check_on(drill, cli, tmp_path: Path) -> None:
    Path(os.environ["ENIGM_RECOVER_CONFIG"]).write_text('[retention]\nkeep_within = "1d"\n')
    code, result, err = readiness(cli, drill)
    assert_not_ready(code, result, err, ["retention"])
    assert "keep-within 1d" in check(result, "retention")["summary"]


def test_without_a_policy_there_is_no_retention_check_but_the_figures_are_there(drill, cli, tmp_path: Path) -> None:
    prom = tmp_path / "enigm.prom"
    code, result, err = readiness(cli, drill, "--prometheus", prom)
    assert code == 0, err
    assert "retention" not in [c["name"] for c in result["checks"]]
    assert result["retention"]["retained"] == len(drill.doc["snapshots"]["ids"])
    samples, _ = parse_textfile(prom.read_text())
    assert samples[f'enigm_recover_snapshots_retained{{source="{drill.snapshots}"}}'] == 3
    code, result, err = readiness(cli, drill, "--retention")
    assert code == 2 and "--retention needs a retention policy" in err
    assert code != NotReady.exit_code
