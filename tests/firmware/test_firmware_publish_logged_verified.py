"""Publication reads an earlier release's leaves only from a statement it verified: every
receipt under the transparency service's keys, its signature under the issuer's key
(``verify_logged_statement``, run by ``publish_bundle(..., logged=)`` and ``firmware publish
--logged``). A statement no trusted service logged, or that its issuer did not sign, is
refused with its own error and nothing is registered: it used to be read as it came."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path

import cbor2
import pytest
from _fw_helpers import NOW, Recording, mldsa_vendor

from ironroot.cli import main
from ironroot.cose import SignedStatement, make_transparent
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import (
    BadSignature,
    ConfigError,
    InvalidProof,
    IronrootError,
    MalformedStatement,
    PolicyRejected,
    UnknownIssuer,
)
from ironroot.firmware import manifest_statement, publish_bundle, verify_logged_statement
from ironroot.transparency import ServiceThread, TransparencyService, init_data_dir
from logged_elsewhere import OneEntryLogs

ISS = "https://vendor.example"
SUB = "pkg:firmware/acme/roadrunner-bmc"
SERVICE = "https://ts.example"
KEY = PrivateKey.generate(Algorithm.ES384)
OTHER_KEY = PrivateKey.generate(Algorithm.ES384)
LOGS = OneEntryLogs(SERVICE)
VENDOR = mldsa_vendor(ecc_count=1, pqc_count=1)
FIRST, SECOND = (VENDOR.sign(VENDOR.build(svn=svn)) for svn in (5, 6))
STATEMENT = manifest_statement(FIRST, KEY, iss=ISS, sub=SUB)
OTHER_STATEMENT = manifest_statement(SECOND, KEY, iss=ISS, sub=SUB)

_BAD_SIGNATURE = (
    "the signature of the manifest statement does not verify under its issuer key: ES384"
    " signature does not verify"
)
_OTHER_SERVICE = (
    "no receipt of the manifest statement is by a trusted transparency service (the receipt's"
    " kid is not a trusted service key)"
)
_OTHER_ISSUER = (
    "no receipt of the manifest statement is by a trusted transparency service (the receipt is"
    f" issued by 'https://ts2.example', not by the transparency service '{SERVICE}')"
)
_OTHER_STATEMENT = (
    "no receipt proves the manifest statement is on the log: ES384 signature does not verify"
)
_TRUNCATED = (
    "invalid CBOR: premature end of stream (expected to read at least 7 bytes, got 0 instead)"
)
_NO_RECEIPT = (
    "the manifest statement is not shown on a transparency log: it carries no receipt (give"
    " the Transparent Statement, its .manifest.ts)"
)
_OTHER_SIGNER = (
    f"the manifest statement is signed by the key {OTHER_KEY.kid.hex()}, none of the issuer"
    " keys its signature is checked against"
)


def _tampered_signature(statement: bytes) -> bytes:
    """``statement`` with one bit of its signature flipped (then logged as it is)."""
    tag = cbor2.loads(statement)
    protected, unprotected, payload, signature = tag.value
    signature = signature[:-1] + bytes([signature[-1] ^ 1])
    return cbor2.dumps(cbor2.CBORTag(18, [protected, unprotected, payload, signature]))


def _two_receipts_one_untrusted() -> bytes:
    return make_transparent(LOGS.transparent(STATEMENT), [OneEntryLogs(SERVICE).receipt(STATEMENT)])


# case -> (the --logged statement, the error class, its code, its detail)
REFUSED: dict[str, tuple[Callable[[], bytes], type[IronrootError], str, str]] = {
    "bad-signature": (
        lambda: LOGS.transparent(_tampered_signature(STATEMENT)),
        BadSignature,
        "bad-signature",
        _BAD_SIGNATURE,
    ),
    "another-signer": (
        lambda: LOGS.transparent(manifest_statement(FIRST, OTHER_KEY, iss=ISS, sub=SUB)),
        UnknownIssuer,
        "unknown-issuer",
        _OTHER_SIGNER,
    ),
    "receipt-of-another-service": (
        lambda: OneEntryLogs(SERVICE).transparent(STATEMENT),
        UnknownIssuer,
        "untrusted-service",
        _OTHER_SERVICE,
    ),
    "one-receipt-of-another-service": (
        _two_receipts_one_untrusted,
        UnknownIssuer,
        "untrusted-service",
        _OTHER_SERVICE,
    ),
    "receipt-for-another-statement": (
        lambda: make_transparent(OTHER_STATEMENT, [LOGS.receipt(STATEMENT)]),
        InvalidProof,
        "receipt-not-for-statement",
        _OTHER_STATEMENT,
    ),
    "truncated": (
        lambda: LOGS.transparent(STATEMENT)[:-7],
        MalformedStatement,
        "malformed-statement",
        _TRUNCATED,
    ),
    "no-receipt": (lambda: STATEMENT, PolicyRejected, "no-receipt", _NO_RECEIPT),
}


def test_a_statement_its_service_logged_and_its_issuer_signed_verifies() -> None:
    parsed = verify_logged_statement(LOGS.transparent(STATEMENT), LOGS.keys, [KEY.public_key])
    assert parsed.log_entry() == SignedStatement.parse(STATEMENT).log_entry()
    registrar = Recording(LOGS)
    publish = functools.partial(publish_bundle, client=registrar, signer=KEY, iss=ISS, sub=SUB)
    publish(SECOND, logged=[LOGS.transparent(STATEMENT)], service_keys=LOGS.keys)
    assert len(registrar.registered) == 2
    # another key of the vendor's, given: its statement is read
    other = LOGS.transparent(manifest_statement(FIRST, OTHER_KEY, iss=ISS, sub=SUB))
    keys = [KEY.public_key, OTHER_KEY.public_key]
    publish(SECOND, logged=[other], service_keys=LOGS.keys, issuer_keys=keys)
    assert len(registrar.registered) == 4


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_publish_refuses_a_logged_statement_it_cannot_verify(case: str) -> None:
    make, error, code, detail = REFUSED[case]
    registrar = Recording(LOGS)
    with pytest.raises(error) as exc:
        publish_bundle(
            SECOND, registrar, KEY, iss=ISS, sub=SUB, logged=[make()], service_keys=LOGS.keys,
            service_issuer=SERVICE,
        )  # fmt: skip
    assert (type(exc.value), exc.value.code, exc.value.detail) == (error, code, detail)
    assert registrar.registered == []


def test_a_receipt_naming_another_service_is_refused() -> None:
    """The same key, another ``iss``: a receipt the pinned service did not issue."""
    renamed = OneEntryLogs("https://ts2.example")
    renamed.key = LOGS.key
    registrar = Recording(LOGS)
    with pytest.raises(UnknownIssuer) as exc:
        publish_bundle(
            SECOND, registrar, KEY, iss=ISS, sub=SUB, logged=[renamed.transparent(STATEMENT)],
            service_keys=LOGS.keys, service_issuer=SERVICE,
        )  # fmt: skip
    assert (exc.value.code, exc.value.detail) == ("untrusted-service", _OTHER_ISSUER)
    assert registrar.registered == []


def test_logged_statements_without_the_service_keys_are_refused() -> None:
    """Fail closed: with nothing to verify receipts against, no statement is read as logged
    (it used to be: the receipts were never looked at)."""
    registrar = Recording(LOGS)
    with pytest.raises(ConfigError) as exc:
        publish_bundle(SECOND, registrar, KEY, iss=ISS, sub=SUB,
                       logged=[LOGS.transparent(STATEMENT)])  # fmt: skip
    assert exc.value.detail == (
        "logged statements are read only once their receipts verify: give the transparency"
        " service's keys (service_keys=)"
    )
    assert registrar.registered == []
    with pytest.raises(ConfigError) as exc:
        verify_logged_statement(LOGS.transparent(STATEMENT), LOGS.keys, [])
    assert (
        exc.value.detail == "no issuer key to verify the signature of the manifest statement with"
    )


# -- the command line -------------------------------------------------------------------------


def _argv(tmp_path: Path, url: str = "http://127.0.0.1:9") -> list[str]:
    """``firmware publish`` of SECOND, nothing listening at ``url`` by default (a refusal
    comes before any registration)."""
    key_file = tmp_path / "statement.key"
    key_file.write_bytes(KEY.to_pem())
    bundle = tmp_path / "fw2.bin"
    bundle.write_bytes(SECOND)
    argv = ["firmware", "publish", str(bundle), "--url", url, "--key", str(key_file)]
    argv += ["--iss", ISS, "--sub", SUB, "--out-dir", str(tmp_path / "release2")]
    argv += ["--revoked-ecc", "0", "--revoked-pqc", "0"]  # none revoked: no warning
    return [*argv, "--at", NOW.isoformat(), "--vendor-key-hash", VENDOR.descriptor_hash.hex()]


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_cli_publish_refuses_a_logged_statement_it_cannot_verify(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 1 for a statement that does not verify, 2 for bytes that are no statement; the
    error names the file; nothing registered, nothing written."""
    make, error, code, detail = REFUSED[case]
    logged = tmp_path / "fw.manifest.ts"
    logged.write_bytes(make())
    service = tmp_path / "service.pub.pem"
    service.write_bytes(LOGS.key.public_key.to_pem())
    argv = [*_argv(tmp_path), "--logged", str(logged), "--service-keys", str(service)]
    assert main([*argv, "--service-issuer", SERVICE]) == error.exit_code
    assert error.exit_code == (2 if case == "truncated" else 1)
    assert capsys.readouterr().err == f"ironroot: {code}: {logged}: {detail}\n"
    assert not (tmp_path / "release2").exists()


