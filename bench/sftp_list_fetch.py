"""List snapshots and fetch a payload over loopback OpenSSH, beside OpenSSH's own ``sftp -b``.

The goals (from the issue): listing 1,000 snapshots (every manifest and
signature read) costs at most 1.0x an ``sftp -b`` batch fetching the same
2,000 files with one explicit ``get`` each (pipelined requests should beat the
serial batch); fetching a 256 MiB payload runs at least 1.0x the throughput of
a fetch that does the same work: ``sftp`` getting the same file followed by
``sha256sum`` of it, timed together in one shell (ours is resumable and checks
the payload's SHA-256 before it is used; a plain ``sftp`` get, which hashes
nothing, is shown beside it for information).

One real sshd (tests/sshd.py) serves both sides, with one client key, one
known_hosts file and one ssh config; ``SSH_AUTH_SOCK`` is unset for all. Every
measurement is a fresh child process, timed whole (start-up, connecting and
authenticating included) with wait4, and the pipelines alternate, as in
snapshot_seal_unseal. Ours is the real CLI (``enigm-recover snapshots list``,
which also checks every signature) for the listing goal; a child calling
``SftpSource.list()`` alone is shown beside it. The fetch child calls
``SftpSource.payload()`` with an empty cache each run; it times its own
phases (connect, transfer, fsync, hash) by wrapping ``os.fsync`` and the
source's ``hash_file``, without changing what they do. Each timed run starts
with the file system synced, so no run pays for an earlier run's write-back.

The tool's bytecode is compiled once in setup, as installing it does.

This file is also that child process (``python -m bench.sftp_list_fetch
{list,fetch,cached} ...``): it imports only the standard library at the top,
so a child pays the imports a user's process would pay, no more.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from time import perf_counter
from typing import Any, Callable

from bench.common import Sample, interleaved, log, peak_rss_mib, spawn, summary, verdict

SNAPSHOTS = 1_000
PAYLOAD_BYTES = 256 << 20
MIN_SNAPSHOTS = 10
MIN_PAYLOAD_BYTES = 4 << 20
REPEATS = 5
GOAL_LIST_RATIO = 1.0  # ours / baseline, medians of wall time: at most
GOAL_FETCH_RATIO = 1.0  # ours / (sftp get + sha256sum), throughput (medians of wall time): at least
ALIAS = "bench"
PRODUCER = "backup@drill"  # the principal tests.helpers.write_signed_manifests signs as
PAYLOAD_ID = "20250101T000000Z-0000f00d"
WRITE_BLOCK = 8 << 20
# OpenSSH's readdir returns "." and ".."; SftpSource reports them as refused names (a known wart, not
# a failure of this benchmark). Anything else refused fails the run.
DOT_ENTRIES_REFUSED = ("'.': name refers to a parent folder", "'..': name refers to a parent folder")
ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024


@dataclass(frozen=True)
class Setup:
    """The files both clients read and the folders the sshd serves (it is started afterwards)."""

    work: Path
    ssh_config: Path
    allowed_signers: Path
    list_folder: Path
    snapshots: int
    list_bytes: int  # all manifests and signatures together
    fetch_folder: Path
    payload: Path
    payload_bytes: int
    payload_sha256: str
    manifest_file: Path  # the payload's manifest, read locally by the fetch child
    setup_s: float


# -- setup ---------------------------------------------------------------------


def child_env() -> dict[str, str]:
    """The environment of every child: no ssh-agent, no enigm-recover settings, this checkout importable."""
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK" and not k.startswith("ENIGM_RECOVER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def write_ssh_config(path: Path, port: int, client_key: Path, known_hosts: Path) -> Path:
    """One config for both clients: the key and known_hosts (BatchMode goes on sftp's command line)."""
    path.write_text(f"""\
Host {ALIAS}
  HostName 127.0.0.1
  Port {port}
  User {getpass.getuser()}
  IdentityFile {client_key}
  IdentitiesOnly yes
  UserKnownHostsFile {known_hosts}
  GlobalKnownHostsFile {known_hosts.with_name("no_global_known_hosts")}
""")
    known_hosts.with_name("no_global_known_hosts").touch()  # empty; the tool refuses /dev/null as known_hosts
    return path


def write_payload(folder: Path, size: int) -> str:
    """A random payload of ``size`` bytes; its SHA-256."""
    hasher = hashlib.sha256()
    with open(folder / f"{PAYLOAD_ID}.payload.age", "wb") as f:
        left = size
        while left:
            block = os.urandom(min(WRITE_BLOCK, left))
            hasher.update(block)
            f.write(block)
            left -= len(block)
    return hasher.hexdigest()


def payload_manifest(size: int, sha256: str, recipient: str) -> bytes:
    """An (unsigned) manifest naming the payload's size and SHA-256, as the fetch checks them against."""
    from enigm_recover.snapshot.manifest import KindScope, Manifest
    from enigm_recover.state.model import KINDS

    created = datetime(2025, 1, 1, tzinfo=timezone.utc)
    return Manifest(id=PAYLOAD_ID, created_at=created, environment="bench", producer=PRODUCER,
                    recipient=recipient, payload_size=size, payload_sha256=sha256,
                    scope={k.name: KindScope(k.field_names, 0, "0" * 64) for k in KINDS}).to_toml()


def compile_bytecode() -> None:
    """The tool's bytecode, compiled once as installing it does (pip compiles at install): an environment
    with PYTHONDONTWRITEBYTECODE set would otherwise make every child compile the whole package anew, a cost
    no installed tool pays (nor a repeated run, where Python keeps what it compiled the first time)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "enigm_recover"), str(ROOT / "bench")],
                   check=True, stdout=subprocess.DEVNULL)


def make_setup(work: Path, snapshots: int, payload_bytes: int) -> Setup:
    """Keys, the listing folder, the payload and its manifest, and the ssh config naming ``ALIAS``."""
    from enigm_recover.quorum.recovery_key import RecoveryIdentity
    from enigm_recover.snapshot.signature import NAMESPACE
    from tests.helpers import write_signed_manifests
    from tests.sshd import keygen

    start = perf_counter()
    keygen(work / "client", "bench-client")
    producer_key = keygen(work / "producer", PRODUCER)
    allowed_signers = work / "allowed_signers"
    allowed_signers.write_text(f'{PRODUCER} namespaces="{NAMESPACE}" '
                               f'{" ".join(producer_key.with_suffix(".pub").read_text().split()[:2])}\n')
    recipient = RecoveryIdentity.generate().recipient
    list_folder = work / "list"
    list_folder.mkdir()
    write_signed_manifests(list_folder, producer_key, snapshots, recipient)
    fetch_folder = work / "fetch"
    fetch_folder.mkdir()
    sha256 = write_payload(fetch_folder, payload_bytes)
    manifest = payload_manifest(payload_bytes, sha256, recipient)
    (fetch_folder / f"{PAYLOAD_ID}.manifest.toml").write_bytes(manifest)
    manifest_file = work / "payload.manifest.toml"
    manifest_file.write_bytes(manifest)
    return Setup(work, work / "ssh_config", allowed_signers, list_folder, snapshots,
                 sum(p.stat().st_size for p in list_folder.iterdir()), fetch_folder,
                 fetch_folder / f"{PAYLOAD_ID}.payload.age", payload_bytes, sha256, manifest_file,
                 perf_counter() - start)


# -- measuring -----------------------------------------------------------------


def fresh(folder: Path) -> Path:
    """An empty ``folder``, with the file system synced: the next run starts without write-back to pay."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    os.sync()
    return folder


def child(s: Setup, mode: str, *args: str) -> Sample:
    """This module as a child process in ``mode``; its JSON report in ``child``."""
    out = s.work / f"child-{mode}.json"
    sample = spawn([sys.executable, "-m", "bench.sftp_list_fetch", mode, str(s.ssh_config), *args], out, child_env())
    return replace(sample, child=json.loads(out.read_text()))


def sftp(s: Setup, batch: Path, stdout: Path) -> Sample:
    """OpenSSH's sftp running ``batch`` with the same config, key and known_hosts; no agent, no prompts."""
    return spawn(["sftp", "-q", "-F", str(s.ssh_config), "-o", "BatchMode=yes", "-b", str(batch), ALIAS], stdout,
                 child_env())


def list_cli(s: Setup) -> Sample:
    """Ours as a user runs it: ``enigm-recover snapshots list sftp://ALIAS/FOLDER --json``, signatures checked."""
    out = s.work / "list.json"
    argv = [str(Path(sys.executable).with_name("enigm-recover")), "--config", str(s.work / "no-config.toml"),
            "--cache-dir", str(s.work / "cache-list"), "snapshots", "list", f"sftp://{ALIAS}{s.list_folder}",
            "--ssh-config", str(s.ssh_config), "--allowed-signers", str(s.allowed_signers), "--json"]
    os.sync()
    sample = spawn(argv, out, child_env())
    doc = json.loads(out.read_text())
    trusted = sum(snap["signature"] == "trusted" for snap in doc["snapshots"])
    refused = [r for r in doc["rejected"] if r not in DOT_ENTRIES_REFUSED]
    if trusted != s.snapshots or refused:
        raise RuntimeError(f"the CLI listed {trusted} trusted snapshots of {s.snapshots}; refused {refused}")
    return replace(sample, child={"files": 2 * trusted})


def list_worker(s: Setup) -> Sample:
    """``SftpSource.list()`` alone in a child (no signature check)."""
    os.sync()
    sample = child(s, "list", str(s.list_folder), str(s.work / "cache-list"))
    if sample.child["files"] != 2 * s.snapshots:
        raise RuntimeError(f"SftpSource.list() read {sample.child['files']} files of {2 * s.snapshots}")
    return sample


def list_baseline(s: Setup) -> Sample:
    """``sftp -b``: ``get`` each manifest and signature by name, in listing order, into an empty folder."""
    dest = fresh(s.work / "sftp-list")
    batch = s.work / "list.batch"
    names = sorted(p.name for p in s.list_folder.iterdir())
    batch.write_text(f"cd {s.list_folder}\nlcd {dest}\n" + "".join(f"get {n}\n" for n in names))
    sample = sftp(s, batch, s.work / "sftp-list.out")
    got = list(dest.iterdir())
    got_bytes = sum(p.stat().st_size for p in got)
    if len(got) != 2 * s.snapshots or got_bytes != s.list_bytes:
        raise RuntimeError(f"sftp fetched {len(got)} files ({got_bytes} bytes) of {2 * s.snapshots} "
                           f"({s.list_bytes} bytes)")
    return replace(sample, child={"files": len(got)})


def fetch_ours(s: Setup) -> Sample:
    """``SftpSource.payload()`` into an empty cache: download, fsync, then check size and SHA-256."""
    cache = fresh(s.work / "cache-fetch")
    sample = child(s, "fetch", str(s.fetch_folder), str(cache), str(s.manifest_file))
    fetched = Path(sample.child.pop("path"))
    if not fetched.is_relative_to(cache) or fetched.stat().st_size != s.payload_bytes:
        raise RuntimeError(f"the payload was not fetched whole into the cache: {fetched}")
    return sample


def fetch_cached(s: Setup) -> Sample:
    """``SftpSource.payload()`` again with the last run's payload in the cache: it is hashed, not fetched."""
    cache = s.work / "cache-fetch"
    cached = next(cache.rglob("*.payload.age"))
    before = cached.stat()
    os.sync()
    sample = child(s, "cached", str(s.fetch_folder), str(cache), str(s.manifest_file))
    sample.child.pop("path")
    after = cached.stat()
    if (after.st_ino, after.st_mtime_ns) != (before.st_ino, before.st_mtime_ns):
        raise RuntimeError("the cached payload was fetched again instead of reused")
    return sample


def fetch_plain(s: Setup) -> Sample:
    """``sftp -b`` with one ``get`` of the payload into an empty folder (hashes nothing: informational)."""
    dest = fresh(s.work / "sftp-fetch")
    batch = s.work / "fetch.batch"
    batch.write_text(f"get {s.payload} {dest}/\n")
    sample = sftp(s, batch, s.work / "sftp-fetch.out")
    got = dest / s.payload.name
    if not got.exists() or got.stat().st_size != s.payload_bytes:
        raise RuntimeError(f"sftp did not fetch {s.payload.name} whole")
    return sample


def fetch_baseline(s: Setup) -> Sample:
    """The same work as ours with OpenSSH's and coreutils' tools: ``sftp -b`` gets the payload into an empty
    folder, then ``sha256sum`` hashes it (ours checks the signed SHA-256 before handing the payload on), one
    shell timed whole; the digest must be the payload's."""
    dest = fresh(s.work / "sftp-fetch")
    batch = s.work / "fetch.batch"
    batch.write_text(f"get {s.payload} {dest}/\n")
    got = dest / s.payload.name
    out = s.work / "sftp-fetch-sha256.out"
    script = (f"set -e; sftp -q -F {shlex.quote(str(s.ssh_config))} -o BatchMode=yes -b {shlex.quote(str(batch))} "
              f"{ALIAS} > /dev/null; sha256sum {shlex.quote(str(got))}")
    sample = spawn(["bash", "-c", script], out, child_env())
    digest = out.read_text().split()[0] if out.read_text().strip() else ""
    if not got.exists() or got.stat().st_size != s.payload_bytes or digest != s.payload_sha256:
        raise RuntimeError(f"sftp + sha256sum did not fetch and hash {s.payload.name} whole")
    return sample


def sftp_cipher(s: Setup) -> str:
    """The cipher OpenSSH's client negotiates with this sshd (from ``sftp -v``)."""
    batch = s.work / "empty.batch"
    batch.write_text("")
    err = subprocess.run(["sftp", "-v", "-F", str(s.ssh_config), "-o", "BatchMode=yes", "-b", str(batch), ALIAS],
                         capture_output=True, text=True, env=child_env(), check=True).stderr
    for line in err.splitlines():
        if "kex: server->client cipher:" in line:
            return line.split("cipher:")[1].split()[0]
    return "?"


# -- the child process ---------------------------------------------------------


def worker(argv: list[str]) -> dict[str, Any]:
    """``list CONFIG FOLDER CACHE`` or ``{fetch,cached} CONFIG FOLDER CACHE MANIFEST``: one JSON report."""
    mode, config, folder, cache, *rest = argv
    from enigm_recover.sources import sftp as sftp_module
    from enigm_recover.snapshot.source import parse_entry
    from enigm_recover.sources.sftp import SftpSource, SftpURL
    from enigm_recover.sources.ssh import SSHSettings

    spent = {"fsync_s": 0.0, "hash_s": 0.0}

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] += perf_counter() - start
        return wrapper

    os.fsync = timed("fsync_s", os.fsync)
    sftp_module.hash_file = timed("hash_s", sftp_module.hash_file)
    report: dict[str, Any] = {}
    start = perf_counter()
    with SftpSource(SftpURL.parse(f"sftp://{ALIAS}{folder}"), SSHSettings(config_files=[Path(config)]),
                    Path(cache)) as source:
        if mode != "cached":
            source._loop.run(source._client())  # connect first, to time the connection apart
            assert source._conn is not None
            report["cipher"] = source._conn.get_extra_info("recv_cipher")
        connected = perf_counter()
        report["connect_s"] = connected - start
        if mode == "list":
            listing = source.list()
            report["list_s"] = perf_counter() - connected
            report["files"] = sum((e.manifest is not None) + (e.signature_bytes is not None)
                                  for e in listing.entries)
        else:
            manifest_bytes = Path(rest[0]).read_bytes()
            entry = parse_entry(PAYLOAD_ID, manifest_bytes, None)
            if entry.manifest is None:
                raise SystemExit(f"the payload manifest does not parse: {entry.error}")
            path = source.payload(entry)
            report["fetch_s"] = perf_counter() - connected
            report.update(spent)
            report["transfer_s"] = report["fetch_s"] - spent["fsync_s"] - spent["hash_s"]
            report["path"] = str(path)
    report["peak_rss_mib"] = peak_rss_mib()
    return report


