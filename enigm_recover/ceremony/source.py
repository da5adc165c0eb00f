"""The pipeline's share source for custodians who join from their own sessions (``--remote-shares``, the app)."""

from __future__ import annotations

import socket
from typing import Any, Callable

from enigm_recover.ceremony.folder import CeremonyPlace
from enigm_recover.ceremony.server import CeremonyInfo, CeremonyServer, JoinEvent
from enigm_recover.errors import NotEnoughShares
from enigm_recover.recovery.quorum_session import QuorumSession


def ceremony_info(quorum: QuorumSession) -> CeremonyInfo:
    recovery = quorum.recovery
    return CeremonyInfo(recovery.ceremony, quorum.entry.expected_fingerprint or "", recovery.operator,
                        socket.gethostname(), recovery.command)


class RemoteShares:
    """Opens the ceremony on its socket, waits until the custodians' shares complete the quorum (or the operator
    stops it: Ctrl-C), and closes it. ``on_event`` shows each join and verdict; ``wait`` is how the face waits
    (by default, for the quorum or the close)."""

    def __init__(self, place: CeremonyPlace, passphrase: Callable[[], str],
                 on_event: Callable[[JoinEvent], None] = lambda e: None, shares_per_user: int = 1,
                 wait: Callable[[CeremonyServer], None] | None = None) -> None:
        self.place = place
        self._passphrase = passphrase
        self.on_event = on_event
        self.shares_per_user = shares_per_user
        self._wait = wait or (lambda server: server.wait() and None)

    def open(self, quorum: QuorumSession, **options: Any) -> CeremonyServer:
        """The ceremony's server, opened (the caller closes it)."""
        return CeremonyServer(quorum, ceremony_info(quorum), self.place, on_event=self.on_event,
                              shares_per_user=self.shares_per_user, **options).open()

    def enter(self, quorum: QuorumSession) -> None:
        server = self.open(quorum)
        try:
            self._wait(server)  # the face's waiting: e.g. the terminal also takes sealed shares pasted into it
            complete = quorum.complete
        finally:
            server.close("the quorum is complete" if quorum.complete else "closed by the operator")
        if not complete:
            raise NotEnoughShares(f"the ceremony closed before the quorum was complete: "
                                  f"{quorum.entry.describe_progress()}")

    def passphrase(self) -> str:
        return self._passphrase()
