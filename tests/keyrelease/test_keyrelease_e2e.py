"""End to end with the real pieces: RoT hosts running confidential VMs (DPE children), the
verifier appraising their quotes, keys in the HSM, the key service from its data directory over
HTTP, and the ``ironroot keyrelease`` commands."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import http_calls
from ironroot.attestation import (
    AttestationService,
    Endorsements,
    TrustTier,
    composite_nonce,
    gpu_nonce,
)
from ironroot.cli import main
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import (
    ChainNotTrusted,
    ConfigError,
    InvalidReleasePolicy,
    KeyBindingMismatch,
    KeyNotExportable,
    ReleaseDenied,
    StaleNonce,
)
from ironroot.firmware import Component, build_bundle, key_descriptor_hash, sign_bundle
from ironroot.hsm import (
    DeviceIdentity,
    DirectoryStorage,
    Hsm,
    HsmConfig,
    KeyAttributes,
    KeyType,
    Role,
    wrap_key_kem,
)
from ironroot.hsm._certs import issue_attestation_certificate
from ironroot.hsm._release_statement import sign_release_statement
from ironroot.keyrelease import (
    KeyReleaseClient,
    KeyReleaseServerThread,
    ReleasedKey,
    create_keyrelease_app,
    demo_release,
    load_keyrelease_config,
)
from ironroot.keyrelease._demo import DEMO_APPRAISAL_POLICY, rot_verifier, vm_pcr2
from ironroot.keyrelease.tee import TeeKeyPair
from ironroot.rot import Device, VendorCA

pytestmark = pytest.mark.integration

APPROVED = hashlib.sha384(b"approved image").digest()
OTHER = hashlib.sha384(b"modified image").digest()
VERIFIER = "https://verifier.example"
USER_PASS = b"keyrelease-credential"


@dataclass
class World:
    host_a: Device
    host_b: Device
    attest: Callable[[bytes, bytes], bytes]
    verifier: AttestationService
    data: Path
    handles: dict[str, str]
    hsm_roots: list[x509.Certificate]  # what a TEE trusts the key service's HSM by
    elsewhere: Device  # another machine of the same vendor, its owner no friend of the TEE's


def _policy(pcr2: bytes) -> str:
    return json.dumps(
        {
            "version": "1.0.0",
            "anyOf": [
                {
                    "authority": VERIFIER,
                    "allOf": [
                        {"claim": "ear.status", "equals": "affirming"},
                        {"claim": "evidence.svns.firmware", "greaterOrEquals": 3},
                        {"claim": "evidence.measurements.pcr2", "equals": pcr2.hex()},
                    ],
                }
            ],
        }
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    work = tmp_path_factory.mktemp("keyrelease-e2e")
    now = dt.datetime.now(dt.UTC)
    ca = VendorCA.generate(now=now - dt.timedelta(days=30))
    ecc, pqc = PrivateKey.generate(Algorithm.ES384), PrivateKey.generate(Algorithm.ML_DSA_87)
    bundle = sign_bundle(
        build_bundle(
            [Component(1, b"f" * 4096, version=1), Component(2, b"r" * 8192, version=2)],
            svn=3,
            not_before=now - dt.timedelta(days=30),
            not_after=now + dt.timedelta(days=365),
            vendor_ecc_keys=[ecc.public_key],
            vendor_pqc_keys=[pqc.public_key],
            pqc_type="mldsa",
        ),
        ecc,
        pqc,
    )
    key_hash = key_descriptor_hash([ecc.public_key], [pqc.public_key], "mldsa")
    hosts = []
    for name, image in (("a", APPROVED), ("b", OTHER), ("k", None), ("x", None)):
        host = Device.create(work / f"host-{name}")
        host.provision(ca, vendor_key_hash=key_hash, now=now - dt.timedelta(days=1))
        host.boot(bundle, now=now)
        if image is not None:
            host.derive_child(image, label="cvm")
        hosts.append(host)
    verifier = AttestationService(
        endorsements=Endorsements.build(service_keys={}, vendor_roots=ca.trust_anchors),
        signing_key=PrivateKey.generate(Algorithm.ES384),
        policy=DEMO_APPRAISAL_POLICY,
    )

    # The key service's data directory: an HSM, the verifier's key, credentials, the config.
    data = work / "keyservice"
    data.mkdir()
    child = hosts[2].derive_child(hashlib.sha384(b"hsm").digest(), label="hsm")
    sealing = os.urandom(48)
    (data / "sealing.secret").write_bytes(sealing)
    (data / "keyrelease.credential").write_bytes(USER_PASS + b"\n")
    storage = DirectoryStorage(data / "hsm", counter=hosts[2].counter("hsm"))
    hsm = Hsm.initialize(
        storage,
        sealing,
        officer="officer",
        credential=b"officer-credential",
        device=DeviceIdentity(
            child.ecc_key, (child.ecc_certificate, *reversed(hosts[2].chain(Algorithm.ES384)))
        ),
        config=HsmConfig(scrypt_n=2**10),
    )
    officer = hsm.login("officer", b"officer-credential")
    hsm.add_identity(officer, "keyrelease", Role.USER, USER_PASS)
    hsm.add_release_verifier(officer, VERIFIER, verifier.signing_key.public_key.to_pem())

    def key(
        policy: str | None, *, exportable: bool = True, key_type: KeyType = KeyType.AES_256
    ) -> str:
        usages = ["sign", "verify"] if key_type is KeyType.EC_P384 else ["encrypt", "decrypt"]
        attributes = KeyAttributes.of(usages, exportable=exportable, release_policy=policy)
        return hsm.generate(officer, key_type, attributes)

    handles = {
        "db-key": key(_policy(vm_pcr2(APPROVED))),
        "signing-key": key(_policy(vm_pcr2(APPROVED)), key_type=KeyType.EC_P384),
        "cel-key": key(f'evidence.measurements.pcr2 == "{vm_pcr2(APPROVED).hex()}"'),
        "plain-key": key(None),
        "locked-key": key(_policy(vm_pcr2(APPROVED)), exportable=False),
    }
    hsm.close()
    storage.close()
    lines = [
        "[keyrelease]",
        "port = 8299",
        "",
        "[keyrelease.hsm]",
        'dir = "hsm"',
        f'rot_device = "{hosts[2].directory}"',
        'sealing_secret_file = "sealing.secret"',
        'identity = "keyrelease"',
        'credential_file = "keyrelease.credential"',
    ]
    for name, handle in handles.items():
        lines += ["", f"[keyrelease.keys.{name}]", f'handle = "{handle}"']
    (data / "keyrelease.toml").write_text("\n".join(lines) + "\n")
    # The TEE trusts this HSM's device certificate, not the vendor's root (every machine of
    # the vendor, and every DPE child of one, chains to that): docs/keyrelease.md.
    roots = [x509.load_der_x509_certificate(child.ecc_certificate)]
    return World(
        hosts[0], hosts[1], rot_verifier(verifier), verifier, data, handles, roots, hosts[3]
    )


@pytest.fixture(scope="module")
def server(world: World) -> Iterator[str]:
    config = load_keyrelease_config(world.data)
    with config.open() as service, KeyReleaseServerThread(create_keyrelease_app(service)) as srv:
        yield srv.url


def _vm_release(
    world: World, url: str, host: Device, name: str, *, tee: TeeKeyPair | None = None
) -> bytes:
    tee = tee or TeeKeyPair.generate()
    with KeyReleaseClient(url) as client:
        nonce = client.challenge()
        report_data = tee.report_data(nonce)
        ear = world.attest(host.quote(report_data), report_data)
        released = client.release(name, ear=ear, wrapping_key=tee.public_spki, nonce=nonce)
    return tee.unwrap(released, nonce=nonce, hsm_roots=world.hsm_roots).material


def test_demo_releases_to_one_vm_and_refuses_the_other(tmp_path: Path) -> None:
    lines: list[str] = []
    assert demo_release(tmp_path, say=lines.append) == (True, True)
    assert any("VM A: released db-key" in line for line in lines)
    assert any("VM B: refused (policy-claims)" in line for line in lines)


def test_the_demo_policy_gates_on_the_default_policy_s_chain_rule() -> None:
    """The demo's first gate is the default policy's ``chain`` rule itself: the quote must
    chain to a trusted vendor root, refused with the same code and reason."""
    from ironroot.attestation import DEFAULT_POLICY

    chain = next(r for r in DEFAULT_POLICY.rules if r.name == "chain")
    assert DEMO_APPRAISAL_POLICY.rules[0] == chain
    assert chain.gate
    assert [r.name for r in DEMO_APPRAISAL_POLICY.rules] == ["chain", "fresh", "debug"]


def test_approved_vm_gets_hsm_keys(world: World, server: str) -> None:
    assert len(_vm_release(world, server, world.host_a, "db-key")) == 32
    assert len(_vm_release(world, server, world.host_a, "cel-key")) == 32
    pkcs8 = _vm_release(
        world, server, world.host_a, "signing-key", tee=TeeKeyPair.generate("RSA-3072")
    )
    from cryptography.hazmat.primitives.serialization import load_der_private_key

    assert load_der_private_key(pkcs8, None).key_size == 384  # type: ignore[union-attr]


def test_other_vm_is_refused(world: World, server: str) -> None:
    with pytest.raises(ReleaseDenied) as info:
        _vm_release(world, server, world.host_b, "db-key")
    assert info.value.code == "policy-claims"


def test_a_release_statement_another_machines_dpe_child_signed_is_refused(world: World) -> None:
    """Every machine of the vendor has DICE layers under the vendor's root, and each can
    certify DPE children (a VM's identity, for one): any of them can certify an "HSM
    attestation key" of its own and sign a release statement of a key it chose, naming the
    handle the TEE pinned. A TEE that trusted the vendor's root took that key for db-key."""
    child = world.elsewhere.derive_child(hashlib.sha384(b"a VM").digest(), label="cvm")
    device_chain = (child.ecc_certificate, *reversed(world.elsewhere.chain(Algorithm.ES384)))
    attestation = PrivateKey.generate(Algorithm.ES384)
    now = dt.datetime.now(dt.UTC)
    certificate = issue_attestation_certificate(
        subject_key=attestation.public_key,
        hsm_id=bytes(16),
        issuer=child.ecc_key,
        issuer_chain=device_chain,
        now=now - dt.timedelta(minutes=5),
    )
    tee, nonce = TeeKeyPair.generate(), os.urandom(32)
    wrapped = wrap_key_kem(tee.public.key, KeyType.AES_256, b"known to the forger" + bytes(13))  # type: ignore[arg-type]
    statement = sign_release_statement(
        attestation,
        (certificate, *device_chain),
        hsm_id=bytes(16),
        handle=world.handles["db-key"],
        key_type=KeyType.AES_256,
        recipient=tee.public.digest,
        nonce=nonce,
        ear=b"no EAR",
        wrapped=wrapped,
        now=int(now.timestamp()),
    )
    forged = ReleasedKey(
        kid="db-key",
        key_type=KeyType.AES_256,
        alg="ML-KEM-768+A256KWP",
        recipient=tee.public.digest,
        nonce=nonce,
        wrapped=wrapped,
        statement=statement,
    )
    with pytest.raises(ChainNotTrusted) as caught:
        tee.unwrap(
            forged,
            nonce=nonce,
            hsm_roots=world.hsm_roots,
            kid="db-key",
            handle=world.handles["db-key"],
        )
    assert str(caught.value).startswith("x5chain does not validate to a trusted root")


def test_quote_binding_another_wrapping_key_is_refused(world: World, server: str) -> None:
    tee, impostor = TeeKeyPair.generate(), TeeKeyPair.generate()
    with KeyReleaseClient(server) as client:
        nonce = client.challenge()
        report_data = tee.report_data(nonce)
        ear = world.attest(world.host_a.quote(report_data), report_data)
        with pytest.raises(KeyBindingMismatch):
            client.release("db-key", ear=ear, wrapping_key=impostor.public_spki, nonce=nonce)


def test_quote_for_the_verifiers_own_nonce_binds_nothing(world: World, server: str) -> None:
    """An EAR from the verifier's own challenge flow is fresh for the verifier, not for this
    release: its report data is the verifier's nonce."""
    tee = TeeKeyPair.generate()
    verifier_nonce, _ = world.verifier.challenge()
    result = world.verifier.verify(world.host_a.quote(verifier_nonce), nonce=verifier_nonce)
    assert result.status is TrustTier.AFFIRMING
    ear = world.verifier.sign(result)
    with KeyReleaseClient(server) as client:
        nonce = client.challenge()
        with pytest.raises(StaleNonce) as info:
            client.release("db-key", ear=ear, wrapping_key=tee.public_spki, nonce=nonce)
    assert info.value.code == "nonce-mismatch"


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("plain-key", KeyNotExportable),
        ("locked-key", KeyNotExportable),
    ],
)
def test_hsm_keys_that_cannot_be_released(
    world: World, server: str, name: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        _vm_release(world, server, world.host_a, name)


def test_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_keyrelease_config(tmp_path)
    (tmp_path / "keyrelease.toml").write_text("[keyrelease]\n[keyrelease.hsm]\ndir = 'h'\n")
    with pytest.raises(ConfigError):
        load_keyrelease_config(tmp_path)
    (tmp_path / "keyrelease.toml").write_text(
        "[keyrelease]\nverifiers = [{name = 'v', key = 'missing.pem'}]\n[keyrelease.hsm]\n"
    )
    with pytest.raises(ConfigError):
        load_keyrelease_config(tmp_path)


def test_cli_tee_side_against_the_service(
    world: World, server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tee_file = tmp_path / "tee.key"
    assert main(["keyrelease", "tee-key", "--out", str(tee_file)]) == 0
    assert main(["keyrelease", "challenge", "--url", server]) == 0
    nonce = capsys.readouterr().out.strip().splitlines()[-1]
    assert main(["keyrelease", "report-data", "--tee-key", str(tee_file), "--nonce", nonce]) == 0
    report_data = bytes.fromhex(capsys.readouterr().out.strip())
    assert report_data == TeeKeyPair.from_pem(tee_file.read_bytes()).report_data(
        bytes.fromhex(nonce)
    )
    base = ["keyrelease", "report-data", "--tee-key", str(tee_file), "--nonce", nonce]
    assert main([*base, "--gpus", "2"]) == 0
    composite = json.loads(capsys.readouterr().out)
    challenge = bytes.fromhex(composite["challenge"])
    assert challenge == report_data
    assert composite["gpu_nonces"] == [gpu_nonce(challenge, i).hex() for i in range(2)]
    assert composite["cvm_report_data"] == composite_nonce(challenge, 2).hex()
    assert main([*base, "--gpus", "65"]) == 2
    (tmp_path / "ear.jwt").write_bytes(world.attest(world.host_a.quote(report_data), report_data))
    args = ["--tee-key", str(tee_file), "--nonce", nonce]
    released = tmp_path / "released.cbor"
    assert (
        main(
            [
                "keyrelease",
                "request",
                "--url",
                server,
                "--key",
                "db-key",
                "--ear",
                str(tmp_path / "ear.jwt"),
                "--out",
                str(released),
                *args,
            ]
        )
        == 0
    )
    out = tmp_path / "key.bin"
    root, other_root = tmp_path / "hsm-root.pem", tmp_path / "other-root.pem"
    root.write_bytes(world.hsm_roots[0].public_bytes(serialization.Encoding.PEM))
    other = VendorCA.generate(now=dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    other_root.write_bytes(
        x509.load_der_x509_certificate(other.ecc_certificate).public_bytes(
            serialization.Encoding.PEM
        )
    )
    unwrap = ["keyrelease", "unwrap", str(released), "--out", str(out)]
    # The nonce and the HSM's root are required (a release for an older challenge, or one no
    # HSM under that root signed, is never unwrapped); --key checks the name.
    for missing in (["--tee-key", str(tee_file), "--hsm-root", str(root)], [*args]):
        with pytest.raises(SystemExit) as usage:
            main([*unwrap, *missing])
        assert usage.value.code == 2
    assert main([*unwrap, *args, "--hsm-root", str(other_root)]) == 1
    assert main([*unwrap, *args, "--hsm-root", str(root), "--key", "other-key"]) == 1
    # --key checks the service's label, which nothing signs; --handle the key the HSM released.
    capsys.readouterr()
    pinned = [*unwrap, *args, "--hsm-root", str(root), "--key", "db-key"]
    assert main([*pinned, "--handle", "not-the-handle"]) == 1
    assert (
        f"the HSM released key {world.handles['db-key']}, not not-the-handle"
        in capsys.readouterr().err
    )
    assert not out.exists()
    assert main([*pinned, "--handle", world.handles["db-key"]]) == 0
    assert len(out.read_bytes()) == 32
    # The same EAR again: the nonce is spent.
    assert (
        main(
            [
                "keyrelease",
                "request",
                "--url",
                server,
                "--key",
                "db-key",
                "--ear",
                str(tmp_path / "ear.jwt"),
                "--out",
                str(released),
                *args,
            ]
        )
        == StaleNonce.exit_code
    )


def test_cli_policy_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good, bad = tmp_path / "good.json", tmp_path / "bad.cel"
    good.write_text(_policy(APPROVED))
    bad.write_text("   ")
    assert main(["keyrelease", "policy", "check", str(good), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"ok": True, "valid": True, "kind": "azure"}
    assert main(["keyrelease", "policy", "check", str(bad)]) == InvalidReleasePolicy.exit_code
    assert "invalid-release-policy" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "kind"), [('"yes"', "a string"), ("1", "an int"), ("([true])", "a list")]
)
def test_cli_policy_check_refuses_a_constant_that_is_not_a_boolean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, kind: str
) -> None:
    # 'policy check' said "valid cel release policy" (exit 0); every release then failed.
    path = tmp_path / "constant.cel"
    path.write_text(text)
    assert main(["keyrelease", "policy", "check", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"the release policy always evaluates to {kind}, not a boolean" in captured.err
    assert "Traceback" not in captured.err


def test_cli_demo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keyrelease", "demo", "--workdir", str(tmp_path)]) == 0
    assert "key released to VM A, refused to VM B" in capsys.readouterr().out


def test_whole_flow_over_http_with_the_verifier_api(world: World, server: str) -> None:
    """Key service challenge → quote binding nonce ‖ key hash → the verifier's HTTP API with
    that report data as runtime_data → EAR → release → unwrap: every hop over HTTP."""
    import base64

    from ironroot.attestation import create_attestation_app

    def b64url_encode(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    tee = TeeKeyPair.generate()
    app = create_attestation_app(world.verifier)
    with KeyReleaseServerThread(app) as verifier, KeyReleaseClient(server) as client:
        nonce = client.challenge()
        report_data = tee.report_data(nonce)
        body = {
            "evidence": b64url_encode(world.host_a.quote(report_data)),
            "runtime_data": b64url_encode(report_data),
        }
        response = http_calls.post(f"{verifier.url}/attestation/verify", json=body, timeout=30)
        assert response.status_code == 200, response.content
        released = client.release(
            "db-key", ear=response.content, wrapping_key=tee.public_spki, nonce=nonce
        )
    assert len(tee.unwrap(released, nonce=nonce, hsm_roots=world.hsm_roots).material) == 32
