"""An Ed25519 signature against an allowed_signers file of plain Ed25519 keys is checked without asyncssh,
to the very verdicts asyncssh's check gives (and ssh-keygen's acceptance); anything else goes to asyncssh."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from enigm_recover.errors import InputFileError
from enigm_recover.snapshot import signature
from tests.sshd import keygen

pytestmark = pytest.mark.tools
PRINCIPAL = "backup@drill"
NS = signature.NAMESPACE


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("plain-keys")
    return {name: keygen(root / name, name) for name in ("producer", "other")}


def pub(key: Path) -> str:
    return " ".join(key.with_name(key.name + ".pub").read_text().split()[:2])


def ssh_sign(data: Path, key: Path, namespace: str = NS) -> bytes:
    sig = data.with_name(data.name + ".sig")
    sig.unlink(missing_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-Y", "sign", "-f", str(key), "-n", namespace, str(data)], check=True,
                   capture_output=True)
    return sig.read_bytes()


def ssh_keygen_accepts(data: bytes, sig: bytes, allowed: str, principal: str, folder: Path) -> bool:
    (folder / "ref.sig").write_bytes(sig)
    (folder / "ref_allowed").write_text(allowed + "\n")
    done = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(folder / "ref_allowed"), "-I", principal,
                           "-n", NS, "-s", str(folder / "ref.sig")], input=data, capture_output=True)
    return done.returncode == 0


LINES = {
    # case: (allowed_signers line, principal asked, plain: read without asyncssh)
    "namespaced": ('{p} namespaces="{ns}" {producer}', PRINCIPAL, True),
    "no namespaces option": ("{p} {producer}", PRINCIPAL, True),
    "with a comment": ('{p} namespaces="{ns}" {producer} backup key of the producer', PRINCIPAL, True),
    "several principals": ('ops@drill,{p} namespaces="file,{ns}" {producer}', PRINCIPAL, True),
    "another namespace": ('{p} namespaces="file" {producer}', PRINCIPAL, True),
    "another principal asked": ('{p} namespaces="{ns}" {producer}', "ops@drill", True),
    "another key": ('{p} namespaces="{ns}" {other}', PRINCIPAL, True),
    "both keys": ('{p} {other}\n# the producer\n\n{p} namespaces="{ns}" {producer}', PRINCIPAL, True),
    "a principal pattern": ('*@drill namespaces="{ns}" {producer}', PRINCIPAL, False),
    "a negated principal": ('*,!{p} {producer}', PRINCIPAL, False),
    "a validity option": ('{p} valid-before="20200101" {producer}', PRINCIPAL, False),
    "a cert-authority line": ("{p} cert-authority {producer}", PRINCIPAL, False),
}


@pytest.mark.parametrize("case", list(LINES))
@pytest.mark.parametrize("signed", ["as is", "altered", "another namespace"])
def test_plain_files_get_asyncssh_s_verdict_without_it(keys, tmp_path: Path, case: str, signed: str) -> None:
    import asyncssh

    template, asked, plain = LINES[case]
    text = template.format(p=PRINCIPAL, ns=NS, producer=pub(keys["producer"]), other=pub(keys["other"]))
    data = tmp_path / "manifest.toml"
    data.write_text('format = "enigm-snapshot/1"\nid = "x"\n')
    sig = ssh_sign(data, keys["producer"], "file" if signed == "another namespace" else NS)
    payload = data.read_bytes() + (b"# altered\n" if signed == "altered" else b"")
    (tmp_path / "allowed_signers").write_text(text + "\n")
    allowed = signature.load_allowed_signers(tmp_path / "allowed_signers")
    assert (allowed.plain is not None) is plain
    verdict = signature.check(payload, sig, asked, allowed)
    reference = signature._check_with_asyncssh(payload, sig, asked, asyncssh.import_allowed_signers(text), NS)
    assert verdict == reference
    assert verdict.trusted is ssh_keygen_accepts(payload, sig, text, asked, tmp_path)
    assert signature.check(payload, sig, asked, None) == signature._check_with_asyncssh(payload, sig, asked, None, NS)


def test_the_common_case_does_not_reach_asyncssh(keys, tmp_path: Path, monkeypatch) -> None:
    data = tmp_path / "manifest.toml"
    data.write_text("x\n")
    sig = ssh_sign(data, keys["producer"])
    (tmp_path / "allowed_signers").write_text(f'{PRINCIPAL} namespaces="{NS}" {pub(keys["producer"])}\n')
    allowed = signature.load_allowed_signers(tmp_path / "allowed_signers")
    monkeypatch.setattr(signature, "_check_with_asyncssh", lambda *a: pytest.fail("asyncssh was asked"))
    assert signature.check(data.read_bytes(), sig, PRINCIPAL, allowed).trusted


@pytest.mark.parametrize("sig", [b"", b"-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n",
                                 b"not armored at all"])
def test_a_malformed_signature_gets_asyncssh_s_message(keys, tmp_path: Path, sig: bytes) -> None:
    import asyncssh

    text = f'{PRINCIPAL} namespaces="{NS}" {pub(keys["producer"])}'
    (tmp_path / "allowed_signers").write_text(text + "\n")
    allowed = signature.load_allowed_signers(tmp_path / "allowed_signers")
    verdict = signature.check(b"data", sig, PRINCIPAL, allowed)
    assert verdict.status is signature.SignatureStatus.INVALID
    assert verdict == signature._check_with_asyncssh(b"data", sig, PRINCIPAL, asyncssh.import_allowed_signers(text), NS)


@pytest.mark.parametrize("text", ["", "# only a comment", "backup@drill ssh-ed25519 AAAAnotakey"])
def test_an_unusable_allowed_signers_file_is_refused_on_loading_as_before(tmp_path: Path, text: str) -> None:
    (tmp_path / "allowed_signers").write_text(text + "\n")
    with pytest.raises(InputFileError, match="cannot be used"):
        signature.load_allowed_signers(tmp_path / "allowed_signers")
