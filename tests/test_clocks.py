"""Clocks: snapshots from the future, bounded durations, the one form of a manifest's time, and ties."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from enigm_recover.errors import (
    ManifestError,
    NotReady,
    SnapshotFromTheFuture,
    UsageError,
)
from enigm_recover.readiness.policy import MAX_DURATION, parse_duration
from enigm_recover.snapshot.catalog import newest_first, resolve
from enigm_recover.snapshot.clock import CLOCK_SKEW
from enigm_recover.snapshot.manifest import Manifest
from enigm_recover.snapshot.seal import read_recipient_file, seal
from enigm_recover.snapshot.signature import load_signing_key
from enigm_recover.sources.local import LocalFolderSource
from enigm_recover.state.sqlite_store import SQLiteStore
from tests.conftest import DRILL_AT, Drill
from tests.helpers import manifest_path, sign_as_producer
from tests.test_paths import generous, parse_textfile, strict_json

# -- clocks ---------------------------------------------------------------------------------------------


def readiness_args(drill: Drill, source: Path | str) -> list:
    return ["readiness", source, "--allowed-signers", drill.allowed_signers, "--recipient", drill.recipient,
            "--max-age", generous()]


def seal_at(drill: Drill, tmp_path: Path, when: datetime, token: str | None = None) -> str:
    db = tmp_path / f"copy-{token or 'x'}.db"
    src = sqlite3.connect(drill.target.removeprefix("sqlite:///"))
    dst = sqlite3.connect(db)
    src.backup(dst)
    src.close()
    dst.close()
    with SQLiteStore(db) as store:
        manifest = seal(store, recipient=read_recipient_file(drill.recipient),
                        signing_key=load_signing_key(drill.signing_key), environment="drill", producer="backup@drill",
                        out_dir=drill.snapshots, existing=LocalFolderSource(drill.snapshots).list(),
                            created_at=when, id_token=token)
    return manifest.id


def test_latest_refuses_a_snapshot_dated_in_the_future_naming_it(drill: Drill, cli, tmp_path: Path) -> None:
    future = seal_at(drill, tmp_path, datetime.now(timezone.utc) + timedelta(days=2))
    code, out, err = cli("verify", drill.snapshots, "latest", "--allowed-signers", drill.allowed_signers)
    assert code == SnapshotFromTheFuture.exit_code, err
    assert future in err and "clock" in err and "Traceback" not in err
    # named explicitly, it is the operator's informed choice
    code, out, err = cli("verify", drill.snapshots, future, "--allowed-signers", drill.allowed_signers)
    assert code == 0, err
    # within the tolerated skew, latest takes it
    listing = LocalFolderSource(drill.snapshots).list()
    assert resolve(listing, "latest", now=datetime.now(timezone.utc) + timedelta(days=2)).id == future
    with pytest.raises(SnapshotFromTheFuture):
        resolve(listing, "latest", now=datetime.now(timezone.utc) + timedelta(days=2) - CLOCK_SKEW * 2)


def test_listing_never_shows_a_negative_age(drill: Drill, cli, tmp_path: Path) -> None:
    future = seal_at(drill, tmp_path, datetime.now(timezone.utc) + timedelta(days=2))
    code, out, err = cli("snapshots", "list", drill.snapshots, "--json")
    assert code == 0, err
    rows = {s["id"]: s for s in strict_json(out)["snapshots"]}
    assert rows[future]["age_seconds"] == 0 and rows[future]["in_future"] is True
    assert all(s["age_seconds"] >= 0 for s in rows.values())
    assert not any(s["in_future"] for i, s in rows.items() if i != future)


def test_readiness_fails_on_a_snapshot_from_the_future_and_no_metric_goes_negative(drill: Drill, cli,
                                                                                   tmp_path: Path) -> None:
    future = seal_at(drill, tmp_path, datetime.now(timezone.utc) + timedelta(days=2))
    prom = tmp_path / "r.prom"
    code, out, err = cli(*readiness_args(drill, drill.snapshots), "--prometheus", prom, "--json")
    assert code == NotReady.exit_code, err
    doc = strict_json(out)
    assert "freshness" in doc["failing"]
    freshness = next(c for c in doc["checks"] if c["name"] == "freshness")
    assert future in freshness["summary"] and "future" in freshness["summary"]
    assert doc["newest"]["age_seconds"] >= 0
    assert all(s["age_seconds"] >= 0 for s in doc["snapshots"])
    samples = parse_textfile(prom.read_text())
    assert all(v >= 0 for v in samples.values())
    assert samples[f'enigm_recover_readiness_ok{{source="{drill.snapshots}"}}'] == 0


@pytest.mark.parametrize("text", ["99999999999999999999999d", "3651d", "522w", "1000000000000s"])
def test_durations_past_the_bound_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_duration(text)
    assert "at most" in caught.value.message


def test_a_duration_at_the_bound_is_accepted() -> None:
    assert parse_duration("3650d") == MAX_DURATION


def test_max_age_past_the_bound_on_the_command_line(drill: Drill, cli) -> None:
    code, out, err = cli("readiness", drill.snapshots, "--allowed-signers", drill.allowed_signers,
                         "--recipient", drill.recipient, "--max-age", "9" * 30 + "w")
    assert code == UsageError.exit_code, err
    assert "at most" in err and "internal error" not in err


def rewrite_created_at(drill: Drill, snapshot_id: str, text: str) -> bytes:
    path = manifest_path(drill.snapshots, snapshot_id)
    lines = [f"created_at = {text}" if line.startswith("created_at") else line
             for line in path.read_text().splitlines()]
    data = ("\n".join(lines) + "\n").encode()
    sign_as_producer(drill.snapshots, snapshot_id, data, drill.signing_key)
    return data


def day_of(snapshot_id: str) -> str:
    return f"{snapshot_id[0:4]}-{snapshot_id[4:6]}-{snapshot_id[6:8]}"


def time_of(snapshot_id: str) -> str:
    return f"{snapshot_id[9:11]}:{snapshot_id[11:13]}:{snapshot_id[13:15]}"


def form(written: str, snapshot_id: str) -> str:
    """``written`` with {d} as the id's day and 12:00:00 as its time."""
    return written.format(d=day_of(snapshot_id)).replace("12:00:00", time_of(snapshot_id))


