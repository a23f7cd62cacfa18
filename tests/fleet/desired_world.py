"""The people and logs of desired-state tests: four approvers (Alice, Bob and Carol are
authorized for the class, Mallory is not, though the log admits her statements) and two
operator transparency services, one the class trusts and one it does not."""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests.platform.node_world import NOW, World, transparency_service

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.fleet import AuthorizedSigner, DesiredState, Fleet, Governance, sign_desired
from ironroot.platform import Platform
from ironroot.rot import Device, Lifecycle
from ironroot.transparency import ServiceThread, TransparencyClient

ALICE = "https://ops.example/alice"
BOB = "https://ops.example/bob"
CAROL = "https://ops.example/carol"
MALLORY = "https://ops.example/mallory"


@dataclasses.dataclass
class Ops:
    keys: dict[str, PrivateKey]
    log: TransparencyClient
    rogue: TransparencyClient
    url: str

    def governance(
        self,
        required: int = 2,
        signers: Sequence[str] = (ALICE, BOB, CAROL),
        node_class: str = "node-7",
    ) -> Governance:
        return Governance(
            node_class,
            tuple(AuthorizedSigner(iss, self.keys[iss].public_key) for iss in signers),
            required,
            self.log.service_keys(),
        )

    def sign(self, state: DesiredState, *who: str, key: str | None = None) -> list[bytes]:
        """Each of ``who`` signs ``state`` (with ``key``'s key, when given)."""
        return [sign_desired(state, self.keys[key or iss], iss=iss, iat=NOW) for iss in who]

    def approve(self, state: DesiredState, *who: str) -> list[bytes]:
        """Signed and registered on the trusted operator log: transparent statements."""
        return [self.log.register(s).transparent_statement for s in self.sign(state, *who)]


@contextlib.contextmanager
def make_ops(root: Path) -> Iterator[Ops]:
    keys = {iss: PrivateKey.generate(Algorithm.ES384) for iss in (ALICE, BOB, CAROL, MALLORY)}
    good = transparency_service(root / "ops-log", keys)
    bad = transparency_service(root / "rogue-ops-log", keys)
    with (
        good,
        bad,
        ServiceThread(good) as good_server,
        ServiceThread(bad) as bad_server,
        TransparencyClient(good_server.url) as log,
        TransparencyClient(bad_server.url) as rogue,
    ):
        yield Ops(keys, log, rogue, good_server.url)


def unlock_debug(world: World, fleet: Fleet, node_id: str) -> None:
    """Rebuild ``node_id`` on a RoT that never left manufacturing: debug unlocked."""
    import shutil

    base = fleet.directory / "nodes" / node_id
    shutil.rmtree(base)
    device = Device.create(base / "rot")
    device.program(
        lambda f: (
            f.program_uds(secrets.token_bytes(64))
            .program_field_entropy(secrets.token_bytes(32))
            .advance_lifecycle(Lifecycle.MANUFACTURING)
            .program_vendor_key_hash(world.descriptor_hash)
        )
    )
    klass = fleet.node_class(fleet.classes()[0])
    Platform.create(
        base,
        rot=base / "rot",
        trust=klass.trust,
        pfm=klass.pfm,
        pfm_statement=klass.pfm_statement,
        images=klass.images,
        statements=klass.statements,
        devices=klass.devices,
        now=NOW,
        slot_sizes=klass.slot_sizes,
    ).boot(now=NOW)
