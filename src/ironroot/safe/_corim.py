"""The OCP SAFE SFR CoRIM profile (OID 1.3.6.1.4.1.42623.1.1): parse and build.

Read from ``Documentation/corim_profile/`` of OCP-Security-SAFE and from the signed reports
published with it. The report is a CoRIM (tag 501) with ``profile`` (3) = tag 111 around the
DER OID ``06 0A 2B 06 01 04 01 82 F4 17 01 01``, ``entities`` (5) naming the review provider in
the ``manifest-creator`` role (1), and one CoMID (tag 506, a byte string) whose
``conditional-endorsement-triples`` (triples key 10) hold one record::

    [ [ [ {0: class}, [ {1: {2: [[-43, sha384], [-44, sha512]]}} ] ] ],      conditions
      [ [ {0: class}, [ {1: {-1: ocp-safe-sfr-map}} ] ] ] ]                  endorsements

with ``class = {1: vendor, 2: model}`` and ``ocp-safe-sfr-map = {0: framework version,
1: report version, 2: completion date (tag 1), 3: scope number, ? 4: [+ fw-identifier],
? 5: [+ issue], ? 6: SOLID version}``; ``fw-identifier = {? 0: {0: version, ? 1: scheme},
? 1: digests, ? 2: repo tag, ? 3: {0: manifest digests, 1: [+ {0: file name, 1: digests}]}}``;
``issue = {0: title, 1: description, 2: {0: score, 1: vector, ? 2: CVSS version}, ? 3: CWE,
? 4: CVE}``. Digests are ``[COSE hash alg, bytes]`` with −43 SHA-384 and −44 SHA-512.

This module walks exactly that path (the general CoRIM parser lives in :mod:`ironroot.corim`;
conditional endorsements and the SFR extension are specific enough to read here). Only one
SFR per CoRIM and one firmware identifier per SFR are accepted, which is what the profile's
producers emit; more is reported as ``MalformedReport`` rather than silently dropped.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from typing import Final, TypeGuard

import cbor2

from ironroot.cose import Limits, decode_cbor, encode_cbor
from ironroot.crypto import check_cbor_labels
from ironroot.errors import LimitExceeded, MalformedInput, MalformedReport
from ironroot.safe._model import (
    DEFAULT_SAFE_LIMITS,
    Audit,
    Device,
    Issue,
    ManifestEntry,
    SafeLimits,
    ShortFormReport,
    issue_of,
    parse_cvss_score,
)

__all__ = ["CORIM_TAG", "SFR_PROFILE_OID", "build_sfr_corim", "parse_sfr_corim"]

CORIM_TAG: Final = 501
COMID_TAG: Final = 506
OID_TAG: Final = 111
SFR_PROFILE_OID: Final = bytes.fromhex("060A2B0601040182F4170101")
_SHA384: Final = -43
_SHA512: Final = -44
_DIGEST_SIZE: Final = {_SHA384: 48, _SHA512: 64}
_ROLE_MANIFEST_CREATOR: Final = 1
_COND_ENDORSEMENTS: Final = 10
_SFR_EXTENSION: Final = -1
_MIN_EPOCH: Final = -(2**64)
_SFR_KEYS: Final = frozenset(range(7))
_ISSUE_KEYS: Final = frozenset(range(5))
_CVSS_KEYS: Final = frozenset(range(3))
_CORIM_KEYS: Final = frozenset(range(6))  # id, tags, dependent-rims, profile, validity, entities
_COMID_KEYS: Final = frozenset(range(5))  # language, tag-identity, entities, linked-tags, triples


def _cbor_limits(limits: SafeLimits) -> Limits:
    return Limits(
        max_bytes=limits.cose_cap,
        max_depth=limits.max_depth,
        max_items=max(limits.max_manifest, limits.max_issues, 1024),
    )


def _decode(data: bytes, limits: SafeLimits, what: str) -> object:
    cap = limits.cose_cap
    if len(data) > cap:  # refused whole, before a byte of it becomes an object
        raise LimitExceeded(f"{what} of {len(data)} bytes exceeds {cap}")
    try:
        return decode_cbor(data, _cbor_limits(limits))
    except LimitExceeded:
        raise
    except MalformedInput as exc:
        raise MalformedReport(f"{what}: {exc.detail}") from exc


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _map(value: object, what: str) -> Mapping[object, object]:
    """A map keyed by integers or text, as every CoRIM map is. A decoded map is a dict, where
    ``True == 1`` and ``10.0 == 10``: a map keyed by them would be read here as if keyed by
    the integer, though every other CoRIM reader sees another key."""
    if not isinstance(value, Mapping):
        raise MalformedReport(f"{what} must be a map")
    check_cbor_labels(value, f"{what} key", MalformedReport)
    return value


def _known_keys(
    value: Mapping[object, object], known: frozenset[int], what: str
) -> Mapping[object, object]:
    # An issue under a key this parser skips would be a finding other readers may see and
    # Ironroot would not: unknown keys are refused, as unknown JSON members are.
    unknown = [key for key in value if not _is_int(key) or key not in known]
    if unknown:
        raise MalformedReport(f"{what} has unknown key(s) {', '.join(map(repr, unknown))}")
    return value


def _array(value: object, what: str) -> tuple[object, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise MalformedReport(f"{what} must be a non-empty array")
    return tuple(value)


def _one(value: object, what: str) -> object:
    items = _array(value, what)
    if len(items) != 1:
        raise MalformedReport(f"{what} must hold exactly one entry, not {len(items)}")
    return items[0]


def _text(value: object, what: str, limits: SafeLimits) -> str:
    if not isinstance(value, str):
        raise MalformedReport(f"{what} must be text")
    if len(value) > limits.max_text:
        raise LimitExceeded(f"{what} is longer than {limits.max_text} characters")
    return value


def _opt_text(obj: Mapping[object, object], key: int, what: str, limits: SafeLimits) -> str | None:
    value = obj.get(key)
    return None if value is None else _text(value, what, limits)


def _digests(value: object, what: str) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    for i, item in enumerate(_array(value, what)):
        pair = item if isinstance(item, list | tuple) else ()
        if len(pair) != 2 or not _is_int(pair[0]) or not isinstance(pair[1], bytes):
            raise MalformedReport(f"{what}[{i}] must be [hash alg, digest]")
        alg, digest = pair
        if alg in _DIGEST_SIZE and len(digest) != _DIGEST_SIZE[alg]:
            raise MalformedReport(f"{what}[{i}] has the wrong length for hash alg {alg}")
        if alg in out:
            raise MalformedReport(f"{what} lists hash alg {alg} twice")
        out[alg] = digest
    return out


def _class(env: object, what: str, limits: SafeLimits) -> tuple[str, str, str | None]:
    cls = _map(_map(env, f"{what} environment").get(0), f"{what} class")
    vendor, model = cls.get(1), cls.get(2)
    class_id = cls.get(0)
    return (
        _text(vendor, f"{what} class vendor", limits),
        _text(model, f"{what} class model", limits),
        class_id.decode("utf-8", "replace") if isinstance(class_id, bytes) else None,
    )


def _completion_date(value: object) -> dt.date:
    if not isinstance(value, cbor2.CBORTag) or value.tag != 1:
        raise MalformedReport("SFR completion-date must be an epoch time (tag 1)")
    seconds = value.value
    if not (_is_int(seconds) or isinstance(seconds, float)):
        raise MalformedReport("SFR completion-date must be a number of seconds")
    try:
        return dt.datetime.fromtimestamp(seconds, dt.UTC).date()
    except (OverflowError, OSError, ValueError) as exc:
        raise MalformedReport("SFR completion-date is out of range") from exc


def _epoch(value: object, what: str) -> int:
    if not isinstance(value, cbor2.CBORTag) or value.tag != 1 or not _is_int(value.value):
        raise MalformedReport(f"CoRIM rim-validity {what} must be integer epoch seconds (tag 1)")
    return value.value


def _validity(value: object) -> tuple[int | None, int | None]:
    """``rim-validity`` (4) as ``(not-before, not-after)``: the CoRIM's own validity period,
    which a CoRIM verifier honours, as ``verify_report`` honours a JWT's ``nbf``/``exp``."""
    if value is None:
        return None, None
    validity = _known_keys(_map(value, "CoRIM rim-validity (4)"), frozenset((0, 1)), "rim-validity")
    if 1 not in validity:
        raise MalformedReport("CoRIM rim-validity (4) lacks not-after (1)")
    not_after = _epoch(validity[1], "not-after")
    not_before = _epoch(validity[0], "not-before") if 0 in validity else None
    if not_before is not None and not_after < not_before:
        raise MalformedReport("CoRIM rim-validity not-after is before not-before")
    return not_before, not_after


