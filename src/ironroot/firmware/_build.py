"""Build an unsigned bundle from components and keys, then sign it (vendor, optionally owner).

What is signed (as in Caliptra): the header. The header carries the SHA-384 of the TOC, and
each TOC entry the SHA-384 of its component, so one signature covers everything but the
preamble, whose keys are checked against the signed indices and the fused descriptor hash.
The ECDSA P-384 signature is ECDSA-with-SHA-384 over the header bytes, i.e. over their SHA-384
digest; the ML-DSA-87 or LMS signature is over that 48-byte SHA-384 digest. Both are always
made: a bundle with one of them is rejected by verification. Owners sign the same header with
their own ECC and PQC keys, which ``sign_bundle`` places in the preamble.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import struct
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from ironroot.crypto import (
    Algorithm,
    LmsPrivateKey,
    LmsPublicKey,
    Signer,
    Verifier,
    ecdsa_low_s,
)
from ironroot.errors import (
    BadSignature,
    ConfigError,
    DigestMismatch,
    KeyNotInDescriptor,
    LimitExceeded,
    MalformedFirmware,
    StateReuse,
    UnsupportedAlgorithm,
)
from ironroot.firmware._keys import (
    ecc_key_bytes,
    ecc_verifier,
    key_hash,
    lms_parameter_set_name,
    make_descriptors,
    pqc_key_bytes,
    pqc_verifier,
)
from ironroot.firmware._manifest import (
    _KNOWN_FLAGS,
    DEFAULT_LIMITS,
    ECC_SIGNATURE_SIZE,
    FMC_ID,
    HASH_SIZE,
    MANIFEST_VERSION,
    MAX_SVN,
    MLDSA87_SIGNATURE_SIZE,
    REVISION_SIZE,
    RUNTIME_ID,
    TOC_ENTRY_SIZE,
    TOC_OFFSET,
    TOC_TYPE_EXECUTABLE,
    FirmwareBundle,
    FirmwareLimits,
    Manifest,
    ManifestHeader,
    PqcKeyType,
    Preamble,
    TocEntry,
    UnsignedBundle,
    encode_time,
)

__all__ = ["Component", "build_bundle", "sign_bundle"]

_LOAD_BASE: Final = 0x4000_0000
_LOAD_ALIGN: Final = 0x1000
_U32: Final = 1 << 32


@dataclass(frozen=True, slots=True)
class Component:
    """One firmware component to put in a bundle.

    ``component_id`` 1 is the FMC, 2 the runtime, and any id ≥ 3 another image.
    ``revision`` is up to 20 bytes (a commit hash). Without a ``load_address`` the builder
    places components one after another from 0x4000_0000 on 4 KiB boundaries; without an
    ``entry_point`` a component starts at its load address.
    """

    component_id: int
    data: bytes
    version: int = 0
    revision: bytes = b""
    load_address: int | None = None
    entry_point: int | None = None


def _uint(value: object, bits: int, what: str) -> int:
    """``value`` if it is an ``int`` (not a ``bool``) of ``bits`` unsigned bits, else
    ``ConfigError``: a ``"1"`` or ``1.5`` is refused here, not a ``TypeError`` deep inside."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << bits:
        raise ConfigError(f"{what} must be an unsigned {bits}-bit integer")
    return value


def _u32(value: object, what: str) -> int:
    return _uint(value, 32, what)


def _date(value: object, what: str) -> dt.datetime:
    """A validity date: a timezone-aware ``datetime`` of a year GeneralizedTime can hold."""
    if not isinstance(value, dt.datetime):
        raise ConfigError(f"{what} must be a timezone-aware datetime")
    encode_time(value)  # timezone and range checks
    return value


def _order(components: Sequence[Component]) -> list[Component]:
    if isinstance(components, str | bytes) or not isinstance(components, Sequence):
        raise ConfigError("components must be a sequence of Component")
    by_id: dict[int, Component] = {}
    for component in components:
        if not isinstance(component, Component):
            raise ConfigError("components must be a sequence of Component")
        cid = _u32(component.component_id, "component id")
        if cid == 0:
            raise ConfigError("component id 0 is reserved")
        if cid in by_id:
            raise ConfigError(f"component id {cid} appears twice")
        by_id[cid] = component
    if FMC_ID not in by_id or RUNTIME_ID not in by_id:
        raise ConfigError("a bundle needs an FMC (id 1) and a runtime (id 2)")
    extras = [c for c in components if c.component_id not in (FMC_ID, RUNTIME_ID)]
    return [by_id[FMC_ID], by_id[RUNTIME_ID], *extras]


