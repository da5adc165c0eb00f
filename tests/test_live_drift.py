"""Live targets as an incident leaves them: wrong types, NULLs, values outside the model, missing and extra
columns, on every store. The dry run lists what it cannot read; the restore never writes over it unless a
policy says so, refuses a table it cannot use, and its verification stays honest."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from enigm_recover.state.model import DEVICE, IDENTITY, KINDS, SETTING, Kind
from enigm_recover.state.url import parse_target_url
from tests.test_restore import restore, shares, snapshot_state, state_of

TERMINAL = {"revoked", "retired"}


# -- damaging a live target the way an incident (or a bad migration) would ------------------------------


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite:")


def execute(url: str, *statements: str | tuple[str, tuple[Any, ...]]) -> None:
    """Run statements on the target behind the engine's back (CHECK constraints ignored on SQLite)."""
    items = [s if isinstance(s, tuple) else (s, ()) for s in statements]
    if is_sqlite(url):
        path = parse_target_url(url).path
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA ignore_check_constraints=ON")
        for statement, args in items:
            conn.execute(statement, args)
        conn.close()
        return
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for statement, args in items:
            conn.execute(statement.replace("?", "%s"), args)  # type: ignore[arg-type]


def loosen(url: str, kind: Kind, types: dict[str, str] | None = None) -> None:
    """Take the model's types, NOT NULL and CHECK constraints off a live table (keeping its key and rows).
    On SQLite, ``types`` declares some columns' types (and so their affinity)."""
    t = kind.table
    if is_sqlite(url):
        # A table the platform rebuilt without STRICT: typeless columns take any value, even in the key.
        columns = ", ".join(f"{c} {(types or {}).get(c, '')}" for c in kind.field_names)
        execute(url, f"ALTER TABLE {t} RENAME TO {t}_old",
                f"CREATE TABLE {t} ({columns}, PRIMARY KEY ({', '.join(kind.primary_key)}))",
                f"INSERT INTO {t} ({', '.join(kind.field_names)}) SELECT * FROM {t}_old", f"DROP TABLE {t}_old")
        return
    statements = [f"ALTER TABLE {t} ALTER COLUMN {c} DROP NOT NULL" for c in kind.field_names
                  if c not in kind.primary_key]
    statements += [f"ALTER TABLE {t} DROP CONSTRAINT IF EXISTS {t}_{c}_check" for c in kind.field_names]
    execute(url, *statements)


def raw_rows(url: str, table: str) -> list[str]:
    """Every row of a table as the engine holds it (any columns, any types), to tell what was written."""
    if is_sqlite(url):
        conn = sqlite3.connect(parse_target_url(url).path)
        rows = conn.execute(f"SELECT * FROM {table}").fetchall()
        conn.close()
    else:
        import psycopg

        with psycopg.connect(url) as conn:
            rows = conn.execute(f"SELECT * FROM {table}").fetchall()  # type: ignore[arg-type]
    return sorted(repr(r) for r in rows)


def raw_state(url: str) -> dict[str, list[str]]:
    return {k.table: raw_rows(url, k.table) for k in KINDS}


def diff_json(cli, drill, url: str) -> dict[str, Any]:
    code, out, err = cli("diff", drill.snapshots, "latest", "--target", url, "--allowed-signers",
                         drill.allowed_signers, *shares(drill), "--json")
    assert code == 0, err
    return json.loads(out)


def unreadable_changes(result: dict[str, Any]) -> dict[tuple[str, tuple], dict[str, Any]]:
    return {(c["kind"], tuple(c["key"])): c for c in result["changes"] if "unreadable-live-record" in c["findings"]}


def in_both(snapshot, live, kind: Kind, count: int, usable=lambda row: True) -> list[tuple]:
    """Keys of records the snapshot and live both have (and agree on), in key order."""
    keys = sorted(k for k, row in live[kind.name].items()
                  if snapshot[kind.name].get(k) == row and usable(row))
    assert len(keys) >= count
    return keys[:count]


# -- (a) wrong types, (b) NULLs, (e) values outside the model's syntax: findings per record --------------


