"""The platform's recovery-critical record model.

Four kinds, in the fixed order they are restored and sealed. Each field has a
type and a bound; none can hold free text long enough for message content
(device reasons are short codes, settings values are small JSON documents).
Records travel as plain dicts in field order: they are cheap to stream and
their canonical JSON line is deterministic.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

IDENTITY_STATUSES = ("active", "suspended", "deleted")
DEVICE_STATES = ("pending", "active", "suspended", "revoked", "retired")
TERMINAL_DEVICE_STATES = frozenset({"revoked", "retired"})

TIMESTAMP_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
HANDLE_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
KEY_RE = re.compile(r"^[A-Za-z0-9+/]{43}=$")  # base64 of 32 bytes
REASON_RE = re.compile(r"^[a-z0-9-]{0,64}$")
SETTING_KEY_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,127}$")
MAX_SETTING_VALUE_BYTES = 4096


@dataclass(frozen=True)
class Field:
    name: str
    sql_type: str  # "TEXT" or "INTEGER"
    check: Callable[[Any], bool]
    describe: str
    nullable: bool = False


@dataclass(frozen=True)
class Kind:
    name: str
    table: str
    fields: tuple[Field, ...]
    primary_key: tuple[str, ...]
    field_names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "field_names", tuple(f.name for f in self.fields))

    def key_of(self, record: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(record[name] for name in self.primary_key)


def _matches(pattern: re.Pattern[str]) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, str) and pattern.fullmatch(v) is not None


def _one_of(values: Iterable[str]) -> Callable[[Any], bool]:
    allowed = frozenset(values)
    return lambda v: v in allowed


def _positive_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 1 <= v < 2**31


def _json_text(v: Any) -> bool:
    if not isinstance(v, str) or len(v.encode()) > MAX_SETTING_VALUE_BYTES:
        return False
    try:
        json.loads(v, parse_constant=_reject_constant)
    except ValueError:
        return False
    return True


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259)")


_ts = _matches(TIMESTAMP_RE)
_id = _matches(ID_RE)

IDENTITY = Kind(
    "identity",
    "identities",
    (
        Field("account_id", "TEXT", _id, "an account id"),
        Field("handle", "TEXT", _matches(HANDLE_RE), "a lowercase handle of at most 64 characters"),
        Field("identity_key", "TEXT", _matches(KEY_RE), "a base64 32-byte public key"),
        Field("key_version", "INTEGER", _positive_int, "a positive integer"),
        Field("status", "TEXT", _one_of(IDENTITY_STATUSES), "one of " + "|".join(IDENTITY_STATUSES)),
        Field("created_at", "TEXT", _ts, "a UTC time like 2026-01-31T12:00:00Z"),
        Field("updated_at", "TEXT", _ts, "a UTC time like 2026-01-31T12:00:00Z"),
    ),
    ("account_id",),
)

DEVICE = Kind(
    "device",
    "devices",
    (
        Field("device_id", "TEXT", _id, "a device id"),
        Field("account_id", "TEXT", _id, "an account id"),
        Field("device_key", "TEXT", _matches(KEY_RE), "a base64 32-byte public key"),
        Field("state", "TEXT", _one_of(DEVICE_STATES), "one of " + "|".join(DEVICE_STATES)),
        Field("enrolled_at", "TEXT", _ts, "a UTC time like 2026-01-31T12:00:00Z"),
        Field("state_changed_at", "TEXT", _ts, "a UTC time like 2026-01-31T12:00:00Z"),
        Field("reason", "TEXT", _matches(REASON_RE), "a short lowercase reason code"),
    ),
    ("device_id",),
)

SETTING = Kind(
    "setting",
    "settings",
    (
        Field("key", "TEXT", _matches(SETTING_KEY_RE), "a dotted lowercase setting key"),
        Field("value", "TEXT", _json_text, f"a JSON document of at most {MAX_SETTING_VALUE_BYTES} bytes"),
        Field("updated_at", "TEXT", _ts, "a UTC time like 2026-01-31T12:00:00Z"),
    ),
    ("key",),
)

ROLE = Kind(
    "role",
    "roles",
    (
        Field("operator", "TEXT", _id, "an operator id"),
        Field("role", "TEXT", _id, "a role name"),
        Field("granted_by", "TEXT", _id, "an operator id"),
        Field("granted_at", "TEXT", _ts, "a UTC time like 2026-01-31T12:00:00Z"),
    ),
    ("operator", "role"),
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
    bad = []
    for f in kind.fields:
        value = record.get(f.name)
        if value is None and f.nullable:
            continue
        if not f.check(value):
            bad.append(f.name)
    return bad
