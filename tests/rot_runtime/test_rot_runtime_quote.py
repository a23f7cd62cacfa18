"""Quotes: two COSE_Sign1 signatures over the claims, chains to the vendor CA, freshness,
PCR log replay, and every way a quote must be refused."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Callable
from pathlib import Path

import cbor2
import pytest
from _rot_helpers import NOW, Product, new_device
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.attestation import RotChainCache, verify_rot_quote
from ironroot.cose import X5CHAIN, Limits, Sign1, decode_cbor, encode_cbor, sign1
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import (
    BadSignature,
    CertificateExpired,
    ChainNotTrusted,
    Conflict,
    MalformedCertificate,
    MalformedInput,
    StaleNonce,
    VerificationFailed,
)
from ironroot.rot import (
    MULTI_TCB_INFO_OID,
    Device,
    Lifecycle,
    OperationalFlag,
    OperationalFlags,
    PcrEvent,
    QuoteClaims,
    TcbInfo,
    VendorCA,
    build_multi_tcb_info_extension,
    derive_ecc_p384,
    derive_layers,
    measured_pfm,
    parse_certificate,
    verify_quote,
)
from ironroot.rot._layers import signature_hash

NONCE = bytes(range(32))
_BIG = Limits(max_bytes=256 * 1024)


def _verify(quote: bytes, ca: VendorCA, nonce: bytes = NONCE, **kw: object) -> object:
    return verify_quote(
        quote,
        nonce=nonce,
        trust_anchors=kw.pop("anchors", ca.trust_anchors),  # type: ignore[arg-type]
        now=kw.pop("now", NOW),  # type: ignore[arg-type]
    )


def _parts(quote: bytes) -> dict[str, Sign1]:
    container = decode_cbor(quote, _BIG)
    assert isinstance(container, dict)
    return {k: Sign1.decode(v, _BIG) for k, v in container.items() if k != "format"}


def _join(parts: dict[str, Sign1]) -> bytes:
    return encode_cbor({"format": "ironroot-quote/1", **{k: m.encode() for k, m in parts.items()}})


def test_a_quote_verifies_and_says_what_booted(booted: Device, vendor_ca: VendorCA) -> None:
    quote = booted.quote(NONCE)
    claims = verify_quote(quote, nonce=NONCE, trust_anchors=vendor_ca.trust_anchors, now=NOW)
    state = booted.boot_state
    assert state is not None
    assert claims.nonce == NONCE
    assert claims.pcrs == state.pcrs
    assert claims.log == state.log
    assert claims.fmc_digest == state.fmc_digest
    assert claims.runtime_digest == state.runtime_digest
    assert claims.manifest_digest == state.manifest_digest
    assert claims.svn == 3
    assert claims.lifecycle is Lifecycle.PRODUCTION
    assert claims.debug_locked is True
    assert [c.subject.split("CN=")[1] for c in claims.ecc_chain] == [
        "Ironroot Ecc384 IDevID",
        "Ironroot Ecc384 LDevID",
        "Ironroot Ecc384 FMC Alias",
        "Ironroot Ecc384 Rt Alias",
    ]
    assert claims.mldsa_chain[-1].public_key_algorithm == "ML-DSA-87"
    assert claims.ueid == claims.ecc_chain[0].dice.ueid
    parts = _parts(quote)
    assert set(parts) == {"es384", "ml-dsa-87"}
    assert parts["es384"].algorithm is Algorithm.ES384
    assert parts["ml-dsa-87"].algorithm is Algorithm.ML_DSA_87
    assert parts["es384"].payload == parts["ml-dsa-87"].payload
    assert len(parts["es384"].unprotected[X5CHAIN]) == 4
    assert encode_cbor(decode_cbor(quote, _BIG)) == quote  # deterministic CBOR


def test_a_stale_or_mismatching_nonce_is_refused(booted: Device, vendor_ca: VendorCA) -> None:
    old = booted.quote(b"\x01" * 32)
    with pytest.raises(StaleNonce):
        _verify(old, vendor_ca, nonce=NONCE)
    with pytest.raises(MalformedInput):
        booted.quote(b"short")
    with pytest.raises(MalformedInput):
        _verify(old, vendor_ca, nonce=b"")


def test_an_untrusted_vendor_ca_is_refused(booted: Device, vendor_ca: VendorCA) -> None:
    other_ca = VendorCA.generate(now=NOW - dt.timedelta(days=1))
    quote = booted.quote(NONCE)
    with pytest.raises(ChainNotTrusted):
        _verify(quote, vendor_ca, anchors=other_ca.trust_anchors)
    with pytest.raises(ChainNotTrusted):
        _verify(quote, vendor_ca, anchors=[])
    with pytest.raises(ChainNotTrusted):  # only the ECC root: the ML-DSA half is untrusted
        _verify(quote, vendor_ca, anchors=[vendor_ca.ecc_certificate])


def test_a_chain_with_another_devices_rt_alias_is_refused(
    booted: Device, vendor_ca: VendorCA, product: Product, tmp_path: Path
) -> None:
    other = new_device(tmp_path / "other", product, vendor_ca)
    other.boot(product.bundle(), now=NOW)
    ours, theirs = _parts(booted.quote(NONCE)), _parts(other.quote(NONCE))
    for alg in ("es384", "ml-dsa-87"):
        # their RT alias signature and certificate, over our FMC alias, LDevID and IDevID
        chain = [theirs[alg].unprotected[X5CHAIN][0], *ours[alg].unprotected[X5CHAIN][1:]]
        forged = dict(ours)
        forged[alg] = Sign1(
            theirs[alg].protected_bytes,
            theirs[alg].protected,
            {X5CHAIN: chain},
            theirs[alg].payload,
            theirs[alg].signature,
        )
        with pytest.raises(ChainNotTrusted):
            _verify(_join(forged), vendor_ca)


def test_a_chain_that_stops_short_of_the_idevid_is_refused(
    booted: Device, vendor_ca: VendorCA
) -> None:
    parts = _parts(booted.quote(NONCE))
    message = parts["es384"]
    short = Sign1(
        message.protected_bytes,
        message.protected,
        {X5CHAIN: list(message.unprotected[X5CHAIN][:3])},
        message.payload,
        message.signature,
    )
    with pytest.raises(ChainNotTrusted):
        _verify(_join({**parts, "es384": short}), vendor_ca)


def test_a_self_made_rt_key_is_refused(booted: Device, vendor_ca: VendorCA) -> None:
    parts = _parts(booted.quote(NONCE))
    rogue = derive_ecc_p384(b"\x07" * 48, b"rogue")
    message = parts["es384"]
    assert message.payload is not None
    forged = sign1(rogue, message.payload, {3: message.protected[3]}, dict(message.unprotected))
    with pytest.raises(BadSignature):
        _verify(_join({**parts, "es384": forged}), vendor_ca)


@pytest.mark.parametrize("alg", ["es384", "ml-dsa-87"])
@pytest.mark.parametrize("where", ["payload", "signature", "protected"])
def test_a_flipped_bit_is_refused(
    booted: Device, vendor_ca: VendorCA, alg: str, where: str
) -> None:
    parts = _parts(booted.quote(NONCE))
    message = parts[alg]
    assert message.payload is not None
    payload, signature = bytearray(message.payload), bytearray(message.signature)
    protected = message.protected_bytes
    if where == "payload":
        payload[len(payload) // 2] ^= 0x01
    elif where == "signature":
        signature[7] ^= 0x01
    else:
        raw = bytearray(protected)
        raw[-1] ^= 0x01  # the last byte of the kid (label 4 sorts last)
        protected = bytes(raw)
    flipped = Sign1(
        protected,
        dict(cbor2.loads(protected)),
        message.unprotected,
        bytes(payload),
        bytes(signature),
    )
    with pytest.raises(BadSignature):
        _verify(_join({**parts, alg: flipped}), vendor_ca)


def test_two_halves_over_different_claims_are_refused(booted: Device, vendor_ca: VendorCA) -> None:
    first = _parts(booted.quote(NONCE))
    booted.derive_child(b"\x02" * 48, label="host")
    second = _parts(booted.quote(NONCE))
    with pytest.raises(VerificationFailed):
        _verify(_join({"es384": first["es384"], "ml-dsa-87": second["ml-dsa-87"]}), vendor_ca)


def _resign(booted: Device, quote: bytes, change: dict[str, object]) -> bytes:
    """Re-sign doctored claims with the device's own RT alias keys (what a compromised
    runtime could do): only the claim checks stand in the way."""
    state = booted.boot_state
    assert state is not None
    layers = derive_layers(booted.fuses, state.pcrs)
    parts = _parts(quote)
    payload = parts["es384"].payload
    assert payload is not None
    claims = decode_cbor(payload)
    assert isinstance(claims, dict)
    new_payload = encode_cbor({**claims, **change})
    out = {}
    for name, alg in (("es384", Algorithm.ES384), ("ml-dsa-87", Algorithm.ML_DSA_87)):
        message = parts[name]
        out[name] = sign1(
            layers.rt_alias.key(alg),
            new_payload,
            {k: v for k, v in message.protected.items() if k != 1},
            dict(message.unprotected),
        )
    return _join(out)


def test_resigned_claims_pass_only_when_consistent(booted: Device, vendor_ca: VendorCA) -> None:
    quote = booted.quote(NONCE)
    _verify(_resign(booted, quote, {}), vendor_ca)  # the harness itself is sound


def test_a_log_that_does_not_replay_is_refused(booted: Device, vendor_ca: VendorCA) -> None:
    quote = booted.quote(NONCE)
    state = booted.boot_state
    assert state is not None
    pcrs = [state.pcrs[0], state.pcrs[1], b"\x05" * 48]
    with pytest.raises(VerificationFailed):
        _verify(_resign(booted, quote, {"pcrs": pcrs}), vendor_ca)


def test_fwids_that_differ_from_the_log_or_certificates_are_refused(
    booted: Device, vendor_ca: VendorCA
) -> None:
    quote = booted.quote(NONCE)
    state = booted.boot_state
    assert state is not None
    fwids = {
        "fmc": b"\x09" * 48,
        "runtime": state.runtime_digest,
        "header": state.header_digest,
        "manifest": state.manifest_digest,
    }
    with pytest.raises(VerificationFailed):
        _verify(_resign(booted, quote, {"fwids": fwids}), vendor_ca)
    with pytest.raises(VerificationFailed):
        _verify(_resign(booted, quote, {"ueid": b"\x01" * 17}), vendor_ca)
    with pytest.raises(MalformedInput):
        _verify(_resign(booted, quote, {"svn": "three"}), vendor_ca)


def test_expired_certificates_are_refused(booted: Device, vendor_ca: VendorCA) -> None:
    quote = booted.quote(NONCE)
    with pytest.raises(CertificateExpired):
        _verify(quote, vendor_ca, now=NOW - dt.timedelta(days=3))  # before the IDevID


def test_quotes_follow_derive_child(booted: Device, vendor_ca: VendorCA) -> None:
    booted.derive_child(b"\x03" * 48, label="bmc")
    claims = verify_quote(
        booted.quote(NONCE), nonce=NONCE, trust_anchors=vendor_ca.trust_anchors, now=NOW
    )
    assert claims.log[-1].name == "dpe:bmc"
    assert claims.log[-1].pcr == 2
    assert claims.pcrs[2] != bytes(48)


@settings(max_examples=examples(40), deadline=None)
@given(cut=st.integers(min_value=0, max_value=2000), flip=st.integers(min_value=0))
def test_mangled_quotes_raise_typed_errors(
    quote_and_ca: tuple[bytes, VendorCA], cut: int, flip: int
) -> None:
    quote, ca = quote_and_ca
    data = bytearray(quote[: len(quote) - cut] if cut else quote)
    if data:
        data[flip % len(data)] ^= 0x40
    with pytest.raises((MalformedInput, VerificationFailed)):
        _verify(bytes(data), ca)


@pytest.fixture(scope="module")
def quote_and_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, VendorCA]:
    product = Product.generate()
    ca = VendorCA.generate(now=NOW - dt.timedelta(days=10))
    device = new_device(tmp_path_factory.mktemp("q") / "d", product, ca)
    device.boot(product.bundle(), now=NOW)
    return device.quote(NONCE), ca


@pytest.mark.parametrize(
    "change",
    [
        {"svn": 200},  # old firmware hiding from anti-rollback appraisal
        {"svn": 2},
        {"debug-locked": False},
        {"lifecycle": "manufacturing"},
        {"lifecycle": "unprovisioned"},
    ],
)
def test_svn_lifecycle_and_debug_claims_must_match_the_alias_certificates(
    booted: Device, vendor_ca: VendorCA, change: dict[str, object]
) -> None:
    # The RT alias key is held by the runtime: a compromised runtime signs whatever it likes.
    # What the FMC (RT alias TcbInfo: SVN) and the ROM (FMC alias DEVICE_INFO flags,
    # FMC_INFO SVN) certified is out of its reach, so the claims must agree with them.
    quote = booted.quote(NONCE)
    with pytest.raises(VerificationFailed):
        _verify(_resign(booted, quote, change), vendor_ca)


def test_a_lifecycle_claim_is_spelled_as_issued(booted: Device, vendor_ca: VendorCA) -> None:
    quote = booted.quote(NONCE)
    with pytest.raises(MalformedInput):
        _verify(_resign(booted, quote, {"lifecycle": "PRODUCTION"}), vendor_ca)


# --- attacks that hold (each can fail: it names the exact refusal) ---------------------------


def _rechain(parts: dict[str, Sign1], alg: str, chain: list[bytes]) -> bytes:
    message = parts[alg]
    replaced = Sign1(
        message.protected_bytes,
        message.protected,
        {X5CHAIN: chain},
        message.payload,
        message.signature,
    )
    return _join({**parts, alg: replaced})


def test_an_event_moved_to_another_pcr_is_refused(booted: Device, vendor_ca: VendorCA) -> None:
    # the fmc-digest event moved from PCR0 to PCR2, the PCRs recomputed so that the log replays
    quote = booted.quote(NONCE)
    state = booted.boot_state
    assert state is not None
    log = [PcrEvent(2 if e.name == "fmc-digest" else e.pcr, e.name, e.data) for e in state.log]
    pcrs = [bytes(48)] * 3
    for e in log:
        pcrs[e.pcr] = hashlib.sha384(pcrs[e.pcr] + e.data).digest()
    change = {"pcr-log": [[e.pcr, e.name, e.data] for e in log], "pcrs": pcrs}
    with pytest.raises(VerificationFailed, match="FWIDs do not match the PCR log"):
        _verify(_resign(booted, quote, change), vendor_ca)


def test_an_fwid_event_recorded_twice_is_refused(booted: Device, vendor_ca: VendorCA) -> None:
    # A later stage appends a second fmc-digest naming other code, the PCRs recomputed so that
    # the log replays: the verifier reads one value per event, so two are refused, whichever
    # one the FWIDs name.
    quote = booted.quote(NONCE)
    state = booted.boot_state
    assert state is not None
    genuine = next(e for e in state.log if e.name == "fmc-digest")
    for log in (
        [*state.log, PcrEvent(genuine.pcr, "fmc-digest", bytes(48))],
        [PcrEvent(genuine.pcr, "fmc-digest", bytes(48)), *state.log],
    ):
        pcrs = [bytes(48)] * 3
        for e in log:
            pcrs[e.pcr] = hashlib.sha384(pcrs[e.pcr] + e.data).digest()
        change = {"pcr-log": [[e.pcr, e.name, e.data] for e in log], "pcrs": pcrs}
        with pytest.raises(VerificationFailed, match="records fmc-digest in PCR 0 twice"):
            _verify(_resign(booted, quote, change), vendor_ca)


@pytest.mark.parametrize("alg", ["es384", "ml-dsa-87"])
def test_swapped_layers_are_refused(booted: Device, vendor_ca: VendorCA, alg: str) -> None:
    parts = _parts(booted.quote(NONCE))
    rt, fmc, ldevid, idevid = parts[alg].unprotected[X5CHAIN]
    with pytest.raises(ChainNotTrusted):
        _verify(_rechain(parts, alg, [rt, ldevid, fmc, idevid]), vendor_ca)


def test_an_idevid_certificate_issued_by_the_ldevid_is_refused(
    booted: Device, vendor_ca: VendorCA
) -> None:
    # Whoever holds the LDevID key re-issues the IDevID certificate under the vendor CA's name.
    state = booted.boot_state
    assert state is not None
    layers = derive_layers(booted.fuses, state.pcrs)
    parts = _parts(booted.quote(NONCE))
    rt, fmc, ldevid, idevid = parts["es384"].unprotected[X5CHAIN]
    genuine = x509.load_der_x509_certificate(idevid)
    builder = (
        x509.CertificateBuilder()
        .subject_name(genuine.subject)
        .issuer_name(genuine.issuer)
        .public_key(genuine.public_key())
        .serial_number(genuine.serial_number)
        .not_valid_before(genuine.not_valid_before_utc)
        .not_valid_after(genuine.not_valid_after_utc)
    )
    for ext in genuine.extensions:
        builder = builder.add_extension(ext.value, critical=ext.critical)
    ldevid_key = layers.ldevid.key(Algorithm.ES384)
    forged = builder.sign(ldevid_key.raw, hashes.SHA384()).public_bytes(Encoding.DER)
    with pytest.raises(BadSignature):
        _verify(_rechain(parts, "es384", [rt, fmc, ldevid, forged]), vendor_ca)


def _with_device_status(booted: Device, quote: bytes, edit: dict[int, int]) -> bytes:
    """The quote re-signed with bytes of its device-status event changed (PCR0 recomputed)."""
    state = booted.boot_state
    assert state is not None
    log = []
    for event in state.log:
        data = bytearray(event.data)
        if event.name == "device-status":
            for index, value in edit.items():
                data[index] = value
        log.append([event.pcr, event.name, bytes(data)])
    pcrs = [bytes(48)] * 3
    for pcr, _, data in log:
        pcrs[pcr] = hashlib.sha384(pcrs[pcr] + data).digest()
    return _resign(booted, quote, {"pcr-log": log, "pcrs": pcrs})


def test_a_device_status_claiming_anti_rollback_the_device_lacks_is_refused(
    device: Device, product: Product, vendor_ca: VendorCA
) -> None:
    # anti-rollback disabled: the FMC alias DEVICE_INFO SVN (the fuse SVN) is 0. A runtime
    # claiming "enabled" in the device-status event must also claim a fuse SVN, which the
    # certificate denies.
    device.program(lambda fuses: fuses.disable_anti_rollback())
    device.boot(product.bundle(), now=NOW)
    quote = device.quote(NONCE)
    _verify(quote, vendor_ca)
    with pytest.raises(VerificationFailed, match="device-status"):
        _verify(_with_device_status(device, quote, {2: 0, 5: 3}), vendor_ca)
    with pytest.raises(VerificationFailed, match="device-status"):
        _verify(_with_device_status(device, quote, {2: 0}), vendor_ca)


@pytest.mark.parametrize(
    "edit",
    [{0: 1}, {1: 0}, {4: 9}, {5: 2}, {5: 9}, {2: 1}, {2: 7}],
    ids=["lifecycle", "debug", "firmware-svn", "fuse-svn-low", "fuse-svn", "disabled", "flag"],
)
def test_a_device_status_the_certificates_deny_is_refused(
    booted: Device, vendor_ca: VendorCA, edit: dict[int, int]
) -> None:
    with pytest.raises(VerificationFailed, match="device-status"):
        _verify(_with_device_status(booted, booted.quote(NONCE), edit), vendor_ca)


def test_a_quote_of_firmware_on_trial_verifies(
    booted: Device, product: Product, vendor_ca: VendorCA
) -> None:
    """A boot that defers the SVN fuse (``advance_svn=False``: a platform's update on trial)
    measures the fuse it has (3) under newer firmware (SVN 4). That is a state a ROM boots,
    and its quote verifies. Before, a quote needed the fuse at least at the firmware's SVN,
    so a node could not be attested between an update and its commit. A claimed fuse other
    than the one the FMC alias certificate certifies is still refused."""
    assert booted.fuses.svn == 3
    booted.boot(product.bundle(svn=4), now=NOW, advance_svn=False)
    assert booted.fuses.svn == 3
    quote = booted.quote(NONCE)
    _verify(quote, vendor_ca)
    for fuse in (4, 2, 0):
        with pytest.raises(VerificationFailed, match="device-status"):
            _verify(_with_device_status(booted, quote, {5: fuse}), vendor_ca)


def _relogged(booted: Device, quote: bytes, log: list[PcrEvent]) -> bytes:
    """``quote`` re-signed by the device's own runtime over ``log``, its PCRs recomputed so
    that the log replays (what a runtime that writes its own log could sign)."""
    pcrs = [bytes(48)] * 3
    for e in log:
        pcrs[e.pcr] = hashlib.sha384(pcrs[e.pcr] + e.data).digest()
    change = {"pcr-log": [[e.pcr, e.name, e.data] for e in log], "pcrs": pcrs}
    return _resign(booted, quote, change)


def test_a_dpe_measurement_outside_pcr_2_or_another_name_in_it_is_refused(
    booted: Device, vendor_ca: VendorCA
) -> None:
    """The audit and the fleet take a component's active image from its ``dpe:<label>``
    event: one recorded in PCR 0 or 1 (where the ROM and FMC record), or an event of another
    name in PCR 2, replayed and verified before — read as what the RoT measured where it did
    not."""
    booted.derive_child(hashlib.sha384(b"bmc image").digest(), label="bmc")
    state = booted.boot_state
    assert state is not None
    quote = booted.quote(NONCE)
    _verify(quote, vendor_ca)  # the genuine log: ROM, FMC, then dpe:bmc in PCR 2
    planted = PcrEvent(1, "dpe:host", hashlib.sha384(b"other").digest())
    with pytest.raises(VerificationFailed) as in_pcr1:
        _verify(_relogged(booted, quote, [*state.log, planted]), vendor_ca)
    assert in_pcr1.value.detail.startswith(
        "the PCR log's events in PCRs 0 and 1 are not the ROM's and the FMC's, in order: "
    )
    assert in_pcr1.value.detail.endswith("dpe:host (PCR 1)")
    for name in ("runtime-digest", "dpe:", "host"):
        extra = PcrEvent(2, name, hashlib.sha384(b"other").digest())
        with pytest.raises(VerificationFailed) as in_pcr2:
            _verify(_relogged(booted, quote, [*state.log, extra]), vendor_ca)
        assert in_pcr2.value.detail == (
            f"PCR 2 holds only DPE measurements (dpe:<label>), not {name!r}"
        )
    reordered = [state.log[1], state.log[0], *state.log[2:]]  # ROM events out of order
    with pytest.raises(VerificationFailed, match="not the ROM's and the FMC's, in order"):
        _verify(_relogged(booted, quote, reordered), vendor_ca)


def test_the_pfm_is_measured_first_in_pcr_2_once_per_boot(
    booted: Device, vendor_ca: VendorCA, product: Product
) -> None:
    """The platform's active PFM (``pfm-digest``) is PCR 2's first event of a boot: verifiers
    hold the PFM a node presents to it, so nothing measured later may stand in for it — the
    device refuses a second measurement or one after a DPE child, and a quote whose log has
    one anywhere else is refused."""
    pfm = hashlib.sha384(b"signed pfm").digest()
    with pytest.raises(MalformedInput) as short:
        booted.measure_pfm(pfm[:47])
    assert short.value.detail == "a PFM measurement is a 48-byte SHA-384"
    booted.measure_pfm(pfm)
    booted.derive_child(hashlib.sha384(b"host image").digest(), label="host")
    quote = booted.quote(NONCE)
    claims = verify_quote(quote, nonce=NONCE, trust_anchors=vendor_ca.trust_anchors, now=NOW)
    assert [(e.pcr, e.name) for e in claims.log if e.pcr == 2] == [
        (2, "pfm-digest"),
        (2, "dpe:host"),
    ]
    assert measured_pfm(claims.log) == pfm
    with pytest.raises(Conflict) as again:
        booted.measure_pfm(hashlib.sha384(b"another pfm").digest())
    assert again.value.detail == (
        "the PFM is measured first in PCR 2, once per boot: boot again to measure it"
    )
    state = booted.boot_state
    assert state is not None
    rom = [e for e in state.log if e.pcr != 2]
    host = state.log[-1]
    other = hashlib.sha384(b"another pfm").digest()
    refused = "PCR 2's pfm-digest event is its first, of 48 bytes, once per boot"
    for log in (
        [*rom, host, PcrEvent(2, "pfm-digest", other)],  # after a DPE child
        [*rom, PcrEvent(2, "pfm-digest", pfm), PcrEvent(2, "pfm-digest", other)],  # twice
        [*rom, PcrEvent(2, "pfm-digest", pfm[:32])],  # not a SHA-384
    ):
        with pytest.raises(VerificationFailed) as info:
            _verify(_relogged(booted, quote, log), vendor_ca)
        assert info.value.detail == refused
    # A boot without it (a bare RoT, or a node booted before PFMs were measured) names none.
    booted.boot(product.bundle(), now=NOW)
    booted.derive_child(hashlib.sha384(b"host image").digest(), label="host")
    fresh = booted.boot_state
    assert fresh is not None
    assert measured_pfm(fresh.log) is None
    with pytest.raises(Conflict):
        booted.measure_pfm(pfm)


def test_a_quote_needs_exactly_one_device_status(booted: Device, vendor_ca: VendorCA) -> None:
    state = booted.boot_state
    assert state is not None
    quote = booted.quote(NONCE)
    for log in (
        [e for e in state.log if e.name != "device-status"],
        [state.log[0], *state.log],
    ):
        pcrs = [bytes(48)] * 3
        for e in log:
            pcrs[e.pcr] = hashlib.sha384(pcrs[e.pcr] + e.data).digest()
        change = {"pcr-log": [[e.pcr, e.name, e.data] for e in log], "pcrs": pcrs}
        with pytest.raises(VerificationFailed, match="device-status"):
            _verify(_resign(booted, quote, change), vendor_ca)


def test_a_warm_chain_cache_refuses_a_forged_device_status(
    booted: Device, vendor_ca: VendorCA
) -> None:
    cache = RotChainCache()
    anchors = vendor_ca.trust_anchors
    quote = booted.quote(NONCE)
    verify_rot_quote(quote, nonce=NONCE, trust_anchors=anchors, now=NOW, cache=cache)
    assert len(cache) == 1
    forged = _with_device_status(booted, quote, {2: 1, 5: 0})
    with pytest.raises(VerificationFailed, match="device-status"):
        verify_rot_quote(forged, nonce=NONCE, trust_anchors=anchors, now=NOW, cache=cache)


def test_a_warm_chain_cache_refuses_a_pcr_log_of_another_shape(
    booted: Device, vendor_ca: VendorCA
) -> None:
    """The appraisal's fast path (a chain already verified) holds a log to the shape the full
    check does: a dpe:<label> event planted in PCR 1, or another name in PCR 2, re-signed by
    the device's own runtime, was accepted once the chain was cached."""
    cache = RotChainCache()
    anchors = vendor_ca.trust_anchors
    booted.derive_child(hashlib.sha384(b"bmc image").digest(), label="bmc")
    state = booted.boot_state
    assert state is not None
    quote = booted.quote(NONCE)
    verify_rot_quote(quote, nonce=NONCE, trust_anchors=anchors, now=NOW, cache=cache)
    assert len(cache) == 1
    planted = PcrEvent(1, "dpe:host", hashlib.sha384(b"other").digest())
    with pytest.raises(VerificationFailed) as in_pcr1:
        verify_rot_quote(
            _relogged(booted, quote, [*state.log, planted]),
            nonce=NONCE,
            trust_anchors=anchors,
            now=NOW,
            cache=cache,
        )
    assert in_pcr1.value.detail.startswith(
        "the PCR log's events in PCRs 0 and 1 are not the ROM's and the FMC's, in order: "
    )
    extra = PcrEvent(2, "runtime-digest", hashlib.sha384(b"other").digest())
    with pytest.raises(VerificationFailed) as in_pcr2:
        verify_rot_quote(
            _relogged(booted, quote, [*state.log, extra]),
            nonce=NONCE,
            trust_anchors=anchors,
            now=NOW,
            cache=cache,
        )
    assert in_pcr2.value.detail == (
        "PCR 2 holds only DPE measurements (dpe:<label>), not 'runtime-digest'"
    )
    verify_rot_quote(quote, nonce=NONCE, trust_anchors=anchors, now=NOW, cache=cache)


@pytest.mark.parametrize(
    ("signed", "nonce"), [(bytes(65), bytes(65)), (bytes(7), bytes(7)), (NONCE, NONCE.hex())]
)
def test_a_warm_chain_cache_refuses_a_nonce_the_full_check_refuses(
    booted: Device, vendor_ca: VendorCA, signed: bytes, nonce: object
) -> None:
    """A nonce outside 8-64 bytes, or not bytes, is MalformedInput with or without a warm
    cache: a runtime that signed a 65-byte nonce was accepted once its chain was cached, and a
    text nonce escaped as a TypeError."""
    cache = RotChainCache()
    anchors = vendor_ca.trust_anchors
    quote = booted.quote(NONCE)
    verify_rot_quote(quote, nonce=NONCE, trust_anchors=anchors, now=NOW, cache=cache)
    assert len(cache) == 1
    answered = _resign(booted, quote, {"nonce": signed})
    for with_cache in (None, cache):
        with pytest.raises(MalformedInput) as refused:
            verify_rot_quote(
                answered,
                nonce=nonce,  # type: ignore[arg-type]
                trust_anchors=anchors,
                now=NOW,
                cache=with_cache,
            )
        assert refused.value.detail == "a nonce is 8–64 bytes"


def test_a_warm_chain_cache_refuses_text_anchors_as_the_full_check_does(
    booted: Device, vendor_ca: VendorCA
) -> None:
    """Trust anchors given as text (PEM read into ``str``) are ``MalformedCertificate`` with
    or without a cache; with one, ``bytes(str)`` raised a bare ``TypeError``."""
    cache = RotChainCache()
    quote = booted.quote(NONCE)
    verify_rot_quote(
        quote, nonce=NONCE, trust_anchors=vendor_ca.trust_anchors, now=NOW, cache=cache
    )
    text = [
        x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM).decode()
        for der in vendor_ca.trust_anchors
    ]
    for with_cache in (None, cache):
        with pytest.raises(MalformedCertificate) as refused:
            verify_rot_quote(
                quote,
                nonce=NONCE,
                trust_anchors=text,  # type: ignore[arg-type]
                now=NOW,
                cache=with_cache,
            )
        assert refused.value.detail == "certificate input must be bytes"


