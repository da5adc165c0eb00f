"""The accounts a restore brings back (the snapshot's identities live lacks), about 9 bytes each.

The dry run's orphan check asks, for each missing or extra device, whether its
account is among them. A total loss makes every identity one: a set of a million
account ids costs over 100 MiB, as much as everything else a dry run keeps. They
are kept as the sorted array of their string hashes instead (Python's keyed
SipHash, ``hash(str)``, 64 bits, cached on each string). Two accounts sharing a
hash, about one chance in 10^13 for a million, would only keep a device off the
dry run's orphan list: the restore checks every device's account in the target
again as it writes (``Restorer._reassess``), and never writes an orphan.

A total loss also asks for every device: millions of questions. A binary search
of the array made a Python integer at each of its twenty steps; the hashes'
top bits index the array instead (where the hashes starting with each value
begin, about one entry for eight hashes), so a question looks at a handful.
"""

from __future__ import annotations

from array import array
from collections import Counter
from itertools import accumulate, repeat

BUCKET = 8  # hashes per entry of the index, about
_OFFSET = 1 << 63  # a hash plus this is an unsigned 64-bit number, ordered as the hashes are


class RestorableAccounts:
    def __init__(self) -> None:
        self._added = array("q")
        self._sorted = array("q")
        self._shift = 63  # a hash's bucket: its unsigned value's top (64 - shift) bits
        self._starts = array("q", [0, 0, 0])  # where each bucket begins in _sorted, and the end

    def add(self, account: str) -> None:
        self._added.append(hash(account))

    def _index(self) -> None:
        self._sorted = array("q", sorted(self._sorted + self._added))
        self._added = array("q")
        bits = max(1, (len(self._sorted) // BUCKET).bit_length())
        self._shift = 64 - bits
        counts = Counter(map(int.__rshift__, map(_OFFSET.__add__, self._sorted), repeat(self._shift)))
        self._starts = array("q", [0])
        self._starts.extend(accumulate(counts.get(bucket, 0) for bucket in range(1 << bits)))

    def __contains__(self, account: object) -> bool:
        if self._added:  # the identities come first, all of them before any device asks
            self._index()
        h = hash(account)
        bucket = (h + _OFFSET) >> self._shift
        return h in self._sorted[self._starts[bucket]:self._starts[bucket + 1]]

    def __len__(self) -> int:
        return len(self._added) + len(self._sorted)
