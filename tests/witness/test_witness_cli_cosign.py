"""``ironroot witness cosign`` without ``--key``: the log's keys come from the log itself, so
the command's own check of the log signature proves nothing; the trust decision is the
witness's, against the logs and keys it was configured with. Pinned here end to end: a log
impersonating the witnessed origin with another key, and a log the witness does not witness,
get no cosignature (exit 1, with the witness's code), and the witness records nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from witness_testkit import TS_ORIGIN, service_dir, statement

from ironroot.cli import main
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.log import NoteVerifier


@pytest.mark.slow  # two transparency services and a witness, in process
def test_cosign_without_key_gets_nothing_for_a_log_the_witness_does_not_trust(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ironroot.transparency import ServiceThread, TransparencyClient, TransparencyService
    from ironroot.witness import WitnessThread, open_witness

    vendor = PrivateKey.generate(Algorithm.ES256)
    log_key = PrivateKey.generate(Algorithm.ED25519)
    wdir = tmp_path / "witness"
    assert main(["witness", "init", "--data", str(wdir), "--name", "w.example/1"]) == 0
    witness_vkey = capsys.readouterr().out.splitlines()[-1]
    log_vkey = NoteVerifier(TS_ORIGIN, log_key.public_key).vkey
    assert main(["witness", "add-log", "--data", str(wdir), log_vkey]) == 0
    capsys.readouterr()

    impostor = service_dir(tmp_path / "impostor", vendor)  # the origin, its own key
    stranger = service_dir(tmp_path / "stranger", vendor, origin="other.example/log")
    witness = open_witness(wdir)
    try:
        with (
            WitnessThread(witness) as wserver,
            TransparencyService.open(impostor) as a,
            TransparencyService.open(stranger) as b,
            ServiceThread(a) as aserver,
            ServiceThread(b) as bserver,
        ):
            for server in (aserver, bserver):
                with TransparencyClient(server.url) as client:
                    client.register(statement(vendor, "pkg:fw/bmc"))
            base = ["witness", "cosign", "--url", wserver.url, "--witness-key", witness_vkey]
            for url, code in (
                (aserver.url, "untrusted-checkpoint"),
                (bserver.url, "unknown-log"),
            ):
                assert main([*base, "--log-url", url, "--json"]) == 1
                assert json.loads(capsys.readouterr().out)["error"]["code"] == code
        assert witness.latest(TS_ORIGIN) is None
        assert witness.latest("other.example/log") is None
    finally:
        witness.close()
