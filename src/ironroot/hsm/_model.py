"""The HSM's vocabulary: roles, key types, usages, key attributes, sessions and configuration.

These are plain values (enums and frozen dataclasses) shared by the boundary, its backends, key
attestation and the CLI. ``KeyAttributes`` is what a key carries for life: its usages, whether it
may ever leave the boundary (wrapped), a label, and an optional release policy — opaque text (CEL
or Azure Key Vault release-policy JSON) stored with the key and bound into its attestation, for
the key-release layer to evaluate. A key with a release policy leaves the boundary only through
:meth:`Hsm.release <ironroot.hsm.Hsm.release>`, which asks a policy check first.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from ironroot.crypto import Algorithm, PublicKey, Signer
from ironroot.ear import ChallengeLimits
from ironroot.errors import ConfigError, MalformedInput, UnsupportedAlgorithm

__all__ = [
    "DeviceIdentity",
    "HsmConfig",
    "KeyAttributes",
    "KeyInfo",
    "KeyType",
    "Role",
    "Session",
    "Usage",
]

MAX_LABEL: Final = 128
MAX_POLICY: Final = 16 * 1024
MAX_KEY_USERS: Final = 64
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


class Role(enum.Enum):
    """The three roles of FIPS 140-3 identity-based authentication, as the HSM uses them."""

    OFFICER = "officer"  # crypto officer: identities, key lifecycle, migrate, backup, zeroize
    USER = "user"  # crypto user: use keys (sign, encrypt, wrap, unwrap, derive, attest)
    AUDITOR = "auditor"  # read and verify the audit log, sign audit checkpoints

    @classmethod
    def parse(cls, value: str) -> Role:
        try:
            return cls(value)
        except ValueError:
            raise MalformedInput(f"unknown role {value!r}") from None


class Usage(enum.Enum):
    """What a key may be used for (PKCS#11 CKA_SIGN, CKA_VERIFY, CKA_ENCRYPT, ...)."""

    SIGN = "sign"
    VERIFY = "verify"
    ENCRYPT = "encrypt"
    DECRYPT = "decrypt"
    WRAP = "wrap"
    UNWRAP = "unwrap"
    DERIVE = "derive"

    @classmethod
    def parse(cls, value: str) -> Usage:
        try:
            return cls(value)
        except ValueError:
            raise MalformedInput(f"unknown key usage {value!r}") from None


_SIGNING: Final = frozenset({Usage.SIGN, Usage.VERIFY})
_KEM: Final = frozenset({Usage.WRAP, Usage.UNWRAP})


class KeyType(enum.Enum):
    """A key type the HSM generates inside. RSA-3072 is only a key-wrapping key (the
    RSA-AES-KEY-WRAP mechanism needs an RSA key to unwrap into the boundary)."""

    EC_P256 = "EC-P256"
    EC_P384 = "EC-P384"
    ED25519 = "Ed25519"
    ML_DSA_44 = "ML-DSA-44"
    ML_DSA_65 = "ML-DSA-65"
    ML_DSA_87 = "ML-DSA-87"
    ML_KEM_768 = "ML-KEM-768"
    ML_KEM_1024 = "ML-KEM-1024"
    RSA_3072 = "RSA-3072"
    AES_256 = "AES-256"
    HMAC_SHA384 = "HMAC-SHA-384"

    @classmethod
    def parse(cls, value: str) -> KeyType:
        try:
            return cls(value)
        except ValueError:
            raise UnsupportedAlgorithm(f"unknown key type {value!r}") from None

    @property
    def is_secret(self) -> bool:
        """A symmetric key (no public half)."""
        return self in (KeyType.AES_256, KeyType.HMAC_SHA384)

    @property
    def signature_algorithm(self) -> Algorithm | None:
        """The COSE signature algorithm of a signing key type, else ``None``."""
        return _SIGNATURE_ALGORITHMS.get(self)

    @property
    def allowed_usages(self) -> frozenset[Usage]:
        return _ALLOWED[self]

    @property
    def default_usages(self) -> frozenset[Usage]:
        return _DEFAULTS[self]


_SIGNATURE_ALGORITHMS: Final = {
    KeyType.EC_P256: Algorithm.ES256,
    KeyType.EC_P384: Algorithm.ES384,
    KeyType.ED25519: Algorithm.EDDSA,
    KeyType.ML_DSA_44: Algorithm.ML_DSA_44,
    KeyType.ML_DSA_65: Algorithm.ML_DSA_65,
    KeyType.ML_DSA_87: Algorithm.ML_DSA_87,
}
KEY_TYPE_FOR_ALGORITHM: Final = {alg: kt for kt, alg in _SIGNATURE_ALGORITHMS.items()}
_ALLOWED: Final[dict[KeyType, frozenset[Usage]]] = {
    **dict.fromkeys(_SIGNATURE_ALGORITHMS, _SIGNING),
    KeyType.ML_KEM_768: _KEM,
    KeyType.ML_KEM_1024: _KEM,
    KeyType.RSA_3072: _KEM,
    KeyType.AES_256: frozenset(
        {Usage.ENCRYPT, Usage.DECRYPT, Usage.WRAP, Usage.UNWRAP, Usage.DERIVE}
    ),
    KeyType.HMAC_SHA384: frozenset({Usage.SIGN, Usage.VERIFY, Usage.DERIVE}),
}
_DEFAULTS: Final[dict[KeyType, frozenset[Usage]]] = {
    **_ALLOWED,
    KeyType.AES_256: frozenset({Usage.ENCRYPT, Usage.DECRYPT}),
    KeyType.HMAC_SHA384: _SIGNING,
}


def check_name(name: object, what: str = "identity") -> str:
    """An identity name: 1–64 letters, digits, ``.``, ``_``, ``@`` or ``-``."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise MalformedInput(f"{what} name must be 1–64 letters, digits, '.', '_', '@' or '-'")
    return name


def key_users(users: Iterable[str] | None) -> frozenset[str] | None:
    """A key's users as :class:`KeyAttributes` holds them, from any iterable of names
    (``None``: every crypto user); a single string is refused, not read as its letters."""
    if isinstance(users, str | bytes):
        raise MalformedInput("key users are a list of identity names, not one string")
    return None if users is None else frozenset(users)


def _is_unicode(text: str) -> bool:
    """Whether ``text`` encodes as UTF-8 (no lone surrogates, which JSON's ``\\ud800`` and
    Python's ``surrogateescape`` can produce)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class KeyAttributes:
    """The attributes a key carries for life.

    ``usages`` must be a subset of what its key type allows; ``exportable`` (default ``False``)
    allows the key to leave the boundary wrapped, never in plaintext; ``release_policy`` is
    opaque text kept for the key-release layer (a key with one leaves only through
    ``Hsm.release``); ``release_on_warning`` lets such a key be released on an EAR whose status
    is ``warning`` (by default only ``affirming`` releases it); ``users``, when set, names
    the crypto users that may use the key (sign, verify, encrypt, decrypt, derive from it,
    wrap with it or wrap it, unwrap with it, release it): any other crypto user is refused
    (``RoleNotPermitted`` code ``key-access-denied``). ``None`` (the default) lets every
    crypto user use it. A crypto officer changes it with ``Hsm.set_key_users``.
    """

    usages: frozenset[Usage]
    exportable: bool = False
    label: str = ""
    release_policy: str | None = None
    release_on_warning: bool = False
    users: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.usages, frozenset) or not all(
            isinstance(u, Usage) for u in self.usages
        ):
            raise MalformedInput("key usages must be a frozenset of Usage")
        if not self.usages:
            raise MalformedInput("a key needs at least one usage")
        if not isinstance(self.exportable, bool):
            raise MalformedInput("exportable must be a bool")
        if not isinstance(self.label, str) or len(self.label) > MAX_LABEL:
            raise MalformedInput(f"a key label is text of at most {MAX_LABEL} characters")
        if not _is_unicode(self.label):  # a lone surrogate would make the store unwritable
            raise MalformedInput("a key label is valid Unicode text")
        policy = self.release_policy
        if policy is not None and (not isinstance(policy, str) or not policy.strip()):
            raise MalformedInput("a release policy must be non-empty text")
        if policy is not None and not _is_unicode(policy):
            raise MalformedInput("a release policy is valid Unicode text")
        if policy is not None and len(policy.encode()) > MAX_POLICY:
            raise MalformedInput(f"a release policy is at most {MAX_POLICY} bytes")
        if not isinstance(self.release_on_warning, bool):
            raise MalformedInput("release_on_warning must be a bool")
        if self.release_on_warning and policy is None:
            raise MalformedInput("release_on_warning needs a release policy")
        if self.users is not None:
            if not isinstance(self.users, frozenset) or not self.users:
                raise MalformedInput("key users are a non-empty frozenset of identity names")
            if len(self.users) > MAX_KEY_USERS:
                raise MalformedInput(f"a key names at most {MAX_KEY_USERS} users")
            for name in self.users:
                check_name(name, "key user")

    def permits(self, identity: str) -> bool:
        """Whether ``identity`` may use the key (every crypto user when ``users`` is unset)."""
        return self.users is None or identity in self.users

    @classmethod
    def of(
        cls,
        usages: Iterable[Usage | str],
        *,
        exportable: bool = False,
        label: str = "",
        release_policy: str | None = None,
        release_on_warning: bool = False,
        users: Iterable[str] | None = None,
    ) -> KeyAttributes:
        """Build from usage names or ``Usage`` values (``users`` from any iterable of names;
        a single string is refused, not read as its letters)."""
        parsed = frozenset(u if isinstance(u, Usage) else Usage.parse(u) for u in usages)
        named = key_users(users)
        return cls(parsed, exportable, label, release_policy, release_on_warning, named)

    def check_for(self, key_type: KeyType) -> None:
        """Raise ``MalformedInput`` if a usage does not fit ``key_type``."""
        extra = self.usages - key_type.allowed_usages
        if extra:
            names = ", ".join(sorted(u.value for u in extra))
            raise MalformedInput(f"a {key_type.value} key cannot have usage {names}")

    def to_map(self) -> dict[str, object]:
        """The CBOR/JSON form: ``usages`` sorted names, ``exportable``, ``label``,
        ``release_policy`` (``None`` when absent), ``release_on_warning`` only when it is
        true and ``users`` (sorted names) only when set (so the form of every other key is
        unchanged)."""
        out: dict[str, object] = {
            "usages": sorted(u.value for u in self.usages),
            "exportable": self.exportable,
            "label": self.label,
            "release_policy": self.release_policy,
        }
        if self.release_on_warning:
            out["release_on_warning"] = True
        if self.users is not None:
            out["users"] = sorted(self.users)
        return out

    @classmethod
    def from_map(cls, value: object) -> KeyAttributes:
        members = {"usages", "exportable", "label", "release_policy"}
        optional = {"release_on_warning", "users"}
        if not isinstance(value, Mapping) or set(value) - optional != members:
            raise MalformedInput(
                "key attributes are a map of usages, exportable, label and release_policy "
                "(and release_on_warning, users)"
            )
        if value.get("release_on_warning", True) is not True:
            raise MalformedInput("release_on_warning is present only when true")
        usages = value["usages"]
        if not isinstance(usages, list) or not all(isinstance(u, str) for u in usages):
            raise MalformedInput("key usages must be a list of names")
        if len(set(usages)) != len(usages):
            raise MalformedInput("key usages repeat a name")
        users = value.get("users")
        if users is not None and (
            not isinstance(users, list)
            or not all(isinstance(u, str) for u in users)
            or len(set(users)) != len(users)
        ):
            raise MalformedInput("key users must be a list of distinct identity names")
        if "users" in value and users is None:
            raise MalformedInput("key users are present only when set")
        return cls.of(
            usages,
            exportable=value["exportable"],
            label=value["label"],
            release_policy=value["release_policy"],
            release_on_warning="release_on_warning" in value,
            users=users,
        )


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What a caller may know about a key: never its private or secret material.

    ``public_der`` is the SubjectPublicKeyInfo (DER) of an asymmetric key, ``public_key`` its
    :class:`~ironroot.crypto.PublicKey` when it is a signing key; ``generated_inside`` is false
    for keys imported by unwrap (they are never exportable) and for keys derived from them.
    """

    handle: str
    key_type: KeyType
    attributes: KeyAttributes
    generated_inside: bool
    created: int
    public_der: bytes | None = field(default=None, repr=False)
    public_key: PublicKey | None = None


@dataclass(frozen=True, slots=True)
class Session:
    """An authenticated session of one identity in one role. The token is the session's
    secret: it is never shown in ``repr``. ``approvers`` are the other crypto officers who
    authenticated with an officer's login (``Hsm.login(..., approvers=...)``, deprecated:
    ``Hsm.approve`` binds an approval to one operation and its arguments): with them the
    session meets a quorum of ``1 + len(approvers)`` officers (dual control) for its first
    dual-control operation."""

    identity: str
    role: Role
    token: bytes = field(repr=False)
    approvers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """The device identity that certifies the HSM's attestation key: a signer (the RoT's DPE
    child key, or any ``Signer``) and its certificate chain, DER, the signer's certificate first
    and then its issuers."""

    signer: Signer
    chain: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not self.chain or not all(isinstance(c, bytes) and c for c in self.chain):
            raise ConfigError("a device identity needs its certificate chain (DER, leaf first)")


MAX_DATA: Final = 64 * 1024 * 1024
"""The default bound on any one input buffer (``HsmConfig.max_data``, ``Pkcs11Backend``)."""

MAX_QUORUM: Final = 16
"""The largest officer quorum (``Hsm.set_officer_quorum``): a login takes at most
``MAX_QUORUM - 1`` approvers."""

DEFAULT_AUDIT_SEGMENT: Final = 100_000
"""The ``audit_segment_records`` of a new HSM when its configuration names none."""
MAX_AUDIT_SEGMENT: Final = 250_000
"""The largest ``HsmConfig.audit_segment_records``: 250,000 lines of at most 4 KiB stay under
the 1 GiB cap on the live audit log read at power-up (``_audit.MAX_AUDIT_FILE``)."""


_MAX_REFUSAL_COMMIT_RATE: Final = 1_000_000


@dataclass(frozen=True, slots=True)
class HsmConfig:
    """Tunable settings of one HSM.

    ``max_failed_logins`` wrong credentials in a row lock an identity out for
    ``lockout_duration`` seconds (by the HSM's clock), doubling with each lockout that follows
    without a successful login in between, up to ``max_lockout_duration`` (an officer ends one
    at once; an officer's own lock has no end); ``scrypt_n`` / ``scrypt_r`` / ``scrypt_p`` are
    the credential hash cost (RFC 7914); ``audit_group_commit`` is how many key-use records may
    wait in memory before the audit log is written and synced (1 makes every record durable
    before its operation returns); ``attestation_algorithm`` is the algorithm of the HSM's
    attestation key; ``max_data`` bounds any one input buffer; ``release_nonce_lifetime``
    (seconds) and ``release_challenges`` bound the single-use nonces
    :meth:`Hsm.release_challenge` issues. ``audit_segment_records`` is how many records the
    live audit log holds before the HSM closes it as an archived segment and starts a new one
    continuing the chain (at the first audit write at or after that size; power-up reads and
    verifies the live log only): at most ``MAX_AUDIT_SEGMENT``, so that a live log of records
    of up to 4 KiB stays under the 1 GiB the HSM reads. It is the HSM's own setting, sealed in
    its store: ``None`` (the default) keeps the one sealed there (``DEFAULT_AUDIT_SEGMENT`` for
    a new HSM, or one whose store predates the setting); a number is sealed at power-up (an
    ``audit-segment`` record, key ``records-<N>``, says so when it changes), so every later
    opener that names none — the CLI, another service — rotates at the same size.
    ``approval_lifetime`` (seconds, default 300) is how long a quorum approval of one
    operation (``Hsm.approve``) may wait for it, by the HSM's clock.
    ``refusal_commit_rate`` (per second, default 20) and ``refusal_commit_burst`` (default
    64) bound, for every client together, the commits that carry only refusals of
    ``release`` and ``release_challenge`` (anyone reaching the key release service can
    provoke them; each commit increments the root of trust's counter): past the burst a
    refusal waits, unanswered, for the next commit the budget allows, which carries every
    refusal queued by then. A commit carrying anything else (a granted release) is never
    held, and carries the waiting refusals with it.
    """

    max_failed_logins: int = 5
    lockout_duration: int = 300
    max_lockout_duration: int = 3600
    scrypt_n: int = 2**15
    scrypt_r: int = 8
    scrypt_p: int = 1
    audit_group_commit: int = 256
    attestation_algorithm: Algorithm = Algorithm.ES384
    max_data: int = MAX_DATA
    release_nonce_lifetime: int = 300
    release_challenges: ChallengeLimits = field(default_factory=ChallengeLimits)
    audit_segment_records: int | None = None
    approval_lifetime: int = 300
    refusal_commit_rate: float = 20.0
    refusal_commit_burst: int = 64

    def __post_init__(self) -> None:
        segment = self.audit_segment_records
        if segment is not None and (
            isinstance(segment, bool)
            or not isinstance(segment, int)
            or not 2 <= segment <= MAX_AUDIT_SEGMENT
        ):
            raise ConfigError(
                f"audit_segment_records must be an integer from 2 to {MAX_AUDIT_SEGMENT}"
            )
        for name in (
            "max_failed_logins",
            "lockout_duration",
            "max_lockout_duration",
            "scrypt_r",
            "scrypt_p",
            "audit_group_commit",
            "approval_lifetime",
            "refusal_commit_burst",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer")
        if self.max_lockout_duration < self.lockout_duration:
            raise ConfigError("max_lockout_duration must be at least lockout_duration")
        n = self.scrypt_n
        if isinstance(n, bool) or not isinstance(n, int) or n < 2**10 or n & (n - 1):
            raise ConfigError("scrypt_n must be a power of two of at least 1024")
        if self.attestation_algorithm not in KEY_TYPE_FOR_ALGORITHM:
            raise ConfigError("the attestation key is ES256, ES384, EdDSA or ML-DSA")
        if not isinstance(self.max_data, int) or self.max_data < 1:
            raise ConfigError("max_data must be a positive integer")
        lifetime = self.release_nonce_lifetime
        if isinstance(lifetime, bool) or not isinstance(lifetime, int) or lifetime < 1:
            raise ConfigError("release_nonce_lifetime must be a positive number of seconds")
        if not isinstance(self.release_challenges, ChallengeLimits):
            raise ConfigError("release_challenges must be ChallengeLimits")
        if self.refusal_commit_burst > 2**53:  # counted in floats
            raise ConfigError("refusal_commit_burst must be at most 2**53")
        rate = self.refusal_commit_rate  # not nan (no comparison holds), nor inf (no budget)
        if (
            isinstance(rate, bool)
            or not isinstance(rate, int | float)
            or not 0 < rate <= _MAX_REFUSAL_COMMIT_RATE
        ):
            raise ConfigError(
                "refusal_commit_rate must be a positive number of commits per second, at most "
                f"{_MAX_REFUSAL_COMMIT_RATE}"
            )
