"""Interoperability with DMTF's reference implementation: libspdm's spdm-emu emulators.

Ironroot's requester against ``spdm_responder_emu`` and ``spdm_requester_emu`` against
Ironroot's responder, over the emulators' socket framing with MCTP and PCI DOE, SPDM 1.2 and
1.3, ECDSA P-256/P-384 (and P-521): VCA, DIGESTS, CERTIFICATE, CHALLENGE and signed
MEASUREMENTS, both ways. Skipped, with the reason, when the emulator binaries are absent.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from _spdm_emu import ASYM_DIRS, emu_dir, emu_responder, run_emu_requester, sample_keys_copy
from _spdm_error_table import (
    CLOSED,
    LIBSPDM_DTS,
    ROWS,
    TRANSPORT_ROWS,
    ZERO_BUFFER,
    Answer,
    Row,
    TransportRow,
    transport_outcome,
)
from _spdm_helpers import BLOCKS, make_cert

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import SpdmProtocolError, SpdmTransportError
from ironroot.spdm import (
    AttestationResult,
    BaseAsymAlgo,
    BaseHashAlgo,
    DeviceIdentity,
    GetMeasurements,
    MeasurementSummaryHashType,
    MeasurementValueType,
    Requester,
    Responder,
    SocketTransportType,
    SpdmEmuClient,
    SpdmEvidence,
    SpdmVersion,
    UnknownMeasurementBlock,
    load_certificates,
    serve_spdm_emu,
    verify_spdm_evidence,
)

pytestmark = pytest.mark.integration

HASH_FOR = {"ECDSA_P256": "SHA_256", "ECDSA_P384": "SHA_384", "ECDSA_P521": "SHA_512"}
ALGORITHM_FOR = {
    "ECDSA_P256": Algorithm.ES256,
    "ECDSA_P384": Algorithm.ES384,
    "ECDSA_P521": Algorithm.ES512,
}
VERSIONS = {"1.2": SpdmVersion.V1_2, "1.3": SpdmVersion.V1_3}
ALL_ASYM = BaseAsymAlgo.ECDSA_P256 | BaseAsymAlgo.ECDSA_P384 | BaseAsymAlgo.ECDSA_P521
ALL_HASH = BaseHashAlgo.SHA_256 | BaseHashAlgo.SHA_384 | BaseHashAlgo.SHA_512
# libspdm's sample device: four digests (types 0..3), SVN, hash-extended, manifest, device mode
EMU_INDICES = [1, 2, 3, 4, 0x10, 0x11, 0xFD, 0xFE]
CONNECTION = ["--exe_conn", "DIGEST,CERT,CHAL,MEAS", "--exe_session", "NO_END"]


@pytest.fixture(scope="module")
def emu() -> Path:
    return emu_dir()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --- Ironroot requester -> spdm_responder_emu ------------------------------------------------


def _measure_emulator(
    emu: Path,
    transport: str,
    version: str,
    asym: str,
    *,
    raw: bool = False,
    extra: tuple[str, ...] = (),
    summary: bool = True,
) -> tuple[Requester, AttestationResult, bytes, bytes]:
    args = ["--trans", transport, "--ver", version, "--asym", asym, "--hash", HASH_FOR[asym]]
    root = (emu / ASYM_DIRS[asym] / "ca.cert.der").read_bytes()
    nonce = os.urandom(32)
    kind = SocketTransportType[transport]
    with emu_responder(emu, [*args, *extra]) as (port, process):
        with SpdmEmuClient.connect("127.0.0.1", port, kind, timeout=30, wait=20) as client:
            assert client.hello() == b"Server Hello!\x00"
            if kind is SocketTransportType.PCI_DOE:
                assert (0x0001, 0x01) in client.discover()  # SPDM over DOE is listed
            requester = Requester(
                client,
                root_certificate=root,
                now=_now(),
                versions=(VERSIONS[version],),
                base_asym_algo=ALL_ASYM,
                base_hash_algo=ALL_HASH,
                alignment=client.alignment,
            )
            if summary:
                result = requester.attest(nonce=nonce, raw_bit_stream=raw)
            else:  # CHALLENGE without a measurement summary hash, then the measurements
                connection = requester.init_connection()
                requester.get_digests()
                chain = requester.get_certificate_chain()
                auth = requester.challenge()
                measured = requester.get_measurements(nonce=nonce, raw_bit_stream=raw)
                result = AttestationResult(connection, chain, measured, auth)
            evidence = requester.last_evidence()
            # L1/L2 over several exchanges: the count, one block unsigned, one signed
            assert requester.get_measurements(0, signed=False).total_measurements == 8
            requester.get_measurements(1, signed=False)
            signed = requester.get_measurements(0x11)
            assert signed.blocks[0].index == 0x11
            client.shutdown()
        assert process.wait(timeout=20) == 0  # the emulator stopped cleanly on SHUTDOWN
    return requester, result, evidence, nonce


@pytest.mark.parametrize("asym", ["ECDSA_P256", "ECDSA_P384"])
@pytest.mark.parametrize("version", ["1.2", "1.3"])
@pytest.mark.parametrize("transport", ["MCTP", "PCI_DOE", "TCP"])
def test_ironroot_requester_with_emulated_responder(
    emu: Path, transport: str, version: str, asym: str
) -> None:
    _, result, evidence, nonce = _measure_emulator(emu, transport, version, asym)
    connection = result.connection
    assert connection.version == VERSIONS[version]
    assert connection.base_asym_algo.name == asym
    assert result.challenge_auth is not None
    blocks = {b.index: b for b in result.blocks}
    assert sorted(blocks) == EMU_INDICES
    hem = blocks[0x11]
    if version == "1.2":  # type 8 is reserved in 1.2: kept, not refused
        assert isinstance(hem, UnknownMeasurementBlock)
        assert hem.type_number == 8
    else:
        assert hem.value_type is MeasurementValueType.HASH_EXTEND_MEASUREMENT
    assert blocks[0x10].secure_version_number() == 7
    assert blocks[0xFE].device_mode().operational_mode_state == 0x04
    root = (emu / ASYM_DIRS[asym] / "ca.cert.der").read_bytes()
    verified = verify_spdm_evidence(evidence, nonce=nonce, root_certificate=root, now=_now())
    assert [b.index for b in verified.blocks] == EMU_INDICES

    from ironroot.attestation import verify_spdm

    claims = verify_spdm(evidence, nonce=nonce, roots=[root], now=_now())
    assert claims.measurements["spdm.17"] == hem.value
    assert claims.svns == {"spdm.16": 7}


# Steps an honest requester may take in any order once connected; each sequence below is one
# that resets B or L1/L2 differently (CHALLENGE before or after measurements, unsigned
# exchanges before a signed one, a new VCA mid-way, DIGESTS after authentication, ...).
_ORDERS = (
    "digests certificate signed certificate challenge signed digests certificate challenge",
    "unsigned count digests unsigned certificate index signed challenge unsigned signed",
    "digests certificate challenge digests certificate unsigned challenge vca digests"
    " certificate index count signed",
    "digests digests certificate certificate signed signed challenge challenge unsigned",
)


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_any_order_of_requests_agrees_with_libspdm_transcripts(emu: Path, version: str) -> None:
    """Ironroot's requester against libspdm's responder, steps in orders that reset M1/M2's
    B and L1/L2 differently: every CHALLENGE_AUTH and MEASUREMENTS signature libspdm makes
    verifies over the transcripts Ironroot keeps (DSP0274's reset rules, as libspdm has
    them), and each record last_evidence gives verifies offline."""
    args = ["--trans", "MCTP", "--ver", version, "--asym", "ECDSA_P384", "--hash", "SHA_384"]
    root = (emu / "ecp384" / "ca.cert.der").read_bytes()
    summaries = iter(MeasurementSummaryHashType)
    with emu_responder(emu, args) as (port, process):
        with SpdmEmuClient.connect("127.0.0.1", port, SocketTransportType.MCTP, wait=20) as client:
            client.hello()
            requester = Requester(
                client,
                root_certificate=root,
                now=_now(),
                versions=(VERSIONS[version],),
                base_asym_algo=BaseAsymAlgo.ECDSA_P384,
                base_hash_algo=BaseHashAlgo.SHA_384,
            )
            recorded = 0
            for order in _ORDERS:
                requester.init_connection()
                chain = False
                for step in order.split():
                    if step == "vca":
                        requester.init_connection()
                        chain = False
                    elif step == "digests":
                        requester.get_digests()
                        chain = False
                    elif step == "certificate":
                        requester.get_certificate_chain()
                        chain = True
                    elif step == "challenge":
                        kind = next(summaries, MeasurementSummaryHashType.ALL)
                        requester.challenge(summary=kind)
                    elif step == "signed":
                        requester.get_measurements()
                    elif step == "unsigned":
                        requester.get_measurements(signed=False)
                    else:  # a count or one index, signed once the chain is verified
                        requester.get_measurements(0 if step == "count" else 0x11, signed=chain)
                    try:
                        record = requester.last_evidence()
                    except SpdmProtocolError:
                        continue  # the last signed exchange is not right after the VCA
                    nonce = GetMeasurements.decode(SpdmEvidence.decode(record).request).nonce
                    assert nonce is not None
                    verify_spdm_evidence(record, nonce=nonce, root_certificate=root, now=_now())
                    recorded += 1
            assert recorded  # some orders measure right after the VCA
            client.shutdown()
        assert process.wait(timeout=20) == 0


def test_ironroot_requester_p521_and_raw_bit_streams(emu: Path) -> None:
    _, result, _, _ = _measure_emulator(emu, "MCTP", "1.3", "ECDSA_P521", raw=True)
    assert result.connection.base_asym_algo is BaseAsymAlgo.ECDSA_P521
    first = result.blocks[0]
    assert first.raw
    assert first.value == b"\x01" * 72  # the sample device's raw image 1


def test_ironroot_requester_with_sha256_measurements(emu: Path) -> None:
    _, result, _, _ = _measure_emulator(
        emu, "PCI_DOE", "1.2", "ECDSA_P384", extra=("--meas_hash", "SHA_256")
    )
    assert result.connection.measurement_hash_algo.name == "SHA_256"
    assert len(result.blocks[0].value) == 32


# --- hostile request sequences -> spdm_responder_emu ----------------------------------------

# The emulator with Ironroot's responder's capabilities and one slot (docs/spdm.md, "Hostile
# request sequences"): each row of the table on a fresh emulator, the answer to its last request,
# over MCTP, over PCI DOE (where each message is padded to whole 4-byte words) and over TCP.
_HOSTILE_ARGS = ["--asym", "ECDSA_P384", "--hash", "SHA_384"]
_HOSTILE_ARGS += ["--cap", "CERT,CHAL,MEAS_SIG", "--slot_count", "1"]
_COMPARED = [
    pytest.param(row, transport, id=f"{transport}-{row.name}")
    for transport in ("MCTP", "PCI_DOE", "TCP")
    for row in ROWS
    if row.answers(transport)[1] is not None
]
# How a peer dropping the connection shows: the emulator closes its socket, at once (an
# unread request left behind makes that a reset) or after reading the request whole.
_DROPPED = "closed the connection|reset by peer|Broken pipe"


@pytest.mark.parametrize(("row", "transport"), _COMPARED)
def test_hostile_sequence_answered_by_libspdm_as_tabled(
    emu: Path, row: Row, transport: str
) -> None:
    """What libspdm's responder answers to each hostile sequence is what the table (and
    docs/spdm.md) says it answers: where it differs from Ironroot's, the difference is known."""
    expected = row.answers(transport)[1]
    kind = SocketTransportType[transport]
    args = [*_HOSTILE_ARGS, "--trans", transport, "--ver", row.emu_version]
    with emu_responder(emu, args) as (port, process):
        with SpdmEmuClient.connect("127.0.0.1", port, kind, wait=20) as client:
            client.hello()
            for request in row.requests[:-1]:
                assert client(request)[1] != 0x7F  # the set-up steps succeed
            if expected == CLOSED:
                with pytest.raises(SpdmTransportError, match=_DROPPED):
                    client(row.requests[-1])
                return
            if expected == ZERO_BUFFER:
                assert client(row.requests[-1]) == bytes(LIBSPDM_DTS)
                client.shutdown()
                return
            answer = Answer.of(client(row.requests[-1]))
            assert str(answer) == str(expected)
            assert answer == expected
            client.shutdown()
        assert process.wait(timeout=20) == 0


