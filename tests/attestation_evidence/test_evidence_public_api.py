"""The public surface of ``ironroot.attestation`` and the claims model."""

from __future__ import annotations

import json
import math
from dataclasses import FrozenInstanceError

import cbor2
import pytest

import ironroot.attestation as attestation
import ironroot.attestation.evidence as evidence
from ironroot.attestation.evidence import EVIDENCE_FORMATS, EvidenceClaims
from ironroot.errors import MalformedEvidence


def test_attestation_all() -> None:
    # The evidence names; the appraisal layer pins the rest in tests/attestation_appraise.
    assert set(attestation.__all__) >= {
        "EVIDENCE_FORMATS",
        "EvidenceClaims",
        "VerifyOptions",
        "verify_evidence",
    }


def test_evidence_all_is_exact_and_resolvable() -> None:
    names = set(evidence.__all__)
    assert {
        "verify_snp_report",
        "verify_tdx_quote",
        "verify_azure_hcl_report",
        "verify_evidence",
        "parse_snp_report",
        "parse_tdx_quote",
        "check_snp_endorsement",
        "EvidenceClaims",
    } <= names
    for name in names:
        assert not name.startswith("_")
        assert getattr(evidence, name) is not None
    assert len(names) == len(evidence.__all__)


def test_format_table_order_and_names() -> None:
    assert list(EVIDENCE_FORMATS) == ["ironroot", "spdm", "nvidia-gpu", "azure-hcl", "snp", "tdx"]
    for name, row in EVIDENCE_FORMATS.items():
        assert row.name == name
        assert row.description
        assert row.binding is not None  # every format today binds a nonce
        described = row.describe()
        assert json.loads(json.dumps(described)) == described
    pinned = {name: [r.name for r in row.roots] for name, row in EVIDENCE_FORMATS.items()}
    assert pinned["tdx"] == ["Intel SGX Root CA"]
    assert pinned["nvidia-gpu"] == ["NVIDIA Device Identity CA"]
    assert (
        pinned["snp"]
        == pinned["azure-hcl"]
        == [
            "AMD ARK-Milan",
            "AMD ARK-Genoa",
            "AMD ARK-Turin",
        ]
    )
    assert pinned["ironroot"] == pinned["spdm"] == []  # configured by the verifier


def _claims() -> EvidenceClaims:
    return EvidenceClaims(
        format="snp",
        measurements={"measurement": b"\x01" * 48},
        report_data=b"\x02" * 64,
        debug=False,
        svns={"snp": 8},
        identity={"chip_id": "ab"},
        signer="CN=SEV-VCEK",
        raw={"nested": {"bytes": b"\xff"}, "list": [b"\x00", 1]},
    )


def test_claims_are_frozen_and_read_only() -> None:
    claims = _claims()
    with pytest.raises(FrozenInstanceError):
        claims.debug = True  # type: ignore[misc]
    with pytest.raises(TypeError):
        claims.measurements["x"] = b""  # type: ignore[index]
    with pytest.raises(TypeError):
        claims.svns["x"] = 1  # type: ignore[index]


def test_claims_to_dict_is_json_with_lowercase_hex() -> None:
    out = _claims().to_dict()
    text = json.dumps(out)
    assert json.loads(text)["raw"] == {"nested": {"bytes": "ff"}, "list": ["00", 1]}
    assert out["measurements"] == {"measurement": "01" * 48}
    assert out["report_data"] == "02" * 64


def test_claims_with_measurements_replace_the_blocks_and_svns_only() -> None:
    claims = _claims()
    named = claims.with_measurements({"firmware": b"\x03" * 48}, {"firmware": 9})
    assert dict(named.measurements) == {"firmware": b"\x03" * 48}
    assert dict(named.svns) == {"firmware": 9}
    with pytest.raises(TypeError):
        named.measurements["x"] = b""  # type: ignore[index]
    assert named.to_dict()["raw"] == {"nested": {"bytes": "ff"}, "list": ["00", 1]}
    kept = ("format", "report_data", "debug", "identity", "signer", "checks", "not_checked")
    assert {k: named.to_dict()[k] for k in kept} == {k: claims.to_dict()[k] for k in kept}
    assert named.valid_until == claims.valid_until


def test_claims_reject_non_json_raw() -> None:
    with pytest.raises(TypeError):
        EvidenceClaims("x", {}, b"", False, {}, {}, "", raw={"obj": object()})


def _quote_with_claims(claims: dict[str, object]) -> bytes:
    """An ``ironroot`` quote container whose two (unsigned) messages carry ``claims``."""
    payload = cbor2.dumps(claims)

    def message(alg: int) -> bytes:
        protected = cbor2.dumps({1: alg, 3: "application/vnd.ironroot.rot-quote+cbor"})
        return cbor2.dumps(cbor2.CBORTag(18, [protected, {}, payload, bytes(96)]))

    return cbor2.dumps(
        {"format": "ironroot-quote/1", "es384": message(-35), "ml-dsa-87": message(-50)}
    )


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_inspected_evidence_with_a_non_finite_float_has_no_json_form(value: float) -> None:
    # parse_evidence (evidence inspect) returned NaN and infinities, which the CLI printed as
    # NaN/Infinity tokens: output that JSON parsers refuse
    data = _quote_with_claims({"nonce": value})
    with pytest.raises(MalformedEvidence, match="no JSON form"):
        evidence.parse_evidence(data)
    name, parsed = evidence.parse_evidence(_quote_with_claims({"nonce": 1.5}))
    assert name == "ironroot"
    assert parsed["es384"]["claims"] == {"nonce": 1.5}
