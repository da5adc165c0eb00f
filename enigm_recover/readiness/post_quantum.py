"""Readiness check ``recovery-key-post-quantum``: the newest snapshot is sealed to a hybrid key.

Sealed snapshots live for months and are copied off-site: whoever records one today and has a quantum
computer later opens an X25519-only seal. The check reads the newest snapshot whose manifest carries a
*trusted* signature (what an unsigned or forged manifest says about its key is not evidence), and
judges the kind of its signed recipient. Older snapshots still sealed to a classic key are listed:
``keys rewrap`` moves them to the new key by their header alone.
"""

from __future__ import annotations

from enigm_recover.quorum.recipients import RecipientKind, recipient_kind
from enigm_recover.readiness.result import CheckResult
from enigm_recover.snapshot.signature import SignatureStatus
from enigm_recover.snapshot.source import SnapshotEntry

POST_QUANTUM = "recovery-key-post-quantum"
DESCRIPTION = ("the newest snapshot is sealed to a post-quantum hybrid recovery key (age mlkem768x25519), so a "
               "copy recorded today cannot be opened later by a quantum computer")
FIX = ("make a hybrid key with a quorum of the current one: `enigm-recover keys rotate --kind hybrid --recipient "
       "OLD.pub --threshold K --custodian NAME ... --out NEW`, seal to NEW/recovery.pub from now on, then move the "
       "existing snapshots by their headers alone: `enigm-recover keys rewrap SOURCE --all --to NEW/recovery.pub "
       "--sign-key KEY`")


def check_post_quantum(parsed: list[SnapshotEntry], signatures: dict[str, str]) -> CheckResult:
    """``parsed``: readable entries, newest first; ``signatures``: each id's signature status value."""
    trusted = [e for e in parsed if e.manifest is not None
               and signatures.get(e.id) == SignatureStatus.TRUSTED.value]
    if not trusted:
        return CheckResult(POST_QUANTUM, None, "no snapshot with a trusted signature: no signed recovery key to "
                                               "judge (see the signatures check)")
    evidence: list[str] = []
    kinds: dict[str, RecipientKind | None] = {}
    for e in trusted:
        m = e.manifest
        assert m is not None
        try:
            kinds[e.id] = recipient_kind(m.recipient)
            evidence.append(f"{e.id}: sealed to {m.recipient_fingerprint}, {kinds[e.id].label}")  # type: ignore[union-attr]
        except ValueError:
            kinds[e.id] = None
            evidence.append(f"{e.id}: sealed to {m.recipient_fingerprint}, a recipient of unknown kind")
    newest = trusted[0]
    assert newest.manifest is not None
    kind = kinds[newest.id]
    classic_older = [e.id for e in trusted[1:] if kinds[e.id] is not RecipientKind.HYBRID]
    if kind is not RecipientKind.HYBRID:
        what = kind.label if kind else "not post-quantum"
        said = (f"the newest snapshot {newest.id} is sealed to a {what} recovery key "
                f"({newest.manifest.recipient_fingerprint}): a copy recorded today can be opened by a quantum "
                "computer later")
        summary = f"{said}; fix: `keys rotate --kind hybrid`, then `keys rewrap SOURCE --all --to NEW/recovery.pub`"
        return CheckResult(POST_QUANTUM, False, summary, evidence, [f"{said}. Fix: {FIX}"])
    summary = f"the newest snapshot {newest.id} is sealed to a {kind.label} recovery key (age mlkem768x25519)"
    if classic_older:
        summary += (f"; {len(classic_older)} older snapshot(s) still sealed to a classic key (`keys rewrap "
                    f"--to` the hybrid recovery.pub moves them)")
    return CheckResult(POST_QUANTUM, True, summary, evidence)
