"""The operator's side of a ceremony: the socket custodians join on, and what it decides about each join.

Who joined comes from the kernel (SO_PEERCRED: the peer process's uid), never from anything typed; the audit
log and the report record that OS user and uid beside the custodian's name. Each join is checked before the
custodian types a word: the OS user is in the custodians' group (the folder's permissions already keep others
out), it has not tried too often, it has not given its share yet (one per OS user unless the runbook allows
more), the ceremony id it typed back is this ceremony's and its name is acceptable. The share itself is then
offered to the quorum like a share typed at the operator's terminal. Every decision is an audit entry and an
event for the face (the operator's screen shows joins and verdicts live, never a word).
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Callable, TypeVar

from enigm_recover.ceremony import protocol
from enigm_recover.ceremony.sealed import SealedShareInbox
from enigm_recover.ceremony.folder import (SOCKET, CeremonyPlace, in_group, make_ceremony_folder, os_user, prepare,
                                           start_sweeper, sweep_stale)
from enigm_recover.errors import (CeremonyFolderUnsafe, CeremonyMismatch, CeremonyProtocolError, CeremonyRefused,
                                  EnigmError,
                                  SealedShareRefused, ShareError)
from enigm_recover.quorum.entry import ShareReceipt
from enigm_recover.recovery.quorum_session import QuorumSession

T = TypeVar("T")
CONFIRM_SECONDS = 300.0  # to read the ceremony's facts and type its id back
SHARE_SECONDS = 1800.0  # to type 33 words (and fix a slip or two)
MAX_CONNECTIONS = 8
SHARE_ATTEMPTS = 3  # shares one connection may offer (a rejected one may be corrected)


class JoinEventKind(StrEnum):
    OPENED = "opened"
    JOINED = "joined"  # the confirmation held: the custodian is typing the share
    ACCEPTED = "accepted"
    REJECTED = "rejected"  # the share was offered and refused by the quorum's checks
    REFUSED = "refused"  # the join was refused before any share
    LEFT = "left"  # the custodian's process went away without a share
    COMPLETE = "complete"
    CLOSED = "closed"


@dataclass(frozen=True)
class JoinEvent:
    kind: JoinEventKind
    os_user: str = ""
    uid: int = -1
    custodian: str = ""
    reason: str = ""
    progress: str = ""
    sealed: bool = False  # a sealed share pasted by the operator (no OS user: it came from afar)
    recipient: str = ""  # OPENED: the ceremony's ephemeral recipient for sealed shares, and its short fingerprint
    fingerprint: str = ""


@dataclass(frozen=True)
class CeremonyInfo:
    """What a custodian sees before typing anything."""

    ceremony: str
    fingerprint: str
    operator: str
    host: str
    runbook: str


class JoinLimiter:
    """At most ``per_window`` join attempts per OS user in any ``window`` seconds; ``clock`` is injectable."""

    def __init__(self, per_window: int = 5, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_window, self.window, self.clock = per_window, window, clock
        self._attempts: dict[int, deque[float]] = defaultdict(deque)

    def allow(self, uid: int) -> bool:
        now = self.clock()
        attempts = self._attempts[uid]
        while attempts and now - attempts[0] >= self.window:
            attempts.popleft()
        if len(attempts) >= self.per_window:
            return False
        attempts.append(now)
        return True


def peer_credentials(conn: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end, as the kernel recorded them when it connected."""
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


def _direct(work: Callable[[], T]) -> T:
    return work()


class _Refusal(Exception):
    def __init__(self, code: int, reason: str, hint: str = "") -> None:
        super().__init__(reason)
        self.code, self.reason, self.hint = code, reason, hint


