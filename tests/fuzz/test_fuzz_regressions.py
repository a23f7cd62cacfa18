"""Inputs the fuzzers found that once escaped as untyped errors, each pinned to the exact
typed error it must raise now."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ironroot.attestation import AttestationResult
from ironroot.cose import decode_cbor
from ironroot.errors import ConfigError, MalformedInput, StorageError


@pytest.mark.parametrize("claims", ["00", "80", "f6", "4100", "6161"])
def test_ear_cbor_claims_that_are_not_a_map(claims: str) -> None:
    # AttributeError: 'int' object has no attribute 'get' (target ear-claims, input 00)
    with pytest.raises(MalformedInput, match="an EAR's claims are a CBOR map"):
        AttestationResult.from_cbor_claims(decode_cbor(bytes.fromhex(claims)))  # type: ignore[arg-type]


@pytest.mark.parametrize("claims", [0, [], "text", None])
def test_ear_json_claims_that_are_not_an_object(claims: object) -> None:
    with pytest.raises(MalformedInput, match="an EAR's claims are a JSON object"):
        AttestationResult.from_json_claims(claims)  # type: ignore[arg-type]


def test_a_statement_whose_ecdsa_s_is_not_below_the_order() -> None:
    # OverflowError in ecdsa_low_s (target transparent-statement, make fuzz campaign): an s at
    # or above n is left alone (it never verifies) instead of being "normalised" to n - s < 0.
    from ironroot.crypto import Algorithm, ecdsa_low_s

    signature = b"\x01" * 32 + b"\xff" * 32
    assert ecdsa_low_s(Algorithm.ES256, signature) == signature


def test_a_release_policy_comparing_with_a_huge_integer() -> None:
    # OverflowError: int too large to convert to float (target release-policy, make fuzz).
    from ironroot.errors import InvalidReleasePolicy
    from ironroot.keyrelease import parse_release_policy

    text = (
        '{"version": "1.0.0", "anyOf": [{"authority": "zz", "allOf": '
        '[{"claim": "zz", "equals": 1' + "0" * 400 + "}]}]}"
    )
    with pytest.raises(InvalidReleasePolicy, match=r"equals takes a string, number"):
        parse_release_policy(text)


# --- the monitor's state file (target monitor-state) ------------------------------------------


def _changed(path: Path, *changes: tuple[str, tuple[object, ...]]) -> Path:
    """``path``, a state file, with ``changes`` (SQL and its parameters) made behind the back
    of the store that wrote it."""
    db = sqlite3.connect(path)
    for sql, args in changes:
        db.execute(sql, args)
    db.commit()
    db.close()
    return path


def _monitor_file(path: Path, *changes: str) -> Path:
    """A monitor state file that verified a log of 3 entries (pinned), then ``changes``
    made to it behind the monitor's back (SQL)."""
    from ironroot.crypto import Algorithm, PrivateKey
    from ironroot.log import Checkpoint, NoteSigner, sign_checkpoint
    from ironroot.merkle import CompactRange, leaf_hash
    from ironroot.monitor import LogState, MonitorStore

    compact = CompactRange()
    for entry in (b"a", b"b", b"c"):
        compact.append(leaf_hash(entry))
    store = MonitorStore(path)
    signer = NoteSigner("log.example/m", PrivateKey.generate(Algorithm.ED25519))
    note = sign_checkpoint(Checkpoint("log.example/m", 3, compact.root()), [signer])
    store.advance(
        LogState("log.example/m", 3, compact.root(), note, compact.hashes, 1), expected=None
    )
    store.set_pin("https://log.example/", "log.example/m", ("log.example/m+1234abcd+AQ",))
    store.close()
    return _changed(path, *((change, ()) for change in changes))