@pytest.fixture(scope="module")
def warm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Device, VendorCA, RotChainCache]:
    """A booted device with one DPE child, and a chain cache warmed by its genuine quote."""
    product = Product.generate()
    ca = VendorCA.generate(now=NOW - dt.timedelta(days=10))
    device = new_device(tmp_path_factory.mktemp("warm") / "d", product, ca)
    device.boot(product.bundle(), now=NOW)
    device.derive_child(hashlib.sha384(b"bmc image").digest(), label="bmc")
    cache = RotChainCache()
    verify_rot_quote(
        device.quote(NONCE), nonce=NONCE, trust_anchors=ca.trust_anchors, now=NOW, cache=cache
    )
    return device, ca, cache


_NAMES = st.sampled_from(
    ["dpe:bmc", "dpe:host", "dpe:", "host", "device-status", "fmc-digest", "runtime-digest"]
)
_EDITS = st.lists(
    st.tuples(
        st.sampled_from(["drop", "add", "swap", "move", "rename"]),
        st.integers(min_value=0, max_value=15),
        st.integers(min_value=0, max_value=2),
        _NAMES,
    ),
    min_size=1,
    max_size=3,
)


def _outcome(verify: object) -> str:
    try:
        verify()  # type: ignore[operator]
    except (MalformedInput, VerificationFailed, StaleNonce) as exc:
        return type(exc).__name__
    return "accepted"


