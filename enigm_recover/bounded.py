"""One bounded reader for every file or stream that comes from outside.

Runbooks, the config file, share files, key files, allowed_signers, known_hosts,
manifests, the tool's own state files and standard input are all read here:
a file must be a regular file (a device, a FIFO, a folder or a socket is refused
before a byte is read, so neither ``/dev/zero`` nor a pipe nobody writes to can
exhaust memory or hang), its size is checked before reading, and at most
``limit + 1`` bytes are ever read (a file growing meanwhile is caught too). A
TOML document's nesting is checked before the parser sees it (``tomllib``
recurses once per bracket, and its bookkeeping of dotted keys grows with the
square of their length), and whatever the parser still raises — ``ValueError``,
``RecursionError``, ``MemoryError``, ``OverflowError`` — becomes the caller's
error. Every refusal is an ``EnigmError`` of the caller's choosing, naming the
file, what is wrong with it (its kind or size) and the limit.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from pathlib import Path
from typing import Any, BinaryIO, Iterator, TextIO

from enigm_recover.errors import EnigmError, InputFileError

KiB = 1024
MiB = 1024 * KiB

# Limits per kind of file: generous for any real file, far below what would hurt.
SHARE_FILE = 64 * KiB  # a share card is about 1 KiB
PASSPHRASE_FILE = 64 * KiB
CONFIG_FILE = 1 * MiB
RUNBOOK_FILE = 256 * KiB
KEY_FILE = 1 * MiB  # an OpenSSH private or public key, an age recipient file
TRUST_FILE = 4 * MiB  # allowed_signers, known_hosts, ssh config
OWN_DOCUMENT = 16 * MiB  # the tool's own TOML documents: run state, reports, drill.toml
AUDIT_LOG = 256 * MiB
STDIN_SHARES = 1 * MiB  # every share given on standard input, together
STDIN_LINE = 64 * KiB  # one line of standard input

MAX_TOML_DEPTH = 32  # nested arrays and inline tables, and the parts of one dotted key

_READ_BLOCK = 1 * MiB


def human_size(size: int) -> str:
    """``1536`` -> ``1.5 KiB``; exact bytes below 1 KiB."""
    if size < KiB:
        return f"{size} bytes"
    for unit, scale in (("GiB", 1 << 30), ("MiB", MiB), ("KiB", KiB)):
        if size >= scale:
            value = size / scale
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{size} bytes"  # pragma: no cover


def kind_of(mode: int) -> str:
    """What a non-regular file is, in words."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _refuse_kind(path: Path, what: str, mode: int, error: type[EnigmError]) -> EnigmError:
    return error(f"{what} {path} is {kind_of(mode)}, not a regular file; refused",
                 f"give the path of the {what} itself")


def _too_large(path: Path, what: str, size: int | None, limit: int, error: type[EnigmError]) -> EnigmError:
    how_big = f"is {human_size(size)}" if size is not None else "grew while it was read, past"
    return error(f"{what} {path} {how_big}, more than the {human_size(limit)} a {what} may be; refused",
                 f"check that {path} is the {what} you meant")


