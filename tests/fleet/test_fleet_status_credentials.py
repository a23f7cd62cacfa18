"""What ``fleet status`` (``unusable_credentials``) reports of the certificate files an admitted
node holds, pinned case by case: a damaged file, a truncated one, one with bytes after the
certificate, another credential's (its serial not a current one of the node's), an expired
one and a swapped key.

What it reads is the files alone (no RoT, no clock): per plane, the certificate file must be
there and be a certificate the strict parser reads (``ironroot.crypto.load_certificate``)
whose serial is a current credential of the node's, and the sealed key file must be there and
be a sealed file. An expired credential is not a fault here (the registry's
``credential_not_after`` is the table's "credential until"); a sealed key of another plane or
node is refused when it is unsealed (``node_credential_key``), not by status.

Each check is made on files the registry recorded as issued (the SHA-256 of the PEM the node
stores: a file with exactly those bytes is that certificate, read under the same parser when
it was issued) and on files it did not (parsed as before): the verdicts are the same. A file
changed in place is seen at the next status, in a fresh process too.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from tests.fleet.admission_world import AdmissionWorld, admission_world
from tests.platform.node_world import NOW, World, make_world

from ironroot.errors import (
    CredentialRejected,
    InputUnavailable,
    LimitExceeded,
    MalformedCertificate,
    SealedStoreError,
)
from ironroot.fleet import (
    AdmissionAuthority,
    Fleet,
    _credentials,
    attest_node,
    node_credential_key,
    quarantine,
    unusable_credentials,
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("status-credentials-world")) as w:
        yield w


@pytest.fixture(scope="module")
def aw(world: World) -> AdmissionWorld:
    return admission_world(world)


def _admitted(
    aw: AdmissionWorld, directory: Path, n: int, recorded: bool = True
) -> tuple[Fleet, AdmissionAuthority]:
    """``n`` nodes admitted; without ``recorded``, the registry as a fleet admitted before
    the files' digests were recorded left it (none: every file is parsed)."""
    fleet, authority = aw.fleet(directory, n)
    for node in fleet.node_ids():
        assert attest_node(fleet, node, now=NOW, authority=authority).status == "admitted"
    if not recorded:
        with sqlite3.connect(fleet.database) as db:
            db.execute("DELETE FROM credential_files")
    return fleet, authority


both = pytest.mark.parametrize("recorded", [True, False], ids=["recorded", "unrecorded"])


def _folder(fleet: Fleet, node: str) -> Path:
    return fleet.directory / "nodes" / node / "credentials"


def _faults(fleet: Fleet) -> dict[str, tuple[type, str, str]]:
    return {n: (type(e), e.code, str(e)) for n, e in unusable_credentials(fleet).items()}


def _serial(pem: bytes) -> str:
    return format(x509.load_pem_x509_certificate(pem).serial_number, "x")


def _pem(der: bytes) -> bytes:
    body = base64.encodebytes(der).replace(b"\n", b"")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return b"-----BEGIN CERTIFICATE-----\n" + b"\n".join(lines) + b"\n-----END CERTIFICATE-----\n"


def _der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


