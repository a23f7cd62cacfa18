"""Who may use the platform's Redfish service: accounts, roles and sessions.

**Roles and privileges** are Redfish's predefined ones (DSP0266 §13.3, the ``Role`` schema):

==================  =====================================================================
role                assigned privileges
==================  =====================================================================
``Administrator``   Login, ConfigureManager, ConfigureUsers, ConfigureComponents, ConfigureSelf
``Operator``        Login, ConfigureComponents, ConfigureSelf
``ReadOnly``        Login, ConfigureSelf
==================  =====================================================================

**Accounts** (:class:`AccountStore`) live in the node directory, in ``redfish/accounts.json``
(mode 0600, written atomically with ``ironroot._fileio.write_atomic``): each account's id, user
name, role, whether it is enabled, the source addresses it is locked out from, and its password
as an scrypt hash (RFC 7914, ``hashlib.scrypt``: a 16-byte random salt, N=2^15, r=8, p=1 by
default, the parameters stored with the hash), compared in constant time. The file also holds
the account service's settings (:class:`AccountSettings`): password length limits, lockout
threshold, lockout duration and counter reset, the per-source failure budget (which the
Redfish service's :class:`ironroot.http.LoginThrottle` enforces), and the session timeout. An
unknown user name costs the same scrypt work as a wrong password (a derivation with the store's
parameters), and both answer the same ``Unauthorized``. The file also holds the store's scrypt
parameters (``kdf``: those it was made with, or those it is opened with when named), which
every new password is hashed with; an account whose hash has other parameters (stored before
the store's changed) is rehashed with the store's, keeping its salt, at its next successful
login, so from then on its wrong password costs what an unknown name costs.

**Lockout, per (account, source address).** ``lockout_threshold`` wrong passwords in a row
for one account *from one source* (none older than ``lockout_reset_after`` seconds) lock that
account out *for that source* for ``lockout_duration`` seconds (0: until an administrator
unlocks it): its right password from there is refused (``IdentityLocked``) and its wrong ones
are not counted, while the account logs in from everywhere else and its sessions go on. A
lockout of the account from everywhere was a denial of service anyone who knew the
Administrator's name could cause. A source is an address as every per-client limit counts it
(:func:`ironroot._netaddr.client_key`: an IPv6 address as its /64), ``"local"`` for a caller
with none. A successful login from a source resets that source's counter only. At most
:data:`MAX_TALLIES` (account, source) counters are held in memory (the least recently failing
forgotten first) and at most :data:`MAX_SAVED_LOCKOUTS` lockouts an account are written (the
latest), so an attacker rotating addresses never grows the BMC's memory or its file; names
that do not exist hold nothing. A lockout an older build wrote (``locked_until``, from every
source) is honoured until it ends or an administrator unlocks it. Failures are counted in
memory, and no refused login writes before it is answered: the lockout they lead to is written
by a worker thread afterwards (at most one such write every :data:`LOCKOUT_WRITE_SPACING`
seconds, so a flood from rotating addresses does not wear the flash either), so no refusal
comes an fsync later than another (a guess at an existing name from one at an unknown name);
a restart forgets failures short of a lockout.
The last enabled Administrator cannot be removed, disabled or given another role. A user name
is taken whatever its case (``Admin`` beside ``admin`` is refused), a login names it exactly.
:meth:`AccountStore.change_password` (the Redfish ``ChangePassword`` action) sets a password
only given the password of the account that asks, a wrong one counted like a wrong login (and a
lockout it leads to ends the account's sessions: the guesser holds one of them); the
settings' ``require_change_password_action`` (default on) has the Redfish service refuse a
``PATCH`` of a password.

**Sessions** (:class:`SessionStore`) are held in memory, at most :data:`MAX_SESSIONS` (64), of
which at most :data:`MAX_SESSIONS_PER_ACCOUNT` (8) per account: a session is a 256-bit random
token (``X-Auth-Token``), stored only as its SHA-256, that ends when it is deleted, when its account
is removed, disabled, locked by an older build or given a new password or role, or after
``session_timeout`` seconds without a request. A restarted service has no sessions.

The account store is a thin shell over one JSON file; the clock is a parameter
(``clock``, seconds since the epoch) so lockouts and timeouts are tested without waiting.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import math
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from ironroot._fileio import read_limited, write_atomic
from ironroot._netaddr import client_key
from ironroot.errors import (
    ConfigError,
    Conflict,
    IdentityLocked,
    InputUnavailable,
    IronrootError,
    LimitExceeded,
    MalformedInput,
    NotFound,
    StorageError,
    Unauthorized,
)

__all__ = [
    "LOCAL_SOURCE",
    "PRIVILEGES",
    "ROLES",
    "Account",
    "AccountSettings",
    "AccountStore",
    "Session",
    "SessionStore",
]

PRIVILEGES: Final = (
    "Login",
    "ConfigureManager",
    "ConfigureUsers",
    "ConfigureComponents",
    "ConfigureSelf",
)
ROLES: Final[Mapping[str, frozenset[str]]] = {
    "Administrator": frozenset(PRIVILEGES),
    "Operator": frozenset({"Login", "ConfigureComponents", "ConfigureSelf"}),
    "ReadOnly": frozenset({"Login", "ConfigureSelf"}),
}
ACCOUNTS_FILE: Final = Path("redfish") / "accounts.json"
MAX_ACCOUNTS: Final = 64
MAX_SESSIONS: Final = 64
MAX_SESSIONS_PER_ACCOUNT: Final = 8
"""At most this many of :data:`MAX_SESSIONS` are one account's: no account, however low its
role, can take every session and lock the others out of logging in."""
USERNAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
_FILE_LIMIT: Final = 1024 * 1024
_log = logging.getLogger("ironroot.platform.redfish")
_SCRYPT_N: Final = 2**15
_SCRYPT_R: Final = 8
_SCRYPT_P: Final = 1
_DUMMY_SALT: Final = b"ironroot-redfish"
LOCAL_SOURCE: Final = "local"
"""The source of a login that comes from no network address (the command line, Python)."""
MAX_TALLIES: Final = 4096
"""The most (account, source) failure counters and lockouts held in memory."""
MAX_SAVED_LOCKOUTS: Final = 32
"""The most source lockouts of one account written to the account file (the latest)."""
LOCKOUT_WRITE_SPACING: Final = 10.0
"""The least time (seconds) between two writes of lockouts after an answer."""
_MAX_SOURCE: Final = 64
SETTING_LIMITS: Final[Mapping[str, tuple[int, int]]] = {
    "min_password_length": (8, 128),
    "max_password_length": (8, 1024),
    "lockout_threshold": (0, 1000),
    "lockout_duration": (0, 86400 * 30),
    "lockout_reset_after": (0, 86400 * 30),
    "session_timeout": (30, 86400),
}
"""Each setting's range (inclusive)."""
SOURCE_SETTING_LIMITS: Final[Mapping[str, tuple[int, int]]] = {
    "source_failure_limit": (0, 10_000),
    "source_failure_window": (1, 86400),
}
"""The per-source failure budget's ranges (inclusive): kept in the file apart from
:data:`SETTING_LIMITS`' (``source_throttle``), which an older build reads and would refuse."""
_MAX_SECRET: Final = SETTING_LIMITS["max_password_length"][1] * 4
"""The most UTF-8 bytes a password may have: the highest maximum length, 4 bytes a character."""


