"""The platform's SPDM devices: identities stored and pinned, measurements computed from the
firmware a device holds, reference values taken only from CoRIM on a trusted log, and every
refusal asserted with its exact error class and code.

A firmware vendor signs device bundles and registers their reference-value CoRIM on a
transparency service served from this process (a second service plays the one the platform
does not trust); each test then measures a device over a real SPDM session.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.platform.node_world import transparency_service

from ironroot.attestation import ReferenceValue, ReferenceValues
from ironroot.corim import CORIM_CONTENT_TYPE, HASH_ALG_SHA384, Validity, sign_corim
from ironroot.cose import create_statement
from ironroot.crypto import Algorithm, PrivateKey, PublicKey
from ironroot.errors import (
    BadSignature,
    ChainNotTrusted,
    ConfigError,
    Conflict,
    EndorsementMismatch,
    IronrootError,
    NotFound,
    PolicyRejected,
    SvnRollback,
    UnknownIssuer,
    VerificationFailed,
)
from ironroot.firmware import (
    Component,
    FirmwareBundle,
    build_bundle,
    field_offsets,
    manifest_statement,
    publish_bundle,
    reference_corim,
    reference_statement,
    sign_bundle,
)
from ironroot.platform import (
    DEVICE_LAYOUT,
    DEVICE_MODE,
    DEVICE_MODE_INDEX,
    DEVICE_SVN_INDEX,
    DeviceMeasurement,
    PlatformDevice,
    compare_device_references,
    device_block_keys,
    device_measurement_blocks,
    device_references,
    measure_device,
    measure_responder,
    verify_device,
)
from ironroot.platform._devices import _outside_validity
from ironroot.spdm import (
    DeviceMode,
    MeasurementBlock,
    MeasurementValueType,
    RequestResponseCode,
    Responder,
    Transport,
    verify_spdm_evidence,
)
from ironroot.transparency import (
    ServiceThread,
    TransparencyClient,
)

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
VENDOR_ISS = "https://nic-vendor.example"
OTHER_ISS = "https://someone-else.example"
NIC_MODEL = "pkg:firmware/acme/nic-x1"
GPU_MODEL = "pkg:firmware/acme/gpu-g7"
FMC = bytes(range(256)) * 8
RUNTIME_1 = hashlib.sha384(b"nic runtime 1").digest() * 40
RUNTIME_2 = hashlib.sha384(b"nic runtime 2").digest() * 40
EXTRA_ID = 7
EXTRA = b"nic option rom" * 20
ISSUERS = frozenset({VENDOR_ISS})


@dataclasses.dataclass
class World:
    """A firmware vendor, its statement key, another issuer, and two transparency services:
    the one the platform trusts and one it does not."""

    ecc: PrivateKey
    pqc: PrivateKey
    vendor_key: PrivateKey
    other_key: PrivateKey
    trusted: TransparencyClient
    untrusted: TransparencyClient
    service_keys: dict[bytes, PublicKey]

    def bundle(self, *, svn: int, runtime: bytes = RUNTIME_1, fmc: bytes = FMC) -> bytes:
        unsigned = build_bundle(
            [
                Component(1, fmc, version=1),
                Component(2, runtime, version=2),
                Component(EXTRA_ID, EXTRA, version=3),
            ],
            svn=svn,
            not_before=NOW - dt.timedelta(days=30),
            not_after=NOW + dt.timedelta(days=365),
            vendor_ecc_keys=[self.ecc.public_key],
            vendor_pqc_keys=[self.pqc.public_key],
            pqc_type="mldsa",
        )
        return sign_bundle(unsigned, self.ecc, self.pqc)

    def corim(
        self,
        bundle: bytes,
        *,
        model: str = NIC_MODEL,
        iss: str = VENDOR_ISS,
        vendor: str = VENDOR_ISS,
    ) -> bytes:
        """The bundle's reference-value Signed Statement (not registered)."""
        key = self.vendor_key if iss == VENDOR_ISS else self.other_key
        return reference_statement(bundle, key, iss=iss, sub=model, vendor=vendor, model=model)

    def publish(
        self, bundle: bytes, *, service: TransparencyClient | None = None, **kw: str
    ) -> bytes:
        """Register the bundle's CoRIM; its Transparent Statement."""
        client = service or self.trusted
        return client.register(self.corim(bundle, **kw)).transparent_statement

    def references(self, *statements: bytes, model: str = NIC_MODEL) -> ReferenceValues:
        return device_references(
            statements,
            trust_service_keys=self.service_keys,
            issuers=ISSUERS,
            vendor=VENDOR_ISS,
            model=model,
            now=NOW,
        )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    ecc, vendor_key, other_key = (PrivateKey.generate(Algorithm.ES384) for _ in range(3))
    pqc = PrivateKey.generate(Algorithm.ML_DSA_87)
    issuers = {VENDOR_ISS: vendor_key, OTHER_ISS: other_key}
    good = transparency_service(tmp_path_factory.mktemp("trusted-log"), issuers)
    rogue = transparency_service(tmp_path_factory.mktemp("untrusted-log"), issuers)
    with (
        good,
        rogue,
        ServiceThread(good) as good_server,
        ServiceThread(rogue) as rogue_server,
        TransparencyClient(good_server.url) as trusted,
        TransparencyClient(rogue_server.url) as untrusted,
    ):
        yield World(ecc, pqc, vendor_key, other_key, trusted, untrusted, trusted.service_keys())