def test_a_monitor_file_whose_schema_is_not_utf8(tmp_path: Path) -> None:
    # UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff (target monitor-state, input
    # 648 of the first campaign: a table's name in the file's schema damaged; SQLite's
    # "malformed database schema (sqlite_seq\xff\xffnce)" could not be decoded by Python).
    from ironroot.errors import StorageError
    from ironroot.monitor import MonitorStore

    path = _monitor_file(
        tmp_path / "m.sqlite3",
        "PRAGMA writable_schema=ON",
        "UPDATE sqlite_master SET name = CAST(X'6c6f6773ff' AS TEXT) WHERE name = 'logs'",
    )
    with pytest.raises(StorageError, match="is not a monitor database: its schema is not UTF-8"):
        MonitorStore(path, create=False)


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE logs SET size = -5",  # MalformedInput from the consistency proof, before
        "UPDATE logs SET size = 2",  # a compact range of another tree: MalformedInput
        "UPDATE logs SET compact = zeroblob(3200000)",
        "UPDATE logs SET root = X'00'",
    ],
)
def test_a_monitor_log_row_that_could_not_have_been_written(tmp_path: Path, change: str) -> None:
    from ironroot.errors import StorageError
    from ironroot.monitor import MonitorStore

    store = MonitorStore(_monitor_file(tmp_path / "m.sqlite3", change), create=False)
    try:
        with pytest.raises(StorageError, match="holds a malformed log row"):
            store.state("log.example/m")
    finally:
        store.close()


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ("5", "keys are not a list"),  # TypeError: 'int' object is not iterable
        ('"one key"', "keys are not a list"),  # read as a list of 7 one-letter keys
        ("[1, 2]", "keys are not a list"),
        ("[" * 5000, "malformed pin"),  # RecursionError
    ],
)
def test_a_monitor_pin_that_is_not_a_list_of_keys(tmp_path: Path, keys: str, message: str) -> None:
    # Found writing the monitor-state target (the pins table of the same file).
    from ironroot.errors import StorageError
    from ironroot.monitor import MonitorStore

    path = _changed(_monitor_file(tmp_path / "m.sqlite3"), ("UPDATE pins SET keys = ?", (keys,)))
    store = MonitorStore(path, create=False)
    try:
        with pytest.raises(StorageError, match=message):
            store.pin("https://log.example/")
    finally:
        store.close()


@pytest.mark.parametrize(
    "proof",
    [
        b"[" * 100_000,  # RecursionError
        b'{"type": "ironroot-fork-proof/v1", "origin": "o", "first": "\\ud800", "second": "x"}',
    ],
)
def test_a_fork_proof_that_is_not_json_text(proof: bytes) -> None:
    # RecursionError, and UnicodeEncodeError for a lone surrogate that JSON escapes spell
    # (a fork row of the monitor's file, or `ironroot monitor verify-fork FILE`).
    from ironroot.witness import ForkProof

    with pytest.raises(MalformedInput, match="a fork proof"):
        ForkProof.parse(proof)


def test_a_witness_that_answers_json_nested_too_deep() -> None:
    # RecursionError from response.json() in WitnessClient.about (found writing the
    # witness-answer target).
    import httpx

    from ironroot.witness import WitnessClient

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"[" * 100_000)

    client = WitnessClient("https://w.example", transport=httpx.MockTransport(answer))
    with client, pytest.raises(StorageError, match="did not answer JSON") as caught:
        client.about()
    assert caught.value.code == "malformed-answer"  # the witness's failure: exit 1


# --- the audit report (targets audit-bundle, audit-members) ---------------------------------


def test_an_audit_report_shows_the_bundles_text_safely() -> None:
    # A node that seals its own bundle put a lone surrogate and a terminal's escape sequence
    # in node/record.json: `audit verify --html` raised UnicodeEncodeError writing the page,
    # the console the same, and the escape reached the auditor's terminal as it was.
    import io

    from rich.console import Console

    from ironroot.audit import AuditReport, AuditStep, render_console, render_html
    from ironroot.errors import VerificationFailed

    error = VerificationFailed("the registry row says \x1b[2J\ud800", code="not-the-node")
    report = AuditReport(
        "00" * 48,
        (
            AuditStep("node", "The node", "ok", ("registry: admitted (\ud800 \x1b[1A\n✓ forged)",)),
            AuditStep("fuses", "Fuses", "failed", (), error),
        ),
        node="node-\x1b]0;title\x07",
    )
    assert report.steps[0].lines == ("registry: admitted ([U+D800] [U+001B][1A[U+000A]✓ forged)",)
    assert error.detail == str(error) == "the registry row says [U+001B][2J[U+D800]"
    assert report.node == "node-[U+001B]]0;title[U+0007]"
    render_html(report).encode("utf-8")
    terminal = io.StringIO()
    render_console(report, Console(file=terminal, force_terminal=False))
    assert "\x1b" not in terminal.getvalue()
    terminal.getvalue().encode("utf-8")


# --- the witness's state file (target witness-state) ------------------------------------------