class CeremonyServer:
    """One ceremony's socket, open from ``open()`` to ``close()``.

    ``on_event`` receives a JoinEvent for each join, verdict and refusal (from the server's threads);
    ``run_on_face`` runs an engine call (a share offered to the quorum, an audit entry) where the face wants it,
    e.g. on the app's thread; by default here, under the server's lock.
    """

    def __init__(self, quorum: QuorumSession, info: CeremonyInfo, place: CeremonyPlace, *,
                 on_event: Callable[[JoinEvent], None] = lambda e: None,
                 run_on_face: Callable[[Callable[[], Any]], Any] = _direct, shares_per_user: int = 1,
                 limiter: JoinLimiter | None = None) -> None:
        self.quorum, self.info, self.place = quorum, info, place
        self.on_event, self._run_on_face = on_event, run_on_face
        self.shares_per_user = shares_per_user
        self.limiter = limiter or JoinLimiter()
        self.folder: Path | None = None
        self._listener: socket.socket | None = None
        self._sweeper: Any = None
        self._gid = -1
        self._lock = threading.Lock()
        self._done = threading.Condition()
        self._closed = False
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._shares_by_uid: dict[int, int] = defaultdict(int)
        self._open_connections: set[socket.socket] = set()
        self.inbox = SealedShareInbox(info.ceremony)  # its identity lives as long as this object, in memory only

    # -- opening and closing --------------------------------------------------------------------------------

    @property
    def socket_path(self) -> Path:
        assert self.folder is not None
        return self.folder / SOCKET

    def open(self) -> "CeremonyServer":
        base, self._gid = prepare(self.place)
        stale = sweep_stale(base)
        folder = make_ceremony_folder(base, self.info.ceremony, self._gid)
        self.folder = folder
        try:
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(str(folder / SOCKET))  # the folder is still 0700: nobody else can reach it yet
            os.chown(folder / SOCKET, -1, self._gid)
            os.chmod(folder / SOCKET, 0o660)  # connecting needs write permission on the socket
            listener.listen(MAX_CONNECTIONS)
            self._listener = listener
            self._sweeper = start_sweeper(folder)
            os.chmod(folder, 0o750)
        except OSError as exc:
            self._remove()
            long = len(os.fsencode(folder / SOCKET)) >= 108  # sun_path's size on Linux
            raise CeremonyFolderUnsafe(
                f"cannot open the ceremony's socket in {folder}: "
                + ("its path is longer than a UNIX socket's path may be" if long else str(exc.strerror or exc)),
                "choose a shorter --ceremony-dir" if long else None) from None
        except BaseException:
            self._remove()
            raise
        self._audit("ceremony-opened", inputs={"folder": str(folder), "group": self.place.group,
                                                "sealed_share_recipient": self.inbox.recipient,
                                                **({"stale_removed": ", ".join(stale)} if stale else {})})
        threading.Thread(target=self._accept_loop, name=f"ceremony {self.info.ceremony}", daemon=True).start()
        self._event(JoinEvent(JoinEventKind.OPENED, reason=str(folder), recipient=self.inbox.recipient,
                              fingerprint=self.inbox.fingerprint))
        return self

    def close(self, reason: str = "the ceremony ended") -> None:
        """Refuse joins from now on and remove the socket and its folder. Safe to call twice."""
        with self._done:
            if self._closed:
                return
            self._closed = True
            self._done.notify_all()
        self._remove()
        for conn in list(self._open_connections):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        try:
            self._audit("ceremony-closed", inputs={"reason": reason})
        except EnigmError:
            pass
        self._event(JoinEvent(JoinEventKind.CLOSED, reason=reason))

    def _remove(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept(): close() alone does not
            except OSError:
                pass
            listener.close()
        if self.folder is not None:
            import shutil

            shutil.rmtree(self.folder, ignore_errors=True)
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.stdin.close()  # its end of the pipe: it removes what is left (nothing) and exits
            sweeper.wait()

    @property
    def closed(self) -> bool:
        return self._closed

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the quorum is complete or the ceremony is closed; True when complete."""
        with self._done:
            self._done.wait_for(lambda: self._closed or self.quorum.complete, timeout)
        return self.quorum.complete

    def __enter__(self) -> "CeremonyServer":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the engine, where the face wants it -----------------------------------------------------------------

    def _engine(self, work: Callable[[], T]) -> T:
        if self._run_on_face is not _direct:
            return self._run_on_face(work)  # the face's thread runs one call at a time (and may be closing us)
        with self._lock:
            return work()

    def _audit(self, action: str, *, inputs: dict[str, Any], outcome: str = "ok") -> None:
        self._engine(lambda: self.quorum.recovery.audit.append(action, inputs=inputs, outcome=outcome))

    def _event(self, event: JoinEvent) -> None:
        try:
            self.on_event(event)
        except Exception:  # noqa: BLE001 - a face that cannot show an event never stops the ceremony
            pass

    # -- joins ---------------------------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while (listener := self._listener) is not None:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed
            if not self._slots.acquire(blocking=False):
                conn.close()  # too many at once: the custodian's side says the operator did not answer
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        self._open_connections.add(conn)
        who: dict[str, Any] = {}
        joined: list[str] = []  # the custodian's name once the confirmation held
        try:
            _, uid, _ = peer_credentials(conn)
            who = {"os_user": os_user(uid), "uid": uid}
            self._join(conn, uid, who, joined)
        except _Refusal as refusal:
            self._refuse(conn, who, refusal)
        except (OSError, CeremonyProtocolError) as exc:
            reason = exc.message if isinstance(exc, CeremonyProtocolError) else "the custodian's process went away"
            if joined:  # a peer gone before confirming (a probe for stale sockets, say) is no custodian leaving
                self._event(JoinEvent(JoinEventKind.LEFT, who["os_user"], who["uid"], joined[0], reason=reason))
        finally:
            self._open_connections.discard(conn)
            conn.close()
            self._slots.release()

    def _refuse(self, conn: socket.socket, who: dict[str, Any], refusal: _Refusal) -> None:
        try:
            self._audit("ceremony-join-refused", outcome="refused", inputs={**who, "reason": refusal.reason})
        except EnigmError:
            pass
        self._event(JoinEvent(JoinEventKind.REFUSED, who.get("os_user", ""), who.get("uid", -1),
                              reason=refusal.reason))
        try:
            conn.settimeout(5)
            protocol.send(conn, "refused", code=refusal.code, reason=refusal.reason, hint=refusal.hint)
        except OSError:
            pass

    def _check_open(self) -> None:
        if self._closed:
            raise _Refusal(CeremonyRefused.exit_code, f"ceremony {self.info.ceremony} is closed")
        if self.quorum.complete:
            raise _Refusal(CeremonyRefused.exit_code, f"the quorum of ceremony {self.info.ceremony} is complete: "
                           "no more shares are needed")

    def _join(self, conn: socket.socket, uid: int, who: dict[str, Any], joined: list[str]) -> None:
        user = who["os_user"]
        if uid != os.geteuid() and not in_group(uid, self._gid):
            raise _Refusal(CeremonyRefused.exit_code, f"OS user {user} is not in the custodians' group "
                           f"{self.place.group}", "ask an administrator to add your OS user to the group")
        if not self.limiter.allow(uid):
            raise _Refusal(CeremonyRefused.exit_code, f"too many join attempts from OS user {user}",
                           "wait a minute, then join again")
        self._check_open()
        conn.settimeout(CONFIRM_SECONDS)
        info = self.info
        protocol.send(conn, "hello", version=protocol.VERSION, ceremony=info.ceremony, fingerprint=info.fingerprint,
                      operator=info.operator, host=info.host, runbook=info.runbook)
        confirm = protocol.receive(conn, "confirm")
        self._check_open()
        name = confirm["custodian"].strip()
        try:
            self._engine(lambda: self.quorum.recovery.check_ceremony(confirm["ceremony"] or "-"))
        except CeremonyMismatch as exc:
            raise _Refusal(exc.exit_code, exc.message, "check the ceremony id the operator gave you") from None
        if (problem := self._engine(lambda: self.quorum.entry.name_problem(name))) is not None:
            raise _Refusal(ShareError.exit_code, problem, "join again with --name and your name as on your card")
        if self._shares_by_uid[uid] >= self.shares_per_user:
            raise _Refusal(CeremonyRefused.exit_code, f"OS user {user} has already given a share in this ceremony",
                           "each custodian joins from their own OS user")
        protocol.send(conn, "ready", os_user=user)
        joined.append(name)
        self._event(JoinEvent(JoinEventKind.JOINED, user, uid, name))
        conn.settimeout(SHARE_SECONDS)
        for _ in range(SHARE_ATTEMPTS):
            words = protocol.receive(conn, "share")["words"]
            self._check_open()
            if self._offer(conn, uid, who, name, confirm["ceremony"], words):
                return

    def _offer(self, conn: socket.socket, uid: int, who: dict[str, Any], name: str, typed: str, words: str) -> bool:
        try:
            receipt = self._engine(lambda: self.quorum.add(words, name, typed, origin={**who, "via": "ceremony socket"}))
        except ShareError as exc:
            progress = self.quorum.entry.describe_progress()
            self._event(JoinEvent(JoinEventKind.REJECTED, who["os_user"], uid, name, exc.message, progress))
            protocol.send(conn, "verdict", accepted=False, code=exc.exit_code, reason=exc.message, hint=exc.hint,
                          progress=progress)
            return False
        self._shares_by_uid[uid] += 1
        progress = self.quorum.entry.describe_progress()
        self._event(JoinEvent(JoinEventKind.ACCEPTED, who["os_user"], uid, receipt.custodian,
                              f"group {receipt.group_index + 1}, member {receipt.member_index + 1}", progress))
        protocol.send(conn, "verdict", accepted=True, code=0, reason="", hint="", progress=progress)
        if self.quorum.complete:
            self._event(JoinEvent(JoinEventKind.COMPLETE, progress=progress))
            with self._done:
                self._done.notify_all()
        return True

    # -- sealed shares, pasted by the operator --------------------------------------------------------------------

    def offer_sealed(self, text: str) -> ShareReceipt:
        """Open a sealed share and offer it to the quorum; SealedShareRefused or the quorum's ShareError."""
        if self._closed:
            raise SealedShareRefused(f"ceremony {self.info.ceremony} is closed")
        try:
            sealed = self._engine(lambda: self.inbox.open(text))
        except SealedShareRefused as exc:
            self._audit("sealed-share-refused", outcome="refused", inputs={"reason": exc.message})
            self._event(JoinEvent(JoinEventKind.REFUSED, reason=exc.message, sealed=True))
            raise
        origin = {"via": "sealed share", "sealed_by": sealed.custodian, "sealed_member_index": sealed.member}
        try:
            receipt = self._engine(lambda: self.quorum.add(sealed.words, sealed.custodian, self.info.ceremony,
                                                           origin=origin))
        except ShareError as exc:
            self._event(JoinEvent(JoinEventKind.REJECTED, custodian=sealed.custodian, reason=exc.message,
                                  progress=self.quorum.entry.describe_progress(), sealed=True))
            raise
        progress = self.quorum.entry.describe_progress()
        self._event(JoinEvent(JoinEventKind.ACCEPTED, custodian=receipt.custodian, reason=f"group "
                              f"{receipt.group_index + 1}, member {receipt.member_index + 1}", progress=progress,
                              sealed=True))
        if self.quorum.complete:
            self._event(JoinEvent(JoinEventKind.COMPLETE, progress=progress))
            with self._done:
                self._done.notify_all()
        return receipt
