"""Hashing files in blocks, with progress."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from enigm_recover.progress import Progress, ProgressCallback, Stage, no_progress

HASH_BLOCK = 1 << 20


def hash_file(path: Path, progress: ProgressCallback = no_progress, stage: Stage = Stage.HASH) -> tuple[int, str]:
    """(size, SHA-256 hex) of a file, read once in 1 MiB blocks."""
    hasher = hashlib.sha256()
    size = 0
    total = os.path.getsize(path)
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(HASH_BLOCK)
        view = memoryview(buf)
        while n := f.readinto(buf):
            hasher.update(view[:n])
            size += n
            progress(Progress(stage, size, total, "bytes"))
    return size, hasher.hexdigest()