@pytest.mark.parametrize("row", TRANSPORT_ROWS, ids=[row.name for row in TRANSPORT_ROWS])
def test_malformed_transport_message_handled_by_libspdm_as_tabled(
    emu: Path, row: TransportRow
) -> None:
    """What spdm_responder_emu does with a PCI DOE or TCP message that is not well-formed:
    what the table (and docs/spdm.md) says."""
    args = [*_HOSTILE_ARGS, "--trans", row.transport, "--ver", "1.2"]
    with emu_responder(emu, args) as (port, _):
        outcome = transport_outcome(port, SocketTransportType[row.transport], row.payload)
    assert str(outcome) == str(row.libspdm)


# --- spdm_requester_emu -> Ironroot responder ------------------------------------------------


class Served:
    """Ironroot's responder behind serve_spdm_emu, recording what it answered."""

    def __init__(
        self,
        responder: Responder,
        kind: SocketTransportType,
        edit: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self.responder, self.edit = responder, edit
        self.answered: list[tuple[int, int, int]] = []  # (request code, Param1, response code)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=serve_spdm_emu,
            args=(self.listener, self.handle, kind),
            kwargs={"stop": self.stop},
            daemon=True,
        )
        self.thread.start()

    def handle(self, request: bytes) -> bytes:
        response = self.responder(request)
        if self.edit is not None:
            response = self.edit(response)
        self.answered.append((request[1], request[2], response[1]))
        return response


