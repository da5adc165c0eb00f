"""The PostgreSQL target store against a real throwaway cluster: same interface, same semantics as SQLite."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from enigm_recover.errors import RestoreRefused, TargetError
from enigm_recover.state.journal import Batch, RestoreRun, StepPosition
from enigm_recover.state.model import DEVICE, IDENTITY, KINDS, ROLE, SETTING
from enigm_recover.state.postgres_store import STREAM_CHUNK, PostgresStore, schema_sql
from enigm_recover.state.sqlite_store import SQLiteStore
from enigm_recover.state.stores import open_store
from enigm_recover.state.url import parse_target_url
from tests.helpers import dump, read_manifest
from tests.postgres import PASSWORD_ROLE, copy_store, free_port

KEY = "A" * 43 + "="
WHEN = "2026-01-01T00:00:00Z"
LATER = "2026-02-01T00:00:00Z"
# Keys that a linguistic collation (en_US, ICU) orders differently from bytes: case, digits and the
# punctuation an identifier may hold.
TRAP_KEYS = ["a", "A", "b", "B", "Z", "z", "0", "9", "10", "1a", "a.b", "a_b", "a-b", "a:b", "a@b", "a.B", "aB",
             "Ab", "a..b", "a-", "a--b", "a.b.c", "a@B", "A@b", "ops.admin", "ops-admin", "ops_admin", "ops:admin",
             "ops@admin", "OPS.admin", "x9", "x10", "x_9", "X-1", "m.n@o:p_q-r"]


def identity(account: str, handle: str = "h", version: int = 1, status: str = "active",
             updated: str = WHEN) -> tuple:
    return (account, handle, KEY, version, status, WHEN, updated)


@pytest.fixture
def store(postgres_url: str):
    with PostgresStore(postgres_url, create=True) as s:
        s.init_schema()
        yield s


# -- URLs ------------------------------------------------------------------------------------------


def test_postgres_urls() -> None:
    t = parse_target_url("postgresql://ops:s%40cret@db.example:5433/platform")
    assert t.scheme == "postgresql"
    assert t.connect_kwargs() == {"user": "ops", "password": "s@cret", "host": "db.example", "port": "5433",
                                  "dbname": "platform", "connect_timeout": "10"}
    assert t.display() == "postgresql://ops:***@db.example:5433/platform" and "cret" not in repr(t)
    alias = parse_target_url("postgres://ops@/platform?host=/run/postgresql&sslmode=disable")
    assert alias.scheme == "postgresql"
    assert alias.connect_kwargs()["host"] == "/run/postgresql" and alias.connect_kwargs()["sslmode"] == "disable"
    for bad in ("postgresql://h/", "postgresql://h:0/db", "postgresql://h:x/db", "postgresql://h/db?nope=1",
                "postgresql://u:pw@h/db?password=pw", "postgresql://a,b:x/db", "postgresql:h/db",
                "postgresql://h/db?host=/x"):
        with pytest.raises(TargetError) as exc:
            parse_target_url(bad)
        assert "pw@" not in str(exc.value) and "password=pw" not in str(exc.value)


def test_sqlite_users_never_load_psycopg(tmp_path: Path) -> None:
    code = ("import sys; from enigm_recover.cli import main; "
            f"assert main(['target', 'init', 'sqlite:///{tmp_path}/x.db']) == 0; "
            "assert not any(m.startswith('psycopg') for m in sys.modules), 'psycopg imported'")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


# -- schema -----------------------------------------------------------------------------------------


def test_schema_matches_the_model_and_enforces_its_checks(store: PostgresStore) -> None:
    store.init_schema()  # a second time changes nothing
    for kind in KINDS:
        assert store.columns(kind) == list(kind.field_names)
        assert store.count(kind) == 0
    bad_rows = [
        (DEVICE, ("d1", "a1", KEY, "stolen", WHEN, WHEN, ""), psycopg.errors.CheckViolation),
        (IDENTITY, identity("a1", status="gone"), psycopg.errors.CheckViolation),
        (IDENTITY, identity("a1", version=0), psycopg.errors.CheckViolation),
        (IDENTITY, ("a1", "h", KEY, "one", "active", WHEN, WHEN), psycopg.errors.DataError),
        (IDENTITY, ("a1", None, KEY, 1, "active", WHEN, WHEN), psycopg.errors.NotNullViolation),
    ]
    for kind, row, error in bad_rows:
        with pytest.raises(error):
            with store.transaction():
                store.insert_many(kind, [row])
    with pytest.raises(psycopg.errors.UniqueViolation):
        with store.transaction():
            store.insert_many(IDENTITY, [identity("a1"), identity("a1")])
    assert all(store.count(kind) == 0 for kind in KINDS)
    store.insert_many(IDENTITY, [identity("a1", version=7)])
    assert list(store.stream(IDENTITY)) == [identity("a1", version=7)]
    assert type(next(store.stream(IDENTITY))[3]) is int


def test_cli_target_init(postgres_url: str, cli) -> None:
    for _ in range(2):  # idempotent
        code, out, err = cli("target", "init", postgres_url)
        assert code == 0, err
        assert postgres_url in out
    with open_store(postgres_url) as s:
        assert isinstance(s, PostgresStore)
        assert [s.columns(k) for k in KINDS] == [list(k.field_names) for k in KINDS]
        assert s.display == postgres_url


def test_a_database_without_the_schema_names_the_fix(postgres_url: str, cli) -> None:
    with pytest.raises(TargetError) as exc:
        open_store(postgres_url)
    assert exc.value.exit_code == 5
    assert f"enigm-recover target init {postgres_url}" in exc.value.hint
    with PostgresStore(postgres_url, create=True) as s:
        with pytest.raises(TargetError) as exc:
            s.columns(DEVICE)
        assert "target init" in exc.value.hint
        with pytest.raises(TargetError) as exc:
            list(s.stream(DEVICE))
        assert "target init" in exc.value.hint


# -- connecting -------------------------------------------------------------------------------------


def test_connection_failures_say_why_and_never_show_the_password(postgres_cluster, postgres_url: str, cli,
                                                                 monkeypatch, tmp_path: Path) -> None:
    for name in ("PGPASSWORD", "PGSERVICE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))
    secret = "hunter2-secret"
    port = free_port()
    cases = [
        (f"postgresql://ops:{secret}@127.0.0.1:{port}/db", "connection refused", "host and port"),
        (postgres_cluster.url_for("no_such_database", "postgres", secret), 'database "no_such_database" does not exist',
         "create the database"),
        (postgres_cluster.url_for("postgres", PASSWORD_ROLE, secret), "password authentication failed", "password"),
        (postgres_cluster.url_for("postgres", PASSWORD_ROLE), "no password supplied", "password"),
    ]
    for url, cause, hint in cases:
        shown = parse_target_url(url).display()
        with pytest.raises(TargetError) as exc:
            open_store(url)
        assert exc.value.exit_code == 5
        assert str(exc.value).startswith(f"cannot connect to {shown}: "), str(exc.value)
        assert cause in str(exc.value).lower() or cause in str(exc.value)
        assert hint in exc.value.hint
        assert secret not in exc.value.one_line()
        code, out, err = cli("target", "init", url)
        assert code == 5 and secret not in out + err and shown in err
    good = postgres_cluster.url_for(postgres_url.rsplit("/", 1)[1], PASSWORD_ROLE, "right-password")
    with PostgresStore(good, create=True) as s:
        assert s.display == good.replace("right-password", "***")


def test_connecting_through_the_unix_socket(postgres_cluster, postgres_url: str) -> None:
    dbname = postgres_url.rsplit("/", 1)[1]
    url = f"postgresql://{postgres_cluster.superuser}@/{dbname}?host={postgres_cluster.socket_dir}" \
          f"&port={postgres_cluster.port}"
    with PostgresStore(url, create=True) as s:
        s.init_schema()
        assert s.count(IDENTITY) == 0


# -- reading order: the collation trap ---------------------------------------------------------------


def test_stream_is_in_byte_order_whatever_the_collation(store: PostgresStore, postgres_cluster,
                                                        tmp_path: Path) -> None:
    if postgres_cluster.collation != "default":  # the trap is armed: plain ORDER BY is not byte order here
        rows = store.conn.execute("SELECT k FROM unnest(%s::text[]) AS k ORDER BY k", (TRAP_KEYS,)).fetchall()
        assert [r[0] for r in rows] != sorted(TRAP_KEYS)
    shuffled = TRAP_KEYS[:]
    random.Random(5).shuffle(shuffled)
    roles = [(op, role, "root", WHEN) for op in shuffled[:12] for role in shuffled[-9:]]
    random.Random(6).shuffle(roles)

    def load(s) -> None:
        with s.transaction():
            s.insert_many(IDENTITY, [identity(k) for k in shuffled])
            s.insert_many(ROLE, roles)

    load(store)
    assert [r[0] for r in store.stream(IDENTITY)] == sorted(TRAP_KEYS)
    assert [r[:2] for r in store.stream(ROLE)] == sorted(r[:2] for r in roles)
    with SQLiteStore(tmp_path / "same.db", create=True) as lite:
        lite.init_schema()
        load(lite)
        for kind in (IDENTITY, ROLE):
            assert list(store.stream(kind)) == list(lite.stream(kind))

    # tables the platform created itself, in the database's own (linguistic) collation
    with store.transaction() as conn:
        for kind in (IDENTITY, ROLE):
            conn.execute(f"DROP TABLE {kind.table}")
            conn.execute(schema_sql(kind).replace(' COLLATE "C"', ""))
    load(store)
    assert [r[0] for r in store.stream(IDENTITY)] == sorted(TRAP_KEYS)
    assert [r[:2] for r in store.stream(ROLE)] == sorted(r[:2] for r in roles)
    # and batches still upsert and delete there (staging takes the live table's collation)
    store.start_run(RestoreRun("r1", "s", "0" * 64, "[]", WHEN))
    store.apply_batch("r1", Batch("roles", 1, ROLE, roles[0][:2], upserts=[(roles[1][0], roles[1][1], "x", LATER)],
                                  deletes=[roles[2][:2]], updated=1))
    after = {r[:2]: r for r in store.stream(ROLE)}
    assert after[roles[1][:2]][2:] == ("x", LATER) and roles[2][:2] not in after


def test_keyed_reads_match_sqlite(store: PostgresStore, tmp_path: Path) -> None:
    roles = [(op, role, "root", WHEN) for op in TRAP_KEYS[:10] for role in TRAP_KEYS[-6:]]
    wanted_roles = [r[:2] for r in roles[::3]] + [("nobody", "a"), (TRAP_KEYS[0], "absent")]
    wanted_ids = [(k,) for k in TRAP_KEYS[::2]] + [("absent",)]
    with SQLiteStore(tmp_path / "k.db", create=True) as lite:
        lite.init_schema()
        results = []
        for s in (lite, store):
            with s.transaction():
                s.insert_many(IDENTITY, [identity(k) for k in TRAP_KEYS])
                s.insert_many(ROLE, roles)
            results.append((s.rows_by_key(IDENTITY, wanted_ids), s.rows_by_key(ROLE, wanted_roles),
                            s.rows_by_key(ROLE, []), s.existing_accounts({"A", "a", "nope", "a@b"}),
                            s.existing_accounts(set())))
    assert results[0] == results[1]
    assert len(results[1][1]) == len(roles[::3]) and results[1][3] == {"A", "a", "a@b"}
    many = [(f"bulk-{i}",) for i in range(25000)]  # more keys than one lookup takes
    store.insert_many(IDENTITY, [identity(k[0]) for k in many[::1000]])
    assert set(store.rows_by_key(IDENTITY, many)) == set(many[::1000])


def test_stream_of_chosen_columns(store: PostgresStore) -> None:
    store.insert_many(SETTING, [("b.key", '{"x": 1}', WHEN), ("a.key", "true", WHEN)])
    assert list(store.stream(SETTING, ["key", "updated_at"])) == [("a.key", WHEN), ("b.key", WHEN)]


# -- writing batches ---------------------------------------------------------------------------------


def test_apply_batch_is_all_or_nothing(store: PostgresStore) -> None:
    store.insert_many(IDENTITY, [identity(f"acct-{i:03d}") for i in range(20)])
    store.start_run(RestoreRun("r1", "s", "0" * 64, "[]", WHEN))
    before = list(store.stream(IDENTITY))
    bad = Batch("identities", 1, IDENTITY, ("acct-999",),
                upserts=[identity("acct-100", "new-one"), identity("acct-003", "changed", 2),
                         identity("acct-101", "secret-handle", status="bogus")],
                deletes=[("acct-005",), ("acct-006",)], inserted=2, updated=1)
    with pytest.raises(TargetError) as exc:  # the very first batch of the session: staging is created and undone
        store.apply_batch("r1", bad)
    assert exc.value.exit_code == 5 and "identities_status_check" in str(exc.value)
    assert "secret-handle" not in exc.value.one_line()  # PostgreSQL's DETAIL shows the row: never repeated
    assert list(store.stream(IDENTITY)) == before
    assert store.step_position("r1", "identities") == StepPosition()
    # a failing delete half: nothing of the upserts stays either
    store.conn.execute("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                       "$$ BEGIN RAISE EXCEPTION 'refused'; END $$")
    store.conn.execute("CREATE TRIGGER no_delete BEFORE DELETE ON identities FOR EACH ROW EXECUTE FUNCTION refuse()")
    with pytest.raises(TargetError):
        store.apply_batch("r1", Batch("identities", 1, IDENTITY, ("acct-999",), upserts=[identity("acct-100")],
                                      deletes=[("acct-005",)], inserted=1))
    assert list(store.stream(IDENTITY)) == before
    store.conn.execute("DROP TRIGGER no_delete ON identities")
    good = Batch("identities", 1, IDENTITY, ("acct-999",), upserts=bad.upserts[:2], deletes=bad.deletes,
                 inserted=1, updated=1)
    store.apply_batch("r1", good)
    after = {r[0]: r for r in store.stream(IDENTITY)}
    assert after["acct-100"] == identity("acct-100", "new-one") and after["acct-003"][1:4] == ("changed", KEY, 2)
    assert "acct-005" not in after and "acct-006" not in after and len(after) == 19
    assert store.step_position("r1", "identities") == StepPosition(1, ("acct-999",), 1, 1, 2)


def test_a_record_the_platform_creates_after_the_read_is_kept_not_overwritten(store: PostgresStore,
                                                                              postgres_url: str) -> None:
    """FOR UPDATE locks only rows that exist: a key the batch found absent can be taken by the platform
    before the batch writes. The platform's record stays, and the journal counts only what was written."""
    store.start_run(RestoreRun("r1", "s", "0" * 64, "[]", WHEN))
    platform_row = identity("acct-new", "created-by-the-platform", 2, updated=LATER)

    def build(live: dict) -> Batch:
        assert ("acct-new",) not in live and ("acct-other",) not in live
        with psycopg.connect(postgres_url, autocommit=True) as platform:  # commits at once: nothing blocks it
            platform.execute("INSERT INTO identities VALUES (%s, %s, %s, %s, %s, %s, %s)", platform_row)
        return Batch("identities", 1, IDENTITY, ("acct-other",), inserted=2,
                     inserts=[identity("acct-new", "from-the-snapshot"), identity("acct-other", "from-the-snapshot")])

    store.apply_with("r1", IDENTITY, [("acct-new",), ("acct-other",)], build)
    rows = {r[0]: r for r in store.stream(IDENTITY)}
    assert rows["acct-new"] == platform_row
    assert rows["acct-other"] == identity("acct-other", "from-the-snapshot")
    assert store.step_position("r1", "identities") == StepPosition(1, ("acct-other",), 1, 0, 0)


