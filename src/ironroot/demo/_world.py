"""The demo's world: the people, the services and the shared state every act and attack uses.

:class:`Story` holds it. Its fields start empty and the acts fill them in order (the vendor's
releases, the log, the fleet, the key service…); an attack reads what the acts made and never
changes what a later act needs. Services run in this process on loopback ports (real HTTP and
TLS servers on background threads) and are stopped by :meth:`Story.close`.

The time is the wall clock: receipts, EARs, credentials and audit bundles carry real times.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

from ironroot._fileio import write_atomic
from ironroot.crypto import Algorithm, PrivateKey, PublicKey
from ironroot.errors import IronrootError, StorageError

if TYPE_CHECKING:
    import httpx

    from ironroot.attestation import AttestationService
    from ironroot.demo._gpu import DemoGpu, GpuVendor
    from ironroot.demo._ui import Narrator
    from ironroot.fleet import (
        AdmissionAuthority,
        AdmissionRequest,
        Fleet,
        FleetServers,
        NodeClass,
    )
    from ironroot.hsm import Hsm, Session
    from ironroot.keyrelease import KeyReleaseClient, KeyReleaseService
    from ironroot.monitor import Monitor, MonitorStore
    from ironroot.rot import VendorCA
    from ironroot.safe import ProviderKeys
    from ironroot.transparency import TransparencyClient

__all__ = [
    "ALICE",
    "BOB",
    "LAB",
    "LAB_KID",
    "PLATFORM",
    "VENDOR",
    "Release",
    "Story",
    "utc_now",
]

VENDOR: Final = "https://vendor.example"
"""The firmware vendor: signs releases, publishes them and its PFMs on the log."""
LAB: Final = "https://safe-lab.example"
"""The OCP SAFE review lab's issuer name on the log."""
LAB_KID: Final = "Example SAFE Labs"
"""The name (``kid``) the lab signs its Short Form Reports with."""
ALICE: Final = "https://ops.example/alice"
BOB: Final = "https://ops.example/bob"
"""The two operators who must both approve a change of the fleet's desired state."""
PLATFORM: Final = "pkg:platform/acme/dc-node"
"""The platform id the vendor's PFMs name."""
CLASS: Final = "dc-node"
"""The fleet's node class."""
SLOT: Final = 64 * 1024
"""Each component's flash slot size (bytes)."""


T = TypeVar("T")


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclasses.dataclass(frozen=True, slots=True)
class Release:
    """One signed firmware bundle of the vendor and its transparent statements (manifest
    statement, and for devices and the BMC the reference CoRIM) as the log returned them."""

    component: str
    version: str
    svn: int
    bundle: bytes
    statements: tuple[bytes, ...]

    @property
    def sha384(self) -> bytes:
        return hashlib.sha384(self.bundle).digest()

    @property
    def name(self) -> str:
        return f"{self.component}-{self.version}"


@dataclasses.dataclass
class Vendor:
    """The firmware vendor's keys. ``retired`` is ECC key 0 of the descriptor (it signed the
    first generation, and leaked); ``ecc`` is key 1, which signs every current release."""

    retired: PrivateKey
    ecc: PrivateKey
    pqc: PrivateKey
    statements: PrivateKey
    """Signs the vendor's SCITT statements (``iss`` = :data:`VENDOR`)."""

    @classmethod
    def generate(cls) -> Vendor:
        return cls(
            PrivateKey.generate(Algorithm.ES384),
            PrivateKey.generate(Algorithm.ES384),
            PrivateKey.generate(Algorithm.ML_DSA_87),
            PrivateKey.generate(Algorithm.ES384),
        )

    @property
    def ecc_keys(self) -> list[PublicKey]:
        """The descriptor's ECC keys, in order: key 0 (retired), key 1 (current)."""
        return [self.retired.public_key, self.ecc.public_key]


