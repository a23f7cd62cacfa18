"""Attacks on RIM verification: signature wrapping, content outside what the digest covers,
alternate signature methods, and certificate chains that only look like NVIDIA's. Each must
end in the exact error (or, for unsigned additions, change nothing that is read)."""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
from typing import Any

import pytest
from _rim_helpers import (
    DRIVER_FILE,
    NOW,
    SHA384_NS,
    SWID,
    VBIOS_FILE,
    RimPki,
    issue_certificate,
    strip_signature,
    swid,
    vector_rim,
)
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.signer import XMLSigner

from hypothesis_budget import examples
from ironroot.errors import (
    AlgorithmNotAccepted,
    BadSignature,
    CertificateExpired,
    ChainNotTrusted,
    IronrootError,
    MalformedRim,
)
from ironroot.rim import verify_rim

_ECDSA_SHA384 = b"http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384"
_FORGED = (
    f'<Payload xmlns="{SWID}" xmlns:h="{SHA384_NS}">'
    '<Resource type="Measurement" index="0" active="False" alternatives="1" size="48" '
    f'h:Hash0="{"aa" * 48}" name="forged"/></Payload>'
).encode()


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


def test_a_payload_wrapped_in_a_signature_object_is_never_read() -> None:
    """Signature wrapping: a second Payload inside ds:Object (outside the signed tag, removed
    by the enveloped-signature transform) verifies but is not what the RIM says."""
    data = vector_rim(VBIOS_FILE)
    wrapped = data.replace(
        b"</ds:Signature>", b"<ds:Object>" + _FORGED + b"</ds:Object></ds:Signature>"
    )
    assert wrapped != data
    rim = verify_rim(wrapped, now=NOW)
    assert rim.measurements == verify_rim(data, now=NOW).measurements
    assert all(m.name != "forged" for m in rim.measurements)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"</ns0:Payload>", b"</ns0:Payload>" + _FORGED),
        (b"</ns0:Payload>", b"<?measure skip?></ns0:Payload>"),
        (b'active="True"', b'active="True" xmlns:x="urn:x" x:note="unsigned"'),
    ],
    ids=["second-payload", "processing-instruction", "namespaced-attribute"],
)
def test_additions_inside_the_signed_tag_fail_the_digest(old: bytes, new: bytes) -> None:
    data = vector_rim(VBIOS_FILE)
    changed = data.replace(old, new, 1)
    assert changed != data
    with pytest.raises(BadSignature) as caught:
        verify_rim(changed, now=NOW)
    assert caught.value.code == "bad-signature"


@pytest.mark.parametrize(
    "method",
    [
        b"http://www.w3.org/2000/09/xmldsig#rsa-sha1",
        b"http://www.w3.org/2000/09/xmldsig#hmac-sha1",
        b"http://www.w3.org/2001/04/xmldsig-more#hmac-sha384",
        b"http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1",
    ],
    ids=["rsa-sha1", "hmac-sha1", "hmac-sha384", "ecdsa-sha1"],
)
def test_an_alternate_signature_method_is_not_accepted(method: bytes) -> None:
    data = vector_rim(VBIOS_FILE)
    assert data.count(_ECDSA_SHA384) == 1
    with pytest.raises(AlgorithmNotAccepted):
        verify_rim(data.replace(_ECDSA_SHA384, method), now=NOW)


def test_keyinfo_in_reverse_order_is_refused(pki: RimPki) -> None:
    """The first certificate is the signer: a chain listed root first makes the root the
    signer, and a CA may not sign a RIM."""
    data = pki.sign(swid(), certs=[pki.root, pki.ca, pki.leaf])
    with pytest.raises(ChainNotTrusted):
        verify_rim(data, now=NOW, roots=[pki.root])


def test_an_expired_intermediate_is_refused() -> None:
    root_key, ca_key, leaf_key = _key(), _key(), _key()
    root = issue_certificate("R", root_key, "R", root_key, ca=True)
    ca = issue_certificate(
        "Expired CA",
        ca_key,
        "R",
        root_key,
        ca=True,
        path_length=0,
        not_after=NOW - dt.timedelta(days=1),
    )
    leaf = issue_certificate("L", leaf_key, "Expired CA", ca_key, ca=False)
    data = RimPki(root=root, ca=ca, leaf=leaf, leaf_key=leaf_key).sign(swid())
    with pytest.raises(CertificateExpired) as caught:
        verify_rim(data, now=NOW, roots=[root])
    assert "Expired CA" in caught.value.detail


def test_a_non_ca_intermediate_is_refused() -> None:
    root_key, ca_key, leaf_key = _key(), _key(), _key()
    root = issue_certificate("R", root_key, "R", root_key, ca=True)
    middle = issue_certificate("Not A CA", ca_key, "R", root_key, ca=False)
    leaf = issue_certificate("L", leaf_key, "Not A CA", ca_key, ca=False)
    data = RimPki(root=root, ca=middle, leaf=leaf, leaf_key=leaf_key).sign(swid())
    with pytest.raises(ChainNotTrusted) as caught:
        verify_rim(data, now=NOW, roots=[root])
    assert "is not a CA" in caught.value.detail


def test_an_intermediate_past_its_path_length_is_refused() -> None:
    root_key, ca_key, sub_key, leaf_key = _key(), _key(), _key(), _key()
    root = issue_certificate("R", root_key, "R", root_key, ca=True)
    ca = issue_certificate("C", ca_key, "R", root_key, ca=True, path_length=0)
    sub = issue_certificate("S", sub_key, "C", ca_key, ca=True)
    leaf = issue_certificate("L", leaf_key, "S", sub_key, ca=False)
    pki = RimPki(root=root, ca=ca, leaf=leaf, leaf_key=leaf_key)
    with pytest.raises(ChainNotTrusted) as caught:
        verify_rim(pki.sign(swid(), certs=[leaf, sub, ca, root]), now=NOW, roots=[root])
    assert "path too long" in caught.value.detail


