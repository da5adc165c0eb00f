"""Incremental share entry: a UI-free state object the CLI and the app share.

Each share is checked the moment it arrives — words, length, checksum, set,
duplicates — and the verdict says exactly what is wrong without echoing any
word. Combining uses shamir-mnemonic's RecoveryState, which picks exactly the
threshold of shares per group; the derived recipient is compared with the
snapshot's, because a wrong SLIP-39 passphrase silently yields another key.
"""

from __future__ import annotations

from dataclasses import dataclass

from shamir_mnemonic import MnemonicError, Share
from shamir_mnemonic.recovery import RecoveryState
from shamir_mnemonic.wordlist import WORD_INDEX_MAP, WORDLIST

from enigm_recover.errors import (
    CustodianNameInvalid,
    DuplicateShare,
    NotEnoughShares,
    ShareChecksumError,
    ShareSetMismatch,
    ShareWordError,
    WrongRecoveryKey,
)
from enigm_recover.quorum.names import custodian_name_problem
from enigm_recover.quorum.recovery_key import RecoveryIdentity

SHARE_WORDS = 33  # SLIP-39 share length for a 256-bit secret
_BY_PREFIX: dict[str, str] = {w[:4]: w for w in WORDLIST}


def complete_word(prefix: str) -> str | None:
    """The SLIP-39 word a prefix of at least four letters fixes, if any."""
    prefix = prefix.lower()
    if len(prefix) < 4:
        return None
    word = _BY_PREFIX.get(prefix[:4])
    return word if word is not None and word.startswith(prefix) else None


_PREFIXES = frozenset(word[:n] for word in WORDLIST for n in range(1, 5))


def typing_feedback(value: str) -> tuple[int, str, list[int]]:
    """What a share field may say about itself after each keystroke, naming positions, never letters:
    (words finished, a verdict on the word being typed, positions of finished words that are no SLIP-39 word)."""
    tokens = value.split()
    ended = value.endswith(" ") or not tokens
    finished = tokens if ended else tokens[:-1]
    typing = "" if ended else tokens[-1].lower()
    bad = [i for i, t in enumerate(finished, 1) if t.lower() not in WORD_INDEX_MAP and complete_word(t) is None]
    position = len(finished) + 1
    if not typing:
        current = f"word {position}: type its first four letters"
    elif len(typing) >= 4 and complete_word(typing) is not None:
        current = f"word {position}: recognised — space for the next"
    elif typing[:4] in _PREFIXES:
        current = f"word {position}: keep typing"
    else:
        current = f"word {position}: no SLIP-39 word starts like this — check the card"
    return len(finished), current, bad


def normalize_words(text: str) -> list[str]:
    """Lowercase the words, expanding four-letter prefixes; raise on the first bad one."""
    words = []
    for position, token in enumerate(text.split(), 1):
        token = token.lower()
        if token in WORD_INDEX_MAP:
            words.append(token)
            continue
        word = complete_word(token) if len(token) == 4 else None
        if word is None:
            raise ShareWordError(f"word {position} is not in the SLIP-39 word list",
                                 f"check word {position} on the card (its first four letters fix it)")
        words.append(word)
    return words


@dataclass(frozen=True)
class GroupProgress:
    group_index: int
    entered: int
    needed: int  # 0 while no share of the group has been entered (unknown)

    @property
    def complete(self) -> bool:
        return self.needed > 0 and self.entered >= self.needed


@dataclass(frozen=True)
class ShareReceipt:
    """What the ceremony may show and log about an accepted share (never the words)."""

    custodian: str
    set_id: int
    group_index: int
    member_index: int


class ShareEntry:
    """Gathers shares one at a time until the quorum is reached."""

    def __init__(self, expected_fingerprint: str | None = None) -> None:
        self.expected_fingerprint = expected_fingerprint
        self._state = RecoveryState()
        self._by_member: dict[tuple[int, int], tuple[Share, str]] = {}
        self.receipts: list[ShareReceipt] = []

    # -- entering ----------------------------------------------------------

    def add(self, text: str, custodian: str | None = None) -> ShareReceipt:
        """Check and keep one share; ``custodian`` (from a card or a prompt) meets the rule of ``keys init``."""
        name = (custodian or f"custodian-{len(self.receipts) + 1}").strip()
        if (problem := custodian_name_problem(name)) is not None:
            raise CustodianNameInvalid(problem)
        if any(r.custodian == name for r in self.receipts):
            raise DuplicateShare(f"{name} has already entered a share")
        words = normalize_words(text)
        if len(words) != SHARE_WORDS:
            raise ShareWordError(f"the share has {len(words)} words; a share of a recovery key has {SHARE_WORDS}",
                                 "check that no word was skipped or repeated")
        try:
            share = Share.from_mnemonic(" ".join(words))
        except MnemonicError:
            raise ShareChecksumError("the share's checksum does not match: a word is mistyped or out of order",
                                     "re-read the card word by word") from None
        if not self._state.matches(share):
            raise ShareSetMismatch(
                f"this share is from set {share.identifier}, not set "
                f"{self._state.parameters.identifier if self._state.parameters else '?'} of this ceremony")
        member = (share.group_index, share.index)
        if member in self._by_member:
            previous, who = self._by_member[member]
            if previous == share:
                raise DuplicateShare(f"this share was already entered by {who}")
            raise DuplicateShare(
                f"a different share with group {share.group_index + 1}, member {share.index + 1} was already "
                f"entered by {who}; one of the two cards is wrong")
        try:
            self._state.add_share(share)
        except MnemonicError:
            raise ShareSetMismatch("this share's group parameters do not match the shares entered so far") from None
        self._by_member[member] = (share, name)
        receipt = ShareReceipt(name, share.identifier, share.group_index, share.index)
        self.receipts.append(receipt)
        return receipt

    # -- progress ----------------------------------------------------------

    @property
    def set_id(self) -> int | None:
        return self._state.parameters.identifier if self._state.parameters else None

    @property
    def groups_needed(self) -> int:
        return self._state.parameters.group_threshold if self._state.parameters else 0

    def groups(self) -> list[GroupProgress]:
        params = self._state.parameters
        if params is None:
            return []
        out = []
        for index in range(params.group_count):
            entered, needed = self._state.group_status(index)
            out.append(GroupProgress(index, entered, max(needed, 0)))
        return out

    @property
    def complete(self) -> bool:
        return self._state.is_complete()

    def describe_progress(self) -> str:
        if self._state.parameters is None:
            return "no share entered yet"
        parts = []
        for g in self.groups():
            need = str(g.needed) if g.needed else "?"
            parts.append(f"group {g.group_index + 1}: {g.entered} of {need}")
        groups = f"{self._state.groups_complete()} of {self.groups_needed} group(s) complete"
        return f"{groups} ({'; '.join(parts)})"

    # -- combining ---------------------------------------------------------

    def combine(self, passphrase: str = "") -> RecoveryIdentity:
        if not self.complete:
            raise NotEnoughShares(f"not enough shares to combine: {self.describe_progress()}")
        if not all(32 <= ord(c) <= 126 for c in passphrase):
            raise WrongRecoveryKey("a SLIP-39 passphrase holds only printable ASCII characters")
        secret = self._state.recover(passphrase.encode("ascii"))
        identity = RecoveryIdentity(secret)
        if self.expected_fingerprint and identity.fingerprint != self.expected_fingerprint:
            raise WrongRecoveryKey(
                f"the combined key ({identity.fingerprint}) is not the snapshot's recovery key "
                f"({self.expected_fingerprint})")
        return identity
