"""The record model, target URLs and the SQLite store."""

from __future__ import annotations

from pathlib import Path

import pytest

from enigm_recover.errors import TargetError
from enigm_recover.state.model import DEVICE, IDENTITY, ROLE, invalid_fields
from enigm_recover.state.sqlite_store import SQLiteStore
from enigm_recover.state.stores import open_store
from enigm_recover.state.url import parse_target_url

KEY = "A" * 43 + "="


def test_sqlalchemy_style_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_target_url("sqlite:///rel/x.db").path == Path("rel/x.db")
    assert parse_target_url("sqlite:////abs/x.db").path == Path("/abs/x.db")
    for bad in ("sqlite://x.db", "sqlite:///", "mysql://h/db", "x.db"):
        with pytest.raises(TargetError):
            parse_target_url(bad)


def test_password_never_shown() -> None:
    from enigm_recover.state.url import TargetURL

    assert TargetURL("postgresql", "postgresql://u:secret@h/db").display() == "postgresql://u:***@h/db"


def test_target_init_creates_schema_relative_to_cwd(tmp_path: Path, monkeypatch, cli) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("target", "init", "sqlite:///live.db")
    assert code == 0, err
    with SQLiteStore(tmp_path / "live.db") as store:
        assert store.columns(IDENTITY) == list(IDENTITY.field_names)
        assert store.count(DEVICE) == 0


def test_opening_a_missing_store_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(TargetError) as exc:
        open_store(f"sqlite:///{tmp_path}/nope.db")
    assert "target init" in exc.value.hint


def test_stream_is_in_primary_key_order(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "s.db", create=True) as store:
        store.init_schema()
        with store.transaction():
            store.insert_many(ROLE, [("ops.b", "auditor", "x", "2026-01-01T00:00:00Z"),
                                     ("ops.a", "z-role", "x", "2026-01-01T00:00:00Z"),
                                     ("ops.a", "admin", "x", "2026-01-01T00:00:00Z")])
        keys = [row[:2] for row in store.stream(ROLE)]
    assert keys == [("ops.a", "admin"), ("ops.a", "z-role"), ("ops.b", "auditor")]


def test_store_refuses_values_outside_the_model(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "s.db", create=True) as store:
        store.init_schema()
        with pytest.raises(TargetError, match="CHECK constraint failed") as exc:
            with store.transaction():
                store.insert_many(DEVICE, [("d1", "a1", KEY, "stolen", "2026-01-01T00:00:00Z",
                                            "2026-01-01T00:00:00Z", "")])
        assert "rolled back" in exc.value.message and store.count(DEVICE) == 0
        with pytest.raises(TargetError, match="cannot store TEXT value in INTEGER column"):  # STRICT tables
            with store.transaction():
                store.insert_many(IDENTITY, [("a1", "h", KEY, "one", "active",
                                              "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z")])


def test_model_rejects_content_like_values() -> None:
    record = {"device_id": "d1", "account_id": "a1", "device_key": KEY, "state": "revoked",
              "enrolled_at": "2026-01-01T00:00:00Z", "state_changed_at": "2026-01-02T00:00:00Z",
              "reason": "lost"}
    assert invalid_fields(DEVICE, record) == []
    record["reason"] = "Hi Bob, the meeting moved to 3pm. See you there!"
    assert invalid_fields(DEVICE, record) == ["reason"]


def test_model_fields_are_strict_ascii_and_json() -> None:
    from enigm_recover.state.model import SETTING

    identity = {"account_id": "a1", "handle": "h", "identity_key": KEY, "key_version": 1, "status": "active",
                "created_at": "２０２６-11-26T12:00:00Z", "updated_at": "2026-11-26T12:00:00Z\n"}
    assert invalid_fields(IDENTITY, identity) == ["created_at", "updated_at"]
    setting = {"key": "auth.mfa_required", "value": "NaN", "updated_at": "2026-11-26T12:00:00Z"}
    assert invalid_fields(SETTING, setting) == ["value"]
    setting["value"] = '{"threshold": 3}'
    assert invalid_fields(SETTING, setting) == []