@contextmanager
def _served(
    responder: Responder, kind: SocketTransportType, edit: Callable[[bytes], bytes] | None = None
) -> Iterator[Served]:
    served = Served(responder, kind, edit)
    try:
        yield served
    finally:
        served.stop.set()
        served.thread.join(timeout=10)
        served.listener.close()


def _run(emu: Path, served: Served, transport: str, version: str, asym: str, cwd: Path) -> str:
    args = ["--trans", transport, "--ver", version, "--asym", asym, "--hash", HASH_FOR[asym]]
    done = run_emu_requester(emu, served.port, [*args, *CONNECTION], cwd=cwd)
    log = (done.stdout + done.stderr)[-2000:]
    assert done.returncode == 0, log
    served.thread.join(timeout=10)
    assert not served.thread.is_alive()  # the emulator ended with SHUTDOWN
    return log


def _check_flow(served: Served) -> None:
    answered = served.answered
    assert (0x83, 0, 0x03) in answered  # CHALLENGE answered with CHALLENGE_AUTH
    signed = [code for request, p1, code in answered if request == 0xE0 and p1 & 1]
    assert 0x60 in signed  # signed MEASUREMENTS (the emulator probes absent indices too)
    assert not [a for a in answered if a[2] == 0x7F and a[0] != 0xE0]  # no other ERROR


