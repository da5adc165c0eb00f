"""The accounts a restore brings back, kept as sorted hashes: membership is exact for what was added and what
was not, in any order of adding and asking."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from enigm_recover.recovery.restorable_accounts import RestorableAccounts

ACCOUNTS = st.text(alphabet="abcdef0123456789_", min_size=1, max_size=24)


@settings(max_examples=60, deadline=None)
@given(st.lists(ACCOUNTS, max_size=200), st.lists(ACCOUNTS, max_size=200), st.lists(ACCOUNTS, max_size=50))
def test_an_account_is_among_them_exactly_when_it_was_added(first: list[str], asked: list[str],
                                                           later: list[str]) -> None:
    accounts = RestorableAccounts()
    for a in first:
        accounts.add(a)
    assert all((a in accounts) == (a in set(first)) for a in asked + first)
    for a in later:  # added after a question was asked: still found
        accounts.add(a)
    everything = set(first) | set(later)
    assert all((a in accounts) == (a in everything) for a in asked + first + later)
    assert len(accounts) == len(first) + len(later)


def test_a_million_accounts_take_eight_bytes_each() -> None:
    accounts = RestorableAccounts()
    for i in range(1_000_000):
        accounts.add(f"acct_{i:016x}")
    assert "acct_0000000000000007" in accounts and "acct_00000000000f4240" not in accounts
    assert accounts._sorted.itemsize * len(accounts._sorted) == 8_000_000
