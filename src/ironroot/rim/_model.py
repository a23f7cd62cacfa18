"""The SWID-tag RIM as values: hardened XML parsing and the fields NVIDIA's RIMs carry.

A RIM is an ISO/IEC 19770-2:2015 SWID tag (``SoftwareIdentity``) profiled by the TCG PC Client
Reference Integrity Manifest Information Model (``Meta`` attributes in the RIM IM namespace) and
signed with an enveloped XML-DSig signature. NVIDIA's payload is one ``Resource`` per SPDM
measurement block, ``type="Measurement"``::

    <Resource type="Measurement" index="1" active="True" alternatives="1" size="48"
              name="HashedMeasurement_1_FSP" sha384:Hash0="c3f6…"/>

``index`` is the RIM index (0-based: measurement block ``index + 1`` of the SPDM response),
``active`` whether the value is compared at all, ``alternatives`` how many allowed values
``Hash0``…``Hash<n-1>`` (hex digits only, in the namespace of their hash algorithm) follow,
``size`` their length in bytes. Each number is written once, without leading zeros
(``Hash01`` beside ``Hash1`` would leave the allowed value to attribute order):
``MalformedRim`` otherwise.

XML from outside is parsed by :func:`parse_xml` only: lxml with entity resolution, DTD loading
and network access off and its default (non-huge) tree limits, after a size check; a document
that declares a DTD (internal or external), holds an entity reference, or is not a
``SoftwareIdentity`` is refused (``MalformedRim``) before anything reads it, and one with an
element over :class:`RimLimits`' attributes or namespaces in scope (``LimitExceeded``)
before the signature check canonicalizes it. Values are read
only from the XML that the signature covers (:mod:`._verify` passes signxml's ``signed_xml``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from lxml import etree  # type: ignore[import-untyped]  # lxml ships no stubs

from ironroot._text import strict_hex
from ironroot.errors import LimitExceeded, MalformedRim

__all__ = [
    "DEFAULT_RIM_LIMITS",
    "SWID_NS",
    "TCG_RIM_NS",
    "GoldenMeasurement",
    "Rim",
    "RimLimits",
    "parse_xml",
    "rim_from_signed",
    "xml_parser",
]

SWID_NS: Final = "http://standards.iso.org/iso/19770/-2/2015/schema.xsd"
TCG_RIM_NS: Final = "https://trustedcomputinggroup.org/resource/tcg-reference-integrity-manifest-rim-information-model/"
DSIG_NS: Final = "http://www.w3.org/2000/09/xmldsig#"
# The namespace of a Hash<i> attribute names its algorithm (XML Encryption's digest URIs).
_HASH_NS: Final = {
    "http://www.w3.org/2001/04/xmlenc#sha256": ("sha256", 32),
    "http://www.w3.org/2001/04/xmlenc#sha384": ("sha384", 48),
    "http://www.w3.org/2001/04/xmlenc#sha512": ("sha512", 64),
}
_BOOL: Final = {"True": True, "true": True, "False": False, "false": False}
_MAX_INDEX: Final = 253  # SPDM measurement block indexes are 1..254


@dataclass(frozen=True, slots=True)
class RimLimits:
    """Hard limits on a RIM (NVIDIA's are about 20 KiB with 64 measurements, 4 alternatives
    at most and a chain of 4 certificates, 4 namespaces in scope and 12 attributes on an
    element at most). ``max_namespaces`` and ``max_attributes`` bound what Canonical XML
    sorts on one element, in the square of their number: 8,000 namespace declarations cost
    22 s of CPU in the signature check."""

    max_bytes: int = 256 * 1024
    max_measurements: int = 255
    max_alternatives: int = 16
    max_certificates: int = 8
    max_namespaces: int = 16
    max_attributes: int = 64


DEFAULT_RIM_LIMITS: Final = RimLimits()


@dataclass(frozen=True, slots=True)
class GoldenMeasurement:
    """One ``Resource`` of a RIM: the values allowed for one measurement block."""

    index: int
    """The RIM index, 0-based: SPDM measurement block ``index + 1``."""
    name: str
    active: bool
    size: int
    alternatives: tuple[bytes, ...]
    hash_alg: str

    @property
    def block(self) -> int:
        """The SPDM measurement block index this value is for (``index + 1``)."""
        return self.index + 1

    def allows(self, value: bytes) -> bool:
        """Whether ``value`` is one of the allowed alternatives (and of the stated size)."""
        return len(value) == self.size and value in self.alternatives


@dataclass(frozen=True, slots=True)
class Rim:
    """A RIM whose signature and certificate chain verified (made only by
    :func:`ironroot.rim.verify_rim`): the tag's identity and its golden measurements.

    ``colloquial_version`` is the driver version (``"550.90.07"``) or VBIOS version
    (``"96.00.5E.00.01"``) the RIM is for; ``product`` the chip (``"GH100"``);
    ``rim_info`` every TCG RIM IM attribute of ``Meta`` (``PlatformManufacturerStr``,
    ``PlatformModel``, ``FirmwareManufacturer``, ``BindingSpec``, …). NVIDIA's RIMs do not
    name the board's project, SKU or chip SKU: the RIM id does (:class:`ironroot.rim.RimId`).
    """

    tag_id: str
    name: str
    version: str
    tag_version: str
    colloquial_version: str
    product: str
    edition: str
    revision: str
    entities: tuple[tuple[str, str], ...]
    rim_info: tuple[tuple[str, str], ...]
    measurements: tuple[GoldenMeasurement, ...]
    signer: str
    chain: tuple[bytes, ...]
    not_before: dt.datetime
    not_after: dt.datetime
    digest: bytes
    """SHA-384 of the RIM's bytes as received."""

    def info(self, name: str) -> str | None:
        """A TCG RIM IM attribute of ``Meta`` by local name, e.g. ``"PlatformModel"``."""
        return next((value for key, value in self.rim_info if key == name), None)

    @property
    def manufacturer(self) -> str:
        """``PlatformManufacturerStr`` (``"NVIDIA Corporation"``), else the tag creator."""
        found = self.info("PlatformManufacturerStr")
        if found:
            return found
        return next((name for name, role in self.entities if "tagCreator" in role.split()), "")

    @property
    def model(self) -> str:
        """``PlatformModel`` (``"GH100"``), else ``product``."""
        return self.info("PlatformModel") or self.product

    @property
    def active(self) -> tuple[GoldenMeasurement, ...]:
        """The measurements the RIM asks to compare."""
        return tuple(m for m in self.measurements if m.active)

    def measurement(self, index: int) -> GoldenMeasurement | None:
        """The golden measurement at RIM ``index`` (0-based), if the RIM has one."""
        return next((m for m in self.measurements if m.index == index), None)