@dataclass(frozen=True, slots=True)
class AccountSettings:
    """The account and session service settings (Redfish ``AccountService`` and
    ``SessionService`` properties of the same meaning); times in seconds."""

    min_password_length: int = 12
    max_password_length: int = 128
    lockout_threshold: int = 5
    lockout_duration: int = 300
    lockout_reset_after: int = 300
    session_timeout: int = 1800
    source_failure_limit: int = 20
    """Failed logins (any account names) one source address may make within
    ``source_failure_window`` seconds; past it every login from there is refused (Redfish:
    ``429`` with ``Retry-After``) before its password is checked. 0: no limit."""
    source_failure_window: int = 300
    require_change_password_action: bool = True
    """A password is changed only with the ``ChangePassword`` action, which asks for the
    password of the account that asks (Redfish ``RequireChangePasswordAction``): a ``PATCH``
    of ``Password`` is refused. On unless an Administrator turns it off."""

    def __post_init__(self) -> None:
        for name, (low, high) in {**SETTING_LIMITS, **SOURCE_SETTING_LIMITS}.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ConfigError(f"{name} is an integer from {low} to {high}", code=name)
        if not isinstance(self.require_change_password_action, bool):
            raise ConfigError(
                "require_change_password_action is true or false",
                code="require_change_password_action",
            )
        if self.min_password_length > self.max_password_length:
            raise ConfigError(
                "the minimum password length is over the maximum", code="min_password_length"
            )
        if self.lockout_duration and self.lockout_reset_after > self.lockout_duration:
            raise ConfigError(
                "the lockout counter resets after at most the lockout duration",
                code="lockout_reset_after",
            )

    def to_json(self) -> dict[str, int]:
        """The numeric settings, as the account file's ``settings`` (which builds before
        ``require_change_password_action`` read, and refuse with a member they do not know:
        that one is kept beside it, :meth:`AccountStore._document`)."""
        return {name: getattr(self, name) for name in SETTING_LIMITS}

    def source_throttle_json(self) -> dict[str, int]:
        """The per-source failure budget, as the account file's ``source_throttle``."""
        return {"failure_limit": self.source_failure_limit, "window": self.source_failure_window}

    @classmethod
    def from_json(
        cls,
        doc: object,
        *,
        require_change_password_action: bool = True,
        source_throttle: object = None,
    ) -> AccountSettings:
        if not isinstance(doc, dict) or set(doc) - set(SETTING_LIMITS):
            raise ConfigError("the account settings are malformed")
        throttle: dict[str, Any] = {}
        if source_throttle is not None:  # absent from a file an older build wrote
            if not isinstance(source_throttle, dict) or set(source_throttle) != {
                "failure_limit",
                "window",
            }:
                raise ConfigError("the per-source failure budget is malformed")
            throttle = {
                "source_failure_limit": source_throttle["failure_limit"],
                "source_failure_window": source_throttle["window"],
            }
        return cls(**doc, **throttle, require_change_password_action=require_change_password_action)


