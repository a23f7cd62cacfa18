"""Acts 3 to 5: the fleet is manufactured, attests and is admitted over HTTPS, and a BMC update
rolls out under the two-person rule."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from ironroot.demo._act_supply import COMPONENTS, DEVICES, model, short
from ironroot.demo._world import (
    ALICE,
    BOB,
    CLASS,
    PLATFORM,
    SLOT,
    VENDOR,
    Story,
    problem_error,
)
from ironroot.errors import MalformedInput, StorageError

if TYPE_CHECKING:
    import httpx

    from ironroot.crypto import PrivateKey
    from ironroot.fleet import AdmissionRequest, NodeEvidence
    from ironroot.platform import PlatformTrust


def class_trust(story: Story) -> PlatformTrust:
    """The platform trust of the fleet's class: the vendor's keys, the log's receipt keys,
    who may publish each component, and the SAFE requirement for the BMC."""
    from ironroot.platform import PlatformTrust, SafeRequirement

    log = story.need(story.log, "transparency log")
    return PlatformTrust(
        platform=PLATFORM,
        vendor_ecc=tuple(k.to_der() for k in story.vendor.ecc_keys),
        vendor_pqc=(story.vendor.pqc.public_key.to_der(),),
        service_keys=log.service_keys(),
        issuers={name: frozenset({VENDOR}) for name in (*COMPONENTS, "pfm")},
        safe={"bmc": SafeRequirement(story.need(story.providers, "SAFE lab"), "medium")},
        healthy_boots=2,
    )


def manufacture(story: Story) -> None:
    from ironroot.fleet import Fleet, NodeClass
    from ironroot.platform import DeviceInfo
    from ironroot.rot import VendorCA

    ui = story.ui
    now = story.now()
    story.vendor_ca = VendorCA.generate(
        now=now - dt.timedelta(days=30), common_name="ACME Device Identity CA"
    )
    statements = {c: story.release(c, "1.0").statements for c in COMPONENTS}
    statements["bmc"] = (*statements["bmc"], story.reviews["1.0"])
    klass = NodeClass(
        CLASS,
        class_trust(story),
        story.pfm,
        story.pfm_statement,
        {c: story.release(c, "1.0").bundle for c in COMPONENTS},
        statements,
        {d: DeviceInfo(VENDOR, model(d)) for d in DEVICES},
        dict.fromkeys(COMPONENTS, SLOT),
    )
    story.node_class = klass
    fleet = Fleet.create(story.path("fleet"), node_class=klass)
    story.fleet = fleet
    ui.say(
        f"Node class [bold]{CLASS}[/bold]: a DC-SCM with BMC, host, NIC, GPU and NVMe at 1.0; "
        "each RoT gets a UDS, an IDevID from the vendor CA (ECDSA P-384 and ML-DSA-87), its "
        "fuses (vendor key hash, debug locked, production), then a first measured boot with "
        "SPDM measurements of its three devices."
    )
    with ui.progress(f"manufacturing {story.nodes} nodes", story.nodes) as advance:
        fleet.add_nodes(story.nodes, vendor_ca=story.vendor_ca, now=now, progress=advance)
    counts = fleet.status_counts()
    ui.ok(f"{story.nodes} nodes manufactured and booted; registry: {counts}")
    story.facts["manufacture"] = {"class": CLASS, "nodes": fleet.node_ids()}


@dataclasses.dataclass
class NodeAnswer:
    """A node's answer to one admission challenge, before it is sent: a fresh key per plane
    and the evidence its RoT and devices gave for that nonce and those keys."""

    node: str
    nonce: bytes
    keys: dict[str, PrivateKey]
    evidence: NodeEvidence

    @property
    def spkis(self) -> dict[str, bytes]:
        return {plane: key.public_key.to_der() for plane, key in self.keys.items()}

    def request(self, evidence: NodeEvidence | None = None) -> AdmissionRequest:
        """The admission request (with ``evidence`` in place of the node's own, if given)."""
        from ironroot.fleet import AdmissionRequest, make_csr

        return AdmissionRequest(
            self.node,
            self.nonce,
            (evidence or self.evidence).encode(),
            {p: make_csr(k, node=self.node, plane=p) for p, k in self.keys.items()},
        )


def prepare_answer(story: Story, node: str, *, evidence_from: str | None = None) -> NodeAnswer:
    """Ask the admission service (HTTPS) for a challenge for ``node`` and collect the answer:
    a P-384 key per plane, the RoT quote binding nonce and keys, SPDM measurements answering
    the nonce — from ``evidence_from``'s hardware when given (another node's)."""
    from ironroot.crypto import Algorithm, PrivateKey
    from ironroot.fleet import PLANES, collect_evidence, decode_nonce

    servers = story.need(story.servers, "fleet services")
    fleet = story.need(story.fleet, "fleet")
    with story.http() as client:
        answer = client.post(
            f"{servers.admission_url}/fleet/admission/challenge", json={"node": node}
        )
    if answer.status_code != 200:
        raise problem_error(answer)
    nonce = decode_nonce(answer.json()["nonce"])
    keys = {plane: PrivateKey.generate(Algorithm.ES384) for plane in PLANES}
    spkis = {plane: key.public_key.to_der() for plane, key in keys.items()}
    evidence = collect_evidence(
        fleet, evidence_from or node, nonce=nonce, keys=spkis, now=story.now()
    )
    return NodeAnswer(node, nonce, keys, evidence)


def post_admission(story: Story, request: AdmissionRequest) -> httpx.Response:
    """Send an admission request to the admission service over HTTPS."""
    servers = story.need(story.servers, "fleet services")
    with story.http() as client:
        return client.post(
            f"{servers.admission_url}/fleet/admission",
            content=request.encode(),
            headers={"content-type": "application/cbor"},
        )


def admit_over_https(story: Story, node: str) -> dict[str, Any]:
    """The node's side of admission over HTTPS (:func:`prepare_answer`, then send it); on
    success it keeps its keys and credentials in ``nodes/<id>/credentials/``. Returns the
    admission result (CBOR map) and records the request in ``story.last_admission``."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from ironroot.cose import decode_cbor
    from ironroot.fleet import parse_credential, store_node_credentials

    answer = prepare_answer(story, node)
    request = answer.request()
    story.last_admission = request
    response = post_admission(story, request)
    if response.status_code != 200:
        raise problem_error(response)
    body = decode_cbor(response.content)
    if not isinstance(body, dict) or not isinstance(body.get("credentials"), dict):
        raise MalformedInput("the admission service's answer is not an admission result")
    # The node keeps its keys sealed to its root of trust, as fleet admission does.
    credentials = {plane: parse_credential(body["credentials"][plane]) for plane in answer.keys}
    fleet = story.need(story.fleet, "fleet")
    ca = story.need(story.servers, "fleet services").ca_file.read_bytes()
    ca_der = x509.load_pem_x509_certificate(ca).public_bytes(Encoding.DER)
    store_node_credentials(fleet, node, dict(answer.keys), credentials, ca_der)
    return body


def admission(story: Story) -> None:
    from ironroot.fleet import AdmissionAuthority, FleetServers

    ui = story.ui
    fleet = story.need(story.fleet, "fleet")
    ca = story.need(story.vendor_ca, "vendor CA")
    authority = AdmissionAuthority.init(
        fleet,
        vendor_roots=list(ca.trust_anchors),
        now=story.now() - dt.timedelta(minutes=5),
        credential_lifetime=3600,
    )
    story.authority = authority
    story.servers = servers = story.stack.enter_context(FleetServers(authority))
    ui.say(
        "The fleet's admission service and its two planes listen on HTTPS (the planes require "
        "a client credential: mutual TLS)."
    )
    ui.fact("admission", servers.admission_url)
    ui.fact("control plane", servers.control_url)
    ui.fact("data plane", servers.data_url)
    with ui.progress("attesting and admitting", story.nodes) as advance:
        for node in fleet.node_ids():
            body = admit_over_https(story, node)
            ear = body.get("ear_id", "") if isinstance(body, dict) else ""
            advance(f"{node} admitted" + (f" ({short(str(ear), 40)})" if ear else ""))
    record = fleet.record_of(fleet.node_ids()[0])
    with story.http(plane="control", node=record.id) as client:
        me = client.get(f"{servers.control_url}/v1/whoami")
        if me.status_code != 200:
            raise problem_error(me)
        whoami = me.json()
    ui.ok(
        f"every node admitted on an affirming EAR; {record.id} reaches the control plane with "
        f"its credential (serial {short(whoami['serial'])}, until {whoami['not_after']})"
    )
    ui.fact("EAR", escape(record.ear_id or ""))
    story.facts["admission"] = {
        "admission_url": servers.admission_url,
        "control_url": servers.control_url,
        "data_url": servers.data_url,
        "counts": fleet.status_counts(),
    }


def rollout_bmc(story: Story) -> None:
    from ironroot.fleet import (
        AuthorizedSigner,
        DesiredState,
        DesiredStore,
        Governance,
        ReleaseSet,
        rollout,
        sign_desired,
    )

    ui = story.ui
    fleet = story.need(story.fleet, "fleet")
    klass = story.need(story.node_class, "node class")
    log = story.need(story.log, "transparency log")
    authority = story.need(story.authority, "admission")
    store = DesiredStore(fleet)
    store.init(
        Governance(
            CLASS,
            tuple(AuthorizedSigner(who, story.ops[who].public_key) for who in (ALICE, BOB)),
            2,
            log.service_keys(),
        )
    )
    bmc2 = story.release("bmc", "2.0")
    state = DesiredState.build(
        klass, 1, bundles={"bmc": bmc2.bundle}, note="BMC 2.0", fleet=fleet.identity()
    )
    approvals = [sign_desired(state, story.ops[who], iss=who) for who in (ALICE, BOB)]
    verified = store.publish(CLASS, approvals, now=story.now(), registrar=log)
    ui.ok(
        f"desired state v{verified.state.version} of {CLASS} (BMC 2.0) approved by Alice and Bob "
        "(two-person rule): both approvals are on the log, then in force"
    )
    releases = ReleaseSet.of_class(klass)
    releases.add_bundle(bmc2.bundle, (*bmc2.statements, story.reviews["2.0"]))
    waves = -(-story.nodes // story.wave_size)
    with ui.progress(
        f"rolling out BMC 2.0 in {waves} waves of {story.wave_size}", story.nodes
    ) as advance:

        def progress(event: str, node: str, component: str | None) -> None:
            if event == "done":
                advance(f"{node} updated")

        report = rollout(
            fleet, releases, now=story.now(), wave_size=story.wave_size, progress=progress
        )
    if not report.ok:
        raise StorageError(f"the rollout stopped at {report.stopped_at}")
    ui.ok(
        f"{len(report.with_outcome('updated'))} nodes updated through the RoT's receipt-gated "
        "update (verify, write the inactive slot, reboot through the RoT, commit)"
    )
    # Until BMC 2.0 has booted healthy ``healthy_boots`` times, 1.0 stays the recovery image
    # (the A/B window). The nodes' next boots settle it: 2.0 becomes the recovery image and
    # SVN 4 the floor the RoT's anti-rollback fuse holds.
    needed = klass.trust.healthy_boots
    with ui.progress(f"{needed} healthy boots per node", story.nodes * needed) as advance:
        for node in fleet.node_ids():
            platform = fleet.node(node)
            for number in range(needed):
                platform.boot(now=story.now())
                advance(f"{node} boot {number + 1}")
            floor = platform.state().components["bmc"].min_svn
            if floor != bmc2.svn:
                raise StorageError(f"{node}'s BMC SVN floor is {floor} after its healthy boots")
    ui.ok(f"BMC 2.0 is every node's recovery image; SVN {bmc2.svn} is the floor (fused)")
    # The verifier learns BMC 2.0's logged reference values and review; every node attests again.
    for endorsement in (*bmc2.statements[1:], story.reviews["2.0"]):
        authority.add_endorsement(endorsement, now=story.now())
    with ui.progress("re-attesting on BMC 2.0", story.nodes) as advance:
        for node in fleet.node_ids():
            admit_over_https(story, node)
            advance(f"{node} admitted")
    ui.ok(f"every node admitted again, now on BMC 2.0 (SVN 4): {fleet.status_counts()}")
    story.facts["rollout"] = {
        "desired_version": verified.state.version,
        "waves": report.waves,
        "updated": list(report.with_outcome("updated")),
    }
