"""Removes a ceremony's folder and socket once the operator's process has ended, however it ended.

Started by the operator's process with a pipe as stdin; the pipe reaches its end when that process exits or is
killed (SIGKILL included), and then the folder goes. It never sees a share: it starts before any custodian joins,
in a new process (not a fork of the operator's), and reads nothing but the end of its stdin.
"""

from __future__ import annotations

import shutil
import signal
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    for name in ("SIGINT", "SIGHUP", "SIGTERM"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    folder = Path(argv[0])
    while sys.stdin.buffer.read(4096):
        pass
    shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
