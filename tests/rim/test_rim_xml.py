"""Hostile XML: DTDs, entities (external and expanding), oversized documents, signature
placement tricks and malformed fields are refused with ``MalformedRim`` (or
``LimitExceeded``), never resolved, fetched or expanded; random damage never escapes as
anything but an Ironroot error."""

from __future__ import annotations

import random

import pytest
from _rim_helpers import NOW, VBIOS_FILE, RimPki, swid, vector_rim
from lxml import etree

from ironroot.errors import IronrootError, LimitExceeded, MalformedRim
from ironroot.rim import RimLimits, verify_rim

_TAG = (
    '<SoftwareIdentity xmlns="http://standards.iso.org/iso/19770/-2/2015/schema.xsd" '
    'name="x" tagId="t">{body}</SoftwareIdentity>'
)

XXE = (
    '<?xml version="1.0"?>\n<!DOCTYPE SoftwareIdentity [\n'
    '  <!ENTITY xxe SYSTEM "file:///etc/passwd">\n]>\n' + _TAG.format(body="&xxe;")
).encode()

LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE SoftwareIdentity [\n  <!ENTITY a "lol">\n'
    + "".join(f'  <!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">\n' for i in range(9))
    + "]>\n"
    + _TAG.format(body="&j;")
).encode()

EXTERNAL_DTD = (
    '<?xml version="1.0"?>\n<!DOCTYPE SoftwareIdentity SYSTEM "http://127.0.0.1:9/evil.dtd">\n'
    + _TAG.format(body="")
).encode()

PARAMETER_ENTITY = (
    '<?xml version="1.0"?>\n<!DOCTYPE SoftwareIdentity [\n'
    '  <!ENTITY % remote SYSTEM "http://127.0.0.1:9/x.dtd"> %remote;\n]>\n' + _TAG.format(body="")
).encode()


@pytest.mark.parametrize(
    "data",
    [XXE, LAUGHS, EXTERNAL_DTD, PARAMETER_ENTITY],
    ids=["external-entity", "billion-laughs", "external-dtd", "parameter-entity"],
)
def test_dtds_and_entities_are_refused(data: bytes) -> None:
    with pytest.raises(MalformedRim) as caught:
        verify_rim(data, now=NOW)
    assert caught.value.code == "malformed-rim"


@pytest.mark.parametrize("data", [XXE, LAUGHS], ids=["external-entity", "billion-laughs"])
def test_a_dtd_in_utf16_is_refused_after_parsing(data: bytes) -> None:
    """The byte scan for ``<!DOCTYPE`` does not see UTF-16; the parsed document's own DTD
    check does."""
    encoded = data.decode().replace(
        '<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>'
    )
    utf16 = encoded.encode("utf-16")
    assert b"<!DOCTYPE" not in utf16
    with pytest.raises(MalformedRim) as caught:
        verify_rim(utf16, now=NOW)
    assert "DTD" in caught.value.detail or "entit" in caught.value.detail


def test_a_huge_document_is_refused_before_parsing() -> None:
    data = vector_rim(VBIOS_FILE)
    padded = data.replace(b"</SoftwareIdentity>", b" " * 300_000 + b"</SoftwareIdentity>")
    with pytest.raises(LimitExceeded) as caught:
        verify_rim(padded, now=NOW)
    assert caught.value.code == "limit-exceeded"
    with pytest.raises(LimitExceeded):
        verify_rim(data, now=NOW, limits=RimLimits(max_bytes=len(data) - 1))


_MANY_NAMESPACES = "".join(f' xmlns:n{k}="urn:n{k}"' for k in range(8000))
_MANY_ATTRIBUTES = "".join(f' a{k}="v"' for k in range(16000))


@pytest.mark.parametrize(
    ("where", "extra", "detail"),
    [
        ("root", _MANY_NAMESPACES, "namespaces in scope"),
        ("payload", _MANY_NAMESPACES, "namespaces in scope"),
        ("root", _MANY_ATTRIBUTES, "attributes"),
        ("resource", _MANY_ATTRIBUTES, "attributes"),
    ],
    ids=["namespaces-on-the-tag", "namespaces-on-the-payload", "attributes", "resource-attrs"],
)
def test_an_element_with_thousands_of_namespaces_or_attributes_is_refused(
    where: str, extra: str, detail: str
) -> None:
    """Canonical XML (libxml2's, through signxml) sorts an element's namespaces and
    attributes by insertion, in the square of their number: 8,000 namespace declarations
    (200 KB, under the size limit) beside NVIDIA's real signing chain took 22 s of CPU in
    ``verify_rim`` before the digest failed, 16,000 attributes 3 s. NVIDIA's RIMs have at
    most 4 namespaces in scope and 12 attributes on an element: refused when parsed."""
    data = swid().decode()
    anchor = {"root": "<SoftwareIdentity ", "payload": "<Payload", "resource": "<Resource "}[where]
    at = data.index(anchor) + len(anchor.rstrip())
    data = data[:at] + extra + data[at:]
    with pytest.raises(LimitExceeded) as caught:
        verify_rim(data.encode(), now=NOW)
    assert type(caught.value) is LimitExceeded
    assert caught.value.code == "limit-exceeded"
    assert detail in caught.value.detail