@dataclasses.dataclass(frozen=True)
class Release:
    bundle: bytes
    statement: bytes


@pytest.fixture(scope="module")
def v1(world: World) -> Release:
    bundle = world.bundle(svn=3)
    return Release(bundle, world.publish(bundle))


@pytest.fixture(scope="module")
def v2(world: World) -> Release:
    bundle = world.bundle(svn=5, runtime=RUNTIME_2)
    return Release(bundle, world.publish(bundle))


@pytest.fixture(scope="module")
def devices(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("devices")
    PlatformDevice.create(directory, "nic", vendor=VENDOR_ISS, model=NIC_MODEL, now=NOW)
    PlatformDevice.create(directory, "gpu", vendor=VENDOR_ISS, model=GPU_MODEL, now=NOW)
    return directory


@pytest.fixture(scope="module")
def nic(devices: Path) -> PlatformDevice:
    return PlatformDevice.open(devices, "nic")


@pytest.fixture(scope="module")
def pinned(nic: PlatformDevice) -> bytes:
    """The root the platform pinned when it created the NIC."""
    return nic.root


def _expect(result: DeviceMeasurement, error: type[IronrootError], code: str) -> IronrootError:
    """The measurement failed with exactly ``error`` and ``code``; the error."""
    assert not result.ok
    assert type(result.error) is error, repr(result.error)
    assert result.code == code == result.error.code
    assert result.detail == result.error.detail
    return result.error


def _raises(error: type[IronrootError], code: str, call: Callable[[], object]) -> IronrootError:
    with pytest.raises(error) as info:
        call()
    assert type(info.value) is error, repr(info.value)
    assert info.value.code == code
    return info.value


# --- identity ---------------------------------------------------------------------------------


def test_a_device_is_stored_with_its_key_private_and_opens_again(tmp_path: Path) -> None:
    made = PlatformDevice.create(tmp_path, "nvme", vendor=VENDOR_ISS, model="m", now=NOW)
    key = tmp_path / "nvme.key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert json.loads((tmp_path / "nvme.device.json").read_text()) == {
        "device": 1,
        "model": "m",
        "name": "nvme",
        "vendor": VENDOR_ISS,
    }
    opened = PlatformDevice.open(tmp_path, "nvme")
    assert (opened.name, opened.vendor, opened.model) == ("nvme", VENDOR_ISS, "m")
    assert opened.chain == made.chain
    assert opened.root == made.chain[0]
    assert opened.identity.key.kid == made.identity.key.kid
    assert "PRIVATE" not in repr(opened)
    _raises(
        Conflict,
        "conflict",
        lambda: PlatformDevice.create(tmp_path, "nvme", vendor="v", model="m", now=NOW),
    )
    _raises(NotFound, "not-found", lambda: PlatformDevice.open(tmp_path, "gpu"))
    _raises(ConfigError, "config", lambda: PlatformDevice.open(tmp_path, "../nvme"))


def test_a_device_whose_key_its_chain_does_not_certify_does_not_open(
    devices: Path, tmp_path: Path
) -> None:
    for suffix in ("key.pem", "chain.pem", "device.json"):
        shutil.copy(devices / f"nic.{suffix}", tmp_path / f"nic.{suffix}")
    os.replace(tmp_path / "nic.key.pem", tmp_path / "old.key.pem")
    shutil.copy(devices / "gpu.key.pem", tmp_path / "nic.key.pem")
    _raises(ConfigError, "config", lambda: PlatformDevice.open(tmp_path, "nic"))


# --- what a device measures -------------------------------------------------------------------


def test_measurement_blocks_are_digests_of_the_components_held_and_the_svn(v1: Release) -> None:
    blocks = device_measurement_blocks(v1.bundle)
    assert [b.index for b in blocks] == [1, 2, 3, DEVICE_SVN_INDEX, DEVICE_MODE_INDEX]
    for block, data in zip(blocks, (FMC, RUNTIME_1, EXTRA), strict=False):
        assert block.value_type == MeasurementValueType.MUTABLE_FIRMWARE
        assert not block.raw
        assert block.value == hashlib.sha384(data).digest()
    assert blocks[-2].value_type == MeasurementValueType.SECURE_VERSION_NUMBER
    assert blocks[-2].secure_version_number() == 3
    # the device's mode, raw: normal operation, no debug mode active or active since reset
    assert (blocks[-1].index, blocks[-1].raw) == (0xFE, True)
    assert blocks[-1].device_mode() == DEVICE_MODE
    assert DEVICE_MODE.operational_mode_state == 0x04
    assert DEVICE_MODE.device_mode_state & 0x0F == 0
    erased = b"\xff" * 4096
    whole, mode = device_measurement_blocks(erased)
    assert (whole.index, whole.value) == (1, hashlib.sha384(erased).digest())
    assert mode == blocks[-1]


# --- a good device ----------------------------------------------------------------------------


