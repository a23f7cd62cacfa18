"""Who may see the dashboard beyond the public log pages: operators, sessions, CSRF, throttling.

**Operators** are accounts of :class:`ironroot.platform.AccountStore` — the store the
platform's Redfish service uses — kept in ``<data>/dashboard/operators.json`` (mode 0600):
scrypt password hashes (N=2^15, r=8, p=1, a random salt each) compared in constant time, an
unknown name costing the same work as a wrong password and answering the same, passwords of
12 to 128 characters. The store's lockout of an account (5 wrong passwords in a row, 5
minutes) is off here (``lockout_threshold = 0``): it held for every client, so one address
guessing kept the operator out from everywhere; the throttling below bounds guessing
instead. ``ironroot dashboard passwd`` adds an operator or sets a new password. No file is
no operator yet; a file that cannot be read (damaged, a directory, a dangling link) is a
``StorageError`` (code ``operators-unreadable``, 503), never taken for no operators.

**Sessions** are a signed cookie, ``ironroot_session``: ``base64url(JSON payload) "."
base64url(HMAC-SHA-256(key, "ironroot-dashboard-session/1" 0x00 payload))`` with the key in
``<data>/dashboard/session.key`` (32 random bytes, mode 0600, made on first use). The payload
names the operator, a random session id, when it was issued and when it expires, and a tag
of the account's password salt, so a new password (or a removed account) ends every session
of it. Nothing secret is in the cookie. Logging out ends the session on the server too: its
id is kept, until it would have expired, in ``<data>/dashboard/ended-sessions.json`` (mode
0600, read again when another process changed it), and a copy of the cookie taken before is
no session after (:class:`EndedSessions`). The cookie is ``HttpOnly`` and
``SameSite=Strict``. Over plain HTTP (loopback development) it is scoped to the dashboard's
path. Over TLS it is ``__Host-ironroot_session``, ``Secure``, ``Path=/`` and without
``Domain`` (:func:`cookie_name`; RFC 6265bis §4.1.3.2): a browser keeps such a cookie only
as set by this very host over TLS, so a sibling subdomain (``evil.example.com`` next to
``dash.example.com``) cannot plant a session or a login nonce; one sent under the plain name
over TLS is not read.

**CSRF.** The login form carries a token bound to a random pre-login cookie
(``ironroot_login``, same flags and prefix) by the same key; a POST without both, or with an
``Origin`` that is not the dashboard's own, is refused. Logging out is a POST whose token is
bound to the session. Each form's token is the HMAC under its own label
(``ironroot-dashboard-csrf-login/1``, ``ironroot-dashboard-csrf-logout/1``), so one is never
the other's, whatever values the cookies hold. Either is a URL-encoded form, any other body
a 415. The dashboard has no other form and changes nothing.

**Throttling.** ``max_failures`` failed logins from one client address within ``window``
seconds answer ``TooManyAttempts`` (429, ``Retry-After``) to every login from that address
until the oldest failure leaves the window (an address counted as every per-client limit
counts it, :func:`ironroot._netaddr.client_key`: an IPv6 one as its /64, which one host holds
whole). A login still being checked counts as a failure until it is over, so logins sent at
once cannot make more guesses than ``max_failures``. An account name (any name typed, known or
not) is refused from every address while ``4 * max_failures`` failures for it fall within the
window: more than one address alone can make, so only a guessing attack from several
addresses holds the operator back, and it gets at most that many guesses a window. The
throttle is :class:`ironroot.http.LoginThrottle`, which the platform's Redfish service uses
too (memory bounded however many addresses and names an attacker rotates through).

Written here rather than taken from a library: Starlette's ``SessionMiddleware`` needs
``itsdangerous`` (not a dependency) and has no CSRF protection or login throttling; what is
hand-written is a MAC over a small JSON document with the standard library's ``hmac``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from ironroot._fileio import file_lock, read_limited, write_atomic
from ironroot.errors import (
    ConfigError,
    InputUnavailable,
    IronrootError,
    StorageError,
    Unauthorized,
)
from ironroot.http import LoginAttempt, LoginThrottle

if TYPE_CHECKING:
    from ironroot.platform import AccountStore

__all__ = [
    "LOGIN_COOKIE",
    "SESSION_COOKIE",
    "CsrfForm",
    "EndedSessions",
    "LoginAttempt",
    "LoginThrottle",
    "Operators",
    "Session",
    "SessionKeys",
]

SESSION_COOKIE: Final = "ironroot_session"
LOGIN_COOKIE: Final = "ironroot_login"
OPERATORS_FILE: Final = "operators.json"
SESSION_KEY_FILE: Final = "session.key"
ENDED_FILE: Final = "ended-sessions.json"
_MAX_ENDED_FILE: Final = 16 * 1024 * 1024
_ROLE: Final = "ReadOnly"  # the dashboard only shows: every operator may see every page
_SESSION_LABEL: Final = b"ironroot-dashboard-session/1\x00"
CsrfForm = Literal["login", "logout"]
_CSRF_LABELS: Final[dict[str, bytes]] = {  # one each: a token of one form is none of the other's
    "login": b"ironroot-dashboard-csrf-login/1\x00",
    "logout": b"ironroot-dashboard-csrf-logout/1\x00",
}
_HOST_PREFIX: Final = "__Host-"
_KEY_SIZE: Final = 32
_MAX_COOKIE: Final = 1024


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def cookie_name(name: str, *, tls: bool) -> str:
    """The name of the cookie ``name`` as set and read: ``__Host-<name>`` over TLS (it must
    be set ``Secure``, ``Path=/``, without ``Domain``), ``name`` over plain HTTP, where a
    browser would refuse a ``Secure`` cookie (module docs)."""
    return _HOST_PREFIX + name if tls else name


def _file_version(path: Path) -> tuple[int, int, int] | None:
    """What tells one state of a file from the next (inode, mtime, size); ``None`` when it
    is not there: a file another process replaced or wrote since is read again."""
    try:
        found = path.stat()
    except FileNotFoundError:
        return None
    return (found.st_ino, found.st_mtime_ns, found.st_size)


class Operators:
    """The operators of one dashboard (module docs): a thin shell over the account store."""

    def __init__(self, state_dir: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = state_dir / OPERATORS_FILE
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None
        self._loaded: AccountStore | None = None

    def _version(self) -> tuple[int, int, int] | None:
        return _file_version(self.path)

    @property
    def _store(self) -> AccountStore:
        """The account store as the file is now: read again when another process (``ironroot
        dashboard passwd``) or this one changed it, so no write is made from a stale copy."""
        with self._lock:
            version = self._version()
            if self._loaded is None or version != self._seen:
                self._loaded = self._open()
                # no lock of the account for every client: LoginThrottle holds guessers back
                self._loaded.settings = replace(self._loaded.settings, lockout_threshold=0)
                self._seen = version
            return self._loaded

    def _open(self) -> AccountStore:
        """The account store of the file (none yet: an empty one); ``StorageError`` (code
        ``operators-unreadable``) for a file that is there and cannot be read, a directory
        or a dangling link among them: nobody can log in, and the page says why."""
        from ironroot.platform import AccountStore

        try:
            if os.path.lexists(self.path) and not self.path.is_file():
                raise StorageError(f"{self.path} is not a regular file")
            return AccountStore(self.path, clock=self._clock)
        except (IronrootError, OSError) as exc:
            reason = exc.detail if isinstance(exc, IronrootError) else exc.strerror or str(exc)
            raise StorageError(
                f"the dashboard's operators file cannot be read: {reason}",
                code="operators-unreadable",
            ) from exc

    def _saved(self) -> None:
        with self._lock:
            self._seen = self._version()

    @property
    def names(self) -> list[str]:
        return [a.username for a in self._store.accounts()]

    def set_password(self, username: str, password: str) -> bool:
        """Add ``username`` with ``password``, or give it a new one (ending its sessions);
        ``True`` when the operator is new. ``MalformedInput`` for a bad name or length."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        store = self._store
        account = store.by_name(username)
        try:
            if account is None:
                store.add(username, password, _ROLE)
                return True
            store.update(account.id, password=password, locked=False)
            return False
        finally:
            self._saved()

    def authenticate(self, username: str, password: str) -> str:
        """The operator's name when ``password`` is right; ``Unauthorized`` (the same for an
        unknown name and a wrong password) or ``IdentityLocked`` otherwise."""
        try:
            return self._store.authenticate(username, password).username
        finally:
            self._saved()  # a failure or a reset counter was written

    def tag(self, username: str) -> str | None:
        """What a session of ``username`` carries to be ended by a new password: a digest of
        the account's current salt (``None`` when there is no such enabled operator)."""
        account = self._store.by_name(username)
        if account is None or not account.enabled:
            return None
        return hashlib.sha256(b"ironroot-dashboard-operator\x00" + account.salt).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Session:
    """A logged-in operator: who, until when (POSIX seconds), and the session's id."""

    user: str
    issued: int
    expires: int
    id: str


