"""asyncssh, imported for less: no compiler run to look for optional libraries, no collections of what it leaves.

On import, asyncssh looks for libnettle (UMAC) and liboqs (sntrup761 key exchange) with
``ctypes.util.find_library``. On Linux that runs ``ldconfig -p`` once per name and, for a name the
loader's cache lacks (liboqs, usually), a C compiler and ``ld`` twice over: eleven processes and
40-80 ms of every SSH command's start-up on a machine with a compiler. While asyncssh is imported
here, a name is looked up in the loader's cache alone, read once: an installed shared library is
listed there, and it is what ``dlopen`` finds by name. With ``LD_LIBRARY_PATH`` set, off Linux, or
when the cache cannot be read, the standard search runs unchanged.

The import also leaves some thirty thousand objects the cyclic collector tracks (modules, classes,
functions, tables), which live as long as the process. The cyclic collector is paused while they are made, then everything that exists
is frozen (``gc.freeze``): no later collection walks it again, nor the interpreter's last one at exit
(together about 40 ms of a short fetch's process). Frozen objects are still freed by reference
counting; only a reference cycle among them would never be reclaimed.
"""

from __future__ import annotations

import gc
import importlib
import os
import re
import subprocess
import sys
from typing import Callable

LDCONFIG = "/sbin/ldconfig"
# The ABI tag ldconfig prints beside a library of this process's kind (as ctypes.util matches it).
_ABI_TAGS = {"x86_64": "libc6,x86-64", "ppc64": "libc6,64bit", "sparc64": "libc6,64bit", "s390x": "libc6,64bit",
             "ia64": "libc6,IA-64"}


def loader_cache_lookup() -> Callable[[str], str | None] | None:
    """A ``find_library`` that reads the loader's cache (``ldconfig -p``) once; None where that is not
    the whole answer (not Linux, ``LD_LIBRARY_PATH`` set) or the cache cannot be read."""
    if not sys.platform.startswith("linux") or os.environ.get("LD_LIBRARY_PATH"):
        return None
    try:
        cache = subprocess.run([LDCONFIG, "-p"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, env={"LC_ALL": "C", "LANG": "C"}, check=True,
                               timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    abi = _ABI_TAGS.get(os.uname().machine, "libc6") if sys.maxsize > 2**32 else "libc6"

    def find_library(name: str) -> str | None:
        found = re.search(rb"\s+(lib%s\.[^\s]+)\s+\(%s" % (re.escape(os.fsencode(name)), abi.encode()), cache)
        return os.fsdecode(found.group(1)) if found else None

    return find_library


def _import() -> None:
    if "asyncssh" in sys.modules:
        return
    import ctypes.util

    lookup = loader_cache_lookup()
    standard = ctypes.util.find_library
    collecting = gc.isenabled()
    gc.disable()
    try:
        if lookup is not None:
            ctypes.util.find_library = lookup
        importlib.import_module("asyncssh")
    finally:
        ctypes.util.find_library = standard
        if collecting:
            gc.enable()
    gc.freeze()


_import()

import asyncssh  # noqa: E402 - imported above, with the quick library search

__all__ = ["asyncssh"]