def test_a_foreign_leaf_in_front_of_the_signer_is_refused(pki: RimPki) -> None:
    """Only the first certificate signs: a trusted signer listed second does not vouch for a
    first one from a chain that does not reach the root."""
    other = RimPki.generate()
    data = pki.sign(swid(), certs=[other.leaf, pki.leaf, pki.ca])
    with pytest.raises(ChainNotTrusted):
        verify_rim(data, now=NOW, roots=[pki.root])


@pytest.mark.parametrize(
    "hashes",
    [
        f'h:Hash0="{"11" * 48}" h:Hash1="{"22" * 48}" h:Hash01="{"33" * 48}"',
        f'h:Hash00="{"33" * 48}" h:Hash0="{"11" * 48}" h:Hash1="{"22" * 48}"',
    ],
    ids=["hash1-and-hash01", "hash00-and-hash0"],
)
def test_two_attributes_for_one_alternative_are_refused(pki: RimPki, hashes: str) -> None:
    """Which value would be allowed must not depend on attribute order: an alternative
    number written twice (``Hash1`` and ``Hash01``) is refused."""
    resources = (
        f'<Resource xmlns:h="{SHA384_NS}" '
        'type="Measurement" index="0" active="True" alternatives="2" size="48" name="m" '
        f"{hashes}/>"
    )
    data = pki.sign(swid(resources=resources))
    with pytest.raises(MalformedRim) as caught:
        verify_rim(data, now=NOW, roots=[pki.root])
    assert caught.value.code == "malformed-rim"


@pytest.mark.parametrize(
    "c14n",
    [
        CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
        CanonicalizationMethod.CANONICAL_XML_1_0,
        CanonicalizationMethod.CANONICAL_XML_1_1_WITH_COMMENTS,
    ],
    ids=["exc-c14n", "c14n-1.0", "c14n-1.1-with-comments"],
)
def test_a_canonicalization_other_than_nvidias_is_not_accepted(pki: RimPki, c14n: Any) -> None:
    """A signer under a trusted root still signs the way NVIDIA does: enveloped-signature then
    Canonical XML 1.1 (without comments), and SignedInfo in Canonical XML 1.1."""
    signer = XMLSigner(
        signature_algorithm=SignatureMethod.ECDSA_SHA384,
        digest_algorithm=DigestAlgorithm.SHA384,
        c14n_algorithm=c14n,
    )
    signed = signer.sign(etree.fromstring(swid()), key=pki.leaf_key, cert=[pki.leaf, pki.ca])
    with pytest.raises(AlgorithmNotAccepted):
        verify_rim(etree.tostring(signed), now=NOW, roots=[pki.root])


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b'<ds:Transform Algorithm="http://www.w3.org/2006/12/xml-c14n11"/>', b""),
        (
            b'<ds:Transform Algorithm="http://www.w3.org/2006/12/xml-c14n11"/>',
            b'<ds:Transform Algorithm="http://www.w3.org/2006/12/xml-c14n11"/>'
            b'<ds:Transform Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116">'
            b"<ds:XPath>not(ancestor-or-self::*[local-name()='Payload'])</ds:XPath>"
            b"</ds:Transform>",
        ),
        (b"xmldsig#enveloped-signature", b"xmldsig#base64"),
    ],
    ids=["no-c14n-transform", "xpath-transform", "base64-transform"],
)
def test_transforms_other_than_nvidias_are_not_accepted(old: bytes, new: bytes) -> None:
    data = vector_rim(VBIOS_FILE)
    assert data.count(old) == 1
    with pytest.raises(AlgorithmNotAccepted):
        verify_rim(data.replace(old, new), now=NOW)


_RIM_VALUES = st.sampled_from(
    ["", " ", "-1", "0", "00", "1.5", "１", "٣", "True", "true", "x" * 300, "\u202e", "0x10"]
) | st.text(max_size=8)


@settings(
    max_examples=examples(100),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_a_signed_rim_of_any_shape_verifies_or_is_refused_typed(
    pki: RimPki, data: st.DataObject
) -> None:
    """The signature covers what is read, so only a RIM its signer wrote this way reaches the
    model: any attribute of a real RIM's tag (NVIDIA's, its signature removed) set to another
    text, removed, or any element removed or doubled, and signed again under the test chain,
    verifies or is refused with a typed error; never ``KeyError``, ``ValueError``…"""
    base = strip_signature(vector_rim(data.draw(st.sampled_from([VBIOS_FILE, DRIVER_FILE]))))
    root = etree.fromstring(base)
    elements = list(root.iter())
    number = data.draw(st.integers(0, len(elements) - 1), label="element")
    element = elements[number]
    action = data.draw(
        st.sampled_from(["set", "set", "delete", "remove", "double"]), label="action"
    )
    names = sorted(element.attrib)
    if action in ("set", "delete") and names:
        name = data.draw(st.sampled_from(names), label="attribute")
        if action == "set":
            value = data.draw(_RIM_VALUES, label="value")
            try:
                element.set(name, value)
            except ValueError:  # text XML cannot hold (a control character): nothing to sign
                return
        else:
            del element.attrib[name]
    elif action in ("remove", "double") and element is not root:
        parent = element.getparent()
        if action == "remove":
            parent.remove(element)
        else:
            element.addnext(copy.deepcopy(element))
    signed = pki.sign(etree.tostring(root))
    with contextlib.suppress(IronrootError):
        verify_rim(signed, now=NOW, roots=[pki.root])
