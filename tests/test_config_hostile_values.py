"""Configuration files with values no operator meant: every one is a typed error (a
``ConfigError`` naming what is wrong, exit 2 from the command line; or the ``OSError`` of a
path the system refuses, such as a name over 255 bytes, which ``main()`` makes exit 2 too),
never a ``ValueError``, ``TypeError`` or ``UnicodeError`` escaping as an ``internal-error``.

TOML lets a string hold any character, a NUL byte too (``"\\u0000"``): no file can be named
with one, so a path holding one names no file. A host name IDNA cannot encode (an empty
label, a label over 63 characters, a character IDNA refuses) is no host to listen on.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import math
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.attestation import init_attestation_dir, load_attestation_config
from ironroot.cli import main
from ironroot.errors import ConfigError, IronrootError
from ironroot.http import check_listen
from ironroot.keyrelease import load_keyrelease_config
from ironroot.platform import PlatformTrust
from ironroot.transparency import init_data_dir, load_config
from ironroot.web import load_dashboard_config
from ironroot.witness import init_witness_dir, load_witness_config
from test_config_writable import _platform

# --- a NUL byte in a path --------------------------------------------------------------------


def test_a_nul_byte_in_the_attestation_signing_key_is_a_config_error(tmp_path: Path) -> None:
    init_attestation_dir(tmp_path)
    path = tmp_path / "attestation.toml"
    text = path.read_text().replace(
        'signing_key = "verifier-es384.pem"', 'signing_key = "verifier\\u0000.pem"'
    )
    path.write_text(text)
    config = load_attestation_config(tmp_path)
    with pytest.raises(ConfigError) as caught, config.open_service(dt.datetime.now(dt.UTC)):
        pass
    assert caught.value.detail.startswith(f"cannot read {tmp_path / 'verifier'}")
    assert caught.value.detail.endswith("a file name cannot hold a NUL byte")
    evidence = tmp_path / "evidence.bin"
    evidence.write_bytes(b"not evidence")
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["attest", "appraise", str(evidence), "--data", str(tmp_path)])
    assert code == 2
    assert err.getvalue().startswith("ironroot: config: cannot read ")
    assert "internal-error" not in err.getvalue()


def test_a_nul_byte_in_the_attestation_policy_file_is_a_config_error(tmp_path: Path) -> None:
    init_attestation_dir(tmp_path)
    path = tmp_path / "attestation.toml"
    path.write_text(path.read_text().replace('policy_file = ""', 'policy_file = "p\\u0000"'))
    with pytest.raises(ConfigError, match="a file name cannot hold a NUL byte"):
        load_attestation_config(tmp_path).load_policy()


def test_a_nul_byte_in_the_dashboard_metrics_token_file_is_a_config_error(
    tmp_path: Path,
) -> None:
    (tmp_path / "dashboard.toml").write_text('[metrics]\ntoken_file = "t\\u0000"\n')
    with pytest.raises(ConfigError) as caught:
        load_dashboard_config(tmp_path)
    assert caught.value.detail == (
        f"{tmp_path / 't'}\x00: the metrics token cannot be read: "
        "a file name cannot hold a NUL byte"
    )


def test_a_nul_byte_in_a_platform_vendor_key_is_a_config_error(tmp_path: Path) -> None:
    path, _load = _platform(tmp_path)
    path.write_text(path.read_text().replace('ecc = ["ecc.pub.pem"]', 'ecc = ["e\\u0000"]'))
    with pytest.raises(ConfigError, match="a file name cannot hold a NUL byte"):
        PlatformTrust.load_toml(path)


# --- a host that is no host -----------------------------------------------------------------


@pytest.mark.parametrize("host", ["..", "a" * 64, "\u202e", "a..b"])
def test_a_host_idna_cannot_encode_is_a_config_error(host: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_listen(host, 8100)
    assert caught.value.detail.startswith(f"host {host}: not a host name (")


def test_serve_with_such_a_host_exits_2(tmp_path: Path) -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["serve", "--data", str(tmp_path / "ts"), "--host", "..", "--port", "8111"])
    assert code == 2
    assert err.getvalue().startswith("ironroot: config: host ..: not a host name (")
    assert not (tmp_path / "ts").exists()  # refused before anything is created


# --- the witness's algorithms ---------------------------------------------------------------


@pytest.mark.parametrize("value", ["[[1]]", "[{ a = 1 }]", '["Ed25519", ["Ed25519"]]'])
def test_witness_algorithms_of_tables_or_arrays_are_a_config_error(
    tmp_path: Path, value: str
) -> None:
    init_witness_dir(tmp_path, name="witness.example/w1")
    path = tmp_path / "witness.toml"
    path.write_text(path.read_text().replace('algorithms = ["Ed25519"]', f"algorithms = {value}"))
    with pytest.raises(ConfigError) as caught:
        load_witness_config(tmp_path)
    assert caught.value.detail == (
        f"{path}: witness.algorithms must list one or both of Ed25519, ML-DSA-44"
    )


# --- any value anywhere: a typed error or a configuration --------------------------------------


def _toml(value: Any) -> str:
    """``value`` as a TOML value (inline tables and arrays; nan and inf as TOML spells them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"


def _document(doc: dict[str, Any]) -> str:
    lines = [f"{json.dumps(k)} = {_toml(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    for name, table in doc.items():
        if isinstance(table, dict):
            lines.append(f"[{json.dumps(name)}]")
            lines += [f"{json.dumps(k)} = {_toml(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


_SCALARS = st.one_of(
    st.text(max_size=8),
    st.sampled_from(["", "x\x00y", "..", "a" * 300, "Ed25519", "ES384", "127.0.0.1"]),
    st.integers(),
    st.sampled_from([0, -1, 2**63, 10**30, 65536]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.dates(),
    st.datetimes(timezones=st.just(dt.UTC)),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "url", "key", "iss", "origin"]), inner, max_size=2)
    ),
    max_leaves=6,
)


