"""A scripted walk through the drill in the app, stage by stage, for screenshots and snapshot tests.

Everything is typed through the keyboard as a person would (shares word by
word, four letters and a space each) and every wait is on a condition, never a
fixed sleep.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Awaitable, Callable

STAGES = ("start", "source", "snapshots", "verify", "quorum", "dry-run", "restore", "done")
CUSTODIANS = ("amara", "chen", "emeka")  # three of the drill's five: the quorum
SECOND_OPERATOR = "lee"


class StuckError(AssertionError):
    """The app did not reach the expected state in time."""


async def until(pilot: Any, predicate: Callable[[], Any], timeout: float = 30.0, what: str = "") -> None:
    """Let the app run until ``predicate()`` holds; fail on an internal error or after ``timeout`` s."""
    app = pilot.app
    deadline = time.monotonic() + timeout
    while True:
        if app.internal_errors:
            raise StuckError(f"internal error in the app: {app.internal_errors}")
        if predicate():
            return
        if time.monotonic() > deadline:
            raise StuckError(f"timed out waiting for {what or predicate} on {type(app.screen).__name__} "
                             f"(stack: {[type(s).__name__ for s in app.screen_stack]})")
        await pilot.pause(0.02)


def on(app: Any, name: str, **state: Any) -> bool:
    """The app shows the screen class ``name`` (and its attributes have these values)."""
    screen = app.screen
    return type(screen).__name__ == name and all(getattr(screen, k, None) == v for k, v in state.items())


def share_keys(words: str, *, prefixes: bool = True) -> list[str]:
    """The keys a custodian presses for a share: four letters and a space per word (completion does the
    rest), or every letter."""
    keys: list[str] = []
    for word in words.split():
        keys += list(word[:4] if prefixes else word) + ["space"]
    return keys


def read_cards(custodians: dict[str, Path]) -> dict[str, str]:
    from enigm_recover.quorum.cards import read_share_file

    return {name: read_share_file(Path(path)).words for name, path in custodians.items()}


async def type_share(pilot: Any, words: str, *, prefixes: bool = True, paste: bool = False) -> None:
    """Into the focused share field: typed (four letters and a space a word, or every letter), or pasted."""
    app = pilot.app
    await until(pilot, lambda: app.focused is not None and app.focused.id == "share", what="the share field")
    if paste:
        from textual import events

        app.focused.post_message(events.Paste(words))
        await until(pilot, lambda: app.focused.value == words, what="the pasted share")
        await pilot.press("enter")
    else:
        await pilot.press(*share_keys(words, prefixes=prefixes), "enter")


async def enter_share(pilot: Any, name: str, words: str, *, typed_ceremony: str = "", prefixes: bool = True,
                      paste: bool = False) -> None:
    app = pilot.app
    await until(pilot, lambda: app.focused is not None and app.focused.id == "custodian", what="the name field")
    await pilot.press(*name, "enter", *typed_ceremony, "enter")
    await type_share(pilot, words, prefixes=prefixes, paste=paste)


def wrong_share(words: str) -> str:
    """A card with two neighbouring words swapped: the checksum catches it."""
    w = words.split()
    w[4], w[5] = w[5], w[4]
    return " ".join(w)


async def walk(pilot: Any, cards: dict[str, str], stop: str = "done",
               at: Callable[[str], Awaitable[None]] | None = None, paste: bool = False) -> None:
    """From the start screen up to the stage ``stop`` (one of STAGES), as the drill's facilitator would;
    ``at(stage)`` is awaited at each stage on the way (to take a screenshot). With ``paste`` the custodians
    paste their shares instead of typing them (quicker: a test's key presses are slow)."""
    app = pilot.app

    async def reached(stage: str) -> bool:
        if at is not None:
            await at(stage)
        return stage == stop

    await until(pilot, lambda: on(app, "StartScreen") and app.screen.runbooks is not None, what="the runbooks")
    if await reached("start"):
        return
    await pilot.press("enter")  # start the highlighted runbook
    await until(pilot, lambda: on(app, "StepScreen", state="confirm"), what="the briefing")
    await pilot.press(*"room briefed", "ctrl+r")
    await until(pilot, lambda: on(app, "StepScreen", state="done"), what="the briefing done")
    await pilot.press("enter")
    await until(pilot, lambda: on(app, "SnapshotsScreen") or on(app, "HostKeyDialog"), what="the listing")
    if on(app, "HostKeyDialog"):
        if await reached("source"):
            return
        await pilot.press("a")
        await until(pilot, lambda: on(app, "SnapshotsScreen"), what="the listing")
    elif stop == "source":
        raise StuckError("no host-key dialog: the drill's known_hosts already holds the host key")
    if await reached("snapshots"):
        return
    await pilot.press("enter")  # the proposed snapshot
    await until(pilot, lambda: on(app, "VerifyScreen", state="done"), what="the verification")
    if await reached("verify"):
        return
    await pilot.press("enter")
    await until(pilot, lambda: on(app, "QuorumScreen"), what="the quorum")
    first, *others = CUSTODIANS
    await enter_share(pilot, first, cards[first], typed_ceremony=app.executor.ceremony, paste=paste)
    await until(pilot, lambda: len(app.executor.quorum().entry.receipts) == 1, what="the first share")
    await enter_share(pilot, others[0], wrong_share(cards[others[0]]), paste=paste)
    await until(pilot, lambda: bool(app.screen.rejected), what="the wrong share's verdict")
    if await reached("quorum"):
        return
    # the rejected custodian keeps their name in the field, clears the kept words and types the share again
    await pilot.press("ctrl+l")
    await type_share(pilot, cards[others[0]], paste=paste)
    await until(pilot, lambda: len(app.executor.quorum().entry.receipts) == 2, what="the second share")
    for name in others[1:]:
        await enter_share(pilot, name, cards[name], paste=paste)
    await until(pilot, lambda: on(app, "SecretDialog"), what="the passphrase dialog")
    await pilot.press("enter")  # the drill's cards have no passphrase
    await until(pilot, lambda: on(app, "DryRunScreen", state="done"), what="the dry run")
    if await reached("dry-run"):
        return
    await pilot.press("enter")
    await until(pilot, lambda: on(app, "StepScreen", state="confirm"), what="the restore plan")
    await pilot.press(*SECOND_OPERATOR)
    if await reached("restore"):
        return
    first_step = True
    while not on(app, "DoneScreen"):
        await until(pilot, lambda: on(app, "StepScreen", state="confirm"), what="the next step")
        step = app.executor.current
        if step.two_person and not first_step:  # the second operator's name carries from the last step
            assert app.screen.query_one("#second-operator").value == SECOND_OPERATOR
        first_step = False
        await pilot.press("ctrl+r")
        await until(pilot, lambda: on(app, "StepScreen", state="done"), what=f"step {step.id}")
        await pilot.press("enter")
        await until(pilot, lambda: on(app, "DoneScreen") or on(app, "StepScreen", state="confirm"),
                    what="the next screen")
    await reached("done")
