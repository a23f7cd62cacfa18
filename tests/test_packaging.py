"""What ships: the licence in the wheel, a checkout the quick start leaves clean, a container
image that runs unprivileged with a health check (static checks: Docker is not run here)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_carries_the_licence() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    assert "Apache License" in (ROOT / "LICENSE").read_text()[:200]


def test_the_quick_start_leaves_no_untracked_files() -> None:
    ignored = set((ROOT / ".gitignore").read_text().split())
    written = ["/tsdata/", "/vendor.key", "/vendor.pub.pem", "/vendor.cose", "/release.json"]
    written += ["/release.cose", "/release.cose.ts", "/service-keys.cbor"]
    assert [w for w in written if w not in ignored] == []


def test_the_image_runs_unprivileged_with_a_health_check() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "\nUSER ironroot\n" in text
    assert 'VOLUME ["/data"]' in text
    assert "HEALTHCHECK" in text
    assert "/health" in text
    assert 'ENTRYPOINT ["ironroot"]' in text
