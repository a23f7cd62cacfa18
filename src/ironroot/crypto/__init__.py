"""The algorithm suite: signers, verifiers, keys and key ids.

Every signature in Ironroot is made and checked through this package.
"""

from ironroot.crypto._algorithms import Algorithm
from ironroot.crypto._interface import Signer, Verifier
from ironroot.crypto._keys import PrivateKey, PublicKey, cose_key_thumbprint

__all__ = [
    "Algorithm",
    "PrivateKey",
    "PublicKey",
    "Signer",
    "Verifier",
    "cose_key_thumbprint",
]
