"""The transparency service publishes only witnessed checkpoints; clients require k of n.

Real HTTP throughout: witnesses served by WitnessThread, the service by ServiceThread."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from witness_testkit import (
    TS_ORIGIN,
    SqliteWitnessStore,
    Witnesses,
    service_dir,
    statement,
)

import http_calls
from ironroot.cose import (
    InclusionProof,
    TransparentStatement,
    build_receipt,
    make_transparent,
    receipt_protected_header,
    receipt_to_be_signed,
)
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import (
    BadSignature,
    ConfigError,
    InconsistentCheckpoint,
    InsufficientCosignatures,
    VerificationFailed,
)
from ironroot.log import Note, NoteSignature, NoteVerifier
from ironroot.merkle import leaf_hash
from ironroot.transparency import (
    RemoteProblem,
    ServiceThread,
    TransparencyClient,
    TransparencyService,
    load_config,
    verify_witnessed_statement,
)
from ironroot.witness import (
    Cosigner,
    ForkProof,
    WitnessPolicy,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def log_key() -> PrivateKey:
    return PrivateKey.generate(Algorithm.ED25519)


@pytest.fixture
def log_vkey(log_key: PrivateKey) -> str:
    return NoteVerifier(TS_ORIGIN, log_key.public_key).vkey


@pytest.fixture
def vendor() -> PrivateKey:
    return PrivateKey.generate(Algorithm.ES256)


@pytest.fixture
def three(log_vkey: str) -> Iterator[Witnesses]:
    witnesses = Witnesses(3, log_vkey)
    yield witnesses
    witnesses.close()


def _serve(data: Path) -> tuple[TransparencyService, ServiceThread]:
    service = TransparencyService.open(data)
    service.start()
    thread = ServiceThread(service)
    thread.__enter__()
    return service, thread


def test_a_registration_is_witnessed_by_two_of_three(
    tmp_path: Path, vendor: PrivateKey, log_key: PrivateKey, three: Witnesses
) -> None:
    data = service_dir(tmp_path / "ts", vendor, three.pairs(), 2, checkpoint_key=log_key)
    service, thread = _serve(data)
    try:
        with TransparencyClient(thread.url, witnesses=three.policy(2)) as client:
            first = client.register(statement(vendor, "pkg:fw/a"))
            second = client.register(statement(vendor, "pkg:fw/b"))
            published = client.checkpoint()
            config = client.configuration()
        assert first.witnessed is not None
        assert second.witnessed is not None
        assert len(second.witnessed.checkpoint.cosignatures) >= 2
        assert second.witnessed.checkpoint.checkpoint.size >= 2
        names = [s.name for s in Note.parse(published).signatures]
        assert names[0] == TS_ORIGIN
        assert len(names) >= 3  # the log's signature and at least two cosignatures
        assert config["witness_quorum"] == 2
        assert [w["key"] for w in config["witnesses"]] == three.vkeys
        # the witnessed checkpoint survives a restart (served at once from the file)
    finally:
        thread.__exit__(None, None, None)
        service.close()
    service, thread = _serve(data)
    try:
        assert service.witnessing is not None
        assert service.witnessing.published_size >= 2
        assert http_calls.get(f"{thread.url}/checkpoint", timeout=10).status_code == 200
        metrics = http_calls.get(f"{thread.url}/metrics", timeout=10).text
        assert "ironroot_log_witnessed_size" in metrics
    finally:
        thread.__exit__(None, None, None)
        service.close()


def test_no_checkpoint_is_published_before_the_quorum_cosigned(
    tmp_path: Path, vendor: PrivateKey, log_vkey: str
) -> None:
    """Witnesses that cannot be reached: the service runs, registers, and serves 503 on
    /checkpoint rather than an unwitnessed checkpoint."""
    other = PrivateKey.generate(Algorithm.ED25519)
    vkey = Cosigner("witness.example/down", other).verifier().vkey
    data = service_dir(tmp_path / "ts", vendor, [("http://127.0.0.1:9", vkey)], 1)
    service, thread = _serve(data)
    try:
        response = http_calls.get(f"{thread.url}/checkpoint", timeout=10)
        assert response.status_code == 503
        with TransparencyClient(thread.url) as client:
            registration = client.register(statement(vendor, "pkg:fw/a"))
            assert registration.witnessed is None
            with pytest.raises(Exception, match="no witnessed checkpoint covers the receipt"):
                client.witness(
                    registration.transparent_statement,
                    policy=WitnessPolicy.from_vkeys([vkey]),
                    wait=0.3,
                )
    finally:
        thread.__exit__(None, None, None)
        service.close()


def test_a_client_that_requires_more_than_the_service_gets_refuses(
    tmp_path: Path, vendor: PrivateKey, log_key: PrivateKey, three: Witnesses
) -> None:
    """The service publishes with 1 of 3; a client requiring 3 of 3 refuses (exactly
    InsufficientCosignatures) until it has them, and a client trusting none of those witnesses
    refuses too."""
    only_first = three.pairs()[:1]
    data = service_dir(tmp_path / "ts", vendor, only_first, 1, checkpoint_key=log_key)
    service, thread = _serve(data)
    try:
        with TransparencyClient(thread.url, witnesses=three.policy(1)) as client:
            registration = client.register(statement(vendor, "pkg:fw/a"))
            ts = registration.transparent_statement
            with pytest.raises(InsufficientCosignatures) as info:
                client.witness(ts, policy=three.policy(3))
            assert info.value.code == "insufficient-cosignatures"
            strangers = WitnessPolicy.from_vkeys(
                [Cosigner("w.example/x", PrivateKey.generate(Algorithm.ED25519)).verifier().vkey]
            )
            with pytest.raises(InsufficientCosignatures):
                client.witness(ts, policy=strangers)
    finally:
        thread.__exit__(None, None, None)
        service.close()


def test_offline_checks_of_a_witnessed_statement(
    tmp_path: Path, vendor: PrivateKey, log_key: PrivateKey, three: Witnesses
) -> None:
    data = service_dir(tmp_path / "ts", vendor, three.pairs(), 3, checkpoint_key=log_key)
    service, thread = _serve(data)
    try:
        with TransparencyClient(thread.url, witnesses=three.policy(3)) as client:
            early = client.register(statement(vendor, "pkg:fw/early"))
            client.register(statement(vendor, "pkg:fw/later"))
            note = client.checkpoint()
            keys = dict(client.service_keys())
        assert early.witnessed is not None
        size = early.witnessed.tree_size
        current = service.log.tree_size
        proof = service.log.consistency_proof(size, current)
        verifiers = service.log.note_verifiers
        now = int(time.time())
        kwargs = {
            "service_keys": keys,
            "log_verifiers": verifiers,
            "origin": TS_ORIGIN,
            "now": now,
        }
        ok = verify_witnessed_statement(
            early.transparent_statement, note, proof, policy=three.policy(3), **kwargs
        )
        assert ok.checkpoint.checkpoint.size == current
        # a client whose clock is a day behind the log's: the receipt is dated in its future
        # (as the witnesses' cosignatures are), and is refused before they are counted
        with pytest.raises(VerificationFailed) as future:
            verify_witnessed_statement(
                early.transparent_statement,
                note,
                proof,
                policy=three.policy(1),
                **{**kwargs, "now": now - 24 * 3600},
            )
        assert type(future.value) is VerificationFailed
        assert future.value.code == "receipt-from-the-future"
        # a wrong proof
        bad = [bytes(32)] * len(proof)
        with pytest.raises(InconsistentCheckpoint):
            verify_witnessed_statement(
                early.transparent_statement, note, bad, policy=three.policy(3), **kwargs
            )
        # a cosignature line that names a trusted witness but does not verify
        parsed = Note.parse(note)
        line = parsed.signatures[1]
        broken = bytearray(line.signature)
        broken[-1] ^= 1
        broken_line = NoteSignature(line.name, line.key_id, bytes(broken))
        tampered = Note(
            parsed.body, (parsed.signatures[0], broken_line, *parsed.signatures[2:])
        ).encode()
        with pytest.raises(BadSignature):
            verify_witnessed_statement(
                early.transparent_statement, tampered, proof, policy=three.policy(3), **kwargs
            )
        # the cosignature lines stripped: fewer than the quorum
        stripped = Note(parsed.body, parsed.signatures[:1]).encode()
        with pytest.raises(InsufficientCosignatures):
            verify_witnessed_statement(
                early.transparent_statement, stripped, proof, policy=three.policy(1), **kwargs
            )
    finally:
        thread.__exit__(None, None, None)
        service.close()


def test_statement_witness_writes_what_a_relying_party_checks_offline(
    tmp_path: Path,
    vendor: PrivateKey,
    log_key: PrivateKey,
    three: Witnesses,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from ironroot.cli import main
    from ironroot.transparency import decode_witnessed_statement, verify_witnessed

    data = service_dir(tmp_path / "ts", vendor, three.pairs(), 2, checkpoint_key=log_key)
    service, thread = _serve(data)
    try:
        with TransparencyClient(thread.url) as client:
            early = client.register(statement(vendor, "pkg:fw/early"))
            client.register(statement(vendor, "pkg:fw/later"))
            keys = dict(client.service_keys())
        ts = tmp_path / "early.ts"
        ts.write_bytes(early.transparent_statement)
        base = ["statement", "witness", str(ts), "--url", thread.url]
        for vkey in three.vkeys:
            base += ["--witness-key", vkey]
        out = tmp_path / "early.witnessed"
        args = [*base, "--witness-quorum", "2", "--log-key", service.log.note_verifiers[0].vkey]
        assert main([*args, "--out", str(out), "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["origin"] == TS_ORIGIN
        assert (doc["tree_size"], doc["checkpoint_size"]) == (1, service.log.tree_size)
        assert len(doc["cosigned_by"]) >= 2
        witnessed = out.read_bytes()
        statement_bytes, _note, proof = decode_witnessed_statement(witnessed)
        assert statement_bytes == early.transparent_statement
        assert len(proof) == doc["proof_hashes"] >= 1
        checked = verify_witnessed(
            witnessed,
            service_keys=keys,
            log_verifiers=service.log.note_verifiers,
            policy=three.policy(2),
            now=int(time.time()),
            origin=TS_ORIGIN,
        )
        assert checked.encode() == witnessed
        # the default output name, beside the statement; it is not replaced
        assert main([*base, "--witness-quorum", "2"]) == 0
        assert "cosigned by" in capsys.readouterr().out
        assert (tmp_path / "early.ts.witnessed").is_file()
        # a witness the checkpoint is not cosigned by: refused, nothing written
        stranger = PrivateKey.generate(Algorithm.ED25519)
        alone = Cosigner("witness.example/stranger", stranger).verifier().vkey
        refused = tmp_path / "refused.witnessed"
        code = main(
            [
                "statement", "witness", str(ts), "--url", thread.url,
                "--witness-key", alone, "--out", str(refused),
            ]
        )  # fmt: skip
        assert code == 1
        assert "cosigned by 0 of the trusted witnesses" in capsys.readouterr().err
        assert not refused.exists()
        # a log key that is not the service's: the checkpoint is refused
        other = NoteVerifier(TS_ORIGIN, PrivateKey.generate(Algorithm.ED25519).public_key)
        code = main([*base, "--log-key", other.vkey, "--out", str(refused)])
        assert code == 1
        assert not refused.exists()
    finally:
        thread.__exit__(None, None, None)
        service.close()


def test_a_forked_service_is_refused_by_its_witness(
    tmp_path: Path, vendor: PrivateKey, log_key: PrivateKey, log_vkey: str
) -> None:
    """Two services with one origin and one checkpoint key register different statements:
    the witness cosigns the first; the second's checkpoints are refused as a fork (its
    /checkpoint stays 503) and the witness keeps the proof. The second has two witnesses and
    needs both (quorum 2): only one of them saw the first's tree, fewer than the quorum, so
    it starts (a warning) and signs the fork that the witness then proves."""
    store = SqliteWitnessStore(tmp_path / "w.sqlite3")
    witnesses = Witnesses(2, log_vkey, store)
    try:
        pairs = witnesses.pairs()
        honest_dir = service_dir(tmp_path / "a", vendor, pairs[:1], 1, checkpoint_key=log_key)
        forked_dir = service_dir(tmp_path / "b", vendor, pairs, 2, checkpoint_key=log_key)
        honest, honest_thread = _serve(honest_dir)
        try:
            with TransparencyClient(honest_thread.url, witnesses=witnesses.policy(1)) as client:
                for sub in ("a", "b", "c"):
                    client.register(statement(vendor, f"pkg:fw/{sub}"))
        finally:
            honest_thread.__exit__(None, None, None)
            honest.close()
        forked, forked_thread = _serve(forked_dir)
        try:
            assert forked.witnessing is not None
            assert forked.witnessing.witnesses_ahead == 1
            assert forked.log.stalled is None
            with TransparencyClient(forked_thread.url) as client:
                for sub in ("x", "y", "z", "w", "v"):
                    client.register(statement(vendor, f"pkg:fw/{sub}"))
            assert forked.witnessing.witness_once() is False
            assert http_calls.get(f"{forked_thread.url}/checkpoint", timeout=10).status_code == 503
        finally:
            forked_thread.__exit__(None, None, None)
            forked.close()
        forks = [e for e in store.evidence() if e.kind == "fork"]
        assert forks, store.evidence()
        first, second = ForkProof.parse(forks[-1].data).verify([NoteVerifier.from_vkey(log_vkey)])
        assert (first.size, second.size) == (3, 5)
    finally:
        witnesses.close()
        store.close()


def test_a_second_service_of_a_witnessed_log_is_refused_at_start(
    tmp_path: Path, vendor: PrivateKey, log_key: PrivateKey, log_vkey: str
) -> None:
    """The same two services, the second with the one witness (quorum 1) that cosigned the
    first's tree: at start the witness says it cosigned size 3 and the second service's tree
    is empty, so it writes nothing (503 ``store-rolled-back``) and signs no fork."""
    store = SqliteWitnessStore(tmp_path / "w.sqlite3")
    witnesses = Witnesses(1, log_vkey, store)
    try:
        pair = witnesses.pairs()
        honest_dir = service_dir(tmp_path / "a", vendor, pair, 1, checkpoint_key=log_key)
        forked_dir = service_dir(tmp_path / "b", vendor, pair, 1, checkpoint_key=log_key)
        honest, honest_thread = _serve(honest_dir)
        try:
            with TransparencyClient(honest_thread.url, witnesses=witnesses.policy(1)) as client:
                for sub in ("a", "b", "c"):
                    client.register(statement(vendor, f"pkg:fw/{sub}"))
        finally:
            honest_thread.__exit__(None, None, None)
            honest.close()
        forked, forked_thread = _serve(forked_dir)
        try:
            stalled = forked.log.stalled
            assert stalled is not None
            assert stalled.code == "store-rolled-back"
            assert stalled.detail.startswith(
                f"1 of the 1 witnesses (the quorum is 1) have cosigned a tree of {TS_ORIGIN} "
                f"that the local one (size 0) does not extend: {pair[0][0]} (size 3). "
            )
            with (
                TransparencyClient(forked_thread.url) as client,
                pytest.raises(RemoteProblem) as info,
            ):
                client.register(statement(vendor, "pkg:fw/x"))
            assert info.value.status == 503
            assert str(info.value) == f"503 Service Unavailable: {stalled.detail}"
            assert forked.log.tree_size == 0
        finally:
            forked_thread.__exit__(None, None, None)
            forked.close()
        assert not [e for e in store.evidence() if e.kind == "fork"]
        latest = witnesses.witnesses[0].latest(TS_ORIGIN)
        assert latest is not None
        assert latest.size == 3
    finally:
        witnesses.close()
        store.close()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("witness_quorum = 2\n[[log.witnesses]]\nurl = 'http://w'\nkey = '{key}'\n", "between 1"),
        ("witness_quorum = 1\n", "needs"),
        ("[[log.witnesses]]\nurl = 'ftp://w'\nkey = '{key}'\n", "http"),
        ("[[log.witnesses]]\nurl = 'http://w'\nkey = 'not-a-vkey'\n", "key"),
        ("[[log.witnesses]]\nurl = 'http://w'\n", "exactly"),
        ("witness_timeout = 0\n", "witness_timeout"),
        ("witness_ca = 'missing.pem'\n", "does not exist"),
    ],
)
def test_bad_witness_configuration_is_refused(
    tmp_path: Path, vendor: PrivateKey, extra: str, message: str
) -> None:
    data = service_dir(tmp_path / "ts", vendor)
    key = Cosigner("w.example/a", PrivateKey.generate(Algorithm.ED25519)).verifier().vkey
    config = data / "ironroot.toml"
    text = config.read_text().replace("witness_timeout = 5.0\n", "")
    config.write_text(text + extra.format(key=key))
    with pytest.raises(ConfigError, match=message):
        load_config(data)


def _receipt_elsewhere(transparent_statement: bytes) -> bytes:
    """A receipt for the same statement by another service: a one-entry tree it signed."""
    parsed = TransparentStatement.parse(transparent_statement)
    key = PrivateKey.generate(Algorithm.ES256)
    protected = receipt_protected_header(Algorithm.ES256, key.kid, "elsewhere.example", 1)
    root = leaf_hash(parsed.statement.log_entry())
    signature = key.sign(receipt_to_be_signed(protected, root))
    return build_receipt(protected, signature, InclusionProof(1, 0, ()))


def test_statement_witness_takes_the_services_receipt_among_others(
    tmp_path: Path,
    vendor: PrivateKey,
    log_key: PrivateKey,
    three: Witnesses,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Logged elsewhere first: the tree to wait for and prove from is the one this service's
    # receipt names, not the first receipt's.
    from ironroot.cli import main
    from ironroot.transparency import verify_witnessed

    data = service_dir(tmp_path / "ts", vendor, three.pairs(), 2, checkpoint_key=log_key)
    service, thread = _serve(data)
    try:
        with TransparencyClient(thread.url) as client:
            client.register(statement(vendor, "pkg:fw/first"))
            client.register(statement(vendor, "pkg:fw/second"))
            bare = statement(vendor, "pkg:fw/third")
            logged = client.register(bare)
            client.register(statement(vendor, "pkg:fw/fourth"))
            keys = dict(client.service_keys())
        ours = TransparentStatement.parse(logged.transparent_statement)
        both = make_transparent(
            bare, [_receipt_elsewhere(logged.transparent_statement), *ours.receipts]
        )
        ts = tmp_path / "both.ts"
        ts.write_bytes(both)
        out = tmp_path / "both.witnessed"
        args = ["statement", "witness", str(ts), "--url", thread.url, "--out", str(out)]
        for vkey in three.vkeys:
            args += ["--witness-key", vkey]
        assert main([*args, "--witness-quorum", "2", "--json"]) == 0, capsys.readouterr().err
        doc = json.loads(capsys.readouterr().out)
        assert doc["tree_size"] == 3 <= doc["checkpoint_size"]
        checked = verify_witnessed(
            out.read_bytes(),
            service_keys=keys,
            log_verifiers=service.log.note_verifiers,
            policy=three.policy(2),
            now=int(time.time()),
            origin=TS_ORIGIN,
        )
        assert checked.tree_size == 3
    finally:
        thread.__exit__(None, None, None)
        service.close()


def test_the_published_configuration_names_no_witness_password(
    tmp_path: Path, vendor: PrivateKey, log_key: PrivateKey, three: Witnesses
) -> None:
    # A witness's URL in the service's configuration may carry user:password@ (a proxy's
    # basic auth): the service's public configuration names it without, as messages do.
    pairs = [(url.replace("http://", "http://op:s3cr3t-pw@"), vkey) for url, vkey in three.pairs()]
    data = service_dir(tmp_path / "ts", vendor, pairs, 2, checkpoint_key=log_key)
    service, thread = _serve(data)
    try:
        with TransparencyClient(thread.url) as client:
            config = client.configuration()
    finally:
        thread.__exit__(None, None, None)
        service.close()
    assert [w["url"] for w in config["witnesses"]] == [url for url, _ in three.pairs()]
