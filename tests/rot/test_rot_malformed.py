"""Hostile DICE certificates and extension values: ``MalformedCertificate``, exactly.

pyasn1 raises ``IndexError``, ``OverflowError`` and ``ValueError`` from deep inside its decoder
and value objects, and ``cryptography`` ``InvalidVersion`` and friends from lazily parsed
fields; none of them may escape the DICE parsers. The byte strings below are the ones that did.
"""

from __future__ import annotations

import contextlib
import gc
import subprocess
import sys
from pathlib import Path

import pytest

from ironroot import rot
from ironroot.cli import main
from ironroot.errors import IronrootError, LimitExceeded, MalformedCertificate

CALIPTRA_FMC = Path("caliptra") / "fmc_alias_cert_ecc.der"


@pytest.mark.parametrize(
    ("parse", "hex_input"),
    [
        (rot.parse_tcb_info, "30820080aa41ff000001"),  # IndexError inside pyasn1
        (rot.parse_tcb_info, "30038a0104"),  # ValueError: __len__() should return >= 0
        (rot.parse_multi_tcb_info, "308201d4302c8388a782c64e3ceefbcc"),  # OverflowError
        (rot.load_dice_objects, "301b3011020110300030083003060100030100a00030030601000301003000"),
        (rot.parse_ueid, "3003040201"),
        (rot.parse_ueid, "30820080"),
        (rot.parse_open_dice_input, "3003a08180"),
        (rot.parse_riot_extension, "3005a003060100"),
    ],
)
def test_reported_inputs_are_malformed_certificate(parse: object, hex_input: str) -> None:
    with pytest.raises(MalformedCertificate) as info:
        parse(bytes.fromhex(hex_input))  # type: ignore[operator]
    assert type(info.value) is MalformedCertificate


def test_every_truncation_and_byte_of_a_tcb_info_is_typed() -> None:
    tcb = rot.TcbInfo(
        vendor="v",
        model="m",
        svn_raw=3,
        layer=1,
        fwids=(rot.Fwid("2.16.840.1.101.3.4.2.2", bytes(48)),),
        flags=rot.OperationalFlags(frozenset({3}), 32),
    )
    good = rot.encode_tcb_info(tcb)
    assert rot.parse_tcb_info(good).vendor == "v"
    for end in range(len(good)):
        with pytest.raises(MalformedCertificate):
            rot.parse_tcb_info(good[:end])
    for pos in range(len(good)):
        for value in (0x00, 0x80, 0xFF, good[pos] ^ 0x01):
            mutated = good[:pos] + bytes([value]) + good[pos + 1 :]
            for parse in (rot.parse_tcb_info, rot.parse_multi_tcb_info):
                with contextlib.suppress(IronrootError):  # anything else fails the test
                    parse(mutated)


def _version_5(der: bytes) -> bytes:
    at = der.index(bytes.fromhex("a003020102"))
    return der[: at + 4] + b"\x05" + der[at + 5 :]


@pytest.mark.vectors
def test_version_5_certificate(vectors: Path) -> None:
    bad = _version_5((vectors / CALIPTRA_FMC).read_bytes())
    for parse in (rot.parse_certificate, rot.parse_certificates, rot.load_dice_objects):
        with pytest.raises(MalformedCertificate, match="version") as info:
            parse(bad)  # type: ignore[operator]
        assert type(info.value) is MalformedCertificate


@pytest.mark.vectors
def test_every_byte_of_a_dice_certificate(vectors: Path) -> None:
    der = (vectors / CALIPTRA_FMC).read_bytes()
    assert rot.parse_certificate(der).dice.multi
    kinds = set()
    for pos in range(len(der)):
        mutated = der[:pos] + bytes([der[pos] ^ 0x41]) + der[pos + 1 :]
        for strict in (True, False):
            try:
                rot.load_dice_objects(mutated, strict=strict)
            except IronrootError as exc:
                kinds.add(type(exc).__name__)
    assert "MalformedCertificate" in kinds


@pytest.mark.vectors
def test_inspect_cert_on_a_malformed_certificate(
    vectors: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "v5.der"
    bad.write_bytes(_version_5((vectors / CALIPTRA_FMC).read_bytes()))
    assert main(["rot", "inspect-cert", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "malformed-certificate" in err
    assert "version" in err
    assert "Traceback" not in err


@pytest.mark.vectors
@pytest.mark.integration
def test_inspect_cert_process_prints_no_traceback(vectors: Path, tmp_path: Path) -> None:
    bad = tmp_path / "v5.der"
    bad.write_bytes(_version_5((vectors / CALIPTRA_FMC).read_bytes()))
    done = subprocess.run(
        [sys.executable, "-m", "ironroot", "rot", "inspect-cert", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "malformed-certificate" in done.stderr


@pytest.mark.parametrize(
    "parse",
    [rot.parse_certificate, rot.parse_certificates, rot.load_dice_objects, rot.parse_csr],
)
def test_pem_begin_lines_are_bounded_before_they_are_searched(parse: object) -> None:
    # Each BEGIN line is searched to the end of the input for its END line: 1 MiB of BEGIN lines
    # without an END took minutes (a 256 KiB quote x5chain item, 14 s). Their number is bounded
    # first: certificates (at most 16) and the odd other block beside them.
    data = b"-----BEGIN CERTIFICATE-----\n" * 33
    with pytest.raises(LimitExceeded) as info:
        parse(data)  # type: ignore[operator]
    assert info.value.detail == "more than 32 PEM blocks in one input"
    # at the bound, what the blocks hold decides, as before
    with pytest.raises(MalformedCertificate, match="no PEM block found"):
        parse(data[: 32 * 28])  # type: ignore[operator]


def test_a_refused_input_over_one_certificate_is_not_kept() -> None:
    # The split of an input was cached by its bytes even when what it held was then refused:
    # 1,024 refused 256 KiB inputs (a quote's x5chain items) kept 277 MiB. An input larger
    # than one certificate is split afresh each time, and nothing keeps it.
    body = b"\x01" * (4 * rot.dice.MAX_CERTIFICATE_BYTES)
    data = b"\x30\x83" + len(body).to_bytes(3, "big") + body
    before = sys.getrefcount(data)
    with pytest.raises(LimitExceeded) as info:
        rot.parse_certificate(data)
    assert info.value.detail == "certificate is 262149 bytes, over 65536"
    del info
    gc.collect()  # what the traceback held
    assert sys.getrefcount(data) == before
