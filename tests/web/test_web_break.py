"""The dashboard attacked by a hostile party with a foothold in what it reads: damaged files
of its own and of its sources, hostile strings, odd requests. Each test failed before the
defect it names was fixed."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from tests.web.conftest import log_in, login_token
from tests.web.web_world import OPERATOR, PASSWORD, SEEN, WebWorld

from ironroot.cose import create_statement
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import StorageError
from ironroot.fleet import Fleet, quarantine
from ironroot.http import ServerLimits, ServerThread
from ironroot.monitor import MonitorStore
from ironroot.transparency import ServiceThread, TransparencyClient, TransparencyService
from ironroot.web import Dashboard, LoginThrottle, create_dashboard_app, dashboard_hosts
from ironroot.web._svg import ChainBox, bar_chart, bucket_times, chain_svg
from serving import server_thread

pytestmark = pytest.mark.integration

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@pytest.fixture
def own_dir(world: WebWorld, tmp_path: Path) -> Path:
    """A dashboard directory with the world's operator and nothing else to break."""
    state = tmp_path / "dashboard"
    state.mkdir(mode=0o700)
    for name in ("operators.json", "session.key"):
        shutil.copy2(world.data / "dashboard" / name, state / name)
    return tmp_path


def _assert_unreadable_page(answer: httpx.Response, hidden: Path) -> None:
    assert answer.status_code == 503
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["content-security-policy"] == CSP
    assert int(answer.headers["retry-after"]) >= 1
    assert "cannot be read now" in answer.text
    assert str(hidden) not in answer.text  # an anonymous visitor: no file names


def test_a_damaged_operators_file_is_a_503_page_at_the_login(own_dir: Path) -> None:
    # was: GET /login raised StorageError out of the handler, Starlette's bare "Internal
    # Server Error" (500, text/plain, no security headers) and a traceback in the log
    (own_dir / "dashboard" / "operators.json").write_bytes(b"{")
    dashboard = Dashboard.open(own_dir, clock=lambda: SEEN)
    with (
        ServerThread(create_dashboard_app(dashboard)) as server,
        httpx.Client(base_url=server.url) as anon,
    ):
        _assert_unreadable_page(anon.get("/login"), own_dir)


def test_an_operators_file_damaged_between_form_and_login_is_a_503_not_a_failure(
    own_dir: Path,
) -> None:
    # was: the StorageError of the damaged file counted as a wrong password (a throttle
    # failure), then the form shown again raised it once more: a bare 500
    dashboard = Dashboard.open(own_dir, clock=lambda: SEEN)
    dashboard.throttle = LoginThrottle(1, 60, clock=lambda: 0.0)  # one failure is the limit
    good = (own_dir / "dashboard" / "operators.json").read_bytes()
    with (
        ServerThread(create_dashboard_app(dashboard)) as server,
        httpx.Client(base_url=server.url) as anon,
    ):
        token = login_token(anon.get("/login").text)
        (own_dir / "dashboard" / "operators.json").write_bytes(b"[not json")
        answer = anon.post("/login", data={"user": OPERATOR, "password": PASSWORD, "csrf": token})
        _assert_unreadable_page(answer, own_dir)
        assert "ironroot_session" not in answer.cookies
        (own_dir / "dashboard" / "operators.json").write_bytes(good)
        assert log_in(anon).status_code == 303  # not throttled: no guess was made


_OPERATORS_UNREADABLE = "the operators file of this dashboard cannot be read now"


@pytest.mark.parametrize("kind", ["directory", "dangling link"])
def test_an_operators_file_that_is_no_file_is_a_503_not_an_empty_set_of_operators(
    own_dir: Path, kind: str
) -> None:
    # was: taken for no file at all, the login form said "No operator is set up yet" (200)
    # and every login was a wrong password (401, counted against the client)
    path = own_dir / "dashboard" / "operators.json"
    path.unlink()
    if kind == "directory":
        path.mkdir()
    else:
        path.symlink_to(own_dir / "nowhere.json")
    dashboard = Dashboard.open(own_dir, clock=lambda: SEEN)
    dashboard.throttle = LoginThrottle(1, 60, clock=lambda: 0.0)  # one failure is the limit
    with pytest.raises(StorageError) as caught:
        dashboard.operators.names  # noqa: B018
    assert caught.value.code == "operators-unreadable"
    assert str(path) in caught.value.detail
    with (
        ServerThread(create_dashboard_app(dashboard)) as server,
        httpx.Client(base_url=server.url) as anon,
    ):
        form = anon.get("/login")
        _assert_unreadable_page(form, own_dir)
        assert _OPERATORS_UNREADABLE in form.text
        assert "No operator is set up yet" not in form.text
        token = dashboard.session_keys.csrf("nonce", form="login")  # the form has none
        for _ in range(2):  # not counted as failures: the second is no 429
            answer = anon.post(
                "/login",
                data={"user": OPERATOR, "password": PASSWORD, "csrf": token},
                headers={"cookie": "ironroot_login=nonce"},
            )
            _assert_unreadable_page(answer, own_dir)
            assert _OPERATORS_UNREADABLE in answer.text


