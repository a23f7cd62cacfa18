"""PlatformTrust: strict JSON round trip, the operator's platform.toml (keys by file path), and
the refusals of a trust that could not be right."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ironroot.cose import encode_key_set
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import ConfigError
from ironroot.firmware import key_descriptor_hash
from ironroot.platform import PlatformTrust, SafeRequirement
from ironroot.safe import ProviderKey, ProviderKeys

PLATFORM = "pkg:platform/acme/node-1"
VENDOR_ISS = "https://vendor.example"


class Keys:
    def __init__(self) -> None:
        self.ecc = [PrivateKey.generate(Algorithm.ES384) for _ in range(2)]
        self.pqc = [PrivateKey.generate(Algorithm.ML_DSA_87)]
        self.service = PrivateKey.generate(Algorithm.ES256)
        self.provider = PrivateKey.generate(Algorithm.ES384)

    def trust(self, **changes: object) -> PlatformTrust:
        args: dict[str, object] = {
            "platform": PLATFORM,
            "vendor_ecc": tuple(k.public_key.to_der() for k in self.ecc),
            "vendor_pqc": tuple(k.public_key.to_der() for k in self.pqc),
            "service_keys": {self.service.kid: self.service.public_key},
            "issuers": {"bmc": frozenset({VENDOR_ISS}), "pfm": frozenset({VENDOR_ISS})},
            "safe": {
                "bmc": SafeRequirement(
                    ProviderKeys(
                        [ProviderKey(self.provider.public_key, frozenset({"Example Provider"}))]
                    ),
                    "medium",
                )
            },
        }
        args.update(changes)
        return PlatformTrust(**args)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


def test_trust_round_trips_through_json(keys: Keys) -> None:
    trust = keys.trust(healthy_boots=5)
    doc = json.loads(json.dumps(trust.to_json()))
    again = PlatformTrust.from_json(doc)
    assert again == trust
    assert again.to_json() == trust.to_json()
    assert again.safe["bmc"].providers.lookup("Example Provider") == keys.provider.public_key
    assert again.vendor_key_hash == key_descriptor_hash(
        [k.public_key for k in keys.ecc], [k.public_key for k in keys.pqc], "mldsa"
    )
    assert again.issuers_of("host") == frozenset()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(extra=1), "unknown member"),
        (lambda d: d.pop("issuers"), "lacks 'issuers'"),
        (lambda d: d.update(format="other/9"), "unknown platform trust format"),
        (lambda d: d.update(service_keys=[]), "at least one transparency service key"),
        (lambda d: d.update(vendor_ecc=["%%%"]), "not valid base64"),
        (lambda d: d.update(vendor_ecc=d["vendor_pqc"]), "not ES384"),
        (lambda d: d.update(vendor_pqc=[]), "1 to 32"),
        (lambda d: d.update(healthy_boots=0), "healthy_boots is 1 to"),
        (lambda d: d.update(healthy_boots=True), "healthy_boots is an integer"),
        (lambda d: d["issuers"].update(bmc="https://vendor.example"), "list of names"),
        (lambda d: d["safe"]["bmc"].update(max_severity="severe"), "max_severity is one of"),
        # another case or padding of a severity name is not that severity (fail closed)
        (lambda d: d["safe"]["bmc"].update(max_severity="High"), "max_severity is one of"),
        (lambda d: d["safe"]["bmc"].update(max_severity="CRITICAL"), "max_severity is one of"),
        (lambda d: d["safe"]["bmc"].update(max_severity=" low"), "max_severity is one of"),
        (lambda d: d["safe"]["bmc"].update(max_severity=9.0), "max_severity is text"),
    ],
)
def test_from_json_is_strict(keys: Keys, change: object, message: str) -> None:
    doc = json.loads(json.dumps(keys.trust().to_json()))
    change(doc)  # type: ignore[operator]
    with pytest.raises(ConfigError, match=message):
        PlatformTrust.from_json(doc)


def test_a_service_key_under_another_kid_is_refused(keys: Keys) -> None:
    other = PrivateKey.generate(Algorithm.ES256).public_key
    with pytest.raises(ConfigError, match="thumbprint"):
        keys.trust(service_keys={keys.service.kid: other})


def test_severities_say_which_open_finding_refuses(keys: Keys) -> None:
    providers = ProviderKeys()
    assert SafeRequirement(providers, "none").refused_at == 0.1
    assert SafeRequirement(providers, "medium").refused_at == 7.0
    assert SafeRequirement(providers, "critical").refused_at is None


def _write_operator_dir(tmp_path: Path, keys: Keys) -> Path:
    (tmp_path / "vendor").mkdir()
    for i, k in enumerate(keys.ecc):
        (tmp_path / "vendor" / f"ecc{i}.pub.pem").write_bytes(k.public_key.to_pem())
    (tmp_path / "vendor" / "mldsa.pub.pem").write_bytes(keys.pqc[0].public_key.to_pem())
    (tmp_path / "service-keys.cbor").write_bytes(encode_key_set([keys.service.public_key]))
    providers = tmp_path / "review-providers" / "Example_Provider"
    providers.mkdir(parents=True)
    (providers / "provider.pub.pem").write_bytes(keys.provider.public_key.to_pem())
    config = tmp_path / "platform.toml"
    config.write_text(
        f"""
