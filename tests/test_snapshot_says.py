"""Never act on what the snapshot does not say: its signed scope, the newest entry, its environment, and
manifests that are malformed in any way."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import pytest

from enigm_recover.errors import (
    EnvironmentMismatch,
    KindNotInSnapshot,
    ManifestError,
    SignatureError,
    SnapshotNotFound,
    SourceError,
)
from enigm_recover.snapshot.manifest import MAX_MANIFEST_BYTES, payload_name, signature_name
from enigm_recover.state.model import DEVICE, IDENTITY
from enigm_recover.state.stores import open_store
from tests.helpers import manifest_path, read_manifest, sign_as_producer, write_payload

CARDS = ("amara", "chen", "emeka")


def shares(drill) -> list:
    return sum((["--share-file", drill.card(n)] for n in CARDS), [])


def live_count(url: str, kind) -> int:
    with open_store(url) as store:
        return store.count(kind)


def one_line_error(err: str) -> None:
    assert "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith("enigm-recover: error:"), err


# -- a snapshot's signed scope --------------------------------------------------------------------------


def identities_only(drill, cli, tmp_path: Path) -> str:
    """Re-seal the newest snapshot as a signed snapshot of identities only (a subset scope the producer signed)."""
    out = tmp_path / "all.jsonl"
    code, _, err = cli("unseal", drill.snapshots, drill.latest, "--allowed-signers", drill.allowed_signers,
                       "--out", out, *shares(drill))
    assert code == 0, err
    lines = [ln for ln in out.read_bytes().splitlines(keepends=True) if json.loads(ln)["kind"] == IDENTITY.name]
    out.unlink()
    manifest = read_manifest(drill.snapshots, drill.latest)
    size, digest = write_payload(drill.snapshots, drill.latest, b"".join(lines), manifest.recipient)
    subset = dataclasses.replace(manifest, payload_size=size, payload_sha256=digest,
                                 scope={IDENTITY.name: manifest.scope[IDENTITY.name]})
    sign_as_producer(drill.snapshots, drill.latest, subset.to_toml(), drill.signing_key)
    return drill.latest


def test_delete_extra_on_a_kind_outside_the_signed_scope_deletes_nothing(drill, cli, tmp_path: Path) -> None:
    snapshot = identities_only(drill, cli, tmp_path)
    devices = live_count(drill.target, DEVICE)
    assert devices > 0
    base = ["restore", drill.snapshots, snapshot, "--target", drill.target, "--allowed-signers",
            drill.allowed_signers, *shares(drill), "--yes"]
    for extra in (["--step", "devices", "--policy", "device=delete-extra"],
                  ["--policy", "device=delete-extra"],
                  []):
        code, _, err = cli(*base, *extra)
        assert code == KindNotInSnapshot.exit_code, err
        assert "device" in err and "not in this snapshot" in err and snapshot in err, err
        one_line_error(err)
        assert live_count(drill.target, DEVICE) == devices
    # the kinds it holds restore as usual
    code, out, err = cli(*base, "--step", "identities", "--json")
    assert code == 0, err
    assert [s["step"] for s in json.loads(out)["steps"]] == ["identities"]
    assert live_count(drill.target, DEVICE) == devices


def test_the_dry_run_shows_a_kind_outside_the_scope_as_not_in_this_snapshot(drill, cli, tmp_path: Path) -> None:
    snapshot = identities_only(drill, cli, tmp_path)
    args = ["diff", drill.snapshots, snapshot, "--target", drill.target, "--allowed-signers", drill.allowed_signers,
            *shares(drill)]
    code, out, err = cli(*args, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["kinds"][DEVICE.name] == {"in_snapshot": False, "status": "not in this snapshot"}
    assert doc["kinds"][IDENTITY.name]["in_snapshot"] is True
    assert not [c for c in doc["changes"] if c["kind"] != IDENTITY.name]
    code, out, err = cli(*args)
    assert code == 0, err
    device_row = next(line for line in out.splitlines() if line.startswith("device"))
    assert "not in this snapshot" in device_row


def test_the_engine_refuses_a_plan_step_outside_the_scope_before_any_write(drill, cli, tmp_path: Path) -> None:
    from enigm_recover.recovery.apply import Restorer
    from enigm_recover.recovery.diff import DiffResult
    from enigm_recover.recovery.plan import make_plan
    from enigm_recover.snapshot.verify import VerifiedSnapshot

    snapshot = identities_only(drill, cli, tmp_path)
    manifest = read_manifest(drill.snapshots, snapshot)
    verified = VerifiedSnapshot(manifest, drill.snapshots / payload_name(snapshot))
    with open_store(drill.target) as store:
        restorer = Restorer(verified, store, make_plan(["device=delete-extra"], ["devices"]),
                            DiffResult(snapshot, "", store.display, {}, payload_sha256=manifest.payload_sha256))
        with pytest.raises(KindNotInSnapshot):
            restorer.run()
        assert store.unfinished_run() is None
    assert live_count(drill.target, DEVICE) > 0


# -- `latest` never falls back silently ------------------------------------------------------------------


def newer_id(drill) -> str:
    """An id a minute after the newest snapshot's."""
    from datetime import timedelta

    from enigm_recover.snapshot.manifest import new_snapshot_id

    created = read_manifest(drill.snapshots, drill.latest).created_at + timedelta(minutes=1)
    return new_snapshot_id(created, "0badc0de")


