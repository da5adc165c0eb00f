"""The ceremony socket's messages: small JSON objects, each behind a 4-byte length, with bounded sizes.

Every message is a JSON object with a ``type`` and a fixed set of fields of fixed types; anything else is a
``CeremonyProtocolError`` (a peer that sends it is dropped). The share words cross the socket once, in a
``share`` message from the custodian's process to the operator's, and are never echoed back.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

from enigm_recover.errors import CeremonyProtocolError

VERSION = 1
MAX_MESSAGE = 16 * 1024  # a share is 33 words of at most 8 letters; a hello names a few short things
_LENGTH = struct.Struct(">I")

# type -> {field: type}; every field is required and no other is allowed.
MESSAGES: dict[str, dict[str, type]] = {
    # operator -> custodian, first: what the custodian checks before typing anything
    "hello": {"version": int, "ceremony": str, "fingerprint": str, "operator": str, "host": str, "runbook": str},
    # custodian -> operator: the ceremony id typed back and the custodian's name
    "confirm": {"ceremony": str, "custodian": str},
    # operator -> custodian: the confirmation holds, send the share
    "ready": {"os_user": str},
    # custodian -> operator: the share (checked on the custodian's side first)
    "share": {"words": str},
    # operator -> custodian: the share's verdict (never the words)
    "verdict": {"accepted": bool, "code": int, "reason": str, "hint": str, "progress": str},
    # operator -> custodian: the join is refused (outside the group, too many attempts, closed, wrong id ...)
    "refused": {"code": int, "reason": str, "hint": str},
}


def encode(kind: str, **fields: Any) -> bytes:
    message = {"type": kind, **fields}
    check(message)
    body = json.dumps(message, ensure_ascii=True, separators=(",", ":")).encode()
    if len(body) > MAX_MESSAGE:
        raise CeremonyProtocolError(f"a {kind} message would be {len(body):,} bytes, more than {MAX_MESSAGE:,}")
    return _LENGTH.pack(len(body)) + body


def check(message: Any) -> dict[str, Any]:
    """The message, if it is one of ``MESSAGES`` exactly; CeremonyProtocolError otherwise."""
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise CeremonyProtocolError("a ceremony message is not a JSON object with a type")
    fields = MESSAGES.get(message["type"])
    if fields is None:
        raise CeremonyProtocolError("a ceremony message has an unknown type")
    if set(message) != {"type", *fields}:
        raise CeremonyProtocolError(f"a {message['type']} message has missing or unknown fields")
    for name, kind in fields.items():
        value = message[name]
        if type(value) is not kind:  # bool is no int here, nor int a bool
            raise CeremonyProtocolError(f"a {message['type']} message's {name} is not a {kind.__name__}")
    return message


def send(sock: socket.socket, kind: str, **fields: Any) -> None:
    sock.sendall(encode(kind, **fields))


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 65536))
        if not chunk:
            raise ConnectionResetError("the other side closed the ceremony socket")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def receive(sock: socket.socket, *expected: str) -> dict[str, Any]:
    """The next message, which must be one of the ``expected`` types. ConnectionError when the peer is gone,
    socket.timeout when it said nothing in time."""
    (length,) = _LENGTH.unpack(_read_exactly(sock, _LENGTH.size))
    if length > MAX_MESSAGE:
        raise CeremonyProtocolError(f"a ceremony message announced {length:,} bytes, more than {MAX_MESSAGE:,}")
    try:
        message = json.loads(_read_exactly(sock, length).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise CeremonyProtocolError("a ceremony message is not JSON") from None
    message = check(message)
    if expected and message["type"] not in expected:
        raise CeremonyProtocolError(f"expected a {' or '.join(expected)} message, got {message['type']}")
    return message