def _witness_file(path: Path, *changes: str) -> Path:
    """A witness state file that cosigned a log of 3 entries and kept evidence of a refused
    checkpoint, then ``changes`` made to it behind the witness's back (SQL)."""
    from ironroot.crypto import Algorithm, PrivateKey
    from ironroot.log import Checkpoint, NoteSigner, sign_checkpoint
    from ironroot.merkle import CompactRange, leaf_hash
    from ironroot.witness import SqliteWitnessStore, StoredCheckpoint

    compact = CompactRange()
    for entry in (b"a", b"b", b"c"):
        compact.append(leaf_hash(entry))
    signer = NoteSigner("log.example/w", PrivateKey.generate(Algorithm.ED25519))
    note = sign_checkpoint(Checkpoint("log.example/w", 3, compact.root()), [signer])
    store = SqliteWitnessStore(path)
    store.advance(None, StoredCheckpoint("log.example/w", 3, compact.root(), note, 1))
    store.add_evidence("log.example/w", "inconsistent", "a proof that failed", note, note, b"x", 2)
    store.close()
    return _changed(path, *((change, ()) for change in changes))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("UPDATE checkpoints SET size = -5", "malformed checkpoint row"),
        ("UPDATE checkpoints SET root = X'00'", "malformed checkpoint row"),
        ("UPDATE checkpoints SET note = CAST(note AS TEXT)", "malformed checkpoint row"),
        # A root of the right length that is not the note's: taken for a fork before (the
        # log's next checkpoint at that size was refused with ForkDetected, and kept as
        # "evidence" of a fork the log never made).
        ("UPDATE checkpoints SET root = zeroblob(32)", "not its note's checkpoint"),
        ("UPDATE checkpoints SET size = 4", "not its note's checkpoint"),
        ("UPDATE checkpoints SET note = X'ff00'", "note is not a checkpoint"),
    ],
)
def test_a_witness_checkpoint_row_that_could_not_have_been_written(
    tmp_path: Path, change: str, message: str
) -> None:
    from ironroot.errors import StorageError
    from ironroot.witness import SqliteWitnessStore

    store = SqliteWitnessStore(_witness_file(tmp_path / "w.sqlite3", change))
    try:
        with pytest.raises(StorageError, match=message):
            store.latest("log.example/w")
        with pytest.raises(StorageError, match=message):
            store.all_latest()
    finally:
        store.close()


@pytest.mark.parametrize(
    "change",
    [
        # TypeError: Object of type bytes is not JSON serializable (`witness evidence --json`)
        "UPDATE evidence SET detail = X'00'",
        # AttributeError: 'str' object has no attribute 'hex' (target witness-state)
        "UPDATE evidence SET first = 'text'",
        "UPDATE evidence SET at = 'yesterday'",
    ],
)
def test_a_witness_evidence_row_that_could_not_have_been_written(
    tmp_path: Path, change: str
) -> None:
    from ironroot.errors import StorageError
    from ironroot.witness import SqliteWitnessStore

    store = SqliteWitnessStore(_witness_file(tmp_path / "w.sqlite3", change))
    try:
        with pytest.raises(StorageError, match="holds a malformed evidence row"):
            store.evidence()
    finally:
        store.close()


# --- TOML files nested too deep (target audit-trust, then every TOML loader) -----------------


def _deep_toml(path: Path) -> Path:
    # RecursionError from tomllib (found probing the audit-trust target): an array or inline
    # table nested a few thousand deep, in any TOML file Ironroot reads.
    path.write_text("platform = " + "[" * 5000 + "\n")
    return path


def test_an_audit_trust_file_nested_too_deep(tmp_path: Path) -> None:
    from ironroot.audit import AuditTrust
    from ironroot.errors import ConfigError

    with pytest.raises(ConfigError, match="is not valid TOML"):
        AuditTrust.load_toml(_deep_toml(tmp_path / "audit-trust.toml"))


def test_a_node_class_file_nested_too_deep(tmp_path: Path) -> None:
    from ironroot.errors import ConfigError
    from ironroot.fleet import NodeClass

    with pytest.raises(ConfigError, match="recursion"):
        NodeClass.load_toml(_deep_toml(tmp_path / "class.toml"))


def test_a_desired_toml_nested_too_deep(tmp_path: Path) -> None:
    from ironroot.errors import ConfigError
    from ironroot.fleet import DesiredState

    with pytest.raises(ConfigError, match="recursion"):
        DesiredState.load_toml(_deep_toml(tmp_path / "desired.toml"), None, fleet="f")  # type: ignore[arg-type]


def test_a_witness_config_nested_too_deep(tmp_path: Path) -> None:
    from ironroot.errors import ConfigError
    from ironroot.witness import load_witness_config

    _deep_toml(tmp_path / "witness.toml")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_witness_config(tmp_path)


def _huge_toml(path: Path) -> Path:
    # ValueError from tomllib (found fuzzing the appraisal policy): it turns an integer's text
    # into an int with int(), which refuses more than 4,300 digits, and not as TOMLDecodeError.
    path.write_text("platform = 1" + "0" * 4400 + "\n")
    return path


