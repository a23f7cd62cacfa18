"""SFRs on the transparency service: publication, the review query, and the ``ironroot safe``
commands end to end against an in-process service."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from _safe_helpers import (
    KID,
    SHA384,
    SHA512,
    STATEMENT_ISS,
    provider,
    report_bytes,
    store,
    write_service_config,
)

from ironroot.cli import main
from ironroot.cose import SignedStatement, create_statement, encode_key_set
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import (
    BadSignature,
    ConfigError,
    MalformedInput,
    MalformedReport,
    PayloadTooLarge,
    UnknownIssuer,
    VerificationFailed,
)
from ironroot.safe import (
    SFR_COSE_CONTENT_TYPE,
    SFR_JWS_CONTENT_TYPE,
    ProviderKeys,
    firmware_subject,
    has_issue_at_or_above,
    max_open_cvss,
    parse_firmware_hash,
    parse_report_json,
    review_from_statement,
    reviews_for,
    sfr_statement,
    sign_report,
)
from ironroot.transparency import ServiceThread, TransparencyClient, TransparencyService

SUB384 = f"sha384:{SHA384}"


@pytest.fixture(scope="module")
def publisher() -> PrivateKey:
    return PrivateKey.generate(Algorithm.ES384)


@pytest.fixture(scope="module")
def review_key() -> tuple[PrivateKey, ProviderKeys]:
    return provider()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, publisher: PrivateKey
) -> Iterator[ServiceThread]:
    data = write_service_config(tmp_path_factory.mktemp("svc") / "data", publisher)
    service = TransparencyService.open(data)
    with service, ServiceThread(service) as thread:
        yield thread


# --- pure parts --------------------------------------------------------------------------------


def test_firmware_hash_forms() -> None:
    assert parse_firmware_hash(SUB384) == ("sha384", bytes.fromhex(SHA384))
    assert parse_firmware_hash("SHA-512:" + SHA512.upper()) == ("sha512", bytes.fromhex(SHA512))
    assert parse_firmware_hash("0x" + SHA384) == ("sha384", bytes.fromhex(SHA384))
    assert parse_firmware_hash(SHA512)[0] == "sha512"
    for bad in ("md5:00", "sha384:" + SHA512, "abc", "zz" * 48, "", "sha384:"):
        with pytest.raises(MalformedInput):
            parse_firmware_hash(bad)


def test_subject_prefers_sha384() -> None:
    assert firmware_subject(parse_report_json(report_bytes())) == SUB384
    only512 = parse_report_json(report_bytes(device__fw_hash_sha2_384=""))
    assert firmware_subject(only512) == f"sha512:{SHA512}"
    none = parse_report_json(report_bytes(device__fw_hash_sha2_384="", device__fw_hash_sha2_512=""))
    with pytest.raises(MalformedReport):
        firmware_subject(none)


@pytest.mark.parametrize(
    ("fmt", "ctype"), [("jws", SFR_JWS_CONTENT_TYPE), ("cose", SFR_COSE_CONTENT_TYPE)]
)
def test_statement_wraps_the_sfr(
    fmt: str, ctype: str, publisher: PrivateKey, review_key: tuple[PrivateKey, ProviderKeys]
) -> None:
    key, keys = review_key
    sfr = sign_report(report_bytes(), key, KID, format=fmt)  # type: ignore[arg-type]
    statement = SignedStatement.parse(
        sfr_statement(sfr, publisher, iss=STATEMENT_ISS, providers=keys)
    )
    assert statement.claims.sub == SUB384
    assert statement.claims.iss == STATEMENT_ISS
    assert statement.content_type == ctype
    assert statement.payload == sfr
    review = review_from_statement(statement.sign1.encode(), keys)
    assert review.provider_kid == KID
    assert review.receipts_verified is False
    assert review.max_open_cvss == 7.9 == max_open_cvss(review)
    assert review.has_issue_at_or_above(7.9)
    assert has_issue_at_or_above(review, 7.0)
    assert not review.has_issue_at_or_above(8.0)


@pytest.mark.parametrize(
    "threshold",
    [float("nan"), float("inf"), float("-inf"), -0.1, 10.1, 10**400, True, "7.0", None],
)
def test_a_threshold_that_is_not_a_cvss_score_is_refused(
    threshold: object, publisher: PrivateKey, review_key: tuple[PrivateKey, ProviderKeys]
) -> None:
    # NaN compares false with every score: as a threshold it would pass a CVSS 7.9 review.
    key, keys = review_key
    sfr = sign_report(report_bytes(), key, KID)
    review = review_from_statement(sfr_statement(sfr, publisher, iss=STATEMENT_ISS), keys)
    with pytest.raises(ConfigError, match="threshold"):
        review.has_issue_at_or_above(threshold)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="threshold"):
        has_issue_at_or_above(review, threshold)  # type: ignore[arg-type]


def test_cli_query_refuses_a_nan_threshold(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    publisher: PrivateKey,
    review_key: tuple[PrivateKey, ProviderKeys],
) -> None:
    key, _ = review_key
    (tmp_path / "k.pub").write_bytes(key.public_key.to_pem())
    (tmp_path / "ts").mkdir()
    sfr = sign_report(report_bytes(), key, KID)  # leaves a CVSS 7.9 issue open
    (tmp_path / "ts" / "review").write_bytes(sfr_statement(sfr, publisher, iss=STATEMENT_ISS))
    with pytest.raises(SystemExit) as usage:  # argparse's usage error: exit 2
        main(
            ["safe", "query", "--hash", SHA384, "--dir", str(tmp_path / "ts"),
             "--provider-key", f"{KID}={tmp_path / 'k.pub'}", "--threshold", "nan"]
        )  # fmt: skip
    assert usage.value.code == 2  # before the fix: exit 0, "acceptable", with a 7.9 issue open
    assert "threshold" in capsys.readouterr().err


def test_cli_query_is_not_acceptable_when_any_review_leaves_an_issue_open(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    publisher: PrivateKey,
    review_key: tuple[PrivateKey, ProviderKeys],
) -> None:
    # A clean review and one listing a CVSS 7.9 issue, of the same firmware: the issue is
    # open whatever the other review says (the question the attestation verifier asks).
    key, _ = review_key
    (tmp_path / "k.pub").write_bytes(key.public_key.to_pem())
    (tmp_path / "ts").mkdir()
    for name, data in (("clean", report_bytes(audit__issues=[])), ("open", report_bytes())):
        sfr = sign_report(data, key, KID)
        statement = sfr_statement(sfr, publisher, iss=STATEMENT_ISS)
        (tmp_path / "ts" / name).write_bytes(statement)
    argv = ["safe", "query", "--hash", SHA384, "--dir", str(tmp_path / "ts"),
            "--provider-key", f"{KID}={tmp_path / 'k.pub'}", "--json"]  # fmt: skip
    assert main(argv) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["acceptable"] is False
    assert sorted(r["at_or_above_threshold"] for r in result["reviews"]) == [False, True]
    assert main([*argv, "--threshold", "8.0"]) == 0


def test_statement_refuses_sfrs_that_do_not_verify(
    publisher: PrivateKey, review_key: tuple[PrivateKey, ProviderKeys]
) -> None:
    key, keys = review_key
    stranger = PrivateKey.generate(Algorithm.ES512)
    with pytest.raises(BadSignature):
        sfr_statement(
            sign_report(report_bytes(), stranger, KID), publisher, iss="x", providers=keys
        )
    with pytest.raises(UnknownIssuer):
        sfr_statement(
            sign_report(report_bytes(), key, "nobody"), publisher, iss="x", providers=keys
        )
    # Without providers it is only parsed (the publisher chose not to check).
    assert sfr_statement(sign_report(report_bytes(), stranger, KID), publisher, iss="x")


def test_statement_too_large_for_a_log_entry(
    publisher: PrivateKey, review_key: tuple[PrivateKey, ProviderKeys]
) -> None:
    key, keys = review_key
    manifest = [{"file_name": f"src/file{i}.c", "file_hash": "cd" * 64} for i in range(600)]
    sfr = sign_report(report_bytes(device__manifest=manifest), key, KID)
    with pytest.raises(PayloadTooLarge):
        sfr_statement(sfr, publisher, iss=STATEMENT_ISS, providers=keys)


def test_review_checks_subject_and_content_type(
    publisher: PrivateKey, review_key: tuple[PrivateKey, ProviderKeys]
) -> None:
    key, keys = review_key
    sfr = sign_report(report_bytes(), key, KID)
    wrong_sub = create_statement(
        publisher,
        sfr,
        iss=STATEMENT_ISS,
        sub=f"sha384:{'00' * 48}",
        content_type=SFR_JWS_CONTENT_TYPE,
    )
    with pytest.raises(VerificationFailed):
        review_from_statement(wrong_sub, keys)
    wrong_type = create_statement(
        publisher, sfr, iss=STATEMENT_ISS, sub=SUB384, content_type=SFR_COSE_CONTENT_TYPE
    )
    with pytest.raises(MalformedReport):
        review_from_statement(wrong_type, keys)
    not_sfr = create_statement(
        publisher, b"{}", iss=STATEMENT_ISS, sub=SUB384, content_type="application/json"
    )
    with pytest.raises(MalformedReport):
        review_from_statement(not_sfr, keys)


# --- against the service -----------------------------------------------------------------------


def _publish(server: ServiceThread, statement: bytes) -> bytes:
    with TransparencyClient(server.url) as client:
        return client.register(statement).transparent_statement


@pytest.mark.integration
def test_reviews_for_finds_verified_reviews_only(
    server: ServiceThread, publisher: PrivateKey, review_key: tuple[PrivateKey, ProviderKeys]
) -> None:
    key, keys = review_key
    with TransparencyClient(server.url) as client:
        service_keys = client.service_keys()
    older = sign_report(report_bytes(audit__completion_date="2022-01-01"), key, KID, format="cose")
    newer = sign_report(report_bytes(audit__issues=[]), key, KID)
    other_fw = sign_report(report_bytes(device__fw_hash_sha2_384="cc" * 48), key, KID)
    forged = sign_report(report_bytes(), PrivateKey.generate(Algorithm.ES512), KID)
    statements = [
        _publish(server, sfr_statement(s, publisher, iss=STATEMENT_ISS))
        for s in (older, newer, other_fw, forged)
    ]
    statements.append(
        _publish(server, create_statement(publisher, b"{}", iss=STATEMENT_ISS, sub=SUB384))
    )
    statements.append(b"not a statement")
    found = reviews_for(SUB384, statements, providers=keys, service_keys=service_keys)
    assert [r.format for r in found] == ["jws", "cose"]  # newest first, forged one skipped
    assert all(r.receipts_verified for r in found)
    assert [r.max_open_cvss for r in found] == [None, 7.9]
    assert [r.has_issue_at_or_above(7.0) for r in found] == [False, True]
    assert reviews_for(f"sha512:{SHA512}", statements, providers=keys)[0].subject == SUB384
    assert reviews_for(SUB384, statements, providers=ProviderKeys()) == []
    assert len(reviews_for(f"sha384:{'cc' * 48}", statements, providers=keys)) == 1
    # Receipts that do not verify against the service's keys: nothing counts.
    stranger = PrivateKey.generate(Algorithm.ES384).public_key
    assert (
        reviews_for(SUB384, statements, providers=keys, service_keys={stranger.kid: stranger}) == []
    )


# --- the command line --------------------------------------------------------------------------


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


@pytest.mark.integration
def test_cli_sign_verify_publish_query(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    server: ServiceThread,
    publisher: PrivateKey,
) -> None:
    review_key = PrivateKey.generate(Algorithm.ES512)
    (tmp_path / "srp" / "Example_Review_Provider").mkdir(parents=True)
    (tmp_path / "srp" / "Example_Review_Provider" / "erp.pub").write_bytes(
        review_key.public_key.to_pem()
    )
    (tmp_path / "review.pem").write_bytes(review_key.to_pem())
    (tmp_path / "publisher.pem").write_bytes(publisher.to_pem())
    (tmp_path / "report.json").write_bytes(report_bytes())
    srp = str(tmp_path / "srp")
    statements = tmp_path / "ts"
    statements.mkdir()

    for fmt in ("jws", "cose"):
        out = tmp_path / f"report.{fmt}"
        code, text = _run(
            capsys, "safe", "sign", str(tmp_path / "report.json"),
            "--key", str(tmp_path / "review.pem"), "--kid", "Example Review Provider",
            "--format", fmt, "--out", str(out),
        )  # fmt: skip
        assert code == 0, text
        code, text = _run(capsys, "safe", "verify", str(out), "--provider-key", srp, "--json")
        assert code == 0
        result = json.loads(text)
        assert result["verified"] is True
        assert result["kid"] == "Example Review Provider"
        assert result["format"] == fmt
        assert result["max_open_cvss"] == 7.9
        code, text = _run(
            capsys, "safe", "publish", str(out), "--url", server.url, "--key",
            str(tmp_path / "publisher.pem"), "--iss", STATEMENT_ISS, "--provider-key", srp,
            "--out", str(statements / f"{fmt}.ts"), "--json",
        )  # fmt: skip
        assert code == 0, text
        assert json.loads(text)["report_verified"] is True

    code, text = _run(capsys, "safe", "query", "--hash", SHA384, "--dir", str(statements),
                      "--provider-key", srp, "--json")  # fmt: skip
    assert code == 1  # every review leaves a 7.9 open
    result = json.loads(text)
    assert result["acceptable"] is False
    assert len(result["reviews"]) == 2
    assert {r["max_open_cvss"] for r in result["reviews"]} == {7.9}
    code, text = _run(capsys, "safe", "query", "--hash", SHA384, "--dir", str(statements),
                      "--provider-key", srp, "--threshold", "8.0")  # fmt: skip
    assert code == 0
    assert text.count("ok:") == 2
    for threshold in ("nan", "1e999", "-1", "10.5"):  # NaN compared false: every review passed
        with pytest.raises(SystemExit) as usage:
            _run(capsys, "safe", "query", "--hash", SHA384, "--dir", str(statements),
                 "--provider-key", srp, "--threshold", threshold)  # fmt: skip
        assert usage.value.code == 2, threshold
        err = capsys.readouterr().err
        assert "--threshold" in err, threshold
        assert "Traceback" not in err, threshold
    code, text = _run(capsys, "safe", "query", "--hash", "dd" * 48, "--dir", str(statements),
                      "--provider-key", srp)  # fmt: skip
    assert code == 1
    assert "no verified review" in text


def test_cli_verify_failures_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], review_key: tuple[PrivateKey, ProviderKeys]
) -> None:
    key, _ = review_key
    (tmp_path / "k.pub").write_bytes(key.public_key.to_pem())
    signed = sign_report(report_bytes(), key, KID)
    (tmp_path / "ok.jws").write_bytes(signed)
    (tmp_path / "bad.jws").write_bytes(
        signed[:-6] + (b"AAAAAA" if signed[-6:] != b"AAAAAA" else b"BBBBBB")
    )
    (tmp_path / "junk.jws").write_bytes(b"junk")
    alias = f"{KID}={tmp_path / 'k.pub'}"
    assert _run(capsys, "safe", "verify", str(tmp_path / "ok.jws"), "--provider-key", alias)[0] == 0
    code, text = _run(
        capsys, "safe", "verify", str(tmp_path / "bad.jws"), "--provider-key", alias, "--json"
    )
    assert code == 1
    assert json.loads(text) == {
        "ok": False,
        "verified": False,
        "error": {
            "code": "bad-signature",
            "message": json.loads(text)["error"]["message"],
            "check": None,
        },
    }
    code, text = _run(
        capsys, "safe", "verify", str(tmp_path / "junk.jws"), "--provider-key", alias, "--json"
    )
    assert (code, json.loads(text)["error"]["code"]) == (1, "malformed-report")
    code, _ = _run(
        capsys,
        "safe",
        "verify",
        str(tmp_path / "ok.jws"),
        "--provider-key",
        str(tmp_path / "k.pub"),
    )
    assert code == 1  # the key file's names are "k" and the folder's: not the report's kid
    code, _ = _run(
        capsys, "safe", "verify", str(tmp_path / "ok.jws"), "--provider-key", alias, "--at", "never"
    )
    assert code == 1


def test_provider_keys_from_folders(tmp_path: Path) -> None:
    a, b = PrivateKey.generate(Algorithm.ES512), PrivateKey.generate(Algorithm.ES384)
    (tmp_path / "NCC_Group").mkdir()
    (tmp_path / "NCC_Group" / "ncc_ecdsa_p521_public.pem").write_bytes(a.public_key.to_pem())
    (tmp_path / "Trail_of_Bits").mkdir()
    (tmp_path / "Trail_of_Bits" / "tob.pem").write_bytes(b.public_key.to_pem())
    (tmp_path / "Trail_of_Bits" / "README.md").write_text("not a key")
    keys = ProviderKeys.load([tmp_path])
    assert len(keys) == 2
    for name in (
        "NCC Group",
        "NCC_Group",
        "NCC Group - secp521r1",
        "ncc_ecdsa_p521",
        "ncc_ecdsa_p521_public",
    ):
        assert keys.lookup(name) == a.public_key
    assert keys.lookup("Trail of Bits - secp384r1") == b.public_key
    assert keys.lookup(a.public_key.kid) == a.public_key  # RFC 9679 thumbprint
    assert keys.lookup(b"NCC Group") == a.public_key
    for unknown in ("NCC Group - secp384r1", "ncc", b"\xff\xfe", ""):
        with pytest.raises(UnknownIssuer):
            keys.lookup(unknown)
    # The same name claimed by two keys is ambiguous: dropped, unless an alias settles it.
    (tmp_path / "NCC_Group" / "second.pem").write_bytes(b.public_key.to_pem())
    keys = ProviderKeys.load([tmp_path])
    with pytest.raises(UnknownIssuer):
        keys.lookup("NCC Group")
    keys = ProviderKeys.load(
        [tmp_path], {"NCC Group": tmp_path / "NCC_Group" / "ncc_ecdsa_p521_public.pem"}
    )
    assert keys.lookup("NCC Group") == a.public_key
    assert store().names() == []


def test_a_review_whose_receipt_is_from_the_future_is_refused(
    server: ServiceThread, publisher: PrivateKey, review_key: tuple[PrivateKey, ProviderKeys]
) -> None:
    key, keys = review_key
    with TransparencyClient(server.url) as client:
        service_keys = client.service_keys()
    sfr = sign_report(report_bytes(audit__issues=[]), key, KID)
    logged = _publish(server, sfr_statement(sfr, publisher, iss=STATEMENT_ISS))
    now = dt.datetime.now(dt.UTC)
    review_from_statement(logged, keys, service_keys=service_keys, now=now)
    # logged now: to a verifier whose clock reads a day earlier its receipt is from the future
    earlier = now - dt.timedelta(days=1)
    with pytest.raises(VerificationFailed) as caught:
        review_from_statement(logged, keys, service_keys=service_keys, now=earlier)
    assert type(caught.value) is VerificationFailed
    assert caught.value.code == "receipt-from-the-future"
    assert (
        reviews_for(SUB384, [logged], providers=keys, service_keys=service_keys, now=earlier) == []
    )


@pytest.mark.integration
def test_a_pinned_service_issuer_refuses_a_receipt_naming_another_service(
    server: ServiceThread,
    publisher: PrivateKey,
    review_key: tuple[PrivateKey, ProviderKeys],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key, keys = review_key
    with TransparencyClient(server.url) as client:
        service_keys = client.service_keys()
    sfr = sign_report(report_bytes(audit__issues=[]), key, KID)
    logged = _publish(server, sfr_statement(sfr, publisher, iss=STATEMENT_ISS))
    service = "https://transparency.example"  # the service's issuer (write_service_config)
    # no issuer pinned: the keys alone decide, as before; the right issuer passes too
    review_from_statement(logged, keys, service_keys=service_keys)
    review_from_statement(logged, keys, service_keys=service_keys, service_issuer=service)
    # the trusted key signed the receipt, but the verifier knows its service by another iss
    other = "https://another-ts.example"
    with pytest.raises(UnknownIssuer) as caught:
        review_from_statement(logged, keys, service_keys=service_keys, service_issuer=other)
    assert type(caught.value) is UnknownIssuer
    assert caught.value.code == "untrusted-service"
    assert caught.value.detail == (
        f"no receipt of the review of {SUB384!r} is by a trusted transparency service (the "
        f"receipt is issued by {service!r}, not by the transparency service {other!r})"
    )
    assert reviews_for(SUB384, [logged], providers=keys, service_keys=service_keys)
    assert not reviews_for(
        SUB384, [logged], providers=keys, service_keys=service_keys, service_issuer=other
    )
    # an issuer without keys checks nothing: refused, not ignored
    with pytest.raises(ConfigError, match="give the service keys too"):
        review_from_statement(logged, keys, service_issuer=service)
    # the command line: --service-issuer beside --service-keys
    folder = tmp_path / "reviews"
    folder.mkdir()
    (folder / "review.ts").write_bytes(logged)
    (tmp_path / "provider.pem").write_bytes(key.public_key.to_pem())
    (tmp_path / "keys.cbor").write_bytes(encode_key_set(list(service_keys.values())))
    query = ["safe", "query", "--hash", SUB384, "--dir", str(folder)]
    query += ["--provider-key", f"{KID}={tmp_path / 'provider.pem'}"]
    query += ["--service-keys", str(tmp_path / "keys.cbor"), "--json"]
    code, out = _run(capsys, *query, "--service-issuer", service)
    assert (code, len(json.loads(out)["reviews"])) == (0, 1)
    code, out = _run(capsys, *query, "--service-issuer", other)
    assert (code, json.loads(out)["reviews"]) == (1, [])
