"""A note signer and a cosigner take the same keys (VerifierKey.of_signer): the signer's own
public key, of a signature type of their kind; anything else is refused as it is built."""

from __future__ import annotations

import pytest

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import MalformedInput, UnsupportedAlgorithm
from ironroot.log import NoteSigner
from ironroot.witness import Cosigner

SIGNERS = [NoteSigner, Cosigner]
# another key given as the signer's public key: of its algorithm, and of another one
REFUSED = [
    (Algorithm.ED25519, MalformedInput, "malformed", "not the signer's key"),
    (Algorithm.ML_DSA_44, UnsupportedAlgorithm, "unsupported-algorithm", "not match the signer"),
]


@pytest.mark.parametrize("make", SIGNERS)
@pytest.mark.parametrize(("algorithm", "error", "code", "says"), REFUSED)
def test_a_public_key_that_is_not_the_signer_s_is_refused(
    make: type, algorithm: Algorithm, error: type[MalformedInput], code: str, says: str
) -> None:
    key = PrivateKey.generate(Algorithm.ED25519)
    other = PrivateKey.generate(algorithm)
    with pytest.raises(error, match=says) as info:
        make("example.com/key", key, public_key=other.public_key)
    assert type(info.value) is error
    assert info.value.code == code


@pytest.mark.parametrize("make", SIGNERS)
def test_its_own_public_key_given_makes_the_same_signer(make: type) -> None:
    key = PrivateKey.generate(Algorithm.ED25519)
    given = make("example.com/key", key, public_key=key.public_key)
    assert given.verifier() == make("example.com/key", key).verifier()