def test_a_device_running_its_logged_firmware_passes(
    world: World, nic: PlatformDevice, pinned: bytes, v1: Release
) -> None:
    references = world.references(v1.statement)
    nonce = os.urandom(32)
    result = verify_device(nic, v1.bundle, root=pinned, references=references, now=NOW, nonce=nonce)
    assert result.ok
    assert result.code is None
    assert result.error is None
    assert dict(result.measurements) == {
        1: hashlib.sha384(FMC).hexdigest(),
        2: hashlib.sha384(RUNTIME_1).hexdigest(),
        3: hashlib.sha384(EXTRA).hexdigest(),
    }
    assert result.svn == 3
    assert result.root_hash == hashlib.sha384(pinned).hexdigest()
    assert result.to_json()["measurements"]["2"] == hashlib.sha384(RUNTIME_1).hexdigest()
    assert result.evidence is not None
    verified = verify_spdm_evidence(result.evidence, nonce=nonce, root_certificate=pinned, now=NOW)
    assert len(verified.blocks) == 5
    assert verified.blocks[-1].device_mode() == DEVICE_MODE  # raw, though not asked raw
    measured = measure_device(nic, v1.bundle, root=pinned, references=references, now=NOW)
    assert measured.ok
    assert measured.svn == 3


def test_a_newer_logged_release_still_passes_once_installed(
    world: World, nic: PlatformDevice, pinned: bytes, v1: Release, v2: Release
) -> None:
    references = world.references(v1.statement, v2.statement)
    result = measure_device(nic, v2.bundle, root=pinned, references=references, now=NOW)
    assert result.ok, result.detail
    assert result.svn == 5


def test_the_statements_an_update_ships_with_give_its_reference_values(
    world: World, nic: PlatformDevice, pinned: bytes
) -> None:
    bundle = world.bundle(svn=4, runtime=b"nic runtime 1.5" * 30)
    published = publish_bundle(
        bundle, world.trusted, world.vendor_key, iss=VENDOR_ISS, sub=NIC_MODEL
    )
    unlogged_manifest = manifest_statement(bundle, world.vendor_key, iss=VENDOR_ISS, sub=NIC_MODEL)
    statements = [published.manifest_statement, unlogged_manifest, published.corim_statement]
    references = world.references(*statements)
    assert {v.mkey for v in references} == {"fmc", "runtime", f"component-{EXTRA_ID}"}
    assert measure_device(nic, bundle, root=pinned, references=references, now=NOW).ok


def test_a_flash_read_is_measured_by_its_digest_and_another_image_afresh(
    world: World, nic: PlatformDevice, pinned: bytes, v1: Release, v2: Release
) -> None:
    """The platform's own measurement remembers an image's blocks by the SHA-384 its flash
    read computed; another image (another digest) is measured for what it holds."""
    from ironroot.platform._devices import _measure_read

    only_v1 = world.references(v1.statement)
    both = world.references(v1.statement, v2.statement)
    for release, references, svn in ((v1, only_v1, 3), (v2, both, 5), (v1, only_v1, 3)):
        read = (release.bundle, hashlib.sha384(release.bundle).digest())
        result = _measure_read(nic, read, root=pinned, references=references, now=NOW)
        assert result.ok, result.detail
        assert result.svn == svn
    references = only_v1
    parsed = FirmwareBundle.parse(v1.bundle)
    tampered = bytearray(v1.bundle)
    tampered[parsed.manifest.toc[1].offset + 10] ^= 1  # inside the runtime
    read = (bytes(tampered), hashlib.sha384(bytes(tampered)).digest())
    result = _measure_read(nic, read, root=pinned, references=references, now=NOW)
    assert result.code == "measurement-mismatch"


# --- must reject: measurements ----------------------------------------------------------------


def test_a_tampered_image_is_a_measurement_mismatch(
    world: World, nic: PlatformDevice, pinned: bytes, v1: Release
) -> None:
    parsed = FirmwareBundle.parse(v1.bundle)
    runtime = parsed.manifest.toc[1]
    tampered = bytearray(v1.bundle)
    tampered[runtime.offset + 10] ^= 0x01
    references = world.references(v1.statement)
    result = measure_device(nic, bytes(tampered), root=pinned, references=references, now=NOW)
    error = _expect(result, EndorsementMismatch, "measurement-mismatch")
    assert "measurement 2 (runtime)" in error.detail
    assert (
        result.measurements[2]
        == hashlib.sha384(bytes(tampered[runtime.offset : runtime.end])).hexdigest()
    )
    _raises(
        EndorsementMismatch,
        "measurement-mismatch",
        lambda: verify_device(nic, bytes(tampered), root=pinned, references=references, now=NOW),
    )


def test_a_logged_value_stating_what_a_measurement_does_not_show_matches_nothing(
    world: World, nic: PlatformDevice, pinned: bytes, v1: Release
) -> None:
    # A reference value that also states a raw value (or flags, authorized-by…) was matched
    # on its digest alone: the platform cannot tell whether the device meets the rest.
    logged = world.references(v1.statement)
    assert measure_device(nic, v1.bundle, root=pinned, references=logged, now=NOW).ok
    stating = ReferenceValues(dataclasses.replace(v, unchecked=("raw-value",)) for v in logged)
    result = measure_device(nic, v1.bundle, root=pinned, references=stating, now=NOW)
    _expect(result, EndorsementMismatch, "measurement-mismatch")


def test_firmware_that_was_never_logged_is_a_measurement_mismatch(
    world: World, nic: PlatformDevice, pinned: bytes, v1: Release
) -> None:
    unlogged = world.bundle(svn=3, runtime=b"a perfectly signed but secret runtime" * 8)
    result = measure_device(
        nic, unlogged, root=pinned, references=world.references(v1.statement), now=NOW
    )
    _expect(result, EndorsementMismatch, "measurement-mismatch")