@settings(max_examples=examples(30), deadline=None)
@given(edits=_EDITS)
def test_a_warm_chain_cache_decides_a_pcr_log_as_the_full_check_does(
    warm: tuple[Device, VendorCA, RotChainCache], edits: list[tuple[str, int, int, str]]
) -> None:
    """Differential: a log re-signed by the device's own runtime with events dropped, added,
    swapped, moved to another PCR or renamed (PCRs recomputed so that it replays) is accepted
    or refused by the cache's fast path exactly as by ``verify_quote``. Before the fast path
    ran ``check_quote_log``, it accepted logs the full check refused."""
    device, ca, cache = warm
    state = device.boot_state
    assert state is not None
    log = list(state.log)
    for op, index, pcr, name in edits:
        at = index % len(log) if log else 0
        if op == "drop" and log:
            del log[at]
        elif op == "add":
            log.insert(at, PcrEvent(pcr, name, hashlib.sha384(name.encode()).digest()))
        elif op == "swap" and log:
            log[at], log[-1] = log[-1], log[at]
        elif op == "move" and log:
            log[at] = PcrEvent(pcr, log[at].name, log[at].data)
        elif op == "rename" and log:
            log[at] = PcrEvent(log[at].pcr, name, log[at].data)
    quote = _relogged(device, device.quote(NONCE), log)
    anchors = ca.trust_anchors
    full = _outcome(lambda: verify_quote(quote, nonce=NONCE, trust_anchors=anchors, now=NOW))
    cached = _outcome(
        lambda: verify_rot_quote(quote, nonce=NONCE, trust_anchors=anchors, now=NOW, cache=cache)
    )
    assert cached == full


