"""Start-up of the app to its first paint, beside a bare Textual app showing one Label; and typing lag.

Each side is a fresh child process on a pseudo-terminal of 120x40 with the real
terminal driver, timed from spawn until its first frame reaches the terminal
(a marker in what the child writes: the start screen's "Choose a runbook" for
ours, the Label's text for the bare app); then the parent sends ctrl+q. Ours is
the real command line, ``python -m enigm_recover app --source ... --target ...
--runbook tabletop-drill``: the CLI, the app and its start screen, with the
runbooks (and the engine they import) read only after the first paint.
Runs alternate, medians reported. Goal: at most 2x the bare app.

Typing: a child shows only the share field and its word counter (as the quorum
screen does); the parent types a 33-word share, four letters and a space per
word, one key every 10 ms (ten times a fast typist), and measures how long
after the last key the screen says "33 of 33 words". Goal: at most 0.25 s.

This file is also the child (``python -m bench.app_startup bare|typing``): it
imports only the standard library at the top.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import shutil
import signal
import statistics
import struct
import sys
import tempfile
import termios
from pathlib import Path
from time import perf_counter, sleep
from typing import Any

from bench.common import log, verdict

ROOT = Path(__file__).resolve().parent.parent
REPEATS = 9
GOAL_RATIO = 2.0  # ours / bare app, medians of time to first paint: at most
GOAL_TYPING_LAG_S = 0.25
SIZE = (40, 120)  # rows, columns
BARE_MARKER = b"bench-label-ready"
APP_MARKER = b"Choose a runbook"
TYPING_READY = b"0 of 33 words"
TYPING_DONE = b"33 of 33 words"
KEY_INTERVAL_S = 0.01
TIMEOUT_S = 60.0


# -- children ----------------------------------------------------------------------------------------


def bare_child() -> None:
    from textual.app import App, ComposeResult
    from textual.widgets import Label

    class Bare(App[None]):
        BINDINGS = [("ctrl+q", "quit", "Quit")]

        def compose(self) -> ComposeResult:
            yield Label(BARE_MARKER.decode())

    Bare().run()


def typing_child() -> None:
    from textual.app import App, ComposeResult
    from textual.widgets import Static

    from enigm_recover.app.widgets import ShareInput

    class Typing(App[None]):
        BINDINGS = [("ctrl+q", "quit", "Quit")]

        def compose(self) -> ComposeResult:
            yield ShareInput(id="share")
            yield Static("0 of 33 words", id="state")

        def on_mount(self) -> None:
            self.query_one("#share").focus()

        def on_share_input_word_state(self, event: ShareInput.WordState) -> None:
            self.query_one("#state", Static).update(f"{event.words} of 33 words · {event.current}")

    Typing().run()


# -- the parent --------------------------------------------------------------------------------------


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENIGM_RECOVER_") and k != "NO_COLOR"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["TERM"] = "xterm-256color"
    env["COLUMNS"], env["LINES"] = str(SIZE[1]), str(SIZE[0])
    return env


class Terminal:
    """A child on a pseudo-terminal; ``expect`` reads until a marker appears."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.started = perf_counter()
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: exec at once
            try:
                os.execve(argv[0], argv, env)
            finally:
                os._exit(127)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", SIZE[0], SIZE[1], 0, 0))
        self.seen = b""

    def expect(self, marker: bytes, timeout: float = TIMEOUT_S) -> float:
        """Seconds since spawn when ``marker`` appeared in the output."""
        deadline = perf_counter() + timeout
        while marker not in self.seen:
            left = deadline - perf_counter()
            if left <= 0:
                raise RuntimeError(f"no {marker!r} within {timeout} s; the child wrote: {self.seen[-2000:]!r}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise RuntimeError(f"the child ended before {marker!r}: {self.seen[-2000:]!r}")
                self.seen += chunk
        return perf_counter() - self.started

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def close(self) -> None:
        """ctrl+q, then wait (draining the output); kill after a while."""
        try:
            self.send(b"\x11")
        except OSError:
            pass
        deadline = perf_counter() + 10
        while perf_counter() < deadline:
            pid, _ = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                break
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if ready:
                try:
                    os.read(self.fd, 65536)
                except OSError:
                    pass
        else:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)


def first_paint(argv: list[str], marker: bytes, env: dict[str, str]) -> float:
    term = Terminal(argv, env)
    try:
        return term.expect(marker)
    finally:
        term.close()


