"""A PCK certificate's SGX extension names each identity field once, at its size: a second
FMSPC or PCE-ID would pick the TCB Info of another platform (the last one used to win)."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from pyasn1.codec.der import decoder as der_decoder
from pyasn1.codec.der import encoder as der_encoder
from pyasn1.type import univ

from ironroot.attestation.evidence import load_tdx_collateral, verify_tdx_quote
from ironroot.attestation.evidence._tdx_verify import parse_pck_extensions
from ironroot.errors import MalformedCertificate
from tee_fakes import FMSPC, PCE_ID, SGX, TDX_NOW, FakeIntel, sgx_extension

OTHER_FMSPC = b"\x99" * 6


@pytest.fixture(scope="module")
def intel() -> FakeIntel:
    return FakeIntel()


def _pair(oid: str, value: Any) -> univ.Sequence:
    seq = univ.Sequence()
    seq.setComponentByPosition(0, univ.ObjectIdentifier(oid))
    seq.setComponentByPosition(1, value)
    return seq


def _edited(
    *, add: tuple[str, Any] | None = None, drop: str | None = None, size: tuple[str, bytes] = ()
) -> bytes:
    """The SGX extension of a good PCK with one top-level entry added, dropped or resized."""
    top, _ = der_decoder.decode(
        sgx_extension(fmspc=FMSPC, pce_id=PCE_ID, components=[2] * 16, pcesvn=11)
    )
    out = univ.Sequence()
    items = [item for item in top if str(item[0]) != drop]
    if size:
        items = [
            _pair(size[0], univ.OctetString(size[1])) if str(i[0]) == size[0] else i for i in items
        ]
    if add is not None:
        items.append(_pair(*add))
    for index, item in enumerate(items):
        out.setComponentByPosition(index, item)
    return bytes(der_encoder.encode(out))


def _refused(intel: FakeIntel, extension: bytes, match: str) -> None:
    pck = intel.pck(extension=extension)
    with pytest.raises(MalformedCertificate, match=match) as caught:
        parse_pck_extensions(pck[0])
    assert type(caught.value) is MalformedCertificate
    collateral = load_tdx_collateral(
        tcb_info=[intel.tcb_info(), intel.tcb_info(fmspc=OTHER_FMSPC)],
        qe_identity=intel.qe_identity(),
        signing_chain=intel.signing_chain(),
        crls=[intel.crl(ca).public_bytes(Encoding.DER) for ca in ("pck", "root")],
    )
    with pytest.raises(MalformedCertificate, match=match):
        verify_tdx_quote(intel.quote(pck), now=TDX_NOW, root=intel.root, collateral=collateral)
    with pytest.raises(MalformedCertificate, match=match):
        verify_tdx_quote(intel.quote(pck), now=TDX_NOW, root=intel.root)


@pytest.mark.parametrize("oid", [f"{SGX}.4", f"{SGX}.3"], ids=["fmspc", "pce-id"])
def test_a_second_fmspc_or_pce_id_is_refused(intel: FakeIntel, oid: str) -> None:
    value = OTHER_FMSPC if oid.endswith(".4") else b"\x01\x00"
    _refused(intel, _edited(add=(oid, univ.OctetString(value))), f"names {oid} twice")


def test_a_second_tcb_entry_is_refused(intel: FakeIntel) -> None:
    _refused(intel, _edited(add=(f"{SGX}.2", univ.Integer(1))), f"names {SGX}.2 twice")


@pytest.mark.parametrize("oid", [f"{SGX}.4", f"{SGX}.3", f"{SGX}.1"])
def test_a_missing_identity_field_is_refused(intel: FakeIntel, oid: str) -> None:
    _refused(intel, _edited(drop=oid), "does not decode")


@pytest.mark.parametrize(
    ("oid", "value", "name"),
    [
        (f"{SGX}.4", b"\x50\x80\x6f", "fmspc"),
        (f"{SGX}.4", FMSPC + b"\x00", "fmspc"),
        (f"{SGX}.3", b"\x00", "pceid"),
        (f"{SGX}.1", bytes(15), "ppid"),
    ],
)
def test_a_wrongly_sized_identity_field_is_refused(
    intel: FakeIntel, oid: str, value: bytes, name: str
) -> None:
    _refused(intel, _edited(size=(oid, value)), f"{name} is {len(value)} bytes")


def test_the_good_extension_still_decodes(intel: FakeIntel) -> None:
    ext = parse_pck_extensions(intel.pck()[0])
    assert (ext.fmspc, ext.pceid, len(ext.ppid), len(ext.cpusvn)) == (FMSPC, PCE_ID, 16, 16)


@pytest.mark.parametrize("der", ["30023000", "300430023000", "3000"])
def test_empty_sequences_are_malformed_not_an_attribute_error(intel: FakeIntel, der: str) -> None:
    # pyasn1 itself raises AttributeError on 30 02 30 00
    with pytest.raises(MalformedCertificate, match="does not decode"):
        parse_pck_extensions(intel.pck(extension=bytes.fromhex(der))[0])
