"""An HSM's audit checkpoint registered on the transparency service proves, to an auditor who
holds no key of the HSM, that the audit trail was not cut after it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from _tx_helpers import write_config

from hsm_devices import self_signed_device
from ironroot.cose import SignedStatement, decode_key_set, verify_receipt
from ironroot.errors import AuditChainBroken
from ironroot.hsm import (
    Hsm,
    HsmConfig,
    KeyType,
    MemoryStorage,
    Role,
    parse_audit_log,
    verify_audit,
    verify_audit_checkpoint,
)
from ironroot.transparency import ServiceThread, TransparencyService


def test_a_registered_checkpoint_shows_a_trail_cut_after_it(tmp_path: Path) -> None:
    storage = MemoryStorage()
    hsm = Hsm.initialize(
        storage,
        bytes(range(48)),
        officer="officer",
        credential=b"officer-credential",
        device=self_signed_device(),
        config=HsmConfig(scrypt_n=2**10),
    )
    officer = hsm.login("officer", b"officer-credential")
    hsm.add_identity(officer, "auditor", Role.AUDITOR, b"auditor-credential")
    hsm.add_identity(officer, "service", Role.USER, b"service-credential")
    user = hsm.login("service", b"service-credential")
    handle = hsm.generate(officer, KeyType.EC_P256)
    hsm.sign(user, handle, b"a release of the key")
    statement = hsm.audit_checkpoint(hsm.login("auditor", b"auditor-credential"))

    # The HSM's audit checkpoints are accepted from its attestation key.
    data = write_config(tmp_path / "ts")
    iss = f"urn:ironroot:hsm:{hsm.hsm_id.hex()}"
    (data / "hsm.pub.pem").write_bytes(hsm.attestation_public_key.to_pem())
    with (data / "ironroot.toml").open("r+") as handle_file:
        text = handle_file.read().replace(
            "[log]", f'[[transparency.issuers]]\niss = "{iss}"\nkey = "hsm.pub.pem"\n[log]'
        )
        handle_file.seek(0)
        handle_file.write(text)
    with (
        TransparencyService.open(data) as service,
        ServiceThread(service) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        response = client.post(
            "/entries", content=statement, headers={"Content-Type": "application/cose"}
        )
        assert response.status_code == 201, response.content
        keys = decode_key_set(client.get("/.well-known/scitt-keys").content)
    verify_receipt(response.content, SignedStatement.parse(statement).log_entry(), keys)

    # The auditor: the receipt shows the checkpoint was registered; the checkpoint pins the log.
    checkpoint = verify_audit_checkpoint(statement, hsm.attestation_public_key)
    hsm.sign(user, handle, b"after the checkpoint")
    hsm.flush()
    records = parse_audit_log(storage.read_audit())
    verify_audit(records, checkpoint=checkpoint)
    with pytest.raises(AuditChainBroken) as info:
        verify_audit(records[: checkpoint.size - 2], checkpoint=checkpoint)
    assert info.value.detail.endswith("its last 2 were cut")