def test_one_restore_at_a_time_per_target(store: PostgresStore, postgres_url: str) -> None:
    """Two sessions: the second cannot take the restore lock until the first session ends."""
    store.lock_restores()
    store.lock_restores()  # holding it already is fine
    with PostgresStore(postgres_url) as other:
        with pytest.raises(RestoreRefused) as refused:
            other.lock_restores()
        assert refused.value.exit_code == 17 and "is running right now" in str(refused.value)
        store.close()  # the lock goes with the session
        other.lock_restores()


def test_a_batch_inside_a_callers_transaction(store: PostgresStore) -> None:
    store.start_run(RestoreRun("r1", "s", "0" * 64, "[]", WHEN))
    store.apply_batch("r1", Batch("identities", 1, IDENTITY, ("a",), upserts=[identity("a")], inserted=1))
    with store.transaction():
        store.apply_batch("r1", Batch("identities", 2, IDENTITY, ("b",), upserts=[identity("b")], inserted=1))
        store.apply_batch("r1", Batch("identities", 3, IDENTITY, ("c",), upserts=[identity("c", "x")],
                                      deletes=[("a",)], inserted=1))
        store.apply_batch("r1", Batch("identities", 4, IDENTITY, ("d",), deletes=[("b",)]))
    assert [r[:2] for r in store.stream(IDENTITY)] == [("c", "x")]
    assert store.step_position("r1", "identities") == StepPosition(4, ("d",), 3, 0, 2)