def test_a_quote_verifies_under_the_right_one_of_two_roots_with_one_name(
    booted: Device, vendor_ca: VendorCA
) -> None:
    # A vendor that re-keys its CA under the same name: both roots are trusted, the device's
    # IDevID is issued by the one listed second. The issuer name alone does not pick the root.
    rekeyed = [_same_name_root(der) for der in vendor_ca.trust_anchors]
    quote = booted.quote(NONCE)
    claims = _verify(quote, vendor_ca, anchors=[*rekeyed, *vendor_ca.trust_anchors])
    assert isinstance(claims, QuoteClaims)
    # the evidence layer names (and its chain cache keeps) the root that issued the IDevID
    anchors = [*rekeyed, *vendor_ca.trust_anchors]
    cache = RotChainCache()
    for _ in range(2):
        evidence = verify_rot_quote(quote, nonce=NONCE, trust_anchors=anchors, now=NOW, cache=cache)
        assert evidence.identity["root"] == hashlib.sha256(vendor_ca.ecc_certificate).hexdigest()
    assert len(cache) == 1
    with pytest.raises(BadSignature):  # only the other key under that name: still refused
        _verify(quote, vendor_ca, anchors=rekeyed)


def test_a_rekeyed_root_with_its_own_key_identifier_does_not_hide_the_right_one(
    booted: Device, vendor_ca: VendorCA
) -> None:
    """A re-keyed vendor root names its new key in its subject key identifier, which the
    IDevID's authority key identifier does not name: that root is passed over (RFC 5280
    4.2.1.1, the key identifiers are for choosing the issuer) and the right one, listed after
    it, is reached."""
    rekeyed = [_same_name_root(der, key_id=True) for der in vendor_ca.trust_anchors]
    quote = booted.quote(NONCE)
    assert isinstance(
        _verify(quote, vendor_ca, anchors=[*rekeyed, *vendor_ca.trust_anchors]), QuoteClaims
    )
    with pytest.raises(ChainNotTrusted, match="does not reach an IDevID issued by a trusted"):
        _verify(quote, vendor_ca, anchors=rekeyed)