def _sample_identity(emu: Path, asym: str) -> tuple[PrivateKey, tuple[bytes, ...]]:
    folder = emu / ASYM_DIRS[asym]
    key = PrivateKey.from_pem((folder / "end_responder.key").read_bytes())
    return key, load_certificates((folder / "bundle_responder.certchain.der").read_bytes())


@pytest.mark.parametrize("asym", ["ECDSA_P256", "ECDSA_P384"])
@pytest.mark.parametrize("version", ["1.2", "1.3"])
@pytest.mark.parametrize("transport", ["MCTP", "PCI_DOE", "TCP"])
def test_emulated_requester_with_ironroot_responder_sample_keys(
    emu: Path, transport: str, version: str, asym: str
) -> None:
    kind = SocketTransportType[transport]
    key, chain = _sample_identity(emu, asym)
    responder = Responder(key, chain, BLOCKS, alignment=kind.alignment)
    with _served(responder, kind) as served:
        _run(emu, served, transport, version, asym, emu)
    _check_flow(served)


@pytest.mark.parametrize(
    ("transport", "version", "asym"),
    [
        ("MCTP", "1.2", "ECDSA_P384"),
        ("PCI_DOE", "1.3", "ECDSA_P384"),
        ("MCTP", "1.3", "ECDSA_P256"),
        ("PCI_DOE", "1.2", "ECDSA_P521"),
    ],
)
def test_emulated_requester_verifies_an_ironroot_generated_chain(
    emu: Path, tmp_path: Path, transport: str, version: str, asym: str
) -> None:
    """libspdm (mbedTLS back end) checks the leaf: KeyUsage digitalSignature, CA:FALSE."""
    identity = DeviceIdentity.generate(ALGORITHM_FOR[asym], now=_now())
    cwd = sample_keys_copy(emu, tmp_path)
    (cwd / ASYM_DIRS[asym] / "ca.cert.der").write_bytes(identity.root)
    kind = SocketTransportType[transport]
    responder = Responder(identity.key, identity.chain, BLOCKS, alignment=kind.alignment)
    with _served(responder, kind) as served:
        _run(emu, served, transport, version, asym, cwd)
    _check_flow(served)


