"""The ``[keys]`` table says exactly where the service keys live: a setting of a backend the
table does not choose, or a ``[keys.handles]`` entry for a key the service never asks for, is
a ``ConfigError`` (exit 2) — never keys quietly written to PEM files or a new key generated."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _tx_helpers import write_config

from ironroot.cli import main
from ironroot.cli.serve import KEY_PURPOSES
from ironroot.errors import ConfigError
from ironroot.hsm import ServiceKeys, ServiceKeysConfig
from ironroot.transparency import load_config

_PKCS11 = {"pkcs11_library": "/lib/p11.so", "pkcs11_token": "t", "pkcs11_pin_file": "pin"}


def test_pkcs11_settings_without_their_backend_write_no_key_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A forgotten ``backend = "pkcs11"``: the service must not fall back to PEM files."""
    data = tmp_path / "data"
    write_config(data)
    with (data / "ironroot.toml").open("a") as f:
        f.write('[keys]\npkcs11_library = "/lib/p11.so"\npkcs11_token = "t"\n')
        f.write('pkcs11_pin_file = "pin"\n')
    assert main(["serve", "--data", str(data), "--init-only"]) == 2
    err = capsys.readouterr().err
    assert 'ironroot: config: keys.pkcs11_library needs keys.backend = "pkcs11" or "hsm"' in err
    assert str(data / "ironroot.toml") in err
    assert not (data / "keys").exists()  # no private key was written to disk
    with pytest.raises(ConfigError, match=r"keys\.pkcs11_library needs keys\.backend"):
        load_config(data)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (_PKCS11, 'keys.pkcs11_library needs keys.backend = "pkcs11"'),
        ({"backend": "files", **_PKCS11}, 'keys.pkcs11_library needs keys.backend = "pkcs11"'),
        ({"backend": "hsm", "hsm_dir": "h", **_PKCS11}, "keys.pkcs11_library needs"),
        (
            {"backend": "pkcs11", **_PKCS11, "hsm_dir": "h"},
            'keys.hsm_dir needs keys.backend = "hsm"',
        ),
        (
            {"backend": "pkcs11", **_PKCS11, "hsm_counter": "c"},
            'keys.hsm_counter needs keys.backend = "hsm"',
        ),
        (
            {"handles": {"receipt-ES384": "h"}},
            'keys.handles needs keys.backend = "pkcs11" or "hsm"',
        ),
    ],
)
def test_settings_of_another_backend_are_refused(
    table: dict[str, object], message: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as caught:
        ServiceKeysConfig.parse(table, tmp_path)
    assert caught.value.detail.startswith(message)
    assert caught.value.exit_code == 2


def test_a_misspelt_handle_purpose_is_refused(tmp_path: Path) -> None:
    """``reciept-ES384`` would leave ``receipt-ES384`` without a handle: PKCS#11 would then
    generate a new receipt key instead of using the one the operator named."""
    table = {"backend": "pkcs11", **_PKCS11, "handles": {"reciept-ES384": "5f0c"}}
    with pytest.raises(ConfigError) as caught:
        ServiceKeysConfig.parse(table, tmp_path, purposes=KEY_PURPOSES)
    assert caught.value.detail.startswith(
        "keys.handles.reciept-ES384: this service has no such key (its keys: checkpoint, "
    )
    good = {"backend": "pkcs11", **_PKCS11, "handles": {"receipt-ES384": "5f0c"}}
    parsed = ServiceKeysConfig.parse(good, tmp_path, purposes=KEY_PURPOSES)
    assert parsed.handles == {"receipt-ES384": "5f0c"}


def test_the_cli_refuses_a_misspelt_handle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    write_config(data)
    with (data / "ironroot.toml").open("a") as f:
        f.write('[keys]\nbackend = "pkcs11"\npkcs11_library = "/lib/p11.so"\n')
        f.write('pkcs11_token = "t"\npkcs11_pin_file = "pin"\n[keys.handles]\n')
        f.write('checkpoints = "5f0c"\n')
    assert main(["serve", "--data", str(data), "--init-only"]) == 2
    err = capsys.readouterr().err
    assert "ironroot: config: keys.handles.checkpoints: this service has no such key" in err


_OPEN_KEYS = """
import sys
from pathlib import Path
from ironroot.errors import ConfigError
from ironroot.hsm import ServiceKeys, ServiceKeysConfig
table = {"backend": "pkcs11", "pkcs11_library": "/lib/p11.so", "pkcs11_token": "t",
         "pkcs11_pin_file": "pin"}
try:
    ServiceKeys(ServiceKeysConfig.parse(table, Path(sys.argv[1])))
except ConfigError as exc:
    print(exc.detail)
"""


def test_a_pin_file_that_is_a_named_pipe_is_not_waited_on(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pin")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    try:
        done = subprocess.run(
            [sys.executable, "-c", _OPEN_KEYS, str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=20,
            env=env,
            check=True,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("ServiceKeys waited on a named pipe for a writer")
    assert done.stdout.strip() == f"the PKCS#11 PIN at {tmp_path / 'pin'} is empty"


def test_a_pin_file_that_is_a_folder_or_too_large_is_refused(tmp_path: Path) -> None:
    table = {"backend": "pkcs11", **_PKCS11}
    (tmp_path / "pin").mkdir()
    with pytest.raises(ConfigError) as caught:
        ServiceKeys(ServiceKeysConfig.parse(table, tmp_path))
    assert caught.value.detail == (
        f"cannot read the PKCS#11 PIN at {tmp_path / 'pin'}: is a directory, not a file"
    )
    (tmp_path / "pin").rmdir()
    (tmp_path / "pin").write_bytes(b"1" * (64 * 1024 + 1))
    with pytest.raises(ConfigError) as caught:
        ServiceKeys(ServiceKeysConfig.parse(table, tmp_path))
    assert (
        caught.value.detail == f"the PKCS#11 PIN at {tmp_path / 'pin'} is larger than 65536 bytes"
    )


_OPEN_SERVICE = """
import sys
from pathlib import Path
from ironroot.errors import ConfigError
from ironroot.transparency import TransparencyService
try:
    TransparencyService.open(Path(sys.argv[1]), receipt_signers=None, checkpoint_signers=None)
except ConfigError as exc:
    print(exc.detail)
"""


def test_a_receipt_key_that_is_a_named_pipe_is_not_waited_on(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_config(data)
    assert main(["serve", "--data", str(data), "--init-only"]) == 0
    key = data / "keys" / "receipt-es384.key"
    key.unlink()
    os.mkfifo(key)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    try:
        done = subprocess.run(
            [sys.executable, "-c", _OPEN_SERVICE, str(data)],
            capture_output=True,
            text=True,
            timeout=20,
            env=env,
            check=True,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the service waited on a named pipe for a writer")
    assert done.stdout.strip() == f"service key {key} is not a ES384 key"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("max_batch = 0", "transparency.max_batch must be between 1 and 65536"),
        ("max_batch = 4096.0", "transparency.max_batch must be a int"),
        ("batch_linger = nan", "transparency.batch_linger must be between 0 and 0.1 seconds"),
        ('outside_validity = "acept"', 'transparency.outside_validity is "refuse" or "accept"'),
    ],
)
def test_every_error_of_ironroot_toml_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, message: str
) -> None:
    """An operator with several data directories learns which file to fix."""
    data = tmp_path / "data"
    write_config(data)
    path = data / "ironroot.toml"
    path.write_text(path.read_text().replace("[transparency]\n", f"[transparency]\n{line}\n", 1))
    with pytest.raises(ConfigError) as caught:
        load_config(data)
    assert caught.value.detail.startswith(f"{path}: {message}")
    assert main(["serve", "--data", str(data), "--init-only"]) == 2
    assert capsys.readouterr().err.startswith(f"ironroot: config: {path}: {message}")


def test_a_key_given_twice_is_refused(tmp_path: Path) -> None:
    """TOML forbids it; the parser's refusal is a ConfigError naming the file and the line."""
    data = tmp_path / "data"
    write_config(data, registration_wait=5.0)
    path = data / "ironroot.toml"
    path.write_text(path.read_text().replace("[log]\n", "registration_wait = 0.0\n[log]\n", 1))
    with pytest.raises(ConfigError) as caught:
        load_config(data)
    assert caught.value.detail.startswith(f"{path} is not valid TOML: Cannot overwrite a value")


def test_a_relative_pkcs11_library_path_is_relative_to_the_data_directory(tmp_path: Path) -> None:
    """As every other path of [keys]: never the directory the service happened to start in
    (a library loaded from there runs its code in the service)."""
    table = {"backend": "pkcs11", **_PKCS11, "pkcs11_library": "lib/p11.so"}
    parsed = ServiceKeysConfig.parse(table, tmp_path / "data")
    assert parsed.settings["pkcs11_library"] == str(tmp_path / "data" / "lib" / "p11.so")
    # A bare name is the loader's to find (the system's library path), and an absolute one
    # stays as it is.
    bare = ServiceKeysConfig.parse({**table, "pkcs11_library": "libsofthsm2.so"}, tmp_path)
    assert bare.settings["pkcs11_library"] == "libsofthsm2.so"
    absolute = ServiceKeysConfig.parse({**table, "pkcs11_library": "/usr/lib/p11.so"}, tmp_path)
    assert absolute.settings["pkcs11_library"] == "/usr/lib/p11.so"


def test_an_x509_roots_folder_without_a_certificate_file_is_refused(tmp_path: Path) -> None:
    """As platform.toml and the audit trust refuse theirs: an empty folder (a mount not there
    yet, a wrong name) is a mistake to name, not a root set that happens to be empty."""
    data = tmp_path / "data"
    write_config(data)
    (data / "roots").mkdir()
    (data / "roots" / "README").write_text("put roots here")
    path = data / "ironroot.toml"
    path.write_text(
        path.read_text().replace("[transparency]\n", '[transparency]\nx509_roots = ["roots"]\n', 1)
    )
    with pytest.raises(ConfigError) as caught:
        load_config(data)
    assert caught.value.detail == (
        f"{path}: x509_roots: {data / 'roots'} holds no certificate file (.cer, .crt, .der, .pem)"
    )
