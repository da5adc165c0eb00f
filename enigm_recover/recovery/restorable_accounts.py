"""The accounts a restore brings back (the snapshot's identities live lacks), 8 bytes each.

The dry run's orphan check asks, for each missing or extra device, whether its
account is among them. A total loss makes every identity one: a set of a million
account ids costs over 100 MiB, as much as everything else a dry run keeps. They
are kept as the sorted array of their string hashes instead (Python's keyed
SipHash, ``hash(str)``, 64 bits, cached on each string). Two accounts sharing a
hash, about one chance in 10^13 for a million, would only keep a device off the
dry run's orphan list: the restore checks every device's account in the target
again as it writes (``Restorer._reassess``), and never writes an orphan.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left


class RestorableAccounts:
    def __init__(self) -> None:
        self._added = array("q")
        self._sorted = array("q")

    def add(self, account: str) -> None:
        self._added.append(hash(account))

    def __contains__(self, account: object) -> bool:
        if self._added:  # the identities come first, all of them before any device asks
            self._sorted = array("q", sorted(self._sorted + self._added))
            self._added = array("q")
        h = hash(account)
        i = bisect_left(self._sorted, h)
        return i < len(self._sorted) and self._sorted[i] == h

    def __len__(self) -> int:
        return len(self._added) + len(self._sorted)
