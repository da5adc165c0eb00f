"""One readiness run as every face makes it (the ``readiness`` command, the app's readiness view).

The expected key and its life are read from ``recovery.pub``; the checks run; each verdict and the report
files (readiness.toml, readiness.md beside the run's audit log) go into the run's audit log; the verdict
goes to the Prometheus textfile when one is asked for, even when the run stops before checking, so
monitoring never goes blind. Faces only choose the settings and show the outcome.
"""

from __future__ import annotations

import getpass
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from enigm_recover.errors import EnigmError
from enigm_recover.paths import display_path
from enigm_recover.progress import ProgressCallback, no_progress
from enigm_recover.readiness.checks import ReadinessReport, Unlock, check_readiness, stopped_before_checking
from enigm_recover.readiness.lifecycle import KeyLife
from enigm_recover.readiness.policy import ReadinessPolicy
from enigm_recover.recovery.pipeline import ShareSource
from enigm_recover.recovery.session import Recovery
from enigm_recover.snapshot.source import SnapshotSource

COMMAND = "readiness"  # the command its recovery folder and audit log are opened for


@dataclass
class ReadinessRun:
    """What one run checks, and where it writes. The trust files are read inside the run (the callables),
    so a missing or unreadable one still writes the "not ready" textfile for monitoring."""

    source: str  # the source as given (a folder, file:// or sftp:// URL)
    open_source: Callable[[Path], SnapshotSource]  # (this run's own cache folder) -> the opened source
    allowed_signers: Callable[[], Any]  # -> asyncssh.SSHAllowedSigners
    recipient: Callable[[], Path]  # -> the expected recovery.pub
    state_dir: Path  # the quorum tests of the expected key are read from here
    cache_dir: Path  # the run's scratch folder is made in here
    policy: ReadinessPolicy = ReadinessPolicy()
    prometheus: Path | None = None  # the node_exporter textfile to write the verdict to
    now: datetime | None = None  # the time the ages are measured from (tests and drills); None: the clock


@dataclass
class ReadinessOutcome:
    report: ReadinessReport
    files: dict[str, str]  # the report files and their SHA-256 (write_report's keys)
    recovery: Recovery  # closed; its folder holds audit.jsonl and the report files


def key_life(state_dir: Path, recipient_path: Path) -> KeyLife:
    """The expected key's life for readiness: its latest quorum test here, and the keyring's retired keys."""
    from enigm_recover.quorum.keyring import read_recipient, retired_fingerprints
    from enigm_recover.recovery.quorum_test import latest_quorum_test

    recipient = read_recipient(recipient_path)
    test, notes = latest_quorum_test(state_dir, recipient.fingerprint)
    return KeyLife(test, notes, retired_fingerprints(recipient_path), recipient.retired)


def opened_recovery(state_dir: Path, operator: str | None, signer: Any = None,
                    ceremony: str | None = None) -> AbstractContextManager[Recovery]:
    """The run's recovery (ceremony, audit log); an error closes it as aborted, naming the cause."""
    return Recovery.opened(state_dir, COMMAND, operator or getpass.getuser(), signer=signer, ceremony=ceremony)


def run_readiness(run: ReadinessRun, open_recovery: Callable[[], AbstractContextManager[Recovery]], *,
                  progress: ProgressCallback = no_progress, shares: ShareSource | None = None) -> ReadinessOutcome:
    """Run every check (with ``shares``, also the test restore), record each verdict and the report files
    in the run's audit log, and close the run: ``completed``, ready or naming the failing checks."""
    from enigm_recover.quorum.recovery_key import recipient_fingerprint
    from enigm_recover.readiness.report import write_prometheus
    from enigm_recover.snapshot.seal import read_recipient_file

    told = False  # whether monitoring has this run's textfile
    try:
        allowed = run.allowed_signers()
        recipient_path = run.recipient()
        expected = recipient_fingerprint(read_recipient_file(recipient_path))
        life = key_life(run.state_dir, recipient_path)
        with open_recovery() as recovery:
            unlock = Unlock(recovery, shares) if shares is not None else None
            report = check_readiness(run.open_source, run.source, allowed, expected, run.policy,
                                     scratch=run.cache_dir / "readiness", now=run.now, progress=progress,
                                     unlock=unlock, life=life)
            files = record_readiness(recovery, report)
            if run.prometheus is not None:
                write_prometheus(report, run.prometheus)
                told = True
            recovery.close("completed",
                           "ready" if report.ready else f"not ready: {', '.join(report.failing)} failed")
    except EnigmError as exc:  # whatever stopped the run, monitoring must not go blind
        if run.prometheus is not None and not told:
            write_prometheus(stopped_before_checking(run.source, run.policy, exc), run.prometheus)
        raise
    return ReadinessOutcome(report, files, recovery)


def record_readiness(recovery: Recovery, report: ReadinessReport) -> dict[str, str]:
    """Each check's verdict into the audit log, then the report files beside it, named with their SHA-256."""
    from enigm_recover.readiness.report import write_report

    for check in report.checks:
        recovery.record("readiness-check", step=check.name, outcome=check.status, inputs={"summary": check.summary})
    context = {"ceremony": recovery.ceremony, "operator": recovery.operator,
               "audit_log": display_path(recovery.folder / "audit.jsonl")}
    files = write_report(report, recovery.folder, context)
    recovery.record("readiness-report", outcome="ready" if report.ready else "not-ready",
                    inputs={"report": Path(files["toml"]).name, "sha256": files["sha256"],
                            "markdown": Path(files["markdown"]).name, "markdown_sha256": files["markdown_sha256"],
                            "failing": report.failing})
    return files
