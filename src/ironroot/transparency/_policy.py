"""The registration policy: which Signed Statements the service admits to its log.

A pure function of the statement bytes, the configuration and ``now``. Checks run cheapest
first and fail closed, each with its own typed error (and so its own RFC 9290 title):

1. size (``PayloadTooLarge``), structure (``MalformedStatement``/``LimitExceeded``);
2. the algorithm is accepted (``AlgorithmNotAccepted``, "Bad Signature Algorithm");
3. the signing key is found: ``x5chain`` → chain to a configured root at ``now``
   (``ChainNotTrusted``/``CertificateExpired``) and a ``did:x509`` issuer that matches the chain;
   otherwise ``iss`` + ``kid`` name a configured issuer key (``UnknownIssuer``);
4. the signature verifies with a key of the header's algorithm (``BadSignature``,
   ``AlgorithmNotAccepted``);
5. the optional CEL expression over the protected header is true (``PolicyRejected``); one
   that reads no variable and is not a boolean (``"yes"``), or names a variable not listed
   below (``claim.iss`` for ``claims.iss``), is a ``ConfigError`` at start-up.

An empty trust configuration (no issuers, no roots) rejects everything.

CEL variables (documented in docs/transparency.md): ``iss``, ``sub``, ``alg`` (name such as
``"ES256"``), ``kid`` (lowercase hex RFC 9679 thumbprint of the key that verified the signature:
for an x5chain statement, its leaf's, whatever its ``kid`` header says, which nothing checks
there), ``content_type``, ``hash_envelope``
(bool), ``payload_hash_alg`` (int, 0 if absent), ``preimage_content_type``, ``payload_location``,
``iat`` (int, 0 if absent), ``x5chain_length`` (int), ``claims`` (map of the CWT claims with
text names ``iss``, ``sub``, ``aud``, ``exp``, ``nbf``, ``iat``, ``cti`` and ``"<n>"`` for others;
byte strings as hex, a tagged value as its content, simple values as null; two claims of one
name there, such as the text claim ``"iss"`` beside claim 1, or two keys of one name in a map
inside a claim, are ``PolicyRejected``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import cbor2

from ironroot._cel import free_variables, refuse_costly, refuse_deep, refuse_non_boolean
from ironroot.cose import Limits as CoseLimits
from ironroot.cose import (
    SignedStatement,
    verify_did_x509,
    verify_x5chain,
)
from ironroot.crypto import PublicKey, load_certificate
from ironroot.errors import (
    AlgorithmNotAccepted,
    ChainNotTrusted,
    ConfigError,
    PayloadTooLarge,
    PolicyRejected,
    UnknownIssuer,
)
from ironroot.transparency._config import TransparencyConfig

__all__ = ["RegistrationPolicy"]

_CLAIM_NAMES: Final = {1: "iss", 2: "sub", 3: "aud", 4: "exp", 5: "nbf", 6: "iat", 7: "cti"}
# The variables ``_evaluate`` binds (module docs); a policy naming any other is refused.
_CEL_VARIABLES: Final = frozenset(
    (
        "iss",
        "sub",
        "alg",
        "kid",
        "content_type",
        "hash_envelope",
        "payload_hash_alg",
        "preimage_content_type",
        "payload_location",
        "iat",
        "x5chain_length",
        "claims",
    )
)
# The CEL parser panics (a BaseException, past any ``except Exception``) when it reports a
# syntax error at a column past 65,534; a policy is one expression, far shorter than this.
MAX_POLICY_CHARS: Final = 16384


def _cel_value(value: object) -> Any:
    """CEL-friendly copy: bytes as lowercase hex text, maps with text keys, a tagged value as
    its content and simple values as null (the RFC 8949 §6.1 conversion to JSON); CEL has no
    value for the last two, and one such claim made every policy fail, ``true`` included.
    Two keys of one map that become one text key (``1`` and ``"1"``) are ``PolicyRejected``:
    the signer would choose which value the policy sees."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            name = str(k)
            if name in out:
                raise PolicyRejected(
                    f"two keys of a map in the CWT claims go by the name {name!r}: the policy "
                    "cannot tell them apart"
                )
            out[name] = _cel_value(v)
        return out
    if isinstance(value, (list, tuple)):
        return [_cel_value(v) for v in value]
    if isinstance(value, cbor2.CBORTag):
        return _cel_value(value.value)
    if isinstance(value, cbor2.CBORSimpleValue) or value is cbor2.undefined:
        return None
    return value


