"""Open Profile for DICE CBOR certificates: a CWT in an untagged COSE_Sign1.

The Open DICE profile (pigweed / open-dice "CBOR certificate" format) signs a CWT claims map::

    {1: iss (text), 2: sub (text),
     -4670545: code hash, -4670546: code descriptor, -4670547: configuration hash,
     -4670548: configuration descriptor, -4670549: authority hash,
     -4670550: authority descriptor, -4670551: mode (1 byte: 0 not configured, 1 normal,
     2 debug, 3 recovery), -4670552: subject public key (a COSE_Key, encoded),
     -4670553: key usage (bytes), -4670554: profile name (text)}

as the payload of a COSE_Sign1 that, unlike Ironroot's own COSE, carries no tag 18. Each
certificate is signed with the key its issuer's certificate names (the UDS certificate with
the UDS-derived key). :func:`parse_open_dice_cbor` reads one; :meth:`OpenDiceCertificate.verify`
checks its signature with the issuer's key. ``MalformedCertificate`` for anything else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from ironroot.cose import Limits, Sign1, decode_cbor
from ironroot.crypto import Verifier, check_cbor_labels, verifier_from_cose_key
from ironroot.errors import IronrootError, MalformedCertificate

__all__ = ["OpenDiceCertificate", "parse_open_dice_cbor"]

_LIMITS: Final = Limits(max_bytes=64 * 1024, max_depth=8, max_items=256)
_FIELDS: Final = {
    -4670545: "code_hash",
    -4670546: "code_descriptor",
    -4670547: "config_hash",
    -4670548: "config_descriptor",
    -4670549: "authority_hash",
    -4670550: "authority_descriptor",
    -4670553: "key_usage",
}
_MODE: Final = -4670551
_SUBJECT_KEY: Final = -4670552
_PROFILE: Final = -4670554
MODES: Final = {0: "not-configured", 1: "normal", 2: "debug", 3: "recovery"}


@dataclass(frozen=True, slots=True)
class OpenDiceCertificate:
    """One Open DICE CBOR certificate (module docs); byte fields as received."""

    issuer: str
    subject: str
    mode: int | None
    subject_public_key: bytes = field(repr=False)
    fields: dict[str, bytes] = field(default_factory=dict)
    profile_name: str | None = None
    raw: bytes = field(default=b"", repr=False)

    def public_key(self) -> Verifier:
        """The subject's key, which signs the next certificate in the chain."""
        try:
            return verifier_from_cose_key(self.subject_public_key)
        except IronrootError as exc:
            raise MalformedCertificate(
                f"the subject public key is not a COSE_Key: {exc.detail}"
            ) from exc

    def verify(self, issuer_key: Verifier) -> None:
        """Check the signature with ``issuer_key``; ``BadSignature`` when it does not verify."""
        Sign1.decode(b"\xd2" + self.raw, _LIMITS).verify(issuer_key)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "open-dice-cbor",
            "issuer": self.issuer,
            "subject": self.subject,
            "mode": MODES.get(self.mode, str(self.mode)) if self.mode is not None else None,
            "subject_public_key_kid": self.public_key().kid.hex(),
            "profile_name": self.profile_name,
            **{name: value.hex() for name, value in self.fields.items()},
        }


def _text(claims: dict[Any, Any], label: int, what: str) -> str:
    value = claims.get(label)
    if not isinstance(value, str):
        raise MalformedCertificate(f"an Open DICE certificate's {what} ({label}) is text")
    return value


def parse_open_dice_cbor(data: bytes) -> OpenDiceCertificate:
    """One Open DICE CBOR certificate from its bytes (untagged COSE_Sign1 of a CWT)."""
    try:
        outer = decode_cbor(bytes(data), _LIMITS)
        if not isinstance(outer, list) or len(outer) != 4:
            raise MalformedCertificate("an Open DICE CBOR certificate is a 4-item COSE_Sign1")
        payload = outer[2]
        if not isinstance(payload, bytes):
            raise MalformedCertificate("the certificate's payload is not a byte string")
        claims = decode_cbor(payload, _LIMITS)
    except MalformedCertificate:
        raise
    except IronrootError as exc:
        raise MalformedCertificate(f"not an Open DICE CBOR certificate: {exc.detail}") from exc
    if not isinstance(claims, dict):
        raise MalformedCertificate("the certificate's claims are not a CBOR map")
    check_cbor_labels(claims, "the certificate's claim label", MalformedCertificate)
    key = claims.get(_SUBJECT_KEY)
    if not isinstance(key, bytes):
        raise MalformedCertificate("the certificate names no subject public key (-4670552)")
    mode = claims.get(_MODE)
    if mode is not None and (not isinstance(mode, bytes) or len(mode) != 1):
        raise MalformedCertificate("the mode (-4670551) is one byte")
    fields = {}
    for label, name in _FIELDS.items():
        value = claims.get(label)
        if value is not None:
            if not isinstance(value, bytes):
                raise MalformedCertificate(f"{name} ({label}) is a byte string")
            fields[name] = value
    profile = claims.get(_PROFILE)
    if profile is not None and not isinstance(profile, str):
        raise MalformedCertificate("the profile name (-4670554) is text")
    certificate = OpenDiceCertificate(
        issuer=_text(claims, 1, "issuer"),
        subject=_text(claims, 2, "subject"),
        mode=mode[0] if mode is not None else None,
        subject_public_key=key,
        fields=fields,
        profile_name=profile,
        raw=bytes(data),
    )
    certificate.public_key()  # a key that does not load makes the certificate malformed
    return certificate
