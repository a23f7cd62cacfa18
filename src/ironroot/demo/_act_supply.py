"""Acts 1 and 2: the vendor releases and logs firmware and a PFM (a witness cosigns the log, a
monitor follows it), and an OCP SAFE lab reviews the BMC firmware."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import TYPE_CHECKING, Final

from rich.markup import escape

from ironroot.demo._gpu import GPU_VENDOR
from ironroot.demo._world import (
    ALICE,
    BOB,
    LAB,
    LAB_KID,
    PLATFORM,
    SLOT,
    VENDOR,
    Release,
    Story,
    random_firmware,
)

if TYPE_CHECKING:
    from ironroot.log import LogFetcher


def short(data: bytes | str, n: int = 16) -> str:
    text = data.hex() if isinstance(data, bytes) else data
    return text[:n] + "…"


COMPONENTS: Final = ("bmc", "host", "nic", "gpu", "nvme")


DEVICES: Final = ("nic", "gpu", "nvme")


PLANNED: Final = (
    # component, version, SVN, note
    *((c, "1.0", 3, "first production release") for c in COMPONENTS),
    ("bmc", "2.0", 4, "BMC 2.0: the fix for a remotely reachable IPMI parser bug"),
    ("bmc", "2.1", 4, "BMC 2.1: a hotfix build, released before any review"),
)


def model(component: str) -> str:
    return f"pkg:firmware/acme/{component}"


def build_firmware(
    story: Story, component: str, version: str, svn: int, *, ecc_index: int = 1
) -> bytes:
    """A signed bundle (FMC + runtime) of the vendor, signed by ECC key ``ecc_index``."""
    from ironroot.firmware import Component, build_bundle, sign_bundle

    now = story.now()
    vendor = story.vendor
    unsigned = build_bundle(
        [
            Component(1, random_firmware(f"{component} {version} fmc", 4096), version=1),
            Component(2, random_firmware(f"{component} {version} runtime", 12288), version=2),
        ],
        svn=svn,
        not_before=now - dt.timedelta(days=30),
        not_after=now + dt.timedelta(days=3 * 365),
        vendor_ecc_keys=vendor.ecc_keys,
        vendor_pqc_keys=[vendor.pqc.public_key],
        pqc_type="mldsa",
        ecc_index=ecc_index,
    )
    signer = vendor.ecc if ecc_index == 1 else vendor.retired
    return sign_bundle(unsigned, signer, vendor.pqc)


def publish_firmware(story: Story, component: str, bundle: bytes) -> tuple[bytes, ...]:
    """Register the bundle's manifest statement (and its reference CoRIM for the BMC and the
    SPDM devices, whose measurements the verifier compares) on the log."""
    from ironroot.firmware import manifest_statement, reference_statement

    log = story.need(story.log, "transparency log")
    key = story.vendor.statements
    out = [
        log.register(
            manifest_statement(bundle, key, iss=VENDOR, sub=model(component))
        ).transparent_statement
    ]
    if component == "bmc" or component in DEVICES:
        corim = reference_statement(
            bundle, key, iss=VENDOR, sub=model(component), vendor=VENDOR, model=model(component)
        )
        out.append(log.register(corim).transparent_statement)
    return tuple(out)


def make_pfm(story: Story, svn: int, releases: list[Release]) -> bytes:
    """A PFM of :data:`PLATFORM` allowing ``releases``, each component writable by the BMC
    only in its ``rw`` region, signed with the vendor's current keys."""
    from ironroot.platform import Pfm, PfmComponent, PfmVersion, chip_layout, sign_pfm

    components = []
    for name in COMPONENTS:
        rw = {r.name: r for r in chip_layout(name, SLOT)}["rw"]
        versions = tuple(
            PfmVersion(r.version, r.svn, r.sha384) for r in releases if r.component == name
        )
        components.append(PfmComponent(name, versions, read_write=((rw.offset, rw.size),)))
    return sign_pfm(Pfm(PLATFORM, svn, tuple(components)), story.vendor.ecc, story.vendor.pqc)


