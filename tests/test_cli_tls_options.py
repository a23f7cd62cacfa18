"""Every verb that talks HTTP takes ``--ca`` and a client certificate; every ``serve`` verb
takes the server options (TLS, logging); and every HTTP client the CLI makes is given the
TLS context those options build. A new client verb without them fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import ironroot.cli
from ironroot.cli._main import _leaves, build_parser

_VERBS = {
    leaf.prog.removeprefix("ironroot ").strip(): {
        o for a in leaf._actions for o in a.option_strings
    }
    for leaf in _leaves(build_parser())
}
CLIENTS = {
    "statement register",
    "statement witness",
    "statement verify",
    "log verify",
    "log export-tiles",
    "firmware publish",
    "safe publish",
    "rim register",
    "platform pfm publish",
    "hsm audit checkpoint",
    "attest explain",
    "attest verify-result",
    "keyrelease challenge",
    "keyrelease request",
    "keyrelease verifier remove",
    "keyrelease audit prune",
    "audit export",
    "witness cosign",
    "witness add-log",
    "monitor once",
    "monitor follow",
    "fleet desired publish",
    "fleet desired approver-apply",
}
SERVERS = {"serve", "attest serve", "keyrelease serve", "platform serve", "witness serve"}
SERVERS |= {"log serve-tiles"}
SERVERS |= {"dashboard"}  # ironroot dashboard serves without a verb
CLIENT_OPTIONS = {"--ca", "--client-cert", "--client-key"}
SERVER_OPTIONS = {"--data", "--host", "--port", "--log-level", "--log-format"}
SERVER_OPTIONS |= {"--tls-cert", "--tls-key", "--tls-client-ca"}


def test_the_client_verbs_take_a_ca_and_a_client_certificate() -> None:
    with_ca = {verb for verb, options in _VERBS.items() if "--ca" in options}
    assert with_ca == CLIENTS
    for verb in CLIENTS:
        assert _VERBS[verb] >= CLIENT_OPTIONS, verb
    with_url = {verb for verb, options in _VERBS.items() if "--url" in options}
    assert with_url <= CLIENTS


def test_the_serve_verbs_take_the_server_options() -> None:
    assert {verb for verb, options in _VERBS.items() if "--tls-cert" in options} == SERVERS
    for verb in SERVERS:
        # the platform's service serves a node directory: --node instead of --data
        expected = (
            SERVER_OPTIONS - {"--data"} | {"--node"} if verb == "platform serve" else SERVER_OPTIONS
        )
        if verb == "log serve-tiles":  # serves the directory it is given, not a data directory
            expected = SERVER_OPTIONS - {"--data"}
        assert _VERBS[verb] >= expected, verb


_SOURCES = sorted(Path(ironroot.cli.__file__).parent.glob("*.py"))


@pytest.mark.parametrize("source", _SOURCES, ids=[s.stem for s in _SOURCES])
def test_every_http_client_the_cli_makes_gets_the_tls_options(source: Path) -> None:
    text = source.read_text()
    # (the directory and store readers of ironroot.log read files, not HTTP)
    pattern = r"(Client\(|(?<!DirectoryLog)(?<!StoreLog)Fetcher\(|httpx\.(get|post)\()"
    calls = [m.start() for m in re.finditer(pattern, text)]
    for start in calls:
        call = text[start : start + 400]
        assert "verify=client_tls(args)" in call, f"{source.name}: {call[:120]!r}"
