"""Receipt keys paired with their logs: a receipt is proven only under a checkpoint of the log
of the service that signed it.

An auditor trusts two services, each a receipt key and a log (origin and checkpoint key). An
unpaired trust file lists the receipt keys and the checkpoint keys apart, so a receipt of
service A, "proven" under a checkpoint of log B whose tree holds the same entries (a mirror
B's operator keeps, or shows only this auditor), was accepted: A's own log was never asked.
Paired (``[[transparency.logs]]``), it is refused; unpaired, the report says the trust file
does not pair them."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.audit.audit_world import NODE, AuditWorld, audit_world

from ironroot.audit import AuditExport, AuditTrust, LogProofs, TrustedLog, check_bundle
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import ConfigError, UnknownIssuer
from ironroot.log import Checkpoint, NoteSigner, open_note, sign_checkpoint
from ironroot.log.layout import load_checkpoint_signer

ORIGIN = "transparency.example"
MIRROR = "mirror.example"


@pytest.fixture(scope="module")
def aw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditWorld]:
    yield from audit_world(tmp_path_factory.mktemp("audit-pairing"))


@pytest.fixture(scope="module")
def collected(aw: AuditWorld) -> AuditExport:
    return aw.collect()


@pytest.fixture(scope="module")
def mirror() -> NoteSigner:
    """Log B's checkpoint key (B is trusted, for its own service's receipts)."""
    return NoteSigner(MIRROR, PrivateKey.generate(Algorithm.ED25519))


def _mixed(aw: AuditWorld, collected: AuditExport, mirror: NoteSigner) -> bytes:
    """The node's bundle with service A's receipts proven under log B's checkpoint: a tree
    of the same entries (so every proof from A's tiles holds), B's origin, B's key."""
    note = collected.members["transparency/0/checkpoint"][0]
    signer = load_checkpoint_signer(aw.world.root / "trusted-log", ORIGIN)
    real = Checkpoint.parse(open_note(note, [signer.verifier()]))
    forged = sign_checkpoint(Checkpoint(MIRROR, real.size, real.root), [mirror])
    proofs = LogProofs.decode(collected.members["transparency/0/proofs.cbor"][0])
    relabelled = dataclasses.replace(proofs, origin=MIRROR)
    return collected.replace(
        members={
            "transparency/0/checkpoint": (forged, "text/plain"),
            "transparency/0/proofs.cbor": (relabelled.encode(), "application/cbor"),
        }
    ).seal(aw.fleet.rot(NODE))


def _logs(aw: AuditWorld, mirror: NoteSigner) -> tuple[TrustedLog, ...]:
    return (
        TrustedLog(ORIGIN, aw.checkpoint_keys(), frozenset(aw.world.trusted.service_keys())),
        TrustedLog(MIRROR, (mirror.verifier(),), frozenset(aw.world.untrusted.service_keys())),
    )


def _both_services(aw: AuditWorld, **changes: object) -> AuditTrust:
    platform = aw.platform_trust()
    keys = {**aw.world.trusted.service_keys(), **aw.world.untrusted.service_keys()}
    return aw.trust(platform=dataclasses.replace(platform, service_keys=keys), **changes)


def test_an_unpaired_trust_accepts_a_receipt_under_another_log_and_says_so(
    aw: AuditWorld, collected: AuditExport, mirror: NoteSigner
) -> None:
    """What an old trust file still does (it keeps working), with the report saying what it
    cannot tell."""
    data = _mixed(aw, collected, mirror)
    trust = _both_services(aw, checkpoint_keys=(*aw.checkpoint_keys(), mirror.verifier()))
    report = check_bundle(data, trust)
    assert report.ok
    assert report.step("transparency").status == "ok"
    unpaired = (
        "the trust file pairs no receipt key with its log ([[transparency.logs]]): a "
        "receipt is accepted under any trusted log's checkpoint"
    )
    assert unpaired in report.caveats
    assert unpaired in report.step("transparency").lines
    assert report.to_json()["caveats"] == list(report.caveats)


def test_a_receipt_proven_under_another_service_s_log_is_refused_when_paired(
    aw: AuditWorld, collected: AuditExport, mirror: NoteSigner
) -> None:
    data = _mixed(aw, collected, mirror)
    report = check_bundle(data, _both_services(aw, logs=_logs(aw, mirror)))
    failure = report.failure
    assert failure is not None
    assert failure.error is not None
    error = failure.error
    assert (type(error), error.code, error.check) == (
        UnknownIssuer,
        "receipt-log-mismatch",
        "transparency",
    )
    assert f"not a key of log {MIRROR}" in error.detail
    assert [s.name for s in report.steps if s.status == "failed"] == ["transparency"]


def test_the_honest_bundle_holds_under_a_paired_trust(
    aw: AuditWorld, collected: AuditExport, mirror: NoteSigner
) -> None:
    data = collected.seal(aw.fleet.rot(NODE))
    report = check_bundle(data, _both_services(aw, logs=_logs(aw, mirror)))
    assert report.ok, report.failure
    assert not any("pairs no receipt key" in c for c in report.caveats)
    assert (
        "each receipt is proven under its own service's log (2 paired logs)"
        in report.step("transparency").lines
    )


def test_a_checkpoint_of_the_right_key_under_another_origin_is_refused_when_paired(
    aw: AuditWorld, collected: AuditExport, mirror: NoteSigner
) -> None:
    """Log A's key signing a checkpoint that names another origin is no checkpoint of log A."""
    note = collected.members["transparency/0/checkpoint"][0]
    signer = load_checkpoint_signer(aw.world.root / "trusted-log", ORIGIN)
    real = Checkpoint.parse(open_note(note, [signer.verifier()]))
    forged = sign_checkpoint(Checkpoint(MIRROR, real.size, real.root), [signer])
    proofs = LogProofs.decode(collected.members["transparency/0/proofs.cbor"][0])
    data = collected.replace(
        members={
            "transparency/0/checkpoint": (forged, "text/plain"),
            "transparency/0/proofs.cbor": (
                dataclasses.replace(proofs, origin=MIRROR).encode(),
                "application/cbor",
            ),
        }
    ).seal(aw.fleet.rot(NODE))
    report = check_bundle(data, _both_services(aw, logs=_logs(aw, mirror)))
    error = report.step("transparency").error
    assert error is not None
    assert (type(error), error.code) == (UnknownIssuer, "untrusted-log")


# --- the trust file and the trust's construction ------------------------------------------------


def _paired_file(aw: AuditWorld, directory: Path, mirror: NoteSigner, *, extra: str = "") -> Path:
    path = aw.write_trust(directory)
    (directory / "mirror-keys.cbor").write_bytes(aw.world.untrusted.service_keys_bytes())
    vkeys = ", ".join(f'"{k.vkey}"' for k in aw.checkpoint_keys())
    text = path.read_text()
    text = text.replace(f"checkpoint_keys = [{vkeys}]\n", "")
    text = text.replace(
        'service_keys = ["service-keys.cbor"]\n',
        'service_keys = ["service-keys.cbor", "mirror-keys.cbor"]\n',
    )
    text += (
        f'\n[[transparency.logs]]\norigin = "{ORIGIN}"\ncheckpoint_keys = [{vkeys}]\n'
        'service_keys = ["service-keys.cbor"]\n'
        f'\n[[transparency.logs]]\norigin = "{MIRROR}"\n'
        f'checkpoint_keys = ["{mirror.verifier().vkey}"]\n'
        'service_keys = ["mirror-keys.cbor"]\n' + extra
    )
    path.write_text(text)
    return path


def test_a_trust_file_pairs_receipt_keys_with_their_logs(
    aw: AuditWorld, collected: AuditExport, mirror: NoteSigner, tmp_path: Path
) -> None:
    trust = AuditTrust.load_toml(_paired_file(aw, tmp_path, mirror))
    assert trust.logs == _logs(aw, mirror)
    assert set(trust.checkpoint_keys) == {*aw.checkpoint_keys(), mirror.verifier()}
    report = check_bundle(_mixed(aw, collected, mirror), trust)
    error = report.step("transparency").error
    assert error is not None
    assert (type(error), error.code) == (UnknownIssuer, "receipt-log-mismatch")


def test_an_old_trust_file_loads_unpaired(aw: AuditWorld, tmp_path: Path) -> None:
    trust = AuditTrust.load_toml(aw.write_trust(tmp_path))
    assert trust.logs == ()
    assert trust.checkpoint_keys == aw.checkpoint_keys()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda t: t.replace(
                '[[transparency.logs]]\norigin = "mirror.example"',
                '[[transparency.logs]]\norigin = "mirror.example"\nunused = 1',
            ),
            "[[transparency.logs]] has an unknown setting 'unused'",
        ),
        (
            lambda t: t.replace('service_keys = ["mirror-keys.cbor"]\n', ""),
            "a [[transparency.logs]] entry names origin, checkpoint_keys and service_keys",
        ),
        (
            lambda t: t.replace(f'origin = "{MIRROR}"', f'origin = "{ORIGIN}"'),
            f"two [[transparency.logs]] entries are for origin {ORIGIN}",
        ),
    ],
)
def test_a_malformed_logs_table_is_a_config_error(
    aw: AuditWorld, mirror: NoteSigner, tmp_path: Path, change: object, message: str
) -> None:
    path = _paired_file(aw, tmp_path, mirror)
    path.write_text(change(path.read_text()))  # type: ignore[operator]
    with pytest.raises(ConfigError) as info:
        AuditTrust.load_toml(path)
    assert message in info.value.detail