def test_unreadable_live_records_are_findings_and_never_written_over_by_default(drill, live_target, cli,
                                                                                 tmp_path: Path) -> None:
    snapshot, live = snapshot_state(drill, cli, tmp_path), state_of(live_target)
    ids = in_both(snapshot, live, IDENTITY, 6)
    devs = in_both(snapshot, live, DEVICE, 4, lambda row: row[3] not in TERMINAL)
    revoked = in_both(snapshot, live, DEVICE, 1, lambda row: row[3] in TERMINAL)[0]
    setting = in_both(snapshot, live, SETTING, 1)[0]
    loosen(live_target, IDENTITY)
    loosen(live_target, DEVICE)
    loosen(live_target, SETTING)
    bad_key = "bad key\x1b[2J"
    # (kind, key) -> (column, what the dry run must say it found)
    damage: dict[tuple[str, tuple], tuple[str, str]] = {
        ("identity", ids[0]): ("key_version", "NULL"),
        ("identity", ids[1]): ("status", "'ACTIVE'"),
        ("identity", ids[2]): ("identity_key", "'short='"),
        ("device", devs[0]): ("state", "NULL"),
        ("device", devs[1]): ("state", "'bogus'"),
        ("device", devs[2]): ("reason", "NULL"),
        ("device", revoked): ("enrolled_at", "NULL"),
        ("setting", setting): ("value", "'{not json'"),
        ("identity", (bad_key,)): ("account_id", "'bad key\\x1b[2J'"),
    }
    statements: list[Any] = [
        ("UPDATE identities SET key_version=NULL WHERE account_id=?", ids[0]),
        ("UPDATE identities SET status='ACTIVE' WHERE account_id=?", ids[1]),
        ("UPDATE identities SET identity_key='short=' WHERE account_id=?", ids[2]),
        ("UPDATE devices SET state=NULL WHERE device_id=?", devs[0]),
        ("UPDATE devices SET state='bogus' WHERE device_id=?", devs[1]),
        ("UPDATE devices SET reason=NULL WHERE device_id=?", devs[2]),
        ("UPDATE devices SET enrolled_at=NULL WHERE device_id=?", revoked),
        ("UPDATE settings SET value='{not json' WHERE key=?", setting),
        ("INSERT INTO identities SELECT ?, handle, identity_key, key_version, status, created_at, updated_at "
         "FROM identities WHERE account_id=?", (bad_key, ids[5][0])),
    ]
    if is_sqlite(live_target):  # SQLite keeps a value's own type: text where an integer belongs, and back
        damage[("identity", ids[3])] = ("key_version", "'x'")
        damage[("identity", ids[4])] = ("handle", "42")
        statements += [("UPDATE identities SET key_version='x' WHERE account_id=?", ids[3]),
                       ("UPDATE identities SET handle=42 WHERE account_id=?", ids[4])]
    execute(live_target, *statements)

    result = diff_json(cli, drill, live_target)
    found = unreadable_changes(result)
    assert set(found) == set(damage)
    for where, (column, what) in damage.items():
        assert found[where]["unreadable"]["column"] == column, where
        assert found[where]["unreadable"]["found"] == what, where
    assert result["findings"]["unreadable-live-record"]["count"] == len(damage)
    assert found[("device", revoked)]["protected"]  # still revoked: the safety rule holds on what can be read

    # The restore keeps every one of them, even where overwrite-changed and delete-extra are chosen: its plan
    # counts them as kept by the safety rules.
    before = state_of_loose(live_target)
    everything = [a for k in ("identity", "device", "setting", "role")
                  for a in ("--policy", f"{k}=overwrite-changed,delete-extra")]
    code, out, err = restore(cli, drill, live_target, "--dry-run", "--json", *everything)
    assert code == 0, err
    previews = json.loads(out)["previews"]
    for step, kind in (("identities", "identity"), ("devices", "device"), ("settings", "setting")):
        assert previews[step]["unreadable"] == sum(k == kind for k, _ in damage), step
        assert previews[step]["protected"] >= previews[step]["unreadable"]
    code, out, err = restore(cli, drill, live_target, "--yes", "--json", *everything)
    assert code == 0, err
    outcome = json.loads(out)
    assert outcome["status"] == "completed"
    steps = {s["step"]: s for s in outcome["steps"]}
    assert steps["identities"]["verification"]["unreadable"] == sum(k == "identity" for k, _ in damage)
    assert steps["devices"]["verification"]["unreadable"] == sum(k == "device" for k, _ in damage)
    after = state_of_loose(live_target)
    for kind, key in damage:
        assert repr(after[kind][key]) == repr(before[kind][key]), (kind, key)  # as it was, types included

    # An explicit policy replaces them with the snapshot's records; a revoked device stays revoked.
    code, out, err = restore(cli, drill, live_target, "--yes", "--json",
                             "--policy", "identity=overwrite-unreadable,delete-extra",
                             "--policy", "device=overwrite-unreadable", "--policy", "setting=overwrite-unreadable")
    assert code == 0, err
    assert json.loads(out)["status"] == "completed"
    end = state_of_loose(live_target)
    for (kind, key), _ in damage.items():
        if key == (bad_key,):
            assert key not in end[kind]  # an unreadable extra record, deleted as delete-extra asked
        elif (kind, key) == ("device", revoked):
            assert end[kind][key][3] in TERMINAL
        else:
            assert end[kind][key] == snapshot[kind][key], (kind, key)


