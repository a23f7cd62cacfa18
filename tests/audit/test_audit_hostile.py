"""A bundle from a hostile party: what `audit verify` must refuse with a typed error, within
bounded memory and time, before any of it is trusted.

The first tests need no node: the framing, the index and the claimed nonce of the seal are
all read before the seal is verified, so a forger who signs nothing reaches them. A seal
whose two messages merely *claim* the index's nonce (no valid signature) is enough to have
the index parsed.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import io
import json
import re
import tracemalloc
from collections.abc import Callable, Iterator

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from tests.audit.audit_world import EXPORTED, NODE, AuditWorld, audit_world

from hypothesis_budget import examples
from ironroot._text import shown
from ironroot.audit import (
    AuditBundle,
    AuditExport,
    AuditIndex,
    LogProofs,
    MemberEntry,
    check_bundle,
    export_bundle,
    render_console,
    render_html,
    seal_nonce,
    verify_bundle,
)
from ironroot.cose import encode_cbor
from ironroot.crypto import load_certificate
from ironroot.ear import decode_ear, sign_ear_jwt
from ironroot.errors import (
    AuditBundleRejected,
    InvalidProof,
    IronrootError,
    LimitExceeded,
    MalformedInput,
)
from ironroot.fleet import ear_id_of
from ironroot.hsm import AuditRecord, format_audit_log
from ironroot.log import HttpLogFetcher

JWT = "application/jwt"


@pytest.fixture(scope="module")
def aw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditWorld]:
    yield from audit_world(tmp_path_factory.mktemp("audit"))


def _index(**changes: object) -> bytes:
    doc: dict[str, object] = {
        "format": "ironroot-audit-index/1",
        "node": "node-0001",
        "class": "node-7",
        "platform": "pkg:platform/acme/node-7",
        "exported_at": "2026-06-01T12:10:00Z",
        "nonce": bytes(32),
        "members": {"node/record.json": {"sha384": bytes(48), "size": 0, "type": "a/b"}},
        "absent": {},
    }
    doc.update(changes)
    return encode_cbor(doc)


def _forged_seal(index: bytes) -> bytes:
    """Two COSE_Sign1 messages that claim the index's seal nonce and are signed by no one."""
    claims = encode_cbor({"nonce": seal_nonce(index)})
    message = cbor2.dumps(cbor2.CBORTag(18, [b"\xa1\x01\x38\x22", {}, claims, b"\x00" * 96]))
    return encode_cbor({"es384": message, "ml-dsa-87": message})


def _forged(index: bytes) -> bytes:
    return AuditBundle(index, {"node/record.json": b""}, _forged_seal(index)).encode()


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_an_export_time_an_offset_carries_out_of_range_is_malformed(
    aw: AuditWorld, when: str
) -> None:
    """Year 1 at +01:00 is year 0 in UTC: converting it raised OverflowError, a traceback
    from `check_bundle`, which promises a report for every bundle."""
    index = _index(exported_at=when)
    with pytest.raises(AuditBundleRejected) as info:
        AuditIndex.decode(index)
    assert info.value.code == "bundle-malformed"
    report = check_bundle(_forged(index), aw.trust())
    step = report.step("seal")
    assert step.status == "failed"
    assert isinstance(step.error, AuditBundleRejected)
    assert (step.error.code, step.error.check) == ("bundle-malformed", "seal")


def _peak_memory(parse: Callable[[], object], code: str = "bundle-malformed") -> int:
    tracemalloc.start()
    try:
        with pytest.raises(IronrootError) as info:
            parse()
        assert info.value.code == code
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("parse", [AuditBundle.parse, AuditIndex.decode])
def test_a_file_of_a_million_empty_arrays_is_refused_without_building_them(
    parse: Callable[[bytes], object],
) -> None:
    """One byte each, a million empty arrays were all built (some 64 MB for a 1 MB file, 64 GB
    for a bundle of the 1 GiB `audit verify` reads) before the item limit was checked. The
    heads are counted first now: nothing is built."""
    count = 1_000_000
    data = b"\x9a" + count.to_bytes(4, "big") + b"\x80" * count
    assert _peak_memory(lambda: parse(data)) < 2 * len(data)


def test_proofs_of_a_million_empty_arrays_are_refused_without_building_them() -> None:
    """`transparency/<n>/proofs.cbor` may be 16 MiB: as many empty arrays took over 1 GB."""
    count = 1_000_000
    data = b"\x9a" + count.to_bytes(4, "big") + b"\x80" * count
    peak = _peak_memory(lambda: LogProofs.decode(data), "limit-exceeded")
    assert peak < 2 * len(data)


