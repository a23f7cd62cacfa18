"""A firmware vendor, two transparency services and a provisioned RoT, for node tests.

:func:`make_world` gives each module: the vendor's firmware keys (ECDSA P-384 and ML-DSA-87)
and statement key, a trusted and an untrusted transparency service running in this process,
releases v1 and v2 of every component (a signed bundle, its manifest statement and — for the
SPDM devices — its reference CoRIM, registered on the trusted log) and a PFM listing both,
logged too (built once per test process, each module's world a copy with services of its own).
:meth:`World.node` copies a template node (created once) so each test gets a fresh node in
milliseconds. :func:`in_memory` (``tests/scratch.py``) gives a scratch directory
on tmpfs for tests whose nodes are written thousands of times.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from cvss_vectors import vector_for
from ironroot.crypto import Algorithm, PrivateKey, PublicKey
from ironroot.errors import IronrootError
from ironroot.firmware import (
    Component,
    build_bundle,
    key_descriptor_hash,
    manifest_statement,
    reference_statement,
    sign_bundle,
)
from ironroot.platform import (
    COMPONENTS,
    DEVICES,
    DeviceInfo,
    Pfm,
    PfmComponent,
    PfmVersion,
    Platform,
    PlatformTrust,
    chip_layout,
    pfm_statement,
    sign_pfm,
)
from ironroot.rot import Device, VendorCA
from ironroot.transparency import (
    ServiceThread,
    TransparencyClient,
    TransparencyService,
    init_data_dir,
)
from scratch import in_memory

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
VENDOR = "https://vendor.example"
OTHER = "https://someone-else.example"
PLATFORM = "pkg:platform/acme/node-7"
SLOT = 64 * 1024
SLOT_SIZES = dict.fromkeys(COMPONENTS, SLOT)


def raises_exactly(error: type[IronrootError], code: str, call: object) -> IronrootError:
    """Call ``call``; what it raised must be exactly ``error`` (not a subclass), with ``code``."""
    with pytest.raises(error) as info:
        call()  # type: ignore[operator]
    assert type(info.value) is error, repr(info.value)
    assert info.value.code == code, (info.value.code, info.value.detail)
    return info.value


def sfr_report(
    manifest_digest: bytes, cvss: tuple[float, ...] = (), *, version: str = "1.0"
) -> bytes:
    """An OCP SAFE Short Form Report (JSON) of BMC firmware ``version`` whose manifest has
    SHA-384 ``manifest_digest``, with one open issue per CVSS score in ``cvss``."""
    issues = [
        {
            "title": f"issue {i}",
            "cvss_score": f"{score:.1f}",
            "cvss_vector": vector_for(score),
            "cwe": "CWE-111",
            "description": "found in review",
            "cve": None,
        }
        for i, score in enumerate(cvss)
    ]
    major = version.split(".", 1)[0]
    return json.dumps(
        {
            "review_framework_version": "1.1",
            "device": {
                "vendor": "ACME Inc",
                "product": "Node BMC",
                "category": "bmc",
                "repo_tag": f"v{major}",
                "fw_version": version,
                "fw_hash_sha2_384": manifest_digest.hex(),
            },
            "audit": {
                "srp": "Example Review Provider",
                "methodology": "whitebox",
                "completion_date": "2026-05-01",
                "report_version": "1.0",
                "scope_number": 1,
                "cvss_version": "3.1",
                "issues": issues,
            },
        }
    ).encode()


def rw_region(component: str) -> tuple[int, int]:
    """The (offset, length) of a component chip's ``rw`` region at the test slot size."""
    region = {r.name: r for r in chip_layout(component, SLOT)}["rw"]
    return region.offset, region.size