# --- text that lies to the eye ----------------------------------------------------------------

WRONG = "not the password at all"
SPOOF = "ok \u202egnissap\u202c node-0001\u200b \x1b[2J done"


def test_a_bidi_override_in_a_filter_value_is_shown_not_obeyed(client: httpx.Client) -> None:
    # was: echoed as it was, reversing the rest of the field on the page
    page = client.get("/fleet", params={"q": SPOOF}).text
    assert "ok [U+202E]gnissap[U+202C] node-0001[U+200B] [U+001B][2J done" in page
    for hidden in ("\u202e", "\u202c", "\u200b", "\x1b"):
        assert hidden not in page


def test_a_quarantine_reason_that_reorders_text_is_shown_as_it_is(
    world: WebWorld, tmp_path: Path
) -> None:
    # was: the reason's override and control characters went into the fleet table, the
    # node's banner and its chain of trust as they were
    fleet_dir = tmp_path / "fleet"
    shutil.copytree(world.data / "fleet", fleet_dir)
    (tmp_path / "dashboard.toml").write_text('[sources]\nfleet = "fleet"\n')
    own = tmp_path / "dashboard"
    own.mkdir(mode=0o700)
    for name in ("operators.json", "session.key"):
        shutil.copy2(world.data / "dashboard" / name, own / name)
    quarantine(Fleet.open(fleet_dir), "node-0001", SPOOF, now=SEEN)
    dashboard = Dashboard.open(tmp_path, clock=lambda: SEEN)
    with (
        ServerThread(create_dashboard_app(dashboard)) as server,
        httpx.Client(base_url=server.url) as operator,
    ):
        assert log_in(operator).status_code == 303
        for path in ("/fleet", "/fleet/nodes/node-0001", "/alerts"):
            page = operator.get(path).text
            assert "gnissap[U+202C] node-0001[U+200B] [U+001B][2J" in page, path
            for hidden in ("\u202e", "\u202c", "\u200b", "\x1b"):
                assert hidden not in page, (path, hidden)


def test_the_chain_of_trust_draws_hidden_characters_as_code_points() -> None:
    # was: drawn as they were, inside the SVG's <text> (and its <title>)
    svg = chain_svg(
        [ChainBox("fuses", "Fuses", "fail", SPOOF, "lifecycle\u202e")], title="node\u2066x"
    )
    assert "ok [U+202E]gnissap[U+202C] node-0001[U+200B] [U+001B][2J" in svg
    assert "failed: lifecycle[U+202E]" in svg
    assert "node[U+2066]x" in svg
    for hidden in ("\u202e", "\u202c", "\u200b", "\x1b", "\u2066"):
        assert hidden not in svg


# --- times no calendar holds --------------------------------------------------------------------


def test_a_statement_with_an_iat_no_calendar_holds_is_a_page_not_a_500(tmp_path: Path) -> None:
    # was: anyone a log admits registers iat = 2**62 (or -2**62), and the public statement
    # page failed on datetime.fromtimestamp: a 500 for every reader
    log = tmp_path / "pub-log"
    (log / "keys").mkdir(parents=True)
    issuer = PrivateKey.generate(Algorithm.ES384)
    (log / "issuer.pub.pem").write_bytes(issuer.public_key.to_pem())
    (log / "ironroot.toml").write_text(
        '[transparency]\nservice_issuer = "https://pub.example"\nbatch_linger = 0.0\n'
        '[[transparency.issuers]]\niss = "https://anyone.example"\nkey = "issuer.pub.pem"\n'
        '[log]\norigin = "pub.example/log"\n'
    )
    entries = []
    with (
        TransparencyService.open(log) as service,
        ServiceThread(service) as running,
        TransparencyClient(running.url) as writer,
    ):
        for iat in (2**62, -(2**62)):
            statement = create_statement(
                issuer, b"{}", iss="https://anyone.example", sub="x", iat=iat
            )
            entries.append((iat, writer.register(statement).entry_id))
    dashboard = Dashboard.open(tmp_path, clock=lambda: SEEN)
    with (
        ServerThread(create_dashboard_app(dashboard)) as server,
        httpx.Client(base_url=server.url) as anon,
    ):
        assert anon.get("/log/pub-log").status_code == 200
        for iat, entry in entries:
            page = anon.get(f"/log/pub-log/entries/{entry}")
            assert page.status_code == 200
            assert f"{iat} (not a time)" in page.text


