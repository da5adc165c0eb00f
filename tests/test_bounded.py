"""Every reader is bounded before it reads: a device, a FIFO, a folder, a huge file or a deeply nested
document given where a small file belongs, or endless standard input, is refused with the reader's own
exit code and one line — never exit 1 (a bug), never MemoryError or RecursionError, never a hang.

Each CLI case runs in a process of its own with bounded memory and a timeout (tests/hostile_files.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Callable

import pytest

from enigm_recover import bounded
from enigm_recover.errors import InputFileError
from tests.hostile_files import HOSTILE_NAMES, NESTED_TOML, assert_refused, hostile_files, run_cli

NOT_TOML = ["device", "fifo", "folder", "symlink to a device", "huge sparse file"]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return hostile_files(tmp_path_factory.mktemp("hostile"))


def _share_args(drill) -> list[str | Path]:
    return [arg for name in ("amara", "chen", "emeka") for arg in ("--share-file", drill.card(name))]


# reader -> (the hostile kinds it is walked through, the command line for a hostile path, the exit code)
Case = tuple[list[str], Callable[..., list[str | Path]], int]
READERS: dict[str, Case] = {
    "share file": (NOT_TOML, lambda d, t, p: ["unseal", d.snapshots, "latest", "--allowed-signers",
                                              d.allowed_signers, "--share-file", p, "--out", t / "out.jsonl"], 3),
    "runbook": (HOSTILE_NAMES, lambda d, t, p: ["runbooks", "check", p], 8),
    "config file": (HOSTILE_NAMES, lambda d, t, p: ["--config", p, "snapshots", "list", d.snapshots], 4),
    "allowed_signers": (NOT_TOML, lambda d, t, p: ["snapshots", "list", d.snapshots, "--allowed-signers", p], 3),
    "recipient file": (NOT_TOML, lambda d, t, p: ["snapshots", "list", d.snapshots, "--recipient", p], 3),
    "passphrase file": (NOT_TOML, lambda d, t, p: ["unseal", d.snapshots, "latest", "--allowed-signers",
                                                   d.allowed_signers, *_share_args(d), "--passphrase-file", p,
                                                   "--out", t / "out.jsonl"], 3),
    "signing key": (NOT_TOML, lambda d, t, p: ["seal", "--from", d.target, "--recipient", d.recipient,
                                               "--sign-key", p, "--environment", "prod", "--out", t], 3),
    "audit key": (NOT_TOML, lambda d, t, p: ["unseal", d.snapshots, "latest", "--allowed-signers",
                                             d.allowed_signers, *_share_args(d), "--audit-key", p,
                                             "--out", t / "out.jsonl"], 3),
    "audit log": (NOT_TOML, lambda d, t, p: ["audit", "verify", p], 3),
    "known_hosts": (NOT_TOML, lambda d, t, p: ["snapshots", "list", "sftp://127.0.0.1:9/snapshots",
                                               "--ssh-config", t / "empty_ssh_config", "--identity",
                                               d.signing_key, "--known-hosts", p], 7),
    "ssh config": (NOT_TOML, lambda d, t, p: ["snapshots", "list", "sftp://127.0.0.1:9/snapshots",
                                              "--ssh-config", p], 7),
    "identity file": (NOT_TOML, lambda d, t, p: ["snapshots", "list", "sftp://127.0.0.1:9/snapshots",
                                                 "--ssh-config", t / "empty_ssh_config", "--identity", p], 7),
}
CASES = [pytest.param(reader, kind, id=f"{reader}-{kind}") for reader, (kinds, _, _) in READERS.items()
         for kind in kinds]


@pytest.mark.parametrize(("reader", "kind"), CASES)
def test_every_reader_refuses_every_hostile_file(reader: str, kind: str, hostile, drill, tmp_path: Path) -> None:
    _, command, code = READERS[reader]
    (tmp_path / "empty_ssh_config").write_text("")
    path = hostile[kind]
    outcome = run_cli(*command(drill, tmp_path, path))
    assert_refused(outcome, code, str(path))


@pytest.mark.parametrize("kind", HOSTILE_NAMES)
def test_the_config_file_named_by_the_environment_is_bounded_too(kind: str, hostile, drill) -> None:
    outcome = run_cli("snapshots", "list", drill.snapshots, env={"ENIGM_RECOVER_CONFIG": str(hostile[kind])})
    assert_refused(outcome, 4, str(hostile[kind]))


# -- manifests in a local snapshot folder ----------------------------------------------------------


@pytest.mark.parametrize("kind", HOSTILE_NAMES)
def test_a_hostile_manifest_in_a_local_folder_is_refused(kind: str, hostile, drill) -> None:
    manifest = drill.snapshots / f"{drill.latest}.manifest.toml"
    manifest.unlink()
    if kind == "fifo":
        os.mkfifo(manifest)
    elif kind == "folder":
        manifest.mkdir()
    elif kind == "huge sparse file":
        with open(manifest, "wb") as f:
            f.truncate(8 << 30)
    elif kind in ("device", "symlink to a device"):
        manifest.symlink_to(hostile[kind])
    else:
        shutil.copy(hostile[kind], manifest)
    outcome = run_cli("verify", drill.snapshots, drill.latest, "--allowed-signers", drill.allowed_signers)
    # refused at the listing (not a regular file, or over the manifest size limit, as over SFTP: naming it
    # says why, as a source error, 7) or as a malformed manifest (11)
    assert_refused(outcome, 11 if kind in ("nested TOML", "dotted TOML", "nested inline tables") else 7)
    listed = run_cli("snapshots", "list", drill.snapshots, "--allowed-signers", drill.allowed_signers)
    assert listed.code == 0, listed.stderr
    assert "Traceback" not in listed.stderr and "internal error" not in listed.stderr


# -- standard input ------------------------------------------------------------------------------


def test_endless_standard_input_is_refused(drill, tmp_path: Path) -> None:
    command = ["unseal", drill.snapshots, "latest", "--allowed-signers", drill.allowed_signers,
               "--out", tmp_path / "out.jsonl"]
    with open("/dev/zero", "rb") as zero:  # one endless line
        assert_refused(run_cli(*command, stdin=zero.fileno()), 3, "standard input")
    blank = subprocess.Popen(["yes", ""], stdout=subprocess.PIPE)  # endless empty lines, over a pipe
    try:
        assert blank.stdout is not None
        assert_refused(run_cli(*command, stdin=blank.stdout.fileno()), 3, "standard input")
    finally:
        blank.kill()
        blank.wait()


def test_shares_on_standard_input_still_work(drill, tmp_path: Path) -> None:
    from enigm_recover.quorum.cards import read_share_file

    lines = "\n".join(read_share_file(drill.card(name)).words for name in ("amara", "chen", "emeka"))
    shares = tmp_path / "shares.txt"
    shares.write_text(lines + "\n")
    with open(shares, "rb") as stdin:
        outcome = run_cli("unseal", drill.snapshots, "latest", "--allowed-signers", drill.allowed_signers,
                          "--out", tmp_path / "out.jsonl", stdin=stdin.fileno())
    assert outcome.code == 0, outcome.stderr


# -- the reader itself -------------------------------------------------------------------------------


def test_the_reader_names_the_file_its_size_and_the_limit(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * (70 * 1024))
    with pytest.raises(InputFileError) as exc:
        bounded.read_bounded(big, bounded.SHARE_FILE, "share file")
    assert str(big) in exc.value.message and "70 KiB" in exc.value.message and "64 KiB" in exc.value.message
    small = tmp_path / "small.txt"
    small.write_bytes(b"x" * 10)
    assert bounded.read_bounded(small, 10, "share file") == b"x" * 10
    assert bounded.read_bounded(tmp_path / "missing", 10, "share file", missing_ok=True) is None


def test_the_toml_loader_refuses_deep_nesting_before_parsing() -> None:
    for text in (NESTED_TOML, "a" + ".a" * 40 + " = 1", "[" + "a." * 40 + "a]", "a = " + "{b = " * 40):
        with pytest.raises(InputFileError, match="nests"):
            bounded.loads_toml(text, "runbook x.toml")
    with pytest.raises(InputFileError, match="not valid TOML"):  # int() refuses 5000 digits: a ValueError
        bounded.loads_toml("a = 1" + "0" * 5000, "config file x.toml")
    assert bounded.loads_toml('a.b = [[1, 2.5], {c = "[[[."}]\n[t.u]\nv = 1', "x") == {
        "a": {"b": [[1, 2.5], {"c": "[[[."}]}, "t": {"u": {"v": 1}}}


def test_shipped_runbooks_and_a_drill_stay_well_inside_the_limits(pristine_drill) -> None:
    for path in [*Path("runbooks").glob("*.toml"), pristine_drill.root / "drill.toml",
                 *pristine_drill.snapshots.glob("*.manifest.toml")]:
        assert bounded.toml_nesting(path.read_text()) <= 4, path


@pytest.mark.parametrize("error", [MemoryError, RecursionError, OverflowError])
def test_no_memory_recursion_or_overflow_error_reaches_a_user(error: type[BaseException], cli,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The last line of defense, behind the bounded readers: one line and the input-file code, not a bug."""

    def explode(path: Path) -> dict[str, str]:
        raise error()

    monkeypatch.setattr("enigm_recover.config.load_config", explode)
    code, _, err = cli("config", "show")
    assert code == 3 and err.count("\n") == 1, err
    assert error.__name__ in err and "internal error" not in err and "bug" not in err
