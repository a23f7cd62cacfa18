"""Appraisals per second of a full RoT quote, as ratios to its raw signature checks in one run.

Run: ``.venv/bin/python bench/attestation.py [--seconds S]``.

What it measures, on this machine, in this run:

1. ``quote signatures``: the two quote signatures alone (ES384 and ML-DSA-87 over their
   COSE Sig_structures, keys already parsed): the floor any appraisal of a quote pays.
2. ``all signatures``: those two plus the eight certificate signatures of the two 4-certificate
   DICE chains (IDevID, LDevID, FMC alias, RT alias; certificates already parsed).
3. ``appraisal, no cache``: ``appraise_evidence`` on the quote bytes: full
   ``verify_quote`` (parse 8 certificates, 10 signatures, DICE profile, PCR log, FWIDs), the
   claims model, reference-value and SAFE-review look-ups and the default CEL policy.
4. ``appraisal, chain cache``: the same with an :class:`EvidenceCaches` that remembers
   verified chains: the target is ``quote signatures / appraisal ≥ 0.7``.
5. signing the EAR (JWT ES384, CWT ES384), reported apart.
6. SEV-SNP report verifications per second (the shared vector, VCEK → ASK → ARK), with and
   without the chain cache, when the vectors are present.
7. NVIDIA GPU report verifications per second, in CPU time of this process (the shared H100
   vector, ``nvidia-gpu`` through ``verify_evidence`` with its nonce, binary input), as
   ratios to the raw ECDSA P-384 verifications the report needs: without a cache, the report
   signature and the four chain signatures (FMC LF ← BROM ← Provisioner ICA ← GH100 Identity
   ← Device Identity CA); with the row's cache (``EvidenceCaches()``: the verified chain and
   the decoded report body), the report signature alone — the target, ``≥ 0.7``: the run
   exits 1 below it; and with the chain cached but every report decoded again
   (``remember_reports=False``), reported.
8. Composite appraisals per second (``appraise_composite``) of a CVM (the RoT quote above,
   answering the composite nonce) with 8 GPUs (test GPUs under a test Device Identity CA,
   SPDM 1.1 reports of 64 SHA-384 blocks, every block allowed by a driver and a VBIOS RIM),
   in CPU time, as a ratio to the raw signature cost: the CVM's quote signatures and the 8
   GPU report signatures. Cached (``EvidenceCaches()`` and a ``GpuRimCache``: chains,
   decoded report bodies and each GPU's appraisal apart from its nonce — policy and RIM
   verdicts; every signature, chain validity and nonce is still checked), the target is
   ``≥ 0.7``: the run exits 1 below it. The load average is printed with the figures. The
   RIMs are given as the log would give them (their receipts and XML signatures are checked
   when endorsements load, not per appraisal).
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ironroot.attestation import (
    Endorsements,
    EvidenceCaches,
    GpuRimCache,
    ReferenceValue,
    ReferenceValues,
    TrustTier,
    VerifyOptions,
    appraise_composite,
    appraise_evidence,
    composite_nonce,
    gpu_nonce,
    sign_ear_cwt,
    sign_ear_jwt,
    verify_evidence,
)
from ironroot.cose import decode_cbor
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.firmware import (
    Component,
    FirmwareBundle,
    build_bundle,
    key_descriptor_hash,
    sign_bundle,
)
from ironroot.rot import Device, VendorCA, parse_certificate, verify_signature
from ironroot.safe import ProviderKey, ProviderKeys, Review, sign_report, verify_report

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
SNP_NOW = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
_VECTORS = Path(
    os.environ.get("IRONROOT_VECTORS", Path(__file__).resolve().parents[2] / "shared" / "vectors")
)


def _time(
    run: Callable[[], object], seconds: float, clock: Callable[[], float] = time.perf_counter
) -> float:
    """Median seconds per call (by ``clock``) over batches filling ``seconds``."""
    run()
    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(samples) < 5:
        start = clock()
        for _ in range(10):
            run()
        samples.append((clock() - start) / 10)
    return statistics.median(samples)


def _sfr(manifest_digest: bytes) -> bytes:
    return (
        b'{"review_framework_version":"1.1","device":{"vendor":"ACME","product":"RoT",'
        b'"fw_version":"1.0","fw_hash_sha2_384":"' + manifest_digest.hex().encode() + b'"},'
        b'"audit":{"srp":"Lab","methodology":"whitebox","completion_date":"2026-05-01",'
        b'"report_version":"1.0","cvss_version":"3.1","issues":[]}}'
    )


def _world(tmp: Path) -> tuple[bytes, bytes, Endorsements]:
    ecc = PrivateKey.generate(Algorithm.ES384)
    pqc = PrivateKey.generate(Algorithm.ML_DSA_87)
    unsigned = build_bundle(
        [Component(1, os.urandom(64 * 1024)), Component(2, os.urandom(256 * 1024))],
        svn=3,
        not_before=NOW - dt.timedelta(days=1),
        not_after=NOW + dt.timedelta(days=365),
        vendor_ecc_keys=[ecc.public_key],
        vendor_pqc_keys=[pqc.public_key],
        pqc_type="mldsa",
    )
    bundle = sign_bundle(unsigned, ecc, pqc)
    ca = VendorCA.generate(now=NOW - dt.timedelta(days=2))
    device = Device.create(tmp / "device")
    device.provision(
        ca,
        vendor_key_hash=key_descriptor_hash([ecc.public_key], [pqc.public_key], "mldsa"),
        now=NOW - dt.timedelta(days=1),
    )
    device.boot(bundle, now=NOW)
    nonce = os.urandom(32)
    quote = device.quote(nonce)
    parsed = FirmwareBundle.parse(bundle)
    # The endorsements as the log would give them (receipt checks are not what is measured).
    values = [
        ReferenceValue(mkey=name, digests=((7, entry.digest),), svn=3, svn_minimum=True)
        for name, entry in zip(("fmc", "runtime"), parsed.manifest.toc, strict=True)
    ]
    reviewer = PrivateKey.generate(Algorithm.ES384)
    providers = ProviderKeys([ProviderKey(reviewer.public_key, frozenset(("lab",)))])
    sfr = sign_report(_sfr(parsed.manifest_digest()), reviewer, "lab")
    verified = verify_report(sfr, providers)
    review = Review(verified.report, "jws", "lab", "https://lab.example", "sub", True)
    endorsements = Endorsements(
        reference_values=ReferenceValues(values),
        reviews=(review,),
        vendor_roots=ca.trust_anchors,
    )
    return quote, nonce, endorsements, device


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        quote, nonce, endorsements, device = _world(Path(tmp))
        challenge = os.urandom(32)
        composite_quote = device.quote(composite_nonce(challenge, COMPOSITE_GPUS))

    from ironroot.cose import Sign1

    container = decode_cbor(quote)
    assert isinstance(container, dict)
    messages = [Sign1.decode(container[name]) for name in ("es384", "ml-dsa-87")]
    chains = []
    for message in messages:
        ders = list(message.unprotected[33])  # type: ignore[call-overload]
        certs = [parse_certificate(d) for d in reversed(ders)]  # IDevID first
        anchors = [parse_certificate(a) for a in endorsements.vendor_roots]
        root = next(a for a in anchors if a.subject_der == certs[0].issuer_der)
        chains.append([root, *certs])
    leaf_keys = [chain[-1].public_key for chain in chains]

    def quote_signatures() -> None:
        for message, key in zip(messages, leaf_keys, strict=True):
            assert key is not None
            message.verify(key)

    def all_signatures() -> None:
        quote_signatures()
        for chain in chains:
            for issuer, cert in itertools.pairwise(chain):
                assert issuer.public_key is not None
                verify_signature(cert, issuer.public_key)

    def appraise(caches: EvidenceCaches | None) -> Callable[[], object]:
        def run() -> object:
            result = appraise_evidence(
                quote, endorsements, nonce=nonce, now=NOW, caches=caches, lifetime=600
            )
            assert result.status is TrustTier.AFFIRMING, result
            return result

        return run

    # Interleaved rounds, best of each: the machine is shared (2 cores), and a load change
    # between two long measurements would otherwise skew the ratios.
    cached_run = appraise(EvidenceCaches())
    rounds: dict[str, list[float]] = {"sig": [], "all": [], "plain": [], "cached": []}
    for _ in range(5):
        rounds["sig"].append(_time(quote_signatures, args.seconds / 5))
        rounds["all"].append(_time(all_signatures, args.seconds / 5))
        rounds["plain"].append(_time(appraise(None), args.seconds / 5))
        rounds["cached"].append(_time(cached_run, args.seconds / 5))
    sig_s, all_s, plain_s, cached_s = (min(rounds[k]) for k in ("sig", "all", "plain", "cached"))
    result = appraise(None)()
    assert not isinstance(result, type(None))
    key = PrivateKey.generate(Algorithm.ES384)
    jwt_s = _time(lambda: sign_ear_jwt(result, key), args.seconds / 2)  # type: ignore[arg-type]
    cwt_s = _time(lambda: sign_ear_cwt(result, key), args.seconds / 2)  # type: ignore[arg-type]

    print(f"python {sys.version.split()[0]}, RoT quote {len(quote)} bytes")
    print(f"quote signatures (ES384 + ML-DSA-87):  {sig_s * 1e3:7.3f} ms  {1 / sig_s:8.0f}/s")
    print(f"all 10 signatures (quote + 2 chains):  {all_s * 1e3:7.3f} ms  {1 / all_s:8.0f}/s")
    print(f"appraisal, no cache:                   {plain_s * 1e3:7.3f} ms  {1 / plain_s:8.0f}/s")
    print(f"appraisal, chain cache:                {cached_s * 1e3:7.3f} ms  {1 / cached_s:8.0f}/s")
    print(f"ratio all signatures / appraisal, no cache:   {all_s / plain_s:5.2f}")
    print(
        f"ratio quote signatures / appraisal, cached:   {sig_s / cached_s:5.2f}  (target >= 0.70)"
    )
    print(f"sign EAR: JWT {jwt_s * 1e3:.3f} ms, CWT {cwt_s * 1e3:.3f} ms (ES384)")

    snp_dir = _VECTORS / "tee" / "snp"
    report_path = snp_dir / "deps_verifier_test_data_snp_test-report.bin"
    if report_path.exists():
        report = report_path.read_bytes()
        vcek = (snp_dir / "deps_verifier_test_data_snp_test-vcek.der").read_bytes()
        caches = EvidenceCaches()

        def snp(c: EvidenceCaches | None) -> Callable[[], object]:
            options = VerifyOptions(now=SNP_NOW, certificates=(vcek,), caches=c)
            return lambda: verify_evidence(report, options)

        snp_s = _time(snp(None), args.seconds / 2)
        snp_cached_s = _time(snp(caches), args.seconds / 2)
        print(f"SNP report verification, no cache:     {snp_s * 1e3:7.3f} ms  {1 / snp_s:8.0f}/s")
        print(
            f"SNP report verification, chain cache:  {snp_cached_s * 1e3:7.3f} ms  "
            f"{1 / snp_cached_s:8.0f}/s"
        )
    else:
        print("SNP: vectors not found (set IRONROOT_VECTORS)")
    gpu_ok = _gpu(args.seconds)
    composite_ok = _composite(
        args.seconds, composite_quote, challenge, endorsements, messages, leaf_keys
    )
    return 0 if gpu_ok and composite_ok else 1


GPU_TARGET = 0.7


def _gpu(seconds: float) -> bool:
    """The NVIDIA GPU figures (section 7); False when the cached ratio is under target."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    from ironroot.attestation.evidence import GpuChainCache
    from ironroot.crypto import PublicKey

    gpu_dir = _VECTORS / "gpu" / "nvidia"
    if not (gpu_dir / "hopperAttestationReport.txt").exists():
        print("GPU: vectors not found (set IRONROOT_VECTORS)")
        return True
    report = bytes.fromhex((gpu_dir / "hopperAttestationReport.txt").read_text())
    chain_pem = (gpu_dir / "hopperCertChain.txt").read_bytes()
    certs = x509.load_pem_x509_certificates(chain_pem)
    leaf_key = certs[0].public_key()
    assert isinstance(leaf_key, ec.EllipticCurvePublicKey)
    key = PublicKey(leaf_key, Algorithm.ES384)
    signature, signed = report[-96:], report[:-96]
    nonce = report[4:36]  # the GET_MEASUREMENTS nonce

    def raw_report() -> None:
        key.verify(signature, signed)

    def raw_all() -> None:
        key.verify(signature, signed)
        for cert, issuer in itertools.pairwise(certs):
            cert.verify_directly_issued_by(issuer)

    def gpu(caches: EvidenceCaches | None) -> Callable[[], object]:
        options = VerifyOptions(now=NOW, nonce=nonce, certificates=(chain_pem,), caches=caches)
        return lambda: verify_evidence(report, options, format="nvidia-gpu")

    chain_only = EvidenceCaches(**{"nvidia-gpu": GpuChainCache(remember_reports=False)})
    runs = {
        "sig": raw_report,
        "all": raw_all,
        "plain": gpu(None),
        "chain": gpu(chain_only),
        "cached": gpu(EvidenceCaches()),
    }
    rounds: dict[str, list[float]] = {name: [] for name in runs}
    # Interleaved, best of each, in CPU time of this process: on the shared 2-core machine
    # wall time mostly measures the other jobs.
    for _ in range(5):
        for name, run in runs.items():
            rounds[name].append(_time(run, seconds / 5, time.process_time))
    best = {name: min(times) for name, times in rounds.items()}
    rows = (
        ("sig", "GPU report signature (ES384):"),
        ("all", "GPU report + 4 chain signatures:"),
        ("plain", "GPU verification, no cache:"),
        ("chain", "GPU verification, chain cache only:"),
        ("cached", "GPU verification, chain + report cache:"),
    )
    for name, label in rows:
        print(f"{label:41s} {best[name] * 1e3:7.3f} ms  {1 / best[name]:8.0f}/s")
    uncached, chain_only_ratio = best["all"] / best["plain"], best["sig"] / best["chain"]
    print(f"ratio 5 signatures / GPU verification, no cache:        {uncached:5.2f}")
    print(f"ratio report signature / GPU verification, chain only:  {chain_only_ratio:5.2f}")
    ratio = best["sig"] / best["cached"]
    print(
        f"ratio report signature / GPU verification, cached:      {ratio:5.2f}  "
        f"(target >= {GPU_TARGET:.2f})"
    )
    return ratio >= GPU_TARGET