def test_journal_round_trip_matches_sqlite(store: PostgresStore, tmp_path: Path, postgres_url: str) -> None:
    def exercise(s) -> list:
        seen = [s.unfinished_run(), s.step_position("r1", "roles")]
        run = RestoreRun("r1", "snap-1", "f" * 64, json.dumps([{"step": "roles"}]), WHEN)
        s.start_run(run)
        seen.append(s.unfinished_run())
        s.apply_batch("r1", Batch("roles", 1, ROLE, ("ops.a", "admin"), upserts=[("ops.a", "admin", "root", WHEN)],
                                  inserted=1))
        s.apply_batch("r1", Batch("roles", 2, ROLE, ("ops.b", "z"), upserts=[("ops.a", "admin", "me", LATER)],
                                  deletes=[("ops.b", "z")], updated=1))
        seen.append(s.step_position("r1", "roles"))
        s.record_step("r1", "roles", "applied", {})
        s.record_step("r1", "roles", "verified", {"verified": True, "digest": "ab", "unmet": {"missing": 0}})
        seen.append(s.step_position("r1", "roles"))
        s.finish_run("r1", "completed")
        seen += [s.unfinished_run(), s.step_position("r1", "other"), list(s.stream(ROLE))]
        return seen

    with SQLiteStore(tmp_path / "j.db", create=True) as lite:
        lite.init_schema()
        expected = exercise(lite)
    got = exercise(store)
    assert got == expected
    position = got[4]
    assert position.last_key == ("ops.b", "z") and position.status == "verified"
    assert all(type(n) is int for n in (position.batches, position.inserted, position.updated, position.deleted))
    json.dumps(position.__dict__)  # no Decimal from sum()
    first = store.target_id()
    assert first == store.target_id() and len(first) == 16
    with PostgresStore(postgres_url) as again:
        assert again.target_id() == first


