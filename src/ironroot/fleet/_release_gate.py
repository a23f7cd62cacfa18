"""The fleet's condition on key release: no key to a VM whose node is not admitted.

Quarantine refuses key release to a node's VMs (docs/fleet.md). The HSM that decides a release
knows the EAR and the key's policy, not the fleet, so the condition is checked where the
release is asked for: :class:`FleetReleaseGate` is the key service's
:class:`~ironroot.keyrelease.ReleaseGate`. For every release it

1. verifies the request's EAR with the verifier keys it is given and at its clock (the EAR's
   own errors: ``UnknownIssuer``, ``BadSignature``, ``ResultExpired``, ``MalformedInput``) —
   what it reads next must be the verifier's, not the requester's;
2. finds the fleet's nodes whose root of trust the EAR's evidence names (each submodule's
   ``identity.ueid``, the Ueid of the RoT that signed the quote), comparing with each node's
   IDevID certificate; an EAR that names none is ``ReleaseDenied`` ``node-unknown`` (a
   fleet's key service releases to the fleet's VMs only);
3. requires each of those nodes to be admitted with a current attestation
   (:func:`~ironroot.fleet.node_may_receive_keys`: ``ReleaseDenied`` ``node-not-admitted`` or
   ``attestation-expired``), read from the registry at each request, so a quarantine refuses
   the next release at once.

All of that is read before the HSM's decision, outside its lock: the registry (and the
IDevID certificates the node map is built from) may be slow or held by another transaction,
and the HSM's other operations must not wait for it. The gate returns the confirmation the
HSM calls under its lock, last, before it records the release. While the registry's
generation (:meth:`~ironroot.fleet.Fleet.registry_generation`, taken before the read) is
unchanged, the confirmation reads no table: each node's attestation must still be current at
the gate's clock (``attestation-expired``). When any commit moved it since (a quarantine, or
only another node's admission on a busy fleet), the nodes are read again there, under the
HSM's lock, as before (``node-not-admitted``, ``attestation-expired``): a quarantine committed
between the read and the HSM's decision is refused and the HSM's audit records that refusal,
never a grant, and an unrelated commit costs one more read, not a refused release. Only then
does a slow registry hold the HSM's lock.

It only refuses: the HSM still verifies the EAR against the verifiers installed in it, the
nonce, the binding, the status and the key's policy. The Ueid → node map is built from the
nodes' IDevID certificates when first needed and again when a Ueid is not in it (a node
added since).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterable

from ironroot.crypto import PublicKey
from ironroot.ear import verify_ear
from ironroot.errors import ReleaseDenied
from ironroot.fleet._admission import node_may_receive_keys
from ironroot.fleet._fleet import Fleet
from ironroot.keyrelease import ReleaseRequest

__all__ = ["FleetReleaseGate"]


class FleetReleaseGate:
    """The key service's gate for a fleet (module docs)."""

    def __init__(
        self,
        fleet: Fleet,
        verifier_keys: Iterable[PublicKey],
        *,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.fleet = fleet
        self.verifier_keys = tuple(verifier_keys)
        self._clock = clock
        self._lock = threading.Lock()
        self._nodes: dict[str, str] = {}  # Ueid (hex) -> node id

    def __repr__(self) -> str:
        return f"FleetReleaseGate({self.fleet.directory})"

    def _node_of(self, ueid: str) -> str | None:
        with self._lock:
            found = self._nodes.get(ueid)
            if found is None:
                known = set(self._nodes.values())
                for node in self.fleet.node_ids():
                    if node not in known and (node_ueid := self.fleet.ueid(node)):
                        self._nodes[node_ueid.hex()] = node
                found = self._nodes.get(ueid)
            return found

    def nodes_of(self, ear: bytes, now: dt.datetime) -> set[str]:
        """The fleet's nodes whose RoT the verified ``ear``'s evidence names."""
        result = verify_ear(ear, self.verifier_keys, now=now)
        nodes: set[str] = set()
        for appraisal in result.submods.values():
            identity = (appraisal.evidence or {}).get("identity")
            ueid = identity.get("ueid") if isinstance(identity, dict) else None
            if isinstance(ueid, str):
                node = self._node_of(ueid)
                if node is not None:
                    nodes.add(node)
        return nodes

    def __call__(self, name: str, request: ReleaseRequest) -> Callable[[], None]:
        """Read the condition (module docs: 1-3) and return its confirmation, or refuse."""
        generation = self.fleet.registry_generation()  # before the read: any commit after it
        now = self._clock()
        nodes = self.nodes_of(request.ear, now)
        if not nodes:
            raise ReleaseDenied(
                f"the EAR for {name} names no node of the fleet: its keys go to the fleet's VMs "
                "only",
                code="node-unknown",
            )
        until: dict[str, dt.datetime] = {}
        for node in sorted(nodes):
            node_may_receive_keys(self.fleet, node, now=now)
            not_after = self.fleet.record_of(node).credential_not_after
            if not_after is None:  # node_may_receive_keys refused it already
                raise ReleaseDenied(
                    f"{node} has no current attestation", code="attestation-expired"
                )
            until[node] = dt.datetime.fromisoformat(not_after.replace("Z", "+00:00"))

        def confirm() -> None:
            at = self._clock()
            if self.fleet.registry_generation() != generation:
                # a commit since the read (a quarantine, or only another node's admission):
                # the read no longer holds, so the nodes are read again, here, under the
                # HSM's lock — rare, and what decides is the registry as it is now
                for node in sorted(until):
                    node_may_receive_keys(self.fleet, node, now=at)
                return
            for node, expires in sorted(until.items()):
                if at >= expires:
                    raise ReleaseDenied(
                        f"{node}'s attestation expired while the release of {name} was decided: "
                        "attest again",
                        code="attestation-expired",
                    )

        return confirm
