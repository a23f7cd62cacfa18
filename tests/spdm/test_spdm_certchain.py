"""SPDM certificate chain format and its verification up to a trusted root."""

from __future__ import annotations

import datetime as dt
import hashlib
import pickle
from pathlib import Path

import pytest
from _spdm_helpers import BLOCKS, NOW, Device, make_cert, make_requester, make_responder
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import (
    CertificateExpired,
    ChainNotTrusted,
    ConfigError,
    IronrootError,
    MalformedCertificate,
    MalformedSpdm,
    SpdmProtocolError,
    UnsupportedAlgorithm,
)
from ironroot.rot.dice import (
    MULTI_TCB_INFO_OID,
    OPEN_DICE_OID,
    TCB_INFO_OID,
    TcbInfo,
    build_multi_tcb_info_extension,
    build_tcb_info_extension,
    build_ueid_extension,
)
from ironroot.spdm import (
    BaseHashAlgo,
    CertificateChain,
    Responder,
    SpdmChainCache,
    verify_certificate_chain,
)
from x509_extensions import UNKNOWN, UNKNOWN_OID, resigned, with_extension

SHA384 = BaseHashAlgo.SHA_384


@pytest.fixture(scope="module")
def device() -> Device:
    return Device(Algorithm.ES384)


def test_chain_layout(device: Device) -> None:
    chain = CertificateChain.build(device.chain, SHA384)
    data = chain.encode()
    body = b"".join(device.chain)
    assert int.from_bytes(data[:2], "little") == len(data) == 4 + 48 + len(body)
    assert data[2:4] == b"\x00\x00"
    assert data[4:52] == hashlib.sha384(device.root).digest()
    assert data[52:] == body
    assert chain.digest(SHA384) == hashlib.sha384(data).digest()
    assert CertificateChain.decode(data, hash_size=48) == chain
    assert chain.leaf == device.leaf


def test_a_parsed_chain_is_still_its_bytes(device: Device) -> None:
    """A chain keeps the certificates it parsed (build, decode, x509): it still equals,
    hashes and pickles as its bytes alone, and each x509() is a fresh list of the same
    certificates."""
    built = CertificateChain.build(device.chain, SHA384)
    decoded = CertificateChain.decode(built.encode(), hash_size=48)
    bare = CertificateChain(built.root_hash, built.certificates)
    for chain in (built, decoded):
        assert chain == bare
        assert hash(chain) == hash(bare)
        assert repr(chain) == repr(bare)
        first = chain.x509()
        first.clear()
        again = chain.x509()
        assert [c.public_bytes(serialization.Encoding.DER) for c in again] == list(device.chain)
        copy = pickle.loads(pickle.dumps(chain))  # noqa: S301 (this test's own bytes)
        assert copy == bare
        assert copy.x509() == again


def test_chain_decode_is_strict(device: Device) -> None:
    data = CertificateChain.build(device.chain, SHA384).encode()
    with pytest.raises(MalformedSpdm, match="Length"):
        CertificateChain.decode(data + b"\x00", hash_size=48)
    with pytest.raises(MalformedSpdm, match="Reserved"):
        CertificateChain.decode(data[:2] + b"\x01\x00" + data[4:], hash_size=48)
    with pytest.raises(MalformedSpdm, match="truncated"):
        CertificateChain.decode(data[:2], hash_size=48)
    cut = data[:-1]
    with pytest.raises(MalformedSpdm, match="truncated certificate"):
        CertificateChain.decode(len(cut).to_bytes(2, "little") + cut[2:], hash_size=48)
    no_certs = data[:52]
    with pytest.raises(MalformedSpdm, match="at least one"):
        CertificateChain.decode((52).to_bytes(2, "little") + no_certs[2:], hash_size=48)
    junk = data[:52] + b"\x04\x01\x00"
    with pytest.raises(MalformedSpdm, match="no DER SEQUENCE"):
        CertificateChain.decode(len(junk).to_bytes(2, "little") + junk[2:], hash_size=48)
    not_x509 = data[:52] + bytes.fromhex("3003020101")
    with pytest.raises(MalformedCertificate):
        CertificateChain.decode(len(not_x509).to_bytes(2, "little") + not_x509[2:], hash_size=48)
    with pytest.raises(MalformedSpdm, match="65535"):
        CertificateChain(b"\x00" * 48, (bytes(65535),))