def state_of_loose(url: str) -> dict[str, dict[tuple, tuple]]:
    """Rows by key read without the engine (a loosened table may hold anything)."""
    out: dict[str, dict[tuple, tuple]] = {}
    for kind in KINDS:
        cols = ", ".join(kind.field_names)
        if is_sqlite(url):
            conn = sqlite3.connect(parse_target_url(url).path)
            rows = conn.execute(f"SELECT {cols} FROM {kind.table}").fetchall()
            conn.close()
        else:
            import psycopg

            with psycopg.connect(url) as conn:
                rows = conn.execute(f"SELECT {cols} FROM {kind.table}").fetchall()  # type: ignore[arg-type]
        out[kind.name] = {kind.key_of_row(r): tuple(r) for r in rows}
    return out


def test_a_value_equal_to_the_snapshots_in_another_type_is_not_taken_for_it(drill, cli, tmp_path: Path) -> None:
    """SQLite keeps 3.0 as a real number; Python finds it equal to 3. It is still not the model's integer."""
    target = drill.target
    snapshot, live = snapshot_state(drill, cli, tmp_path), state_of(target)
    key = in_both(snapshot, live, IDENTITY, 1)[0]
    loosen(target, IDENTITY)
    execute(target, ("UPDATE identities SET key_version=key_version+0.0 WHERE account_id=?", key))
    found = unreadable_changes(diff_json(cli, drill, target))
    assert found[("identity", key)]["unreadable"] == {
        "column": "key_version", "found": f"{float(live['identity'][key][3])!r}", "expected": "a positive integer"}


def test_records_whose_key_cannot_be_read_are_listed_and_left_alone(drill, live_target, cli) -> None:
    """A key that is NULL or not text cannot even be ordered: one finding each, no crash, nothing written."""
    if is_sqlite(live_target):
        loosen(live_target, IDENTITY)
        odd = ["NULL", "42", "x'00ff'"]
    else:
        execute(live_target, "ALTER TABLE identities DROP CONSTRAINT identities_pkey",
                "ALTER TABLE identities ALTER COLUMN account_id DROP NOT NULL")
        odd = ["NULL"]
    one = sorted(state_of(live_target)["identity"])[0][0]
    execute(live_target, *[(f"INSERT INTO identities SELECT {value}, handle, identity_key, key_version, status, "
                            "created_at, updated_at FROM identities WHERE account_id=?", (one,)) for value in odd])
    result = diff_json(cli, drill, live_target)
    listed = [u for u in result["unreadable_live"] if u["kind"] == "identity" and u["key"] is not None]
    assert sorted(u["key"][0] for u in listed) == sorted({"NULL": "NULL", "42": "42", "x'00ff'": "b'\\x00\\xff'"}[v]
                                                        for v in odd)
    assert all(u["column"] == "account_id" for u in listed)
    assert result["findings"]["unreadable-live-record"]["count"] == len(odd)
    before = raw_rows(live_target, "identities")
    code, out, err = restore(cli, drill, live_target, "--yes", "--json", "--policy", "identity=delete-extra")
    if is_sqlite(live_target):
        assert code == 0, err
        after = raw_rows(live_target, "identities")
        assert [r for r in before if r.startswith(("(None", "(42", "(b'"))] == \
               [r for r in after if r.startswith(("(None", "(42", "(b'"))]
    else:  # without its primary key, no write can match a record by its key: refused before any write
        assert code == 5 and "identities has no primary key or unique index on (account_id)" in err, err
        assert raw_rows(live_target, "identities") == before