def _issue(item: object, i: int, limits: SafeLimits) -> Issue:
    what = f"SFR issue {i}"
    obj = _known_keys(_map(item, what), _ISSUE_KEYS, what)
    cvss = _known_keys(_map(obj.get(2), f"{what} assessment"), _CVSS_KEYS, f"{what} assessment")
    return issue_of(
        f"{what} cvss-vector",
        title=_text(obj.get(0), f"{what} title", limits),
        description=_text(obj.get(1), f"{what} description", limits),
        cvss_score=parse_cvss_score(cvss.get(0), f"{what} cvss-score"),
        cvss_vector=_text(cvss.get(1), f"{what} cvss-vector", limits),
        cvss_version=_opt_text(cvss, 2, f"{what} cvss-version", limits),
        cwe=_opt_text(obj, 3, f"{what} cwe", limits),
        cve=_opt_text(obj, 4, f"{what} cve", limits),
    )


def _manifest(value: object, limits: SafeLimits) -> tuple[ManifestEntry, ...]:
    obj = _map(value, "SFR src-manifest")
    _digests(obj.get(0), "SFR manifest-digest")
    entries = _array(obj.get(1), "SFR manifest")
    if len(entries) > limits.max_manifest:
        raise LimitExceeded(f"manifest of {len(entries)} files exceeds {limits.max_manifest}")
    out = []
    for i, item in enumerate(entries):
        entry = _map(item, f"SFR manifest entry {i}")
        digests = _digests(entry.get(1), f"SFR manifest entry {i} file-hash")
        digest = digests.get(_SHA512) or next(iter(digests.values()))
        out.append(ManifestEntry(_text(entry.get(0), f"manifest entry {i}", limits), digest))
    return tuple(out)