def parse_xml(data: bytes, limits: RimLimits = DEFAULT_RIM_LIMITS) -> etree._Element:
    """The root of ``data``, parsed by a hardened parser (module docs); ``MalformedRim`` or
    ``LimitExceeded`` for anything else."""
    if not isinstance(data, bytes | bytearray) or not data:
        raise MalformedRim("a RIM must be non-empty bytes")
    if len(data) > limits.max_bytes:
        raise LimitExceeded(f"the RIM is {len(data)} bytes, over the limit of {limits.max_bytes}")
    # A cheap first refusal in 8-bit encodings; the parsed document is checked again below,
    # whatever its encoding.
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise MalformedRim("a RIM must not declare a DTD or entities")
    try:
        root = etree.fromstring(bytes(data), parser=xml_parser())
    except etree.XMLSyntaxError as exc:
        raise MalformedRim(f"the RIM is not well-formed XML: {exc}") from exc
    docinfo = root.getroottree().docinfo
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None or docinfo.doctype:
        raise MalformedRim("a RIM must not declare a DTD or entities")
    if any(True for _ in root.iter(etree.Entity)):
        raise MalformedRim("a RIM must not hold entity references")
    for element in root.iter(etree.Element):  # document order: the first over a limit stops
        if len(element.attrib) > limits.max_attributes:
            raise LimitExceeded(
                f"a RIM element carries {len(element.attrib)} attributes, over the limit of "
                f"{limits.max_attributes}"
            )
        if len(element.nsmap) > limits.max_namespaces:
            raise LimitExceeded(
                f"a RIM element has {len(element.nsmap)} namespaces in scope, over the limit "
                f"of {limits.max_namespaces}"
            )
    if root.tag != f"{{{SWID_NS}}}SoftwareIdentity":
        raise MalformedRim(f"the document is not a SWID tag: its root is {root.tag!r}")
    return root


