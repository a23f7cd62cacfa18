"""Changing who may approve a class's desired state, and how: approver revocation and
addition, the quorum (``required``) and the trusted transparency services, each a governed
change on the log.

The class's first governance is local configuration (``fleet desired init``: epoch 1). Every
later one is made by a :class:`GovernanceChange`, a deterministic CBOR map (RFC 8949 §4.2.1,
text keys; decoding is strict: ``MalformedInput`` ``malformed-governance-change``)::

    governance-change = {
      "format": 1,
      "fleet": tstr,                ; the fleet's identity (Fleet.identity)
      "class": tstr,                ; the node class
      "epoch": uint,                ; the governance epoch it changes (>= 1); it makes epoch + 1
      "action": "revoke" / "add" / "set",
      ? "iss": tstr,                ; revoke, add (only): the approver removed or added
      ? "key": bstr,                ; with iss: their public key (SubjectPublicKeyInfo, DER)
      ? "note": tstr,               ; why (at most 1,024 characters)
      ? "required": uint,           ; the new quorum (absent: unchanged)
      ? "services": [+ bstr],       ; the new trusted services' keys (1 to 16, DER; absent:
                                    ; unchanged), replacing the keys and the issuer pin
      ? "service_issuer": tstr      ; with services only: the issuer their receipts must name
    }

approved exactly as a desired state is: one SCITT Signed Statement per approver over the
document bytes (content type :data:`GOVERNANCE_CHANGE_CONTENT_TYPE`, ``sub``
``urn:ironroot:desired-governance:<class>``), by at least ``required`` distinct approvers of
the governance *in force* (epoch ``epoch``), each registered on a trusted log. The approver
being revoked may be one of them. :func:`verify_governance_change` checks, in order, each
refusal typed:

1. every check of a desired state's approvals (``ironroot.fleet._desired``: content type —
   ``MalformedStatement`` ``not-governance-change`` —, class, authorized and not revoked
   signer — ``UnknownIssuer`` ``signer-not-authorized`` / ``signer-revoked`` —, signature,
   validity, receipts, one document, distinct signers, ``PolicyRejected`` ``too-few-signers``);
2. the document decodes, names this class (``wrong-class``) and this fleet (``wrong-fleet``);
3. it changes the epoch in force (``PolicyRejected`` ``governance-epoch``: a change approved
   for an earlier governance is never replayed, nor one approved ahead of time);
4. :meth:`GovernanceChange.apply`: a revocation names an approver in force with their key
   (``PolicyRejected`` ``not-an-approver``) and leaves at least ``required`` approvers
   (``PolicyRejected`` ``below-quorum``: the last approvers are never removed below the
   quorum, which would freeze the class's desired state for good); an addition names a new
   ``iss`` (``approver-exists``), a key no approver holds (``approver-exists``) and no key
   ever revoked (``UnknownIssuer`` ``signer-revoked``), and at most 64 approvers; a
   revocation that also sets ``required`` needs only that quorum to be left;
5. a ``required`` set is 1 to the number of approvers *after* the change (and at most 16):
   ``PolicyRejected`` ``invalid-quorum``; a ``set`` that leaves the quorum and the trusted
   services as they are is ``PolicyRejected`` ``governance-unchanged``.

The quorum and the services are judged like the approvers: a change is approved by the quorum
*in force*, its approvals carry receipts of the services *in force* — lowering the quorum from
2 to 1 takes two approvals, and moving to another log is approved on the old one. From the
epoch it makes, the new quorum and services decide every change. A desired state put in force
before stays in force (verified under the governance of its epoch, below), a higher quorum
included: it was applied; to hold it to the new quorum, publish a new version.

What a revocation means. The revoked key's approvals count in no later epoch, under any
``iss``: a desired state it approved that is *not yet in force* when the revocation is (signed
before, published after — or a publish cut short before its pointer moved) needs a quorum of
the remaining approvers. A desired state put in force before the revocation stays in force: it
was applied, and it is verified under the governance of the epoch it was published in (its
``v<N>.cbor`` records it). To withdraw it too, publish a new version. The store keeps each
change in ``<fleet>/desired/<class>/governance/e<N>.cbor`` and a ``desired-governance`` event
in the fleet's log (:meth:`ironroot.fleet.DesiredStore.change_governance`).
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from ironroot.cose import Limits, decode_cbor, encode_cbor
from ironroot.crypto import PublicKey, Signer
from ironroot.errors import IronrootError, MalformedInput, PolicyRejected, UnknownIssuer
from ironroot.fleet._desired import (
    _MAX_SIGNERS,
    _MAX_STATEMENTS,
    _NAME,
    AuthorizedSigner,
    Governance,
    RevokedSigner,
    _at,
    _Kind,
    _quorum,
    _sign_approval,
)

__all__ = [
    "GOVERNANCE_CHANGE_CONTENT_TYPE",
    "GovernanceChange",
    "VerifiedGovernanceChange",
    "check_governance_change",
    "governance_subject",
    "sign_governance_change",
    "verify_governance_change",
]

GOVERNANCE_CHANGE_CONTENT_TYPE: Final = "application/vnd.ironroot.desired-governance+cbor"
_SUBJECT: Final = "urn:ironroot:desired-governance:"
_KIND: Final = _Kind(
    GOVERNANCE_CHANGE_CONTENT_TYPE, _SUBJECT, "governance change", "not-governance-change"
)
_FORMAT: Final = 1
_ACTIONS: Final = ("revoke", "add", "set")
_MAX_SERVICES: Final = 16
_LIMITS: Final = Limits(max_bytes=16 * 1024, max_depth=2, max_items=16)
_MAX_NOTE: Final = 1024


def governance_subject(node_class: str) -> str:
    """The ``sub`` of every governance-change statement of ``node_class``."""
    return _SUBJECT + node_class


def _bad(what: str) -> MalformedInput:
    return MalformedInput(
        f"the governance change is malformed: {what}", code="malformed-governance-change"
    )


def _der_key(value: object, what: str) -> PublicKey:
    if not isinstance(value, bytes):
        raise _bad(f"{what} is a DER SubjectPublicKeyInfo")
    try:
        return PublicKey.from_der(value)
    except IronrootError as exc:
        raise _bad(f"{what}: {exc.detail}") from exc


def _text(value: object, what: str, limit: int = 256) -> str:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise _bad(f"{what} is text of 1 to {limit} characters")
    return value


@dataclass(frozen=True, slots=True)
class GovernanceChange:
    """One approver revoked or added, the quorum set, the trusted services replaced, or
    several of these at once (module docs)."""

    fleet: str
    node_class: str
    epoch: int
    action: str
    iss: str = ""
    key: PublicKey | None = None
    note: str = ""
    required: int | None = None
    service_keys: tuple[PublicKey, ...] | None = None
    service_issuer: str | None = None

    def __post_init__(self) -> None:
        _text(self.fleet, "the fleet")
        if not isinstance(self.node_class, str) or not _NAME.fullmatch(self.node_class):
            raise _bad("the class is 1 to 64 of letters, digits, - and _")
        epoch = self.epoch
        if isinstance(epoch, bool) or not isinstance(epoch, int) or not 1 <= epoch < 2**63:
            raise _bad("the epoch is an integer of at least 1")
        if self.action not in _ACTIONS:
            raise _bad(f"the action is one of {', '.join(_ACTIONS)}")
        if self.action == "set":
            if self.iss or self.key is not None:
                raise _bad("a set names no approver (no iss, no key)")
        else:
            _text(self.iss, "the approver's iss")
            if not isinstance(self.key, PublicKey):
                raise _bad("the approver's key is a public key")
        if self.note:
            _text(self.note, "the note", _MAX_NOTE)
        required = self.required
        if required is not None and (
            isinstance(required, bool) or not isinstance(required, int) or not 0 <= required < 2**63
        ):
            raise _bad("required is an unsigned integer")
        keys = self.service_keys
        if keys is not None:
            keys = tuple(keys)
            if not 1 <= len(keys) <= _MAX_SERVICES or not all(
                isinstance(k, PublicKey) for k in keys
            ):
                raise _bad(f"the trusted services are 1 to {_MAX_SERVICES} public keys")
            if len({k.kid for k in keys}) != len(keys):
                raise _bad("a trusted service key is listed twice")
            object.__setattr__(self, "service_keys", keys)
            if self.service_issuer is not None:
                _text(self.service_issuer, "the services' issuer")
        elif self.service_issuer is not None:
            raise _bad("a service issuer is set only with the service keys it pins")

    def to_cbor(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "format": _FORMAT,
            "fleet": self.fleet,
            "class": self.node_class,
            "epoch": self.epoch,
            "action": self.action,
        }
        if self.key is not None:
            doc["iss"] = self.iss
            doc["key"] = self.key.to_der()
        if self.note:
            doc["note"] = self.note
        if self.required is not None:
            doc["required"] = self.required
        if self.service_keys is not None:
            doc["services"] = [k.to_der() for k in self.service_keys]
            if self.service_issuer is not None:
                doc["service_issuer"] = self.service_issuer
        return doc

    def encode(self) -> bytes:
        return encode_cbor(self.to_cbor())

    @classmethod
    def decode(cls, data: bytes) -> GovernanceChange:
        """Parse a change strictly; ``MalformedInput`` ``malformed-governance-change``."""
        try:
            value = decode_cbor(bytes(data), _LIMITS)
        except MalformedInput as exc:
            raise _bad(exc.detail) from exc
        members = {"format", "fleet", "class", "epoch", "action"}
        optional = {"iss", "key", "note", "required", "services", "service_issuer"}
        if not isinstance(value, dict) or not members <= set(value) <= members | optional:
            raise _bad(
                f"the document is a map of {', '.join(sorted(members))} (and "
                f"{', '.join(sorted(optional))})"
            )
        if type(value["format"]) is not int or value["format"] != _FORMAT:
            raise _bad(f"unknown format {value['format']!r}")
        if ("iss" in value) != ("key" in value):
            raise _bad("an approver is named by iss and key together")
        key = None
        if "key" in value:
            key = _der_key(value["key"], "the approver's key")
        required = value.get("required")
        if required is not None and type(required) is not int:
            raise _bad("required is an unsigned integer")
        services = None
        if "services" in value:
            if not isinstance(value["services"], list):
                raise _bad("the trusted services are a list of keys")
            services = tuple(_der_key(k, "a trusted service key") for k in value["services"])
        change = cls(
            value["fleet"],
            value["class"],
            value["epoch"],
            value["action"],
            value.get("iss", ""),
            key,
            _text(value["note"], "the note", _MAX_NOTE) if "note" in value else "",
            required,
            services,
            value.get("service_issuer"),
        )
        if change.encode() != data:
            raise _bad("not the deterministic encoding of what it decodes to")
        return change

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "class": self.node_class,
            "epoch": self.epoch,
            "action": self.action,
        }
        if self.key is not None:
            doc.update(iss=self.iss, kid=self.key.kid.hex())
        if self.required is not None:
            doc["required"] = self.required
        if self.service_keys is not None:
            doc["service_kids"] = [k.kid.hex() for k in self.service_keys]
            doc["service_issuer"] = self.service_issuer
        if self.note:
            doc["note"] = self.note
        return doc

    def describe(self) -> str:
        """What the change does, in words (the CLI's summary)."""
        parts = [f"{self.action} {self.iss}"] if self.key is not None else []
        if self.required is not None:
            parts.append(f"quorum {self.required}")
        if self.service_keys is not None:
            parts.append(
                f"trusted services {', '.join(k.kid.hex()[:16] for k in self.service_keys)}"
                + (f" (issuer {self.service_issuer})" if self.service_issuer else "")
            )
        return ", ".join(parts) or "nothing"

    def apply(self, governance: Governance) -> Governance:
        """The governance this change makes of ``governance`` (module docs, 3-5)."""
        node_class = governance.node_class
        if self.epoch != governance.epoch:
            raise PolicyRejected(
                f"the change was approved for governance epoch {self.epoch} of class "
                f"{node_class}, epoch {governance.epoch} is in force: approve it again",
                code="governance-epoch",
            )
        signers, revoked, key = governance.signers, governance.revoked, self.key
        if self.action == "revoke" and key is not None:  # construction: an approver's action
            signers, revoked = self._revoke(governance, key)  # names a key
        elif self.action == "add" and key is not None:
            signers = self._add(governance, key)
        required = governance.required if self.required is None else self.required
        if self.required is not None and not 1 <= required <= min(len(signers), _MAX_STATEMENTS):
            raise PolicyRejected(
                f"a quorum of {required} for class {node_class}: it is 1 to the number of "
                f"approvers ({len(signers)})"
                + (
                    f" and at most {_MAX_STATEMENTS}, the most approvals a change carries"
                    if len(signers) > _MAX_STATEMENTS
                    else ""
                ),
                code="invalid-quorum",
            )
        keys, issuer = governance.service_keys, governance.service_issuer
        if self.service_keys is not None:
            keys = {k.kid: k for k in self.service_keys}
            issuer = self.service_issuer
        if (
            self.action == "set"
            and required == governance.required
            and set(keys) == set(governance.service_keys)
            and issuer == governance.service_issuer
        ):
            raise PolicyRejected(
                f"the change leaves class {node_class}'s governance as it is "
                f"({governance.required} of {len(governance.signers)} approvers, the same "
                "trusted services): nothing to approve",
                code="governance-unchanged",
            )
        return Governance(
            node_class, signers, required, keys, issuer, governance.epoch + 1, revoked
        )

    def _revoke(
        self, governance: Governance, key: PublicKey
    ) -> tuple[tuple[AuthorizedSigner, ...], tuple[RevokedSigner, ...]]:
        node_class, kid = governance.node_class, key.kid
        found = [
            s
            for s in governance.signers
            if s.iss == self.iss and hmac.compare_digest(s.key.kid, kid)
        ]
        if not found:
            raise PolicyRejected(
                f"{self.iss} with key {kid.hex()[:16]} is not an approver of class "
                f"{node_class}: nothing to revoke",
                code="not-an-approver",
            )
        left = tuple(s for s in governance.signers if s.iss != self.iss)
        if self.required is None and len(left) < governance.required:
            raise PolicyRejected(
                f"revoking {self.iss} would leave class {node_class} {len(left)} approver(s), "
                f"fewer than the {governance.required} every change needs: no change could "
                "be approved again; add an approver first",
                code="below-quorum",
            )
        gone = RevokedSigner(self.iss, kid, governance.epoch + 1)
        return left, (*governance.revoked, gone)

    def _add(self, governance: Governance, key: PublicKey) -> tuple[AuthorizedSigner, ...]:
        node_class, kid = governance.node_class, key.kid
        for gone in governance.revoked:
            if hmac.compare_digest(gone.kid, kid):
                raise UnknownIssuer(
                    f"the key {kid.hex()[:16]} was revoked from class {node_class}'s approvers "
                    f"at governance epoch {gone.epoch} ({gone.iss}): a revoked key is never "
                    "authorized again",
                    code="signer-revoked",
                )
        for signer in governance.signers:
            if signer.iss == self.iss or hmac.compare_digest(signer.key.kid, kid):
                raise PolicyRejected(
                    f"{signer.iss} is an approver of class {node_class} already (with this "
                    "iss or this key)",
                    code="approver-exists",
                )
        if len(governance.signers) >= _MAX_SIGNERS:
            raise PolicyRejected(
                f"class {node_class} has {_MAX_SIGNERS} approvers, the most it may have",
                code="too-many-approvers",
            )
        return (*governance.signers, AuthorizedSigner(self.iss, key))


@dataclass(frozen=True, slots=True)
class VerifiedGovernanceChange:
    """A governance change whose approvals verified against the governance in force: the
    change, the statements, who approved it and the governance it makes."""

    change: GovernanceChange
    statements: tuple[bytes, ...]
    signers: tuple[str, ...]
    governance: Governance

    def to_json(self) -> dict[str, Any]:
        return {
            "change": self.change.to_json(),
            "signers": list(self.signers),
            "governance": self.governance.to_json(),
        }


def sign_governance_change(
    change: GovernanceChange,
    signer: Signer,
    *,
    iss: str,
    iat: dt.datetime | None = None,
    exp: dt.datetime | None = None,
    nbf: dt.datetime | None = None,
) -> bytes:
    """One approver's approval of ``change``: a Signed Statement by ``signer`` as ``iss``."""
    return _sign_approval(
        signer,
        change.encode(),
        iss=iss,
        sub=governance_subject(change.node_class),
        content_type=GOVERNANCE_CHANGE_CONTENT_TYPE,
        iat=iat,
        exp=exp,
        nbf=nbf,
    )


def _verify(
    statements: Sequence[bytes],
    governance: Governance,
    *,
    fleet: str,
    receipts: bool,
    now: dt.datetime | None,
) -> VerifiedGovernanceChange:
    payload, signers = _quorum(statements, governance, receipts=receipts, now=now, kind=_KIND)
    change = GovernanceChange.decode(payload)
    if change.node_class != governance.node_class:
        raise PolicyRejected(
            f"the change is for class {change.node_class}, not {governance.node_class}",
            code="wrong-class",
        )
    if not hmac.compare_digest(change.fleet.encode(), fleet.encode()):
        raise PolicyRejected(
            f"the change is for fleet {change.fleet}, not {fleet}: approvals are never "
            "replayed from another fleet",
            code="wrong-fleet",
        )
    return VerifiedGovernanceChange(
        change, tuple(statements), tuple(signers), change.apply(governance)
    )


def check_governance_change(
    statements: Sequence[bytes],
    governance: Governance,
    *,
    fleet: str,
    now: dt.datetime | None = None,
) -> VerifiedGovernanceChange:
    """Every check of :func:`verify_governance_change` but the receipts."""
    return _verify(statements, governance, fleet=fleet, receipts=False, now=_at(now))


def verify_governance_change(
    statements: Sequence[bytes],
    governance: Governance,
    *,
    fleet: str,
    now: dt.datetime | None = None,
) -> VerifiedGovernanceChange:
    """The governance the transparent ``statements`` make of ``governance`` (in force) for the
    fleet ``fleet``, once every check of the module docs passed; each approval must be valid
    at ``now`` (``None``: the wall clock's time)."""
    return _verify(statements, governance, fleet=fleet, receipts=True, now=_at(now))


def replay_governance_change(
    statements: Sequence[bytes], governance: Governance, *, fleet: str
) -> VerifiedGovernanceChange:
    """A stored change, verified again (signatures, receipts, quorum, epoch) but not its
    approvals' validity period: once applied, a change stays applied."""
    return _verify(statements, governance, fleet=fleet, receipts=True, now=None)
