"""A one-node fleet to audit, on the platform tests' world: a SAFE review shipped with the
BMC firmware, the node admitted by the fleet's admission (its EAR and the evidence it was
issued for), and the trust an auditor holds."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Iterator
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding
from tests.fleet.fleet_world import node_class
from tests.platform.node_world import (
    LOGS,
    NOW,
    PLATFORM,
    VENDOR,
    Files,
    World,
    make_world,
    restore,
    served_world,
    sfr_report,
    snapshot,
)

from ironroot.audit import AuditExport, AuditTrust, collect_export, export_bundle
from ironroot.crypto import Algorithm, PrivateKey, PublicKey, load_certificate
from ironroot.ear import Appraisal, AttestationResult, VerifierId, sign_ear_jwt
from ironroot.firmware import FirmwareBundle, reference_statement
from ironroot.fleet import AdmissionAuthority, Fleet, attest_node
from ironroot.log import HttpLogFetcher, NoteVerifier
from ironroot.platform import COMPONENTS, PlatformTrust, SafeRequirement
from ironroot.rot import VendorCA
from ironroot.safe import ProviderKey, ProviderKeys, sfr_statement, sign_report
from scratch import in_memory

PROVIDER = "Example Review Provider"
EXPORTED = NOW + dt.timedelta(minutes=10)
NODE = "node-0001"


@dataclasses.dataclass
class AuditWorld:
    world: World
    fleet: Fleet
    ca: VendorCA
    provider: PrivateKey
    verifier: PrivateKey
    review: bytes
    authority: AdmissionAuthority

    @property
    def providers(self) -> ProviderKeys:
        return ProviderKeys([ProviderKey(self.provider.public_key, frozenset({PROVIDER}))])

    def platform_trust(self) -> PlatformTrust:
        return self.world.trust(safe={"bmc": SafeRequirement(self.providers, "medium")})

    def checkpoint_keys(self) -> tuple[NoteVerifier, ...]:
        keys = self.world.trusted.configuration()["checkpoint_keys"]
        return tuple(NoteVerifier.from_vkey(k) for k in keys)

    def trust(self, **changes: object) -> AuditTrust:
        args: dict[str, object] = {
            "platform": self.platform_trust(),
            "vendor_roots": self.ca.trust_anchors,
            "checkpoint_keys": self.checkpoint_keys(),
            "verifier_keys": {self.verifier.kid: self.verifier.public_key},
            "fleet_ca": self.authority.ca.der,
        }
        args.update(changes)
        return AuditTrust(**args)  # type: ignore[arg-type]

    def write_trust(self, directory: Path) -> Path:
        """The auditor's trust file (``audit-trust.toml``) and the key files it names."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "vendor-ecc.pub.pem").write_bytes(self.world.ecc.public_key.to_pem())
        (directory / "vendor-mldsa.pub.pem").write_bytes(self.world.pqc.public_key.to_pem())
        roots = directory / "vendor-ca"
        roots.mkdir(exist_ok=True)
        for number, der in enumerate(self.ca.trust_anchors):
            pem = load_certificate(der, der_only=True).public_bytes(Encoding.PEM)
            (roots / f"root-{number}.cert.pem").write_bytes(pem)
        (directory / "service-keys.cbor").write_bytes(self.world.trusted.service_keys_bytes())
        providers = directory / "review-providers"  # a key file answers to its name
        providers.mkdir(exist_ok=True)
        (providers / f"{PROVIDER}.pub.pem").write_bytes(self.provider.public_key.to_pem())
        (directory / "verifier.pub.pem").write_bytes(self.verifier.public_key.to_pem())
        (directory / "fleet-ca.pem").write_bytes(self.authority.ca.pem)
        vkeys = ", ".join(f'"{k.vkey}"' for k in self.checkpoint_keys())
        issuers = "".join(f'{c} = ["{VENDOR}"]\n' for c in (*COMPONENTS, "pfm"))
        path = directory / "audit-trust.toml"
        path.write_text(
            f'platform = "{PLATFORM}"\n\n'
            "[vendor]\n"
            'ecc = ["vendor-ecc.pub.pem"]\n'
            'pqc = ["vendor-mldsa.pub.pem"]\n'
            'roots = ["vendor-ca"]\n\n'
            "[transparency]\n"
            'service_keys = ["service-keys.cbor"]\n'
            f"checkpoint_keys = [{vkeys}]\n\n"
            f"[issuers]\n{issuers}\n"
            "[safe.bmc]\n"
            'providers = ["review-providers"]\n'
            'max_severity = "medium"\n\n'
            "[verifier]\n"
            'keys = ["verifier.pub.pem"]\n\n'
            "[fleet]\n"
            'ca = "fleet-ca.pem"\n'
        )
        return path

    def export(self, node: str = NODE, **changes: object) -> bytes:
        with HttpLogFetcher(self.world.urls["trusted"]) as fetcher:
            args: dict[str, object] = {"logs": [fetcher], "now": EXPORTED}
            args.update(changes)
            return export_bundle(self.fleet, node, **args)  # type: ignore[arg-type]

    def collect(self, node: str = NODE) -> AuditExport:
        with HttpLogFetcher(self.world.urls["trusted"]) as fetcher:
            return collect_export(self.fleet, node, logs=[fetcher], now=EXPORTED)


