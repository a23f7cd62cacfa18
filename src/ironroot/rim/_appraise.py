"""Appraise a GPU's measurement blocks against the driver RIM and the VBIOS RIM on the log.

:meth:`LoggedRims.appraise` takes the measurement blocks of a verified SPDM MEASUREMENTS
response (SPDM block index -> measurement value) and the evidence's project, SKU, chip SKU,
VBIOS version and driver version (the opaque-data claims), and:

1. **selects** the logged driver RIM ``NV_GPU_DRIVER_<product>_<driver version>`` and the
   logged VBIOS RIM ``NV_GPU_VBIOS_<project>_<sku>_<chip>_<vbios version>``; either missing
   is ``NotFound`` (code ``rim-not-found``), either logged but with a signing chain not
   valid at the appraisal's ``now`` ``NotFound`` (code ``rim-expired``). The RIM's own
   signed version was already checked against its id when it was taken from the log. A RIM
   whose ``tagId`` the log also holds with a greater ``tagVersion`` is revised and left out;
   two RIMs that are one tag (one ``tagId`` and ``tagVersion``) with different golden
   measurements are ``VerificationFailed`` (code ``rim-ambiguous``): NVIDIA signs its test
   RIMs with the production chain under the production tag's identity, and only their
   (unsigned) file names tell them apart;
2. **merges** their active measurements: a RIM index active in both is refused
   (``VerificationFailed`` code ``rim-index-conflict``), as NVIDIA's verifier does;
3. **compares** every active golden measurement at RIM index ``i`` with block ``i + 1``: the
   block must be present, of the RIM's ``size``, and equal to one of its alternatives. When the
   evidence says NVDEC0 is disabled, RIM index 35 (block 36, NVDEC0's measurement) is skipped,
   as NVIDIA's verifier does;
   a pair that compares no block at all (no active measurement, or only the skipped one)
   allows nothing (``VerificationFailed`` code ``rim-nothing-compared``), like an empty policy;
4. refuses any block that fails with ``MeasurementMismatch``, whose detail names each block,
   its RIM index, the golden measurement's name, the RIM id and why (absent, size, value), and
   whose ``indexes`` lists the blocks.

Blocks that no RIM has active are not compared (NVIDIA's RIMs mark them inactive); they are
listed in :attr:`RimAppraisal.not_covered`. When several logged RIMs carry one id (the same
RIM registered by two registrants, or a re-issued RIM), each pair is tried and the first
that allows every block is the result; if none does, the pair with the fewest mismatches names
them. :func:`compare_measurements` is step 2 to 4 for one given pair.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ironroot.errors import MeasurementMismatch, NotFound, VerificationFailed
from ironroot.rim._id import RimId, RimKind
from ironroot.rim._statement import LoggedRim
from ironroot.rim._time import utc

if TYPE_CHECKING:
    from ironroot.rim._model import GoldenMeasurement

__all__ = [
    "NVDEC0_RIM_INDEX",
    "IndexMismatch",
    "LoggedRims",
    "RimAppraisal",
    "compare_measurements",
]

NVDEC0_RIM_INDEX: Final = 35
"""The RIM index of NVDEC0's measurement, not compared when the evidence reports NVDEC0
disabled (block 36)."""
_MAX_PAIRS: Final = 64


@dataclass(frozen=True, slots=True)
class IndexMismatch:
    """One measurement block that its RIM does not allow."""

    block: int
    """The SPDM measurement block index (RIM index + 1)."""
    name: str
    rim_id: str
    reason: str
    """``absent`` (not in the evidence), ``size`` (another length) or ``value``."""
    measured: bytes | None
    allowed: tuple[bytes, ...]

    def __str__(self) -> str:
        where = f"block {self.block} (RIM index {self.block - 1}, {self.name or 'unnamed'}, "
        where += f"{self.rim_id})"
        measured = self.measured or b""
        if self.reason == "absent":
            return f"{where}: absent from the evidence"
        if self.reason == "size":
            return (
                f"{where}: {len(measured)} bytes, the RIM allows {len(self.allowed[0])}-byte values"
            )
        return f"{where}: {measured.hex()} is not one of the {len(self.allowed)} allowed value(s)"


@dataclass(frozen=True, slots=True)
class RimAppraisal:
    """The comparison of one GPU's blocks with one driver RIM and one VBIOS RIM."""

    driver: LoggedRim
    vbios: LoggedRim
    matched: tuple[int, ...]
    """Blocks compared and allowed."""
    mismatches: tuple[IndexMismatch, ...]
    skipped: tuple[int, ...]
    """Blocks an active golden measurement names but the evidence rules out (NVDEC0)."""
    not_covered: tuple[int, ...]
    """Blocks in the evidence that no RIM has active."""

    def check(self) -> None:
        """Raise ``MeasurementMismatch`` naming every block not allowed; else return."""
        if self.mismatches:
            raise MeasurementMismatch(
                f"{len(self.mismatches)} GPU measurement(s) not allowed by the logged RIMs "
                f"{self.driver.rim_id} and {self.vbios.rim_id}: "
                + "; ".join(str(m) for m in self.mismatches),
                indexes=tuple(m.block for m in self.mismatches),
            )