def test_a_split_view_found_at_a_time_no_calendar_holds_is_still_an_alert(
    own_dir: Path,
) -> None:
    # was: the monitor's fork row with at = 2**62 made /alerts and / a 500
    store = MonitorStore(own_dir / "monitor.db")
    try:
        store.add_fork("far.example", b"not a proof", 2**62)
    finally:
        store.close()
    dashboard = Dashboard.open(own_dir, clock=lambda: SEEN)
    with (
        ServerThread(create_dashboard_app(dashboard)) as server,
        httpx.Client(base_url=server.url) as operator,
    ):
        assert log_in(operator).status_code == 303
        for path in ("/alerts", "/"):
            page = operator.get(path)
            assert page.status_code == 200, path
            assert "split view of far.example" in page.text
        assert f"{2**62} (not a time)" in operator.get("/alerts").text


def test_a_monitor_state_rolled_back_is_an_alert(own_dir: Path) -> None:
    # was: a monitor.db restored from an older copy showed no alert (nor any fork it lost)
    from ironroot.log import Checkpoint, NoteSigner, sign_checkpoint
    from ironroot.merkle import CompactRange, leaf_hash
    from ironroot.monitor import LogState

    signer = NoteSigner("log.example/m", PrivateKey.generate(Algorithm.ED25519))
    compact = CompactRange()
    path = own_dir / "monitor.db"
    store = MonitorStore(path)
    try:
        state = None
        for size, entry in enumerate((b"a", b"b"), start=1):
            compact.append(leaf_hash(entry))
            note = sign_checkpoint(Checkpoint("log.example/m", size, compact.root()), [signer])
            new = LogState("log.example/m", size, compact.root(), note, compact.hashes, 1)
            store.advance(new, expected=state)
            state = new
            if size == 1:
                store.close()
                shutil.copy(path, own_dir / "backup.db")
                store = MonitorStore(path)
    finally:
        store.close()
    shutil.copy(own_dir / "backup.db", path)
    dashboard = Dashboard.open(own_dir, clock=lambda: SEEN)
    with (
        ServerThread(create_dashboard_app(dashboard)) as server,
        httpx.Client(base_url=server.url) as operator,
    ):
        assert log_in(operator).status_code == 303
        page = operator.get("/alerts")
        assert page.status_code == 200
        assert "at size 1, but size 2 was verified" in page.text


def test_the_overview_s_latest_alerts_are_the_newest(own_dir: Path) -> None:
    # was: the alerts were sorted by severity, then by the text of their time, oldest first,
    # and the overview shows the first eight: its "latest alerts" were the eight oldest, and
    # a split view proved today was not among them once eight older ones were kept
    from ironroot.log import Checkpoint, NoteSigner, sign_checkpoint
    from ironroot.witness import ForkProof

    start = int(SEEN.timestamp()) - 10 * 3600
    store = MonitorStore(own_dir / "monitor.db")
    try:
        for n in range(10):
            origin = f"split-{n}.example"
            signer = NoteSigner(origin, PrivateKey.generate(Algorithm.ED25519))
            first = sign_checkpoint(Checkpoint(origin, 7, bytes(32)), [signer])
            second = sign_checkpoint(Checkpoint(origin, 7, bytes([1]) * 32), [signer])
            at = start + n * 3600
            store.add_fork(origin, ForkProof(origin, first, second, (), "m", at).encode(), at)
    finally:
        store.close()
    dashboard = Dashboard.open(own_dir, clock=lambda: SEEN)
    with (
        ServerThread(create_dashboard_app(dashboard)) as server,
        httpx.Client(base_url=server.url) as operator,
    ):
        assert log_in(operator).status_code == 303
        overview = operator.get("/")
        assert overview.status_code == 200
        shown = re.findall(r"split view of (split-\d)\.example", overview.text)
        assert shown == [f"split-{n}" for n in range(9, 1, -1)]
        every = re.findall(r"split view of (split-\d)\.example", operator.get("/alerts").text)
        assert every == [f"split-{n}" for n in range(9, -1, -1)]  # newest first there too


