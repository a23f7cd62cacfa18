"""``class.toml`` (``ironroot fleet init --class``) is read as written: a misspelt component
(whose statements were dropped without a word), a value of the wrong type (a slot size of 1.9
taken as 1, ``true`` as 1, a number as a name), a string where a list of files is expected, or
a device table with a stray key, is a ``ConfigError`` naming the file and the setting (exit
2), before any file it names is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from ironroot.cli import main
from ironroot.cose import encode_key_set
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import ConfigError
from ironroot.fleet import NodeClass
from ironroot.platform import COMPONENTS, DEVICES

_ECC = PrivateKey.generate(Algorithm.ES384)
_PQC = PrivateKey.generate(Algorithm.ML_DSA_87)
_SERVICE = PrivateKey.generate(Algorithm.ES256)


def _write(tmp_path: Path, change: tuple[str, str] = ("", "")) -> Path:
    (tmp_path / "ecc.pub.pem").write_bytes(_ECC.public_key.to_pem())
    (tmp_path / "mldsa.pub.pem").write_bytes(_PQC.public_key.to_pem())
    (tmp_path / "service-keys.cbor").write_bytes(encode_key_set([_SERVICE.public_key]))
    (tmp_path / "platform.toml").write_text(
        'platform = "pkg:platform/acme/node-1"\n'
        '[vendor]\necc = ["ecc.pub.pem"]\npqc = ["mldsa.pub.pem"]\n'
        '[transparency]\nservice_keys = ["service-keys.cbor"]\n'
        '[issuers]\nbmc = ["https://vendor.example"]\n'
    )
    for name in ("node.pfm", "node.pfm.ts", *(f"{c}.bin" for c in COMPONENTS)):
        (tmp_path / name).write_bytes(name.encode())
    (tmp_path / "bmc.ts").write_bytes(b"statement")
    text = (
        'name = "node-7"\ntrust = "platform.toml"\npfm = "node.pfm"\n'
        'pfm_statement = "node.pfm.ts"\n[images]\n'
        + "".join(f'{c} = "{c}.bin"\n' for c in COMPONENTS)
        + '[statements]\nbmc = ["bmc.ts"]\n'
        + "".join(
            f'[devices.{d}]\nvendor = "https://vendor.example"\nmodel = "pkg:fw/{d}"\n'
            for d in DEVICES
        )
        + "[slot_sizes]\n"
        + "".join(f"{c} = 65536\n" for c in COMPONENTS)
    )
    path = tmp_path / "class.toml"
    old, new = change
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return path


def test_a_plain_class_loads(tmp_path: Path) -> None:
    klass = NodeClass.load_toml(_write(tmp_path))
    assert klass.name == "node-7"
    assert klass.statements["bmc"] == (b"statement",)
    assert klass.slot_sizes == dict.fromkeys(COMPONENTS, 65536)
    assert klass.devices["nic"].model == "pkg:fw/nic"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('[statements]\nbmc = ["bmc.ts"]', '[statements]\nbmx = ["bmc.ts"]'),
            "statements.bmx is none of bmc, host, nic, gpu, nvme",
        ),
        (("bmc = 65536", "bmc = 1.9"), "slot_sizes.bmc is a number of bytes"),
        (("bmc = 65536", "bmc = true"), "slot_sizes.bmc is a number of bytes"),
        (("bmc = 65536", 'bmc = "65536"'), "slot_sizes.bmc is a number of bytes"),
        (("bmc = 65536", "bmc = 0"), "slot_sizes.bmc is a number of bytes"),
        (('name = "node-7"', "name = 7"), "name is text"),
        (('bmc = ["bmc.ts"]', 'bmc = "bmc.ts"'), "statements.bmc is a list of file names"),
        (('bmc = ["bmc.ts"]', "bmc = [1]"), "statements.bmc is a file name"),
        (('trust = "platform.toml"', "trust = 5"), "trust is a file name"),
        (
            ('model = "pkg:fw/nic"', 'model = "pkg:fw/nic"\nmodle = "x"'),
            "[devices.nic] takes vendor and model (text)",
        ),
        (('model = "pkg:fw/nic"', "model = 3"), "[devices.nic] takes vendor and model (text)"),
        (("[slot_sizes]\n", "[slot_sizes]\nrot = 1\n"), "slot_sizes.rot is none of"),
        (("[images]\n", "[images]\nbmcc = 'x'\n"), "images.bmcc is none of"),
        (('bmc = "bmc.bin"', 'bmc = ["bmc.bin"]'), "images.bmc is a file name"),
    ],
)
def test_a_setting_not_as_written_is_refused(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    path = _write(tmp_path, change)
    with pytest.raises(ConfigError) as caught:
        NodeClass.load_toml(path)
    assert caught.value.detail.startswith(f"{path}: {message}")


def test_a_named_file_that_is_a_folder_is_a_config_error(tmp_path: Path) -> None:
    path = _write(tmp_path)
    (tmp_path / "bmc.ts").unlink()
    (tmp_path / "bmc.ts").mkdir()
    with pytest.raises(ConfigError) as caught:
        NodeClass.load_toml(path)
    assert (
        caught.value.detail == f"statements.bmc: {tmp_path / 'bmc.ts'}: is a directory, not a file"
    )


def test_fleet_init_refuses_a_misspelt_component(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, ('[statements]\nbmc = ["bmc.ts"]', '[statements]\nbcm = ["bmc.ts"]'))
    fleet = tmp_path / "fleet"
    ca = str(tmp_path / "vendor-ca")
    assert (
        main(["fleet", "init", "--fleet", str(fleet), "--class", str(path), "--vendor-ca", ca]) == 2
    )
    err = capsys.readouterr().err
    assert f"ironroot: config: {path}: statements.bcm is none of bmc, host" in err
    assert not fleet.exists()