def _golden(rim: LoggedRim) -> Iterator[tuple[GoldenMeasurement, LoggedRim]]:
    for measurement in rim.rim.active:
        yield measurement, rim


def compare_measurements(
    blocks: Mapping[int, bytes],
    driver: LoggedRim,
    vbios: LoggedRim,
    *,
    nvdec0_disabled: bool = False,
) -> RimAppraisal:
    """Steps 2 and 3 of the module docs for one pair of RIMs; never raises for a mismatch
    (they are in the result: :meth:`RimAppraisal.check` refuses them)."""
    golden: dict[int, tuple[GoldenMeasurement, LoggedRim]] = {}
    for measurement, rim in (*_golden(driver), *_golden(vbios)):
        if measurement.index in golden:
            raise VerificationFailed(
                f"the driver RIM {driver.rim_id} and the VBIOS RIM {vbios.rim_id} both have an "
                f"active measurement at RIM index {measurement.index}",
                code="rim-index-conflict",
            )
        golden[measurement.index] = (measurement, rim)
    matched: list[int] = []
    skipped: list[int] = []
    mismatches: list[IndexMismatch] = []
    for index, (measurement, rim) in sorted(golden.items()):
        block = index + 1
        if index == NVDEC0_RIM_INDEX and nvdec0_disabled:
            skipped.append(block)
            continue
        value = blocks.get(block)
        reason = None
        if value is None:
            reason = "absent"
        elif len(value) != measurement.size:
            reason = "size"
        elif not measurement.allows(bytes(value)):
            reason = "value"
        if reason is None:
            matched.append(block)
            continue
        mismatches.append(
            IndexMismatch(
                block=block,
                name=measurement.name,
                rim_id=str(rim.rim_id),
                reason=reason,
                measured=None if value is None else bytes(value),
                allowed=measurement.alternatives,
            )
        )
    if not matched and not mismatches:
        raise VerificationFailed(
            f"the driver RIM {driver.rim_id} and the VBIOS RIM {vbios.rim_id} compare no "
            "measurement block (no active measurement, or only skipped ones): they allow nothing",
            code="rim-nothing-compared",
        )
    covered = {index + 1 for index in golden}
    return RimAppraisal(
        driver=driver,
        vbios=vbios,
        matched=tuple(matched),
        mismatches=tuple(mismatches),
        skipped=tuple(skipped),
        not_covered=tuple(sorted(b for b in blocks if b not in covered)),
    )


def _tag_version(rim: LoggedRim) -> tuple[int, str] | None:
    """The SWID ``tagVersion`` (an integer; absent: 0) as a key that orders as the integer
    does (its digit count, then its digits, leading zeros dropped), ``None`` when it is no
    integer. Not int(): it refuses text past 4,300 digits with ``ValueError``."""
    text = rim.rim.tag_version or "0"
    if not (text.isascii() and text.isdecimal()):
        return None
    digits = text.lstrip("0") or "0"
    return len(digits), digits


def _newest_versions(rims: tuple[LoggedRim, ...]) -> tuple[LoggedRim, ...]:
    """``rims`` without those a greater ``tagVersion`` of their ``tagId`` revises (ISO/IEC
    19770-2: a revised tag keeps its tagId and increments its tagVersion). A tag whose
    tagVersion is no integer is kept: :func:`_unambiguous` judges it."""
    newest: dict[str, tuple[int, str]] = {}
    for rim in rims:
        version = _tag_version(rim)
        if version is not None:
            newest[rim.rim.tag_id] = max(newest.get(rim.rim.tag_id, version), version)
    return tuple(
        r for r in rims if (version := _tag_version(r)) is None or version >= newest[r.rim.tag_id]
    )


def _compared(rim: LoggedRim) -> tuple[tuple[object, ...], ...]:
    """What an appraisal compares of ``rim``'s measurements (their names left out)."""
    return tuple(
        (m.index, m.active, m.size, m.alternatives, m.hash_alg) for m in rim.rim.measurements
    )


