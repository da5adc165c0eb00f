"""The custodians' part of a recovery: shares entered one by one, each verdict in the audit log.

Both faces (the terminal and the app) feed shares through this, so every
accepted and every rejected share leaves the same evidence: the custodian's
name, the share's set id and member index, the reason for a rejection, and
whether the custodian bound the share to this ceremony by typing its id back.
Share words never leave the ShareEntry.
"""

from __future__ import annotations

from enigm_recover.errors import ShareError
from enigm_recover.quorum.entry import ShareEntry, ShareReceipt
from enigm_recover.quorum.recipients import RecipientKind
from enigm_recover.quorum.recovery_key import RecoveryIdentity
from enigm_recover.recovery.session import Recovery


class QuorumSession:
    def __init__(self, recovery: Recovery, expected_fingerprint: str | None,
                 expected_recipient: str | None = None) -> None:
        self.recovery = recovery
        self.entry = ShareEntry(expected_fingerprint, expected_recipient)

    @property
    def complete(self) -> bool:
        return self.entry.complete

    def add(self, words: str, custodian: str | None = None, ceremony_typed: str | None = None,
            kind: RecipientKind | None = None) -> ShareReceipt:
        try:
            bound = self.recovery.check_ceremony(ceremony_typed)
            receipt = self.entry.add(words, custodian, kind)
        except ShareError as exc:
            from enigm_recover.quorum.names import custodian_name_problem

            # a name that breaks the rule (share words typed at the wrong prompt, say) is never recorded
            name = (custodian or "").strip()
            recorded = name if name and custodian_name_problem(name) is None else ("(refused name)" if name else "")
            self.recovery.audit.append("share-rejected", outcome="rejected",
                                       inputs={"custodian": recorded, "reason": exc.message})
            raise
        self.recovery.share_accepted(receipt, bound)
        return receipt

    def combine(self, passphrase: str = "") -> RecoveryIdentity:
        try:
            identity = self.entry.combine(passphrase)
        except ShareError as exc:
            self.recovery.audit.append("key-not-combined", outcome="failed", inputs={"reason": exc.message})
            raise
        self.recovery.key_combined(identity.fingerprint)
        return identity