def test_an_erased_flash_reports_missing_measurements(
    world: World, nic: PlatformDevice, pinned: bytes, v1: Release
) -> None:
    result = measure_device(
        nic, b"\xff" * 8192, root=pinned, references=world.references(v1.statement), now=NOW
    )
    error = _expect(result, EndorsementMismatch, "measurement-missing")
    assert "runtime" in error.detail
    assert "SVN" in error.detail
    assert list(result.measurements) == [1]
    assert result.svn is None


def test_a_block_outside_the_device_layout_is_refused(
    world: World, nic: PlatformDevice, pinned: bytes, v1: Release
) -> None:
    mode = DeviceMode(1, 1, 1, 0).encode()  # a second DeviceMode, elsewhere
    blocks = (
        *device_measurement_blocks(v1.bundle),
        MeasurementBlock(0x10, MeasurementValueType.DEVICE_MODE, mode, raw=True),
    )
    result = _measure_blocks(world, nic, pinned, v1, blocks)
    error = _expect(result, EndorsementMismatch, "unexpected-measurement")
    assert "measurement 16 (DEVICE_MODE)" in error.detail


def _measure_blocks(
    world: World,
    nic: PlatformDevice,
    pinned: bytes,
    v1: Release,
    blocks: tuple[MeasurementBlock, ...],
) -> DeviceMeasurement:
    return measure_responder(
        Responder(nic.identity.key, nic.chain, blocks),
        name=nic.name,
        vendor=nic.vendor,
        model=nic.model,
        root=pinned,
        references=world.references(v1.statement),
        now=NOW,
    )


def _with_mode(v1: Release, mode: MeasurementBlock | None) -> tuple[MeasurementBlock, ...]:
    kept = tuple(b for b in device_measurement_blocks(v1.bundle) if b.index != DEVICE_MODE_INDEX)
    return kept if mode is None else (*kept, mode)


@pytest.mark.parametrize("state", [0x01, 0x02, 0x04, 0x08])
def test_a_device_whose_device_mode_says_debug_is_refused(
    world: World, nic: PlatformDevice, pinned: bytes, v1: Release, state: int
) -> None:
    debug = DeviceMode(0x04, 0x04, 0x1F, state).encode()
    block = MeasurementBlock(DEVICE_MODE_INDEX, MeasurementValueType.DEVICE_MODE, debug, raw=True)
    result = _measure_blocks(world, nic, pinned, v1, _with_mode(v1, block))
    error = _expect(result, PolicyRejected, "debug-unlocked")
    assert error.detail == (
        "the device's DeviceMode says debug mode is or was active since reset"
        f" (DeviceModeState {state:#x})"
    )


def test_a_device_reporting_no_device_mode_is_refused(
    world: World, nic: PlatformDevice, pinned: bytes, v1: Release
) -> None:
    """Debug off is not assumed: a device must show it (a raw DeviceMode block)."""
    result = _measure_blocks(world, nic, pinned, v1, _with_mode(v1, None))
    error = _expect(result, EndorsementMismatch, "measurement-missing")
    assert error.detail == "the device reports no raw DeviceMode measurement"


def test_a_device_mode_sent_as_a_digest_is_refused(
    world: World, nic: PlatformDevice, pinned: bytes, v1: Release
) -> None:
    digest = hashlib.sha384(DEVICE_MODE.encode()).digest()
    block = MeasurementBlock(DEVICE_MODE_INDEX, MeasurementValueType.DEVICE_MODE, digest)
    result = _measure_blocks(world, nic, pinned, v1, _with_mode(v1, block))
    error = _expect(result, EndorsementMismatch, "unexpected-measurement")
    assert "measurement 254 (DEVICE_MODE)" in error.detail


def test_a_devices_blocks_are_named_by_the_layout_then_by_the_logged_components() -> None:
    """What a verifier names each block by (one place for the layout: ``ironroot.fleet``
    appraises by these names): 1 ``fmc``, 2 ``runtime``; from 3, the first by name of the
    logged ``component-<id>`` values listing its digest that no earlier block took, else
    ``component-<index>``."""
    assert dict(DEVICE_LAYOUT) == {1: "fmc", 2: "runtime"}
    digest = {n: hashlib.sha384(bytes([n])).digest() for n in range(1, 7)}

    def logged(mkey: str, n: int) -> ReferenceValue:
        return ReferenceValue(mkey, ((HASH_ALG_SHA384, digest[n]),))

    references = ReferenceValues(
        [
            logged("fmc", 1),
            logged("runtime", 2),
            logged("component-9", 3),
            logged("component-7", 3),
            logged("component-8", 4),
            logged("component-7", 4),
            logged("fmc", 6),  # not a component's key: block 6 takes none of it
        ]
    )
    blocks = {n: digest[n] for n in (1, 2, 3, 4, 5, 6)}
    assert device_block_keys(blocks, references) == {
        1: "fmc",
        2: "runtime",
        3: "component-7",  # the first by name
        4: "component-8",  # component-7 is block 3's
        5: "component-5",  # nobody logged it
        6: "component-6",
    }
    assert device_block_keys({1: digest[3], 3: digest[1]}, references) == {
        1: "fmc",  # by its index, whatever it holds
        3: "component-3",
    }


