"""Interop with torchwood's litewitness (Go): its test scripts replayed against this witness.

The files are txtar test scripts of filippo.io/torchwood (``cmd/litewitness/testdata/
litewitness.txt`` and ``sumdb.txt``): real signed checkpoints of a sigsum log and of the Go
checksum database (``sum.golang.org``), consistency proofs, the witness's OpenSSH Ed25519 key,
and the HTTP status litewitness answers to each add-checkpoint request (as hurl files). This
test reads them from ``$IRONROOT_VECTORS/torchwood/`` (skipped, saying why, when they are
not there) and requires the same answers, with one documented difference: litewitness answers
an unknown origin with 403 (an earlier draft); c2sp.org/tlog-witness now says 404.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import http_calls
from ironroot.crypto import PrivateKey, PublicKey
from ironroot.log import NoteVerifier
from ironroot.witness import Cosigner, MemoryWitnessStore, Witness, WitnessedLog, WitnessThread

pytestmark = [pytest.mark.integration, pytest.mark.vectors]

_SECTION = re.compile(r"^-- (.+) --$", re.M)
_REQUEST = re.compile(
    r"POST \S+/add-checkpoint\n```\n(.*?)```\nHTTP (\d+)\n(?:\[Asserts\]\n(.*?)\n)?", re.S
)


def _txtar(path: Path) -> tuple[str, dict[str, str]]:
    parts = _SECTION.split(path.read_text(encoding="utf-8"))
    return parts[0], {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def _requests(hurl: str) -> Iterator[tuple[bytes, int, str]]:
    for match in _REQUEST.finditer(hurl):
        yield match.group(1).encode("utf-8"), int(match.group(2)), match.group(3) or ""


def _witness_key(pem: str) -> PrivateKey:
    from cryptography.hazmat.primitives.serialization import load_ssh_private_key

    key = load_ssh_private_key(pem.strip().encode() + b"\n", None)
    return PrivateKey(key)


def _logs(script: str) -> list[WitnessedLog]:
    sigsum = re.search(r"add-sigsum-log -key=([0-9a-f]{64})", script)
    if sigsum:
        public = bytes.fromhex(sigsum.group(1))
        origin = "sigsum.org/v1/tree/" + hashlib.sha256(public).hexdigest()
        key = PublicKey.from_cose_key({1: 1, -1: 6, -2: public})
        return [WitnessedLog(origin, (NoteVerifier(origin, key),))]
    origin = re.search(r"add-log -origin '([^']+)'", script)
    vkey = re.search(r"add-key -origin '[^']+' -key (\S+)", script)
    assert origin, "an unknown litewitness test script"
    assert vkey, "an unknown litewitness test script"
    return [WitnessedLog.from_vkeys(origin.group(1), [vkey.group(1)])]


@pytest.mark.parametrize("name", ["litewitness.txt", "sumdb.txt"])
def test_litewitness_scripts_get_the_same_answers(vectors: Path, name: str) -> None:
    path = vectors / "torchwood" / name
    if not path.exists():
        pytest.skip(f"{path} is absent (a copy of filippo.io/torchwood's litewitness testdata)")
    script, files = _txtar(path)
    name_of_witness = re.search(r"-name=(\S+)", script)
    assert name_of_witness
    witness_name = name_of_witness.group(1)
    key = _witness_key(files["witness_key.pem"])
    witness = Witness(
        witness_name, [Cosigner(witness_name, key)], _logs(script), MemoryWitnessStore()
    )
    checked = 0
    with WitnessThread(witness) as server:
        for body, want, asserts in _requests(files["add-checkpoint.hurl"]):
            response = http_calls.post(f"{server.url}/add-checkpoint", content=body, timeout=10)
            if want == 403 and "unknown log" in asserts:
                want = 404  # c2sp.org/tlog-witness: an unknown origin is 404 Not Found
            assert response.status_code == want, (body.decode(), response.content)
            if want == 409:
                wanted = re.search(r'body == "(\d+)\\n"', asserts)
                assert wanted
                assert response.content == f"{wanted.group(1)}\n".encode()
                assert response.headers["content-type"] == "text/x.tlog.size"
            if want == 200:
                assert response.text.startswith(f"\u2014 {witness_name} ")
            checked += 1
    assert checked >= 1
