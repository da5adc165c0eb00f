"""`completion`: shell completion scripts generated from the argument parser itself."""

from __future__ import annotations

import argparse
import sys

from enigm_recover.cli.context import Context

SHELLS = ("bash", "zsh", "fish")
# Options whose value is a path: the shell completes file names for them (folders for DIR).
FILE_METAVARS = {"F", "FILE", "SSH_KEY", "FILE.jsonl"}
DIR_METAVARS = {"DIR"}


def _mark_paths(parser: argparse.ArgumentParser) -> None:
    import shtab

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _mark_paths(sub)
        elif action.metavar in FILE_METAVARS:
            action.complete = shtab.FILE  # type: ignore[attr-defined]
        elif action.metavar in DIR_METAVARS:
            action.complete = shtab.DIRECTORY  # type: ignore[attr-defined]


def completion_script(shell: str) -> str:
    import shtab

    from enigm_recover.cli.parser import build_parser

    parser = build_parser()
    _mark_paths(parser)
    return shtab.complete(parser, shell=shell)


def cmd_completion(ctx: Context) -> int:
    sys.stdout.write(completion_script(ctx.args.shell))
    return 0
