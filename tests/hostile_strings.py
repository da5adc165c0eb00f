"""Hostile strings: text an attacker may put wherever the tool reads from outside (live records, card and
prompt names, runbook texts and file names, paths, host names), for every test of an output surface.

``HOSTILE`` pairs an id with a string; ``raw_controls`` finds what must never reach a terminal, a report
or the app raw; ``markdown_html`` renders Markdown the way a report reader would.
"""

from __future__ import annotations

import unicodedata

HOSTILE: list[tuple[str, str]] = [
    ("rich-link", "[link=https://evil.example]click[/link]"),
    ("rich-unbalanced", "[b]bold[/b][/]"),
    ("rich-style", "[reverse red on white]alert[/]"),
    ("markdown", "**x** _y_ [z](https://evil.example) ![i](https://evil.example/i.png) `c` <b>h</b> &amp; a|b"),
    ("markdown-block", "# heading"),
    ("csi-clear", "\x1b[2J\x1b[H\x1b[31mred"),
    ("osc-title", "\x1b]0;pwned\x07"),
    ("osc8-link", "\x1b]8;;https://evil.example\x1b\\text\x1b]8;;\x1b\\"),
    ("c1", "\x9b2J\x9d0;c1\x9c\x85"),
    ("bidi-override", "admin\u202egpj.exe\u202c"),
    ("bidi-isolate", "a\u2066b\u2067c\u2068d\u2069"),
    ("zero-width", "a\u200bb\u200dc\ufeff"),
    ("line-separators", "one\u2028two\u2029three"),
    ("nul", "a\x00b"),
    ("cr-backspace-del", "ok\rFORGED\x08\x08\x7f"),
    ("newline", "first\nenigm-recover: forged line"),
    ("tab", "a\tb"),
    ("invalid-utf8", b"bad\xff\xfeend".decode("utf-8", "surrogateescape")),
]

HOSTILE_IDS = [name for name, _ in HOSTILE]
# What a SQLite TEXT value cannot hold through Python's sqlite3 (it must encode as UTF-8).
NOT_IN_SQLITE = {"invalid-utf8"}

_NEVER_RAW = ("Cc", "Cf", "Cs", "Zl", "Zp")


def raw_controls(text: str, allowed: str = "\n\t") -> list[str]:
    """The characters of ``text`` a terminal or a bidi-aware viewer acts on (controls, format characters,
    separators, undecodable bytes), other than those ``allowed``, each as its repr."""
    return sorted({repr(c) for c in text if c not in allowed and unicodedata.category(c) in _NEVER_RAW})


def as_file_name(text: str) -> str:
    """``text`` as one path component (no '/', no NUL), keeping everything else hostile."""
    return text.replace("/", "\u2215").replace("\x00", "NUL") or "empty"


def markdown_html(text: str) -> str:
    """``text`` rendered as CommonMark (with GFM tables), as a report reader would see it."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable("table").render(text)
