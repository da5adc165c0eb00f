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
    RecipientKindMismatch,
)
from enigm_recover.quorum.names import custodian_name_problem
from enigm_recover.quorum.recipients import DEFAULT_KIND, RecipientKind, recipient_kind
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
    if len(finished) >= SHARE_WORDS and not typing:
        current = (f"all {SHARE_WORDS} words typed — Enter to check the share" if len(finished) == SHARE_WORDS
                   else f"{len(finished)} words: a share has {SHARE_WORDS} — one is repeated or extra")
    elif position > SHARE_WORDS:
        current = f"{position} words: a share has {SHARE_WORDS} — one is repeated or extra"
    elif not typing:
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

    def __init__(self, expected_fingerprint: str | None = None, expected_recipient: str | None = None) -> None:
        self.expected_fingerprint = expected_fingerprint
        # the kind of key expected (from the snapshot's or recovery.pub's recipient), when known
        self.expected_kind = recipient_kind(expected_recipient) if expected_recipient else None
        self.card_kinds: set[RecipientKind] = set()  # the kinds the cards entered so far name
        self._state = RecoveryState()
        self._by_member: dict[tuple[int, int], tuple[Share, str]] = {}
        self.receipts: list[ShareReceipt] = []

    # -- entering ----------------------------------------------------------

    def name_problem(self, custodian: str) -> str | None:
        """Why ``custodian`` cannot enter a share (checked before the first word is typed), or None."""
        name = custodian.strip()
        if (problem := custodian_name_problem(name)) is not None:
            return problem
        if any(r.custodian == name for r in self.receipts):
            return f"{name} has already entered a share; each custodian enters one"
        return None

    def add(self, text: str, custodian: str | None = None, kind: RecipientKind | None = None) -> ShareReceipt:
        """Check and keep one share; ``custodian`` (from a card or a prompt) meets the rule of ``keys init``;
        ``kind``, the kind of key a card names, must be the expected one."""
        name = (custodian or f"custodian-{len(self.receipts) + 1}").strip()
        if kind is not None and self.expected_kind is not None and kind is not self.expected_kind:
            raise RecipientKindMismatch(
                f"this card is of a {kind.label} recovery key, and the key expected "
                f"({self.expected_fingerprint}) is a {self.expected_kind.label} key")
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
        if kind is not None:
            self.card_kinds.add(kind)
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
        first = self.expected_kind or next(iter(self.card_kinds), None) or DEFAULT_KIND
        identity = RecoveryIdentity(secret, first)
        if not self.expected_fingerprint or identity.fingerprint == self.expected_fingerprint:
            return identity
        if self.expected_kind is None:  # the kind is not known: the secret may stand for a key of the other kind
            other = identity.as_kind(RecipientKind.X25519 if first is RecipientKind.HYBRID else RecipientKind.HYBRID)
            if other.fingerprint == self.expected_fingerprint:
                return other
        if self.expected_kind is not None and self.card_kinds and self.expected_kind not in self.card_kinds:
            kind = next(iter(self.card_kinds))
            raise RecipientKindMismatch(
                f"the cards are of a {kind.label} recovery key, and the key expected "
                f"({self.expected_fingerprint}) is a {self.expected_kind.label} key")
        raise WrongRecoveryKey(
            f"the combined key ({identity.fingerprint}) is not the snapshot's recovery key "
            f"({self.expected_fingerprint})")


@dataclass(frozen=True)
class WordProblem:
    """A word that cannot be right, by its position (1-based) — never its letters."""

    position: int
    reason: str


class ShareDraft:
    """One share being typed, word by word, held by position (like trezor's RecoveryState for one share).

    A word is checked against the word list the moment it is set, so a slip is flagged at its position at
    once and can be corrected in place (``set_word``) without retyping the others. The checksum, which
    needs all the words, is judged only when the draft is ``complete``. A rejected draft keeps its words so
    the custodian can correct them; ``clear`` empties it.
    """

    def __init__(self, length: int = SHARE_WORDS) -> None:
        self.length = length
        self._words: list[str | None] = [None] * length

    def set_word(self, position: int, token: str) -> str | None:
        """Put ``token`` at ``position`` (1-based); returns the full word it fixes, or None if it fixes none."""
        if not 1 <= position <= self.length:
            raise ShareWordError(f"a share has {self.length} words; there is no word {position}",
                                 f"type a position from 1 to {self.length}")
        token = token.strip().lower()
        word = token if token in WORD_INDEX_MAP else complete_word(token) if len(token) == 4 else None
        self._words[position - 1] = word if word is not None else (token or None)
        return word

    def clear_word(self, position: int) -> None:
        self._words[position - 1] = None

    def clear(self) -> None:
        self._words = [None] * self.length

    def load(self, text: str) -> None:
        """Fill the draft from a whole share typed at once (words past the share's length are ignored)."""
        self.clear()
        for position, token in enumerate(text.split()[: self.length], 1):
            self.set_word(position, token)

    @property
    def filled(self) -> int:
        return sum(word is not None for word in self._words)

    @property
    def next_position(self) -> int | None:
        """The first empty position (1-based), or None when every word is in."""
        for index, word in enumerate(self._words):
            if word is None:
                return index + 1
        return None

    def problems(self) -> list[WordProblem]:
        """Words that are in the draft but in no word list, by position."""
        return [WordProblem(i, "not a SLIP-39 word") for i, w in enumerate(self._words, 1)
                if w is not None and w not in WORD_INDEX_MAP]

    @property
    def complete(self) -> bool:
        return self.next_position is None and not self.problems()

    def counter(self) -> str:
        """'12 of 33 words' — never past the share's length."""
        return f"{min(self.filled, self.length)} of {self.length} words"

    def text(self) -> str:
        """The words as one share (for ``ShareEntry.add``); only when complete."""
        return " ".join(w for w in self._words if w is not None)

    def verdict(self) -> str | None:
        """None when the words form a share whose checksum matches; else what to check."""
        if (bad := self.problems()):
            return (f"word{'s' if len(bad) > 1 else ''} {', '.join(str(p.position) for p in bad)} "
                    "not in the SLIP-39 word list: check and correct them on the card")
        if (missing := self.next_position) is not None:
            return f"word {missing} is still missing ({self.counter()})"
        try:
            Share.from_mnemonic(self.text())
        except MnemonicError:
            return ("the checksum does not match: every word is a SLIP-39 word, so one is mistyped as "
                    "another or two are swapped — re-read the card word by word and correct the one that differs")
        return None
