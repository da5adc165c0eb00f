"""Imports run downward only: faces -> runbook -> recovery -> snapshot/sources -> quorum -> state."""

from __future__ import annotations

import ast
from pathlib import Path

import enigm_recover

PACKAGE = Path(enigm_recover.__file__).parent
# Each layer may import itself and the layers after it in this list; snapshot/ holds the listing contract,
# so it sits below sources/, which implements it.
LAYERS = ["app", "cli", "runbook", "ceremony", "recovery", "sources", "snapshot", "quorum", "state"]


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("enigm_recover."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("enigm_recover."))
    return found


def test_imports_run_downward_only() -> None:
    wrong = []
    for index, layer in enumerate(LAYERS):
        above = set(LAYERS[:index]) - ({"app", "cli"} if layer in ("app", "cli") else set())
        for path in sorted((PACKAGE / layer).rglob("*.py")):
            for imported in _imports(path) & above:
                wrong.append(f"{path.relative_to(PACKAGE)} imports {imported}/")
    assert wrong == []


def test_no_face_reads_engine_text_to_decide() -> None:
    """Faces read typed fields (statuses, checks, stages, a host key's fingerprint), never the engine's words."""
    statuses = ("done", "verified", "not-verified", "failed", "skipped", "completed", "partial")
    parsing = ("p.stage.startswith", "p.stage ==", '"ok: "', '"FAILED: "', "findall(exc", "search(exc", "match(exc",
               '.partition(": ")', 'action.value == "', *(f'status {op} "{s}"' for s in statuses for op in ("==", "!=")))
    found = []
    for face in ("app", "cli"):
        for path in sorted((PACKAGE / face).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            found += [f"{path.relative_to(PACKAGE)}: {p}" for p in parsing if p in text]
    assert found == []


def test_screens_do_not_switch_to_each_other() -> None:
    """Navigation lives in one place (app/navigation.py); the app's own dialogs aside, nothing else moves screens."""
    moves = ("push_screen(", "switch_screen(", "pop_screen(")
    found = [f"{path.name}: {m}" for path in sorted((PACKAGE / "app").glob("*.py"))
             if path.name not in ("navigation.py", "app.py") for m in moves if m in path.read_text(encoding="utf-8")]
    assert found == []


def test_the_restore_journal_sql_is_written_once() -> None:
    """Both stores take the journal's statements from state/journal.py, each in its own dialect."""
    from enigm_recover.state import postgres_store, sqlite_store

    for module in (sqlite_store, postgres_store):
        text = Path(module.__file__).read_text(encoding="utf-8")
        assert not any(t in text for t in ("enigm_restore_runs", "enigm_restore_batches", "enigm_restore_steps"))
    same = sqlite_store.JOURNAL.step_totals.replace("?", "%s").replace("INTEGER", "bigint")
    assert same == postgres_store.JOURNAL.step_totals
