"""Resolve a snapshot reference (full id, unique prefix or ``latest``) in a listing.

Every listed candidate counts, the refused ones too: an entry whose manifest is malformed or whose
signature does not hold, and a file that may be a manifest but could not be listed (a refused name, a
folder, a link, an unreadable file). ``latest`` is the newest candidate; when that one is refused,
resolution stops with an error naming it instead of falling back to an older snapshot (which would hide
tampering with the newest). A prefix that matches a refused candidate is reported, never skipped. Only
an id named explicitly reaches an older snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from itertools import groupby
from typing import TYPE_CHECKING

from enigm_recover.errors import EnigmError, SignatureError, SnapshotNotFound, SourceError
from enigm_recover.snapshot import signature
from enigm_recover.snapshot.clock import refuse_from_future
from enigm_recover.snapshot.source import Listing, RefusedName, SnapshotEntry

if TYPE_CHECKING:
    import asyncssh

_UNKNOWN_TIME = "99999999T999999Z"  # a candidate whose time is unknown may be the newest: it sorts first


class Standing(str, Enum):
    OK = "ok"
    REFUSED = "refused"


@dataclass(frozen=True)
class Candidate:
    """One listed candidate: an entry (readable or not), or a refused file that may be a snapshot."""

    name: str  # the snapshot id, or the refused file name as shown
    created: str | None  # YYYYMMDDTHHMMSSZ from the name; None when the name carries none
    entry: SnapshotEntry | None
    refusal: EnigmError | None

    @property
    def standing(self) -> Standing:
        return Standing.REFUSED if self.refusal is not None else Standing.OK

    @property
    def environment(self) -> str | None:
        """The signed environment of a usable candidate; None for a refused one (its claim is not trusted)."""
        if self.refusal is not None or self.entry is None or self.entry.manifest is None:
            return None
        return self.entry.manifest.environment

    def of(self, environment: str | None) -> bool:
        """Whether the candidate may belong to ``environment``: a refused one always may."""
        return environment is None or self.refusal is not None or self.environment == environment


def chronological(entries: list[SnapshotEntry]) -> list[SnapshotEntry]:
    """Entries oldest first. Ids begin with the creation time (checked against the signed manifest),
    so unreadable manifests keep their place instead of sinking out of sight.

    Snapshots of the same second are ordered by their chain: one that names another of that second as
    its previous snapshot comes after it (sealing names the newest one present); where the chain says
    nothing, by id as a plain string."""
    out: list[SnapshotEntry] = []
    for _second, group in groupby(sorted(entries, key=lambda e: e.id), key=lambda e: e.id[:16]):
        out += _by_chain(list(group))
    return out


def _by_chain(group: list[SnapshotEntry]) -> list[SnapshotEntry]:
    ordered: list[SnapshotEntry] = []
    waiting = list(group)  # sorted by id
    while waiting:
        ids = {e.id for e in waiting}
        ready = [e for e in waiting if e.manifest is None or e.manifest.previous_id not in ids]
        chosen = (ready or waiting)[0]  # a cycle (forged) falls back to id order
        ordered.append(chosen)
        waiting.remove(chosen)
    return ordered


def newest_first(entries: list[SnapshotEntry]) -> list[SnapshotEntry]:
    """Entries newest first: ``chronological`` reversed."""
    return chronological(entries)[::-1]


REFUSED_SIGNATURES = frozenset({signature.SignatureStatus.INVALID, signature.SignatureStatus.MISSING,
                                signature.SignatureStatus.UNKNOWN_SIGNER})


def entry_refusal(entry: SnapshotEntry, allowed: asyncssh.SSHAllowedSigners | None) -> EnigmError | None:
    """Why an entry cannot be used: its manifest's error, or its signature: missing, invalid, or (with
    ``allowed``) by a signer not trusted for its producer."""
    if entry.manifest is None:
        return entry.error or SourceError(f"the manifest of {entry.id} is unreadable")
    verdict = signature.check(entry.manifest_bytes, entry.signature_bytes, entry.manifest.producer, allowed)
    if verdict.status not in REFUSED_SIGNATURES:  # trusted, or valid with no allowed_signers to judge trust
        return None
    try:
        signature.require_trusted(verdict)
    except EnigmError as exc:
        return exc
    return SignatureError(verdict.detail)


def _refused_name(refused: RefusedName) -> Candidate:
    return Candidate(refused.name, refused.created, None, SourceError(refused.reason))


def candidates(listing: Listing, allowed: asyncssh.SSHAllowedSigners | None = None) -> list[Candidate]:
    """Every candidate of a listing, newest first (a candidate whose time is unknown first of all). Entries of
    the same second keep ``chronological``'s order; a refused file of that second counts as the newest of it."""
    rank = {e.id: i for i, e in enumerate(chronological(listing.entries))}
    found = [Candidate(e.id, e.id[:16], e, entry_refusal(e, allowed)) for e in listing.entries]
    found += [_refused_name(r) for r in listing.refused]
    return sorted(found, key=lambda c: (c.created or _UNKNOWN_TIME, rank.get(c.name, len(rank)), c.name),
                  reverse=True)