def ear(verifier: PrivateKey, *, at: dt.datetime = NOW, vector: int = 2) -> bytes:
    """An EAR a verifier signed, bound to no evidence (no nonce, no record of a quote)."""
    appraisal = Appraisal.from_vector(
        {"instance-identity": 2, "executables": vector, "hardware": 2, "configuration": 2},
        policy_id="urn:ironroot:appraisal-policy:default:0",
    )
    result = AttestationResult(
        iat=int(at.timestamp()),
        exp=int(at.timestamp()) + 3600,
        verifier_id=VerifierId("Ironroot", "ironroot 0.1.0"),
        submods={"ironroot": appraisal},
    )
    return sign_ear_jwt(result, verifier)


def build(root: Path, world: World) -> AuditWorld:
    """A fleet of one node of a class whose BMC firmware ships with a logged SAFE review and
    reference CoRIM, admitted by the fleet's own admission (a real EAR, for real evidence)."""
    bmc = world.release("bmc", "1.0")
    digest = FirmwareBundle.parse(bmc.bundle).manifest_digest()
    provider = PrivateKey.generate(Algorithm.ES384)
    review = world.trusted.register(
        sfr_statement(
            sign_report(sfr_report(digest, (3.1,)), provider, PROVIDER),
            world.statement_key,
            iss=VENDOR,
        )
    ).transparent_statement
    model = world.model("bmc")
    rim = world.trusted.register(
        reference_statement(
            bmc.bundle, world.statement_key, iss=VENDOR, sub=model, vendor=VENDOR, model=model
        )
    ).transparent_statement
    base = node_class(world)
    statements = dict(base.statements)
    statements["bmc"] = (*statements["bmc"], review, rim)
    klass = dataclasses.replace(base, statements=statements)
    fleet = Fleet.create(root / "fleet", node_class=klass)
    ca = VendorCA.generate(now=NOW - dt.timedelta(days=2))
    fleet.add_nodes(1, vendor_ca=ca, now=NOW)
    authority = AdmissionAuthority.init(
        fleet, vendor_roots=list(ca.trust_anchors), now=NOW - dt.timedelta(days=1)
    )
    attest_node(fleet, NODE, now=NOW, authority=authority)
    return AuditWorld(world, fleet, ca, provider, authority.verifier.signer, review, authority)


@dataclasses.dataclass(frozen=True)
class _Built:
    """A built audit world, kept for the test process: its files once its services had
    stopped (the world's logs, with the review and the CoRIM registered, and the fleet) and
    what it holds in memory only."""

    files: Files
    ca: VendorCA
    provider: PrivateKey
    review: bytes


_built: list[_Built] = []