def test_verify_good_chain(device: Device) -> None:
    chain = CertificateChain.build(device.chain, SHA384)
    leaf = verify_certificate_chain(chain, root=device.root, hash_algo=SHA384, now=NOW)
    assert leaf.subject.rfc4514_string() == "CN=Ironroot Test Device"


def test_verify_chain_without_root_certificate(device: Device) -> None:
    """The first certificate may be signed by the root instead of being the root."""
    chain = CertificateChain(
        hashlib.sha384(device.root).digest(), (device.intermediate, device.leaf)
    )
    leaf = verify_certificate_chain(chain, root=device.root, hash_algo=SHA384, now=NOW)
    assert leaf.subject.rfc4514_string() == "CN=Ironroot Test Device"


def test_chain_of_the_root_alone(device: Device) -> None:
    """A chain that is the trusted root alone makes the root the signing leaf: it passes the
    leaf checks too (libspdm refuses a CA root alone and accepts a self-signed end entity)."""
    key = PrivateKey.generate(Algorithm.ES384)
    alone = make_cert("Ironroot Device Alone", key, "Ironroot Device Alone", key, ca=False)
    chain = CertificateChain.build([alone], SHA384)
    leaf = verify_certificate_chain(chain, root=alone, hash_algo=SHA384, now=NOW)
    assert leaf.subject == leaf.issuer


def test_a_ca_root_alone_is_not_a_signing_leaf(device: Device) -> None:
    # The root CA (keyCertSign, no digitalSignature) as the whole chain: the path is only the
    # trusted anchor, and its key would sign SPDM messages without the leaf checks.
    chain = CertificateChain.build([device.root], SHA384)
    with pytest.raises(ChainNotTrusted) as caught:
        verify_certificate_chain(chain, root=device.root, hash_algo=SHA384, now=NOW)
    assert caught.value.detail == "the SPDM leaf certificate is a CA (BasicConstraints CA:TRUE)"
    responder = Responder(device.root_key, [device.root], BLOCKS)
    requester = make_requester(responder, device)
    requester.init_connection()
    requester.get_digests()
    with pytest.raises(ChainNotTrusted, match="leaf certificate is a CA"):
        requester.get_certificate_chain()


def test_wrong_root_is_rejected(device: Device) -> None:
    other = Device(Algorithm.ES384)
    chain = CertificateChain.build(device.chain, SHA384)
    with pytest.raises(ChainNotTrusted, match="RootHash"):
        verify_certificate_chain(chain, root=other.root, hash_algo=SHA384, now=NOW)


def test_root_hash_right_but_path_from_another_root(device: Device) -> None:
    other = Device(Algorithm.ES384)
    chain = CertificateChain(hashlib.sha384(device.root).digest(), (other.intermediate, other.leaf))
    with pytest.raises(ChainNotTrusted):
        verify_certificate_chain(chain, root=device.root, hash_algo=SHA384, now=NOW)


def test_foreign_leaf_under_right_intermediate(device: Device) -> None:
    stranger = PrivateKey.generate(Algorithm.ES384)
    forged = make_cert("Forged", stranger, "Ironroot Test Device CA", stranger, ca=False)
    chain = CertificateChain.build([device.root, device.intermediate, forged], SHA384)
    with pytest.raises(ChainNotTrusted):
        verify_certificate_chain(chain, root=device.root, hash_algo=SHA384, now=NOW)


def test_out_of_order_chain_is_rejected(device: Device) -> None:
    chain = CertificateChain.build([device.root, device.leaf, device.intermediate], SHA384)
    with pytest.raises(ChainNotTrusted):
        verify_certificate_chain(chain, root=device.root, hash_algo=SHA384, now=NOW)
    extra = Device(Algorithm.ES384)
    chain = CertificateChain.build(
        [device.root, device.intermediate, extra.intermediate, device.leaf], SHA384
    )
    with pytest.raises(ChainNotTrusted):
        verify_certificate_chain(chain, root=device.root, hash_algo=SHA384, now=NOW)


