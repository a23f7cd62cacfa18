"""Drive ironroot's CTS API with Microsoft's own client, pyscitt, unchanged.

Runs in pyscitt's separate venv (``pyscitt_venv.py``), never in the project's: it imports
nothing from ironroot. Prints one JSON object with what pyscitt returned and raised; the
test (test_transparency_pyscitt.py) checks it, and the files written, with ironroot.

    python pyscitt_client.py scenario URL OUT KEY LEAF ROOT ISSUER
    python pyscitt_client.py register URL OUT STATEMENT
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cbor2
from pyscitt import crypto
from pyscitt.client import Client, ServiceError


def _error(call):  # type: ignore[no-untyped-def]
    try:
        call()
    except ServiceError as exc:
        return {"code": exc.code, "message": exc.message}
    return None


def scenario(url: str, out: Path, key: str, leaf: str, root: str, issuer: str) -> dict:
    client = Client(url, development=True)
    signer = crypto.Signer(key, issuer=issuer, x5c=[leaf, root])

    def sign(payload: bytes, feed: str) -> bytes:
        return crypto.sign_statement(signer, payload, "application/json", feed=feed, cwt=True)

    first = sign(b'{"firmware": "bmc", "version": "1.2.3"}', "pkg:fw/bmc")
    (out / "first.cose").write_bytes(first)
    submission = client.submit_signed_statement_and_wait(first)
    (out / "first.ts.cose").write_bytes(submission.response_bytes)
    receipt = client.get_receipt(submission.tx)
    (out / "first.receipt.cose").write_bytes(receipt)
    embedded = crypto.get_last_embedded_receipt_from_cose(submission.response_bytes)

    second = sign(b'{"firmware": "bmc", "version": "1.2.4"}', "pkg:fw/bmc")
    (out / "second.cose").write_bytes(second)
    pending = client.submit_signed_statement(second)
    second_tx = client.wait_for_operation(pending.operation_tx)
    second_ts = client.get_transparent_statement(pending.operation_tx, operation=True)
    (out / "second.ts.cose").write_bytes(second_ts)

    stranger = crypto.Signer(crypto.generate_keypair(kty="ec")[0], issuer=issuer, kid="stranger")
    tampered = bytearray(sign(b'{"firmware": "bmc"}', "pkg:fw/bmc"))
    tampered[-1] ^= 1
    refused = sign(b'{"firmware": "bmc"}', "pkg:fw/refused")
    unknown = "ab" * 32
    return {
        "operation": submission.operation_tx,
        "tx": submission.tx,
        "receipt_by_operation": client.get_receipt(submission.operation_tx, operation=True)
        == receipt,
        # CTS (CCF's cose::edit) embeds each receipt as a byte string in header 394, as
        # ironroot does: pyscitt hands back that byte string's CBOR encoding
        "embedded_receipt_is_the_receipt": embedded == cbor2.dumps(receipt),
        "second_operation": pending.operation_tx,
        "second_tx": second_tx,
        "errors": {
            "refused": _error(lambda: client.submit_signed_statement_and_wait(refused)),
            "stranger": _error(
                lambda: client.submit_signed_statement(
                    crypto.sign_statement(stranger, b"{}", "application/json", feed="x", cwt=True)
                )
            ),
            "tampered": _error(lambda: client.submit_signed_statement(bytes(tampered))),
            "unknown_operation": _error(lambda: client.wait_for_operation(unknown)),
            "ccf_operation_id": _error(lambda: client.wait_for_operation("2.15")),
            "unknown_entry": _error(lambda: client.get_transparent_statement(unknown)),
        },
    }


def register(url: str, out: Path, statement: str) -> dict:
    client = Client(url, development=True)
    submission = client.submit_signed_statement_and_wait(Path(statement).read_bytes())
    (out / "registered.ts.cose").write_bytes(submission.response_bytes)
    return {"operation": submission.operation_tx, "tx": submission.tx}


def main(argv: list[str]) -> None:
    mode, url, out, *rest = argv
    if mode == "scenario":
        key, leaf, root = (Path(p).read_text() for p in rest[:3])
        result = scenario(url, Path(out), key, leaf, root, rest[3])
    else:
        result = register(url, Path(out), rest[0])
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
