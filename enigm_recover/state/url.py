"""Target URLs in the convention SQLAlchemy users know.

``sqlite:///relative.db`` (three slashes: a path relative to the working
directory), ``sqlite:////absolute/path.db`` (four: absolute) and
``postgresql://user[:password]@host[:port]/db`` (``postgres://`` too), as libpq
reads them: the host may be a unix-socket folder given as ``?host=/run/postgresql``
(then the URL's host part stays empty), and the user, host and port may be left
to libpq's defaults (PGUSER, PGHOST, PGPORT). A password is better kept out of
the URL, in ~/.pgpass (PGPASSFILE), PGPASSWORD or a service entry (?service=,
PGSERVICE); one in the URL is used to connect but never shown, logged or stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from enigm_recover.errors import TargetError

POSTGRES_SCHEMES = ("postgresql", "postgres")


@dataclass(frozen=True)
class TargetURL:
    scheme: str  # "sqlite" or "postgresql"
    raw: str
    path: Path | None = None  # sqlite only
    params: tuple[tuple[str, str], ...] = ()  # postgresql only: libpq connection parameters (may hold a password)

    def display(self) -> str:
        """The URL without any password, safe for logs and reports."""
        return safe_url(self.raw)

    def __repr__(self) -> str:
        return f"TargetURL({self.scheme!r}, {self.display()!r})"

    def connect_kwargs(self) -> dict[str, str]:
        """The libpq connection parameters (postgresql only)."""
        return dict(self.params)


def safe_url(raw: str) -> str:
    """``raw`` with any password in its user info (or a ``password=`` query parameter) replaced by ***."""
    try:
        parts = urlsplit(raw)
    except ValueError:
        return raw
    userinfo, at, hostport = parts.netloc.rpartition("@")
    masked = parts
    if at and ":" in userinfo:
        masked = masked._replace(netloc=f"{userinfo.split(':', 1)[0]}:***@{hostport}")
    if "password=" in parts.query.lower():
        masked = masked._replace(query=re.sub(r"(?i)(^|&)(password=)[^&]*", r"\1\2***", parts.query))
    return raw if masked is parts else masked.geturl()


def without_password(raw: str) -> str:
    """``raw`` with any password in its user info left out (not masked): what may be stored, e.g. to resume a
    run, which then connects with the password libpq finds in PGPASSWORD, ~/.pgpass or a service entry."""
    try:
        parts = urlsplit(raw)
    except ValueError:
        return safe_url(raw)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return safe_url(raw)
    return safe_url(parts._replace(netloc=f"{userinfo.split(':', 1)[0]}@{hostport}").geturl())


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
    if scheme in POSTGRES_SCHEMES:
        return _parse_postgres(raw)
    raise TargetError(f"target URL {safe_url(raw)!r} has an unknown scheme (use sqlite:/// or postgresql://)")


def _parse_postgres(raw: str) -> TargetURL:
    """A PostgreSQL URL as libpq reads it (psycopg's conninfo parser): every libpq parameter, services
    (``?service=``), ``sslmode``, and multi-host failover lists (``postgresql://h1:5432,h2:5433/db``).
    Our rules on top: a database or a service is named, ports are numbers, a host or port is not given
    twice, and a password never travels in the query string (nor appears in an error)."""
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    shown = safe_url(raw)

    def bad(why: str) -> TargetError:
        return TargetError(f"target URL {shown!r}: {_without_password(why, raw)}",
                           "a PostgreSQL target URL is postgresql://user@host[:port][,host2[:port2]...]/database"
                           "[?param=value&...] with libpq's parameters (sslmode, service, target_session_attrs, ...)")

    if not raw.split(":", 1)[1].startswith("//"):
        raise bad("expected // after the scheme")
    try:
        parts = urlsplit(raw)
        query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError as exc:
        raise bad(f"the query string is malformed ({exc})") from None
    if parts.fragment:
        raise bad("a fragment (#...) is not allowed")
    given = [key for key, _ in query]
    if "password" in given:
        raise bad("a password in the query string is not accepted; put it in ~/.pgpass, PGPASSWORD or a service")
    hosts = [h[1:].partition("]") if h.startswith("[") else h.partition(":")
             for h in parts.netloc.rpartition("@")[2].split(",")]
    for key, in_url in (("host", any(h for h, _, _ in hosts)), ("port", any(p.lstrip(":") for _, _, p in hosts))):
        if in_url and key in given:
            raise bad(f"the {key} is given twice (in the URL and as ?{key}=)")
    try:
        params = conninfo_to_dict(raw)
    except ProgrammingError as exc:
        raise bad(str(exc).strip()) from None
    for port in params.get("port", "").split(","):
        if port and not _valid_port(port):
            raise bad(f"port {port!r} is not a number from 1 to 65535")
    if not params.get("dbname") and not params.get("service"):
        raise bad("it names no database (…/DATABASE) and no service (?service=NAME)")
    if "/" in params.get("dbname", ""):
        raise bad(f"database name {params['dbname']!r} holds a '/'")
    params.setdefault("connect_timeout", "10")
    return TargetURL("postgresql", raw, None, tuple(params.items()))


def _valid_port(text: str) -> bool:
    return text.isdigit() and 1 <= int(text) <= 65535


def _without_password(message: str, raw: str) -> str:
    """libpq quotes the token it could not read: never let that be (part of) the URL's password."""
    userinfo, at, _ = urlsplit(raw).netloc.rpartition("@") if "//" in raw else ("", "", "")
    password = userinfo.partition(":")[2] if at else ""
    if not password:
        return message
    secrets = {password, unquote(password)}
    return re.sub(r'"([^"]*)"', lambda m: '"***"' if m.group(1) and any(m.group(1) in s for s in secrets)
                  else m.group(0), message)