# --- false evidence, sealed by the node's own RoT ----------------------------------------


@pytest.fixture(scope="module")
def collected(aw: AuditWorld) -> AuditExport:
    return aw.collect()


def _resealed_json(aw: AuditWorld, export: AuditExport, name: str, value: object) -> bytes:
    data = json.dumps(value).encode()
    return export.replace(members={name: (data, "application/json")}).seal(aw.fleet.rot(NODE))


def test_a_fuse_view_of_no_known_lifecycle_is_malformed_input(
    aw: AuditWorld, collected: AuditExport
) -> None:
    """An unknown lifecycle label came out as ConfigError (a usage error, exit 2 for
    `verify_bundle` callers) from the bundle's own bytes."""
    view = json.loads(collected.members["rot/fuses.json"][0])
    view["lifecycle"] = "<none>"
    data = _resealed_json(aw, collected, "rot/fuses.json", view)
    with pytest.raises(MalformedInput) as info:
        verify_bundle(data, aw.trust())
    assert (type(info.value), info.value.check) == (MalformedInput, "fuses")


@pytest.mark.parametrize(("where", "floor"), [("bmc", 10**30), ("nic", -1), ("pfm", 2**64)])
def test_a_journal_svn_floor_out_of_range_is_malformed_input(
    aw: AuditWorld, collected: AuditExport, where: str, floor: int
) -> None:
    """A floor of 10**30 reached verify_update, which refused it as ConfigError (a caller's
    mistake); a negative floor was taken as is."""
    state = json.loads(collected.members["platform/state.json"][0])
    entry = state["pfm"] if where == "pfm" else state["components"][where]
    entry["svn_floor"] = floor
    data = _resealed_json(aw, collected, "platform/state.json", state)
    with pytest.raises(MalformedInput) as info:
        verify_bundle(data, aw.trust())
    step = "pfm" if where == "pfm" else f"firmware:{where}"
    assert (type(info.value), info.value.check) == (MalformedInput, step)


def test_a_receipt_proven_twice_is_refused(aw: AuditWorld, collected: AuditExport) -> None:
    """Every proof entry costs a receipt signature and two Merkle proofs: copies of one log's
    entries (a few hundred bytes each, in up to 511 copies of the log) bought minutes of
    verification for a bundle that then passed. A receipt is proven once."""
    name = "transparency/0/proofs.cbor"
    proofs = LogProofs.decode(collected.members[name][0])
    doubled = dataclasses.replace(proofs, entries=proofs.entries * 2).encode()
    data = collected.replace(members={name: (doubled, "application/cbor")}).seal(aw.fleet.rot(NODE))
    with pytest.raises(InvalidProof) as info:
        verify_bundle(data, aw.trust())
    assert (type(info.value), info.value.check) == (InvalidProof, "transparency")
    assert "proven twice" in info.value.detail


def test_a_service_given_twice_at_export_is_checkpointed_once(aw: AuditWorld) -> None:
    with (
        HttpLogFetcher(aw.world.urls["trusted"]) as first,
        HttpLogFetcher(aw.world.urls["trusted"]) as second,
    ):
        data = export_bundle(aw.fleet, NODE, logs=[first, second], now=EXPORTED)
    assert sorted(n for n in AuditBundle.parse(data).members if n.startswith("transparency/")) == [
        "transparency/0/checkpoint",
        "transparency/0/proofs.cbor",
    ]
    assert verify_bundle(data, aw.trust()).ok


# --- what the report shows ------------------------------------------------------------------

_SPOOF = "node-0001\u202e\u2066 \u200fdeliaf\u2069\u2028✓ every step holds\u061c"
_TWIN = "node-0001\u200b\U000e0041"  # looks like node-0001: a zero-width space, a tag "A"


def test_shown_spells_bidirectional_controls_and_line_separators() -> None:
    assert shown(_SPOOF) == (
        "node-0001[U+202E][U+2066] [U+200F]deliaf[U+2069][U+2028]✓ every step holds[U+061C]"
    )
    assert shown("é \U0001f525 ✓ node-0001") == "é \U0001f525 ✓ node-0001"