def xml_parser() -> etree.XMLParser:
    """A parser that never resolves entities, loads a DTD or touches the network (a new one
    per document: lxml parsers are not shared between threads)."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        collect_ids=False,
    )


def _attr(element: etree._Element, name: str, what: str) -> str:
    value = element.get(name)
    if not isinstance(value, str) or not value.strip():
        raise MalformedRim(f"{what} has no {name}")
    return value.strip()


def _int(element: etree._Element, name: str, what: str, low: int, high: int) -> int:
    text = _attr(element, name, what)
    if not text.isascii() or not text.isdigit():
        raise MalformedRim(f"{what}: {name} {text!r} is not a decimal number")
    digits = text.lstrip("0") or "0"
    # Compared as text first: int() refuses text past 4,300 digits with ValueError.
    if len(digits) > len(str(high)) or not low <= int(digits) <= high:
        shown = digits if len(digits) <= 20 else f"{digits[:20]}… ({len(digits)} digits)"
        raise MalformedRim(f"{what}: {name} {shown} is outside {low}..{high}")
    return int(digits)


def _one(parent: etree._Element, tag: str) -> etree._Element:
    found = parent.findall(f"{{{SWID_NS}}}{tag}")
    if len(found) != 1:
        raise MalformedRim(f"a RIM needs exactly one {tag} element, found {len(found)}")
    return found[0]


def _measurement(element: etree._Element, limits: RimLimits) -> GoldenMeasurement:
    if element.tag != f"{{{SWID_NS}}}Resource" or element.get("type") != "Measurement":
        raise MalformedRim(f"the payload holds {element.tag!r}, not a Measurement resource")
    index = _int(element, "index", "a Measurement", 0, _MAX_INDEX)
    what = f"measurement {index}"
    active_text = _attr(element, "active", what)
    if active_text not in _BOOL:
        raise MalformedRim(f"{what}: active {active_text!r} is not True or False")
    count = _int(element, "alternatives", what, 1, limits.max_alternatives)
    size = _int(element, "size", what, 1, 64)
    hashes: dict[int, tuple[str, str, str]] = {}
    for key, value in element.attrib.items():
        qname = etree.QName(key)
        if not qname.localname.startswith("Hash"):
            continue
        number = qname.localname[4:]
        if qname.namespace not in _HASH_NS or not number.isascii() or not number.isdigit():
            raise MalformedRim(f"{what}: unknown hash attribute {key!r}")
        if number != (number.lstrip("0") or "0"):
            raise MalformedRim(f"{what}: hash attribute {key!r} repeats or pads an alternative")
        if len(number) > len(str(count)):  # before int(): it refuses text past 4,300 digits
            raise MalformedRim(f"{what}: {count} alternatives need exactly Hash0..Hash{count - 1}")
        if int(number) in hashes:
            raise MalformedRim(f"{what}: hash attribute {key!r} repeats or pads an alternative")
        alg, length = _HASH_NS[qname.namespace]
        if length != size:
            raise MalformedRim(f"{what}: a {alg} value is {length} bytes, not size {size}")
        hashes[int(number)] = (alg, str(value), key)
    if sorted(hashes) != list(range(count)):
        raise MalformedRim(f"{what}: {count} alternatives need exactly Hash0..Hash{count - 1}")
    algs = {alg for alg, _, _ in hashes.values()}
    if len(algs) != 1:
        raise MalformedRim(f"{what}: the alternatives mix hash algorithms")
    values = []
    for i in range(count):
        value = strict_hex(hashes[i][1])  # hex digits only: fromhex skips whitespace
        if value is None or len(value) != size:
            raise MalformedRim(f"{what}: Hash{i} is not {size} bytes of hex")
        values.append(value)
    return GoldenMeasurement(
        index=index,
        name=element.get("name", "").strip(),
        active=_BOOL[active_text],
        size=size,
        alternatives=tuple(values),
        hash_alg=algs.pop(),
    )


def rim_from_signed(
    root: etree._Element,
    limits: RimLimits,
    *,
    signer: str,
    chain: tuple[bytes, ...],
    not_before: dt.datetime,
    not_after: dt.datetime,
    digest: bytes,
) -> Rim:
    """The :class:`Rim` of a ``SoftwareIdentity`` element whose signature verified (the
    signature's fields are the caller's)."""
    if root.tag != f"{{{SWID_NS}}}SoftwareIdentity":
        raise MalformedRim(f"the signed document is not a SWID tag: {root.tag!r}")
    meta = _one(root, "Meta")
    payload = _one(root, "Payload")
    children = [c for c in payload if isinstance(c.tag, str)]
    if not children:
        raise MalformedRim("the RIM's payload holds no measurement")
    if len(children) > limits.max_measurements:
        raise LimitExceeded(
            f"the RIM holds {len(children)} measurements, over {limits.max_measurements}"
        )
    measurements = [_measurement(child, limits) for child in children]
    indexes = [m.index for m in measurements]
    if len(set(indexes)) != len(indexes):
        raise MalformedRim("the RIM lists one measurement index twice")
    entities = tuple(
        (e.get("name", "").strip(), e.get("role", "").strip())
        for e in root.findall(f"{{{SWID_NS}}}Entity")
    )
    rim_info = tuple(
        (etree.QName(key).localname, str(value).strip())
        for key, value in meta.attrib.items()
        if etree.QName(key).namespace == TCG_RIM_NS
    )
    return Rim(
        tag_id=_attr(root, "tagId", "the SoftwareIdentity"),
        name=_attr(root, "name", "the SoftwareIdentity"),
        version=root.get("version", "").strip(),
        tag_version=root.get("tagVersion", "").strip(),
        colloquial_version=_attr(meta, "colloquialVersion", "the Meta element"),
        product=_attr(meta, "product", "the Meta element"),
        edition=meta.get("edition", "").strip(),
        revision=meta.get("revision", "").strip(),
        entities=entities,
        rim_info=rim_info,
        measurements=tuple(sorted(measurements, key=lambda m: m.index)),
        signer=signer,
        chain=chain,
        not_before=not_before,
        not_after=not_after,
        digest=digest,
    )
