"""The error hierarchy. Every failure a user can cause is one of these.

Each class carries a stable exit code (listed in the README) and a hint naming
the next step. Messages must never contain share words, the recovery identity
or decrypted records.
"""

from __future__ import annotations

from enigm_recover.paths import display_text


class EnigmError(Exception):
    """Base of every failure the tool reports to a user (never with a traceback)."""

    exit_code = 1
    hint = ""

    def __init__(self, message: str, hint: str | None = None) -> None:
        message = display_text(message)  # a path's raw bytes as \xNN: messages go to UTF-8 text and JSON
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        return self.message

    def one_line(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message


class UsageError(EnigmError):
    exit_code = 2
    hint = "see --help"


class InputFileError(EnigmError):
    """A file the user named is missing, unreadable or malformed."""

    exit_code = 3
    hint = "check the path and the file's contents"


class OutputExistsError(EnigmError):
    exit_code = 3
    hint = "choose another output path or remove the existing one"


class ConfigError(EnigmError):
    exit_code = 4
    hint = "fix the configuration file or override the value with a flag"


class TargetError(EnigmError):
    """The target store URL is wrong or the store cannot be used."""

    exit_code = 5
    hint = "check the target URL (sqlite:///relative.db, sqlite:////absolute.db, postgresql://user@host/db)"


class SnapshotNotFound(EnigmError):
    exit_code = 6
    hint = "run `enigm-recover snapshots list SOURCE` to see the ids"


class RunbookInvalid(InputFileError):
    """A runbook file breaks the runbook format; the message names the file, line and step."""

    exit_code = 8
    hint = "fix the runbook file (see `enigm-recover runbooks show NAME` for a working one)"


class RunStateError(EnigmError):
    """A runbook run cannot be resumed as asked (none in progress, or its runbook changed since)."""

    exit_code = 9
    hint = "start the runbook without --resume, or name the run with --run"


class SourceError(EnigmError):
    exit_code = 7
    hint = "check the SOURCE path or URL"


# -- reaching a remote source: 30-39 -----------------------------------------------


class ConnectionFailed(SourceError):
    exit_code = 30
    hint = "check the host, port and network path (ProxyJump), then try again"


class HostKeyUnknown(SourceError):
    exit_code = 31
    hint = ("compare the fingerprint with the one the host's owner gives you out of band, then pass "
            "--accept-new-host-key FINGERPRINT")

    def __init__(self, message: str, hint: str | None = None, *, fingerprint: str | None = None) -> None:
        super().__init__(message, hint)
        self.fingerprint = fingerprint  # the SHA256 fingerprint the host offers (None: it offered no key)


class HostKeyChanged(SourceError):
    exit_code = 32
    hint = ("the host's key differs from the one in known_hosts: this may be an attack; do not go on until "
            "the host's owner confirms a key change, then remove the old line from known_hosts")


class AuthenticationFailed(SourceError):
    exit_code = 33
    hint = "check the user name, the key (--identity, IdentityFile, the ssh-agent) and its authorization on the host"


# -- snapshot integrity: 10-19 ------------------------------------------------


class SignatureError(EnigmError):
    """The manifest signature is missing, invalid or by an untrusted key."""

    exit_code = 10
    hint = "do not use this snapshot; check allowed_signers and where the snapshot came from"


class ManifestError(EnigmError):
    exit_code = 11
    hint = "the manifest is malformed or tampered with; do not use this snapshot"


class PayloadIntegrityError(EnigmError):
    exit_code = 12
    hint = "the payload is truncated or altered; fetch it again from the backup host"


class SnapshotContentError(PayloadIntegrityError):
    """The payload arrived intact (its signed hash matches) but its records are wrong: a producer fault."""

    hint = "the producer sealed records that break the format; use an earlier snapshot and report this one"


class ScopeError(EnigmError):
    """A field or record falls outside the allow-listed scope."""

    exit_code = 13
    hint = "snapshots may hold only the allow-listed kinds and fields (docs/FORMAT.md)"


class DecryptionError(EnigmError):
    exit_code = 14
    hint = "the payload was sealed to another recovery key or is damaged"


class UnsupportedFormat(EnigmError):
    exit_code = 15
    hint = "upgrade enigm-recover or check the snapshot's origin"


class RecordInvalid(EnigmError):
    """The live store holds a record the platform model does not allow; sealing it would make an
    unrestorable snapshot."""

    exit_code = 16
    hint = "fix the record in the store (or the process that wrote it), then seal again"


class RestoreRefused(EnigmError):
    """A restore cannot start or resume as asked (another run in progress, another snapshot, nothing to resume)."""

    exit_code = 17
    hint = "resume the interrupted restore with the same snapshot (--resume), or start a new one without it"


class RestoreNotVerified(EnigmError):
    """A restore ran but a step's verification did not hold: the target does not match what was promised."""

    exit_code = 18
    hint = "inspect the step's verification in the output, then run the restore again with --resume or investigate"


class AuditLogTampered(EnigmError):
    exit_code = 19
    hint = "the audit log was altered after it was written; keep this copy as evidence and compare with backups"


class AuditHeadMissing(EnigmError):
    """An audit log's entries chain together, but its head file is gone: a cut tail would leave no trace."""

    exit_code = 28
    hint = ("check the log against the head written down at the end of the recovery: "
            "`enigm-recover audit verify FILE --head HASH --entries N`")


# -- quorum: 20-29 -------------------------------------------------------------


class ShareError(EnigmError):
    """Base of share-entry failures."""

    exit_code = 20
    hint = "re-read the share card and type the share again"


class ShareWordError(ShareError):
    exit_code = 20


class ShareChecksumError(ShareError):
    exit_code = 21


class ShareSetMismatch(ShareError):
    exit_code = 22
    hint = "this share belongs to another recovery key; ask for a card of this ceremony's set"


class DuplicateShare(ShareError):
    exit_code = 23
    hint = "each custodian's share counts once; ask another custodian"


class NotEnoughShares(ShareError):
    exit_code = 24
    hint = "gather shares from more custodians"


class WrongRecoveryKey(ShareError):
    """The combined key does not match the snapshot: a wrong passphrase or wrong set."""

    exit_code = 25
    hint = "check the SLIP-39 passphrase (a wrong one silently yields another key) and the share cards"


class CeremonyMismatch(ShareError):
    """A custodian typed back another ceremony id than the one running: wrong call, or a relayed share."""

    exit_code = 26
    hint = "stop and check with the operator which ceremony you were called for; the share was not used"


class StepNotConfirmed(EnigmError):
    """A runbook step was declined, or needs a second operator who did not confirm."""

    exit_code = 27
    hint = "have the step confirmed (a two-person step needs a second operator with another name), then resume"


# -- readiness: 40-49 -----------------------------------------------------------


class NotReady(EnigmError):
    """A readiness check failed: the snapshots cannot be relied on for a recovery as they are."""

    exit_code = 40
    hint = "read each failing check's evidence in the readiness report, fix the cause, then run readiness again"


class SnapshotFromTheFuture(EnigmError):
    """``latest`` would be a snapshot dated later than this host's clock allows: a wrong clock or a forged time."""

    exit_code = 44
    hint = "check this host's clock and the producer's (NTP); to use that snapshot all the same, name its id"


class InterruptedByUser(EnigmError):
    exit_code = 130
    hint = "nothing was left half-written"


class InsecurePath(EnigmError):
    """A folder or file of the tool's own (state, recoveries, cache, config, a ceremony's output) that other
    users can write, or that another user owns: refused, as OpenSSH refuses such a ~/.ssh."""

    exit_code = 47
    hint = "make it yours and writable by you alone (chmod go-w PATH), then run the command again"


class CustodianNameInvalid(ShareError):
    """A custodian name read back from a card or typed at a prompt breaks the rule of ``keys init``."""

    exit_code = 20
    hint = "use the name on the share card: letters, digits, '.', '_' or '-', at most 64 characters"


# -- what a snapshot says, and what it does not: 34-37 ------------------------------------------


class KindNotInSnapshot(EnigmError):
    """A step names a kind outside the snapshot's signed scope: the snapshot says nothing about that kind,
    which is not the same as holding none of it."""

    exit_code = 34
    hint = "run only the steps of kinds the snapshot holds (--step), or choose a snapshot that holds the kind"


class EnvironmentMismatch(EnigmError):
    """The snapshot was sealed in another environment than the target's configured one."""

    exit_code = 35
    hint = ("choose a snapshot of the target's environment (--environment), or pass --allow-environment-mismatch "
            "if restoring across environments is intended (it is recorded in the audit log)")


# -- retention: 50-59 -------------------------------------------------------------


class PruneRefused(EnigmError):
    """Pruning would rest on something it cannot trust (a broken newest snapshot, an unreadable run state),
    so nothing was removed."""

    exit_code = 50
    hint = "fix or remove the named cause (verify the newest snapshot), then run the prune again"


# -- the key's lifecycle: 60-69 -------------------------------------------------------


class RecoveryKeyRetired(EnigmError):
    """A recovery key marked retired (by ``keys rotate``) was named for new work: sealing, or a card check."""

    exit_code = 60
    hint = "use the recovery.pub that replaced it (its keys.toml names the new key's fingerprint)"


class CardUnmatched(EnigmError):
    """A share card is well-formed but cannot be tied to the recovery key named: it carries no fingerprint
    and no keyring names the key's set id."""

    exit_code = 61
    hint = "check the card against the recovery.pub of its ceremony, with that folder's keys.toml beside it"


# -- the kind of recovery key (hybrid post-quantum or classic X25519): 70-74 ---------------------


class RecipientKindMismatch(ShareError):
    """The cards make a key of the other kind than the one the snapshot (or recovery.pub) names: hybrid
    post-quantum cards for a snapshot sealed to a classic X25519 key, or the other way round."""

    exit_code = 70
    hint = "bring the cards of the key the snapshot was sealed to (each card names its key's kind)"


class RecipientMixRefused(EnigmError):
    """A hybrid post-quantum recipient beside a classic X25519 one: sealing to both, or a header holding both
    stanzas. The classic stanza would let a future quantum computer open what the hybrid one protects."""

    exit_code = 71
    hint = "seal to the hybrid recipient alone"


class ClassicKeyExchangeRefused(SourceError):
    """The SSH server offers no post-quantum key exchange this client can use, and the configuration
    refuses classic key exchange (``ssh_kex = "post-quantum-only"``, ``--ssh-kex post-quantum-only``)."""

    exit_code = 75
    hint = ("enable mlkem768x25519-sha256 on the server (OpenSSH 9.9 and later offer it by default: KexAlgorithms "
            "in sshd_config), or accept classic key exchange for this connection with --ssh-kex prefer-post-quantum")


# -- custodians joining a ceremony from their own sessions (exit codes 80–89) ------------------------------------


class CeremonyUnavailable(EnigmError):
    """No open ceremony answers: none is open, the one named is not, or its operator's process ended."""

    exit_code = 80
    hint = "ask the operator to open the ceremony (a run with --remote-shares, or the app's quorum step)"


class CeremonyRefused(EnigmError):
    """The operator's process refused this join (outside the custodians' group, too many attempts, a second share
    from the same OS user, a closed ceremony)."""

    exit_code = 81
    hint = "call the operator; the audit log records the refusal and its reason"


class CeremonyFolderUnsafe(EnigmError):
    """The ceremonies folder or the custodians' group cannot keep the socket to the operator and the group."""

    exit_code = 82
    hint = "see `--ceremony-dir` and the custodian_group setting in the README"


class CeremonyProtocolError(EnigmError):
    """A message on the ceremony socket is malformed or too large; the peer is dropped."""

    exit_code = 83
    hint = "use the same enigm-recover version on both sides"


class SealedShareRefused(EnigmError):
    """A sealed share that cannot be taken: sealed to another recipient, bound to another ceremony, offered twice,
    or not an armored age message of a share."""

    exit_code = 84
    hint = "the custodian seals the share again with `ceremony seal-share`, to the recipient and ceremony id shown now"
