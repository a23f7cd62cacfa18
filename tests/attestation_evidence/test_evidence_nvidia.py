"""``nvidia-gpu`` evidence: the real H100 report and chain, and self-made chains for the cases
no real device gives (another root, another FWID, malformed opaque data)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.attestation import (
    Appraisal,
    Endorsements,
    ReferenceValues,
    appraise_evidence,
)
from ironroot.attestation.evidence import (
    EVIDENCE_FORMATS,
    NVIDIA_DEVICE_ROOT_FINGERPRINT,
    NVIDIA_GPU_FORMAT,
    NVIDIA_OPAQUE_TYPES,
    CheckLog,
    EvidenceCaches,
    GpuChainCache,
    GpuEvidence,
    VerifyOptions,
    builtin_nvidia_root,
    detect_format,
    device_id_extension,
    gpu_claims,
    parse_evidence,
    parse_nvidia_gpu,
    parse_nvidia_opaque_data,
    verify_evidence,
    verify_gpu_chain,
    verify_nvidia_gpu,
)
from ironroot.cli import evidence as evidence_cli
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import (
    BadSignature,
    CertificateExpired,
    ChainNotTrusted,
    EndorsementMismatch,
    IronrootError,
    MalformedEvidence,
    StaleNonce,
)
from ironroot.spdm import (
    GetMeasurements,
    MeasurementBlock,
    Measurements,
    MeasurementValueType,
    SpdmVersion,
)

NONCE = bytes.fromhex("931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb")
NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
FWID = bytes.fromhex(
    "f5c384aebb579217a2c66b17ed0f28e6a9b8d639041acd7b4721cec004f7275494ba94bb5cdfdb3055ee051762b1f75d"
)


@pytest.fixture(scope="module")
def gpu(vectors: Path) -> tuple[bytes, bytes, bytes]:
    """(report bytes, report hex text as the file holds it, the PEM chain)."""
    folder = vectors / "gpu" / "nvidia"
    text = (folder / "hopperAttestationReport.txt").read_bytes()
    return bytes.fromhex(text.decode()), text, (folder / "hopperCertChain.txt").read_bytes()


def _options(chain: bytes, nonce: bytes | None = NONCE, **kw: object) -> VerifyOptions:
    return VerifyOptions(now=NOW, nonce=nonce, certificates=(chain,), **kw)  # type: ignore[arg-type]


def _fails(
    error: type[IronrootError], check: str, data: bytes, options: VerifyOptions
) -> IronrootError:
    with pytest.raises(error) as info:
        verify_evidence(data, options, format=NVIDIA_GPU_FORMAT)
    assert type(info.value) is error
    assert info.value.check == check
    return info.value


# --- the real H100 report ---------------------------------------------------------------------


@pytest.mark.vectors
def test_h100_report_verifies(gpu: tuple[bytes, bytes, bytes]) -> None:
    data, text, chain = gpu
    for given_bytes in (data, text):  # binary or the hex text NVIDIA's tools print
        assert detect_format(given_bytes) == NVIDIA_GPU_FORMAT
        claims = verify_evidence(given_bytes, _options(chain))
        assert claims.format == NVIDIA_GPU_FORMAT
        assert claims.report_data == NONCE
        assert [c.name for c in claims.checks] == ["chain", "report", "fwid", "nonce"]
        assert all(c.ok for c in claims.checks)
        assert [c.name for c in claims.not_checked] == ["revocation", "debug-mode"]
    assert dict(claims.identity) == {
        "driver_version": "550.90.07",
        "vbios_version": "96.00.9F.00.01",
        "chip_sku": "882",
        "chip_sku_mod": "0",
        "project": "1010",
        "project_sku": "0200",
        "project_sku_mod": "",
        "measurement_count": "64",
        "subject": claims.signer,
        "root": NVIDIA_DEVICE_ROOT_FINGERPRINT,
    }
    assert claims.signer.startswith("CN=GH100 A01 GSP FMC LF,O=NVIDIA Corporation")
    assert list(claims.measurements) == [f"spdm.{i}" for i in range(1, 65)]
    assert claims.measurements["spdm.1"] == bytes(48)
    assert claims.measurements["spdm.2"].hex().startswith("8048dfd18fe229bf")
    assert claims.raw["value_types"] == {"MUTABLE_FIRMWARE": list(range(1, 65))}
    assert claims.raw["responder_nonce"].startswith("b4b8a06aaaa35542")
    assert claims.raw["signature"] == data[-96:].hex()
    opaque = {f["type"]: f for f in claims.raw["opaque"]}
    assert sorted(opaque) == [3, 4, 6, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21]
    assert opaque[3] == {
        "type": 3,
        "name": "driver_version",
        "data": b"550.90.07\x00".hex(),
        "value": "550.90.07",
    }
    assert opaque[14]["value"] == "b1030000"  # board id: kept as bytes
    assert claims.raw["measurement_count"] == 64
    assert json.loads(json.dumps(claims.to_dict()))["identity"]["chip_sku"] == "882"


@pytest.mark.vectors
def test_gpu_evidence_typed_view(gpu: tuple[bytes, bytes, bytes]) -> None:
    data, _, chain = gpu
    claims = verify_evidence(data, _options(chain))
    ev = GpuEvidence.from_claims(claims)
    assert (ev.project, ev.sku, ev.chip, ev.vbios_version, ev.driver_version) == (
        "1010",
        "0200",
        "882",
        "96.00.9F.00.01",
        "550.90.07",
    )
    assert ev.chip_sku == ev.chip
    assert ev.project_sku == ev.sku
    assert ev.chip_sku_mod == "0"
    assert ev.project_sku_mod == ""
    assert ev.spdm_version == "1.1"
    assert ev.nonce == NONCE
    assert ev.signer == claims.signer
    assert ev.measurement_count == 64
    assert sorted(ev.measurements) == list(range(1, 65))
    assert ev.measurements[2] == claims.measurements["spdm.2"]
    assert len(ev.measurement_counts) == 64
    assert ev.measurement_counts[:4] == (0, 1, 4, 1)
    assert ev.fwid == FWID
    assert ev.opaque[6].data == bytes.fromhex("009f009601000000")
    assert ev.opaque[11].value == b"\x55"
    assert ev.opaque_data.hex() == claims.raw["opaque_data"]
    assert ev.value_types == {"MUTABLE_FIRMWARE": tuple(range(1, 65))}
    assert ev.signature == data[-96:]
    # The claims of the typed view are the claims it came from.
    again = gpu_claims(ev, root=NVIDIA_DEVICE_ROOT_FINGERPRINT)
    assert again.measurements == claims.measurements
    assert again.identity == claims.identity
    assert again.raw == claims.raw
    other = dataclasses.replace(claims, format="snp")
    with pytest.raises(MalformedEvidence):
        GpuEvidence.from_claims(other)
    with pytest.raises(MalformedEvidence):
        GpuEvidence.from_claims(dataclasses.replace(claims, raw={"spdm_version": "1.1"}))


@pytest.mark.vectors
def test_parse_only(gpu: tuple[bytes, bytes, bytes]) -> None:
    _, text, _ = gpu
    name, parsed = parse_evidence(text)
    assert name == NVIDIA_GPU_FORMAT
    assert parsed["nonce"] == NONCE.hex()
    assert parsed["identity"]["vbios_version"] == "96.00.9F.00.01"
    assert len(parsed["measurements"]) == 64


@pytest.mark.vectors
def test_wrong_nonce_is_refused(gpu: tuple[bytes, bytes, bytes]) -> None:
    data, _, chain = gpu
    error = _fails(StaleNonce, "nonce", data, _options(chain, bytes(32)))
    assert error.code == "nonce-mismatch"
    _fails(StaleNonce, "nonce", data, _options(chain, NONCE[:-1] + b"\x00"))
    _fails(StaleNonce, "nonce", data, _options(chain, None))  # a GPU report answers a nonce


@pytest.mark.vectors
@pytest.mark.slow
def test_flipped_bits_are_refused(gpu: tuple[bytes, bytes, bytes]) -> None:
    """Dense sample of the signed region (request ‖ response without its signature):
    every byte flipped once (bit ``i % 8``: the signature covers every byte), and every bit
    of every byte outside the 64 measurement blocks that steers the parse: the request, the
    response header, the nonce and the opaque data's length; plus every byte of the
    signature. The hypothesis test below draws (byte, bit) pairs anywhere, the opaque data
    included."""
    data, _, chain = gpu
    cache = GpuChainCache()
    verify_nvidia_gpu(data, [chain], now=NOW, cache=cache)  # warm: the body is cached too
    record_start, record_end = 37 + 8, 37 + 8 + 64 * 55
    steering = (*range(record_start), *range(record_end, record_end + 32 + 2))
    offsets = [(i, i % 8) for i in range(len(data))]
    offsets += [(i, bit) for i in steering for bit in range(8) if bit != i % 8]
    for i, bit in offsets:
        bad = bytearray(data)
        bad[i] ^= 1 << bit
        with pytest.raises(BadSignature):
            verify_nvidia_gpu(bytes(bad), [chain], now=NOW, cache=cache)
    assert len(offsets) == len(data) + 7 * (record_start + 32 + 2)


@pytest.mark.vectors
@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(position=st.floats(0, 1, exclude_max=True), bit=st.integers(0, 7))
def test_any_flipped_bit_is_refused_through_the_table(
    gpu: tuple[bytes, bytes, bytes], position: float, bit: int
) -> None:
    data, _, chain = gpu
    bad = bytearray(data)
    bad[int(position * len(data))] ^= 1 << bit
    _fails(BadSignature, "report", bytes(bad), _options(chain))


@pytest.mark.vectors
def test_chain_must_be_given_and_whole(gpu: tuple[bytes, bytes, bytes]) -> None:
    data, _, chain_pem = gpu
    certs = x509.load_pem_x509_certificates(chain_pem)
    pem = [c.public_bytes(serialization.Encoding.PEM) for c in certs]
    der = [c.public_bytes(serialization.Encoding.DER) for c in certs]
    # Without the root certificate (built in), in DER, file by file: still verifies.
    verify_evidence(data, VerifyOptions(now=NOW, nonce=NONCE, certificates=tuple(der[:4])))
    _fails(ChainNotTrusted, "chain", data, VerifyOptions(now=NOW, nonce=NONCE))
    skipped = b"".join((pem[0], *pem[2:]))  # the GSP BROM left out
    _fails(ChainNotTrusted, "chain", data, _options(skipped))
    reordered = b"".join((pem[1], pem[0], *pem[2:]))
    _fails(ChainNotTrusted, "chain", data, _options(reordered))
    _fails(ChainNotTrusted, "chain", data, _options(pem[4]))  # the root alone
    # The chain without its leaf: the BROM certificate's key may only sign certificates.
    _fails(ChainNotTrusted, "chain", data, _options(b"".join(pem[1:])))
    before = dataclasses.replace(_options(chain_pem), now=dt.datetime(2019, 1, 1, tzinfo=dt.UTC))
    _fails(CertificateExpired, "chain", data, before)


@pytest.mark.vectors
def test_builtin_root_is_the_vector_root(vectors: Path) -> None:
    pem = (vectors / "gpu" / "nvidia" / "verifier_device_root.pem").read_bytes()
    root = builtin_nvidia_root()
    assert root == x509.load_pem_x509_certificate(pem)
    assert root.fingerprint(hashes.SHA256()).hex() == NVIDIA_DEVICE_ROOT_FINGERPRINT
    row = EVIDENCE_FORMATS[NVIDIA_GPU_FORMAT].describe()
    assert row["pinned_roots"] == [
        {"name": "NVIDIA Device Identity CA", "sha256": NVIDIA_DEVICE_ROOT_FINGERPRINT}
    ]
    assert row["nonce_binding"]["rule"] == "exact"


@pytest.mark.vectors
def test_chain_cache(gpu: tuple[bytes, bytes, bytes]) -> None:
    data, _, chain = gpu
    caches = EvidenceCaches()
    first = verify_evidence(data, _options(chain, caches=caches))
    second = verify_evidence(data, _options(chain, caches=caches))  # chain and body cached
    plain = verify_evidence(data, _options(chain))
    assert first.to_dict() == second.to_dict() == plain.to_dict()
    assert len(caches.get(NVIDIA_GPU_FORMAT)) == 1
    # Validity is checked on every use, cached or not.
    late = dataclasses.replace(
        _options(chain, caches=caches), now=dt.datetime(2019, 1, 1, tzinfo=dt.UTC)
    )
    _fails(CertificateExpired, "chain", data, late)
    # A claims object handed out never changes what the cache gives the next caller.
    first.raw["opaque"][0]["value"] = "changed"
    first.raw["value_types"]["MUTABLE_FIRMWARE"].append(99)
    assert verify_evidence(data, _options(chain, caches=caches)).to_dict() == plain.to_dict()


# --- self-made chains: another root, FWIDs, malformed bodies --------------------------------


def _der(tag: int, content: bytes) -> bytes:
    size = len(content)
    length = bytes([size]) if size < 0x80 else bytes([0x81, size])
    return bytes([tag]) + length + content


def _composite_device_id(key: ec.EllipticCurvePublicKey, fwid: bytes) -> bytes:
    spki = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    sha384 = _der(0x06, bytes.fromhex("608648016503040202"))
    value = _der(0x30, _der(0x02, b"\x01") + spki + _der(0x30, sha384 + _der(0x04, fwid)))
    assert value == device_id_extension(key, fwid).value  # the shared encoder agrees
    return value


def _cert(
    subject: str,
    key: PrivateKey,
    issuer: str,
    issuer_key: PrivateKey,
    *,
    ca: bool,
    fwid: bytes | None = None,
    device_id: bytes | None = None,
) -> x509.Certificate:
    signing, public = issuer_key.raw, key.public_key.raw
    assert isinstance(signing, ec.EllipticCurvePrivateKey)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=30))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if fwid is not None or device_id is not None:
        value = device_id if device_id is not None else _composite_device_id(public, fwid or b"")
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier("2.23.133.5.4.1"), value),
            critical=False,
        )
    return builder.sign(signing, hashes.SHA384())


@dataclasses.dataclass
class FakeGpu:
    root: x509.Certificate
    chain_pem: bytes
    leaf_key: PrivateKey

    def report(
        self,
        nonce: bytes = NONCE,
        *,
        opaque: bytes | None = None,
        blocks: Sequence[MeasurementBlock] | None = None,
    ) -> bytes:
        request = GetMeasurements(SpdmVersion.V1_1, 0xFF, True, nonce, 0).encode()
        if blocks is None:
            blocks = [
                MeasurementBlock(i, MeasurementValueType.MUTABLE_FIRMWARE, bytes([i]) * 48)
                for i in range(1, 5)
            ]
        if opaque is None:
            opaque = _tlv(17, b"1010\x00") + _tlv(6, bytes.fromhex("005e009601000000"))
            opaque += _tlv(20, FWID) + _tlv(99, b"\xde\xad")
        response = Measurements(
            SpdmVersion.V1_1, tuple(blocks), hashlib.sha256(nonce).digest(), opaque
        ).encode_unsigned()
        return request + response + self.leaf_key.sign(request + response)


def _tlv(kind: int, value: bytes) -> bytes:
    return kind.to_bytes(2, "little") + len(value).to_bytes(2, "little") + value


def _fake_gpu(fwid: bytes | None = FWID, device_id: bytes | None = None) -> FakeGpu:
    root_key, ica_key, leaf_key = (PrivateKey.generate(Algorithm.ES384) for _ in range(3))
    root = _cert("Fake Device Identity CA", root_key, "Fake Device Identity CA", root_key, ca=True)
    ica = _cert("Fake GH100 Identity", ica_key, "Fake Device Identity CA", root_key, ca=True)
    leaf = _cert(
        "Fake FMC LF",
        leaf_key,
        "Fake GH100 Identity",
        ica_key,
        ca=False,
        fwid=fwid,
        device_id=device_id,
    )
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, ica, root))
    return FakeGpu(root, pem, leaf_key)


def test_chain_to_another_root_is_refused() -> None:
    fake = _fake_gpu()
    error = _fails(ChainNotTrusted, "chain", fake.report(), _options(fake.chain_pem))
    assert "not 'NVIDIA Device Identity CA'" in error.detail
    # Without the other root in the chain: its top is not issued by NVIDIA's CA either.
    without_root = fake.chain_pem.split(b"-----END CERTIFICATE-----\n")
    two = b"-----END CERTIFICATE-----\n".join(without_root[:2]) + b"-----END CERTIFICATE-----\n"
    _fails(ChainNotTrusted, "chain", fake.report(), _options(two))


def test_own_root_verifies_and_checks_the_fwid() -> None:
    fake = _fake_gpu()
    claims = verify_nvidia_gpu(fake.report(), [fake.chain_pem], now=NOW, root=fake.root)
    assert claims.identity["project"] == "1010"
    assert claims.identity["vbios_version"] == "96.00.5E.00.01"
    assert [c.name for c in claims.checks] == []  # the log is the caller's: none given here
    typed = GpuEvidence.from_claims(claims)
    assert typed.opaque[99].name == "type_99"
    assert typed.opaque[99].value == b"\xde\xad"
    assert not typed.opaque[99].known

    other = _fake_gpu(fwid=hashlib.sha384(b"other firmware").digest())
    with pytest.raises(EndorsementMismatch) as info:
        verify_nvidia_gpu(other.report(), [other.chain_pem], now=NOW, root=other.root)
    assert info.value.check == "fwid"


@pytest.mark.parametrize(
    "device_id",
    [
        b"\x04\x88" + b"\xff" * 8 + b"a",  # a length over what the host can index
        b"\x30\x84\x7f\xff\xff\xff",  # a length past the value
        b"\x30\x03\x02\x01",  # truncated
        b"\x31\x00",  # a SET
    ],
    ids=["overflowing length", "long length", "truncated", "set"],
)
def test_a_gpu_certificate_whose_device_id_does_not_parse_is_refused(device_id: bytes) -> None:
    """A leaf whose CompositeDeviceID does not parse is refused with the chain, never an
    uncaught error (an over-long DER length used to escape pyasn1 as ``OverflowError``)."""
    bad = _fake_gpu(device_id=device_id)
    with pytest.raises(EndorsementMismatch, match="CompositeDeviceID does not parse") as info:
        verify_nvidia_gpu(bad.report(), [bad.chain_pem], now=NOW, root=bad.root)
    assert info.value.check == "chain"


def test_a_gpu_whose_firmware_identity_is_not_named_is_refused() -> None:
    """The FWID is compared, never skipped: a leaf certificate without one, or a report whose
    opaque data leaves it out, is refused at the ``fwid`` check (it used to be listed as not
    checked and the GPU could still be affirming)."""
    bare = _fake_gpu(fwid=None)
    with pytest.raises(EndorsementMismatch, match="the GPU certificate carries no FWID") as info:
        verify_nvidia_gpu(bare.report(), [bare.chain_pem], now=NOW, root=bare.root)
    assert info.value.check == "fwid"
    fake = _fake_gpu()
    silent = _tlv(17, b"1010\x00") + _tlv(6, bytes.fromhex("005e009601000000"))
    log = CheckLog()
    with pytest.raises(EndorsementMismatch, match="opaque data carries no FWID") as info:
        verify_nvidia_gpu(
            fake.report(opaque=silent), [fake.chain_pem], now=NOW, root=fake.root, checks=log
        )
    assert info.value.check == "fwid"
    assert [c.name for c in log.not_checked] == []


def test_report_cache_answers_each_nonce() -> None:
    fake = _fake_gpu()
    cache = GpuChainCache()
    first = verify_nvidia_gpu(fake.report(), [fake.chain_pem], now=NOW, root=fake.root, cache=cache)
    other_nonce = bytes(range(32))
    second_report = fake.report(other_nonce)
    second = verify_nvidia_gpu(
        second_report, [fake.chain_pem], now=NOW, root=fake.root, cache=cache
    )
    assert first.report_data == NONCE
    assert second.report_data == other_nonce
    assert second.raw["responder_nonce"] == hashlib.sha256(other_nonce).hexdigest()
    assert second.raw["signature"] == second_report[-96:].hex()
    plain = verify_nvidia_gpu(second_report, [fake.chain_pem], now=NOW, root=fake.root)
    assert second.to_dict() == plain.to_dict()
    # A chain verified to another root is not reused for the built-in one.
    with pytest.raises(ChainNotTrusted):
        verify_nvidia_gpu(second_report, [fake.chain_pem], now=NOW, cache=cache)


@pytest.mark.parametrize(
    ("opaque", "message"),
    [
        (_tlv(3, b"1.0\x00") + _tlv(3, b"2.0\x00"), "appears twice"),
        (_tlv(3, b"1.0")[:-1], "needs 3 bytes"),
        (b"\x03\x00\x01", "truncated TLV header"),
        (_tlv(6, b"\x00" * 7), "vbios_version is 7 bytes"),
        (_tlv(17, b"10\xff0"), "not NUL-padded ASCII"),
        (_tlv(17, b"10\x000"), "not NUL-padded ASCII"),
        (_tlv(12, b"\x00" * 6), "not u32 values"),
    ],
)
def test_malformed_opaque_data_is_refused(opaque: bytes, message: str) -> None:
    with pytest.raises(MalformedEvidence, match=message):
        parse_nvidia_opaque_data(opaque)
    fake = _fake_gpu()
    with pytest.raises(MalformedEvidence, match=message) as info:
        verify_nvidia_gpu(
            fake.report(opaque=opaque),
            [fake.chain_pem],
            now=NOW,
            root=fake.root,
            checks=CheckLog(),
        )
    assert info.value.check == "report"


def test_opaque_type_table() -> None:
    assert NVIDIA_OPAQUE_TYPES[3] == "driver_version"
    assert NVIDIA_OPAQUE_TYPES[6] == "vbios_version"
    assert NVIDIA_OPAQUE_TYPES[12] == "measurement_counts"
    assert NVIDIA_OPAQUE_TYPES[15] == "chip_sku"
    assert NVIDIA_OPAQUE_TYPES[17] == "project"
    assert NVIDIA_OPAQUE_TYPES[18] == "project_sku"
    assert NVIDIA_OPAQUE_TYPES[20] == "fwid"
    fields = parse_nvidia_opaque_data(_tlv(12, (7).to_bytes(4, "little") * 2) + _tlv(500, b"x"))
    assert fields[12].value == (7, 7)
    assert fields[500].name == "type_500"
    assert fields[500].value == b"x"
    assert parse_nvidia_opaque_data(b"") == {}


def test_verify_gpu_chain_directly() -> None:
    fake = _fake_gpu()
    certs = x509.load_pem_x509_certificates(fake.chain_pem)
    chain = verify_gpu_chain(certs, now=NOW, root=fake.root)
    assert chain.fwid == FWID
    assert chain.subject == "CN=Fake FMC LF"
    with pytest.raises(ChainNotTrusted):
        verify_gpu_chain(certs, now=NOW)
    with pytest.raises(ChainNotTrusted):
        verify_gpu_chain([], now=NOW, root=fake.root)
    # An end-entity certificate cannot issue.
    leaf_key = PrivateKey.generate(Algorithm.ES384)
    below = _cert("Below", leaf_key, "Fake FMC LF", fake.leaf_key, ca=False)
    with pytest.raises(ChainNotTrusted, match="not a CA"):
        verify_gpu_chain([below, *certs], now=NOW, root=fake.root)


# --- the command line ---------------------------------------------------------------------


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="ironroot")
    evidence_cli.register(parser.add_subparsers(dest="group"))
    args = parser.parse_args(list(argv))
    try:
        return int(args.func(args))
    except IronrootError as exc:
        return exc.exit_code


@pytest.mark.vectors
def test_cli_verify(vectors: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = vectors / "gpu" / "nvidia"
    report, chain = folder / "hopperAttestationReport.txt", folder / "hopperCertChain.txt"
    base = ("evidence", "verify", str(report), "--format", "nvidia-gpu", "--cert", str(chain))
    assert run(*base, "--nonce", NONCE.hex()) == 0
    out = capsys.readouterr().out
    assert "vbios_version: 96.00.9F.00.01" in out
    assert "verdict: verified" in out
    assert run(*base, "--nonce", "00" * 32) == 1
    assert "FAILED [nonce] (nonce-mismatch)" in capsys.readouterr().out
    assert run(*base[:-1], str(folder / "verifier_RIM_root.pem"), "--nonce", NONCE.hex()) == 1
    assert "FAILED [chain]" in capsys.readouterr().out
    assert run(*base, "--nonce", NONCE.hex(), "--json") == 0
    body = json.loads(capsys.readouterr().out)
    assert body["claims"]["identity"]["driver_version"] == "550.90.07"
    assert run("evidence", "inspect", str(report), "--json") == 0
    assert json.loads(capsys.readouterr().out)["format"] == "nvidia-gpu"
    assert run("evidence", "formats", "--json") == 0
    names = [r["name"] for r in json.loads(capsys.readouterr().out)["formats"]]
    assert "nvidia-gpu" in names


# --- appraisal: the row goes through the verifier like every other -------------------------


@pytest.mark.vectors
def test_appraisal_of_the_h100_report(gpu: tuple[bytes, bytes, bytes]) -> None:
    data, _, chain = gpu
    endorsements = Endorsements(reference_values=ReferenceValues([]))

    def appraise(nonce: bytes, certificates: tuple[bytes, ...] = (chain,)) -> Appraisal:
        result = appraise_evidence(
            data, endorsements, nonce=nonce, now=NOW, certificates=certificates
        )
        (appraisal,) = result.submods.values()
        return appraisal

    good = appraise(NONCE)
    assert good.trust_vector["instance-identity"] == 2  # trustworthy instance
    # alone (no RIM compared) the report does not prove the GPU's debug state off
    assert good.evidence is not None
    assert good.evidence["debug"] is True
    assert good.trust_vector["configuration"] == 96  # unsupportable configuration
    assert any(r.startswith("debug: ") for r in good.reasons)
    assert good.evidence is not None
    assert good.evidence["identity"]["vbios_version"] == "96.00.9F.00.01"
    assert appraise(bytes(32)).trust_vector == {"instance-identity": 96}  # stale nonce
    other_root = appraise(NONCE, (_fake_gpu().chain_pem,))
    assert other_root.trust_vector == {"instance-identity": 97}  # unrecognized instance


_FUZZ_GPU = _fake_gpu()


def _signed(body: bytes) -> bytes:
    """``body`` after a real GET_MEASUREMENTS request, signed by the fake GPU's leaf key: the
    signature holds, so every byte reaches the decoders."""
    request = GetMeasurements(SpdmVersion.V1_1, 0xFF, True, NONCE, 0).encode()
    return request + body + _FUZZ_GPU.leaf_key.sign(request + body)


def _only_typed_errors(report: bytes) -> None:
    for verify in (
        lambda: verify_nvidia_gpu(report, [_FUZZ_GPU.chain_pem], now=NOW, root=_FUZZ_GPU.root),
        lambda: verify_nvidia_gpu(
            report, [_FUZZ_GPU.chain_pem], now=NOW, root=_FUZZ_GPU.root, cache=GpuChainCache()
        ),
    ):
        try:
            claims = verify()
        except IronrootError:
            continue
        GpuEvidence.from_claims(claims)  # verified claims always rebuild the typed view


@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    opaque=st.lists(
        st.tuples(
            st.sampled_from([3, 6, 11, 12, 15, 17, 18, 20, 255, 999]),
            st.binary(max_size=70),
        ),
        max_size=6,
    ),
    tail=st.binary(max_size=4),
    sizes=st.lists(st.sampled_from([0, 1, 32, 47, 48, 49]), max_size=5),
)
def test_signed_malformed_reports_raise_only_typed_errors(
    opaque: list[tuple[int, bytes]], tail: bytes, sizes: list[int]
) -> None:
    """Opaque data and blocks of any shape, correctly signed, give a typed error or claims."""
    data = b"".join(_tlv(kind, value) for kind, value in opaque) + tail
    blocks = [
        MeasurementBlock(i + 1, MeasurementValueType.MUTABLE_FIRMWARE, b"\x01" * size)
        for i, size in enumerate(sizes)
    ]
    try:
        report = _FUZZ_GPU.report(opaque=data, blocks=blocks)
    except IronrootError:
        return  # the SPDM encoder refuses what no responder could send
    _only_typed_errors(report)


@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(max_size=300), raw=st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_typed_errors(body: bytes, raw: bytes) -> None:
    """Any MEASUREMENTS response the leaf key signed, and any bytes at all, unsigned."""
    _only_typed_errors(_signed(b"\x11\x60" + body))
    _only_typed_errors(raw)
    with contextlib.suppress(IronrootError):
        parse_nvidia_gpu(raw)
    with contextlib.suppress(IronrootError):
        parse_nvidia_opaque_data(raw)


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        (3, "measurement_counts lists 3 measurement indices, the report carries 4 blocks"),
        (5, "measurement_counts lists 5 measurement indices, the report carries 4 blocks"),
        (0, "measurement_counts lists 0 measurement indices, the report carries 4 blocks"),
    ],
)
def test_measurement_counts_must_agree_with_the_blocks(counts: int, message: str) -> None:
    """A report of all its blocks whose opaque measurement counts (type 12, one u32 per
    index) name another number of measurements contradicts itself: refused, signed or not."""
    fake = _fake_gpu()
    opaque = _tlv(17, b"1010\x00") + _tlv(20, FWID) + _tlv(12, b"\x01\x00\x00\x00" * counts)
    report = fake.report(opaque=opaque)
    with pytest.raises(MalformedEvidence, match=message) as info:
        verify_nvidia_gpu(report, [fake.chain_pem], now=NOW, root=fake.root, checks=CheckLog())
    assert info.value.check == "report"
    with pytest.raises(MalformedEvidence, match=message):
        parse_nvidia_gpu(report)
    agreeing = _tlv(17, b"1010\x00") + _tlv(20, FWID) + _tlv(12, b"\x01\x00\x00\x00" * 4)
    claims = verify_nvidia_gpu(
        fake.report(opaque=agreeing), [fake.chain_pem], now=NOW, root=fake.root
    )
    assert GpuEvidence.from_claims(claims).measurement_counts == (1, 1, 1, 1)
