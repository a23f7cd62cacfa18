"""Damaged certificates inside real evidence: only typed errors, never a stray exception.

The PCK certificate chain that a real TDX quote carries is damaged byte by byte (in the PEM
text, one bit of each byte of its structure and a dense sample of its base64, and in the DER
of each certificate, every byte, re-encoded to the same PEM layout); the verifier must answer
each with an ``IronrootError`` (or accept the quote, for a change that does not matter, such as
a PEM header byte that only adds text between blocks).
"""

from __future__ import annotations

import base64
import re
import struct
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ironroot.attestation.evidence import VerifyOptions, verify_evidence
from ironroot.errors import IronrootError

pytestmark = pytest.mark.vectors

NOW = datetime(2026, 11, 28, tzinfo=UTC)
QUOTE4 = "deps_verifier_test_data_tdx_quote_4.dat"
_PEM = re.compile(rb"(-----BEGIN CERTIFICATE-----\r?\n)(.*?)(-----END CERTIFICATE-----)", re.DOTALL)


def _chain_region(quote: bytes) -> tuple[int, int]:
    """Offset and size of the PCK chain (certification data type 5) inside ``quote``."""
    start = quote.index(b"-----BEGIN CERTIFICATE-----")
    (size,) = struct.unpack_from("<I", quote, start - 4)
    assert struct.unpack_from("<H", quote, start - 6)[0] == 5
    return start, size


def _outcome(data: bytes) -> str:
    try:
        verify_evidence(data, VerifyOptions(now=NOW), format="tdx")
    except IronrootError as exc:
        return type(exc).__name__
    return "accepted"


def _reencode(body: bytes, der: bytes) -> bytes:
    """``der`` as base64 laid out in the same line lengths as ``body``."""
    text = base64.b64encode(der)
    out, pos = [], 0
    for line in body.splitlines(keepends=True):
        width = len(line.rstrip(b"\r\n"))
        out.append(text[pos : pos + width] + line[width:])
        pos += width
    assert pos == len(text)
    return b"".join(out)


@pytest.mark.slow
def test_the_pem_text_of_the_pck_chain(tdx_dir: Path) -> None:
    """Every byte of the PEM structure (the BEGIN and END lines, every line end) and of the
    first line of each certificate's base64 (every position of a base64 quantum, where the
    DER's outer tag and length are); of the rest of the base64, every seventh byte (seven
    is prime to the quantum and the line width, so every position in both is reached). The
    DER under the base64 is changed byte by byte in the test below."""
    quote = (tdx_dir / QUOTE4).read_bytes()
    assert _outcome(quote) == "accepted"
    start, size = _chain_region(quote)
    region = quote[start : start + size]
    chosen = {start + i for i, byte in enumerate(region) if byte in b"\r\n"}
    for block in _PEM.finditer(region):
        chosen.update(range(start + block.start(1), start + block.end(1)))
        chosen.update(range(start + block.start(3), start + block.end(3)))
        first_line = region.index(b"\n", block.start(2)) + 1
        chosen.update(range(start + block.start(2), start + first_line))
        chosen.update(range(start + first_line, start + block.end(2), 7))
    seen: set[str] = set()
    for pos in sorted(chosen):
        # Every byte once: its low bit at even offsets, its high bit at odd ones (a base64
        # character whose low bit flips stays base64 mostly; one whose high bit flips never is).
        value = quote[pos] ^ (0x01 if pos % 2 == 0 else 0x80)
        mutated = quote[:pos] + bytes([value]) + quote[pos + 1 :]
        seen.add(_outcome(mutated))  # raises anything that is not an IronrootError
    assert "MalformedCertificate" in seen


@pytest.mark.slow
def test_every_der_byte_of_each_pck_chain_certificate(tdx_dir: Path) -> None:
    quote = (tdx_dir / QUOTE4).read_bytes()
    start, size = _chain_region(quote)
    region = quote[start : start + size]
    seen: set[str] = set()
    for block in _PEM.finditer(region):
        body = block.group(2)
        der = base64.b64decode(b"".join(body.split()))
        body_at = start + block.start(2)
        for pos in range(len(der)):
            bad = der[:pos] + bytes([der[pos] ^ 0x41]) + der[pos + 1 :]
            new_body = _reencode(body, bad)
            mutated = quote[:body_at] + new_body + quote[body_at + len(body) :]
            seen.add(_outcome(mutated))
    assert {"MalformedCertificate", "ChainNotTrusted"} <= seen