def test_bars_over_a_span_of_centuries_stay_48_or_so() -> None:
    # was: 30-day buckets whatever the span: 2**62 seconds asked for ~10**12 of them
    bars = bucket_times([(0, "entries", 1), (2**62, "entries", 2)], ["entries"])
    assert len(bars) <= 49
    assert sum(bar.total for bar in bars) == 3
    assert "(not a time)" in bar_chart(bars, {"entries": "#000"}, title="far")


# --- a fleet registry damaged row by row ---------------------------------------------------------


def _fleet_copy(world: WebWorld, root: Path) -> Path:
    """``root`` as a dashboard of a copy of the world's fleet, with the world's operator."""
    shutil.copytree(world.data / "fleet", root / "fleet")
    (root / "dashboard.toml").write_text('[sources]\nfleet = "fleet"\n')
    own = root / "dashboard"
    own.mkdir(mode=0o700)
    for name in ("operators.json", "session.key"):
        shutil.copy2(world.data / "dashboard" / name, own / name)
    return root / "fleet" / "fleet.db"


def test_a_run_of_refused_admissions_is_shown_once_with_its_count(
    world: WebWorld, tmp_path: Path
) -> None:
    # was: each refusal an event of its own (a hostile client's thousands filled the log);
    # now one event with a count, which the alerts, the node page and the chart show
    _fleet_copy(world, tmp_path)
    fleet = Fleet.open(tmp_path / "fleet")
    with fleet.transaction():
        for i in range(1500):
            fleet.record_repeated(
                "node-0001",
                "admission-refused",
                {"ear_id": f"ear-{i}", "status": "contraindicated", "error": "nonce-mismatch"},
                same="error",
                now=SEEN + dt.timedelta(seconds=i),
                window=3600,
                keep=100,
            )
    dashboard = Dashboard.open(tmp_path, clock=lambda: SEEN + dt.timedelta(hours=1))
    refused = [(at, n) for at, ok, n in dashboard.fleet.attestations() if not ok]
    assert (fleet.events(node="node-0001")[-1].at, 1500) in refused
    with (
        ServerThread(create_dashboard_app(dashboard)) as server,
        httpx.Client(base_url=server.url) as operator,
    ):
        assert log_in(operator).status_code == 303
        alerts = operator.get("/alerts").text
        assert alerts.count("evidence refused (nonce-mismatch), 1500 times since") == 1
        node = operator.get("/fleet/nodes/node-0001").text
        assert node.count("ear-1499") == 1
        assert "ear-1498" not in node
        assert operator.get("/fleet").status_code == 200


@pytest.mark.parametrize("detail", ["not json", "[1, 2]", '"text"'])
def test_a_fleet_event_whose_detail_is_not_an_object_is_a_503_page(
    world: WebWorld, tmp_path: Path, detail: str
) -> None:
    # was: json.loads raised out of the registry (or a list reached the template's
    # .items()): a 500 on the overview, the fleet, the node pages and the alerts
    database = _fleet_copy(world, tmp_path)
    with contextlib.closing(sqlite3.connect(database)) as db, db:
        seq = db.execute("SELECT MAX(seq) FROM events WHERE node = 'node-0005'").fetchone()[0]
        db.execute("UPDATE events SET detail = ? WHERE seq = ?", (detail, seq))
    dashboard = Dashboard.open(tmp_path, clock=lambda: SEEN)
    with (
        ServerThread(create_dashboard_app(dashboard)) as server,
        httpx.Client(base_url=server.url) as operator,
    ):
        assert log_in(operator).status_code == 303
        for path in ("/", "/fleet", "/fleet/nodes/node-0005", "/alerts"):
            page = operator.get(path)
            assert page.status_code == 503, path
            assert f"event #{seq} is damaged" in page.text


