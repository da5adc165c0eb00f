"""How to name this program in a command printed for pasting: a name the shell finds, or a full path."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

NAME = "enigm-recover"


def program() -> str:
    """``enigm-recover`` when the shell's PATH finds this very program; else its full path (or
    ``python -m enigm_recover`` when run as a module), quoted for a POSIX shell."""
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    found = shutil.which(NAME)
    if argv0 is not None and argv0.name == NAME:
        here = argv0 if argv0.is_absolute() or os.sep in str(argv0) else Path(shutil.which(str(argv0)) or argv0)
        if found and Path(found).resolve() == here.resolve():
            return NAME
        return shlex.quote(str(here.resolve()))
    if found and Path(found).resolve().parent == Path(sys.executable).resolve().parent:
        return NAME
    return f"{shlex.quote(sys.executable)} -m enigm_recover"


def command(*words: str) -> str:
    """A pasteable command line: this program and ``words``, each quoted where the shell needs it."""
    return " ".join([program(), *(shlex.quote(w) for w in words)])
