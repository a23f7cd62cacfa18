"""A PFM update may not strand a component's recovery image: a new PFM that no longer lists
it is refused unless the operator names the component (docs/platform.md "Update
verification")."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.platform.node_world import NOW, World, make_world, raises_exactly

from ironroot.cli import main
from ironroot.errors import PolicyRejected
from ironroot.platform import COMPONENTS, Platform
from scratch import in_memory


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with in_memory("platform-recovery-pfm-world-") as root, make_world(root) as w:
        yield w


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    with in_memory("platform-recovery-pfm-") as directory:
        yield directory


@pytest.fixture
def node(world: World, tmp_path: Path) -> Platform:
    return world.node(tmp_path)


def _pfm_without(world: World, component: str, version: str) -> bytes:
    versions = {c: [world.release(c, "1.0"), world.release(c, "2.0")] for c in COMPONENTS}
    versions[component] = [r for r in versions[component] if r.version != version]
    return world.make_pfm(2, versions)


def _update(node: Platform, world: World, component: str, **kwargs: object) -> object:
    release = world.release(component, "2.0")
    return node.update(component, release.bundle, release.statements, now=NOW, **kwargs)  # type: ignore[arg-type]


def test_a_pfm_that_drops_another_components_recovery_image_is_refused(
    node: Platform, world: World
) -> None:
    """host runs 2.0 (committed) but still recovers to 1.0; a gpu update carrying a PFM
    without host 1.0 was accepted, and host could never again be recovered."""
    assert _update(node, world, "host").outcome == "committed"  # type: ignore[attr-defined]
    assert node.state().component("host").recovery.version == "1.0"  # type: ignore[union-attr]
    pfm = _pfm_without(world, "host", "1.0")
    error = raises_exactly(
        PolicyRejected,
        "pfm-drops-recovery-image",
        lambda: _update(node, world, "gpu", pfm=pfm, pfm_statement=world.log_pfm(pfm)),
    )
    assert error.check == "pfm"
    assert error.detail == (
        "the new PFM no longer allows the host recovery image: host could not be recovered "
        "(allow_recovery_removal must name it to accept that)"
    )
    assert node.state().pending is None
    assert node.state().pfm.image.svn == 1  # type: ignore[union-attr]
    # once host 2.0 has booted healthy enough to be its recovery image, the PFM is accepted
    assert node.boot(now=NOW).recovery_replaced == ("host",)
    result = _update(node, world, "gpu", pfm=pfm, pfm_statement=world.log_pfm(pfm))
    assert result.outcome == "committed"  # type: ignore[attr-defined]


def test_a_pfm_that_drops_the_updated_components_recovery_image_is_refused(
    node: Platform, world: World
) -> None:
    """The component being updated recovers to its old image until the new one has booted
    healthy: a PFM without it would leave the update on trial with nothing to fall back to."""
    pfm = _pfm_without(world, "host", "1.0")
    raises_exactly(
        PolicyRejected,
        "pfm-drops-recovery-image",
        lambda: _update(node, world, "host", pfm=pfm, pfm_statement=world.log_pfm(pfm)),
    )
    assert node.state().component("host").image.version == "1.0"  # type: ignore[union-attr]


def test_the_operator_may_accept_dropping_a_recovery_image(node: Platform, world: World) -> None:
    pfm = _pfm_without(world, "host", "1.0")
    statement = world.log_pfm(pfm)
    raises_exactly(  # naming another component accepts nothing for host
        PolicyRejected,
        "pfm-drops-recovery-image",
        lambda: _update(
            node, world, "host", pfm=pfm, pfm_statement=statement, allow_recovery_removal=["gpu"]
        ),
    )
    result = _update(
        node, world, "host", pfm=pfm, pfm_statement=statement, allow_recovery_removal=["host"]
    )
    assert result.outcome == "committed"  # type: ignore[attr-defined]
    assert node.state().pfm.image.svn == 2  # type: ignore[union-attr]


def test_a_pfm_that_drops_an_active_image_is_still_refused_first(
    node: Platform, world: World
) -> None:
    """The override is for recovery images only: an active image the PFM drops is refused."""
    pfm = _pfm_without(world, "gpu", "1.0")
    raises_exactly(
        PolicyRejected,
        "pfm-drops-active-image",
        lambda: _update(
            node,
            world,
            "host",
            pfm=pfm,
            pfm_statement=world.log_pfm(pfm),
            allow_recovery_removal=["gpu"],
        ),
    )


def test_the_cli_refuses_then_takes_allow_recovery_removal(
    node: Platform, world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pfm = _pfm_without(world, "host", "1.0")
    release = world.release("host", "2.0")
    files = {
        "host.bin": release.bundle,
        "host.ts": release.statements[0],
        "node.pfm": pfm,
        "node.pfm.ts": world.log_pfm(pfm),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    update = [
        "platform",
        "update",
        str(tmp_path / "host.bin"),
        "--component",
        "host",
        "--statement",
        str(tmp_path / "host.ts"),
        "--pfm",
        str(tmp_path / "node.pfm"),
        "--pfm-statement",
        str(tmp_path / "node.pfm.ts"),
        "--node",
        str(node.directory),
        "--at",
        NOW.isoformat(),
        "--json",
    ]
    assert main(update) == 1
    refused = json.loads(capsys.readouterr().out)
    assert refused["error"]["code"] == "pfm-drops-recovery-image"
    assert refused["error"]["check"] == "pfm"
    assert main([*update, "--allow-recovery-removal", "host"]) == 0
    assert json.loads(capsys.readouterr().out)["outcome"] == "committed"


def test_check_recovery_images_is_the_update_paths_check_on_any_pfm(world: World) -> None:
    """The audit and the dashboard run the update's recovery check on the PFM in force."""
    from ironroot.platform import check_recovery_images, verify_pfm

    signed = _pfm_without(world, "host", "1.0")
    trust = world.trust()
    pfm = verify_pfm(
        signed,
        ecc_keys=trust.ecc_keys,
        pqc_keys=trust.pqc_keys,
        vendor_key_hash=world.descriptor_hash,
    )
    host_1 = {"host": world.release("host", "1.0").sha384}
    error = raises_exactly(
        PolicyRejected,
        "pfm-drops-recovery-image",
        lambda: check_recovery_images(pfm, host_1, what="the active PFM"),
    )
    assert error.detail.startswith("the active PFM no longer allows the host recovery image")
    check_recovery_images(pfm, host_1, allow_recovery_removal=["host"])
    raises_exactly(
        PolicyRejected,
        "pfm-drops-recovery-image",
        lambda: check_recovery_images(pfm, host_1, allow_recovery_removal=["gpu"]),
    )
    check_recovery_images(pfm, {"host": world.release("host", "2.0").sha384})