def _same_name_root(der: bytes, *, key_id: bool = False) -> bytes:
    """A self-signed root with the subject and extensions of ``der`` but a new key (and, with
    ``key_id``, the key identifiers of that key)."""
    old = x509.load_der_x509_certificate(der)
    alg = parse_certificate(der).public_key.algorithm  # type: ignore[union-attr]
    key = PrivateKey.generate(alg)
    builder = (
        x509.CertificateBuilder()
        .subject_name(old.subject)
        .issuer_name(old.subject)
        .public_key(key.public_key.raw)
        .serial_number(x509.random_serial_number())
        .not_valid_before(old.not_valid_before_utc)
        .not_valid_after(old.not_valid_after_utc)
    )
    skip = (x509.SubjectKeyIdentifier, x509.AuthorityKeyIdentifier)
    for ext in old.extensions:
        if not isinstance(ext.value, skip):
            builder = builder.add_extension(ext.value, critical=ext.critical)
    if key_id:
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key.raw)
        builder = builder.add_extension(ski, critical=False)
    digest = hashes.SHA384() if alg is Algorithm.ES384 else None
    return builder.sign(key.raw, digest).public_bytes(Encoding.DER)


def _manufacturing_device(path: Path, product: Product, ca: VendorCA) -> Device:
    """A device left in manufacturing (debug unlocked) with its IDevID certificates, as a
    factory line tests it before it moves to production."""
    from ironroot.rot._layers import IDEVID, build_csr, derive_idevid, device_ueid

    device = Device.create(path)
    seed = bytes(range(1, 65))
    device.program(
        lambda f: (
            f.program_uds(seed)
            .program_field_entropy(bytes(range(2, 34)))
            .advance_lifecycle(Lifecycle.MANUFACTURING)
            .program_vendor_key_hash(product.descriptor_hash)
        )
    )
    idevid = derive_idevid(seed)
    ueid = device_ueid(idevid.ecc.public_key)
    for alg, name in ((Algorithm.ES384, "ecc"), (Algorithm.ML_DSA_87, "mldsa")):
        csr = build_csr(idevid.key(alg), profile=IDEVID, ueid=ueid)
        (path / f"idevid-{name}.cert.der").write_bytes(
            ca.issue_idevid(csr, now=NOW - dt.timedelta(days=1))
        )
    return device