def _keys_of(doc: dict[str, Any]) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = [("zz_unknown",)]
    for name, value in doc.items():
        out.append((name,))
        if isinstance(value, dict):
            out += [(name, key) for key in [*value, "zz_unknown"]]
    return out


def _transparency(tmp: Path) -> tuple[Path, Callable[[], object]]:
    init_data_dir(tmp)
    return tmp / "ironroot.toml", lambda: load_config(tmp)


def _attestation(tmp: Path) -> tuple[Path, Callable[[], object]]:
    init_attestation_dir(tmp)

    def load() -> None:
        with load_attestation_config(tmp).open_service(dt.datetime.now(dt.UTC)):
            pass

    return tmp / "attestation.toml", load


def _witness(tmp: Path) -> tuple[Path, Callable[[], object]]:
    init_witness_dir(tmp, name="witness.example/w1")
    return tmp / "witness.toml", lambda: load_witness_config(tmp).cosigners()


def _dashboard(tmp: Path) -> tuple[Path, Callable[[], object]]:
    token = tmp / "metrics.token"
    token.write_text("t" * 40)
    token.chmod(0o600)
    (tmp / "dashboard.toml").write_text(
        'title = "X"\nallowed_hosts = ["dash.example"]\n[session]\nlifetime = 3600\n'
        "[login]\nmax_failures = 5\nwindow = 300\n"
        '[metrics]\ntoken_file = "metrics.token"\n[server]\nmax_connections = 4\n'
    )
    return tmp / "dashboard.toml", lambda: load_dashboard_config(tmp)


def _keyrelease(tmp: Path) -> tuple[Path, Callable[[], object]]:
    (tmp / "keyrelease.toml").write_text(
        '[keyrelease]\nport = 8200\nnonce_lifetime = 300\nadmin = "loopback"\n'
        'keep_statements = 10\n[keyrelease.hsm]\ndir = "hsm"\nrot_device = "rot"\n'
        'sealing_secret_file = "s"\nidentity = "kr"\ncredential_file = "c"\n'
        '[keyrelease.keys.db]\nhandle = "h"\n[challenges]\nrate = 1.0\n'
    )
    return tmp / "keyrelease.toml", lambda: load_keyrelease_config(tmp)


def _policy(tmp: Path) -> tuple[Path, Callable[[], object]]:
    from ironroot.attestation import AppraisalPolicy

    path = tmp / "policy.toml"
    path.write_text(
        'name = "lab"\ncvss_threshold = 7.0\nsnp_vmpls = [0]\n'
        'rules = [{ name = "fresh", expression = "nonce_ok", category = "instance-identity", '
        'code = 96, reason = "stale", gate = true }]\n'
        "[affirm]\nhardware = 2\n[affirm_by_format]\nsnp = { hardware = 2 }\n"
        '[components]\nsnp = ["measurement"]\n[svn_claim]\nsnp = "tcb"\n'
    )
    return path, lambda: AppraisalPolicy.from_toml(path.read_text())


