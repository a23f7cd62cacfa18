"""The one error hierarchy of Ironroot.

Every failure a caller can see is an :class:`IronrootError`. Each class carries a short
machine-readable ``code`` (stable: scripts and HTTP clients match on it), a human ``title``,
the HTTP status it maps to and the CLI exit code it maps to. The mapping lives here, once:
the HTTP layer turns any ``IronrootError`` into an RFC 9290 problem with ``status``, ``title``
and ``detail``; the CLI exits with ``exit_code``.

Messages never contain secrets. Parsers chain the underlying exception with ``from exc``.
"""

from __future__ import annotations

import re
from typing import ClassVar

__all__ = [
    "AdmissionDenied",
    "AlgorithmNotAccepted",
    "AuditBundleRejected",
    "AuditChainBroken",
    "BadSignature",
    "CertificateExpired",
    "CertificateRevoked",
    "ChainNotTrusted",
    "ClockSkew",
    "CollateralExpired",
    "ConfigError",
    "Conflict",
    "CredentialRejected",
    "DeviceStateTampered",
    "DigestMismatch",
    "EndorsementMismatch",
    "FirmwareRejected",
    "FlashProtected",
    "ForkDetected",
    "FuseError",
    "HsmErrorState",
    "HsmZeroized",
    "IdentityLocked",
    "InUse",
    "InconsistentCheckpoint",
    "InputUnavailable",
    "InsufficientCosignatures",
    "InvalidLocator",
    "InvalidProof",
    "InvalidReleasePolicy",
    "IronrootError",
    "KeyBindingMismatch",
    "KeyDescriptorMismatch",
    "KeyNotExportable",
    "KeyNotInDescriptor",
    "KeyRevoked",
    "KeyUsageNotPermitted",
    "LimitExceeded",
    "MalformedCertificate",
    "MalformedCollateral",
    "MalformedCorim",
    "MalformedEvidence",
    "MalformedFirmware",
    "MalformedInput",
    "MalformedReceipt",
    "MalformedReport",
    "MalformedRim",
    "MalformedSpdm",
    "MalformedStatement",
    "ManifestExpired",
    "MeasurementMismatch",
    "MissingSignature",
    "NotFound",
    "OldSizeMismatch",
    "Overloaded",
    "OwnerKeyMismatch",
    "PayloadMissing",
    "PayloadTooLarge",
    "PolicyRejected",
    "ReleaseDenied",
    "ResultExpired",
    "RetryLater",
    "RoleNotPermitted",
    "SealedStoreError",
    "SpdmErrorResponse",
    "SpdmProtocolError",
    "SpdmTransportError",
    "StaleBatch",
    "StaleNonce",
    "StateReuse",
    "StorageError",
    "StoreRolledBack",
    "StoreUnavailable",
    "SvnRollback",
    "TooManyAttempts",
    "Unauthorized",
    "UnknownIssuer",
    "UnknownLog",
    "Unreachable",
    "UnsupportedAlgorithm",
    "UnsupportedMediaType",
    "UntrustedCheckpoint",
    "VerificationFailed",
]


class IronrootError(Exception):
    """Base of every error Ironroot raises on purpose.

    ``detail`` is one sentence for a human; ``code`` a stable identifier for a machine.
    """

    code: ClassVar[str] = "error"
    title: ClassVar[str] = "Error"
    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1

    def __init__(
        self, detail: str = "", *, code: str | None = None, check: str | None = None
    ) -> None:
        self.detail = detail or self.title
        if code is not None:
            self.code = code  # type: ignore[misc]  # instance-level refinement of the class code
        self.check: str | None = check
        """The name of the verification check that failed, when a verifier ran named checks
        (``"signature"``, ``"chain"``, ``"nonce"``, …); ``None`` otherwise."""
        super().__init__(self.detail)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, detail={self.detail!r})"


