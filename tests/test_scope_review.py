"""`snapshots scope`: kinds, fields and counts per signed manifest, what changed, and findings."""

from __future__ import annotations

import json
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Callable

import tomli_w

from enigm_recover.errors import ScopeError
from enigm_recover.snapshot.manifest import new_snapshot_id, payload_name
from enigm_recover.snapshot.scope import ALLOWED_FIELDS
from tests.conftest import DRILL_AT, Drill
from tests.helpers import manifest_path, sign_as_producer
from tests.test_readiness import seal_next


def scope(cli, drill: Drill, *extra: str | Path, ids: tuple[str, ...] = ()):
    return cli("snapshots", "scope", drill.snapshots, *ids, "--allowed-signers", drill.allowed_signers, *extra)


def signed_variant(drill: Drill, base_id: str, hours: int, edit: Callable[[dict], None]) -> str:
    """A manifest derived from ``base_id``'s, edited, and signed with the drill's producer key (a producer
    that sealed a changed scope)."""
    doc = tomllib.loads(manifest_path(drill.snapshots, base_id).read_text())
    created = DRILL_AT + timedelta(hours=hours)
    new_id = new_snapshot_id(created)
    doc.update(id=new_id, created_at=created, previous_id=base_id)
    doc["payload"]["file"] = payload_name(new_id)
    edit(doc)
    sign_as_producer(drill.snapshots, new_id, tomli_w.dumps(doc).encode(), drill.signing_key)
    return new_id


def test_a_count_jump_between_two_sealed_snapshots_is_reported(drill, cli, tmp_path: Path) -> None:
    before = drill.latest
    after = seal_next(drill, tmp_path, keep_devices=10)
    code, out, err = scope(cli, drill, "--json")
    assert code == 0, err
    review = json.loads(out)
    ids = [s["id"] for s in review["snapshots"]]
    assert ids == [*drill.doc["snapshots"]["ids"], after]
    newest = review["snapshots"][-1]
    assert newest["scope"]["device"] == {"fields": list(ALLOWED_FIELDS["device"]), "count": 10}
    jumps = [c for c in review["changes"] if c["to"] == after]
    assert [(c["change"], c["kind"], c["from"]) for c in jumps] == [("count-jump", "device", before)]
    assert "-> 10 (" in jumps[0]["detail"] and review["findings"] == []
    # a higher threshold than the drop names nothing
    code, out, err = scope(cli, drill, "--json", "--threshold", "99.9", ids=(before, after[:12]))
    assert code == 0, err
    assert json.loads(out)["changes"] == [] and len(json.loads(out)["snapshots"]) == 2


def test_kinds_and_fields_entering_or_leaving_the_scope_are_reported(drill, cli, tmp_path: Path) -> None:
    base = drill.latest

    def without_roles(doc: dict) -> None:
        del doc["scope"]["role"]

    def with_a_new_field(doc: dict) -> None:
        doc["scope"]["device"]["fields"].append("last_location")
        doc["scope"]["message"] = {"fields": ["body"], "count": 3, "sha256": "0" * 64}

    narrower = signed_variant(drill, base, 1, without_roles)
    wider = signed_variant(drill, narrower, 2, with_a_new_field)
    code, out, err = scope(cli, drill, "--json")
    assert code == ScopeError.exit_code, err
    review = json.loads(out)
    changes = {(c["to"], c["change"], c["kind"]) for c in review["changes"]}
    assert (narrower, "kind-removed", "role") in changes
    assert (wider, "kind-added", "role") not in changes  # still absent
    assert (wider, "field-added", "device") in changes and (wider, "kind-added", "message") in changes
    assert sorted(review["findings"]) == sorted([f"{wider}: field device.last_location is outside the allow-list",
                                                 f"{wider}: kind message is outside the allow-list"])
    assert "2 finding(s) outside the allow-list" in err
    # the terminal form names the same, and exits with the scope error's code
    code, out, err = scope(cli, drill)
    assert code == ScopeError.exit_code and "kind role left the scope" in out and "Traceback" not in err


def test_the_markdown_page_says_what_is_kept_since_when_and_what_changed(drill, cli, tmp_path: Path) -> None:
    after = seal_next(drill, tmp_path, keep_devices=10)
    code, out, err = scope(cli, drill, "--markdown")
    assert code == 0, err
    assert out.startswith("# Recovery scope review\n")
    oldest = drill.doc["snapshots"]["ids"][0]
    assert "## What the tool may keep (the allow-list)" in out and "| device | " in out
    assert "### Environment drill" in out
    assert f"Kept since {oldest[:4]}-{oldest[4:6]}-{oldest[6:8]}T" in out
    assert f"- {after} (after {drill.latest}, drill): device" in out
    assert "## Findings\n\n- none" in out


def test_unsigned_manifests_are_not_reviewed_but_named(drill, cli) -> None:
    (drill.snapshots / f"{drill.latest}.manifest.toml.sig").unlink()
    code, out, err = scope(cli, drill, "--json")
    assert code == 0, err
    review = json.loads(out)
    assert drill.latest not in [s["id"] for s in review["snapshots"]]
    assert review["skipped"][0]["id"] == drill.latest and "signature missing" in review["skipped"][0]["reason"]


def test_names_from_a_manifest_cannot_shape_the_auditors_page(drill, cli) -> None:
    def hostile(doc: dict) -> None:
        doc["scope"]["[x](http://evil.example)|<b>"] = {"fields": ["a"], "count": 1, "sha256": "0" * 64}

    wider = signed_variant(drill, drill.latest, 1, hostile)
    code, out, err = scope(cli, drill, "--markdown")
    assert code == ScopeError.exit_code, err
    assert "](http" not in out.replace("\\](http", "") and "<b>" not in out
    assert f"- {wider}: kind \\[x\\]" in out