def _a_config_error_of_digits(caught: pytest.ExceptionInfo[ConfigError]) -> None:
    assert type(caught.value) is ConfigError
    assert "4300 digits" in caught.value.detail


def test_an_audit_trust_file_with_a_huge_integer(tmp_path: Path) -> None:
    from ironroot.audit import AuditTrust

    with pytest.raises(ConfigError) as caught:
        AuditTrust.load_toml(_huge_toml(tmp_path / "audit-trust.toml"))
    _a_config_error_of_digits(caught)


def test_a_node_class_file_with_a_huge_integer(tmp_path: Path) -> None:
    from ironroot.fleet import NodeClass

    with pytest.raises(ConfigError) as caught:
        NodeClass.load_toml(_huge_toml(tmp_path / "class.toml"))
    _a_config_error_of_digits(caught)


def test_a_desired_toml_with_a_huge_integer(tmp_path: Path) -> None:
    from ironroot.fleet import DesiredState

    with pytest.raises(ConfigError) as caught:
        DesiredState.load_toml(_huge_toml(tmp_path / "desired.toml"), None, fleet="f")  # type: ignore[arg-type]
    _a_config_error_of_digits(caught)


def test_a_log_layout_with_a_huge_integer(tmp_path: Path) -> None:
    from ironroot.log import layout

    _huge_toml(tmp_path / "ironroot.toml")
    with pytest.raises(ConfigError) as caught:
        layout.read_log_origin(tmp_path)
    _a_config_error_of_digits(caught)


# --- SPDM -------------------------------------------------------------------------------------


@pytest.mark.parametrize("suite", [0x0001, 0x0200, 0x0400])  # RSASSA-2048, SM2, Ed25519
def test_spdm_evidence_that_negotiated_a_suite_other_than_ecdsa(suite: int) -> None:
    # KeyError: <BaseAsymAlgo.RSASSA_2048: 1> from SIGNING_SUITES in negotiated_connection
    # (found reading it while writing the spdm-responses target): the offline verifier takes
    # the offer from the recorded NEGOTIATE_ALGORITHMS, which may offer and select a suite
    # Ironroot's requester never offers.
    import dataclasses

    from _wire_seeds import SPDM_NONCE, SPDM_NOW, SPDM_SESSIONS, spdm_device, spdm_sessions

    from ironroot.errors import SpdmProtocolError
    from ironroot.spdm import Algorithms, NegotiateAlgorithms, SpdmEvidence, verify_spdm_evidence

    evidence = [i for i, s in enumerate(SPDM_SESSIONS) if s.run == "evidence"]
    index = next(i for i in evidence if SPDM_SESSIONS[i].alignment == 1)  # messages unpadded
    log = spdm_sessions()[index]
    record = SpdmEvidence(
        vca=tuple(m for exchange in log[:3] for m in exchange),  # the VCA's six messages
        certificate_chain=b"",
        request=log[-1][0],
        response=log[-1][1],
    )
    offer = NegotiateAlgorithms.decode(record.vca[4])
    selection = Algorithms.decode(record.vca[5])
    vca = (
        *record.vca[:4],
        dataclasses.replace(offer, base_asym_algo=offer.base_asym_algo | suite).encode(),
        dataclasses.replace(selection, base_asym_sel=suite).encode(),
    )
    with pytest.raises(SpdmProtocolError, match=f"BaseAsymAlgo {suite:#x}: not ECDSA"):
        verify_spdm_evidence(
            dataclasses.replace(record, vca=vca),
            nonce=SPDM_NONCE,
            root_certificate=spdm_device(SPDM_SESSIONS[index].algorithm).root,
            now=SPDM_NOW,
        )


# --- Redfish request bodies (target redfish-body) ---------------------------------------------


def test_a_redfish_push_cut_before_its_closing_boundary() -> None:
    # ResourceWarning: Unclosed file <tempfile.SpooledTemporaryFile> (target redfish-body,
    # input 0 of mutate_main.py, and the suite's mutated inputs: a push cut inside its
    # UpdateFile part). Starlette's form parser took the body without its unfinished last
    # part and left that part's spooled file open; a push cut inside a last statement part
    # went ahead without it (202).
    import json

    from _targets import redfish_answers
    from _wire_seeds import redfish_seeds

    push = redfish_seeds().multipart_bodies[0]
    cut = push[: push.index(b'name="UpdateFile"') + 200]
    [(status, body)] = redfish_answers(cut)
    error = json.loads(body)["error"]
    assert (status, error["code"]) == (400, "Base.1.22.MissingOrMalformedPart")
    assert "closing boundary" in error["message"]
