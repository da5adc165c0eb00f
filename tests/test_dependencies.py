"""The dependencies as the project relies on them: the pins, and every private Textual API the app uses.

Textual is pinned exactly (pyproject.toml says why). The app uses Textual's public API wherever one does
the job; the one private method it overrides, where Textual has no public hook, is named here, so an
upgrade of Textual that changes it fails this test rather than the app in an incident.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import pkgutil
import re
import tomllib
from importlib.metadata import version
from pathlib import Path

from textual.app import App, ComposeResult

import enigm_recover
import enigm_recover.app as app_package
from enigm_recover.app.widgets import ShareInput

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# The private Textual methods the app overrides, and why no public API does the job.
PRIVATE_TEXTUAL_API = {
    # Textual calls it for any exception escaping a handler and, by default, exits printing the traceback
    # with its locals (which may hold what a custodian typed); there is no public hook for it.
    ("RecoverApp", "_handle_exception"),
}


def _textual_private_overrides() -> set[tuple[str, str]]:
    found = set()
    for info in pkgutil.iter_modules(app_package.__path__):
        module = importlib.import_module(f"{app_package.__name__}.{info.name}")
        for cls in vars(module).values():
            if not inspect.isclass(cls) or cls.__module__ != module.__name__:
                continue
            for name, member in vars(cls).items():
                if not name.startswith("_") or name.startswith("__") or not inspect.isfunction(member):
                    continue
                if any(base.__module__.startswith("textual") and name in vars(base) for base in cls.__mro__[1:]):
                    found.add((cls.__qualname__, name))
    return found


def test_the_app_overrides_no_private_textual_api_but_the_named_ones() -> None:
    assert _textual_private_overrides() == PRIVATE_TEXTUAL_API


def test_textual_still_routes_a_handler_exception_through_handle_exception() -> None:
    """The contract the app's override relies on: an exception escaping a handler reaches
    App._handle_exception(error) (the app's own tests show what it does with it)."""
    assert list(inspect.signature(App._handle_exception).parameters) == ["self", "error"]
    seen: list[BaseException] = []

    class Probe(App[None]):
        def _handle_exception(self, error: Exception) -> None:
            seen.append(error)
            self.exit()

        def on_mount(self) -> None:
            self.call_later(self.boom)

        def boom(self) -> None:
            raise ValueError("boom")

    async def scenario() -> None:
        await asyncio.wait_for(Probe().run_async(headless=True), timeout=60)

    asyncio.run(scenario())
    assert [type(e) for e in seen] == [ValueError]


def test_the_share_field_posts_a_verdict_through_the_public_value_watcher() -> None:
    states: list[ShareInput.WordState] = []

    class Field(App[None]):
        def compose(self) -> ComposeResult:
            yield ShareInput(id="share")

        def on_share_input_word_state(self, event: ShareInput.WordState) -> None:
            states.append(event)

    async def scenario() -> None:
        async with Field().run_test() as pilot:
            await pilot.press(*"acad", "space", "x", "q")
            await pilot.pause()

    asyncio.run(scenario())
    assert states, "no verdict was posted while typing"
    assert states[-1].words == 1
    assert "_watch_value" not in vars(ShareInput)


def test_textual_is_pinned_exactly_and_installed_at_the_pin() -> None:
    pins = [d for d in PYPROJECT["project"]["dependencies"] if d.startswith("textual")]
    assert pins == [f"textual=={version('textual')}"]


def test_other_dependencies_take_security_releases() -> None:
    """Every other runtime dependency is a compatible-release range, never an exact pin."""
    for requirement in PYPROJECT["project"]["dependencies"]:
        if not requirement.startswith("textual"):
            assert re.search(r"~=\d", requirement), requirement


def _lock(name: str) -> dict[str, str]:
    """A lock file's pins, {package: version}; every requirement in it must be exact and hashed."""
    pins = {}
    for block in re.split(r"\n(?=[^\s#])", (ROOT / name).read_text()):
        if block.startswith("#") or not block.strip():
            continue
        match = re.match(r"([A-Za-z0-9_.-]+)==(\S+?)(?: ;| \\|$)", block)
        assert match, f"{name}: not an exact pin: {block.splitlines()[0]}"
        assert "--hash=sha256:" in block, f"{name}: {match.group(1)} has no hash"
        pins[match.group(1)] = match.group(2)
    return pins


def test_the_lock_files_pin_every_dependency_with_hashes() -> None:
    runtime, dev = _lock("requirements.lock"), _lock("requirements-dev.lock")
    assert runtime["textual"] == dev["textual"] == version("textual")
    assert {p: v for p, v in dev.items() if p in runtime} == runtime  # the tests run what users install
    for package in ("pytest", "pyinstaller", "setuptools"):
        assert package in dev and package not in runtime


def test_one_version_source() -> None:
    assert "version" not in PYPROJECT["project"]
    assert PYPROJECT["project"]["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "enigm_recover.__version__"}
    assert version("enigm-recover") == enigm_recover.__version__
