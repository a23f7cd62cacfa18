"""What ``audit export`` reads from the node's directory, which the node's own software writes
(the RoT, the HSM and its key service, the admission's credential writer): never through a
symbolic link planted there (which would seal a file from outside the node, the fleet CA's
private key, into a bundle handed to outside auditors), never a named pipe or a device (a
pipe held open by a writer that never writes hung the export), and never a bundle larger or
with more members than ``audit verify`` reads back."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.audit.audit_world import EXPORTED, NODE, AuditWorld, audit_world, install_node_hsm
from tests.platform.node_world import NOW

from ironroot.audit import AuditExport, AuditIndex, collect_export
from ironroot.crypto import PublicKey
from ironroot.errors import DeviceStateTampered, InputUnavailable, IronrootError, LimitExceeded
from ironroot.fleet import ADMISSION_DIR
from ironroot.keyrelease import ReleaseStatements
from ironroot.log import HttpLogFetcher


@pytest.fixture(scope="module")
def aw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditWorld]:
    yield from audit_world(tmp_path_factory.mktemp("audit-files"))


@pytest.fixture(scope="module")
def hsm_key(aw: AuditWorld) -> PublicKey:
    return install_node_hsm(aw, NOW)


def _node(aw: AuditWorld) -> Path:
    return aw.fleet.directory / "nodes" / NODE


def _secret(aw: AuditWorld) -> Path:
    return aw.fleet.directory / ADMISSION_DIR / "ca.key.pem"


@contextlib.contextmanager
def _planted(path: Path, plant: Callable[[Path], None]) -> Iterator[None]:
    """``path`` replaced by what ``plant`` makes there, and put back after."""
    saved = path.with_name(f"{path.name}.saved")
    moved = os.path.lexists(path)
    if moved:
        path.rename(saved)
    plant(path)
    try:
        yield
    finally:
        path.unlink()
        if moved:
            saved.rename(path)


def _leaks(export: AuditExport, secret: bytes) -> bool:
    return any(secret in data for data, _media in export.members.values())


def test_a_link_planted_as_a_node_credential_is_not_followed(aw: AuditWorld) -> None:
    """``<node>/credentials/`` is written for the node: a credential file replaced by a link
    to the fleet CA's private key sealed that key into the bundle."""
    secret = _secret(aw)
    path = _node(aw) / "credentials" / "control.cert.pem"
    with _planted(path, lambda p: p.symlink_to(secret)):
        export = aw.collect()
    assert "fleet/credential-control.pem" not in export.members
    assert not _leaks(export, secret.read_bytes())
    reason = export.absent["fleet/credential-control.pem"]
    assert reason.startswith("credentials/control.cert.pem is not a regular file of the node")
    assert "fleet/credential-data.pem" in export.members


@pytest.mark.parametrize(
    ("planted", "member"),
    [
        ("credentials/data.cert.pem", "fleet/credential-data.pem"),
        ("hsm/audit-0-0.jsonl", "hsm/audit-0-0.jsonl"),
        ("hsm/checkpoints/1.cose", "hsm/checkpoint-1.cose"),
    ],
)
def test_a_named_pipe_held_open_in_the_node_s_directory_does_not_hang_the_export(
    aw: AuditWorld, hsm_key: PublicKey, planted: str, member: str
) -> None:
    """A pipe in place of a node file, which a writer holds open and never writes: the export
    read the HSM's and waited for bytes forever (and left a credential's out unsaid)."""
    found: list[AuditExport] = []
    with _planted(_node(aw) / planted, os.mkfifo):
        writer = os.open(_node(aw) / planted, os.O_RDWR | os.O_NONBLOCK)
        try:
            reader = threading.Thread(target=lambda: found.append(aw.collect()), daemon=True)
            reader.start()
            reader.join(timeout=30)
            hung = reader.is_alive()
        finally:
            os.close(writer)  # lets a hung read end
            reader.join()
    assert not hung
    (export,) = found
    assert member not in export.members
    assert export.absent[member] == (
        f"{planted} is not a regular file of the node's directory (a named pipe, a device or a "
        "folder is not read)"
    )