def test_a_device_without_logged_reference_values_is_refused(
    nic: PlatformDevice, pinned: bytes, v1: Release
) -> None:
    result = measure_device(nic, v1.bundle, root=pinned, references=ReferenceValues(), now=NOW)
    _expect(result, EndorsementMismatch, "no-reference-values")


def test_reference_values_of_another_model_do_not_count(
    world: World, nic: PlatformDevice, pinned: bytes, v1: Release
) -> None:
    gpu_release = world.publish(v1.bundle, model=GPU_MODEL)
    references = world.references(gpu_release, model=GPU_MODEL)
    result = measure_device(nic, v1.bundle, root=pinned, references=references, now=NOW)
    _expect(result, EndorsementMismatch, "no-reference-values")


def test_an_svn_below_the_logged_minimum_is_a_rollback(
    world: World, nic: PlatformDevice, pinned: bytes, v1: Release, v2: Release
) -> None:
    references = world.references(v1.statement, v2.statement)
    result = measure_device(nic, v1.bundle, root=pinned, references=references, now=NOW)
    error = _expect(result, SvnRollback, "svn-rollback")
    assert "SVN 3" in error.detail
    assert "SVN 5" in error.detail


def test_an_svn_the_logged_release_does_not_state_is_refused(
    world: World, nic: PlatformDevice, pinned: bytes, v1: Release
) -> None:
    offset, size = field_offsets()["header.svn"]
    forged = bytearray(v1.bundle)
    forged[offset : offset + size] = (9).to_bytes(size, "little")
    assert device_measurement_blocks(bytes(forged))[-2].secure_version_number() == 9
    result = measure_device(
        nic, bytes(forged), root=pinned, references=world.references(v1.statement), now=NOW
    )
    _expect(result, EndorsementMismatch, "svn-mismatch")


# --- must reject: components of several releases ---------------------------------------------

FMC_B = bytes(reversed(range(256))) * 8


def test_a_device_mixing_the_components_of_two_logged_releases_is_refused(
    world: World, nic: PlatformDevice, pinned: bytes, v1: Release
) -> None:
    """Release A (``v1``) and release B, both logged, both SVN 3: a device running A's FMC
    and third component with B's runtime matches a logged value block by block and states
    the SVN of both, but no one released that combination."""
    b = world.bundle(svn=3, fmc=FMC_B, runtime=RUNTIME_2)
    references = world.references(v1.statement, world.publish(b))
    mixed = world.bundle(svn=3, runtime=RUNTIME_2)
    result = measure_device(nic, mixed, root=pinned, references=references, now=NOW)
    error = _expect(result, EndorsementMismatch, "mixed-releases")
    assert "no one logged release (one CoMID of one issuer) lists them all" in error.detail
    _raises(
        EndorsementMismatch,
        "mixed-releases",
        lambda: verify_device(nic, mixed, root=pinned, references=references, now=NOW),
    )
    for whole in (v1.bundle, b):  # wholly on release A, wholly on release B
        assert measure_device(nic, whole, root=pinned, references=references, now=NOW).ok


def _value(mkey: str, digest: bytes, tag: str | None, **kw: Any) -> ReferenceValue:
    return ReferenceValue(
        mkey,
        ((HASH_ALG_SHA384, digest),),
        svn=3,
        svn_minimum=True,
        vendor=VENDOR_ISS,
        model=NIC_MODEL,
        issuer=kw.pop("issuer", VENDOR_ISS),
        tag_id=tag,
        **kw,
    )


_FMC_A, _FMC_B, _RT_A, _RT_B = (hashlib.sha384(bytes([n])).digest() for n in range(4))


@pytest.mark.parametrize(
    ("values", "device"),
    [
        # the FMC of tag a, the runtime of tag b, one issuer
        (
            [
                _value("fmc", _FMC_A, "a"),
                _value("runtime", _RT_A, "a"),
                _value("fmc", _FMC_B, "b"),
                _value("runtime", _RT_B, "b"),
            ],
            (_FMC_A, _RT_B),
        ),
        # one tag-id, two issuers: two releases
        (
            [_value("fmc", _FMC_A, "t"), _value("runtime", _RT_A, "t", issuer=OTHER_ISS)],
            (_FMC_A, _RT_A),
        ),
        # values of no CoMID name no release: each is one of its own
        ([_value("fmc", _FMC_A, None), _value("runtime", _RT_A, None)], (_FMC_A, _RT_A)),
        # the runtime of version 0 of tag a, which version 1 withdrew, lives on in tag c only
        (
            [
                _value("fmc", _FMC_A, "a"),
                _value("runtime", _RT_A, "a"),
                _value("fmc", _FMC_A, "a", tag_version=1),
                _value("runtime", _RT_B, "a", tag_version=1),
                _value("runtime", _RT_A, "c"),
            ],
            (_FMC_A, _RT_A),
        ),
    ],
    ids=["two-tags", "two-issuers", "no-comid", "withdrawn-version"],
)
def test_blocks_not_all_listed_by_one_comid_of_one_issuer_are_mixed_releases(
    values: list[ReferenceValue], device: tuple[bytes, bytes]
) -> None:
    references = ReferenceValues(values)
    components = dict(enumerate(device, start=1))
    _raises(
        EndorsementMismatch,
        "mixed-releases",
        lambda: compare_device_references(
            components, 3, references, vendor=VENDOR_ISS, model=NIC_MODEL
        ),
    )


