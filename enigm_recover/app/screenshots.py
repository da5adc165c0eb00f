"""Regenerate the README's screenshots: one SVG per stage, from a seeded drill (``make screenshots``).

``python -m enigm_recover.app.screenshots [OUT_DIR]`` builds a small drill with a
fixed seed and incident time in a temporary folder, serves it over the
in-process SSH server (with an empty known_hosts, so the host-key dialog
shows), walks it in the app at 120x40 and saves ``NN-stage.svg`` at each stage.
Paths, sizes and hashes that change from run to run are shown in a fixed form.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

AT = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
SEED = 7
CEREMONY = "lunar-academic-47"
SIZE = (120, 40)


def stable(root: Path, keep: tuple[str, ...] = ()) -> Callable[[str], str]:
    """What a screenshot shows in place of what changes from run to run: the temporary folder, sizes (the
    payload's zstd runs multi-threaded), hashes, ports, host-key fingerprints (all but ``keep``) and the
    timestamps in folder names."""
    folder = str(root)
    rules: list[tuple[re.Pattern[str], Any]] = [
        (re.compile(r"SHA256:[A-Za-z0-9+/]{43}"),
         lambda m: m.group(0) if m.group(0) in keep else "SHA256:q3kDtkMMs3Hs6dbTbNu0ZzbAh4B3ebbuxA6PzKDHs6s"),
        (re.compile(r"\b[0-9a-f]{64}\b"), "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),
        (re.compile(r"\b(?:[0-9a-f]{4} ){7}[0-9a-f]{4}\b"), "9f86 d081 884c 7d65 9a2f eaa0 c55a d015"),  # grouped
        (re.compile(r"127\.0\.0\.1\]?:\d+"), "127.0.0.1:2222"),
        (re.compile(r"\b\d{4}-\d{2}-\d{2}T\d{6}Z"), "2026-11-27T120000Z"),
        (re.compile(r"\b\d+(\.\d)? KiB"), "17.0 KiB"),
        (re.compile(r"\b\d+ bytes"), "17452 bytes"),
        (re.compile(r"size = \d+"), "size = 17452"),
    ]

    def redact(text: str) -> str:
        text = text.replace(folder, "/srv/drill")
        for pattern, replacement in rules:
            text = pattern.sub(replacement, text)
        return text

    return redact


async def _shoot(out: Path, root: Path) -> list[Path]:
    from enigm_recover.app.app import RecoverApp
    from enigm_recover.app.options import drill_options
    from enigm_recover.app.tour import STAGES, read_cards, walk
    from enigm_recover.drill.scenario import DrillSpec, make_drill
    from enigm_recover.drill.serve import serve_drill

    make_drill(root / "drill", DrillSpec(identities=60, devices_per_identity=3, seed=SEED, snapshots=3, at=AT))
    server, doc = serve_drill(root / "drill")
    saved: list[Path] = []
    try:
        Path(doc["ssh"]["known_hosts"]).write_text("")  # so the host-key dialog shows
        options = drill_options(doc, state_dir=root / "state", cache_dir=root / "cache", operator="dana",
                                ceremony=CEREMONY, now=lambda: AT, monotonic=lambda: 0.0, still=True,
                                redact=stable(root, keep=(doc["recovery"]["fingerprint"],)))
        app = RecoverApp(options)
        cards = read_cards(options.drill.custodians if options.drill else {})
        async with app.run_test(size=SIZE) as pilot:
            async def at(stage: str) -> None:
                app.clear_notifications()
                await pilot.pause()
                path = out / f"{STAGES.index(stage) + 1:02d}-{stage}.svg"
                path.write_text(app.export_screenshot(title=f"enigm-recover — {stage}"))
                saved.append(path)
                print(f"wrote {path}", flush=True)

            await walk(pilot, cards, "done", at)
            await pilot.press("q")
    finally:
        server.stop()
    return saved


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0] if args else "screenshots")
    out.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="enigm-screenshots-"))
    try:
        saved = asyncio.run(_shoot(out, root))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{len(saved)} screenshots in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
