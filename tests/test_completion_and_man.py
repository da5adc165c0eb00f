"""Shell completion and the manual page, both generated from the argument parser."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from enigm_recover.cli.parser import build_parser

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def every_command_and_option(parser: argparse.ArgumentParser, prefix: str = "") -> tuple[set[str], set[str]]:
    commands, options = set(), set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                commands.add(name)
                c, o = every_command_and_option(sub, f"{prefix} {name}")
                commands |= c
                options |= o
        elif action.help != argparse.SUPPRESS:
            options |= {o for o in action.option_strings if o.startswith("--")}
    return commands, options


def bash_complete(script: str, line: str) -> list[str]:
    """What bash offers for the last word of ``line`` (a trailing space: a new, empty word)."""
    words = line.split() + ([""] if line.endswith(" ") else [])
    program = (f"source /dev/stdin <<'EOF'\n{script}\nEOF\n"
               f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}; "
               f"COMP_LINE={line!r}; COMP_POINT=${{#COMP_LINE}}; "
               "_shtab_enigm_recover; printf '%s\\n' \"${COMPREPLY[@]}\"")
    done = subprocess.run(["bash", "--norc", "--noprofile", "-c", program], capture_output=True, text=True,
                          check=True)
    return [w.strip() for w in done.stdout.splitlines() if w.strip()]


def test_bash_completes_commands_actions_and_options(cli) -> None:
    code, script, _ = cli("completion", "bash")
    assert code == 0
    assert bash_complete(script, "enigm-recover res") == ["restore"]
    assert set(bash_complete(script, "enigm-recover runbooks ")) == {"list", "show", "check"}
    assert "--dry-run" in bash_complete(script, "enigm-recover restore --dr")
    assert set(bash_complete(script, "enigm-recover completion ")) == {"bash", "zsh", "fish"}
    assert "--accept-new-host-key" in bash_complete(script, "enigm-recover verify --acc")
    assert "--batch-size" not in script  # hidden options stay hidden


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_scripts_name_every_command(cli, shell: str, tmp_path: Path) -> None:
    code, script, _ = cli("completion", shell)
    assert code == 0
    commands, options = every_command_and_option(build_parser())
    assert all(c in script for c in commands) and all(o.lstrip("-") in script for o in options)
    if shutil.which(shell):  # the shell itself parses it
        (tmp_path / "script").write_text(script)
        check = ["zsh", "-n", str(tmp_path / "script")] if shell == "zsh" else \
            ["fish", "--no-execute", str(tmp_path / "script")]
        subprocess.run(check, check=True)


def test_an_unknown_shell_is_a_usage_error(cli) -> None:
    code, out, err = cli("completion", "tcsh")
    assert code == 2 and out == "" and "bash" in err and "Traceback" not in err


@pytest.mark.skipif(not (BIN / "argparse-manpage").exists(), reason="argparse-manpage (the test extra) is needed")
def test_make_man_writes_a_manual_page_with_every_command_and_option(tmp_path: Path) -> None:
    make = ["make", "-s", "-C", str(ROOT), "-o", ".venv/.installed-test", f"BIN={BIN}", f"MANDIR={tmp_path}", "man"]
    subprocess.run(make, check=True, capture_output=True)
    page = tmp_path / "enigm-recover.1"
    env = {k: v for k, v in os.environ.items() if k != "MAN_KEEP_FORMATTING"} | {"MANWIDTH": "200"}
    shown = subprocess.run(["man", "-l", str(page)], capture_output=True, text=True, check=True, env=env).stdout
    shown = re.sub(".\b", "", shown).replace("\u2010", "-").replace("\u2212", "-")  # no overstrike, plain hyphens
    commands, options = every_command_and_option(build_parser())
    assert shown.startswith("ENIGM-RECOVER(1)")
    assert all(f"enigm-recover {c}" in shown or f" {c}" in shown for c in commands)
    missing = [o for o in options - {"--help"} if o not in shown]
    assert not missing, missing
