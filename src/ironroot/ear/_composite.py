"""The composite nonce rule: how one challenge reaches a confidential VM and its GPUs.

Defined here, below both the verifier (:mod:`ironroot.attestation`, which appraises a
composite) and the HSM (:mod:`ironroot.hsm`, which releases keys on its EAR), so that both
compute the same bytes. For a challenge ``N`` and a VM with ``n`` GPUs (``0 <= n <=``
:data:`MAX_GPUS`), GPU ``i`` (0-based, in the order the composite lists them) answers

    gpu_nonce(N, i) = SHA-256("ironroot/gpu-nonce/v1" ‖ N ‖ u32be(i))

and the CVM's evidence (a VM's: never one of :data:`DEVICE_FORMATS`) answers, by its own
format's binding rule, the composite nonce

    cvm_nonce(N, n) = SHA-256("ironroot/composite/v1" ‖ N ‖ u32be(n) ‖ gpu_nonce(N, 0) ‖ … ‖
                              gpu_nonce(N, n - 1))

SEV-SNP and TDX carry 64 bytes of report data: ``cvm_nonce`` zero-padded; the Ironroot RoT
quote carries it exactly (:func:`answers_composite` accepts both). For a key release
(``docs/keyrelease.md``), ``N`` is the key service's 32-byte nonce ‖ SHA-256 of the TEE's
wrapping key: the CVM's signed report data then commits to the release nonce, the wrapping
key, the number of GPUs and every GPU's nonce.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from ironroot.errors import MalformedInput

__all__ = [
    "COMPOSITE_NONCE_CONTEXT",
    "DEVICE_FORMATS",
    "GPU_NONCE_CONTEXT",
    "MAX_GPUS",
    "answers_composite",
    "composite_nonce",
    "gpu_nonce",
]

GPU_NONCE_CONTEXT: Final = b"ironroot/gpu-nonce/v1"
COMPOSITE_NONCE_CONTEXT: Final = b"ironroot/composite/v1"
MAX_GPUS: Final = 64
"""The most GPUs one composite may carry."""
DEVICE_FORMATS: Final = frozenset({"nvidia-gpu", "spdm"})
"""Evidence formats of devices (a GPU, an SPDM responder): never a composite's CVM. A GPU
signs ``composite_nonce(N, n)`` as readily as any nonce it is asked for, so in the CVM's place
its report would stand for a VM that is not there; the verifier refuses it (``not-a-cvm``)
and so does the key release."""
_PADDED: Final = 64


def _checked(challenge: bytes, count: int) -> None:
    if not isinstance(challenge, bytes) or not challenge:
        raise MalformedInput("a composite needs the challenge nonce")
    if isinstance(count, bool) or not isinstance(count, int):
        raise MalformedInput(f"a composite counts its GPUs with an integer, not {count!r:.20}")
    if not 0 <= count <= MAX_GPUS:
        raise MalformedInput(f"a composite carries 0 to {MAX_GPUS} GPUs, not {count}")


def gpu_nonce(challenge: bytes, index: int) -> bytes:
    """The nonce GPU ``index`` of a composite answers (module docs)."""
    _checked(challenge, index)
    return hashlib.sha256(GPU_NONCE_CONTEXT + challenge + index.to_bytes(4, "big")).digest()


def composite_nonce(challenge: bytes, gpu_count: int) -> bytes:
    """The nonce the CVM's evidence answers for a composite of ``gpu_count`` GPUs."""
    _checked(challenge, gpu_count)
    digest = hashlib.sha256(COMPOSITE_NONCE_CONTEXT + challenge + gpu_count.to_bytes(4, "big"))
    for index in range(gpu_count):
        digest.update(gpu_nonce(challenge, index))
    return digest.digest()


def answers_composite(report_data: bytes, challenge: bytes, gpu_count: int) -> bool:
    """Whether a CVM's ``report_data`` is :func:`composite_nonce` of ``challenge`` and
    ``gpu_count``, exactly or zero-padded to 64 bytes (module docs)."""
    expected = composite_nonce(challenge, gpu_count)
    if not isinstance(report_data, bytes):
        raise MalformedInput("a CVM's report data is bytes")
    if len(report_data) == _PADDED:
        expected = expected.ljust(_PADDED, b"\x00")
    return hmac.compare_digest(report_data, expected)
