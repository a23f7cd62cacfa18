"""One attestation for a VM and its GPUs: a RoT-quoted CVM and test GPUs (SPDM 1.1 reports
signed under a test Device Identity CA) appraised against RIMs taken from the log. A RIM
without a receipt is refused by the rim package (tests/rim/test_rim_log.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from pathlib import Path

import pytest
from _ar_helpers import World
from _gpu_helpers import DRIVER, NOW, GpuWorld
from _rim_helpers import RimPki
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ironroot.attestation import (
    AR4SI,
    Appraisal,
    AttestationResult,
    AttestationService,
    Endorsements,
    GpuReport,
    GpuRimCache,
    TrustTier,
    appraise_composite,
    composite_nonce,
    create_attestation_app,
    gpu_nonce,
    verify_ear,
)
from ironroot.attestation.evidence import EVIDENCE_FORMATS
from ironroot.crypto import Algorithm, PrivateKey, b64url_decode, b64url_encode
from ironroot.ear import DEVICE_FORMATS
from ironroot.errors import MalformedInput, ReleaseDenied
from ironroot.hsm import driver_number, parse_release_policy, release_claims
from ironroot.rim import LoggedRims
from ironroot.rot import Device
from ironroot.spdm import MeasurementValueType
from tee_fakes import make_crl


@pytest.fixture(scope="module")
def gpus() -> GpuWorld:
    return GpuWorld.generate()


@pytest.fixture(scope="module")
def endorsements(world: World, gpus: GpuWorld) -> Endorsements:
    return dataclasses.replace(world.endorsements(), rims=gpus.logged_rims(world))


@pytest.fixture
def cvm(world: World, tmp_path: Path) -> Device:
    return world.device(tmp_path / "cvm", "good")


def _appraise(
    cvm: bytes, reports: list[GpuReport], endorsements: Endorsements, nonce: bytes, gpus: GpuWorld
) -> AttestationResult:
    return appraise_composite(
        cvm, reports, endorsements, nonce=nonce, now=NOW, format="ironroot", gpu_root=gpus.root
    )


def test_nonce_rule() -> None:
    challenge = bytes(range(32))
    assert gpu_nonce(challenge, 0) != gpu_nonce(challenge, 1)
    assert gpu_nonce(challenge, 0) != gpu_nonce(bytes(32), 0)
    assert len(composite_nonce(challenge, 8)) == 32
    assert composite_nonce(challenge, 1) != composite_nonce(challenge, 2)
    import hashlib

    assert (
        gpu_nonce(challenge, 3)
        == hashlib.sha256(b"ironroot/gpu-nonce/v1" + challenge + b"\x00\x00\x00\x03").digest()
    )
    with pytest.raises(MalformedInput):
        gpu_nonce(b"", 0)
    with pytest.raises(MalformedInput):
        composite_nonce(challenge, 65)


def test_cvm_and_two_gpus_affirming(
    cvm: Device, endorsements: Endorsements, gpus: GpuWorld
) -> None:
    nonce = os.urandom(32)
    devices = [gpus.gpu(), gpus.gpu()]
    reports = [g.report(gpu_nonce(nonce, i)) for i, g in enumerate(devices)]
    result = _appraise(cvm.quote(composite_nonce(nonce, 2)), reports, endorsements, nonce, gpus)
    assert list(result.submods) == ["cvm", "gpu0", "gpu1"]
    assert result.status is TrustTier.AFFIRMING, {k: v.reasons for k, v in result.submods.items()}
    assert result.nonce == nonce
    assert all(a.status is TrustTier.AFFIRMING for a in result.submods.values())
    gpu0 = result.submods["gpu0"]
    assert gpu0.trust_vector["executables"] == AR4SI.APPROVED_RUNTIME
    assert gpu0.trust_vector["instance-identity"] == AR4SI.TRUSTWORTHY_INSTANCE
    assert gpu0.evidence is not None
    assert gpu0.evidence["identity"]["driver_version"] == DRIVER
    assert gpu0.evidence["rims"]["driver"] == f"NV_GPU_DRIVER_GH100_{DRIVER}"
    # The EAR round-trips with its submodules.
    again = AttestationResult.from_json_claims(result.to_json_claims())
    assert list(again.submods) == ["cvm", "gpu0", "gpu1"]


def test_gpu_report_of_another_vm_session_is_stale(
    cvm: Device, endorsements: Endorsements, gpus: GpuWorld
) -> None:
    nonce, other = os.urandom(32), os.urandom(32)
    replayed = gpus.gpu().report(gpu_nonce(other, 0))  # made for another CVM's challenge
    result = _appraise(cvm.quote(composite_nonce(nonce, 1)), [replayed], endorsements, nonce, gpus)
    assert result.submods["cvm"].status is TrustTier.AFFIRMING
    gpu0 = result.submods["gpu0"]
    assert dict(gpu0.trust_vector) == {"instance-identity": AR4SI.UNTRUSTWORTHY_INSTANCE}
    assert gpu0.reasons[0].startswith("evidence: nonce-mismatch:")
    assert result.status is TrustTier.CONTRAINDICATED
    # The nonce the GPU did sign is kept: a relying party can tell which session it answers.
    assert gpu0.evidence == {"format": "nvidia-gpu", "report_data": gpu_nonce(other, 0).hex()}


def test_a_gpu_that_does_not_verify_keeps_no_report_data(
    cvm: Device, endorsements: Endorsements, gpus: GpuWorld
) -> None:
    nonce = os.urandom(32)
    report = gpus.gpu().report(gpu_nonce(nonce, 0))
    flipped = bytearray(report.report)
    flipped[-1] ^= 0x01  # the signature
    bad = GpuReport(bytes(flipped), report.certificates)
    result = _appraise(cvm.quote(composite_nonce(nonce, 1)), [bad], endorsements, nonce, gpus)
    assert result.submods["gpu0"].evidence is None
    assert result.status is TrustTier.CONTRAINDICATED


def test_a_gpu_report_without_its_fwid_is_never_affirming(
    cvm: Device, endorsements: Endorsements, gpus: GpuWorld
) -> None:
    """Every block allowed by the logged RIMs, but the report leaves out the FWID its
    certificate names: the firmware that signed it is not compared, so the GPU is refused."""
    nonce = os.urandom(32)
    report = gpus.gpu().report(gpu_nonce(nonce, 0), omit=frozenset({20}))
    result = _appraise(cvm.quote(composite_nonce(nonce, 1)), [report], endorsements, nonce, gpus)
    gpu0 = result.submods["gpu0"]
    assert dict(gpu0.trust_vector) == {"hardware": AR4SI.CONTRAINDICATED_HARDWARE}
    assert gpu0.reasons[0].startswith("evidence: endorsement-mismatch: the report's opaque data")
    assert result.status is TrustTier.CONTRAINDICATED


def test_a_gpu_report_that_does_not_parse_leaves_the_composite_unaffirmed(
    cvm: Device, endorsements: Endorsements, gpus: GpuWorld
) -> None:
    # An attacker's VM sends garbage for its second GPU: that GPU is not appraised at all
    # (tier none), so the composite must not be affirming whatever the other devices say.
    nonce = os.urandom(32)
    good = gpus.gpu().report(gpu_nonce(nonce, 0))
    garbage = GpuReport(b"\x00" * 40, good.certificates)
    result = _appraise(
        cvm.quote(composite_nonce(nonce, 2)), [good, garbage], endorsements, nonce, gpus
    )
    assert result.submods["cvm"].status is TrustTier.AFFIRMING
    assert result.submods["gpu0"].status is TrustTier.AFFIRMING
    gpu1 = result.submods["gpu1"]
    assert dict(gpu1.trust_vector) == {"instance-identity": AR4SI.UNEXPECTED_EVIDENCE}
    assert gpu1.status is TrustTier.NONE
    assert result.status is TrustTier.NONE


def test_gpu_in_another_place_is_stale(
    cvm: Device, endorsements: Endorsements, gpus: GpuWorld
) -> None:
    nonce = os.urandom(32)
    a, b = gpus.gpu(), gpus.gpu()
    swapped = [a.report(gpu_nonce(nonce, 1)), b.report(gpu_nonce(nonce, 0))]
    result = _appraise(cvm.quote(composite_nonce(nonce, 2)), swapped, endorsements, nonce, gpus)
    for name in ("gpu0", "gpu1"):
        assert result.submods[name].reasons[0].startswith("evidence: nonce-mismatch:")


def test_wrong_cvm_nonce_is_stale(cvm: Device, endorsements: Endorsements, gpus: GpuWorld) -> None:
    nonce = os.urandom(32)
    report = gpus.gpu().report(gpu_nonce(nonce, 0))
    # The CVM answered the bare challenge, not the composite nonce; and a CVM that commits to
    # no GPU cannot have one added.
    for quoted in (nonce, composite_nonce(nonce, 0)):
        result = _appraise(cvm.quote(quoted), [report], endorsements, nonce, gpus)
        cvm_sub = result.submods["cvm"]
        assert dict(cvm_sub.trust_vector) == {"instance-identity": AR4SI.UNTRUSTWORTHY_INSTANCE}
        assert cvm_sub.reasons[0].startswith("evidence: nonce-mismatch:")
        assert result.submods["gpu0"].status is TrustTier.AFFIRMING


def test_measurement_no_rim_allows_is_contraindicated(
    cvm: Device, endorsements: Endorsements, gpus: GpuWorld
) -> None:
    nonce = os.urandom(32)
    report = gpus.gpu().report(gpu_nonce(nonce, 0), tampered_block=6)
    result = _appraise(cvm.quote(composite_nonce(nonce, 1)), [report], endorsements, nonce, gpus)
    gpu0 = result.submods["gpu0"]
    assert gpu0.trust_vector["executables"] == AR4SI.CONTRAINDICATED_RUNTIME
    assert any(r.startswith("rim: measurement-mismatch:") and "block 6" in r for r in gpu0.reasons)


@pytest.mark.parametrize(
    ("omitted", "field"),
    [(17, "project"), (18, "project SKU"), (15, "chip SKU"), (6, "VBIOS"), (3, "driver")],
)
def test_a_gpu_report_naming_no_rim_is_never_affirming(
    cvm: Device, endorsements: Endorsements, gpus: GpuWorld, omitted: int, field: str
) -> None:
    # Firmware whose every block differs from the RIMs, signed by a genuine GPU key, leaves
    # out one field that selects the RIMs: no RIM is compared, and the GPU must not pass.
    nonce = os.urandom(32)
    report = gpus.gpu().report(gpu_nonce(nonce, 0), tampered_all=True, omit=frozenset({omitted}))
    result = _appraise(cvm.quote(composite_nonce(nonce, 1)), [report], endorsements, nonce, gpus)
    gpu0 = result.submods["gpu0"]
    assert gpu0.trust_vector["executables"] == AR4SI.CONTRAINDICATED_RUNTIME
    assert gpu0.status is TrustTier.CONTRAINDICATED
    assert any(r.startswith("rim: malformed-evidence:") for r in gpu0.reasons), gpu0.reasons
    assert result.status is TrustTier.CONTRAINDICATED
    # with every field present the same tampered firmware is named block by block
    named = gpus.gpu().report(gpu_nonce(nonce, 0), tampered_all=True)
    again = _appraise(cvm.quote(composite_nonce(nonce, 1)), [named], endorsements, nonce, gpus)
    assert again.submods["gpu0"].trust_vector["executables"] == AR4SI.CONTRAINDICATED_RUNTIME


def test_rim_not_on_the_log_is_unrecognized(
    cvm: Device, endorsements: Endorsements, gpus: GpuWorld
) -> None:
    nonce = os.urandom(32)
    report = gpus.gpu(driver="560.35.03").report(gpu_nonce(nonce, 0))
    for rims in (endorsements.rims, LoggedRims()):
        given = dataclasses.replace(endorsements, rims=rims)
        result = _appraise(cvm.quote(composite_nonce(nonce, 1)), [report], given, nonce, gpus)
        gpu0 = result.submods["gpu0"]
        assert gpu0.trust_vector["executables"] == AR4SI.UNRECOGNIZED_RUNTIME
        assert any(r.startswith("rim: rim-not-found:") for r in gpu0.reasons)


def test_gpu_chain_to_another_root(cvm: Device, endorsements: Endorsements, gpus: GpuWorld) -> None:
    nonce = os.urandom(32)
    stranger = GpuWorld.generate().gpu().report(gpu_nonce(nonce, 0))
    result = _appraise(cvm.quote(composite_nonce(nonce, 1)), [stranger], endorsements, nonce, gpus)
    assert dict(result.submods["gpu0"].trust_vector) == {
        "instance-identity": AR4SI.UNRECOGNIZED_INSTANCE
    }
    # Without the test root, the built-in NVIDIA root is the only one trusted.
    own = gpus.gpu().report(gpu_nonce(nonce, 0))
    plain = appraise_composite(
        cvm.quote(composite_nonce(nonce, 1)), [own], endorsements, nonce=nonce, now=NOW
    )
    assert plain.submods["gpu0"].trust_vector["instance-identity"] == AR4SI.UNRECOGNIZED_INSTANCE


def test_a_gpu_whose_attestation_key_is_revoked_is_not_affirmed(
    cvm: Device, endorsements: Endorsements, gpus: GpuWorld
) -> None:
    nonce = os.urandom(32)
    revoked, kept = gpus.gpu(), gpus.gpu()
    leaf = x509.load_pem_x509_certificate(revoked.chain_pem)
    crl = make_crl(
        gpus.ica.subject,
        gpus.ica_key.raw,  # type: ignore[arg-type]
        [leaf.serial_number],
        last_update=NOW - dt.timedelta(days=1),
    )
    result = appraise_composite(
        cvm.quote(composite_nonce(nonce, 2)),
        [revoked.report(gpu_nonce(nonce, 0)), kept.report(gpu_nonce(nonce, 1))],
        endorsements,
        nonce=nonce,
        now=NOW,
        format="ironroot",
        gpu_root=gpus.root,
        crls=[crl],
    )
    gpu0, gpu1 = result.submods["gpu0"], result.submods["gpu1"]
    assert gpu0.status is not TrustTier.AFFIRMING
    assert any("certificate-revoked" in reason for reason in gpu0.reasons)
    assert gpu1.status is TrustTier.AFFIRMING  # the CRL lists the other GPU only


def test_too_many_gpus_is_malformed(cvm: Device, endorsements: Endorsements) -> None:
    with pytest.raises(MalformedInput):
        appraise_composite(b"x", [GpuReport(b"", ())] * 65, endorsements, nonce=b"n" * 32, now=NOW)


# --- release policies over a composite EAR ---------------------------------------------------

CEL_ALL_GPUS = (
    'gpus_affirming && gpu_count == 2 && min_gpu_driver >= 550090007 && status == "affirming"'
)
AZURE_ALL_GPUS = json.dumps(
    {
        "version": "1.0.0",
        "anyOf": [
            {
                "authority": "verifier",
                "allOf": [
                    {"claim": "gpus_affirming", "equals": True},
                    {"claim": "gpu_count", "equals": 2},
                    {"claim": "min_gpu_driver", "greaterOrEquals": 550090007},
                    {"claim": "gpus.1.trust_vector.executables", "equals": 2},
                ],
            }
        ],
    }
)


def _decide(result: AttestationResult, policy: str) -> None:
    context = release_claims(result, "cvm", authority="verifier")
    parse_release_policy(policy).evaluate(context)


@pytest.mark.parametrize("policy", [CEL_ALL_GPUS, AZURE_ALL_GPUS], ids=["cel", "azure"])
def test_release_policy_requires_every_gpu_affirming(
    cvm: Device, endorsements: Endorsements, gpus: GpuWorld, policy: str
) -> None:
    nonce = os.urandom(32)
    cvm_quote = cvm.quote(composite_nonce(nonce, 2))
    good = [gpus.gpu().report(gpu_nonce(nonce, i)) for i in range(2)]
    result = _appraise(cvm_quote, good, endorsements, nonce, gpus)
    context = release_claims(result, "cvm", authority="verifier")
    assert context.claims["gpu_count"] == 2
    assert context.claims["gpus"][0]["driver"] == 550090007
    assert context.claims["gpus"][0]["submod"] == "gpu0"
    _decide(result, policy)
    # One GPU whose RIM is not on the log: the composite is refused as a whole.
    unlogged = gpus.gpu(driver="560.35.03").report(gpu_nonce(nonce, 1))
    mixed = _appraise(cvm_quote, [good[0], unlogged], endorsements, nonce, gpus)
    # no RIM compared: its runtime is unrecognized, and its debug state is not proven off
    assert mixed.submods["gpu1"].trust_vector["executables"] == AR4SI.UNRECOGNIZED_RUNTIME
    assert mixed.submods["gpu1"].trust_vector["configuration"] == AR4SI.UNSUPPORTABLE_CONFIG
    assert mixed.submods["gpu1"].status is TrustTier.CONTRAINDICATED
    with pytest.raises(ReleaseDenied) as denied:
        _decide(mixed, policy)
    assert denied.value.code == "policy-claims"
    # A GPU replayed from another VM's session.
    replayed = gpus.gpu().report(gpu_nonce(os.urandom(32), 1))
    with pytest.raises(ReleaseDenied):
        _decide(_appraise(cvm_quote, [good[0], replayed], endorsements, nonce, gpus), policy)


def test_release_policy_requires_a_driver_version(
    cvm: Device, endorsements: Endorsements, gpus: GpuWorld
) -> None:
    nonce = os.urandom(32)
    reports = [gpus.gpu().report(gpu_nonce(nonce, i)) for i in range(2)]
    result = _appraise(cvm.quote(composite_nonce(nonce, 2)), reports, endorsements, nonce, gpus)
    _decide(result, "min_gpu_driver >= 550000000 && gpus[1].driver >= 550090007")
    with pytest.raises(ReleaseDenied):
        _decide(result, "min_gpu_driver >= 560000000")
    # An EAR without GPUs satisfies no policy that asks for them.
    alone = _appraise(cvm.quote(composite_nonce(nonce, 0)), [], endorsements, nonce, gpus)
    assert alone.status is TrustTier.AFFIRMING
    with pytest.raises(ReleaseDenied):
        _decide(alone, "gpus_affirming")


def test_driver_number() -> None:
    assert driver_number("550.90.07") == 550090007
    assert driver_number("545.00") == 545000000
    assert driver_number("r550") == 0
    assert driver_number(None) == 0


# --- over HTTP ---------------------------------------------------------------------------------


def test_composite_over_http(cvm: Device, endorsements: Endorsements, gpus: GpuWorld) -> None:
    from test_appraise_http import ApiClient

    signing = PrivateKey.generate(Algorithm.ES384)
    service = AttestationService(
        endorsements=endorsements, signing_key=signing, clock=lambda: NOW, gpu_root=gpus.root
    )
    client = ApiClient(create_attestation_app(service))
    nonce = b64url_decode(client.post("/attestation/challenge").json()["nonce"], what="nonce")
    reports = [gpus.gpu().report(gpu_nonce(nonce, i)) for i in range(2)]
    body = {
        "evidence": b64url_encode(cvm.quote(composite_nonce(nonce, 2))),
        "nonce": b64url_encode(nonce),
        "format": "ironroot",
        "gpus": [
            {
                "evidence": b64url_encode(r.report),
                "certificates": [b64url_encode(c) for c in r.certificates],
            }
            for r in reports
        ],
    }
    response = client.post("/attestation/verify", json=body)
    assert response.status_code == 200, response.content
    result = verify_ear(response.content, [signing.public_key], now=NOW)
    assert list(result.submods) == ["cvm", "gpu0", "gpu1"]
    assert result.status is TrustTier.AFFIRMING
    # Malformed composites are 400 problems with the error's code.
    for gpus_member, code in (
        ({"evidence": "AA", "extra": 1}, "malformed"),
        ([{"evidence": "AA"}] * 17, "limit-exceeded"),
        ("nope", "malformed"),
    ):
        nonce = b64url_decode(client.post("/attestation/challenge").json()["nonce"], what="nonce")
        bad = {**body, "nonce": b64url_encode(nonce), "gpus": gpus_member}
        if isinstance(gpus_member, dict):
            bad["gpus"] = [gpus_member]
        answer = client.post(
            "/attestation/verify", json=bad, headers={"Accept": "application/problem+json"}
        )
        assert answer.status_code == 400, answer.content
        assert answer.json()["code"] == code


# --- the CLI -------------------------------------------------------------------------------------


def test_composite_cli(
    world: World,
    gpus: GpuWorld,
    cvm: Device,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from _ar_helpers import make_verifier_dir

    from ironroot.cli import main

    data = make_verifier_dir(tmp_path, world)
    for i, statement in enumerate(gpus.rim_statements(world)):
        (data / "reference-values" / f"rim{i}.ts").write_bytes(statement)
    (data / "rim-root.pem").write_bytes(gpus.rim_pki.root.public_bytes(serialization.Encoding.PEM))
    toml = data / "attestation.toml"
    text = toml.read_text().replace(
        "[attestation]\n", '[attestation]\nrim_roots = ["rim-root.pem"]\n', 1
    )
    text += '\n[[attestation.products]]\nvendor = "NVIDIA Corporation"\nmodel = "GH100"\n'
    text += 'issuers = ["https://vendor.example"]\n'
    toml.write_text(text)
    assert 'rim_roots = ["rim-root.pem"]' in toml.read_text()
    root = tmp_path / "gpu-root.pem"
    root.write_bytes(gpus.root.public_bytes(serialization.Encoding.PEM))

    nonce = os.urandom(32)
    quote = tmp_path / "cvm.quote"
    quote.write_bytes(cvm.quote(composite_nonce(nonce, 2)))
    argv = ["attest", "appraise", str(quote), "--data", str(data), "--format", "ironroot"]
    argv += ["--nonce", nonce.hex(), "--gpu-root", str(root), "--at", NOW.isoformat(), "--json"]
    for i in range(2):
        report = gpus.gpu().report(gpu_nonce(nonce, i))
        (tmp_path / f"gpu{i}.bin").write_bytes(report.report)
        (tmp_path / f"gpu{i}.pem").write_bytes(report.certificates[0])
        argv += [
            "--gpu",
            str(tmp_path / f"gpu{i}.bin"),
            "--gpu-cert",
            str(tmp_path / f"gpu{i}.pem"),
        ]
    capsys.readouterr()
    code = main(argv)
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out
    assert list(out["submods"]) == ["cvm", "gpu0", "gpu1"]
    assert out["submods"]["gpu1"]["trust_vector"]["executables"] == AR4SI.APPROVED_RUNTIME

    # GPU 1's report from another VM's session: refused, exit 1.
    replayed = gpus.gpu().report(gpu_nonce(os.urandom(32), 1))
    (tmp_path / "gpu1.bin").write_bytes(replayed.report)
    (tmp_path / "gpu1.pem").write_bytes(replayed.certificates[0])
    assert main(argv) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["submods"]["gpu1"]["reasons"][0].startswith("evidence: nonce-mismatch:")
    # Usage errors: a chain missing, no nonce.
    assert main(argv[:-2]) == 2
    no_nonce = [a for a in argv if a not in ("--nonce", nonce.hex())]
    assert main(no_nonce) == 2


def test_rim_cache_is_per_rim_set(cvm: Device, endorsements: Endorsements, gpus: GpuWorld) -> None:
    nonce = os.urandom(32)
    quote = cvm.quote(composite_nonce(nonce, 1))
    report = gpus.gpu().report(gpu_nonce(nonce, 0))
    cache = GpuRimCache()

    def run(given: Endorsements) -> AttestationResult:
        return appraise_composite(
            quote, [report], given, nonce=nonce, now=NOW, gpu_root=gpus.root, rim_cache=cache
        )

    assert run(endorsements).submods["gpu0"].trust_vector["executables"] == 2
    assert len(cache) == 1
    assert run(endorsements).status is TrustTier.AFFIRMING
    assert len(cache) == 1
    # Another RIM set (the RIMs left the configuration): the verdict is not reused.
    empty = dataclasses.replace(endorsements, rims=LoggedRims())
    assert run(empty).submods["gpu0"].trust_vector["executables"] == AR4SI.UNRECOGNIZED_RUNTIME
    assert len(cache) == 2


def test_a_rim_that_expires_after_start_up_stops_approving(world: World, cvm: Device) -> None:
    # RIMs are taken from the log once, when the verifier starts, and their signing chain's
    # validity was checked only then: a verifier that kept running approved GPUs against RIMs
    # that had expired (NVIDIA's do), and a cached GPU verdict outlived them too.
    short = GpuWorld.generate()
    short = dataclasses.replace(
        short,
        rim_pki=RimPki.generate(
            not_before=NOW - dt.timedelta(days=30), not_after=NOW + dt.timedelta(hours=1)
        ),
    )
    endorsements = dataclasses.replace(world.endorsements(), rims=short.logged_rims(world))
    gpu = short.gpu()
    cache = GpuRimCache()

    def gpu0(at: dt.datetime) -> Appraisal:
        nonce = os.urandom(32)
        result = appraise_composite(
            cvm.quote(composite_nonce(nonce, 1)),
            [gpu.report(gpu_nonce(nonce, 0))],
            endorsements,
            nonce=nonce,
            now=at,
            gpu_root=short.root,
            rim_cache=cache,
        )
        return result.submods["gpu0"]

    assert gpu0(NOW + dt.timedelta(minutes=59)).status is TrustTier.AFFIRMING
    assert len(cache) == 1
    later = gpu0(NOW + dt.timedelta(hours=2))
    assert later.trust_vector["executables"] == AR4SI.UNRECOGNIZED_RUNTIME
    assert any(line.startswith("rim: rim-expired: the driver RIM ") for line in later.reasons)


def test_cached_gpu_appraisals_carry_each_reports_own_nonce(
    cvm: Device, endorsements: Endorsements, gpus: GpuWorld
) -> None:
    from ironroot.attestation import DEFAULT_POLICY, EvidenceCaches

    gpu = gpus.gpu()
    cache, caches = GpuRimCache(), EvidenceCaches()
    seen = []
    for _ in range(3):
        nonce = os.urandom(32)
        result = appraise_composite(
            cvm.quote(composite_nonce(nonce, 1)),
            [gpu.report(gpu_nonce(nonce, 0))],
            endorsements,
            DEFAULT_POLICY,
            nonce=nonce,
            now=NOW,
            gpu_root=gpus.root,
            rim_cache=cache,
            caches=caches,
        )
        gpu0 = result.submods["gpu0"]
        assert result.status is TrustTier.AFFIRMING
        assert gpu0.evidence is not None
        assert gpu0.evidence["report_data"] == gpu_nonce(nonce, 0).hex()
        seen.append(gpu0)
    assert len(cache) == 1
    # Same verdict, separate containers: one EAR's claims cannot change another's.
    assert seen[1] == seen[2]
    assert seen[1].evidence is not None
    assert seen[2].evidence is not None
    assert seen[1].evidence["identity"] is not seen[2].evidence["identity"]
    # A failing GPU is not served from the cache of a good one.
    nonce = os.urandom(32)
    bad = gpu.report(gpu_nonce(nonce, 0), tampered_block=2)
    result = appraise_composite(
        cvm.quote(composite_nonce(nonce, 1)),
        [bad],
        endorsements,
        nonce=nonce,
        now=NOW,
        gpu_root=gpus.root,
        rim_cache=cache,
        caches=caches,
    )
    assert result.submods["gpu0"].trust_vector["executables"] == AR4SI.CONTRAINDICATED_RUNTIME


def test_a_policy_that_reads_per_report_values_is_not_cached(
    cvm: Device, endorsements: Endorsements, gpus: GpuWorld
) -> None:
    from ironroot.attestation import DEFAULT_POLICY, AppraisalPolicy, PolicyRule

    rule = PolicyRule(
        "nonce-prefix",
        'format != "nvidia-gpu" || !report_data.startsWith("00")',
        "instance-identity",
        AR4SI.UNTRUSTWORTHY_INSTANCE,
        "the GPU's nonce starts with 00",
    )
    policy = AppraisalPolicy(
        name="reads-nonce", rules=(*DEFAULT_POLICY.rules, rule), affirm=DEFAULT_POLICY.affirm
    )
    gpu, cache = gpus.gpu(), GpuRimCache()
    for _ in range(2):
        nonce = os.urandom(32)
        appraise_composite(
            cvm.quote(composite_nonce(nonce, 1)),
            [gpu.report(gpu_nonce(nonce, 0))],
            endorsements,
            policy,
            nonce=nonce,
            now=NOW,
            gpu_root=gpus.root,
            rim_cache=cache,
        )
    assert len(cache) == 0


@pytest.mark.parametrize(
    ("rule", "slot", "value_type"),
    [
        ("raw.slot_id == 0", 1, MeasurementValueType.MUTABLE_FIRMWARE),
        (
            '!("IMMUTABLE_ROM" in raw.value_types)',
            0,
            MeasurementValueType.IMMUTABLE_ROM,
        ),
    ],
    ids=["slot", "value-type"],
)
def test_a_cached_gpu_verdict_is_not_served_to_a_report_the_policy_tells_apart(
    cvm: Device,
    endorsements: Endorsements,
    gpus: GpuWorld,
    rule: str,
    slot: int,
    value_type: MeasurementValueType,
) -> None:
    # The cache was keyed by the opaque data, signer, identity and block values only: a
    # report of the same firmware asked for on another slot, or whose blocks another value
    # type, got the verdict the policy gave the first report.
    from ironroot.attestation import DEFAULT_POLICY, AppraisalPolicy, PolicyRule

    shape = PolicyRule(
        "gpu-shape",
        f'format != "nvidia-gpu" || ({rule})',
        "instance-identity",
        AR4SI.UNTRUSTWORTHY_INSTANCE,
        "the GPU report is not of the expected shape",
    )
    default = DEFAULT_POLICY
    policy = AppraisalPolicy(
        name="reads-raw",
        rules=(*default.rules, shape),
        affirm=default.affirm,
        affirm_by_format=default.affirm_by_format,
        components=default.components,
        svn_claim=default.svn_claim,
        firmware_hash=default.firmware_hash,
    )
    gpu, cache = gpus.gpu(), GpuRimCache()

    def run(report: GpuReport, nonce: bytes) -> AttestationResult:
        return appraise_composite(
            cvm.quote(composite_nonce(nonce, 1)),
            [report],
            endorsements,
            policy,
            nonce=nonce,
            now=NOW,
            gpu_root=gpus.root,
            rim_cache=cache,
        )

    nonce = os.urandom(32)
    first = run(gpu.report(gpu_nonce(nonce, 0)), nonce)
    assert first.status is TrustTier.AFFIRMING, {k: v.reasons for k, v in first.submods.items()}
    assert len(cache) == 1
    nonce = os.urandom(32)
    other = gpu.report(gpu_nonce(nonce, 0), slot=slot, value_type=value_type)
    gpu0 = run(other, nonce).submods["gpu0"]
    assert gpu0.trust_vector["instance-identity"] == AR4SI.UNTRUSTWORTHY_INSTANCE
    assert "gpu-shape: the GPU report is not of the expected shape" in gpu0.reasons


def test_one_gpu_asked_twice_is_not_two_gpus(
    cvm: Device, endorsements: Endorsements, gpus: GpuWorld
) -> None:
    """One GPU answers both gpu_nonce(N, 0) and gpu_nonce(N, 1): both reports verify and
    answer their place, but they are one device, which the composite counts once."""
    nonce = os.urandom(32)
    device = gpus.gpu()
    reports = [device.report(gpu_nonce(nonce, i)) for i in range(2)]
    result = _appraise(cvm.quote(composite_nonce(nonce, 2)), reports, endorsements, nonce, gpus)
    assert result.submods["gpu0"].status is TrustTier.AFFIRMING
    gpu1 = result.submods["gpu1"]
    assert dict(gpu1.trust_vector) == {"hardware": AR4SI.CONTRAINDICATED_HARDWARE}
    assert gpu1.reasons[0].startswith("evidence: duplicate-gpu: gpu1's report is signed by")
    assert result.status is TrustTier.CONTRAINDICATED
    # The same chain given as DER instead of PEM is the same device.
    der = b"".join(
        c.public_bytes(serialization.Encoding.DER)
        for c in x509.load_pem_x509_certificates(b"".join(reports[1].certificates))
    )
    again = [reports[0], GpuReport(reports[1].report, (der,))]
    result = _appraise(cvm.quote(composite_nonce(nonce, 2)), again, endorsements, nonce, gpus)
    assert result.submods["gpu1"].reasons[0].startswith("evidence: duplicate-gpu:")
    # Two distinct GPUs are still two.
    other = gpus.gpu().report(gpu_nonce(nonce, 1))
    result = _appraise(
        cvm.quote(composite_nonce(nonce, 2)), [reports[0], other], endorsements, nonce, gpus
    )
    assert result.status is TrustTier.AFFIRMING


@pytest.mark.parametrize("format", ["auto", "nvidia-gpu"])
def test_a_gpu_report_in_the_cvm_place_is_not_a_cvm(
    endorsements: Endorsements, gpus: GpuWorld, format: str
) -> None:
    """A GPU asked for the composite nonce signs it like any nonce; in the CVM's place its
    report would attest a composite with no VM in it: refused whatever its chain."""
    nonce = os.urandom(32)
    fake = gpus.gpu().report(composite_nonce(nonce, 1))
    real = gpus.gpu().report(gpu_nonce(nonce, 0))
    result = appraise_composite(
        fake.report,
        [real],
        endorsements,
        nonce=nonce,
        now=NOW,
        format=format,
        certificates=fake.certificates,
        gpu_root=gpus.root,
    )
    assert set(EVIDENCE_FORMATS) >= DEVICE_FORMATS  # the shared names are the table's
    cvm = result.submods["cvm"]
    assert dict(cvm.trust_vector) == {"instance-identity": AR4SI.UNEXPECTED_EVIDENCE}
    assert cvm.reasons[0].startswith("evidence: not-a-cvm: the composite's CVM evidence is nvidia")
    assert result.submods["gpu0"].status is TrustTier.AFFIRMING
    assert result.status is not TrustTier.AFFIRMING
    assert result.status is not TrustTier.WARNING


def test_a_gpu_report_as_hex_text_is_the_same_report(
    cvm: Device, endorsements: Endorsements, gpus: GpuWorld
) -> None:
    """NVIDIA's tools print the report as hex (as in the vectors): a composite takes it as the
    format table does; text that does not spell bytes is taken as bytes, and does not verify."""
    nonce = os.urandom(32)
    report = gpus.gpu().report(gpu_nonce(nonce, 0))
    text = GpuReport(report.report.hex().encode() + b"\n", report.certificates)
    result = _appraise(cvm.quote(composite_nonce(nonce, 1)), [text], endorsements, nonce, gpus)
    assert result.status is TrustTier.AFFIRMING, result.submods["gpu0"].reasons
    odd = GpuReport(report.report.hex().encode()[:-1], report.certificates)
    result = _appraise(cvm.quote(composite_nonce(nonce, 1)), [odd], endorsements, nonce, gpus)
    assert result.submods["gpu0"].reasons[0].startswith("evidence: bad-signature:")
    assert result.status is TrustTier.CONTRAINDICATED


def test_one_gpu_under_two_attestation_keys_is_not_two_gpus(
    cvm: Device, endorsements: Endorsements, gpus: GpuWorld
) -> None:
    """A GPU's attestation key (the leaf) follows its firmware; the device is the certificate
    that issued it (NVIDIA's GSP BROM, whose subject names the device by serialNumber). One
    device with two leaves, answering gpu_nonce(N, 0) and gpu_nonce(N, 1), is one GPU."""
    nonce = os.urandom(32)
    first, second = gpus.device("41431D480FE5E87274")
    reports = [first.report(gpu_nonce(nonce, 0)), second.report(gpu_nonce(nonce, 1))]
    result = _appraise(cvm.quote(composite_nonce(nonce, 2)), reports, endorsements, nonce, gpus)
    assert result.submods["gpu0"].status is TrustTier.AFFIRMING
    gpu1 = result.submods["gpu1"]
    assert dict(gpu1.trust_vector) == {"hardware": AR4SI.CONTRAINDICATED_HARDWARE}
    assert gpu1.reasons[0].startswith(
        "evidence: duplicate-gpu: gpu1's report is signed by the same GPU as gpu0's"
    )
    assert result.status is TrustTier.CONTRAINDICATED
    # Two devices, each with its own device certificate, are two GPUs.
    (other,) = gpus.device("41431D480FE5E87275", leaves=1)
    reports = [first.report(gpu_nonce(nonce, 0)), other.report(gpu_nonce(nonce, 1))]
    result = _appraise(cvm.quote(composite_nonce(nonce, 2)), reports, endorsements, nonce, gpus)
    assert result.status is TrustTier.AFFIRMING


def test_a_composite_ear_expires_with_a_gpus_crl(
    cvm: Device, endorsements: Endorsements, gpus: GpuWorld
) -> None:
    # A day-long EAR may not outlive the GPU CRL it was checked against (next update in 2 h).
    nonce = os.urandom(32)
    gpu = gpus.gpu()
    soon = NOW + dt.timedelta(hours=2)
    crl = make_crl(
        gpus.ica.subject,
        gpus.ica_key.raw,  # type: ignore[arg-type]
        [],
        last_update=NOW - dt.timedelta(days=1),
        next_update=soon,
    )
    day = 24 * 3600
    result = appraise_composite(
        cvm.quote(composite_nonce(nonce, 1)), [gpu.report(gpu_nonce(nonce, 0))], endorsements,
        nonce=nonce, now=NOW, format="ironroot", gpu_root=gpus.root, crls=[crl], lifetime=day,
    )  # fmt: skip
    assert result.submods["gpu0"].status is TrustTier.AFFIRMING
    assert result.exp == int(soon.timestamp())
    plain = appraise_composite(
        cvm.quote(composite_nonce(nonce, 1)), [gpu.report(gpu_nonce(nonce, 0))], endorsements,
        nonce=nonce, now=NOW, format="ironroot", gpu_root=gpus.root, lifetime=day,
    )  # fmt: skip
    assert plain.exp == int(NOW.timestamp()) + day
