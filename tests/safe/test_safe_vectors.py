"""Every signed OCP SAFE report in the vectors verifies against its provider key, and every
bit flip, foreign key or unknown kid is refused with the exact error."""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path

import cbor2
import pytest
from _safe_helpers import ocp_safe

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import BadSignature, UnknownIssuer
from ironroot.safe import (
    ProviderKey,
    ProviderKeys,
    SafeLimits,
    VerifiedReport,
    parse_report_json,
    parse_sfr_corim,
    verify_report,
)
from ironroot_vectors import vectors_missing

pytestmark = pytest.mark.vectors

_SKIP = "OCP SAFE vectors not found (../shared/vectors/ocp-safe)"
# The two OCP samples are signed with test keys their kid does not name: alias them.
_SAMPLE_ALIASES = {
    "some_key_id": "shortform_report-main/samples/testkey_ecdsa_p521.pub",
    "Wile E Coyote": "shortform_report-main/samples/manifest/testkey_ecdsa_p521.pub",
}


def _signed(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and (p.suffix in (".jws", ".jwt") or p.name.endswith("_signed.cbor"))
    )


def _params(kind: str = "") -> list[object]:
    folder = ocp_safe()
    if folder is None:
        return [pytest.param(None, marks=pytest.mark.skip(reason=_SKIP), id="absent")]
    files = [p for p in _signed(folder) if kind in ("", _kind(p))]
    return [pytest.param(p, id=str(p.relative_to(folder))) for p in files]


def _kind(path: Path) -> str:
    return "cose" if path.suffix == ".cbor" else "jws"


@pytest.fixture(scope="module")
def folder() -> Path:
    found = ocp_safe()
    if found is None:
        vectors_missing(_SKIP)
    return found


# The OCP samples are signed with test keys (kids "some_key_id", "Wile E Coyote") in the name
# of the review provider "My Pentest Corporation": the operator says whose keys they are.
_SAMPLE_PROVIDER = "My Pentest Corporation"


def _sample_keys(folder: Path, identities: frozenset[str]) -> list[ProviderKey]:
    return [
        ProviderKey(
            ProviderKeys.read_key_file(folder / rel).key, frozenset((kid,)), rel, identities
        )
        for kid, rel in _SAMPLE_ALIASES.items()
    ]


@pytest.fixture(scope="module")
def providers(folder: Path) -> ProviderKeys:
    active = ProviderKeys.load([folder / "SRP_certificates" / "Active"])
    return ProviderKeys([*active, *_sample_keys(folder, frozenset((_SAMPLE_PROVIDER,)))])


def _verify(path: Path, providers: ProviderKeys) -> VerifiedReport:
    return verify_report(path.read_bytes(), providers)


# --- every report verifies ------------------------------------------------------------------


@pytest.mark.parametrize("path", _params())
def test_every_signed_report_verifies(path: Path, providers: ProviderKeys) -> None:
    verified = _verify(path, providers)
    assert verified.algorithm is Algorithm.ES512  # every published SFR is ES512
    assert verified.format == _kind(path)
    assert verified.report.device.vendor
    assert verified.key == providers.lookup(verified.kid)


def test_the_vectors_hold_every_form(folder: Path) -> None:
    files = _signed(folder)
    assert any(p.suffix == ".jwt" for p in files)
    assert any(p.suffix == ".jws" for p in files)
    assert len([p for p in files if p.name.endswith("_signed.cbor")]) >= 3


