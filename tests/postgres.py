"""A throwaway PostgreSQL cluster that the test suite starts itself, on 127.0.0.1 only.

``initdb`` into a fresh folder under the system temp dir, then ``pg_ctl start``
with TCP on 127.0.0.1 and a unix socket in the same folder. PostgreSQL refuses
to run as root, so under root the cluster belongs to the ``postgres`` OS user.
Authentication is ``trust`` for everyone, except the role PASSWORD_ROLE, which
must give its password (``scram-sha-256``) so tests can see a real
authentication failure. fsync is off: the cluster is thrown away.

Its default collation is a linguistic one (ICU ``en-US`` when PostgreSQL has
ICU, else ``en_US.UTF-8`` if the OS has that locale), never "C": the store
must read in byte order whatever the database's collation, and tests of that
only mean something where the default order differs from byte order.
"""

from __future__ import annotations

import getpass
import glob
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres")
PASSWORD_ROLE = "enigm_password_user"


def _version_key(bindir: str) -> tuple[int, ...]:
    match = re.search(r"/postgresql/([0-9.]+)/bin", bindir)
    return tuple(int(p) for p in match.group(1).split(".")) if match else (0,)


def find_server_bindir() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres: from PATH, else the newest /usr/lib/postgresql/*/bin."""
    candidates = []
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    candidates += [Path(d) for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)]
    for bindir in candidates:
        if all(os.access(bindir / p, os.X_OK) for p in SERVER_PROGRAMS):
            return bindir
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    bindir: Path
    root: Path  # data, socket and log live under it
    port: int
    superuser: str
    collation: str  # how the default collation was set: "icu en-US", "libc en_US.UTF-8" or "default"
    as_user: list[str] = field(default_factory=list)  # command prefix that runs as the cluster's owner

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    @property
    def socket_dir(self) -> Path:
        return self.root

    def url_for(self, dbname: str, user: str | None = None, password: str | None = None) -> str:
        auth = user or self.superuser
        if password is not None:
            auth += f":{password}"
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{dbname}"

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def admin(self, *statements: str) -> None:
        """Run statements as the superuser in the ``postgres`` database, outside any transaction."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=self.superuser, dbname="postgres",
                             autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)  # type: ignore[arg-type]

    def create_database(self, name: str | None = None) -> str:
        name = name or f"t_{uuid.uuid4().hex[:16]}"
        self.admin(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        try:
            _run(self.as_user + [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                                 "stop"], check=False)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _run(cmd: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    # cwd "/": the cluster's owner may not be allowed into the caller's working directory
    result = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd="/")
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result


def _owner_prefix() -> tuple[list[str], str]:
    """The command prefix that runs a program as the cluster's owner, and that owner's name."""
    if os.geteuid() != 0:
        return [], getpass.getuser()
    import pwd

    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError("running as root, but there is no `postgres` OS user to own the test cluster "
                           "(PostgreSQL refuses to run as root)") from None
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", "postgres", "--"], "postgres"
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"], "postgres"


def _has_libc_locale(name: str) -> bool:
    try:
        out = subprocess.run(["locale", "-a"], capture_output=True, text=True).stdout
    except OSError:
        return False
    wanted = name.lower().replace("-", "")
    return any(line.strip().lower().replace("-", "") == wanted for line in out.splitlines())


def _initdb(bindir: Path, prefix: list[str], data: Path, superuser: str) -> str:
    base = prefix + [str(bindir / "initdb"), "-D", str(data), "-U", superuser, "--auth=trust", "--encoding=UTF8",
                     "--no-sync"]
    attempts = [(["--locale-provider=icu", "--icu-locale=en-US", "--locale=C.UTF-8"], "icu en-US"),
                (["--locale-provider=icu", "--icu-locale=en-US", "--locale=C"], "icu en-US")]
    if _has_libc_locale("en_US.UTF-8"):
        attempts.append((["--locale=en_US.UTF-8"], "libc en_US.UTF-8"))
    attempts.append((["--locale=C.UTF-8"], "default"))
    errors = []
    for extra, collation in attempts:
        shutil.rmtree(data, ignore_errors=True)
        result = _run(base + extra, check=False)
        if result.returncode == 0:
            return collation
        errors.append(f"{' '.join(extra)}: {result.stderr.strip()[-500:]}")
    raise RuntimeError("initdb failed:\n" + "\n".join(errors))


def start_cluster(bindir: Path | None = None, *, start_timeout: float = 60.0) -> Cluster:
    bindir = bindir or find_server_bindir()
    if bindir is None:
        raise RuntimeError("no PostgreSQL server binaries found")
    prefix, owner = _owner_prefix()
    # Not under pytest's tmp_path: its parent is private to root, and the server runs as `postgres`.
    root = Path(tempfile.mkdtemp(prefix="enigm-pg-"))
    if prefix:
        shutil.chown(root, "postgres", "postgres")
    data = root / "data"
    try:
        collation = _initdb(bindir, prefix, data, owner)
        hba = data / "pg_hba.conf"
        hba_lines = ("local all all trust\n"
                     f"host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n"
                     "host all all 127.0.0.1/32 trust\n")
        hba.write_text(hba_lines)
        if prefix:
            shutil.chown(hba, "postgres", "postgres")
        last_error = ""
        for _attempt in range(3):  # the port may be taken between choosing and binding it
            port = free_port()
            options = (f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off "
                       "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
            result = _run(prefix + [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "postgres.log"),
                                    "-w", "-t", str(int(start_timeout)), "-o", options, "start"], check=False)
            if result.returncode == 0:
                cluster = Cluster(bindir, root, port, owner, collation, prefix)
                _wait_ready(cluster, start_timeout)
                cluster.admin(f"CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD 'right-password'")
                return cluster
            log = root / "postgres.log"
            last_error = result.stderr + (log.read_text(errors="replace")[-2000:] if log.exists() else "")
        raise RuntimeError(f"pg_ctl start failed:\n{last_error}")
    except BaseException:
        _run(prefix + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], check=False)
        shutil.rmtree(root, ignore_errors=True)
        raise


def _wait_ready(cluster: Cluster, timeout: float) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(host="127.0.0.1", port=cluster.port, user=cluster.superuser, dbname="postgres",
                                 connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def copy_store(source_url: str, target_url: str) -> None:
    """Create the schema in the (empty) target store and copy every kind's rows into it from the source."""
    from enigm_recover.state.model import KINDS
    from enigm_recover.state.stores import open_store

    with open_store(source_url) as source, open_store(target_url, create=True) as target:
        target.init_schema()
        with target.transaction():
            for kind in KINDS:
                target.insert_many(kind, source.stream(kind))