def test_a_table_without_its_primary_key_refuses_its_restore(drill, live_target, cli) -> None:
    if is_sqlite(live_target):
        execute(live_target, "ALTER TABLE settings RENAME TO settings_old",
                "CREATE TABLE settings (key TEXT NOT NULL, value TEXT NOT NULL, updated_at TEXT NOT NULL)",
                "CREATE INDEX settings_by_key ON settings (key)",
                "INSERT INTO settings SELECT * FROM settings_old", "DROP TABLE settings_old")
    else:
        execute(live_target, "ALTER TABLE settings DROP CONSTRAINT settings_pkey",
                "CREATE INDEX settings_by_key ON settings (key)")
    result = diff_json(cli, drill, live_target)
    assert [(u["kind"], u["column"]) for u in result["unreadable_live"]] == [("setting", "key")]
    assert result["findings"]["unwritable-live-table"]["count"] == 1
    assert result["kinds"]["setting"]["changed"] > 0  # it is read and compared as usual
    before = raw_rows(live_target, "settings")
    code, _, err = restore(cli, drill, live_target, "--yes", "--policy", "setting=overwrite-changed")
    assert code == 5 and "settings has no primary key or unique index on (key)" in err, err
    assert raw_rows(live_target, "settings") == before


# -- (c) missing columns and tables: one finding per kind and column; the restore of that kind refuses ----


def test_a_missing_column_or_table_is_one_finding_and_refuses_its_restore(drill, live_target, cli) -> None:
    execute(live_target, "ALTER TABLE devices DROP COLUMN reason", "DROP TABLE roles")
    result = diff_json(cli, drill, live_target)
    tables = [u for u in result["unreadable_live"] if u["key"] is None]
    assert sorted((u["kind"], u["column"]) for u in tables) == [("device", "reason"), ("role", None)]
    assert result["findings"]["unreadable-live-table"]["count"] == 2
    assert result["kinds"]["identity"]["unchanged"] > 0  # the other kinds are compared as usual
    before = {t: raw_rows(live_target, t) for t in ("identities", "devices", "settings")}
    code, _, err = restore(cli, drill, live_target, "--yes")
    assert code == 5, err
    assert "devices" in err and "reason" in err and "--step" in err
    assert {t: raw_rows(live_target, t) for t in before} == before  # refused before anything was written
    code, out, err = restore(cli, drill, live_target, "--yes", "--json", "--step", "identities", "--step", "settings")
    assert code == 0, err
    assert json.loads(out)["status"] == "completed"


def test_a_column_of_another_type_is_one_finding_and_refuses_its_restore(drill, live_target, cli) -> None:
    """A column whose type cannot hold the model's values (PostgreSQL types whole columns; SQLite's declared
    type gives an affinity that converts what is written) is a finding about the column."""
    one = sorted(state_of(live_target)["identity"])[0][0]
    if is_sqlite(live_target):
        loosen(live_target, IDENTITY, {"key_version": "TEXT"})  # 3 is written as '3'
        loosen(live_target, DEVICE, {"device_id": "NUMERIC"})  # a device id '10' would come back as 10
        found = ("column identities.key_version is of type TEXT", "column devices.device_id is of type NUMERIC")
    else:
        execute(live_target, "ALTER TABLE identities DROP CONSTRAINT identities_key_version_check",
                "ALTER TABLE identities ALTER COLUMN key_version TYPE text",
                "ALTER TABLE devices ALTER COLUMN device_id TYPE bytea USING convert_to(device_id, 'UTF8')")
        found = ("column identities.key_version is of type text", "column devices.device_id is of type bytea")
    execute(live_target, ("UPDATE identities SET key_version='x' WHERE account_id=?", (one,)))
    result = diff_json(cli, drill, live_target)
    tables = {(u["kind"], u["column"]): u["found"] for u in result["unreadable_live"] if u["key"] is None}
    assert tables == {("identity", "key_version"): found[0], ("device", "device_id"): found[1]}
    assert not unreadable_changes(result)  # the kinds are not compared record by record
    before = raw_rows(live_target, "identities")
    code, _, err = restore(cli, drill, live_target, "--yes", "--step", "identities")
    assert code == 5 and "identities" in err and "key_version" in err
    assert raw_rows(live_target, "identities") == before