@pytest.mark.parametrize(
    ("write", "lifecycle", "debug_locked"),
    [
        (lambda f: f.lock_debug(), Lifecycle.MANUFACTURING, True),
        (lambda f: f.advance_lifecycle(Lifecycle.PRODUCTION), Lifecycle.PRODUCTION, True),
    ],
    ids=["lock-debug", "production"],
)
def test_a_quote_after_a_lifecycle_or_debug_fuse_write_claims_what_the_boot_measured(
    tmp_path: Path,
    product: Product,
    vendor_ca: VendorCA,
    write: object,
    lifecycle: Lifecycle,
    debug_locked: bool,
) -> None:
    """Lifecycle and debug are latched at boot (the ROM measured them into ``device-status``
    and certified them in the FMC alias ``DEVICE_INFO`` flags), and changing them does not
    change the alias keys, so the device goes on quoting. The quote's ``lifecycle`` and
    ``debug-locked`` claims were read from the fuses *now*: after ``lock-debug`` (or the move
    to production) on a booted device every quote contradicted its own log and certificates,
    and every verifier refused it (``VerificationFailed``). The claims are now what the boot
    measured; the next boot measures the new fuses."""
    device = _manufacturing_device(tmp_path / "dev", product, vendor_ca)
    device.boot(product.bundle(), now=NOW)
    claims = _verify(device.quote(NONCE), vendor_ca)
    assert isinstance(claims, QuoteClaims)
    assert (claims.lifecycle, claims.debug_locked) == (Lifecycle.MANUFACTURING, False)
    device.program(write)  # type: ignore[arg-type]
    claims = _verify(device.quote(NONCE), vendor_ca)
    assert isinstance(claims, QuoteClaims)
    assert (claims.lifecycle, claims.debug_locked) == (Lifecycle.MANUFACTURING, False)
    device.boot(product.bundle(), now=NOW)
    claims = _verify(device.quote(NONCE), vendor_ca)
    assert isinstance(claims, QuoteClaims)
    assert (claims.lifecycle, claims.debug_locked) == (lifecycle, debug_locked)