_LOADERS = {
    "keyrelease": _keyrelease,
    "policy": _policy,
    "transparency": _transparency,
    "attestation": _attestation,
    "witness": _witness,
    "platform": _platform,
    "dashboard": _dashboard,
}


@pytest.mark.parametrize("loader", sorted(_LOADERS))
def test_any_value_at_any_key_loads_or_is_a_typed_error(
    loader: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path, load = _LOADERS[loader](tmp_path_factory.mktemp(loader))
    original = tomllib.loads(path.read_text())
    keys = _keys_of(original)

    @settings(
        max_examples=examples(60),
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(st.sampled_from(keys), _VALUES)
    def check(key: tuple[str, ...], value: Any) -> None:
        doc = json.loads(json.dumps(original))
        if len(key) == 2 and not isinstance(doc.get(key[0]), dict):
            doc[key[0]] = {}
        (doc[key[0]] if len(key) == 2 else doc)[key[-1]] = value
        path.write_text(_document(doc))
        # OSError (a name too long): exit 2 from main() as well
        with contextlib.suppress(IronrootError, OSError):
            load()

    try:
        check()
    finally:
        path.write_text(_document(original))


@pytest.mark.parametrize("loader", sorted(_LOADERS))
def test_an_integer_of_thousands_of_digits_is_a_config_error(
    loader: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """tomllib turns an integer's text into an int with int(), which refuses more than 4,300
    digits with a plain ``ValueError``, not a ``TOMLDecodeError``: it escaped every loader."""
    path, load = _LOADERS[loader](tmp_path_factory.mktemp(loader))
    path.write_text("zz_huge = 1" + "0" * 4400 + "\n" + path.read_text())
    with pytest.raises(ConfigError) as caught:
        load()
    assert type(caught.value) is ConfigError
    assert "TOML" in caught.value.detail
    assert "4300 digits" in caught.value.detail


# --- the appraisal policy file ---------------------------------------------------------------

_RULE = (
    '[[policy.rules]]\nname = "fresh"\nexpression = "nonce_ok"\n'
    'category = "instance-identity"\ncode = 96\nreason = "stale"\n'
)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        # a misspelt "gate" left the rule no gate: a weaker policy than the operator wrote
        ("gates = true\n", "rule fresh: unknown setting 'gates'"),
        ('gate = "false"\n', "rule fresh: gate must be true or false"),
        ("gate = 1\n", "rule fresh: gate must be true or false"),
    ],
)
def test_a_policy_rule_with_an_unknown_or_mistyped_setting_is_refused(
    extra: str, message: str
) -> None:
    from ironroot.attestation import AppraisalPolicy

    with pytest.raises(ConfigError) as caught:
        AppraisalPolicy.from_toml('[policy]\nname = "lab"\n' + _RULE + extra)
    assert caught.value.detail == message


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("affirm_by_format = { snp = 2 }", "policy affirm_by_format.snp must be a table"),
        ("affirm_by_format = { snp = [] }", "policy affirm_by_format.snp must be a table"),
        ("name = 7", "policy name must be text"),
    ],
)
def test_a_policy_setting_of_the_wrong_type_is_a_config_error(setting: str, message: str) -> None:
    from ironroot.attestation import AppraisalPolicy

    with pytest.raises(ConfigError) as caught:
        AppraisalPolicy.from_toml(f"[policy]\n{setting}\n")
    assert caught.value.detail == message


@pytest.mark.parametrize("value", ["31622401", "1000000000000000000000000000000"])
def test_a_result_lifetime_past_a_year_is_a_config_error(tmp_path: Path, value: str) -> None:
    """``result_lifetime = 1e30`` signed EARs whose ``exp`` (a float past the year 9999) no
    reader, the verifier's own ``attest explain`` included, could parse."""
    init_attestation_dir(tmp_path)
    path = tmp_path / "attestation.toml"
    path.write_text(
        path.read_text().replace("result_lifetime = 3600", f"result_lifetime = {value}")
    )
    with pytest.raises(ConfigError) as caught:
        load_attestation_config(tmp_path)
    assert caught.value.detail == (
        f"{path}: attestation.result_lifetime must be a number of seconds from 1 to 31622400 "
        "(366 days)"
    )