def _unambiguous(rims: tuple[LoggedRim, ...], what: str) -> tuple[LoggedRim, ...]:
    """``rims``, unless two of them are one tag (one tagId and tagVersion) with different
    golden measurements: ``VerificationFailed`` code ``rim-ambiguous``. NVIDIA signs its test
    RIMs (``…_test_no_gpu``) with the production chain under the production RIM's tagId and
    tagVersion, with other values: nothing signed tells which one is the production RIM, so
    neither is taken. The same tag signed twice (the same values) is one tag."""
    tags: dict[tuple[str, str], list[LoggedRim]] = {}
    for rim in rims:
        tags.setdefault((rim.rim.tag_id, rim.rim.tag_version or "0"), []).append(rim)
    for (tag_id, version), same in tags.items():
        if len({_compared(r) for r in same}) > 1:
            raise VerificationFailed(
                f"the log holds {len(same)} {what} RIMs {same[0].rim_id} that are one tag "
                f"(tagId {tag_id[:16]}…, tagVersion {version}) with different golden "
                "measurements (a test RIM signed like the production one?): which of them "
                "holds is unknown, so neither does",
                code="rim-ambiguous",
            )
    return rims


class LoggedRims:
    """An immutable set of RIMs taken from the log, looked up by RIM id."""

    __slots__ = ("_by_id", "_rims")

    def __init__(self, rims: Iterable[LoggedRim] = ()) -> None:
        unique: dict[tuple[str, bytes], LoggedRim] = {}
        for rim in rims:
            unique.setdefault((str(rim.rim_id), rim.rim.digest), rim)
        self._rims: tuple[LoggedRim, ...] = tuple(unique.values())
        self._by_id: dict[str, list[LoggedRim]] = {}
        for rim in self._rims:
            self._by_id.setdefault(str(rim.rim_id), []).append(rim)

    def __len__(self) -> int:
        return len(self._rims)

    def __iter__(self) -> Iterator[LoggedRim]:
        return iter(self._rims)

    def find(self, rim_id: RimId | str) -> tuple[LoggedRim, ...]:
        """The logged RIMs with this id (empty when none)."""
        key = str(rim_id if isinstance(rim_id, RimId) else RimId.parse(rim_id))
        return tuple(self._by_id.get(key, ()))

    def _select(self, rim_id: RimId, now: dt.datetime | None) -> tuple[LoggedRim, ...]:
        found = self.find(rim_id)
        what = "driver" if rim_id.kind is RimKind.DRIVER else "VBIOS"
        if not found:
            raise NotFound(
                f"no {what} RIM {rim_id} is on the log: its reference values are unknown",
                code="rim-not-found",
            )
        found = _newest_versions(found)
        if now is None:
            return _unambiguous(found, what)
        valid = tuple(r for r in found if r.valid_at(now))
        if not valid:
            ended = max(r.rim.not_after for r in found)
            raise NotFound(
                f"the {what} RIM {rim_id} on the log is not valid at {now.isoformat()} (its "
                f"signing chain is valid until {ended.isoformat()}, its statement within its "
                "CWT nbf/exp): its reference values no longer count",
                code="rim-expired",
            )
        return _unambiguous(valid, what)

    def appraise(
        self,
        blocks: Mapping[int, bytes],
        *,
        project: str,
        sku: str,
        chip: str,
        vbios_version: str,
        driver_version: str,
        product: str = "GH100",
        nvdec0_disabled: bool = False,
        now: dt.datetime | None = None,
    ) -> RimAppraisal:
        """The module docs, steps 1 to 4: the appraisal when every active golden measurement
        allows its block, else the exact error. With ``now``, only RIMs whose signing chain
        is valid then are selected (``NotFound`` code ``rim-expired`` when none is): RIMs
        are taken from the log once, and expire. A ``now`` without a timezone is
        ``ConfigError``."""
        if now is not None:
            now = utc(now)
        drivers = self._select(RimId.driver(product, driver_version), now)
        vbioses = self._select(RimId.vbios(project, sku, chip, vbios_version), now)
        best: RimAppraisal | None = None
        pairs = [(d, v) for d in drivers for v in vbioses][:_MAX_PAIRS]
        for driver, vbios in pairs:
            result = compare_measurements(blocks, driver, vbios, nvdec0_disabled=nvdec0_disabled)
            if not result.mismatches:
                return result
            if best is None or len(result.mismatches) < len(best.mismatches):
                best = result
        if best is None:  # both selections are non-empty: there was a pair
            raise NotFound("no pair of logged RIMs to appraise with", code="rim-not-found")
        best.check()
        return best  # not reached: check() raised