@pytest.mark.parametrize(
    ("rel", "kid", "vendor", "product", "sha384_prefix", "issues", "max_cvss"),
    [
        (
            "Reports/Microsoft/2026/microsoft_hsm_cryptographic_module/v3.4.6.7-60219024/"
            "2026-04-21_Microsoft-Corporation_Microsoft-HSM-Cryptographic-Module-Layer-0-RoT"
            "_Final-Report_signed.cbor",
            "tetrel-ocp-sfr-signing-key",
            "Microsoft Corporation",
            "Microsoft HSM Cryptographic Module (Layer 0 RoT)",
            "000103edd22b14622f727251751e5aff",
            0,
            None,
        ),
        (
            "Reports/Astera_Labs/2025/Leo/OCP_SAFE_-_Astera_Labs_2025_-_Leo.jws",
            "NCC Group",
            "Astera Labs",
            "Leo",
            "3c3d4f17514a31a181e2e67c1577da31",
            3,
            5.3,
        ),
        (
            "Reports/SK_hynix/2025/PEB110/SK_hynix-PEB110-61082A50-Security-Evaluation_signed.jws",
            "Keysight",
            "SK hynix",
            "PEB110 Enterprise SSD",
            "b460c323f18e98a9b948906a7e118df0",
            2,
            3.7,
        ),
        (
            "Reports/micron/2026/7550/micron_7550_enterprise_ssd.jwt",
            "Keysight",
            "Micron Technology, Inc",
            "Micron 7550 Enterprise SSD",
            "70b1bc97e274870f60a26263f8d82a5f",
            0,
            None,
        ),
        (
            "Reports/CHIPS_Alliance/2024/Caliptra/caliptra_fw_signed_report.jws",
            "IOActive - secp521r1",
            "Microsoft Corporation",
            "Caliptra",
            None,
            1,
            0.0,
        ),
        (
            "shortform_report-main/samples/manifest/manifest.jws",
            "Wile E Coyote",
            "ACME Inc",
            "Roadrunner Trap",
            "848aff556097fc1eaf08253abd00af0a",
            2,
            8.7,
        ),
    ],
)
def test_report_values(
    folder: Path,
    providers: ProviderKeys,
    rel: str,
    kid: str,
    vendor: str,
    product: str,
    sha384_prefix: str | None,
    issues: int,
    max_cvss: float | None,
) -> None:
    verified = _verify(folder / rel, providers)
    report = verified.report
    assert verified.kid == kid
    assert (report.device.vendor, report.device.product) == (vendor, product)
    sha384 = report.firmware_hashes().get("sha384")
    if sha384_prefix is None:
        assert sha384 is None
    else:
        assert sha384 is not None
        assert sha384.hex().startswith(sha384_prefix)
    assert len(report.audit.issues) == issues
    assert report.max_cvss == max_cvss


def test_issue_fields_of_a_real_report(folder: Path, providers: ProviderKeys) -> None:
    rel = "Reports/Astera_Labs/2025/Leo/OCP_SAFE_-_Astera_Labs_2025_-_Leo.jws"
    issue = _verify(folder / rel, providers).report.audit.issues[0]
    assert issue.cvss_score == 5.3
    assert issue.cvss_vector == "CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:H/I:H/A:N"
    assert issue.cwe == "CWE-316"
    assert issue.cve is None
    assert issue.cvss_version == "3.1"


def test_manifest_digest_matches_in_the_sample(folder: Path, providers: ProviderKeys) -> None:
    report = _verify(
        folder / "shortform_report-main/samples/manifest/manifest.jws", providers
    ).report
    assert len(report.device.manifest) == 4
    assert report.device.manifest[0].file_name == "myapp/bin/myapp.elf"
    assert report.device.manifest_matches is True


def test_short_sha512_is_kept_but_never_matched(folder: Path, providers: ProviderKeys) -> None:
    rel = "Reports/AMD/2023/MI300X_GPU/Prototype/OCP_SAFE_-_amd_mi300x_-_BL_-_Stage_1.jws"
    report = _verify(folder / rel, providers).report
    assert report.device.fw_hash_sha2_512 is not None
    assert len(report.device.fw_hash_sha2_512) == 32
    assert report.firmware_hashes() == {}


def test_jwt_claims_are_read(folder: Path, providers: ProviderKeys) -> None:
    rel = (
        "Reports/NVIDIA/2025/ConnectX/"
        "2026-02-02_NVIDIA-Corporation_ConnectX-NIC-Firmware-CX7_20_Final-Report.jws"
    )
    assert _verify(folder / rel, providers).report.issued_at == 1770050008


@pytest.mark.parametrize("path", _params("cose"))
def test_cose_report_agrees_with_its_json(path: Path, providers: ProviderKeys) -> None:
    cose = _verify(path, providers).report
    json_report = parse_report_json(
        path.with_name(path.name.removesuffix("_signed.cbor") + ".json").read_bytes()
    )
    for name in ("vendor", "product", "fw_version", "fw_hash_sha2_384", "fw_hash_sha2_512"):
        assert getattr(cose.device, name) == getattr(json_report.device, name), name
    assert cose.audit.srp == json_report.audit.srp
    assert cose.audit.report_version == json_report.audit.report_version
    assert cose.audit.scope == json_report.audit.scope
    assert len(cose.audit.issues) == len(json_report.audit.issues)