@pytest.mark.parametrize(
    "options",
    [
        ("--meas_sum", "TCB"),
        ("--meas_sum", "NO"),
        ("--meas_att", "RAW"),
        ("--meas_op", "ALL", "--meas_att", "RAW"),
        ("--slot_id", "0", "--exe_mode", "CONTINUE"),
    ],
    ids=["summary-tcb", "summary-none", "raw-one-by-one", "raw-all", "continue"],
)
def test_emulated_requester_options(emu: Path, options: tuple[str, ...]) -> None:
    key, chain = _sample_identity(emu, "ECDSA_P384")
    with _served(Responder(key, chain, BLOCKS), SocketTransportType.MCTP) as served:
        args = ["--trans", "MCTP", "--ver", "1.3", *options, *CONNECTION]
        done = run_emu_requester(emu, served.port, args)
        assert done.returncode == 0, (done.stdout + done.stderr)[-2000:]
        if "CONTINUE" in options:
            assert served.thread.is_alive()  # CONTINUE ends the connection, not the server
    _check_flow(served)


def test_emulated_requester_refuses_a_leaf_without_key_usage(emu: Path, tmp_path: Path) -> None:
    """Why device chains carry KeyUsage: libspdm refuses a leaf without it."""
    root_key, leaf_key = PrivateKey.generate(Algorithm.ES384), PrivateKey.generate(Algorithm.ES384)
    root = make_cert("Root", root_key, "Root", root_key, ca=True)
    leaf = make_cert("Leaf", leaf_key, "Root", root_key, ca=False, key_usage=False)
    cwd = sample_keys_copy(emu, tmp_path)
    (cwd / "ecp384" / "ca.cert.der").write_bytes(root)
    responder = Responder(leaf_key, [root, leaf], BLOCKS)
    with _served(responder, SocketTransportType.MCTP) as served:
        args = ["--trans", "MCTP", "--ver", "1.2", *CONNECTION]
        done = run_emu_requester(emu, served.port, args, cwd=cwd)
    assert done.returncode != 0
    assert not any(code == 0x83 for code, _, _ in served.answered)  # stopped at the chain


@pytest.mark.parametrize("issuer", ["root", "intermediate"])
def test_emulated_requester_refuses_a_ca_without_key_cert_sign(
    emu: Path, tmp_path: Path, issuer: str
) -> None:
    """Why the SPDM path checks keyCertSign in every issuer's KeyUsage: libspdm (mbedTLS)
    refuses a chain whose root or intermediate CA allows its key only digitalSignature."""
    keys = [PrivateKey.generate(Algorithm.ES384) for _ in range(3)]
    root = make_cert("Root", keys[0], "Root", keys[0], ca=True, key_cert_sign=issuer != "root")
    ca = make_cert("CA", keys[1], "Root", keys[0], ca=True, key_cert_sign=issuer == "root")
    leaf = make_cert("Leaf", keys[2], "CA", keys[1], ca=False)
    cwd = sample_keys_copy(emu, tmp_path)
    (cwd / "ecp384" / "ca.cert.der").write_bytes(root)
    responder = Responder(keys[2], [root, ca, leaf], BLOCKS)
    with _served(responder, SocketTransportType.MCTP) as served:
        args = ["--trans", "MCTP", "--ver", "1.2", *CONNECTION]
        done = run_emu_requester(emu, served.port, args, cwd=cwd)
    assert done.returncode != 0
    codes = [code for code, _, _ in served.answered]
    assert 0x82 in codes  # the chain was fetched,
    assert 0x83 not in codes  # then refused: no CHALLENGE


