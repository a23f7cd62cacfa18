"""A key release and a verifier policy that was just replaced.

A key's release policy is immutable (it is the key's attribute in the HSM; a new policy is a
new key), so no release races a change of it. What can change under a release is the
verifier's appraisal policy: an EAR appraised under the policy just replaced stays valid
until it expires. A key that must not go to a VM appraised under an old policy names the
policy in its release policy (``ear.appraisal-policy-id``), and the HSM refuses the rest.
"""

from __future__ import annotations

from _kr_helpers import assert_problem, build_harness, make_ear

from ironroot.errors import ReleaseDenied
from ironroot.hsm import KeyAttributes, KeyType
from ironroot.keyrelease import (
    KeyReleaseServerThread,
    ReleasableKey,
    ReleasedKey,
    create_keyrelease_app,
)

PINNED = (
    'status == "affirming" && claims.submods.ironroot["ear.appraisal-policy-id"] == "policy/v2"'
)


def test_an_ear_appraised_under_a_replaced_policy_releases_no_key_that_pins_the_new_one() -> None:
    harness = build_harness()
    attributes = KeyAttributes.of(["encrypt", "decrypt"], exportable=True, release_policy=PINNED)
    handle = harness.hsm.generate(harness.officer, KeyType.AES_256, attributes)
    harness.service.add_key(ReleasableKey("pinned-key", handle))
    harness.handles["pinned-key"] = handle
    with harness.http, KeyReleaseServerThread(create_keyrelease_app(harness.service)) as server:
        harness.url = server.url
        nonce = harness.nonce()
        report_data = harness.tee.report_data(nonce)
        old = make_ear(harness.verifier_key, report_data, policy_id="policy/v1")
        refused = harness.post("pinned-key", old, nonce)
        assert_problem(refused, ReleaseDenied, "policy-claims")
        nonce = harness.nonce()  # the refusal spent the first one
        new = make_ear(harness.verifier_key, harness.tee.report_data(nonce), policy_id="policy/v2")
        released = harness.post("pinned-key", new, nonce)
        assert released.status_code == 200, released.content
    key = harness.unwrap(ReleasedKey.parse(released.content), nonce)
    assert harness.holds("pinned-key", key)
