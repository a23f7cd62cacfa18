"""Attacks on admission and the planes: a replayed nonce, stolen evidence, a debug-unlocked part,
a drifted node keeping its credential, a credential on the wrong plane."""

from __future__ import annotations

import dataclasses

from ironroot.demo._act_fleet import admit_over_https, post_admission, prepare_answer
from ironroot.demo._act_supply import build_firmware
from ironroot.demo._attempt import Attempt, node_at, refusal_of
from ironroot.demo._world import (
    Story,
)


def replayed_nonce(story: Story, attempt: Attempt) -> None:
    fleet = story.need(story.fleet, "fleet")
    node = node_at(story, 0)
    admit_over_https(story, node)
    request = story.need(story.last_admission, "admission request")
    attempt.note(f"{node}'s admission request, captured on the wire, sent again")
    response = post_admission(story, request)
    attempt.note(f"HTTP {response.status_code}; {node} stays {fleet.record_of(node).status}")
    raise refusal_of(response)


def stolen_identity(story: Story, attempt: Attempt) -> None:
    thief, victim = node_at(story, 0), node_at(story, 1)
    answer = prepare_answer(story, victim, evidence_from=thief)
    evidence = dataclasses.replace(answer.evidence, node=victim)
    response = post_admission(story, answer.request(evidence))
    attempt.note(f"{thief}'s genuine quote sent as {victim}'s answer; HTTP {response.status_code}")
    raise refusal_of(response)


def debug_unlocked(story: Story, attempt: Attempt, *, debug_locked: bool = False) -> None:
    """``debug_locked=True``: the same hand-made quote says what the part is (debug locked);
    the honesty test's input: it must be admitted."""
    from ironroot.crypto import Algorithm
    from ironroot.fleet import report_data
    from ironroot.rot import create_quote, derive_layers

    fleet = story.need(story.fleet, "fleet")
    node = node_at(story, -1)
    answer = prepare_answer(story, node)
    # The part's runtime signs, with its own RT alias keys over what it booted and for this
    # challenge, a quote saying debug is enabled, although its ROM certified "debug locked" in
    # the FMC alias certificate: the verifier refuses the quote before any policy runs.
    device = fleet.rot(node)
    state = story.need(device.boot_state, f"{node}'s boot state")
    layers = derive_layers(device.fuses, state.pcrs)
    quote = create_quote(
        nonce=report_data(answer.nonce, answer.spkis),
        rt_alias=layers.rt_alias,
        ueid=layers.ueid,
        state=state,
        idevid_certificates={
            a: device.idevid_certificate(a) for a in (Algorithm.ES384, Algorithm.ML_DSA_87)
        },
        lifecycle=device.fuses.lifecycle,
        debug_locked=debug_locked,
    )
    response = post_admission(
        story, answer.request(dataclasses.replace(answer.evidence, quote=quote))
    )
    record = fleet.record_of(node)
    attempt.note(
        f"{node}'s RoT quotes debug {'locked' if debug_locked else 'unlocked'}; "
        f"HTTP {response.status_code}; its registry "
        f"entry stays {record.status} (a refused request changes nothing)"
    )
    raise refusal_of(response)


def drifted_node(story: Story, attempt: Attempt) -> None:
    from ironroot.fleet import scan_attest

    fleet = story.need(story.fleet, "fleet")
    authority = story.need(story.authority, "admission")
    servers = story.need(story.servers, "fleet services")
    node = node_at(story, -2)
    # The attacker holds the node's control-plane key in memory from before the change: after
    # it, the sealed key would not even open under the node's new measurements.
    with story.http(plane="control", node=node) as client:
        secret = build_firmware(story, "bmc", "2.0-patched", 4)
        fleet.rot(node).boot(secret, now=story.now())
        attempt.note(
            f"{node}'s BMC flash reprogrammed out of band with vendor-signed, unlogged firmware"
            " (its control-plane key kept in memory)"
        )
        status = scan_attest(fleet, authority)(node, story.now())
        attempt.note(f"the scanner re-attests it: {status}, its credentials revoked")
        response = client.get(f"{servers.control_url}/v1/whoami")
    attempt.note(f"it presents its old control-plane credential: HTTP {response.status_code}")
    raise refusal_of(response)


def wrong_plane(story: Story, attempt: Attempt) -> None:
    servers = story.need(story.servers, "fleet services")
    node = node_at(story, 0)
    with story.http(plane="control", node=node) as client:
        response = client.get(f"{servers.data_url}/v1/whoami")
    attempt.note(
        f"{node}'s control-plane credential presented to the data plane over mutual TLS; "
        f"HTTP {response.status_code}"
    )
    raise refusal_of(response)