# -- honest verification: what the restore wrote must read back as the snapshot's records ------------------


# What the platform's trigger does to every new identity: SQL for SQLite, PL/pgSQL for PostgreSQL (None: a
# PostgreSQL integer column cannot hold what it makes).
MANGLES = {
    "a value outside the model": ("status = 'ACTIVE'", "NEW.status := 'ACTIVE'"),
    # Equal in Python (1.0 == 1) but not the model's integer: a typeless SQLite column keeps the 1.0.
    "an equal value of another type": ("key_version = key_version * 1.0", None),
}


@pytest.mark.parametrize("mangle", MANGLES)
def test_a_record_that_reads_back_unreadable_after_the_restore_is_not_verified(mangle: str, drill, live_target, cli,
                                                                                tmp_path: Path) -> None:
    in_sqlite, in_postgres = MANGLES[mangle]
    if not is_sqlite(live_target) and in_postgres is None:
        pytest.skip("a PostgreSQL integer column holds integers only")
    snapshot, live = snapshot_state(drill, cli, tmp_path), state_of(live_target)
    gone = in_both(snapshot, live, IDENTITY, 1)[0]
    loosen(live_target, IDENTITY)
    if is_sqlite(live_target):
        execute(live_target, "CREATE TRIGGER mangle AFTER INSERT ON identities BEGIN "
                             f"UPDATE identities SET {in_sqlite} WHERE account_id = NEW.account_id; END")
    else:
        execute(live_target, "CREATE FUNCTION mangle() RETURNS trigger LANGUAGE plpgsql AS "
                             f"$$ BEGIN {in_postgres}; RETURN NEW; END $$",
                "CREATE TRIGGER mangle BEFORE INSERT ON identities FOR EACH ROW EXECUTE FUNCTION mangle()")
    execute(live_target, ("DELETE FROM identities WHERE account_id=?", gone))
    code, out, err = restore(cli, drill, live_target, "--yes", "--json", "--step", "identities")
    assert code == 18, err
    step = json.loads(out)["steps"][0]
    assert step["status"] == "not-verified" and step["inserted"] == 1
    assert step["verification"]["unmet"]["unreadable"] == 1


# -- (d) extra columns: ignored for reading; a required one the snapshot cannot fill refuses the restore --