@dataclass(frozen=True, slots=True)
class Account:
    """One account: what the Redfish ``ManagerAccount`` shows, and its credential hash."""

    id: str
    username: str
    role: str
    enabled: bool = True
    locked_until: float | None = None
    """A lockout from every source, which only an older build (before lockouts were per
    source) set: epoch seconds it ends, ``0`` until an administrator unlocks it."""
    salt: bytes = field(default=b"", repr=False)
    digest: bytes = field(default=b"", repr=False)
    kdf: tuple[int, int, int] = (_SCRYPT_N, _SCRYPT_R, _SCRYPT_P)

    @property
    def privileges(self) -> frozenset[str]:
        return ROLES[self.role]

    def locked(self, now: float) -> bool:
        """Locked from every source (an older build's lockout): see
        :meth:`AccountStore.locked` for the lockouts from one source."""
        return _in_force(self.locked_until, now)

    def to_json(self) -> dict[str, Any]:
        n, r, p = self.kdf
        return {
            "id": self.id,
            "username": self.username,
            "role": self.role,
            "enabled": self.enabled,
            # what an older build (a BMC whose firmware was rolled back) reads
            "failures": 0,
            "last_failure": 0.0,
            "locked_until": self.locked_until,
            "password": {
                "kdf": "scrypt",
                "n": n,
                "r": r,
                "p": p,
                "salt": base64.b64encode(self.salt).decode(),
                "hash": base64.b64encode(self.digest).decode(),
            },
        }

    @classmethod
    def from_json(cls, doc: object) -> Account:
        bad = StorageError("an account record is malformed", code="accounts")
        if not isinstance(doc, dict) or not isinstance(doc.get("password"), dict):
            raise bad
        password = doc["password"]
        if password.get("kdf") != "scrypt":
            raise bad
        try:
            kdf = (int(password["n"]), int(password["r"]), int(password["p"]))
            locked = doc["locked_until"]
            account = cls(
                id=str(doc["id"]),
                username=str(doc["username"]),
                role=str(doc["role"]),
                enabled=bool(doc["enabled"]),
                locked_until=None if locked is None else float(locked),
                salt=base64.b64decode(password["salt"], validate=True),
                digest=base64.b64decode(password["hash"], validate=True),
                kdf=kdf,
            )
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise bad from exc
        if account.role not in ROLES or not USERNAME.fullmatch(account.username):
            raise bad
        if not _kdf_ok(kdf):
            raise bad
        return account


@dataclass(slots=True)
class _Tally:
    """Wrong passwords for one account from one source, and its lockout there."""

    failures: int = 0
    last_failure: float = 0.0
    locked_until: float | None = None
    """Epoch seconds the lockout ends; ``0`` until an administrator unlocks it."""

    def locked(self, now: float) -> bool:
        return _in_force(self.locked_until, now)


def _in_force(until: float | None, now: float) -> bool:
    """Whether a lockout ending at ``until`` (epoch seconds; ``0`` until an administrator
    unlocks it; ``None``: none) holds at ``now``."""
    return until is not None and (until == 0 or now < until)


def source_key(source: str) -> str:
    """The source a login from ``source`` counts under (module docs)."""
    return client_key(source)[:_MAX_SOURCE] or LOCAL_SOURCE


def _lockouts_of(doc: object) -> dict[str, float]:
    """An account record's ``lockouts`` (source: epoch seconds the lockout ends, 0 for
    none); none in a record an older build wrote. ``ValueError`` when malformed."""
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ValueError("lockouts")
    found: dict[str, float] = {}
    for source, until in doc.items():
        if (
            not isinstance(source, str)
            or not 0 < len(source) <= _MAX_SOURCE
            or isinstance(until, bool)
            or not isinstance(until, int | float)
            or not math.isfinite(until)
            or until < 0
        ):
            raise ValueError("lockouts")
        found[source] = float(until)
    return found


def _order(until: float) -> float:
    """When a lockout ends, for ordering: one without end (0) after every other."""
    return math.inf if until == 0 else until


def _latest(lockouts: Mapping[str, float]) -> dict[str, float]:
    """The :data:`MAX_SAVED_LOCKOUTS` lockouts that end last, in the order they end."""
    kept = sorted(lockouts.items(), key=lambda item: _order(item[1]))[-MAX_SAVED_LOCKOUTS:]
    return dict(kept)


def _kdf_ok(kdf: tuple[int, int, int]) -> bool:
    """Whether ``kdf`` is scrypt parameters (N, r, p) the store takes from its file."""
    n, r, p = kdf
    return not (n < 2 or n & (n - 1) or not 0 < r <= 64 or not 0 < p <= 16 or n * r > 2**24)


def _hash(password: bytes, salt: bytes, kdf: tuple[int, int, int]) -> bytes:
    n, r, p = kdf
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=256 * n * r + 2**20, dklen=32)


def _secret(password: object) -> tuple[bytes, bool]:
    """A password given to be checked, as UTF-8 (at most the longest a password can be), and
    whether it was longer: longer than any password can be (whatever the maximum was when it
    was set), it is wrong, at the cost of the longest. Never cut to the current maximum, which
    may have been lowered since a longer password was set."""
    secret = password.encode("utf-8", "surrogatepass") if isinstance(password, str) else b""
    return secret[:_MAX_SECRET], len(secret) > _MAX_SECRET


def check_username(username: object) -> str:
    """``username`` when it is 1-32 characters of letters, digits, ``.``, ``_`` and ``-``
    (not starting with punctuation); ``MalformedInput`` (code ``username``) otherwise."""
    if not isinstance(username, str) or not USERNAME.fullmatch(username):
        raise MalformedInput(
            "a user name is 1 to 32 letters, digits, '.', '_' or '-', starting with a letter or "
            "digit",
            code="username",
        )
    return username