@pytest.mark.parametrize("at", ["0001-01-01T00:00:00", "0001-01-01"])
def test_a_fleet_event_at_a_time_without_an_offset_is_a_time_in_utc_not_a_500(
    world: WebWorld, tmp_path: Path, at: str
) -> None:
    # was: read as the server's local time, and in the year 1 that has no POSIX time
    # (ValueError: year 0 is out of range): a 500 on the fleet page's chart, and on the
    # alerts that are ordered by time
    database = _fleet_copy(world, tmp_path)
    with contextlib.closing(sqlite3.connect(database)) as db, db:
        for kind in ("admitted", "admission-refused"):
            db.execute(
                "INSERT INTO events (at, node, kind, detail) VALUES (?, 'node-0001', ?, ?)",
                (at, kind, '{"error": "nonce-mismatch"}'),
            )
    dashboard = Dashboard.open(tmp_path, clock=lambda: SEEN)
    with (
        ServerThread(create_dashboard_app(dashboard)) as server,
        httpx.Client(base_url=server.url) as operator,
    ):
        assert log_in(operator).status_code == 303
        for path in ("/", "/fleet", "/fleet/nodes/node-0001", "/alerts"):
            page = operator.get(path)
            assert page.status_code == 200, path
        assert f'evidence refused (nonce-mismatch)</a></td><td class="nowrap">{at}<' in page.text


def test_the_registry_refuses_a_damaged_event_with_a_storage_error(
    world: WebWorld, tmp_path: Path
) -> None:
    database = _fleet_copy(world, tmp_path)
    with contextlib.closing(sqlite3.connect(database)) as db, db:
        db.execute("UPDATE events SET kind = X'6b' WHERE seq = 1")
    with pytest.raises(StorageError, match="event #1 is damaged"):
        Fleet.open(tmp_path / "fleet").events(limit=1)


def test_an_ear_kept_as_text_is_judged_not_a_500(world: WebWorld, tmp_path: Path) -> None:
    # was: bytes(str) raised TypeError: a 500 on the node's page
    database = _fleet_copy(world, tmp_path)
    with contextlib.closing(sqlite3.connect(database)) as db, db:
        db.execute("UPDATE ears SET token = 'not.a.jwt'")
    dashboard = Dashboard.open(tmp_path, clock=lambda: SEEN)
    with (
        ServerThread(create_dashboard_app(dashboard)) as server,
        httpx.Client(base_url=server.url) as operator,
    ):
        assert log_in(operator).status_code == 303
        page = operator.get("/fleet/nodes/node-0001")
        assert page.status_code == 200
        assert 'id="link-ear" data-status="unknown"' in page.text
        assert "malformed: not a compact JWS" in page.text


def test_a_log_entry_stored_as_text_is_a_503_page(world: WebWorld, tmp_path: Path) -> None:
    # was: bytes(str) in the log store raised TypeError: a 500 on the log's public pages
    shutil.copytree(world.data / "ops-log", tmp_path / "ops-log")
    with contextlib.closing(sqlite3.connect(tmp_path / "ops-log" / "log.sqlite3")) as db, db:
        db.execute("UPDATE entries SET entry = 'text'")
    dashboard = Dashboard.open(tmp_path, clock=lambda: SEEN)
    with (
        ServerThread(create_dashboard_app(dashboard)) as server,
        httpx.Client(base_url=server.url) as anon,
    ):
        _assert_unreadable_page(anon.get("/log/ops-log"), tmp_path)


# --- very long strings ----------------------------------------------------------------------------


def test_a_reason_without_a_space_does_not_widen_the_page(
    world: WebWorld, tmp_path: Path, browser: Any
) -> None:
    # was: 3,000 letters without a break in a quarantine reason made the node's page
    # about 20,000 pixels wide (the banner would not wrap)
    _fleet_copy(world, tmp_path)
    quarantine(Fleet.open(tmp_path / "fleet"), "node-0001", "A" * 3000, now=SEEN)
    dashboard = Dashboard.open(tmp_path, clock=lambda: SEEN)
    with ServerThread(create_dashboard_app(dashboard)) as server:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        try:
            page.goto(f"{server.url}/login?next=/fleet/nodes/node-0001")
            page.fill("#user", OPERATOR)
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url("**/fleet/nodes/node-0001")
            for path in ("/fleet/nodes/node-0001", "/fleet", "/alerts"):
                page.goto(server.url + path, wait_until="load")
                assert page.evaluate("document.documentElement.scrollWidth") <= 1280, path
        finally:
            page.close()


# --- brute force ---------------------------------------------------------------------------------