def test_extra_columns_are_ignored_unless_the_restore_cannot_fill_them(drill, live_target, cli,
                                                                       tmp_path: Path) -> None:
    plain = diff_json(cli, drill, live_target)
    execute(live_target, "ALTER TABLE identities ADD COLUMN note TEXT",
            "ALTER TABLE devices ADD COLUMN flag INTEGER NOT NULL DEFAULT 0")
    result = diff_json(cli, drill, live_target)
    assert result["kinds"] == plain["kinds"] and not result["unreadable_live"]
    code, out, err = restore(cli, drill, live_target, "--yes", "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "completed"

    if is_sqlite(live_target):  # SQLite adds no NOT NULL column without a default: the platform rebuilt it
        execute(live_target, "ALTER TABLE settings RENAME TO settings_old",
                "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at TEXT NOT NULL, "
                "tenant TEXT NOT NULL)",
                "INSERT INTO settings SELECT key, value, updated_at, 't' FROM settings_old", "DROP TABLE settings_old",
                "DELETE FROM settings WHERE key IN (SELECT key FROM settings ORDER BY key LIMIT 1)")
    else:
        execute(live_target, "ALTER TABLE settings ADD COLUMN tenant text NOT NULL DEFAULT 't'",
                "ALTER TABLE settings ALTER COLUMN tenant DROP DEFAULT",
                "DELETE FROM settings WHERE key IN (SELECT key FROM settings ORDER BY key LIMIT 1)")
    result = diff_json(cli, drill, live_target)
    assert [(u["kind"], u["column"]) for u in result["unreadable_live"]] == [("setting", "tenant")]
    assert result["findings"]["unwritable-live-table"]["count"] == 1
    before = raw_rows(live_target, "settings")
    code, _, err = restore(cli, drill, live_target, "--yes", "--step", "settings")
    assert code == 5 and "settings" in err and "tenant" in err
    assert raw_rows(live_target, "settings") == before


def test_a_runbook_keeps_unreadable_records_and_its_verification_says_so_honestly(drill, live_target, cli,
                                                                                  tmp_path: Path) -> None:
    """The runbook's restore (overwrite-changed) keeps an unreadable device; its fresh verification of the
    target does not count that as a promise broken, and a table it cannot read is never verified."""
    snapshot, live = snapshot_state(drill, cli, tmp_path), state_of(live_target)
    device = in_both(snapshot, live, DEVICE, 1, lambda row: row[3] not in TERMINAL)[0]
    loosen(live_target, DEVICE)
    execute(live_target, ("UPDATE devices SET state=NULL WHERE device_id=?", device))
    args = ["run", "device-lifecycle", "--source", drill.snapshots, "--target", live_target, "--allowed-signers",
            drill.allowed_signers, *shares(drill), "--operator", "dana", "--yes", "--second-operator", "lee", "--json",
            "--snapshot", drill.latest]
    code, out, err = cli("--state-dir", tmp_path / "a", *args)
    assert code == 0, err
    steps = {s["step"]: s for s in json.loads(out)["steps"]}
    assert steps["restore-devices"]["status"] == steps["verify-target"]["status"] == "verified"
    assert state_of_loose(live_target)["device"][device][3] is None  # kept as it was

    execute(live_target, "ALTER TABLE devices DROP COLUMN reason")
    code, out, err = cli("--state-dir", tmp_path / "b", *args)
    assert code == 5 and "devices" in err and "reason" in err


def test_text_that_is_not_utf8_is_a_finding_shown_escaped(drill, cli, tmp_path: Path, monkeypatch) -> None:
    """SQLite stores whatever bytes it is given as text; Python cannot decode them. The rows are read anyway
    (also when the bad text comes after a batch already read), found unreadable, shown escaped."""
    from enigm_recover.state import sqlite_store

    monkeypatch.setattr(sqlite_store, "STREAM_BATCH", 7)
    target = drill.target
    snapshot, live = snapshot_state(drill, cli, tmp_path), state_of(target)
    ids = in_both(snapshot, live, IDENTITY, 30)
    loosen(target, IDENTITY)
    loosen(target, DEVICE)
    template = sorted(live["device"])[0][0]
    execute(target, ("UPDATE identities SET handle=CAST(x'41ff1b5b326a' AS TEXT) WHERE account_id=?", ids[20]),
            ("INSERT INTO devices SELECT CAST(x'ff1b5d' AS TEXT), account_id, device_key, state, enrolled_at, "
             "state_changed_at, reason FROM devices WHERE device_id=?", (template,)))
    code, out, err = cli("diff", drill.snapshots, "latest", "--target", target, "--allowed-signers",
                         drill.allowed_signers, *shares(drill))
    assert code == 0, err
    assert "\x1b" not in out and "\\x1b" in out
    result = diff_json(cli, drill, target)
    found = unreadable_changes(result)
    assert found[("identity", ids[20])]["unreadable"]["found"] == "'A\\udcff\\x1b[2j'"
    assert [(u["kind"], u["key"], u["column"]) for u in result["unreadable_live"]] == \
           [("device", ["'\\udcff\\x1b]'"], "device_id")]
    code, out, err = restore(cli, drill, target, "--yes", "--json", "--policy", "identity=delete-extra",
                             "--policy", "device=delete-extra,overwrite-unreadable")
    assert code == 0, err
    assert json.loads(out)["status"] == "completed"
    code, out, err = restore(cli, drill, target, "--yes", "--json", "--policy", "identity=overwrite-unreadable")
    assert code == 0, err
    assert state_of(target)["identity"][ids[20]] == snapshot["identity"][ids[20]]
    assert [u["key"] for u in diff_json(cli, drill, target)["unreadable_live"]] == [["'\\udcff\\x1b]'"]]  # kept