def test_journal_on_a_store_without_it(postgres_url: str) -> None:
    with PostgresStore(postgres_url, create=True) as s:
        with s.transaction() as conn:
            for kind in KINDS:
                conn.execute(schema_sql(kind))
    with PostgresStore(postgres_url) as s:  # the platform's own tables, no journal yet
        assert s.unfinished_run() is None
        assert len(s.target_id()) == 16
        assert _written_storage(s) == "e"


def _written_storage(store: PostgresStore) -> str:
    return store.conn.execute("SELECT attstorage FROM pg_attribute WHERE attrelid = 'enigm_restore_written'::regclass "
                              "AND attname = 'written'").fetchone()[0]


def test_a_batch_read_back_record_is_stored_as_it_is(store: PostgresStore, postgres_url: str) -> None:
    """A batch's read-back record is mostly SHA-256 in hex, which PostgreSQL's compression tries, and fails,
    to shrink at a cost per batch: the journal the store creates keeps it out of line as it is
    ("external"). A journal created otherwise (by an earlier version) is used as it is, not altered."""
    assert _written_storage(store) == "e"
    store.conn.execute("ALTER TABLE enigm_restore_written ALTER COLUMN written SET STORAGE EXTENDED")
    with PostgresStore(postgres_url) as again:
        again.start_run(RestoreRun("r1", "s", "0" * 64, "[]", WHEN))
        again.apply_batch("r1", Batch("identities", 1, IDENTITY, ("acct-1",), inserted=1,
                                      inserts=[identity("acct-1")], expected={("acct-1",): "ab" * 32}))
        assert list(again.written_rows("r1", "identities")) == [([(("acct-1",), "ab" * 32)], [])]
        assert _written_storage(again) == "x"