def test_shown_spells_what_draws_nothing_as_the_dashboard_does() -> None:
    """Zero-width characters, tags and other default-ignorable code points went through
    :func:`shown` (the CLI, the audit report) while the dashboard showed them: a name with a
    zero-width space looked like another on the terminal. One list serves both now."""
    from ironroot import _text
    from ironroot.web._text import visible

    assert visible is _text.visible  # the dashboard's is this list, not a copy of it
    for text in (_TWIN, "a\u00adb\u2060c\ufeffd\ufe0fe\u3164f\U000e0fff", _SPOOF, "a\x1b[2J"):
        assert shown(text) == visible(text)
    assert shown(_TWIN) == "node-0001[U+200B][U+E0041]"
    assert shown("a\tb\nc\rd") == "a[U+0009]b[U+000A]c[U+000D]d"  # one line, always
    assert visible("a\tb\nc\rd") == "a\tb\nc\rd"  # a page lays payloads out with them
    assert shown("\ud800\x7f\x9b") == "[U+D800][U+007F][U+009B]"


def test_a_node_name_that_reorders_the_report_is_shown_as_escapes(
    aw: AuditWorld, collected: AuditExport
) -> None:
    """A right-to-left override in the sealed node name (or any text a step quotes) turned
    what followed it around, on the auditor's terminal and in the HTML page."""
    record = json.loads(collected.members["node/record.json"][0])
    record["reason"] = _SPOOF
    export = dataclasses.replace(collected, node=_SPOOF, node_class=_SPOOF, platform=_SPOOF)
    data = _resealed_json(aw, export, "node/record.json", record)
    report = check_bundle(data, aw.trust())
    assert report.node == report.node_class == report.platform == shown(_SPOOF)
    page = render_html(report)
    terminal = io.StringIO()
    render_console(report, Console(file=terminal, force_terminal=False, width=300))
    as_json = json.dumps(report.to_json(), ensure_ascii=False)
    for output in (page, terminal.getvalue(), as_json):
        assert not set("\u202e\u2066\u200f\u2069\u2028\u061c") & set(output)
    assert "Audit of node-0001[U+202E][U+2066]" in terminal.getvalue()
    assert "<h1>Ironroot audit of node-0001[U+202E][U+2066]" in page


def test_a_node_name_that_looks_like_another_is_shown_with_its_code_points(
    aw: AuditWorld, collected: AuditExport
) -> None:
    """``node-0001`` with a zero-width space and a tag character after it read as
    ``node-0001`` on the auditor's terminal and page (the dashboard showed them)."""
    export = dataclasses.replace(collected, node=_TWIN, node_class=_TWIN, platform=_TWIN)
    data = _resealed_json(
        aw, export, "node/record.json", json.loads(collected.members["node/record.json"][0])
    )
    report = check_bundle(data, aw.trust())
    assert report.node == "node-0001[U+200B][U+E0041]"
    page = render_html(report)
    terminal = io.StringIO()
    render_console(report, Console(file=terminal, force_terminal=False, width=300))
    for output in (page, terminal.getvalue()):
        assert not {"\u200b", "\U000e0041"} & set(output)
    assert "Audit of node-0001[U+200B][U+E0041]" in terminal.getvalue()
    assert "<h1>Ironroot audit of node-0001[U+200B][U+E0041]" in page


def test_emoji_codes_in_what_the_bundle_says_are_printed_as_written(
    aw: AuditWorld, collected: AuditExport
) -> None:
    """rich replaced ``:white_check_mark:`` in a sealed reason by ✅ on the auditor's
    terminal: a bundle could draw its own check marks."""
    record = json.loads(collected.members["node/record.json"][0])
    record["reason"] = ":white_check_mark: every step holds :cross_mark:"
    data = _resealed_json(aw, collected, "node/record.json", record)
    terminal = io.StringIO()
    render_console(check_bundle(data, aw.trust()), Console(file=terminal, width=300))
    assert "(:white_check_mark: every step holds :cross_mark:)" in terminal.getvalue()
    assert not set("\u2705\u274c") & set(terminal.getvalue())


# --- the decoders, by property --------------------------------------------------------------

_NAMES = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,8}(/[a-z0-9][a-z0-9._-]{0,8}){0,3}", fullmatch=True)
_CBOR = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64 - 1)
    | st.floats()
    | st.binary(max_size=64)
    | st.text(max_size=32),
    lambda inner: (
        st.lists(inner, max_size=6)
        | st.dictionaries(st.text(max_size=12) | st.integers(), inner, max_size=6)
    ),
    max_leaves=40,
)