@dataclasses.dataclass
class Story:
    """Everything the acts build, in the order they build it (module docs)."""

    work: Path
    ui: Narrator
    nodes: int = 6
    wave_size: int = 2
    vendor: Vendor = dataclasses.field(default_factory=Vendor.generate)
    lab_sfr: PrivateKey = dataclasses.field(
        default_factory=lambda: PrivateKey.generate(Algorithm.ES384)
    )
    lab_statements: PrivateKey = dataclasses.field(
        default_factory=lambda: PrivateKey.generate(Algorithm.ES384)
    )
    gpu_statements: PrivateKey = dataclasses.field(
        default_factory=lambda: PrivateKey.generate(Algorithm.ES384)
    )
    """Signs the GPU vendor's RIM statements (``iss`` = ``ironroot.demo._gpu.GPU_VENDOR``)."""
    ops: dict[str, PrivateKey] = dataclasses.field(
        default_factory=lambda: {who: PrivateKey.generate(Algorithm.ES384) for who in (ALICE, BOB)}
    )
    stack: contextlib.ExitStack = dataclasses.field(default_factory=contextlib.ExitStack)

    # act 1: the vendor and the log
    log_dir: Path | None = None
    log_url: str = ""
    log: TransparencyClient | None = None
    releases: dict[tuple[str, str], Release] = dataclasses.field(default_factory=dict)
    pfm: bytes = b""
    pfm_statement: bytes = b""
    # act 2: the SAFE lab
    reviews: dict[str, bytes] = dataclasses.field(default_factory=dict)
    providers: ProviderKeys | None = None
    # act 3: the fleet
    vendor_ca: VendorCA | None = None
    node_class: NodeClass | None = None
    fleet: Fleet | None = None
    # act 4: admission
    authority: AdmissionAuthority | None = None
    servers: FleetServers | None = None
    last_admission: AdmissionRequest | None = None
    """The last admission request a node sent (what an attacker on the wire could capture)."""
    # act 6: key release
    hsm: Hsm | None = None
    hsm_user: Session | None = None
    hsm_other_user: Session | None = None
    """Another crypto user of the key service's HSM (a backup agent), not a user of db-key."""
    hsm_officer: Session | None = None
    key_service: KeyReleaseService | None = None
    db_key: str = ""
    sealed_ledger: bytes = b""
    """What the key service encrypted under db-key (the payments ledger)."""
    keyservice_url: str = ""
    keys: KeyReleaseClient | None = None
    cvm_node: str = ""
    """The node the confidential VM runs on."""
    verifier: AttestationService | None = None
    """The attestation verifier confidential VMs are appraised by."""
    # act 7: key release for AI
    gpu_vendor: GpuVendor | None = None
    gpus: dict[str, DemoGpu] = dataclasses.field(default_factory=dict)
    """The GPUs by name: ``gpu-a`` (logged driver), ``gpu-b`` (a driver whose RIM is not
    on the log)."""
    gpu_node: str = ""
    """The node the AI VM (with ``gpu-a``) runs on."""
    model_key: str = ""
    # act 1 and the split-view attack: the witness and the monitor
    witness_url: str = ""
    monitor: Monitor | None = None
    monitor_store: MonitorStore | None = None
    attackers: dict[str, Any] = dataclasses.field(default_factory=dict)
    """What the attacks set up and share (the attacker's own log, …)."""
    facts: dict[str, Any] = dataclasses.field(default_factory=dict)
    """What the report shows of each act (counts, digests, URLs: never a secret)."""

    def now(self) -> dt.datetime:
        return utc_now()

    def close(self) -> None:
        self.stack.close()

    # --- helpers the acts and attacks share ------------------------------------------------

    def release(self, component: str, version: str) -> Release:
        return self.releases[(component, version)]

    def path(self, *parts: str) -> Path:
        return self.work.joinpath(*parts)

    def need(self, value: T | None, what: str) -> T:
        """``value``, or ``StorageError`` when the act that makes it has not run (an attack
        run on its own, out of order)."""
        if value is None or value == "" or value == b"":
            raise StorageError(f"the demo has no {what} yet: run the acts first")
        return value

    def save(self, name: str, data: bytes | str, *, mode: int = 0o644) -> Path:
        """Write a file of the story into the work directory (what a user would keep)."""
        path = self.work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data.encode() if isinstance(data, str) else data, mode=mode)
        return path

    def http(self, *, plane: str | None = None, node: str | None = None) -> httpx.Client:
        """An HTTPS client of the fleet's services that trusts the fleet CA, presenting
        ``node``'s ``plane`` credential when given (mutual TLS)."""
        import httpx

        from ironroot.http import client_context

        servers = self.need(self.servers, "fleet services")
        if plane is None or node is None:
            return httpx.Client(verify=client_context(servers.ca_file), timeout=30)
        from ironroot.fleet import node_tls_context

        context = node_tls_context(self.need(self.fleet, "fleet"), node, plane)
        return httpx.Client(verify=context, timeout=30)

    def credentials_dir(self, node: str) -> Path:
        fleet = self.need(self.fleet, "fleet")
        return Path(fleet.directory) / "nodes" / node / "credentials"


def problem_error(response: Any) -> IronrootError:
    """The typed error an RFC 9290 problem answer stands for: the class its ``code`` names
    (or, for codes refined per instance, its title names), with that code."""
    from ironroot.cose import Problem

    ctype = response.headers.get("content-type", "")
    try:
        problem = (
            Problem.from_cbor(response.content)
            if "cbor" in ctype
            else Problem.from_json(response.content)
        )
    except IronrootError:
        return StorageError(f"the service answered {response.status_code} without a problem")
    return problem.error(response.status_code)


def random_firmware(label: str, size: int) -> bytes:
    """Firmware bytes for a build: a label, then random bytes (each build differs)."""
    head = f"{label}\n".encode()
    return head + os.urandom(max(0, size - len(head)))
