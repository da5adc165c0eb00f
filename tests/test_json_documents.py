"""Every `--json` document is versioned and shaped as docs/JSON.md says."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from enigm_recover.cli.output import SCHEMA_VERSION
from enigm_recover.cli.parser import build_parser

DOC = Path(__file__).resolve().parent.parent / "docs" / "JSON.md"
CARDS = ("amara", "chen", "emeka")


def documented_keys() -> dict[str, set[str]]:
    """Section title (a command) -> the top-level keys its tables list."""
    sections: dict[str, set[str]] = {}
    current = None
    for line in DOC.read_text().splitlines():
        heading = re.fullmatch(r"## `([a-z -]+)`", line)
        if heading:
            current = sections.setdefault(heading.group(1), set())
        elif current is not None and (row := re.match(r"\| `([a-z_0-9]+)` \|", line)):
            current.add(row.group(1))
    return sections


def commands_with_json(parser: argparse.ArgumentParser, prefix: str = "") -> list[str]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += commands_with_json(sub, f"{prefix} {name}".strip())
        elif "--json" in action.option_strings:
            found.append(prefix)
    return found


def test_every_command_with_json_is_documented() -> None:
    commands = commands_with_json(build_parser())
    assert len(commands) >= 14
    assert set(commands) <= set(documented_keys()), set(commands) - set(documented_keys())


def test_every_document_carries_the_schema_version_and_the_documented_keys(drill, cli, tmp_path: Path) -> None:
    shares = sum((["--share-file", drill.card(n)] for n in CARDS), [])
    snap = [drill.snapshots, "latest", "--allowed-signers", drill.allowed_signers]
    (tmp_path / "sealed").mkdir()
    runs = {
        "config show": ["config", "show"],
        "snapshots list": ["snapshots", "list", drill.snapshots, "--allowed-signers", drill.allowed_signers],
        "verify": ["verify", *snap],
        "unseal": ["unseal", *snap, *shares, "--out", tmp_path / "out.jsonl"],
        "diff": ["diff", *snap, "--target", drill.target, *shares],
        "restore --dry-run": ["restore", *snap, "--target", drill.target, *shares, "--dry-run"],
        "restore": ["restore", *snap, "--target", drill.target, *shares, "--yes"],
        "runbooks list": ["runbooks", "list"],
        "runbooks show": ["runbooks", "show", "tabletop-drill"],
        "readiness": ["readiness", drill.snapshots, "--allowed-signers", drill.allowed_signers,
                      "--recipient", drill.recipient, "--max-age", "3650d"],
        "keys init": ["keys", "init", "--threshold", "2", "--shares", "2", "--custodian", "a", "--custodian", "b",
                      "--out", tmp_path],
        "seal": ["seal", "--from", drill.target, "--recipient", drill.recipient, "--sign-key", drill.signing_key,
                 "--environment", "test", "--out", tmp_path / "sealed"],
        "drill": ["drill", tmp_path / "small", "--no-tui", "--identities", "10", "--snapshots", "1"],
        "snapshots prune": ["snapshots", "prune", drill.snapshots, "--allowed-signers", drill.allowed_signers,
                            "--keep-last", "1"],
        "snapshots scope": ["snapshots", "scope", drill.snapshots, "--allowed-signers", drill.allowed_signers],
    }
    documented = documented_keys()
    docs = {}
    for name, argv in runs.items():
        code, out, err = cli(*argv, "--json")
        assert code == 0, (name, err)
        doc = json.loads(out)
        assert next(iter(doc)) == "schema_version" and doc["schema_version"] == SCHEMA_VERSION == 1, name
        docs[name] = doc
        command = name.removesuffix(" --dry-run")
        assert set(doc) - {"schema_version"} <= documented[command], (name, set(doc) - documented[command])
    audit_log = docs["restore"]["recovery"]["audit_log"]
    code, out, _ = cli("audit", "verify", audit_log, "--json")
    assert code == 0 and json.loads(out)["schema_version"] == 1
    assert set(json.loads(out)) - {"schema_version"} == documented["audit verify"]
    code, out, _ = cli("run", "tabletop-drill", "--source", drill.snapshots, "--target", drill.target,
                       "--allowed-signers", drill.allowed_signers, *shares, "--yes", "--operator", "dana",
                       "--second-operator", "lee", "--json")
    assert code == 0 and json.loads(out)["schema_version"] == 1
    assert set(json.loads(out)) - {"schema_version"} == documented["run"]
    # documented keys are the ones a document has: none invented, none left out
    for name in ("config show", "snapshots list", "verify", "unseal", "diff", "runbooks list", "runbooks show",
                 "readiness", "keys init", "seal", "drill", "snapshots prune", "snapshots scope"):
        assert set(docs[name]) - {"schema_version"} == documented[name], name
    restore_keys = set(docs["restore"]) | set(docs["restore --dry-run"])
    assert restore_keys - {"schema_version"} == documented["restore"]
