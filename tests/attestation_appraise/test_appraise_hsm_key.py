"""The verifier's EAR key held in a PKCS#11 token: EARs it signs verify with the published key,
and no private key file is used."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from ironroot.attestation import (
    appraise_failure,
    init_attestation_dir,
    load_attestation_config,
    sign_ear_jwt,
    verify_ear,
)
from ironroot.errors import MalformedEvidence
from ironroot_softhsm import PIN, pkcs11_keys_table, shared_token

pytestmark = pytest.mark.integration


def test_ear_key_in_a_pkcs11_token(tmp_path: Path) -> None:
    library = shared_token()
    data = tmp_path / "verifier"
    init_attestation_dir(data)
    (data / "verifier-es384.pem").unlink()  # the key must come from the token
    (data / "token.pin").write_text(PIN)
    with (data / "attestation.toml").open("a") as f:
        f.write(pkcs11_keys_table(library, "token.pin"))
    now = dt.datetime.now(dt.UTC)
    config = load_attestation_config(data)
    with config.open_service(now) as service:
        result = appraise_failure(
            MalformedEvidence("not evidence"), format="snp", policy=service.policy,
            nonce=None, now=now,
        )  # fmt: skip
        token = sign_ear_jwt(result, service.signing_key)
        keys = {k.kid: k for k in service.public_keys}
    assert verify_ear(token, keys, now=now).status == result.status
    with config.open_service(now) as again:  # the same key on the next start
        assert {k.kid for k in again.public_keys} == set(keys)
