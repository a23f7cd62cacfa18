"""Secure key release to attested TEEs (modelled on Azure Key Vault SKR and the Trustee KBS).

A key with a release policy leaves the HSM only wrapped to a TEE's public key, and only when an
EAR from a trusted verifier shows that TEE's evidence is fresh for this service's nonce, binds
that wrapping key, is affirming, and satisfies the key's policy (CEL, or the Azure Key Vault
release-policy grammar). The HSM makes that decision inside its boundary
(:meth:`ironroot.hsm.Hsm.release`; :func:`authorize_release` is its pure core, re-exported
here); :class:`KeyReleaseService` offers the HSM's keys by name,
:func:`create_keyrelease_app` is its HTTP API, :class:`KeyReleaseClient` a client, and
:mod:`ironroot.keyrelease.tee` the TEE side (:class:`~ironroot.keyrelease.tee.TeeKeyPair`).
See ``docs/keyrelease.md``.
"""

from typing import TYPE_CHECKING

from ironroot._lazy import lazy_package

if TYPE_CHECKING:
    from ironroot.hsm import (
        CEL_VARIABLES,
        NONCE_SIZE,
        REPORT_DATA_SIZE,
        WRAPPING_KEY_KINDS,
        AzureReleasePolicy,
        CelReleasePolicy,
        PolicyCache,
        ReleaseContext,
        ReleasePolicy,
        TrustedVerifier,
        WrappingKey,
        authorize_release,
        bind_report_data,
        check_binding,
        check_composite_binding,
        parse_release_policy,
        release_claims,
    )
    from ironroot.keyrelease._client import KeyReleaseClient
    from ironroot.keyrelease._config import (
        CONFIG_FILE,
        KeyReleaseConfig,
        load_keyrelease_config,
        serve_keyrelease,
    )
    from ironroot.keyrelease._demo import demo_release
    from ironroot.keyrelease._format import (
        RELEASED_KEY_CBOR,
        RELEASED_KEY_JSON,
        WRAP_ALGORITHMS,
        ReleasedKey,
    )
    from ironroot.keyrelease._http import (
        KeyReleaseServerThread,
        create_keyrelease_app,
        keyrelease_info,
        keyrelease_routes,
        parse_release_request,
    )
    from ironroot.keyrelease._service import (
        HsmVault,
        KeyReleaseService,
        KeyVault,
        ReleasableKey,
        ReleaseGate,
        ReleaseRequest,
    )
    from ironroot.keyrelease._statements import RELEASES_DB, ReleaseStatements
    from ironroot.keyrelease.tee import TeeKeyPair, UnwrappedKey

__all__ = [
    "CEL_VARIABLES",
    "CONFIG_FILE",
    "NONCE_SIZE",
    "RELEASED_KEY_CBOR",
    "RELEASED_KEY_JSON",
    "RELEASES_DB",
    "REPORT_DATA_SIZE",
    "WRAPPING_KEY_KINDS",
    "WRAP_ALGORITHMS",
    "AzureReleasePolicy",
    "CelReleasePolicy",
    "HsmVault",
    "KeyReleaseClient",
    "KeyReleaseConfig",
    "KeyReleaseServerThread",
    "KeyReleaseService",
    "KeyVault",
    "PolicyCache",
    "ReleasableKey",
    "ReleaseContext",
    "ReleaseGate",
    "ReleasePolicy",
    "ReleaseRequest",
    "ReleaseStatements",
    "ReleasedKey",
    "TeeKeyPair",
    "TrustedVerifier",
    "UnwrappedKey",
    "WrappingKey",
    "authorize_release",
    "bind_report_data",
    "check_binding",
    "check_composite_binding",
    "create_keyrelease_app",
    "demo_release",
    "keyrelease_info",
    "keyrelease_routes",
    "load_keyrelease_config",
    "parse_release_policy",
    "parse_release_request",
    "release_claims",
    "serve_keyrelease",
]

__getattr__, __dir__ = lazy_package(__name__, __file__)
