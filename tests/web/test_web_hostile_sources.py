"""The dashboard fed by hostile outside parties through the project's own APIs: a
key-release client that asks again and again (every refusal is an audit record the keys page
lists), and hostile text in every field a source supplies. Each test fails if its defence
goes."""

from __future__ import annotations

import json
import re
import shutil
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.hsm_devices import self_signed_device
from tests.web.conftest import log_in
from tests.web.web_world import OPERATOR, PASSWORD, WebWorld

from ironroot._text import shown
from ironroot.audit import AuditReport, AuditStep, render_html
from ironroot.cose import create_statement
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import StaleNonce, VerificationFailed
from ironroot.hsm import DirectoryStorage, Hsm, HsmConfig, KeyAttributes, KeyType, Role
from ironroot.http import ServerThread
from ironroot.rot import MemoryCounter
from ironroot.safe import sfr_statement, sign_report
from ironroot.transparency import ServiceThread, TransparencyClient, TransparencyService
from ironroot.web import Dashboard, create_dashboard_app
from ironroot.web._app import ENTRY_TEXT, _environment
from ironroot.web._dashboard import PAGE_SIZE, RELEASES_SHOWN, REVIEWS_SHOWN
from ironroot.web._text import visible

pytestmark = pytest.mark.integration

_POLICY = {
    "version": "1.0.0",
    "anyOf": [{"authority": "verifier", "allOf": [{"claim": "ear.status", "equals": "affirming"}]}],
}


def _asked_again_and_again(directory: Path, asks: int) -> None:
    """An HSM whose one releasable key a client asked for ``asks`` times with a nonce the
    HSM never issued: each ask is refused (``StaleNonce``) and audited."""
    storage = DirectoryStorage(directory, counter=MemoryCounter())
    config = HsmConfig(scrypt_n=2**10, audit_group_commit=64)
    hsm = Hsm.initialize(
        storage,
        bytes(range(48)),
        officer="officer",
        credential=b"officer-credential",
        device=self_signed_device(),
        config=config,
    )
    try:
        officer = hsm.login("officer", b"officer-credential")
        hsm.add_identity(officer, "keyrelease", Role.USER, b"keyrelease-credential")
        handle = hsm.generate(
            officer,
            KeyType.AES_256,
            KeyAttributes.of(
                ["encrypt", "decrypt"], exportable=True, release_policy=json.dumps(_POLICY)
            ),
        )
        user = hsm.login("keyrelease", b"keyrelease-credential")
        for _ in range(asks):
            with pytest.raises(StaleNonce):
                hsm.release(user, handle, ear=b"not an EAR", nonce=bytes(32), recipient=b"")
    finally:
        hsm.close()
        storage.close()


def _own_dir(world: WebWorld, root: Path) -> Path:
    state = root / "dashboard"
    state.mkdir(mode=0o700)
    for name in ("operators.json", "session.key"):
        shutil.copy2(world.data / "dashboard" / name, state / name)
    return root


def test_the_keys_page_lists_the_latest_release_decisions_not_every_one(
    world: WebWorld, tmp_path: Path
) -> None:
    asks = RELEASES_SHOWN + 57
    _asked_again_and_again(tmp_path / "hsm", asks)
    dashboard = Dashboard.open(_own_dir(world, tmp_path))
    with (
        ServerThread(create_dashboard_app(dashboard)) as server,
        httpx.Client(base_url=server.url, timeout=60) as client,
    ):
        assert log_in(client).status_code == 303
        answer = client.get("/keys")
    assert answer.status_code == 200
    table = answer.text.split('<table id="releases">', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr class=\"row-bad\"><td>(\d+)</td>", table)
    assert len(rows) == RELEASES_SHOWN
    numbers = [int(n) for n in rows]
    assert numbers == sorted(numbers, reverse=True)  # the latest, newest first
    assert f"{asks} key release decisions; the latest {RELEASES_SHOWN} are shown" in answer.text
    assert f"refused {asks}" not in table  # the per-key counts still count them all:
    assert f"<td>{asks}</td>" in answer.text.split('<table id="releases">', 1)[0]