@pytest.mark.parametrize("written", ["{d} 12:00:00.5+00:00", "{d}T12:00:00.000Z", "{d}T12:00:00-00:00",
                                     "{d}t12:00:00z", "{d}T12:00:00.999999+00:00"])
def test_created_at_in_another_form_than_the_format_gives_is_refused(drill: Drill, written: str) -> None:
    snapshot_id = drill.latest
    data = rewrite_created_at(drill, snapshot_id, form(written, snapshot_id))
    with pytest.raises(ManifestError) as caught:
        Manifest.from_toml(data)
    assert "YYYY-MM-DDTHH:MM:SSZ" in caught.value.message


@pytest.mark.parametrize("written", ["{d}T12:00:00Z", "{d} 12:00:00+00:00", "{d}T12:00:00+00:00"])
def test_created_at_in_the_format_s_forms_is_read(drill: Drill, written: str) -> None:
    snapshot_id = drill.latest
    data = rewrite_created_at(drill, snapshot_id, form(written, snapshot_id))
    assert Manifest.from_toml(data).created_at.second == 0


def test_snapshots_of_the_same_second_order_by_their_chain_then_by_id(drill: Drill, cli, tmp_path: Path) -> None:
    """Sealed in the same second, the later one names the earlier as its previous snapshot: that is the
    order, whatever their random id suffixes say; `latest`, the listing and readiness's chain agree."""
    at = DRILL_AT + timedelta(hours=1)
    first = seal_at(drill, tmp_path, at, "ffffffff")
    second = seal_at(drill, tmp_path, at, "00000000")
    listing = LocalFolderSource(drill.snapshots).list()
    assert [e.id for e in newest_first(listing.entries)][:2] == [second, first]
    assert resolve(listing, "latest").id == second
    code, out, err = cli("snapshots", "list", drill.snapshots, "--json")
    assert [s["id"] for s in strict_json(out)["snapshots"]][:2] == [second, first]
    code, out, err = cli(*readiness_args(drill, drill.snapshots), "--json")
    doc = strict_json(out)
    chain = next(c for c in doc["checks"] if c["name"] == "chain")
    assert chain["ok"] is True, chain


def test_snapshots_of_the_same_second_unrelated_by_chain_order_by_id(drill: Drill, tmp_path: Path) -> None:
    at = DRILL_AT + timedelta(hours=1)
    a = seal_at(drill, tmp_path, at, "0000000a")
    shutil.move(str(manifest_path(drill.snapshots, a)), tmp_path / "aside")  # hide it while b is sealed
    b = seal_at(drill, tmp_path, at, "0000000b")
    shutil.move(str(tmp_path / "aside"), manifest_path(drill.snapshots, a))
    listing = LocalFolderSource(drill.snapshots).list()
    assert [e.id for e in newest_first(listing.entries)][:2] == [b, a]


@pytest.mark.parametrize("at", ["0001-01-01T00:00:00Z", "9999-12-31T23:00:00Z"])
def test_a_drill_incident_time_out_of_range_is_a_usage_error(cli, tmp_path: Path, at: str) -> None:
    code, out, err = cli("drill", tmp_path / "d", "--identities", "10", "--snapshots", "1", "--no-tui", "--at", at)
    assert code == UsageError.exit_code, err
    assert "out of range" in err and "internal error" not in err