def test_one_release_listing_every_block_passes_and_newer_versions_replace_older() -> None:
    references = ReferenceValues(
        [
            _value("fmc", _FMC_A, "a"),
            _value("runtime", _RT_A, "a"),
            _value("fmc", _FMC_A, "a", tag_version=1),  # version 1 of tag a: a new runtime
            _value("runtime", _RT_B, "a", tag_version=1),
            _value("fmc", _FMC_B, "b"),  # tag b reuses a's runtime
            _value("runtime", _RT_B, "b"),
        ]
    )
    for device in ((_FMC_A, _RT_B), (_FMC_B, _RT_B)):
        components = dict(enumerate(device, start=1))
        compare_device_references(components, 3, references, vendor=VENDOR_ISS, model=NIC_MODEL)
    # A block no value matches is the digest check's refusal, not a mix
    _raises(
        EndorsementMismatch,
        "measurement-mismatch",
        lambda: compare_device_references(
            {1: _FMC_A, 2: _RT_A}, 3, references, vendor=VENDOR_ISS, model=NIC_MODEL
        ),
    )


# --- must reject: identity and signatures -----------------------------------------------------


def test_another_devices_identity_does_not_chain_to_the_pinned_root(
    world: World, devices: Path, pinned: bytes, v1: Release, tmp_path: Path
) -> None:
    for suffix in ("key.pem", "chain.pem"):
        shutil.copy(devices / f"gpu.{suffix}", tmp_path / f"nic.{suffix}")
    shutil.copy(devices / "nic.device.json", tmp_path / "nic.device.json")
    swapped = PlatformDevice.open(tmp_path, "nic")
    references = world.references(v1.statement)
    result = measure_device(swapped, v1.bundle, root=pinned, references=references, now=NOW)
    _expect(result, ChainNotTrusted, "chain-not-trusted")
    assert result.root_hash is None
    assert not result.measurements
    assert result.evidence is None
    _raises(
        ChainNotTrusted,
        "chain-not-trusted",
        lambda: verify_device(swapped, v1.bundle, root=pinned, references=references, now=NOW),
    )


def _flip_measurement_signature(send: Transport) -> Transport:
    def tampered(request: bytes) -> bytes:
        response = send(request)
        if response[1] == RequestResponseCode.MEASUREMENTS:
            return response[:-1] + bytes((response[-1] ^ 0x01,))
        return response

    return tampered


def test_a_bad_measurement_signature_is_refused(
    world: World, nic: PlatformDevice, pinned: bytes, v1: Release
) -> None:
    result = measure_responder(
        _flip_measurement_signature(nic.responder(v1.bundle)),
        name=nic.name,
        vendor=nic.vendor,
        model=nic.model,
        root=pinned,
        references=world.references(v1.statement),
        now=NOW,
    )
    _expect(result, BadSignature, "bad-signature")
    assert result.root_hash == hashlib.sha384(pinned).hexdigest()
    assert not result.measurements


# --- must reject: reference values that are not logged, or not trusted ------------------------


def test_a_corim_that_is_not_on_the_log_is_refused(world: World, v1: Release) -> None:
    bare = world.corim(v1.bundle)
    error = _raises(VerificationFailed, "no-receipt", lambda: world.references(bare))
    assert "not on the log" in error.detail


def test_a_corim_logged_by_an_untrusted_service_is_refused(world: World, v1: Release) -> None:
    elsewhere = world.publish(v1.bundle, service=world.untrusted)
    _raises(UnknownIssuer, "untrusted-service", lambda: world.references(v1.statement, elsewhere))


def test_a_corim_published_by_an_issuer_not_allowed_is_refused(world: World, v1: Release) -> None:
    foreign = world.publish(v1.bundle, iss=OTHER_ISS)
    _raises(UnknownIssuer, "publisher-not-allowed", lambda: world.references(foreign))
    _raises(
        UnknownIssuer,
        "publisher-not-allowed",
        lambda: device_references(
            [v1.statement],
            trust_service_keys=world.service_keys,
            issuers=frozenset(),
            vendor=VENDOR_ISS,
            model=NIC_MODEL,
            now=NOW,
        ),
    )


def test_a_corim_for_another_product_is_refused_for_this_device(world: World, v1: Release) -> None:
    gpu_release = world.publish(v1.bundle, model=GPU_MODEL)
    _raises(UnknownIssuer, "publisher-not-allowed", lambda: world.references(gpu_release))


def test_an_expired_corim_is_refused(world: World, v1: Release) -> None:
    later = NOW + dt.timedelta(days=400)
    _raises(
        VerificationFailed,
        "rim-expired",
        lambda: device_references(
            [v1.statement],
            trust_service_keys=world.service_keys,
            issuers=ISSUERS,
            vendor=VENDOR_ISS,
            model=NIC_MODEL,
            now=later,
        ),
    )


def _report_references(world: World, *statements: bytes, at: dt.datetime) -> ReferenceValues:
    """The references as the platform's boot takes them with ``expired_manifest = report``."""
    return device_references(
        statements,
        trust_service_keys=world.service_keys,
        issuers=ISSUERS,
        vendor=VENDOR_ISS,
        model=NIC_MODEL,
        now=at,
        outside_validity="report",
    )


_LATER = NOW + dt.timedelta(days=400)
_EXPIRED = f"the reference values of {NIC_MODEL!r} expired at 2027-06-01T12:00:00+00:00"


