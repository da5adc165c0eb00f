"""Target URLs in the convention SQLAlchemy users know.

``sqlite:///relative.db`` (three slashes: a path relative to the working
directory), ``sqlite:////absolute/path.db`` (four: absolute) and
``postgresql://user@host[:port]/db``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from enigm_recover.errors import TargetError


@dataclass(frozen=True)
class TargetURL:
    scheme: str  # "sqlite" or "postgresql"
    raw: str
    path: Path | None = None  # sqlite only

    def display(self) -> str:
        """The URL without any password, safe for logs and reports."""
        parts = urlsplit(self.raw)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
            return parts._replace(netloc=netloc).geturl()
        return self.raw


def parse_target_url(raw: str) -> TargetURL:
    if raw.startswith("sqlite:///"):
        rest = raw[len("sqlite:///"):]
        if not rest or rest == "/":
            raise TargetError(f"target URL {raw!r} names no database file")
        if "?" in rest or "#" in rest:
            raise TargetError(f"target URL {raw!r}: query strings are not supported for sqlite")
        return TargetURL("sqlite", raw, Path(rest))  # "/abs" stays absolute, "rel" relative
    if raw.startswith("sqlite:"):
        raise TargetError(
            f"target URL {raw!r} is not of the form sqlite:///relative.db or sqlite:////absolute.db"
        )
    scheme = raw.split(":", 1)[0]
    if scheme in ("postgresql", "postgres"):
        raise TargetError(
            f"target URL {raw!r}: the PostgreSQL store is not available in this version",
            "use a sqlite:/// target",
        )
    raise TargetError(f"target URL {raw!r} has an unknown scheme")
