"""Progress lines fit the terminal they are drawn on, so redrawing never leaves wrapped trails."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import struct
import termios

import pytest
from rich.cells import cell_len

from enigm_recover.cli.output import ProgressPrinter
from enigm_recover.progress import Progress

STAGES = ["payload", "decrypting and checking the records of snapshot 20261206T075900Z-4a58b791 in the cache",
          "dry run 身份 设备 设置 角色 " * 4]


def drawn_rows(text: str) -> list[str]:
    """What each redraw put on the row: the text after each carriage return and erase-line."""
    return [row.rstrip("\n") for row in re.split(r"\r\x1b\[K", text) if row]


def feed(printer: ProgressPrinter) -> None:
    for stage in STAGES:
        total = 7 << 30
        for done in (0, 1 << 30, total // 2, total):
            printer.last = 0.0  # draw every update
            printer(Progress(stage, done, total, "bytes"))


@pytest.mark.parametrize("columns", [80, 40])
def test_every_redraw_fits_the_terminal_it_is_drawn_on(columns: int, monkeypatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    stream = os.fdopen(slave, "w", encoding="utf-8", closefd=True)
    try:
        feed(ProgressPrinter(stream))
    finally:
        stream.close()
    drawn = b""
    try:
        while chunk := os.read(master, 1 << 16):  # everything the terminal received, however it is split
            drawn += chunk
    except OSError:  # EIO: the other side is closed and all was read
        pass
    finally:
        os.close(master)
    text = drawn.decode("utf-8").replace("\r\n", "\n")
    rows = drawn_rows(text)
    assert len(rows) == 4 * len(STAGES)
    assert all(cell_len(row) <= columns - 1 for row in rows), [cell_len(r) for r in rows]
    assert any(row.endswith("…") for row in rows)  # a long one was cut, and says so
    assert "payload: 7.0 GiB of 7.0 GiB (100%)" in text  # a short one is whole


def test_columns_from_the_environment_win(monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "30")
    out = io.StringIO()
    feed(ProgressPrinter(out))
    assert all(cell_len(row) <= 29 for row in drawn_rows(out.getvalue()))