def test_failed_logins_from_one_ipv6_64_are_counted_together(own_dir: Path) -> None:
    # was: counted per address, and a host holds a whole /64: 2**64 addresses, each with
    # max_failures guesses. Behind a trusted proxy, X-Forwarded-For names the client.
    dashboard = Dashboard.open(own_dir, clock=lambda: SEEN)
    dashboard.throttle = LoginThrottle(3, 60, clock=lambda: 0.0)
    limits = ServerLimits(trusted_proxies=("127.0.0.1",))
    with (
        ServerThread(create_dashboard_app(dashboard), limits=limits) as server,
        httpx.Client(base_url=server.url) as anon,
    ):

        def attempt(client: str, password: str = WRONG) -> int:
            token = login_token(anon.get("/login").text)
            return anon.post(
                "/login",
                data={"user": OPERATOR, "password": password, "csrf": token},
                headers={"x-forwarded-for": client},
            ).status_code

        assert [attempt(f"2001:db8:0:7::{n}") for n in range(1, 5)] == [401, 401, 401, 429]
        assert attempt("2001:db8:0:7:ffff::1", PASSWORD) == 429  # the same /64
        assert attempt("2001:db8:0:8::1", PASSWORD) == 303  # another /64


def _guesser(anon: httpx.Client) -> Any:
    def attempt(client: str, password: str = WRONG, user: str = OPERATOR) -> int:
        anon.cookies.clear()  # each a client of its own, none signed in
        token = login_token(anon.get("/login").text)
        return anon.post(
            "/login",
            data={"user": user, "password": password, "csrf": token},
            headers={"x-forwarded-for": client},
        ).status_code

    return attempt


def test_one_address_guessing_cannot_lock_the_operator_out_of_another(own_dir: Path) -> None:
    # was: five wrong passwords locked the account for five minutes, and one address may make
    # five guesses each five minutes: one attacker kept the operator out for ever
    dashboard = Dashboard.open(own_dir, clock=lambda: SEEN)
    dashboard.throttle = LoginThrottle(5, 300, clock=lambda: 0.0)
    limits = ServerLimits(trusted_proxies=("127.0.0.1",))
    with (
        ServerThread(create_dashboard_app(dashboard), limits=limits) as server,
        httpx.Client(base_url=server.url) as anon,
    ):
        attempt = _guesser(anon)
        assert [attempt("203.0.113.9") for _ in range(6)] == [401] * 5 + [429]
        assert attempt("198.51.100.7", PASSWORD) == 303  # the operator, elsewhere
        assert attempt("203.0.113.9", PASSWORD) == 429  # the attacker is still throttled


def test_a_guessing_attack_from_many_addresses_is_bounded_per_account(own_dir: Path) -> None:
    dashboard = Dashboard.open(own_dir, clock=lambda: SEEN)
    ticks = [0.0]
    dashboard.throttle = LoginThrottle(5, 300, clock=lambda: ticks[0])
    limits = ServerLimits(trusted_proxies=("127.0.0.1",))
    with (
        ServerThread(create_dashboard_app(dashboard), limits=limits) as server,
        httpx.Client(base_url=server.url) as anon,
    ):
        attempt = _guesser(anon)
        answers = [attempt(f"203.0.113.{n // 5}") for n in range(21)]
        assert answers == [401] * 20 + [429]  # 4 x max_failures on the account, then no guess
        assert attempt("203.0.113.200", PASSWORD) == 429  # nor from a fresh address
        assert attempt("203.0.113.200", "another-wrong-guess") == 429
        ticks[0] = 301.0  # the window passed
        assert attempt("198.51.100.7", PASSWORD) == 303


def test_failures_for_other_names_do_not_make_the_throttle_forget_a_held_account(
    own_dir: Path,
) -> None:
    # was: the names counted were forgotten oldest first past a bound (10,000 each, as the
    # addresses): an attacker with enough addresses (2,000 at 5 failures each; an IPv6 /48
    # holds 65,536 /64s) typed that many other names after the account's 20 failures, and
    # the account, forgotten, had 20 guesses again at once, as often as it liked
    dashboard = Dashboard.open(own_dir, clock=lambda: SEEN)
    dashboard.throttle = LoginThrottle(5, 300, clock=lambda: 0.0, max_clients=30)
    limits = ServerLimits(trusted_proxies=("127.0.0.1",))
    with (
        ServerThread(create_dashboard_app(dashboard), limits=limits) as server,
        httpx.Client(base_url=server.url) as anon,
    ):
        attempt = _guesser(anon)
        answers = [attempt(f"203.0.113.{n // 5}") for n in range(21)]
        assert answers == [401] * 20 + [429]
        others = [attempt(f"198.51.100.{n // 5}", user=f"nobody-{n}") for n in range(35)]
        assert others == [401] * 35  # more names than the throttle keeps
        assert attempt("192.0.2.1", PASSWORD) == 429  # the account is still held back
        assert attempt("192.0.2.1", "another-wrong-guess") == 429


