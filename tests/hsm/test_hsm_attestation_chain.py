"""``verify_attestation_chain``: an HSM's attestation chain on its own (what an audit bundle
carries to tie the HSM to its node), verified as a key attestation's x5chain is."""

from __future__ import annotations

import pytest
from tests.hsm._hsm_helpers import NOW, make_device, new_hsm

from ironroot.errors import ChainNotTrusted, MalformedInput
from ironroot.hsm import verify_attestation_chain


def test_the_chain_of_an_hsm_verifies_and_names_it() -> None:
    device = make_device()
    hsm = new_hsm(device.identity)
    verified = verify_attestation_chain(hsm.attestation_chain, roots=[device.root], now=NOW)
    assert verified.hsm_id == hsm.hsm_id
    assert verified.attestation_key == hsm.attestation_public_key
    assert verified.device_key == device.identity.signer.public_key
    assert verified.certificates == tuple(hsm.attestation_chain)


def test_a_chain_of_another_vendor_is_refused() -> None:
    hsm = new_hsm(make_device().identity)
    with pytest.raises(ChainNotTrusted) as info:
        verify_attestation_chain(hsm.attestation_chain, roots=[make_device().root], now=NOW)
    assert type(info.value) is ChainNotTrusted


def test_an_attestation_certificate_another_device_issued_is_refused() -> None:
    device = make_device()
    hsm, other = new_hsm(device.identity), new_hsm(make_device().identity)
    chain = (other.attestation_chain[0], *hsm.attestation_chain[1:])
    with pytest.raises(ChainNotTrusted) as info:
        verify_attestation_chain(chain, roots=[device.root], now=NOW)
    assert info.value.detail == "the attestation certificate is not issued by the device"


def test_a_chain_without_its_device_chain_is_malformed() -> None:
    hsm = new_hsm(make_device().identity)
    with pytest.raises(MalformedInput) as info:
        verify_attestation_chain(hsm.attestation_chain[:1], roots=[], now=NOW)
    assert type(info.value) is MalformedInput