# -- summarizing and reporting -------------------------------------------------


def tool_versions() -> dict[str, str]:
    """The OpenSSH behind both the server and the baseline (``ssh -V`` prints to stderr)."""
    out = subprocess.run(["ssh", "-V"], capture_output=True, text=True, check=True)
    return {"openssh": (out.stderr or out.stdout).strip()}


def goals(measured: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The listing ratio (wall) and the fetch ratio (throughput) against their goals."""
    list_ratio = measured["list_cli"]["wall_s"] / measured["list_baseline"]["wall_s"]
    fetch_ratio = measured["fetch_baseline"]["wall_s"] / measured["fetch_ours"]["wall_s"]
    fetch = measured["fetch_ours"]["child"]
    # Each round ran ours and the baseline one after the other: the ratio of that round's pair.
    fetch_rounds = [b["wall_s"] / o["wall_s"]
                    for o, b in zip(measured["fetch_ours"]["runs"], measured["fetch_baseline"]["runs"])]
    return {
        "list_ratio": list_ratio,
        "list_ratio_goal": GOAL_LIST_RATIO,
        "list_ok": list_ratio <= GOAL_LIST_RATIO,
        "list_worker_ratio": measured["list_worker"]["wall_s"] / measured["list_baseline"]["wall_s"],
        "list_cpu_ratio": measured["list_cli"]["cpu_s"] / measured["list_baseline"]["cpu_s"],
        "fetch_ratio": fetch_ratio,
        "fetch_ratio_rounds": fetch_rounds,
        "fetch_ratio_goal": GOAL_FETCH_RATIO,
        "fetch_ok": fetch_ratio >= GOAL_FETCH_RATIO,
        "fetch_cpu_ratio": measured["fetch_ours"]["cpu_s"] / measured["fetch_baseline"]["cpu_s"],
        "fetch_plain_ratio": measured["fetch_plain"]["wall_s"] / measured["fetch_ours"]["wall_s"],
        "fetch_transfer_ratio": measured["fetch_baseline"]["wall_s"] / (fetch["connect_s"] + fetch["transfer_s"]),
    }


def _goal_row(label: str, factor: float, note: str) -> str:
    return f"  {label:<40}{factor:6.2f}x   {note}"


def _row(label: str, s: dict[str, Any], size: int | None = None) -> str:
    runs = " ".join(f"{r['wall_s']:.2f}" for r in s["runs"])
    rate = f"{size / MIB / s['wall_s']:8.1f}" if size else f"{'':>8}"
    return f"  {label:<40}{s['wall_s']:7.2f} s {s['cpu_s']:7.2f} s {rate}   {runs}"


def report(result: dict[str, Any]) -> str:
    """The human-readable report of one run."""
    m, g, size = result["measured"], result["goals"], result["payload_bytes"]
    lw, fo, fc = m["list_worker"]["child"], m["fetch_ours"]["child"], m["fetch_cached"]["child"]
    return "\n".join([
        "",
        f"== sftp_list_fetch: {result['snapshots']:,} snapshots ({2 * result['snapshots']:,} files, "
        f"{result['list_bytes'] / 1024:,.0f} KiB), a {size / MIB:.1f} MiB payload (scale {result['scale']}); "
        f"{REPEATS} interleaved runs each, medians",
        f"   loopback sshd and baseline client: {result['tools']['openssh']}; ciphers: ours "
        f"{result['ciphers']['ours']}, sftp {result['ciphers']['sftp']}",
        f"   every run a fresh process, start-up and SSH handshake included; setup {result['setup_s']:.1f} s",
        "",
        f"  {'listing':<40}{'wall':>9} {'CPU':>9}          wall of each run (s)",
        _row("OURS enigm-recover snapshots list", m["list_cli"]),
        _row("OURS SftpSource.list() child", m["list_worker"]),
        f"    in-process: connect {lw['connect_s']:.2f} s + list {lw['list_s']:.2f} s"
        f" (no signature check); peak RSS {lw['peak_rss_mib']:.0f} MiB",
        _row(f"BASELINE sftp -b, {2 * result['snapshots']:,} x get NAME", m["list_baseline"]),
        "",
        f"  {'fetch':<40}{'wall':>9} {'CPU':>9} {'MiB/s':>8}   wall of each run (s)",
        _row("OURS SftpSource.payload(), empty cache", m["fetch_ours"], size),
        f"    in-process: connect {fo['connect_s']:.2f} s + transfer {fo['transfer_s']:.2f} s"
        f" + fsync {fo['fsync_s']:.2f} s + hash {fo['hash_s']:.2f} s; peak RSS {fo['peak_rss_mib']:.0f} MiB",
        _row("BASELINE sftp -b get FILE + sha256sum", m["fetch_baseline"], size),
        _row("sftp -b, get FILE (no hash)", m["fetch_plain"], size) + "   (informational)",
        _row("OURS cached payload reused (once)", m["fetch_cached"], size)
        + f"   hash {fc['hash_s']:.2f} s (informational)",
        "",
        _goal_row("ratio listing ours/baseline, wall", g["list_ratio"],
                  f"goal <= {GOAL_LIST_RATIO}x   {verdict(g['list_ok'])}"),
        _goal_row("ratio listing SftpSource.list()/baseline", g["list_worker_ratio"], "informational"),
        _goal_row("ratio listing ours/baseline, CPU", g["list_cpu_ratio"], "informational"),
        _goal_row("ratio fetch throughput ours/baseline", g["fetch_ratio"],
                  f"goal >= {GOAL_FETCH_RATIO}x   {verdict(g['fetch_ok'])}   (rounds "
                  f"{' '.join(f'{r:.2f}' for r in g['fetch_ratio_rounds'])})"),
        _goal_row("ratio fetch throughput ours/plain sftp get", g["fetch_plain_ratio"],
                  "informational (a get that hashes nothing)"),
        _goal_row("ratio fetch, ours without fsync+hash", g["fetch_transfer_ratio"],
                  "informational (ours' connect+transfer only, start-up excluded)"),
        _goal_row("ratio fetch CPU ours/baseline", g["fetch_cpu_ratio"], "informational"),
        "",
    ])


# -- the benchmark -------------------------------------------------------------


def measure(work: Path, snapshots: int, payload_bytes: int) -> dict[str, Any]:
    """Start the sshd, make the files, then time the pipelines; everything lives in ``work``."""
    from tests.sshd import start_sshd

    log(f"  writing {snapshots:,} signed manifests and a {payload_bytes / MIB:.1f} MiB payload ...")
    compile_bytecode()
    s = make_setup(work, snapshots, payload_bytes)
    server = start_sshd(work / "sshd", [work / "client"])
    try:
        known_hosts = work / "known_hosts"
        known_hosts.write_text(server.known_hosts_line + "\n")
        write_ssh_config(s.ssh_config, server.port, work / "client", known_hosts)
        ciphers = {"sftp": sftp_cipher(s)}
        log(f"  timing the listing: CLI, SftpSource.list() and sftp -b ({REPEATS} rounds + warm-up) ...")
        samples = interleaved({"list_cli": lambda: list_cli(s), "list_worker": lambda: list_worker(s),
                               "list_baseline": lambda: list_baseline(s)}, REPEATS)
        ciphers["ours"] = samples["list_worker"][0].child["cipher"]
        shutil.rmtree(work / "sftp-list")
        log(f"  timing the fetch: SftpSource.payload() and sftp -b ({REPEATS} rounds + warm-up) ...")
        samples |= interleaved({"fetch_ours": lambda: fetch_ours(s), "fetch_baseline": lambda: fetch_baseline(s),
                                "fetch_plain": lambda: fetch_plain(s)}, REPEATS)
        shutil.rmtree(work / "sftp-fetch")
        log("  timing the reuse of the cached payload ...")
        samples["fetch_cached"] = [fetch_cached(s)]
    finally:
        server.stop()
    return {"snapshots": snapshots, "list_bytes": s.list_bytes, "payload_bytes": payload_bytes,
            "setup_s": s.setup_s, "ciphers": ciphers,
            "measured": {name: summary(runs) for name, runs in samples.items()}}


def run(scale: float, out_dir: Path) -> dict[str, Any]:
    """Run the benchmark at ``scale`` with its temporary files in ``out_dir``; print and return results."""
    snapshots = max(MIN_SNAPSHOTS, round(SNAPSHOTS * scale))
    payload_bytes = max(MIN_PAYLOAD_BYTES, round(PAYLOAD_BYTES * scale))
    log(f"sftp_list_fetch: {snapshots:,} snapshots, {payload_bytes / MIB:.1f} MiB payload (scale {scale})")
    work = Path(tempfile.mkdtemp(prefix="sftp_list_fetch-", dir=out_dir))
    try:
        result = {"scale": scale, "repeats": REPEATS, "tools": tool_versions(),
                  "baseline_batch": "sftp -b: cd FOLDER, lcd DEST, then one `get NAME` per file",
                  **measure(work, snapshots, payload_bytes)}
    finally:
        shutil.rmtree(work)
    result["goals"] = goals(result["measured"])
    result["goals_met"] = result["goals"]["list_ok"] and result["goals"]["fetch_ok"]
    log(report(result))
    return result


if __name__ == "__main__":
    print(json.dumps(worker(sys.argv[1:])))
