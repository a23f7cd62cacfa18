"""Text from outside the program, as the CLI prints it: shown as written, never as rich markup
and never as terminal control sequences.

Each command is driven with hostile text where it takes text from outside: a fleet folder's
path, a certificate's file name and subject, a statement's issuer and subject, a SAFE report's
vendor and review provider, a server's problem detail. ``[/bold]`` made a rich title fail the
verb (``internal-error``), ``[red]x[/red]`` restyled the output (and lost its brackets), and
``ESC [2J`` reached the terminal raw (clearing it)."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ironroot.cli import main
from ironroot.cose import create_statement
from ironroot.crypto import Algorithm, PrivateKey

ESC = "\x1b[2J"
HOSTILE = ["[/bold]", "[red]x[/red]", f"clear{ESC}", ":white_check_mark:", "twin\u200b"]
"""Markup that does not parse, markup that does, an escape sequence that clears a screen, a
rich ``:emoji:`` code (it drew a check mark of its own), and a zero-width space (the name
looked like another: ``twin``)."""


def _as_shown(text: str) -> str:
    """What the CLI prints for ``text``: as written, with control and invisible characters
    as their code points."""
    return text.replace("\x1b", "[U+001B]").replace("\u200b", "[U+200B]")


def _check(out: str, text: str) -> None:
    """``text`` is in ``out`` as the CLI shows it (white space aside: rich wraps a table's title
    at the table's width), and no escape sequence is."""
    assert "\x1b" not in out
    assert "\u200b" not in out
    assert "".join(_as_shown(text).split()) in "".join(out.split()), out


# --- rich tables: fleet status and attest, rot inspect-cert ---------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from tests.platform.node_world import make_world

    with make_world(tmp_path_factory.mktemp("cli-text-world")) as w:
        yield w


@pytest.mark.integration
@pytest.mark.parametrize("text", HOSTILE)
def test_fleet_status_attest_and_audit_export_show_paths_and_names_as_written(
    world: object, tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.fleet.admission_world import admission_world
    from tests.platform.node_world import NOW

    from ironroot.fleet import Fleet

    aw = admission_world(world)  # type: ignore[arg-type]
    directory = tmp_path / f"site{text}" / "fleet"
    directory.parent.mkdir(parents=True)
    fleet = Fleet.create(directory, node_class=aw.node_class())
    fleet.add_nodes(1, vendor_ca=aw.vendor_ca, now=NOW)
    roots = tmp_path / "vendor-ca"
    roots.mkdir()
    for name, der in zip(("ecc", "mldsa"), aw.vendor_ca.trust_anchors, strict=True):
        pem = x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM)
        (roots / f"vendor-ca-{name}.cert.pem").write_bytes(pem)
    f = ("--fleet", str(directory))
    assert main(["fleet", "status", *f]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    _check(out, f"fleet {directory}")
    at = NOW.isoformat().replace("+00:00", "Z")
    assert main(["fleet", "attest", *f, "--vendor-root", str(roots), "--at", at]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    _check(out, f"attested 1 node(s) of {directory}")
    # a node that is not in the fleet is named as given while the export runs, then refused
    argv = ["audit", "export", f"node{text}", *f, "--log-url", "http://127.0.0.1:9"]
    argv += ["--out", str(tmp_path / "x.audit"), "--at", at]
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert out == ""
    _check(err, f"ironroot: not-found: no node {f'node{text}'!r} in the fleet\n")  # as repr


def _certificate(common_name: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.DER)


@pytest.mark.parametrize("text", HOSTILE)
def test_rot_inspect_cert_shows_the_file_name_and_subject_as_written(
    tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / f"certs{text}"
    folder.mkdir(parents=True)
    path = folder / f"device{text.replace('/', '')}.der"
    path.write_bytes(_certificate(f"cn{text}"))
    assert main(["rot", "inspect-cert", str(path)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    _check(out, f"{path.name} [0]")
    _check(out, f"CN=cn{text}")


# --- plain lines: statement inspect, safe verify, monitor once ---------------------------------


@pytest.mark.parametrize("text", HOSTILE)
def test_statement_inspect_shows_the_issuer_and_subject_as_written(
    tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    key = PrivateKey.generate(Algorithm.ES256)
    path = tmp_path / "statement.cose"
    claims = {"iss": f"iss{text}", "sub": f"sub{text}", "content_type": f"t{text}"}
    chain = [_certificate(f"cn{text}")]
    path.write_bytes(create_statement(key, b"{}", **claims, x5chain=chain, include_kid=False))
    assert main(["statement", "inspect", str(path)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    _check(out, f"iss: iss{text}\n  sub: sub{text}\n")
    _check(out, f"content type: t{text};")
    _check(out, f"x5chain: CN=cn{text}\n")


@pytest.mark.parametrize("text", HOSTILE)
def test_safe_verify_shows_the_report_s_text_as_written(
    tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.safe._safe_helpers import KID, report_bytes

    key = PrivateKey.generate(Algorithm.ES384)
    (tmp_path / "key.pem").write_bytes(key.to_pem())
    (tmp_path / "provider.pub.pem").write_bytes(key.public_key.to_pem())
    (tmp_path / "report.json").write_bytes(
        report_bytes(device__vendor=f"v{text}", audit__srp=f"{KID} {text}")
    )
    signed = tmp_path / "report.jws"
    argv = ["safe", "sign", str(tmp_path / "report.json"), "--key", str(tmp_path / "key.pem")]
    assert main([*argv, "--kid", KID, "--out", str(signed)]) == 0
    capsys.readouterr()
    provider = f"{KID}={tmp_path / 'provider.pub.pem'}"
    code = main(["safe", "verify", str(signed), "--provider-key", provider])
    out, err = capsys.readouterr()
    if not text.isprintable():  # an srp with a control character names no provider
        assert code == 1
        assert "srp-mismatch" in out + err
        assert "\x1b" not in out + err
        return
    assert code == 0
    assert err == ""
    _check(out, f"  v{text} / Roadrunner Trap 1.2.3;")
    _check(out, f"reviewed by {KID} {text} on")


@pytest.mark.integration
@pytest.mark.parametrize("text", HOSTILE)
def test_monitor_once_and_statement_verify_show_a_statement_s_subject_as_written(
    tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.witness.witness_testkit import VENDOR, service_dir, statement

    from ironroot.transparency import ServiceThread, TransparencyClient, TransparencyService

    vendor = PrivateKey.generate(Algorithm.ES256)
    with (
        TransparencyService.open(service_dir(tmp_path / "ts", vendor)) as service,
        ServiceThread(service) as server,
    ):
        with TransparencyClient(server.url) as client:
            registered = client.register(statement(vendor, f"pkg:fw/{text}"))
        state = str(tmp_path / "monitor.sqlite3")
        code = main(
            ["monitor", "once", "--state", state, "--url", server.url, "--watch-iss", VENDOR]
        )
        out, _ = capsys.readouterr()  # stderr: the keys trusted on first use
        assert code == 3  # a watched statement
        _check(out, f"iss={VENDOR} sub=pkg:fw/{text} (watched iss)")
        path = tmp_path / "statement.cose.ts"
        path.write_bytes(registered.transparent_statement)
        assert main(["statement", "verify", str(path), "--service-keys", server.url]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    _check(out, f"verify; iss={VENDOR} sub=pkg:fw/{text}\n")


# --- errors: a server's problem detail ----------------------------------------------------------


class _Refusing(http.server.BaseHTTPRequestHandler):
    """Answers every request with an RFC 9290 problem whose title and detail are hostile."""

    text = ""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        body = json.dumps(
            {"title": f"Refused{self.text}", "detail": f"no{self.text}", "status": 400}
        ).encode()
        self.send_response(400)
        self.send_header("content-type", "application/problem+json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.integration
@pytest.mark.parametrize("text", HOSTILE)
def test_a_server_s_problem_detail_is_shown_as_written(
    tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = type("Handler", (_Refusing,), {"text": text})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        key = PrivateKey.generate(Algorithm.ES256)
        path = tmp_path / "statement.cose"
        path.write_bytes(create_statement(key, b"{}", iss="https://vendor.example", sub="x"))
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert main(["statement", "register", str(path), "--url", url]) == 1
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    out, err = capsys.readouterr()
    assert out == ""
    _check(err, f"ironroot: remote-problem: 400 Refused{text}: no{text}\n")


# --- attest explain and verify-result: an EAR's labels, policy ids and reasons --------------


def _hostile_ear(text: str) -> object:
    from ironroot.attestation import Appraisal, AttestationResult, TrustTier, VerifierId

    appraisal = Appraisal(
        status=TrustTier.AFFIRMING,
        trust_vector={"instance-identity": 2},
        policy_id=f"policy{text}",
        reasons=(f"why{text}\u202e",),
    )
    return AttestationResult(
        iat=1_700_000_000,
        verifier_id=VerifierId("x", "y"),
        submods={f"node{text}": appraisal},
    )


@pytest.mark.parametrize("verb", ["explain", "verify-result"])
@pytest.mark.parametrize("text", [f"clear{ESC}", "title\x1b]0;owned\x07", "twin\u200b"])
def test_attest_shows_an_ear_s_labels_policy_and_reasons_as_written(
    tmp_path: Path, verb: str, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An EAR given to ``attest explain`` (signature not checked without ``--keys``) is
    anyone's text: its submodule label, policy id and reasons reached the terminal raw."""
    from ironroot.attestation import sign_ear_jwt

    key = PrivateKey.generate(Algorithm.ES256)
    (tmp_path / "key.pem").write_bytes(key.public_key.to_pem())
    path = tmp_path / "ear.jwt"
    path.write_bytes(sign_ear_jwt(_hostile_ear(text), key))  # type: ignore[arg-type]
    args = ["attest", verb, str(path)]
    if verb == "verify-result":
        args += ["--keys", str(tmp_path / "key.pem"), "--at", "2023-11-14T22:13:30Z"]
    main(args)
    out, _ = capsys.readouterr()
    spelt = (
        text.replace("\x1b", "[U+001B]").replace("\x07", "[U+0007]").replace("\u200b", "[U+200B]")
    )
    for raw in ("\x1b", "\x07", "\u200b", "\u202e"):
        assert raw not in out, out
    assert f"node{spelt}: affirming (policy policy{spelt})\n" in out, out
    assert f"  why: why{spelt}[U+202E]\n" in out, out


# --- witness: a log's origin, as its published key names it ------------------------------------


def test_witness_add_log_and_show_print_a_log_s_origin_as_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A log's vkey (given, or fetched from the log with ``--log-url``) names its origin; the
    checkpoint parser refuses C0 controls there but not C1 (U+009B, a CSI) nor bidi controls,
    which ``witness add-log`` and ``witness show`` printed raw."""
    from ironroot.log import NoteSigner

    origin = "log.example/o\u009b2J\u202e"
    vkey = NoteSigner(origin, PrivateKey.generate(Algorithm.ED25519)).verifier().vkey
    data = str(tmp_path / "witness")
    assert main(["witness", "init", "--data", data, "--name", "witness.example/w"]) == 0
    assert main(["witness", "add-log", "--data", data, vkey]) == 0
    assert main(["witness", "show", "--data", data]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "\u009b" not in out, out
    assert "\u202e" not in out, out
    spelt = "log.example/o[U+009B]2J[U+202E]"
    assert f"witnessing {spelt} (1 logs) with the log key(s):\n{spelt}+" in out, out
    assert f"log:      {spelt} (cosigned: none)\n" in out, out


def test_witness_evidence_shows_a_log_s_origin_and_the_refusal_as_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The evidence a witness keeps names the log's origin, in its kind's line and in the
    refusal's detail: both were printed raw by ``witness evidence``."""
    from tests.witness.witness_testkit import entries, grown

    from ironroot.errors import InconsistentCheckpoint
    from ironroot.log import NoteSigner
    from ironroot.witness import AddCheckpoint, open_witness

    origin = "log.example/o\u009b2J\u202e"
    key = PrivateKey.generate(Algorithm.ED25519)
    data = str(tmp_path / "witness")
    assert main(["witness", "init", "--data", data, "--name", "witness.example/w"]) == 0
    assert (
        main(["witness", "add-log", "--data", data, NoteSigner(origin, key).verifier().vkey]) == 0
    )
    log = grown(key, entries(5), entries(6, 5), origin=origin)
    witness = open_witness(Path(data))
    try:
        witness.add_checkpoint(AddCheckpoint(0, (), log.checkpoint_at(5)).encode())
        garbled = (bytes(32),) * len(log.consistency_proof(5, 11))
        with pytest.raises(InconsistentCheckpoint):
            witness.add_checkpoint(AddCheckpoint(5, garbled, log.checkpoint()).encode())
    finally:
        witness.close()
        log.close()
    capsys.readouterr()
    assert main(["witness", "evidence", "--data", data]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "\u009b" not in out, out
    assert "\u202e" not in out, out
    spelt = "log.example/o[U+009B]2J[U+202E]"
    assert out.startswith(f"#1 inconsistent {spelt}: the checkpoint of {spelt} at size 11"), out


# --- log verify and export-tiles: a log's origin -------------------------------------------------


def test_log_verify_and_export_tiles_show_the_origin_as_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A checkpoint's origin line refuses C0 controls but not C1 (U+009B, a CSI) nor bidi
    controls: ``log verify`` and ``log export-tiles`` printed it raw."""
    from tests.log.log_testkit import make_data_dir

    from ironroot.log import Log, NoteSigner

    origin = "log.example/o\u009b2J\u202e"
    key = PrivateKey.generate(Algorithm.ED25519)
    data = make_data_dir(tmp_path / "data", key, origin)
    with Log.open(data, origin=origin, note_signers=[NoteSigner(origin, key)]) as log:
        log.start()
        for ticket in log.submit_many([b"e %d" % i for i in range(3)]):
            ticket.integrated.result(30)
    out_dir = tmp_path / "tiles"
    assert main(["log", "verify", str(data)]) == 0
    assert main(["log", "export-tiles", str(out_dir), "--data", str(data)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "\u009b" not in out, out
    assert "\u202e" not in out, out
    spelt = "log.example/o[U+009B]2J[U+202E]"
    assert f"ok: log {spelt} verified\n" in out, out
    assert f"exported {spelt} at size 3 (was 0) to {out_dir}: " in out, out
    assert f"origin: {spelt}\nkey:    {spelt}+" in out, out
