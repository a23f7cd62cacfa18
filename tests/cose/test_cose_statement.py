"""Signed Statements: structure checks, hash envelope, log entries, create_statement."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time

import cbor2
import pytest

from ironroot.cose import (
    HASH_SHA384,
    HASH_SHA512,
    HashEnvelope,
    Limits,
    SignedStatement,
    create_statement,
    encode_cbor,
    sign1,
)
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import (
    LimitExceeded,
    MalformedStatement,
    PayloadMissing,
    PayloadTooLarge,
    VerificationFailed,
)

KEY = PrivateKey.generate(Algorithm.ES384)
CLAIMS = {1: "did:x509:0:sha256:abc::eku:1.3.6.1.5.5.7.3.3", 2: "firmware/bmc"}


def signed(
    protected: dict[object, object],
    unprotected: dict[object, object] | None = None,
    payload: bytes = b"payload",
    *,
    detached: bool = False,
) -> bytes:
    return sign1(KEY, payload, protected, unprotected, detached=detached).encode()


def raw(protected: object, unprotected: object, payload: object, signature: object) -> bytes:
    return encode_cbor(cbor2.CBORTag(18, [protected, unprotected, payload, signature]))


# --- positive ------------------------------------------------------------------------------


def test_create_and_parse() -> None:
    data = create_statement(
        KEY, b'{"fw": 1}', iss="vendor", sub="bmc", content_type="application/json", iat=1700
    )
    st = SignedStatement.parse(data)
    assert st.algorithm is Algorithm.ES384
    assert (st.claims.iss, st.claims.sub, st.claims.iat) == ("vendor", "bmc", 1700)
    assert st.kid == KEY.kid
    assert st.content_type == "application/json"
    assert st.hash_envelope is None
    assert st.x5chain == ()
    assert st.payload == b'{"fw": 1}'
    st.sign1.verify(KEY.verifier())


@pytest.mark.parametrize(("alg", "name"), [(-16, "sha256"), (-43, "sha384"), (-44, "sha512")])
def test_hash_envelope(alg: int, name: str) -> None:
    preimage = b"\x7fELF firmware image" * 100
    data = create_statement(
        KEY,
        preimage,
        iss="vendor",
        sub="bmc",
        hash_envelope=True,
        hash_alg=alg,
        preimage_content_type="application/octet-stream",
        location="https://example.com/fw.bin",
    )
    st = SignedStatement.parse(data)
    assert st.payload == hashlib.new(name, preimage).digest()
    assert st.hash_envelope == HashEnvelope(
        hash_alg=alg,
        preimage_content_type="application/octet-stream",
        location="https://example.com/fw.bin",
    )
    assert st.content_type is None
    assert 3 not in st.sign1.protected
    st.sign1.verify(KEY.verifier())


def test_optional_headers_and_other_claims() -> None:
    cert_a, cert_b = b"\x30\x03\x02\x01\x01", b"\x30\x03\x02\x01\x02"
    data = signed(
        {
            3: 50,
            15: {**CLAIMS, 4: 2000, "custom": [1, 2]},
            33: [cert_a, cert_b],
            34: [-16, hashlib.sha256(cert_a).digest()],
        },
        {99: "unprotected extra"},
    )
    st = SignedStatement.parse(data)
    assert st.content_type == 50
    assert st.kid is None
    assert st.x5chain == (cert_a, cert_b)
    assert st.x5t == (-16, hashlib.sha256(cert_a).digest())
    # x5t alone (the certificate found elsewhere) is not compared with anything here
    assert SignedStatement.parse(signed({15: CLAIMS, 34: [-16, bytes(32)]})).x5t == (-16, bytes(32))
    assert dict(st.claims.other) == {4: 2000, "custom": [1, 2]}
    single = SignedStatement.parse(signed({15: CLAIMS, 33: cert_a}))
    assert single.x5chain == (cert_a,)


def test_crit_with_understood_labels_is_fine() -> None:
    st = SignedStatement.parse(signed({2: [15], 15: CLAIMS}))
    assert st.claims.iss == CLAIMS[1]


# --- negative: exact classes ------------------------------------------------------------


BAD_STATEMENTS: dict[str, bytes] = {
    "crit null": bytes.fromhex("d28446a201382202f6a04040"),
    "crit null, signed": raw(encode_cbor({1: -35, 2: None, 15: CLAIMS}), {}, b"x", b"s"),
    "crit a map": raw(encode_cbor({1: -35, 2: {15: 1}, 15: CLAIMS}), {}, b"x", b"s"),
    "crit empty": raw(encode_cbor({1: -35, 2: [], 15: CLAIMS}), {}, b"x", b"s"),
    "crit a text": raw(encode_cbor({1: -35, 2: "15", 15: CLAIMS}), {}, b"x", b"s"),
    "not cbor": b"\xff\xff",
    "empty": b"",
    "wrong tag": encode_cbor(cbor2.CBORTag(17, [encode_cbor({1: -35, 15: CLAIMS}), {}, b"x", b""])),
    "untagged": encode_cbor([encode_cbor({1: -35, 15: CLAIMS}), {}, b"x", b"s"]),
    "trailing bytes": signed({15: CLAIMS}) + b"\x00",
    "indefinite array": b"\xd2\x9f" + signed({15: CLAIMS})[2:] + b"\xff",
    "duplicate keys in protected": raw(
        b"\xa3\x01\x38\x22\x0f" + encode_cbor(CLAIMS) + b"\x01\x38\x22", {}, b"x", b"s"
    ),
    "duplicate claim keys": raw(
        b"\xa2\x01\x38\x22\x0f\xa3\x01\x61a\x02\x61b\x01\x61c", {}, b"x", b"s"
    ),
    "missing alg": raw(encode_cbor({15: CLAIMS}), {}, b"x", b"s"),
    "unknown alg": raw(encode_cbor({1: -65535, 15: CLAIMS}), {}, b"x", b"s"),
    "text alg": raw(encode_cbor({1: "ES256", 15: CLAIMS}), {}, b"x", b"s"),
    "no cwt claims": signed({3: "text/plain"}),
    "claims unprotected": signed({3: "text/plain"}, {15: CLAIMS}),
    "claims not a map": signed({15: [CLAIMS[1], CLAIMS[2]]}),
    "missing iss": signed({15: {2: "sub"}}),
    "empty iss": signed({15: {1: "", 2: "sub"}}),
    "bytes iss": signed({15: {1: b"iss", 2: "sub"}}),
    "int iss": signed({15: {1: 7, 2: "sub"}}),
    "missing sub": signed({15: {1: "iss"}}),
    "empty sub": signed({15: {1: "iss", 2: ""}}),
    "non-text sub": signed({15: {1: "iss", 2: b"sub"}}),
    "iat text": signed({15: {**CLAIMS, 6: "2024"}}),
    "iat bool": signed({15: {**CLAIMS, 6: True}}),
    "iat null": signed({15: {**CLAIMS, 6: None}}),  # null is not an absent iat
    "claim key bytes": signed({15: {**CLAIMS, b"k": 1}}),
    "type with hash envelope": signed({3: "a/b", 15: CLAIMS, 258: -16}, {}, bytes(32)),
    "hash envelope unknown alg": signed({15: CLAIMS, 258: -99}, {}, bytes(32)),
    "hash envelope text alg": signed({15: CLAIMS, 258: "sha256"}, {}, bytes(32)),
    "hash envelope wrong length": signed({15: CLAIMS, 258: -16}, {}, bytes(48)),
    "preimage type without 258": signed({15: CLAIMS, 259: "text/plain"}),
    "location without 258": signed({15: CLAIMS, 260: "https://x"}),
    "location not text": signed({15: CLAIMS, 258: -16, 260: 5}, {}, bytes(32)),
    "258 unprotected": signed({15: CLAIMS}, {258: -16}, bytes(32)),
    "content type unprotected": signed({15: CLAIMS}, {3: "text/plain"}),
    "content type negative": signed({3: -1, 15: CLAIMS}),
    "content type bytes": signed({3: b"text", 15: CLAIMS}),
    "kid unprotected": signed({15: CLAIMS}, {4: b"kid"}),
    "kid not bytes": signed({4: "kid", 15: CLAIMS}),
    "kid empty": signed({4: b"", 15: CLAIMS}),
    "x5chain unprotected": signed({15: CLAIMS}, {33: b"\x30\x00"}),
    "x5chain empty array": signed({15: CLAIMS, 33: []}),
    "x5chain text": signed({15: CLAIMS, 33: ["cert"]}),
    "x5chain empty cert": signed({15: CLAIMS, 33: b""}),
    "x5t not pair": signed({15: CLAIMS, 34: [-16]}),
    "x5t wrong length": signed({15: CLAIMS, 34: [-16, bytes(20)]}),
    "x5t text alg": signed({15: CLAIMS, 34: ["sha256", bytes(32)]}),
    "crit unknown label": signed({2: [77], 15: CLAIMS, 77: 1}),
    "label in both buckets": raw(encode_cbor({1: -35, 15: CLAIMS, 77: 1}), {77: 2}, b"x", b"s"),
}


@pytest.mark.parametrize("case", sorted(BAD_STATEMENTS))
def test_malformed_statements(case: str) -> None:
    with pytest.raises(MalformedStatement) as info:
        SignedStatement.parse(BAD_STATEMENTS[case])
    assert type(info.value) is MalformedStatement


@pytest.mark.parametrize("label", [4, 5], ids=["exp", "nbf"])
def test_a_date_written_as_null_is_not_an_absent_one(label: int) -> None:
    # An exp written as null read as "no exp": a statement its issuer bounded was valid forever.
    statement = SignedStatement.parse(signed({15: {**CLAIMS, label: None}}))
    with pytest.raises(MalformedStatement, match=f"CWT claim {label} of the statement is not"):
        statement.check_validity(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))


@pytest.mark.parametrize(
    ("protected", "payload"),
    [
        ({3: None, 15: CLAIMS}, b"payload"),
        ({4: None, 15: CLAIMS}, b"payload"),
        ({15: CLAIMS, 258: None}, bytes(32)),
        ({15: CLAIMS, 258: -16, 259: None}, bytes(32)),
        ({15: CLAIMS, 258: -16, 260: None}, bytes(32)),
    ],
    ids=["content type", "kid", "payload-hash-alg", "preimage content type", "location"],
)
def test_a_protected_header_written_as_null_is_not_an_absent_one(
    protected: dict[object, object], payload: bytes
) -> None:
    # {258: null} parsed as a plain statement (no hash envelope), {4: null} as one without a
    # kid: the signed header says a parameter is there, and a peer acting on its presence reads
    # another statement than the service's policy did. RFC 9052 gives none of them a null form.
    label = max(k for k in protected if k != 15)
    with pytest.raises(MalformedStatement, match=f"^header {label} must not be null$") as info:
        SignedStatement.parse(signed(protected, payload=payload))
    assert type(info.value) is MalformedStatement


@pytest.mark.parametrize("zone", ["Etc/GMT-12", "Etc/GMT+12"])
def test_a_naive_now_is_utc_whatever_the_process_time_zone(
    zone: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # now.timestamp() read a naive now in the process's local zone (a global): twelve hours
    # east, a statement a minute past its exp still passed; verify_x5chain takes naive as UTC.
    exp, nbf = 1_800_000_000, 1_700_000_000
    statement = SignedStatement.parse(signed({15: {**CLAIMS, 4: exp, 5: nbf}}))
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        after = dt.datetime.fromtimestamp(exp + 60, dt.UTC).replace(tzinfo=None)
        with pytest.raises(VerificationFailed) as info:
            statement.check_validity(after)
        assert info.value.code == "statement-expired"
        before = dt.datetime.fromtimestamp(nbf - 60, dt.UTC).replace(tzinfo=None)
        with pytest.raises(VerificationFailed) as info:
            statement.check_validity(before)
        assert info.value.code == "statement-not-yet-valid"
        statement.check_validity(dt.datetime.fromtimestamp(exp - 60, dt.UTC).replace(tzinfo=None))
    finally:
        monkeypatch.undo()
        time.tzset()


_LEAF, _ISSUER = b"\x30\x03\x02\x01\x01", b"\x30\x03\x02\x01\x02"


@pytest.mark.parametrize(
    ("x5t", "message"),
    [
        # the issuer's thumbprint, or a zero one: the signed header names two signers
        (
            [-16, hashlib.sha256(_ISSUER).digest()],
            "x5t (34) does not identify the leaf certificate of x5chain (33)",
        ),
        ([-43, bytes(48)], "x5t (34) does not identify the leaf certificate of x5chain (33)"),
        # a thumbprint that cannot be compared is refused beside x5chain, not ignored
        (
            [-15, hashlib.sha256(_LEAF).digest()[:8]],
            "x5t (34) hash algorithm -15 cannot be checked against x5chain (33)",
        ),
    ],
)
def test_x5t_that_is_not_the_x5chain_leaf_is_refused(x5t: list[object], message: str) -> None:
    # RFC 9360: x5t identifies the end-entity certificate, the first of x5chain. Both were
    # parsed and never compared: a reader taking x5t for the signer's certificate would trust
    # another certificate than the one whose key verifies the statement.
    data = signed({15: CLAIMS, 33: [_LEAF, _ISSUER], 34: x5t})
    with pytest.raises(MalformedStatement, match=f"^{re.escape(message)}$") as info:
        SignedStatement.parse(data)
    assert type(info.value) is MalformedStatement
    for alg, name in ((-16, "sha256"), (-43, "sha384"), (-44, "sha512")):
        good = [alg, hashlib.new(name, _LEAF).digest()]
        assert SignedStatement.parse(signed({15: CLAIMS, 33: [_LEAF, _ISSUER], 34: good})).x5t


def test_unknown_alg_keeps_a_specific_code() -> None:
    with pytest.raises(MalformedStatement) as info:
        SignedStatement.parse(BAD_STATEMENTS["unknown alg"])
    assert info.value.code == "unsupported-algorithm"


def test_nesting_deeper_than_limit() -> None:
    deep: object = 1
    for _ in range(20):
        deep = [deep]
    data = signed({15: {**CLAIMS, "deep": deep}})
    with pytest.raises(LimitExceeded):
        SignedStatement.parse(data)


def test_too_many_items() -> None:
    data = signed({15: {**CLAIMS, "many": list(range(2000))}})
    with pytest.raises(LimitExceeded):
        SignedStatement.parse(data)
    with pytest.raises(LimitExceeded):
        SignedStatement.parse(signed({15: CLAIMS}), Limits(max_items=1))


def test_too_many_certificates() -> None:
    data = signed({15: CLAIMS, 33: [b"\x30\x00"] * 9})
    with pytest.raises(LimitExceeded):
        SignedStatement.parse(data)


def test_oversize_statement() -> None:
    data = signed({15: CLAIMS}, {}, b"\x00" * 65536)
    with pytest.raises(PayloadTooLarge):
        SignedStatement.parse(data)


# --- log entry -----------------------------------------------------------------------------


def test_log_entry_drops_unprotected_header() -> None:
    data = signed({15: CLAIMS}, {99: "dropped", 394: [b"receipt"]})
    st = SignedStatement.parse(data)
    entry = st.log_entry()
    assert entry != data
    assert entry == signed_without_unprotected(st)
    assert SignedStatement.parse(entry).log_entry() == entry


def signed_without_unprotected(st: SignedStatement) -> bytes:
    return encode_cbor(
        cbor2.CBORTag(18, [st.sign1.protected_bytes, {}, st.payload, st.sign1.signature])
    )


def test_log_entry_rewrites_non_shortest_forms() -> None:
    # protected = {1: -7, 15: {1: "iss", 2: "sub"}}: 15 bytes, written out by hand.
    protected = bytes.fromhex("a201260fa2016369737302637375 62".replace(" ", ""))
    assert len(protected) == 15
    signature = bytes(range(64))
    data = (
        bytes.fromhex("d812")  # tag 18 with a one-byte argument (non-shortest)
        + bytes.fromhex("9804")  # array(4) with a one-byte length (non-shortest)
        + bytes.fromhex("59000f")  # bstr(15) with a two-byte length
        + protected
        + bytes.fromhex("a118634101")  # unprotected {99: h'01'}
        + bytes.fromhex("5a00000003616263")  # bstr(3) "abc" with a four-byte length
        + bytes.fromhex("5840")  # bstr(64)
        + signature
    )
    expected = (
        bytes.fromhex("d284")
        + bytes.fromhex("4f")
        + protected
        + bytes.fromhex("a0")
        + bytes.fromhex("43616263")
        + bytes.fromhex("5840")
        + signature
    )
    st = SignedStatement.parse(data)
    assert st.sign1.protected_bytes == protected
    assert st.log_entry() == expected


def test_log_entry_keeps_protected_bytes_as_received() -> None:
    # A protected map with a non-shortest integer inside: the bstr content is signed, so it
    # must be kept byte for byte even though it is not deterministic CBOR.
    protected = bytes.fromhex("a21801260fa201636973730263737562")
    st = SignedStatement.parse(raw(protected, {}, b"abc", b"s"))
    assert st.log_entry() == bytes.fromhex("d284") + b"\x50" + protected + bytes.fromhex(
        "a0436162634173"
    )


# --- create_statement argument checks ------------------------------------------------------


def test_create_statement_argument_errors() -> None:
    with pytest.raises(MalformedStatement):
        create_statement(KEY, b"x", iss="", sub="s")
    with pytest.raises(MalformedStatement):
        create_statement(KEY, b"x", iss="i", sub="")
    with pytest.raises(MalformedStatement):
        create_statement(KEY, b"x", iss="i", sub="s", hash_envelope=True, content_type="a/b")
    with pytest.raises(MalformedStatement):
        create_statement(KEY, b"x", iss="i", sub="s", hash_envelope=True, hash_alg=-15)
    with pytest.raises(MalformedStatement):
        create_statement(KEY, b"x", iss="i", sub="s", location="https://x")
    with pytest.raises(PayloadTooLarge):
        create_statement(KEY, bytes(70000), iss="i", sub="s")


def test_create_statement_options() -> None:
    chain = [b"\x30\x01\x00", b"\x30\x01\x01"]
    st = SignedStatement.parse(
        create_statement(
            KEY, b"x" * 70000, iss="i", sub="s", hash_envelope=True, hash_alg=HASH_SHA384,
            x5chain=chain, include_kid=False,
        )
    )  # fmt: skip
    assert st.kid is None
    assert st.x5chain == tuple(chain)
    assert st.hash_envelope is not None
    assert st.hash_envelope.hash_alg == HASH_SHA384
    assert st.hash_envelope.preimage_content_type is None
    one = SignedStatement.parse(
        create_statement(KEY, b"x", iss="i", sub="s", x5chain=chain[:1], hash_envelope=True,
                         hash_alg=HASH_SHA512)
    )  # fmt: skip
    assert one.x5chain == (chain[0],)
    assert one.sign1.protected[33] == chain[0]


def test_detached_payload_is_payload_missing() -> None:
    with pytest.raises(PayloadMissing):
        SignedStatement.parse(signed({15: CLAIMS}, detached=True))


def test_create_statement_adds_other_protected_headers() -> None:
    """``headers=``: more protected header parameters (a profile's own, signed with the rest
    and kept in the log entry); parsing keeps them in ``sign1.protected``."""
    st = SignedStatement.parse(
        create_statement(
            KEY, b"x", iss="i", sub="s", hash_envelope=True, hash_alg=HASH_SHA384,
            headers={"example-label": [1, b"2"], -65537: "private"},
        )
    )  # fmt: skip
    assert st.sign1.protected["example-label"] == [1, b"2"]
    assert st.sign1.protected[-65537] == "private"
    assert st.payload == hashlib.sha384(b"x").digest()
    assert st.log_entry().startswith(b"\xd2\x84")


@pytest.mark.parametrize(
    ("label", "message"),
    [
        (1, "header 1 is set by create_statement, not by headers="),
        (3, "header 3 is set by create_statement, not by headers="),
        (15, "header 15 is set by create_statement, not by headers="),
        (258, "header 258 is set by create_statement, not by headers="),
        (394, "header 394 is not a protected header of a Signed Statement"),
        (2, "header 2 is set by create_statement, not by headers="),
        (1.0, "header label 1.0 is not an integer or text"),
        (True, "header label True is not an integer or text"),
    ],
)
def test_create_statement_refuses_headers_it_sets_itself(label: object, message: str) -> None:
    """A header of ``headers=`` must not replace what the statement's own arguments set (an
    ``alg`` the signer does not use, a second ``iss``) nor be one no protected header holds."""
    with pytest.raises(MalformedStatement) as exc:
        create_statement(KEY, b"x", iss="i", sub="s", headers={label: 1})  # type: ignore[dict-item]
    assert exc.value.detail == message


def _nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("headers", "error", "message"),
    [
        ({1 << 64: 1}, MalformedStatement,
         "header label 18446744073709551616 is past CBOR's integers (-2**64 to 2**64 - 1)"),
        ({-(1 << 64) - 1: 1}, MalformedStatement,
         "header label -18446744073709551617 is past CBOR's integers (-2**64 to 2**64 - 1)"),
        ({"deep": _nested(16)}, LimitExceeded, "CBOR nesting deeper than 16"),
    ],
)  # fmt: skip
def test_create_statement_refuses_headers_its_parser_would_refuse(
    headers: dict[object, object], error: type[Exception], message: str
) -> None:
    """Old behaviour: ``headers=`` with a label past CBOR's integers (encoded as a bignum tag,
    no label) or a value nested past the limits was signed, and the statement was refused by
    every parser, ``SignedStatement.parse`` first: nothing is signed that cannot be read."""
    with pytest.raises(error) as exc:
        create_statement(KEY, b"x", iss="i", sub="s", headers=headers)  # type: ignore[arg-type]
    assert exc.value.detail == message  # type: ignore[attr-defined]
    edge = {(1 << 64) - 1: 1, -(1 << 64): 2, "deep": _nested(15)}
    st = SignedStatement.parse(create_statement(KEY, b"x", iss="i", sub="s", headers=edge))  # type: ignore[arg-type]
    assert st.sign1.protected[(1 << 64) - 1] == 1
