"""Attestation results and their freshness: the EAR format and challenge nonces.

:class:`AttestationResult` is an EAT Attestation Result (draft-ietf-rats-ear) with its AR4SI
trustworthiness vector, signed as a JWT or CWT by :func:`sign_ear_jwt` / :func:`sign_ear_cwt`
and checked by :func:`verify_ear`; :class:`NonceStore` issues and redeems single-use challenge
nonces; :func:`gpu_nonce` and :func:`composite_nonce` are the composite rule (a VM and its
GPUs under one challenge). The verifier (:mod:`ironroot.attestation`) produces results; the HSM
(:mod:`ironroot.hsm`) checks them itself before it releases a key, which is why this layer
sits below both.
"""

from typing import TYPE_CHECKING

from ironroot._lazy import lazy_package

if TYPE_CHECKING:
    from ironroot.ear._composite import (
        COMPOSITE_NONCE_CONTEXT,
        DEVICE_FORMATS,
        GPU_NONCE_CONTEXT,
        MAX_GPUS,
        answers_composite,
        composite_nonce,
        gpu_nonce,
    )
    from ironroot.ear._model import (
        AR4SI,
        EAR_PROFILE,
        TRUST_CATEGORIES,
        TRUST_CLAIM_TAGS,
        Appraisal,
        AttestationResult,
        TrustTier,
        VerifierId,
        tier_of,
    )
    from ironroot.ear._nonce import NONCE_SIZE, ChallengeLimits, NonceStore
    from ironroot.ear._token import (
        CLOCK_SKEW,
        CWT_MEDIA_TYPE,
        JWT_MEDIA_TYPE,
        decode_ear,
        key_map,
        read_ear_unchecked,
        sign_ear_cwt,
        sign_ear_jwt,
        verify_ear,
    )

__all__ = [
    "AR4SI",
    "CLOCK_SKEW",
    "COMPOSITE_NONCE_CONTEXT",
    "CWT_MEDIA_TYPE",
    "DEVICE_FORMATS",
    "EAR_PROFILE",
    "GPU_NONCE_CONTEXT",
    "JWT_MEDIA_TYPE",
    "MAX_GPUS",
    "NONCE_SIZE",
    "TRUST_CATEGORIES",
    "TRUST_CLAIM_TAGS",
    "Appraisal",
    "AttestationResult",
    "ChallengeLimits",
    "NonceStore",
    "TrustTier",
    "VerifierId",
    "answers_composite",
    "composite_nonce",
    "decode_ear",
    "gpu_nonce",
    "key_map",
    "read_ear_unchecked",
    "sign_ear_cwt",
    "sign_ear_jwt",
    "tier_of",
    "verify_ear",
]

__getattr__, __dir__ = lazy_package(__name__, __file__)