COMPOSITE_GPUS = 8
COMPOSITE_TARGET = 0.7


def _test_gpus(challenge: bytes) -> tuple[Any, list[Any], Any, list[Any]]:
    """8 test GPUs (root, their reports, logged RIMs allowing them, leaf keys)."""
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    from ironroot.attestation import GpuReport
    from ironroot.attestation.evidence import device_id_extension
    from ironroot.rim import GoldenMeasurement, LoggedRim, LoggedRims, Rim, RimId
    from ironroot.spdm import (
        GetMeasurements,
        MeasurementBlock,
        Measurements,
        MeasurementValueType,
        SpdmVersion,
    )

    fwid = hashlib.sha384(b"bench GSP FMC").digest()

    def cert(subject: str, key: PrivateKey, issuer: str, by: PrivateKey, ca: bool) -> Any:
        builder = x509.CertificateBuilder()
        if not ca:
            builder = builder.add_extension(
                device_id_extension(key.public_key.raw, fwid),  # type: ignore[arg-type]
                critical=False,
            )
        return (
            builder.subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key.raw)  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=1))
            .not_valid_after(NOW + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(by.raw, hashes.SHA384())  # type: ignore[arg-type]
        )

    def tlv(kind: int, value: bytes) -> bytes:
        return kind.to_bytes(2, "little") + len(value).to_bytes(2, "little") + value

    root_key, ica_key = (PrivateKey.generate(Algorithm.ES384) for _ in range(2))
    root = cert("Bench Device Identity CA", root_key, "Bench Device Identity CA", root_key, True)
    ica = cert("Bench GH100 Identity", ica_key, "Bench Device Identity CA", root_key, True)
    values = {i: hashlib.sha384(b"block %d" % i).digest() for i in range(1, 65)}
    opaque = (
        tlv(3, b"550.90.07\x00")
        + tlv(6, bytes.fromhex("005e009601000000"))
        + tlv(15, b"882\x00")
        + tlv(17, b"1010\x00")
        + tlv(18, b"0200\x00")
        + tlv(20, fwid)
    )
    blocks = tuple(
        MeasurementBlock(i, MeasurementValueType.MUTABLE_FIRMWARE, v) for i, v in values.items()
    )
    reports, keys = [], []
    for index in range(COMPOSITE_GPUS):
        leaf_key = PrivateKey.generate(Algorithm.ES384)
        leaf = cert("Bench FMC LF", leaf_key, "Bench GH100 Identity", ica_key, False)
        pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, ica, root))
        nonce = gpu_nonce(challenge, index)
        request = GetMeasurements(SpdmVersion.V1_1, 0xFF, True, nonce, 0).encode()
        response = Measurements(SpdmVersion.V1_1, blocks, os.urandom(32), opaque)
        unsigned = request + response.encode_unsigned()
        reports.append(GpuReport(unsigned + leaf_key.sign(unsigned), (pem,)))
        keys.append((leaf_key.public_key, unsigned, reports[-1].report[-96:]))

    def rim(rim_id: str, version: str, covered: range) -> LoggedRim:
        golden = tuple(
            GoldenMeasurement(b - 1, f"m{b - 1}", True, 48, (values[b],), "sha384") for b in covered
        )
        body = Rim(
            rim_id,
            "GH100",
            "1.0",
            "0",
            version,
            "GH100",
            "GPU",
            "r1",
            (),
            (),
            golden,
            "bench",
            (),
            NOW - dt.timedelta(days=1),
            NOW + dt.timedelta(days=30),
            bytes(48),
        )
        return LoggedRim(body, RimId.parse(rim_id), "https://rims.example")

    rims = LoggedRims(
        [
            rim("NV_GPU_DRIVER_GH100_550.90.07", "550.90.07", range(1, 33)),
            rim("NV_GPU_VBIOS_1010_0200_882_96005E0001", "96.00.5E.00.01", range(33, 65)),
        ]
    )
    return root, reports, rims, keys