def test_cli_publish_logged_needs_the_service_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logged = tmp_path / "fw.manifest.ts"
    logged.write_bytes(LOGS.transparent(STATEMENT))
    assert main([*_argv(tmp_path), "--logged", str(logged)]) == 2
    assert capsys.readouterr().err == (
        "ironroot: config: --logged needs --service-keys: a statement is read as logged only"
        " once its receipts verify under the transparency service's keys\n"
    )
    pub = tmp_path / "other.pub.pem"
    pub.write_bytes(OTHER_KEY.public_key.to_pem())
    assert main([*_argv(tmp_path), "--issuer-key", str(pub)]) == 2
    assert capsys.readouterr().err == (
        "ironroot: config: --issuer-key is for --logged statements: give them, or leave it\n"
    )
    assert not (tmp_path / "release2").exists()


@pytest.fixture
def service_url(tmp_path: Path) -> Iterator[str]:
    data = tmp_path / "data"
    init_data_dir(data)
    for name, key in (("vendor", KEY), ("other", OTHER_KEY)):
        (data / f"{name}.pub.pem").write_bytes(key.public_key.to_pem())
    config = data / "ironroot.toml"
    config.write_text(
        config.read_text()
        + f'\n[[transparency.issuers]]\niss = "{ISS}"\nkey = "vendor.pub.pem"\n'
        + f'\n[[transparency.issuers]]\niss = "{ISS}/other"\nkey = "other.pub.pem"\n'
    )
    service = TransparencyService.open(data)
    with service, ServiceThread(service) as server:
        yield server.url