# -- reading while writing ---------------------------------------------------------------------------


def test_streaming_a_table_while_applying_batches_to_it(store: PostgresStore) -> None:
    total = 2 * STREAM_CHUNK + 1234
    rows = [identity(f"acct-{i:06d}") for i in range(total)]
    store.insert_many(IDENTITY, rows)
    store.start_run(RestoreRun("r1", "s", "0" * 64, "[]", WHEN))
    stream = store.stream(IDENTITY)
    seen = [next(stream) for _ in range(STREAM_CHUNK + 10)]
    ahead = rows[-50:]
    # delete rows the stream has not reached, change others, add new ones after its position
    store.apply_batch("r1", Batch("identities", 1, IDENTITY, ("zzz",),
                                  upserts=[identity(r[0], "changed", 2) for r in rows[-100:-50]]
                                  + [identity("zz-new")],
                                  deletes=[(r[0],) for r in ahead], inserted=1, updated=50))
    assert store.existing_accounts({"zz-new", ahead[0][0], rows[0][0]}) == {"zz-new", rows[0][0]}
    inner = list(store.stream(IDENTITY))  # a second stream at the same time sees the writes
    assert len(inner) == total - 50 + 1
    seen += list(stream)
    assert seen == rows  # the first stream kept its view from before the batch
    assert dump(store.display)["identity"] == inner
    # an abandoned stream frees its connection; streams never pile up connections
    for _ in range(5):
        partial = store.stream(IDENTITY)
        next(partial)
        del partial
    assert len(store._readers) <= 2