class RetryLater(IronrootError):
    """A refusal that says when to ask again: ``retry_after`` seconds (at least 1; the class's
    ``default_retry_after`` unless given), sent as HTTP ``Retry-After``."""

    default_retry_after: int = 1

    def __init__(
        self,
        detail: str = "",
        *,
        code: str | None = None,
        check: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(detail, code=code, check=check)
        wait = self.default_retry_after if retry_after is None else retry_after
        self.retry_after = max(1, wait)


# --- input that cannot be parsed ---------------------------------------------------------


class MalformedInput(IronrootError):
    """Bytes or values that do not parse as the expected format."""

    code = "malformed"
    title = "Malformed Input"
    http_status = 400
    exit_code = 2


class InputUnavailable(IronrootError):
    """A file or directory a command needs that is missing, unreadable, or of the wrong kind
    (a directory where a file is expected, or the reverse)."""

    code = "input-unavailable"
    title = "Input Unavailable"
    http_status = 400
    exit_code = 2


class LimitExceeded(MalformedInput):
    """Input over a hard limit (size, nesting depth, item count)."""

    code = "limit-exceeded"
    title = "Limit Exceeded"


class PayloadTooLarge(LimitExceeded):
    """A request body or statement over the configured maximum size."""

    code = "payload-too-large"
    title = "Payload Too Large"
    http_status = 413


class UnsupportedMediaType(MalformedInput):
    """A request body whose ``Content-Type`` is not one the endpoint takes."""

    code = "unsupported-media-type"
    title = "Unsupported Media Type"
    http_status = 415


class MalformedStatement(MalformedInput):
    """A Signed Statement that is not a well-formed COSE_Sign1 with the required headers."""

    code = "malformed-statement"
    title = "Invalid Statement"


class MalformedReceipt(MalformedInput):
    """A receipt that is not a well-formed RFC 9942 receipt."""

    code = "malformed-receipt"
    title = "Invalid Receipt"


class ConfigError(MalformedInput):
    """A configuration file or value that is invalid."""

    code = "config"
    title = "Invalid Configuration"


# --- algorithms ----------------------------------------------------------------------------


class UnsupportedAlgorithm(MalformedInput):
    """An algorithm Ironroot does not implement, or a key that does not fit the algorithm."""

    code = "unsupported-algorithm"
    title = "Unsupported Algorithm"


class AlgorithmNotAccepted(IronrootError):
    """A known algorithm that the configured policy does not accept."""

    code = "algorithm-not-accepted"
    title = "Bad Signature Algorithm"
    http_status = 400
    exit_code = 1


# --- verification --------------------------------------------------------------------------


class VerificationFailed(IronrootError):
    """A signature, proof, chain or binding that does not verify."""

    code = "verification-failed"
    title = "Verification Failed"
    http_status = 400
    exit_code = 1


class BadSignature(VerificationFailed):
    """A cryptographic signature that does not verify."""

    code = "bad-signature"
    title = "Invalid Signature"


class InvalidProof(VerificationFailed):
    """A Merkle inclusion or consistency proof that does not verify."""

    code = "invalid-proof"
    title = "Invalid Proof"


class InconsistentCheckpoint(VerificationFailed):
    """Two checkpoints of one log that are not shown consistent: a consistency proof that does
    not verify, or a root that differs from the one already seen at that size (c2sp.org/
    tlog-witness answers these with 422 Unprocessable Entity)."""

    code = "inconsistent-checkpoint"
    title = "Inconsistent Checkpoint"
    http_status = 422


class ForkDetected(InconsistentCheckpoint):
    """Two signed checkpoints of one origin that no append-only log can both have signed: the
    same size with different roots, or a smaller tree that is not a prefix of a larger one
    (shown by a consistency proof bound to the larger root). The two signed checkpoints are
    kept as the proof (``ironroot.witness.ForkProof``)."""

    code = "fork-detected"
    title = "Log Fork Detected"


class UntrustedCheckpoint(BadSignature):
    """A checkpoint that carries no valid signature from the keys trusted for its origin, or a
    signature by such a key that fails (c2sp.org/tlog-witness: 403 Forbidden)."""

    code = "untrusted-checkpoint"
    title = "Untrusted Checkpoint"
    http_status = 403


class InsufficientCosignatures(VerificationFailed):
    """A checkpoint cosigned by fewer of the trusted witnesses than the required quorum."""

    code = "insufficient-cosignatures"
    title = "Insufficient Witness Cosignatures"


class UnknownIssuer(VerificationFailed):
    """An issuer or key id that no trust configuration names."""

    code = "unknown-issuer"
    title = "Unknown Issuer"


class ChainNotTrusted(VerificationFailed):
    """A certificate chain that does not reach a configured root, or does not match its DID."""

    code = "chain-not-trusted"
    title = "Untrusted Certificate Chain"


class CertificateExpired(VerificationFailed):
    """A certificate used outside its validity period."""

    code = "certificate-expired"
    title = "Certificate Expired"


# --- policy and access ---------------------------------------------------------------------


class PolicyRejected(IronrootError):
    """Well-formed, authentic input that a policy refuses."""

    code = "policy-rejected"
    title = "Rejected"
    http_status = 400
    exit_code = 1


class Unauthorized(IronrootError):
    """A caller that is not authenticated, or whose credentials are wrong."""

    code = "unauthorized"
    title = "Unauthorized"
    http_status = 401
    exit_code = 1


class NotFound(IronrootError):
    """Something asked for by id that does not exist."""

    code = "not-found"
    title = "Not Found"
    http_status = 404
    exit_code = 1


class UnknownLog(NotFound):
    """A checkpoint whose origin is not one of the logs a witness or monitor is configured
    for (c2sp.org/tlog-witness: 404 Not Found)."""

    code = "unknown-log"
    title = "Unknown Log"


class Conflict(IronrootError):
    """A request that conflicts with the current state."""

    code = "conflict"
    title = "Conflict"
    http_status = 409
    exit_code = 1


class OldSizeMismatch(Conflict):
    """An add-checkpoint request whose ``old`` size is not the size of the latest checkpoint
    the witness cosigned for that origin; ``size`` is the witness's (c2sp.org/tlog-witness:
    409 Conflict, the body that size in decimal)."""

    code = "old-size-mismatch"
    title = "Old Size Mismatch"

    def __init__(self, detail: str = "", *, size: int) -> None:
        super().__init__(detail)
        self.size = size


class InUse(Conflict):
    """A data directory (or device) another process already holds: one process serves it."""

    code = "in-use"
    title = "In Use"
    exit_code = 2


class StateReuse(Conflict):
    """A stateful key (LMS) whose one-time key would be used again, or whose state is gone."""

    code = "state-reuse"
    title = "One-Time Key Reuse"


# --- storage -------------------------------------------------------------------------------


class StorageError(IronrootError):
    """The store failed or holds data that does not match what was written."""

    code = "storage"
    title = "Storage Error"
    http_status = 503
    exit_code = 1


class StoreUnavailable(RetryLater, StorageError):
    """The store cannot be reached right now (a database that is down, a connection lost, a
    timeout): nothing was written by the failed call; retry after ``retry_after`` seconds."""

    code = "store-unavailable"
    title = "Service Unavailable"


class StaleBatch(StorageError):
    """A log write prepared from a tree size that is no longer the stored one (the fence): a
    stale or second writer's batch, refused whole."""

    code = "stale-batch"
    title = "Stale Write Refused"


# --- certificates --------------------------------------------------------------------------


class MalformedCertificate(MalformedInput):
    """An X.509 certificate, CSR or certificate extension that does not parse."""

    code = "malformed-certificate"
    title = "Malformed Certificate"


class InvalidLocator(MalformedInput):
    """An entry or operation locator that is not in a valid form (SCRAPI)."""

    code = "invalid-locator"
    title = "Invalid locator"


class PayloadMissing(MalformedStatement):
    """A Signed Statement whose payload is detached or absent (SCRAPI)."""

    code = "payload-missing"
    title = "Payload Missing"


# --- SPDM (DMTF DSP0274) -------------------------------------------------------------------


class MalformedSpdm(MalformedInput):
    """An SPDM message that does not parse: truncated, oversized, wrong code, version or field."""

    code = "malformed-spdm"
    title = "Malformed SPDM Message"


class SpdmProtocolError(VerificationFailed):
    """A well-formed SPDM message that breaks the protocol: out of order, unexpected, unbound."""

    code = "spdm-protocol"
    title = "SPDM Protocol Error"


class SpdmErrorResponse(SpdmProtocolError):
    """The SPDM responder answered with an ERROR message (its ErrorCode is in the detail)."""

    code = "spdm-error-response"
    title = "SPDM Error Response"


class SpdmTransportError(IronrootError):
    """The link to an SPDM peer failed: it cannot be reached, closed the connection, or did not
    answer in time (a malformed frame it sent is :class:`MalformedSpdm`)."""

    code = "spdm-transport"
    title = "SPDM Transport Error"
    http_status = 502
    exit_code = 1


# --- firmware bundles and reference values -------------------------------------------------


class MalformedFirmware(MalformedInput):
    """A firmware bundle or manifest that does not parse: bad marker, size, count or field."""

    code = "malformed-firmware"
    title = "Malformed Firmware Bundle"


class FirmwareRejected(VerificationFailed):
    """A well-formed firmware bundle that must not be activated."""

    code = "firmware-rejected"
    title = "Firmware Rejected"


class KeyDescriptorMismatch(FirmwareRejected):
    """The manifest's vendor key descriptors do not hash to the fused (expected) value."""

    code = "key-descriptor-mismatch"
    title = "Vendor Key Descriptor Mismatch"


class KeyNotInDescriptor(FirmwareRejected):
    """An active manifest key whose hash is not the descriptor entry at its index."""

    code = "key-not-in-descriptor"
    title = "Key Not In Descriptor"


class KeyRevoked(FirmwareRejected):
    """An active manifest key whose revocation bit is set."""

    code = "key-revoked"
    title = "Key Revoked"


class OwnerKeyMismatch(FirmwareRejected):
    """Owner keys that are absent, or do not hash to the fused owner key hash."""

    code = "owner-key-mismatch"
    title = "Owner Key Mismatch"


class SvnRollback(FirmwareRejected):
    """A firmware security version number below the minimum (anti-rollback)."""

    code = "svn-rollback"
    title = "Security Version Rollback"


class ManifestExpired(FirmwareRejected):
    """A manifest used outside its validity dates (not yet valid, or expired)."""

    code = "manifest-expired"
    title = "Manifest Outside Validity Dates"


class DigestMismatch(FirmwareRejected):
    """A TOC or component digest that does not match the bytes it covers."""

    code = "digest-mismatch"
    title = "Digest Mismatch"


class MissingSignature(BadSignature):
    """A required signature (one half of a dual signature) that is absent."""

    code = "missing-signature"
    title = "Missing Signature"


class MalformedCorim(MalformedInput):
    """A CoRIM, CoMID or signed CoRIM that does not parse as draft-ietf-rats-corim says."""

    code = "malformed-corim"
    title = "Malformed CoRIM"


# --- root of trust -------------------------------------------------------------------------


class FuseError(Conflict):
    """A fuse write that one-time-programmable fuses cannot take: clearing a bit, a second
    different value, a lower SVN or lifecycle, or revoking the last usable key."""

    code = "fuse"
    title = "Fuse Cannot Be Programmed"


class DeviceStateTampered(StorageError):
    """A root of trust whose persistent state does not verify: a state file edited, removed,
    added or restored from an older copy, its MAC altered, the obfuscated UDS altered, or the
    device's obfuscation key replaced. The device refuses to boot, quote or count."""

    code = "device-state-tampered"
    title = "Device State Tampered"


class StaleNonce(VerificationFailed):
    """Evidence (a quote) that answers another nonce than the one the verifier sent."""

    code = "stale-nonce"
    title = "Stale Or Mismatching Nonce"


# --- hardware evidence (AMD SEV-SNP, Intel TDX) --------------------------------------------


class MalformedEvidence(MalformedInput):
    """Attestation evidence (an SNP report, a TDX quote) that does not parse: wrong size,
    version, type or length field."""

    code = "malformed-evidence"
    title = "Malformed Evidence"


class EndorsementMismatch(VerificationFailed):
    """An endorsement certificate (VCEK, VLEK, PCK) whose claims disagree with the evidence:
    TCB, chip id, product or signing-key type."""

    code = "endorsement-mismatch"
    title = "Endorsement Does Not Match Evidence"


class CertificateRevoked(ChainNotTrusted):
    """A certificate listed as revoked in a CRL issued by its (verified) issuer."""

    code = "certificate-revoked"
    title = "Certificate Revoked"


class CollateralExpired(VerificationFailed):
    """Revocation or TCB collateral (a CRL, Intel TCB Info or QE Identity) used outside its
    validity window: its ``nextUpdate`` is before the verification time (or it has none), or it
    was issued after it. Refused unless the caller allows stale collateral."""

    code = "collateral-expired"
    title = "Collateral Expired"


class MalformedCollateral(MalformedInput):
    """Verification collateral (Intel TCB Info, QE Identity, their signing chain) that does not
    parse or is incomplete."""

    code = "malformed-collateral"
    title = "Malformed Collateral"


# --- HSM (the key boundary) ------------------------------------------------------------------


class RoleNotPermitted(Unauthorized):
    """An authenticated identity whose role does not allow the operation."""

    code = "role-not-permitted"
    title = "Role Not Permitted"
    http_status = 403


class IdentityLocked(Unauthorized):
    """An identity locked after too many wrong credentials (only a crypto officer unlocks it)."""

    code = "identity-locked"
    title = "Identity Locked"
    http_status = 403


class KeyNotExportable(PolicyRejected):
    """A request that would take a non-exportable key (or material derived from it) out of the
    key boundary: wrap, derive-then-export, backup, a PKCS#11 attribute read."""

    code = "key-not-exportable"
    title = "Key Not Exportable"
    http_status = 403


class KeyUsageNotPermitted(PolicyRejected):
    """A key used for an operation its usage attribute does not include."""

    code = "key-usage-not-permitted"
    title = "Key Usage Not Permitted"
    http_status = 403


class HsmErrorState(IronrootError):
    """The HSM is in its error state (a self-test failed): it refuses every operation until it
    is restarted."""

    code = "hsm-error-state"
    title = "HSM In Error State"
    http_status = 503
    exit_code = 1


class HsmZeroized(HsmErrorState):
    """The HSM was zeroized (a tamper event or an officer's zeroize): no key material is left."""

    code = "hsm-zeroized"
    title = "HSM Zeroized"


class Unreachable(StorageError):
    """A service that could not be reached: connection refused, a name that does not resolve,
    a timeout, or a TLS handshake that failed (an unknown CA, a client certificate missing)."""

    code = "unreachable"
    title = "Service Unreachable"

    @classmethod
    def of(cls, what: str, exc: BaseException) -> Unreachable:
        """``cannot reach <what>: <reason>``, the reason without the library's decoration; a
        TLS failure says whose certificate was the trouble and which option helps."""
        reason = _tls_reason(exc)
        if reason is None:
            reason = re.sub(r"^\[Errno -?\d+\]\s*", "", str(exc)).strip() or type(exc).__name__
        return cls(f"cannot reach {what}: {reason}")


# OpenSSL's X509_V_ERR codes for a chain that ends at no trusted CA
_UNKNOWN_ISSUER = frozenset({2, 18, 19, 20})
_HOSTNAME_MISMATCH = 62
_CLIENT_CERT_REFUSED = (
    "CERTIFICATE_REQUIRED",
    "BAD_CERTIFICATE",
    "UNKNOWN_CA",
    "CERTIFICATE_UNKNOWN",
)


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it was raised from (an HTTP library's error wraps the ``ssl`` one)."""
    chain: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and all(link is not seen for seen in chain):
        chain.append(link)
        link = link.__cause__ or link.__context__
    return chain


def _scheme(exc: BaseException) -> str | None:
    """The URL scheme of the request an HTTP client's error carries, if it carries one."""
    try:
        request = exc.request  # type: ignore[attr-defined]  # httpx: a property, unset raises
    except (AttributeError, RuntimeError):
        return None
    scheme = getattr(getattr(request, "url", None), "scheme", None)
    return scheme if isinstance(scheme, str) else None


def _tls_reason(exc: BaseException) -> str | None:
    """What a failed TLS connection means for the person at the client, or ``None`` when
    ``exc`` is not about TLS. Duck-typed on ``ssl``'s exceptions: this module imports
    nothing heavy."""
    for link in _causes(exc):
        if type(link).__module__ != "ssl":
            continue
        if type(link).__name__ == "SSLCertVerificationError":
            code = getattr(link, "verify_code", None)
            why = str(getattr(link, "verify_message", "") or "certificate verify failed")
            if code == _HOSTNAME_MISMATCH:
                return (
                    f"the server's TLS certificate is not for this host ({why}): use a name "
                    "it was issued for in the URL"
                )
            if code in _UNKNOWN_ISSUER:
                return (
                    f"the server's TLS certificate is not trusted ({why}): give the CA that "
                    "issued it with --ca (or IRONROOT_CA)"
                )
            return f"the server's TLS certificate does not verify ({why})"
        reason = str(getattr(link, "reason", "") or "")
        if any(marker in reason for marker in _CLIENT_CERT_REFUSED):
            return (
                f"the service refused the TLS connection ({reason.lower().replace('_', ' ')}): "
                "it requires a client certificate from a CA it trusts: give --client-cert "
                "and --client-key"
            )
        if reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"):
            return "the service does not speak TLS on this port: use an http:// URL"
    if "disconnected without sending a response" in str(exc):
        scheme = _scheme(exc)
        if scheme == "https":
            return (
                "the service closed the connection without answering: it may require a "
                "client certificate (mutual TLS: give --client-cert and --client-key)"
            )
        if scheme == "http":
            return (
                "the service closed the connection without answering: it may serve HTTPS "
                "only (use an https:// URL)"
            )
    return None


class SealedStoreError(StorageError):
    """A sealed key store that does not open under this device's sealing secret: another
    device, changed firmware, a destroyed store, or bytes that were altered."""

    code = "sealed-store"
    title = "Sealed Store Does Not Open"


class StoreRolledBack(SealedStoreError):
    """A sealed key store, or its anchor, that is not the latest one: it is behind (or ahead
    of) the monotonic counter the root of trust keeps for it, or the anchor that names the
    store's generation is missing. A restored older copy would bring back deleted keys and
    identities, clear lockouts and undo zeroization, so the HSM refuses to open it."""

    code = "store-rolled-back"
    title = "Sealed Store Rolled Back"


class AuditChainBroken(VerificationFailed):
    """An audit log whose hash chain does not verify: a record removed, altered or reordered,
    or a log that does not reach its checkpoint."""

    code = "audit-chain-broken"
    title = "Audit Log Chain Broken"


class MalformedReport(MalformedInput):
    """An OCP SAFE Short Form Report (JSON, JWS/JWT or CoRIM/COSE) that does not parse."""

    code = "malformed-report"
    title = "Malformed Security Review Report"


class ResultExpired(VerificationFailed):
    """An attestation result (EAR) used after its ``exp``, or before its ``iat``; or, for key
    release, issued before the nonce it answers (``result-predates-nonce``)."""

    code = "result-expired"
    title = "Attestation Result Expired"


# --- secure key release --------------------------------------------------------------------


class ReleaseDenied(PolicyRejected):
    """A key release refused by its policy: the attestation result is not affirming enough, or
    its claims do not satisfy the key's release policy."""

    code = "release-denied"
    title = "Key Release Denied"
    http_status = 403


class InvalidReleasePolicy(PolicyRejected):
    """A key release policy that is empty or malformed: it rejects every release."""

    code = "invalid-release-policy"
    title = "Invalid Key Release Policy"
    http_status = 403


class KeyBindingMismatch(VerificationFailed):
    """Attestation evidence whose report data binds another wrapping key than the one the
    release request names."""

    code = "key-binding-mismatch"
    title = "Evidence Binds Another Wrapping Key"
    http_status = 403


class Overloaded(RetryLater):
    """More work is waiting than the service accepts: retry after ``retry_after`` seconds."""

    code = "overloaded"
    title = "Service Unavailable"
    http_status = 503
    exit_code = 1


class ClockSkew(RetryLater):
    """This process's clock is too far behind a time the service already signed (a receipt
    time stored for the log): it refuses to sign more until the clocks agree, rather than
    sign a time that goes back or hold one far ahead; retry after ``retry_after`` seconds."""

    code = "clock-skew"
    title = "Service Unavailable"
    http_status = 503
    exit_code = 1
    default_retry_after = 30


# --- platform ------------------------------------------------------------------------------


class FlashProtected(PolicyRejected):
    """A write to platform flash outside the ranges the active PFM lets the component write:
    the RoT refuses it, logs it, and no byte changes."""

    code = "flash-protected"
    title = "Flash Region Protected"
    http_status = 403


# --- fleet admission -----------------------------------------------------------------------


class AdmissionDenied(PolicyRejected):
    """A node refused control-plane access: its attestation result is not affirming, an
    operator holds it in quarantine, or it is not admitted (any longer)."""

    code = "admission-denied"
    title = "Admission Denied"
    http_status = 403


class CredentialRejected(Unauthorized):
    """A client credential (a fleet X.509 credential presented over mutual TLS) that is
    missing, not the fleet's, outside its validity window, unknown or revoked."""

    code = "credential-rejected"
    title = "Credential Rejected"


# --- external audit ------------------------------------------------------------------------


class AuditBundleRejected(VerificationFailed):
    """An audit bundle that is not intact: not an audit bundle at all, a seal that does not
    verify or seals another index, or a member changed, swapped, missing or added since the
    node's root of trust sealed it. ``code`` says which (``bundle-malformed``,
    ``seal-invalid``, ``index-not-sealed``, ``member-changed``, ``member-missing``,
    ``member-unexpected``, ``member-unread``: a sealed member no verification step reads)."""

    code = "audit-bundle-rejected"
    title = "Audit Bundle Rejected"


# --- the dashboard -------------------------------------------------------------------------


class TooManyAttempts(RetryLater, Unauthorized):
    """Too many failed logins from one client in a short time: refused until ``retry_after``
    seconds have passed, whatever the credentials (the dashboard's login)."""

    code = "too-many-attempts"
    title = "Too Many Requests"
    http_status = 429


# --- GPU reference integrity manifests (SWID-tag RIMs) -------------------------------------


class MalformedRim(MalformedInput):
    """A SWID-tag Reference Integrity Manifest (ISO/IEC 19770-2, TCG RIM IM) that does not
    parse: not XML, a DTD or entity, over a size limit, or a missing or malformed field."""

    code = "malformed-rim"
    title = "Malformed RIM"


class MeasurementMismatch(VerificationFailed):
    """Measurements that no trusted reference value allows: ``indexes`` lists the measurement
    blocks (SPDM indexes) whose value is absent, of the wrong size or not an allowed value."""

    code = "measurement-mismatch"
    title = "Measurement Not Allowed"

    def __init__(
        self,
        detail: str = "",
        *,
        code: str | None = None,
        check: str | None = None,
        indexes: tuple[int, ...] = (),
    ) -> None:
        super().__init__(detail, code=code, check=check)
        self.indexes = indexes