def _only_rejected(parse: Callable[[bytes], object], data: bytes) -> None:
    error: AuditBundleRejected | None = None
    try:
        parse(data)
    except AuditBundleRejected as exc:
        error = exc
    assert error is None or error.code == "bundle-malformed"


@settings(max_examples=examples(150), deadline=None)
@given(data=st.binary(max_size=256) | _CBOR.map(cbor2.dumps))
def test_any_bytes_are_a_bundle_or_bundle_malformed(data: bytes) -> None:
    _only_rejected(AuditBundle.parse, data)
    _only_rejected(AuditIndex.decode, data)


@settings(max_examples=examples(100), deadline=None)
@given(
    members=st.dictionaries(_NAMES, st.binary(max_size=16), min_size=1, max_size=40),
    absent=st.dictionaries(_NAMES, st.text(min_size=1, max_size=16), max_size=8),
    when=st.datetimes(timezones=st.timezones() | st.just(dt.UTC)),
    node=st.text(min_size=1, max_size=32),
    where=st.integers(0, 2**16),
    byte=st.integers(0, 255),
)
def test_a_sealed_index_and_its_bundle_round_trip_and_one_changed_byte_is_typed(
    members: dict[str, bytes],
    absent: dict[str, str],
    when: dt.datetime,
    node: str,
    where: int,
    byte: int,
) -> None:
    """What export writes, parse reads back (the item count never refuses a real bundle);
    any byte changed, cut or added is the bundle or ``bundle-malformed``, never a crash."""
    utc = when.astimezone(dt.UTC) if 1 < when.year < 9999 else when.replace(tzinfo=dt.UTC)
    index = AuditIndex(
        node=node,
        node_class="node-7",
        platform="pkg:platform/acme/node-7",
        exported_at=utc,
        nonce=bytes(32),
        members={n: MemberEntry.of(d, "application/octet-stream") for n, d in members.items()},
        absent=absent,
    ).encode()
    assert AuditIndex.decode(index).encode() == index
    data = AuditBundle(index, members, b"seal").encode()
    assert AuditBundle.parse(data).members == members
    for blob, parse in ((index, AuditIndex.decode), (data, AuditBundle.parse)):
        at = where % len(blob)
        for changed in (
            blob[:at] + bytes([byte]) + blob[at + 1 :],
            blob[:at],
            blob[:at] + bytes([byte]) + blob[at:],
        ):
            _only_rejected(parse, changed)


@settings(max_examples=examples(200), deadline=None)
@given(
    when=st.sampled_from([dt.datetime.min, dt.datetime.max]) | st.datetimes(),
    offset=st.integers(-1439, 1439),
    text=st.text(max_size=40),
)
def test_any_export_time_is_an_instant_or_bundle_malformed(
    when: dt.datetime, offset: int, text: str
) -> None:
    zone = dt.timezone(dt.timedelta(minutes=offset))
    for value in (when.replace(tzinfo=zone).isoformat(), text or "x"):
        _only_rejected(AuditIndex.decode, _index(exported_at=value))


def test_a_json_member_over_64_mib_is_refused_before_it_is_parsed(
    aw: AuditWorld, collected: AuditExport
) -> None:
    """Parsed, 64 MiB of ``[],`` would take over a GB (and the events of a 1 GiB bundle
    tens of GB); a JSON member is at most 64 MiB, and refused unparsed beyond."""
    count = (64 * 1024 * 1024) // 3 + 1
    events = b"[" + b"[]," * count + b"[]]"
    data = collected.replace(members={"node/events.json": (events, "application/json")}).seal(
        aw.fleet.rot(NODE)
    )
    report = check_bundle(data, aw.trust())
    error = report.step("node").error
    assert isinstance(error, LimitExceeded)
    assert (error.code, error.check) == ("limit-exceeded", "node")


def _json_step_error(
    aw: AuditWorld, export: AuditExport, name: str, text: bytes, step: str
) -> IronrootError | None:
    data = export.replace(members={name: (text, "application/json")}).seal(aw.fleet.rot(NODE))
    return check_bundle(data, aw.trust()).step(step).error