def latest_candidate(listing: Listing, allowed: asyncssh.SSHAllowedSigners | None = None,
                     environment: str | None = None) -> Candidate | None:
    """The candidate ``latest`` stops at (usable or refused), or None when there is none."""
    return next((c for c in candidates(listing, allowed) if c.of(environment)), None)


def refused_latest(candidate: Candidate, environment: str | None = None) -> EnigmError:
    """The error ``latest`` stops with at a refused newest candidate: the cause's own kind (and exit code)."""
    assert candidate.refusal is not None
    cause = candidate.refusal
    newest = f"the newest entry{' that may be of environment ' + environment if environment else ''}"
    return type(cause)(
        f"`latest` stops at {candidate.name}, {newest}, which is refused: {cause.message}; "
        "it never falls back to an older snapshot",
        "see `enigm-recover snapshots list`; to use an older snapshot, name its id explicitly "
        "(ID, or --snapshot ID for run)")


def _match_text(name: str) -> str:
    """A refused file name is shown quoted: match a prefix against the text inside the quotes."""
    return name[1:] if name[:1] in ("'", '"') else name


def resolve(listing: Listing, ref: str, allowed: asyncssh.SSHAllowedSigners | None = None,
            environment: str | None = None, *, now: datetime | None = None) -> SnapshotEntry:
    """The entry ``ref`` names. A missing or invalid signature (with ``allowed``, also an untrusted one) refuses
    a candidate; with ``environment``, only that environment's usable snapshots (and every refused one) count.
    ``latest`` dated in the future (beyond the clock skew) is refused by name, never taken or skipped."""
    where = f" of environment {environment}" if environment else ""
    pool = [c for c in candidates(listing, allowed) if c.of(environment)]
    if not pool:
        raise SnapshotNotFound(f"the source holds no snapshots{where}")
    if ref == "latest":
        newest = pool[0]
        if newest.refusal is not None:
            raise refused_latest(newest, environment)
        assert newest.entry is not None
        refuse_from_future(newest.entry.id, now)
        return newest.entry
    matches = [c for c in pool if c.name == ref] or [c for c in pool if _match_text(c.name).startswith(ref)]
    if not matches:
        raise SnapshotNotFound(f"no snapshot id{where} starts with {ref!r}")
    if len(matches) > 1:
        shown = ", ".join(c.name for c in matches[:5])
        raise SnapshotNotFound(f"{ref!r} matches {len(matches)} snapshots ({shown}{', …' if len(matches) > 5 else ''})",
                               "give more characters of the id")
    (match,) = matches
    if match.entry is None:  # a file that could not be listed: nothing to verify
        assert match.refusal is not None
        raise type(match.refusal)(f"{ref!r} names {match.name}, which is refused: {match.refusal.message}",
                                  match.refusal.hint)
    return match.entry  # verifying it reports what is wrong, check by check
