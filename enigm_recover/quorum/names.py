"""Custodian names: one rule for the key ceremony, the cards read back and the names typed at a prompt.

A name names its card file (``<name>.share.txt``) and shows in audit logs, reports and on screens, so it
holds only letters, digits, '.', '_' and '-': never a space, a path separator, markup or a control
character.
"""

from __future__ import annotations

import re

CUSTODIAN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
RULE = "use letters, digits, '.', '_' or '-' (at most 64, starting with a letter or digit)"


def custodian_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a custodian's name (the name quoted with its controls escaped), or None."""
    if CUSTODIAN_RE.fullmatch(name):
        return None
    from enigm_recover.inert import for_terminal

    return f"custodian name '{for_terminal(name)}': {RULE}"
