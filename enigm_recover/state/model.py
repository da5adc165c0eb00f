"""The platform's recovery-critical record model.

Four kinds, in the fixed order they are restored and sealed. Each field has a
type and a bound; none can hold free text long enough for message content
(device reasons are short codes, settings values are small JSON documents).
Records travel as tuples in field order (as rows come from a store) and, in
payloads, as canonical JSON lines.
"""

from __future__ import annotations

import json
import re
from operator import itemgetter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

IDENTITY_STATUSES = ("active", "suspended", "deleted")
DEVICE_STATES = ("pending", "active", "suspended", "revoked", "retired")
TERMINAL_DEVICE_STATES = frozenset({"revoked", "retired"})
MAX_SETTING_VALUE_BYTES = 4096

# Value syntax, as regular-expression sources (ASCII only; none admits '"' or '\\', so these
# values stand in a JSON line without escapes).
TIMESTAMP = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z"
IDENTIFIER = r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}"
HANDLE = r"[a-z0-9][a-z0-9._-]{0,63}"
PUBLIC_KEY = r"[A-Za-z0-9+/]{43}="  # base64 of 32 bytes
REASON = r"[a-z0-9-]{0,64}"
SETTING_KEY = r"[a-z][a-z0-9_.-]{0,127}"
TIMESTAMP_RE = re.compile(TIMESTAMP)


def _one_of(values: Iterable[str]) -> str:
    return "(?:" + "|".join(re.escape(v) for v in values) + ")"


@dataclass(frozen=True)
class Field:
    """A record field: its SQL type, its syntax, and how to explain a bad value.

    ``syntax`` is the regular expression a text value must match whole; INTEGER
    fields are positive 32-bit integers; ``json_text`` fields hold a small JSON
    document as text (the one kind of value that needs escaping in a line).
    """

    name: str
    sql_type: str  # "TEXT" or "INTEGER"
    describe: str
    syntax: str | None = None
    json_text: bool = False
    check: Callable[[Any], bool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.sql_type == "INTEGER":
            check: Callable[[Any], bool] = _positive_int
        elif self.json_text:
            check = _json_text
        else:
            pattern = re.compile(self.syntax or "", re.ASCII)
            check = lambda v: isinstance(v, str) and pattern.fullmatch(v) is not None  # noqa: E731
        object.__setattr__(self, "check", check)


@dataclass(frozen=True)
class Kind:
    name: str
    table: str
    fields: tuple[Field, ...]
    primary_key: tuple[str, ...]
    changed_at: str  # the field that says when a record last changed (conflict detection)
    field_names: tuple[str, ...] = field(init=False)
    key_positions: tuple[int, ...] = field(init=False)
    sort_key: Callable[[tuple[Any, ...]], Any] = field(init=False, repr=False, compare=False)
    key_of_row: Callable[[tuple[Any, ...]], tuple[Any, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = tuple(f.name for f in self.fields)
        positions = tuple(names.index(k) for k in self.primary_key)
        object.__setattr__(self, "field_names", names)
        object.__setattr__(self, "key_positions", positions)
        # sort_key: a C-level getter ordering rows like key_of_row (the bare value for one-column keys);
        # key_of_row: the key as a tuple, as the engine passes keys around.
        getter = itemgetter(*positions)
        object.__setattr__(self, "sort_key", getter)
        object.__setattr__(self, "key_of_row", (lambda row: (getter(row),)) if len(positions) == 1 else getter)

    def key_of(self, record: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(record[name] for name in self.primary_key)

    def position(self, name: str) -> int:
        return self.field_names.index(name)


def _positive_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 1 <= v < 2**31


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259)")


def _json_text(v: Any) -> bool:
    if not isinstance(v, str) or len(v.encode()) > MAX_SETTING_VALUE_BYTES:
        return False
    try:
        json.loads(v, parse_constant=_reject_constant)
    except ValueError:
        return False
    return True


_WHEN = "a UTC time like 2026-01-31T12:00:00Z"

IDENTITY = Kind(
    "identity",
    "identities",
    (
        Field("account_id", "TEXT", "an account id", IDENTIFIER),
        Field("handle", "TEXT", "a lowercase handle of at most 64 characters", HANDLE),
        Field("identity_key", "TEXT", "a base64 32-byte public key", PUBLIC_KEY),
        Field("key_version", "INTEGER", "a positive integer"),
        Field("status", "TEXT", "one of " + "|".join(IDENTITY_STATUSES), _one_of(IDENTITY_STATUSES)),
        Field("created_at", "TEXT", _WHEN, TIMESTAMP),
        Field("updated_at", "TEXT", _WHEN, TIMESTAMP),
    ),
    ("account_id",),
    changed_at="updated_at",
)

DEVICE = Kind(
    "device",
    "devices",
    (
        Field("device_id", "TEXT", "a device id", IDENTIFIER),
        Field("account_id", "TEXT", "an account id", IDENTIFIER),
        Field("device_key", "TEXT", "a base64 32-byte public key", PUBLIC_KEY),
        Field("state", "TEXT", "one of " + "|".join(DEVICE_STATES), _one_of(DEVICE_STATES)),
        Field("enrolled_at", "TEXT", _WHEN, TIMESTAMP),
        Field("state_changed_at", "TEXT", _WHEN, TIMESTAMP),
        Field("reason", "TEXT", "a short lowercase reason code", REASON),
    ),
    ("device_id",),
    changed_at="state_changed_at",
)

SETTING = Kind(
    "setting",
    "settings",
    (
        Field("key", "TEXT", "a dotted lowercase setting key", SETTING_KEY),
        Field("value", "TEXT", f"a JSON document of at most {MAX_SETTING_VALUE_BYTES} bytes", json_text=True),
        Field("updated_at", "TEXT", _WHEN, TIMESTAMP),
    ),
    ("key",),
    changed_at="updated_at",
)

ROLE = Kind(
    "role",
    "roles",
    (
        Field("operator", "TEXT", "an operator id", IDENTIFIER),
        Field("role", "TEXT", "a role name", IDENTIFIER),
        Field("granted_by", "TEXT", "an operator id", IDENTIFIER),
        Field("granted_at", "TEXT", _WHEN, TIMESTAMP),
    ),
    ("operator", "role"),
    changed_at="granted_at",
)

KINDS: tuple[Kind, ...] = (IDENTITY, DEVICE, SETTING, ROLE)
KIND_BY_NAME: dict[str, Kind] = {k.name: k for k in KINDS}
KIND_ORDER: dict[str, int] = {k.name: i for i, k in enumerate(KINDS)}


def kind_named(name: str) -> Kind:
    try:
        return KIND_BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown kind {name!r}; kinds are {', '.join(KIND_BY_NAME)}") from None


def invalid_fields(kind: Kind, record: Mapping[str, Any]) -> list[str]:
    """Names of the fields of `record` whose value breaks the model (empty when valid)."""
    return [f.name for f in kind.fields if not f.check(record.get(f.name))]