def read_bounded(path: Path, limit: int, what: str, error: type[EnigmError] = InputFileError, *,
                 missing_ok: bool = False, missing_hint: str | None = None) -> bytes | None:
    """The bytes of the regular file ``path``, at most ``limit`` of them.

    ``what`` names the file in messages ("share file", "runbook", ...); ``error`` is the class raised for
    every refusal. A missing file returns None with ``missing_ok``, else raises ``error`` (with
    ``missing_hint`` when given). Symbolic links are followed, to a regular file only.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if missing_ok:
            return None
        raise error(f"{what} {path} does not exist", missing_hint) from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise error(f"{what} {path} cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
    if not stat.S_ISREG(st.st_mode):  # refused before opening: opening a FIFO or a device may block
        raise _refuse_kind(path, what, st.st_mode, error)
    if st.st_size > limit:
        raise _too_large(path, what, st.st_size, limit, error)
    try:
        # O_NONBLOCK: should a FIFO have replaced the file since, opening it does not wait for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        if missing_ok:
            return None
        raise error(f"{what} {path} does not exist", missing_hint) from None
    except OSError as exc:
        raise error(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)  # what was opened, not what the name pointed at a moment before
        if not stat.S_ISREG(st.st_mode):
            raise _refuse_kind(path, what, st.st_mode, error)
        if st.st_size > limit:
            raise _too_large(path, what, st.st_size, limit, error)
        return _read_at_most(fd, limit, lambda: _too_large(path, what, None, limit, error),
                             lambda exc: error(f"{what} {path} cannot be read: {exc.strerror or exc}"))
    finally:
        os.close(fd)


def _read_at_most(fd: int, limit: int, too_large: Any, failed: Any) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while total <= limit:
        try:
            block = os.read(fd, min(_READ_BLOCK, limit + 1 - total))
        except BlockingIOError:  # pragma: no cover - only a non-regular file, refused above
            break
        except OSError as exc:
            raise failed(exc) from None
        if not block:
            break
        chunks.append(block)
        total += len(block)
    if total > limit:
        raise too_large()
    return b"".join(chunks)


def read_text_bounded(path: Path, limit: int, what: str, error: type[EnigmError] = InputFileError, *,
                      missing_ok: bool = False, missing_hint: str | None = None) -> str | None:
    """``read_bounded``, decoded as UTF-8 (anything else is refused with ``error``)."""
    data = read_bounded(path, limit, what, error, missing_ok=missing_ok, missing_hint=missing_hint)
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path} is not UTF-8 text (byte {exc.start + 1} is not)") from None


def check_regular(path: Path, limit: int, what: str, error: type[EnigmError] = InputFileError) -> bool:
    """For a file a library reads itself: False if it is missing; refused unless a regular file within
    ``limit`` bytes."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    except (OSError, ValueError) as exc:
        raise error(f"{what} {path} cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise _refuse_kind(path, what, st.st_mode, error)
    if st.st_size > limit:
        raise _too_large(path, what, st.st_size, limit, error)
    return True


# -- standard input ----------------------------------------------------------------


def bounded_lines(stream: BinaryIO | TextIO, what: str = "standard input", *, limit: int = STDIN_SHARES,
                  line_limit: int = STDIN_LINE, error: type[EnigmError] = InputFileError) -> Iterator[str]:
    """The lines of a stream (a pipe, a terminal, a file; binary, or text already decoded), each at most
    ``line_limit`` bytes and all together at most ``limit``: endless input, or one endless line, is refused
    instead of read."""
    total = 0
    number = 0
    while True:
        number += 1
        line = stream.readline(line_limit + 1)
        if not line:
            return
        total += len(line)
        if len(line) > line_limit:
            raise error(f"line {number} of {what} is longer than {human_size(line_limit)}; refused",
                        "give one share per line")
        if total > limit:
            raise error(f"{what} holds more than {human_size(limit)}; refused", "give one share per line")
        if isinstance(line, str):
            yield line
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise error(f"line {number} of {what} is not UTF-8 text") from None
        yield text


# -- TOML ----------------------------------------------------------------------------

# Strings and comments (skipped whole: brackets and dots inside them do not count), and the characters that
# nest or separate. A multi-line string may end in up to two more quotes than its delimiter.
_TOML_TOKEN = re.compile(
    r'"""(?:[^"\\]|\\.|""?(?!"))*"{0,2}"""|"""[\s\S]*'
    r"|'''(?:[^']|''?(?!'))*'{0,2}'''|'''[\s\S]*"
    r'|"(?:[^"\\\n]|\\.)*"?' r"|'[^'\n]*'?" r'|#[^\n]*|[\[\]{}=,.\n]',
    re.DOTALL)


def toml_nesting(text: str) -> int:
    """How deep a TOML document nests, before parsing it: the deepest run of open arrays and inline tables,
    or the most parts of one dotted key or table header, whichever is more. A lexical scan, so a malformed
    document gets a number too (the parser then says what is wrong)."""
    stack: list[str] = []  # open brackets: "[" an array, "{k" / "{v" an inline table at a key / a value
    top = "key"  # outside brackets: at a "key", in a "header" ([table] or [[array of tables]]), at a "value"
    parts = 1  # parts of the key being read
    deepest = 0
    for match in _TOML_TOKEN.finditer(text):
        token = match.group()
        if token == "\n":
            if not stack:
                top, parts = "key", 1
        elif token == "[" and not stack and top in ("key", "header"):
            top = "header"  # the one or two brackets opening a header
        elif token in ("[", "{"):
            stack.append("[" if token == "[" else "{k")
            deepest = max(deepest, len(stack))
        elif token in ("]", "}"):
            if stack:
                stack.pop()
        elif token == "=":
            if stack and stack[-1] == "{k":
                stack[-1] = "{v"
            elif not stack:
                top = "value"
            parts = 1
        elif token == ",":
            if stack and stack[-1] == "{v":
                stack[-1] = "{k"
                parts = 1
        elif token == "." and ((not stack and top != "value") or (stack and stack[-1] == "{k")):
            parts += 1
            deepest = max(deepest, parts)
    return deepest


def _depth_of(value: Any) -> int:
    """The nesting depth of parsed data, without recursion."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            pending.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            pending.extend((v, depth + 1) for v in item)
        else:
            deepest = max(deepest, depth)
            continue
        deepest = max(deepest, depth + 1)
    return deepest


def loads_toml(text: str, where: str, error: type[EnigmError] = InputFileError, *,
               max_depth: int = MAX_TOML_DEPTH) -> dict[str, Any]:
    """Parse a TOML document from outside; ``where`` names it in messages ("config file /etc/x.toml")."""
    if toml_nesting(text) > max_depth:
        raise error(f"{where} nests arrays, tables or dotted keys more than {max_depth} deep; refused")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{where} is not valid TOML: {exc}") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise error(f"{where} is not valid TOML: {exc}") from None
    except (RecursionError, MemoryError, OverflowError) as exc:
        raise error(f"{where} is too complex to read ({type(exc).__name__}); refused") from None
    if _depth_of(doc) > max_depth:
        raise error(f"{where} nests arrays, tables or dotted keys more than {max_depth} deep; refused")
    return doc


def load_toml_file(path: Path, limit: int, what: str, error: type[EnigmError] = InputFileError, *,
                   missing_ok: bool = False) -> dict[str, Any] | None:
    """A TOML file from outside: bounded, UTF-8, nesting checked. None if missing and ``missing_ok``."""
    text = read_text_bounded(path, limit, what, error, missing_ok=missing_ok)
    if text is None:
        return None
    return loads_toml(text, f"{what} {path}", error)