def test_emulated_requester_refuses_a_bad_challenge_signature(emu: Path) -> None:
    def flip_challenge_auth(response: bytes) -> bytes:
        if response[1] != 0x03:
            return response
        return response[:-1] + bytes([response[-1] ^ 0x01])

    key, chain = _sample_identity(emu, "ECDSA_P384")
    with _served(Responder(key, chain, BLOCKS), SocketTransportType.MCTP, flip_challenge_auth) as s:
        done = run_emu_requester(emu, s.port, ["--trans", "MCTP", "--ver", "1.3", *CONNECTION])
    assert done.returncode != 0
    assert not any(code == 0xE0 for code, _, _ in s.answered)  # no measurements after it


def test_emulated_requester_with_unknown_measurement_types(emu: Path) -> None:
    """Ironroot serving a vendor value type libspdm does not know either (all in one go)."""
    key, chain = _sample_identity(emu, "ECDSA_P384")
    blocks = (*BLOCKS, UnknownMeasurementBlock(0x20, 0x33, b"vendor-defined", raw=True))
    responder = Responder(key, chain, blocks, alignment=4)
    with _served(responder, SocketTransportType.PCI_DOE) as served:
        args = ["--trans", "PCI_DOE", "--ver", "1.3", "--meas_op", "ALL", *CONNECTION]
        done = run_emu_requester(emu, served.port, args)
    assert done.returncode == 0, (done.stdout + done.stderr)[-2000:]
    assert any(code == 0xE0 and p1 & 1 for code, p1, _ in served.answered)


# --- the CLI on both ends --------------------------------------------------------------------


@pytest.mark.parametrize(("transport", "trans"), [("pci-doe", "PCI_DOE"), ("tcp", "TCP")])
def test_cli_responder_with_emulated_requester(
    emu: Path, tmp_path: Path, transport: str, trans: str
) -> None:
    from ironroot.cli import main

    device = tmp_path / "device"
    folder = emu / "ecp384"
    assert (
        main(
            [
                "spdm",
                "device-init",
                str(device),
                "--key",
                str(folder / "end_responder.key"),
                "--chain",
                str(folder / "bundle_responder.certchain.der"),
            ]
        )
        == 0
    )
    command = [sys.executable, "-m", "ironroot", "spdm", "responder", "--device", str(device)]
    process = subprocess.Popen(
        [*command, "--listen", "127.0.0.1:0", "--transport", transport],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # "serving SPDM over pci-doe on 127.0.0.1:PORT"
        assert line.startswith(f"serving SPDM over {transport} on 127.0.0.1:"), line
        port = int(line.rsplit(":", 1)[1])
        args = ["--trans", trans, "--ver", "1.3", *CONNECTION]
        done = run_emu_requester(emu, port, args)
        assert done.returncode == 0, (done.stdout + done.stderr)[-2000:]
        assert process.wait(timeout=20) == 0
        assert "SHUTDOWN" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize(("transport", "trans"), [("mctp", "MCTP"), ("tcp", "TCP")])
def test_cli_requester_with_emulated_responder(
    emu: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], transport: str, trans: str
) -> None:
    from ironroot.cli import main

    nonce = "5a" * 32
    out = tmp_path / "device.spdm"
    root = emu / "ecp256" / "ca.cert.der"
    args = ["--trans", trans, "--ver", "1.2", "--asym", "ECDSA_P256", "--hash", "SHA_256"]
    with emu_responder(emu, args) as (port, process):
        code = main(
            [
                "spdm",
                "requester",
                "--connect",
                f"127.0.0.1:{port}",
                "--transport",
                transport,
                "--root",
                str(root),
                "--nonce",
                nonce,
                "--out",
                str(out),
                "--wait",
                "20",
                "--json",
            ]
        )
        report = json.loads(capsys.readouterr().out)
        assert code == 0, report
        assert process.wait(timeout=20) == 0
    assert report["version"] == "1.2"
    assert report["base_asym_algo"] == "ECDSA_P256"
    assert {c["name"]: c["ok"] for c in report["checks"]}["challenge-auth"] is True
    unknown = next(b for b in report["blocks"] if b["index"] == 0x11)
    assert (unknown["type"], unknown["type_number"]) == ("UNKNOWN", 8)
    verify = ["evidence", "verify", str(out), "--format", "spdm", "--cert", str(root)]
    assert main([*verify, "--nonce", nonce]) == 0
    assert main([*verify, "--nonce", "00" * 32]) == 1
    capsys.readouterr()
