"""A RoT quote through `ironroot evidence verify` (format auto-detected, or `--format ironroot`):
verified against the vendor CA certificates given with `--cert`, answering `--nonce`."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
from _rot_helpers import NOW

from ironroot.attestation.evidence import CheckLog, VerifyOptions, verify_evidence
from ironroot.cli import main
from ironroot.errors import KeyBindingMismatch, StaleNonce
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
    assert refused["error"]["code"] == "nonce-mismatch"
    assert refused["error"]["check"] == "nonce"
    other = VendorCA.generate(now=NOW)
    (tmp_path / "other.der").write_bytes(other.trust_anchors[0])
    quote = str(tmp_path / "quote.cbor")
    untrusted = ["evidence", "verify", quote, "--cert", str(tmp_path / "other.der")]
    assert main([*untrusted, "--nonce", nonce.hex(), "--at", NOW.isoformat()]) == 1


def test_rot_quote_nonce_through_the_format_table(booted: Device, vendor_ca: VendorCA) -> None:
    nonce = os.urandom(32)
    options = VerifyOptions(now=NOW, nonce=nonce, roots=tuple(vendor_ca.trust_anchors))
    claims = verify_evidence(booted.quote(nonce), options)
    assert [(c.name, c.ok) for c in claims.checks] == [("quote", True), ("nonce", True)]
    assert claims.checks[-1].detail == "exact: report data = nonce"
    # another nonce: refused, and the failed check is the nonce
    log = CheckLog()
    with pytest.raises(StaleNonce) as exc:
        verify_evidence(booted.quote(nonce), replace(options, nonce=os.urandom(32)), checks=log)
    assert exc.value.check == "nonce"
    assert [(c.name, c.ok) for c in log.checks] == [("quote", True), ("nonce", False)]
    # no nonce at all: a RoT quote is only ever verified against the nonce it answers
    with pytest.raises(StaleNonce) as exc:
        verify_evidence(booted.quote(nonce), replace(options, nonce=None))
    assert exc.value.check == "nonce"
    # a key bound beside the nonce (the key release binding: nonce ‖ SHA-256(key))
    key = b"the TEE's wrapping key, SPKI DER"
    bound = booted.quote(nonce + hashlib.sha256(key).digest())
    claims = verify_evidence(bound, replace(options, bound_key=key))
    assert claims.checks[-1].detail == "exact: report data = nonce ‖ SHA-256(key)"
    with pytest.raises(KeyBindingMismatch) as binding:
        verify_evidence(bound, replace(options, bound_key=b"another key"))
    assert binding.value.check == "nonce"