# --- what the server refuses before the dashboard sees it ----------------------------------------


def test_a_request_head_too_large_is_refused_with_nosniff_and_no_framing(
    anon: httpx.Client,
) -> None:
    # was: the server's own 431 (and 400, 413 …) had only content-type, length and close
    answer = anon.get("/fleet", headers={"x-filler": "x" * 100_000})
    assert answer.status_code == 431
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert answer.headers["cache-control"] == "no-store"


def test_a_damaged_verifier_key_is_the_server_s_503_not_the_reader_s_400(
    world: WebWorld, tmp_path: Path
) -> None:
    # was: MalformedInput out of PublicKey.from_pem: "400 Bad Request" for a file of the fleet
    _fleet_copy(world, tmp_path)
    (tmp_path / "fleet" / "admission" / "verifier.pub.pem").write_text("not a key\n")
    dashboard = Dashboard.open(tmp_path, clock=lambda: SEEN)
    with (
        ServerThread(create_dashboard_app(dashboard)) as server,
        httpx.Client(base_url=server.url) as operator,
    ):
        assert log_in(operator).status_code == 303
        page = operator.get("/fleet/nodes/node-0001")
        assert page.status_code == 503
        assert "is not the verifier&#39;s public key" in page.text


def test_a_fleet_file_naming_a_class_by_a_path_is_a_503_page(
    world: WebWorld, tmp_path: Path
) -> None:
    # was: fleet.json's class names were not checked to be names: "../../x" was looked up
    # as fleet/class/../../x/class.json, outside the fleet, and its absence was a 404
    _fleet_copy(world, tmp_path)
    (tmp_path / "fleet" / "fleet.json").write_text('{"format": 1, "classes": ["../../x"]}')
    dashboard = Dashboard.open(tmp_path, clock=lambda: SEEN)
    with (
        ServerThread(create_dashboard_app(dashboard)) as server,
        httpx.Client(base_url=server.url) as operator,
    ):
        assert log_in(operator).status_code == 303
        for path in ("/fleet", "/reviews", "/fleet/nodes/node-0001"):
            page = operator.get(path)
            assert page.status_code == 503, path
            assert "that is not a class name" in page.text


def test_a_registered_node_id_that_is_a_path_is_a_storage_error(
    world: WebWorld, tmp_path: Path
) -> None:
    # was: a damaged registry's ".." opened fleet/nodes/.. (the fleet's own directory) as
    # a node's platform
    database = _fleet_copy(world, tmp_path)
    with contextlib.closing(sqlite3.connect(database)) as db, db:
        db.execute(
            "INSERT INTO nodes (id, class, status, since) VALUES ('..', 'node-7', 'admitted', "
            "'2026-06-01T12:00:00Z')"
        )
    fleet = Fleet.open(tmp_path / "fleet")
    with pytest.raises(StorageError, match="that is not a node id"):
        fleet.node("..")
    with pytest.raises(StorageError, match="that is not a node id"):
        fleet.rot("..")