def test_validity_period_is_enforced() -> None:
    short = Device(Algorithm.ES384, leaf_days=10)
    chain = CertificateChain.build(short.chain, SHA384)
    verify_certificate_chain(chain, root=short.root, hash_algo=SHA384, now=NOW)
    later = NOW + dt.timedelta(days=11)
    with pytest.raises(CertificateExpired):
        verify_certificate_chain(chain, root=short.root, hash_algo=SHA384, now=later)
    earlier = NOW - dt.timedelta(days=366)
    with pytest.raises(CertificateExpired):
        verify_certificate_chain(chain, root=short.root, hash_algo=SHA384, now=earlier)
    with pytest.raises(ConfigError):
        verify_certificate_chain(
            chain, root=short.root, hash_algo=SHA384, now=NOW.replace(tzinfo=None)
        )


# --- the chain cache ------------------------------------------------------------------------


def _outcome(
    chain: CertificateChain, root: bytes, now: dt.datetime, cache: SpdmChainCache | None
) -> tuple[type[IronrootError] | None, str | bytes]:
    """The typed error's class and detail, or ``None`` and the leaf's bytes."""
    try:
        leaf = verify_certificate_chain(chain, root=root, hash_algo=SHA384, now=now, cache=cache)
    except IronrootError as exc:
        return type(exc), exc.detail
    return None, leaf.tbs_certificate_bytes + leaf.signature


def _flip(data: bytes, at: int) -> bytes:
    at %= len(data)
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def test_a_cached_chain_gives_the_same_leaf(device: Device) -> None:
    cache = SpdmChainCache()
    with_root = CertificateChain.build(device.chain, SHA384)
    below_root = CertificateChain(
        hashlib.sha384(device.root).digest(), (device.intermediate, device.leaf)
    )
    for chain in (with_root, below_root, with_root, below_root):
        cached = _outcome(chain, device.root, NOW, cache)
        assert cached == _outcome(chain, device.root, NOW, None)
        assert cached[0] is None
    assert len(cache) == 2  # each chain's exact bytes once
    alone = CertificateChain.build([device.root], SHA384)
    assert _outcome(alone, device.root, NOW, cache) == _outcome(alone, device.root, NOW, None)
    assert len(cache) == 2  # the root alone has no path to remember


def test_a_cached_chain_is_refused_once_out_of_validity() -> None:
    """A hit still checks every certificate's validity at ``now``: the same error as a
    chain verified afresh, once the leaf has expired and before the chain was valid."""
    short = Device(Algorithm.ES384, leaf_days=10)
    chain = CertificateChain.build(short.chain, SHA384)
    cache = SpdmChainCache()
    verify_certificate_chain(chain, root=short.root, hash_algo=SHA384, now=NOW, cache=cache)
    assert len(cache) == 1
    for when in (NOW + dt.timedelta(days=11), NOW - dt.timedelta(days=366)):
        cached = _outcome(chain, short.root, when, cache)
        assert cached == _outcome(chain, short.root, when, None)
        assert cached[0] is CertificateExpired
    # and valid again inside the period, from the same entry
    assert _outcome(chain, short.root, NOW, cache) == _outcome(chain, short.root, NOW, None)
    assert len(cache) == 1


def test_a_changed_byte_misses_the_cache_and_fails_as_before(device: Device) -> None:
    """Every one-byte change of a remembered chain (its RootHash, a certificate's signature,
    a key) or of the root is verified in full and refused with the error it gets without the
    cache; failures are not remembered."""
    cache = SpdmChainCache()
    good = CertificateChain.build(device.chain, SHA384)
    verify_certificate_chain(good, root=device.root, hash_algo=SHA384, now=NOW, cache=cache)
    root_hash, (root, intermediate, leaf) = good.root_hash, good.certificates
    key_at = leaf.index(device.leaf_key.public_key.to_der()[-40:])
    changed = {
        "RootHash": (CertificateChain(_flip(root_hash, 0), good.certificates), ChainNotTrusted),
        "leaf signature": (
            CertificateChain(root_hash, (root, intermediate, _flip(leaf, -1))),
            ChainNotTrusted,
        ),
        "leaf key (off the curve)": (
            CertificateChain(root_hash, (root, intermediate, _flip(leaf, key_at))),
            MalformedCertificate,
        ),
        "CA signature": (
            CertificateChain(root_hash, (root, _flip(intermediate, -1), leaf)),
            ChainNotTrusted,
        ),
    }
    for what, (chain, error) in changed.items():
        cached = _outcome(chain, device.root, NOW, cache)
        assert cached == _outcome(chain, device.root, NOW, None), what
        assert cached[0] is error, what
    other_root = _flip(device.root, -1)  # another root certificate (its signature changed)
    cached = _outcome(good, other_root, NOW, cache)
    assert cached == _outcome(good, other_root, NOW, None)
    assert cached[0] is ChainNotTrusted
    assert len(cache) == 1


