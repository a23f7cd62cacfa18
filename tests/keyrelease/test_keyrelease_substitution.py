"""A party between the TEE and the key service swaps one releasable key for another.

The TEE asks for one key; a proxy sends its request (EAR, nonce, wrapping key) to the release
of another key whose policy the same EAR satisfies, and relabels the answer's ``kid``. The HSM
really released that other key, to this TEE, for this nonce, so its statement verifies: only
what the HSM signed about *which* key it released (the handle) tells the two apart. The
response's ``kid`` is the key service's label, which nothing signs.
"""

from __future__ import annotations

import dataclasses

import pytest
from _kr_helpers import Harness

from ironroot.errors import KeyBindingMismatch


def _swapped(harness: Harness) -> tuple[bytes, object]:
    """A release of ``azure-key`` relabelled as ``cel-key``, and its nonce."""
    nonce = harness.nonce()
    released = harness.service.release("azure-key", harness.request(harness.ear(nonce), nonce))
    return nonce, dataclasses.replace(released, kid="cel-key")


def test_a_release_of_another_key_relabelled_is_refused_by_its_handle(harness: Harness) -> None:
    nonce, swapped = _swapped(harness)
    with pytest.raises(KeyBindingMismatch) as caught:
        harness.tee.unwrap(
            swapped,  # type: ignore[arg-type]
            nonce=nonce,
            hsm_roots=harness.hsm_roots,
            now=harness.clock.now,
            kid="cel-key",
            handle=harness.handles["cel-key"],
        )
    assert caught.value.code == "other-key"
    assert str(caught.value) == (
        f"the HSM released key {harness.handles['azure-key']}, not {harness.handles['cel-key']}"
    )


def test_the_pinned_handle_of_the_key_released_unwraps(harness: Harness) -> None:
    nonce = harness.nonce()
    released = harness.service.release("cel-key", harness.request(harness.ear(nonce), nonce))
    key = harness.tee.unwrap(
        released,
        nonce=nonce,
        hsm_roots=harness.hsm_roots,
        now=harness.clock.now,
        kid="cel-key",
        handle=harness.handles["cel-key"],
    )
    assert harness.holds("cel-key", key.material)
