"""Attacks on admission and the planes: a replayed nonce, stolen evidence, a debug-unlocked part,
a drifted node keeping its credential, a credential on the wrong plane."""

from __future__ import annotations

import dataclasses

from ironroot.demo._act_fleet import admit_over_https
from ironroot.demo._act_supply import build_firmware
from ironroot.demo._attempt import Attempt, node_at, refusal_of
from ironroot.demo._world import (
    Story,
)


def replayed_nonce(story: Story, attempt: Attempt) -> None:
    fleet = story.need(story.fleet, "fleet")
    servers = story.need(story.servers, "fleet services")
    node = node_at(story, 0)
    admit_over_https(story, node)
    request = story.last_admission  # type: ignore[attr-defined]
    attempt.note(f"{node}'s last admission request, captured on the wire, sent again")
    with story.http() as client:
        response = client.post(
            f"{servers.admission_url}/fleet/admission",
            content=request.encode(),
            headers={"content-type": "application/cbor"},
        )
    attempt.note(f"HTTP {response.status_code}; {node} stays {fleet.record_of(node).status}")
    raise refusal_of(response, 400)


def stolen_identity(story: Story, attempt: Attempt) -> None:
    from ironroot.crypto import Algorithm, PrivateKey
    from ironroot.fleet import PLANES, AdmissionRequest, collect_evidence, decode_nonce, make_csr

    fleet = story.need(story.fleet, "fleet")
    servers = story.need(story.servers, "fleet services")
    thief, victim = node_at(story, 0), node_at(story, 1)
    with story.http() as client:
        answer = client.post(
            f"{servers.admission_url}/fleet/admission/challenge", json={"node": victim}
        )
        nonce = decode_nonce(answer.json()["nonce"])
        keys = {p: PrivateKey.generate(Algorithm.ES384) for p in PLANES}
        spkis = {p: k.public_key.to_der() for p, k in keys.items()}
        evidence = collect_evidence(fleet, thief, nonce=nonce, keys=spkis, now=story.now())
        evidence = dataclasses.replace(evidence, node=victim)
        request = AdmissionRequest(
            victim,
            nonce,
            evidence.encode(),
            {p: make_csr(k, node=victim, plane=p) for p, k in keys.items()},
        )
        response = client.post(
            f"{servers.admission_url}/fleet/admission",
            content=request.encode(),
            headers={"content-type": "application/cbor"},
        )
    attempt.note(f"{thief}'s genuine quote sent as {victim}'s answer; HTTP {response.status_code}")
    raise refusal_of(response, 400)


def debug_unlocked(story: Story, attempt: Attempt) -> None:
    from ironroot.crypto import Algorithm, PrivateKey
    from ironroot.fleet import (
        PLANES,
        AdmissionRequest,
        collect_evidence,
        decode_nonce,
        make_csr,
        report_data,
    )
    from ironroot.rot import create_quote, derive_layers

    fleet = story.need(story.fleet, "fleet")
    servers = story.need(story.servers, "fleet services")
    node = node_at(story, -1)
    with story.http() as client:
        answer = client.post(
            f"{servers.admission_url}/fleet/admission/challenge", json={"node": node}
        )
        nonce = decode_nonce(answer.json()["nonce"])
        keys = {p: PrivateKey.generate(Algorithm.ES384) for p in PLANES}
        spkis = {p: k.public_key.to_der() for p, k in keys.items()}
        evidence = collect_evidence(fleet, node, nonce=nonce, keys=spkis, now=story.now())
        # An RMA part whose debug fuse was never blown: its RoT signs what it is, debug on.
        device = fleet.rot(node)
        state = device.boot_state
        layers = derive_layers(device.fuses, state.pcrs)
        quote = create_quote(
            nonce=report_data(nonce, spkis),
            rt_alias=layers.rt_alias,
            ueid=layers.ueid,
            state=state,
            idevid_certificates={
                a: device.idevid_certificate(a) for a in (Algorithm.ES384, Algorithm.ML_DSA_87)
            },
            lifecycle=device.fuses.lifecycle,
            debug_locked=False,
        )
        evidence = dataclasses.replace(evidence, quote=quote)
        request = AdmissionRequest(
            node,
            nonce,
            evidence.encode(),
            {p: make_csr(k, node=node, plane=p) for p, k in keys.items()},
        )
        response = client.post(
            f"{servers.admission_url}/fleet/admission",
            content=request.encode(),
            headers={"content-type": "application/cbor"},
        )
    record = fleet.record_of(node)
    attempt.note(
        f"{node}'s RoT quotes debug unlocked; HTTP {response.status_code}, {record.status}"
    )
    raise refusal_of(response, 403)


def drifted_node(story: Story, attempt: Attempt) -> None:
    from ironroot.fleet import scan_attest

    fleet = story.need(story.fleet, "fleet")
    authority = story.need(story.authority, "admission")
    servers = story.need(story.servers, "fleet services")
    node = node_at(story, -2)
    secret = build_firmware(story, "bmc", "2.0-patched", 4)
    fleet.rot(node).boot(secret, now=story.now())
    attempt.note(
        f"{node}'s BMC flash reprogrammed out of band with vendor-signed, unlogged firmware"
    )
    status = scan_attest(fleet, authority)(node, story.now())
    attempt.note(f"the scanner re-attests it: {status}, its credentials revoked")
    with story.http(plane="control", node=node) as client:
        response = client.get(f"{servers.control_url}/v1/whoami")
    attempt.note(f"it presents its old control-plane credential: HTTP {response.status_code}")
    raise refusal_of(response, 403)


def wrong_plane(story: Story, attempt: Attempt) -> None:
    servers = story.need(story.servers, "fleet services")
    node = node_at(story, 0)
    with story.http(plane="control", node=node) as client:
        response = client.get(f"{servers.data_url}/v1/whoami")
    attempt.note(
        f"{node}'s control-plane credential presented to the data plane over mutual TLS; "
        f"HTTP {response.status_code}"
    )
    raise refusal_of(response, 403)
