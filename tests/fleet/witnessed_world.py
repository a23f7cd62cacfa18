"""Witnessed statements of the node world's trusted log, for fleet classes whose platform trust
requires witnesses (docs/platform.md, "Witnesses").

Real pieces: two ``ironroot.witness.Witness`` instances answer C2SP add-checkpoint for the
trusted log's current checkpoint (fetched from the service), the consistency proof from a
receipt's tree to it is computed from the service's tiles, and the witnessed statement is the
one ``verify_witnessed_statement`` checks and encodes (what ``ironroot statement witness``
writes). The cosignatures are dated :data:`NOW`.
"""

from __future__ import annotations

import dataclasses

from tests.platform.node_world import NOW, World

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.fleet import NodeClass
from ironroot.log import Checkpoint, HttpLogFetcher, Note, NoteSignature, TileTree
from ironroot.platform import PlatformTrust, PlatformWitnesses
from ironroot.transparency import receipt_tree, verify_witnessed_statement
from ironroot.witness import (
    AddCheckpoint,
    Cosigner,
    MemoryWitnessStore,
    Witness,
    WitnessedLog,
    WitnessPolicy,
)

WITNESSES = tuple(
    Cosigner(name, PrivateKey.generate(Algorithm.ED25519))
    for name in ("witness.example/w1", "witness.example/w2")
)


def platform_witnesses(world: World) -> PlatformWitnesses:
    """The trusted log's checkpoint keys and both witnesses, both required."""
    _origin, keys = world.trusted.log_identity()
    return PlatformWitnesses(keys, WitnessPolicy(tuple(c.verifier() for c in WITNESSES), 2))


def witnessed_trust(world: World, trust: PlatformTrust) -> PlatformTrust:
    return dataclasses.replace(trust, witnesses=platform_witnesses(world))


def witness(world: World, statement: bytes) -> bytes:
    """``statement`` (registered on the trusted log) witnessed in the log's checkpoint now."""
    origin, keys = world.trusted.log_identity()
    note = world.trusted.checkpoint()
    lines: list[NoteSignature] = []
    for cosigner in WITNESSES:
        witness = Witness(
            cosigner.name,
            (cosigner,),
            [WitnessedLog(origin, keys)],
            MemoryWitnessStore(),
            clock=lambda: int(NOW.timestamp()),
        )
        lines.extend(witness.add_checkpoint(AddCheckpoint(0, (), note).encode()))
    parsed = Note.parse(note)
    cosigned = Note(parsed.body, (*parsed.signatures, *lines)).encode()
    size, _root = receipt_tree(statement)
    current = Checkpoint.parse(parsed.body).size
    proof: list[bytes] = []
    if current > size:
        with HttpLogFetcher(world.urls["trusted"]) as fetcher:
            proof = TileTree(fetcher, current).consistency_proof(size)
    return verify_witnessed_statement(
        statement,
        cosigned,
        proof,
        service_keys=world.service_keys,
        log_verifiers=keys,
        policy=platform_witnesses(world).policy,
        now=int(NOW.timestamp()),
    ).encode()


def witnessed_class(world: World, klass: NodeClass) -> NodeClass:
    """``klass`` with a trust that requires witnesses and each statement witnessed."""
    return dataclasses.replace(
        klass,
        trust=witnessed_trust(world, klass.trust),
        pfm_statement=witness(world, klass.pfm_statement),
        statements={
            c: tuple(witness(world, s) for s in found) for c, found in klass.statements.items()
        },
    )