def test_the_chain_cache_is_bounded() -> None:
    cache = SpdmChainCache(max_entries=2)
    for _ in range(3):
        other = Device(Algorithm.ES384)
        chain = CertificateChain.build(other.chain, SHA384)
        verify_certificate_chain(chain, root=other.root, hash_algo=SHA384, now=NOW, cache=cache)
        assert 1 <= len(cache) <= 2
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ConfigError):
            SpdmChainCache(max_entries=bad)  # type: ignore[arg-type]


# --- in the protocol ------------------------------------------------------------------------


def test_requester_with_wrong_root(device: Device) -> None:
    other = Device(Algorithm.ES384)
    requester = make_requester(make_responder(device), other)
    with pytest.raises(ChainNotTrusted):
        requester.attest()


def test_requester_with_expired_leaf() -> None:
    short = Device(Algorithm.ES384, leaf_days=1)
    later = NOW + dt.timedelta(days=2)
    requester = make_requester(make_responder(short), short, now=later)
    with pytest.raises(CertificateExpired):
        requester.attest()


def test_tampered_portion_fails_the_digest(device: Device) -> None:
    responder = make_responder(device)

    def tamper(request: bytes) -> bytes:
        response = responder(request)
        if response[1] == 0x02:
            return response[:-1] + bytes([response[-1] ^ 0x01])
        return response

    with pytest.raises(SpdmProtocolError, match="DIGESTS"):
        make_requester(tamper, device).attest()


def test_inconsistent_portions(device: Device) -> None:
    responder = make_responder(device)
    calls = {"n": 0}

    def lie(request: bytes) -> bytes:
        response = responder(request)
        if response[1] == 0x02:
            calls["n"] += 1
            if calls["n"] == 2:  # RemainderLength grows by one on the second portion
                remainder = int.from_bytes(response[6:8], "little") + 1
                return response[:6] + remainder.to_bytes(2, "little") + response[8:]
        return response

    requester = make_requester(lie, device, data_transfer_size=512, max_spdm_msg_size=512)
    with pytest.raises(SpdmProtocolError, match="disagree"):
        requester.attest()


def test_stalled_portions(device: Device) -> None:
    responder = make_responder(device)

    def stall(request: bytes) -> bytes:
        response = responder(request)
        if response[1] == 0x02:
            return response[:4] + b"\x00\x00" + response[6:8]  # empty portion, bytes remain
        return response

    requester = make_requester(stall, device, data_transfer_size=512, max_spdm_msg_size=512)
    with pytest.raises(SpdmProtocolError, match="empty"):
        requester.attest()


def test_responder_rejects_leaf_that_is_not_its_key(device: Device) -> None:
    with pytest.raises(ConfigError, match="signing key"):
        Responder(PrivateKey.generate(Algorithm.ES384), device.chain, ())


def test_responder_rejects_unsupported_signer(device: Device) -> None:
    with pytest.raises(UnsupportedAlgorithm):
        Responder(PrivateKey.generate(Algorithm.ED25519), device.chain, ())


# --- interop: a real SPDM chain from Caliptra MCU firmware ------------------------------------


@pytest.mark.vectors
def test_caliptra_spdm_chain(vectors: Path) -> None:
    blob = (vectors / "caliptra" / "test_owner_certchain.der").read_bytes()
    # The file is the SPDM "Certificates" field: wrap it with Length, Reserved and RootHash.
    root = blob[: 4 + int.from_bytes(blob[2:4], "big")]
    body = hashlib.sha384(root).digest() + blob
    data = (4 + len(body)).to_bytes(2, "little") + b"\x00\x00" + body
    chain = CertificateChain.decode(data, hash_size=48)
    assert len(chain.certificates) == 3
    assert chain.certificates[0] == root
    when = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    leaf = verify_certificate_chain(chain, root=root, hash_algo=SHA384, now=when)
    assert leaf.subject.rfc4514_string() == "CN=Test Bootloader Requester"
    with pytest.raises(CertificateExpired):
        verify_certificate_chain(chain, root=root, hash_algo=SHA384, now=when.replace(year=2035))
    other_root = (vectors / "caliptra" / "slot0_ecc_test_root_ca.der").read_bytes()
    with pytest.raises(ChainNotTrusted):
        verify_certificate_chain(chain, root=other_root, hash_algo=SHA384, now=when)