def transparency_service(directory: Path, issuers: Mapping[str, PrivateKey]) -> TransparencyService:
    """A transparency service in ``directory`` whose registration policy admits ``issuers``."""
    init_data_dir(directory)
    config = directory / "ironroot.toml"
    text = config.read_text()
    for number, (iss, key) in enumerate(issuers.items()):
        (directory / f"issuer{number}.pub.pem").write_bytes(key.public_key.to_pem())
        text += f'\n[[transparency.issuers]]\niss = "{iss}"\nkey = "issuer{number}.pub.pem"\n'
    config.write_text(text)
    # receipts are signed at the tests' NOW: each decision holds them to its own clock
    return TransparencyService.open(directory, clock=lambda: NOW)


@dataclasses.dataclass(frozen=True)
class Release:
    component: str
    version: str
    svn: int
    bundle: bytes
    statements: tuple[bytes, ...]

    @property
    def sha384(self) -> bytes:
        return hashlib.sha384(self.bundle).digest()


@dataclasses.dataclass
class World:
    ecc: PrivateKey
    pqc: PrivateKey
    statement_key: PrivateKey
    other_key: PrivateKey
    trusted: TransparencyClient
    untrusted: TransparencyClient
    service_keys: dict[bytes, PublicKey]
    root: Path
    releases: dict[tuple[str, str], Release] = dataclasses.field(default_factory=dict)
    pfm: bytes = b""
    pfm_ts: bytes = b""
    template: Path | None = None
    urls: dict[str, str] = dataclasses.field(default_factory=dict)
    """The base URLs of the ``trusted`` and ``untrusted`` services (their read API too)."""

    @property
    def descriptor_hash(self) -> bytes:
        return key_descriptor_hash([self.ecc.public_key], [self.pqc.public_key], "mldsa")

    def bundle(
        self, component: str, *, svn: int, tag: str, not_after: dt.datetime | None = None
    ) -> bytes:
        runtime = hashlib.sha384(f"{component} runtime {tag}".encode()).digest() * 64
        return self.signed(
            [
                Component(1, f"{component} fmc".encode() * 64, version=1),
                Component(2, runtime, version=2),
            ],
            svn=svn,
            not_after=not_after,
        )

    def signed(
        self, components: Sequence[Component], *, svn: int, not_after: dt.datetime | None = None
    ) -> bytes:
        """A bundle of ``components`` signed by the vendor, valid from 30 days ago for a year
        (or until ``not_after``)."""
        unsigned = build_bundle(
            list(components),
            svn=svn,
            not_before=NOW - dt.timedelta(days=30),
            not_after=not_after or NOW + dt.timedelta(days=365),
            vendor_ecc_keys=[self.ecc.public_key],
            vendor_pqc_keys=[self.pqc.public_key],
            pqc_type="mldsa",
        )
        return sign_bundle(unsigned, self.ecc, self.pqc)

    def model(self, component: str) -> str:
        return f"pkg:firmware/acme/{component}"

    def publish(
        self,
        component: str,
        bundle: bytes,
        *,
        client: TransparencyClient | None = None,
        iss: str = VENDOR,
        corim: bool = True,
    ) -> tuple[bytes, ...]:
        """The bundle's manifest statement (and CoRIM for a device), registered."""
        log = client or self.trusted
        key = self.statement_key if iss == VENDOR else self.other_key
        out = [
            log.register(
                manifest_statement(bundle, key, iss=iss, sub=self.model(component))
            ).transparent_statement
        ]
        if corim and component in DEVICES:
            out.append(
                log.register(
                    reference_statement(
                        bundle,
                        key,
                        iss=iss,
                        sub=self.model(component),
                        vendor=VENDOR,
                        model=self.model(component),
                    )
                ).transparent_statement
            )
        return tuple(out)

    def log_reference(self, component: str, bundle: bytes) -> bytes:
        """``bundle``'s reference CoRIM for ``component`` (whatever its kind), logged: its
        transparent statement."""
        model = self.model(component)
        statement = reference_statement(
            bundle, self.statement_key, iss=VENDOR, sub=model, vendor=VENDOR, model=model
        )
        return self.trusted.register(statement).transparent_statement

    def release(self, component: str, version: str) -> Release:
        return self.releases[(component, version)]

    def make_pfm(
        self,
        svn: int,
        versions: Mapping[str, list[Release]],
        *,
        ecc: PrivateKey | None = None,
        platform: str = PLATFORM,
    ) -> bytes:
        components = tuple(
            PfmComponent(
                name,
                tuple(PfmVersion(r.version, r.svn, r.sha384) for r in versions[name]),
                read_write=(rw_region(name),),
            )
            for name in COMPONENTS
        )
        return sign_pfm(Pfm(platform, svn, components), ecc or self.ecc, self.pqc)

    def log_pfm(
        self, pfm: bytes, *, client: TransparencyClient | None = None, iss: str = VENDOR
    ) -> bytes:
        key = self.statement_key if iss == VENDOR else self.other_key
        return (
            (client or self.trusted)
            .register(pfm_statement(pfm, key, iss=iss, sub=PLATFORM))
            .transparent_statement
        )

    def trust(self, **overrides: object) -> PlatformTrust:
        args: dict[str, object] = {
            "platform": PLATFORM,
            "vendor_ecc": (self.ecc.public_key.to_der(),),
            "vendor_pqc": (self.pqc.public_key.to_der(),),
            "service_keys": self.service_keys,
            "issuers": {name: frozenset({VENDOR}) for name in (*COMPONENTS, "pfm")},
            "healthy_boots": 2,
        }
        args.update(overrides)
        return PlatformTrust(**args)  # type: ignore[arg-type]

    def rot_device(self, directory: Path) -> Device:
        device = Device.create(directory)
        device.provision(
            VendorCA.generate(now=NOW - dt.timedelta(days=2)),
            vendor_key_hash=self.descriptor_hash,
            now=NOW - dt.timedelta(days=1),
        )
        return device

    def create(self, directory: Path, **overrides: object) -> Platform:
        rot = directory / "node" / "rot"
        self.rot_device(rot)
        args: dict[str, object] = {
            "rot": rot,
            "trust": self.trust(),
            "pfm": self.pfm,
            "pfm_statement": self.pfm_ts,
            "images": {c: self.release(c, "1.0").bundle for c in COMPONENTS},
            "statements": {c: self.release(c, "1.0").statements for c in COMPONENTS},
            "devices": {d: DeviceInfo(VENDOR, self.model(d)) for d in DEVICES},
            "now": NOW,
            "slot_sizes": SLOT_SIZES,
        }
        args.update(overrides)
        return Platform.create(directory / "node", **args)  # type: ignore[arg-type]

    def node(self, directory: Path) -> Platform:
        """A fresh node, booted once (a copy of the template)."""
        if self.template is None:
            self.template = self.root / "template"
            self.create(self.template).boot(now=NOW)
        shutil.copytree(self.template, directory / "copy", symlinks=False)
        platform = Platform.open(directory / "copy" / "node")
        return platform