def test_report_mode_takes_expired_reference_values_and_names_the_finding(
    world: World, nic: PlatformDevice, pinned: bytes, v1: Release
) -> None:
    """Old behaviour: ``rim-expired`` whatever the caller; the platform held the device."""
    for _ in range(2):  # read afresh, then from the remembered entry
        references = _report_references(world, v1.statement, at=_LATER)
        assert len(references) > 0
        assert _outside_validity(references, _LATER) == _EXPIRED
        assert _outside_validity(references, NOW) is None
        result = measure_device(nic, v1.bundle, root=pinned, references=references, now=_LATER)
        assert result.ok, result
    early = NOW - dt.timedelta(days=31)  # before the manifest's not-before (NOW - 30 days)
    assert _outside_validity(_report_references(world, v1.statement, at=early), early) == (
        f"the reference values of {NIC_MODEL!r} are not valid before 2026-05-02T12:00:00+00:00"
    )


def test_report_mode_still_refuses_a_tampered_image_against_expired_references(
    world: World, nic: PlatformDevice, pinned: bytes, v1: Release
) -> None:
    parsed = FirmwareBundle.parse(v1.bundle)
    tampered = bytearray(v1.bundle)
    tampered[parsed.manifest.toc[1].offset + 10] ^= 0x01
    references = _report_references(world, v1.statement, at=_LATER)
    result = measure_device(nic, bytes(tampered), root=pinned, references=references, now=_LATER)
    error = _expect(result, EndorsementMismatch, "measurement-mismatch")
    assert "measurement 2 (runtime)" in error.detail


def test_report_mode_still_refuses_an_svn_rollback_against_expired_references(
    world: World, nic: PlatformDevice, pinned: bytes, v1: Release, v2: Release
) -> None:
    references = _report_references(world, v1.statement, v2.statement, at=_LATER)
    result = measure_device(nic, v1.bundle, root=pinned, references=references, now=_LATER)
    error = _expect(result, SvnRollback, "svn-rollback")
    assert error.detail == f"the device runs SVN 3, below the logged minimum SVN 5 of {NIC_MODEL!r}"


def test_report_mode_passes_over_the_dates_alone(world: World, v1: Release) -> None:
    """An expired CoRIM from a service not trusted, or from an issuer not allowed, is refused
    for that, not taken because report mode passes over its dates."""
    untrusted = world.publish(v1.bundle, service=world.untrusted)
    _raises(
        UnknownIssuer, "untrusted-service", lambda: _report_references(world, untrusted, at=_LATER)
    )
    other = world.publish(v1.bundle, iss=OTHER_ISS)
    _raises(
        UnknownIssuer, "publisher-not-allowed", lambda: _report_references(world, other, at=_LATER)
    )
    error = _raises(
        ConfigError,
        "config",
        lambda: device_references(
            [v1.statement],
            trust_service_keys=world.service_keys,
            issuers=ISSUERS,
            vendor=VENDOR_ISS,
            model=NIC_MODEL,
            now=NOW,
            outside_validity="ignore",
        ),
    )
    assert error.detail == 'outside_validity is "refuse" or "report"'


def test_no_trusted_service_trusts_nothing(world: World, v1: Release) -> None:
    _raises(
        UnknownIssuer,
        "untrusted-service",
        lambda: device_references(
            [v1.statement],
            trust_service_keys={},
            issuers=ISSUERS,
            vendor=VENDOR_ISS,
            model=NIC_MODEL,
            now=NOW,
        ),
    )
    assert len(world.references()) == 0