def _leaf(
    device: Device,
    key: PrivateKey,
    *,
    digital_signature: bool = True,
    purposes: tuple[str, ...] = (),
) -> bytes:
    """A CA:FALSE leaf with a critical KeyUsage (digitalSignature or key agreement) and, when
    ``purposes`` are given, an ExtendedKeyUsage of those OIDs."""
    ca_key = device.ca_key.raw
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    public = key.public_key.raw
    assert isinstance(public, ec.EllipticCurvePublicKey)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "No Signing")])
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Ironroot Test Device CA")])
    usage = x509.KeyUsage(
        digital_signature, False, False, False, not digital_signature, False, False, False, False
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
    )
    if purposes:
        eku = x509.ExtendedKeyUsage([x509.ObjectIdentifier(p) for p in purposes])
        builder = builder.add_extension(eku, critical=False)
    cert = builder.sign(ca_key, hashes.SHA384())
    return cert.public_bytes(serialization.Encoding.DER)


def test_a_ca_certificate_is_not_a_leaf(device: Device) -> None:
    """The device CA's certificate sent as the leaf: its key is not an SPDM signing key."""
    chain = CertificateChain.build([device.root, device.intermediate], SHA384)
    with pytest.raises(ChainNotTrusted, match="CA:TRUE"):
        verify_certificate_chain(chain, root=device.root, hash_algo=SHA384, now=NOW)
    responder = Responder(device.ca_key, [device.root, device.intermediate], ())
    requester = make_requester(responder, device)
    requester.init_connection()
    requester.get_digests()
    with pytest.raises(ChainNotTrusted, match="CA:TRUE"):
        requester.get_certificate_chain()


def test_a_leaf_whose_key_usage_forbids_signing_is_refused(device: Device) -> None:
    key = PrivateKey.generate(Algorithm.ES384)
    leaf = _leaf(device, key, digital_signature=False)
    chain = CertificateChain.build([device.root, device.intermediate, leaf], SHA384)
    with pytest.raises(ChainNotTrusted, match="digitalSignature"):
        verify_certificate_chain(chain, root=device.root, hash_algo=SHA384, now=NOW)
    # without KeyUsage at all, a CA:FALSE leaf is accepted (KeyUsage is optional here)
    bare = make_cert(
        "Bare", key, "Ironroot Test Device CA", device.ca_key, ca=False, key_usage=False
    )
    chain = CertificateChain.build([device.root, device.intermediate, bare], SHA384)
    verify_certificate_chain(chain, root=device.root, hash_algo=SHA384, now=NOW)


RESPONDER_AUTH, REQUESTER_AUTH = "1.3.6.1.4.1.412.274.3", "1.3.6.1.4.1.412.274.4"


def test_a_requester_only_leaf_is_not_a_responder_leaf(device: Device) -> None:
    """A leaf whose ExtendedKeyUsage names SPDM requester authentication and not responder
    authentication is refused (as libspdm does); with both, or with other purposes, it is not."""
    key = PrivateKey.generate(Algorithm.ES384)
    leaf = _leaf(device, key, purposes=(REQUESTER_AUTH,))
    chain = CertificateChain.build([device.root, device.intermediate, leaf], SHA384)
    with pytest.raises(ChainNotTrusted, match="requester authentication only"):
        verify_certificate_chain(chain, root=device.root, hash_algo=SHA384, now=NOW)
    for purposes in ((REQUESTER_AUTH, RESPONDER_AUTH), (RESPONDER_AUTH,), ("1.3.6.1.5.5.7.3.2",)):
        leaf = _leaf(device, key, purposes=purposes)
        chain = CertificateChain.build([device.root, device.intermediate, leaf], SHA384)
        verify_certificate_chain(chain, root=device.root, hash_algo=SHA384, now=NOW)