def test_halves_from_two_boots_of_one_device_are_refused(
    booted: Device, product: Product, vendor_ca: VendorCA
) -> None:
    """Each half of a quote must come from the boot the claims describe. Two boots of one
    device with the same FMC, runtime, SVN and fuses but another vendor key index measure
    another ``device-status`` into PCR0, so their FMC alias ``DEVICE_INFO`` FWIDs (and keys)
    differ, while the Ueid, FWIDs, SVN and flags the verifier compared are the same. A quote
    whose ML-DSA half was signed by the previous boot's RT alias key, over the claims of this
    boot, was accepted: the ML-DSA chain certified a PCR0 that is not the one signed."""
    first = _parts(booted.quote(NONCE))
    state = booted.boot_state
    assert state is not None
    old_rt = derive_layers(booted.fuses, state.pcrs).rt_alias
    booted.boot(product.bundle(ecc_index=1), now=NOW)
    second = _parts(booted.quote(NONCE))
    payload = second["es384"].payload
    assert payload is not None
    old = first["ml-dsa-87"]
    mixed = sign1(
        old_rt.key(Algorithm.ML_DSA_87),
        payload,
        {k: v for k, v in old.protected.items() if k != 1},
        dict(old.unprotected),
    )
    quote = _join({"es384": second["es384"], "ml-dsa-87": mixed})
    with pytest.raises(VerificationFailed, match="different measurements"):
        _verify(quote, vendor_ca)
    cache = RotChainCache()  # warmed by this boot's own quote: the mix is still refused
    verify_rot_quote(
        _join(second), nonce=NONCE, trust_anchors=vendor_ca.trust_anchors, now=NOW, cache=cache
    )
    with pytest.raises(VerificationFailed, match="different measurements"):
        verify_rot_quote(
            quote,
            nonce=NONCE,
            trust_anchors=vendor_ca.trust_anchors,
            now=NOW,
            cache=cache,
        )


