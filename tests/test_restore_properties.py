"""Property-based: for random live/snapshot pairs, a restore under any policies reaches exactly the state
those policies promise (per an independent model), never breaks a safety rule, and the diff counts agree."""

from __future__ import annotations

import tempfile
from datetime import datetime, timezone
from pathlib import Path

import asyncssh
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enigm_recover.quorum.recovery_key import RecoveryIdentity
from enigm_recover.recovery.apply import Restorer
from enigm_recover.recovery.diff import diff
from enigm_recover.recovery.plan import make_plan
from enigm_recover.snapshot.catalog import resolve
from enigm_recover.snapshot.seal import seal
from enigm_recover.snapshot.signature import NAMESPACE
from enigm_recover.snapshot.verify import verify_entry
from enigm_recover.sources.local import LocalFolderSource
from enigm_recover.state.model import KINDS, Kind
from enigm_recover.state.sqlite_store import SQLiteStore
from tests.restore_oracle import by_key, diff_counts, expected_end_state, safety_holds

SNAPSHOT_AT = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
TIMES = ("2026-01-01T00:00:00Z", "2026-10-31T12:00:00Z", "2026-11-02T08:00:00Z")  # before, before, after
KEYS = ("A" * 43 + "=", "B" * 43 + "=", "C" * 43 + "=")
ACCOUNTS = tuple(f"acct_{i}" for i in range(5))

identity_row = st.builds(lambda h, k, v, s, t: (h, k, v, s, TIMES[0], t),
                         st.sampled_from(("ann", "bob")), st.sampled_from(KEYS), st.integers(1, 3),
                         st.sampled_from(("active", "suspended", "deleted")), st.sampled_from(TIMES))
device_row = st.builds(lambda a, k, s, t, r: (a, k, s, TIMES[0], t, r),
                       st.sampled_from(ACCOUNTS + ("acct_ghost",)), st.sampled_from(KEYS),
                       st.sampled_from(("pending", "active", "suspended", "revoked", "retired")),
                       st.sampled_from(TIMES), st.sampled_from(("", "lost")))
setting_row = st.builds(lambda v, t: (v, t), st.sampled_from(("true", "false", "12")), st.sampled_from(TIMES))
role_row = st.builds(lambda by, t: (by, t), st.sampled_from(("ops.a", "ops.b")), st.sampled_from(TIMES))


def side(keys: tuple, row_strategy: st.SearchStrategy) -> st.SearchStrategy:
    """Some of the keys, each with a row (the key's fields first)."""
    return st.dictionaries(st.sampled_from(keys), row_strategy, max_size=len(keys))


def rows(kind: Kind, drawn: dict) -> list[tuple]:
    out = []
    for key, rest in drawn.items():
        out.append((*key, *rest) if isinstance(key, tuple) else (key, *rest))
    return out


SIDES = {
    "identity": (ACCOUNTS, identity_row),
    "device": (tuple(f"dev_{i}" for i in range(8)), device_row),
    "setting": (("auth.mfa_required", "auth.session_max_age_hours"), setting_row),
    "role": ((("ops.a", "admin"), ("ops.b", "admin"), ("ops.b", "auditor")), role_row),
}
platform = st.fixed_dictionaries({name: side(*spec) for name, spec in SIDES.items()})
policy_choice = st.fixed_dictionaries({k.name: st.sets(st.sampled_from(("overwrite-changed", "delete-extra")))
                                       for k in KINDS})


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("keys")
    producer = asyncssh.generate_private_key("ssh-ed25519")
    allowed = asyncssh.import_allowed_signers(
        f'backup@prop namespaces="{NAMESPACE}" {producer.export_public_key().decode().strip()}\n')
    return RecoveryIdentity.generate(), producer, allowed, folder


def load(path: Path, drawn: dict) -> SQLiteStore:
    store = SQLiteStore(path, create=True)
    store.init_schema()
    with store.transaction():
        for kind in KINDS:
            store.insert_many(kind, rows(kind, drawn[kind.name]))
    return store