@pytest.mark.parametrize("where", ["leaf", "intermediate"])
@pytest.mark.parametrize("critical", [True, False])
def test_a_certificate_with_an_unknown_critical_extension_is_refused(
    where: str, critical: bool
) -> None:
    # RFC 5280 §4.2, done by cryptography's path validation (an extension its policy does not
    # account for): pinned here, since no Ironroot code adds it on this path.
    device = Device()
    leaf = x509.load_der_x509_certificate(device.leaf)
    inter = x509.load_der_x509_certificate(device.intermediate)
    if where == "leaf":
        leaf = with_extension(leaf, device.ca_key.raw, critical=critical)
    else:
        inter = with_extension(inter, device.root_key.raw, critical=critical)
    der = [c.public_bytes(serialization.Encoding.DER) for c in (inter, leaf)]
    chain = CertificateChain.build([device.root, *der], SHA384)
    if not critical:
        verify_certificate_chain(chain, root=device.root, hash_algo=SHA384, now=NOW)
        return
    pattern = f"^SPDM certificate chain does not verify: .*invalid extension: {UNKNOWN_OID}: "
    with pytest.raises(ChainNotTrusted, match=pattern) as caught:
        verify_certificate_chain(chain, root=device.root, hash_algo=SHA384, now=NOW)
    assert type(caught.value) is ChainNotTrusted


# --- DICE chains: the TCG DICE extensions, which DICE marks critical --------------------------

_TCB = TcbInfo(vendor="Ironroot", model="fmc", svn_raw=3, layer=1)
_DICE_EXTENSIONS = {
    "TcbInfo": build_tcb_info_extension(_TCB),
    "MultiTcbInfo": build_multi_tcb_info_extension([_TCB, _TCB]),
    "Ueid": build_ueid_extension(b"\x02" + b"\x11" * 16),
}


def _dice_chain(
    device: Device, *extensions: tuple[x509.ExtensionType, bool], where: str = "both"
) -> CertificateChain:
    """The device's chain with ``extensions`` (extension, critical) added to its intermediate
    and leaf (or only the one ``where`` names), each signed again by its issuer."""
    leaf = x509.load_der_x509_certificate(device.leaf)
    inter = x509.load_der_x509_certificate(device.intermediate)
    if where in ("both", "leaf"):
        leaf = resigned(leaf, device.ca_key.raw, add=extensions)
    if where in ("both", "intermediate"):
        inter = resigned(inter, device.root_key.raw, add=extensions)
    der = [c.public_bytes(serialization.Encoding.DER) for c in (inter, leaf)]
    return CertificateChain.build([device.root, *der], SHA384)


@pytest.mark.parametrize("where", ["leaf", "intermediate", "both"])
@pytest.mark.parametrize("kind", ["TcbInfo", "MultiTcbInfo", "Ueid"])
def test_a_dice_chain_with_critical_dice_extensions_verifies(
    device: Device, kind: str, where: str
) -> None:
    # Refused before: "invalid extension: 2.23.133.5.4.1: certificate contains
    # unaccounted-for critical extensions" (cryptography knows no DICE extension).
    chain = _dice_chain(device, (_DICE_EXTENSIONS[kind], True), where=where)
    leaf = verify_certificate_chain(chain, root=device.root, hash_algo=SHA384, now=NOW)
    assert leaf.public_bytes(serialization.Encoding.DER) == chain.certificates[-1]


def test_a_dice_chain_with_every_dice_extension_critical_verifies(device: Device) -> None:
    chain = _dice_chain(
        device,
        (_DICE_EXTENSIONS["MultiTcbInfo"], True),
        (_DICE_EXTENSIONS["Ueid"], True),
    )
    verify_certificate_chain(chain, root=device.root, hash_algo=SHA384, now=NOW)
    # and over the protocol, the chain served by a responder and checked by a requester
    responder = Responder(device.leaf_key, chain.certificates, ())
    requester = make_requester(responder, device)
    requester.init_connection()
    requester.get_digests()
    requester.get_certificate_chain()


def test_an_unknown_critical_extension_beside_dice_ones_is_still_refused(device: Device) -> None:
    chain = _dice_chain(device, (_DICE_EXTENSIONS["TcbInfo"], True), (UNKNOWN, True))
    pattern = f"^SPDM certificate chain does not verify: .*invalid extension: {UNKNOWN_OID}: "
    with pytest.raises(ChainNotTrusted, match=pattern) as caught:
        verify_certificate_chain(chain, root=device.root, hash_algo=SHA384, now=NOW)
    assert type(caught.value) is ChainNotTrusted