def parse_sfr_corim(data: bytes, limits: SafeLimits = DEFAULT_SAFE_LIMITS) -> ShortFormReport:
    """Parse a tagged CoRIM carrying one OCP SAFE SFR into a :class:`ShortFormReport`."""
    corim = _decode(data, limits, "CoRIM")
    if not isinstance(corim, cbor2.CBORTag) or corim.tag != CORIM_TAG:
        raise MalformedReport("the SFR payload must be a tagged CoRIM (501)")
    body = _known_keys(_map(corim.value, "CoRIM"), _CORIM_KEYS, "CoRIM")
    profile = body.get(3)
    if not isinstance(profile, cbor2.CBORTag) or profile.tag != OID_TAG:
        raise MalformedReport("CoRIM profile (3) must be an OID (tag 111)")
    if profile.value != SFR_PROFILE_OID:
        raise MalformedReport("CoRIM profile is not the OCP SAFE SFR profile 1.3.6.1.4.1.42623.1.1")
    not_before, not_after = _validity(body.get(4))
    creators: list[str] = []
    for i, item in enumerate(_array(body.get(5), "CoRIM entities (5)")):
        entity = _map(item, f"CoRIM entity {i}")
        roles = entity.get(2)
        if not isinstance(roles, list | tuple) or not all(_is_int(r) and r >= 0 for r in roles):
            # ``1 in [True]`` and ``1 in [1.0]`` hold: such a role is no manifest creator
            # to any other reader.
            raise MalformedReport(f"CoRIM entity {i} roles must be an array of unsigned integers")
        if _ROLE_MANIFEST_CREATOR in roles:
            creators.append(_text(entity.get(0), f"CoRIM entity {i} name", limits))
    if not creators:
        raise MalformedReport("CoRIM names no manifest-creator entity (the review provider)")
    if len(creators) > 1:
        # The review provider is the one manifest creator: with two, the signer's own name
        # (checked against its key) could stand first and another provider's last, for a
        # reader that keeps the last, or shows them all, to credit the review to.
        raise MalformedReport(
            f"CoRIM names {len(creators)} manifest-creator entities: one review provider only"
        )
    srp = creators[0]
    tag = _one(body.get(1), "CoRIM tags (1)")
    if (
        not isinstance(tag, cbor2.CBORTag)
        or tag.tag != COMID_TAG
        or not isinstance(tag.value, bytes)
    ):
        raise MalformedReport("the SFR CoRIM tag must be a CoMID (506) byte string")
    comid = _known_keys(_map(_decode(tag.value, limits, "CoMID"), "CoMID"), _COMID_KEYS, "CoMID")
    triples = _map(comid.get(4), "CoMID triples (4)")
    if set(triples) != {_COND_ENDORSEMENTS}:
        # A reference-value or endorsement triple beside the SFR would be applied by a
        # general CoRIM verifier (to other firmware, say) and ignored here.
        others = sorted(map(repr, set(triples) - {_COND_ENDORSEMENTS}))
        raise MalformedReport(
            f"the SFR CoMID holds triples other than conditional endorsements: {', '.join(others)}"
        )
    record = _one(triples.get(_COND_ENDORSEMENTS), "conditional-endorsement-triples (10)")
    parts = _array(record, "conditional-endorsement record")
    if len(parts) != 2:
        raise MalformedReport("a conditional-endorsement record is [conditions, endorsements]")
    condition = _array(_one(parts[0], "conditions"), "stateful-environment record")
    endorsed = _array(_one(parts[1], "endorsements"), "endorsed-triple record")
    if len(condition) != 2 or len(endorsed) != 2:
        raise MalformedReport("environment records are [environment, measurements]")
    vendor, model, class_id = _class(endorsed[0], "endorsement", limits)
    _class(condition[0], "condition", limits)
    if condition[0] != endorsed[0]:
        # The whole environment, not only vendor and model: a condition on another class id,
        # instance or group would have a CoRIM verifier apply the review to another device.
        raise MalformedReport("the condition and the endorsement name different environments")
    cond_mval = _map(_map(_one(condition[1], "condition claims"), "measurement").get(1), "mval")
    cond_digests = _digests(cond_mval.get(2), "condition digests") if 2 in cond_mval else {}
    measurement = _map(_one(endorsed[1], "endorsement"), "endorsement measurement")
    # only the SFR is endorsed: a digest or SVN beside it would be endorsed too, elsewhere
    mval = _known_keys(
        _map(measurement.get(1), "mval"), frozenset((_SFR_EXTENSION,)), "endorsement mval"
    )
    sfr = _map(mval.get(_SFR_EXTENSION), "ocp-safe-sfr (-1)")
    _known_keys(sfr, _SFR_KEYS, "ocp-safe-sfr (-1)")
    scope = sfr.get(3)
    if not _is_int(scope):
        raise MalformedReport("SFR scope-number (3) must be an integer")
    fw: Mapping[object, object] = {}
    if 4 in sfr:
        fw = _map(_one(sfr[4], "SFR fw-identifiers (4)"), "SFR fw-identifier")
    digests = _digests(fw[1], "SFR fw-file-digests") if 1 in fw else cond_digests
    for alg, value in cond_digests.items():
        # The condition says which firmware the endorsement holds for; the SFR says which it
        # reviewed. Were they to differ, a CoRIM verifier and this one would apply the review
        # to different images; a condition digest the SFR cannot be checked against is as bad.
        if digests.get(alg) != value:
            raise MalformedReport(
                f"the condition's hash alg {alg} digest is not the SFR's firmware digest"
            )
    for alg in sorted(set(digests) - set(cond_digests) if cond_digests else ()):
        # And the other way: a digest the condition does not name is firmware a CoRIM
        # verifier never applies the review to, though it would be found here under it.
        raise MalformedReport(
            f"the SFR's hash alg {alg} firmware digest is not in the condition: a CoRIM "
            "verifier would not apply the review to that firmware"
        )
    version = _map(fw[0], "SFR fw-version") if 0 in fw else {}
    raw_issues = _array(sfr[5], "SFR issues (5)") if 5 in sfr else ()
    if len(raw_issues) > limits.max_issues:
        raise LimitExceeded(f"{len(raw_issues)} issues exceed {limits.max_issues}")
    issues = tuple(_issue(item, i, limits) for i, item in enumerate(raw_issues))
    versions = {i.cvss_version for i in issues if i.cvss_version}
    return ShortFormReport(
        review_framework_version=_text(sfr.get(0), "SFR review-framework-version", limits),
        device=Device(
            vendor=vendor,
            product=model,
            fw_version=_text(version.get(0, ""), "SFR fw-version", limits),
            repo_tag=_opt_text(fw, 2, "SFR repo-tag", limits),
            fw_hash_sha2_384=digests.get(_SHA384),
            fw_hash_sha2_512=digests.get(_SHA512),
            manifest=_manifest(fw[3], limits) if 3 in fw else (),
            class_id=class_id,
        ),
        audit=Audit(
            srp=srp,
            report_version=_text(sfr.get(1), "SFR report-version", limits),
            completion_date=_completion_date(sfr.get(2)),
            scope=str(scope),
            cvss_version=versions.pop() if len(versions) == 1 else None,
            solid_version=_opt_text(sfr, 6, "SFR solid-version", limits),
            issues=issues,
        ),
        # not-after is the last second the CoRIM is valid (a validity-map is inclusive, as
        # for reference values); expires_at is a JWT exp, the first instant it no longer is
        expires_at=None if not_after is None else not_after + 1,
        not_before=not_before,
    )


