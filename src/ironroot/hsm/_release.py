"""The release decision the HSM makes inside its boundary before a key leaves, wrapped to a TEE.

:func:`authorize_release` is the pure core. Given the EAR, the TEE's wrapping key, the release
nonce, the verifier keys a crypto officer installed in the HSM and the HSM's clock, it checks,
in this order:

1. the EAR is signed by an installed verifier key (``UnknownIssuer``, ``BadSignature``,
   ``AlgorithmNotAccepted``), parses (``MalformedInput``), has an ``exp`` and is used before it
   and not before its ``iat`` (``ResultExpired``), and, given when the nonce was issued, was
   not issued before it (``ResultExpired`` code ``result-predates-nonce``: its evidence would
   have quoted a nonce that did not exist yet, so its time is back-dated or made up; both
   clocks get :data:`~ironroot.ear.CLOCK_SKEW` of slack); the HSM does not hold the private
   key of that verifier key itself (``ReleaseDenied`` code ``verifier-key-in-hsm``: every
   crypto user signs with the HSM's keys);
2. some submodule's evidence carries report data ``nonce ‖ SHA-256(wrapping key SPKI)``
   (``StaleNonce`` code ``nonce-mismatch`` for another nonce, ``KeyBindingMismatch`` for
   another key), and the EAR's ``eat_nonce``, when present, is that same report data; or,
   for a composite EAR (submodules exactly ``cvm``, ``gpu0`` … ``gpu{n-1}``), the CVM and its
   GPUs answer the composite rule under that challenge (``ironroot.hsm._binding``,
   :func:`~ironroot.hsm.check_composite_binding`; a GPU submodule without report data
   must not be affirming or warning, and the ``cvm`` submodule's evidence is not a device's:
   ``ReleaseDenied`` code ``not-a-cvm`` for one of :data:`~ironroot.ear.DEVICE_FORMATS`), and
   the ``cvm`` submodule's claims are the ones the policy sees;
3. the EAR's status (the worst of its submodules) is ``affirming``, or ``warning`` where the
   key's attributes allow it (``ReleaseDenied`` code ``not-affirming``).

It returns the :class:`ReleaseContext` the key's own release policy is then evaluated on
(``ironroot.hsm._release_policy``). :meth:`Hsm.release` runs it after redeeming the nonce it
issued itself (:meth:`Hsm.release_challenge`); nothing outside the boundary takes part in the
decision, so a crypto user holding a session cannot release a key on a result it made up.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from ironroot.cose import KID, Limits, Sign1
from ironroot.crypto import Verifier, b64url_decode, b64url_encode
from ironroot.ear import CLOCK_SKEW, DEVICE_FORMATS, AttestationResult, TrustTier, verify_ear
from ironroot.errors import (
    ConfigError,
    IronrootError,
    KeyBindingMismatch,
    MalformedInput,
    ReleaseDenied,
    ResultExpired,
    StaleNonce,
    UnknownIssuer,
)
from ironroot.hsm._binding import WrappingKey, check_binding, check_composite_binding
from ironroot.hsm._release_policy import ReleaseContext, composite_gpu_count, release_claims

__all__ = ["RELEASE_STATUSES", "TrustedVerifier", "authorize_release"]

RELEASE_STATUSES: Final = (TrustTier.AFFIRMING, TrustTier.WARNING)
"""The EAR statuses a key may be released on, most trusting first."""
_TOKEN_LIMITS: Final = Limits(max_bytes=256 * 1024, max_depth=12, max_items=4096)


@dataclass(frozen=True, slots=True)
class TrustedVerifier:
    """A verifier whose EARs the HSM accepts: a name (what an Azure-grammar policy's
    ``authority`` names) and its public key."""

    name: str
    key: Verifier

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError("a trusted verifier needs a name")

    @property
    def kid(self) -> str:
        """The key id (RFC 9679 thumbprint) as unpadded base64url."""
        return b64url_encode(self.key.kid)


def _token_kid(token: bytes) -> bytes | None:
    """The ``kid`` of an EAR whose signature already verified (JWT header or COSE protected),
    read from the canonical base64url :func:`~ironroot.ear.verify_ear` required (which also
    refused a header with a member twice), so that the two readings name the same key."""
    try:
        if token[:1] == b"\xd2":
            kid = Sign1.decode(token, _TOKEN_LIMITS).protected.get(KID)
            return kid if isinstance(kid, bytes) else None
        header = token.strip().split(b".", 1)[0].decode("ascii")
        value = json.loads(b64url_decode(header, what="the JWS header").decode("utf-8"))
        kid_text = value.get("kid") if isinstance(value, dict) else None
        if not isinstance(kid_text, str):
            return None
        return b64url_decode(kid_text, what="kid")
    except (IronrootError, ValueError, UnicodeDecodeError, RecursionError):
        return None


def _report_data(evidence: Mapping[str, Any] | None) -> bytes | None:
    if evidence is None:
        return None
    value = evidence.get("report_data")
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 256:
        raise MalformedInput("the EAR's evidence report_data must be hex text")
    try:
        return bytes.fromhex(value)
    except ValueError as exc:
        raise MalformedInput("the EAR's evidence report_data is not hex") from exc


def _binding_submod(
    result: AttestationResult, *, nonce: bytes, wrapping_key: WrappingKey
) -> tuple[str, bytes]:
    """The submodule whose evidence binds ``nonce`` and ``wrapping_key``, and its report data."""
    failure: IronrootError | None = None
    for label, appraisal in result.submods.items():
        report_data = _report_data(appraisal.evidence)
        if report_data is None:
            continue
        try:
            check_binding(report_data, nonce=nonce, key=wrapping_key)
        except (StaleNonce, KeyBindingMismatch) as exc:
            if failure is None or isinstance(exc, KeyBindingMismatch):
                failure = exc
            continue
        return label, report_data
    if failure is not None:
        raise failure
    raise KeyBindingMismatch(
        "the EAR carries no evidence report data: nothing binds the wrapping key"
    )


def _composite_binding(
    result: AttestationResult, count: int, *, nonce: bytes, wrapping_key: WrappingKey
) -> tuple[str, bytes]:
    cvm_format = (result.submods["cvm"].evidence or {}).get("format")
    if cvm_format is not None and not isinstance(cvm_format, str):  # a list: unhashable
        raise MalformedInput("the EAR's cvm evidence format must be text")
    if cvm_format in DEVICE_FORMATS:  # a GPU signs cvm_nonce like any nonce: no VM is here
        raise ReleaseDenied(
            f"the composite's cvm submodule appraised {cvm_format} evidence, a device's, "
            "not a VM's",
            code="not-a-cvm",
        )
    cvm = _report_data(result.submods["cvm"].evidence)
    gpus = [_report_data(result.submods[f"gpu{i}"].evidence) for i in range(count)]
    for index, data in enumerate(gpus):
        # A GPU without report data is one whose evidence did not verify: never trusted.
        if data is None and result.submods[f"gpu{index}"].status in RELEASE_STATUSES:
            raise StaleNonce(
                f"gpu{index} is {result.submods[f'gpu{index}'].status.value} but shows no "
                "report data: nothing binds it to this release",
                code="nonce-mismatch",
            )
    check_composite_binding(result.nonce, cvm, gpus, nonce=nonce, key=wrapping_key)
    assert cvm is not None  # checked above
    return "cvm", cvm


def authorize_release(
    ear: bytes | str,
    *,
    nonce: bytes,
    wrapping_key: WrappingKey,
    verifiers: Sequence[TrustedVerifier],
    now: datetime,
    minimum_status: TrustTier = TrustTier.AFFIRMING,
    nonce_issued: float | None = None,
    held: frozenset[bytes] = frozenset(),
) -> ReleaseContext:
    """Steps 1–3 of the module documentation; the claims for the key's policy, or raise.
    ``nonce_issued`` is when ``nonce`` was issued (POSIX seconds; :meth:`Hsm.release` always
    gives it); ``held`` the key ids of the signing keys the HSM holds itself (an EAR signed
    by one is ``ReleaseDenied`` code ``verifier-key-in-hsm``: every crypto user may sign
    with it)."""
    if not verifiers:
        raise UnknownIssuer("no trusted verifier is installed: an empty trust store trusts nothing")
    if minimum_status not in RELEASE_STATUSES:
        raise ConfigError("a key's minimum status is affirming or warning")
    token = ear.encode("ascii", "replace") if isinstance(ear, str) else bytes(ear)
    by_kid: dict[bytes, TrustedVerifier] = {}
    for verifier in verifiers:
        by_kid.setdefault(verifier.key.kid, verifier)
    result = verify_ear(token, {kid: v.key for kid, v in by_kid.items()}, now=now)
    if result.exp is None:
        raise ResultExpired(
            "the EAR has no exp: keys are released only on results that expire",
            code="result-no-expiry",
        )
    if nonce_issued is not None and result.iat + CLOCK_SKEW < nonce_issued:
        raise ResultExpired(
            f"the EAR was issued at {result.iat}, before the nonce it answers "
            f"({int(nonce_issued)}): its evidence cannot have quoted that nonce",
            code="result-predates-nonce",
        )
    kid = _token_kid(token)
    signer = by_kid.get(kid) if kid is not None else None
    if signer is None:  # unreachable after a successful verify_ear; fail closed regardless
        raise UnknownIssuer("the EAR's signing key is not a trusted verifier's")
    if signer.key.kid in held:
        raise ReleaseDenied(
            f"the EAR is signed by verifier {signer.name!r}, whose private key this HSM holds: "
            "any crypto user of the HSM could have signed it",
            code="verifier-key-in-hsm",
        )
    count = composite_gpu_count(result)
    if count is not None:
        label, report_data = _composite_binding(
            result, count, nonce=nonce, wrapping_key=wrapping_key
        )
    else:
        label, report_data = _binding_submod(result, nonce=nonce, wrapping_key=wrapping_key)
    if count is None and result.nonce is not None and result.nonce != report_data:
        raise StaleNonce(
            "the EAR's eat_nonce is not the evidence's report data", code="nonce-mismatch"
        )
    status = result.status
    allowed = RELEASE_STATUSES[: RELEASE_STATUSES.index(minimum_status) + 1]
    if status not in allowed:
        raise ReleaseDenied(
            f"the attestation result is {status.value}; this key needs "
            + " or ".join(t.value for t in allowed),
            code="not-affirming",
        )
    return release_claims(
        result, label, authority=signer.name, kid=signer.kid, wrapping_key=wrapping_key.kind
    )
