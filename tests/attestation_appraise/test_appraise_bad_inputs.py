"""Bad files among the verifier's endorsements, malformed certificates in evidence: the
verifier starts, answers with an EAR (never a 5xx), and the CLI exits 1 or 2 with a message."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import httpx
import pytest
from _ar_helpers import NOW, World, make_verifier_dir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.attestation import (
    AR4SI,
    EVIDENCE_FORMATS,
    AttestationService,
    Endorsements,
    TrustTier,
    create_attestation_app,
    load_attestation_config,
    verify_ear,
)
from ironroot.cli import main
from ironroot.crypto import Algorithm, PrivateKey, b64url_encode

_KEY = PrivateKey.generate(Algorithm.ES384)
CRIT_NULL = bytes.fromhex("d28446a201382202f6a04040")
SNP_REPORT = Path("tee") / "snp" / "tests_certs_data_report_milan.hex"
SNP_VCEK = Path("tee") / "snp" / "tests_certs_data_vcek_milan.der"


def _version_5(der: bytes) -> bytes:
    at = der.index(bytes.fromhex("a003020102"))
    return der[: at + 4] + b"\x05" + der[at + 5 :]


@pytest.fixture
def data_dir(tmp_path: Path, world: World) -> Path:
    return make_verifier_dir(tmp_path, world)


def test_bad_files_are_skipped_and_listed(
    data_dir: Path, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    (data_dir / "reference-values" / "crit-null.ts").write_bytes(CRIT_NULL)
    (data_dir / "reviews" / "crit-null.cbor").write_bytes(CRIT_NULL)
    root = world.ca.trust_anchors[0]
    (data_dir / "vendor-ca" / "v5.der").write_bytes(_version_5(root))
    (data_dir / "service-keys" / "junk.cbor").write_bytes(b"\xa1\x01")
    (data_dir / "review-providers" / "junk.pem").write_bytes(b"-----BEGIN PUBLIC KEY-----\n")
    config = load_attestation_config(data_dir)
    with (
        caplog.at_level(logging.WARNING, logger="ironroot.attestation"),
        config.open_service(NOW) as service,  # what `attest serve` does: it starts
    ):
        endorsements = service.endorsements
    assert len(endorsements.reference_values) == len(
        world.endorsements().reference_values
    )  # the good statement still counts
    assert endorsements.reviews
    assert len(endorsements.vendor_roots) == len(world.ca.trust_anchors)
    rejected = "\n".join(endorsements.rejected)
    for name in ("crit-null.ts", "crit-null.cbor", "v5.der", "junk.cbor", "junk.pem"):
        assert name in rejected
        assert name in caplog.text
    assert "crit-null.ts: malformed-statement: crit (2)" in rejected
    assert "v5.der: malformed-certificate" in rejected


def test_attest_serve_setup_survives_a_bad_reference_value(data_dir: Path) -> None:
    (data_dir / "reference-values" / "crit-null.ts").write_bytes(CRIT_NULL)
    with load_attestation_config(data_dir).open_service(NOW) as service:
        assert any("crit-null.ts" in line for line in service.endorsements.rejected)


# --- malformed certificates in evidence -----------------------------------------------------


def _post(service: AttestationService, body: dict[str, object]) -> httpx.Response:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_attestation_app(service))
        async with httpx.AsyncClient(transport=transport, base_url="http://verifier") as c:
            return await c.post("/attestation/verify", json=body)

    return asyncio.run(run())


@pytest.mark.vectors
def test_http_malformed_certificate_is_an_ear_not_a_5xx(world: World, vectors: Path) -> None:
    key = PrivateKey.generate(Algorithm.ES384)
    service = AttestationService(
        endorsements=world.endorsements(), signing_key=key, clock=lambda: NOW
    )
    report = (vectors / SNP_REPORT).read_text().strip().encode()
    bad_vcek = _version_5((vectors / SNP_VCEK).read_bytes())
    body = {
        "evidence": b64url_encode(report),
        "runtime_data": b64url_encode(bytes(64)),
        "format": "snp",
        "certificates": [b64url_encode(bad_vcek)],
    }
    response = _post(service, body)
    assert response.status_code == 200, response.content
    result = verify_ear(response.content, [key.public_key], now=NOW)
    appraisal = result.submods["snp"]
    assert appraisal.status is TrustTier.NONE
    assert appraisal.trust_vector["instance-identity"] == AR4SI.UNEXPECTED_EVIDENCE
    assert any("malformed-certificate" in reason for reason in appraisal.reasons)
    # a certificate that is not even base64 is a 400 problem, never a 503
    body["certificates"] = ["***"]
    refused = _post(service, body)
    assert refused.status_code == 400


@pytest.mark.vectors
def test_http_tdx_quote_with_a_damaged_pck_chain(world: World, vectors: Path) -> None:
    key = PrivateKey.generate(Algorithm.ES384)
    service = AttestationService(
        endorsements=world.endorsements(), signing_key=key, clock=lambda: NOW
    )
    quote = (vectors / "tee" / "tdx" / "deps_verifier_test_data_tdx_quote_4.dat").read_bytes()
    start = quote.index(b"-----BEGIN CERTIFICATE-----") + 28
    for pos in range(start, start + 400, 7):
        damaged = quote[:pos] + bytes([quote[pos] ^ 0x20]) + quote[pos + 1 :]
        body = {
            "evidence": b64url_encode(damaged),
            "runtime_data": b64url_encode(bytes(64)),
            "format": "tdx",
        }
        response = _post(service, body)
        assert response.status_code == 200, (pos, response.content)


@pytest.mark.vectors
def test_cli_appraise_malformed_certificate(
    data_dir: Path, vectors: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "vcek-v5.der"
    bad.write_bytes(_version_5((vectors / SNP_VCEK).read_bytes()))
    argv = ["attest", "appraise", str(vectors / SNP_REPORT), "--data", str(data_dir)]
    assert main([*argv, "--cert", str(bad), "--at", NOW.isoformat(), "--json"]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    out = json.loads(captured.out)
    assert "malformed-certificate" in json.dumps(out)


def test_endorsements_build_labels_rejected_items(world: World) -> None:
    built = world.endorsements(extra_references=(CRIT_NULL,))
    assert any("reference statement" in r and "crit (2)" in r for r in built.rejected)


# --- any request body: a problem or an EAR, never a 5xx ------------------------------------------


def _b64(data: bytes) -> str:
    return b64url_encode(data)


_JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.binary(max_size=40).map(_b64)
)
_JSON = st.recursive(
    _JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@pytest.mark.vectors
@settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_http_verify_answers_any_body_with_a_problem_or_an_ear(
    vectors: Path, data: st.DataObject
) -> None:
    """Members of the right and wrong types, real evidence of every format under any format
    name, certificates and GPUs mixed in: 200 (an EAR), 400 or 413, never a 5xx."""
    blobs = [
        (vectors / SNP_REPORT).read_bytes(),
        (vectors / SNP_VCEK).read_bytes(),
        (vectors / "gpu" / "nvidia" / "hopperCertChain.txt").read_bytes(),
        (vectors / "tee" / "tdx" / "deps_verifier_test_data_tdx_quote_4.dat").read_bytes(),
        b"",
    ]
    blob = st.sampled_from(blobs) | st.binary(max_size=80)
    formats = st.sampled_from(["auto", *EVIDENCE_FORMATS])
    gpu = st.fixed_dictionaries(
        {"evidence": blob.map(_b64)},
        optional={"certificates": st.lists(blob.map(_b64), max_size=2)},
    )
    members = {
        "evidence": blob.map(_b64) | _JSON,
        "nonce": st.binary(max_size=40).map(_b64) | _JSON,
        "runtime_data": st.binary(max_size=80).map(_b64) | _JSON,
        "format": formats | _JSON,
        "certificates": st.lists(blob.map(_b64), max_size=9) | _JSON,
        "gpus": st.lists(gpu, max_size=2) | _JSON,
    }
    body = data.draw(st.fixed_dictionaries({}, optional=members))
    service = AttestationService(endorsements=Endorsements(), signing_key=_KEY, clock=lambda: NOW)
    response = _post(service, body)
    assert response.status_code in (200, 400, 413), (response.status_code, response.content)
