"""An independent, deliberately naive model of diff and restore, for checking the engine against.

It holds both sides in dicts (fine for test sizes) and states each safety rule
and policy directly, without sharing code with the engine.
"""

from __future__ import annotations

from typing import Any

from enigm_recover.state.model import KINDS

Row = tuple[Any, ...]
State = dict[str, dict[tuple[Any, ...], Row]]  # kind name -> key -> row

TERMINAL = {"revoked", "retired"}


def by_key(kind_rows: dict[str, list[Row]]) -> State:
    return {k.name: {k.key_of_row(r): r for r in kind_rows.get(k.name, [])} for k in KINDS}


def protected_change(kind: str, snap: Row, live: Row) -> bool:
    if kind == "device" and live[3] in TERMINAL:
        return True
    return kind == "identity" and live[3] > snap[3]


def expected_end_state(snapshot: State, live: State, policies: dict[str, set[str]]) -> State:
    """What a restore with these policies (per kind) must leave behind."""
    end: State = {k.name: {} for k in KINDS}
    for kind in KINDS:
        name = kind.name
        chosen = policies.get(name, set())
        s, l = snapshot[name], live[name]  # noqa: E741
        for key in s.keys() | l.keys():
            snap, cur = s.get(key), l.get(key)
            if cur is None:
                account_known = name != "device" or (snap[1],) in snapshot["identity"] or (snap[1],) in end["identity"]
                if account_known:  # an orphan device is not restored
                    end[name][key] = snap
            elif snap is None:
                terminal = name == "device" and cur[3] in TERMINAL
                if "delete-extra" in chosen and not terminal:
                    continue
                end[name][key] = cur
            elif snap == cur:
                end[name][key] = cur
            elif "overwrite-changed" in chosen and not protected_change(name, snap, cur):
                end[name][key] = snap
            else:
                end[name][key] = cur
    return end


def safety_holds(live: State, end: State) -> list[str]:
    """Broken safety rules between a live state and the state a restore left (empty when all hold)."""
    broken = []
    for key, row in live["device"].items():
        if row[3] in TERMINAL and end["device"].get(key) != row:
            broken.append(f"revoked device {key} was changed or removed")
    for key, row in live["identity"].items():
        after = end["identity"].get(key)
        if after is not None and after[3] < row[3]:
            broken.append(f"identity {key} key version rolled back")
    for key, row in end["device"].items():
        if key not in live["device"] and (row[1],) not in end["identity"]:
            broken.append(f"device {key} restored without its account")
    return broken


def diff_counts(snapshot: State, live: State) -> dict[str, dict[str, int]]:
    out = {}
    for kind in KINDS:
        s, l = snapshot[kind.name], live[kind.name]  # noqa: E741
        both = s.keys() & l.keys()
        out[kind.name] = {
            "missing": len(s.keys() - l.keys()),
            "extra": len(l.keys() - s.keys()),
            "changed": sum(1 for k in both if s[k] != l[k]),
            "unchanged": sum(1 for k in both if s[k] == l[k]),
        }
    return out