platform = "{PLATFORM}"
healthy_boots = 2

[vendor]
ecc = ["vendor/ecc0.pub.pem", "vendor/ecc1.pub.pem"]
pqc = ["vendor/mldsa.pub.pem"]

[transparency]
service_keys = ["service-keys.cbor"]

[issuers]
bmc = ["{VENDOR_ISS}"]
pfm = ["{VENDOR_ISS}"]

[safe.bmc]
providers = ["review-providers"]
max_severity = "medium"
"""
    )
    return config


def test_load_toml_reads_keys_by_file_path(tmp_path: Path, keys: Keys) -> None:
    trust = PlatformTrust.load_toml(_write_operator_dir(tmp_path, keys))
    assert trust.platform == PLATFORM
    assert trust.healthy_boots == 2
    assert trust.ecc_keys == tuple(k.public_key for k in keys.ecc)
    assert trust.pqc_keys == (keys.pqc[0].public_key,)
    assert dict(trust.service_keys) == {keys.service.kid: keys.service.public_key}
    assert trust.issuers_of("pfm") == frozenset({VENDOR_ISS})
    requirement = trust.safe["bmc"]
    assert requirement.max_severity == "medium"
    assert requirement.providers.lookup("Example Provider") == keys.provider.public_key
    assert PlatformTrust.from_json(trust.to_json()) == trust


def test_load_toml_refuses_a_key_of_the_wrong_algorithm(tmp_path: Path, keys: Keys) -> None:
    config = _write_operator_dir(tmp_path, keys)
    (tmp_path / "vendor" / "mldsa.pub.pem").write_bytes(keys.ecc[0].public_key.to_pem())
    with pytest.raises(ConfigError, match="not ML-DSA-87"):
        PlatformTrust.load_toml(config)


def test_load_toml_refuses_a_missing_file_and_unknown_settings(tmp_path: Path, keys: Keys) -> None:
    config = _write_operator_dir(tmp_path, keys)
    (tmp_path / "service-keys.cbor").unlink()
    with pytest.raises(ConfigError, match="does not exist"):
        PlatformTrust.load_toml(config)
    config.write_text(config.read_text().replace("healthy_boots", "healthy_boot"))
    with pytest.raises(ConfigError, match="unknown member 'healthy_boot'"):
        PlatformTrust.load_toml(config)


def test_load_toml_refuses_a_service_key_that_is_not_a_key(tmp_path: Path, keys: Keys) -> None:
    config = _write_operator_dir(tmp_path, keys)
    (tmp_path / "service-keys.cbor").write_bytes(b"\x81\xa1\x01\x02")
    with pytest.raises(ConfigError, match=r"service-keys\.cbor"):
        PlatformTrust.load_toml(config)


def test_the_service_issuer_is_optional_and_persisted(tmp_path: Path, keys: Keys) -> None:
    # absent (existing trust files): no issuer check, and none written back
    config = _write_operator_dir(tmp_path, keys)
    assert PlatformTrust.load_toml(config).service_issuer is None
    assert "service_issuer" not in keys.trust().to_json()
    config.write_text(
        config.read_text().replace(
            'service_keys = ["service-keys.cbor"]',
            'service_keys = ["service-keys.cbor"]\nservice_issuer = "https://ts.example"',
        )
    )
    trust = PlatformTrust.load_toml(config)
    assert trust.service_issuer == "https://ts.example"
    assert PlatformTrust.from_json(json.loads(json.dumps(trust.to_json()))) == trust
    for bad in ("", 7, "x" * 257):
        with pytest.raises(ConfigError, match="the transparency service's issuer is text"):
            keys.trust(service_issuer=bad)
