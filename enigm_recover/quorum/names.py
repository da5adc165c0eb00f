"""Custodian names: one rule for the key ceremony, the cards read back and the names typed at a prompt.

A name names its card file (``<name>.share.txt``) and shows in audit logs, reports and on screens, so it
holds only letters, digits, '.', '_' and '-': never a space, a path separator, markup or a control
character. Nor is it a run of SLIP-39 words: share words typed at the wrong prompt must never be
shown back, kept in the audit log or printed in a report.
"""

from __future__ import annotations

import re

CUSTODIAN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
RULE = "use letters, digits, '.', '_' or '-' (at most 64, starting with a letter or digit)"
# A ceremony id is two list words and a number; three list words in a row are taken as share words.
SHARE_WORD_RUN = 3
SHARE_WORDS_REFUSED = ("this looks like share words, so it was neither shown nor recorded; "
                       "type the share only at the hidden share prompt")


def looks_like_share_words(text: str) -> bool:
    """True if ``text`` holds a run of SLIP-39 words (three or more, split by spaces or '-', '_', '.')."""
    from shamir_mnemonic.wordlist import WORDLIST

    words = set(WORDLIST)
    run = 0
    for token in re.split(r"[\s._,;:/-]+", text.lower()):
        if not token:
            continue
        run = run + 1 if token in words else 0
        if run >= SHARE_WORD_RUN:
            return True
    return False


def custodian_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a custodian's name (the name quoted with its controls escaped), or None.

    Share words are refused without being quoted."""
    if looks_like_share_words(name):
        return f"custodian name: {SHARE_WORDS_REFUSED}"
    if CUSTODIAN_RE.fullmatch(name):
        return None
    from enigm_recover.inert import for_terminal

    return f"custodian name '{for_terminal(name)}': {RULE}"


def ceremony_id_problem(typed: str) -> str | None:
    """Why a typed-back ceremony id must be refused unseen (it is share words), or None."""
    if looks_like_share_words(typed):
        return f"ceremony id: {SHARE_WORDS_REFUSED}"
    return None