def typing_lag(env: dict[str, str], share: str) -> float:
    term = Terminal([sys.executable, "-m", "bench.app_startup", "typing"], env)
    try:
        term.expect(TYPING_READY)
        for word in share.split():
            for char in word[:4] + " ":
                term.send(char.encode())
                sleep(KEY_INTERVAL_S)
        last = perf_counter()
        term.expect(TYPING_DONE)
        return perf_counter() - last
    finally:
        term.close()


def a_share() -> str:
    from shamir_mnemonic.wordlist import WORDLIST

    return " ".join(WORDLIST[(i * 37) % len(WORDLIST)] for i in range(33))


def measure(work: Path, repeats: int) -> dict[str, Any]:
    env = child_env()
    env["ENIGM_RECOVER_STATE_DIR"] = str(work / "state")
    env["ENIGM_RECOVER_CACHE_DIR"] = str(work / "cache")
    env["ENIGM_RECOVER_CONFIG"] = str(work / "config.toml")
    (work / "snapshots").mkdir()
    jobs = {
        "bare": ([sys.executable, "-m", "bench.app_startup", "bare"], BARE_MARKER),
        "app": ([sys.executable, "-m", "enigm_recover", "app", "--source", str(work / "snapshots"),
                 "--target", f"sqlite:///{work / 'live.db'}", "--allowed-signers", str(work / "allowed_signers"),
                 "--runbook", "tabletop-drill", "--operator", "bench"], APP_MARKER),
    }
    for argv, marker in jobs.values():  # warm-up: the file system cache and the bytecode
        first_paint(argv, marker, env)
    samples: dict[str, list[float]] = {name: [] for name in jobs}
    for round_no in range(repeats):
        order = list(jobs) if round_no % 2 == 0 else list(reversed(jobs))
        for name in order:
            argv, marker = jobs[name]
            samples[name].append(first_paint(argv, marker, env))
    share = a_share()
    typing_lag(env, share)  # warm-up
    lags = [typing_lag(env, share) for _ in range(3)]
    return {
        "first_paint_s": {name: statistics.median(values) for name, values in samples.items()},
        "runs_s": samples,
        "typing_lag_s": statistics.median(lags),
        "typing_runs_s": lags,
        "keys_typed": len(share.split()) * 5,
        "key_interval_s": KEY_INTERVAL_S,
    }


def run(scale: float, out_dir: Path) -> dict[str, Any]:
    """The benchmark (``scale`` only sets the number of runs); prints and returns the results."""
    repeats = max(3, round(REPEATS * min(scale, 1.0)))
    log(f"app_startup: time to first paint, ours vs a bare Textual app with one Label ({repeats} runs each, "
        f"{SIZE[1]}x{SIZE[0]} pty); typing lag in the share field")
    work = Path(tempfile.mkdtemp(prefix="app_startup-", dir=out_dir))
    try:
        measured = measure(work, repeats)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    paint = measured["first_paint_s"]
    ratio = paint["app"] / paint["bare"]
    lag = measured["typing_lag_s"]
    result = {"repeats": repeats, "measured": measured,
              "goals": {"startup_ratio": ratio, "startup_goal": GOAL_RATIO, "startup_ok": ratio <= GOAL_RATIO,
                        "typing_lag_s": lag, "typing_goal_s": GOAL_TYPING_LAG_S,
                        "typing_ok": lag <= GOAL_TYPING_LAG_S}}
    result["goals_met"] = result["goals"]["startup_ok"] and result["goals"]["typing_ok"]
    log(f"  first paint: bare Textual app {paint['bare'] * 1000:.0f} ms, enigm-recover app "
        f"{paint['app'] * 1000:.0f} ms (medians) -> {ratio:.2f}x (goal <= {GOAL_RATIO:.1f}x) "
        f"{verdict(ratio <= GOAL_RATIO)}")
    log(f"  typing: {measured['keys_typed']} keys at one per {KEY_INTERVAL_S * 1000:.0f} ms; the screen caught up "
        f"{lag * 1000:.0f} ms after the last key (goal <= {GOAL_TYPING_LAG_S * 1000:.0f} ms) "
        f"{verdict(lag <= GOAL_TYPING_LAG_S)}")
    return result


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "bare":
        bare_child()
    elif mode == "typing":
        typing_child()
    else:
        out = ROOT / "bench" / "out"
        out.mkdir(exist_ok=True)
        print(json.dumps(run(1.0, out)["goals"]))
