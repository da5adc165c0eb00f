"""Text from outside made inert, once per kind of output.

Live records, names on share cards and at prompts, runbook texts and file
names, paths and host names may hold anything an attacker chose. Before such
text reaches a terminal, a report or the app it passes through one of these:

- ``for_terminal``: every character a terminal would act on (C0 and C1
  controls, DEL, escape sequences, bidirectional overrides and other format
  characters, line separators, undecodable bytes) is shown as a visible escape
  such as ``\\x1b``, ``\\u202e`` or ``\\xff``. Everything else is left as it is.
- ``for_markdown``: the same, then Markdown's inline metacharacters escaped,
  so a name never becomes a link, an image, emphasis or HTML in a report.
- ``for_toml``: a TOML document's remaining raw characters a terminal acts on
  (C1 controls, format characters) written as TOML escapes.
- ``TerminalStream``: a text stream that applies ``for_terminal`` (keeping
  newlines and tabs) to everything written to it: the command line's stdout
  and stderr.

The app passes outside text to widgets as plain ``rich.text.Text`` built from
``for_terminal`` (see ``app/format.py``): never as markup.
"""

from __future__ import annotations

import re
from typing import Any, TextIO

# Characters a terminal (or a bidi-aware viewer) acts on: C0 but newline and tab, DEL, C1, lone surrogates
# (undecodable bytes under surrogateescape), and Unicode's format and separator characters (categories Cf,
# Zl, Zp: bidi embeddings, overrides and isolates, zero-width characters, the BOM, U+2028/U+2029, tags).
_ALWAYS = "\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f\\ud800-\\udfff"
_FORMAT_CLASS = ("\\u00ad\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u0890-\\u0891\\u08e2\\u180e\\u200b-\\u200f"
                 "\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ufeff\\ufff9-\\ufffb\\U000110bd\\U000110cd"
                 "\\U00013430-\\U0001343f\\U0001bca0-\\U0001bca3\\U0001d173-\\U0001d17a\\U000e0001"
                 "\\U000e0020-\\U000e007f")
_MULTILINE = re.compile(f"[{_ALWAYS}{_FORMAT_CLASS}]")
_ONE_LINE = re.compile(f"[\\t\\n{_ALWAYS}{_FORMAT_CLASS}]")
_TOML_RAW = re.compile(f"[\\x80-\\x9f\\ud800-\\udfff{_FORMAT_CLASS}]")


def visible(char: str) -> str:
    """One character as a visible escape: ``\\x1b``, ``\\u202e``, ``\\U000e0001``; an undecodable byte
    (a lone surrogate from surrogateescape) as the byte it stood for, ``\\xff``."""
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _escape(match: re.Match[str]) -> str:
    return visible(match.group())


def for_terminal(text: object, *, multiline: bool = False) -> str:
    """``text`` with every character a terminal acts on shown as a visible escape. Newlines and tabs are
    escaped too unless ``multiline`` (a value meant as one line cannot then forge the next)."""
    value = str(text)
    pattern = _MULTILINE if multiline else _ONE_LINE
    return pattern.sub(_escape, value) if pattern.search(value) else value


_MD_SPECIAL = re.compile(r"[\\`*\[\]<>!|&~]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
_MD_LINE_START = re.compile(r"^(\s*)([#+=>-])|^(\s*[0-9]+)([.)])")


def for_markdown(text: object) -> str:
    """``text`` for an inline place of a Markdown document (a list item, a table cell, after a label): one
    line, no raw control character, and no metacharacter that would make a link, an image, emphasis, code,
    HTML, an entity, a table column or a block (heading, list, quote) out of it."""
    value = _MD_SPECIAL.sub(lambda m: "\\" + m.group(), for_terminal(text))
    return _MD_LINE_START.sub(lambda m: (m.group(1) or m.group(3) or "") + "\\" + (m.group(2) or m.group(4)), value)


def for_markdown_code(text: object) -> str:
    """``text`` as a Markdown code span: shown as it is (controls escaped, on one line), its backticks too."""
    value = for_terminal(text)
    fence = "`" * (max((len(run) for run in re.findall(r"`+", value)), default=0) + 1)
    pad = " " if value.startswith("`") or value.endswith("`") or value.startswith(" ") else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def for_toml(document: str) -> str:
    """A TOML document (as tomli-w writes it: every string a basic string, its C0 controls already escaped)
    with the raw C1 controls and format characters left in its strings written as ``\\uXXXX`` escapes, and
    an undecodable byte written as the visible text ``\\xff``, so a reader of the file sees them escaped and
    the file stays valid UTF-8 TOML with the same values."""
    def escape(match: re.Match[str]) -> str:
        code = ord(match.group())
        if 0xD800 <= code <= 0xDFFF:
            return "\\\\" + visible(match.group())[1:]
        return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"

    return _TOML_RAW.sub(escape, document)


class TerminalStream:
    """A text stream that shows every character a terminal acts on as a visible escape (newlines and tabs
    pass): the command line's stdout and stderr, so no print of outside text can act on the terminal."""

    def __init__(self, stream: TextIO) -> None:
        self.unescaped = stream  # for the one writer that means its control sequences (progress)

    def write(self, text: str) -> int:
        self.unescaped.write(for_terminal(text, multiline=True))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:  # flush, fileno, isatty, encoding, buffer, ...
        return getattr(self.unescaped, name)
