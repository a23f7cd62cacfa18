"""RIM ids: the names NVIDIA's RIM service gives its RIMs, used as the log subject.

* a driver RIM: ``NV_GPU_DRIVER_<product>_<driver version>``, e.g.
  ``NV_GPU_DRIVER_GH100_550.90.07``;
* a VBIOS RIM: ``NV_GPU_VBIOS_<project>_<project SKU>_<chip SKU>_<VBIOS version>``, the
  VBIOS version without its dots, e.g. ``NV_GPU_VBIOS_1010_0200_882_96005E0001`` for VBIOS
  ``96.00.5E.00.01`` of project 1010, SKU 0200, chip 882.

The version in an id is the RIM's own ``colloquialVersion``: a driver version is one to three
decimal groups, a VBIOS version five hex octets, so neither passes for the other.
The RIM itself (signed by NVIDIA) names its version (``colloquialVersion``) and chip
(``product``, ``GH100``), but not the board's project, SKU or chip SKU: the id binds those.
:meth:`RimId.check` refuses an id whose version or product disagrees with the RIM it names.
The letters of a VBIOS id are compared upper-case, as NVIDIA's catalogue spells them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Final

from ironroot.errors import MalformedRim, VerificationFailed

if TYPE_CHECKING:  # the model imports lxml; the content type and ids do not need it
    from ironroot.rim._model import Rim

__all__ = ["RIM_CONTENT_TYPE", "RimId", "RimKind", "vbios_version_key"]

RIM_CONTENT_TYPE: Final = "application/swid+xml"
"""The content type of a RIM Signed Statement (header 3); its payload is the signed SWID tag."""

_PART: Final = r"[A-Za-z0-9]{1,16}"
# A driver version is one to three decimal groups (545.00, 550.90.07); a VBIOS version is five
# hex octets (96.00.5E.00.01), so neither can pass for the other.
_DRIVER_VERSION: Final = r"[0-9]{1,4}(?:\.[0-9]{1,4}){0,2}"
_VBIOS_VERSION: Final = re.compile(r"[0-9A-Fa-f]{2}(?:\.[0-9A-Fa-f]{2}){4}|[0-9A-Fa-f]{10}")
_DRIVER: Final = re.compile(rf"NV_GPU_DRIVER_(?P<product>{_PART})_(?P<version>{_DRIVER_VERSION})")
_VBIOS: Final = re.compile(
    rf"NV_GPU_VBIOS_(?P<project>{_PART})_(?P<sku>{_PART})_(?P<chip>{_PART})"
    r"_(?P<version>[0-9A-Fa-f]{10})"
)


class RimKind(StrEnum):
    """What a RIM describes: the GPU driver or the board's VBIOS."""

    DRIVER = "driver"
    VBIOS = "vbios"


def _clean(value: str) -> str:
    """A value as evidence may carry it: surrounding blanks and trailing NULs (the opaque
    data's fixed-width strings) removed."""
    if not isinstance(value, str):
        raise MalformedRim(f"{value!r} is not text")
    return value.strip().rstrip("\x00").strip()


def vbios_version_key(version: str) -> str:
    """A VBIOS version as RIM ids write it: ``96.00.5E.00.01`` -> ``96005E0001``."""
    text = _clean(version)
    if not _VBIOS_VERSION.fullmatch(text):
        raise MalformedRim(f"VBIOS version {version!r} is not hex octets (96.00.5E.00.01)")
    return text.replace(".", "").upper()


def _part(value: str, what: str) -> str:
    text = _clean(value)
    if not re.fullmatch(_PART, text):
        raise MalformedRim(f"{what} {value!r} must be 1 to 16 letters or digits")
    return text.upper()


@dataclass(frozen=True, slots=True)
class RimId:
    """A parsed RIM id (module docs). ``version`` is the driver version as written, or the
    VBIOS version without dots, upper-case."""

    kind: RimKind
    version: str
    product: str = ""
    project: str = ""
    sku: str = ""
    chip: str = ""

    @classmethod
    def parse(cls, text: str) -> RimId:
        """The id in ``text``; ``MalformedRim`` when it is neither form."""
        if not isinstance(text, str):
            raise MalformedRim("a RIM id must be text")
        if found := _DRIVER.fullmatch(text):
            return cls.driver(found["product"], found["version"])
        if found := _VBIOS.fullmatch(text):
            return cls.vbios(found["project"], found["sku"], found["chip"], found["version"])
        raise MalformedRim(
            f"{text!r} is not a RIM id (NV_GPU_DRIVER_<product>_<version> or "
            "NV_GPU_VBIOS_<project>_<sku>_<chip>_<version>)"
        )

    @classmethod
    def driver(cls, product: str, version: str) -> RimId:
        """The id of the driver RIM for ``product`` (``GH100``) and driver ``version``."""
        text = _clean(version)
        if not re.fullmatch(_DRIVER_VERSION, text):
            raise MalformedRim(f"driver version {version!r} is not a version (550.90.07)")
        return cls(RimKind.DRIVER, text, product=_part(product, "product"))

    @classmethod
    def vbios(cls, project: str, sku: str, chip: str, version: str) -> RimId:
        """The id of the VBIOS RIM for a board (project, SKU, chip SKU) and VBIOS ``version``
        (dotted or not)."""
        return cls(
            RimKind.VBIOS,
            vbios_version_key(version),
            project=_part(project, "project"),
            sku=_part(sku, "SKU"),
            chip=_part(chip, "chip SKU"),
        )

    def __str__(self) -> str:
        if self.kind is RimKind.DRIVER:
            return f"NV_GPU_DRIVER_{self.product}_{self.version}"
        return f"NV_GPU_VBIOS_{self.project}_{self.sku}_{self.chip}_{self.version}"

    def check(self, rim: Rim) -> None:
        """Refuse (``VerificationFailed``, code ``rim-id-mismatch``) an id that does not name
        ``rim``: another version, or for a driver RIM another product."""
        if self.kind is RimKind.DRIVER:
            same = rim.colloquial_version.strip() == self.version
            same = same and rim.product.strip().upper() == self.product
        else:
            try:
                same = vbios_version_key(rim.colloquial_version) == self.version
            except MalformedRim:
                same = False
        if not same:
            raise VerificationFailed(
                f"RIM id {self} does not name this RIM (product {rim.product!r}, version "
                f"{rim.colloquial_version!r})",
                code="rim-id-mismatch",
            )