def _digest_list(device: Device) -> list[list[object]]:
    out: list[list[object]] = []
    if device.fw_hash_sha2_384 is not None and len(device.fw_hash_sha2_384) == 48:
        out.append([_SHA384, device.fw_hash_sha2_384])
    if device.fw_hash_sha2_512 is not None and len(device.fw_hash_sha2_512) == 64:
        out.append([_SHA512, device.fw_hash_sha2_512])
    return out


def corim_dropped_fields(report: ShortFormReport) -> tuple[str, ...]:
    """The fields of ``report`` the CoRIM profile has no place for, so that a CoRIM (COSE)
    signature of it does not cover them (``device.category``, ``device.class_id``,
    ``audit.methodology``, the JWT ``iat``)."""
    dropped = []
    if report.device.category:
        dropped.append("device.category")
    if report.device.class_id:
        dropped.append("device.class_id")
    if report.audit.methodology:
        dropped.append("audit.methodology")
    if report.issued_at is not None:
        dropped.append("iat")
    return tuple(dropped)


def build_sfr_corim(report: ShortFormReport) -> bytes:
    """The report in the CoRIM profile, deterministically encoded (RFC 8949 §4.2.1).

    The CoRIM ``id`` and CoMID ``tag-id`` are derived from a SHA-256 of the report's content,
    so building is a pure function. Fields the profile has no place for
    (:func:`corim_dropped_fields`) are not carried. Raises ``MalformedReport`` when the
    report lacks what the profile requires: a completion date, an integer scope, and at
    least one full-length firmware digest. A JWT ``exp`` (with ``nbf`` beside it) becomes
    the ``rim-validity``; an ``nbf`` without ``exp`` has no place there and is
    ``MalformedReport`` too.
    """
    device, audit = report.device, report.audit
    if audit.completion_date is None:
        raise MalformedReport("the CoRIM profile needs a completion date")
    if audit.scope_number is None:
        raise MalformedReport("the CoRIM profile needs an integer scope number (0 to 2**64 - 1)")
    digests = _digest_list(device)
    if not digests:
        raise MalformedReport("the CoRIM profile needs a SHA-384 or SHA-512 firmware digest")
    validity = _rim_validity(report)
    when = dt.datetime.combine(audit.completion_date, dt.time(), dt.UTC)
    fw_id: dict[object, object] = {1: digests}
    if device.fw_version:
        fw_id[0] = {0: device.fw_version, 1: "semver"}
    if device.repo_tag:
        fw_id[2] = device.repo_tag
    if device.manifest:
        listing = [
            {"file_name": m.file_name, "file_hash": m.file_hash.hex()} for m in device.manifest
        ]
        text = json.dumps(listing, separators=(",", ":")).encode("utf-8")
        fw_id[3] = {
            0: [[_SHA512, hashlib.sha512(text).digest()]],
            1: [{0: m.file_name, 1: [[_SHA512, m.file_hash]]} for m in device.manifest],
        }
    sfr: dict[object, object] = {
        0: report.review_framework_version,
        1: audit.report_version,
        2: cbor2.CBORTag(1, int(when.timestamp())),
        3: audit.scope_number,
        4: [fw_id],
    }
    if audit.issues:
        sfr[5] = [_issue_map(issue, audit.cvss_version) for issue in audit.issues]
    if audit.solid_version:
        sfr[6] = audit.solid_version
    cls: dict[object, object] = {1: device.vendor, 2: device.product}
    ident = hashlib.sha256(json.dumps(report.to_json_dict(), sort_keys=True).encode()).hexdigest()
    comid = {
        1: {0: f"sfr-comid-{ident[:32]}"},
        4: {
            _COND_ENDORSEMENTS: [
                [
                    [[{0: cls}, [{1: {2: digests}}]]],
                    [[{0: cls}, [{1: {_SFR_EXTENSION: sfr}}]]],
                ]
            ]
        },
    }
    corim = {
        0: f"sfr-corim-{ident[:32]}",
        1: [cbor2.CBORTag(COMID_TAG, encode_cbor(comid))],
        3: cbor2.CBORTag(OID_TAG, SFR_PROFILE_OID),
        5: [{0: audit.srp, 2: [_ROLE_MANIFEST_CREATOR]}],
    }
    if validity is not None:
        corim[4] = validity
    return encode_cbor(cbor2.CBORTag(CORIM_TAG, corim))


