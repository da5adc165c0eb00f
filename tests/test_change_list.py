"""The dry run's change list keeps a record only the snapshot has as its line alone, and gives back exactly
the changes a plain list would: same order, keys, lines and findings, on an incident and on a total loss."""

from __future__ import annotations

import pytest

from enigm_recover.recovery.assess import ChangeType
from enigm_recover.recovery.change_list import ChangeList
from enigm_recover.recovery.diff import diff
from enigm_recover.snapshot.records import parse_checked_line
from enigm_recover.state.model import KIND_BY_NAME, KINDS
from enigm_recover.state.stores import open_store


def _dry_run(drill, url: str):
    from bench.diff_restore import open_sealed

    verified, identity, _ = open_sealed(drill.root)
    with open_store(url) as store:
        return diff(verified, identity, store)


@pytest.mark.parametrize("scenario", ["incident", "total-loss"])
def test_the_change_list_gives_back_what_a_plain_list_of_the_same_changes_gives(drill, scenario: str,
                                                                               monkeypatch) -> None:
    from enigm_recover.recovery import change_list

    monkeypatch.setattr(change_list, "ROW_BLOCK", 7)  # missing records kept as values: many blocks, any cut
    if scenario == "total-loss":
        with open_store(drill.target) as store, store.transaction() as conn:
            for kind in KINDS:
                conn.execute(f"DELETE FROM {kind.table}")
    result = _dry_run(drill, drill.target)
    changes = list(result.changes)
    assert len(changes) == len(result.changes) == sum(result.totals()[c] for c in ("missing", "extra", "changed"))
    if scenario == "total-loss":
        assert all(c.change is ChangeType.MISSING and not c.findings for c in changes)
        assert len(changes) == sum(s.snapshot for s in result.kinds.values()) > 200  # every record
    order = [k.name for k in KINDS]
    assert [c.kind for c in changes] == sorted((c.kind for c in changes), key=order.index)  # kind by kind
    for kind in KINDS:
        keys = [c.key for c in changes if c.kind == kind.name]
        assert keys == sorted(keys) and len(set(keys)) == len(keys)  # in key order, once each
    for c in changes:
        if c.change is ChangeType.MISSING:  # its key is its line's, and its line is a record of its kind
            kind = KIND_BY_NAME[c.kind]
            row = parse_checked_line(kind, c.snapshot_line)
            assert c.key == kind.key_of_row(row)
    plain = ChangeList(changes)  # every change kept in full
    assert list(plain) == changes
    for limit in (None, 0, 1, 7, len(changes)):
        expected = sorted(changes, key=lambda c: not c.findings)
        assert result.changes.findings_first(limit) == (expected if limit is None else expected[:limit])
        by_kind = sorted(changes, key=lambda c: (not c.findings, c.kind))
        assert result.changes.findings_first(limit, by_kind_name=True) == \
            (by_kind if limit is None else by_kind[:limit])
    for kind in KINDS:
        of_kind = [c for c in changes if c.kind == kind.name]
        assert list(result.changes.of_kind(kind.name)) == of_kind
        for size in (1, 3, 64, len(of_kind) + 1):  # a restore's batches: a run of plain missing records whole
            chunks = list(result.changes.chunks_of_kind(kind.name, size))
            assert [len(chunk) for chunk in chunks] == [min(size, len(of_kind) - start)
                                                         for start in range(0, len(of_kind), size)]
            chunked = [c for chunk in chunks for c in chunk.changes()]
            assert chunked == of_kind and [c.snapshot_line for c in chunked] == [c.snapshot_line for c in of_kind]
            assert [(c.row, c.line) for c in chunked] == [(c.row, c.line) for c in of_kind]
            for chunk in chunks:
                assert chunk.keys == [c.key for c in chunk.changes()] and chunk.last_key == chunk.keys[-1]
                if chunk.plain is not None:
                    assert all(c.change is ChangeType.MISSING and not c.findings for c in chunk.changes())
                    assert chunk.plain.rows == [parse_checked_line(kind, c.snapshot_line) for c in chunk.changes()]
                    assert chunk.plain.lines == [c.snapshot_line for c in chunk.changes()]
            if scenario == "total-loss":
                assert all(chunk.plain is not None for chunk in chunks)
        assert result.changes.count(kind.name) == len(of_kind)
        keys = [c.key for c in of_kind]
        probes = keys[:3] + keys[len(keys) // 2:len(keys) // 2 + 2] + keys[-2:]
        probes += [(k[0] + "~",) + k[1:] for k in probes if isinstance(k[0], str)] + [("",)] * bool(keys)
        for after in probes:  # a resumed restore starts after its last batch's key: present or not, first or last
            assert list(result.changes.of_kind(kind.name, after)) == [c for c in of_kind if c.key > after]
            assert result.changes.count_through(kind.name, after) == sum(c.key <= after for c in of_kind)
    for i in (0, len(changes) // 2, len(changes) - 1, -1):
        assert result.changes[i] == changes[i]
    with pytest.raises(IndexError):
        result.changes[len(changes)]


def test_a_plain_missing_record_takes_eight_bytes_of_the_list(drill) -> None:
    """A total loss's changes: the entries array holds one 8-byte reference per record, and no record is kept
    as a Change object."""
    with open_store(drill.target) as store, store.transaction() as conn:
        for kind in KINDS:
            conn.execute(f"DELETE FROM {kind.table}")
    result = _dry_run(drill, drill.target)
    parts = result.changes._parts
    assert sum(len(p) for p in parts) == len(result.changes) > 200
    assert all(p.whole == 0 and p.entries.itemsize == 8 and all(e >= 0 for e in p.entries) for p in parts)


def test_a_checked_run_of_lines_is_read_as_each_line_is_and_made_again_from_its_values(drill) -> None:
    """Every record of the drill's snapshot, of every kind, in runs of several sizes: the values read from a
    run of lines at once are those of each line parsed, and a verbatim kind's line made from its values is
    the line byte for byte (what keeping a missing record as its values rests on)."""
    from bench.diff_restore import open_sealed
    from enigm_recover.recovery.snapshot_rows import rows_by_kind
    from enigm_recover.snapshot.records import CHECKED_LINE, parse_checked_lines
    from enigm_recover.snapshot.unseal import PayloadConfirmation

    verified, identity, _ = open_sealed(drill.root)
    seen = 0
    for kind, items in rows_by_kind(verified, identity, lambda *_: None, PayloadConfirmation()):
        rows, lines = map(list, zip(*items))
        for size in (1, 2, 7, len(lines)):
            runs = [lines[i:i + size] for i in range(0, len(lines), size)]
            assert [v for run in runs for v in parse_checked_lines(kind, run)] == rows
        assert [parse_checked_line(kind, line) for line in lines] == rows
        if kind.name in CHECKED_LINE:
            assert list(map(CHECKED_LINE[kind.name], rows)) == lines
        seen += len(rows)
    assert seen > 200


def test_diff_json_of_a_total_loss_streams_its_changes_as_the_document_a_whole_dump_writes(drill, cli) -> None:
    """``diff --json`` on a total loss: every record a change, written one at a time; the text is exactly
    what dumping the whole document at once writes, and the changes match the dry run's."""
    import json

    with open_store(drill.target) as store, store.transaction() as conn:
        for kind in KINDS:
            conn.execute(f"DELETE FROM {kind.table}")
    args = ["diff", drill.snapshots, "latest", "--target", drill.target, "--allowed-signers", drill.allowed_signers]
    for name in ("amara", "chen", "emeka"):
        args += ["--share-file", drill.card(name)]
    code, out, err = cli(*args, "--json")
    assert code == 0, err
    doc = json.loads(out)
    result = _dry_run(drill, drill.target)
    assert doc["changes"] == [c.as_dict() for c in result.changes.findings_first(by_kind_name=True)]
    assert doc["changes_total"] == doc["changes_shown"] == len(result.changes) > 200
    code, limited, _ = cli(*args, "--json", "--limit", "5")
    assert json.loads(limited)["changes"] == doc["changes"][:5] and json.loads(limited)["changes_shown"] == 5
    code, _, err = cli(*args, "--json", "--limit", "-1")
    assert code == 2 and "--limit: -1 is less than 0" in err


def test_a_streamed_list_is_written_before_its_next_item_is_made(capsys) -> None:
    from enigm_recover.cli.output import emit_json

    written: list[str] = []

    def items():
        for i in range(3):
            written.append(capsys.readouterr().out)  # what reached stdout before this item was made
            yield {"n": i, "nested": {"list": [i, "é\n"]}}

    emit_json({"a": 1, "items": items(), "b": {"c": [1, 2]}, "empty": iter(())})
    streamed = "".join(written) + capsys.readouterr().out
    assert '"n": 0' in written[1] and '"n": 1' in written[2]  # each item out before the next is made
    import json

    whole = {"a": 1, "items": [{"n": i, "nested": {"list": [i, "é\n"]}} for i in range(3)], "b": {"c": [1, 2]},
             "empty": []}
    capsys.readouterr()
    emit_json(whole)
    assert streamed == capsys.readouterr().out
    assert json.loads(streamed)["items"][2]["nested"]["list"] == [2, "é\n"]


def test_changes_kept_whole_come_back_equal_and_one_too_large_for_the_store_is_kept_as_it_is() -> None:
    """A change kept whole is pickled into a compressed store of its own; one whose live key is huge (hostile
    live data: a 2 MB device id) is kept as the object itself. Replacing a change (the orphan check) keeps the
    new one at its place."""
    from enigm_recover.recovery.assess import Finding
    from enigm_recover.recovery.change_list import KindChanges
    from enigm_recover.recovery.diff import Change
    from enigm_recover.state.live import Unreadable
    from enigm_recover.state.model import DEVICE

    part = KindChanges(DEVICE, None)
    huge = "d" * 2_000_000
    changes = [
        Change("device", ("dev_a",), ChangeType.CHANGED, (("state", "revoked", "active"),),
               (Finding.REVOCATION_KEPT, Finding.CHANGED_AFTER_SNAPSHOT), True),
        Change("device", ("dev_b",), ChangeType.EXTRA, (), (Finding.ONLY_IN_LIVE,), False, None, "acct_1"),
        Change("device", (huge,), ChangeType.EXTRA, (), (), False, None, None, None,
               Unreadable("device", "device_id", "a text of 2000000 characters", "a device id", ("dd…",))),
        Change("device", (7,), ChangeType.EXTRA, (), (), False, None, "acct_2"),  # a key of another type
    ]
    for change in changes:
        part.append(change)
    assert list(part) == changes and part.whole == 4 and len(part) == 4
    assert part.at(2).key == (huge,) and part.at(2).unreadable == changes[2].unreadable
    assert part.records.compressed_bytes < 10_000  # the huge key is not in the store
    flagged = Change("device", ("dev_b",), ChangeType.EXTRA, (), (Finding.ONLY_IN_LIVE, Finding.ORPHAN_DEVICE),
                     True, None, "acct_1")
    part.replace(1, flagged)
    assert part.at(1) == flagged and [c.key for c in part] == [c.key for c in changes] and part.whole == 4
    assert [c.key for c in part.with_findings()] == [("dev_a",), ("dev_b",)]


@pytest.mark.parametrize("row_block, part_bytes", [(1024, None), (2, None), (3, 300)])
def test_a_missing_record_kept_as_its_values_keeps_its_line_once_it_is_kept_whole(
        row_block: int, part_bytes: int | None, monkeypatch) -> None:
    """The orphan check keeps a missing device whole once it has a finding: its line, until then made from
    its values, is kept with it; the runs around it still come back as plain missing records. The same
    with the values kept in blocks of a few records, a block larger than a line split in parts."""
    from enigm_recover.recovery import change_list
    from enigm_recover.recovery.assess import Finding
    from enigm_recover.recovery.change_list import KindChanges
    from enigm_recover.recovery.line_store import LineStore
    from enigm_recover.snapshot.records import CHECKED_LINE

    monkeypatch.setattr(change_list, "ROW_BLOCK", row_block)
    if part_bytes is not None:
        monkeypatch.setattr(change_list, "MAX_LINE_BYTES", part_bytes)
    device = KIND_BY_NAME["device"]
    rows = [(f"dev_{i:04d}", f"acct_{i % 2}", "A" * 43 + "=", "active", "2024-01-01T00:00:00Z",
             "2024-01-02T00:00:00Z", "") for i in range(5)]
    changes = KindChanges(device, LineStore())
    for row in rows:
        changes.add_missing(row, None)
    orphan = changes.at(2)
    orphan.findings, orphan.protected = (Finding.ORPHAN_DEVICE,), True
    changes.replace(2, orphan)
    again = list(changes)
    assert [c.snapshot_line for c in again] == [CHECKED_LINE["device"](row) for row in rows]
    assert [c.key for c in again] == [(row[0],) for row in rows]
    assert [c.findings for c in again] == [(), (), (Finding.ORPHAN_DEVICE,), (), ()]
    assert [c.row for c in again if not c.findings] == [rows[i] for i in (0, 1, 3, 4)]
    assert [chunk.plain is not None for chunk in changes.chunks(2)] == [True, False, True]
    assert [chunk.plain.rows for chunk in changes.chunks(2) if chunk.plain] == [rows[:2], rows[4:]]
    assert [c.row for c in changes.chunks(3).__next__().changes()] == [rows[0], rows[1], None]
    assert changes.plain_missing_row(2) is None and changes.plain_missing_row(3) == rows[3]
    assert [changes.key_at(i) for i in range(5)] == [(row[0],) for row in rows]
    assert changes.first_after(rows[2][:1]) == 3