def test_json_members_are_read_strictly(aw: AuditWorld, collected: AuditExport) -> None:
    """A registry row naming ``id`` twice — another node first, the sealed node last — passed
    every step: Python keeps the last member, another reader of the same member (any tool an
    auditor opens it with) may keep the first. It, ``NaN`` and a number past a double's range
    are refused as not JSON, and so is a member in another encoding than UTF-8."""
    record = collected.members["node/record.json"][0].decode()
    assert record.startswith('{"')
    assert '"id":"node-0001"' in record
    twice = ('{"id":"node-0002",' + record[1:]).encode()
    error = _json_step_error(aw, collected, "node/record.json", twice, "node")
    assert isinstance(error, MalformedInput)
    assert (error.code, error.check) == ("malformed", "node")
    assert "twice" in error.detail
    fuses = collected.members["rot/fuses.json"][0].decode()
    for number in ("NaN", "1e999"):
        changed = re.sub(r'"svn":\d+', f'"svn":{number}', fuses, count=1).encode()
        assert changed != fuses.encode()
        error = _json_step_error(aw, collected, "rot/fuses.json", changed, "fuses")
        assert isinstance(error, MalformedInput)
        assert (error.code, error.check) == ("malformed", "fuses")
    utf16 = record.encode("utf-16")
    error = _json_step_error(aw, collected, "node/record.json", utf16, "node")
    assert isinstance(error, MalformedInput)
    assert error.check == "node"