HOSTILE = '"><script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
SVG = '<svg onload="window.__pwned=3"><a href="javascript:window.__pwned=4">x</a></svg>'
STYLE = "</td><style>body{display:none}</style>"
BIDI = "https://evil.example/\u202eelpmaxe.rodnev//:sptth"
ISSUER = "https://anyone.example"
# looks like "acme-bmc 2.0" on a page: a soft hyphen inside a word, Unicode tag characters
# (invisible ASCII: "evil"), a variation selector and a Hangul filler
LOOKALIKE = "ac\u00adme-bmc\U000e0065\U000e0076\U000e0069\U000e006c\ufe0f 2.0\u3164"


def _hostile_review(digest: bytes) -> bytes:
    """An OCP SAFE Short Form Report whose every text field a review provider writes is
    hostile."""
    return json.dumps(
        {
            "review_framework_version": "1.1",
            "device": {
                "vendor": HOSTILE,
                "product": SVG,
                "category": "bmc",
                "repo_tag": HOSTILE,
                "fw_version": STYLE,
                "fw_hash_sha2_384": digest.hex(),
            },
            "audit": {
                "srp": BIDI,
                "methodology": "javascript:window.__pwned=5",
                "completion_date": "2026-05-01",
                "report_version": "1.0",
                "scope_number": 1,
                "cvss_version": "3.1",
                "issues": [
                    {
                        "title": HOSTILE,
                        "cvss_score": "9.8",
                        "cvss_vector": "AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                        "cwe": SVG,
                        "description": STYLE + BIDI,
                        "cve": HOSTILE,
                    }
                ],
            },
        }
    ).encode()


def _register(root: Path, make: Callable[[PrivateKey], list[bytes]]) -> list[str]:
    """The entry ids of the statements ``make`` signs with the issuer key of a public log
    ``root/pub-log`` (one issuer, ``ISSUER``, is admitted), registered on it."""
    log = root / "pub-log"
    log.mkdir()
    issuer = PrivateKey.generate(Algorithm.ES384)
    (log / "issuer.pub.pem").write_bytes(issuer.public_key.to_pem())
    (log / "ironroot.toml").write_text(
        '[transparency]\nservice_issuer = "https://pub.example"\nbatch_linger = 0.0\n'
        f'[[transparency.issuers]]\niss = "{ISSUER}"\nkey = "issuer.pub.pem"\n'
        '[log]\norigin = "pub.example/log"\n'
    )
    with (
        TransparencyService.open(log) as service,
        ServiceThread(service) as running,
        TransparencyClient(running.url) as writer,
    ):
        return [writer.register(statement).entry_id for statement in make(issuer)]