def test_every_json_report_parses(folder: Path) -> None:
    reports = sorted((folder / "Reports").rglob("*.json"))
    assert len(reports) > 100
    for path in reports:
        assert parse_report_json(path.read_bytes()).device.product, path


# --- must reject: flipped bits, unknown provider, foreign key --------------------------------


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _unb64(text: bytes) -> bytes:
    return base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))


def _flip_jws(data: bytes, part: int, index: int) -> bytes:
    parts = data.strip().split(b".")
    raw = bytearray(_unb64(parts[part]))
    raw[index % len(raw)] ^= 0x01
    parts[part] = _b64(bytes(raw))
    return b".".join(parts)


def _flip_cose(data: bytes, where: str) -> bytes:
    msg = cbor2.loads(data)
    body = list(msg.value)
    if where == "payload":
        payload = bytearray(body[2])
        payload[len(payload) // 2] ^= 0x01
        body[2] = bytes(payload)
    else:
        signer = list(body[3][0])
        sig = bytearray(signer[2])
        sig[len(sig) // 3] ^= 0x01
        signer[2] = bytes(sig)
        body[3] = [signer, *body[3][1:]]
    return cbor2.dumps(cbor2.CBORTag(msg.tag, body))


@pytest.mark.parametrize("path", _params())
@pytest.mark.parametrize("where", ["payload", "signature"])
def test_flipped_bit_is_bad_signature(path: Path, where: str, providers: ProviderKeys) -> None:
    data = path.read_bytes()
    if _kind(path) == "cose":
        tampered = _flip_cose(data, where)
    else:
        part = 1 if where == "payload" else 2
        tampered = _flip_jws(data, part, len(data) // 7)
    with pytest.raises(BadSignature):
        verify_report(tampered, providers)


@pytest.mark.parametrize("path", _params())
def test_unknown_provider_is_refused(path: Path, providers: ProviderKeys) -> None:
    signer_key = _verify(path, providers).key
    others = ProviderKeys(k for k in providers if k.key != signer_key)
    with pytest.raises(UnknownIssuer):
        verify_report(path.read_bytes(), others)


@pytest.mark.parametrize("path", _params())
def test_another_providers_key_under_the_same_kid_is_bad_signature(
    path: Path, providers: ProviderKeys
) -> None:
    verified = _verify(path, providers)
    impostor = PrivateKey.generate(Algorithm.ES512).public_key
    store = ProviderKeys([ProviderKey(impostor, frozenset((verified.kid,)))])
    with pytest.raises(BadSignature):
        verify_report(path.read_bytes(), store)


def test_cose_report_parsed_directly_equals_verified(folder: Path, providers: ProviderKeys) -> None:
    path = next(p for p in _signed(folder) if _kind(p) == "cose")
    payload = cbor2.loads(path.read_bytes()).value[2]
    assert parse_sfr_corim(payload) == _verify(path, providers).report
    assert dataclasses.asdict(parse_sfr_corim(payload))["audit"]["methodology"] is None


def test_every_real_report_is_well_within_the_report_cap(
    folder: Path, providers: ProviderKeys
) -> None:
    """The 1 MiB cap (``SafeLimits``, every form) leaves every published report room: each
    JSON body parses and each signed report verifies with the default limits, and the
    largest of them (32,016 bytes) is under a thirtieth of the cap."""
    limits = SafeLimits()
    bodies = sorted(p for p in folder.rglob("*.json") if p.is_file())
    signed = _signed(folder)
    assert len(bodies) > 100
    assert len(signed) > 100
    for path in bodies:
        assert parse_report_json(path.read_bytes()).device.product, path
    for path in signed:
        assert _verify(path, providers).report.device.vendor, path
    largest = max(p.stat().st_size for p in (*bodies, *signed))
    assert largest * 30 < limits.max_report_bytes == limits.cose_cap
