"""The SSH key exchange: post-quantum first, classic refused on request, and what was negotiated.

A recorded SSH session whose key exchange was classic (curve25519, ECDH, finite-field DH) can be
decrypted later by a quantum computer: the manifests and payloads it carried would be read then.
So the client offers the hybrid post-quantum key exchanges first, in this order (the first one the
server also offers wins): ``mlkem768x25519-sha256`` (OpenSSH 9.9 and later, by default from 10.0),
``sntrup761x25519-sha512@openssh.com`` (OpenSSH 8.5 and later; asyncssh has it only with liboqs),
then the other ML-KEM hybrids, then asyncssh's classic defaults. With ``require_post_quantum`` only
the post-quantum ones are offered, and a server offering none of them is refused with its list.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Any

from enigm_recover.sources.load_asyncssh import asyncssh
from asyncssh.kex import get_default_kex_algs, get_kex_algs

from enigm_recover.config import SSH_KEX_ONLY as ONLY
from enigm_recover.config import SSH_KEX_PREFER as PREFER
from enigm_recover.errors import ClassicKeyExchangeRefused

# Hybrid key exchanges whose shared secret needs both a post-quantum KEM and a classic one broken.
POST_QUANTUM_KEX = ("mlkem768x25519-sha256", "sntrup761x25519-sha512@openssh.com", "sntrup761x25519-sha512",
                    "mlkem768nistp256-sha256", "mlkem1024nistp384-sha384")
SETTING = "ssh_kex"


def is_post_quantum(algorithm: str) -> bool:
    return algorithm in POST_QUANTUM_KEX


def usable_post_quantum() -> list[str]:
    """The post-quantum key exchanges this installation's asyncssh can run, in order of preference."""
    available = {a.decode("ascii") for a in get_kex_algs()}
    return [a for a in POST_QUANTUM_KEX if a in available]


def offered_kex(*, require_post_quantum: bool, configured: bool) -> list[str] | tuple[()]:
    """The key exchanges to offer. ``configured``: the SSH client config names KexAlgorithms, which is then
    honoured as it is (``()`` lets asyncssh read it) unless post-quantum is required."""
    post_quantum = usable_post_quantum()
    if require_post_quantum:
        return post_quantum
    if configured:
        return ()
    return post_quantum + [a.decode("ascii") for a in get_default_kex_algs() if a.decode("ascii") not in post_quantum]


@dataclass(frozen=True)
class Transport:
    """How a source was reached over SSH: the negotiated key exchange and cipher."""

    host: str
    key_exchange: str | None  # None: it could not be read from the connection
    cipher: str | None

    @property
    def post_quantum(self) -> bool:
        return self.key_exchange is not None and is_post_quantum(self.key_exchange)

    def as_dict(self) -> dict[str, Any]:
        return {"protocol": "ssh", "host": self.host, "key_exchange": self.key_exchange,
                "post_quantum": self.post_quantum, "cipher": self.cipher}

    def describe(self) -> str:
        kind = "post-quantum" if self.post_quantum else "classic: a recorded session could be decrypted later"
        return f"SSH key exchange {self.key_exchange or 'unknown'} ({kind}), cipher {self.cipher or 'unknown'}"


def _namelist(payload: bytes) -> list[bytes]:
    """The first name-list of a KEXINIT payload (message byte, 16-byte cookie, then the kex algorithms)."""
    if len(payload) < 21:
        return []
    (length,) = struct.unpack(">I", payload[17:21])
    return [a for a in payload[21:21 + length].split(b",") if a]


def negotiated(conn: asyncssh.SSHClientConnection, host: str) -> Transport:
    """The key exchange the connection agreed on: the first of the client's list the server offers (RFC 4253,
    7.1). asyncssh keeps both lists on the connection but exposes neither; a version without them gives None."""
    server = _namelist(bytes(getattr(conn, "_server_kexinit", b"") or b""))
    client = list(getattr(conn, "_kex_algs", ()) or ())
    chosen = None
    for alg in client:
        match = alg if alg in server else next((s for s in server if alg.startswith(b"gss-")
                                                and s.startswith(alg + b"-")), None)
        if match is not None:
            chosen = match.decode("ascii", "replace")
            break
    return Transport(host, chosen, conn.get_extra_info("send_cipher"))


_RECEIVED = re.compile(r"key exchange algorithm found, sent .* and received (?P<server>\S*)")


def server_offer(reason: str) -> list[str] | None:
    """The server's key exchanges, from asyncssh's KeyExchangeFailed text (None when it says something else)."""
    match = _RECEIVED.search(reason)
    if match is None:
        return None
    markers = ("ext-info-", "kex-strict-")  # extension signals in the list, not key exchanges
    return [a for a in match.group("server").split(",") if a and not a.startswith(markers)]


def refusal(target: str, offered: list[str] | None) -> ClassicKeyExchangeRefused:
    """The error of a server that offers no post-quantum key exchange this client can run."""
    usable = usable_post_quantum()
    if not usable:
        return ClassicKeyExchangeRefused(f"{SETTING} = {ONLY} refuses classic key exchange, and this installation's "
                                         f"asyncssh runs no post-quantum one", "install the pinned asyncssh and cryptography "
                                         "(whose ML-KEM asyncssh uses), or use --ssh-kex " + PREFER)
    shown = ", ".join(offered) if offered else "(not said)"
    unusable = [a for a in (offered or []) if is_post_quantum(a) and a not in usable]
    what = "no post-quantum SSH key exchange this client can run" if unusable else "only classic SSH key exchange"
    message = (f"{target} offers {what} ({shown}), and {SETTING} = {ONLY} (--ssh-kex) refuses classic key "
               f"exchange; this client offers {', '.join(usable)}")
    if unusable:
        message += (f". The server's {', '.join(unusable)} needs asyncssh built with liboqs, which this "
                    "installation lacks")
    return ClassicKeyExchangeRefused(message)