def test_an_unreadable_list_of_ended_sessions_is_a_503_page_not_a_login_loop(
    own_dir: Path,
) -> None:
    # was: every session was refused (rightly: which ones ended cannot be read), so each page
    # sent the operator back to the login, which "succeeded" and sent them back again, with
    # nothing on the page to say why
    dashboard = Dashboard.open(own_dir, clock=lambda: SEEN)
    with (
        ServerThread(create_dashboard_app(dashboard)) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        assert log_in(client).status_code == 303
        assert client.get("/alerts").status_code == 200
        (own_dir / "dashboard" / "ended-sessions.json").write_text('["not", "a", "map"]')
        _assert_unreadable_page(client.get("/alerts"), own_dir)


# --- DNS rebinding --------------------------------------------------------------------------------


def _misdirected(answer: httpx.Response) -> None:
    assert answer.status_code == 421
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "misdirected"
    assert "set-cookie" not in answer.headers


def test_a_rebound_host_name_is_refused_before_any_route(own_dir: Path) -> None:
    # was: Host: rebound.evil.example with a matching Origin logged in (303 and a session
    # cookie): a DNS-rebinding page could read the dashboard and guess from the victim's address
    dashboard = Dashboard.open(own_dir, clock=lambda: SEEN)

    def app(port: int) -> Starlette:
        return create_dashboard_app(dashboard, allowed_hosts=dashboard_hosts("127.0.0.1", port, ()))

    with (
        server_thread(app) as server,
        httpx.Client(base_url=server.url, headers={"accept": "application/json"}) as anon,
    ):
        port = int(server.url.rpartition(":")[2])
        evil = f"rebound.evil.example:{port}"
        token = login_token(anon.get("/login").text)
        _misdirected(
            anon.post(
                "/login",
                data={"user": OPERATOR, "password": PASSWORD, "csrf": token},
                headers={"host": evil, "origin": f"http://{evil}"},
            )
        )
        for path in ("/log", "/static/dashboard.css", "/login", "/health", "/nothing"):
            _misdirected(anon.get(path, headers={"host": evil}))
        for host in ("localhost", f"localhost:{port + 1}", f"127.0.0.2:{port}", "[::1]"):
            _misdirected(anon.get("/log", headers={"host": host}))
        for host in (
            f"localhost:{port}",
            f"LocalHost:{port}",
            f"127.0.0.1:{port}",
            f"[::1]:{port}",
        ):
            assert anon.get("/log", headers={"host": host}).status_code == 200
        assert log_in(anon).status_code == 303  # as 127.0.0.1:port


def test_behind_a_reverse_proxy_the_dashboard_answers_the_names_given(own_dir: Path) -> None:
    dashboard = Dashboard.open(own_dir, clock=lambda: SEEN)

    def app(port: int) -> Starlette:
        hosts = dashboard_hosts("127.0.0.1", port, ("dash.example",))
        return create_dashboard_app(dashboard, allowed_hosts=hosts)

    with (
        server_thread(app) as server,
        httpx.Client(
            base_url=server.url, headers={"host": "dash.example", "accept": "application/json"}
        ) as proxied,
    ):
        form = proxied.get("/login")
        assert form.status_code == 200
        answer = proxied.post(
            "/login",
            data={"user": OPERATOR, "password": PASSWORD, "csrf": login_token(form.text)},
            headers={"origin": "http://dash.example"},
        )
        assert answer.status_code == 303
        _misdirected(proxied.get("/log", headers={"host": "dash.example.evil.example"}))


def test_an_ipv6_literal_given_without_a_port_answers_on_any_port(own_dir: Path) -> None:
    # was: a name given without a port answered on any port, but not an IPv6 literal
    # (--allowed-host [2001:db8::5]): its clients, who send it with the port, all got 421
    dashboard = Dashboard.open(own_dir, clock=lambda: SEEN)

    def app(port: int) -> Starlette:
        names = ("[2001:db8::5]", "[2001:db8::6]:443")
        return create_dashboard_app(dashboard, allowed_hosts=dashboard_hosts("::", port, names))

    with (
        server_thread(app) as server,
        httpx.Client(base_url=server.url, headers={"accept": "application/json"}) as anon,
    ):
        for host in (
            "[2001:db8::5]",
            "[2001:db8::5]:8480",
            "[2001:DB8::5]:443",
            "[2001:db8::6]:443",
        ):
            assert anon.get("/log", headers={"host": host}).status_code == 200, host
        for host in ("[2001:db8::6]:8480", "[2001:db8::6]", "[2001:db8::5]:", "[2001:db8::5]x:1"):
            _misdirected(anon.get("/log", headers={"host": host}))


@pytest.mark.parametrize(
    ("bound", "names", "expected"),
    [
        ("127.0.0.1", (), {"localhost:8480", "127.0.0.1:8480", "[::1]:8480"}),
        ("::1", (), {"localhost:8480", "127.0.0.1:8480", "[::1]:8480"}),
        (
            "localhost",
            ("Dash.Example",),
            {"localhost:8480", "127.0.0.1:8480", "[::1]:8480", "dash.example"},
        ),
        ("192.0.2.10", (), {"192.0.2.10:8480"}),
        ("2001:db8::1", ("dash.example:443",), {"[2001:db8::1]:8480", "dash.example:443"}),
        ("0.0.0.0", ("dash.example",), {"dash.example"}),
    ],
)
def test_the_hosts_a_dashboard_answers(
    bound: str, names: tuple[str, ...], expected: set[str]
) -> None:
    assert dashboard_hosts(bound, 8480, names) == frozenset(expected)
