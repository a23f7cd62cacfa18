"""Act 8: an auditor verifies a node's sealed audit bundle offline."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.markup import escape

from ironroot.demo._act_fleet import class_trust
from ironroot.demo._world import Story

if TYPE_CHECKING:
    from ironroot.audit import AuditTrust


def audit_trust(story: Story) -> AuditTrust:
    """What the auditor trusts: the platform trust, the vendor CA roots, the log's checkpoint
    key, the fleet verifier's EAR key and the fleet CA (whose credentials say which node a
    bundle is about). Nothing else."""
    from ironroot.audit import AuditTrust
    from ironroot.log import HttpLogFetcher, fetch_log_identity

    authority = story.need(story.authority, "admission")
    ca = story.need(story.vendor_ca, "vendor CA")
    with HttpLogFetcher(story.log_url) as fetcher:
        identity = fetch_log_identity(fetcher)
    return AuditTrust(
        platform=class_trust(story),
        vendor_roots=tuple(ca.trust_anchors),
        checkpoint_keys=identity.verifiers,
        verifier_keys={authority.verifier_key.kid: authority.verifier_key},
        fleet_ca=authority.ca.der,
    )


def export_audit(story: Story, node: str) -> bytes:
    """The node's audit bundle, sealed by its RoT (with its latest EAR)."""
    from ironroot.audit import export_bundle
    from ironroot.log import HttpLogFetcher

    fleet = story.need(story.fleet, "fleet")
    authority = story.need(story.authority, "admission")
    with HttpLogFetcher(story.log_url) as fetcher:
        return export_bundle(fleet, node, logs=[fetcher], now=story.now(), ear=authority.ear(node))


def audit_node(story: Story) -> None:
    from ironroot.audit import render_html, verify_bundle

    ui = story.ui
    fleet = story.need(story.fleet, "fleet")
    node = fleet.node_ids()[-1]
    data = export_audit(story, node)
    path = story.save(f"audit/{node}.audit", data)
    ui.say(
        f"The operator exports {node}'s audit bundle ({len(data) // 1024} KiB, sealed by the "
        f"node's own RoT) to [bold]{path.relative_to(story.work)}[/bold]; the auditor verifies "
        "it offline against what they trust: vendor keys and CA, the log's keys, the "
        "verifier's key."
    )
    report = verify_bundle(data, audit_trust(story))  # raises a break
    story.save(f"audit/{node}.html", render_html(report))
    for step in report.steps:
        line = escape(step.lines[0]) if step.lines else ""
        mark = {"ok": "[green]✔[/green]", "skipped": "[dim]–[/dim]"}.get(
            step.status, "[red]✘[/red]"
        )
        ui.say(f"  {mark} {escape(step.name):<16} {line}")
    held = len(report.steps) - len(report.unchecked)
    ui.ok(
        f"every step holds: {node}'s state is justified, offline ({held} steps)"
        if not report.unchecked
        else f"no step failed: {held} steps hold, offline; not checked (nothing to check): "
        f"{escape(', '.join(report.unchecked))}"
    )
    story.facts["audit"] = {
        "node": node,
        "bundle": str(path.relative_to(story.work)),
        "bundle_sha384": report.bundle_sha384,
        "steps": [{"name": s.name, "status": s.status} for s in report.steps],
    }
