"""The drill's SFTP server serves only what is inside its folder."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncssh

from enigm_recover.drill.sftp_server import ServerKeys, SnapshotServer


async def _probe(port: int, keys: ServerKeys) -> dict[str, str]:
    """What the server answers for each path: 'ok' or the SFTP error's class name."""
    results: dict[str, str] = {}
    async with asyncssh.connect("127.0.0.1", port, username="drill", client_keys=[keys.client_key],
                                known_hosts=None, agent_path=None) as conn:
        async with conn.start_sftp_client() as sftp:
            async def attempt(label: str, coro) -> None:
                try:
                    await coro
                    results[label] = "ok"
                except asyncssh.SFTPError as exc:
                    results[label] = type(exc).__name__

            async def read(path: str) -> bytes:
                async with sftp.open(path, "rb") as f:
                    return await f.read()

            for name in ("out-file", "out-dir", "in-file"):
                await attempt(f"open {name}", read(name))
                await attempt(f"stat {name}", sftp.stat(name))
                await attempt(f"lstat {name}", sftp.lstat(name))
                await attempt(f"realpath {name}", sftp.realpath(name))
                await attempt(f"readlink {name}", sftp.readlink(name))
            await attempt("listdir out-dir", sftp.listdir("out-dir"))
            await attempt("open out-dir/secret", read("out-dir/secret"))
            await attempt("stat out-dir/secret", sftp.stat("out-dir/secret"))
            await attempt("lstat out-dir/secret", sftp.lstat("out-dir/secret"))
            await attempt("listdir /", sftp.listdir("/"))
    return results


def test_the_drill_server_does_not_follow_symlinks_leading_outside_its_folder(tmp_path: Path) -> None:
    served, outside = tmp_path / "served", tmp_path / "outside"
    served.mkdir()
    outside.mkdir()
    (outside / "secret").write_text("not for you")
    (served / "inside.txt").write_text("fine")
    os.symlink(outside / "secret", served / "out-file")
    os.symlink(outside, served / "out-dir")
    os.symlink("inside.txt", served / "in-file")
    keys = ServerKeys.generate()
    with SnapshotServer(served, keys) as server:
        results = asyncio.run(_probe(server.port, keys))
    for op in ("open", "stat", "realpath", "readlink"):
        assert results[f"{op} out-file"] != "ok", results
        assert results[f"{op} out-dir"] != "ok", results
        assert results[f"{op} in-file"] == "ok", results
    for what in ("listdir out-dir", "open out-dir/secret", "stat out-dir/secret", "lstat out-dir/secret"):
        assert results[what] != "ok", results
    assert results["lstat out-file"] == "ok" and results["listdir /"] == "ok", results
