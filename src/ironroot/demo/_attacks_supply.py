"""Attacks on the supply chain and the platform: firmware the RoT must refuse, receipts that
must not verify, a split view of the log, a log row edited, a one-person change, a direct flash
write."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
from typing import TYPE_CHECKING

from ironroot.demo._act_supply import build_firmware, cosign_checkpoint, make_pfm, model
from ironroot.demo._attempt import (
    Attempt,
    NotRefused,
    active_image,
    node_at,
    push_update,
    snapshot_sqlite,
)
from ironroot.demo._world import (
    ALICE,
    CLASS,
    PLATFORM,
    SLOT,
    VENDOR,
    Release,
    Story,
)
from ironroot.errors import IronrootError

if TYPE_CHECKING:
    from ironroot.crypto import PrivateKey
    from ironroot.transparency import TransparencyClient


def unsigned_firmware(story: Story, attempt: Attempt) -> None:
    from ironroot.firmware import Component
    from ironroot.firmware import build_bundle as layout

    node = node_at(story, 1)
    now = story.now()
    unsigned = layout(
        [
            Component(1, b"bmc fmc, built by the attacker" * 64, version=1),
            Component(2, b"bmc runtime with a backdoor" * 256, version=2),
        ],
        svn=9,
        not_before=now - dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=365),
        vendor_ecc_keys=story.vendor.ecc_keys,
        vendor_pqc_keys=[story.vendor.pqc.public_key],
        pqc_type="mldsa",
        ecc_index=1,
    ).encode()
    attempt.note(f"{node} runs BMC {active_image(story, node, 'bmc')}")
    push_update(story, node, "bmc", unsigned, story.release("bmc", "2.0").statements)


def revoked_key(story: Story, attempt: Attempt) -> None:
    node = node_at(story, 2)
    fleet = story.need(story.fleet, "fleet")
    fuses = fleet.rot(node).program(lambda f: f.revoke_ecc_key(0, key_count=2))
    attempt.note(f"{node}'s ECC revocation fuse = {fuses.ecc_revocation:#06b} (key 0 leaked)")
    bundle = build_firmware(story, "bmc", "2.0-rogue", 4, ecc_index=0)
    push_update(story, node, "bmc", bundle, story.release("bmc", "2.0").statements)


def firmware_rollback(story: Story, attempt: Attempt) -> None:
    node = node_at(story, 1)
    old = story.release("bmc", "1.0")
    attempt.note(
        f"{node} runs BMC {active_image(story, node, 'bmc')}; pushing 1.0 (SVN 3), logged and "
        "reviewed"
    )
    push_update(story, node, "bmc", old.bundle, (*old.statements, story.reviews["1.0"]))


def secret_build(story: Story, version: str) -> tuple[Release, bytes]:
    """A BMC build signed with the vendor's real keys (a compromised build server) and a PFM
    signed by them that allows it: neither on the log."""
    from ironroot.firmware import manifest_statement

    bundle = build_firmware(story, "bmc", version, 4)
    statement = manifest_statement(bundle, story.vendor.statements, iss=VENDOR, sub=model("bmc"))
    secret = Release("bmc", version, 4, bundle, (statement,))
    pfm = make_pfm(story, 2, [*story.releases.values(), secret])
    return secret, pfm


def never_logged(story: Story, attempt: Attempt) -> None:
    node = node_at(story, 3)
    secret, pfm = secret_build(story, "2.2")
    attempt.note("BMC 2.2 and a PFM allowing it, both signed with the vendor's real keys")
    push_update(story, node, "bmc", secret.bundle, secret.statements, pfm=pfm)


def rogue_log(story: Story) -> tuple[TransparencyClient, PrivateKey]:
    """The attacker's own transparency service: it admits the vendor's name with the
    attacker's key, and signs receipts with its own keys."""
    from ironroot.crypto import Algorithm, PrivateKey
    from ironroot.transparency import (
        ServiceThread,
        TransparencyClient,
        TransparencyService,
        init_data_dir,
    )

    cached = story.attackers.get("rogue-log")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    key = PrivateKey.generate(Algorithm.ES384)
    rogue = story.path("attacks", "rogue-ts")
    init_data_dir(rogue, service_issuer="https://ts.ironroot.example")
    story.save("attacks/rogue-ts/vendor.pub.pem", key.public_key.to_pem())
    config = (rogue / "ironroot.toml").read_text()
    config += f'\n[[transparency.issuers]]\niss = "{VENDOR}"\nkey = "vendor.pub.pem"\n'
    story.save("attacks/rogue-ts/ironroot.toml", config, mode=0o600)
    service = story.stack.enter_context(TransparencyService.open(rogue))
    server = story.stack.enter_context(ServiceThread(service))
    client = story.stack.enter_context(TransparencyClient(server.url))
    story.attackers["rogue-log"] = (client, key)
    return client, key


