"""Offline verification of SPDM evidence (:class:`SpdmEvidence`): a pure function of the
record, the verifier's nonce, the trusted root certificate and ``now``.

It repeats the requester's checks on the recorded bytes: the VCA messages decode, are all at
the negotiated version, the responder has certificates and signs measurements (the same
:func:`check_capabilities`), and the selected algorithms are ones offered (the same
:func:`negotiated_connection`); the certificate chain verifies to the root; the
GET_MEASUREMENTS asks for a signature and carries the verifier's nonce, and the MEASUREMENTS
answers its operation (the count, the one index asked, or all blocks) with opaque data in the
negotiated format (the same :func:`check_opaque_data`) and a Nonce the responder chose, not the
request's reflected (the same :func:`check_fresh_nonce`); the MEASUREMENTS signature verifies
over L1/L2 = VCA ‖ request ‖ response (without its signature) with the 1.2+ signing-context
prefix, under the leaf key.
"""

from __future__ import annotations

import functools
import hmac
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from ironroot.crypto import PublicKey
from ironroot.errors import (
    SpdmProtocolError,
    StaleNonce,
    UnsupportedAlgorithm,
)
from ironroot.spdm._certchain import (
    CertificateChain,
    SpdmChainCache,
    verify_certificate_chain_until,
)
from ironroot.spdm._constants import SIGNING_SUITES
from ironroot.spdm._evidence import SpdmEvidence
from ironroot.spdm._measurements import AnyMeasurementBlock
from ironroot.spdm._messages import (
    Algorithms,
    Capabilities,
    GetCapabilities,
    GetMeasurements,
    GetVersion,
    Measurements,
    NegotiateAlgorithms,
    Version,
)
from ironroot.spdm._requester import (
    Connection,
    check_capabilities,
    check_fresh_nonce,
    check_measurement_operation,
    check_opaque_data,
    negotiated_connection,
)
from ironroot.spdm._signing import check_transcript_signature, measurement_signing_message

__all__ = ["VerifiedSpdm", "verify_spdm_evidence"]


@dataclass(frozen=True, slots=True)
class VerifiedSpdm:
    """What verified SPDM evidence proves: the connection, the device certificate and the
    signed measurement blocks answering ``nonce``."""

    connection: Connection
    leaf: x509.Certificate
    nonce: bytes
    blocks: tuple[AnyMeasurementBlock, ...]
    valid_until: datetime | None = None
    """The first ``notAfter`` of the certificate path that verified (root to leaf)."""


@functools.lru_cache(maxsize=256)
def _connection(vca: tuple[bytes, ...]) -> Connection:
    """The connection the six recorded VCA messages settle (cached by their exact bytes: the
    answer is a pure function of them, and a device answers every session's VCA with the
    same bytes; a failure is not cached)."""
    GetVersion.decode(vca[0])
    offered = {e.spdm_version for e in Version.decode(vca[1]).entries}
    get_capabilities = GetCapabilities.decode(vca[2])  # its version is the one chosen
    capabilities = Capabilities.decode(vca[3])
    negotiate = NegotiateAlgorithms.decode(vca[4])
    algorithms = Algorithms.decode(vca[5])
    version = algorithms.version
    if version not in offered or not (
        get_capabilities.version == capabilities.version == negotiate.version == version
    ):
        raise SpdmProtocolError("the recorded VCA messages disagree on the SPDM version")
    check_capabilities(capabilities)
    return negotiated_connection(
        version,
        capabilities,
        algorithms,
        asym_offer=negotiate.base_asym_algo,
        hash_offer=negotiate.base_hash_algo,
        measurement_spec_offer=negotiate.measurement_specification,
        opaque_format_offer=negotiate.other_params_support,
    )


def verify_spdm_evidence(
    evidence: bytes | SpdmEvidence,
    *,
    nonce: bytes,
    root_certificate: bytes,
    now: datetime,
    cache: SpdmChainCache | None = None,
) -> VerifiedSpdm:
    """Verify recorded SPDM evidence; raise ``MalformedSpdm``, ``SpdmProtocolError``,
    ``ChainNotTrusted``/``CertificateExpired``, ``StaleNonce`` or ``BadSignature``.
    ``cache``: chains verified before (:class:`SpdmChainCache`; the same answer)."""
    record = evidence if isinstance(evidence, SpdmEvidence) else SpdmEvidence.decode(evidence)
    connection = _connection(record.vca)
    chain = CertificateChain.decode(record.certificate_chain, hash_size=connection.hash_size)
    leaf, valid_until = verify_certificate_chain_until(
        chain, root=root_certificate, hash_algo=connection.base_hash_algo, now=now, cache=cache
    )
    request = GetMeasurements.decode(record.request)
    if request.version != connection.version or not request.signature_requested:
        raise SpdmProtocolError("the recorded GET_MEASUREMENTS is not a signed request")
    if request.nonce is None or not hmac.compare_digest(request.nonce, nonce):
        raise StaleNonce("the SPDM measurements answer another nonce")
    signature_size = connection.signature_size
    answer = Measurements.decode(
        record.response,
        signature_size=signature_size,
        measurement_hash_algo=connection.measurement_hash_algo,
    )
    if answer.version != connection.version or answer.slot_id != request.slot_id:
        raise SpdmProtocolError("the recorded MEASUREMENTS does not answer the request")
    if request.requester_context != answer.requester_context:
        raise SpdmProtocolError("the MEASUREMENTS requester context is not the request's")
    check_fresh_nonce(answer.nonce, request.nonce, "MEASUREMENTS")
    check_measurement_operation(answer, request.operation)
    check_opaque_data(connection, answer.opaque_data, "MEASUREMENTS")
    algorithm = SIGNING_SUITES[connection.base_asym_algo][0]
    leaf_key = leaf.public_key()
    if not isinstance(leaf_key, ec.EllipticCurvePublicKey):
        raise SpdmProtocolError("the leaf certificate key is not an ECDSA key")
    try:
        key = PublicKey(leaf_key, algorithm)
    except UnsupportedAlgorithm as exc:
        raise SpdmProtocolError("the leaf key does not fit the negotiated algorithm") from exc
    transcript = b"".join(record.vca) + record.request + record.response[:-signature_size]
    message = measurement_signing_message(connection.version, connection.base_hash_algo, transcript)
    check_transcript_signature(key, answer.signature, message, "MEASUREMENTS", "L1/L2")
    return VerifiedSpdm(connection, leaf, nonce, answer.blocks, valid_until)
