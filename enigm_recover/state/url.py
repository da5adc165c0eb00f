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

# libpq connection parameters a URL query may set (not the password: see the module docstring)
POSTGRES_QUERY_PARAMS = frozenset({
    "host", "hostaddr", "port", "sslmode", "sslrootcert", "sslcert", "sslkey", "sslcrl", "sslnegotiation",
    "connect_timeout", "application_name", "options", "target_session_attrs", "passfile", "channel_binding",
    "gssencmode", "require_auth", "service", "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count",
})


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
    shown = safe_url(raw)

    def bad(why: str) -> TargetError:
        return TargetError(f"target URL {shown!r}: {why}",
                           "a PostgreSQL target URL is postgresql://user[:password]@host[:port]/database")

    if not raw.split(":", 1)[1].startswith("//"):
        raise bad("expected // after the scheme")
    try:
        parts = urlsplit(raw)
    except ValueError as exc:
        raise bad(str(exc)) from None
    if parts.fragment:
        raise bad("a fragment (#...) is not allowed")
    params: dict[str, str] = {}
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if at:
        user, colon, password = userinfo.partition(":")
        if user:
            params["user"] = unquote(user)
        if colon:
            params["password"] = unquote(password)
    host, port = _split_hostport(hostport, bad)
    if host:
        params["host"] = host
    if port:
        params["port"] = port
    dbname = unquote(parts.path[1:]) if parts.path.startswith("/") else ""
    if not dbname:
        raise bad("it names no database (…/DATABASE)")
    if "/" in dbname:
        raise bad(f"database name {dbname!r} holds a '/'")
    params["dbname"] = dbname
    try:
        query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise bad("the query string is malformed") from None
    for key, value in query:
        if key == "password":
            raise bad("a password in the query string is not accepted; put it in ~/.pgpass or PGPASSWORD")
        if key not in POSTGRES_QUERY_PARAMS:
            raise bad(f"unknown parameter {key!r} (known: {', '.join(sorted(POSTGRES_QUERY_PARAMS))})")
        if key in ("host", "port") and key in params:
            raise bad(f"the {key} is given twice (in the URL and as ?{key}=)")
        if key == "port" and not _valid_port(value):
            raise bad(f"port {value!r} is not a number from 1 to 65535")
        params[key] = value
    params.setdefault("connect_timeout", "10")
    return TargetURL("postgresql", raw, None, tuple(params.items()))


def _valid_port(text: str) -> bool:
    return text.isdigit() and 1 <= int(text) <= 65535


def _split_hostport(hostport: str, bad) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    if "," in hostport:
        raise bad("several hosts are not supported")
    if hostport.startswith("["):  # [IPv6]:port
        end = hostport.find("]")
        if end < 0:
            raise bad("unbalanced [ in the host")
        host, rest = hostport[1:end], hostport[end + 1:]
        if rest and not rest.startswith(":"):
            raise bad(f"unexpected {rest!r} after the host")
        port = rest[1:]
    else:
        host, _, port = hostport.partition(":")
        host = unquote(host)  # a percent-encoded socket folder (%2Frun%2Fpostgresql) stays a path
    if port and not _valid_port(port):
        raise bad(f"port {port!r} is not a number from 1 to 65535")
    return host, port