def forged_receipt(story: Story, attempt: Attempt) -> None:
    from ironroot.firmware import manifest_statement
    from ironroot.platform import pfm_statement

    node = node_at(story, 3)
    client, key = rogue_log(story)
    secret, pfm = secret_build(story, "2.3")
    logged = client.register(
        manifest_statement(secret.bundle, key, iss=VENDOR, sub=model("bmc"))
    ).transparent_statement
    pfm_ts = client.register(
        pfm_statement(pfm, key, iss=VENDOR, sub=PLATFORM)
    ).transparent_statement
    attempt.note("receipts signed by the attacker's own log, which names itself as the real one")
    push_update(story, node, "bmc", secret.bundle, (logged,), pfm=pfm, pfm_statement=pfm_ts)


def borrowed_receipt(story: Story, attempt: Attempt) -> None:
    from ironroot.cose import TransparentStatement, make_transparent
    from ironroot.platform import pfm_statement

    node = node_at(story, 3)
    secret, pfm = secret_build(story, "2.4")
    statement = pfm_statement(pfm, story.vendor.statements, iss=VENDOR, sub=PLATFORM)
    borrowed = TransparentStatement.parse(story.pfm_statement).receipts
    spliced = make_transparent(statement, borrowed)
    attempt.note("the genuine receipt of PFM SVN 1 spliced onto an unlogged PFM")
    push_update(
        story, node, "bmc", secret.bundle, secret.statements, pfm=pfm, pfm_statement=spliced
    )


def unreviewed_firmware(story: Story, attempt: Attempt) -> None:
    node = node_at(story, 4)
    hotfix = story.release("bmc", "2.1")
    attempt.note("BMC 2.1: vendor-signed, logged, in the PFM; no SAFE review")
    push_update(story, node, "bmc", hotfix.bundle, hotfix.statements)


def split_view(story: Story, attempt: Attempt) -> None:
    from ironroot.cose import create_statement
    from ironroot.crypto import Algorithm, PrivateKey
    from ironroot.log import HttpLogFetcher, fetch_log_identity
    from ironroot.monitor import Monitor
    from ironroot.transparency import (
        ServiceThread,
        TransparencyClient,
        TransparencyService,
    )
    from ironroot.witness import ForkProof

    live = story.need(story.log_dir, "transparency log")
    log = story.need(story.log, "transparency log")
    monitor: Monitor = story.need(story.monitor, "monitor")
    store = story.need(story.monitor_store, "monitor")
    # The log's operator clones its log (same keys, same origin) to show a second view.
    fork = story.path("attacks", "ts-fork")
    fork.mkdir(parents=True)
    shutil.copytree(live / "keys", fork / "keys")
    for item in live.glob("*.pem"):
        shutil.copy(item, fork / item.name)
    snapshot_sqlite(live / "log.sqlite3", fork / "log.sqlite3")
    evil = PrivateKey.generate(Algorithm.ES384)
    story.save("attacks/ts-fork/evil.pub.pem", evil.public_key.to_pem())
    config = (live / "ironroot.toml").read_text()
    config += '\n[[transparency.issuers]]\niss = "https://evil.example"\nkey = "evil.pub.pem"\n'
    story.save("attacks/ts-fork/ironroot.toml", config, mode=0o600)
    # The honest log moves on (the vendor logs an advisory); the monitor follows it.
    advisory = json.dumps({"advisory": "ECC key 0 retired and revoked"}).encode()
    log.register(
        create_statement(
            story.vendor.statements,
            advisory,
            iss=VENDOR,
            sub="pkg:advisory/acme/2026-01",
            content_type="application/json",
        )
    )
    with HttpLogFetcher(story.log_url) as honest:
        identity = fetch_log_identity(honest)
        monitor.check(story.log_url, honest, identity.verifiers)
        size = cosign_checkpoint(story, honest)
    attempt.note(f"the monitor and the witness follow the honest log (size {size})")
    # The forked view: a backdoored BMC statement only some parties are shown.
    with TransparencyService.open(fork) as service, ServiceThread(service) as server:
        with TransparencyClient(server.url) as client:
            client.register(
                create_statement(
                    evil,
                    b"backdoored bmc",
                    iss="https://evil.example",
                    sub=model("bmc"),
                    content_type="application/octet-stream",
                )
            )
        with HttpLogFetcher(server.url) as forked:
            try:
                cosign_checkpoint(story, forked)
            except IronrootError as exc:
                attempt.note(f"the witness refused to cosign it ({type(exc).__name__})")
            else:
                raise NotRefused("the witness cosigned the forked view")
            events = monitor.check(server.url, forked, identity.verifiers)
    forks = store.forks()
    if forks:
        proof = ForkProof.parse(forks[-1][2])
        first, second = proof.verify(identity.verifiers)
        attempt.note(
            f"the monitor kept the fork proof: two checkpoints of size {first.size} and "
            f"{second.size} signed by the log's key, other roots"
        )
    Monitor.raise_for(events)


