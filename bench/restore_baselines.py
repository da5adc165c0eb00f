"""Baselines that do exactly a restore's work in SQL: the ``sqlite3`` program and ``psql``.

A restore (``enigm-recover restore``) brings back, per step and under the step's
policies, what the snapshot has and the live target lacks or holds otherwise,
keeping the safety rules, then reads back what it wrote and hashes it. Each
baseline here does the same, and no more, with the engine of the store itself:

1. import: the snapshot's records (a CSV file per table) are loaded into a
   staging table defined like the live table (same columns, types, CHECKs and
   primary key, so the import checks what our record checker checks of a
   conforming record);
2. plan: the keys to write are chosen with the same rules our ``decide`` and
   ``Assessor`` apply (``recovery/plan.py``, ``recovery/assess.py``):
   - a missing record is inserted, except a device whose account the live
     target does not hold (after the identities step: no orphan devices);
   - with overwrite-changed, a changed record is overwritten, except a device
     revoked or retired in live (no re-activation) and an identity whose live
     key version is newer (no key rollback);
   - with delete-extra, a record only in live is deleted, except a revoked or
     retired device;
   the written keys are kept in a table, as our journal keeps them;
3. merge: the rows are written in one transaction (SQLite: INSERT ... SELECT,
   UPDATE-by-upsert and DELETE from the staging table; PostgreSQL: INSERT ...
   ON CONFLICT with the guards in its WHERE, DELETE ... USING);
4. verify: after the commit, every written key is read again, compared with
   the snapshot's record and both sides hashed (``sha3_query`` in the sqlite3
   program, ``sha256`` in PostgreSQL); a deleted key must be absent.

The live tables are those ``target init`` makes (STRICT, typed, CHECKed), so a
live record the model cannot read does not occur and neither baseline handles
one: nor does the drill have one. The steps run in our plan's order
(identities, devices, settings, roles), so a device's account is looked up
after the identities step, as ours looks it up.

What ours does besides, and the baselines do not: verify the snapshot's
signature and hash, combine the custodians' shares, decrypt, the dry run (which
also finds what the baselines do not report), the restore lock, a journal row
per batch, and the per-step report. That is the cost of a safe restore the
comparison measures.
"""

from __future__ import annotations

import csv
import re
import sqlite3
from pathlib import Path
from typing import Any, Iterable

# The guards, by kind and policy: SQL conditions on the live row ``l`` and the staged snapshot row ``s``
# under which a change must NOT be written (the safety rules of recovery/assess.py).
TERMINAL_STATES = ("revoked", "retired")
_TERMINAL = "(" + ", ".join(f"'{s}'" for s in TERMINAL_STATES) + ")"
STEP_ORDER = ("identity", "device", "setting", "role")

# kind name -> (table, primary key, fields in model order)
_KINDS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {}


def _kinds() -> dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]]:
    if not _KINDS:
        from enigm_recover.state.model import KINDS

        _KINDS.update({k.name: (k.table, k.primary_key, k.field_names) for k in KINDS})
    return _KINDS


def policies_of(policy_args: Iterable[str]) -> dict[str, frozenset[str]]:
    """Per kind, the policies of ``--policy KIND=POLICY[,POLICY]`` options (restore-missing always)."""
    from enigm_recover.recovery.plan import make_plan

    plan = make_plan(list(policy_args))
    return {step.kind.name: frozenset(p.value for p in step.policies) for step in plan.steps}


def _protected_changed(kind: str, live: str = "l", snap: str = "s", false: str = "0") -> str:
    """A changed record the rules keep (SQL on the live row ``live`` and the snapshot's ``snap``)."""
    if kind == "device":
        return f"{live}.state IN {_TERMINAL}"  # revocation is monotonic
    if kind == "identity":
        return f"{live}.key_version > {snap}.key_version"  # an identity key never rolls back
    return false


def _protected_extra(kind: str, false: str = "0") -> str:
    return f"l.state IN {_TERMINAL}" if kind == "device" else false


def _orphan(kind: str, row: str, schema: str = "main.", false: str = "0") -> str:
    """A device whose account the live target does not hold (after the identities step)."""
    if kind != "device":
        return false
    return f"NOT EXISTS (SELECT 1 FROM {schema}identities i WHERE i.account_id = {row}.account_id)"


