"""The headless command line: argument parsing and presentation only.

Every command calls the engine (state, snapshot, quorum, sources, recovery,
drill) and formats what it returns. A user-caused failure is an
``EnigmError``: it prints one line naming the cause and the next step, and
exits with the error's stable code (see the README). Everything printed goes
through ``inert.TerminalStream``: text from outside (records, names, paths)
never reaches the terminal as a control sequence.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

from enigm_recover.cli.context import Context
from enigm_recover.cli.parser import build_parser
from enigm_recover.errors import EnigmError, InputFileError, InterruptedByUser
from enigm_recover.inert import TerminalStream, for_terminal


def show_paths_on_streams() -> None:
    """Text for the terminal shows any path by the one rule of ``enigm_recover.paths`` (a byte that is not
    UTF-8 as ``\\xNN``) rather than failing on it."""
    from enigm_recover.paths import ERRORS

    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors=ERRORS)
            except (ValueError, OSError):
                pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command with stdout and stderr escaped (see ``inert.TerminalStream``)."""
    show_paths_on_streams()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = TerminalStream(sys.stdout), TerminalStream(sys.stderr)
    try:
        return _main(argv)
    finally:
        sys.stdout, sys.stderr = saved


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        from enigm_recover import logs

        logs.configure(logs.DEBUG if args.debug else logs.VERBOSE if args.verbose else logs.QUIET)
        if not getattr(args, "func", None):
            parser.print_help()
            return 0
        return args.func(Context(args))
    except EnigmError as exc:
        print(f"enigm-recover: error: {for_terminal(exc.one_line())}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        err = InterruptedByUser("interrupted")
        print(f"\nenigm-recover: {for_terminal(err.one_line())}", file=sys.stderr)
        return err.exit_code
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (MemoryError, RecursionError, OverflowError) as exc:
        # Defense in depth: every reader is bounded (enigm_recover/bounded.py), so this means an input no
        # bound foresaw; it is still the input's size or shape, said in one line, not a crash.
        if os.environ.get("ENIGM_RECOVER_DEBUG"):
            raise
        err = InputFileError(f"an input is too large or too deeply nested to handle ({type(exc).__name__})",
                             "check the files and standard input given to the command")
        print(f"enigm-recover: error: {err.one_line()}", file=sys.stderr)
        return err.exit_code
    except Exception as exc:  # a bug: say so in one line; the traceback only on request
        if os.environ.get("ENIGM_RECOVER_DEBUG"):
            raise
        print(f"enigm-recover: internal error: {type(exc).__name__}: {for_terminal(exc)} — this is a bug; please "
              "report it (set ENIGM_RECOVER_DEBUG=1 to see the traceback)", file=sys.stderr)
        return 1
