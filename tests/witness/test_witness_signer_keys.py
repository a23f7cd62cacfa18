"""A note signer and a cosigner take the same keys (VerifierKey.of_signer): the signer's own
public key, of a signature type of their kind; anything else is refused as it is built."""

from __future__ import annotations

import pytest

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import MalformedInput, UnsupportedAlgorithm
from ironroot.log import NoteSigner
from ironroot.witness import Cosigner

SIGNERS = [NoteSigner, Cosigner]


@pytest.mark.parametrize("make", SIGNERS)
def test_another_key_of_the_same_algorithm_is_not_the_signer_s(make: type) -> None:
    key = PrivateKey.generate(Algorithm.ED25519)
    other = PrivateKey.generate(Algorithm.ED25519)
    with pytest.raises(MalformedInput, match="not the signer's key") as info:
        make("example.com/key", key, public_key=other.public_key)
    assert type(info.value) is MalformedInput
    assert info.value.code == "malformed"


@pytest.mark.parametrize("make", SIGNERS)
def test_a_public_key_of_another_algorithm_is_refused(make: type) -> None:
    key = PrivateKey.generate(Algorithm.ED25519)
    other = PrivateKey.generate(Algorithm.ML_DSA_44)
    with pytest.raises(UnsupportedAlgorithm, match="does not match the signer's") as info:
        make("example.com/key", key, public_key=other.public_key)
    assert info.value.code == "unsupported-algorithm"


@pytest.mark.parametrize("make", SIGNERS)
def test_its_own_public_key_given_makes_the_same_signer(make: type) -> None:
    key = PrivateKey.generate(Algorithm.ED25519)
    given = make("example.com/key", key, public_key=key.public_key)
    assert given.verifier() == make("example.com/key", key).verifier()
