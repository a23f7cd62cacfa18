"""Stored receipt signatures are checked: offline by `ironroot log verify DIR`, with public
material only, and by the service before it serves (or caches) a receipt made from them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import cbor2
import httpx
import pytest
from _tx_helpers import VENDOR_ISS, write_config

from ironroot.cli import main
from ironroot.cose import create_statement, decode_key_set, verify_receipt
from ironroot.crypto import Algorithm, PrivateKey, PublicKey
from ironroot.errors import ConfigError, StorageError
from ironroot.log import layout, verify_log_dir
from ironroot.transparency import (
    ReceiptBatchVerifier,
    ServiceThread,
    TransparencyService,
    load_receipt_keys,
)
from ironroot.transparency._config import receipt_key_path
from ironroot_pg import TestStore, copy_data_dir, raw_sql

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _register(service: TransparencyService, vendor: PrivateKey, n: int) -> bytes:
    statement = create_statement(vendor, b'{"n": %d}' % n, iss=VENDOR_ISS, sub=f"pkg:x/{n}")
    ticket = service.submit(statement)
    ticket.integrated.result(10)
    return ticket.entry_id


def _build(
    data: Path,
    batches: int = 3,
    algorithms: tuple[str, ...] = ("ES384",),
    store: TestStore | None = None,
) -> Path:
    """A data directory whose log holds ``batches`` batches of one entry each."""
    vendor = PrivateKey.generate(Algorithm.ES256)
    write_config(data, issuers=[(VENDOR_ISS, vendor)], receipt_algorithms=algorithms, store=store)
    with TransparencyService.open(data, clock=lambda: NOW) as service:
        for n in range(batches):
            _register(service, vendor, n)
    return data


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, module_store: TestStore) -> Path:
    return _build(tmp_path_factory.mktemp("rx") / "data", store=module_store)


@pytest.fixture
def data(built: Path, tmp_path: Path) -> Iterator[Path]:
    """A copy of the built directory to damage: public material and the log, plus the private
    keys only so that the service can be reopened over it."""
    with copy_data_dir(built, tmp_path / "data") as target:
        yield target


def _batch_row(data: Path, size: int, label: str = "receipt:ES384") -> bytes:
    rows = raw_sql(data, "SELECT value FROM batch_data WHERE size = ? AND name = ?", size, label)
    return bytes(rows[0][0])


def _set_batch_row(data: Path, size: int, value: bytes, label: str = "receipt:ES384") -> None:
    raw_sql(data, "UPDATE batch_data SET value = ? WHERE size = ? AND name = ?", value, size, label)


def _flip_signature(data: Path, size: int) -> None:
    protected, signature = cbor2.loads(_batch_row(data, size))
    flipped = signature[:10] + bytes([signature[10] ^ 1]) + signature[11:]
    _set_batch_row(data, size, cbor2.dumps([protected, flipped]))


def _verifier(data: Path) -> ReceiptBatchVerifier:
    return ReceiptBatchVerifier(load_receipt_keys([layout.receipt_keys_path(data)]), source="t")


def test_every_batch_signature_is_verified_offline(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = verify_log_dir(data, batch_verifier=_verifier(data))
    assert (report.size, report.batch_signatures) == (3, 3)
    assert main(["log", "verify", str(data), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["batch_signatures"] == 3


def test_the_published_key_set_holds_public_keys_only(data: Path) -> None:
    keys = decode_key_set(layout.receipt_keys_path(data).read_bytes())
    private = PrivateKey.from_pem(receipt_key_path(data, Algorithm.ES384).read_bytes())
    assert keys == {private.kid: private.public_key}
    assert b"PRIVATE" not in layout.receipt_keys_path(data).read_bytes()


def test_one_flipped_signature_byte_fails_log_verify(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _flip_signature(data, 2)
    with pytest.raises(StorageError, match="the batch at size 2 does not verify") as caught:
        verify_log_dir(data, batch_verifier=_verifier(data))
    assert type(caught.value.__cause__).__name__ == "BadSignature"
    assert main(["log", "verify", str(data), "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert (result["ok"], result["error"]["code"]) == (False, "storage")


def test_a_swapped_protected_header_fails_log_verify(data: Path) -> None:
    # Batch 1's header and signature stored for batch 3: a valid signature, another root.
    _set_batch_row(data, 3, _batch_row(data, 1))
    with pytest.raises(StorageError, match="the batch at size 3 does not verify"):
        verify_log_dir(data, batch_verifier=_verifier(data))


def test_a_damaged_stored_pair_fails_log_verify(data: Path) -> None:
    _set_batch_row(data, 1, cbor2.dumps([b"x"]))
    with pytest.raises(StorageError, match=r"not \[protected header, signature\]"):
        verify_log_dir(data, batch_verifier=_verifier(data))


def test_a_deleted_batch_signature_fails_log_verify(data: Path) -> None:
    raw_sql(data, "DELETE FROM batch_data WHERE size = 2")
    with pytest.raises(StorageError, match="no receipt signature is stored for tree size 2"):
        verify_log_dir(data, batch_verifier=_verifier(data))


def test_receipts_without_keys_cannot_pass(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    layout.receipt_keys_path(data).unlink()
    assert main(["log", "verify", str(data), "--json"]) == 2
    result = json.loads(capsys.readouterr().out)
    assert result["error"]["code"] == "config"
    assert "no receipt public keys" in result["error"]["message"]


def test_keys_of_another_service_fail(data: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.pub.pem"
    other.write_bytes(PrivateKey.generate(Algorithm.ES384).public_key.to_pem())
    with pytest.raises(StorageError) as caught:
        verify_log_dir(
            data, batch_verifier=ReceiptBatchVerifier(load_receipt_keys([other]), source="t")
        )
    assert caught.value.__cause__ is not None
    assert type(caught.value.__cause__).__name__ == "UnknownIssuer"
    assert main(["log", "verify", str(data), "--receipt-keys", str(other)]) == 1


def test_given_receipt_keys_replace_the_directory_s(data: Path) -> None:
    given = data / "copy-of-keys.cbor"
    given.write_bytes(layout.receipt_keys_path(data).read_bytes())
    layout.receipt_keys_path(data).unlink()
    assert main(["log", "verify", str(data), "--receipt-keys", str(given)]) == 0


@pytest.mark.parametrize(
    "content", [b"", b"\x81\x01", b"not a key", b"\x9f" + b"\x00" * 10], ids=str
)
def test_damaged_receipt_key_files_are_config_errors(data: Path, content: bytes) -> None:
    layout.receipt_keys_path(data).write_bytes(content)
    with pytest.raises(ConfigError, match=r"receipt-keys\.cbor"):
        load_receipt_keys([layout.receipt_keys_path(data)])
    assert main(["log", "verify", str(data)]) == 2


def test_a_missing_receipt_key_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read receipt keys"):
        load_receipt_keys([tmp_path / "absent.cbor"])


# --- the service never serves what does not verify -----------------------------------------


@pytest.fixture
def reopened(data: Path) -> Iterator[TransparencyService]:
    _flip_signature(data, 2)
    with TransparencyService.open(data, clock=lambda: NOW) as service:
        yield service


def test_the_service_refuses_a_receipt_whose_stored_signature_fails(
    reopened: TransparencyService, caplog: pytest.LogCaptureFixture
) -> None:
    entry_id = reopened.log.entry_id_at(1)  # the entry of the batch ending at size 2
    for _ in range(2):  # never cached: the second request is refused too
        with pytest.raises(StorageError, match=r"receipt:ES384 for tree size 2 does not verify"):
            reopened.receipts(entry_id)
    assert "does not verify" in caplog.text
    with pytest.raises(StorageError):
        reopened.transparent_statement(entry_id)


def test_the_service_serves_receipts_of_intact_batches(reopened: TransparencyService) -> None:
    keys = {k.kid: k for k in reopened.receipt_keys}
    for index in (0, 2):
        entry_id = reopened.log.entry_id_at(index)
        receipts = reopened.receipts(entry_id)
        assert receipts is not None
        verify_receipt(receipts[0], reopened.log.entry(index), keys)


def test_over_http_a_failing_receipt_is_a_problem_not_a_receipt(data: Path) -> None:
    _flip_signature(data, 2)
    with TransparencyService.open(data, clock=lambda: NOW) as service:
        entry_id = service.log.entry_id_at(1)
        with ServiceThread(service) as server, httpx.Client(base_url=server.url) as client:
            response = client.get(f"/entries/{entry_id.hex()}")
            assert response.status_code == 503
            assert response.headers["content-type"] == "application/concise-problem-details+cbor"
            assert "immutable" not in response.headers.get("cache-control", "")
            good = client.get(f"/entries/{service.log.entry_id_at(0).hex()}")
            assert good.status_code == 200
            assert "immutable" in good.headers["cache-control"]


def test_rotated_receipt_keys_keep_old_batches_checkable(data: Path) -> None:
    old = decode_key_set(layout.receipt_keys_path(data).read_bytes())
    receipt_key_path(data, Algorithm.ES384).write_bytes(
        PrivateKey.generate(Algorithm.ES384).to_pem()
    )
    vendor = PrivateKey.generate(Algorithm.ES256)
    write_config(data, issuers=[(VENDOR_ISS, vendor)], store=TestStore.of_data_dir(data))
    with TransparencyService.open(data, clock=lambda: NOW) as service:
        _register(service, vendor, 99)
        # An entry of an old batch still gets its receipt, signed by the old key.
        assert service.receipts(service.log.entry_id_at(0)) is not None
    keys = decode_key_set(layout.receipt_keys_path(data).read_bytes())
    assert set(old) < set(keys)
    assert len(keys) == 2
    report = verify_log_dir(data, batch_verifier=_verifier(data))
    assert report.batch_signatures == 4


def test_a_damaged_key_set_is_rewritten_by_the_service(
    data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    layout.receipt_keys_path(data).write_bytes(b"\xff")
    with TransparencyService.open(data, clock=lambda: NOW):
        pass
    assert "is damaged" in caplog.text
    assert len(decode_key_set(layout.receipt_keys_path(data).read_bytes())) == 1


def test_two_algorithms_each_verified(tmp_path: Path) -> None:
    data = _build(tmp_path / "two", batches=2, algorithms=("ES384", "ML-DSA-87"))
    report = verify_log_dir(data, batch_verifier=_verifier(data))
    assert report.batch_signatures == 4
    protected, signature = cbor2.loads(_batch_row(data, 1, "receipt:ML-DSA-87"))
    _set_batch_row(
        data,
        1,
        cbor2.dumps([protected, bytes([signature[0] ^ 1]) + signature[1:]]),
        "receipt:ML-DSA-87",
    )
    with pytest.raises(StorageError, match="the batch at size 1 does not verify"):
        verify_log_dir(data, batch_verifier=_verifier(data))


class _FaultySigner:
    """A receipt signer whose signatures do not verify (a failing HSM, a swapped key)."""

    def __init__(self, key: PrivateKey) -> None:
        self._key = key
        self.algorithm = key.algorithm
        self.kid = key.kid

    def sign(self, data: bytes) -> bytes:
        signature = self._key.sign(data)
        return signature[:10] + bytes([signature[10] ^ 1]) + signature[11:]

    def verifier(self) -> PublicKey:
        return self._key.public_key


def test_a_batch_signed_badly_is_checked_at_commit_and_never_served(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = write_config(tmp_path / "data", issuers=[(VENDOR_ISS, vendor)])
    signer = _FaultySigner(PrivateKey.generate(Algorithm.ES384))
    with TransparencyService.open(data, clock=lambda: NOW, receipt_signers=[signer]) as service:
        statement = create_statement(vendor, b"{}", iss=VENDOR_ISS, sub="pkg:x/bad")
        ticket = service.submit(statement)
        where = ticket.integrated.result(10)
        assert "receipt:ES384 for tree size 1 does not verify" in caplog.text
        for _ in range(2):  # refused on read too, and never cached
            with pytest.raises(StorageError, match="does not verify"):
                service.receipts(ticket.entry_id, where)