def test_a_link_planted_as_the_platform_configuration_is_not_followed(
    aw: AuditWorld, tmp_path: Path
) -> None:
    """``platform.json`` is the node's; the export re-read it through any link there."""
    config = _node(aw) / "platform.json"
    elsewhere = tmp_path / "platform.json"
    elsewhere.write_bytes(config.read_bytes())
    with _planted(config, lambda p: p.symlink_to(elsewhere)):
        export = aw.collect()
    assert "platform/config.json" not in export.members
    assert export.absent["platform/config.json"].startswith(
        "platform.json is not a regular file of the node"
    )


def test_a_platform_configuration_swapped_during_the_export_is_not_sealed(
    aw: AuditWorld,
) -> None:
    """The platform opened one ``platform.json``; the export read the file again later, so
    what it sealed as the node's configuration could be another file's bytes."""
    config = _node(aw) / "platform.json"
    original = config.read_bytes()
    swapped = b'{"not": "the configuration the platform runs on"}'

    def swap(what: str) -> None:
        if what == "registry and platform state":
            config.write_bytes(swapped)

    try:
        with HttpLogFetcher(aw.world.urls["trusted"]) as fetcher:
            export = collect_export(aw.fleet, NODE, logs=[fetcher], now=EXPORTED, progress=swap)
    finally:
        config.write_bytes(original)
    assert "platform/config.json" not in export.members
    assert export.absent["platform/config.json"] == (
        "platform.json changed after the node was opened: it is not the configuration the "
        "platform runs on"
    )


def test_a_link_planted_as_the_node_s_releases_database_is_not_followed(
    aw: AuditWorld, hsm_key: PublicKey, tmp_path: Path
) -> None:
    """``<node>/releases.db`` (the key service's, in the node's directory) replaced by a link
    to another key service's database: its release statements were sealed into the bundle."""
    other = ReleaseStatements(tmp_path / "other.db")
    other.keep("key", b"another key service's release statement")
    other.close()
    with _planted(_node(aw) / "releases.db", lambda p: p.symlink_to(tmp_path / "other.db")):
        export = aw.collect()
    assert "hsm/releases.cbor" not in export.members
    assert export.absent["hsm/releases.cbor"] == (
        "releases.db is not a regular file of the node's directory (a symbolic link is not "
        "followed)"
    )


def test_hsm_checkpoints_beyond_what_a_bundle_holds_are_stated_absent(
    aw: AuditWorld, hsm_key: PublicKey
) -> None:
    """Each ``*.cose`` in ``<node>/hsm/checkpoints`` became a member: a few thousand of them
    made a bundle over the 1,024 members verify reads (or some GB of memory)."""
    folder = _node(aw) / "hsm" / "checkpoints"
    genuine = (folder / "0.cose").read_bytes()
    planted = [folder / f"copy-{n:04}.cose" for n in range(300)]
    for path in planted:
        path.write_bytes(genuine)
    try:
        export = aw.collect()
    finally:
        for path in planted:
            path.unlink()
    kept = [n for n in export.members if n.startswith("hsm/checkpoint-")]
    assert len(kept) == 256
    assert export.absent["hsm/checkpoints"] == (
        "45 of the 301 signed audit checkpoints in the node's hsm/checkpoints are left out "
        "(a bundle holds the last 256 by name)"
    )


def test_an_export_verify_could_not_read_back_is_refused_before_it_is_sealed(
    aw: AuditWorld,
) -> None:
    export = aw.collect()
    padded = export.replace(
        members={f"padding/{n:04}": (b"", "application/octet-stream") for n in range(1024)}
    )
    with pytest.raises(LimitExceeded) as info:
        padded.seal(aw.fleet.rot(NODE))
    assert info.value.detail == (
        f"the bundle would hold {len(padded.members)} members: audit verify reads at most 1024"
    )


