"""An in-process, read-only SFTP server for a drill's snapshot folder.

It listens on 127.0.0.1 only, with an ephemeral host key pinned in the drill's
own known_hosts and an ephemeral client key, so a drill exercises the real
SSH path end to end (host-key check, public-key authentication, pipelined
SFTP) without touching the operator's ~/.ssh.
"""

from __future__ import annotations

import asyncio
import os
import posixpath
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import asyncssh
from asyncssh.constants import FXF_APPEND, FXF_CREAT, FXF_TRUNC, FXF_WRITE

LOOPBACK = "127.0.0.1"
_WRITE_FLAGS = FXF_WRITE | FXF_APPEND | FXF_CREAT | FXF_TRUNC


class ReadOnlySFTPServer(asyncssh.SFTPServer):
    """Serves one folder (as its root) and refuses every change.

    asyncssh's chroot maps names, but the operating system still follows a symbolic link inside the
    folder that points outside it. So every path is resolved here: a path that follows links (open,
    stat, listing, realpath) must resolve inside the folder, and a link itself (lstat, readlink) must
    sit in a folder that resolves inside; anything else is answered as if it did not exist.
    """

    def __init__(self, chan: asyncssh.SSHServerChannel, root: Path) -> None:
        self._root = os.fsencode(os.path.realpath(root))
        super().__init__(chan, chroot=self._root)

    def _contained(self, local: bytes) -> bool:
        real = os.path.realpath(local)
        return real == self._root or real.startswith(self._root.rstrip(b"/") + b"/")

    def map_path(self, path: bytes) -> bytes:
        """The local path, followed through every link: refused unless it stays inside the folder."""
        local = super().map_path(path)
        if not self._contained(local):
            raise asyncssh.SFTPNoSuchFile("no such file in the served folder")
        return local

    def _map_link(self, path: bytes) -> bytes:
        """The local path of a link itself: its folder must resolve inside, the link is not followed."""
        local = super().map_path(path)
        if not self._contained(posixpath.dirname(local)):
            raise asyncssh.SFTPNoSuchFile("no such file in the served folder")
        return local

    def lstat(self, path: bytes) -> Any:
        return os.lstat(self._map_link(path))

    def readlink(self, path: bytes) -> bytes:
        local = self._map_link(path)
        target = os.path.realpath(local)
        if not self._contained(target):
            raise asyncssh.SFTPNoSuchFile("the link leads outside the served folder")
        return self.reverse_map_path(target)

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> Any:
        if pflags & _WRITE_FLAGS:
            raise asyncssh.SFTPPermissionDenied("this server is read-only")
        return super().open(path, pflags, attrs)

    def _refuse(self, *args: object) -> None:
        raise asyncssh.SFTPPermissionDenied("this server is read-only")

    remove = rename = posix_rename = mkdir = rmdir = symlink = link = _refuse  # type: ignore[assignment]
    setstat = lsetstat = fsetstat = write = _refuse  # type: ignore[assignment]


SFTPFactory = Callable[[asyncssh.SSHServerChannel], asyncssh.SFTPServer]


@dataclass
class ServerKeys:
    host_key: asyncssh.SSHKey
    client_key: asyncssh.SSHKey

    @classmethod
    def generate(cls) -> "ServerKeys":
        return cls(asyncssh.generate_private_key("ssh-ed25519"), asyncssh.generate_private_key("ssh-ed25519"))

    def known_hosts_line(self, port: int) -> str:
        return f"[{LOOPBACK}]:{port} {self.host_key.export_public_key().decode().strip()}"


class SnapshotServer:
    """Runs the SFTP server on its own event loop thread until ``stop``."""

    def __init__(self, folder: Path, keys: ServerKeys, *, port: int = 0,
                 sftp_factory: SFTPFactory | None = None,
                 server_factory: Callable[[], asyncssh.SSHServer] | None = None,
                 client_key_auth: bool = True) -> None:
        self.folder = folder.resolve()
        self.keys = keys
        self.requested_port = port
        self.sftp_factory = sftp_factory or (lambda chan: ReadOnlySFTPServer(chan, self.folder))
        self.server_factory = server_factory or asyncssh.SSHServer
        self.client_key_auth = client_key_auth  # off: the server_factory alone decides (tests of other methods)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="enigm-drill-sftp", daemon=True)
        self._listener: asyncssh.SSHAcceptor | None = None

    def start(self) -> int:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        self.port = future.result(timeout=30)
        return self.port

    async def _listen(self) -> int:
        public = self.keys.client_key.export_public_key().decode()
        self._listener = await asyncssh.create_server(
            self.server_factory, LOOPBACK, self.requested_port,
            server_host_keys=[self.keys.host_key],
            authorized_client_keys=asyncssh.import_authorized_keys(public) if self.client_key_auth else None,
            sftp_factory=self.sftp_factory, allow_scp=False,
            keepalive_interval=15)
        return self._listener.get_port()

    def stop(self) -> None:
        async def close() -> None:
            if self._listener is not None:
                self._listener.close()
                await self._listener.wait_closed()

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def __enter__(self) -> "SnapshotServer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
