"""Readiness check `recovery-key-post-quantum`: the newest signed snapshot is sealed to a hybrid key.

Only a manifest with a trusted signature is evidence of the key a snapshot is sealed to: a newer
unsigned manifest claiming a hybrid recipient changes nothing.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import bech32
import pyrage
import pytest

from enigm_recover.errors import NotReady
from enigm_recover.quorum.recipients import RecipientKind, recipient_kind
from enigm_recover.readiness.checks import check_readiness
from enigm_recover.readiness.post_quantum import POST_QUANTUM
from enigm_recover.readiness.report import render_prometheus
from enigm_recover.snapshot import signature
from enigm_recover.snapshot.manifest import new_snapshot_id
from enigm_recover.snapshot.signature import load_allowed_signers
from enigm_recover.snapshot.source import Listing, SnapshotEntry
from enigm_recover.sources.local import LocalFolderSource
from tests.conftest import DRILL_AT, Drill
from tests.helpers import read_manifest
from tests.test_readiness import check, readiness, seal_next

GAUGE = "enigm_recover_recovery_key_post_quantum"


def classic_recipient() -> str:
    """An X25519 recipient made by age's own Python binding, whatever kind the drill's key is."""
    return str(pyrage.x25519.Identity.generate().to_public())


def hybrid_recipient_string() -> str:
    """A string shaped like an ``age1pq1…`` recipient (Bech32, 1,216 bytes): the check reads only the kind."""
    return bech32.bech32_encode("age1pq", bech32.convertbits(os.urandom(1216), 8, 5, True))


def gauge(text: str) -> int | None:
    match = re.search(rf"^{GAUGE}{{[^}}]*}} (\d+)$", text, re.M)
    return None if match is None else int(match.group(1))


class WithExtraEntry(LocalFolderSource):
    """The drill's folder, listed with one more entry that only exists in memory (no payload)."""

    def __init__(self, folder: Path, extra: SnapshotEntry) -> None:
        super().__init__(folder)
        self.extra = extra

    def list(self) -> Listing:
        listing = super().list()
        return Listing([*listing.entries, self.extra], listing.rejected, listing.refused)


def newer_hybrid_entry(drill: Drill, *, signed: bool) -> SnapshotEntry:
    base = read_manifest(drill.snapshots, drill.latest)
    created = DRILL_AT + timedelta(hours=1)
    manifest = replace(base, id=new_snapshot_id(created, "feedbeef"), created_at=created, previous_id=None,
                       recipient=hybrid_recipient_string(), recipient_fingerprint="")
    data = manifest.to_toml()
    sig = signature.sign(data, signature.load_signing_key(drill.signing_key)) if signed else None
    return SnapshotEntry(manifest.id, data, sig, manifest=manifest)


def run_check(drill: Drill, extra: SnapshotEntry, tmp_path: Path):
    report = check_readiness(lambda _cache: WithExtraEntry(drill.snapshots, extra), str(drill.snapshots),
                             load_allowed_signers(drill.allowed_signers),
                             read_manifest(drill.snapshots, drill.latest).recipient_fingerprint,
                             scratch=tmp_path / "scratch")
    return report, report.check(POST_QUANTUM)


def test_the_newest_snapshot_sealed_to_a_classic_key_fails_naming_the_commands_that_fix_it(drill, cli,
                                                                                          tmp_path: Path) -> None:
    newest = seal_next(drill, tmp_path, recipient=classic_recipient())
    prom = tmp_path / "readiness.prom"
    code, result, err = readiness(cli, drill, "--prometheus", prom)
    assert code == NotReady.exit_code and POST_QUANTUM in result["failing"], err
    verdict = check(result, POST_QUANTUM)
    assert verdict["status"] == "fail"
    (problem,) = verdict["problems"]
    assert problem.startswith(f"the newest snapshot {newest} is sealed to a classic X25519 recovery key")
    assert "quantum computer later" in problem
    # The fix, as commands: a hybrid key made with the current quorum, then the history moved by its headers.
    assert "keys rotate --kind hybrid" in problem and "keys rewrap SOURCE --all --to NEW/recovery.pub" in problem
    assert problem.index("keys rotate") < problem.index("keys rewrap")
    assert "keys rotate --kind hybrid" in verdict["summary"] and "keys rewrap" in verdict["summary"]  # on the terminal
    assert verdict["evidence"][0].startswith(f"{newest}: sealed to SHA256:")
    assert verdict["evidence"][0].endswith(", classic X25519")
    assert gauge(prom.read_text()) == 0
    assert f"enigm_recover_readiness_check_ok{{source=\"{drill.snapshots}\",check=\"{POST_QUANTUM}\"}} 0" \
        in prom.read_text()


@pytest.mark.parametrize("which", ["drill", "classic_drill"])
def test_the_drill_s_verdict_and_gauge_follow_the_kind_of_its_key(which: str, request: pytest.FixtureRequest, cli,
                                                                  tmp_path: Path) -> None:
    """Correct either way: a drill made with a hybrid key (the default) is ready, one made with a classic key
    fails this check alone."""
    drill = request.getfixturevalue(which)
    kind = recipient_kind(read_manifest(drill.snapshots, drill.latest).recipient)
    assert kind is (RecipientKind.HYBRID if which == "drill" else RecipientKind.X25519)
    prom = tmp_path / "readiness.prom"
    code, result, err = readiness(cli, drill, "--prometheus", prom)
    verdict = check(result, POST_QUANTUM)
    assert verdict["ok"] is kind.post_quantum, verdict
    assert gauge(prom.read_text()) == int(kind.post_quantum)
    assert len(verdict["evidence"]) == len(drill.doc["snapshots"]["ids"])
    others = [c for c in result["failing"] if c != POST_QUANTUM]
    assert others == [] and code == (0 if kind.post_quantum else NotReady.exit_code), err


def test_a_signed_manifest_naming_a_hybrid_recipient_passes_and_sets_the_gauge(drill, tmp_path: Path) -> None:
    extra = newer_hybrid_entry(drill, signed=True)
    report, verdict = run_check(drill, extra, tmp_path)
    assert next(s for s in report.snapshots if s.id == extra.id).signature == "trusted"
    assert verdict.ok is True, verdict
    assert verdict.summary.startswith(f"the newest snapshot {extra.id} is sealed to a hybrid post-quantum "
                                      "(ML-KEM-768 + X25519) recovery key (age mlkem768x25519)")
    classic_before = [i for i in drill.doc["snapshots"]["ids"]
                      if recipient_kind(read_manifest(drill.snapshots, i).recipient) is RecipientKind.X25519]
    if classic_before:  # still listed, with the command that moves them
        assert f"{len(classic_before)} older snapshot(s) still sealed to a classic key" in verdict.summary
        assert "keys rewrap" in verdict.summary
    assert gauge(render_prometheus(report)) == 1


def test_a_newer_unsigned_manifest_claiming_a_hybrid_key_does_not_pass(drill, tmp_path: Path) -> None:
    classic = seal_next(drill, tmp_path, recipient=classic_recipient())
    extra = newer_hybrid_entry(drill, signed=False)
    assert extra.id > classic
    report, verdict = run_check(drill, extra, tmp_path)
    assert verdict.ok is False
    assert verdict.problems[0].startswith(f"the newest snapshot {classic} is sealed to a classic X25519")
    assert not any(e.startswith(extra.id) for e in verdict.evidence)  # what it claims is not evidence
    assert gauge(render_prometheus(report)) == 0
