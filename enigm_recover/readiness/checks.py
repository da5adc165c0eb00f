"""The readiness checks: would the snapshots in a source restore today?

Each check returns a verdict and its evidence (one line per snapshot or link it looked at), so an
auditor can see why it passed as well as why it failed:

- ``source``: the source opens and lists (a local folder, or SFTP with strict host keys);
- ``manifests``: there are snapshots, every manifest is readable, and no file name was refused;
- ``freshness``: the newest *usable* snapshot (trusted signature, expected recovery key, payload
  intact) is younger than the policy's maximum age, and not from the future;
- ``signatures``: every manifest is signed by a principal trusted in allowed_signers for its producer;
- ``recipient``: every manifest names the expected recovery recipient;
- ``payloads``: every signed payload is present and matches its signed size and SHA-256 (downloaded
  into the cache and hashed; no shares needed);
- ``scope``: every manifest's scope is the allow-list: all four kinds, exactly their allowed fields;
- ``chain``: each snapshot names the one before it in the same environment as its previous id;
- ``counts``: identities and devices do not drop by more than the policy allows between two
  consecutive snapshots;
- ``recovery-key-post-quantum``: the newest signed snapshot is sealed to a hybrid post-quantum key;
- ``test-restore`` (on request, with the custodians' shares): the newest snapshot is unsealed,
  restored into a scratch SQLite target, read back, counted and hashed against its signed manifest,
  and the scratch target is deleted.

Nothing here prints or asks: the caller supplies a progress callback and, for the test restore,
a callback that combines the custodians' shares.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import asyncssh

from enigm_recover.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    EnigmError,
    HostKeyChanged,
    HostKeyUnknown,
    InterruptedByUser,
    ScopeError,
    ShareError,
    WrongRecoveryKey,
)
from enigm_recover.private import make_private_dir
from enigm_recover.paths import display_text
from enigm_recover.progress import ProgressCallback, no_progress
from enigm_recover.recovery.pipeline import RecoveryPipeline, ShareSource
from enigm_recover.recovery.session import Recovery
from enigm_recover.readiness.lifecycle import DESCRIPTIONS as LIFE_DESCRIPTIONS
from enigm_recover.readiness.lifecycle import KEYS, QUORUM_TEST, KeyLife, check_keys, check_quorum_test
from enigm_recover.readiness.post_quantum import DESCRIPTION as POST_QUANTUM_DESCRIPTION
from enigm_recover.readiness.post_quantum import POST_QUANTUM, check_post_quantum
from enigm_recover.readiness.policy import DROP_KINDS, ReadinessPolicy, format_duration
from enigm_recover.readiness.retention_check import DESCRIPTION as RETENTION_DESCRIPTION
from enigm_recover.readiness.retention_check import RETENTION, check_retention, retention_figures
from enigm_recover.readiness.result import CheckResult, SnapshotFacts, hours
from enigm_recover.snapshot.catalog import chronological, newest_first
from enigm_recover.snapshot.listing import SnapshotSummary, summarize
from enigm_recover.snapshot.manifest import Manifest
from enigm_recover.snapshot.scope import ALLOWED_FIELDS, check_manifest_scope
from enigm_recover.snapshot.signature import SignatureStatus
from enigm_recover.snapshot.verify import VerifiedSnapshot, verify_entry
from enigm_recover.snapshot.source import Listing, SnapshotEntry, SnapshotSource, transport_of
from enigm_recover.snapshot.timeform import utc_iso

SOURCE = "source"
MANIFESTS = "manifests"
FRESHNESS = "freshness"
SIGNATURES = "signatures"
RECIPIENT = "recipient"
PAYLOADS = "payloads"
SCOPE = "scope"
CHAIN = "chain"
COUNTS = "counts"
TEST_RESTORE = "test-restore"
CHECKS = (SOURCE, MANIFESTS, FRESHNESS, SIGNATURES, RECIPIENT, PAYLOADS, SCOPE, CHAIN, COUNTS, KEYS, POST_QUANTUM,
          QUORUM_TEST, TEST_RESTORE)

DESCRIPTIONS = {
    SOURCE: "the snapshot source opens and lists (SFTP with strict host keys, or a local folder)",
    MANIFESTS: "the source holds snapshots, every manifest is readable, and no file name was refused",
    FRESHNESS: "the newest usable snapshot is younger than the policy's maximum age",
    SIGNATURES: "every manifest is signed by a principal trusted in allowed_signers for its producer",
    RECIPIENT: "every snapshot is sealed to the expected recovery recipient",
    PAYLOADS: "every signed payload is present and matches its signed size and SHA-256",
    SCOPE: "every manifest's scope is the allow-list: all four kinds, exactly their allowed fields",
    CHAIN: "each snapshot names the one before it as its previous snapshot: no gaps",
    COUNTS: "identities and devices do not drop suddenly between consecutive snapshots",
    TEST_RESTORE: "the newest snapshot unseals and restores into a scratch target whose counts and canonical "
                  "hashes equal its signed manifest",
    **LIFE_DESCRIPTIONS,
    POST_QUANTUM: POST_QUANTUM_DESCRIPTION,
    RETENTION: RETENTION_DESCRIPTION,  # only when a retention policy is given
}

# A source that cannot be reached keeps its own error (and exit code); it is not a readiness verdict.
SOURCE_UNUSABLE = (ConnectionFailed, HostKeyUnknown, HostKeyChanged, AuthenticationFailed)



@dataclass
class Unlock:
    """What a test restore needs from its face: the recovery (ceremony, audit log) and the shares."""

    recovery: Recovery
    shares: ShareSource


@dataclass
class ReadinessReport:
    source: str
    checked_at: datetime
    policy: ReadinessPolicy
    recipient_fingerprint: str
    checks: list[CheckResult] = field(default_factory=list)
    snapshots: list[SnapshotFacts] = field(default_factory=list)  # newest first
    refused_names: list[str] = field(default_factory=list)
    newest_id: str | None = None  # the newest usable snapshot
    newest_age_seconds: int | None = None
    source_error: EnigmError | None = None  # the source could not be used: its own error and exit code
    test_restored: str | None = None  # the snapshot a test restore unsealed
    quorum_test: dict[str, Any] | None = None  # the latest successful quorum test of the expected key
    oldest_age_seconds: int | None = None  # the oldest listed snapshot (of the checked environment)
    retained: int = 0  # snapshots the retention policy keeps (every signed one without a policy)

    @property
    def ready(self) -> bool:
        return bool(self.checks) and all(c.ok is not False for c in self.checks)

    @property
    def failing(self) -> list[str]:
        return [c.name for c in self.checks if c.ok is False]

    def check(self, name: str) -> CheckResult:
        return next(c for c in self.checks if c.name == name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "source": self.source,
            "checked_at": utc_iso(self.checked_at),
            "policy": self.policy.as_dict(),
            "recipient_fingerprint": self.recipient_fingerprint,
            "newest": {"id": self.newest_id, "age_seconds": self.newest_age_seconds},
            "failing": self.failing,
            "checks": [c.as_dict(DESCRIPTIONS[c.name]) for c in self.checks],
            "snapshots": [s.as_dict(self.checked_at) for s in self.snapshots],
            "refused_names": self.refused_names,
            "test_restored": self.test_restored,
            "quorum_test": self.quorum_test,
            "retention": {"oldest_age_seconds": self.oldest_age_seconds, "retained": self.retained},
            "error": ({"message": self.source_error.message, "exit_code": self.source_error.exit_code}
                      if self.source_error else None),
        }


# -- the run ---------------------------------------------------------------------


def check_readiness(
    open_source: Callable[[Path], SnapshotSource],
    description: str,
    allowed: asyncssh.SSHAllowedSigners,
    recipient_fingerprint: str,
    policy: ReadinessPolicy = ReadinessPolicy(),
    *,
    scratch: Path | None = None,
    now: datetime | None = None,
    progress: ProgressCallback = no_progress,
    unlock: Unlock | None = None,
    life: KeyLife | None = None,
) -> ReadinessReport:
    """Run every check against the source; with ``unlock``, also test-restore the newest snapshot.

    ``open_source(cache_dir)`` opens the source with a cache folder of this run's own (made in
    ``scratch``, deleted at the end): a remote payload is downloaded from the host and hashed on every
    run, never taken from an earlier run's cache, so a payload lost or damaged on the host since is
    found. Only the newest payload is kept until the end (for the test restore).

    A source that cannot be opened or listed (or drops during the payload checks) fails the
    ``source`` check and sets ``source_error``; the checks that need the source are then not run.
    Share-entry errors raised by ``unlock`` (other than a wrong key) propagate to the caller.
    ``life`` (the latest quorum test, the keyring's retired keys) feeds the ``quorum-test`` and ``keys`` checks.
    """
    report = ReadinessReport(display_text(description), now or datetime.now(timezone.utc), policy,
                             recipient_fingerprint)
    if scratch is not None:
        make_private_dir(scratch, "scratch folder")
    with tempfile.TemporaryDirectory(prefix="readiness-", dir=scratch) as cache:
        _run(report, lambda: open_source(Path(cache)), Path(cache), allowed, progress, unlock, life or KeyLife())
    for check in report.checks:
        if check.ok is False and not check.problems:
            check.problems = [check.summary]
    return report


def _run(report: ReadinessReport, open_source: Callable[[], SnapshotSource], cache: Path,
         allowed: asyncssh.SSHAllowedSigners, progress: ProgressCallback, unlock: Unlock | None,
         life: KeyLife) -> None:
    policy = report.policy
    results: dict[str, CheckResult] = {}
    verified: dict[str, VerifiedSnapshot] = {}
    if life.quorum_test is not None:
        report.quorum_test = life.quorum_test.as_dict()
    try:
        source = open_source()
    except EnigmError as exc:  # whatever the source: the report and the textfile still say "not ready"
        return _unusable(report, exc, life)
    try:
        try:
            listing = source.list()
        except EnigmError as exc:
            return _unusable(report, exc, life)
        report.source = source.description
        entries = _of_environment(listing.entries, policy.environment)
        summaries = summarize(Listing(entries), allowed, report.recipient_fingerprint)
        report.snapshots = [_facts(s) for s in summaries]
        report.refused_names = list(listing.rejected)
        parsed = [e for e in newest_first(entries) if e.manifest is not None]
        listed = (f"listed {len(listing.entries)} manifest(s) and their signatures, "
                  f"{len(listing.rejected)} file name(s) refused")
        transport = transport_of(source)
        reached = [f"reached over {transport.describe()}"] if transport is not None else []
        results[SOURCE] = CheckResult(SOURCE, True, f"{len(listing.entries)} snapshot(s) listed from "
                                                    f"{source.description}", [listed, *reached])
        results[MANIFESTS] = _check_manifests(entries, listing, policy)
        results[SIGNATURES] = _check_signatures(summaries)
        results[RECIPIENT] = _check_recipient(parsed, report.recipient_fingerprint, set(life.retired))
        results[KEYS] = check_keys(parsed, life, report.recipient_fingerprint)
        results[POST_QUANTUM] = check_post_quantum(parsed, {s.id: s.signature for s in report.snapshots})
        results[SCOPE] = _check_scope(entries)
        results[CHAIN] = _check_chain(entries)
        results[COUNTS] = _check_counts(parsed, policy)
        results[PAYLOADS] = _check_payloads(source, parsed, allowed, report, verified, cache, progress)
        if report.source_error is not None:
            results[SOURCE] = CheckResult(SOURCE, False, report.source_error.message,
                                          [listed, f"then the source failed: {report.source_error.one_line()}"])
    finally:
        source.close()
    results[FRESHNESS] = _check_freshness(report, policy)
    if unlock is None:
        results[TEST_RESTORE] = CheckResult(TEST_RESTORE, None, "not requested (--test-restore proves the whole "
                                                                "path with the custodians' shares)")
    elif report.source_error is not None:
        results[TEST_RESTORE] = CheckResult(TEST_RESTORE, False, "not attempted: the source failed")
    else:
        results[TEST_RESTORE] = _test_restore_newest(entries, report, verified, unlock, progress)
    results[QUORUM_TEST] = check_quorum_test(life, policy.max_quorum_age, report.checked_at)
    report.checks = [results[name] for name in CHECKS]
    report.oldest_age_seconds, report.retained = retention_figures(report.snapshots, policy.retention,
                                                                   report.checked_at)
    if policy.retention is not None:
        report.checks.append(check_retention(report.snapshots, policy.retention, report.checked_at))
    return None


def stopped_before_checking(description: str, policy: ReadinessPolicy, exc: EnigmError,
                            now: datetime | None = None) -> ReadinessReport:
    """The report of a run that stopped before its checks (its trust files unreadable, say): not ready,
    with no check passed, so a textfile written from it still tells monitoring."""
    report = ReadinessReport(display_text(description), now or datetime.now(timezone.utc), policy, "")
    report.source_error = exc
    return report


def _unusable(report: ReadinessReport, exc: EnigmError, life: KeyLife | None = None) -> None:
    report.source_error = exc
    report.checks = [CheckResult(SOURCE, False, exc.message, [exc.one_line()])]
    quorum = check_quorum_test(life or KeyLife(), report.policy.max_quorum_age, report.checked_at)
    report.checks += [quorum if name == QUORUM_TEST else CheckResult(name, None, "not run: the source could not be used")
                      for name in CHECKS[1:]]


def _of_environment(entries: list[SnapshotEntry], environment: str | None) -> list[SnapshotEntry]:
    """The entries of one environment; unreadable manifests always stay (they might belong to it)."""
    if environment is None:
        return list(entries)
    return [e for e in entries if e.manifest is None or e.manifest.environment == environment]


def _facts(s: SnapshotSummary) -> SnapshotFacts:
    return SnapshotFacts(s.id, s.created_at, s.environment, s.producer, dict(s.counts), s.payload_size,
                         s.signature.value, s.recipient_matches, s.previous_id)


# -- checks that read only manifests and signatures --------------------------------------


def _check_manifests(entries: list[SnapshotEntry], listing: Listing, policy: ReadinessPolicy) -> CheckResult:
    evidence = [f"{e.id}: unreadable: {e.error.message if e.error else 'unknown error'}"
                for e in newest_first(entries) if e.manifest is None and not isinstance(e.error, ScopeError)]
    evidence += [f"refused file name {reason}" for reason in listing.rejected]
    if not entries:
        where = f" of environment {policy.environment}" if policy.environment else ""
        others = f" ({len(listing.entries)} of other environments)" if listing.entries else ""
        return CheckResult(MANIFESTS, False, f"the source holds no snapshots{where}{others}", evidence,
                           list(evidence))
    if evidence:
        return CheckResult(MANIFESTS, False, f"{len(evidence)} problem(s) among {len(entries)} snapshot(s)", evidence,
                           list(evidence))
    return CheckResult(MANIFESTS, True, f"{len(entries)} manifest(s) readable, no file name refused",
                       [f"{e.id}: readable" for e in newest_first(entries)])


def _check_signatures(summaries: list[SnapshotSummary]) -> CheckResult:
    evidence, problems, checked = [], [], 0
    for s in summaries:
        if s.created_at is None:  # unreadable: the manifests or scope check names it
            evidence.append(f"{s.id}: not checked: the manifest is unreadable")
            continue
        checked += 1
        if s.signature is SignatureStatus.TRUSTED:
            evidence.append(f"{s.id}: {s.signature_detail}")
        else:
            problems.append(f"{s.id}: signature {s.signature.value}: {s.signature_detail}")
            evidence.append(problems[-1])
    if problems:
        return CheckResult(SIGNATURES, False, f"{len(problems)} of {checked} snapshot(s) not signed by a trusted "
                                              "principal", evidence, problems)
    return CheckResult(SIGNATURES, True if checked else None,
                       f"{checked} snapshot(s) signed by a trusted principal" if checked else "no readable manifest",
                       evidence)


def _check_recipient(parsed: list[SnapshotEntry], expected: str, retired: set[str] | None = None) -> CheckResult:
    """A snapshot sealed to a key the keyring lists as retired is known, not foreign: the ``keys`` check
    lists it (it still needs that key's old quorum)."""
    evidence, problems = [], []
    for e in parsed:
        m = e.manifest
        assert m is not None
        if m.recipient_fingerprint == expected:
            evidence.append(f"{m.id}: sealed to {m.recipient_fingerprint}")
        elif m.recipient_fingerprint in (retired or set()):
            evidence.append(f"{m.id}: sealed to the retired key {m.recipient_fingerprint} (see the keys check)")
        else:
            problems.append(f"{m.id}: sealed to {m.recipient_fingerprint}, not the expected recovery key {expected}")
            evidence.append(problems[-1])
    if problems:
        return CheckResult(RECIPIENT, False, f"{len(problems)} of {len(parsed)} snapshot(s) sealed to another "
                                             f"recipient than {expected}", evidence, problems)
    return CheckResult(RECIPIENT, True if parsed else None,
                       f"{len(parsed)} snapshot(s) sealed to {expected}" if parsed else "no readable manifest",
                       evidence)


def _check_scope(entries: list[SnapshotEntry]) -> CheckResult:
    evidence, problems, bad = [], [], 0
    for e in newest_first(entries):
        if e.manifest is None:
            if isinstance(e.error, ScopeError):
                bad += 1
                problems.append(f"{e.id}: {e.error.message}")
                evidence.append(problems[-1])
            continue
        found = [f"lacks {kind}: that state could not be recovered from it"
                 for kind in ALLOWED_FIELDS if kind not in e.manifest.scope]
        for kind, scope in e.manifest.scope.items():
            try:
                check_manifest_scope(kind, list(scope.fields))
            except ScopeError as exc:
                found.append(exc.message)
        if found:
            bad += 1
            problems += [f"{e.id}: {p}" for p in found]
            evidence += problems[-len(found):]
        else:
            evidence.append(f"{e.id}: {', '.join(e.manifest.scope)} with exactly the allow-listed fields")
    if bad:
        return CheckResult(SCOPE, False, f"{bad} snapshot(s) outside the allow-listed scope", evidence, problems)
    return CheckResult(SCOPE, True if evidence else None,
                       "every manifest's scope is the allow-list" if evidence else "no readable manifest", evidence)


def _by_environment(entries: list[SnapshotEntry]) -> dict[str, list[Manifest]]:
    """Readable manifests per environment, oldest first (ids begin with the creation time)."""
    chains: dict[str, list[Manifest]] = {}
    for e in chronological(entries):
        if e.manifest is not None:
            chains.setdefault(e.manifest.environment, []).append(e.manifest)
    return chains


def _check_chain(entries: list[SnapshotEntry]) -> CheckResult:
    """Sealing names the newest earlier snapshot of the same environment as ``previous_id``; the oldest
    one listed may name a snapshot beyond the retention horizon, every later one must name its predecessor."""
    unreadable = {e.id for e in entries if e.manifest is None}
    evidence, problems, links = [], [], 0

    def gap(line: str) -> None:
        problems.append(line)
        evidence.append(line)

    for environment, chain in _by_environment(entries).items():
        ids = {m.id for m in chain}
        first = chain[0]
        if first.previous_id in ids:
            gap(f"{first.id}: names {first.previous_id} as its previous snapshot, which is newer")
        elif first.previous_id in unreadable:
            gap(f"{first.id}: its previous snapshot {first.previous_id} is unreadable")
        else:
            beyond = f"names {first.previous_id}, beyond the oldest kept" if first.previous_id else "starts the chain"
            evidence.append(f"{environment}: oldest {first.id} {beyond}")
        for before, m in zip(chain, chain[1:]):
            links += 1
            if m.previous_id == before.id:
                evidence.append(f"{m.id}: follows {before.id}")
                continue
            if m.previous_id is None:
                gap(f"{m.id}: names no previous snapshot, but {before.id} came before it")
            elif m.previous_id in unreadable:
                gap(f"{m.id}: its previous snapshot {m.previous_id} is unreadable")
            elif m.previous_id not in ids:
                gap(f"{m.id}: names {m.previous_id} as its previous snapshot, which is missing "
                    f"(a gap after {before.id})")
            else:
                gap(f"{m.id}: names {m.previous_id} as its previous snapshot, but {before.id} came before it")
    if problems:
        return CheckResult(CHAIN, False, f"{len(problems)} break(s) in the chain of previous snapshot ids", evidence,
                           problems)
    return CheckResult(CHAIN, True if evidence else None,
                       f"{links} link(s), no gaps" if evidence else "no readable manifest", evidence)


def _check_counts(parsed: list[SnapshotEntry], policy: ReadinessPolicy) -> CheckResult:
    evidence, problems, pairs = [], [], 0
    for _environment, chain in _by_environment(parsed).items():
        for before, m in zip(chain, chain[1:]):
            pairs += 1
            moves, bad = [], []
            for kind in DROP_KINDS:
                if kind not in before.scope or kind not in m.scope:
                    continue
                old, new = before.counts[kind], m.counts[kind]
                change = (new - old) * 100 / old if old else 0.0
                moves.append(f"{kind} {old:,} -> {new:,} ({change:+.1f}%)")
                if old and -change > policy.max_drop:
                    bad.append(f"{kind} dropped {-change:.1f}%, more than the {policy.max_drop:g}% allowed")
            line = f"{m.id} since {before.id}: {', '.join(moves) or 'no identities or devices to compare'}"
            if bad:
                line += ": " + "; ".join(bad)
                problems.append(line)
            evidence.append(line)
    if problems:
        return CheckResult(COUNTS, False, f"{len(problems)} sudden drop(s) in identities or devices (more than "
                                          f"{policy.max_drop:g}% between consecutive snapshots)", evidence, problems)
    if not pairs:
        return CheckResult(COUNTS, True if parsed else None,
                           "one snapshot: nothing to compare" if parsed else "no readable manifest", evidence)
    return CheckResult(COUNTS, True, f"{pairs} consecutive pair(s), no drop above {policy.max_drop:g}%", evidence)


# -- checks that read payloads ------------------------------------------------------------


def _check_payloads(source: SnapshotSource, parsed: list[SnapshotEntry], allowed: asyncssh.SSHAllowedSigners,
                    report: ReadinessReport, verified: dict[str, VerifiedSnapshot], cache: Path,
                    progress: ProgressCallback) -> CheckResult:
    facts = {s.id: s for s in report.snapshots}
    newest = parsed[0].id if parsed else None
    evidence, problems, checked, skipped = [], [], 0, 0
    for entry in parsed:
        fact = facts[entry.id]
        if fact.signature != SignatureStatus.TRUSTED.value:
            skipped += 1
            fact.payload_detail = "its manifest's signature is not trusted: no signed size and SHA-256 to check"
            evidence.append(f"{entry.id}: not checked: {fact.payload_detail}")
            continue
        try:
            result, snapshot = verify_entry(source, entry, allowed, progress, hash_payload=True)
            error = result.error
        except InterruptedByUser:  # the face stopped the run: a cancelled download is not a damaged payload
            raise
        except EnigmError as exc:  # an SFTP fetch checks size and SHA-256 itself, and raises
            result, snapshot, error = None, None, exc
        if isinstance(error, SOURCE_UNUSABLE):
            report.source_error = error
            problems.append(f"{entry.id}: interrupted: {error.message}")
            return CheckResult(PAYLOADS, False, f"interrupted after {checked} payload(s): the source failed",
                               evidence + problems, problems)
        checked += 1
        if snapshot is None:
            step = next((c.name for c in result.checks if c.ok is False), "payload") if result else "payload"
            fact.payload, fact.payload_detail = "failed", f"{step}: {error.message if error else 'not verified'}"
            problems.append(f"{entry.id}: {fact.payload_detail}")
            evidence.append(problems[-1])
            continue
        if snapshot.payload_path.is_relative_to(cache) and entry.id != newest:
            snapshot.payload_path.unlink(missing_ok=True)  # a downloaded copy, hashed: only the newest is kept
        else:
            verified[entry.id] = snapshot
        assert entry.manifest is not None
        fact.payload = "verified"
        fact.payload_detail = f"{entry.manifest.payload_size:,} bytes, SHA-256 {entry.manifest.payload_sha256}"
        evidence.append(f"{entry.id}: {fact.payload_detail}, as signed")
    note = f"; {skipped} not checked (untrusted manifest)" if skipped else ""
    if problems:
        return CheckResult(PAYLOADS, False, f"{len(problems)} of {checked} payload(s) missing or not as signed{note}",
                           evidence, problems)
    return CheckResult(PAYLOADS, True if checked else None,
                       (f"{checked} payload(s) present, size and SHA-256 as signed{note}" if checked
                        else f"no payload could be checked{note}"), evidence)


def _check_freshness(report: ReadinessReport, policy: ReadinessPolicy) -> CheckResult:
    now = report.checked_at
    limit = format_duration(policy.max_age)
    evidence = []
    for fact in report.snapshots:  # newest first
        if fact.created_at is not None and fact.usable:
            age = fact.age_seconds(now)
            assert age is not None
            report.newest_id, report.newest_age_seconds = fact.id, age
            evidence.append(f"newest usable snapshot {fact.id}, created {utc_iso(fact.created_at)}")
            if fact.in_future(now):
                ahead = int((fact.created_at - now).total_seconds())
                return CheckResult(FRESHNESS, False, f"the newest usable snapshot {fact.id} is dated "
                                                     f"{utc_iso(fact.created_at)}, {hours(ahead)} in the future of this "
                                                     f"host's clock ({utc_iso(now)}): a wrong clock or a forged time",
                                   evidence)
            if age > policy.max_age.total_seconds():
                return CheckResult(FRESHNESS, False, f"the newest usable snapshot {fact.id} is {hours(age)} old, "
                                                     f"older than the {limit} allowed", evidence)
            return CheckResult(FRESHNESS, True, f"the newest usable snapshot {fact.id} is {hours(max(age, 0))} "
                                                f"old (at most {limit} allowed)", evidence)
        evidence.append(f"{fact.id}: not usable (signature {fact.signature}, recovery key "
                        f"{'as expected' if fact.recipient_matches else 'not the expected one'}, payload "
                        f"{fact.payload})")
    return CheckResult(FRESHNESS, False, "no usable snapshot (trusted signature, expected recovery key, intact "
                                         "payload)", evidence)


# -- the test restore -------------------------------------------------------------------------


def _test_restore_newest(entries: list[SnapshotEntry], report: ReadinessReport,
                         verified: dict[str, VerifiedSnapshot], unlock: Unlock,
                         progress: ProgressCallback) -> CheckResult:
    """Test-restore the newest snapshot (never an older one: that would hide a bad newest)."""
    if not entries:
        return CheckResult(TEST_RESTORE, False, "not attempted: the source holds no snapshots")
    newest = newest_first(entries)[0]
    snapshot = verified.get(newest.id)
    fact = next(s for s in report.snapshots if s.id == newest.id)
    if snapshot is None:
        why = fact.payload_detail or (newest.error.message if newest.error else "it did not verify")
        return CheckResult(TEST_RESTORE, False, f"not attempted: the newest snapshot {newest.id} did not verify",
                           [f"{newest.id}: {why}"])
    if fact.recipient_matches is not True:
        return CheckResult(TEST_RESTORE, False, f"not attempted: the newest snapshot {newest.id} is sealed to "
                                                f"another recovery key than {report.recipient_fingerprint}")
    return scratch_restore(snapshot, unlock, report, progress)


def memory_backed_folder() -> str | None:
    """/dev/shm when it is a writable tmpfs folder (Linux), else None (tempfile's TMPDIR)."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else None


def scratch_restore(snapshot: VerifiedSnapshot, unlock: Unlock, report: ReadinessReport,
                    progress: ProgressCallback = no_progress) -> CheckResult:
    """Unseal ``snapshot`` into a new scratch SQLite target, restore it with the default plan, read it back,
    compare each kind's count and canonical SHA-256 with the signed manifest, and delete the scratch target.
    It walks the recovery pipeline like any restore: the custodians' shares are asked for under the scratch
    target's restore lock, and the restore applies the pipeline's dry run.

    The scratch folder is made by ``tempfile`` (mode 0700) in /dev/shm where there is one, so the decrypted
    records stay in memory-backed storage, else in TMPDIR; it is removed whatever happens.
    """
    from enigm_recover.recovery.plan import make_plan
    from enigm_recover.snapshot.records import KindDigest, encode_rows
    from enigm_recover.state.model import KINDS
    from enigm_recover.state.stores import open_store

    manifest = snapshot.manifest
    evidence: list[str] = []
    mismatches: list[str] = []
    memory = memory_backed_folder()
    with tempfile.TemporaryDirectory(prefix="enigm-readiness-", dir=memory) as scratch:
        url = f"sqlite:///{Path(scratch) / 'scratch.db'}"
        try:
            with open_store(url, create=True) as created:
                created.init_schema()
            evidence.append(f"scratch SQLite target created in a private folder in {Path(scratch).parent}"
                            + (" (memory-backed)" if memory else " (TMPDIR: on disk unless it is a tmpfs)"))
            with RecoveryPipeline(unlock.recovery, source_name=report.source, target=url, writes=True) as pipeline:
                pipeline.adopt(snapshot)
                try:
                    pipeline.gather(unlock.shares)
                except WrongRecoveryKey as exc:
                    return CheckResult(TEST_RESTORE, False, f"{manifest.id}: {exc.message}",
                                       ["the custodians' shares do not open the newest snapshot"])
                report.test_restored = manifest.id
                store = pipeline.store()
                # The dry run reads the whole payload: its SHA-256, age's authentication, and every record
                # against the model and the manifest's per-kind counts and digests.
                result = pipeline.dry_run(None, progress)
                total = sum(s.snapshot for s in result.kinds.values())
                evidence.append(f"unsealed {manifest.id}: {total:,} records, each checked against the model and "
                                "the signed per-kind counts and digests")
                plan = make_plan([], list(manifest.scope))  # only the kinds the snapshot holds (scope says the rest)
                outcome = pipeline.restore(plan, progress=progress)
                for o in outcome.steps:
                    evidence.append(f"restore step {o.step}: {o.status}, {o.inserted:,} inserted")
                    if o.status != "verified":
                        mismatches.append(f"restore step {o.step} is {o.status}")
                for kind in KINDS:  # read back exactly as sealing reads a store
                    digest = KindDigest()
                    for _ in encode_rows(kind, store.stream(kind), digest):
                        pass
                    signed = manifest.scope.get(kind.name)
                    count, sha = (signed.count, signed.sha256) if signed else (0, KindDigest().hasher.hexdigest())
                    actual = digest.hasher.hexdigest()
                    if digest.count != count:
                        mismatches.append(f"{kind.name}: {digest.count:,} records restored, the manifest says {count:,}")
                    elif actual != sha:
                        mismatches.append(f"{kind.name}: the restored records' canonical SHA-256 differs from the "
                                          "manifest's")
                    else:
                        evidence.append(f"{kind.name}: {digest.count:,} restored = {count:,} signed, canonical "
                                        f"SHA-256 {actual} as signed")
        except ShareError:
            raise  # the custodians' input errors go back to the face that asked (a wrong key is a verdict above)
        except EnigmError as exc:
            failure = f"failed ({type(exc).__name__}): {exc.message}"
            return CheckResult(TEST_RESTORE, False, f"{manifest.id}: {exc.message}", evidence + [failure], [failure])
    evidence.append("scratch target deleted")
    if mismatches:
        return CheckResult(TEST_RESTORE, False, f"{manifest.id}: the restored target does not match the manifest: "
                                                f"{mismatches[0]}", evidence + mismatches, mismatches)
    return CheckResult(TEST_RESTORE, True, f"{manifest.id} unsealed, restored into a scratch target and verified "
                                           "against its manifest", evidence)