def test_consistent_reads_see_one_snapshot_of_the_store(live_target: str) -> None:
    """Sealing reads every kind inside one view: a change committed meanwhile is not half in it."""
    from enigm_recover.state.model import SETTING

    with open_store(live_target) as reader, open_store(live_target) as writer:
        with reader.consistent_reads():
            before = list(reader.stream(IDENTITY))
            with writer.transaction() as conn:
                conn.execute("DELETE FROM settings")
                conn.execute("DELETE FROM identities")
            assert list(reader.stream(IDENTITY)) == before
            assert len(list(reader.stream(SETTING))) > 0
        assert list(reader.stream(IDENTITY)) == []


def _device(device_id: str) -> tuple[object, ...]:
    return (device_id, "acct_1", KEY, "active", "2025-01-01T00:00:00Z", "2025-01-01T00:00:00Z", "")


@pytest.mark.parametrize("collation", ["", " COLLATE NOCASE"])
def test_keyed_reads_return_exactly_the_rows_asked_for_dense_or_sparse(tmp_path: Path, collation: str) -> None:
    """A keyed read gives the live rows of the keys asked for, and only those, whether the keys fill their
    range (read as one range) or are spread over it (looked up), also from a platform table whose key column
    compares without case (its own order is not the payload's binary one)."""
    import sqlite3

    path = tmp_path / "live.db"
    columns = ", ".join(f"{name} {'TEXT' if f.sql_type == 'TEXT' else 'INTEGER'} NOT NULL"
                        + (collation if name == "device_id" else "")
                        for name, f in zip(DEVICE.field_names, DEVICE.fields))
    conn = sqlite3.connect(path)
    conn.execute(f"CREATE TABLE devices ({columns}, PRIMARY KEY (device_id))")
    # Keys whose binary order and case-blind order disagree ("B" < "Z" < "a" < "c", not "a" < "B" < "c" < "Z").
    ids = sorted({f"{prefix}{n:04d}" for prefix in ("B", "a", "c", "Z_", "dev.") for n in range(400)})
    conn.executemany(f"INSERT INTO devices VALUES ({', '.join('?' * 7)})", [_device(i) for i in ids])
    conn.commit()
    conn.close()
    asked = {
        "dense": ids[100:1500],
        "dense with absent keys": [*ids[:700], "B0000x", "B9999", "Z_0150x"],
        "sparse": ids[::7],
        "every case": [i for i in ids if i[0] in "aB"],
    }
    with SQLiteStore(path) as store:
        for name, keys in asked.items():
            wanted = sorted(keys)
            got = store.rows_by_key(DEVICE, [(k,) for k in wanted])
            assert sorted(got) == [(k,) for k in wanted if k in ids], name
            assert all(row == _device(key[0]) for key, row in got.items()), name


