"""Share cards: the text file each custodian keeps (and types from).

A card names its custodian and the share's set id, group and member index,
and carries the SLIP-39 words numbered in rows, so a custodian can read them
aloud or type them without losing their place. ``read_share_file`` accepts a
card or a file holding only the words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from enigm_recover.bounded import SHARE_FILE, read_text_bounded
from enigm_recover.errors import InputFileError
from enigm_recover.quorum.names import custodian_name_problem
from enigm_recover.quorum.recipients import RecipientKind

CARD_TITLE = "ENIGM-RECOVER SHARE CARD"
KIND_LINE = "recovery key kind"
_NUMBERED_WORD = re.compile(r"\s*[0-9]+\.?\s+([A-Za-z]+)\s*")


@dataclass(frozen=True)
class ShareCard:
    custodian: str
    set_id: int
    group_index: int  # 0-based, as in SLIP-39
    group_threshold: int
    group_count: int
    member_index: int  # 0-based
    member_threshold: int
    member_count: int
    recipient_fingerprint: str
    words: tuple[str, ...]
    kind: RecipientKind | None = None  # None: a card of a key made before keys had kinds (X25519)

    def render(self) -> str:
        rows = []
        per_row = 4
        for start in range(0, len(self.words), per_row):
            cells = [f"{i + 1:>2}. {w:<10}" for i, w in enumerate(self.words[start:start + per_row], start)]
            rows.append("  " + "  ".join(cells).rstrip())
        return "\n".join([
            CARD_TITLE,
            "Keep this card offline. Type it only into enigm-recover during a recovery ceremony.",
            "",
            f"custodian: {self.custodian}",
            f"set id: {self.set_id}",
            f"group: {self.group_index + 1} of {self.group_count} "
            f"({self.group_threshold} group(s) needed; this group needs {self.member_threshold} "
            f"of {self.member_count} shares)",
            f"member index: {self.member_index + 1}",
            f"recovery key fingerprint: {self.recipient_fingerprint}",
            *([f"{KIND_LINE}: {self.kind.value} ({self.kind.label})"] if self.kind else []),
            "",
            "words:",
            *rows,
            "",
        ])


@dataclass(frozen=True)
class ShareText:
    """A share as read from a file: the words and, for a card, the custodian."""

    words: str
    custodian: str | None
    kind: RecipientKind | None = None  # the kind of key the card names, if it names one


def parse_share_text(text: str) -> ShareText:
    lines = text.splitlines()
    if lines and lines[0].strip() == CARD_TITLE:
        custodian = None
        kind = None
        words: list[str] = []
        in_words = False
        for line in lines[1:]:
            if line.startswith("custodian:"):
                custodian = line.split(":", 1)[1].strip()
                if (problem := custodian_name_problem(custodian)) is not None:
                    raise InputFileError(f"the card's {problem}", "use the card as keys init wrote it")
            elif line.startswith(KIND_LINE + ":") and not in_words:
                kind = card_kind(line.split(":", 1)[1])
            elif line.strip() == "words:":
                in_words = True
            elif in_words and line.strip():
                for cell in re.split(r"\s{2,}", line.strip()):
                    match = _NUMBERED_WORD.fullmatch(cell)
                    if match:
                        words.append(match.group(1))
                    else:
                        words.extend(cell.split())
        return ShareText(" ".join(words), custodian, kind)
    return ShareText(" ".join(text.split()), None)


def card_kind(text: str) -> RecipientKind:
    """The kind a card's ``recovery key kind:`` line names (its first word)."""
    word = (text.split() or [""])[0]
    try:
        return RecipientKind(word)
    except ValueError:
        raise InputFileError(f"the card names an unknown kind of recovery key ({word[:20]!r})",
                             "use the card as keys init wrote it") from None


def read_share_file(path: Path) -> ShareText:
    text = read_text_bounded(path, SHARE_FILE, "share file")
    assert text is not None
    try:
        return parse_share_text(text)
    except InputFileError as exc:
        raise InputFileError(f"share file {path}: {exc.message}", exc.hint) from None