def test_closing_the_store_mid_stream(postgres_url: str) -> None:
    s = PostgresStore(postgres_url, create=True)
    s.init_schema()
    s.insert_many(IDENTITY, [identity(f"a{i}") for i in range(10)])
    stream = s.stream(IDENTITY)
    next(stream)
    s.close()
    with pytest.raises(TargetError):
        list(stream)


# -- the engine on both stores -----------------------------------------------------------------------


SHARES = ("amara", "chen", "emeka")
POLICIES = ("--policy", "device=overwrite-changed,delete-extra", "--policy", "identity=overwrite-changed",
            "--policy", "setting=overwrite-changed", "--policy", "role=overwrite-changed,delete-extra")


def restore(cli, drill, target: str, *extra: str) -> tuple[int, str, str]:
    shares = [a for n in SHARES for a in ("--share-file", str(drill.card(n)))]
    return cli("restore", drill.snapshots, "latest", "--target", target, "--allowed-signers", drill.allowed_signers,
               *shares, *extra)


def strip_run(outcome: dict) -> dict:
    """What two restores of the same snapshot into equal targets must agree on."""
    return {k: outcome[k] for k in ("snapshot", "status", "steps")}


def test_restore_and_resume_end_the_same_on_both_stores(drill, postgres_url: str, cli, monkeypatch) -> None:
    copy_store(drill.target, postgres_url)
    assert dump(postgres_url) == dump(drill.target)
    code, out, err = cli("diff", drill.snapshots, "latest", "--target", drill.target, "--allowed-signers",
                         drill.allowed_signers, *[a for n in SHARES for a in ("--share-file", drill.card(n))], "--json")
    assert code == 0, err
    code, out_pg, err = cli("diff", drill.snapshots, "latest", "--target", postgres_url, "--allowed-signers",
                            drill.allowed_signers, *[a for n in SHARES for a in ("--share-file", drill.card(n))],
                            "--json")
    assert code == 0, err
    diff_lite, diff_pg = json.loads(out), json.loads(out_pg)
    same = ("snapshot", "snapshot_time", "kinds", "findings", "changes", "changes_total")
    assert {k: diff_lite[k] for k in same} == {k: diff_pg[k] for k in same}

    code, out, err = restore(cli, drill, drill.target, "--yes", "--json", "--batch-size", "7", *POLICIES)
    assert code == 0, err
    expected = json.loads(out)

    # the PostgreSQL restore is interrupted after a few batches, then resumed
    calls = {"n": 0}
    original = PostgresStore.apply_batch

    def failing(self, run_id, batch):
        calls["n"] += 1
        if calls["n"] == 6:
            raise TargetError("simulated loss of the connection")
        return original(self, run_id, batch)

    monkeypatch.setattr(PostgresStore, "apply_batch", failing)
    code, out, err = restore(cli, drill, postgres_url, "--yes", "--json", "--batch-size", "7", *POLICIES)
    assert code == 5 and "simulated" in err
    monkeypatch.setattr(PostgresStore, "apply_batch", original)
    code, out, err = restore(cli, drill, postgres_url, "--yes", "--json", "--batch-size", "7", "--resume",
                             *POLICIES)
    assert code == 0, err
    resumed = json.loads(out)
    assert resumed["resumed"] is True
    assert strip_run(resumed) == strip_run(expected)
    assert dump(postgres_url) == dump(drill.target)


def test_seal_from_postgres_seals_the_same_records(drill, postgres_url: str, cli, tmp_path: Path) -> None:
    copy_store(drill.target, postgres_url)
    manifests = []
    for name, url in (("lite", drill.target), ("pg", postgres_url)):
        out = tmp_path / name
        out.mkdir()
        code, stdout, err = cli("seal", "--from", url, "--recipient", drill.recipient, "--sign-key",
                                drill.signing_key, "--environment", "drill", "--out", out, "--json")
        assert code == 0, err
        manifests.append(read_manifest(out, json.loads(stdout)["id"]))
    lite, pg = manifests
    assert lite.scope == pg.scope  # same counts and the same per-kind digests: same rows, same order


