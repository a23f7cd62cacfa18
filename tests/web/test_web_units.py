"""The dashboard's pure parts: the SVG pictures (escaped), time buckets, session cookies and
form tokens, the configuration file, and the operators' store."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import pytest

from ironroot.errors import (
    ConfigError,
    InputUnavailable,
    MalformedInput,
    StorageError,
    TooManyAttempts,
    Unauthorized,
)
from ironroot.web import (
    LoginThrottle,
    Operators,
    SessionKeys,
    bar_chart,
    chain_svg,
    load_dashboard_config,
)
from ironroot.web._app import _safe_next
from ironroot.web._auth import EndedSessions
from ironroot.web._logs import CosignatureRow, WitnessedView
from ironroot.web._svg import Bar, ChainBox, bucket_times

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_the_chain_picture_escapes_every_text_and_says_each_status_in_words() -> None:
    svg = chain_svg(
        [
            ChainBox("fuses", "Fuses", "ok", "production"),
            ChainBox("quote", HOSTILE, "fail", HOSTILE, check=HOSTILE),
            ChainBox("ear", "EAR", "unknown", "never attested"),
        ],
        title=HOSTILE,
    )
    text = str(svg)
    assert "<script" not in text
    assert "<img" not in text
    assert "&lt;script&gt;" in text
    assert 'data-link="quote" data-status="fail"' in text
    assert ">ok</text>" in text
    assert ">not checked</text>" in text
    assert "failed: &lt;script&gt;" in text
    assert text.count("<line") == 2  # arrows between three links


def test_bar_charts_escape_series_names_and_handle_no_data() -> None:
    empty = str(bar_chart([], {"entries": "#0969da"}, title="Registrations"))
    assert "nothing yet" in empty
    bars = [Bar(0, {HOSTILE: 3}), Bar(60, {HOSTILE: 1})]
    text = str(bar_chart(bars, {HOSTILE: "#cf222e"}, title=HOSTILE))
    assert "<script" not in text
    assert "&lt;script&gt;" in text
    assert text.count("<rect") == 3  # two bars and the legend


def test_bucket_times_picks_a_round_width_for_at_most_48_bars() -> None:
    points = [(1_780_000_000 + 3600 * i, "ok", 1) for i in range(100)]
    bars = bucket_times(points, ["ok", "bad"])
    assert len(bars) <= 48
    assert sum(b.counts["ok"] for b in bars) == 100
    assert all(b.counts["bad"] == 0 for b in bars)
    assert bars[1].start - bars[0].start == 6 * 3600
    assert bucket_times([], ["ok"]) == []


@pytest.fixture
def keys() -> SessionKeys:
    return SessionKeys(bytes(range(32)))


@pytest.fixture
def operators(tmp_path: Path) -> Operators:
    found = Operators(tmp_path / "dashboard")
    found.set_password("alice", "correct horse battery staple")
    return found


def test_a_session_cookie_round_trips_and_says_nothing_secret(
    keys: SessionKeys, operators: Operators
) -> None:
    tag = operators.tag("alice")
    assert tag is not None
    value = keys.issue("alice", tag, now=1000, lifetime=60)
    session = keys.session(value, operators, now=1059)
    assert (session.user, session.issued, session.expires) == ("alice", 1000, 1060)
    payload = json.loads(base64.urlsafe_b64decode(value.split(".")[0] + "=="))
    assert set(payload) == {"u", "t", "s", "iat", "exp"}
    assert repr(keys) == "SessionKeys(<secret>)"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (lambda v: None, "login-required"),
        (lambda v: "", "login-required"),
        (lambda v: v + "x", "session-invalid"),
        (lambda v: v.replace(".", ".A"), "session-invalid"),
        (lambda v: "a.b.c", "login-required"),
        (lambda v: "x" * 2000, "login-required"),
    ],
)
def test_a_bad_cookie_is_no_session(
    keys: SessionKeys, operators: Operators, change: object, code: str
) -> None:
    value = keys.issue("alice", operators.tag("alice") or "", now=1000, lifetime=60)
    with pytest.raises(Unauthorized) as caught:
        keys.session(change(value), operators, now=1001)  # type: ignore[operator]
    assert caught.value.code == code


def test_a_cookie_of_another_key_an_expired_one_and_a_changed_password_are_refused(
    keys: SessionKeys, operators: Operators
) -> None:
    value = keys.issue("alice", operators.tag("alice") or "", now=1000, lifetime=60)
    with pytest.raises(Unauthorized) as other:
        SessionKeys(bytes(32)).session(value, operators, now=1001)
    assert other.value.code == "session-invalid"
    with pytest.raises(Unauthorized) as expired:
        keys.session(value, operators, now=1060)
    assert expired.value.code == "session-expired"
    operators.set_password("alice", "another long password")
    with pytest.raises(Unauthorized) as ended:
        keys.session(value, operators, now=1001)
    assert ended.value.code == "session-ended"
    unknown = keys.issue("bob", "0" * 32, now=1000, lifetime=60)
    with pytest.raises(Unauthorized):
        keys.session(unknown, operators, now=1001)


def test_form_tokens_are_bound_to_their_cookie(keys: SessionKeys) -> None:
    token = keys.csrf("nonce-1", form="login")
    keys.check_csrf("nonce-1", token, form="login")
    for bound, given in (("nonce-2", token), ("nonce-1", None), (None, token), ("nonce-1", "")):
        with pytest.raises(Unauthorized) as caught:
            keys.check_csrf(bound, given, form="login")
        assert caught.value.code == "csrf"


def test_a_login_token_is_no_logout_token_and_the_other_way_round(keys: SessionKeys) -> None:
    # one HMAC label for both: a login form's token bound to a value was the logout token of
    # a session cookie of that value (domain separation: each form its own label)
    for made, checked in (("login", "logout"), ("logout", "login")):
        token = keys.csrf("same-value", form=made)
        keys.check_csrf("same-value", token, form=made)
        with pytest.raises(Unauthorized) as caught:
            keys.check_csrf("same-value", token, form=checked)
        assert caught.value.code == "csrf"
        assert caught.value.detail == (
            "the form has expired or did not come from this dashboard: reload it"
        )


def test_the_session_key_is_made_once_with_mode_0600(tmp_path: Path) -> None:
    state = tmp_path / "dashboard"
    SessionKeys.load(state)
    path = state / "session.key"
    assert path.stat().st_mode & 0o777 == 0o600
    first = path.read_bytes()
    SessionKeys.load(state)
    assert path.read_bytes() == first
    path.write_bytes(b"short")
    with pytest.raises(ConfigError):
        SessionKeys.load(state)


def test_operators_are_scrypt_accounts_in_a_private_file(operators: Operators) -> None:
    assert operators.authenticate("alice", "correct horse battery staple") == "alice"
    assert operators.path.stat().st_mode & 0o777 == 0o600
    stored = operators.path.read_text()
    assert "correct horse" not in stored
    assert '"kdf": "scrypt"' in stored
    for user, password in (("alice", "wrong password!!"), ("mallory", "wrong password!!")):
        with pytest.raises(Unauthorized) as caught:
            operators.authenticate(user, password)
        assert caught.value.code == "login"
    with pytest.raises(MalformedInput) as short:
        operators.set_password("bob", "short")
    assert short.value.code == "password-length"
    with pytest.raises(MalformedInput):
        operators.set_password("<b>", "long enough password")


def test_wrong_passwords_do_not_lock_an_operator_for_every_client(operators: Operators) -> None:
    # was: five wrong passwords locked the account for everyone, from any one address; the
    # dashboard's LoginThrottle holds guessers back per address and per account instead
    for _ in range(6):
        with pytest.raises(Unauthorized) as caught:
            operators.authenticate("alice", "wrong password!!")
        assert caught.value.code == "login"
    assert operators.authenticate("alice", "correct horse battery staple") == "alice"


def test_the_throttle_holds_an_account_back_only_after_failures_from_several_addresses() -> None:
    throttle = LoginThrottle(2, 10, clock=lambda: 5.0)
    for n in range(4):  # 2 addresses x 2 failures: 4 = 2 x max_failures, half the account's
        attempt = throttle.begin(f"10.0.0.{n // 2}")
        throttle.begin_account(attempt, "alice")
        attempt.failed = True
        throttle.end(attempt)
    with pytest.raises(TooManyAttempts) as caught:
        throttle.check("10.0.0.0")  # each address is held back
    assert caught.value.code == "too-many-attempts"
    attempt = throttle.begin("10.0.0.9")
    throttle.begin_account(attempt, "alice")  # the account is not, yet
    attempt.failed = True
    throttle.end(attempt)
    for n in range(3):
        attempt = throttle.begin(f"10.0.1.{n}")
        throttle.begin_account(attempt, "alice")
        attempt.failed = True
        throttle.end(attempt)
    attempt = throttle.begin("10.0.2.1")  # 8 failures on alice: every address waits
    with pytest.raises(TooManyAttempts) as held:
        throttle.begin_account(attempt, "alice")
    assert held.value.code == "too-many-attempts"
    assert held.value.retry_after == 11
    throttle.begin_account(attempt, "bob")  # another name is not held back
    throttle.end(attempt)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/fleet?status=quarantined", "/fleet?status=quarantined"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("/x\ny", "/"),
        # a dot segment climbs out of the dashboard's prefix (/dashboard/../admin is /admin),
        # percent-encoded too: a browser reads %2e as a dot in a path (WHATWG URL)
        ("/../admin", "/"),
        ("/fleet/..", "/"),
        ("/./x", "/"),
        ("/%2e%2E/admin", "/"),
        ("/.%2e/admin", "/"),
        ("/%2e./admin", "/"),
        ("/fleet?q=../x", "/fleet?q=../x"),  # not in the path: a query's value
        ("/log/trusted-log/entries/ab#..", "/log/trusted-log/entries/ab#.."),
        ("/fleet/nodes/node..1", "/fleet/nodes/node..1"),
        (None, "/"),
        ("", "/"),
    ],
)
def test_the_page_after_login_stays_on_the_dashboard(value: str | None, expected: str) -> None:
    assert _safe_next(value) == expected


# --- the configuration -------------------------------------------------------------------------


def test_sources_are_found_in_the_data_directory(tmp_path: Path) -> None:
    (tmp_path / "ts").mkdir()
    (tmp_path / "ts" / "log.sqlite3").write_bytes(b"")
    (tmp_path / "ts" / "ironroot.toml").write_text("")
    (tmp_path / "fleet").mkdir()
    (tmp_path / "fleet" / "fleet.json").write_text("{}")
    (tmp_path / "fleet" / "monitor.db").write_bytes(b"")
    (tmp_path / "hsm").mkdir()
    (tmp_path / "hsm" / "audit.jsonl").write_text("")
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "witness.toml").write_text("")
    config = load_dashboard_config(tmp_path)
    assert config.logs == (tmp_path / "ts",)
    assert config.fleet == tmp_path / "fleet"
    assert config.hsms == (tmp_path / "hsm",)
    assert config.witnesses == (tmp_path / "w",)
    assert config.monitors == (tmp_path / "fleet" / "monitor.db",)
    assert config.has_sources
    assert not load_dashboard_config(tmp_path / "ts" / "..").keyrelease


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colour = 1", "unknown setting"),
        ("[sources]\nlog = 'x'", "[sources] takes"),
        ("[sources]\nfleet = ['a', 'b']", "one fleet"),
        ("[sources]\nlogs = [1]", "path or a list of paths"),
        ("[session]\nlifetime = 10", "session.lifetime"),
        ("[login]\nmax_failures = 0", "login.max_failures"),
        ("[login]\nwindow = true", "login.window"),
        ("title = ''", "title"),
        ("title = [", "not readable TOML"),
        ("allowed_hosts = 'dash.example'", "allowed_hosts is a list of host names"),
        ("allowed_hosts = ['https://dash.example/']", "is not a host name"),
        ("allowed_hosts = ['*']", "is not a host name"),
        ("allowed_hosts = ['']", "is not a host name"),
        ("allowed_hosts = [':8480']", "is not a host name"),
        ("allowed_hosts = ['dash example']", "is not a host name"),
    ],
)
def test_a_wrong_configuration_is_refused(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "dashboard.toml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_dashboard_config(tmp_path)
    assert message in caught.value.detail


def test_the_data_directory_must_be_a_directory(tmp_path: Path) -> None:
    with pytest.raises(InputUnavailable):
        load_dashboard_config(tmp_path / "missing")
    (tmp_path / "file").write_text("")
    with pytest.raises(InputUnavailable):
        load_dashboard_config(tmp_path / "file")


def test_the_configuration_s_times_are_checked(tmp_path: Path) -> None:
    (tmp_path / "dashboard.toml").write_text("[session]\nlifetime = 600\n[login]\nwindow = 60\n")
    config = load_dashboard_config(tmp_path)
    assert (config.session_lifetime, config.failure_window, config.max_failures) == (600, 60, 5)
    assert config.allowed_hosts == ()
    assert not config.has_sources
    assert dt.timedelta(seconds=config.session_lifetime) == dt.timedelta(minutes=10)


def test_the_host_names_a_dashboard_answers_are_read(tmp_path: Path) -> None:
    (tmp_path / "dashboard.toml").write_text(
        "allowed_hosts = ['Dash.Example', 'dash.example:8443']"
    )
    assert load_dashboard_config(tmp_path).allowed_hosts == ("dash.example", "dash.example:8443")


def test_an_operator_added_by_another_process_can_log_in_at_once(tmp_path: Path) -> None:
    server = Operators(tmp_path / "dashboard")
    assert server.names == []
    Operators(tmp_path / "dashboard").set_password("carol", "a long enough password")
    assert server.authenticate("carol", "a long enough password") == "carol"
    with pytest.raises(Unauthorized):
        server.authenticate("carol", "a wrong password here")  # written from a fresh read
    assert Operators(tmp_path / "dashboard").names == ["carol"]


def test_a_session_logged_out_stays_ended_and_the_list_forgets_it_once_expired(
    tmp_path: Path, keys: SessionKeys, operators: Operators
) -> None:
    tag = operators.tag("alice") or ""
    first = keys.session(keys.issue("alice", tag, now=1000, lifetime=60), operators, now=1001)
    second = keys.session(keys.issue("alice", tag, now=1000, lifetime=60), operators, now=1001)
    assert first.id != second.id  # the same operator, the same second: two sessions
    ended = EndedSessions(tmp_path)
    ended.end(first, now=1001)
    assert ended.ended(first.id)
    assert not ended.ended(second.id)
    assert EndedSessions(tmp_path).ended(first.id)  # another process sees it
    assert (tmp_path / "ended-sessions.json").stat().st_mode & 0o777 == 0o600
    ended.end(second, now=1060)  # the first has expired by now: forgotten
    assert json.loads((tmp_path / "ended-sessions.json").read_text()) == {second.id: 1060}


def test_a_link_planted_at_the_ended_sessions_lock_is_never_followed(
    tmp_path: Path, keys: SessionKeys, operators: Operators
) -> None:
    """The lock beside ``ended-sessions.json`` is taken as every other lock file is
    (``ironroot._fileio.file_lock``): never through a link. A link planted there had a
    logout create (mode 0600) and lock whatever file it named; now the logout is refused,
    ``StorageError`` ``storage`` naming the lock, and nothing is made where it points."""
    state = tmp_path / "state"
    state.mkdir()
    target = tmp_path / "elsewhere"
    (state / "ended-sessions.json.lock").symlink_to(target)
    tag = operators.tag("alice") or ""
    session = keys.session(keys.issue("alice", tag, now=1000, lifetime=60), operators, now=1001)
    with pytest.raises(StorageError) as caught:
        EndedSessions(state).end(session, now=1001)
    assert type(caught.value) is StorageError
    assert caught.value.code == "storage"
    assert caught.value.detail.startswith(
        f"the ended sessions' lock {state / 'ended-sessions.json.lock'} cannot be opened: "
    )
    assert not target.exists()
    assert not (state / "ended-sessions.json").exists()


def test_an_unreadable_list_of_ended_sessions_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ended-sessions.json").write_text('["not", "a", "map"]')
    with pytest.raises(ConfigError) as caught:
        EndedSessions(tmp_path).ended("x")
    assert "is not a list of ended sessions" in caught.value.detail


def test_a_witness_counts_once_towards_the_shown_quorum() -> None:
    """Two verified lines of one witness (a line repeated, or its Ed25519 and ML-DSA-44 keys)
    are one witness: the dashboard said the quorum of 2 was met."""
    rows = (
        CosignatureRow("w1.example", "01020304", True, 1),
        CosignatureRow("w1.example", "01020304", True, 1),
        CosignatureRow("w1.example", "0a0b0c0d", True, 2),
        CosignatureRow("w2.example", "05060708", False, None, "bad-signature"),
    )
    view = WitnessedView(3, "00" * 32, 2, 3, rows)
    assert view.verified == 1
    assert not view.meets_quorum