def audit_world(root: Path) -> Iterator[AuditWorld]:
    """The audit world in ``root``, its logs served while the generator runs.

    Building one (two statements registered, a fleet made and its node admitted on a real
    attestation) took a third of a second of CPU, in each of some twenty modules. A test
    process builds it once (in a scratch directory) and each module's is a copy: the same
    keys, the files written afresh under ``root``, the fleet and its admission opened there
    and the logs served by services of its own."""
    if not _built:
        with in_memory("audit-world-template-") as scratch:
            with make_world(scratch / "world") as world:
                made = build(scratch, world)
            logs = [f"world/{name}" for name in LOGS]
            files = snapshot(scratch, [*logs, "fleet"])
            _built.append(_Built(files, made.ca, made.provider, made.review))
    kept = _built[0]
    restore(kept.files, root)
    with served_world(root / "world") as world:
        fleet = Fleet.open(root / "fleet")
        authority = AdmissionAuthority.open(fleet)
        verifier = authority.verifier.signer
        yield AuditWorld(world, fleet, kept.ca, kept.provider, verifier, kept.review, authority)


def install_node_hsm(
    aw: AuditWorld,
    now: dt.datetime,
    *,
    node_id: str = NODE,
    bound: bool = False,
    chain_file: bool = False,
    label: str = "hsm",
) -> PublicKey:
    """An HSM in the node (keyed to its RoT) with one refused key release and a signed audit
    checkpoint in ``hsm/checkpoints/0.cose``; its attestation key (what the auditor trusts).
    ``bound``: its device identity is a DPE child of the node's RoT (as the demo's HSM is of
    its machine's), and its attestation chain is in ``hsm/attestation-chain.pem``; otherwise
    a self-signed device nothing ties to the node (its chain written there too with
    ``chain_file``). ``label``: the DPE label of the child (``hsm``: the RoT's HSM layer)."""
    from cryptography.hazmat.primitives.serialization import Encoding as _Encoding
    from tests.hsm_devices import self_signed_device

    from ironroot.errors import StaleNonce
    from ironroot.hsm import (
        DeviceIdentity,
        DirectoryStorage,
        Hsm,
        HsmConfig,
        KeyAttributes,
        KeyType,
        Role,
    )
    from ironroot.keyrelease.tee import TeeKeyPair

    node = aw.fleet.directory / "nodes" / node_id
    rot = aw.fleet.rot(node_id)
    if bound:
        child = rot.derive_child(hashlib.sha384(b"ironroot hsm firmware").digest(), label=label)
        device = DeviceIdentity(
            child.ecc_key, (child.ecc_certificate, *reversed(rot.chain(Algorithm.ES384)))
        )
    else:
        device = self_signed_device(now)
    storage = DirectoryStorage.on_device(node / "hsm", node / "rot")
    hsm = Hsm.initialize(
        storage,
        rot.sealing_secret("hsm"),
        officer="officer",
        credential=b"officer-credential",
        device=device,
        config=HsmConfig(scrypt_n=2**10),
        clock=lambda: now.timestamp(),
    )
    try:
        officer = hsm.login("officer", b"officer-credential")
        hsm.add_identity(officer, "service", Role.USER, b"service-credential")
        hsm.add_identity(officer, "auditor", Role.AUDITOR, b"auditor-credential")
        key = hsm.generate(
            officer,
            KeyType.AES_256,
            KeyAttributes.of(["encrypt"], exportable=True, release_policy="true"),
        )
        service = hsm.login("service", b"service-credential")
        recipient = TeeKeyPair.generate().public.spki
        try:  # a nonce the HSM never issued: refused, and the refusal is audited
            hsm.release(service, key, ear=b"no ear", nonce=bytes(32), recipient=recipient)
        except StaleNonce:
            pass
        else:
            raise AssertionError("the HSM released a key for a nonce it never issued")
        checkpoint = hsm.audit_checkpoint(hsm.login("auditor", b"auditor-credential"))
        attestation = hsm.attestation_public_key
        chain = b"".join(
            load_certificate(der, der_only=True).public_bytes(_Encoding.PEM)
            for der in hsm.attestation_chain
        )
    finally:
        hsm.close()
        storage.close()
    (node / "hsm" / "checkpoints").mkdir()
    (node / "hsm" / "checkpoints" / "0.cose").write_bytes(checkpoint)
    if bound or chain_file:  # what ironroot hsm info --chain-out writes
        (node / "hsm" / "attestation-chain.pem").write_bytes(chain)
    return attestation