def snapshot_csvs(verified: Any, identity: Any, folder: Path) -> dict[str, Path]:
    """The snapshot's records, decrypted, as one CSV file per table (header row first) in ``folder``."""
    from enigm_recover.snapshot.unseal import records
    from enigm_recover.state.model import KINDS

    paths = {k.table: folder / f"snapshot-{k.table}.csv" for k in KINDS}
    files = {table: open(path, "w", newline="", encoding="utf-8") for table, path in paths.items()}
    try:
        writers = {k.name: csv.writer(files[k.table], lineterminator="\n") for k in KINDS}
        for k in KINDS:
            writers[k.name].writerow(k.field_names)
        for kind, values, _line in records(verified, identity):
            writers[kind.name].writerow(values)
    finally:
        for f in files.values():
            f.close()
    return paths


# -- SQLite: the sqlite3 program ------------------------------------------------------------------------


def _live_ddl(db: Path, table: str, name: str) -> str:
    """The live table's own CREATE TABLE statement, creating the TEMP table ``name`` instead."""
    conn = sqlite3.connect(db)
    try:
        row = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
    finally:
        conn.close()
    match = re.match(r"\s*CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\S+)", row[0] if row else "", re.I)
    if match is None or match.group(1).strip('"`[]') != table:
        raise RuntimeError(f"cannot read the definition of table {table} in {db}")
    return f"CREATE TEMP TABLE {name}" + row[0][match.end():]


def sqlite_script(live: Path, csvs: dict[str, Path], policies: dict[str, frozenset[str]]) -> str:
    """The sqlite3 program's input (``sqlite3 -bail LIVE < script``): import, plan, merge, verify.

    Its output: one line per kind, ``kind|written|deleted|unmet|hashes equal (1/0)``."""
    kinds = _kinds()
    out = [".bail on", "PRAGMA foreign_keys=ON;"]
    for name in STEP_ORDER:  # 1. import into staging tables defined like live's
        table, pk, _ = kinds[name]
        out.append(_live_ddl(live, table, f"s_{table}") + ";")
        out.append(f".import --csv --skip 1 --schema temp {csvs[table]} s_{table}")
    out.append("BEGIN IMMEDIATE;")
    for name in STEP_ORDER:  # 2. plan and 3. merge, step after step
        if name not in policies:
            continue
        chosen = policies[name]
        table, pk, fields = kinds[name]
        keys = ", ".join(pk)
        on_ls = " AND ".join(f"l.{c} = s.{c}" for c in pk)
        differs = " OR ".join(f"l.{c} IS NOT s.{c}" for c in fields if c not in pk)
        w = f"w_{table}"
        out.append(f"CREATE TEMP TABLE {w} ({', '.join(f'{c} TEXT NOT NULL' for c in pk)}, action TEXT NOT NULL, "
                   f"PRIMARY KEY ({keys})) WITHOUT ROWID;")
        out.append(f"INSERT INTO {w} SELECT {', '.join('s.' + c for c in pk)}, 'insert' FROM s_{table} s "
                   f"WHERE NOT EXISTS (SELECT 1 FROM main.{table} l WHERE {on_ls}) AND NOT {_orphan(name, 's')};")
        if "overwrite-changed" in chosen:
            out.append(f"INSERT INTO {w} SELECT {', '.join('s.' + c for c in pk)}, 'update' FROM s_{table} s "
                       f"JOIN main.{table} l ON {on_ls} WHERE ({differs}) AND NOT ({_protected_changed(name)});")
        if "delete-extra" in chosen:
            out.append(f"INSERT INTO {w} SELECT {', '.join('l.' + c for c in pk)}, 'delete' FROM main.{table} l "
                       f"WHERE NOT EXISTS (SELECT 1 FROM s_{table} s WHERE {on_ls}) "
                       f"AND NOT ({_protected_extra(name)});")
        cols = ", ".join(fields)
        scols = ", ".join("s." + c for c in fields)
        on_ws = " AND ".join(f"w.{c} = s.{c}" for c in pk)
        updates = ", ".join(f"{c} = excluded.{c}" for c in fields if c not in pk)
        out.append(f"INSERT INTO main.{table} ({cols}) SELECT {scols} FROM {w} w JOIN s_{table} s ON {on_ws} "
                   f"WHERE w.action = 'insert';")
        if "overwrite-changed" in chosen:
            out.append(f"INSERT INTO main.{table} ({cols}) SELECT {scols} FROM {w} w JOIN s_{table} s ON {on_ws} "
                       f"WHERE w.action = 'update' ON CONFLICT ({keys}) DO UPDATE SET {updates};")
        if "delete-extra" in chosen:
            out.append(f"DELETE FROM main.{table} WHERE ({keys}) IN (SELECT {keys} FROM {w} "
                       f"WHERE action = 'delete');")
    out.append("COMMIT;")
    for name in STEP_ORDER:  # 4. verify: read every written key again, compare, hash both sides
        if name not in policies:
            continue
        table, pk, fields = kinds[name]
        w = f"w_{table}"
        on_wl = " AND ".join(f"l.{c} = w.{c}" for c in pk)
        on_ws = " AND ".join(f"s.{c} = w.{c}" for c in pk)
        same = " AND ".join(f"l.{c} IS s.{c}" for c in fields)
        order = ", ".join(f"w.{c}" for c in pk)
        written = f"FROM {w} w JOIN {{}} WHERE w.action <> 'delete' ORDER BY {order}"
        # sha3_query hashes a statement's text with its results: both sides are hashed by one statement text,
        # over a view that is the live side first, then the snapshot's.
        out += ["CREATE TEMP VIEW side AS SELECT l.* " + written.format(f"main.{table} l ON {on_wl}") + ";",
                f"CREATE TEMP TABLE h_{table} AS SELECT sha3_query('SELECT * FROM side') AS live;",
                "DROP VIEW side;",
                "CREATE TEMP VIEW side AS SELECT s.* " + written.format(f"s_{table} s ON {on_ws}") + ";",
                f"SELECT '{name}', (SELECT count(*) FROM {w} WHERE action <> 'delete'), "
                f"(SELECT count(*) FROM {w} WHERE action = 'delete'), "
                f"(SELECT count(*) FROM {w} w JOIN s_{table} s ON {on_ws} LEFT JOIN main.{table} l ON {on_wl} "
                f"WHERE w.action <> 'delete' AND NOT coalesce({same}, 0)) "
                f"+ (SELECT count(*) FROM {w} w JOIN main.{table} l ON {on_wl} WHERE w.action = 'delete'), "
                f"(SELECT live FROM h_{table}) = sha3_query('SELECT * FROM side');",
                "DROP VIEW side;"]
    return "\n".join(out) + "\n"


