"""A malleated ECDSA signature (s → n − s) is the same log entry: registration stays idempotent."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import cbor2
import pytest
from _tx_helpers import VENDOR_ISS, write_config

from ironroot.cose import SignedStatement, create_statement
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.crypto._keys import _EC
from ironroot.transparency import TransparencyService

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _malleate(statement: bytes, algorithm: Algorithm) -> bytes:
    decoded = cbor2.loads(statement)
    protected, unprotected, payload, signature = decoded.value
    params = _EC[algorithm]
    s = int.from_bytes(signature[params.size :], "big")
    twin = signature[: params.size] + (params.order - s).to_bytes(params.size, "big")
    return cbor2.dumps(cbor2.CBORTag(18, [protected, unprotected, payload, twin]))


@pytest.mark.parametrize("algorithm", [Algorithm.ES256, Algorithm.ES384, Algorithm.ES512])
def test_the_high_s_twin_registers_as_the_same_entry(tmp_path: Path, algorithm: Algorithm) -> None:
    vendor = PrivateKey.generate(algorithm)
    data = write_config(tmp_path / "data", issuers=[(VENDOR_ISS, vendor)])
    statement = create_statement(vendor, b'{"v": 1}', iss=VENDOR_ISS, sub="pkg:x/1")
    twin = _malleate(statement, algorithm)
    assert twin != statement
    # The twin is a valid signed statement in its own right ...
    SignedStatement.parse(twin).sign1.verify(vendor.public_key)
    with TransparencyService.open(data, clock=lambda: NOW) as service:
        first = service.submit(statement)
        first.integrated.result(10)
        second = service.submit(twin)
        second.integrated.result(10)
        # ... but it is not a second entry.
        assert second.entry_id == first.entry_id
        assert service.log.tree_size == 1
        # The logged form carries the low-S signature Ironroot's signers always make.
        assert service.log.entry(0) == SignedStatement.parse(statement).log_entry()