@pytest.mark.parametrize("where", ["leaf", "intermediate"])
def test_a_critical_dice_extension_that_does_not_decode_is_refused(
    device: Device, where: str
) -> None:
    # Not processed, so not accounted for (as the DICE chain verifier, rot.dice, decides).
    garbage = x509.UnrecognizedExtension(TCB_INFO_OID, b"\x05\x00")
    chain = _dice_chain(device, (garbage, True), where=where)
    pattern = "critical DICE extension 2.23.133.5.4.1 does not decode: "
    with pytest.raises(ChainNotTrusted, match=pattern) as caught:
        verify_certificate_chain(chain, root=device.root, hash_algo=SHA384, now=NOW)
    assert type(caught.value) is ChainNotTrusted
    assert caught.value.detail.startswith("SPDM certificate chain does not verify: ")
    # not critical, it is ignored (RFC 5280 §4.2), as before
    chain = _dice_chain(device, (garbage, False), where=where)
    verify_certificate_chain(chain, root=device.root, hash_algo=SHA384, now=NOW)


@pytest.mark.vectors
def test_cerberus_chain_with_a_critical_tcb_info_passes_the_extension_check(vectors: Path) -> None:
    # Project Cerberus' RIoT certificate (a CA) under its self-signed root, both with a critical
    # tcg-dice-TcbInfo. Before, the path failed on the extension; now it verifies, and only
    # the SPDM leaf rule (a CA is not a signing leaf) refuses it.
    certs = [
        x509.load_pem_x509_certificate((vectors / "cerberus" / name).read_bytes())
        for name in ("cass-tcbinfo-crit.crt", "ca-tcbinfo-crit.crt")
    ]
    assert all(c.extensions.get_extension_for_oid(TCB_INFO_OID).critical for c in certs)
    der = [c.public_bytes(serialization.Encoding.DER) for c in certs]
    chain = CertificateChain.build(der, SHA384)
    when = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    with pytest.raises(ChainNotTrusted) as caught:
        verify_certificate_chain(chain, root=der[0], hash_algo=SHA384, now=when)
    assert caught.value.detail == "the SPDM leaf certificate is a CA (BasicConstraints CA:TRUE)"


@pytest.mark.vectors
def test_real_dice_extension_values_made_critical_verify(vectors: Path, device: Device) -> None:
    # The Open DICE extension of a real Open DICE chain (Ed25519 keys, which cryptography's
    # path validation refuses for CAs: not usable as is) and Caliptra's MultiTcbInfo, both
    # critical in the device's chain.
    def value(path: Path, oid: x509.ObjectIdentifier) -> x509.UnrecognizedExtension:
        cert = x509.load_der_x509_certificate(path.read_bytes())
        found = cert.extensions.get_extension_for_oid(oid).value
        assert isinstance(found, x509.UnrecognizedExtension)
        return found

    open_dice = value(
        vectors / "dice-open" / "_X509_Ed25519_cert_full_cert_chain_0.cert", OPEN_DICE_OID
    )
    multi = value(vectors / "caliptra" / "fmc_alias_cert_ecc.der", MULTI_TCB_INFO_OID)
    chain = _dice_chain(device, (open_dice, True), (multi, True))
    verify_certificate_chain(chain, root=device.root, hash_algo=SHA384, now=NOW)


def _ca_with_usage(
    subject: str, key: PrivateKey, issuer: str, issuer_key: PrivateKey, usage: x509.KeyUsage
) -> bytes:
    """A CA certificate (BasicConstraints CA:TRUE) whose KeyUsage is ``usage``."""
    signing = issuer_key.raw
    assert isinstance(signing, ec.EllipticCurvePrivateKey)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key.raw)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .sign(signing, hashes.SHA384())
        .public_bytes(serialization.Encoding.DER)
    )


def _usage(*, digital_signature: bool = False, key_cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature, False, False, False, False, key_cert_sign, False, False, False
    )


_NO_KEY_CERT_SIGN = (
    "SPDM certificate chain does not verify: validation failed: candidates exhausted: Python"
    " extension validator failed: ValueError: a CA certificate's KeyUsage lacks keyCertSign"
)