def vendor_release(story: Story) -> None:
    from ironroot.log import HttpLogFetcher, fetch_log_identity
    from ironroot.monitor import Monitor, MonitorStore, Watch
    from ironroot.platform import pfm_statement
    from ironroot.transparency import (
        ServiceThread,
        TransparencyClient,
        TransparencyService,
        init_data_dir,
    )
    from ironroot.witness import (
        WitnessedLog,
        WitnessThread,
        add_log,
        init_witness_dir,
        open_witness,
    )

    ui = story.ui
    ts = story.path("ts")
    init_data_dir(ts, service_issuer="https://ts.ironroot.example")
    issuers = {
        VENDOR: story.vendor.statements,
        LAB: story.lab_statements,
        ALICE: story.ops[ALICE],
        BOB: story.ops[BOB],
        GPU_VENDOR: story.gpu_statements,
    }
    config = (ts / "ironroot.toml").read_text()
    for number, (iss, key) in enumerate(issuers.items()):
        story.save(f"ts/issuer-{number}.pub.pem", key.public_key.to_pem())
        config += f'\n[[transparency.issuers]]\niss = "{iss}"\nkey = "issuer-{number}.pub.pem"\n'
    story.save("ts/ironroot.toml", config, mode=0o600)
    service = story.stack.enter_context(TransparencyService.open(ts))
    server = story.stack.enter_context(ServiceThread(service))
    story.log_dir, story.log_url = ts, server.url
    story.log = story.stack.enter_context(TransparencyClient(server.url))
    ui.say(
        f"The transparency service runs on the embedded store (SQLite, [bold]{ts.name}/[/bold]) "
        f"at {server.url}; its registration policy admits five issuers: the vendor, the SAFE "
        "lab, two operators and the GPU vendor (its RIMs)."
    )
    ui.fact("vendor firmware keys", "ECDSA P-384 ×2 (key 0 retired, key 1 current) + ML-DSA-87")

    with ui.progress("vendor builds, signs and logs firmware", len(PLANNED)) as advance:
        for component, version, svn, _note in PLANNED:
            bundle = build_firmware(story, component, version, svn)
            statements = publish_firmware(story, component, bundle)
            story.releases[(component, version)] = Release(
                component, version, svn, bundle, statements
            )
            advance(f"{component} {version} (SVN {svn})")
    for component, version, svn, note in PLANNED[len(COMPONENTS) :]:
        ui.fact(f"{component} {version}", f"SVN {svn} — {note}")

    story.pfm = make_pfm(story, 1, list(story.releases.values()))
    story.pfm_statement = story.log.register(
        pfm_statement(story.pfm, story.vendor.statements, iss=VENDOR, sub=PLATFORM)
    ).transparent_statement
    ui.ok(
        f"PFM SVN 1 for {PLATFORM}: {len(story.releases)} images allowed, each component "
        "writable by the BMC only in its rw region; signed and logged"
    )

    # A witness cosigns the log's checkpoint; a monitor follows the log for the vendor.
    wdir = story.path("witness")
    with HttpLogFetcher(story.log_url) as fetcher:
        identity = fetch_log_identity(fetcher)
        init_witness_dir(wdir, name="witness.ironroot.example/w1")
        add_log(wdir, WitnessedLog(identity.origin, identity.verifiers))
        witness = open_witness(wdir)
        story.stack.callback(witness.close)
        wthread = story.stack.enter_context(WitnessThread(witness))
        story.witness_url = wthread.url
        cosigned = cosign_checkpoint(story, fetcher)
        store = MonitorStore(str(story.path("monitor.db")))
        story.stack.callback(store.close)
        story.monitor_store = store
        story.monitor = Monitor(store, watch=Watch(frozenset(), frozenset({VENDOR})))
        events = story.monitor.check(story.log_url, fetcher, identity.verifiers)
    watched = [e for e in events if e.kind == "statement"]
    ui.ok(
        f"witness {escape(witness.name)} cosigned the checkpoint at size {cosigned}; the monitor "
        f"verified it and found {len(watched)} statements by the vendor"
    )
    story.facts["vendor-release"] = {
        "log": story.log_url,
        "releases": [
            {"component": r.component, "version": r.version, "svn": r.svn, "sha384": r.sha384.hex()}
            for r in story.releases.values()
        ],
        "pfm_sha384": hashlib.sha384(story.pfm).hexdigest(),
        "checkpoint_size": cosigned,
        "witness": story.witness_url,
    }