def test_namespaces_and_attributes_within_the_limits_are_read() -> None:
    """NVIDIA's RIMs (4 namespaces in scope, 12 attributes at most) verify, and the limits
    are the caller's to lower."""
    data = vector_rim(VBIOS_FILE)
    assert verify_rim(data, now=NOW).measurements
    with pytest.raises(LimitExceeded, match="namespaces in scope"):
        verify_rim(data, now=NOW, limits=RimLimits(max_namespaces=3))
    with pytest.raises(LimitExceeded, match="attributes"):
        verify_rim(data, now=NOW, limits=RimLimits(max_attributes=11))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not xml",
        b"<SoftwareIdentity",
        b"\xff\xfe\x00",
        b"<a/>",
        _TAG.format(body="").encode(),
    ],
    ids=["empty", "text", "truncated", "binary", "not-swid", "unsigned"],
)
def test_what_is_not_a_signed_swid_tag_is_refused(data: bytes) -> None:
    with pytest.raises(MalformedRim):
        verify_rim(data, now=NOW)


def test_a_second_signature_is_refused() -> None:
    data = vector_rim(VBIOS_FILE)
    start, end = data.index(b"<ds:Signature "), data.index(b"</ds:Signature>") + 15
    wrapped = data.replace(b"</ns0:Payload>", b"</ns0:Payload>" + data[start:end], 1)
    with pytest.raises(MalformedRim):
        verify_rim(wrapped, now=NOW)


def test_a_signature_that_is_not_enveloped_at_the_top_is_refused() -> None:
    data = vector_rim(VBIOS_FILE)
    start, end = data.index(b"<ds:Signature "), data.index(b"</ds:Signature>") + 15
    moved = data[:start] + data[end:]
    moved = moved.replace(b"</ns0:Payload>", data[start:end] + b"</ns0:Payload>", 1)
    with pytest.raises(MalformedRim):
        verify_rim(moved, now=NOW)


def test_a_reference_to_part_of_the_tag_is_refused(pki: RimPki) -> None:
    data = pki.sign(swid())
    changed = data.replace(b'URI=""', b'URI="#payload"', 1)
    assert changed != data
    with pytest.raises(MalformedRim):
        verify_rim(changed, now=NOW, roots=[pki.root])


_GOOD = 'ns2:Hash0="{}" name="m" size="48"'.format("11" * 48)


@pytest.mark.parametrize(
    "resources",
    [
        '<Resource type="Measurement" index="0" active="True" alternatives="2" ' + _GOOD + "/>",
        '<Resource type="Measurement" index="0" active="True" alternatives="1" '
        'ns2:Hash0="zz" name="m" size="48"/>',
        '<Resource type="Measurement" index="0" active="True" alternatives="1" '
        'ns2:Hash0="1111" name="m" size="2"/>',
        '<Resource type="Measurement" index="0" active="True" alternatives="1" ' + _GOOD + "/>"
        '<Resource type="Measurement" index="0" active="True" alternatives="1" ' + _GOOD + "/>",
        '<Resource type="Measurement" index="300" active="True" alternatives="1" ' + _GOOD + "/>",
        '<Resource type="Measurement" index="-1" active="True" alternatives="1" ' + _GOOD + "/>",
        '<Resource type="Measurement" index="0" active="yes" alternatives="1" ' + _GOOD + "/>",
        '<Resource type="Measurement" index="0" active="True" alternatives="99" ' + _GOOD + "/>",
        '<Resource type="File" index="0" active="True" alternatives="1" ' + _GOOD + "/>",
        '<Directory name="d"/>',
        "",
    ],
    ids=[
        "missing-alternative",
        "not-hex",
        "size-not-of-the-hash",
        "index-twice",
        "index-too-large",
        "index-negative",
        "active-not-boolean",
        "too-many-alternatives",
        "not-a-measurement",
        "not-a-resource",
        "empty-payload",
    ],
)
def test_malformed_measurements_are_refused(pki: RimPki, resources: str) -> None:
    data = pki.sign(swid(resources=resources))
    with pytest.raises(MalformedRim):
        verify_rim(data, now=NOW, roots=[pki.root])


_LONG = "9" * 4401  # past Python's 4,300-digit limit on int(text)
_HASH0 = 'ns2:Hash0="{}" name="m"'.format("11" * 48)


