"""Diagnostic logs on stderr (`-v`, `--debug`), and the redaction every log line passes through.

The engine logs through ``logging`` (one logger per module, under ``enigm_recover``); asyncssh and
psycopg log through it too. No code logs a secret on purpose, and the one handler installed here
redacts, from every formatted line (message, arguments and traceback alike), what a secret looks
like: a run of SLIP-39 share words, an age secret key, a PEM or OpenSSH private key, a password in a
connection string. asyncssh's debug level never goes to 3, its packet dumps.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from contextlib import contextmanager
from functools import lru_cache
from typing import Iterator

QUIET, VERBOSE, DEBUG = 0, 1, 2
# Libraries whose logs -v and --debug show beside ours: SSH negotiation, and the PostgreSQL driver.
LIBRARIES = ("asyncssh", "psycopg")
SHARE_WORDS_RUN = 3  # this many SLIP-39 words in a row are taken for part of a share
REDACTED = "[redacted]"

_handler: logging.Handler | None = None


@lru_cache(maxsize=1)
def _share_words() -> re.Pattern[str]:
    from shamir_mnemonic.wordlist import WORDLIST

    word = "(?:" + "|".join(sorted(WORDLIST, key=len, reverse=True)) + ")"
    return re.compile(rf"(?i)\b{word}(?:[\s,;:\-]+{word}){{{SHARE_WORDS_RUN - 1},}}\b")


_SECRETS = (
    re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.S),
    re.compile(r"(?i)AGE-SECRET-KEY-[A-Z0-9-]+"),
    re.compile(r"(?i)(?<=[a-z+]://)([^/:@\s]*):[^@\s/]*(?=@)"),  # user:password@ in any URL
    re.compile(r"(?i)(?<![a-z_])(password|passphrase)(\s*[=:]\s*)('[^']*'|\"[^\"]*\"|[^\s&,;)]+)"),
)


def redact(text: str) -> str:
    """``text`` with anything shaped like a secret replaced by ``[redacted]``."""
    for pattern in _SECRETS:
        text = pattern.sub(_replacement, text)
    return _share_words().sub(REDACTED, text)


def _replacement(match: re.Match[str]) -> str:
    groups = match.groups()
    if len(groups) == 1:  # a URL's user info: keep the user
        return f"{groups[0]}:{REDACTED}"
    if len(groups) == 3:  # password=...: keep the name
        return f"{groups[0]}{groups[1]}{REDACTED}"
    return REDACTED


class RedactingFormatter(logging.Formatter):
    """Formats a record whole (with its traceback), redacts the result, and makes it inert for a terminal
    (a server's banner or version string is outside text)."""

    def format(self, record: logging.LogRecord) -> str:
        from enigm_recover.inert import for_terminal

        return for_terminal(redact(super().format(record)), multiline=True)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (tests and the app replace it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN201
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # noqa: ANN001
        pass


def configure(level: int) -> None:
    """Show warnings always; with VERBOSE what the tool does; with DEBUG also SSH negotiation and timings."""
    global _handler
    root = logging.getLogger()
    if _handler is None:
        _handler = _StderrHandler()
        root.addHandler(_handler)
    show = {QUIET: logging.WARNING, VERBOSE: logging.INFO}.get(level, logging.DEBUG)
    fmt = "enigm-recover: %(levelname)s %(name)s: %(message)s"
    if level >= DEBUG:
        fmt = "enigm-recover: %(relativeCreated)8.0f ms %(levelname)s %(name)s: %(message)s"
    _handler.setFormatter(RedactingFormatter(fmt))
    for old in list(_handler.filters):
        _handler.removeFilter(old)
    if not level:  # the tool's own warnings only: a library's (asyncio's garbage, say) waits for -v
        _handler.addFilter(lambda record: record.name == "enigm_recover" or record.name.startswith("enigm_recover."))
    root.setLevel(logging.WARNING)
    for name in ("enigm_recover", *LIBRARIES):
        logging.getLogger(name).setLevel(show)
    logging.getLogger("asyncssh.sftp").setLevel(logging.INFO if level else logging.WARNING)  # not every read
    if level:
        import asyncssh

        asyncssh.set_debug_level(2 if level >= DEBUG else 1)  # never 3: packet dumps


@contextmanager
def timed(log: logging.Logger, what: str) -> Iterator[None]:
    """Log at DEBUG how long ``what`` took (also when it fails)."""
    started = time.perf_counter()
    outcome = "failed after"
    try:
        yield
        outcome = "took"
    finally:
        log.debug("%s %s %.3f s", what, outcome, time.perf_counter() - started)