def test_an_absent_reason_longer_than_verify_reads_is_shortened(aw: AuditWorld) -> None:
    """A reason quotes an error's detail, which may be long (a path, a parser's message):
    one over the 1,024 characters verify reads made the whole bundle unreadable."""
    export = aw.collect().replace(absent={"spdm/nic.cbor": "x" * 5000})
    assert len(export.absent["spdm/nic.cbor"]) == 1024
    assert export.absent["spdm/nic.cbor"].endswith("x…")
    AuditIndex.decode(export.index().encode())


def _bmc_evidence(aw: AuditWorld) -> str:
    image = aw.fleet.node(NODE).state().component("bmc").image
    assert image is not None
    return f"evidence/{image.evidence}.cbor"


@pytest.mark.parametrize(
    ("planted", "member", "reason"),
    [
        (
            "devices/nic.chain.pem",
            "spdm/nic.cbor",
            "nic could not be measured: input-unavailable: ",
        ),
        (
            None,  # the BMC image's evidence
            "firmware/bmc/bundle.bin",
            "bmc's active image cannot be read: evidence: the evidence ",
        ),
    ],
)
def test_a_named_pipe_held_open_among_the_platform_s_files_does_not_hang_the_export(
    aw: AuditWorld, planted: str | None, member: str, reason: str
) -> None:
    """The platform layer's readers of the node's files, which export calls (a device's
    identity, an image's evidence), read a pipe a writer held open and waited forever."""
    relative = planted or _bmc_evidence(aw)
    path = _node(aw) / relative
    found: list[AuditExport] = []
    with _planted(path, os.mkfifo):
        writer = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        try:
            reader = threading.Thread(target=lambda: found.append(aw.collect()), daemon=True)
            reader.start()
            reader.join(timeout=30)
            hung = reader.is_alive()
        finally:
            os.close(writer)
            reader.join()
    assert not hung
    (export,) = found
    assert member not in export.members
    assert export.absent[member].startswith(reason)


def _collect_beside_a_held_pipe(aw: AuditWorld, relative: str) -> AuditExport | IronrootError:
    """Export with a named pipe at ``relative`` in the node's directory, a writer holding it
    open and never writing: what export returned or raised (``AssertionError`` if it hung)."""
    path = _node(aw) / relative
    found: list[AuditExport | IronrootError] = []

    def collect() -> None:
        try:
            found.append(aw.collect())
        except IronrootError as exc:
            found.append(exc)

    with _planted(path, os.mkfifo):
        writer = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        try:
            reader = threading.Thread(target=collect, daemon=True)
            reader.start()
            reader.join(timeout=30)
            hung = reader.is_alive()
        finally:
            os.close(writer)
            reader.join()
    assert not hung, f"a pipe at {relative} hung the export"
    (result,) = found
    return result


def test_a_named_pipe_held_open_as_a_flash_chip_does_not_hang_the_export(
    aw: AuditWorld,
) -> None:
    export = _collect_beside_a_held_pipe(aw, "flash/nic.bin")
    assert isinstance(export, AuditExport)
    assert export.absent["firmware/nic/bundle.bin"] == (
        "nic's active image cannot be read: flash-not-a-file: flash chip nic.bin is not a "
        "regular file"
    )


@pytest.mark.parametrize(
    ("relative", "error", "detail"),
    [
        ("rot/fuses.json", DeviceStateTampered, "fuses.json is not a regular file, not a state"),
        ("rot/idevid-ecc.cert.der", InputUnavailable, "idevid-ecc.cert.der: is not a regular"),
        ("rot.obfuscation-key", InputUnavailable, "rot.obfuscation-key: is not a regular file"),
    ],
)
def test_a_named_pipe_held_open_among_the_rot_s_files_does_not_hang_the_export(
    aw: AuditWorld, relative: str, error: type[IronrootError], detail: str
) -> None:
    """The RoT's readers of its own files read a pipe a writer held open and waited."""
    raised = _collect_beside_a_held_pipe(aw, relative)
    assert type(raised) is error
    assert detail in raised.detail
