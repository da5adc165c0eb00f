"""PostgreSQL target URLs read as libpq reads them: services, sslmode, failover lists, every parameter."""

from __future__ import annotations

from pathlib import Path

import pytest
from psycopg import pq

from enigm_recover.errors import TargetError
from enigm_recover.state.postgres_store import PostgresStore
from enigm_recover.state.url import parse_target_url
from tests.postgres import PASSWORD_ROLE, free_port

SECRET = "right-password"


@pytest.fixture
def no_libpq_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("PGPASSWORD", "PGSERVICE", "PGHOST", "PGPORT", "PGDATABASE", "PGUSER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))
    monkeypatch.setenv("PGSERVICEFILE", str(tmp_path / "no-services"))


def test_every_libpq_parameter_is_accepted_in_the_query() -> None:
    """Whatever this libpq knows, a URL may set (the password aside: it never travels in a query)."""
    keywords = {o.keyword.decode() for o in pq.Conninfo.get_defaults()} - {"password", "host", "port", "dbname"}
    assert {"sslmode", "service", "target_session_attrs", "sslrootcert", "load_balance_hosts"} & keywords
    for keyword in sorted(keywords):
        url = parse_target_url(f"postgresql://ops@db.example/platform?{keyword}=1")
        assert url.connect_kwargs()[keyword] == "1", keyword


def test_multi_host_failover_reaches_the_host_that_answers(postgres_cluster, postgres_url: str,
                                                           no_libpq_environment) -> None:
    dbname = postgres_url.rsplit("/", 1)[1]
    dead = free_port()
    url = (f"postgresql://{postgres_cluster.superuser}@127.0.0.1:{dead},127.0.0.1:{postgres_cluster.port}/{dbname}"
           "?target_session_attrs=read-write&connect_timeout=5")
    assert parse_target_url(url).connect_kwargs()["port"] == f"{dead},{postgres_cluster.port}"
    with PostgresStore(url, create=True) as store:
        assert store.display == url


def test_a_service_names_the_server_and_keeps_the_password_out_of_the_url(
        postgres_cluster, postgres_url: str, no_libpq_environment, monkeypatch, tmp_path: Path) -> None:
    dbname = postgres_url.rsplit("/", 1)[1]
    services = tmp_path / "pg_service.conf"
    services.write_text(f"[recovery]\nhost=127.0.0.1\nport={postgres_cluster.port}\ndbname={dbname}\n"
                        f"user={PASSWORD_ROLE}\npassword={SECRET}\n")
    monkeypatch.setenv("PGSERVICEFILE", str(services))
    url = "postgresql://?service=recovery"
    parsed = parse_target_url(url)
    assert parsed.connect_kwargs() == {"service": "recovery", "connect_timeout": "10"}
    with PostgresStore(url, create=True) as store:
        assert SECRET not in store.display and SECRET not in repr(parsed)


def test_sslmode_reaches_libpq(postgres_cluster, postgres_url: str, no_libpq_environment) -> None:
    """The test server speaks no TLS: sslmode=disable connects, sslmode=require is refused by libpq."""
    base = postgres_cluster.url_for(postgres_url.rsplit("/", 1)[1], PASSWORD_ROLE, SECRET)
    with PostgresStore(f"{base}?sslmode=disable", create=True):
        pass
    with pytest.raises(TargetError) as exc:
        PostgresStore(f"{base}?sslmode=require", create=True)
    assert "ssl" in str(exc.value).lower() and SECRET not in str(exc.value) + exc.value.hint


@pytest.mark.parametrize("url, cause", [
    ("postgresql://ops:s3cr%zzet@db/platform", "percent-encoded"),
    ("postgresql://ops:s3cret@db/platform?nope=1", 'invalid URI query parameter: "nope"'),
    ("postgresql://ops:s3cret@db/platform?password=s3cret", "password in the query string"),
    ("postgresql://ops:s3cret@db:5432,db2:99999/platform", "'99999' is not a number"),
    ("postgresql://ops:s3cret@db/platform?port=5433&host=x,y", "given twice"),
    ("postgresql://ops:s3cret@db/", "no database"),
])
def test_a_bad_url_is_named_without_its_password(url: str, cause: str) -> None:
    with pytest.raises(TargetError) as exc:
        parse_target_url(url)
    shown = str(exc.value) + exc.value.hint
    assert cause in shown and "s3cr" not in shown