@pytest.mark.parametrize("count", [3, 100])  # a statement per row, and (SQLite, 64 rows or more) a staging table
def test_a_batch_inserts_only_where_the_key_is_still_absent(live_target: str, count: int) -> None:
    """Records absent when the batch was decided are inserted where their key is still absent: a row that
    took its key meanwhile is kept, not counted as inserted and not read back as the batch's. The rows
    inserted are stored with the very values and types written."""
    from enigm_recover.state.journal import Batch, RestoreRun

    when = "2026-01-01T00:00:00Z"
    rows = [(f"acct_zz{i:04d}", f"handle{i}", KEY, i + 1, "active", when, when) for i in range(count)]
    taken = sorted({rows[0][0], rows[count // 2][0], rows[-1][0]})
    theirs = {account: (account, "theirs", "B" * 43 + "=", 7, "suspended", when, when) for account in taken}
    with open_store(live_target) as store:
        store.init_schema()
        store.start_run(RestoreRun("run1", "snap", "0" * 64, "{}", when))
        before = {IDENTITY.key_of_row(r): r for r in store.stream(IDENTITY)}
        store.insert_many(IDENTITY, theirs.values())
        batch = Batch("identities", 1, IDENTITY, last_key=(rows[-1][0],), inserts=list(rows), inserted=count,
                      expected={(r[0],): f"hash{i}" for i, r in enumerate(rows)})
        store.apply_batch("run1", batch)
        after = {IDENTITY.key_of_row(r): r for r in store.stream(IDENTITY)}
        (written, _), = store.written_rows("run1", "identities")
    ours = {(r[0],): r for r in rows if r[0] not in theirs}
    assert after == {**before, **{(a,): r for a, r in theirs.items()}, **ours}
    assert all(type(after[key][3]) is int for key in ours)
    assert batch.inserted == count - len(taken)
    assert sorted(batch.expected) == sorted(ours) == sorted(key for key, _ in written)


def test_a_batch_is_journaled_as_json_writes_it() -> None:
    """The journal's read-back record of a batch is the text ``json.dumps`` writes, whatever the keys and
    hashes hold (plain text keys are put in the text without the encoder)."""
    import json

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from enigm_recover.state.journal import Batch, decode_written

    text = st.text(max_size=12) | \
        st.text("abc-_.:@ \"\\\x00\x1f\x7f~é\u2028", max_size=6)
    key = st.tuples(text) | st.tuples(text, text) | st.tuples(st.integers(-5, 2**40))
    pairs = st.dictionaries(key, text | st.sampled_from(["", "0" * 64]), max_size=8)

    @settings(max_examples=300, deadline=None)
    @given(expected=pairs)
    def check(expected: dict) -> None:
        batch = Batch("identities", 1, IDENTITY, last_key=("z",), expected=expected)
        written, _ = batch.written_record()
        assert written == json.dumps([[list(k), h] for k, h in expected.items()], separators=(",", ":"))
        assert decode_written(written, "[]")[0] == list(expected.items())

    check()


def test_the_rows_a_batch_left_staged_are_compared_with_live_exactly(tmp_path: Path) -> None:
    """The inserts of the batch just committed, still staged, are compared with the live rows in SQL: the
    same values of the same types (whatever the columns' affinities make of them), text byte for byte
    whatever the column's collation. Another list of rows, or rows staged before a later batch, are not told
    (None): they would have to be read back."""
    import sqlite3

    from enigm_recover.state.journal import Batch, RestoreRun

    when = "2026-01-01T00:00:00Z"
    path = tmp_path / "live.db"
    with sqlite3.connect(path) as conn:  # a drifted table: no types enforced, a case-blind key
        conn.execute("CREATE TABLE identities (account_id TEXT COLLATE NOCASE PRIMARY KEY, handle NUMERIC, "
                     "identity_key TEXT, key_version, status TEXT, created_at TEXT, updated_at TEXT)")
    rows = [(f"acct_{i:04d}", f"handle{i}", KEY, i + 1, "active", when, when) for i in range(100)]
    rows[6] = (rows[6][0], "42", *rows[6][2:])  # the column's affinity stores it as the integer 42
    with SQLiteStore(path) as store:
        store.init_schema()
        store.start_run(RestoreRun("run1", "snap", "0" * 64, "{}", when))

        def write(number: int, inserts: list) -> None:
            batch = Batch("identities", number, IDENTITY, last_key=(inserts[-1][0],), inserts=inserts,
                          inserted=len(inserts), expected={(r[0],): "h" for r in inserts})
            assert store.apply_with("run1", IDENTITY, [(r[0],) for r in inserts], lambda live: batch) is batch

        write(1, rows)
        assert store.identical_rows(IDENTITY, rows) == 99
        assert store.identical_rows(IDENTITY, list(rows)) is None  # not the rows staged
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE identities SET key_version = 2.0 WHERE account_id = 'acct_0001'")  # 2 == 2.0
            conn.execute("UPDATE identities SET key_version = '3' WHERE account_id = 'acct_0002'")
            conn.execute("UPDATE identities SET account_id = 'ACCT_0003' WHERE account_id = 'acct_0003'")
            conn.execute("UPDATE identities SET handle = 'handle4' || char(0) WHERE account_id = 'acct_0004'")
            conn.execute("DELETE FROM identities WHERE account_id = 'acct_0005'")
        assert store.identical_rows(IDENTITY, rows) == 94
        later = [(f"acct_z{i:04d}", f"handle{i}", KEY, 1, "active", when, when) for i in range(100)]
        write(2, later)
        assert store.identical_rows(IDENTITY, rows) is None and store.identical_rows(IDENTITY, later) == 100