class SessionKeys:
    """The key that signs session cookies and CSRF tokens (module docs)."""

    def __init__(self, key: bytes) -> None:
        if len(key) != _KEY_SIZE:
            raise ConfigError(f"a session key is {_KEY_SIZE} bytes")
        self._key = key

    def __repr__(self) -> str:
        return "SessionKeys(<secret>)"

    @classmethod
    def load(cls, state_dir: Path) -> SessionKeys:
        """The key in ``state_dir``, made (32 random bytes, mode 0600) when there is none."""
        path = state_dir / SESSION_KEY_FILE
        if not path.exists():
            try:
                state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
                write_atomic(path, secrets.token_bytes(_KEY_SIZE), mode=0o600, exclusive=True)
            except IronrootError:
                pass  # another process made it first: read theirs
            except OSError as exc:
                raise StorageError(f"cannot create {path}: {exc.strerror or exc}") from exc
        try:
            data = read_limited(path, 64)
        except OSError as exc:
            raise InputUnavailable(f"{path}: {exc.strerror or exc}") from exc
        except IronrootError as exc:
            raise ConfigError(f"{path} is not a session key") from exc
        if len(data) != _KEY_SIZE:
            raise ConfigError(f"{path} is not a session key ({_KEY_SIZE} bytes)")
        return cls(data)

    def _mac(self, label: bytes, data: bytes) -> bytes:
        return hmac.new(self._key, label + data, hashlib.sha256).digest()

    # --- sessions ---------------------------------------------------------------------------

    def issue(self, user: str, tag: str, *, now: int, lifetime: int) -> str:
        """A session cookie value for ``user`` (with the operator's ``tag``)."""
        payload = json.dumps(
            {
                "u": user,
                "t": tag,
                "s": _b64(secrets.token_bytes(16)),
                "iat": now,
                "exp": now + lifetime,
            },
            separators=(",", ":"),
            sort_keys=True,
        ).encode()
        return f"{_b64(payload)}.{_b64(self._mac(_SESSION_LABEL, payload))}"

    def session(
        self, value: str | None, operators: Operators, *, now: int, lifetime: int | None = None
    ) -> Session:
        """The session a cookie value stands for; ``Unauthorized`` when it is missing, forged,
        expired (at the expiry it was issued with, or ``lifetime`` seconds after it was
        issued, whichever is first: a lifetime lowered since holds for sessions issued
        before), or its operator is gone or has a new password."""
        if not value or len(value) > _MAX_COOKIE or value.count(".") != 1:
            raise Unauthorized("log in to see this page", code="login-required")
        body, mac = value.split(".")
        try:
            payload, tag = _unb64(body), _unb64(mac)
        except (binascii.Error, ValueError) as exc:
            raise Unauthorized("the session is not valid", code="session-invalid") from exc
        if not hmac.compare_digest(tag, self._mac(_SESSION_LABEL, payload)):
            raise Unauthorized("the session is not valid", code="session-invalid")
        try:
            doc = json.loads(payload)
            user, operator_tag, session_id = doc["u"], doc["t"], doc["s"]
            issued, expires = doc["iat"], doc["exp"]
        except (ValueError, KeyError, TypeError) as exc:
            raise Unauthorized("the session is not valid", code="session-invalid") from exc
        if not (
            isinstance(user, str)
            and isinstance(operator_tag, str)
            and isinstance(session_id, str)
            and isinstance(issued, int)
            and isinstance(expires, int)
        ):
            raise Unauthorized("the session is not valid", code="session-invalid")
        if now >= expires or (lifetime is not None and now >= issued + lifetime):
            raise Unauthorized("the session has expired: log in again", code="session-expired")
        current = operators.tag(user)
        if current is None or not hmac.compare_digest(current, operator_tag):
            raise Unauthorized("the session has ended: log in again", code="session-ended")
        return Session(user, issued, expires, session_id)

    # --- CSRF -------------------------------------------------------------------------------

    def csrf(self, bound_to: str, *, form: CsrfForm) -> str:
        """The token of ``form`` for ``bound_to`` (the login form's: a pre-login cookie; the
        logout form's: a session cookie)."""
        return _b64(self._mac(_CSRF_LABELS[form], bound_to.encode()))

    def check_csrf(self, bound_to: str | None, token: object, *, form: CsrfForm) -> None:
        """``Unauthorized`` (``csrf``) unless ``token`` is the token of ``form`` for
        ``bound_to``."""
        if (
            not bound_to
            or not isinstance(token, str)
            or len(bound_to) > _MAX_COOKIE
            or not hmac.compare_digest(token.encode(), self.csrf(bound_to, form=form).encode())
        ):
            raise Unauthorized(
                "the form has expired or did not come from this dashboard: reload it",
                code="csrf",
            )


