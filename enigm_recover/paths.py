"""Paths as the operating system gives them, shown as text.

A POSIX file name is bytes; one that is not UTF-8 reaches Python with each undecodable byte
carried as a lone surrogate (PEP 383). Such a string opens the right file, but it cannot be
written as UTF-8: printing it, or putting it in a report or JSON, would fail or produce text that
strict readers refuse. The one rule: a path is *shown* as its UTF-8 text, with every byte that is
not UTF-8 written as ``\\xNN`` (the path itself is kept, untouched, for opening the file).
"""

from __future__ import annotations

import codecs
import os
from typing import Union

from enigm_recover.inert import visible

PathLike = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
ERRORS = "enigm-display"  # the codec error handler that applies the same rule to a text stream


def display_path(path: PathLike) -> str:
    """The path as text: valid UTF-8 as itself, any other byte as ``\\xNN``."""
    raw = os.fspath(path)
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "backslashreplace")
    return display_text(raw)


def display_text(text: str) -> str:
    """``text`` with any lone surrogate shown by the same rule (a name's raw byte as ``\\xNN``)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return "".join(visible(c) if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)


def is_text(text: str) -> bool:
    """Whether ``text`` can be written as UTF-8 as it is (a path that is not UTF-8 cannot)."""
    return display_text(text) == text


def _handler(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    return "".join(visible(c) for c in exc.object[exc.start:exc.end]), exc.end


codecs.register_error(ERRORS, _handler)