def copy_latest_as(drill, new_id: str) -> None:
    """A newer manifest and signature file (the signature is over the old bytes: it no longer matches)."""
    from datetime import datetime, timezone

    manifest = read_manifest(drill.snapshots, drill.latest)
    created = datetime.strptime(new_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    manifest_path(drill.snapshots, new_id).write_bytes(
        dataclasses.replace(manifest, id=new_id, created_at=created).to_toml())
    shutil.copy(drill.snapshots / signature_name(drill.latest), drill.snapshots / signature_name(new_id))


def _bad_name(drill, tmp_path) -> tuple[str, int]:
    name = newer_id(drill)[:16] + "-NOTANID.manifest.toml"
    (drill.snapshots / name).write_text("x")
    return name, SourceError.exit_code


def _dangling_link(drill, tmp_path) -> tuple[str, int]:
    new = newer_id(drill)
    os.symlink(drill.snapshots / "gone.toml", manifest_path(drill.snapshots, new))
    return new, SourceError.exit_code


def _malformed(drill, tmp_path) -> tuple[str, int]:
    new = newer_id(drill)
    manifest_path(drill.snapshots, new).write_text("format = [[[\n")
    return new, ManifestError.exit_code


def _deeply_nested(drill, tmp_path) -> tuple[str, int]:
    new = newer_id(drill)
    manifest_path(drill.snapshots, new).write_text("format = " + "[" * 5000 + "]" * 5000 + "\n")
    return new, ManifestError.exit_code


def _missing_signature(drill, tmp_path) -> tuple[str, int]:
    os.unlink(drill.snapshots / signature_name(drill.latest))
    return drill.latest, SignatureError.exit_code


def _broken_signature(drill, tmp_path) -> tuple[str, int]:
    new = newer_id(drill)
    copy_latest_as(drill, new)
    return new, SignatureError.exit_code


def _folder(drill, tmp_path) -> tuple[str, int]:
    new = newer_id(drill)
    manifest_path(drill.snapshots, new).mkdir()
    return new, SourceError.exit_code


def _signature_folder(drill, tmp_path) -> tuple[str, int]:
    new = newer_id(drill)
    copy_latest_as(drill, new)
    os.unlink(drill.snapshots / signature_name(new))
    (drill.snapshots / signature_name(new)).mkdir()
    return new, SourceError.exit_code


def _link_outside(drill, tmp_path) -> tuple[str, int]:
    new = newer_id(drill)
    outside = tmp_path / "elsewhere.toml"
    outside.write_text(manifest_path(drill.snapshots, drill.latest).read_text())
    os.symlink(outside, manifest_path(drill.snapshots, new))
    return new, SourceError.exit_code


REFUSALS = [_bad_name, _dangling_link, _malformed, _deeply_nested, _missing_signature, _broken_signature, _folder,
            _signature_folder, _link_outside]


@pytest.mark.parametrize("refuse", REFUSALS, ids=[f.__name__.strip("_") for f in REFUSALS])
def test_a_refused_newest_entry_stops_latest_and_an_older_id_still_works(drill, cli, tmp_path: Path,
                                                                         refuse) -> None:
    refused, exit_code = refuse(drill, tmp_path)
    older = [i for i in drill.doc["snapshots"]["ids"] if i != refused][-1]
    code, _, err = cli("verify", drill.snapshots, "latest", "--allowed-signers", drill.allowed_signers)
    assert code == exit_code, err
    one_line_error(err)
    assert refused in err and "latest" in err and "older" in err, err
    # the listing says so
    code, out, err = cli("snapshots", "list", drill.snapshots, "--allowed-signers", drill.allowed_signers, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["latest"]["id"] is None and refused in doc["latest"]["refused"], doc["latest"]
    code, out, err = cli("snapshots", "list", drill.snapshots, "--allowed-signers", drill.allowed_signers)
    assert code == 0 and "latest" in out and refused in out, out
    # naming an older snapshot's id explicitly works
    code, _, err = cli("verify", drill.snapshots, older, "--allowed-signers", drill.allowed_signers)
    assert code == 0, err


def test_a_prefix_matching_a_refused_entry_is_reported_not_skipped(drill, cli, tmp_path: Path) -> None:
    new = newer_id(drill)
    manifest_path(drill.snapshots, new).mkdir()
    code, _, err = cli("verify", drill.snapshots, new[:20], "--allowed-signers", drill.allowed_signers)
    assert code == SourceError.exit_code and new in err, err
    code, _, err = cli("verify", drill.snapshots, drill.latest[:12], "--allowed-signers", drill.allowed_signers)
    assert code == SnapshotNotFound.exit_code and "matches 2" in err, err


def test_run_select_snapshot_does_not_choose_an_older_snapshot(drill, cli, tmp_path: Path) -> None:
    from enigm_recover.runbook.executor import Confirmation, RunbookExecutor, RunSettings
    from enigm_recover.runbook.loader import find_runbook, runbook_folders

    _broken_signature(drill, tmp_path)
    settings = RunSettings(source=str(drill.snapshots), target=drill.target, allowed_signers=drill.allowed_signers,
                           state_dir=tmp_path / "state", cache_dir=tmp_path / "cache", operator="dana")
    ex = RunbookExecutor.start(find_runbook("identity-and-devices", runbook_folders()), settings)
    ex.run_current(Confirmation("dana"))  # the checkpoint declaring the recovery
    with pytest.raises(SignatureError):
        ex.run_current(Confirmation("dana", snapshot="latest"))
    assert ex.state.snapshot == ""


# -- environments -------------------------------------------------------------------------------------


def seal_other_environment(drill, tmp_path: Path, environment: str = "staging") -> str:
    from datetime import timedelta

    from enigm_recover.snapshot.seal import read_recipient_file, seal
    from enigm_recover.snapshot.signature import load_signing_key
    from enigm_recover.sources.local import LocalFolderSource

    created = read_manifest(drill.snapshots, drill.latest).created_at + timedelta(minutes=5)
    with open_store(drill.target) as store:
        return seal(store, recipient=read_recipient_file(drill.recipient),
                    signing_key=load_signing_key(drill.signing_key), environment=environment,
                    producer="backup@drill", out_dir=drill.snapshots,
                    existing=LocalFolderSource(drill.snapshots).list(), created_at=created).id


def test_latest_can_be_limited_to_one_environment(drill, cli, tmp_path: Path) -> None:
    staging = seal_other_environment(drill, tmp_path)
    verify = ["verify", drill.snapshots, "latest", "--allowed-signers", drill.allowed_signers, "--json"]
    code, out, err = cli(*verify)
    assert code == 0 and json.loads(out)["snapshot"] == staging, err
    code, out, err = cli(*verify, "--environment", "drill")
    assert code == 0 and json.loads(out)["snapshot"] == drill.latest, err
    code, out, err = cli(*verify, "--environment", "prod")
    assert code == SnapshotNotFound.exit_code and "prod" in err, err
    code, out, err = cli("snapshots", "list", drill.snapshots, "--allowed-signers", drill.allowed_signers,
                         "--environment", "drill", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert {s["environment"] for s in doc["snapshots"]} == {"drill"} and doc["latest"]["id"] == drill.latest


def test_a_restore_into_a_target_of_another_environment_is_refused_unless_allowed(drill, cli,
                                                                                 tmp_path: Path) -> None:
    from tests.helpers import dump

    before = dump(drill.target)
    base = ["restore", drill.snapshots, drill.latest, "--target", drill.target, "--allowed-signers",
            drill.allowed_signers, *shares(drill), "--yes"]
    code, _, err = cli(*base, "--target-environment", "prod")
    assert code == EnvironmentMismatch.exit_code, err
    assert "drill" in err and "prod" in err and "--allow-environment-mismatch" in err, err
    one_line_error(err)
    assert dump(drill.target) == before
    # the configured target and its environment are bound together
    assert cli("config", "set", "target", drill.target)[0] == 0
    assert cli("config", "set", "target_environment", "prod")[0] == 0
    code, _, err = cli("restore", drill.snapshots, drill.latest, "--allowed-signers", drill.allowed_signers,
                       *shares(drill), "--yes")
    assert code == EnvironmentMismatch.exit_code, err
    assert dump(drill.target) == before
    code, out, err = cli("restore", drill.snapshots, drill.latest, "--allowed-signers", drill.allowed_signers,
                         *shares(drill), "--yes", "--allow-environment-mismatch", "--json")
    assert code == 0, err
    audit = Path(json.loads(out)["recovery"]["audit_log"]).read_text()
    entry = next(json.loads(line) for line in audit.splitlines() if "environment-mismatch-allowed" in line)
    assert entry["inputs"]["snapshot_environment"] == "drill" and entry["inputs"]["target_environment"] == "prod"
    # the matching environment needs no override
    code, _, err = cli(*base, "--target-environment", "drill")
    assert code == 0, err


# -- malformed manifests: refused for that entry alone ----------------------------------------------


MALFORMED = {
    "deeply-nested": "format = " + "[" * 5000 + "]" * 5000 + "\n",
    "deep-tables": "x = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n",
    "wrong-types": 'format = "enigm-snapshot/1"\nid = 5\nscope = "everything"\n',
    "huge": "# " + "x" * (200 * 1024) + "\n",
}


@pytest.mark.parametrize("text", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_manifest_is_refused_for_that_entry_alone(drill, cli, tmp_path: Path, text: str) -> None:
    bad = "20261101T000000Z-0badf00d"  # older than the good ones: only the entry itself is affected
    manifest_path(drill.snapshots, bad).write_text(text)
    code, out, err = cli("snapshots", "list", drill.snapshots, "--allowed-signers", drill.allowed_signers, "--json")
    assert code == 0, err
    listed = json.loads(out)
    rows = {s["id"]: s for s in listed["snapshots"]}
    too_large_to_read = len(text) > MAX_MANIFEST_BYTES  # refused by the bounded reader, before it is parsed
    if too_large_to_read:
        assert bad not in rows and any(bad in json.dumps(r) for r in listed["refused"]), listed["refused"]
    else:
        assert rows[bad]["status"] == "refused" and rows[bad]["refusal"], rows[bad]
    assert rows[drill.latest]["status"] == "ok"
    code, out, err = cli("snapshots", "list", drill.snapshots, "--allowed-signers", drill.allowed_signers)
    assert code == 0 and bad in out + err, err  # a refused file is reported on stderr
    for ref in ("latest", drill.latest):
        code, _, err = cli("verify", drill.snapshots, ref, "--allowed-signers", drill.allowed_signers)
        assert code == 0, err
    code, _, err = cli("verify", drill.snapshots, bad, "--allowed-signers", drill.allowed_signers)
    assert code == (SourceError.exit_code if too_large_to_read else ManifestError.exit_code), err
    one_line_error(err)
    code, out, err = cli("readiness", drill.snapshots, "--allowed-signers", drill.allowed_signers, "--recipient",
                         drill.recipient, "--max-age", "3650d", "--json")
    assert code == 40, err
    manifests = next(c for c in json.loads(out)["checks"] if c["name"] == "manifests")
    assert manifests["ok"] is False and any(bad in p for p in manifests["problems"]), manifests


# -- the same rules when a runbook is run ---------------------------------------------------------------


def run_device_lifecycle(cli, drill, state: Path, *extra) -> tuple[int, str, str]:
    return cli("--state-dir", state, "run", "device-lifecycle", "--source", drill.snapshots, "--target",
               drill.target, "--allowed-signers", drill.allowed_signers, *shares(drill), "--operator", "dana",
               "--second-operator", "lee", "--yes", "--snapshot", drill.latest, *extra)


def test_a_runbook_restore_outside_the_scope_or_environment_is_refused(drill, cli, tmp_path: Path) -> None:
    from tests.helpers import dump

    before = dump(drill.target)
    code, _, err = run_device_lifecycle(cli, drill, tmp_path / "s1", "--target-environment", "prod")
    assert code == EnvironmentMismatch.exit_code, err
    assert dump(drill.target) == before
    code, _, err = run_device_lifecycle(cli, drill, tmp_path / "s2", "--target-environment", "prod",
                                        "--allow-environment-mismatch")
    assert code == 0, err
    assert dump(drill.target) != before


def test_a_runbook_restore_of_a_kind_the_snapshot_lacks_is_refused(drill, cli, tmp_path: Path) -> None:
    from tests.helpers import dump

    identities_only(drill, cli, tmp_path)
    before = dump(drill.target)
    code, out, err = run_device_lifecycle(cli, drill, tmp_path / "s1")
    assert code == KindNotInSnapshot.exit_code, err
    assert "not in this snapshot" in err
    assert dump(drill.target) == before


def test_the_target_environment_comes_from_where_the_target_comes_from(drill, cli, monkeypatch) -> None:
    from enigm_recover.cli.commands_app import app_options
    from enigm_recover.cli.context import Context
    from enigm_recover.cli.parser import build_parser

    assert cli("config", "set", "target", drill.target)[0] == 0
    assert cli("config", "set", "target_environment", "prod")[0] == 0

    def options(target: str | None):
        ctx = Context(build_parser().parse_args(["app"]))
        return app_options(ctx, source=None, target=target, allowed_signers=None, runbook=None, operator="dana")

    assert options(None).target_environment == "prod"  # the configured target: its configured environment
    assert options("sqlite:///elsewhere.db").target_environment is None  # another target: not that one's
    monkeypatch.setenv("ENIGM_RECOVER_TARGET", "sqlite:///env.db")
    monkeypatch.setenv("ENIGM_RECOVER_TARGET_ENVIRONMENT", "staging")
    assert options(None).target_environment == "staging"
