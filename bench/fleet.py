"""The fleet: nodes attested and admitted per second as the fleet grows, and the time from a
statement on the log that must quarantine nodes to every affected node quarantined.

Run: ``make bench``, or ``.venv/bin/python bench/fleet.py [--sizes 10,100,1000]`` (``--sizes 10``
for a quick run).

It builds, in a temporary directory, a firmware vendor (ECDSA P-384 + ML-DSA-87 firmware keys,
an ES384 statement key), a transparency service in this process (ES384 receipts), an OCP SAFE
review provider, release 1.0 of every component (a signed bundle, its logged manifest
statement; a logged reference CoRIM for the BMC and each SPDM device), a logged PFM and a clean
logged SAFE review of the BMC firmware; a node class requiring SAFE reviews of the BMC
(severity ``medium``) and a vendor CA for the nodes' RoTs. Then, for each N:

1. **Admission rate** (target ≥ 0.6 at every N). A real fleet of N nodes is manufactured
   (:meth:`ironroot.fleet.Fleet.add_nodes`: RoT provisioning, platform creation, first boot;
   its time is printed), admission set up, and every node attested and admitted once by the
   steps of :func:`ironroot.fleet.attest_node` (:func:`admit_one`: the same calls, each phase
   timed) — the node's side (two ES384 keys and CSRs, its RoT quote bound to them, SPDM
   measurements of its three devices for the nonce), the authority's (nonce, CSRs, quote and
   DICE chain, each device's chain and signed measurements, appraisal against the logged
   endorsements, the signed EAR, two credentials issued, the registry updated in one commit)
   and the node storing its credentials (keys sealed to its RoT). ``full`` is nodes admitted
   per second over the whole fleet, one after the other (``--concurrency K``: K at a time on
   threads, as ``ironroot fleet attest --concurrency K`` and the scanner do; the signature
   checks run outside the GIL; the phase times are then not printed). ``raw`` is the
   cryptography one admission cannot skip, counted from the code (keys loaded, nothing parsed): see
   :func:`raw_admission`. The figure is full ÷ raw; a figure that holds as N grows says the
   cost per node is flat. Printed with it: the load average, the same ratio in CPU time of
   this process (admissions and raw loop alike; other jobs on a shared machine move it less),
   the time per node of each phase, and each raw operation's count and time alone. Before the
   admissions the process's heap is settled as the authority's serving process settles it
   (:func:`ironroot.http.settle_heap`, called by ``ironroot fleet serve`` and by ``ironroot
   fleet attest`` for a batch: what set-up made is frozen out of the collector).
2. **Quarantine latency** (target: within one scan period). At the largest N, with every node
   admitted, the review provider's new review of the BMC firmware with an open finding of CVSS
   8.1 (the class allows findings below 7.0) is registered on the log and added to the
   fleet's endorsements; the log's statement (its issuer and subject, as a monitor reports it)
   is handed to :meth:`ironroot.fleet.Scanner.scan` — the triggered path — which re-attests
   every node of the class. The time from the registration's start to the round's end, when
   every node is checked quarantined in the registry (credentials revoked), is printed with
   the scan period used (the default, 300 s).

Peak RSS of the process is printed at the end (the fleet keeps no per-node state in memory).
It exits 1 when a figure misses its target. No timing is asserted anywhere in the tests.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from _worlds import NOW, PLATFORM, VENDOR, World, make_world, model, need
from ironroot.cose import SignedStatement
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.fleet import (
    PLANES,
    AdmissionAuthority,
    AdmissionRequest,
    Fleet,
    NodeClass,
    Scanner,
    collect_evidence,
    make_csr,
    scan_attest,
    store_node_credentials,
)
from ironroot.http import settle_heap
from ironroot.platform import (
    COMPONENTS,
    DEVICES,
    DeviceInfo,
    Pfm,
    PfmComponent,
    PfmVersion,
    chip_layout,
    pfm_statement,
    sign_pfm,
)
from ironroot.rot import VendorCA

CA_TIME = NOW - dt.timedelta(days=2)
SLOT = 64 * 1024
RATE_TARGET = 0.6
PERIOD = 300.0


def rss_mib() -> float:
    """Peak resident set size of this process (MiB; Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- the node class -----------------------------------------------------------------------------


def bundle(world: World, component: str, svn: int) -> bytes:
    runtime = hashlib.sha384(f"{component} runtime {svn}".encode()).digest() * 64
    return world.bundle(f"{component} fmc".encode() * 64, runtime, svn)


def node_class(world: World) -> NodeClass:
    """Release 1.0 of every component, each with its logged manifest statement (and a logged
    reference CoRIM for the BMC, which the RoT quotes, and the SPDM devices), a clean logged
    review of the BMC, a logged PFM; reviews of the BMC required (``medium``)."""
    images = {c: bundle(world, c, 3) for c in COMPONENTS}
    statements = {c: world.publish(c, images[c], references=("bmc", *DEVICES)) for c in COMPONENTS}
    statements["bmc"] += (world.register(world.review(images["bmc"], ())),)
    rw = {c: {r.name: r for r in chip_layout(c, SLOT)}["rw"] for c in COMPONENTS}
    pfm = sign_pfm(
        Pfm(
            PLATFORM,
            1,
            tuple(
                PfmComponent(
                    c,
                    (PfmVersion("1.0", 3, hashlib.sha384(images[c]).digest()),),
                    read_write=((rw[c].offset, rw[c].size),),
                )
                for c in COMPONENTS
            ),
        ),
        world.ecc,
        world.pqc,
    )
    return NodeClass(
        "bench-node",
        world.trust(safe=True),
        pfm,
        world.register(pfm_statement(pfm, world.vendor, iss=VENDOR, sub=PLATFORM)),
        images,
        statements,
        {d: DeviceInfo(VENDOR, model(d)) for d in DEVICES},
        dict.fromkeys(COMPONENTS, SLOT),
    )


# --- the raw cost of one admission -------------------------------------------------------------

# The signatures one admission makes and verifies, counted from the code (module docs of
# raw_admission): (what, count).
RAW_COUNTS: tuple[tuple[str, int], ...] = (
    ("P-384 key generated", 2),
    ("P-384 signature made", 12),
    ("ML-DSA-87 signature made", 1),
    ("P-384 signature verified", 28),
    ("ML-DSA-87 signature verified", 5),
)


@dataclass(frozen=True)
class Raw:
    """The raw admission (``run``) and each of its operations alone (``parts``, same order as
    :data:`RAW_COUNTS`)."""

    run: Callable[[], None]
    parts: tuple[Callable[[], object], ...]


def raw_admission() -> Raw:
    """The signatures one admission makes and verifies, with keys loaded and messages built.

    Counted from the code, both sides (``fleet/_admission.py``, ``_evidence.py``,
    ``_verifier.py``, ``_credentials.py``, ``platform/_devices.py``'s device measurement, the
    ``ironroot`` and ``spdm`` evidence formats):

    * the node: two ES384 keys generated and two CSRs signed; its RoT quote signed with the
      RT alias keys (ECDSA P-384 and ML-DSA-87); for each of its three devices, an SPDM
      session by its BMC: the device signs CHALLENGE_AUTH and MEASUREMENTS (ECDSA P-384) and
      the requester verifies its certificate chain below the pinned root (two certificates)
      and both signatures;
    * the authority: the two CSR self-signatures; the quote's two signatures; its two DICE
      chains (ECDSA P-384 and ML-DSA-87) below the vendor CA: IDevID, LDevID, FMC alias and
      RT alias certificates, each node's own; each device's chain (two certificates) and its
      signed measurements; the EAR signed (ES384); two credentials signed by the fleet CA.

    In all (:data:`RAW_COUNTS`): 12 ECDSA P-384 signatures and 1 ML-DSA-87 signature made,
    2 P-384 keys generated, 28 ECDSA P-384 and 5 ML-DSA-87 signatures verified. Not counted:
    what is the same for every node and verified again only because nothing remembers it (the
    vendor CA's self-signatures, the receipts of the class's reference-value statements) — a
    cache may skip those, and the figure shows whether the code does; and what is not a
    signature: the RoT deriving its DICE keys from its CDIs, parsing, X.509 path building,
    the disk.
    """
    p384 = ec.generate_private_key(ec.SECP384R1())
    pub = p384.public_key()
    message = b"m" * 512
    sig = p384.sign(message, ec.ECDSA(hashes.SHA384()))
    ml = PrivateKey.generate(Algorithm.ML_DSA_87)
    ml_sig = ml.sign(message)
    ml_pub = ml.public_key
    scheme = ec.ECDSA(hashes.SHA384())
    parts: tuple[Callable[[], object], ...] = (
        lambda: ec.generate_private_key(ec.SECP384R1()),
        lambda: p384.sign(message, scheme),
        lambda: ml.sign(message),
        lambda: pub.verify(sig, message, scheme),
        lambda: ml_pub.verify(ml_sig, message),
    )

    def run() -> None:
        for (_, count), part in zip(RAW_COUNTS, parts, strict=True):
            for _ in range(count):
                part()

    return Raw(run, parts)


def raw_breakdown(raw: Raw, seconds: float = 0.5) -> str:
    """Each operation's count and time alone (µs), measured now, one line each."""
    lines = []
    total = 0.0
    for (what, count), part in zip(RAW_COUNTS, raw.parts, strict=True):
        n = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds / len(RAW_COUNTS):
            part()
            n += 1
        each = (time.perf_counter() - start) / n * 1e6
        total += each * count
        lines.append(f"{count:3d} x {what:29s} {each:7.0f} us = {each * count:8.0f} us")
    lines.append(f"      {'sum':33s} {'':7s}      {total:8.0f} us")
    return "\n".join(f"         {line}" for line in lines)


# --- 1. admission rate -------------------------------------------------------------------------


@dataclass
class Sized:
    fleet: Fleet
    authority: AdmissionAuthority
    made: float


def _manufacture(directory: Path, ca: VendorCA, n: int, took: Any) -> None:
    fleet = Fleet.open(directory)
    start = time.perf_counter()
    fleet.add_nodes(n, vendor_ca=ca, now=NOW)
    took.value = time.perf_counter() - start


def build(world: World, klass: NodeClass, directory: Path, n: int) -> Sized:
    """The fleet, manufactured in a child process: the factory is not the admission
    authority, so nothing a node's manufacture parsed or verified is remembered where its
    admission runs (in this process, whose caches then hold only what every node shares)."""
    fleet = Fleet.create(directory, node_class=klass)
    ca = VendorCA.generate(now=CA_TIME)
    context = multiprocessing.get_context("fork")
    took = context.Value("d", 0.0)
    factory = context.Process(target=_manufacture, args=(directory, ca, n, took))
    factory.start()
    factory.join()
    need(factory.exitcode == 0, f"the factory process failed (exit code {factory.exitcode})")
    made = took.value
    authority = AdmissionAuthority.init(
        fleet, vendor_roots=list(ca.trust_anchors), now=CA_TIME, credential_lifetime=3600
    )
    return Sized(fleet, authority, made)


PHASES = ("node: keys, CSRs, evidence", "authority: admit", "node: store credentials")


def admit_one(fleet: Fleet, authority: AdmissionAuthority, node: str, took: list[float]) -> None:
    """:func:`ironroot.fleet.attest_node` (same calls, same order), with each phase's time
    added to ``took`` (:data:`PHASES`)."""
    t0 = time.perf_counter()
    nonce, _ = authority.challenge(NOW, client=node, node=node)
    with fleet.rot(node).held() as rot:
        keys = {plane: PrivateKey.generate(Algorithm.ES384) for plane in PLANES}
        csrs = {plane: make_csr(key, node=node, plane=plane) for plane, key in keys.items()}
        spkis = {plane: key.public_key.to_der() for plane, key in keys.items()}
        evidence = collect_evidence(fleet, node, nonce=nonce, keys=spkis, now=NOW, rot=rot)
        t1 = time.perf_counter()
        request = AdmissionRequest(node, nonce, evidence.encode(), csrs)
        result = authority.admit(request, now=NOW)
        t2 = time.perf_counter()
        store_node_credentials(
            fleet, node, keys, result.credentials, result.ca, durable=False, rot=rot
        )
        t3 = time.perf_counter()
    need(result.status == "admitted", f"{node} admitted")
    for n, spent in enumerate((t1 - t0, t2 - t1, t3 - t2)):
        took[n] += spent


def bench_admission(sized: Sized, raw: Raw, concurrency: int = 1) -> tuple[float, bool]:
    """Admit every node once, in batches (``concurrency`` at a time); after each batch the
    raw admission runs for as long as the batch took, so both see the same machine (other
    work on it slows both)."""
    fleet, authority = sized.fleet, sized.authority
    nodes = fleet.node_ids()
    batch = max(1, min(20, len(nodes) // 10))
    # The process that admits nodes at scale is the authority's: ``ironroot fleet serve`` (its
    # scanner) and ``ironroot fleet attest`` settle their heap once set up, and so does this one.
    settle_heap()
    pool = ThreadPoolExecutor(concurrency) if concurrency > 1 else None
    full_time = raw_time = full_cpu = raw_cpu = 0.0
    raw_count = 0
    phases = [0.0] * len(PHASES)
    raw.run()  # warm-up
    for first in range(0, len(nodes), batch):
        start, cpu = time.perf_counter(), time.process_time()
        if pool is None:
            for node in nodes[first : first + batch]:
                admit_one(fleet, authority, node, phases)
        else:

            def each(node: str) -> None:
                admit_one(fleet, authority, node, [0.0] * len(PHASES))

            list(pool.map(each, nodes[first : first + batch]))
        took = time.perf_counter() - start
        full_time += took
        full_cpu += time.process_time() - cpu
        start, cpu = time.perf_counter(), time.process_time()
        while time.perf_counter() - start < took:
            raw.run()
            raw_count += 1
        raw_time += time.perf_counter() - start
        raw_cpu += time.process_time() - cpu
    if pool is not None:
        pool.shutdown()
    need(fleet.status_counts()["admitted"] == len(nodes), "every node admitted")
    full, raw_rate = len(nodes) / full_time, raw_count / raw_time
    ratio = full / raw_rate
    ok = ratio >= RATE_TARGET
    print(
        f"  N={len(nodes):5d}: manufactured in {sized.made:7.1f} s "
        f"({sized.made / len(nodes) * 1000:.0f} ms/node); admitted {full:6.1f} nodes/s "
        f"({1000 / full:.1f} ms/node) vs raw {raw_rate:6.1f}/s ({1000 / raw_rate:.1f} ms) "
        f"= {ratio:.2f} (target >= {RATE_TARGET}) {'ok' if ok else 'BELOW'}; "
        f"load {os.getloadavg()[0]:.2f}"
    )
    cpu_node, cpu_raw = full_cpu / len(nodes) * 1000, raw_cpu / raw_count * 1000
    print(
        f"         CPU time (this process, all threads): {cpu_node:.1f} ms/node vs raw "
        f"{cpu_raw:.1f} ms = {cpu_raw / cpu_node:.2f} (other jobs on the machine move this "
        "less than the wall-clock figure)"
    )
    if pool is None:
        print(
            "         per node: "
            + "; ".join(
                f"{name} {spent / len(nodes) * 1000:.1f} ms"
                for name, spent in zip(PHASES, phases, strict=True)
            )
        )
    else:
        print(f"         {concurrency} nodes at a time (threads)")
    print("         raw, each operation alone:")
    print(raw_breakdown(raw))
    return ratio, ok


# --- 2. quarantine latency ---------------------------------------------------------------------


@dataclass(frozen=True)
class LogStatement:
    """What a monitor reports of a new statement: its issuer and subject."""

    iss: str | None
    sub: str | None


def bench_quarantine(world: World, sized: Sized) -> bool:
    fleet, authority = sized.fleet, sized.authority
    klass = fleet.node_class(fleet.classes()[0])
    scanner = Scanner(fleet, scan_attest(fleet, authority), period=PERIOD)
    later = NOW + dt.timedelta(seconds=30)
    need(not scanner.due(later), "no node due by age")
    statement = world.review(klass.images["bmc"], (8.1,))
    claims = SignedStatement.parse(statement).claims
    start = time.perf_counter()
    logged = world.register(statement)
    authority.add_endorsement(logged, now=later)
    report = scanner.scan(later, [LogStatement(claims.iss, claims.sub)])
    elapsed = time.perf_counter() - start
    n = len(fleet.node_ids())
    need(not report.failures, f"scan failures: {dict(report.failures)}")
    need(len(report.reasons) == n, "every node triggered")
    need(fleet.status_counts()["quarantined"] == n, "every node quarantined")
    ok = elapsed <= PERIOD
    print(
        f"  N={n}: a SAFE review with a CVSS 8.1 finding of the class's BMC firmware, logged "
        f"-> {n} nodes quarantined in {elapsed:.1f} s ({elapsed / n * 1000:.0f} ms/node, "
        f"{scanner.concurrency} at a time); scan period {PERIOD:.0f} s "
        f"(target: within one period) {'ok' if ok else 'BELOW'}"
    )
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,100,1000", help="fleet sizes (comma-separated)")
    parser.add_argument(
        "--concurrency", type=int, default=1, help="nodes admitted at a time (default: 1)"
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    ok = True
    total = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ironroot-bench-fleet-") as tmp:
        base = Path(tmp)
        with make_world(base) as world:
            klass = node_class(world)
            raw = raw_admission()
            print(
                "1. admission (full: attest_node's steps; raw: the signatures of one admission);"
                f" load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
            )
            sized = None
            for n in sizes:
                sized = build(world, klass, base / f"fleet-{n}", n)
                _, good = bench_admission(sized, raw, args.concurrency)
                ok &= good
                print(f"         peak RSS so far {rss_mib():.0f} MiB")
            need(sized is not None, "a fleet size")
            assert sized is not None
            print("2. quarantine latency (the scanner's triggered path)")
            ok &= bench_quarantine(world, sized)
    print(f"peak RSS {rss_mib():.0f} MiB; total {time.perf_counter() - total:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