def test_cli_publish_reads_a_statement_the_service_logged(
    tmp_path: Path, service_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """End to end: the first release published, its ``.manifest.ts`` given as ``--logged``
    with ``--service-keys`` the service's URL (its keys and its issuer): the second release
    is published; one signed by a key not given as ``--issuer-key`` is refused, and read
    once that key is given."""
    first = tmp_path / "fw.bin"
    first.write_bytes(FIRST)
    argv = _argv(tmp_path, service_url)
    one = [*argv[:2], str(first), *argv[3:]]
    one[one.index("--out-dir") + 1] = str(tmp_path / "release")
    assert main(one) == 0
    logged = tmp_path / "release" / "fw.manifest.ts"
    with_logged = [*argv, "--logged", str(logged), "--service-keys", service_url]
    assert main(with_logged) == 0
    assert (tmp_path / "release2" / "fw2.manifest.ts").exists()
    capsys.readouterr()
    other_key = tmp_path / "other.key"
    other_key.write_bytes(OTHER_KEY.to_pem())
    other = [*one[: one.index("--key") + 1], str(other_key), *one[one.index("--key") + 2 :]]
    other[other.index("--iss") + 1] = f"{ISS}/other"
    other[other.index("--out-dir") + 1] = str(tmp_path / "other")
    assert main(other) == 0
    by_other = tmp_path / "other" / "fw.manifest.ts"
    again = [*argv, "--logged", str(by_other), "--service-keys", service_url]
    again[again.index("--out-dir") + 1] = str(tmp_path / "release3")
    capsys.readouterr()
    assert main(again) == 1
    assert capsys.readouterr().err == f"ironroot: unknown-issuer: {by_other}: {_OTHER_SIGNER}\n"
    pub = tmp_path / "other.pub.pem"
    pub.write_bytes(OTHER_KEY.public_key.to_pem())
    assert main([*again, "--issuer-key", str(pub)]) == 0