class EndedSessions:
    """Sessions logged out before they expired (module docs): ``{session id: expiry}`` in
    ``<state>/ended-sessions.json``, pruned of the expired on every write."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / ENDED_FILE
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None
        self._ended: dict[str, int] = {}

    def _version(self) -> tuple[int, int, int] | None:
        return _file_version(self.path)

    def _current(self) -> dict[str, int]:
        version = self._version()
        if version == self._seen:
            return self._ended
        ended: dict[str, int] = {}
        if version is not None:
            try:
                doc = json.loads(read_limited(self.path, _MAX_ENDED_FILE))
            except OSError as exc:
                raise InputUnavailable(f"{self.path}: {exc.strerror or exc}") from exc
            except (IronrootError, ValueError) as exc:
                raise ConfigError(f"{self.path} is not a list of ended sessions") from exc
            if not isinstance(doc, dict) or not all(
                isinstance(k, str) and isinstance(v, int) for k, v in doc.items()
            ):
                raise ConfigError(f"{self.path} is not a list of ended sessions")
            ended = doc
        self._ended, self._seen = ended, version
        return ended

    def ended(self, session_id: str) -> bool:
        """Whether the session ``session_id`` was logged out."""
        with self._lock:
            return session_id in self._current()

    def end(self, session: Session, *, now: int) -> None:
        """Log ``session`` out: no cookie of it is a session any more."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # one writer at a time among the processes serving one dashboard directory; the lock
        # file is never opened through a link (file_lock)
        lock = self.path.with_name(ENDED_FILE + ".lock")
        with self._lock, file_lock(lock, "the ended sessions' lock"):
            ended = {k: v for k, v in self._current().items() if v > now}
            ended[session.id] = session.expires
            try:
                write_atomic(self.path, json.dumps(ended, sort_keys=True).encode(), mode=0o600)
            except OSError as exc:
                raise StorageError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
            self._ended, self._seen = ended, self._version()


def new_login_nonce() -> str:
    """The value of a fresh pre-login cookie."""
    return _b64(os.urandom(18))
