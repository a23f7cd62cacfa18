"""The verifier's optional ``service_issuer``: the receipts of reference values, RIMs and
SAFE reviews must name the transparency service it knows, as the platform's update checks do
(``UnknownIssuer`` ``untrusted-service``); left out, the service keys alone decide, as before."""

from __future__ import annotations

from pathlib import Path

import pytest
from _ar_helpers import NOW, PRODUCT, World, make_verifier_dir

from ironroot.attestation import load_attestation_config, reference_values_from_statement
from ironroot.errors import ConfigError, UnknownIssuer

SERVICE = "https://transparency.example"  # init_data_dir's issuer: what the world's receipts name
OTHER = "https://another-ts.example"


def test_reference_values_whose_receipt_names_another_service_are_refused(world: World) -> None:
    data = world.references["good"]
    args = {"service_keys": world.service_keys, "publishers": world.publishers, "now": NOW}
    # left out, the keys alone decide (as before); the right issuer passes as well
    values = reference_values_from_statement(data, **args)
    assert values
    assert reference_values_from_statement(data, **args, service_issuer=SERVICE) == values
    # the trusted key signed the receipt, but the verifier knows its service by another iss
    with pytest.raises(UnknownIssuer) as caught:
        reference_values_from_statement(data, **args, service_issuer=OTHER)
    assert type(caught.value) is UnknownIssuer
    assert caught.value.code == "untrusted-service"
    assert caught.value.detail == (
        f"no receipt of the reference values of {PRODUCT!r} is by a trusted transparency "
        f"service (the receipt is issued by {SERVICE!r}, not by the transparency service "
        f"{OTHER!r})"
    )


def test_attestation_toml_service_issuer_pins_the_endorsements(
    world: World, tmp_path: Path
) -> None:
    data = make_verifier_dir(tmp_path, world)
    path = data / "attestation.toml"
    template = path.read_text()
    assert load_attestation_config(data).service_issuer is None
    unpinned = load_attestation_config(data).endorsements(NOW)
    assert unpinned.rejected == ()
    assert len(tuple(unpinned.reference_values))
    assert len(unpinned.reviews) == 1

    def pinned(issuer: str) -> str:
        return template.replace("[attestation]\n", f'[attestation]\nservice_issuer = "{issuer}"\n')

    path.write_text(pinned(SERVICE))
    config = load_attestation_config(data)
    assert config.service_issuer == SERVICE
    right = config.endorsements(NOW)
    assert right.rejected == ()
    assert tuple(right.reference_values) == tuple(unpinned.reference_values)
    assert right.reviews == unpinned.reviews
    path.write_text(pinned(OTHER))
    wrong = load_attestation_config(data).endorsements(NOW)
    assert tuple(wrong.reference_values) == ()
    assert wrong.reviews == ()
    refused = f"(the receipt is issued by {SERVICE!r}, not by the transparency service {OTHER!r})"
    reference, review = wrong.rejected
    assert reference.startswith(f"{data / 'reference-values' / 'good.ts'}: untrusted-service: ")
    assert review.startswith(f"{data / 'reviews' / 'good.ts'}: untrusted-service: ")
    assert reference.endswith(refused)
    assert review.endswith(refused)
    for bad in ('""', "7", f'"{"x" * 257}"'):
        path.write_text(
            template.replace("[attestation]\n", f"[attestation]\nservice_issuer = {bad}\n")
        )
        with pytest.raises(ConfigError, match=r"attestation\.service_issuer must be text"):
            load_attestation_config(data)
