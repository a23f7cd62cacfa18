"""The algorithm suite, named by COSE algorithm identifiers (IANA COSE Algorithms registry)."""

from __future__ import annotations

import enum

from ironroot.errors import UnsupportedAlgorithm

__all__ = ["Algorithm"]


class Algorithm(enum.Enum):
    """A signature algorithm; the value is its COSE algorithm id."""

    ES256 = -7
    ES384 = -35
    ES512 = -36
    EDDSA = -8
    ED25519 = -19
    ML_DSA_44 = -48
    ML_DSA_65 = -49
    ML_DSA_87 = -50
    HSS_LMS = -46

    @property
    def cose_id(self) -> int:
        return self.value

    @property
    def label(self) -> str:
        """The name used in configuration files and JOSE (``ES256``, ``ML-DSA-87``, ``EdDSA``)."""
        return _LABELS[self]

    @property
    def is_post_quantum(self) -> bool:
        return self in (
            Algorithm.ML_DSA_44,
            Algorithm.ML_DSA_65,
            Algorithm.ML_DSA_87,
            Algorithm.HSS_LMS,
        )

    @classmethod
    def from_label(cls, label: str) -> Algorithm:
        try:
            return _BY_LABEL[label]
        except KeyError:
            raise UnsupportedAlgorithm(f"unknown algorithm name {label!r}") from None

    @classmethod
    def from_cose_id(cls, value: object) -> Algorithm:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UnsupportedAlgorithm("COSE algorithm id must be an integer")
        try:
            return cls(value)
        except ValueError:
            raise UnsupportedAlgorithm(f"unsupported COSE algorithm {value}") from None


_LABELS: dict[Algorithm, str] = {
    Algorithm.ES256: "ES256",
    Algorithm.ES384: "ES384",
    Algorithm.ES512: "ES512",
    Algorithm.EDDSA: "EdDSA",
    Algorithm.ED25519: "Ed25519",
    Algorithm.ML_DSA_44: "ML-DSA-44",
    Algorithm.ML_DSA_65: "ML-DSA-65",
    Algorithm.ML_DSA_87: "ML-DSA-87",
    Algorithm.HSS_LMS: "HSS-LMS",
}
_BY_LABEL: dict[str, Algorithm] = {label: alg for alg, label in _LABELS.items()}