def _rim_validity(report: ShortFormReport) -> dict[object, object] | None:
    """A JWT ``exp``/``nbf`` as ``rim-validity``: not-after is the last second the report
    counts (``exp`` minus one, as :func:`_validity` reads it back), not-before is ``nbf``."""
    exp, nbf = report.expires_at, report.not_before
    if exp is None:
        if nbf is not None:
            raise MalformedReport("the CoRIM profile carries nbf only with exp (rim-validity)")
        return None
    if exp - 1 < _MIN_EPOCH:  # not-after is a CBOR integer (64 bits)
        raise MalformedReport("exp is too early for a CoRIM rim-validity")
    if nbf is not None and exp <= nbf:
        raise MalformedReport("exp is not after nbf: the report would never be valid")
    validity: dict[object, object] = {1: cbor2.CBORTag(1, exp - 1)}
    if nbf is not None:
        validity[0] = cbor2.CBORTag(1, nbf)
    return validity


def _issue_map(issue: Issue, cvss_version: str | None) -> dict[object, object]:
    cvss: dict[object, object] = {0: f"{issue.cvss_score:.1f}", 1: issue.cvss_vector}
    version = issue.cvss_version or cvss_version
    if version:
        cvss[2] = version
    out: dict[object, object] = {0: issue.title, 1: issue.description, 2: cvss}
    if issue.cwe:
        out[3] = issue.cwe
    if issue.cve:
        out[4] = issue.cve
    return out
