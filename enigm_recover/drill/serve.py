"""Serve a drill's snapshots over the in-process SFTP server, and tell clients how to reach it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomli_w

from enigm_recover.atomic import write_atomic
from enigm_recover.private import make_private_dir
from enigm_recover.bounded import OWN_DOCUMENT, load_toml_file
from enigm_recover.drill.scenario import DRILL_FILE
from enigm_recover.drill.sftp_server import LOOPBACK, ServerKeys, SnapshotServer
from enigm_recover.errors import InputFileError

SSH_ALIAS = "enigm-drill"


def read_drill(folder: Path) -> dict[str, Any]:
    doc = load_toml_file(folder / DRILL_FILE, OWN_DOCUMENT, "drill file", missing_ok=True)
    if doc is None:
        raise InputFileError(f"{folder} holds no drill ({DRILL_FILE} is missing)",
                             "make one with `enigm-recover drill --no-tui DIR`")
    return doc


def serve_drill(folder: Path) -> tuple[SnapshotServer, dict[str, Any]]:
    """Start the server for a drill; write its client key, known_hosts and ssh config; update drill.toml."""
    folder = folder.resolve()
    doc = read_drill(folder)
    keys = ServerKeys.generate()
    server = SnapshotServer(Path(doc["paths"]["snapshots"]), keys)
    port = server.start()
    ssh_dir = folder / "ssh"
    make_private_dir(ssh_dir, "drill ssh folder")
    identity = ssh_dir / "client_key"
    write_atomic(identity, keys.client_key.export_private_key(), mode=0o600, overwrite=True)
    known_hosts = ssh_dir / "known_hosts"
    write_atomic(known_hosts, (keys.known_hosts_line(port) + "\n").encode(), overwrite=True)
    config = ssh_dir / "config"
    write_atomic(config, (
        f"Host {SSH_ALIAS}\n"
        f"  HostName {LOOPBACK}\n"
        f"  Port {port}\n"
        "  User drill\n"
        f"  IdentityFile {identity}\n"
        "  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {known_hosts}\n").encode(), overwrite=True)
    doc["ssh"] = {
        "source": f"sftp://{SSH_ALIAS}/",
        "config": str(config),
        "known_hosts": str(known_hosts),
        "identity": str(identity),
        "host_key": keys.known_hosts_line(port),
        "port": port,
    }
    write_atomic(folder / DRILL_FILE, tomli_w.dumps(doc).encode(), overwrite=True)
    return server, doc
