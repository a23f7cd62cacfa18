"""SAFE reviews of every firmware component a node class requires them for.

The appraisal policy (:mod:`ironroot.fleet._verifier`) checks the SAFE requirement of the
BMC firmware the RoT quotes (``PlatformTrust.safe["bmc"]``: its manifest digest is a quote
FWID). :class:`ComponentReviews` applies the requirement of each other component the class
trust names — ``host`` and the SPDM devices ``nic``, ``gpu``, ``nvme`` — to the firmware the
node actually booted:

1. **what runs.** At boot the RoT measures each component's active image into PCR 2
   (DPE): the quote's signed PCR log holds an event ``dpe:<component>`` whose data is the
   SHA-384 of the image (the signed firmware bundle). The last such event of the verified
   quote names what the component runs; none is ``unmeasured``.
2. **which release.** A review names a release by the SHA-384 of its manifest, which the
   bundle's digest does not show: the bundle is found among the class's images, else read
   from the node's active slot and accepted only if its SHA-384 is the measured one (so the
   node's storage is never believed, only used), and its manifest digest computed
   (remembered per bundle digest, bounded).
3. **reviewed.** The reviews that count are the SAFE review statements among the class's
   statements (of a witnessed statement, the Transparent Statement in it) and the fleet's
   added endorsements whose receipts verify under the class trust's transparency services
   (naming its ``service_issuer``, when it has one) and whose SFR is signed by one of the
   requirement's providers (:func:`ironroot.attestation.reviews_from_statements`; built once
   per class, again when the endorsements change and hourly; each asked again at every
   appraisal whether it still counts, :meth:`ironroot.safe.Review.counts_at`). At least one
   must name the manifest digest, and none of them may list an open finding at or above the
   requirement's severity threshold — a later review with a new high finding refuses
   firmware an earlier clean one admitted, as for the BMC.

A component that fails is written into the EAR like the BMC's: the submodule that carries
its evidence — the device's own (``nic``, ``gpu``, ``nvme``), ``rot`` for the host (whose
measurement is in the quote) — gets ``executables`` 33 (unrecognized runtime: no review, or
firmware that cannot be identified) or 32 (unsafe runtime: an open finding above the
threshold), never better than it had, and a reason line ``safe-review: …`` or
``safe-issues: …``. The node is then not affirming and admission quarantines it
(``AdmissionDenied`` ``admission-denied``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Final

from ironroot.attestation import AR4SI, Appraisal, reviews_from_statements
from ironroot.attestation.evidence import parse_rot_quote
from ironroot.cose import TransparentStatement
from ironroot.ear import tier_of
from ironroot.errors import IronrootError
from ironroot.firmware import FirmwareBundle
from ironroot.platform import COMPONENTS, DEVICES, SafeRequirement, unwrap_witnessed
from ironroot.safe import SFR_COSE_CONTENT_TYPE, SFR_JWS_CONTENT_TYPE, Review

if TYPE_CHECKING:
    from ironroot.fleet._fleet import Fleet, NodeClass

__all__ = ["ComponentReviews", "downgrade", "measured_components"]

Labelled = tuple[str, bytes]

_ROT: Final = "rot"
_REVIEW_TYPES: Final = frozenset((SFR_JWS_CONTENT_TYPE, SFR_COSE_CONTENT_TYPE))
_CACHE_SECONDS: Final = 3600
_MAX_MANIFESTS: Final = 256
_DPE: Final = "dpe:"


def measured_components(quote: bytes) -> dict[str, bytes]:
    """Component → SHA-384 of the image the RoT last measured into PCR 2 for it, from a quote
    **already verified** (the signed claims are read again, not checked again)."""
    claims = parse_rot_quote(quote)["es384"]["claims"]
    log = claims.get("pcr-log") if isinstance(claims, dict) else None
    found: dict[str, bytes] = {}
    for event in log if isinstance(log, list) else ():
        if (
            isinstance(event, list)
            and len(event) == 3
            and isinstance(event[1], str)
            and event[1].startswith(_DPE)
            and isinstance(event[2], bytes)
        ):
            found[event[1][len(_DPE) :]] = event[2]
    return found


def _is_review(data: bytes) -> bool:
    try:
        return TransparentStatement.parse(data).statement.content_type in _REVIEW_TYPES
    except IronrootError:
        return False


def downgrade(
    appraisal: Appraisal, code: int, reason: str, *, category: str = "executables"
) -> Appraisal:
    """``appraisal`` with its ``category`` claim at least as bad as ``code`` and ``reason``
    added (never better than it had)."""
    vector = dict(appraisal.trust_vector)
    current = vector.get(category)
    if current is None or tier_of(current).severity < tier_of(code).severity:
        vector[category] = code
    return Appraisal.from_vector(
        vector,
        policy_id=appraisal.policy_id,
        reasons=(*appraisal.reasons, reason),
        evidence=appraisal.evidence,
    )


class ComponentReviews:
    """Applies a class's SAFE requirements to every component but the BMC (module docs)."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self._lock = threading.Lock()
        self._manifests: dict[bytes, bytes] = {}
        self._reviews: dict[str, tuple[object, int, dict[str, tuple[Review, ...]]]] = {}

    @staticmethod
    def required(klass: NodeClass) -> dict[str, SafeRequirement]:
        """The components other than the BMC whose firmware the class requires reviewed."""
        return {c: r for c, r in sorted(klass.trust.safe.items()) if c in COMPONENTS and c != "bmc"}

    def _class_reviews(
        self,
        klass: NodeClass,
        required: Mapping[str, SafeRequirement],
        added: Callable[[], Sequence[Labelled]],
        token: object,
        now: dt.datetime,
    ) -> dict[str, tuple[Review, ...]]:
        hour = int(now.timestamp()) // _CACHE_SECONDS
        with self._lock:
            cached = self._reviews.get(klass.name)
            if cached is not None and cached[0] == token and cached[1] == hour:
                return cached[2]
        # A class whose platform requires witnesses ships witnessed statements: a review is
        # the Transparent Statement in one (the node checked the witnessing).
        statements: list[Labelled] = [
            (f"class {klass.name} {component} statement {n}", data)
            for component, found in sorted(klass.statements.items())
            for n, data in enumerate(map(unwrap_witnessed, found))
            if _is_review(data)
        ]
        statements.extend((label, data) for label, data in added() if _is_review(data))
        built = {
            component: reviews_from_statements(
                statements,
                providers=requirement.providers,
                service_keys=klass.trust.service_keys,
                now=now,
                service_issuer=klass.trust.service_issuer,
            )[0]
            for component, requirement in required.items()
        }
        with self._lock:
            self._reviews[klass.name] = (token, hour, built)
        return built

    def _manifest(self, node_id: str, klass: NodeClass, component: str, image: bytes) -> bytes:
        """The manifest digest of the bundle whose SHA-384 is ``image`` (module docs, 2);
        empty when it cannot be found."""
        with self._lock:
            known = self._manifests.get(image)
        if known is not None:
            return known
        candidates = [klass.images.get(component, b"")]
        with contextlib.suppress(IronrootError):  # unreadable: the class's image or nothing
            candidates.append(self.fleet.node(node_id).active_image(component))
        for data in candidates:
            if data and hashlib.sha384(data).digest() == image:
                try:
                    digest = FirmwareBundle.parse(data).manifest_digest()
                except IronrootError:
                    return b""
                with self._lock:
                    if len(self._manifests) >= _MAX_MANIFESTS:
                        self._manifests.clear()
                    self._manifests[image] = digest
                return digest
        return b""

    def _failure(
        self,
        node_id: str,
        klass: NodeClass,
        component: str,
        requirement: SafeRequirement,
        image: bytes | None,
        reviews: Sequence[Review],
        now: dt.datetime,
    ) -> tuple[int, str] | None:
        if image is None:
            return (
                AR4SI.UNRECOGNIZED_RUNTIME,
                f"safe-review: the RoT measured no {component} firmware (no dpe:{component} "
                "event in the quote): its review cannot be checked",
            )
        manifest = self._manifest(node_id, klass, component, image)
        if not manifest:
            return (
                AR4SI.UNRECOGNIZED_RUNTIME,
                f"safe-review: the {component} firmware the RoT measured "
                f"({image.hex()[:16]}…) is no release the fleet can identify",
            )
        subject = f"sha384:{manifest.hex()}"
        # the reviews were read when the class's were last built (hourly): each must still
        # count now (a review that expired since is no review, as for the BMC's)
        matching = [
            r
            for r in reviews
            if r.report.firmware_hashes().get("sha384") == manifest and r.counts_at(now)
        ]
        if not matching:
            return (
                AR4SI.UNRECOGNIZED_RUNTIME,
                f"safe-review: no logged OCP SAFE review of the {component} firmware {subject} "
                "by a provider the class requires",
            )
        refused = [r for r in matching if not requirement.accepts(r)]
        if refused:
            worst = max(r.max_open_cvss or 0.0 for r in refused)
            return (
                AR4SI.UNSAFE_RUNTIME,
                f"safe-issues: a review of the {component} firmware {subject} lists an open "
                f"issue with CVSS {worst:.1f}, at or above what the class allows "
                f"({requirement.max_severity})",
            )
        return None

    def apply(
        self,
        node_id: str,
        klass: NodeClass,
        quote: bytes,
        submods: Mapping[str, Appraisal],
        *,
        added: Callable[[], Sequence[Labelled]],
        token: object,
        now: dt.datetime,
    ) -> dict[str, Appraisal]:
        """``submods`` with each required component's review checked (module docs); the
        quote must be one the verifier already verified."""
        out = dict(submods)
        required = self.required(klass)
        if not required:
            return out
        measured = measured_components(quote)
        reviews = self._class_reviews(klass, required, added, token, now)
        for component, requirement in required.items():
            failure = self._failure(
                node_id,
                klass,
                component,
                requirement,
                measured.get(component),
                reviews[component],
                now,
            )
            label = component if component in DEVICES and component in out else _ROT
            if failure is not None and label in out:
                out[label] = downgrade(out[label], *failure)
        return out