def sealed(keys, work: Path, snapshot: dict):  # type: ignore[no-untyped-def]
    """``snapshot`` sealed into ``work``/snaps, and verified."""
    identity, producer, allowed, _ = keys
    (work / "snaps").mkdir()
    with load(work / "snapshot.db", snapshot) as source_store:
        seal(source_store, recipient=identity.recipient, signing_key=producer, environment="prop",
             producer="backup@prop", out_dir=work / "snaps", existing=LocalFolderSource(work / "snaps").list(),
             created_at=SNAPSHOT_AT)
    folder = LocalFolderSource(work / "snaps")
    report, verified = verify_entry(folder, resolve(folder.list(), "latest"), allowed)
    assert verified is not None, report.as_dict()
    return verified


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(snapshot=platform, live=platform, policies=policy_choice)
def test_restore_reaches_the_promised_state_and_keeps_the_safety_rules(keys, snapshot, live, policies) -> None:
    identity = keys[0]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        verified = sealed(keys, work, snapshot)
        snapshot_state = by_key({k.name: rows(k, snapshot[k.name]) for k in KINDS})
        live_state = by_key({k.name: rows(k, live[k.name]) for k in KINDS})
        with load(work / "live.db", live) as store:
            result = diff(verified, identity, store)
            expected_counts = diff_counts(snapshot_state, live_state)
            for kind in KINDS:
                got = result.kinds[kind.name]
                assert (got.missing, got.extra, got.changed, got.unchanged) == tuple(
                    expected_counts[kind.name][c] for c in ("missing", "extra", "changed", "unchanged"))
            plan = make_plan([f"{k}={','.join(sorted(p))}" for k, p in policies.items() if p])
            outcome = Restorer(verified, store, plan, result, batch_size=2).run()
            assert all(step.status == "verified" for step in outcome.steps), outcome.as_dict()
            end = by_key({k.name: list(store.stream(k)) for k in KINDS})
        assert end == expected_end_state(snapshot_state, live_state, policies)
        assert safety_holds(live_state, end) == []


def _restored(verified, identity, path: Path, live: dict, plan, whole_runs: bool) -> tuple:
    """Restore into a fresh copy of ``live``: the outcome without its run id, the end state, and every step's
    journaled read-back records. Without ``whole_runs``, every batch is judged and verified record by record."""
    from contextlib import ExitStack
    from unittest import mock

    from enigm_recover.recovery.apply import _StepCheck
    from enigm_recover.state import sqlite_store

    with load(path, live) as store, ExitStack() as patches:
        result = diff(verified, identity, store)
        # Every batch's inserts through the staging table: a run read back whole is compared there.
        patches.enter_context(mock.patch.object(sqlite_store, "STAGE_MIN_ROWS", 1))
        if not whole_runs:
            patches.enter_context(mock.patch.object(Restorer, "_still_missing", return_value=False))
            patches.enter_context(mock.patch.object(_StepCheck, "_count_as_snapshot", return_value=False))
        outcome = Restorer(verified, store, plan, result, batch_size=3).run()
        journal = {step.step: list(store.written_rows(outcome.run_id, step.step)) for step in outcome.steps}
        end = by_key({k.name: list(store.stream(k)) for k in KINDS})
    done = outcome.as_dict()
    del done["run"]
    return done, end, journal


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(snapshot=platform, live=platform, policies=policy_choice)
def test_a_run_of_missing_records_restored_whole_is_restored_as_record_by_record(keys, snapshot, live,
                                                                                policies) -> None:
    """A batch of records all still missing is written and verified at once (one judgment, one comparison of
    the rows read back). It writes, journals and verifies exactly what judging each record does: the same
    outcome (counts, digests), end state and journal, for any platform and policies, live empty or not."""
    identity = keys[0]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        verified = sealed(keys, work, snapshot)
        plan = make_plan([f"{k}={','.join(sorted(p))}" for k, p in policies.items() if p])
        for live_side in (live, {k.name: {} for k in KINDS}):  # as drawn, and a total loss
            whole = _restored(verified, identity, work / "whole.db", live_side, plan, whole_runs=True)
            one_by_one = _restored(verified, identity, work / "one-by-one.db", live_side, plan, whole_runs=False)
            assert whole == one_by_one
            for path in work.glob("*.db*"):
                if path.name != "snapshot.db":
                    path.unlink()