class AccountStore:
    """The accounts of one node's Redfish service (see the module documentation)."""

    def __init__(
        self,
        path: Path,
        *,
        clock: Callable[[], float] = time.time,
        kdf: tuple[int, int, int] | None = None,
    ) -> None:
        """``kdf``: the store's scrypt parameters (module docs); by default those its file
        holds, or N=2^15, r=8, p=1 for a file without them (or no file yet)."""
        self.path = path
        self._clock = clock
        self._kdf = kdf or (_SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
        self._kdf_given = kdf is not None
        self._lock = threading.RLock()
        self._listeners: list[Callable[[str], None]] = []
        self.settings = AccountSettings()
        self._accounts: dict[str, Account] = {}
        self._tallies: OrderedDict[tuple[str, str], _Tally] = OrderedDict()
        """Wrong passwords and lockouts per (account id, source), least recently failing
        first (``self._lock``; at most :data:`MAX_TALLIES`)."""
        self._next_id = 1
        self._write_lock = threading.Lock()
        self._version = 0
        """The accounts' version: one more with each change to write (``self._lock``)."""
        self._written = 0
        """The version the file holds (``self._write_lock``): an older one is not written."""
        self._pending = False
        """A write :meth:`_save_soon` started has not taken the document yet."""
        self._writer: threading.Thread | None = None
        self._flush_now = threading.Event()
        self._last_soon_write = -math.inf
        """When (``time.monotonic``) :meth:`_write_pending` last wrote."""
        self._load()

    # --- opening ------------------------------------------------------------------------------

    @classmethod
    def open(cls, node: Path | str, **options: Any) -> AccountStore:
        """The accounts of the node in ``node`` (``NotFound`` when no account was created:
        ``ironroot platform init`` creates the first Administrator)."""
        path = Path(node) / ACCOUNTS_FILE
        if not path.is_file():
            raise NotFound(
                f"{path}: no Redfish accounts (create the first with `ironroot platform "
                "account add --role Administrator`)"
            )
        return cls(path, **options)

    @classmethod
    def create(
        cls,
        node: Path | str,
        admin_user: str,
        admin_password_file: Path | str,
        **options: Any,
    ) -> AccountStore:
        """Create the account store of the node in ``node`` with its first Administrator,
        whose password is the first line of ``admin_password_file``. ``Conflict`` when the
        node already has accounts."""
        path = Path(node) / ACCOUNTS_FILE
        if path.exists():
            raise Conflict(f"{path} already exists", code="accounts-exist")
        try:
            data = read_limited(Path(admin_password_file), 4096)
        except OSError as exc:
            raise InputUnavailable(
                f"{admin_password_file}: {exc.strerror or exc}", code="password-file"
            ) from exc
        try:
            password = data.decode("utf-8").splitlines()[0] if data.strip() else ""
        except UnicodeDecodeError as exc:
            raise MalformedInput(f"{admin_password_file} is not UTF-8 text") from exc
        return cls.create_with(node, admin_user, password, **options)

    @classmethod
    def create_with(
        cls, node: Path | str, admin_user: str, password: str, **options: Any
    ) -> AccountStore:
        """:meth:`create` with the password given as text."""
        path = Path(node) / ACCOUNTS_FILE
        path.parent.mkdir(mode=0o700, exist_ok=True)
        store = cls(path, **options)
        if store._accounts:
            raise Conflict(f"{path} already exists", code="accounts-exist")
        store.add(admin_user, password, "Administrator")
        return store

    def _load(self) -> None:
        if not self.path.is_file():
            return
        data = read_limited(self.path, _FILE_LIMIT)
        bad = StorageError(f"{self.path} is not a Redfish account file", code="accounts")
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise bad from exc
        if not isinstance(doc, dict) or doc.get("format") != 1:
            raise bad
        try:
            settings = AccountSettings.from_json(
                doc["settings"],
                # absent from a file an older build wrote: on, the default
                require_change_password_action=doc.get("require_change_password_action", True),
                source_throttle=doc.get("source_throttle"),
            )
            accounts = [Account.from_json(a) for a in doc["accounts"]]
            lockouts = [_lockouts_of(a.get("lockouts")) for a in doc["accounts"]]
            next_id = int(doc["next_id"])
            stored = doc.get("kdf")  # absent from a file an older build wrote
            kdf = None
            if stored is not None:
                if not isinstance(stored, list) or len(stored) != 3:
                    raise bad
                kdf = (int(stored[0]), int(stored[1]), int(stored[2]))
        except (KeyError, TypeError, ValueError, AttributeError, ConfigError) as exc:
            raise bad from exc
        if kdf is not None and not _kdf_ok(kdf):
            raise bad
        if kdf is not None and not self._kdf_given:
            self._kdf = kdf
        self.settings = settings
        self._accounts = {a.id: a for a in accounts}
        self._next_id = next_id
        now = self._clock()
        for account, locked in zip(accounts, lockouts, strict=True):
            for source, until in sorted(locked.items(), key=lambda item: _order(item[1])):
                tally = _Tally(locked_until=until)
                if tally.locked(now):  # one that ended while the service was down is gone
                    self._tallies[(account.id, source)] = tally
        while len(self._tallies) > MAX_TALLIES:
            self._tallies.popitem(last=False)

    def _document(self) -> bytes:
        now = self._clock()
        locked: dict[str, dict[str, float]] = {}
        for (account_id, source), tally in self._tallies.items():
            if tally.locked(now) and tally.locked_until is not None:
                locked.setdefault(account_id, {})[source] = tally.locked_until
        doc = {
            "format": 1,
            "settings": self.settings.to_json(),
            # beside "settings", which an older build (a BMC whose firmware was rolled back)
            # refuses with a member it does not know; it ignores these
            "require_change_password_action": self.settings.require_change_password_action,
            "source_throttle": self.settings.source_throttle_json(),
            "kdf": list(self._kdf),  # the same: an older build ignores it
            "next_id": self._next_id,
            "accounts": [
                {**a.to_json(), "lockouts": _latest(locked.get(a.id, {}))}
                for a in self._accounts.values()
            ],
        }
        return json.dumps(doc, indent=1).encode()

    def _save(self) -> None:
        """Write the accounts as they are now (with ``self._lock`` held)."""
        self._version += 1
        self._write(self._document(), self._version)

    def _write(self, document: bytes, version: int) -> None:
        """Write ``document``, the accounts at ``version``, unless a later one was written."""
        with self._write_lock:
            if version > self._written:
                write_atomic(self.path, document, mode=0o600)
                self._written = version

    def _save_soon(self) -> None:
        """Write the accounts from a worker thread, after the answer (with ``self._lock``
        held): the lockout a wrong password led to. A refused login never waits for a write,
        so none comes an fsync later than another (which tells a locked account, whose
        guesses write nothing, from an unknown name), and guesses at names that do not exist
        wear no flash. One write is pending at a time; it writes what the accounts are when
        it runs. :meth:`flush` waits for it."""
        self._version += 1
        if self._pending:
            return  # the pending write has not taken the document yet: it has this change
        self._pending = True
        self._writer = threading.Thread(
            target=self._write_pending, name="ironroot-redfish-accounts", daemon=True
        )
        self._writer.start()

    def _write_pending(self) -> None:
        # At most one such write every LOCKOUT_WRITE_SPACING seconds: lockouts from a flood
        # of rotating addresses are written together (flush() writes at once).
        wait = self._last_soon_write + LOCKOUT_WRITE_SPACING - time.monotonic()
        if wait > 0:
            self._flush_now.wait(wait)
        with self._lock:
            document, version = self._document(), self._version
            self._pending = False
            self._last_soon_write = time.monotonic()  # the next waits from here
        try:
            self._write(document, version)
        except (OSError, IronrootError):
            _log.exception("the Redfish account store could not write %s", self.path)

    def flush(self) -> None:
        """Write what :meth:`_save_soon` has pending now, and wait until it is written."""
        with self._lock:
            writer = self._writer
        if writer is not None:
            self._flush_now.set()
            writer.join()
            self._flush_now.clear()

    def on_change(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(account_id)`` when an account's sessions must end (removed,
        disabled, locked, new password or role)."""
        self._listeners.append(listener)

    def _ended(self, account_id: str) -> None:
        for listener in self._listeners:
            listener(account_id)

    # --- reading ------------------------------------------------------------------------------

    def accounts(self) -> list[Account]:
        with self._lock:
            return sorted(self._accounts.values(), key=lambda a: int(a.id))

    def get(self, account_id: str) -> Account:
        with self._lock:
            account = self._accounts.get(account_id)
        if account is None:
            raise NotFound(f"no account {account_id!r}", code="account")
        return account

    def by_name(self, username: str) -> Account | None:
        with self._lock:
            return next((a for a in self._accounts.values() if a.username == username), None)

    def _taken(self, username: str, without: str | None = None) -> bool:
        """Whether an account other than ``without`` has ``username``, whatever its case
        (``Admin`` beside ``admin`` is a second "admin" to whoever reads a log or a session
        list); ``self._lock`` held. Logging in still names an account exactly."""
        wanted = username.lower()
        return any(
            a.username.lower() == wanted and a.id != without for a in self._accounts.values()
        )

    def now(self) -> float:
        return self._clock()

    def locked(self, account_id: str, source: str | None = None) -> bool:
        """Whether ``account_id`` is locked out from ``source`` (an address, or
        :data:`LOCAL_SOURCE`), or from any source when ``source`` is ``None`` (what Redfish's
        ``ManagerAccount.Locked`` shows); an older build's lockout holds for every source."""
        with self._lock:
            account = self._accounts.get(account_id)
            if account is None:
                return False
            now = self._clock()
            if account.locked(now):
                return True
            if source is not None:
                tally = self._tallies.get((account_id, source_key(source)))
                return tally is not None and tally.locked(now)
            return any(
                key[0] == account_id and tally.locked(now) for key, tally in self._tallies.items()
            )

    def failures(self, account_id: str, source: str = LOCAL_SOURCE) -> int:
        """The wrong passwords counted for ``account_id`` from ``source`` towards a lockout."""
        with self._lock:
            tally = self._tallies.get((account_id, source_key(source)))
            if tally is None:
                return 0
            reset = self.settings.lockout_reset_after
            if reset and self._clock() - tally.last_failure > reset:
                return 0
            return tally.failures

    @property
    def tracked(self) -> int:
        """How many (account, source) counters are held (at most :data:`MAX_TALLIES`)."""
        with self._lock:
            return len(self._tallies)

    # --- authentication -----------------------------------------------------------------------

    def authenticate(self, username: str, password: str, *, source: str = LOCAL_SOURCE) -> Account:
        """The enabled account ``username`` whose password is ``password``, not locked out
        from ``source`` (the client's address); ``Unauthorized`` otherwise (the same answer
        for an unknown user, a wrong password and a disabled account), ``IdentityLocked`` for
        the right password of an account locked out from ``source``. A wrong password counts
        towards the account's lockout from ``source``."""
        source = source_key(source)
        secret, too_long = _secret(password)
        account = self.by_name(username) if isinstance(username, str) else None
        if account is None:
            # The same work as a wrong password: the KDF (a wrong password's failure is
            # counted in memory, and no refusal waits for a write: _save_soon).
            _hash(secret, _DUMMY_SALT, self._kdf)
            raise Unauthorized("unknown user or wrong password", code="login")
        account = self._check(
            account,
            secret,
            too_long,
            lambda: Unauthorized("unknown user or wrong password", code="login"),
            source,
        )
        if account.kdf != self._kdf:
            account = self._rehash(account, secret)
        return account

    def _rehash(self, account: Account, secret: bytes) -> Account:
        """``account``, whose password ``secret`` was just found right, hashed again with the
        store's parameters (its salt kept: the password is the same) and written, unless it
        changed meanwhile: a wrong password of it then costs what an unknown name costs."""
        digest = _hash(secret, account.salt, self._kdf)
        with self._lock:
            current = self._accounts.get(account.id)
            if current is None or (current.salt, current.digest, current.kdf) != (
                account.salt,
                account.digest,
                account.kdf,
            ):
                return current or account  # rehashed by another login, or changed: as it is
            account = replace(current, digest=digest, kdf=self._kdf)
            self._accounts[account.id] = account
            self._save()
        return account

    def _check(
        self,
        account: Account,
        secret: bytes,
        too_long: bool,
        wrong: Callable[[], Unauthorized],
        source: str,
        *,
        lockout_ends_sessions: bool = False,
    ) -> Account:
        """``account`` as it is now when ``secret`` is its password and it is enabled and not
        locked out from ``source`` (a :func:`source_key`); ``wrong()`` otherwise (a wrong
        password counted towards the lockout from ``source``), ``IdentityLocked`` for the
        right password of an account locked out from there. ``lockout_ends_sessions``: a
        lockout this leads to ends the account's sessions (a password change's, whose guesser
        holds one); a login's lockout ends none, or a guesser could end the owner's."""
        digest = _hash(secret, account.salt, account.kdf)
        # scrypt keys HMAC-SHA-256 with the password, and HMAC pads a key with zero bytes:
        # "pw" and "pw\0" hash alike. No password holds a NUL (``check_password``), so one
        # that does is wrong, whatever it hashes to (the same work is done for it).
        right = hmac.compare_digest(digest, account.digest) and not too_long and b"\0" not in secret
        hashed = account
        with self._lock:
            current = self._accounts.get(account.id)
            if (
                current is None
                or current.salt != hashed.salt
                or (current.kdf == hashed.kdf and current.digest != hashed.digest)
            ):
                # removed, or given a new password while this one was hashed: the old one,
                # right a moment ago, must not open a session that outlives the change. (A
                # new password always has a new salt; the same salt under other parameters
                # is the same password, rehashed by another login meanwhile: _rehash.)
                raise wrong()
            account = current
            now = self._clock()
            key = (account.id, source)
            tally = self._tallies.get(key)
            locked = account.locked(now) or (tally is not None and tally.locked(now))
            if right and account.enabled and not locked:
                if tally is not None:  # a successful login resets this source's counter
                    del self._tallies[key]
                if account.locked_until is not None:  # an older build's lockout, ended
                    account = replace(account, locked_until=None)
                    self._accounts[account.id] = account
                    self._save()
                return account
            if locked:
                # While locked, a guess changes nothing and writes nothing, right or wrong
                # (the same cost for both): counted, each rewrote the account file, so a flood
                # of guesses at a locked name wore the BMC's flash for ever.
                if right:
                    raise IdentityLocked(
                        f"the account {account.username} is locked out from {source}",
                        code="locked",
                    )
                raise wrong()
            if right:  # a disabled account's: answered as a wrong one, neither writes
                raise wrong()
            locked_now = self._failed(key, tally, now)
        if locked_now:
            _log.warning(
                "redfish account %s locked out from %s after %d wrong passwords",
                account.username,
                source,
                self.settings.lockout_threshold,
            )
            if lockout_ends_sessions:  # outside this lock (they take the session store's)
                self._ended(account.id)
        raise wrong()

    def _failed(self, key: tuple[str, str], tally: _Tally | None, now: float) -> bool:
        """Count a wrong password for ``key`` (account id, source), whose counter is
        ``tally`` (with ``self._lock`` held); whether it locked the account out from there."""
        s = self.settings
        if not s.lockout_threshold:
            return False  # no lockout: nothing to count
        if tally is None or (tally.locked_until is not None and not tally.locked(now)):
            tally = _Tally()  # none, or its lockout is over: counted from 0 again
        if s.lockout_reset_after and now - tally.last_failure > s.lockout_reset_after:
            tally.failures = 0
        tally.failures += 1
        tally.last_failure = now
        locked_now = tally.failures >= s.lockout_threshold
        if locked_now:
            tally.locked_until = now + s.lockout_duration if s.lockout_duration else 0.0
            tally.failures = 0
        self._tallies[key] = tally
        self._tallies.move_to_end(key)
        while len(self._tallies) > MAX_TALLIES:
            self._tallies.popitem(last=False)
        if locked_now:  # the count stays in memory; a lockout outlives a restart
            self._save_soon()
        return locked_now

    # --- administration -----------------------------------------------------------------------

    def check_password(self, password: object) -> bytes:
        """``password`` as UTF-8 when its length (in characters) is within the settings;
        ``MalformedInput`` (code ``password-length``) otherwise, and (code ``password-nul``)
        when it holds a NUL: scrypt's HMAC pads its key with zero bytes, so a password ending
        in NULs would hash as the same password without them."""
        s = self.settings
        if not isinstance(password, str) or not (
            s.min_password_length <= len(password) <= s.max_password_length
        ):
            raise MalformedInput(
                f"a password is {s.min_password_length} to {s.max_password_length} characters",
                code="password-length",
            )
        if "\0" in password:
            raise MalformedInput("a password holds no NUL character", code="password-nul")
        return password.encode("utf-8", "surrogatepass")

    def add(self, username: str, password: str, role: str, *, enabled: bool = True) -> Account:
        """A new account (``Conflict`` code ``username-taken`` when the name is in use,
        whatever its case)."""
        check_username(username)
        if role not in ROLES:
            raise MalformedInput(f"no role {role!r}: one of {', '.join(ROLES)}", code="role")
        secret = self.check_password(password)
        salt = secrets.token_bytes(16)
        digest = _hash(secret, salt, self._kdf)
        with self._lock:
            if self._taken(username):
                raise Conflict(f"the user name {username} is taken", code="username-taken")
            if len(self._accounts) >= MAX_ACCOUNTS:
                raise LimitExceeded(f"at most {MAX_ACCOUNTS} accounts", code="accounts-full")
            account = Account(
                str(self._next_id),
                username,
                role,
                enabled,
                salt=salt,
                digest=digest,
                kdf=self._kdf,
            )
            self._next_id += 1
            self._accounts[account.id] = account
            self._save()
            return account

    def _administrators_left(self, without: str) -> int:
        return sum(
            1
            for a in self._accounts.values()
            if a.id != without and a.role == "Administrator" and a.enabled
        )

    def update(
        self,
        account_id: str,
        *,
        username: str | None = None,
        password: str | None = None,
        role: str | None = None,
        enabled: bool | None = None,
        locked: bool | None = None,
    ) -> Account:
        """Change an account. ``Conflict`` (code ``last-administrator``) when the change would
        leave no enabled Administrator; ``locked=False`` unlocks, ``locked=True`` is refused
        (only wrong passwords lock). Sessions of the account end on a new password or role,
        or when it is disabled."""
        if username is not None:
            check_username(username)
        if role is not None and role not in ROLES:
            raise MalformedInput(f"no role {role!r}: one of {', '.join(ROLES)}", code="role")
        if locked is True:
            raise MalformedInput("an account is locked only by wrong passwords", code="locked")
        new_secret: tuple[bytes, bytes] | None = None
        if password is not None:
            salt = secrets.token_bytes(16)
            new_secret = (salt, _hash(self.check_password(password), salt, self._kdf))
        with self._lock:
            account = self.get(account_id)
            demoted = (role is not None and role != "Administrator") or enabled is False
            if (
                account.role == "Administrator"
                and demoted
                and not self._administrators_left(account.id)
            ):
                raise Conflict(
                    "the last enabled Administrator cannot be disabled or given another role",
                    code="last-administrator",
                )
            if username is not None and username != account.username:
                if self._taken(username, without=account.id):
                    raise Conflict(f"the user name {username} is taken", code="username-taken")
                account = replace(account, username=username)
            ends = False
            if new_secret is not None:
                account = replace(account, salt=new_secret[0], digest=new_secret[1], kdf=self._kdf)
                ends = True
            if role is not None and role != account.role:
                account = replace(account, role=role)
                ends = True
            if enabled is not None and enabled != account.enabled:
                account = replace(account, enabled=enabled)
                ends = ends or not enabled
            if locked is False:  # from every source
                account = replace(account, locked_until=None)
                self._forget(account.id)
            self._accounts[account.id] = account
            self._save()
        if ends:
            self._ended(account.id)
        return account

    def change_password(
        self,
        account_id: str,
        password: str,
        *,
        by: str,
        by_password: str,
        source: str = LOCAL_SOURCE,
    ) -> Account:
        """Give ``account_id`` the password ``password``, asked by the account ``by`` (the
        Redfish session's), whose own password is ``by_password``: ``by`` is ``account_id``
        for one's own password, an Administrator's for another's (the caller checks the
        privilege). The Redfish ``ChangePassword`` action: a session token alone changes no
        password.

        ``MalformedInput`` for a new password out of the settings' limits (before any
        password is checked), ``NotFound`` for no account ``account_id``; a wrong
        ``by_password`` (or no account ``by``, or a disabled one) is ``Unauthorized`` (code
        ``session-account-password``), counted towards ``by``'s lockout as a wrong login is,
        so a stolen token is no guessing oracle (counted from ``source``, the client's
        address; a lockout ends ``by``'s sessions, the guesser's among them);
        ``IdentityLocked`` when ``by`` is locked out from ``source``.
        ``Unauthorized`` (code ``session``) when ``by`` changed (removed, disabled, locked, a
        new password) while its password was checked. The sessions of ``account_id`` end."""
        secret = self.check_password(password)
        self.get(account_id)

        def wrong() -> Unauthorized:
            return Unauthorized(
                "the password of the account that asks is wrong", code="session-account-password"
            )

        given, too_long = _secret(by_password)
        try:
            asker = self.get(by)
        except NotFound:
            _hash(given, _DUMMY_SALT, self._kdf)  # the work of a wrong password
            raise wrong() from None
        confirmed = self._check(
            asker, given, too_long, wrong, source_key(source), lockout_ends_sessions=True
        )
        salt = secrets.token_bytes(16)
        digest = _hash(secret, salt, self._kdf)
        with self._lock:
            current = self._accounts.get(by)
            if (
                current is None
                or (current.salt, current.digest) != (confirmed.salt, confirmed.digest)
                or not current.enabled
                or current.locked(self._clock())
            ):
                raise Unauthorized("the account that asks changed", code="session")
            account = replace(self.get(account_id), salt=salt, digest=digest, kdf=self._kdf)
            self._accounts[account.id] = account
            self._save()
        self._ended(account.id)
        return account

    def remove(self, account_id: str) -> None:
        """Remove an account and end its sessions (``Conflict`` for the last enabled
        Administrator)."""
        with self._lock:
            account = self.get(account_id)
            if account.role == "Administrator" and not self._administrators_left(account.id):
                raise Conflict(
                    "the last enabled Administrator cannot be removed", code="last-administrator"
                )
            del self._accounts[account_id]
            self._forget(account_id)
            self._save()
        self._ended(account_id)

    def _forget(self, account_id: str) -> None:
        """Drop the counters and lockouts of ``account_id`` (with ``self._lock`` held)."""
        for key in [k for k in self._tallies if k[0] == account_id]:
            del self._tallies[key]

    def configure(self, **changes: Any) -> AccountSettings:
        """Change settings, :class:`AccountSettings`' fields (``ConfigError`` with the
        setting's name as code when a value is out of range or of another type)."""
        with self._lock:
            self.settings = replace(self.settings, **changes)
            self._save()
            return self.settings


@dataclass(frozen=True, slots=True)
class Session:
    """A Redfish session: its id, account, the SHA-256 of its token, and its times."""

    id: str
    account_id: str
    username: str
    token_sha256: bytes = field(repr=False)
    created: float
    client: str | None = None
    context: str | None = None
    """What the client that opened it said of it (``Context``, at most 256 characters)."""


class SessionStore:
    """The live sessions (in memory; see the module documentation)."""

    def __init__(self, accounts: AccountStore) -> None:
        self._accounts = accounts
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}
        self._by_token: dict[bytes, str] = {}
        self._last_used: dict[str, float] = {}
        accounts.on_change(self.end_account)

    def create(
        self, account: Account, client: str | None = None, context: str | None = None
    ) -> tuple[Session, str]:
        """A new session for ``account`` and its token (``LimitExceeded`` code
        ``session-limit`` when :data:`MAX_SESSIONS` are open, ``account-session-limit`` when
        :data:`MAX_SESSIONS_PER_ACCOUNT` of them are ``account``'s). ``Unauthorized`` (code
        ``session``) when ``account`` is no longer as it was authenticated: removed, disabled,
        locked, or given a new password or role since. The check and the new session are one
        step under this store's lock, and a change ends the account's sessions under it too
        (after the account store's lock is released), so a login racing a password change
        never leaves a session the change did not end."""
        token = secrets.token_urlsafe(32)
        digest = hashlib.sha256(token.encode()).digest()
        now = self._accounts.now()
        with self._lock:
            try:
                current = self._accounts.get(account.id)
            except NotFound:
                current = None
            if (
                current is None
                or (current.salt, current.digest, current.role)
                != (account.salt, account.digest, account.role)
                or not current.enabled
                or current.locked(now)
            ):
                raise Unauthorized("the account changed while logging in", code="session")
            self._expire(now)
            if len(self._sessions) >= MAX_SESSIONS:
                raise LimitExceeded(f"at most {MAX_SESSIONS} sessions", code="session-limit")
            held = sum(1 for s in self._sessions.values() if s.account_id == account.id)
            if held >= MAX_SESSIONS_PER_ACCOUNT:
                raise LimitExceeded(
                    f"at most {MAX_SESSIONS_PER_ACCOUNT} sessions per account",
                    code="account-session-limit",
                )
            session = Session(
                secrets.token_hex(8), account.id, account.username, digest, now, client, context
            )
            self._sessions[session.id] = session
            self._by_token[digest] = session.id
            self._last_used[session.id] = now
        return session, token

    def _expire(self, now: float) -> None:
        timeout = self._accounts.settings.session_timeout
        for ident, used in list(self._last_used.items()):
            if now - used > timeout:
                self._drop(ident)

    def _drop(self, ident: str) -> None:
        session = self._sessions.pop(ident, None)
        self._last_used.pop(ident, None)
        if session is not None:
            self._by_token.pop(session.token_sha256, None)

    def lookup(self, token: str) -> Session:
        """The live session of ``token`` (its idle timer restarts); ``Unauthorized``
        otherwise."""
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        now = self._accounts.now()
        with self._lock:
            self._expire(now)
            ident = self._by_token.get(digest)
            if ident is None:
                raise Unauthorized("no valid session", code="session")
            self._last_used[ident] = now
            return self._sessions[ident]

    def sessions(self) -> list[Session]:
        now = self._accounts.now()
        with self._lock:
            self._expire(now)
            return sorted(self._sessions.values(), key=lambda s: (s.created, s.id))

    def get(self, ident: str) -> Session:
        now = self._accounts.now()
        with self._lock:
            self._expire(now)
            session = self._sessions.get(ident)
        if session is None:
            raise NotFound(f"no session {ident!r}", code="session")
        return session

    def delete(self, ident: str) -> None:
        with self._lock:
            if ident not in self._sessions:
                raise NotFound(f"no session {ident!r}", code="session")
            self._drop(ident)

    def end_account(self, account_id: str) -> None:
        """End every session of ``account_id``."""
        with self._lock:
            for session in list(self._sessions.values()):
                if session.account_id == account_id:
                    self._drop(session.id)
