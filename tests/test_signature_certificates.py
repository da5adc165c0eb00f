"""Manifests signed with an OpenSSH user certificate: trusted exactly where `ssh-keygen -Y verify` trusts them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from enigm_recover.snapshot import signature
from tests.sshd import keygen

pytestmark = pytest.mark.tools
PRINCIPAL = "backup@drill"
NS = signature.NAMESPACE


def certify(ca: Path, key: Path, *, principals: str | None = PRINCIPAL, validity: str = "-5m:+1h",
            host: bool = False, name: str = "cert") -> Path:
    """A certificate of ``key`` signed by ``ca`` (ssh-keygen -s), beside a copy of the private key."""
    folder = key.parent / name
    folder.mkdir()
    for suffix in ("", ".pub"):
        (folder / f"key{suffix}").write_bytes(key.with_name(key.name + suffix).read_bytes())
    (folder / "key").chmod(0o600)
    argv = ["ssh-keygen", "-q", "-s", str(ca), "-I", f"{name}-id", "-V", validity]
    if principals is not None:
        argv += ["-n", principals]
    if host:
        argv.append("-h")
    subprocess.run([*argv, str(folder / "key.pub")], check=True)
    return folder / "key-cert.pub"


def ssh_sign(data: Path, key_or_cert: Path) -> Path:
    sig = data.with_name(data.name + ".sig")
    sig.unlink(missing_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-Y", "sign", "-f", str(key_or_cert), "-n", NS, str(data)], check=True,
                   capture_output=True)
    return sig


def ssh_keygen_accepts(data: Path, sig: Path, allowed: Path, principal: str) -> bool:
    done = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", principal, "-n", NS,
                           "-s", str(sig)], input=data.read_bytes(), capture_output=True)
    return done.returncode == 0


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("certs")
    made = {name: keygen(root / name, name) for name in ("ca", "other_ca", "user")}
    made["root"] = root
    return made


def allowed_file(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text + "\n")
    return path


CASES = {
    # case: (certificate options, allowed_signers line template, principal asked, accepted)
    "valid certificate, CA trusted": ({}, "{p} cert-authority {ca}", PRINCIPAL, True),
    "CA trusted for any principal by pattern": ({}, "*@drill cert-authority {ca}", PRINCIPAL, True),
    "expired certificate": ({"validity": "20200101:20200102"}, "{p} cert-authority {ca}", PRINCIPAL, False),
    "not yet valid": ({"validity": "+1d:+2d"}, "{p} cert-authority {ca}", PRINCIPAL, False),
    "certificate for another principal": ({"principals": "someone@else"}, "{p} cert-authority {ca}", PRINCIPAL,
                                          False),
    "asked for another principal the CA may vouch for": ({}, "* cert-authority {ca}", "someone@else", False),
    "certificate without principals": ({"principals": None}, "{p} cert-authority {ca}", PRINCIPAL, False),
    "host certificate": ({"host": True}, "{p} cert-authority {ca}", PRINCIPAL, False),
    "another CA": ({}, "{p} cert-authority {other_ca}", PRINCIPAL, False),
    "CA line for another principal": ({}, "ops@drill cert-authority {ca}", PRINCIPAL, False),
    "CA line for another namespace": ({}, '{p} cert-authority,namespaces="file" {ca}', PRINCIPAL, False),
    "CA line expired": ({}, '{p} cert-authority,valid-before="20200101" {ca}', PRINCIPAL, False),
    "the user key trusted, without cert-authority": ({}, "{p} {user}", PRINCIPAL, False),
    "the CA key without cert-authority": ({}, "{p} {ca}", PRINCIPAL, False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_certificate_signatures_are_judged_as_ssh_keygen_judges_them(keys, case: str, tmp_path: Path) -> None:
    options, line, asked, accepted = CASES[case]
    cert = certify(keys["ca"], keys["user"], name=f"c{abs(hash(case))}", **options)
    data = tmp_path / "manifest.toml"
    data.write_text('format = "enigm-snapshot/1"\nid = "x"\n')
    sig = ssh_sign(data, cert)
    pubs = {k: keys[k].with_name(keys[k].name + ".pub").read_text().strip() for k in ("ca", "other_ca", "user")}
    allowed = allowed_file(tmp_path, "allowed_signers", line.format(p=PRINCIPAL, **pubs))
    assert ssh_keygen_accepts(data, sig, allowed, asked) is accepted  # the reference
    verdict = signature.check(data.read_bytes(), sig.read_bytes(), asked, signature.load_allowed_signers(allowed))
    assert verdict.trusted is accepted, verdict
    if not accepted:
        assert verdict.status is signature.SignatureStatus.UNKNOWN_SIGNER, verdict


def test_a_plain_key_signature_is_not_trusted_by_a_cert_authority_line_for_it(keys, tmp_path: Path) -> None:
    data = tmp_path / "manifest.toml"
    data.write_text("x = 1\n")
    sig = ssh_sign(data, keys["ca"])  # the CA key itself signs, no certificate
    ca_pub = keys["ca"].with_name("ca.pub").read_text().strip()
    allowed = allowed_file(tmp_path, "allowed_signers", f"{PRINCIPAL} cert-authority {ca_pub}")
    assert not ssh_keygen_accepts(data, sig, allowed, PRINCIPAL)
    assert not signature.check(data.read_bytes(), sig.read_bytes(), PRINCIPAL,
                               signature.load_allowed_signers(allowed)).trusted


def test_an_altered_manifest_signed_with_a_certificate_is_invalid(keys, tmp_path: Path) -> None:
    cert = certify(keys["ca"], keys["user"], name="altered")
    data = tmp_path / "manifest.toml"
    data.write_text("x = 1\n")
    sig = ssh_sign(data, cert)
    ca_pub = keys["ca"].with_name("ca.pub").read_text().strip()
    allowed = signature.load_allowed_signers(allowed_file(tmp_path, "a", f"{PRINCIPAL} cert-authority {ca_pub}"))
    verdict = signature.check(b"x = 2\n", sig.read_bytes(), PRINCIPAL, allowed)
    assert verdict.status is signature.SignatureStatus.INVALID


def test_verify_accepts_a_snapshot_whose_manifest_a_certificate_signed(drill, keys, cli, tmp_path: Path) -> None:
    """The producer's key certified by a CA; allowed_signers names only the CA."""
    producer = drill.signing_key
    cert = certify(keys["ca"], producer, name="producer-cert")
    manifest = next(drill.snapshots.glob(f"{drill.latest}.manifest.toml"))
    ssh_sign(manifest, cert)
    ca_pub = keys["ca"].with_name("ca.pub").read_text().strip()
    allowed = allowed_file(tmp_path, "allowed_signers", f"{PRINCIPAL} cert-authority {ca_pub}")
    code, out, err = cli("verify", drill.snapshots, drill.latest, "--allowed-signers", allowed)
    assert code == 0, err
    assert "certificate from CA" in out
    expired = certify(keys["ca"], producer, name="producer-expired", validity="20200101:20200102")
    ssh_sign(manifest, expired)
    code, out, err = cli("verify", drill.snapshots, drill.latest, "--allowed-signers", allowed)
    assert code != 0 and "expired" in out + err