@pytest.mark.parametrize(
    ("name", "step"),
    [
        ("node/record.json", "node"),
        ("platform/state.json", "pfm"),
        ("platform/config.json", "spdm:nic"),
        ("rot/fuses.json", "fuses"),
    ],
)
def test_a_json_member_several_steps_read_over_1_mib_is_refused(
    aw: AuditWorld, collected: AuditExport, name: str, step: str
) -> None:
    """Parsed once and kept for the whole check, these four (a few KiB each at export) are at
    most 1 MiB: at 64 MiB each, padded with ``[],``, they held some 6 GB together."""
    text = collected.members[name][0].decode()
    padded = (text[:-1] + ',"pad":[' + "[]," * (1024 * 1024 // 3) + "[]]}").encode()
    error = _json_step_error(aw, collected, name, padded, step)
    assert isinstance(error, LimitExceeded)
    assert (error.code, error.check) == ("limit-exceeded", step)


def _peak_check(aw: AuditWorld, data: bytes) -> int:
    trust = aw.trust()
    tracemalloc.start()
    try:
        report = check_bundle(data, trust)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.step("node").status == "ok"
    return peak


def test_json_members_of_a_bundle_are_not_kept_beyond_one_large_one(
    aw: AuditWorld, collected: AuditExport
) -> None:
    """The fleet events, the journal and the RoT events (up to 64 MiB each) were parsed and
    kept for the whole check, so the memory of several added up (some 20 bytes per byte of
    ``[],``). Each is parsed for the ``node`` step now and let go: three as large as one take
    about what one takes. The ratio, not the size, is what is checked: at 1 MiB a list (what
    the check holds is some eight times its bytes) dwarfs the rest of the check, and the
    three took 1.3 times what one took whether 1, 2 or 4 MiB each, 2.5 times when all were
    kept (measured 2026-12-08), so 1 MiB is enough and a quarter of the CPU under tracemalloc."""
    big = 1024 * 1024
    lists = {}
    for name in ("node/events.json", "platform/journal.json", "platform/events.json"):
        items = json.loads(collected.members[name][0])
        assert items, name
        text = json.dumps(items[:1])[1:-1]
        lists[name] = ("[" + ",".join([text] * (big // len(text))) + "]").encode()
    rot = aw.fleet.rot(NODE)
    one = {n: (d, "application/json") for n, d in list(lists.items())[:1]}
    every = {n: (d, "application/json") for n, d in lists.items()}
    peak_one = _peak_check(aw, collected.replace(members=one).seal(rot))
    peak_every = _peak_check(aw, collected.replace(members=every).seal(rot))
    assert peak_every < 1.75 * peak_one, (peak_one, peak_every)  # kept: some 2.5 times


def test_the_html_page_lets_the_browser_run_and_fetch_nothing(
    aw: AuditWorld, collected: AuditExport
) -> None:
    """Every value is escaped; should one ever not be, the page's content security policy
    (its first element after the charset) still forbids scripts, fetches and forms."""
    evil = '"><img src=x onerror=alert(1)></style><script>alert(1)</script><a href="javascript:x">'
    record = json.loads(collected.members["node/record.json"][0])
    record["reason"] = evil
    export = dataclasses.replace(collected, node=evil, node_class=evil, platform=evil)
    page = render_html(
        check_bundle(_resealed_json(aw, export, "node/record.json", record), aw.trust())
    )
    head = page.split("<title>", 1)[0]
    style = page.split("<style>", 1)[1].split("</style>", 1)[0]
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    policy = f"default-src 'none'; style-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'"
    assert head.endswith(f'<meta http-equiv="Content-Security-Policy" content="{policy}">')
    for tag in ("<script", "<img", "<a "):
        assert tag not in page
    assert page.count("</style>") == 1


def _seal_changed(aw: AuditWorld, change: Callable[[dict[str, object]], bytes]) -> bytes:
    bundle = AuditBundle.parse(aw.export())
    return AuditBundle(bundle.index, bundle.members, change(cbor2.loads(bundle.seal))).encode()


def _unsigned_header(seal: dict[str, object]) -> bytes:
    message = cbor2.loads(seal["es384"])  # type: ignore[arg-type]
    protected, unprotected, payload, signature = message.value
    unprotected = {**unprotected, 99: b"added"}
    seal["es384"] = cbor2.dumps(cbor2.CBORTag(18, [protected, unprotected, payload, signature]))
    return cbor2.dumps(seal)


_P384_ORDER = int(
    "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
    16,
)


def _padded_certificate_signature(seal: dict[str, object]) -> bytes:
    """A certificate of the seal's chains with the unused-bits byte of its signature BIT
    STRING set to 1: its signature verifies over the same bytes. (Valid DER only when the
    signature's last bit is 0, so such a certificate is taken; one whose last bit is 1 does
    not parse, and is refused as well.)"""
    chains = {}
    for name in ("es384", "ml-dsa-87"):
        message = cbor2.loads(seal[name])  # type: ignore[arg-type]
        chains[name] = (message.value, list(message.value[1][33]))
    found = [
        (name, number, der, len(der) - len(load_certificate(der, der_only=True).signature) - 1)
        for name, (_message, chain) in chains.items()
        for number, der in enumerate(chain)
    ]
    name, number, der, cut = next((f for f in found if f[2][-1] % 2 == 0), found[-1])
    assert der[cut] == 0
    (protected, _unprotected, payload, signature), chain = chains[name]
    chain[number] = der[:cut] + b"\x01" + der[cut + 1 :]
    message = cbor2.CBORTag(18, [protected, {33: chain}, payload, signature])
    seal[name] = cbor2.dumps(message)
    return encode_cbor(seal)


def _high_s(seal: dict[str, object]) -> bytes:
    """The ES384 signature as its malleated twin ``(r, n - s)``: anyone can compute it from
    the seal, and it verifies just as well."""
    message = cbor2.loads(seal["es384"])  # type: ignore[arg-type]
    protected, unprotected, payload, signature = message.value
    s = int.from_bytes(signature[48:], "big")
    signature = signature[:48] + (_P384_ORDER - s).to_bytes(48, "big")
    seal["es384"] = cbor2.dumps(cbor2.CBORTag(18, [protected, unprotected, payload, signature]))
    return encode_cbor(seal)


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        (_unsigned_header, "unsigned header parameters"),
        (lambda seal: cbor2.dumps(dict(reversed(list(seal.items())))), "deterministic encoding"),
        (lambda seal: cbor2.dumps(seal).replace(b"fformat", b"\x78\x06format", 1), "deterministic"),
        (_high_s, "not in its low-S form"),
        (_padded_certificate_signature, "signature"),
    ],
)
def test_bytes_of_the_seal_no_signature_covers_cannot_change(
    aw: AuditWorld, change: Callable[[dict[str, object]], bytes], detail: str
) -> None:
    """A COSE message's unprotected header is signed by no one, a CBOR length can be
    spelled longer, and an ECDSA signature ``(r, s)`` has a twin ``(r, n - s)`` that verifies
    as well: a parameter added to the seal, its map reordered, a length respelled or the
    ES384 signature malleated changed the file, and every step still held."""
    data = _seal_changed(aw, change)
    with pytest.raises(AuditBundleRejected) as info:
        verify_bundle(data, aw.trust())
    assert (info.value.code, info.value.check) == ("seal-invalid", "seal")
    assert detail in info.value.detail


def test_an_ear_issued_past_year_9999_is_malformed(aw: AuditWorld, collected: AuditExport) -> None:
    """Exported at the last second of year 9999 (which the DICE certificates still cover),
    with the node's EAR re-signed by the trusted verifier as issued 30 s later (within the
    minute an EAR may follow the export): converting its issue time raised ValueError."""
    token = collected.members["attestation/ear.jwt"][0]
    result = decode_ear(token, aw.trust().verifier_keys)
    last = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
    late = sign_ear_jwt(
        dataclasses.replace(result, iat=int(last.timestamp()) + 30, exp=None), aw.verifier
    )
    record = json.loads(collected.members["node/record.json"][0])
    record["ear_id"] = ear_id_of(late)
    members = {
        "attestation/ear.jwt": (late, JWT),
        "node/record.json": (json.dumps(record).encode(), "application/json"),
    }
    export = dataclasses.replace(collected.replace(members=members), exported_at=last)
    report = check_bundle(export.seal(aw.fleet.rot(NODE)), aw.trust())
    error = report.step("attestation").error
    assert isinstance(error, MalformedInput)
    assert (type(error), error.check) == (MalformedInput, "attestation")


def test_release_statements_of_a_million_empty_arrays_are_refused_without_building_them(
    aw: AuditWorld, collected: AuditExport
) -> None:
    """`hsm/releases.cbor` may be 256 MiB: as many one-byte empty arrays would take some
    16 GB before the item limit refused them. Counted first now."""
    record = AuditRecord(0, 0, "officer", "initialize", None, "ok", bytes(32))
    count = 1_000_000
    bomb = b"\x9a" + count.to_bytes(4, "big") + b"\x80" * count
    members = {
        "hsm/audit.jsonl": (format_audit_log([record]), "application/jsonl"),
        "hsm/releases.cbor": (bomb, "application/cbor"),
    }
    data = collected.replace(members=members).seal(aw.fleet.rot(NODE))
    trust = aw.trust()
    tracemalloc.start()
    try:
        report = check_bundle(data, trust)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    error = report.step("releases").error
    assert isinstance(error, LimitExceeded)
    assert error.check == "releases"
    assert peak < 16 * len(bomb), peak


# --- any value of a structured member, sealed --------------------------------------------------

_HOSTILE_VALUES = st.sampled_from(
    [None, True, -1, 0, 2**64, 10**30, 1.5, "", "x" * 300, "\x1b[2K", [], {}, [[]], {"a": 1},
     "9999-12-31T23:59:59Z", "0001-01-01T00:00:00+01:00", "00" * 48]
)  # fmt: skip


def _places(value: object, path: tuple[object, ...] = ()) -> Iterator[tuple[object, ...]]:
    """Every place in a JSON or CBOR value (the first six items of a list)."""
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _places(item, (*path, key))
    elif isinstance(value, list):
        for number, item in enumerate(value[:6]):
            yield from _places(item, (*path, number))


def _replaced(value: object, path: tuple[object, ...], new: object) -> object:
    if not path:
        return new
    copy = (dict if isinstance(value, dict) else list)(value)  # type: ignore[call-overload]
    copy[path[0]] = _replaced(copy[path[0]], path[1:], new)
    return copy


@settings(max_examples=examples(20), deadline=None)
@given(data=st.data(), new=_HOSTILE_VALUES)
def test_any_value_of_a_structured_member_sealed_is_a_report_of_typed_steps(
    aw: AuditWorld, collected: AuditExport, data: st.DataObject, new: object
) -> None:
    """Whoever holds the node seals what it likes: one value anywhere in a JSON or CBOR
    member replaced by another type or an out-of-range value gives a report (never an
    exception: the CLI would print ``internal-error``), whose failed steps each hold a typed
    error, and an HTML page."""
    structured = sorted(
        name
        for name, (_, media) in collected.members.items()
        if media in ("application/json", "application/cbor")
    )
    name = data.draw(st.sampled_from(structured), label="member")
    raw, media = collected.members[name]
    value = json.loads(raw) if media == "application/json" else cbor2.loads(raw)
    path = data.draw(st.sampled_from(list(_places(value))), label="path")
    changed = _replaced(value, path, new)
    encoded = json.dumps(changed).encode() if media == "application/json" else cbor2.dumps(changed)
    sealed = collected.replace(members={name: (encoded, media)}).seal(aw.fleet.rot(NODE))
    report = check_bundle(sealed, aw.trust())
    assert all(isinstance(s.error, IronrootError) for s in report.steps if s.status == "failed")
    render_html(report)