def _composite(
    seconds: float,
    quote: bytes,
    challenge: bytes,
    endorsements: Endorsements,
    messages: list[Any],
    leaf_keys: list[Any],
) -> bool:
    """The composite figures (section 8); False when the cached ratio is under target."""
    import dataclasses

    root, reports, rims, gpu_keys = _test_gpus(challenge)
    given = dataclasses.replace(endorsements, rims=rims)

    def raw() -> None:
        for message, key in zip(messages, leaf_keys, strict=True):
            message.verify(key)
        for key, signed, signature in gpu_keys:
            key.verify(signature, signed)

    def composite(caches: EvidenceCaches | None) -> Callable[[], object]:
        rim_cache = GpuRimCache() if caches is not None else None

        def run() -> object:
            result = appraise_composite(
                quote,
                reports,
                given,
                nonce=challenge,
                now=NOW,
                caches=caches,
                gpu_root=root,
                rim_cache=rim_cache,
            )
            assert result.status is TrustTier.AFFIRMING, result
            return result

        return run

    runs = {"sig": raw, "plain": composite(None), "cached": composite(EvidenceCaches())}
    rounds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(5):
        for name, run in runs.items():
            rounds[name].append(_time(run, seconds / 5, time.process_time))
    best = {name: min(times) for name, times in rounds.items()}
    rows = (
        ("sig", f"CVM + {COMPOSITE_GPUS} GPU report signatures:"),
        ("plain", f"composite ({COMPOSITE_GPUS} GPUs), no cache:"),
        ("cached", f"composite ({COMPOSITE_GPUS} GPUs), cached:"),
    )
    for name, label in rows:
        print(f"{label:41s} {best[name] * 1e3:7.3f} ms  {1 / best[name]:8.0f}/s")
    ratio = best["sig"] / best["cached"]
    print(
        f"ratio signatures / composite appraisal, cached:         {ratio:5.2f}  "
        f"(target >= {COMPOSITE_TARGET:.2f}; load average {_load()})"
    )
    return ratio >= COMPOSITE_TARGET


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