Files = Mapping[str, tuple[int, bytes | None]]
"""A directory's files kept in memory (:func:`snapshot`): path under it -> mode and bytes
(a directory: mode and ``None``), a directory before what it holds."""


def snapshot(root: Path, names: Sequence[str]) -> Files:
    """The files under ``root / name`` for each of ``names``, with their modes (a service's
    ``.lock`` left out: the next service takes its own)."""
    files: dict[str, tuple[int, bytes | None]] = {}
    for name in names:
        for path in [root / name, *sorted((root / name).rglob("*"))]:
            if path.name == ".lock":
                continue
            mode = path.stat().st_mode & 0o7777
            data = None if path.is_dir() else path.read_bytes()
            files[str(path.relative_to(root))] = (mode, data)
    return files


def restore(files: Files, root: Path) -> None:
    """Write ``files`` (:func:`snapshot`) under ``root``, afresh."""
    root.mkdir(parents=True, exist_ok=True)
    for relative, (mode, data) in files.items():
        path = root / relative
        if data is None:
            path.mkdir(mode=mode, parents=True)
        else:
            path.write_bytes(data)
        path.chmod(mode)


@dataclasses.dataclass(frozen=True)
class _Made:
    """What building a world made, kept for the test process: the vendor's keys, the releases
    and the PFM with their transparent statements, and the two logs' files as they were once
    their services had stopped."""

    ecc: PrivateKey
    pqc: PrivateKey
    statement_key: PrivateKey
    other_key: PrivateKey
    releases: Mapping[tuple[str, str], Release]
    pfm: bytes
    pfm_ts: bytes
    files: Files