@pytest.fixture(scope="module")
def hostile_log(world: WebWorld, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A dashboard directory with one public log on which an admitted issuer registered a
    SAFE review full of hostile fields, signed by a provider nobody trusts."""
    root = _own_dir(world, tmp_path_factory.mktemp("hostile"))
    provider = PrivateKey.generate(Algorithm.ES384)
    report = sign_report(_hostile_review(bytes(48)), provider, "a hostile provider")
    review, *_ = _register(
        root,
        lambda issuer: [
            sfr_statement(report, issuer, iss=ISSUER),
            create_statement(issuer, b"{}", iss=ISSUER, sub=SVG + BIDI),
            create_statement(issuer, b"{}", iss=ISSUER, sub=LOOKALIKE),
        ],
    )
    return root, review


def test_hostile_safe_report_fields_stay_text_in_a_browser(
    browser: object, hostile_log: tuple[Path, str]
) -> None:
    root, review = hostile_log
    dashboard = Dashboard.open(root)
    with ServerThread(create_dashboard_app(dashboard)) as server:
        context = browser.new_context()  # type: ignore[attr-defined]
        page = context.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.goto(f"{server.url}/login?next=/reviews")
        page.fill("#user", OPERATOR)
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_load_state("load")
        for path in ("/reviews", "/log/pub-log", f"/log/pub-log/entries/{review}"):
            page.goto(server.url + path, wait_until="load")
            main = page.inner_text("main")
            assert page.evaluate("typeof window.__pwned") == "undefined", path
            assert page.locator("main img, main script, main style, main svg a").count() == 0
            assert page.is_visible("main"), path
            if path == "/reviews":
                for text in (HOSTILE, SVG, STYLE, "elpmaxe.rodnev"):
                    assert text in main, (path, text)
                assert "https://evil.example/[U+202E]elpmaxe.rodnev//:sptth" in main
            if path == "/log/pub-log":
                assert SVG + "https://evil.example/[U+202E]" in main
        context.close()
    assert problems == []


def test_static_files_health_and_the_metrics_refusal_carry_every_security_header(
    world: WebWorld,
) -> None:
    from tests.web.test_web_attacks import EXPECTED_HEADERS, _assert_security_headers

    with (
        ServerThread(create_dashboard_app(world.dashboard())) as server,
        httpx.Client(base_url=server.url) as anon,
    ):
        answers = {
            path: anon.get(path)
            for path in ("/static/dashboard.css", "/static/favicon.svg", "/health", "/ready")
        }
        answers["/metrics"] = anon.get("/metrics")
        answers["/static/../operators.json"] = anon.get("/static/%2e%2e/operators.json")
        answers["/static/dashboard.css/"] = anon.get("/static/dashboard.css/")
    assert {p: a.status_code for p, a in answers.items()} == {
        "/static/dashboard.css": 200,
        "/static/favicon.svg": 200,
        "/health": 200,
        "/ready": 200,
        "/metrics": 401,
        "/static/../operators.json": 404,
        "/static/dashboard.css/": 404,
    }
    for path, answer in answers.items():
        if path.startswith("/static/") and answer.status_code == 200:
            # a static file may be cached for an hour; every other header is the same
            assert answer.headers["cache-control"] == "max-age=3600"
            answer.headers["cache-control"] = "no-store"
        if path == "/metrics":  # a problem (RFC 9290), not a page: nothing to style or show
            assert answer.headers["content-type"] == "application/concise-problem-details+cbor"
            assert answer.headers["www-authenticate"].startswith("Bearer")
            assert answer.headers["content-security-policy"] == (
                "default-src 'none'; frame-ancestors 'none'"
            )
            answer.headers["content-security-policy"] = EXPECTED_HEADERS["content-security-policy"]
        _assert_security_headers(answer)


def test_the_reviews_page_shows_the_latest_reviews_not_every_one(
    world: WebWorld, tmp_path: Path
) -> None:
    # was: every SAFE report on every log, each verified and rendered with all its
    # findings: an issuer the log admits grew the page with every report it registered
    provider = PrivateKey.generate(Algorithm.ES384)
    reports = REVIEWS_SHOWN + 3
    digests = [i.to_bytes(48, "big") for i in range(1, reports + 1)]
    entries = _register(
        _own_dir(world, tmp_path),
        lambda issuer: [
            sfr_statement(sign_report(_hostile_review(d), provider, "p"), issuer, iss=ISSUER)
            for d in digests
        ],
    )
    dashboard = Dashboard.open(tmp_path)
    with (
        ServerThread(create_dashboard_app(dashboard)) as server,
        httpx.Client(base_url=server.url, timeout=60) as client,
    ):
        assert log_in(client).status_code == 303
        answer = client.get("/reviews")
    assert answer.status_code == 200
    shown = re.findall(r"<h2 class=\"mono\">sha384:([0-9a-f]+)</h2>", answer.text)
    assert sorted(shown) == sorted(d.hex() for d in digests[-REVIEWS_SHOWN:])
    assert all(entry in answer.text for entry in entries[-REVIEWS_SHOWN:])
    assert not any(entry in answer.text for entry in entries[:-REVIEWS_SHOWN])
    assert f"{reports} reports on the logs; the latest {REVIEWS_SHOWN} are shown" in answer.text


# Characters that draw nothing, or draw as a blank, where they stand: every format character
# (Unicode category Cf) but the Arabic and Kaithi number signs, which draw as signs; and the
# invisible ones of other categories (the combining grapheme joiner, Hangul and Khmer fillers,
# Mongolian and other variation selectors).
_SIGNS = {*range(0x0600, 0x0606), 0x06DD, 0x070F, 0x0890, 0x0891, 0x08E2, 0x110BD, 0x110CD}
_BLANKS = [
    0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, *range(0x180B, 0x1810), 0x3164, 0xFFA0,
    *range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0),
]  # fmt: skip


def test_every_character_that_draws_nothing_is_shown_as_its_code_point() -> None:
    # was: only bidi controls, zero-width spaces and controls: a soft hyphen, Unicode tags
    # (an invisible copy of ASCII), variation selectors and fillers stayed hidden in names
    hidden = [
        c for c in range(0x110000) if unicodedata.category(chr(c)) == "Cf" and c not in _SIGNS
    ]
    shown = {chr(c): visible(chr(c)) for c in [*hidden, *_BLANKS]}
    assert {c: t for c, t in shown.items() if t != f"[U+{ord(c):04X}]"} == {}
    assert visible("node-0001 ٠١ é ü 名 🙂") == "node-0001 ٠١ é ü 名 🙂"


# Every code point Debian's chromium 156 draws as nothing between two letters (a scan of
# planes 0-2 and 14, marks and private use aside) that visible() left as it was: the default
# ignorable code points not yet assigned, and the object replacement character.
_UNASSIGNED_IGNORABLE = [
    0x2065, *range(0xFFF0, 0xFFF9), 0xE0000, *range(0xE0002, 0xE0020),
    *range(0xE0080, 0xE0100), *range(0xE01F0, 0xE1000),
]  # fmt: skip


def test_unassigned_default_ignorable_code_points_are_shown_as_code_points() -> None:
    # was: "node-0001" + U+2065 (or U+E0002, U+FFF0, ...) was drawn as "node-0001" and shown as
    # it was: Unicode category Cn (unassigned), so not among the format characters, and a
    # browser draws a default ignorable code point as nothing, assigned or not
    shown = {chr(c): visible(chr(c)) for c in [*_UNASSIGNED_IGNORABLE, 0xFFFC, 0x2800]}
    assert {c: t for c, t in shown.items() if t != f"[U+{ord(c):04X}]"} == {}
    assert visible("node\u2065-0001\U000e0fff") == "node[U+2065]-0001[U+E0FFF]"
    assert visible("\u2800\ufffc") == "[U+2800][U+FFFC]"
    # what draws stays: the replacement character, a Braille dot, an emoji
    assert visible("\ufffd \u2801 \U0001f642") == "\ufffd \u2801 \U0001f642"


def test_a_subject_with_invisible_characters_is_shown_with_them(
    hostile_log: tuple[Path, str],
) -> None:
    root, _ = hostile_log
    with (
        ServerThread(create_dashboard_app(Dashboard.open(root))) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        page = client.get("/log/pub-log")
    assert page.status_code == 200
    assert "ac[U+00AD]me-bmc[U+E0065][U+E0076][U+E0069][U+E006C][U+FE0F] 2.0[U+3164]" in page.text


def test_the_public_entries_page_cuts_long_subjects_the_statement_page_shows_them(
    world: WebWorld, tmp_path: Path
) -> None:
    # was: each row carried the whole subject, a statement's worth (64 KiB) of it, and each
    # hidden character in it grew 3 bytes to 8 when shown: a public page of 50 such rows was
    # 5.5 MB, and cost some 40 times a normal page to build, for anyone who asked
    subject = "\u202e" * 10000 + "A" * 30000 + "-end"
    entries = _register(
        _own_dir(world, tmp_path),
        lambda issuer: [
            create_statement(issuer, b"{}", iss=ISSUER, sub=subject) for _ in range(PAGE_SIZE)
        ],
    )
    with (
        ServerThread(create_dashboard_app(Dashboard.open(tmp_path))) as server,
        httpx.Client(base_url=server.url, timeout=60) as anon,
    ):
        listing = anon.get("/log/pub-log")
        statement = anon.get(f"/log/pub-log/entries/{entries[0]}")
    assert listing.status_code == 200
    cut = f'<td class="sub">{"[U+202E]" * ENTRY_TEXT}…</td>'
    assert listing.text.count(cut) == PAGE_SIZE
    assert "A-end" not in listing.text
    assert len(listing.content) < 150_000
    assert statement.status_code == 200
    assert "[U+202E]" * 10000 + "A" * 30000 + "-end" in statement.text


def test_a_style_injected_into_the_audit_report_is_not_applied(
    browser: Any, tmp_path: Path
) -> None:
    """The HTML page of ``ironroot audit verify``: should a bundle's value ever reach it
    unescaped, a ``<style>`` or a ``style`` attribute could paint a broken chain green, for
    its policy allowed every inline style (``'unsafe-inline'``); now only the page's own, by
    its SHA-256. (The page is forged as an escaping bug would leave it: that the bundle's
    values are escaped, tests/audit/test_audit_hostile.py checks.)"""
    failed = AuditStep("fuses", "Fuses", "failed", (), VerificationFailed("debug unlocked"))
    page = render_html(AuditReport("00" * 48, (failed,), node="node-0001"))
    injected = "<style>.verdict.failed{background:rgb(0,255,0)}</style>"
    forged = page.replace("<h1>", f'{injected}<h1 style="color:rgb(0,255,0)">', 1)
    (tmp_path / "report.html").write_text(forged, encoding="utf-8")
    context = browser.new_context()
    try:
        view = context.new_page()
        view.goto((tmp_path / "report.html").as_uri())
        verdict = view.evaluate(
            "getComputedStyle(document.querySelector('.verdict')).backgroundColor"
        )
        heading = view.evaluate("getComputedStyle(document.querySelector('h1')).color")
        width = view.evaluate("getComputedStyle(document.body).maxWidth")
    finally:
        context.close()
    assert verdict == "rgb(255, 235, 233)"  # the page's own style: the failed verdict's red
    assert heading == "rgb(27, 31, 36)"
    assert width == "960px"


def test_a_tower_of_combining_marks_is_cut_to_four_and_the_rest_shown_as_code_points() -> None:
    """Marks stack: "a" and 300 combining acute accents (or enclosing circles) draw a column
    of ink high over the rows above it, over another entry's issuer or a node's state, from a
    subject anyone may register on the public log. The fifth mark on a letter and those after
    it are shown as code points; four are more than any script's own text puts on one
    letter, so no real name changes."""
    tower = "a" + "\u0301" * 300
    assert visible(tower) == "a" + "\u0301" * 4 + "[U+0301]" * 296
    assert shown(tower) == visible(tower)  # the CLI, the audit report and log lines too
    assert visible("x" + "\u20dd" * 6) == "x" + "\u20dd" * 4 + "[U+20DD]" * 2  # enclosing
    # each letter counts its own marks: decomposed Vietnamese, Hindi, Hebrew stay as they are
    for text in ("Vie\u0323\u0302t", "\u0915\u094d\u0937\u093f", "\u05e9\u05c1\u05b8\u0591"):
        assert visible(text) == text
    # and every value a page prints goes through it (the templates' finalize)
    env = _environment()
    assert env.from_string("{{ s }}").render(s=tower, session=None).count("[U+0301]") == 296