@pytest.mark.parametrize(
    "numbers",
    [
        f'index="{_LONG}" alternatives="1" size="48"',
        f'index="0" alternatives="{_LONG}" size="48"',
        f'index="0" alternatives="1" size="{_LONG}"',
    ],
    ids=["index", "alternatives", "size"],
)
def test_a_number_of_thousands_of_digits_is_malformed(pki: RimPki, numbers: str) -> None:
    """A signed ``index``, ``alternatives`` or ``size`` of 4,401 digits escaped as
    ``ValueError`` (int() of text past 4,300 digits; target rim, fuzz campaign): it is a
    number outside its range."""
    resources = f'<Resource type="Measurement" active="True" {numbers} {_HASH0}/>'
    with pytest.raises(MalformedRim) as caught:
        verify_rim(pki.sign(swid(resources=resources)), now=NOW, roots=[pki.root])
    assert type(caught.value) is MalformedRim
    assert caught.value.code == "malformed-rim"
    assert "is outside" in caught.value.detail


def test_a_hash_attribute_of_thousands_of_digits_is_malformed(pki: RimPki) -> None:
    """``ns2:Hash9999…`` (4,401 digits): ``ValueError`` from int() before the range check."""
    resources = (
        '<Resource type="Measurement" index="0" active="True" alternatives="1" ' + _GOOD + "/>"
    ).replace("/>", f' ns2:Hash{_LONG}="{"11" * 48}"/>')
    with pytest.raises(MalformedRim) as caught:
        verify_rim(pki.sign(swid(resources=resources)), now=NOW, roots=[pki.root])
    assert type(caught.value) is MalformedRim
    assert caught.value.code == "malformed-rim"
    assert "1 alternatives need exactly Hash0..Hash0" in caught.value.detail


def test_a_rim_without_a_version_is_refused(pki: RimPki) -> None:
    unsigned = swid().replace(b'colloquialVersion="96.00.5E.00.01" ', b"")
    with pytest.raises(MalformedRim):
        verify_rim(pki.sign(unsigned), now=NOW, roots=[pki.root])


def test_values_come_only_from_what_the_signature_covers() -> None:
    """Comments are not signed (C14N 1.1 without comments): one in the tag still verifies and
    changes nothing that is read."""
    data = vector_rim(VBIOS_FILE)
    commented = data.replace(b"<ns0:Payload", b"<!-- index 1 is fine --><ns0:Payload", 1)
    assert verify_rim(commented, now=NOW).measurements == verify_rim(data, now=NOW).measurements


def test_random_damage_is_refused_or_harmless() -> None:
    data = vector_rim(VBIOS_FILE)
    good = verify_rim(data, now=NOW)
    signed_end = data.index(b"<ds:KeyInfo>")
    rng = random.Random(1016)
    refused = 0
    for _ in range(120):
        offset = rng.randrange(signed_end)
        damaged = (
            data[:offset] + bytes([data[offset] ^ (1 << rng.randrange(8))]) + data[offset + 1 :]
        )
        try:
            rim = verify_rim(damaged, now=NOW)
        except IronrootError:
            refused += 1
            continue
        except etree.LxmlError as exc:  # pragma: no cover - would be a bug
            pytest.fail(f"lxml error escaped at offset {offset}: {exc!r}")
        assert rim.measurements == good.measurements
        assert rim.tag_id == good.tag_id
    assert refused >= 100


@pytest.mark.parametrize(
    "value",
    [
        " ".join(["11"] * 48),  # 48 bytes, with a space between each
        "11" * 24 + " " + "11" * 24,  # one space inside
        " " + "11" * 48,  # before the digits
        "11" * 48 + " ",  # after them
        "11" * 47 + "&#10;11",  # a line feed (an attribute's &#10; is kept as one)
    ],
    ids=["between-every-byte", "one-inside", "leading", "trailing", "line-feed"],
)
def test_hash_hex_with_whitespace_is_malformed(pki: RimPki, value: str) -> None:
    """``bytes.fromhex`` skips whitespace, so ``Hash0`` written with spaces decoded to the
    declared 48 bytes and was taken: a signed value is hex digits only, as NVIDIA writes
    them (every vector's are), or it is malformed."""
    resources = (
        '<Resource type="Measurement" index="0" active="True" alternatives="1" '
        f'ns2:Hash0="{value}" name="m" size="48"/>'
    )
    with pytest.raises(MalformedRim) as caught:
        verify_rim(pki.sign(swid(resources=resources)), now=NOW, roots=[pki.root])
    assert type(caught.value) is MalformedRim
    assert caught.value.code == "malformed-rim"
    assert "Hash0 is not 48 bytes of hex" in caught.value.detail
