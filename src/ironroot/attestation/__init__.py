"""The attestation verifier (RFC 9334 Verifier role): evidence, and later appraisal and results.

:mod:`ironroot.attestation.evidence` turns hardware evidence into :class:`EvidenceClaims`.
"""

from ironroot.attestation.evidence import (
    EVIDENCE_FORMATS,
    EvidenceClaims,
    VerifyOptions,
    verify_evidence,
)

__all__ = ["EVIDENCE_FORMATS", "EvidenceClaims", "VerifyOptions", "verify_evidence"]
