"""Registration policy: every 'must reject' of the service, each asserting the exact error."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from pathlib import Path

import cbor2
import pytest
from _tx_helpers import NOW, VENDOR_ISS, der, make_ca_chain, write_config

from ironroot.cose import CWT_CLAIMS, KID, create_statement, sign1
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import (
    AlgorithmNotAccepted,
    BadSignature,
    CertificateExpired,
    ChainNotTrusted,
    ConfigError,
    LimitExceeded,
    MalformedInput,
    MalformedStatement,
    PayloadTooLarge,
    PolicyRejected,
    UnknownIssuer,
)
from ironroot.transparency import RegistrationPolicy, load_config
from ironroot.transparency._policy import MAX_POLICY_CHARS

STORE_INDEPENDENT = True  # no test here opens a log store (conftest.py)

EKU_CODE_SIGNING = "1.3.6.1.5.5.7.3.3"


def _policy(data: Path, **kwargs: object) -> RegistrationPolicy:
    write_config(data, **kwargs)  # type: ignore[arg-type]
    return RegistrationPolicy(load_config(data))


@pytest.fixture
def vendor() -> PrivateKey:
    return PrivateKey.generate(Algorithm.ES256)


def _stmt(key: PrivateKey, **kw: object) -> bytes:
    args: dict[str, object] = {"iss": VENDOR_ISS, "sub": "pkg:firmware/bmc@1.2.3"}
    args.update(kw)
    payload = args.pop("payload", b'{"release": "1.2.3"}')
    return create_statement(key, payload, **args)  # type: ignore[arg-type]


def test_accepts_known_issuer_for_every_algorithm(tmp_path: Path) -> None:
    keys = [PrivateKey.generate(a) for a in Algorithm if a is not Algorithm.HSS_LMS]
    policy = _policy(tmp_path, issuers=[(VENDOR_ISS, k) for k in keys])
    for key in keys:
        parsed = policy.check(_stmt(key, content_type="application/json"), NOW)
        assert parsed.claims.iss == VENDOR_ISS
        assert parsed.algorithm is key.algorithm


def test_bad_signature(tmp_path: Path, vendor: PrivateKey) -> None:
    policy = _policy(tmp_path, issuers=[(VENDOR_ISS, vendor)])
    data = bytearray(_stmt(vendor))
    data[-1] ^= 0x01
    with pytest.raises(BadSignature):
        policy.check(bytes(data), NOW)


def test_flipped_payload_bit_is_bad_signature(tmp_path: Path, vendor: PrivateKey) -> None:
    policy = _policy(tmp_path, issuers=[(VENDOR_ISS, vendor)])
    good = _stmt(vendor, payload=b"A" * 40)
    bad = good.replace(b"A" * 40, b"A" * 39 + b"B")
    with pytest.raises(BadSignature):
        policy.check(bad, NOW)


def test_unknown_issuer(tmp_path: Path, vendor: PrivateKey) -> None:
    policy = _policy(tmp_path, issuers=[(VENDOR_ISS, vendor)])
    with pytest.raises(UnknownIssuer):
        policy.check(_stmt(vendor, iss="https://other.example"), NOW)


def test_unknown_kid(tmp_path: Path, vendor: PrivateKey) -> None:
    policy = _policy(tmp_path, issuers=[(VENDOR_ISS, vendor)])
    stranger = PrivateKey.generate(Algorithm.ES256)
    with pytest.raises(UnknownIssuer):
        policy.check(_stmt(stranger), NOW)


def test_empty_trust_configuration_accepts_nothing(tmp_path: Path, vendor: PrivateKey) -> None:
    policy = _policy(tmp_path)
    with pytest.raises(UnknownIssuer):
        policy.check(_stmt(vendor), NOW)


def test_algorithm_not_accepted(tmp_path: Path) -> None:
    key = PrivateKey.generate(Algorithm.ES512)
    policy = _policy(tmp_path, issuers=[(VENDOR_ISS, key)], accepted=["ES256", "ML-DSA-65"])
    with pytest.raises(AlgorithmNotAccepted):
        policy.check(_stmt(key), NOW)


def test_statement_over_size_limit(tmp_path: Path, vendor: PrivateKey) -> None:
    policy = _policy(tmp_path, issuers=[(VENDOR_ISS, vendor)], max_statement_bytes=1000)
    with pytest.raises(PayloadTooLarge):
        policy.check(_stmt(vendor, payload=b"x" * 2000), NOW)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff",
        b"\xd2",  # tag 18 with nothing inside
        cbor2.dumps(cbor2.CBORTag(17, [b"", {}, b"", b""])),  # wrong tag (COSE_Mac0)
        cbor2.dumps(cbor2.CBORTag(18, [b"", {}, b""])),  # three items
        cbor2.dumps(cbor2.CBORTag(18, "not an array")),
    ],
    ids=["empty", "garbage", "truncated", "wrong-tag", "short-array", "not-array"],
)
def test_malformed_cbor(tmp_path: Path, vendor: PrivateKey, data: bytes) -> None:
    policy = _policy(tmp_path, issuers=[(VENDOR_ISS, vendor)])
    with pytest.raises(MalformedInput):
        policy.check(data, NOW)


def test_trailing_bytes(tmp_path: Path, vendor: PrivateKey) -> None:
    policy = _policy(tmp_path, issuers=[(VENDOR_ISS, vendor)])
    with pytest.raises(MalformedStatement):
        policy.check(_stmt(vendor) + b"\x00", NOW)


def test_deep_nesting(tmp_path: Path, vendor: PrivateKey) -> None:
    policy = _policy(tmp_path, issuers=[(VENDOR_ISS, vendor)])
    deep: object = 1
    for _ in range(100):
        deep = [deep]
    protected = cbor2.dumps({1: -7, 15: {1: VENDOR_ISS, 2: "s"}, 99: deep})
    data = cbor2.dumps(cbor2.CBORTag(18, [protected, {}, b"p", b"s" * 64]))
    with pytest.raises((LimitExceeded, MalformedStatement)):
        policy.check(data, NOW)


def test_missing_cwt_claims(tmp_path: Path, vendor: PrivateKey) -> None:
    policy = _policy(tmp_path, issuers=[(VENDOR_ISS, vendor)])
    protected = cbor2.dumps({1: -7, 4: vendor.kid})
    data = cbor2.dumps(cbor2.CBORTag(18, [protected, {}, b"p", b"s" * 64]))
    with pytest.raises(MalformedStatement):
        policy.check(data, NOW)


@pytest.mark.parametrize(
    "claims",
    [{1: VENDOR_ISS}, {2: "sub"}, {1: "", 2: "sub"}, {1: VENDOR_ISS, 2: 7}, {1: b"x", 2: "s"}],
    ids=["no-sub", "no-iss", "empty-iss", "int-sub", "bytes-iss"],
)
def test_malformed_cwt_claims(
    tmp_path: Path, vendor: PrivateKey, claims: dict[int, object]
) -> None:
    policy = _policy(tmp_path, issuers=[(VENDOR_ISS, vendor)])
    protected = cbor2.dumps({1: -7, 4: vendor.kid, 15: claims})
    data = cbor2.dumps(cbor2.CBORTag(18, [protected, {}, b"p", b"s" * 64]))
    with pytest.raises(MalformedStatement):
        policy.check(data, NOW)


def test_hash_envelope_with_content_type_is_rejected(tmp_path: Path, vendor: PrivateKey) -> None:
    policy = _policy(tmp_path, issuers=[(VENDOR_ISS, vendor)])
    digest = hashlib.sha256(b"firmware").digest()
    protected = cbor2.dumps(
        {1: -7, 3: "application/json", 4: vendor.kid, 15: {1: VENDOR_ISS, 2: "s"}, 258: -16},
        canonical=True,
    )
    import ironroot.cose as cose

    tbs = cbor2.dumps(["Signature1", protected, b"", digest])
    signature = vendor.sign(tbs)
    data = cbor2.dumps(cbor2.CBORTag(18, [protected, {}, digest, signature]))
    assert cose.Sign1.decode(data).payload == digest
    with pytest.raises(MalformedStatement):
        policy.check(data, NOW)


def test_hash_envelope_accepted(tmp_path: Path, vendor: PrivateKey) -> None:
    policy = _policy(tmp_path, issuers=[(VENDOR_ISS, vendor)])
    data = _stmt(
        vendor,
        payload=b"firmware image bytes",
        hash_envelope=True,
        preimage_content_type="application/octet-stream",
        location="https://vendor.example/fw.bin",
    )
    parsed = policy.check(data, NOW)
    assert parsed.hash_envelope is not None
    assert parsed.payload == hashlib.sha256(b"firmware image bytes").digest()


def test_cel_policy(tmp_path: Path, vendor: PrivateKey) -> None:
    policy = _policy(
        tmp_path,
        issuers=[(VENDOR_ISS, vendor)],
        policy='sub.startsWith("pkg:firmware/") && alg == "ES256"',
    )
    policy.check(_stmt(vendor), NOW)
    with pytest.raises(PolicyRejected):
        policy.check(_stmt(vendor, sub="pkg:npm/left-pad@1.0.0"), NOW)


def test_cel_policy_error_fails_closed(tmp_path: Path, vendor: PrivateKey) -> None:
    policy = _policy(tmp_path, issuers=[(VENDOR_ISS, vendor)], policy="claims.nonexistent > 1")
    with pytest.raises(PolicyRejected):
        policy.check(_stmt(vendor), NOW)


def test_cel_policy_that_does_not_compile(tmp_path: Path, vendor: PrivateKey) -> None:
    with pytest.raises(ConfigError):
        _policy(tmp_path, issuers=[(VENDOR_ISS, vendor)], policy="sub ==")


@pytest.mark.parametrize(
    ("value", "expression"),
    [
        (cbor2.CBORTag(37, b"\x01" * 16), 'claims["-70001"] == "01010101010101010101010101010101"'),
        (cbor2.CBORTag(1, 1700000000), 'claims["-70001"] == 1700000000'),
        ([cbor2.CBORTag(1, 1.5)], 'claims["-70001"] == [1.5]'),
        ({"a": cbor2.CBORSimpleValue(99)}, 'claims["-70001"].a == null'),
        (cbor2.undefined, 'claims["-70001"] == null'),
    ],
)
def test_cel_policy_sees_tagged_and_simple_claims(
    tmp_path: Path, vendor: PrivateKey, value: object, expression: str
) -> None:
    # CEL had no value for them: the context did not convert and every policy, even "true",
    # rejected a statement carrying such a claim.
    claims = {1: VENDOR_ISS, 2: "pkg:firmware/bmc@1.2.3", -70001: value}
    data = sign1(vendor, b"payload", {KID: vendor.kid, CWT_CLAIMS: claims}).encode()
    issuers = [(VENDOR_ISS, vendor)]
    _policy(tmp_path, issuers=issuers, policy="true").check(data, NOW)
    _policy(tmp_path, issuers=issuers, policy=expression).check(data, NOW)
    with pytest.raises(PolicyRejected):
        _policy(tmp_path, issuers=issuers, policy=f"!({expression})").check(data, NOW)


def test_cel_policy_sees_coap_content_format_zero(tmp_path: Path, vendor: PrivateKey) -> None:
    # CoAP content format 0 (text/plain; charset=utf-8) was falsy and reached CEL as "", as
    # if the statement had no content type.
    claims = {1: VENDOR_ISS, 2: "pkg:firmware/bmc@1.2.3"}
    plain = sign1(vendor, b"text", {3: 0, KID: vendor.kid, CWT_CLAIMS: claims}).encode()
    digest = hashlib.sha256(b"text").digest()
    envelope = {258: -16, 259: 0, KID: vendor.kid, CWT_CLAIMS: claims}
    hashed = sign1(vendor, digest, envelope).encode()
    issuers = [(VENDOR_ISS, vendor)]
    _policy(tmp_path, issuers=issuers, policy="content_type == 0").check(plain, NOW)
    policy = _policy(tmp_path, issuers=issuers, policy="preimage_content_type == 0")
    policy.check(hashed, NOW)
    with pytest.raises(PolicyRejected):
        policy.check(_stmt(vendor, hash_envelope=True), NOW)  # no preimage content type: ""


@pytest.mark.parametrize(
    ("extra", "expression"),
    [
        ({"iss": "https://other.example"}, 'claims.iss == "https://other.example"'),
        ({8: "y", "8": "x"}, 'claims["8"] == "x"'),
    ],
)
def test_cel_policy_refuses_claims_that_share_a_name(
    tmp_path: Path, vendor: PrivateKey, extra: dict[object, str], expression: str
) -> None:
    # The text claim "iss" and the registered claim 1 were both claims.iss in CEL, the one
    # encoded last winning: an issuer passed a policy on claims.iss as another issuer.
    claims = {1: VENDOR_ISS, 2: "pkg:firmware/bmc@1.2.3", **extra}
    data = sign1(vendor, b"payload", {KID: vendor.kid, CWT_CLAIMS: claims}).encode()
    policy = _policy(tmp_path, issuers=[(VENDOR_ISS, vendor)], policy=expression)
    with pytest.raises(PolicyRejected, match="two CWT claims go by the name"):
        policy.check(data, NOW)


@pytest.mark.parametrize("length", [MAX_POLICY_CHARS + 1, 70_000])
def test_cel_policy_too_long(tmp_path: Path, vendor: PrivateKey, length: int) -> None:
    # A syntax error past column 65,534 made the CEL parser panic (PanicException, a
    # BaseException): a traceback at start-up instead of ConfigError.
    text = 'sub == "' + "a" * (length - 11) + '" )'
    assert len(text) == length
    with pytest.raises(ConfigError, match="longer than"):
        _policy(tmp_path, issuers=[(VENDOR_ISS, vendor)], policy=text)


def test_a_cel_policy_chained_deeper_than_the_stack_holds_is_refused(
    tmp_path: Path, vendor: PrivateKey
) -> None:
    """Compiling and evaluating a chain of operators recurses as deep as it is long: refused
    from its text before the CEL library reads it (it could end the process)."""
    text = "size(payload) > 0 && " + "1 + " * 3000 + "1 > 0"
    with pytest.raises(ConfigError) as caught:
        _policy(tmp_path, issuers=[(VENDOR_ISS, vendor)], policy=text)
    assert type(caught.value) is ConfigError
    assert caught.value.detail.startswith(
        "transparency.policy nests its operators 3001 deep, more than the limit of 128"
    )


def test_cel_policy_at_the_length_limit(tmp_path: Path, vendor: PrivateKey) -> None:
    text = 'sub == "' + "a" * (MAX_POLICY_CHARS - 9) + '"'
    assert len(text) == MAX_POLICY_CHARS
    with pytest.raises(PolicyRejected):
        _policy(tmp_path, issuers=[(VENDOR_ISS, vendor)], policy=text).check(_stmt(vendor), NOW)


# --- x5chain and did:x509 ---------------------------------------------------------------------


def _did(root_der: bytes, policy: str = f"eku:{EKU_CODE_SIGNING}") -> str:
    fp = base64.urlsafe_b64encode(hashlib.sha256(root_der).digest()).rstrip(b"=").decode()
    return f"did:x509:0:sha256:{fp}::{policy}"


def test_did_x509_chain_accepted(tmp_path: Path) -> None:
    root, leaf, key = make_ca_chain()
    policy = _policy(tmp_path, roots=[root])
    data = _stmt(key, iss=_did(der(root)), x5chain=[der(leaf), der(root)], include_kid=False)
    assert policy.check(data, NOW).x5chain[0] == der(leaf)


def test_did_x509_that_does_not_match_chain(tmp_path: Path) -> None:
    root, leaf, key = make_ca_chain()
    policy = _policy(tmp_path, roots=[root])
    wrong = _did(der(root), policy="eku:1.3.6.1.5.5.7.3.1")  # serverAuth, not in the leaf
    data = _stmt(key, iss=wrong, x5chain=[der(leaf), der(root)], include_kid=False)
    with pytest.raises(ChainNotTrusted):
        policy.check(data, NOW)


def test_did_x509_of_a_ca_off_the_path_is_refused(tmp_path: Path) -> None:
    # The attacker's leaf chains to the attacker's own (trusted) root; the victim's root rides
    # along in x5chain unused, so the victim's did:x509 fingerprint matched a chain certificate
    # and the attacker registered statements as the victim.
    victim_root, _, _ = make_ca_chain()
    attacker_root, attacker_leaf, attacker_key = make_ca_chain()
    policy = _policy(tmp_path, roots=[victim_root, attacker_root])
    data = _stmt(
        attacker_key,
        iss=_did(der(victim_root)),
        x5chain=[der(attacker_leaf), der(victim_root)],
        include_kid=False,
    )
    with pytest.raises(ChainNotTrusted, match="ordered path"):
        policy.check(data, NOW)


def test_chain_not_reaching_configured_root(tmp_path: Path) -> None:
    root, leaf, key = make_ca_chain()
    other_root, _, _ = make_ca_chain()
    policy = _policy(tmp_path, roots=[other_root])
    data = _stmt(key, iss=_did(der(root)), x5chain=[der(leaf), der(root)], include_kid=False)
    with pytest.raises(ChainNotTrusted):
        policy.check(data, NOW)


def test_expired_certificate(tmp_path: Path) -> None:
    root, leaf, key = make_ca_chain(
        not_before=NOW - dt.timedelta(days=400), not_after=NOW - dt.timedelta(days=1)
    )
    policy = _policy(tmp_path, roots=[root])
    data = _stmt(key, iss=_did(der(root)), x5chain=[der(leaf), der(root)], include_kid=False)
    with pytest.raises(CertificateExpired):
        policy.check(data, NOW)


def test_x5chain_with_url_issuer_is_unknown(tmp_path: Path) -> None:
    root, leaf, key = make_ca_chain()
    policy = _policy(tmp_path, roots=[root])
    data = _stmt(key, x5chain=[der(leaf), der(root)], include_kid=False)
    with pytest.raises(UnknownIssuer):
        policy.check(data, NOW)


def test_cel_kid_is_the_key_that_verified_not_an_x5chain_statement_s_header(
    tmp_path: Path, vendor: PrivateKey
) -> None:
    # A policy pinning the vendor's key by kid admitted a statement signed by any leaf of a
    # trusted root that put the vendor's kid in its header (unchecked on the x5chain path).
    root, leaf, key = make_ca_chain()
    pinned = f'kid == "{vendor.kid.hex()}"'
    policy = _policy(tmp_path, issuers=[(VENDOR_ISS, vendor)], roots=[root], policy=pinned)
    claims = {1: _did(der(root)), 2: "pkg:fw/forged"}
    chain = [der(leaf), der(root)]
    forged = sign1(key, b"payload", {KID: vendor.kid, CWT_CLAIMS: claims, 33: chain}).encode()
    with pytest.raises(PolicyRejected):
        policy.check(forged, NOW)
    policy.check(_stmt(vendor), NOW)  # the vendor's own key still passes
    leaf_pinned = f'kid == "{key.public_key.kid.hex()}"'
    policy = _policy(tmp_path, issuers=[(VENDOR_ISS, vendor)], roots=[root], policy=leaf_pinned)
    assert policy.check(forged, NOW).x5chain == tuple(chain)


@pytest.mark.parametrize(
    ("expression", "kind"),
    [('"yes"', "a string"), ("1", "an int"), ("[true]", "a list"), ('{"ok": true}', "a map")],
)
def test_cel_policy_that_is_a_constant_non_boolean_is_refused_at_start(
    tmp_path: Path, vendor: PrivateKey, expression: str, kind: str
) -> None:
    # Accepted before, it rejected every statement at registration ("not accepted").
    with pytest.raises(ConfigError) as caught:
        _policy(tmp_path, issuers=[(VENDOR_ISS, vendor)], policy=expression)
    assert type(caught.value) is ConfigError
    assert caught.value.detail == f"transparency.policy always evaluates to {kind}, not a boolean"


@pytest.mark.parametrize("expression", ["true", "1 == 1", '"a" + "b" == "ab"', 'sub == "x"'])
def test_cel_policy_that_can_be_a_boolean_is_accepted(
    tmp_path: Path, vendor: PrivateKey, expression: str
) -> None:
    _policy(tmp_path, issuers=[(VENDOR_ISS, vendor)], policy=expression)


@pytest.mark.parametrize(
    ("value", "holds"),
    [([1, 2, 3], True), ([1, -2, 3], False), ([], True)],
)
def test_cel_policy_with_a_comprehension_macro(
    tmp_path: Path, vendor: PrivateKey, value: list[int], holds: bool
) -> None:
    claims = {1: VENDOR_ISS, 2: "pkg:firmware/bmc@1.2.3", -70001: value}
    data = sign1(vendor, b"payload", {KID: vendor.kid, CWT_CLAIMS: claims}).encode()
    expression = 'claims["-70001"].all(x, x > 0 && [x].exists(y, y == x))'
    policy = _policy(tmp_path, issuers=[(VENDOR_ISS, vendor)], policy=expression)
    if holds:
        policy.check(data, NOW)
    else:
        with pytest.raises(PolicyRejected):
            policy.check(data, NOW)


@pytest.mark.parametrize(
    ("expression", "kind"), [("[1, 2].map(x, x * 2)", "a list"), ("[1].filter(x, true)", "a list")]
)
def test_cel_policy_that_is_a_macro_constant_non_boolean_is_refused_at_start(
    tmp_path: Path, vendor: PrivateKey, expression: str, kind: str
) -> None:
    # The macro's variable made it look as if it read the statement: every one was rejected.
    with pytest.raises(ConfigError) as caught:
        _policy(tmp_path, issuers=[(VENDOR_ISS, vendor)], policy=expression)
    assert type(caught.value) is ConfigError
    assert caught.value.detail == f"transparency.policy always evaluates to {kind}, not a boolean"


@pytest.mark.parametrize(
    ("expression", "detail"),
    [
        (
            'claims["-70001"].all(x, claims["-70001"].exists(y, x == y))',
            "transparency.policy may take 5,246,976 steps to evaluate, more than the limit of "
            "750,000: its comprehension macros (all, exists, exists_one, filter, map) nest or "
            "copy too much over lists of up to 1024 items",
        ),
        (
            'claims["-70001"].map(x, x).size() > 0',
            "transparency.policy uses map over values the policy does not write out: each of "
            "its steps copies every value kept so far, a cost that grows with the square of "
            "their size (use all, exists or exists_one)",
        ),
    ],
)
def test_cel_policy_whose_cost_grows_with_the_statement_is_refused_at_start(
    tmp_path: Path, vendor: PrivateKey, expression: str, detail: str
) -> None:
    # Statement arrays hold up to 1,024 items: the first took 260 ms per registration; the
    # second 160 ms over 1,024 one-entry maps, seconds over larger ones.
    with pytest.raises(ConfigError) as caught:
        _policy(tmp_path, issuers=[(VENDOR_ISS, vendor)], policy=expression)
    assert type(caught.value) is ConfigError
    assert caught.value.detail == detail


_KNOWN = (
    "alg, claims, content_type, hash_envelope, iat, iss, kid, payload_hash_alg, "
    "payload_location, preimage_content_type, sub, x5chain_length"
)


@pytest.mark.parametrize(
    ("expression", "unknown"),
    [
        ('claim.iss == "https://vendor.example"', "claim"),  # for claims.iss
        ('Sub.startsWith("pkg:") && alg == "ES256"', "Sub"),
        ('.sub == "x"', ".sub"),  # the CEL bindings bind no leading-dot name
        ("[1].all(x, x > 0) && y == 1 && [2].exists(y, y == 2)", "y"),  # y is bound only there
        ('issuer == "a" || kid_hex == "b"', "issuer, kid_hex"),
    ],
)
def test_cel_policy_naming_an_unknown_variable_is_refused_at_start(
    tmp_path: Path, vendor: PrivateKey, expression: str, unknown: str
) -> None:
    # Accepted before: the name was unbound at each evaluation, so every statement was
    # rejected ("not accepted by the current Registration Policy"), from the first one on.
    with pytest.raises(ConfigError) as caught:
        _policy(tmp_path, issuers=[(VENDOR_ISS, vendor)], policy=expression)
    assert type(caught.value) is ConfigError
    assert caught.value.code == "config"
    assert caught.value.detail == (
        f"transparency.policy names unknown variables: {unknown} (known: {_KNOWN})"
    )


def test_cel_policy_may_read_every_variable_it_is_given(tmp_path: Path, vendor: PrivateKey) -> None:
    # Each known variable is bound at evaluation: a policy reading them all accepts.
    expression = (
        " && ".join(f"({name} == {name})" for name in _KNOWN.split(", "))
        + " && claims.iss == iss && [1].all(x, x > 0)"
    )
    policy = _policy(tmp_path, issuers=[(VENDOR_ISS, vendor)], policy=expression)
    policy.check(_stmt(vendor), NOW)


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ({1: "x", "1": "y"}, "1"),
        ([{"a": 1}, {-2: "x", "-2": "y"}], "-2"),
        ({"outer": {True: 1, "True": 2}}, "True"),
    ],
)
def test_cel_policy_refuses_a_claim_map_whose_keys_share_a_name(
    tmp_path: Path, vendor: PrivateKey, value: object, name: str
) -> None:
    # The keys of a map inside a claim reach CEL as text: 1 and "1" were one key there, the
    # one encoded last winning, so the signer chose which value a policy on it saw (as for
    # two claims of one name, refused before).
    claims = {1: VENDOR_ISS, 2: "pkg:firmware/bmc@1.2.3", -70001: value}
    data = sign1(vendor, b"payload", {KID: vendor.kid, CWT_CLAIMS: claims}).encode()
    policy = _policy(tmp_path, issuers=[(VENDOR_ISS, vendor)], policy="true")
    with pytest.raises(PolicyRejected) as caught:
        policy.check(data, NOW)
    assert type(caught.value) is PolicyRejected
    assert caught.value.detail == (
        f"two keys of a map in the CWT claims go by the name {name!r}: the policy cannot tell "
        "them apart"
    )
