"""``ironroot rim verify | register | appraise`` on NVIDIA's real RIMs and a live service."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from _rim_helpers import (
    DRIVER_FILE,
    DRIVER_ID,
    H100_NONCE,
    REGISTRANT,
    VBIOS_FILE,
    VBIOS_ID,
    RimLog,
    RimPki,
    golden_blocks,
    nvidia_dir,
    vector_blocks,
    vector_rim,
)
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.cli import main
from ironroot.cose import encode_key_set

AT = "2024-06-01T00:00:00Z"
LATER = "2026-12-04T00:00:00Z"


def _json(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1])  # type: ignore[no-any-return]


def test_verify_prints_the_rim(capsys: pytest.CaptureFixture[str]) -> None:
    path = nvidia_dir() / "rims" / VBIOS_FILE
    assert main(["rim", "verify", str(path), "--at", AT]) == 0
    out = capsys.readouterr().out
    assert "OK: GH100 RIM version 96.00.5E.00.01" in out
    assert "block   2 (index  1) HashedMeasurement_1_FSP: c3f65ef79a19c029…" in out
    assert main(["rim", "verify", str(path), "--at", AT, "--json"]) == 0
    doc = _json(capsys)
    assert doc["verified"] is True
    assert doc["version"] == "96.00.5E.00.01"
    assert doc["signer"] == "HCC RIM L4 Signer"
    assert [a["block"] for a in doc["active"]] == [1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13]  # type: ignore[index, union-attr]


def test_verify_refuses_an_expired_or_foreign_rim(
    capsys: pytest.CaptureFixture[str], pki: RimPki, tmp_path: Path
) -> None:
    path = nvidia_dir() / "rims" / VBIOS_FILE
    assert main(["rim", "verify", str(path), "--at", LATER, "--json"]) == 1
    assert _json(capsys)["error"]["code"] == "certificate-expired"  # type: ignore[index]
    root = tmp_path / "lab-root.pem"
    root.write_bytes(pki.root.public_bytes(Encoding.PEM))
    assert main(["rim", "verify", str(path), "--at", AT, "--root", str(root)]) == 1
    assert "chain-not-trusted" in capsys.readouterr().err
    broken = tmp_path / "broken.swidtag"
    broken.write_bytes(vector_rim(VBIOS_FILE).replace(b'active="True"', b'active="False"', 1))
    assert main(["rim", "verify", str(broken), "--at", AT]) == 1
    assert "bad-signature" in capsys.readouterr().err
    xxe = tmp_path / "xxe.swidtag"
    xxe.write_bytes(b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>')
    assert main(["rim", "verify", str(xxe), "--at", AT]) == 2
    assert "malformed-rim" in capsys.readouterr().err


def _registered(
    rim_log: RimLog, tmp_path: Path, capsys: pytest.CaptureFixture[str], key: Path
) -> tuple[Path, Path]:
    (tmp_path / "rims").mkdir()
    vbios_ts, driver_ts = tmp_path / "rims" / "vbios.ts", tmp_path / "rims" / "driver.ts"
    common = ["--url", rim_log.url, "--key", str(key), "--iss", REGISTRANT, "--at", AT]
    vbios = nvidia_dir() / "rims" / VBIOS_FILE  # the id comes from NVIDIA's file name
    assert main(["rim", "register", str(vbios), *common, "--out", str(vbios_ts), "--json"]) == 0
    assert _json(capsys)["rim_id"] == VBIOS_ID
    driver = nvidia_dir() / "rims" / DRIVER_FILE  # the id comes from the RIM
    assert main(["rim", "register", str(driver), *common, "--out", str(driver_ts)]) == 0
    assert f"registered {DRIVER_ID} as entry" in capsys.readouterr().out
    return vbios_ts, driver_ts


@pytest.fixture
def key_file(rim_log: RimLog, tmp_path: Path) -> Path:
    path = tmp_path / "registrant.key"
    path.write_bytes(rim_log.key.to_pem())
    return path


def test_register_then_appraise(
    rim_log: RimLog,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    key_file: Path,
) -> None:
    vbios_ts, driver_ts = _registered(rim_log, tmp_path, capsys, key_file)
    keys = tmp_path / "scitt-keys.cbor"
    keys.write_bytes(encode_key_set(list(rim_log.service_keys.values())))
    measurements = tmp_path / "gpu.json"
    blocks = golden_blocks(vector_rim(DRIVER_FILE), vector_rim(VBIOS_FILE))
    measurements.write_text(json.dumps({str(b): v.hex() for b, v in blocks.items()}))
    argv = [
        "rim", "appraise", "--measurements", str(measurements),
        "--rims", str(vbios_ts), "--rims", str(driver_ts),
        "--service-keys", str(keys), "--issuer", REGISTRANT,
        "--project", "1010", "--sku", "0200", "--chip", "882",
        "--vbios-version", "96.00.5E.00.01", "--driver-version", "545.00", "--at", AT,
    ]  # fmt: skip
    assert main([*argv, "--json"]) == 0
    doc = _json(capsys)
    assert (doc["driver_rim"], doc["vbios_rim"]) == (DRIVER_ID, VBIOS_ID)
    assert len(doc["matched"]) == 33  # type: ignore[arg-type]

    # the transparency service pinned by its issuer: its own passes, another is refused
    assert main([*argv, "--service-issuer", "https://transparency.example"]) == 0
    capsys.readouterr()
    caplog.clear()
    assert main([*argv, "--service-issuer", "https://another-ts.example", "--json"]) == 1
    assert _json(capsys)["error"]["code"] == "rim-not-found"  # type: ignore[index]
    assert "untrusted-service: no receipt of RIM statement" in caplog.text

    blocks[10] = bytes(48)
    measurements.write_text(json.dumps({str(b): v.hex() for b, v in blocks.items()}))
    assert main([*argv, "--json"]) == 1
    error = _json(capsys)["error"]
    assert error["code"] == "measurement-mismatch"  # type: ignore[index]
    assert "block 10 (RIM index 9, Measurement_9" in error["message"]  # type: ignore[index]

    # another registrant is not trusted for NVIDIA's RIMs: nothing is left to appraise with
    other = [
        *argv[: argv.index("--issuer") + 1],
        "https://other.example",
        *argv[argv.index("--issuer") + 2 :],
    ]
    assert main(other) == 1
    assert "rim-not-found" in capsys.readouterr().err
    assert "publisher-not-allowed" in caplog.text  # each refused statement is logged


def test_the_real_h100_report_is_refused_for_want_of_its_rims(
    rim_log: RimLog, tmp_path: Path, capsys: pytest.CaptureFixture[str], key_file: Path
) -> None:
    """End to end from the report: verified as nvidia-gpu evidence, its opaque data names
    driver 550.90.07 and VBIOS 96.00.9F.00.01, for which no RIM is on the log."""
    _registered(rim_log, tmp_path, capsys, key_file)
    keys = tmp_path / "scitt-keys.cbor"
    keys.write_bytes(encode_key_set(list(rim_log.service_keys.values())))
    base = nvidia_dir()
    argv = [
        "rim", "appraise", "--evidence", str(base / "hopperAttestationReport.txt"),
        "--cert", str(base / "hopperCertChain.txt"), "--nonce", H100_NONCE.hex(),
        "--rims", str(tmp_path / "rims"), "--service-keys", str(keys),
        "--issuer", REGISTRANT, "--at", AT,
    ]  # fmt: skip
    assert main(argv) == 1
    assert "rim-not-found: no driver RIM NV_GPU_DRIVER_GH100_550.90.07" in capsys.readouterr().err
    assert main([*argv[:-2], "--nonce", "00" * 32, "--at", AT]) == 1  # another nonce
    assert "nonce" in capsys.readouterr().err
    assert main([*argv, "--project", "1010"]) == 2  # the board comes from the report
    assert "come from the report" in capsys.readouterr().err
    measurements = tmp_path / "h100.json"
    measurements.write_text(json.dumps({str(b): v.hex() for b, v in vector_blocks().items()}))
    assert main(["rim", "appraise", "--measurements", str(measurements), *argv[8:]]) == 2
    assert "--measurements needs --project" in capsys.readouterr().err


def test_a_vbios_rim_needs_its_board(
    rim_log: RimLog, tmp_path: Path, capsys: pytest.CaptureFixture[str], key_file: Path
) -> None:
    renamed = tmp_path / "vbios.swidtag"
    renamed.write_bytes(vector_rim(VBIOS_FILE))
    common = ["--url", rim_log.url, "--key", str(key_file), "--iss", REGISTRANT, "--at", AT]
    assert main(["rim", "register", str(renamed), *common]) == 2
    assert "needs the board" in capsys.readouterr().err
    board = ["--project", "1010", "--sku", "0200", "--chip", "882"]
    assert main(["rim", "register", str(renamed), *common, *board, "--json"]) == 0
    assert _json(capsys)["rim_id"] == VBIOS_ID
    assert (tmp_path / "vbios.swidtag.ts").is_file()
    wrong = "NV_GPU_VBIOS_1010_0200_882_96005E0003"
    assert main(["rim", "register", str(renamed), *common, "--id", wrong]) == 1
    assert "rim-id-mismatch" in capsys.readouterr().err


@pytest.mark.parametrize(
    "body",
    [
        '{"\u00b2": "00"}',  # a digit to str.isdigit, not to int()
        '{"1%s": "00"}' % ("0" * 5000),  # past int()'s 4,300 digits
        '{"1": "00", "1": "11"}',  # one block twice: which value counts would be the reader's
        '{"1": "00", "01": "11"}',  # the same block by another spelling
        '{"1": 1%s}' % ("0" * 5000),  # a number past int()'s digits, in the JSON itself
        '{"1": NaN}',
    ],
    ids=["superscript", "long-index", "duplicate", "padded-duplicate", "long-number", "nan"],
)
def test_appraise_refuses_a_malformed_measurements_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str
) -> None:
    from ironroot.crypto import Algorithm, PrivateKey

    keys = tmp_path / "scitt.pem"
    keys.write_bytes(PrivateKey.generate(Algorithm.ES256).public_key.to_pem())
    (tmp_path / "rims").mkdir()
    measurements = tmp_path / "gpu.json"
    measurements.write_text(body, encoding="utf-8")
    argv = [
        "rim", "appraise", "--measurements", str(measurements), "--rims", str(tmp_path / "rims"),
        "--service-keys", str(keys), "--issuer", REGISTRANT, "--project", "1010", "--sku",
        "0200", "--chip", "882", "--vbios-version", "96.00.5E.00.01", "--driver-version", "545.00",
        "--at", AT, "--json",
    ]  # fmt: skip
    assert main(argv) == 2
    assert _json(capsys)["error"]["code"] == "malformed"  # type: ignore[index]


_INDEXES = st.sampled_from(
    ["1", "01", "254", "255", "0", "\u00b2", "\u0661", "1" * 5000, " 1", "x"]
)
_VALUES = st.sampled_from(["00" * 48, "zz", "", "0"]) | st.integers() | st.none() | st.floats()


@settings(max_examples=examples(25), deadline=None)
@given(
    body=st.dictionaries(_INDEXES | st.text(max_size=4), _VALUES, max_size=4).map(json.dumps)
    | st.sampled_from(["[" * 5000, '{"1": 1' + "0" * 5000 + "}", "\ufeff{}", "{}"])
)
def test_appraise_any_measurements_file_is_refused_typed(body: str) -> None:
    """Whatever the measurements file holds: malformed (2), or no RIM for it (1)."""
    import contextlib
    import io

    from ironroot.crypto import Algorithm, PrivateKey

    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        (tmp / "scitt.pem").write_bytes(PrivateKey.generate(Algorithm.ES256).public_key.to_pem())
        (tmp / "rims").mkdir()
        (tmp / "gpu.json").write_text(body, encoding="utf-8")
        argv = [
            "rim", "appraise", "--measurements", str(tmp / "gpu.json"), "--rims",
            str(tmp / "rims"), "--service-keys", str(tmp / "scitt.pem"), "--issuer", REGISTRANT,
            "--project", "1010", "--sku", "0200", "--chip", "882", "--vbios-version", "96",
            "--driver-version", "545.00", "--at", AT, "--json",
        ]  # fmt: skip
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            code = main(argv)
    error = json.loads(out.getvalue())["error"]
    assert (code, error["code"]) in ((2, "malformed"), (1, "rim-not-found")), error


def test_verify_shows_the_rim_s_text_as_written(
    capsys: pytest.CaptureFixture[str], pki: RimPki, tmp_path: Path
) -> None:
    """A RIM's product, version and measurement names are its signer's text: a right-to-left
    override or a zero-width space in them reached the terminal as it is (XML holds no
    escape character, but these it holds)."""
    from _rim_helpers import swid

    resources = (
        '<Resource type="Measurement" index="0" active="True" alternatives="1" '
        f'ns2:Hash0="{"11" * 48}" name="Measure\u200bment_0" size="48"/>'
    )
    unsigned = swid(product="GH\u202e100", version="1.0\u2066", resources=resources)
    path = tmp_path / "hostile.swidtag"
    path.write_bytes(pki.sign(unsigned))
    root = tmp_path / "lab-root.pem"
    root.write_bytes(pki.root.public_bytes(Encoding.PEM))
    assert main(["rim", "verify", str(path), "--at", AT, "--root", str(root)]) == 0
    out = capsys.readouterr().out
    for raw in ("\u202e", "\u2066", "\u200b"):
        assert raw not in out, out
    assert out.startswith("OK: GH[U+202E]100 RIM version 1.0[U+2066] (tag test-tag…)"), out
    assert "(index  0) Measure[U+200B]ment_0: 1111111111111111…\n" in out, out
