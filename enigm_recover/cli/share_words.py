"""The terminal's hidden, word-by-word share prompt.

The whole share is typed at one hidden prompt (or pasted); the draft then asks,
still hidden, only for what needs fixing: a word that is in no word list, by
its position; a missing word; after a checksum that does not match, the
position of a word to correct. The words already typed are kept, so one slip
never costs a custodian the other 32 words. Nothing typed is ever echoed:
positions are shown back only when they are numbers.
"""

from __future__ import annotations

import getpass
import sys
from typing import Any, Callable

from enigm_recover.errors import ShareError
from enigm_recover.quorum.entry import ShareDraft

Ask = Callable[[str], str]


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def _fix_words(draft: ShareDraft, ask: Ask) -> bool:
    """Ask for each flagged or missing word; False when the custodian gives up (an empty answer)."""
    while True:
        problems = draft.problems()
        if problems:
            position = problems[0].position
            _say(f"word {position} is not in the SLIP-39 word list — retype word {position} from the card "
                 "(Enter to submit the share as it is)")
        elif (position := draft.next_position) is not None:
            _say(f"{draft.counter()} so far: word {position} is missing (Enter to submit the share as it is)")
        else:
            return True
        reply = ask(f"Word {position} of {draft.length}: ").strip()
        if not reply:
            return False
        draft.set_word(position, reply.split()[0])


def _position_to_correct(draft: ShareDraft, ask: Ask) -> int | None:
    """A position the custodian wants to correct, or None to give the share up."""
    while True:
        reply = ask(f"Position of a word to correct, 1 to {draft.length} (Enter to clear the share): ").strip()
        if not reply:
            return None
        if reply.isdigit() and 1 <= int(reply) <= draft.length:
            return int(reply)
        _say(f"type a number from 1 to {draft.length}")  # never the reply: it may be share words


def enter_share_words(quorum: Any, name: str, typed: str | None, ask: Ask | None = None) -> bool:
    """Read one custodian's share on the terminal and offer it to the quorum; True once it is accepted."""
    ask = ask or getpass.getpass
    draft = ShareDraft()
    typed_words = ask(f"Share words of {name}: ")
    if len(typed_words.split()) > draft.length:  # a word repeated or extra: positions no longer tell which
        try:
            quorum.add(typed_words, name, typed)
        except ShareError as exc:
            _say(f"rejected: {exc.one_line()}")
            return False
        return True
    draft.load(typed_words)
    while True:
        _fix_words(draft, ask)
        try:
            quorum.add(draft.text(), name, typed)
        except ShareError as exc:
            _say(f"rejected: {exc.one_line()}")
            if not draft.complete or draft.verdict() is None:  # not a slip inside the words: start again
                return False
            _say(f"the words are kept (hidden): {draft.verdict()}")
            position = _position_to_correct(draft, ask)
            if position is None:
                draft.clear()
                return False
            draft.set_word(position, (ask(f"Word {position} of {draft.length}: ").split() or [""])[0])
            continue
        return True
