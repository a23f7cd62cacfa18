"""One release per attester: the measurements of one firmware target, each matching a logged
reference value, must all be listed by one logged release.

A release is one CoMID, named by its issuer and ``tag-id``, as :class:`ReferenceValues` keeps
it: of a tag, only the version in force (a CoMID another of the same issuer ``replaces``, or
an older ``tag-version``, is gone). A CoMID that only ``supplements`` another is a release of
its own, and a value not read from a CoMID (``tag_id`` ``None``, built by a caller) is a
release of itself alone: neither widens what an attester may combine.

Matched one by one, an attester running the FMC of release A with the runtime of release B,
both logged, would pass although nobody released that combination. :func:`common_releases` is
the rule, in one place: the generic appraisal (:func:`ironroot.attestation.appraise`, the
measurements its policy names for a format) and the platform's SPDM device check
(:func:`ironroot.platform.compare_device_references`) both call it.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

from ironroot.attestation._endorsements import ReferenceValue
from ironroot.errors import EndorsementMismatch

__all__ = ["common_releases"]

_Key = TypeVar("_Key", bound=Hashable)
_Release = tuple[str, str | bytes] | ReferenceValue


def _release(value: ReferenceValue) -> _Release:
    """The release ``value`` belongs to: its CoMID, named by issuer and ``tag-id``; a value
    not read from a CoMID names no release beyond itself."""
    return value if value.tag_id is None else (value.issuer, value.tag_id)


def _name(value: ReferenceValue) -> str:
    if value.tag_id is None:
        return "a value of no CoMID"
    tag = value.tag_id.hex() if isinstance(value.tag_id, bytes) else value.tag_id
    return f"tag {tag[:32]!r} of {value.issuer!r}"


def _release_names(matched: Mapping[_Key, Sequence[ReferenceValue]]) -> list[str]:
    """Each measurement and the releases that list it, for a refusal."""
    return [
        f"{key} in {' or '.join(sorted({_name(v) for v in found}))}"
        for key, found in matched.items()
    ]


def common_releases(
    matched: Mapping[_Key, Sequence[ReferenceValue]],
    *,
    product: str,
    measured: str = "the device",
) -> tuple[tuple[tuple[ReferenceValue, ...], ...], ...]:
    """For each logged release whose values match every measurement (``matched``: each
    measurement, by index or name, -> the logged values its digest matches, none empty), those
    values measurement by measurement, in ``matched``'s order. When no one release lists them
    all, ``EndorsementMismatch`` ``mixed-releases`` naming each measurement and the releases
    that list it (``product``: whose values they are; ``measured``: who reported them)."""
    per_key: list[dict[_Release, list[ReferenceValue]]] = []
    for found in matched.values():
        grouped: dict[_Release, list[ReferenceValue]] = {}
        for value in found:
            grouped.setdefault(_release(value), []).append(value)
        per_key.append(grouped)
    common = [r for r in per_key[0] if all(r in g for g in per_key[1:])] if per_key else []
    if not common:
        raise EndorsementMismatch(
            f"each measurement of {measured} matches a logged reference value of {product},"
            " but no one logged release (one CoMID of one issuer) lists them all: measurement "
            + "; ".join(_release_names(matched)),
            code="mixed-releases",
        )
    return tuple(tuple(tuple(g[release]) for g in per_key) for release in common)