@pytest.mark.parametrize(
    "usage",
    [_usage(digital_signature=True), _usage()],
    ids=["digital-signature-only", "no-usage"],
)
def test_a_ca_whose_key_usage_omits_key_cert_sign_issues_nothing(
    device: Device, usage: x509.KeyUsage
) -> None:
    # RFC 5280 6.1.4 (n): an issuer whose KeyUsage is present asserts keyCertSign (mbedTLS,
    # under libspdm, checks it: test_emulated_requester_refuses_a_ca_without_key_cert_sign). A
    # device CA whose certificate allows its key only signatures (or nothing) issued the leaf.
    name = "Ironroot Test Device CA"
    intermediate = _ca_with_usage(name, device.ca_key, "Ironroot Test Root", device.root_key, usage)
    chain = CertificateChain.build([device.root, intermediate, device.leaf], SHA384)
    with pytest.raises(ChainNotTrusted) as caught:
        verify_certificate_chain(chain, root=device.root, hash_algo=SHA384, now=NOW)
    assert caught.value.detail == _NO_KEY_CERT_SIGN
    # the trusted root is an issuer too
    root_name = "Ironroot Test Root"
    root = _ca_with_usage(root_name, device.root_key, root_name, device.root_key, usage)
    chain = CertificateChain.build([root, device.intermediate, device.leaf], SHA384)
    with pytest.raises(ChainNotTrusted) as caught:
        verify_certificate_chain(chain, root=root, hash_algo=SHA384, now=NOW)
    assert caught.value.detail == _NO_KEY_CERT_SIGN
    good = _ca_with_usage(
        name, device.ca_key, "Ironroot Test Root", device.root_key, _usage(key_cert_sign=True)
    )
    chain = CertificateChain.build([device.root, good, device.leaf], SHA384)
    verify_certificate_chain(chain, root=device.root, hash_algo=SHA384, now=NOW)


@st.composite
def _key_usages(draw: st.DrawFn) -> x509.KeyUsage | None:
    """No KeyUsage, or any combination of its bits (encipherOnly/decipherOnly need
    keyAgreement, as ``cryptography`` requires)."""
    if draw(st.booleans()):
        return None
    bits = draw(st.lists(st.booleans(), min_size=7, max_size=7))
    agreement = bits[4]
    only = draw(st.lists(st.booleans(), min_size=2, max_size=2)) if agreement else [False, False]
    return x509.KeyUsage(*bits, *only)


def _with_usage(
    subject: str,
    key: PrivateKey,
    issuer: str,
    issuer_key: PrivateKey,
    usage: x509.KeyUsage | None,
    *,
    ca: bool,
) -> bytes:
    signing = issuer_key.raw
    assert isinstance(signing, ec.EllipticCurvePrivateKey)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key.raw)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if usage is not None:
        builder = builder.add_extension(usage, critical=True)
    return builder.sign(signing, hashes.SHA384()).public_bytes(serialization.Encoding.DER)


@settings(
    max_examples=examples(40),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(issuer_usage=_key_usages(), leaf_usage=_key_usages())
def test_key_usage_of_each_certificate_decides_as_rfc_5280_and_libspdm(
    device: Device, issuer_usage: x509.KeyUsage | None, leaf_usage: x509.KeyUsage | None
) -> None:
    # Whatever the bits: the path verifies exactly when the issuer's KeyUsage, if any, allows
    # keyCertSign and the leaf's, if any, allows digitalSignature.
    ca_name = "Ironroot Test Device CA"
    ca = _with_usage(
        ca_name, device.ca_key, "Ironroot Test Root", device.root_key, issuer_usage, ca=True
    )
    leaf = _with_usage("Leaf", device.leaf_key, ca_name, device.ca_key, leaf_usage, ca=False)
    chain = CertificateChain.build([device.root, ca, leaf], SHA384)
    issues = issuer_usage is None or issuer_usage.key_cert_sign
    signs = leaf_usage is None or leaf_usage.digital_signature
    if issues and signs:
        verify_certificate_chain(chain, root=device.root, hash_algo=SHA384, now=NOW)
        return
    with pytest.raises(ChainNotTrusted) as caught:
        verify_certificate_chain(chain, root=device.root, hash_algo=SHA384, now=NOW)
    assert caught.value.detail == (
        _NO_KEY_CERT_SIGN
        if not issues
        else "the SPDM leaf certificate's KeyUsage lacks digitalSignature"
    )
