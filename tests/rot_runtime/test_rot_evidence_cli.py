"""A RoT quote through `ironroot evidence verify` (format auto-detected, or `--format ironroot`):
verified against the vendor CA certificates given with `--cert`, answering `--nonce`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _rot_helpers import NOW

from ironroot.cli import main
from ironroot.rot import Device, VendorCA


def test_quote_through_the_evidence_cli(
    booted: Device, vendor_ca: VendorCA, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nonce = bytes(range(32))
    (tmp_path / "quote.cbor").write_bytes(booted.quote(nonce))
    certs: list[str] = []
    for i, der in enumerate(vendor_ca.trust_anchors):
        (tmp_path / f"ca{i}.der").write_bytes(der)
        certs += ["--cert", str(tmp_path / f"ca{i}.der")]
    base = ["evidence", "verify", str(tmp_path / "quote.cbor"), *certs, "--at", NOW.isoformat()]
    assert main([*base, "--nonce", nonce.hex(), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    assert report["claims"]["format"] == "ironroot"
    assert report["claims"]["report_data"] == nonce.hex()
    assert [c["name"] for c in report["checks"]] == ["quote", "nonce"]
    assert main([*base, "--format", "ironroot", "--nonce", "11" * 32, "--json"]) == 1
    refused = json.loads(capsys.readouterr().out)  # another nonce
    assert refused["error"]["code"] == "stale-nonce"
    assert refused["error"]["check"] == "nonce"
    other = VendorCA.generate(now=NOW)
    (tmp_path / "other.der").write_bytes(other.trust_anchors[0])
    quote = str(tmp_path / "quote.cbor")
    untrusted = ["evidence", "verify", quote, "--cert", str(tmp_path / "other.der")]
    assert main([*untrusted, "--nonce", nonce.hex(), "--at", NOW.isoformat()]) == 1
