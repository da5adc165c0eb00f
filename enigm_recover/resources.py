"""The files the tool ships and reads at run time, found through ``importlib.resources``.

Shipped runbooks and the app's stylesheet are package data: they travel inside the wheel and the
single-file executable, so an installed tool never looks outside its own package. The package is
always installed as plain files (a wheel, an editable checkout or PyInstaller's extracted folder),
so each resource is a real path that the bounded readers can check.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def package_path(*parts: str) -> Path:
    """The real path of a file or folder shipped in the package."""
    resource = files("enigm_recover").joinpath(*parts)
    if not isinstance(resource, Path):  # pragma: no cover - only a zip import would do this
        raise RuntimeError(f"enigm_recover is installed in a way that gives no real path for {'/'.join(parts)}; "
                           "install it from its wheel")
    return resource


def builtin_runbooks() -> Path:
    """The folder of the runbooks shipped with the tool."""
    return package_path("runbooks")


def app_stylesheet() -> Path:
    """The app's Textual stylesheet."""
    return package_path("app", "app.tcss")
