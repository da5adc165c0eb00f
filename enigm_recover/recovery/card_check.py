"""Check share cards alone, with an audit trail: what ``keys check`` and the app's "Check my card" share.

Each card is judged by ``quorum.cardcheck.check_card`` (nothing is combined) and its verdict goes to
the recovery's audit log as a ``card-checked`` entry: the set id, group and member, the key it was
checked against and whether it belongs — or the reason it was refused. Never a word.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from enigm_recover.errors import CardUnmatched, CustodianNameInvalid, EnigmError, RecoveryKeyRetired, ShareSetMismatch
from enigm_recover.paths import display_text
from enigm_recover.quorum.cardcheck import CardHeader, CardVerdict, check_card
from enigm_recover.quorum.keyring import RecipientFile
from enigm_recover.recovery.session import Recovery

if TYPE_CHECKING:
    from enigm_recover.snapshot.signature import Signer

COMMAND = "keys check"
# Refusals that say the card is a good share, but of another set or key (the words themselves are fine).
NOT_THIS_KEY = (ShareSetMismatch, CardUnmatched, RecoveryKeyRetired)


@dataclass(frozen=True)
class CardToCheck:
    """One card: how the audit log names it (a file name, or "(typed)"), its words and printed header."""

    label: str
    words: str
    header: CardHeader = CardHeader()


@dataclass(frozen=True)
class CardCheck:
    """The outcome for one card: its verdict, or the EnigmError that refused it."""

    label: str
    header: CardHeader
    verdict: CardVerdict | None = None
    error: EnigmError | None = None

    @property
    def ok(self) -> bool:
        return self.verdict is not None

    @property
    def not_this_key(self) -> bool:
        """Refused because it belongs to another set or key (a well-formed share all the same)."""
        return isinstance(self.error, NOT_THIS_KEY)


def check_one(recovery: Recovery, card: CardToCheck, recipient: RecipientFile | None) -> CardCheck:
    """Check one card and record the verdict in the audit log."""
    label = display_text(card.label)  # a path's raw bytes as \xNN: the audit log and the report are UTF-8 text
    header = card.header
    try:
        verdict = check_card(card.words, header, recipient)
    except EnigmError as exc:
        recovery.record("card-checked", outcome="refused",
                        inputs={"card": label, "custodian": header.custodian or "", "reason": exc.message})
        return CardCheck(label, header, error=exc)
    recovery.record("card-checked", outcome="ok",
                    inputs={"card": label, "custodian": verdict.custodian or "", "set_id": verdict.set_id,
                            "group": verdict.group, "member_index": verdict.member,
                            "recipient_fingerprint": verdict.recipient_fingerprint or "", "belongs": verdict.belongs})
    return CardCheck(label, header, verdict=verdict)


def check_cards(recovery: Recovery, cards: Iterable[CardToCheck], recipient: RecipientFile | None) -> list[CardCheck]:
    """Check every card, record each verdict, and close the recovery (failed when any card was refused)."""
    results = [check_one(recovery, card, recipient) for card in cards]
    first = next((r.error for r in results if r.error is not None), None)
    recovery.close("completed" if first is None else "failed", "" if first is None else first.message)
    return results


def check_alone(state_dir: Path, operator: str, card: CardToCheck, recipient_path: Path | None,
                signer: Signer | None = None) -> CardCheck:
    """One card checked as ``keys check`` checks it, in a recovery of its own (opened, recorded, closed):
    what a face with a single card typed in (the app's "Check my card") calls."""
    from enigm_recover.quorum.keyring import read_recipient
    from enigm_recover.quorum.names import custodian_name_problem

    name = card.header.custodian
    if name and (problem := custodian_name_problem(name)) is not None:
        raise CustodianNameInvalid(problem)  # never recorded: share words typed in the wrong field, say
    recipient = read_recipient(recipient_path) if recipient_path is not None else None
    recovery = Recovery.open(state_dir, COMMAND, operator)
    recovery.signer = signer
    try:
        [result] = check_cards(recovery, [card], recipient)
    except EnigmError as exc:
        recovery.close("aborted", exc.message)
        raise
    return result
