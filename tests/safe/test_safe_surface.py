"""The public surface of ``ironroot.safe`` is exactly what was meant, and the layer imports
nothing above it."""

from __future__ import annotations

import ast
from pathlib import Path

import ironroot.safe

_SRC = Path(ironroot.safe.__file__).parent
# safe builds on crypto, cose and (for publication) transparency only, so the attestation
# verifier can use its query API without a cycle.
_ALLOWED = frozenset(
    ("_fileio", "_lazy", "crypto", "cose", "errors", "safe", "transparency", "merkle")
)


def test_public_surface() -> None:
    assert sorted(ironroot.safe.__all__) == sorted(
        [
            "ACCEPTED_JWS_ALGORITHMS", "CLOCK_SKEW", "DEFAULT_SAFE_LIMITS", "SFR_COSE_CONTENT_TYPE",
            "SFR_JWS_CONTENT_TYPE", "SFR_PROFILE_OID", "Audit", "CompactJws", "Device", "Issue",
            "ManifestEntry", "ProviderKey", "ProviderKeys", "ReportFormat", "Review", "SafeLimits",
            "ShortFormReport", "UnverifiedReport", "VerifiedReport", "build_sfr_corim",
            "corim_dropped_fields", "cvss_base_score",
            "firmware_subject", "has_issue_at_or_above", "inspect_report", "max_open_cvss",
            "parse_compact_jws", "parse_firmware_hash", "parse_report_json", "parse_sfr_corim",
            "provider_names", "report_format", "review_from_statement", "reviews_for",
            "sfr_statement", "sign_report", "verify_report",
        ]
    )  # fmt: skip
    for name in ironroot.safe.__all__:
        assert getattr(ironroot.safe, name) is not None


def test_imports_only_lower_layers() -> None:
    for path in _SRC.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                parts = node.module.split(".")
                if parts[0] == "ironroot" and len(parts) > 1:
                    assert parts[1] in _ALLOWED, f"{path.name} imports {node.module}"


def test_no_clock_in_the_core() -> None:
    for path in _SRC.glob("*.py"):
        text = path.read_text()
        assert ".now(" not in text, path.name
        assert "time.time(" not in text, path.name
