"""HSS/LMS: RFC 8554 known answers, state safety (reserve-then-sign, locking, exhaustion)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import threading
from pathlib import Path

import cbor2
import pytest

from ironroot.crypto import (
    LMS_PARAMETER_SETS,
    Algorithm,
    LmsPrivateKey,
    LmsPublicKey,
    cose_key_thumbprint,
    load_signer,
    verifier_from_cose_key,
)
from ironroot.errors import (
    BadSignature,
    Conflict,
    MalformedInput,
    StateReuse,
    StorageError,
    UnsupportedAlgorithm,
)
from stale_files import stale_temporary

H5 = "SHA256-N24-H5-W4"

# RFC 8554 Appendix F, Test Case 1: HSS with L = 2, LMS_SHA256_M32_H5 / LMOTS_SHA256_N32_W8.
_TC1_PUBLIC = bytes.fromhex(
    "00000002000000050000000461a5d57d37f5e46bfb7520806b07a1b850650e3b"
    "31fe4a773ea29a07f09cf2ea30e579f0df58ef8e298da0434cb2b878"
)
_TC1_MESSAGE = (
    b"The powers not delegated to the United States by the Constitution, nor prohibited by it "
    b"to the States, are reserved to the States respectively, or to the people.\n"
)
_TC1_SIGNATURE = bytes.fromhex(
    "000000010000000500000004d32b56671d7eb98833c49b433c272586bc4a1c8a8970528ffa04b966f9426eb9"
    "965a25bfd37f196b9073f3d4a232feb69128ec45146f86292f9dff9610a7bf95a64c7f60f6261a62043f86c7"
    "0324b7707f5b4a8a6e19c114c7be866d488778a0e05fd5c6509a6e61d559cf1a77a970de927d60c70d3de31a"
    "7fa0100994e162a2582e8ff1b10cd99d4e8e413ef469559f7d7ed12c838342f9b9c96b83a4943d1681d84b15"
    "357ff48ca579f19f5e71f18466f2bbef4bf660c2518eb20de2f66e3b14784269d7d876f5d35d3fbfc7039a46"
    "2c716bb9f6891a7f41ad133e9e1f6d9560b960e7777c52f060492f2d7c660e1471e07e72655562035abc9a70"
    "1b473ecbc3943c6b9c4f2405a3cb8bf8a691ca51d3f6ad2f428bab6f3a30f55dd9625563f0a75ee390e385e3"
    "ae0b906961ecf41ae073a0590c2eb6204f44831c26dd768c35b167b28ce8dc988a3748255230cef99ebf14e7"
    "30632f27414489808afab1d1e783ed04516de012498682212b07810579b250365941bcc98142da13609e9768"
    "aaf65de7620dabec29eb82a17fde35af15ad238c73f81bdb8dec2fc0e7f932701099762b37f43c4a3c20010a"
    "3d72e2f606be108d310e639f09ce7286800d9ef8a1a40281cc5a7ea98d2adc7c7400c2fe5a101552df4e3ccc"
    "fd0cbf2ddf5dc6779cbbc68fee0c3efe4ec22b83a2caa3e48e0809a0a750b73ccdcf3c79e6580c154f8a58f7"
    "f24335eec5c5eb5e0cf01dcf4439424095fceb077f66ded5bec73b27c5b9f64a2a9af2f07c05e99e5cf80f00"
    "252e39db32f6c19674f190c9fbc506d826857713afd2ca6bb85cd8c107347552f30575a5417816ab4db3f603"
    "f2df56fbc413e7d0acd8bdd81352b2471fc1bc4f1ef296fea1220403466b1afe78b94f7ecf7cc62fb92be14f"
    "18c2192384ebceaf8801afdf947f698ce9c6ceb696ed70e9e87b0144417e8d7baf25eb5f70f09f016fc925b4"
    "db048ab8d8cb2a661ce3b57ada67571f5dd546fc22cb1f97e0ebd1a65926b1234fd04f171cf469c76b884cf3"
    "115cce6f792cc84e36da58960c5f1d760f32c12faef477e94c92eb75625b6a371efc72d60ca5e908b3a7dd69"
    "fef0249150e3eebdfed39cbdc3ce9704882a2072c75e13527b7a581a556168783dc1e97545e31865ddc46b3c"
    "957835da252bb7328d3ee2062445dfb85ef8c35f8e1f3371af34023cef626e0af1e0bc017351aae2ab8f5c61"
    "2ead0b729a1d059d02bfe18efa971b7300e882360a93b025ff97e9e0eec0f3f3f13039a17f88b0cf808f4884"
    "31606cb13f9241f40f44e537d302c64a4f1f4ab949b9feefadcb71ab50ef27d6d6ca8510f150c85fb525bf25"
    "703df7209b6066f09c37280d59128d2f0f637c7d7d7fad4ed1c1ea04e628d221e3d8db77b7c878c9411cafc5"
    "071a34a00f4cf07738912753dfce48f07576f0d4f94f42c6d76f7ce973e9367095ba7e9a3649b7f461d9f9ac"
    "1332a4d1044c96aefee67676401b64457c54d65fef6500c59cdfb69af7b6dddfcb0f086278dd8ad0686078df"
    "b0f3f79cd893d314168648499898fbc0ced5f95b74e8ff14d735cdea968bee7400000005d8b8112f9200a5e5"
    "0c4a262165bd342cd800b8496810bc716277435ac376728d129ac6eda839a6f357b5a04387c5ce97382a78f2"
    "a4372917eefcbf93f63bb59112f5dbe400bd49e4501e859f885bf0736e90a509b30a26bfac8c17b5991c157e"
    "b5971115aa39efd8d564a6b90282c3168af2d30ef89d51bf14654510a12b8a144cca1848cf7da59cc2b3d9d0"
    "692dd2a20ba3863480e25b1b85ee860c62bf51360000000500000004d2f14ff6346af964569f7d6cb880a1b6"
    "6c5004917da6eafe4d9ef6c6407b3db0e5485b122d9ebe15cda93cfec582d7ab0000000a000000040703c491"
    "e7558b35011ece3592eaa5da4d918786771233e8353bc4f62323185c95cae05b899e35dffd71705470620998"
    "8ebfdf6e37960bb5c38d7657e8bffeef9bc042da4b4525650485c66d0ce19b317587c6ba4bffcc428e25d089"
    "31e72dfb6a120c5612344258b85efdb7db1db9e1865a73caf96557eb39ed3e3f426933ac9eeddb03a1d2374a"
    "f7bf77185577456237f9de2d60113c23f846df26fa942008a698994c0827d90e86d43e0df7f4bfcdb09b86a3"
    "73b98288b7094ad81a0185ac100e4f2c5fc38c003c1ab6fea479eb2f5ebe48f584d7159b8ada03586e65ad9c"
    "969f6aecbfe44cf356888a7b15a3ff074f771760b26f9c04884ee1faa329fbf4e61af23aee7fa5d4d9a5dfcf"
    "43c4c26ce8aea2ce8a2990d7ba7b57108b47dabfbeadb2b25b3cacc1ac0cef346cbb90fb044beee4fac2603a"
    "442bdf7e507243b7319c9944b1586e899d431c7f91bcccc8690dbf59b28386b2315f3d36ef2eaa3cf30b2b51"
    "f48b71b003dfb08249484201043f65f5a3ef6bbd61ddfee81aca9ce60081262a00000480dcbc9a3da6fbef5c"
    "1c0a55e48a0e729f9184fcb1407c31529db268f6fe50032a363c9801306837fafabdf957fd97eafc80dbd165"
    "e435d0e2dfd836a28b354023924b6fb7e48bc0b3ed95eea64c2d402f4d734c8dc26f3ac591825daef01eae3c"
    "38e3328d00a77dc657034f287ccb0f0e1c9a7cbdc828f627205e4737b84b58376551d44c12c3c215c812a097"
    "0789c83de51d6ad787271963327f0a5fbb6b5907dec02c9a90934af5a1c63b72c82653605d1dcce51596b3c2"
    "b45696689f2eb382007497557692caac4d57b5de9f5569bc2ad0137fd47fb47e664fcb6db4971f5b3e07aced"
    "a9ac130e9f38182de994cff192ec0e82fd6d4cb7f3fe00812589b7a7ce515440456433016b84a59bec6619a1"
    "c6c0b37dd1450ed4f2d8b584410ceda8025f5d2d8dd0d2176fc1cf2cc06fa8c82bed4d944e71339ece780fd0"
    "25bd41ec34ebff9d4270a3224e019fcb444474d482fd2dbe75efb20389cc10cd600abb54c47ede93e08c114e"
    "db04117d714dc1d525e11bed8756192f929d15462b939ff3f52f2252da2ed64d8fae88818b1efa2c7b08c879"
    "4fb1b214aa233db3162833141ea4383f1a6f120be1db82ce3630b3429114463157a64e91234d475e2f79cbf0"
    "5e4db6a9407d72c6bff7d1198b5c4d6aad2831db61274993715a0182c7dc8089e32c8531deed4f7431c07c02"
    "195eba2ef91efb5613c37af7ae0c066babc69369700e1dd26eddc0d216c781d56e4ce47e3303fa73007ff7b9"
    "49ef23be2aa4dbf25206fe45c20dd888395b2526391a724996a44156beac808212858792bf8e74cba49dee5e"
    "8812e019da87454bff9e847ed83db07af313743082f880a278f682c2bd0ad6887cb59f652e155987d61bbf6a"
    "88d36ee93b6072e6656d9ccbaae3d655852e38deb3a2dcf8058dc9fb6f2ab3d3b3539eb77b248a661091d05e"
    "b6e2f297774fe6053598457cc61908318de4b826f0fc86d4bb117d33e865aa805009cc2918d9c2f840c4da43"
    "a703ad9f5b5806163d7161696b5a0adc00000005d5c0d1bebb06048ed6fe2ef2c6cef305b3ed633941ebc8b3"
    "bec9738754cddd60e1920ada52f43d055b5031cee6192520d6a5115514851ce7fd448d4a39fae2ab2335b525"
    "f484e9b40d6a4a969394843bdcf6d14c48e8015e08ab92662c05c6e9f90b65a7a6201689999f32bfd368e5e3"
    "ec9cb70ac7b8399003f175c40885081a09ab3034911fe125631051df0408b3946b0bde790911e8978ba07dd5"
    "6c73e7ee"
)


def _leaf(signature: bytes) -> int:
    """The LMS leaf index q of a one-level HSS signature (after Nspk)."""
    return int.from_bytes(signature[4:8], "big")


@pytest.fixture
def key(tmp_path: Path) -> LmsPrivateKey:
    return LmsPrivateKey.generate(tmp_path / "lms.key", H5)


# --- verification against RFC 8554 ------------------------------------------------------------


def test_rfc8554_test_case_1_verifies() -> None:
    verifier = LmsPublicKey(_TC1_PUBLIC)
    assert verifier.levels == 2
    assert verifier.algorithm is Algorithm.HSS_LMS
    verifier.verify(_TC1_SIGNATURE, _TC1_MESSAGE)


def test_rfc8554_test_case_1_rejects_other_message() -> None:
    with pytest.raises(BadSignature):
        LmsPublicKey(_TC1_PUBLIC).verify(_TC1_SIGNATURE, _TC1_MESSAGE[:-1])


@pytest.mark.parametrize("offset", [0, 3, 7, 100, 1300, 1400, len(_TC1_SIGNATURE) - 1])
def test_rfc8554_test_case_1_rejects_flipped_bytes(offset: int) -> None:
    tampered = bytearray(_TC1_SIGNATURE)
    tampered[offset] ^= 0x01
    with pytest.raises(BadSignature):
        LmsPublicKey(_TC1_PUBLIC).verify(bytes(tampered), _TC1_MESSAGE)


@pytest.mark.parametrize(
    "signature",
    [
        b"",
        _TC1_SIGNATURE[:3],
        _TC1_SIGNATURE[:-1],
        _TC1_SIGNATURE + b"\x00",
        _TC1_SIGNATURE[:1000],
    ],
)
def test_wrong_length_signature_is_rejected(signature: bytes) -> None:
    with pytest.raises(BadSignature):
        LmsPublicKey(_TC1_PUBLIC).verify(signature, _TC1_MESSAGE)


def test_lmots_type_must_match_the_public_key() -> None:
    # Nspk ‖ q ‖ otstype: replace the first LM-OTS typecode (W8 = 4) by W4 = 3.
    tampered = _TC1_SIGNATURE[:8] + (3).to_bytes(4, "big") + _TC1_SIGNATURE[12:]
    with pytest.raises(BadSignature, match="LM-OTS type"):
        LmsPublicKey(_TC1_PUBLIC).verify(tampered, _TC1_MESSAGE)


def test_wrong_level_count_is_rejected() -> None:
    one_level = LmsPublicKey((1).to_bytes(4, "big") + _TC1_PUBLIC[4:])
    with pytest.raises(BadSignature, match="levels"):
        one_level.verify(_TC1_SIGNATURE, _TC1_MESSAGE)


@pytest.mark.parametrize(
    "public",
    [
        b"",
        _TC1_PUBLIC[:20],
        _TC1_PUBLIC + b"\x00",
        (0).to_bytes(4, "big") + _TC1_PUBLIC[4:],
        (9).to_bytes(4, "big") + _TC1_PUBLIC[4:],
    ],
)
def test_malformed_public_key(public: bytes) -> None:
    with pytest.raises(MalformedInput):
        LmsPublicKey(public)


def test_unknown_typecode_public_key() -> None:
    with pytest.raises(UnsupportedAlgorithm):
        LmsPublicKey(_TC1_PUBLIC[:4] + (0x99).to_bytes(4, "big") + _TC1_PUBLIC[8:])


def test_cose_key_thumbprint_covers_kty_and_pub_only() -> None:
    verifier = LmsPublicKey(_TC1_PUBLIC)
    cose = verifier.to_cose_key(include_kid=True)
    assert cose == {1: 5, 3: -46, -1: _TC1_PUBLIC, 2: verifier.kid}
    expected = cbor2.dumps({1: 5, -1: _TC1_PUBLIC}, canonical=True)
    assert expected[:4] == bytes.fromhex("a2010520")
    assert verifier.kid == hashlib.sha256(expected).digest()
    assert cose_key_thumbprint({1: 5, -1: _TC1_PUBLIC, 3: -46, 2: b"x"}) == verifier.kid
    parsed = verifier_from_cose_key(cbor2.dumps(cose))
    assert isinstance(parsed, LmsPublicKey)
    assert parsed == verifier
    parsed.verify(_TC1_SIGNATURE, _TC1_MESSAGE)


def test_cose_key_with_other_alg_is_rejected() -> None:
    with pytest.raises(UnsupportedAlgorithm):
        LmsPublicKey.from_cose_key({1: 5, 3: -7, -1: _TC1_PUBLIC})
    with pytest.raises(MalformedInput):
        LmsPublicKey.from_cose_key({1: 5, -1: "not bytes"})


# --- signing with a state file ------------------------------------------------------------------


def test_parameter_sets_include_the_sp800_208_n24_sets() -> None:
    params = LMS_PARAMETER_SETS["SHA256-N24-H15-W4"]
    # SP 800-208 typecodes: LMS_SHA256_M24_H15 = 0x0C, LMOTS_SHA256_N24_W4 = 0x07; p = 51.
    assert (params.lms_type, params.lmots_type, params.m, params.n, params.p) == (12, 7, 24, 24, 51)
    assert params.max_signatures == 2**15
    assert params.signature_size == 1624
    assert LMS_PARAMETER_SETS["SHA256-N32-H10-W8"].lms_type == 6


def test_sign_and_verify(key: LmsPrivateKey) -> None:
    signature = key.sign(b"firmware manifest")
    assert len(signature) == key.parameter_set.signature_size
    key.verifier().verify(signature, b"firmware manifest")
    with pytest.raises(BadSignature):
        key.verifier().verify(signature, b"firmware manifesT")


def test_verifier_from_the_public_key_alone(key: LmsPrivateKey) -> None:
    signature = key.sign(b"data")
    verifier = LmsPublicKey(key.public_key.raw_bytes())
    verifier.verify(signature, b"data")
    assert verifier.kid == key.kid


@pytest.mark.parametrize("offset", [1, 5, 9, 40, 700, 1383])
def test_flipped_signature_is_rejected(key: LmsPrivateKey, offset: int) -> None:
    signature = bytearray(key.sign(b"data"))
    signature[offset] ^= 0x80
    with pytest.raises(BadSignature):
        key.verifier().verify(bytes(signature), b"data")


def test_leaves_advance_and_state_persists(tmp_path: Path, key: LmsPrivateKey) -> None:
    leaves = [_leaf(key.sign(b"m%d" % i)) for i in range(3)]
    assert leaves == [0, 1, 2]
    reloaded = LmsPrivateKey.load(key.path)
    assert reloaded.remaining() == 32 - 3
    assert _leaf(reloaded.sign(b"next")) == 3


def test_state_file_is_private(key: LmsPrivateKey) -> None:
    assert stat.S_IMODE(os.stat(key.path).st_mode) == 0o600


def test_generate_never_overwrites(key: LmsPrivateKey) -> None:
    with pytest.raises(Conflict):
        LmsPrivateKey.generate(key.path, H5)


def test_crash_between_reservation_and_signing_never_reuses_a_leaf(
    key: LmsPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _leaf(key.sign(b"first")) == 0

    class Crash(Exception):
        pass

    def crash(*_args: object) -> bytes:
        raise Crash

    # Leaf 1 is reserved on disk, then the "process dies" before the signature exists.
    monkeypatch.setattr(LmsPrivateKey, "_sign_leaf", crash)
    with pytest.raises(Crash):
        key.sign(b"lost")
    monkeypatch.undo()

    # A new process loads the state file: leaf 1 is gone for good.
    restarted = LmsPrivateKey.load(key.path)
    signature = restarted.sign(b"after restart")
    assert _leaf(signature) == 2
    restarted.verifier().verify(signature, b"after restart")
    assert restarted.remaining() == 32 - 3


def test_exhausted_key_raises_state_reuse(key: LmsPrivateKey) -> None:
    for i in range(32):
        key.sign(b"%d" % i)
    assert key.remaining() == 0
    with pytest.raises(StateReuse, match="exhausted"):
        key.sign(b"one too many")
    with pytest.raises(StateReuse):
        LmsPrivateKey.load(key.path).sign(b"from another process")


def test_restored_copy_of_the_state_is_refused(tmp_path: Path, key: LmsPrivateKey) -> None:
    backup = tmp_path / "backup"
    shutil.copy2(key.path, backup)
    key.sign(b"a")
    key.sign(b"b")
    os.replace(backup, key.path)  # an operator restores yesterday's state file
    with pytest.raises(StateReuse, match="backwards"):
        key.sign(b"c")


def test_state_file_swapped_for_another_key(tmp_path: Path, key: LmsPrivateKey) -> None:
    other = LmsPrivateKey.generate(tmp_path / "other.key", H5)
    os.replace(other.path, key.path)
    with pytest.raises(StateReuse, match="different key"):
        key.sign(b"x")


def test_missing_state_file(key: LmsPrivateKey) -> None:
    key.path.unlink()
    with pytest.raises(StateReuse, match="gone"):
        key.sign(b"x")


def test_two_signers_on_one_state_file_never_share_a_leaf(key: LmsPrivateKey) -> None:
    signers = [LmsPrivateKey.load(key.path), LmsPrivateKey.load(key.path)]
    leaves: list[int] = []
    errors: list[BaseException] = []
    guard = threading.Lock()

    def work(signer: LmsPrivateKey) -> None:
        try:
            for i in range(8):
                signature = signer.sign(b"%d" % i)
                with guard:
                    leaves.append(_leaf(signature))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in signers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(leaves) == list(range(16))
    assert key.remaining() == 32 - 16


def test_a_state_file_reached_through_a_symlink_is_advanced_where_it_lives(
    tmp_path: Path, key: LmsPrivateKey
) -> None:
    # An operator points a configured name at the key (/etc/... -> /secure/...). Signing
    # through the link must advance the one state file, not replace the link with a copy
    # while the real file keeps leaf 0 for the next signer that names it.
    link = tmp_path / "configured.key"
    link.symlink_to(key.path)
    first = LmsPrivateKey.load(link).sign(b"through the link")
    assert link.is_symlink()
    second = LmsPrivateKey.load(key.path).sign(b"through the real name")
    assert (_leaf(first), _leaf(second)) == (0, 1)
    assert key.remaining() == 32 - 2


def test_a_hard_linked_state_file_is_refused(tmp_path: Path, key: LmsPrivateKey) -> None:
    # A second name for the state file is a copy in waiting: the first signature replaces one
    # name and the other keeps the old leaf index.
    twin = tmp_path / "twin.key"
    os.link(key.path, twin)
    with pytest.raises(StateReuse, match="2 names") as caught:
        LmsPrivateKey.load(twin).sign(b"x")
    assert caught.value.code == "state-reuse"
    assert LmsPrivateKey.load(key.path).remaining() == 32
    twin.unlink()
    assert _leaf(LmsPrivateKey.load(key.path).sign(b"y")) == 0


def test_signing_removes_the_key_s_own_stale_temporaries_and_nothing_else(
    tmp_path: Path, key: LmsPrivateKey
) -> None:
    """A ``write_atomic`` of the state file killed before its rename leaves a whole copy of
    the key (``.lms.key.XXXXXXXX.tmp``): the next signature deletes it. Another file's
    temporary beside it (which may be a write under way) and every look-alike that
    ``write_atomic`` never makes (capitals, a dash, 7 or 9 characters, a folder, a link)
    stay."""
    stale = [stale_temporary(tmp_path, "lms.key") for _ in range(2)]
    others = [
        stale_temporary(tmp_path, "other.key"),
        stale_temporary(tmp_path, "lms.key.x"),  # .lms.key.x.XXXXXXXX.tmp: not this key's
        stale_temporary(tmp_path, "lms"),  # .lms.XXXXXXXX.tmp
    ]
    for name in (
        ".lms.key.ABCD1234.tmp",
        ".lms.key.abcd-234.tmp",
        ".lms.key.abcd123.tmp",
        ".lms.key.abcd12345.tmp",
        "lms.key.abcd1234.tmp",
        ".lms.key.abcd1234.tmp.bak",
    ):
        (tmp_path / name).write_bytes(b"keep me")
        others.append(tmp_path / name)
    (tmp_path / ".lms.key.dir12345.tmp").mkdir()
    (tmp_path / ".lms.key.link1234.tmp").symlink_to(tmp_path / "elsewhere")
    assert _leaf(key.sign(b"x")) == 0
    assert not any(p.exists() for p in stale)
    assert all(p.read_bytes() in (b"keep me", b"half a key") for p in others)
    assert (tmp_path / ".lms.key.dir12345.tmp").is_dir()
    assert (tmp_path / ".lms.key.link1234.tmp").is_symlink()


@pytest.mark.parametrize(
    "mutate",
    [
        lambda m: {**m, "q": 33},
        lambda m: {**m, "q": -1},
        lambda m: {**m, "seed": b"short"},
        lambda m: {**m, "I": b"\x00" * 15},
        lambda m: {**m, "version": 2},
        lambda m: {**m, "extra": 1},
        lambda m: {k: v for k, v in m.items() if k != "pub"},
        lambda m: {**m, "pub": m["pub"][:-1]},
        lambda m: {**m, "q": True},
    ],
)
def test_malformed_state_file(key: LmsPrivateKey, mutate: object) -> None:
    state = cbor2.loads(key.path.read_bytes())
    key.path.write_bytes(cbor2.dumps(mutate(state)))  # type: ignore[operator]
    with pytest.raises(MalformedInput):
        LmsPrivateKey.load(key.path)


def test_state_with_unknown_parameters(key: LmsPrivateKey) -> None:
    state = cbor2.loads(key.path.read_bytes())
    key.path.write_bytes(cbor2.dumps({**state, "lms": 0x0E}))  # H25: not a signing set
    with pytest.raises(UnsupportedAlgorithm):
        LmsPrivateKey.load(key.path)


def test_state_whose_seed_does_not_match_its_public_key(key: LmsPrivateKey) -> None:
    state = cbor2.loads(key.path.read_bytes())
    key.path.write_bytes(cbor2.dumps({**state, "seed": bytes(24)}))
    with pytest.raises(StorageError):
        LmsPrivateKey.load(key.path).sign(b"x")


def test_garbage_state_file(tmp_path: Path) -> None:
    path = tmp_path / "junk"
    path.write_bytes(b"\xa1\x61")
    with pytest.raises(MalformedInput):
        LmsPrivateKey.load(path)


def test_unknown_parameter_set(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedAlgorithm):
        LmsPrivateKey.generate(tmp_path / "k", "SHA256-N24-H25-W4")


def test_load_signer_reads_a_state_file(key: LmsPrivateKey) -> None:
    key.sign(b"x")
    signer = load_signer(key.path)
    assert isinstance(signer, LmsPrivateKey)
    assert signer.kid == key.kid
    assert _leaf(signer.sign(b"y")) == 1


def test_m32_parameter_set(tmp_path: Path) -> None:
    signer = LmsPrivateKey.generate(tmp_path / "k", "SHA256-N32-H5-W8")
    signature = signer.sign(b"m32")
    assert len(signature) == signer.parameter_set.signature_size == 4 + 1292
    signer.verifier().verify(signature, b"m32")


def _h15_vector() -> dict[str, object]:
    """The Caliptra vendor set's known-good vector (scripts/gen_lms_vector.py wrote it once)."""
    loaded = json.loads((Path(__file__).parent / "data" / "lms-sha256-n24-h15-w4.json").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_h15_n24_w4_vector_verifies_with_ours_and_with_pyhsslms() -> None:
    """SHA256-N24-H15-W4 end to end without its ~40 s key generation: a committed vector.

    ``pyhsslms``'s own verifier is the independent check of what the product's generate and
    sign wrote; the product's verifier must agree on it and refuse the other message.
    """
    from pyhsslms import pyhsslms as reference

    vector = _h15_vector()
    params = LMS_PARAMETER_SETS[str(vector["parameter_set"])]
    public = bytes.fromhex(str(vector["public_key"]))
    verifier = LmsPublicKey(public)
    assert verifier.parameter_set == params
    independent = reference.HssPublicKey.deserialize(public)
    signed = vector["signatures"]
    assert isinstance(signed, list)
    assert len(signed) == 2
    for leaf, item in enumerate(signed):
        message, signature = bytes.fromhex(item["message"]), bytes.fromhex(item["signature"])
        assert (len(signature), _leaf(signature)) == (params.signature_size, leaf) == (1624, leaf)
        assert independent.verify(message, signature)
        verifier.verify(signature, message)
        with pytest.raises(BadSignature):
            verifier.verify(signature, message + b"!")
    with pytest.raises(BadSignature):
        verifier.verify(bytes.fromhex(signed[0]["signature"]), bytes.fromhex(signed[1]["message"]))
    for offset in (8, 200, 1000, 1623):  # OTS signature, auth path, last byte
        flipped = bytearray(bytes.fromhex(signed[0]["signature"]))
        flipped[offset] ^= 1
        try:  # pyhsslms refuses a malformed signature by raising, a wrong one by False
            accepted = independent.verify(bytes.fromhex(signed[0]["message"]), bytes(flipped))
        except ValueError:
            accepted = False
        assert not accepted
        with pytest.raises(BadSignature):
            verifier.verify(bytes(flipped), bytes.fromhex(signed[0]["message"]))
