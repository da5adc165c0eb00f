"""docs/FORMAT.md section 9.1: recovering a snapshot sealed to a hybrid post-quantum key by hand.

SLIP-39 combine (the reference library, shamir-mnemonic) -> the document's converter with ``pq`` ->
``AGE-SECRET-KEY-PQ-1...`` -> the npm age-encryption implementation (the document's ``age-js.mjs``) or
age 1.3 or newer -> zstd. The blocks are read from FORMAT.md itself and run in one bash, with no
enigm-recover code in the recovery path; enigm-recover's own unseal is used only to compare.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.test_format_by_hand import KINDS, doc_age_identity, doc_blocks, manifest_doc, run_procedure, \
    unseal_with_cli
from enigm_recover.quorum.recipients import RecipientKind
from enigm_recover.quorum.recovery_key import RecoveryIdentity

pytestmark = pytest.mark.tools


@pytest.fixture
def agejs_folder(age_js, tmp_path: Path) -> Path:
    """The document's age-js.mjs in a folder where age-encryption is installed (the tests' pinned copy)."""
    folder = tmp_path / "agejs"
    folder.mkdir()
    (folder / "node_modules").symlink_to(age_js.script.parent / "node_modules")
    (folder / "age-js.mjs").write_text(doc_blocks()["age-js.mjs"])
    return folder


def test_the_documented_converter_makes_hybrid_identities() -> None:
    age_identity = doc_age_identity()
    for secret in (bytes(32), b"\xff" * 32, bytes(range(32))):
        expected = RecoveryIdentity(secret, RecipientKind.HYBRID).age_identity_string()
        assert age_identity(secret, "age-secret-key-pq-") == expected
        assert expected.startswith("AGE-SECRET-KEY-PQ-1")


def test_the_documented_hybrid_procedure_recovers_the_snapshot(drill, cli, agejs_folder: Path,
                                                               tmp_path: Path, monkeypatch) -> None:
    assert manifest_doc(drill)["recovery"]["recipient"].startswith("age1pq1")
    monkeypatch.setenv("AGEJS", str(agejs_folder))
    steps = ["verify-signature", "check-payload", "combine-cards-pq", "check-key-js", "decrypt-js", "check-records"]
    result, work = run_procedure(drill, tmp_path, steps)
    out = result.stdout.decode()
    assert result.returncode == 0, out + result.stderr.decode()
    assert "MISMATCH" not in out
    oks = [line.split(None, 1)[1] for line in out.splitlines() if line.startswith("ok ")]
    assert oks == (["payload size", "payload sha256", "recovery key", "recovery key fingerprint"]
                   + [f"{k} {what}" for k in KINDS for what in ("count", "sha256")]
                   + ["kinds grouped in order, no other lines"])
    assert (work / "records.jsonl").read_bytes() == unseal_with_cli(cli, drill, tmp_path / "unsealed.jsonl")


def test_the_documented_hybrid_procedure_with_the_real_age(drill, cli, tmp_path: Path) -> None:
    version = subprocess.run(["age", "--version"], capture_output=True, text=True).stdout if shutil.which("age") else ""
    numbers = tuple(int(n) for n in re.findall(r"\d+", version)[:2])
    if not numbers or numbers < (1, 3):
        pytest.skip(f"the real age here is {version.strip() or 'missing'}: hybrid identities need age 1.3 or newer "
                    "(Debian's is older); the npm implementation covers this procedure above")
    steps = ["verify-signature", "check-payload", "combine-cards-pq", "check-key", "decrypt", "check-records"]
    result, work = run_procedure(drill, tmp_path, steps)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert (work / "records.jsonl").read_bytes() == unseal_with_cli(cli, drill, tmp_path / "unsealed.jsonl")
