"""Builders shared by the SAFE tests: a JSON report, provider keys, a service data folder."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from ironroot.crypto import Algorithm, PrivateKey, PublicKey
from ironroot.safe import ProviderKey, ProviderKeys
from ironroot_vectors import vectors_dir

SHA384 = "a1" * 48
SHA512 = "b2" * 64
KID = "Example Review Provider"
STATEMENT_ISS = "https://safe.example"

REPORT: dict[str, Any] = {
    "review_framework_version": "1.1",
    "device": {
        "vendor": "ACME Inc",
        "product": "Roadrunner Trap",
        "category": "storage",
        "repo_tag": "release_v1_2_3",
        "fw_version": "1.2.3",
        "fw_hash_sha2_384": SHA384,
        "fw_hash_sha2_512": SHA512,
    },
    "audit": {
        "srp": KID,
        "methodology": "whitebox",
        "completion_date": "2023-06-25",
        "report_version": "1.2",
        "scope_number": 1,
        "cvss_version": "3.1",
        "issues": [
            {
                "title": "Memory corruption when reading record from SPI flash",
                "cvss_score": "7.9",
                "cvss_vector": "AV:L/AC:L/PR:L/UI:N/S:C/C:L/I:H/A:L",
                "cwe": "CWE-111",
                "description": "A local attacker can corrupt the stack.",
                "cve": None,
            },
            {
                "title": "Debug commands enable arbitrary memory read/write",
                "cvss_score": "4.2",
                "cvss_vector": "AV:L/AC:L/PR:H/UI:N/S:U/C:L/I:L/A:L",
                "cwe": "CWE-222",
                "description": "Debug handlers reach arbitrary SRAM.",
                "cve": "CVE-2014-10000",
            },
        ],
    },
}


def report(**changes: Any) -> dict[str, Any]:
    """A deep copy of REPORT; ``device__x=...`` / ``audit__x=...`` / ``x=...`` set members
    (``None`` deletes)."""
    out = copy.deepcopy(REPORT)
    for name, value in changes.items():
        where: dict[str, Any] = out
        if "__" in name:
            part, name = name.split("__", 1)
            where = out[part]
        if value is None:
            where.pop(name, None)
        else:
            where[name] = value
    return out


def report_bytes(**changes: Any) -> bytes:
    return json.dumps(report(**changes)).encode()


def provider(algorithm: Algorithm = Algorithm.ES512) -> tuple[PrivateKey, ProviderKeys]:
    key = PrivateKey.generate(algorithm)
    return key, store(key.public_key)


def store(*keys: PublicKey, kid: str = KID) -> ProviderKeys:
    return ProviderKeys([ProviderKey(k, frozenset((kid,))) for k in keys])


def ocp_safe() -> Path | None:
    base = vectors_dir()
    folder = base / "ocp-safe" if base else None
    return folder if folder is not None and folder.is_dir() else None


def write_service_config(data: Path, issuer_key: PrivateKey) -> Path:
    data.mkdir(parents=True, exist_ok=True)
    (data / "issuer.pub.pem").write_bytes(issuer_key.public_key.to_pem())
    (data / "ironroot.toml").write_text(
        "\n".join(
            [
                "[transparency]",
                'service_issuer = "https://transparency.example"',
                'receipt_algorithms = ["ES384"]',
                "registration_wait = 5.0",
                "[[transparency.issuers]]",
                f'iss = "{STATEMENT_ISS}"',
                'key = "issuer.pub.pem"',
                "[log]",
                'checkpoint_algorithm = "Ed25519"',
                "[auth]",
                "write_tokens = []",
            ]
        )
        + "\n"
    )
    return data
