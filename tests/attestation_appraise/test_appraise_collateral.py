"""Collateral in appraisal: the TCB status as a claim and a default rule, stale collateral in
the EAR, ``attest appraise --collateral``, and the verifier's configured collateral (a bad
file is reported, never fatal)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from _ar_helpers import World
from cryptography.hazmat.primitives.serialization import Encoding

from ironroot.attestation import (
    AR4SI,
    DEFAULT_POLICY,
    Endorsements,
    TdxCollateral,
    appraise_evidence,
    load_attestation_config,
    read_tdx_collateral,
    stale_at,
)
from ironroot.attestation.evidence import _tdx_verify, load_tdx_collateral
from ironroot.cli import main
from ironroot.rot import Device
from tee_fakes import NEXT_UPDATE, TDX_NOW, FakeIntel, identity_level, platform_level


@pytest.fixture
def intel(monkeypatch: pytest.MonkeyPatch) -> FakeIntel:
    """A self-made Intel PKI whose root stands in for the built-in Intel SGX Root CA."""
    fake = FakeIntel()
    monkeypatch.setattr(_tdx_verify, "builtin_intel_root", lambda: fake.root)
    return fake


def _collateral(intel: FakeIntel, status: str = "UpToDate") -> TdxCollateral:
    return load_tdx_collateral(
        tcb_info=intel.tcb_info([platform_level(status, advisories=["INTEL-SA-00828"])]),
        qe_identity=intel.qe_identity(),
        signing_chain=intel.signing_chain(),
        crls=[intel.crl(ca).public_bytes(Encoding.DER) for ca in ("pck", "root")],
    )


def _endorsements(intel: FakeIntel) -> Endorsements:
    return Endorsements(vendor_roots=(intel.root.public_bytes(Encoding.DER),))


def _appraise(intel: FakeIntel, collateral: TdxCollateral | None, **kw: object) -> object:
    quote = intel.quote()
    return appraise_evidence(
        quote,
        _endorsements(intel),
        nonce=b"\x42" * 64,
        now=kw.pop("now", TDX_NOW),  # type: ignore[arg-type]
        collateral=collateral,
        **kw,  # type: ignore[arg-type]
    )


def test_default_policy_has_the_tcb_status_rule() -> None:
    rule = next(r for r in DEFAULT_POLICY.rules if r.name == "tcb-status")
    assert (rule.category, rule.code, rule.gate) == ("hardware", AR4SI.UNSAFE_HARDWARE, False)


@pytest.mark.parametrize(
    ("status", "flagged"),
    [
        ("UpToDate", False),
        ("SWHardeningNeeded", False),
        ("ConfigurationNeeded", False),
        ("OutOfDate", True),
        ("OutOfDateConfigurationNeeded", True),
    ],
)
def test_an_out_of_date_tcb_is_a_hardware_warning(
    intel: FakeIntel, status: str, flagged: bool
) -> None:
    result = _appraise(intel, _collateral(intel, status))
    appraisal = result.submods["tdx"]  # type: ignore[attr-defined]
    reasons = [r for r in appraisal.reasons if r.startswith("tcb-status:")]
    assert appraisal.evidence["identity"]["tcb_status"] == status
    if flagged:
        assert appraisal.trust_vector["hardware"] == AR4SI.UNSAFE_HARDWARE
        assert reasons == [
            f"tcb-status: the platform's Intel TCB status is {status}: it lacks security "
            "fixes Intel has released"
        ]
    else:
        assert reasons == []
        assert appraisal.trust_vector.get("hardware") != AR4SI.UNSAFE_HARDWARE
    names = [c["name"] for c in appraisal.evidence["checks"]]
    assert names[-5:] == ["revocation", "collateral", "qe-identity", "tcb-status", "nonce"]


@pytest.mark.parametrize(("qe_status", "flagged"), [("OutOfDate", True), ("UpToDate", False)])
def test_an_out_of_date_qe_is_a_hardware_warning_without_tcb_info(
    intel: FakeIntel, qe_status: str, flagged: bool
) -> None:
    # With a TCB Info, a QE out of date makes the TCB status OutOfDate (Intel's convergence);
    # with the QE Identity alone it was dropped: less collateral gave the better result.
    collateral = load_tdx_collateral(
        qe_identity=intel.qe_identity([identity_level(qe_status, 4)]),
        signing_chain=intel.signing_chain(),
        crls=[intel.crl(ca).public_bytes(Encoding.DER) for ca in ("pck", "root")],
    )
    appraisal = _appraise(intel, collateral).submods["tdx"]  # type: ignore[attr-defined]
    assert appraisal.evidence["identity"]["qe_tcb_status"] == qe_status
    assert "tcb_status" not in appraisal.evidence["identity"]
    reasons = [r for r in appraisal.reasons if r.startswith("tcb-status:")]
    if flagged:
        assert appraisal.trust_vector["hardware"] == AR4SI.UNSAFE_HARDWARE
        assert reasons == [
            "tcb-status: the platform's Intel TCB status is OutOfDate: it lacks security "
            "fixes Intel has released"
        ]
    else:
        assert appraisal.trust_vector["hardware"] == AR4SI.GENUINE_HARDWARE
        assert reasons == []


def test_a_policy_can_require_up_to_date(intel: FakeIntel) -> None:
    from ironroot.attestation import AppraisalPolicy

    policy = AppraisalPolicy.from_mapping(
        {
            "rules": [
                {
                    "name": "up-to-date",
                    "expression": 'identity.tcb_status == "UpToDate" && '
                    'raw.stale_collateral.size() == 0 && !("INTEL-SA-00828" in '
                    "raw.tcb.advisory_ids)",
                    "category": "hardware",
                    "code": AR4SI.CONTRAINDICATED_HARDWARE,
                    "reason": "TCB not up to date",
                }
            ]
        }
    )
    quote = intel.quote()
    result = appraise_evidence(
        quote, _endorsements(intel), policy, nonce=None, now=TDX_NOW,
        collateral=_collateral(intel, "SWHardeningNeeded"),
    )  # fmt: skip
    assert result.submods["tdx"].trust_vector["hardware"] == AR4SI.CONTRAINDICATED_HARDWARE


def test_stale_collateral_fails_then_is_noted_when_allowed(intel: FakeIntel) -> None:
    late = NEXT_UPDATE + timedelta(days=1)
    result = _appraise(intel, _collateral(intel), now=late)
    appraisal = result.submods["tdx"]  # type: ignore[attr-defined]
    assert dict(appraisal.trust_vector) == {"instance-identity": AR4SI.UNTRUSTWORTHY_INSTANCE}
    assert appraisal.reasons[0].startswith("evidence: collateral-expired: stale collateral: ")
    allowed = _appraise(intel, _collateral(intel), now=late, allow_stale_collateral=True)
    reasons = allowed.submods["tdx"].reasons  # type: ignore[attr-defined]
    stale = [r for r in reasons if r.startswith("collateral: stale, allowed: ")]
    assert len(stale) == 1
    assert "CRL of Intel SGX PCK Platform CA" in stale[0]
    assert "TCB Info 50806f000000" in stale[0]


def test_an_ear_expires_when_the_collateral_it_relied_on_does(intel: FakeIntel) -> None:
    # The CRLs, TCB Info and QE Identity are fresh until NEXT_UPDATE (12 days after TDX_NOW):
    # an EAR of a 30-day lifetime affirmed "not revoked, TCB UpToDate" 18 days past them.
    from ironroot.crypto import Algorithm, PrivateKey
    from ironroot.ear import key_map, sign_ear_jwt, verify_ear
    from ironroot.errors import ResultExpired

    month = 30 * 24 * 3600
    result = _appraise(intel, _collateral(intel), lifetime=month)
    assert result.exp == int(NEXT_UPDATE.timestamp())  # type: ignore[attr-defined]
    signer = PrivateKey.generate(Algorithm.ES384)
    token = sign_ear_jwt(result, signer)  # type: ignore[arg-type]
    keys = key_map([signer.public_key])
    verify_ear(token, keys, now=NEXT_UPDATE - timedelta(seconds=1))
    with pytest.raises(ResultExpired, match="the EAR expired at"):
        verify_ear(token, keys, now=NEXT_UPDATE + timedelta(days=1))
    # A lifetime shorter than the collateral's is kept.
    short = _appraise(intel, _collateral(intel), lifetime=3600)
    assert short.exp == int(TDX_NOW.timestamp()) + 3600  # type: ignore[attr-defined]


@pytest.mark.parametrize("size", [1, 2, 7, 65])
def test_a_nonce_an_ear_cannot_carry_is_refused(intel: FakeIntel, size: int) -> None:
    # A 2-byte nonce zero-padded into the report data passed the "fresh" gate (one stored
    # report in 65,536 answers it) while the EAR silently left eat_nonce out (8..64 bytes).
    from ironroot.attestation import appraise_composite
    from ironroot.errors import MalformedInput

    nonce = b"\x42" * size
    quote = intel.quote(report_data=nonce[:64] + bytes(max(0, 64 - size)))
    message = f"a nonce is 8 to 64 bytes \\(an EAR's eat_nonce\\), not {size}"
    with pytest.raises(MalformedInput, match=message):
        appraise_evidence(quote, _endorsements(intel), nonce=nonce, now=TDX_NOW)
    with pytest.raises(MalformedInput, match=message):
        appraise_composite(quote, [], _endorsements(intel), nonce=nonce, now=TDX_NOW)


def test_collateral_problems_are_in_the_reasons_of_the_formats_they_concern(
    intel: FakeIntel, world: World, good_device: Device
) -> None:
    problems = ("collateral/tcb_info.json: malformed-collateral: not JSON",)
    result = _appraise(intel, None, collateral_problems=problems)
    assert "collateral: " + problems[0] in result.submods["tdx"].reasons  # type: ignore[attr-defined]
    # a RoT quote takes no collateral: configured collateral is neither used nor reported
    nonce = bytes(range(32))
    rot = appraise_evidence(
        good_device.quote(nonce),
        world.endorsements(),
        nonce=nonce,
        now=TDX_NOW,
        crls=_collateral(intel).crls,
        collateral=_collateral(intel),
        collateral_problems=problems,
    )
    reasons = rot.submods["ironroot"].reasons
    assert not any(r.startswith("collateral:") for r in reasons)
    assert not any("malformed" in r for r in reasons)


# --- the verifier's configuration and `attest appraise` -----------------------------------------


def _collateral_dir(folder: Path, intel: FakeIntel) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tcb_info.json").write_bytes(intel.tcb_info([platform_level("OutOfDate")]))
    (folder / "tcb_info_00906ed50000.json").write_bytes(
        intel.tcb_info(fmspc=bytes.fromhex("00906ed50000"))
    )
    (folder / "qe_identity.json").write_bytes(intel.qe_identity())
    (folder / "tcb_signing_chain.pem").write_bytes(intel.signing_chain())
    (folder / "pck_crl.der").write_bytes(intel.crl("pck").public_bytes(Encoding.DER))
    (folder / "root_crl.der").write_bytes(intel.crl("root").public_bytes(Encoding.DER))


@pytest.fixture
def data_dir(tmp_path: Path, intel: FakeIntel) -> Path:
    data = tmp_path / "verifier"
    assert main(["attest", "init", "--data", str(data)]) == 0
    (data / "vendor-ca" / "intel-test-root.der").write_bytes(intel.root.public_bytes(Encoding.DER))
    _collateral_dir(data / "intel", intel)
    (data / "crls").mkdir()
    (data / "crls" / "broken.crl").write_bytes(b"not a crl")
    config = data / "attestation.toml"
    text = config.read_text()
    text = text.replace('collateral = ""', 'collateral = "intel"')
    text = text.replace("crls = []", 'crls = ["crls", "missing.der"]')
    config.write_text(text)
    return data


def test_configured_collateral_loads_and_bad_files_are_reported(
    data_dir: Path, intel: FakeIntel
) -> None:
    config = load_attestation_config(data_dir)
    assert config.collateral == data_dir / "intel"
    assert config.allow_stale_collateral is False
    with config.open_service(TDX_NOW) as service:
        assert service.collateral is not None
        assert len(service.collateral.tcb_infos) == 2
        assert len(service.crls) == 2
        assert len(service.collateral_problems) == 2
        assert "broken.crl: malformed-certificate" in service.collateral_problems[0]
        assert service.collateral_problems[1].endswith("missing.der: does not exist")
        assert stale_at(service.collateral, service.crls, TDX_NOW) == []
        service.clock = lambda: TDX_NOW
        result = service.verify(intel.quote(), runtime_data=b"\x42" * 64)
    appraisal = result.submods["tdx"]
    assert appraisal.evidence["identity"]["tcb_status"] == "OutOfDate"
    assert appraisal.trust_vector["hardware"] == AR4SI.UNSAFE_HARDWARE
    problem_reasons = [r for r in appraisal.reasons if r.startswith("collateral: ")]
    assert len(problem_reasons) == 2


def test_a_bad_collateral_file_never_stops_the_service(data_dir: Path, intel: FakeIntel) -> None:
    (data_dir / "intel" / "qe_identity.json").write_bytes(b'{"enclaveIdentity": 1}')
    (data_dir / "intel" / "tcb_signing_chain.pem").write_bytes(b"garbage")
    config = load_attestation_config(data_dir)
    with config.open_service(TDX_NOW) as service:
        problems = service.collateral_problems
        assert any("qe_identity.json: malformed-collateral" in p for p in problems)
        assert any("tcb_signing_chain.pem" in p for p in problems)
        # TCB Info without a usable signing chain is left out; the CRLs still apply
        assert service.collateral is not None
        assert service.collateral.tcb_infos == ()
        service.clock = lambda: TDX_NOW
        result = service.verify(intel.quote(), runtime_data=b"\x42" * 64)
    appraisal = result.submods["tdx"]
    not_checked = {n["name"]: n["reason"] for n in appraisal.evidence["not_checked"]}
    assert not_checked["tcb-status"] == "no collateral given (TCB Info, QE Identity)"
    assert any("tcb_signing_chain.pem" in r for r in appraisal.reasons)


def test_stale_configured_collateral_in_the_ear(data_dir: Path, intel: FakeIntel) -> None:
    late = NEXT_UPDATE + timedelta(days=1)
    config = load_attestation_config(data_dir)
    with config.open_service(late) as service:
        assert {s.name for s in stale_at(service.collateral, service.crls, late)} >= {
            "QE Identity",
            "CRL of Intel SGX Root CA",
        }
        service.clock = lambda: late
        result = service.verify(intel.quote(), runtime_data=b"\x42" * 64)
    assert result.submods["tdx"].reasons[0].startswith("evidence: collateral-expired")
    text = (data_dir / "attestation.toml").read_text()
    (data_dir / "attestation.toml").write_text(
        text.replace("allow_stale_collateral = false", "allow_stale_collateral = true")
    )
    config = load_attestation_config(data_dir)
    with config.open_service(late) as service:
        service.clock = lambda: late
        result = service.verify(intel.quote(), runtime_data=b"\x42" * 64)
    reasons = result.submods["tdx"].reasons
    assert any(r.startswith("collateral: stale, allowed: ") for r in reasons)


def test_bad_collateral_settings_are_config_errors(tmp_path: Path) -> None:
    from ironroot.errors import ConfigError

    data = tmp_path / "v"
    assert main(["attest", "init", "--data", str(data)]) == 0
    config = data / "attestation.toml"
    base = config.read_text()
    for old, new in (
        ("allow_stale_collateral = false", 'allow_stale_collateral = "yes"'),
        ('collateral = ""', "collateral = 3"),
        ("crls = []", "crls = 3"),
    ):
        config.write_text(base.replace(old, new))
        with pytest.raises(ConfigError):
            load_attestation_config(data)


def test_attest_appraise_with_collateral(
    data_dir: Path, intel: FakeIntel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    quote = tmp_path / "quote.dat"
    quote.write_bytes(intel.quote())
    folder = tmp_path / "given"
    _collateral_dir(folder, intel)
    (folder / "tcb_info.json").write_bytes(
        intel.tcb_info([platform_level("UpToDate")]),
    )
    (folder / "qe_identity.json").write_bytes(intel.qe_identity([identity_level("OutOfDate", 0)]))
    argv = ["attest", "appraise", str(quote), "--data", str(data_dir), "--nonce", "42" * 64,
            "--at", TDX_NOW.isoformat(), "--json"]  # fmt: skip
    main([*argv, "--collateral", str(folder)])
    summary = json.loads(capsys.readouterr().out)
    tcb = next(c for c in summary["checks"] if c["name"] == "tcb-status")
    assert tcb["detail"].startswith("OutOfDate")  # the QE's OutOfDate converges
    reasons = summary["submods"]["tdx"]["reasons"]
    assert any(r.startswith("tcb-status: ") for r in reasons)
    assert not any(r.startswith("collateral: ") for r in reasons)  # the configured ones unused
    # without --collateral, the configured collateral applies (and its problems are reported)
    main(argv)
    summary = json.loads(capsys.readouterr().out)
    assert sum(r.startswith("collateral: ") for r in summary["submods"]["tdx"]["reasons"]) == 2


def test_attest_appraise_refuses_collateral_for_other_formats(
    data_dir: Path, good_device: Device, tmp_path: Path, intel: FakeIntel
) -> None:
    quote = tmp_path / "quote.cbor"
    nonce = bytes(32)
    quote.write_bytes(good_device.quote(nonce))
    argv = ["attest", "appraise", str(quote), "--data", str(data_dir), "--nonce", nonce.hex()]
    assert main([*argv, "--collateral", str(data_dir / "intel")]) == 2
    assert main([*argv, "--crl", str(data_dir / "intel" / "pck_crl.der")]) == 2
    files = read_tdx_collateral(data_dir / "intel")
    assert files.problems == ()


def test_attest_serve_reports_bad_and_stale_collateral_at_start(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import uvicorn

    served: list[object] = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: served.append(self))
    assert main(["attest", "serve", "--data", str(data_dir)]) == 0  # the clock is today's
    assert len(served) == 1
    err = capsys.readouterr().err
    assert "WARNING ironroot.attestation: collateral left out: " in err
    assert "broken.crl: malformed-certificate" in err
    assert (
        "WARNING ironroot.attestation: stale collateral (refused until renewed): QE Identity" in err
    )
    assert "INFO ironroot.attestation: attestation verifier on http://127.0.0.1:8100" in err


def test_appraised_claims_answer_no_nonce_an_ear_cannot_carry(intel: FakeIntel) -> None:
    from ironroot.attestation import appraise
    from ironroot.attestation.evidence import verify_tdx_quote

    claims = verify_tdx_quote(
        intel.quote(report_data=b"\x42\x42" + bytes(62)), now=TDX_NOW, root=intel.root
    )
    result = appraise(claims, _endorsements(intel), nonce=b"\x42\x42", now=TDX_NOW)
    appraisal = result.submods["tdx"]
    assert result.nonce is None
    assert appraisal.trust_vector["instance-identity"] == AR4SI.UNTRUSTWORTHY_INSTANCE
    assert appraisal.reasons[0] == (
        "fresh: the evidence does not answer this verifier's nonce (stale or replayed)"
    )


def test_collateral_without_the_pck_crl_is_never_affirmed_not_revoked(intel: FakeIntel) -> None:
    # Intel's QVL needs the PCK CRL of the PCK's issuer: the root CA CRL alone left the PCK
    # unchecked, and the EAR affirmed the instance with a note buried in the evidence
    incomplete = load_tdx_collateral(
        tcb_info=intel.tcb_info(),
        qe_identity=intel.qe_identity(),
        signing_chain=intel.signing_chain(),
        crls=[intel.crl("root").public_bytes(Encoding.DER)],
    )
    appraisal = _appraise(intel, incomplete).submods["tdx"]  # type: ignore[attr-defined]
    assert appraisal.trust_vector["instance-identity"] == AR4SI.UNEXPECTED_EVIDENCE
    assert appraisal.status.value == "none"
    assert any("crl-missing" in r for r in appraisal.reasons), appraisal.reasons