@both
def test_the_certificates_the_strict_parser_refuses_are_reported(
    aw: AdmissionWorld, tmp_path: Path, recorded: bool
) -> None:
    fleet, _ = _admitted(aw, tmp_path / "fleet", 6, recorded)
    pem = {n: (_folder(fleet, n) / "control.cert.pem").read_bytes() for n in fleet.node_ids()}

    def put(node: str, data: bytes) -> None:
        (_folder(fleet, node) / "control.cert.pem").write_bytes(data)

    # damaged: a base64 character of the PEM body that is not base64
    body = bytearray(pem["node-0001"])
    body[len(body) // 2] = ord("*")
    put("node-0001", bytes(body))
    # damaged: the to-be-signed certificate's SEQUENCE tag changed in valid PEM
    der = bytearray(_der(pem["node-0002"]))
    assert der[4] == 0x30
    der[4] = 0x31
    put("node-0002", _pem(bytes(der)))
    # truncated: half the file (a power cut before the rest reached the disk)
    put("node-0003", pem["node-0003"][: len(pem["node-0003"]) // 2])
    # truncated: the certificate's last bytes gone, in valid PEM
    put("node-0004", _pem(_der(pem["node-0004"])[:-10]))
    # trailing bytes after the certificate, in DER and inside the PEM
    put("node-0005", _der(pem["node-0005"]) + b"\x00")
    put("node-0006", _pem(_der(pem["node-0006"]) + b"\x00\x00"))
    n5 = len(_der(pem["node-0005"]))
    malformed = (MalformedCertificate, "malformed-certificate")
    assert _faults(fleet) == {
        "node-0001": (*malformed, "credential does not parse: not a well-formed PEM file"),
        "node-0002": (
            *malformed,
            "credential does not parse: bad DER (unexpected tag, in Certificate.tbs_cert)",
        ),
        "node-0003": (*malformed, "credential does not parse: not a well-formed PEM file"),
        "node-0004": (*malformed, "credential does not parse: bad DER (short data)"),
        "node-0005": (*malformed, f"credential is not DER or PEM (no SEQUENCE at byte {n5})"),
        "node-0006": (*malformed, "credential does not parse: bad DER (extra data)"),
    }


@both
def test_another_credential_in_place_is_reported_by_its_serial(
    aw: AdmissionWorld, tmp_path: Path, recorded: bool
) -> None:
    fleet, _ = _admitted(aw, tmp_path / "fleet", 3, recorded)
    one, two, three = (_folder(fleet, n) for n in fleet.node_ids())
    # another node's credential of the same plane
    shutil.copyfile(two / "data.cert.pem", one / "data.cert.pem")
    # the node's own two certificates swapped between the planes
    control, data = (
        (three / "control.cert.pem").read_bytes(),
        (three / "data.cert.pem").read_bytes(),
    )
    (three / "control.cert.pem").write_bytes(data)
    (three / "data.cert.pem").write_bytes(control)
    other, swapped = _serial((one / "data.cert.pem").read_bytes()), _serial(data)
    assert _faults(fleet) == {
        "node-0001": (
            CredentialRejected,
            "credential-not-current",
            f"node-0001's data.cert.pem (serial {other}) is not a current data-plane "
            "credential of its: an admission committed and its files were not stored "
            "(attest again)",
        ),
        "node-0003": (
            CredentialRejected,
            "credential-not-current",
            f"node-0003's control.cert.pem (serial {swapped}) is not a current control-plane "
            "credential of its: an admission committed and its files were not stored "
            "(attest again)",
        ),
    }


@both
def test_an_expired_credential_and_a_swapped_key_are_not_status_faults(
    aw: AdmissionWorld, tmp_path: Path, recorded: bool
) -> None:
    fleet, _ = _admitted(aw, tmp_path / "fleet", 2, recorded)
    # expired: admitted at NOW for an hour, long past by this machine's clock; the registry
    # shows when (credential_not_after), status does not judge the files by a clock
    record = fleet.record_of("node-0001")
    assert record.credential_not_after is not None
    assert record.credential_not_after < "2026-06-01T13:00:01Z"
    # swapped keys: the node's planes' sealed keys exchanged, and another node's put in
    one, two = _folder(fleet, "node-0001"), _folder(fleet, "node-0002")
    control, data = (
        (one / "control.key.sealed").read_bytes(),
        (one / "data.key.sealed").read_bytes(),
    )
    (one / "control.key.sealed").write_bytes(data)
    (one / "data.key.sealed").write_bytes(control)
    shutil.copyfile(one / "control.key.sealed", two / "control.key.sealed")
    assert _faults(fleet) == {}  # sealed files both: what status reads of a key
    for node in ("node-0001", "node-0002"):
        with pytest.raises(SealedStoreError) as caught:
            node_credential_key(fleet, node, "control")
        assert caught.value.code == "sealed-store"  # refused where it is unsealed


@both
def test_other_encodings_of_the_issued_certificate_are_read_as_before(
    aw: AdmissionWorld, tmp_path: Path, recorded: bool
) -> None:
    # not the bytes recorded at issue: parsed, and accepted as before
    fleet, _ = _admitted(aw, tmp_path / "fleet", 3, recorded)
    one, two, three = (_folder(fleet, n) for n in fleet.node_ids())
    (one / "control.cert.pem").write_bytes(_der((one / "control.cert.pem").read_bytes()))
    pem = (two / "data.cert.pem").read_bytes()
    (two / "data.cert.pem").write_bytes(pem + b"comment after the block\n")
    own = (three / "data.cert.pem").read_bytes()
    (three / "data.cert.pem").write_bytes(own.replace(b"\n", b"\r\n"))
    assert _faults(fleet) == {}
    # another node's, in another encoding: parsed, and its serial is not the node's
    (three / "data.cert.pem").write_bytes(pem.replace(b"\n", b"\r\n"))
    assert _faults(fleet) == {
        "node-0003": (
            CredentialRejected,
            "credential-not-current",
            f"node-0003's data.cert.pem (serial {_serial(pem)}) is not a current data-plane "
            "credential of its: an admission committed and its files were not stored "
            "(attest again)",
        )
    }


_STATUS = [sys.executable, "-m", "ironroot", "fleet", "status", "--json", "--fleet"]


@both
def test_a_certificate_written_in_place_is_reported_by_the_next_status_process(
    aw: AdmissionWorld, tmp_path: Path, recorded: bool
) -> None:
    fleet, _ = _admitted(aw, tmp_path / "fleet", 1, recorded)
    if not recorded:  # a fleet.db made before the table: the next process adds it
        with sqlite3.connect(fleet.database) as db:
            db.execute("DROP TABLE credential_files")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}

    def status() -> dict[str, object]:
        out = subprocess.run(
            [*_STATUS, str(fleet.directory)], capture_output=True, text=True, env=env, check=True
        )
        found: dict[str, object] = json.loads(out.stdout)["unusable_credentials"]
        return found

    assert status() == {}
    path = _folder(fleet, "node-0001") / "data.cert.pem"
    before = path.stat()
    data = bytearray(path.read_bytes())
    data[40] = ord("*")  # the same size, its times put back
    with path.open("r+b") as f:
        f.write(bytes(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    faults = status()
    assert list(faults) == ["node-0001"]
    assert faults["node-0001"] == {
        "code": "malformed-certificate",
        "detail": "credential does not parse: not a well-formed PEM file",
    }


@both
def test_a_certificate_file_status_cannot_read_is_that_node_s_fault(
    aw: AdmissionWorld, tmp_path: Path, recorded: bool
) -> None:
    # over the size limit, or a directory: the node's fault, not the end of status
    fleet, _ = _admitted(aw, tmp_path / "fleet", 3, recorded)
    one, two, three = (_folder(fleet, n) for n in fleet.node_ids())
    (one / "control.cert.pem").write_bytes(b"A" * (64 * 1024 + 1))
    (two / "data.cert.pem").unlink()
    (two / "data.cert.pem").mkdir()
    (three / "data.key.sealed").write_bytes(b"IRHSMKS1" + b"\0" * (64 * 1024))
    assert _faults(fleet) == {
        "node-0001": (
            LimitExceeded,
            "limit-exceeded",
            f"{one / 'control.cert.pem'} is larger than 65536 bytes",
        ),
        "node-0002": (
            InputUnavailable,
            "input-unavailable",
            f"{two / 'data.cert.pem'}: is a directory, not a file",
        ),
        "node-0003": (
            LimitExceeded,
            "limit-exceeded",
            f"{three / 'data.key.sealed'} is larger than 65536 bytes",
        ),
    }


def test_the_registry_records_the_file_each_credential_is_stored_as(
    aw: AdmissionWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet, authority = _admitted(aw, tmp_path / "fleet", 2)
    with sqlite3.connect(fleet.database) as db:
        recorded = dict(db.execute("SELECT serial, pem_sha256 FROM credential_files"))
    stored = {}
    for node in fleet.node_ids():
        for plane in ("control", "data"):
            pem = (_folder(fleet, node) / f"{plane}.cert.pem").read_bytes()
            stored[_serial(pem)] = hashlib.sha256(pem).hexdigest()
    assert recorded == stored
    # the files as issued are not parsed again; any other bytes are
    parsed: list[bytes] = []
    load = _credentials.load_certificate

    def counted(data: bytes, **options: object) -> object:
        parsed.append(data)
        return load(data, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(_credentials, "load_certificate", counted)
    monkeypatch.setattr(_credentials, "_SETTLED_NS", 10**18)  # no verdict kept: read each time
    assert _faults(fleet) == {}
    assert parsed == []
    path = _folder(fleet, "node-0002") / "data.cert.pem"
    path.write_bytes(path.read_bytes() + b"\n")
    assert _faults(fleet) == {}
    assert parsed == [path.read_bytes()]
    # a revoked credential's file, as issued: its digest is not a current one's
    quarantine(fleet, "node-0001", "drift", now=NOW, hold=False)
    attest_node(fleet, "node-0001", now=NOW, authority=authority, store=False)
    parsed.clear()
    assert set(_faults(fleet)) == {"node-0001"}
    revoked = (_folder(fleet, "node-0001") / "control.cert.pem").read_bytes()
    assert parsed == [revoked, path.read_bytes()]  # the revoked one, and the one changed