class RegistrationPolicy:
    """Compiled once from a configuration; ``check`` is called per registration."""

    def __init__(self, config: TransparencyConfig) -> None:
        self._config = config
        self._limits = CoseLimits(max_bytes=config.max_statement_bytes)
        self._program: Any = None
        if config.policy:
            if len(config.policy) > MAX_POLICY_CHARS:
                raise ConfigError(
                    f"transparency.policy is longer than {MAX_POLICY_CHARS} characters"
                )
            refuse_deep(config.policy, "transparency.policy", ConfigError)  # before compiling
            try:
                import cel  # here: the package loads a REPL stack when imported

                self._program = cel.compile(config.policy)
                variables = free_variables(self._program)
            except (ValueError, RuntimeError) as exc:
                raise ConfigError(
                    f"transparency.policy is not valid CEL: {' '.join(str(exc).split())}"
                ) from exc
            unknown = variables - _CEL_VARIABLES
            if unknown:
                raise ConfigError(
                    f"transparency.policy names unknown variables: {', '.join(sorted(unknown))} "
                    f"(known: {', '.join(sorted(_CEL_VARIABLES))})"
                )
            # A statement's containers hold at most its parse limits' items (1,024).
            refuse_costly(
                self._program,
                "transparency.policy",
                ConfigError,
                max_range=self._limits.max_items,
            )
            refuse_non_boolean(self._program, "transparency.policy", ConfigError)

    def check(self, data: bytes, now: datetime) -> SignedStatement:
        """Return the parsed statement if the service may register it; raise otherwise."""
        config = self._config
        if len(data) > config.max_statement_bytes:
            raise PayloadTooLarge(
                f"statement is {len(data)} bytes; the limit is {config.max_statement_bytes}"
            )
        statement = SignedStatement.parse(data, self._limits)
        if statement.algorithm not in config.accepted_algorithms:
            raise AlgorithmNotAccepted(
                f"Signed Statement uses {statement.algorithm.label}, which this service does "
                "not accept"
            )
        if not config.trusts_anything:
            raise UnknownIssuer(
                "this service trusts no issuer yet: its trust configuration is empty"
            )
        key = self._signing_key(statement, now)
        statement.sign1.verify(key)
        if self._program is not None:
            self._evaluate(statement, key)
        return statement

    def _signing_key(self, statement: SignedStatement, now: datetime) -> PublicKey:
        config = self._config
        iss = statement.claims.iss
        if statement.x5chain:
            if not config.x509_roots:
                raise ChainNotTrusted("this service has no x509_roots: x5chain is not accepted")
            if not iss.startswith("did:x509:"):
                raise UnknownIssuer("a statement signed with x5chain needs a did:x509 issuer")
            key = verify_x5chain(statement.x5chain, config.x509_roots, now)
            chain = [
                load_certificate(c, what="x5chain certificate", der_only=True)
                for c in statement.x5chain
            ]
            verify_did_x509(iss, chain)
            return key
        if statement.kid is None:
            raise UnknownIssuer("statement has neither kid nor x5chain: the signer is unknown")
        found = config.issuer_key(iss, statement.kid)
        if found is None:
            raise UnknownIssuer(f"no key with this kid is configured for issuer {iss!r}")
        return found  # Sign1.verify checks that the key's algorithm is the header's

    def _evaluate(self, statement: SignedStatement, key: PublicKey) -> None:
        claims = statement.claims
        env = statement.hash_envelope
        raw_claims = statement.sign1.protected.get(15, {})
        names: dict[str, Any] = {}
        for k, v in raw_claims.items() if isinstance(raw_claims, dict) else ():
            name = _CLAIM_NAMES.get(k, str(k)) if isinstance(k, int) else k
            if name in names:  # "iss" beside 1, "8" beside 8: the signer picks which one CEL sees
                raise PolicyRejected(
                    f"two CWT claims go by the name {name!r}: the policy cannot tell them apart"
                )
            names[name] = _cel_value(v)
        context = {
            "iss": claims.iss,
            "sub": claims.sub,
            "alg": statement.algorithm.label,
            "kid": key.kid.hex(),  # the key's own: an x5chain statement's header is unchecked
            "content_type": "" if statement.content_type is None else statement.content_type,
            "hash_envelope": env is not None,
            "payload_hash_alg": env.hash_alg if env else 0,
            "preimage_content_type": ""
            if env is None or env.preimage_content_type is None
            else env.preimage_content_type,
            "payload_location": env.location or "" if env else "",
            "iat": claims.iat or 0,
            "x5chain_length": len(statement.x5chain),
            "claims": names,
        }
        try:
            result = self._program.execute(context)
        except Exception as exc:  # the CEL runtime raises several kinds; all fail closed
            raise PolicyRejected(
                f"Signed Statement not accepted by the current Registration Policy: {exc}"
            ) from exc
        if result is not True:
            raise PolicyRejected("Signed Statement not accepted by the current Registration Policy")
