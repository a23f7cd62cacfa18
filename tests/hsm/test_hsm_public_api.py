"""The public surface of ironroot.hsm is exactly what we meant, and it stays in its layer."""

from __future__ import annotations

import ast
from pathlib import Path

import ironroot.hsm

EXPECTED = [
    "ATTESTATION_CONTENT_TYPE",
    "CHECKPOINT_CONTENT_TYPE",
    "DEFAULT_KATS",
    "MAX_AUDIT_FILE",  # the most any reader takes of one audit log file (live or segment)
    "MAX_QUORUM",  # the largest officer quorum: a login takes at most MAX_QUORUM - 1 approvers
    "Approval",  # what Hsm.approve returns: one dual-control operation approved, used once
    "AuditCheckpoint",
    "AuditRecord",
    "AuditReport",
    "AuditSpan",
    "AttestationChain",
    "BuiltinBackend",
    "DeviceIdentity",
    "DirectoryStorage",
    "Hsm",
    "HsmConfig",
    "HsmSigner",
    "HsmStorage",
    "Kat",
    "KeyAttestation",
    "KeyAttributes",
    "KeyBackend",
    "KeyInfo",
    "KeyType",
    "MemoryStorage",
    "Pkcs11Backend",
    "Role",
    "ServiceKeys",
    "ServiceKeysConfig",
    "Session",
    "Usage",
    "format_audit_log",
    "parse_audit_log",
    "parse_segment_name",
    "unwrap_key_kem",
    "unwrap_key_rsa_aes",
    "verify_audit",
    "verify_audit_checkpoint",
    "verify_audit_segments",
    "verify_attestation_chain",
    "verify_key_attestation",
    "wrap_key_kem",
    "wrap_key_rsa_aes",
    # the release decision, made inside the boundary
    "CEL_VARIABLES",
    "NONCE_SIZE",
    "RELEASE_STATUSES",
    "REPORT_DATA_SIZE",
    "WRAPPING_KEY_KINDS",
    "AzureReleasePolicy",
    "CelReleasePolicy",
    "PolicyCache",
    "ReleaseContext",
    "ReleasePolicy",
    "TrustedVerifier",
    "WrappingKey",
    "authorize_release",
    "bind_report_data",
    "check_sealed_audit",
    "check_wrapped_material",
    "HsmRelease",
    "ReleaseStatement",
    "RELEASE_STATEMENT_CONTENT_TYPE",
    "verify_release_statement",  # a TEE checks the released material is of its named type
    "open_release_statement",  # an auditor checks a kept statement without the wrapped key
    "ReleaseBinding",  # what a release's audit record binds (ADR 0015)
    "OwedRefusals",  # refusals left to the caller's own wait (Hsm.owing_refusals)
    "release_records",  # a chain's granted releases by statement digest
    "check_binding",
    "check_composite_binding",
    "driver_number",
    "parse_release_policy",
    "release_claims",
    "seal",  # the sealed-store format, also for a node's credential keys (ironroot.fleet)
    "unseal",
]


def test_all_is_exact() -> None:
    assert sorted(ironroot.hsm.__all__) == sorted(EXPECTED)
    for name in EXPECTED:
        assert getattr(ironroot.hsm, name) is not None


def test_imports_stay_below_the_layer() -> None:
    """The HSM imports only crypto, cose, ear (to check attestation results itself), rot (its
    monotonic counter), the CEL result check (release policies), the strict JSON reader (its
    audit log), the strict hex reader (a PKCS#11 key handle) and errors of Ironroot (no
    higher layer)."""
    allowed = {
        "ironroot._cel",
        "ironroot._fileio",
        "ironroot._json",
        "ironroot._lazy",
        "ironroot._text",
        "ironroot.crypto",
        "ironroot.cose",
        "ironroot.ear",
        "ironroot.errors",
        "ironroot.hsm",
        "ironroot.rot",
    }
    package = Path(ironroot.hsm.__file__).parent
    for path in package.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("ironroot")
            ):
                root = ".".join(node.module.split(".")[:2])
                assert root in allowed, f"{path.name} imports {node.module}"


def test_no_other_layer_imports_the_hsms_privates() -> None:
    """Other layers use ``ironroot.hsm``'s public names, never its ``_`` modules."""
    source = Path(ironroot.hsm.__file__).parent.parent
    package = Path(ironroot.hsm.__file__).parent
    found = []
    for path in source.rglob("*.py"):
        if package in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            found += [
                f"{path.relative_to(source)}: {m}"
                for m in modules
                if m.startswith("ironroot.hsm._")
            ]
    assert found == []


def test_no_secret_in_the_public_model_reprs() -> None:
    from ironroot.hsm import Role, Session

    session = Session("alice", Role.USER, b"\x99" * 32)
    assert "99" * 8 not in repr(session)
