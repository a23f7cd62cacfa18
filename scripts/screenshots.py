"""Screenshots of the dashboard's main pages, for the README and docs/dashboard.md.

``make screenshots`` (or ``python scripts/screenshots.py [OUT_DIR]``): builds the world the
dashboard's tests use (tests/web/web_world.py: a vendor, logs, a fleet of six nodes — three
admitted, one quarantined by its own attestation, one by an operator, one never attested —,
an HSM that released and refused a key, a witness, a monitor that caught a split view) in a
temporary directory, serves the dashboard at the world's fixed clock, logs in with Debian's
chromium through Playwright, and writes one PNG per page into OUT_DIR (default
``docs/img``). The story, the names and the clock are the same on every run; keys are fresh,
so digests differ.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.web.web_world import (  # noqa: E402  (the repository root is on the path now)
    OPERATOR,
    PASSWORD,
    ROGUE_FIRMWARE,
    web_world,
)

from ironroot.http import ServerThread  # noqa: E402
from ironroot.web import create_dashboard_app  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
WIDTH = 1280


def pages(review_entry: str) -> list[tuple[str, str, int]]:
    """(file, page, viewport height): the node page tall enough for its nine links."""
    return [
        ("dashboard-overview.png", "/", 860),
        ("dashboard-fleet.png", "/fleet", 860),
        ("dashboard-node.png", f"/fleet/nodes/{ROGUE_FIRMWARE}", 1080),
        ("dashboard-log.png", "/log/trusted-log", 860),
        ("dashboard-statement.png", f"/log/trusted-log/entries/{review_entry}", 860),
        ("dashboard-checkpoints.png", "/log/ops-log/checkpoints", 860),
        ("dashboard-reviews.png", "/reviews", 860),
        ("dashboard-keys.png", "/keys", 860),
        ("dashboard-alerts.png", "/alerts", 860),
    ]


def shoot(url: str, out: Path, review_entry: str, executable: str) -> None:
    """Log in to the dashboard at ``url`` and write each page's PNG into ``out``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": WIDTH, "height": 860})
        page.goto(f"{url}/login")
        page.fill("#user", OPERATOR)
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_load_state("load")
        for name, path, height in pages(review_entry):
            page.set_viewport_size({"width": WIDTH, "height": height})
            page.goto(url + path, wait_until="load")
            page.screenshot(path=str(out / name))
            print(f"wrote {out / name}")
        browser.close()


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else ROOT / "docs" / "img"
    out.mkdir(parents=True, exist_ok=True)
    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if executable is None:
        print("screenshots: chromium is missing (scripts/install-test-deps.sh)", file=sys.stderr)
        return 2
    with (
        tempfile.TemporaryDirectory(prefix="ironroot-screenshots-") as work,
        web_world(Path(work)) as world,
        ServerThread(create_dashboard_app(world.dashboard()), name="dashboard") as server,
    ):
        shoot(server.url, out, world.review_entry, executable)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
