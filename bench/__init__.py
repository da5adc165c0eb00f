"""Benchmarks for enigm_recover, run with ``python -m bench`` (``make bench``).

Each benchmark measures itself beside a standard tool in the same run and
reports the ratio, so results stay comparable across machines.
"""

from __future__ import annotations

from pathlib import Path

OUT_DIR = Path(__file__).resolve().parent / "out"