def _toc(components: Sequence[Component], limits: FirmwareLimits) -> tuple[TocEntry, ...]:
    if len(components) > limits.max_components:
        raise LimitExceeded(f"{len(components)} components exceed {limits.max_components}")
    offset = TOC_OFFSET + TOC_ENTRY_SIZE * len(components)
    next_load = _LOAD_BASE
    entries = []
    for component in components:
        data = component.data
        if not isinstance(data, bytes) or not data:
            raise ConfigError(f"component {component.component_id} must be non-empty bytes")
        if len(data) > limits.max_component_bytes:
            raise LimitExceeded(f"component {component.component_id} is too big")
        if not isinstance(component.revision, bytes) or len(component.revision) > REVISION_SIZE:
            raise ConfigError(f"a component revision is at most {REVISION_SIZE} bytes")
        load = next_load if component.load_address is None else component.load_address
        load = _u32(load, "load address")
        entry = load if component.entry_point is None else _u32(component.entry_point, "entry")
        if load + len(data) > _U32:
            raise ConfigError(f"component {component.component_id} does not fit below 4 GiB")
        entries.append(
            TocEntry(
                component_id=component.component_id,
                toc_type=TOC_TYPE_EXECUTABLE,
                revision=component.revision.ljust(REVISION_SIZE, b"\0"),
                version=_u32(component.version, "component version"),
                load_address=load,
                entry_point=entry,
                offset=offset,
                size=len(data),
                digest=hashlib.sha384(data).digest(),
            )
        )
        offset += len(data)
        next_load = max(next_load, -(-(load + len(data)) // _LOAD_ALIGN) * _LOAD_ALIGN)
    return tuple(entries)


def build_bundle(
    components: Sequence[Component],
    *,
    svn: int,
    not_before: dt.datetime,
    not_after: dt.datetime,
    vendor_ecc_keys: Sequence[Verifier],
    vendor_pqc_keys: Sequence[Verifier],
    pqc_type: PqcKeyType | str,
    ecc_index: int = 0,
    pqc_index: int = 0,
    revision: int = 0,
    flags: int = 0,
    pl0_pauser: int = 0,
    owner_not_before: dt.datetime | None = None,
    owner_not_after: dt.datetime | None = None,
    limits: FirmwareLimits = DEFAULT_LIMITS,
) -> UnsignedBundle:
    """Lay out an unsigned bundle: descriptors of all vendor keys, the active pair, the TOC.

    The result parses (``UnsignedBundle.parse(result.encode())`` gives it back); errors in the
    arguments raise ``ConfigError``, ``UnsupportedAlgorithm`` or ``MalformedFirmware``.
    """
    key_type = PqcKeyType.parse(pqc_type)
    if not isinstance(limits, FirmwareLimits):
        raise ConfigError("limits must be a FirmwareLimits")
    if isinstance(svn, bool) or not isinstance(svn, int) or not 0 <= svn <= MAX_SVN:
        raise ConfigError(f"SVN must be an integer 0–{MAX_SVN}")
    _date(not_before, "not-before")
    _date(not_after, "not-after")
    if not_after < not_before:
        raise ConfigError("not-after is before not-before")
    if (owner_not_before is None) != (owner_not_after is None):
        raise ConfigError("owner validity needs both dates")
    if owner_not_before is not None and owner_not_after is not None:
        owner_opens = _date(owner_not_before, "owner not-before")
        if _date(owner_not_after, "owner not-after") < owner_opens:
            raise ConfigError("owner not-after is before not-before")
    if _u32(flags, "flags") & ~_KNOWN_FLAGS:
        raise ConfigError("only flag bit 0 (PL0 PAUSER valid) is defined")
    _uint(revision, 64, "revision")
    ecc_desc, pqc_desc = make_descriptors(vendor_ecc_keys, vendor_pqc_keys, key_type)
    if not 0 <= _u32(ecc_index, "ECC key index") < len(vendor_ecc_keys):
        raise ConfigError(f"ECC key index {ecc_index} is not in the list of vendor keys")
    if not 0 <= _u32(pqc_index, "PQC key index") < len(vendor_pqc_keys):
        raise ConfigError(f"PQC key index {pqc_index} is not in the list of vendor keys")
    if key_type is PqcKeyType.LMS:
        active = vendor_pqc_keys[pqc_index]
        name = lms_parameter_set_name(pqc_key_bytes(active, key_type))
        if name not in limits.lms_parameter_sets:
            raise UnsupportedAlgorithm(f"LMS parameter set {name} is not accepted by the limits")
    ordered = _order(components)
    toc = _toc(ordered, limits)
    header = ManifestHeader(
        revision=revision,
        vendor_ecc_key_index=ecc_index,
        vendor_pqc_key_index=pqc_index,
        flags=_u32(flags, "flags"),
        toc_len=len(toc),
        pl0_pauser=_u32(pl0_pauser, "pl0_pauser"),
        toc_digest=hashlib.sha384(b"".join(e.encode() for e in toc)).digest(),
        svn=svn,
        not_before=not_before.replace(microsecond=0),
        not_after=not_after.replace(microsecond=0),
        owner_not_before=None
        if owner_not_before is None
        else owner_not_before.replace(microsecond=0),
        owner_not_after=None if owner_not_after is None else owner_not_after.replace(microsecond=0),
    )
    preamble = Preamble(
        ecc_descriptor=ecc_desc,
        pqc_descriptor=pqc_desc,
        vendor_ecc_key_index=ecc_index,
        vendor_ecc_key=ecc_key_bytes(vendor_ecc_keys[ecc_index]),
        vendor_pqc_key_index=pqc_index,
        vendor_pqc_key=pqc_key_bytes(vendor_pqc_keys[pqc_index], key_type),
    )
    manifest = Manifest(MANIFEST_VERSION, key_type, preamble, header, toc)
    unsigned = UnsignedBundle(manifest, tuple(c.data for c in ordered))
    return UnsignedBundle.parse(unsigned.encode(), limits)  # the builder's output must parse


def _pqc_algorithm(key_type: PqcKeyType) -> Algorithm:
    return Algorithm.ML_DSA_87 if key_type is PqcKeyType.MLDSA else Algorithm.HSS_LMS


def _sign_ecc(header_bytes: bytes, signer: Signer, public: bytes, who: str) -> bytes:
    """The ECDSA P-384 signature of the header, verified under the stored public key before
    it is kept: a signer that breaks its contract (DER, another key) is ``BadSignature``,
    before any LMS one-time key is spent (every ECDSA signature is made before the first PQC
    one)."""
    # ECDSA-with-SHA-384 over the header = over its digest; stored in the low-S form, the
    # only one a bundle accepts (a signer such as an HSM may give either)
    ecc_sig = ecdsa_low_s(Algorithm.ES384, signer.sign(header_bytes))
    try:
        if len(ecc_sig) != ECC_SIGNATURE_SIZE:
            raise BadSignature(f"{len(ecc_sig)} bytes, not {ECC_SIGNATURE_SIZE}")
        ecc_verifier(public).verify(ecc_sig, header_bytes)
    except BadSignature as exc:
        raise BadSignature(
            f"the {who} ECDSA P-384 signer's signature does not verify ({exc.detail}):"
            " nothing more is signed"
        ) from exc
    return ecc_sig


def _sign_pqc(
    digest: bytes, signer: Signer, public: bytes, key_type: PqcKeyType, who: str
) -> bytes:
    """The ML-DSA-87 or LMS signature of the header digest, verified under the stored public
    key before it is kept (a signer with another key, a signature the slot would cut short:
    ``BadSignature``)."""
    pqc_sig = signer.sign(digest)
    label = "ML-DSA-87" if key_type is PqcKeyType.MLDSA else "LMS"
    try:
        pqc_verifier(public, key_type).verify(pqc_sig, digest)
    except BadSignature as exc:
        raise BadSignature(
            f"the {who} {label} signer's signature does not verify ({exc.detail})"
        ) from exc
    if key_type is PqcKeyType.LMS:
        if pqc_sig[:4] != b"\0\0\0\0":
            raise UnsupportedAlgorithm("LMS firmware signatures are single-level (Nspk = 0)")
        pqc_sig = pqc_sig[4:]
    expected = MLDSA87_SIGNATURE_SIZE if key_type is PqcKeyType.MLDSA else None
    if expected is not None and len(pqc_sig) != expected:
        raise BadSignature(f"the {who} {label} signature is {len(pqc_sig)} bytes, not {expected}")
    return pqc_sig


def _check_lms_leaves(signers: Sequence[tuple[Signer, str]]) -> None:
    """Every LMS key among ``signers`` can make each signature it is to make (one key may sign
    as vendor and as owner): checked before the first PQC signature, since otherwise the first
    signer's one-time key is spent, the second refuses (exhausted, an older copy, bound to a
    counter it was opened without: ``StateReuse``), and no bundle is made with it."""
    needed: dict[Path, list[str]] = {}
    keys: dict[Path, LmsPrivateKey] = {}
    for signer, who in signers:
        if isinstance(signer, LmsPrivateKey):
            needed.setdefault(signer.path, []).append(who)
            keys.setdefault(signer.path, signer)
    for path, whos in needed.items():
        try:
            keys[path].check_ready(len(whos))
        except StateReuse as exc:
            raise StateReuse(
                f"the {' and '.join(whos)} LMS key: {exc.detail}; nothing signed"
            ) from exc


def _check_signers(ecc: Signer, pqc: Signer, key_type: PqcKeyType, who: str) -> None:
    if ecc.algorithm is not Algorithm.ES384:
        raise UnsupportedAlgorithm(f"the {who} ECC signer must be ES384, not {ecc.algorithm.label}")
    expected = _pqc_algorithm(key_type)
    if pqc.algorithm is not expected:
        raise UnsupportedAlgorithm(
            f"the {who} PQC signer must be {expected.label}, not {pqc.algorithm.label}"
        )


def _check_digests(bundle: FirmwareBundle) -> None:
    """The header's TOC digest is the SHA-384 of the TOC, and each TOC digest the SHA-384 of
    the component the bundle carries: the signer signs for the bytes it was given. Otherwise a
    header naming other images (a build artifact altered before signing) would be signed, and
    those images would verify under it."""
    manifest = bundle.manifest
    if hashlib.sha384(manifest.toc_bytes()).digest() != manifest.header.toc_digest:
        raise DigestMismatch("the TOC does not match the header's TOC digest: nothing signed")
    for entry, data in zip(manifest.toc, bundle.components, strict=True):
        if hashlib.sha384(data).digest() != entry.digest:
            raise DigestMismatch(
                f"component {entry.component_id} does not match its TOC digest: nothing signed"
            )


def _check_lms_set(
    signer: Signer, public: bytes, key_type: PqcKeyType, limits: FirmwareLimits, who: str
) -> None:
    """An LMS key's parameter set must be one the limits admit (the verifier's own check)."""
    if key_type is PqcKeyType.LMS and isinstance(signer.verifier(), LmsPublicKey):
        name = lms_parameter_set_name(public)
        if name not in limits.lms_parameter_sets:
            raise UnsupportedAlgorithm(
                f"{who}LMS parameter set {name} is not accepted by the limits"
            )


def sign_bundle(
    unsigned: UnsignedBundle | FirmwareBundle | bytes,
    ecc_signer: Signer,
    pqc_signer: Signer,
    owner_signers: tuple[Signer, Signer] | None = None,
    *,
    limits: FirmwareLimits = DEFAULT_LIMITS,
    header_digest: bytes | None = None,
) -> bytes:
    """Sign the header with the vendor's ECC and PQC keys (and the owner's); return the bundle.

    ``header_digest`` (SHA-384 of the header, as the build reported it) binds the signing to
    that build: the bundle's own TOC and component digests are consistent in a bundle rebuilt
    by anyone from other images (the vendor public keys are public), but its header is not
    that one, and ``DigestMismatch`` is raised before anything is signed.

    The vendor signers must hold the active keys the manifest names (``KeyNotInDescriptor``
    otherwise). The bundle must be self-consistent: a TOC that does not match the header's TOC
    digest, or a component that does not match its TOC digest, is ``DigestMismatch`` and
    nothing is signed (no LMS one-time key is spent). ``owner_signers`` is ``(ecc, pqc)``;
    their public keys are written into the preamble. An owner key the verifier would refuse
    (not P-384, not a single-tree N24 LMS key, an LMS set the limits do not admit) raises
    ``UnsupportedAlgorithm`` before anything is signed, as a vendor key does. Every ECDSA
    signature is made (and verified) before the first PQC one, and each LMS state file must
    hold a one-time key for every signature it is to make (``StateReuse`` otherwise), so a
    refused signing spends none. An LMS signer spends one one-time key per call (its state
    file says which). The bundle is parsed under ``limits`` (a ``FirmwareBundle`` value
    through its encoding).
    """
    if not isinstance(limits, FirmwareLimits):
        raise ConfigError("limits must be a FirmwareLimits")
    # A bundle value made in Python is parsed from its encoding too: what is signed is what
    # a verifier reads, under the limits it is verified with.
    try:
        data = unsigned.encode() if isinstance(unsigned, FirmwareBundle) else unsigned
    except struct.error as exc:  # a field out of its range in a value made in Python
        raise MalformedFirmware(f"the bundle does not encode: {exc}") from exc
    bundle: FirmwareBundle = (
        FirmwareBundle.parse(data, limits)
        if isinstance(unsigned, FirmwareBundle)
        else UnsignedBundle.parse(data, limits)
    )
    if header_digest is not None:
        if not isinstance(header_digest, bytes) or len(header_digest) != HASH_SIZE:
            raise ConfigError("header_digest must be a 48-byte SHA-384 hash")
        actual = bundle.header_digest()
        if not hmac.compare_digest(actual, header_digest):
            raise DigestMismatch(
                f"the header to sign is not the expected one (SHA-384 {actual.hex()[:16]}…,"
                f" expected {header_digest.hex()[:16]}…): the bundle was rebuilt or altered"
                " after the build; nothing signed"
            )
    _check_digests(bundle)
    manifest = bundle.manifest
    key_type = manifest.pqc_key_type
    pre = manifest.preamble
    _check_signers(ecc_signer, pqc_signer, key_type, "vendor")
    if key_hash(ecc_key_bytes(ecc_signer.verifier())) != key_hash(pre.vendor_ecc_key):
        raise KeyNotInDescriptor("the ECC signer is not the manifest's active vendor ECC key")
    pqc_public = pqc_key_bytes(pqc_signer.verifier(), key_type)
    if pqc_public != pre.vendor_pqc_key:
        raise KeyNotInDescriptor("the PQC signer is not the manifest's active vendor PQC key")
    _check_lms_set(pqc_signer, pqc_public, key_type, limits, "")
    header_bytes = manifest.header_bytes()
    digest = hashlib.sha384(header_bytes).digest()
    vendor_pair = (ecc_signer, pqc_signer, pre.vendor_ecc_key, pre.vendor_pqc_key, "vendor")
    pairs = [vendor_pair]
    if owner_signers is not None:
        owner_ecc, owner_pqc = owner_signers
        _check_signers(owner_ecc, owner_pqc, key_type, "owner")
        # Every owner key check before the first signature: an LMS one-time key spent on a
        # bundle its verifier refuses is gone for nothing.
        owner_ecc_public = ecc_key_bytes(owner_ecc.verifier())
        owner_pqc_public = pqc_key_bytes(owner_pqc.verifier(), key_type)
        _check_lms_set(owner_pqc, owner_pqc_public, key_type, limits, "owner ")
        pairs.insert(0, (owner_ecc, owner_pqc, owner_ecc_public, owner_pqc_public, "owner"))
    elif pre.has_owner:
        raise MalformedFirmware("the bundle names owner keys: pass owner_signers")
    # Both ECDSA signatures (each checked) before any PQC one, and a leaf for every LMS
    # signature checked before the first: a refused signing spends no one-time key.
    ecc_sigs = [_sign_ecc(header_bytes, ecc, ecc_key, who) for ecc, _, ecc_key, _, who in pairs]
    _check_lms_leaves([(pqc, who) for _, pqc, _, _, who in reversed(pairs)])
    pqc_sigs = [_sign_pqc(digest, pqc, pqc_key, key_type, who) for _, pqc, _, pqc_key, who in pairs]
    signed_preamble = replace(
        pre, vendor_ecc_signature=ecc_sigs[-1], vendor_pqc_signature=pqc_sigs[-1]
    )
    if owner_signers is not None:
        signed_preamble = replace(
            signed_preamble,
            owner_ecc_key=pairs[0][2],
            owner_pqc_key=pairs[0][3],
            owner_ecc_signature=ecc_sigs[0],
            owner_pqc_signature=pqc_sigs[0],
        )
    signed = FirmwareBundle(replace(manifest, preamble=signed_preamble), bundle.components)
    return signed.encode()
