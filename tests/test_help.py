"""Every option of every command explains itself in --help."""

from __future__ import annotations

import argparse
from typing import Iterator

from enigm_recover.cli.parser import build_parser
from enigm_recover.recovery.plan import Policy


def _options(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.Action]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, f"{path} {name}")
        elif action.option_strings and action.help is not argparse.SUPPRESS:
            yield path, action


def test_every_option_of_every_command_has_help_text() -> None:
    options = list(_options(build_parser(), "enigm-recover"))
    assert len(options) > 100  # the walk reached the subcommands
    missing = [f"{path} {'/'.join(action.option_strings)}" for path, action in options
               if not (action.help or "").strip()]
    assert missing == []


def test_the_policy_option_lists_every_valid_policy() -> None:
    helps = [action.help or "" for _, action in _options(build_parser(), "enigm-recover")
             if "--policy" in action.option_strings]
    assert helps
    for text in helps:
        assert all(policy.value in text for policy in Policy), text