def _reissue_fmc_alias(booted: Device, edit: Callable[[tuple[TcbInfo, ...]], object]) -> bytes:
    """A quote of ``booted`` whose FMC alias certificates (both chains) carry the TcbInfos
    ``edit`` returns, re-issued with the LDevID keys (as another ROM could issue them)."""
    state = booted.boot_state
    assert state is not None
    layers = derive_layers(booted.fuses, state.pcrs)
    parts = _parts(booted.quote(NONCE))
    for name, alg in (("es384", Algorithm.ES384), ("ml-dsa-87", Algorithm.ML_DSA_87)):
        rt, fmc, ldevid, idevid = parts[name].unprotected[X5CHAIN]
        genuine = x509.load_der_x509_certificate(fmc)
        tcbs = edit(parse_certificate(fmc).dice.tcb_infos)
        assert isinstance(tcbs, tuple)
        builder = (
            x509.CertificateBuilder()
            .subject_name(genuine.subject)
            .issuer_name(genuine.issuer)
            .public_key(genuine.public_key())
            .serial_number(genuine.serial_number)
            .not_valid_before(genuine.not_valid_before_utc)
            .not_valid_after(genuine.not_valid_after_utc)
        )
        for ext in genuine.extensions:
            value = (
                build_multi_tcb_info_extension(tcbs) if ext.oid == MULTI_TCB_INFO_OID else ext.value
            )
            builder = builder.add_extension(value, critical=ext.critical)
        key = layers.ldevid.key(alg)
        reissued = builder.sign(key.raw, signature_hash(key)).public_bytes(Encoding.DER)
        parts = _parts(_rechain(parts, name, [rt, reissued, ldevid, idevid]))
    return _join(parts)


def test_a_device_info_whose_flags_mask_leaves_debug_unspecified_is_refused(
    booted: Device, vendor_ca: VendorCA
) -> None:
    """A DiceTcbInfo ``flagsMask`` names the flags the attester asserts; a flag outside it is
    unspecified. An FMC alias certificate whose DEVICE_INFO mask leaves out ``debug`` says
    nothing of the debug port, yet its clear ``debug`` bit was read as "locked" and the
    quote's ``debug-locked: true`` accepted."""

    def unmask_debug(tcbs: tuple[TcbInfo, ...]) -> tuple[TcbInfo, ...]:
        device_info, fmc_info = tcbs
        assert device_info.flags is not None
        assert device_info.flags_mask is not None
        assert OperationalFlag.debug not in device_info.flags  # a production device
        mask = OperationalFlags(
            device_info.flags_mask.bits - {int(OperationalFlag.debug)},
            device_info.flags_mask.width,
        )
        return dataclasses.replace(device_info, flags_mask=mask), fmc_info

    _verify(_reissue_fmc_alias(booted, lambda tcbs: tcbs), vendor_ca)  # the harness is sound
    with pytest.raises(VerificationFailed, match="flagsMask"):
        _verify(_reissue_fmc_alias(booted, unmask_debug), vendor_ca)


def test_an_fmc_alias_with_a_second_device_info_is_refused(
    booted: Device, vendor_ca: VendorCA
) -> None:
    """The FMC alias MultiTcbInfo is DEVICE_INFO then FMC_INFO, and the RT alias one RT_INFO.
    A second DEVICE_INFO that says "debug" after the first that does not was read by position
    (the first one only) and the quote's ``debug-locked: true`` accepted; a reader taking
    the last, or any, saw an unlocked port."""

    def second_device_info(tcbs: tuple[TcbInfo, ...]) -> tuple[TcbInfo, ...]:
        device_info, fmc_info = tcbs
        assert device_info.flags is not None
        debug = OperationalFlags(
            device_info.flags.bits | {int(OperationalFlag.debug)}, device_info.flags.width
        )
        return device_info, fmc_info, dataclasses.replace(device_info, flags=debug)

    with pytest.raises(VerificationFailed, match="DEVICE_INFO then FMC_INFO"):
        _verify(_reissue_fmc_alias(booted, second_device_info), vendor_ca)
    swapped = _reissue_fmc_alias(booted, lambda tcbs: (tcbs[1], tcbs[0]))
    with pytest.raises(VerificationFailed, match="DEVICE_INFO then FMC_INFO"):
        _verify(swapped, vendor_ca)