LOGS = ("trusted-log", "untrusted-log")
"""The folders of a world's two logs, under its root."""
_made: list[_Made] = []


@contextlib.contextmanager
def _serve(root: Path) -> Iterator[tuple[str, str, TransparencyClient, TransparencyClient]]:
    """The two logs under ``root`` served (their URLs, and a client of each)."""
    good = TransparencyService.open(root / LOGS[0], clock=lambda: NOW)
    rogue = TransparencyService.open(root / LOGS[1], clock=lambda: NOW)
    with (
        good,
        rogue,
        ServiceThread(good) as good_server,
        ServiceThread(rogue) as rogue_server,
        TransparencyClient(good_server.url) as trusted,
        TransparencyClient(rogue_server.url) as untrusted,
    ):
        yield good_server.url, rogue_server.url, trusted, untrusted


def _build(root: Path) -> _Made:
    """The world, built: keys, two logs, every release registered, the PFM logged."""
    ecc, statement_key, other_key = (PrivateKey.generate(Algorithm.ES384) for _ in range(3))
    pqc = PrivateKey.generate(Algorithm.ML_DSA_87)
    issuers = {VENDOR: statement_key, OTHER: other_key}
    for name in LOGS:
        transparency_service(root / name, issuers).close()
    with _serve(root) as (_good, _rogue, trusted, untrusted):
        world = World(
            ecc, pqc, statement_key, other_key, trusted, untrusted, trusted.service_keys(), root
        )
        for component in COMPONENTS:
            for version, svn in (("1.0", 3), ("2.0", 4)):
                bundle = world.bundle(component, svn=svn, tag=version)
                world.releases[(component, version)] = Release(
                    component, version, svn, bundle, world.publish(component, bundle)
                )
        world.pfm = world.make_pfm(
            1, {c: [world.release(c, "1.0"), world.release(c, "2.0")] for c in COMPONENTS}
        )
        world.pfm_ts = world.log_pfm(world.pfm)
    return _Made(
        ecc,
        pqc,
        statement_key,
        other_key,
        dict(world.releases),
        world.pfm,
        world.pfm_ts,
        snapshot(root, LOGS),
    )


def _made_once() -> _Made:
    if not _made:
        with in_memory("world-template-") as scratch:
            _made.append(_build(scratch))
    return _made[0]


@contextlib.contextmanager
def served_world(root: Path) -> Iterator[World]:
    """The world whose logs are under ``root`` already (:data:`LOGS`: restored from a
    :func:`snapshot` of a world's logs), served while the block runs."""
    made = _made_once()
    with _serve(root) as (good, rogue, trusted, untrusted):
        world = World(
            made.ecc,
            made.pqc,
            made.statement_key,
            made.other_key,
            trusted,
            untrusted,
            trusted.service_keys(),
            root,
            releases=dict(made.releases),
            pfm=made.pfm,
            pfm_ts=made.pfm_ts,
        )
        world.urls = {"trusted": good, "untrusted": rogue}
        yield world


@contextlib.contextmanager
def make_world(root: Path) -> Iterator[World]:
    """A world in ``root``, its two logs served while the block runs.

    Building one (keys, two logs, twenty-one statements registered over HTTP, each a receipt
    signed and a checkpoint) took a quarter of a second of CPU, and some sixty modules built
    their own. A test process builds it once (in a scratch directory) and every world is its
    copy: the same keys and statements, the logs' files written afresh under ``root`` and
    served by services of its own, so what one module registers or changes stays in its world.
    """
    restore(_made_once().files, root)
    with served_world(root) as world:
        yield world