def cosign_checkpoint(story: Story, fetcher: LogFetcher) -> int:
    """Have the witness cosign the current checkpoint of the log ``fetcher`` reads (over the
    witness's HTTP API, with the consistency proof from the tiles); the size it cosigned."""
    from ironroot.log import TileTree, fetch_checkpoint, fetch_log_identity
    from ironroot.witness import WitnessClient

    identity = fetch_log_identity(fetcher)
    note, checkpoint = fetch_checkpoint(fetcher, identity.verifiers)
    tree = TileTree(fetcher, checkpoint.size)
    with WitnessClient(story.witness_url) as client:
        client.cosign(note, lambda old: tree.consistency_proof(old))
    return checkpoint.size


def sfr_report(release: Release, cvss: tuple[float, ...] = ()) -> bytes:
    """An OCP SAFE Short Form Report (JSON) of ``release``, one open issue per CVSS score."""
    from ironroot.firmware import FirmwareBundle

    digest = FirmwareBundle.parse(release.bundle).manifest_digest()
    issues = [
        {
            "title": f"finding {number}",
            "cvss_score": f"{score:.1f}",
            "cvss_vector": "AV:L/AC:H/PR:H/UI:N/S:U/C:L/I:N/A:N",
            "cwe": "CWE-209",
            "description": "An error message includes a pointer value.",
            "cve": None,
        }
        for number, score in enumerate(cvss, 1)
    ]
    major = release.version.split(".", 1)[0]
    return json.dumps(
        {
            "review_framework_version": "1.1",
            "device": {
                "vendor": "ACME Inc",
                "product": "DC-SCM BMC",
                "category": "bmc",
                "repo_tag": f"v{major}",
                "fw_version": release.version,
                "fw_hash_sha2_384": digest.hex(),
            },
            "audit": {
                "srp": "Example SAFE Labs",
                "methodology": "whitebox",
                "completion_date": "2026-05-01",
                "report_version": "1.0",
                "scope_number": 1,
                "cvss_version": "3.1",
                "issues": issues,
            },
        }
    ).encode()


def safe_review(story: Story) -> None:
    from ironroot.safe import ProviderKey, ProviderKeys, sfr_statement, sign_report

    ui = story.ui
    log = story.need(story.log, "transparency log")
    story.providers = ProviderKeys([ProviderKey(story.lab_sfr.public_key, frozenset({LAB_KID}))])
    for version, cvss in (("1.0", (3.1,)), ("2.0", ())):
        release = story.release("bmc", version)
        sfr = sign_report(sfr_report(release, cvss), story.lab_sfr, LAB_KID)
        statement = sfr_statement(sfr, story.lab_statements, iss=LAB, providers=story.providers)
        story.reviews[version] = log.register(statement).transparent_statement
        findings = f"{len(cvss)} open finding (CVSS {cvss[0]})" if cvss else "no open finding"
        ui.ok(f"BMC {version} reviewed by {LAB_KID}: {findings}; the signed SFR is on the log")
    ui.say(
        "BMC 2.1 was never sent to the lab. The fleet's policy: BMC firmware needs a logged "
        "review by this lab with no open finding above [bold]medium[/bold]."
    )
    story.facts["safe-review"] = {"provider": LAB_KID, "reviewed": ["bmc 1.0", "bmc 2.0"]}