def tampered_log_row(story: Story, attempt: Attempt, *, flip: bool = True) -> None:
    """``flip=False``: the row is written back unchanged (the honesty test's input). The
    snapshot must verify before the edit: a refusal then (an unreadable copy) is the demo's
    own failure, never counted as the log's refusal of the edit."""
    from ironroot.log import verify_log_dir

    live = story.need(story.log_dir, "transparency log")
    copy = story.path("attacks", "ts-snapshot" if flip else "ts-snapshot-unchanged")
    copy.mkdir(parents=True)
    shutil.copytree(live / "keys", copy / "keys")
    shutil.copy(live / "ironroot.toml", copy / "ironroot.toml")
    snapshot_sqlite(live / "log.sqlite3", copy / "log.sqlite3")
    try:
        verify_log_dir(copy)  # the snapshot verifies before the edit
    except IronrootError as exc:
        raise NotRefused(f"the snapshot does not verify before the edit: {exc}") from exc
    db = sqlite3.connect(str(copy / "log.sqlite3"))
    try:
        index, entry = db.execute(
            "SELECT idx, entry FROM entries ORDER BY idx LIMIT 1 OFFSET 3"
        ).fetchone()
        changed = bytes(entry[:-1]) + bytes([entry[-1] ^ (0x01 if flip else 0x00)])
        db.execute("UPDATE entries SET entry = ? WHERE idx = ?", (changed, index))
        db.commit()
    finally:
        db.close()
    attempt.note(
        f"one bit of entry {index} {'flipped' if flip else 'kept'} in a snapshot of "
        "log.sqlite3 (`ironroot log verify`)"
    )
    verify_log_dir(copy)


def one_person_change(story: Story, attempt: Attempt) -> None:
    from ironroot.fleet import DesiredState, DesiredStore, sign_desired

    fleet = story.need(story.fleet, "fleet")
    klass = story.need(story.node_class, "node class")
    hotfix = story.release("bmc", "2.1")
    state = DesiredState.build(
        klass, 2, bundles={"bmc": hotfix.bundle}, note="BMC 2.1, quietly", fleet=fleet.identity()
    )
    approval = sign_desired(state, story.ops[ALICE], iss=ALICE)
    attempt.note("Alice alone signs desired state v2 (BMC 2.1)")
    DesiredStore(fleet).publish(CLASS, [approval], now=story.now(), registrar=story.log)


def direct_flash_write(story: Story, attempt: Attempt) -> None:
    from ironroot.platform import chip_layout

    node = node_at(story, 4)
    platform = story.need(story.fleet, "fleet").node(node)
    active = platform.state().components["host"].active
    slot = {r.name: r for r in chip_layout("host", SLOT)}[f"slot{active}"]
    offset = slot.offset + 0x100
    before = platform.bmc_read("host", offset, 64)
    try:
        platform.bmc_write("host", offset, b"\x90" * 64, now=story.now())
    finally:
        after = platform.bmc_read("host", offset, 64)
        attempt.note(
            f"BMC of {node} writes 64 bytes into the host firmware's active slot at {offset:#x}; "
            + ("not one byte changed" if before == after else "THE FLASH CHANGED")
        )
        if before != after:
            raise NotRefused("the host flash changed")