def test_remembered_reference_values_serve_exactly_the_same_inputs(
    world: World, v1: Release, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A statement verified once is not verified again for the same keys and publisher; any
    other input — time outside the CoRIM's validity, other service keys, other issuers or
    product, changed bytes — is verified afresh and refused as before."""
    from ironroot.platform import _devices

    first = world.references(v1.statement)
    verified: list[bytes] = []
    real = _devices.reference_values_from_statement

    def counting(data: bytes, **kwargs: object) -> object:
        verified.append(data)
        return real(data, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_devices, "reference_values_from_statement", counting)
    assert list(world.references(v1.statement)) == list(first)
    assert verified == []

    def refs(**changes: object) -> ReferenceValues:
        args: dict[str, object] = {
            "trust_service_keys": world.service_keys,
            "issuers": ISSUERS,
            "vendor": VENDOR_ISS,
            "model": NIC_MODEL,
            "now": NOW,
        }
        args.update(changes)
        return device_references([v1.statement], **args)  # type: ignore[arg-type]

    later = NOW + dt.timedelta(days=400)
    _raises(VerificationFailed, "rim-expired", lambda: refs(now=later))
    untrusted = world.untrusted.service_keys()
    _raises(UnknownIssuer, "untrusted-service", lambda: refs(trust_service_keys=untrusted))
    _raises(UnknownIssuer, "publisher-not-allowed", lambda: refs(issuers=frozenset({OTHER_ISS})))
    _raises(UnknownIssuer, "publisher-not-allowed", lambda: refs(model=GPU_MODEL))
    changed = bytearray(v1.statement)
    changed[-1] ^= 1  # a receipt's signature
    with pytest.raises(IronrootError):
        device_references(
            [bytes(changed)],
            trust_service_keys=world.service_keys,
            issuers=ISSUERS,
            vendor=VENDOR_ISS,
            model=NIC_MODEL,
            now=NOW,
        )
    assert len(verified) == 5


def test_a_remembered_signed_corim_is_refused_once_its_signature_expired(
    world: World, v1: Release
) -> None:
    """A signed CoRIM's CWT ``exp`` ends its values before its ``rim-validity`` does: read at
    ``NOW`` they are taken (and remembered), read after ``exp`` they are refused. The
    remembered entry held only the ``rim-validity``, so it served them after ``exp``."""
    exp = int(NOW.timestamp()) + 3600
    corim = reference_corim(v1.bundle, vendor=VENDOR_ISS, model=NIC_MODEL)
    signed = sign_corim(corim, world.vendor_key, cwt_claims={1: VENDOR_ISS, 4: exp})
    statement = create_statement(
        world.vendor_key, signed, iss=VENDOR_ISS, sub=NIC_MODEL, content_type=CORIM_CONTENT_TYPE
    )
    data = world.trusted.register(statement).transparent_statement

    def refs(at: dt.datetime, mode: str = "refuse") -> ReferenceValues:
        return device_references(
            [data],
            trust_service_keys=world.service_keys,
            issuers=ISSUERS,
            vendor=VENDOR_ISS,
            model=NIC_MODEL,
            now=at,
            outside_validity=mode,
        )

    assert len(refs(NOW)) > 0
    later = NOW + dt.timedelta(hours=2)
    for _ in range(2):  # whether or not the first read was remembered
        error = _raises(VerificationFailed, "rim-expired", lambda: refs(later))
        assert "(CWT exp/nbf)" in error.detail
    taken = refs(later, "report")
    assert len(taken) > 0
    assert _outside_validity(taken, later) == (
        f"the reference values of {NIC_MODEL!r} expired at 2026-06-01T12:59:59+00:00"
    )


@pytest.mark.parametrize(
    ("validity", "finding"),
    [
        (Validity(not_after=2**64 - 1, not_before=2**63), "are not valid before"),
        (Validity(not_after=-(2**63)), "expired at"),
        (Validity(not_after=2**64 - 1, not_before=253_402_300_800), "are not valid before"),
    ],
    ids=["not-before-past-time_t", "not-after-before-time_t", "not-before-year-10000"],
)
def test_report_mode_names_dates_no_calendar_holds(
    world: World, v1: Release, validity: Validity, finding: str
) -> None:
    """A CoRIM's dates are any CBOR integers; one outside the years 1-9999 made naming the
    finding raise ``OverflowError``/``ValueError`` (no ``IronrootError``): boot and measure,
    which catch only those, stopped on a statement its publisher could log."""
    corim = dataclasses.replace(
        reference_corim(v1.bundle, vendor=VENDOR_ISS, model=NIC_MODEL), rim_validity=validity
    )
    statement = create_statement(
        world.vendor_key,
        corim.encode(),
        iss=VENDOR_ISS,
        sub=NIC_MODEL,
        content_type=CORIM_CONTENT_TYPE,
    )
    data = world.trusted.register(statement).transparent_statement
    _raises(VerificationFailed, "rim-expired", lambda: world.references(data))
    references = _report_references(world, data, at=NOW)
    assert len(references) > 0
    bound = validity.not_after if validity.not_before is None else validity.not_before
    assert _outside_validity(references, NOW) == (
        f"the reference values of {NIC_MODEL!r} {finding} {bound} seconds since the epoch"
    )


def test_bad_arguments_are_config_errors(
    world: World, nic: PlatformDevice, pinned: bytes, v1: Release
) -> None:
    references = world.references(v1.statement)
    _raises(
        ConfigError,
        "config",
        lambda: measure_device(
            nic, v1.bundle, root=pinned, references=references, now=NOW, nonce=b"x"
        ),
    )
    _raises(ConfigError, "config", lambda: nic.responder("not bytes"))  # type: ignore[arg-type]
    naive = NOW.replace(tzinfo=None)
    _raises(
        ConfigError,
        "config",
        lambda: measure_device(nic, v1.bundle, root=pinned, references=references, now=naive),
    )
    _raises(
        ConfigError,
        "config",
        lambda: device_references(
            [v1.statement],
            trust_service_keys=world.service_keys,
            issuers=VENDOR_ISS,  # type: ignore[arg-type]  # a string, not a set of them
            vendor=VENDOR_ISS,
            model=NIC_MODEL,
            now=NOW,
        ),
    )


def test_a_pinned_service_issuer_refuses_reference_values_of_another_service(
    world: World, v1: Release
) -> None:
    # the trust's service_issuer holds a device's reference values as it holds the update's
    # manifest: the cache of verified statements never serves them to a trust pinned otherwise
    service = world.trusted.service_issuer()
    args: dict[str, Any] = {
        "trust_service_keys": world.service_keys,
        "issuers": ISSUERS,
        "vendor": VENDOR_ISS,
        "model": NIC_MODEL,
        "now": NOW,
    }
    unpinned = list(device_references([v1.statement], **args))
    assert unpinned
    assert list(device_references([v1.statement], **args, service_issuer=service)) == unpinned
    other = "https://another-ts.example"
    error = _raises(
        UnknownIssuer,
        "untrusted-service",
        lambda: device_references([v1.statement], **args, service_issuer=other),
    )
    assert error.detail == (
        f"no receipt of the reference values of {NIC_MODEL!r} is by a trusted transparency "
        f"service (the receipt is issued by {service!r}, not by the transparency service "
        f"{other!r})"
    )