def test_keyed_reads_and_account_lookups_take_any_text_key(store: PostgresStore) -> None:
    """Keys travel to the server joined in one text where splitting gives them back exactly, else as an
    array: a key holding the separator, an empty key or plain keys, each read back as itself."""
    keys = ["a", "a\x1fb", "", "é", "x y", "b"]
    store.insert_many(IDENTITY, [identity(k) for k in keys])
    for asked in (["a", "b", "x y"], ["a", "a\x1fb"], ["", "b"], ["é", "nope", "a"], keys):
        wanted = [(k,) for k in asked]
        assert store.rows_by_key(IDENTITY, wanted) == {(k,): identity(k) for k in asked if k in keys}
        assert store.existing_accounts(set(asked)) == {k for k in asked if k in keys}


@pytest.mark.parametrize("collation", ["C", "default"])
def test_a_locked_read_is_exactly_the_rows_of_the_keys_and_locks_them(store: PostgresStore, postgres_url: str,
                                                                      collation: str) -> None:
    """A batch's live rows are read, and locked, inside its transaction. Where the key's index is in byte
    order ("C"), a batch whose key range holds no row at all is told so by one probe of that index; a range
    holding any row, the batch's or another's, is read by the keys (so is every range of a key in another
    collation). Either way the read is the rows of exactly the keys asked, locked until the commit."""
    if collation != "C":
        store.conn.execute(f'ALTER TABLE identities ALTER COLUMN account_id TYPE text COLLATE "{collation}"')
    held = ("acct-b", "acct-d", "acct-é")
    store.insert_many(IDENTITY, [identity(k) for k in held])
    store.start_run(RestoreRun("r1", "s", "0" * 64, "[]", WHEN))
    for asked in (["acct-a"], ["acct-a", "acct-c"], ["acct-c", "acct-e"], ["acct-a", "acct-b"],
                  ["acct-e", "acct-é"], ["acct-x", "acct-y"], ["acct-b", "acct-d"]):
        seen: dict = {}

        def build(live: dict, asked: list[str] = asked) -> Batch:
            seen.update(live)
            with psycopg.connect(postgres_url, autocommit=True) as platform:
                platform.execute("SET lock_timeout = '200ms'")
                for key in held:
                    if key in asked:  # read, so locked: the platform waits for the batch to commit
                        with pytest.raises(psycopg.errors.LockNotAvailable):
                            platform.execute("UPDATE identities SET handle = 'x' WHERE account_id = %s", (key,))
            return Batch("identities", 1, IDENTITY, (asked[-1],))

        store.apply_with("r1", IDENTITY, [(k,) for k in asked], build)
        assert seen == {(k,): identity(k) for k in asked if k in held}, asked


def test_a_reading_session_the_server_refuses_leaves_the_reads_on_the_main_connection(
        postgres_cluster, postgres_url: str, caplog) -> None:
    """A restore reads batches back, and looks up accounts, on sessions of its own, each opened once. Where
    the server lets no further session in (here, the role's password changed once the restore had
    connected), there is none: the reads stay on the main connection, and the log says why."""
    with PostgresStore(postgres_url, create=True) as admin:
        admin.init_schema()
        admin.conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {PASSWORD_ROLE}")
    good = postgres_cluster.url_for(postgres_url.rsplit("/", 1)[1], PASSWORD_ROLE, "right-password")
    with PostgresStore(good) as store:
        opened = store.reading_session("read back")
        assert opened is not None and store.reading_session("read back") is opened
        assert opened.rows_by_key(IDENTITY, [("acct-1",)]) == {}
        postgres_cluster.admin(f"ALTER ROLE {PASSWORD_ROLE} PASSWORD 'changed'")
        try:
            with caplog.at_level("WARNING", logger="enigm_recover.state.postgres_store"):
                assert store.reading_session("accounts") is None
            assert "password authentication failed" in caplog.text and "right-password" not in caplog.text
            assert store.reading_session("read back") is opened  # one already open stays
        finally:
            postgres_cluster.admin(f"ALTER ROLE {PASSWORD_ROLE} PASSWORD 'right-password'")