# -- PostgreSQL: psql --------------------------------------------------------------------------------------


def psql_script(csvs: dict[str, Path], policies: dict[str, frozenset[str]]) -> str:
    """psql's input (``psql -X -q -A -t -F'|' -v ON_ERROR_STOP=1 URL -f script``): import with COPY (psql's
    \\copy, the client sending the file), merge with INSERT ... ON CONFLICT, verify.

    Its output: one line per kind, ``kind|written|deleted|unmet|hashes equal (t/f)``."""
    kinds = _kinds()
    out = ["SET client_min_messages = warning;"]
    for name in STEP_ORDER:  # 1. import: COPY into staging tables defined like live's
        table, pk, fields = kinds[name]
        out.append(f"CREATE TEMP TABLE s_{table} (LIKE {table} INCLUDING ALL);")
        # No field of the model is NULL: an empty CSV field is the empty string (a device's empty reason).
        out.append(f"\\copy s_{table} ({', '.join(fields)}) FROM '{csvs[table]}' WITH (FORMAT csv, HEADER true, "
                   f"FORCE_NOT_NULL ({', '.join(fields)}))")
        out.append(f"ANALYZE s_{table};")
    out.append("BEGIN;")
    for name in STEP_ORDER:  # 2.+3. plan and merge in one statement per policy; the written keys kept
        if name not in policies:
            continue
        chosen = policies[name]
        table, pk, fields = kinds[name]
        keys = ", ".join(pk)
        w = f"w_{table}"
        on_ls = " AND ".join(f"l.{c} = s.{c}" for c in pk)
        key_types = ", ".join(f'{c} text COLLATE "C"' for c in pk)
        out.append(f"CREATE TEMP TABLE {w} ({key_types}, action text NOT NULL, PRIMARY KEY ({keys}));")
        cols = ", ".join(fields)
        scols = ", ".join("s." + c for c in fields)
        # A missing device under an account live lacks is not inserted (a changed one is judged as changed).
        where = (f"WHERE NOT ({_orphan(name, 's', '')} AND NOT EXISTS (SELECT 1 FROM {table} l WHERE {on_ls})) "
                 if name == "device" else "")
        if "overwrite-changed" in chosen:
            # Missing rows inserted and changed rows overwritten in one statement: the conflict's WHERE holds
            # the guards (EXCLUDED is the snapshot's row, ``l`` the live one); an equal row is not written.
            updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in fields if c not in pk)
            differs = " OR ".join(f"l.{c} IS DISTINCT FROM EXCLUDED.{c}" for c in fields if c not in pk)
            guard = _protected_changed(name, "l", "EXCLUDED", "false")
            out.append(
                f"WITH done AS (INSERT INTO {table} AS l ({cols}) SELECT {scols} FROM s_{table} s {where}"
                f"ON CONFLICT ({keys}) DO UPDATE SET {updates} WHERE ({differs}) AND NOT ({guard}) "
                f"RETURNING {', '.join('l.' + c for c in pk)}, l.xmax = 0 AS fresh) "
                f"INSERT INTO {w} SELECT {keys}, CASE WHEN fresh THEN 'insert' ELSE 'update' END FROM done;")
        else:
            out.append(
                f"WITH done AS (INSERT INTO {table} ({cols}) SELECT {scols} FROM s_{table} s {where}"
                f"ON CONFLICT ({keys}) DO NOTHING RETURNING {keys}) "
                f"INSERT INTO {w} SELECT {keys}, 'insert' FROM done;")
        if "delete-extra" in chosen:
            out.append(
                f"WITH gone AS (DELETE FROM {table} l WHERE NOT EXISTS (SELECT 1 FROM s_{table} s WHERE {on_ls}) "
                f"AND NOT ({_protected_extra(name, 'false')}) RETURNING {', '.join('l.' + c for c in pk)}) "
                f"INSERT INTO {w} SELECT {keys}, 'delete' FROM gone;")
    out.append("COMMIT;")
    for name in STEP_ORDER:  # 4. verify: read every written key again, compare, hash both sides
        if name not in policies:
            continue
        table, pk, fields = kinds[name]
        w = f"w_{table}"
        on_wl = " AND ".join(f"l.{c} = w.{c}" for c in pk)
        on_ws = " AND ".join(f"s.{c} = w.{c}" for c in pk)
        order = ", ".join(f"w.{c}" for c in pk)
        row_l = "(" + ", ".join(f"l.{c}" for c in fields) + ")"
        row_s = "(" + ", ".join(f"s.{c}" for c in fields) + ")"
        kept = "w.action <> 'delete'"
        out.append(
            f"SELECT '{name}', count(*) FILTER (WHERE {kept}), count(*) FILTER (WHERE NOT {kept}), "
            f"count(*) FILTER (WHERE ({kept} AND {row_l} IS DISTINCT FROM {row_s}) "
            f"OR (NOT {kept} AND l.{pk[0]} IS NOT NULL)), "
            f"coalesce(sha256(string_agg(sha256(convert_to({row_l}::text, 'UTF8')), ''::bytea ORDER BY {order}) "
            f"FILTER (WHERE {kept})) = sha256(string_agg(sha256(convert_to({row_s}::text, 'UTF8')), ''::bytea "
            f"ORDER BY {order}) FILTER (WHERE {kept})), true) "
            f"FROM {w} w LEFT JOIN {table} l ON {on_wl} LEFT JOIN s_{table} s ON {on_ws};")
    return "\n".join(out) + "\n"


def parse_verification(text: str) -> dict[str, dict[str, int | bool]]:
    """The verification lines of either script: per kind, written, deleted, unmet and whether the hashes held."""
    result: dict[str, dict[str, int | bool]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        kind, written, deleted, unmet, equal = line.split("|")
        result[kind] = {"written": int(written), "deleted": int(deleted), "unmet": int(unmet),
                        "hashes_equal": equal in ("1", "t")}
    return result


def sqlite_argv(live: Path) -> list[str]:
    """The sqlite3 program on the live database, reading the script on stdin."""
    return ["sqlite3", "-bail", str(live)]


def psql_argv(url: str, script: Path) -> list[str]:
    """psql on the target, running the script, rows printed unaligned: ``a|b|c``."""
    return ["psql", "-X", "-q", "-A", "-t", "-F|", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", str(script)]
