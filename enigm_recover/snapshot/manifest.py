"""The snapshot manifest: a small, signed TOML document.

Parsing is strict: every key is known, typed and required (``previous_id``
excepted); anything else is refused. See docs/FORMAT.md.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import tomli_w

from enigm_recover.bounded import loads_toml
from enigm_recover.errors import ManifestError, UnsupportedFormat
from enigm_recover.quorum.recovery_key import decode_recipient, recipient_fingerprint
from enigm_recover.snapshot.scope import check_manifest_scope
from enigm_recover.snapshot.timeform import EXPECTED, check_created_at
from enigm_recover.state.model import KIND_ORDER

FORMAT = "enigm-snapshot/1"
SNAPSHOT_ID_RE = re.compile(r"[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}")
ENCODING = "jsonl+zstd+age"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_ENV = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_PRINCIPAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")
MAX_MANIFEST_BYTES = 64 * 1024


def new_snapshot_id(created_at: datetime, token: str | None = None) -> str:
    return created_at.strftime("%Y%m%dT%H%M%SZ") + "-" + (token or secrets.token_hex(4))


def manifest_name(snapshot_id: str) -> str:
    return f"{snapshot_id}.manifest.toml"


def signature_name(snapshot_id: str) -> str:
    return f"{snapshot_id}.manifest.toml.sig"


def payload_name(snapshot_id: str) -> str:
    return f"{snapshot_id}.payload.age"


@dataclass(frozen=True)
class KindScope:
    fields: tuple[str, ...]
    count: int
    sha256: str  # of the kind's canonical JSON lines, uncompressed


@dataclass(frozen=True)
class Manifest:
    id: str
    created_at: datetime
    environment: str
    producer: str
    recipient: str
    payload_size: int
    payload_sha256: str
    scope: dict[str, KindScope]
    previous_id: str | None = None
    format: str = FORMAT
    recipient_fingerprint: str = field(default="")

    def __post_init__(self) -> None:
        if not self.recipient_fingerprint:
            object.__setattr__(self, "recipient_fingerprint", recipient_fingerprint(self.recipient))

    @property
    def counts(self) -> dict[str, int]:
        return {k: s.count for k, s in self.scope.items()}

    def to_toml(self) -> bytes:
        doc: dict[str, Any] = {
            "format": self.format,
            "id": self.id,
            "created_at": self.created_at,
            "environment": self.environment,
            "producer": self.producer,
        }
        if self.previous_id:
            doc["previous_id"] = self.previous_id
        doc["recovery"] = {"recipient": self.recipient, "fingerprint": self.recipient_fingerprint}
        doc["payload"] = {
            "file": payload_name(self.id),
            "encoding": ENCODING,
            "size": self.payload_size,
            "sha256": self.payload_sha256,
        }
        doc["scope"] = {
            kind: {"fields": list(s.fields), "count": s.count, "sha256": s.sha256}
            for kind, s in self.scope.items()
        }
        return tomli_w.dumps(doc).encode("utf-8")

    @classmethod
    def from_toml(cls, data: bytes) -> "Manifest":
        if len(data) > MAX_MANIFEST_BYTES:
            raise ManifestError(f"manifest is {len(data)} bytes, more than the {MAX_MANIFEST_BYTES} allowed")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ManifestError(f"manifest is not valid TOML: {exc}") from None
        doc = loads_toml(text, "manifest", ManifestError)
        if doc.get("format") == FORMAT:  # another format's time is not this reader's business
            check_created_at(text)
        try:
            return _parse(doc)
        except _UNEXPECTED as exc:  # a shape the checks above did not foresee: refused, never a crash
            raise ManifestError(f"manifest is malformed ({type(exc).__name__})") from None


# What a hostile document might still provoke inside the parser's checks; each is a malformed manifest.
_UNEXPECTED = (RecursionError, AttributeError, TypeError, ValueError, OverflowError, KeyError, IndexError)
MAX_INTEGER = 2**63 - 1  # TOML integers are 64-bit; Python's are not


def _take(doc: dict[str, Any], where: str, spec: dict[str, type], optional: frozenset[str] = frozenset()) -> dict[str, Any]:
    unknown = set(doc) - set(spec)
    if unknown:
        raise ManifestError(f"manifest {where}has unknown key {sorted(unknown)[0]!r}")
    out = {}
    for key, typ in spec.items():
        if key not in doc:
            if key in optional:
                continue
            raise ManifestError(f"manifest {where}lacks the key {key!r}")
        value = doc[key]
        if typ is int and (isinstance(value, bool) or not isinstance(value, int) or abs(value) > MAX_INTEGER):
            raise ManifestError(f"manifest {where}key {key!r} must be a 64-bit integer")
        if not isinstance(value, typ):
            raise ManifestError(f"manifest {where}key {key!r} must be a {typ.__name__}")
        out[key] = value
    return out


def _parse(doc: dict[str, Any]) -> Manifest:
    fmt = doc.get("format")
    if fmt != FORMAT:
        raise UnsupportedFormat(f"manifest format {fmt!r} is not supported (this version reads {FORMAT!r})")
    top = _take(
        doc,
        "",
        {"format": str, "id": str, "created_at": datetime, "environment": str, "producer": str,
         "previous_id": str, "recovery": dict, "payload": dict, "scope": dict},
        optional=frozenset({"previous_id"}),
    )
    if not SNAPSHOT_ID_RE.fullmatch(top["id"]):
        raise ManifestError(f"manifest id {top['id']!r} is malformed")
    if "previous_id" in top and not SNAPSHOT_ID_RE.fullmatch(top["previous_id"]):
        raise ManifestError("manifest previous_id is malformed")
    created = top["created_at"]
    if created.tzinfo is None or created.utcoffset() != timezone.utc.utcoffset(None) or created.microsecond:
        raise ManifestError(f"manifest created_at must be a UTC time in whole seconds, in the form {EXPECTED}")
    if top["id"][:16] != created.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ"):
        raise ManifestError("manifest id does not begin with its created_at time")
    if not _ENV.fullmatch(top["environment"]):
        raise ManifestError("manifest environment is malformed")
    if not _PRINCIPAL.fullmatch(top["producer"]):
        raise ManifestError("manifest producer is malformed")
    recovery = _take(top["recovery"], "[recovery] ", {"recipient": str, "fingerprint": str})
    try:
        decode_recipient(recovery["recipient"])
    except ValueError as exc:
        raise ManifestError(f"manifest recipient is not an age recipient (age1pq1... or age1...): {exc}") from None
    if recipient_fingerprint(recovery["recipient"]) != recovery["fingerprint"]:
        raise ManifestError("manifest recipient fingerprint does not match its recipient")
    payload = _take(top["payload"], "[payload] ", {"file": str, "encoding": str, "size": int, "sha256": str})
    if payload["file"] != payload_name(top["id"]):
        raise ManifestError(f"manifest payload file must be {payload_name(top['id'])!r}")
    if payload["encoding"] != ENCODING:
        raise UnsupportedFormat(f"payload encoding {payload['encoding']!r} is not supported")
    if payload["size"] < 0 or not _HEX64.fullmatch(payload["sha256"]):
        raise ManifestError("manifest payload size or sha256 is malformed")
    scope: dict[str, KindScope] = {}
    if not top["scope"]:
        raise ManifestError("manifest scope names no kinds")
    for kind, raw in top["scope"].items():
        if not isinstance(raw, dict):
            raise ManifestError(f"manifest [scope.{kind}] must be a table")
        entry = _take(raw, f"[scope.{kind}] ", {"fields": list, "count": int, "sha256": str})
        if not all(isinstance(f, str) for f in entry["fields"]):
            raise ManifestError(f"manifest [scope.{kind}] fields must be strings")
        check_manifest_scope(kind, entry["fields"])
        if entry["count"] < 0 or not _HEX64.fullmatch(entry["sha256"]):
            raise ManifestError(f"manifest [scope.{kind}] count or sha256 is malformed")
        scope[kind] = KindScope(tuple(entry["fields"]), entry["count"], entry["sha256"])
    if list(scope) != sorted(scope, key=KIND_ORDER.__getitem__):
        raise ManifestError("manifest scope kinds are not in the fixed order identity, device, setting, role")
    return Manifest(
        id=top["id"],
        created_at=created.astimezone(timezone.utc),
        environment=top["environment"],
        producer=top["producer"],
        recipient=recovery["recipient"],
        recipient_fingerprint=recovery["fingerprint"],
        payload_size=payload["size"],
        payload_sha256=payload["sha256"],
        scope=scope,
        previous_id=top.get("previous_id"),
    )