def test_a_receipt_key_no_log_pairs_is_a_config_error(aw: AuditWorld, mirror: NoteSigner) -> None:
    logs = _logs(aw, mirror)[:1]  # the mirror's service keys are trusted, paired with nothing
    with pytest.raises(ConfigError) as info:
        _both_services(aw, logs=logs)
    assert "is paired with no log" in info.value.detail


def test_a_checkpoint_key_no_log_pairs_is_a_config_error(
    aw: AuditWorld, mirror: NoteSigner
) -> None:
    stray = NoteSigner("stray.example", PrivateKey.generate(Algorithm.ED25519)).verifier()
    with pytest.raises(ConfigError) as info:
        _both_services(aw, logs=_logs(aw, mirror), checkpoint_keys=(stray,))
    assert f"checkpoint key {stray.vkey[:64]} is paired with no log" in info.value.detail


def test_a_log_key_the_trust_does_not_hold_is_a_config_error(
    aw: AuditWorld, mirror: NoteSigner
) -> None:
    with pytest.raises(ConfigError) as info:
        aw.trust(logs=_logs(aw, mirror))  # the mirror's receipt keys are not in the platform's
    assert "not a receipt key the trust holds" in info.value.detail


def test_a_log_without_origin_or_keys_is_a_config_error(mirror: NoteSigner) -> None:
    for args in (
        ("", (mirror.verifier(),), frozenset({b"x"})),
        (MIRROR, (), frozenset({b"x"})),
        (MIRROR, (mirror.verifier(),), frozenset()),
    ):
        with pytest.raises(ConfigError):
            TrustedLog(*args)  # type: ignore[arg-type]
