"""Files a careless or hostile hand gives where the tool expects a small text file, and a way to run the
CLI on them in a process of its own with bounded memory and a timeout.

Every reader of outside files is walked through the whole set (tests/test_bounded.py): each must refuse
with its own exit code and one line, never exit 1 (a bug), never run out of memory, never hang.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# The address space a CLI process may use: far more than any command here needs, far less than reading
# /dev/zero or an 8 GiB file would take; a process past it gets MemoryError instead of hurting the host.
MEMORY_LIMIT = 1536 * 1024 * 1024
TIMEOUT = 60  # seconds; a reader that waits for a FIFO's writer would wait forever

# Each under 64 KiB, so that it reaches the parser of even the smallest TOML file (a manifest).
NESTED_TOML = "a = " + "[" * 60_000  # tomllib recurses once per bracket
DOTTED_TOML = "a" + ".a" * 30_000 + " = 1\n"  # tomllib's dotted-key bookkeeping grows with its square
NESTED_INLINE_TOML = "a = " + "{b = " * 12_000


def hostile_files(folder: Path) -> dict[str, Path]:
    """name -> a path in (or from) ``folder``: a device, a FIFO, a folder, a symbolic link to a device, a
    huge sparse file, and documents nested past any parser's stack."""
    folder.mkdir(parents=True, exist_ok=True)
    fifo = folder / "fifo"
    os.mkfifo(fifo)
    sparse = folder / "sparse"
    with open(sparse, "wb") as f:
        f.truncate(8 << 30)  # 8 GiB of nothing: no disk used, st_size says 8 GiB
    link = folder / "link-to-zero"
    link.symlink_to("/dev/zero")
    nested = folder / "nested.toml"
    nested.write_text(NESTED_TOML)
    dotted = folder / "dotted.toml"
    dotted.write_text(DOTTED_TOML)
    inline = folder / "inline.toml"
    inline.write_text(NESTED_INLINE_TOML)
    subfolder = folder / "a-folder"
    subfolder.mkdir()
    return {"device": Path("/dev/zero"), "fifo": fifo, "folder": subfolder, "symlink to a device": link,
            "huge sparse file": sparse, "nested TOML": nested, "dotted TOML": dotted,
            "nested inline tables": inline}


HOSTILE_NAMES = ["device", "fifo", "folder", "symlink to a device", "huge sparse file", "nested TOML",
                 "dotted TOML", "nested inline tables"]


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_cli(*args: str | Path, stdin: int | None = subprocess.DEVNULL, umask: int | None = None,
            env: dict[str, str] | None = None, timeout: float = TIMEOUT) -> Outcome:
    """Run ``enigm-recover ARGS`` in a process of its own (the environment of the test, so its state,
    cache and config folders), with bounded memory and a timeout."""

    def setup() -> None:
        _limit_memory()
        if umask is not None:
            os.umask(umask)

    proc = subprocess.run([sys.executable, "-m", "enigm_recover", *map(str, args)], stdin=stdin,
                          capture_output=True, text=True, timeout=timeout, preexec_fn=setup,
                          env={**os.environ, "NO_COLOR": "1", **(env or {})})
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


def assert_refused(outcome: Outcome, code: int, *must_name: str) -> None:
    """One clear line with the expected exit code: no traceback, no internal error."""
    assert outcome.code == code, (outcome.code, outcome.stderr)
    assert "Traceback" not in outcome.stderr and "internal error" not in outcome.stderr, outcome.stderr
    assert "MemoryError" not in outcome.stderr and "RecursionError" not in outcome.stderr, outcome.stderr
    lines = [line for line in outcome.stderr.splitlines() if line.startswith("enigm-recover: error:")]
    assert len(lines) == 1, outcome.stderr
    for text in must_name:
        assert text in lines[0], (text, lines[0])
