"""The service's receipt and checkpoint keys held in a PKCS#11 token (SoftHSM2): registration
works, the published keys are the token's, `log verify DIR` works without a private key file,
and the token refuses to reveal the keys."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from _tx_helpers import VENDOR_ISS, write_config

from ironroot.cli import main
from ironroot.cli.serve import hsm_signers
from ironroot.cose import SignedStatement, create_statement, decode_key_set, verify_receipt
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import ConfigError, NotFound
from ironroot.hsm import ServiceKeys, ServiceKeysConfig
from ironroot.log import verify_log_dir
from ironroot.transparency import ServiceThread, TransparencyService, load_config
from ironroot_softhsm import PIN, pkcs11_keys_table, shared_token
from pause_points import PausedProcess
from rot_counters import provisioned_device

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def softhsm() -> str:
    return shared_token()


def _configure(data: Path, library: str, vendor: PrivateKey) -> None:
    write_config(data, issuers=[(VENDOR_ISS, vendor)])
    (data / "token.pin").write_text(PIN + "\n")
    with (data / "ironroot.toml").open("a") as f:
        f.write(pkcs11_keys_table(library, "token.pin"))


def test_service_keys_in_a_pkcs11_token(tmp_path: Path, softhsm: str) -> None:
    data = tmp_path / "data"
    vendor = PrivateKey.generate(Algorithm.ES256)
    _configure(data, softhsm, vendor)
    assert main(["serve", "--data", str(data), "--init-only"]) == 0
    assert not (data / "keys" / "receipt-es384.key").exists()  # no private key on disk
    assert not (data / "keys" / "checkpoint.key").exists()
    config = load_config(data)
    keys_config = ServiceKeysConfig.parse(config.keys, data)
    statement = create_statement(vendor, b"{}", iss=VENDOR_ISS, sub="pkg:fw/hsm")
    with ServiceKeys(keys_config) as keys:
        receipts, checkpoints = hsm_signers(config, keys)
        service = TransparencyService.open(
            data, receipt_signers=receipts, checkpoint_signers=checkpoints
        )
        with service, ServiceThread(service) as server, httpx.Client(base_url=server.url) as c:
            r = c.post("/entries", content=statement, headers={"Content-Type": "application/cose"})
            assert r.status_code == 201
            published = decode_key_set(c.get("/.well-known/scitt-keys").content)
            assert set(published) == {receipts[0].kid}
            verify_receipt(r.content, SignedStatement.parse(statement).log_entry(), published)
    # An auditor recomputes the log from the data directory with the public key alone.
    report = verify_log_dir(data)
    assert report.size == 1
    # The same handles are found again on the next start.
    with ServiceKeys(keys_config) as keys:
        again, _ = hsm_signers(config, keys)
        assert again[0].kid == receipts[0].kid


def test_missing_key_without_create_is_not_found(tmp_path: Path, softhsm: str) -> None:
    data = tmp_path / "data"
    _configure(data, softhsm, PrivateKey.generate(Algorithm.ES256))
    config = ServiceKeysConfig.parse(load_config(data).keys, data)
    with ServiceKeys(config) as keys, pytest.raises(NotFound):
        keys.signer("receipt-ES384", Algorithm.ES384)


@pytest.mark.parametrize(
    "table",
    [
        {"backend": "cloud"},
        {"backend": "pkcs11"},
        {"backend": "pkcs11", "pkcs11_library": "x", "pkcs11_token": "t"},
        {"backend": "hsm", "hsm_dir": "h"},
        {"backend": "files", "surprise": 1},
        {"backend": "pkcs11", "handles": {"receipt-ES384": 7}},
    ],
)
def test_bad_keys_tables_are_config_errors(table: dict[str, object], tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        ServiceKeysConfig.parse(table, tmp_path)


def test_service_keys_in_the_builtin_hsm(tmp_path: Path) -> None:
    """backend = "hsm": an officer creates the keys, the service signs as a crypto user."""
    from hsm_devices import self_signed_device
    from ironroot.hsm import (
        DirectoryStorage,
        Hsm,
        HsmConfig,
        KeyAttributes,
        KeyType,
        Role,
        Usage,
    )

    data = tmp_path / "data"
    vendor = PrivateKey.generate(Algorithm.ES256)
    write_config(data, issuers=[(VENDOR_ISS, vendor)])
    secret = b"s" * 32
    (data / "sealing.secret").write_bytes(secret)
    (data / "user.credential").write_bytes(b"service-credential")
    rot = provisioned_device(tmp_path / "rot")
    with DirectoryStorage(data / "hsm", counter=rot.counter("hsm")) as storage:
        hsm = Hsm.initialize(
            storage,
            secret,
            officer="officer",
            credential=b"officer-credential",
            device=self_signed_device(),
            config=HsmConfig(scrypt_n=2**10),
        )
        officer = hsm.login("officer", b"officer-credential")
        hsm.add_identity(officer, "transparency", Role.USER, b"service-credential")
        usages = KeyAttributes(usages=frozenset({Usage.SIGN, Usage.VERIFY}))
        receipt = hsm.generate(officer, KeyType.EC_P384, usages)
        checkpoint = hsm.generate(officer, KeyType.ED25519, usages)
        hsm.close()
    with (data / "ironroot.toml").open("a") as f:
        f.write(
            '[keys]\nbackend = "hsm"\nhsm_dir = "hsm"\nhsm_sealing_secret_file = "sealing.secret"\n'
            f'hsm_rot_device = "{rot.directory}"\n'
            'hsm_identity = "transparency"\nhsm_credential_file = "user.credential"\n'
            f'[keys.handles]\n"receipt-ES384" = "{receipt}"\n"checkpoint" = "{checkpoint}"\n'
        )
    config = load_config(data)
    keys_config = ServiceKeysConfig.parse(config.keys, data)
    statement = create_statement(vendor, b"{}", iss=VENDOR_ISS, sub="pkg:fw/builtin")
    with ServiceKeys(keys_config) as keys:
        receipts, checkpoints = hsm_signers(config, keys)
        service = TransparencyService.open(
            data, receipt_signers=receipts, checkpoint_signers=checkpoints
        )
        with service, ServiceThread(service) as server, httpx.Client(base_url=server.url) as c:
            r = c.post("/entries", content=statement, headers={"Content-Type": "application/cose"})
            assert r.status_code == 201
            published = decode_key_set(c.get("/.well-known/scitt-keys").content)
            verify_receipt(r.content, SignedStatement.parse(statement).log_entry(), published)
    assert verify_log_dir(data).size == 1
    # Without a named handle the service does not try to create keys as a crypto user.
    (data / "ironroot.toml").write_text(
        (data / "ironroot.toml").read_text().split("[keys.handles]")[0]
    )
    config = load_config(data)
    with ServiceKeys(ServiceKeysConfig.parse(config.keys, data)) as keys, pytest.raises(NotFound):
        hsm_signers(config, keys)


def test_a_start_while_a_first_start_stores_a_token_key_s_handle_is_in_use(
    tmp_path: Path, softhsm: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two ``serve --init-only`` at once on a directory whose keys are in a token: the one
    that makes the keys holds the data directory's lock while it does, so the other is
    ``InUse`` (exit 2) rather than make a key of its own and write its handle over the
    first's (which the first may be signing with by then)."""
    data = tmp_path / "data"
    _configure(data, softhsm, PrivateKey.generate(Algorithm.ES256))
    init = ["serve", "--data", str(data), "--init-only"]
    with PausedProcess(tmp_path / "pause", init, before="handles.json") as making:
        # It has made its receipt key in the token and not yet stored the key's handle.
        capsys.readouterr()
        assert main(init) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"ironroot: in-use: the data directory {data} is in use")
        assert "Traceback" not in err
        done = making.resume()
    assert done.returncode == 0, done.stderr
    handles = (data / "keys" / "handles.json").read_bytes()
    config = load_config(data)
    keys_config = ServiceKeysConfig.parse(config.keys, data)
    kids = []
    for _ in range(2):  # the next starts: the same keys, and no new one made
        assert main(init) == 0
        with ServiceKeys(keys_config) as keys:
            receipts, checkpoints = hsm_signers(config, keys)
            kids.append([s.kid for s in (*receipts, *checkpoints)])
    assert kids[0] == kids[1]
    assert (data / "keys" / "handles.json").read_bytes() == handles
