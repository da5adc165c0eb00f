"""One recovery, walked the same way by every face: resolve → verify → lock → quorum → dry run → apply.

``unseal``, ``diff``, ``restore``, the runbook executor (``run`` and the app) and readiness's test
restore all drive this object, so each promise is kept here once:

- the source is opened (over SFTP: connected to) and listed once per recovery, and kept open;
- nothing is read from a snapshot before it verified;
- a recovery that may write takes the target's restore lock before the first share is asked for:
  the lock is taken by ``quorum()``, the only way to a share entry;
- a restore applies only a dry run of the same snapshot, made in this recovery, covering its kinds.

What only a face knows comes in through small protocols: where shares come from (``ShareSource``),
who confirms a step (``Confirm``) and how progress is shown (``ProgressCallback``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

from enigm_recover.errors import UsageError
from enigm_recover.progress import ProgressCallback, no_progress
from enigm_recover.quorum.recovery_key import RecoveryIdentity
from enigm_recover.recovery.apply import Confirm, RestoreOutcome, Restorer
from enigm_recover.recovery.diff import DiffResult
from enigm_recover.recovery.plan import Plan
from enigm_recover.recovery.quorum_session import QuorumSession
from enigm_recover.recovery.session import Recovery
from enigm_recover.snapshot.source import Listing, SnapshotEntry, SnapshotSource
from enigm_recover.snapshot.verify import VerifiedSnapshot, VerifyReport
from enigm_recover.state.journal import DEFAULT_BATCH
from enigm_recover.state.store import TargetStore


class ShareSource(Protocol):
    """Where a face's shares come from: share files, a hidden prompt, the app's entry screen."""

    def enter(self, quorum: QuorumSession) -> None:
        """Add shares to ``quorum`` until it is complete (or raise a ShareError)."""
        ...

    def passphrase(self) -> str:
        """The SLIP-39 passphrase ("" for none)."""
        ...


def source_opener(spec: str, ssh: Any, cache_dir: Path) -> Callable[[], SnapshotSource]:
    """Opens the source ``spec`` names (a folder, ``file://`` or ``sftp://``) when first needed."""

    def open_() -> SnapshotSource:
        from enigm_recover.sources.open import open_source

        return open_source(spec, ssh, cache_dir)  # an sftp:// source without settings gets the defaults

    return open_


class RecoveryPipeline:
    """One recovery's source, snapshot, lock, quorum and dry run, held for the recovery's length.

    ``recovery`` receives the audit entries (None for a check that combines no shares, e.g. ``verify``);
    ``target`` is the live store's URL (None for ``unseal``); ``writes`` says the recovery may write to it
    (a restore, or a runbook with a restore step ahead), so the restore lock is taken before the quorum.
    """

    def __init__(self, recovery: Recovery | None, *, open_source: Callable[[], SnapshotSource] | None = None,
                 source_name: str = "", allowed_signers: Path | Any | None = None, target: str | None = None,
                 writes: bool = False) -> None:
        self.recovery = recovery
        self.source_name = source_name
        self.target = target
        self.writes = writes
        self._open_source = open_source
        self._allowed_signers = allowed_signers
        self._source: SnapshotSource | None = None
        self._listing: Listing | None = None
        self._store: TargetStore | None = None
        self._locked = False
        self._quorum: QuorumSession | None = None
        self.verified: VerifiedSnapshot | None = None
        self.identity: RecoveryIdentity | None = None
        self.checked: DiffResult | None = None  # the latest dry run, which a restore applies

    def __enter__(self) -> "RecoveryPipeline":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Let go of the source and the target (and with it the restore lock). Safe to call twice."""
        store, source = self._store, self._source
        self._store, self._source, self._locked = None, None, False
        try:
            if store is not None:
                store.close()
        finally:
            if source is not None:
                source.close()

    # -- the source: opened and listed once ------------------------------------------------------------

    @property
    def source(self) -> SnapshotSource:
        if self._source is None:
            if self._open_source is None:
                raise UsageError("this recovery has no snapshot source")
            self._source = self._open_source()
        return self._source

    def listing(self, *, refresh: bool = False) -> Listing:
        """The source's manifests and signatures, read once per recovery (again only when asked to)."""
        if self._listing is None or refresh:
            self._listing = self.source.list()
        return self._listing

    def allowed_signers(self) -> Any:
        if isinstance(self._allowed_signers, Path):
            from enigm_recover.snapshot.signature import load_allowed_signers

            self._allowed_signers = load_allowed_signers(self._allowed_signers)
        if self._allowed_signers is None:
            raise UsageError("no allowed_signers file to check signatures with", "pass --allowed-signers")
        return self._allowed_signers

    def summaries(self, recipient_fingerprint: str | None = None, *, refresh: bool = False) -> list[Any]:
        """The snapshots, newest first, with signature and recovery-key status."""
        from enigm_recover.snapshot.listing import summarize

        return summarize(self.listing(refresh=refresh), self.allowed_signers(), recipient_fingerprint)

    def resolve(self, ref: str, environment: str | None = None, *, screened: bool = True) -> SnapshotEntry:
        """The entry ``ref`` names; ``screened`` refuses untrusted candidates as it looks (a snapshot chosen
        earlier in the run is looked up by its id alone and judged by verification)."""
        from enigm_recover.snapshot.catalog import resolve

        return resolve(self.listing(), ref, self.allowed_signers() if screened else None, environment)

    # -- verify ------------------------------------------------------------------------------------------

    def select(self, ref: str, environment: str | None = None, *, screened: bool = True) -> SnapshotEntry:
        """Choose a snapshot: what was verified, combined or dry-run for another one is dropped."""
        entry = self.resolve(ref, environment, screened=screened)
        if self.verified is None or self.verified.manifest.id != entry.id:
            self.verified, self.checked = None, None
        return entry

    def verify(self, ref: str, progress: ProgressCallback = no_progress, *, hash_payload: bool = True,
               environment: str | None = None, screened: bool = True) -> tuple[VerifyReport, VerifiedSnapshot | None]:
        """Check the snapshot (fetching a remote payload into the cache); keep it when it verified.
        Without ``hash_payload`` the SHA-256 is left to the decryption pass, which checks it anyway."""
        from enigm_recover.snapshot.verify import verify_entry

        entry = self.select(ref, environment, screened=screened)
        report, verified = verify_entry(self.source, entry, self.allowed_signers(), progress,
                                        hash_payload=hash_payload)
        if verified is not None:
            self.verified = verified
        return report, verified

    def require_verified(self, ref: str, progress: ProgressCallback = no_progress, *, hash_payload: bool = False,
                         environment: str | None = None) -> VerifiedSnapshot:
        """The snapshot, verified, and named in the recovery's report; its check's error otherwise."""
        report, verified = self.verify(ref, progress, hash_payload=hash_payload, environment=environment)
        if verified is None:
            if self.recovery is not None:
                self.recovery.record("verify-snapshot", outcome="failed", inputs={"snapshot": report.snapshot_id})
            assert report.error is not None
            raise report.error
        if self.recovery is not None:
            self.recovery.snapshot(verified.manifest, self.source_name)
        return verified

    def adopt(self, verified: VerifiedSnapshot) -> None:
        """A snapshot the caller verified itself through the same checks (readiness checks every payload)."""
        self.verified, self.checked = verified, None
        if self.recovery is not None:
            self.recovery.snapshot(verified.manifest, self.source_name)

    def _snapshot(self) -> VerifiedSnapshot:
        if self.verified is None:
            raise UsageError("no verified snapshot yet: the snapshot is verified before anything reads it")
        return self.verified

    # -- the target and its restore lock -------------------------------------------------------------------

    def store(self) -> TargetStore:
        """The live target, opened once per recovery."""
        if self._store is None:
            from enigm_recover.state.stores import open_store

            if not self.target:
                raise UsageError("this recovery has no target")
            self._store = open_store(self.target)
        return self._store

    def lock(self) -> None:
        """Hold the target's restore lock until the recovery ends; RestoreRefused while another holds it."""
        if not self._locked:
            self.store().lock_restores()
            self._locked = True

    # -- the quorum: only after the lock -----------------------------------------------------------------

    def quorum(self, expected_fingerprint: str | None = None) -> QuorumSession:
        """The share entry for the verified snapshot's recovery key (or, in a resumed run whose snapshot is
        verified again later, the key its signed manifest named). A recovery that may write holds the
        restore lock first: no custodian is asked for a share of a restore that cannot run."""
        if self._quorum is None:
            fingerprint = self.verified.manifest.recipient_fingerprint if self.verified else expected_fingerprint
            if not fingerprint:
                raise UsageError("no verified snapshot yet: the quorum comes after the snapshot is verified")
            if self.recovery is None:
                raise UsageError("a quorum belongs to a recovery (its ceremony and audit log)")
            if self.writes:
                self.lock()
            self._quorum = QuorumSession(self.recovery, fingerprint,
                                         self.verified.manifest.recipient if self.verified else None)
        return self._quorum

    @property
    def quorum_open(self) -> bool:
        """The share entry is open (and, for a recovery that may write, the restore lock is held)."""
        return self._quorum is not None

    def restart_quorum(self, expected_fingerprint: str | None = None) -> QuorumSession:
        """Discard the shares entered so far and start the entry again."""
        self._quorum = None
        if self.recovery is not None:
            self.recovery.audit.append("quorum-restarted")
        return self.quorum(expected_fingerprint)

    def combine(self, passphrase: str = "") -> RecoveryIdentity:
        self.identity = self.quorum().combine(passphrase)
        return self.identity

    def gather(self, shares: ShareSource) -> RecoveryIdentity:
        """The recovery key, from the shares a face supplies."""
        quorum = self.quorum()
        shares.enter(quorum)
        return self.combine(shares.passphrase())

    def forget_key(self) -> None:
        """Drop the combined key and the share entry (a paused run asks the custodians again)."""
        self.identity, self._quorum = None, None

    def key(self) -> RecoveryIdentity:
        """The combined recovery key; UsageError before the quorum combined it."""
        if self.identity is None:
            raise UsageError("the recovery key is not combined yet", "gather the custodians' shares first")
        return self.identity

    # -- dry run and restore -----------------------------------------------------------------------------

    def diff(self, kinds: Iterable[str] | None = None, progress: ProgressCallback = no_progress) -> DiffResult:
        """Compare the snapshot with the target now (reads and checks the whole payload)."""
        from enigm_recover.recovery.diff import diff

        verified, key = self._snapshot(), self.key()
        return diff(verified, key, self.store(), kinds=list(kinds or []), progress=progress)

    def dry_run(self, kinds: Iterable[str] | None = None, progress: ProgressCallback = no_progress) -> DiffResult:
        """A diff that a following restore applies."""
        self.checked = self.diff(kinds, progress)
        return self.checked

    def covered(self, kinds: Iterable[str]) -> bool:
        """This recovery's dry run covers these kinds (all kinds when empty)."""
        from enigm_recover.state.model import KIND_BY_NAME

        return self.checked is not None and set(kinds or KIND_BY_NAME) <= set(self.checked.kinds)

    def restore(self, plan: Plan, *, resume: bool = False, confirm: Confirm = lambda step: True,
                batch_size: int = DEFAULT_BATCH, progress: ProgressCallback = no_progress) -> RestoreOutcome:
        """Apply ``plan`` from this recovery's dry run, under the restore lock; the dry run is spent after."""
        checked = self.checked
        if checked is None or not self.covered([s.kind.name for s in plan.steps]):
            raise UsageError("a restore applies a dry run of this recovery covering its kinds", "run the dry run first")
        self.lock()
        try:
            return Restorer(self._snapshot(), self.store(), plan, checked, batch_size=batch_size,
                            progress=progress).run(resume=resume, confirm=confirm)
        finally:
            self.checked = None  # the target changed: a next restore needs a fresh dry run
