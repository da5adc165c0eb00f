"""The scope allow-list: the only kinds and fields a snapshot may hold.

Data minimization is enforced here, not promised: a live table that grows a
column outside this list makes sealing fail, naming the column, and a payload
record with a field outside its manifest's scope is refused on unsealing.
"""

from __future__ import annotations

from typing import Iterable

from enigm_recover.errors import ScopeError
from enigm_recover.state.model import KIND_BY_NAME, KINDS, Kind

ALLOWED_FIELDS: dict[str, tuple[str, ...]] = {k.name: k.field_names for k in KINDS}


def check_live_columns(kind: Kind, columns: Iterable[str]) -> None:
    """Refuse a live table holding a column outside the allow-list."""
    allowed = set(ALLOWED_FIELDS[kind.name])
    for column in columns:
        if column not in allowed:
            raise ScopeError(
                f"field {kind.name}.{column} (column {column!r} of table {kind.table!r}) "
                "is outside the snapshot scope; nothing was sealed",
                "snapshots hold only the allow-listed fields (docs/FORMAT.md); drop the column "
                "from the backup view or extend the allow-list in a reviewed release",
            )
    missing = [f for f in ALLOWED_FIELDS[kind.name] if f not in set(columns)]
    if missing:
        raise ScopeError(f"table {kind.table!r} lacks the field(s) {', '.join(missing)}")


def check_manifest_scope(kind_name: str, fields: list[str]) -> None:
    """A manifest's declared scope must equal the allow-list for each kind it names."""
    if kind_name not in KIND_BY_NAME:
        raise ScopeError(f"manifest names kind {kind_name!r}, which is outside the snapshot scope")
    allowed = ALLOWED_FIELDS[kind_name]
    extra = [f for f in fields if f not in allowed]
    if extra:
        raise ScopeError(
            f"manifest declares field {kind_name}.{extra[0]}, which is outside the snapshot scope"
        )
    if tuple(fields) != allowed:
        raise ScopeError(
            f"manifest's fields for {kind_name} are {fields}, expected {list(allowed)}"
        )
