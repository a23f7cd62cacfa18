"""Reference values only from their vendor: who may publish them is configured per product,
an empty configuration accepts nothing, and a CoRIM from anyone else is ignored and reported."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
from _ar_helpers import NOW, PRODUCT, RUNTIME, SAFE_ISS, VENDOR_ISS, World, make_verifier_dir

from ironroot.attestation import (
    AR4SI,
    Appraisal,
    AttestationResult,
    Endorsements,
    ReferencePublisher,
    TrustTier,
    appraise_evidence,
    load_attestation_config,
    publishers_of_release,
    reference_values_from_statement,
)
from ironroot.attestation.evidence import VerifyOptions, verify_evidence
from ironroot.cli import main
from ironroot.corim import (
    CORIM_CONTENT_TYPE,
    HASH_ALG_SHA384,
    ClassMap,
    Comid,
    Corim,
    Digest,
    Environment,
    Measurement,
    MeasurementValues,
    Tagged,
    TagIdentity,
    Triple,
    Triples,
)
from ironroot.cose import create_statement
from ironroot.errors import ConfigError, MalformedCorim, UnknownIssuer
from ironroot.firmware import reference_corim, reference_statement
from ironroot.rot import Device

VENDOR_ONLY = (ReferencePublisher(VENDOR_ISS, PRODUCT, frozenset((VENDOR_ISS,))),)


def _lab_corim(world: World, name: str) -> bytes:
    """The review lab (an issuer the transparency service accepts) publishes a CoRIM for
    the vendor's product, listing firmware the vendor never published."""
    world.release(name, svn=9, runtime=RUNTIME + name.encode(), publish=False)
    statement = reference_statement(
        world.bundles[name],
        world.safe_key,
        iss=SAFE_ISS,
        sub=PRODUCT,
        vendor=VENDOR_ISS,
        model=PRODUCT,
    )
    return world.client.register(statement).transparent_statement


def test_a_corim_from_the_review_lab_is_refused(world: World) -> None:
    lab = _lab_corim(world, "lab-only")
    with pytest.raises(UnknownIssuer, match=r"issuer 'https://safe\.example' may not publish") as e:
        reference_values_from_statement(
            lab, service_keys=world.service_keys, publishers=VENDOR_ONLY, now=NOW
        )
    assert e.value.code == "publisher-not-allowed"


def test_never_published_firmware_is_not_affirming(world: World, tmp_path: Path) -> None:
    lab = _lab_corim(world, "unpublished")
    device = world.device(tmp_path / "d", "unpublished")

    def appraise_with(
        publishers: tuple[ReferencePublisher, ...],
    ) -> tuple[AttestationResult, Endorsements]:
        endorsements = Endorsements.build(
            service_keys=world.service_keys,
            reference_statements=[world.references["good"], lab],
            review_statements=[world.reviews["good"], world.reviews["unpublished"]],
            providers=world.providers,
            publishers=publishers,
            vendor_roots=world.ca.trust_anchors,
            now=NOW,
        )
        nonce = os.urandom(32)
        result = appraise_evidence(
            device.quote(nonce), endorsements, nonce=nonce, now=NOW, lifetime=600
        )
        return result, endorsements

    result, endorsements = appraise_with(world.publishers)
    assert any("publisher-not-allowed" in line for line in endorsements.rejected)
    assert result.status is TrustTier.WARNING
    vector = result.submods["ironroot"].trust_vector
    assert vector["executables"] == AR4SI.UNRECOGNIZED_RUNTIME
    # What the audit did: were the lab a publisher, the same firmware would be affirming.
    lab_too = ReferencePublisher(VENDOR_ISS, None, frozenset((VENDOR_ISS, SAFE_ISS)))
    assert appraise_with((lab_too,))[0].status is TrustTier.AFFIRMING


def test_no_publishers_accept_nothing(world: World) -> None:
    with pytest.raises(UnknownIssuer, match="no configured product lists it"):
        reference_values_from_statement(
            world.references["good"], service_keys=world.service_keys, now=NOW
        )
    built = Endorsements.build(
        service_keys=world.service_keys, reference_statements=[world.references["good"]]
    )
    assert len(built.reference_values) == 0
    assert built.rejected[0].startswith("reference statement 0: publisher-not-allowed")


@pytest.mark.parametrize(
    "publisher",
    [
        ReferencePublisher(VENDOR_ISS, "another-model", frozenset((VENDOR_ISS,))),
        ReferencePublisher("another vendor", None, frozenset((VENDOR_ISS,))),
        ReferencePublisher(VENDOR_ISS, None, frozenset((SAFE_ISS,))),
    ],
    ids=["other-model", "other-vendor", "other-issuer"],
)
def test_a_publisher_for_something_else_does_not_count(
    world: World, publisher: ReferencePublisher
) -> None:
    with pytest.raises(UnknownIssuer) as e:
        reference_values_from_statement(
            world.references["good"], service_keys=world.service_keys, publishers=(publisher,)
        )
    assert e.value.code == "publisher-not-allowed"


def test_a_vendor_wide_and_a_model_publisher_both_accept(world: World) -> None:
    for publisher in (*VENDOR_ONLY, ReferencePublisher(VENDOR_ISS, None, frozenset((VENDOR_ISS,)))):
        values = reference_values_from_statement(
            world.references["good"], service_keys=world.service_keys, publishers=(publisher,)
        )
        assert values
        assert all(v.issuer == VENDOR_ISS for v in values)


def test_a_triple_without_a_class_vendor_is_refused(world: World) -> None:
    comid = Comid(
        tag_identity=TagIdentity(b"\x01" * 16),
        triples=Triples(
            reference=(
                Triple(
                    Environment(ClassMap(model=PRODUCT)),
                    (
                        Measurement(
                            MeasurementValues(digests=(Digest(HASH_ALG_SHA384, b"\x01" * 48),)),
                            mkey="fmc",
                        ),
                    ),
                ),
            )
        ),
    )
    corim = Corim(id=b"\x00" * 16, tags=(comid,)).encode()
    statement = create_statement(
        world.vendor_key, corim, iss=VENDOR_ISS, sub=PRODUCT, content_type=CORIM_CONTENT_TYPE
    )
    transparent = world.client.register(statement).transparent_statement
    with pytest.raises(UnknownIssuer, match="an environment without a class vendor"):
        reference_values_from_statement(
            transparent, service_keys=world.service_keys, publishers=VENDOR_ONLY
        )


# --- configuration ------------------------------------------------------------------------


def test_init_with_the_first_release_configures_its_vendor(world: World, tmp_path: Path) -> None:
    data = make_verifier_dir(tmp_path, world)
    config = load_attestation_config(data)
    assert config.products == publishers_of_release(world.references["good"])
    assert config.products == (ReferencePublisher(VENDOR_ISS, PRODUCT, frozenset((VENDOR_ISS,))),)
    with config.open_service(NOW) as service:
        assert len(service.endorsements.reference_values) > 0


def test_init_without_a_release_accepts_nothing(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "v"
    assert main(["attest", "init", "--data", str(data)]) == 0
    assert "no product is configured" in capsys.readouterr().err
    (data / "reference-values" / "good.ts").write_bytes(world.references["good"])
    config = load_attestation_config(data)
    assert config.products == ()
    with config.open_service(NOW) as service:
        assert len(service.endorsements.reference_values) == 0


def test_init_refuses_a_release_that_is_not_one(world: World, tmp_path: Path) -> None:
    bad = tmp_path / "review.ts"
    bad.write_bytes(world.reviews["good"])  # an SFR, not a CoRIM
    data = tmp_path / "v"
    assert main(["attest", "init", "--data", str(data), "--release", str(bad)]) == 2
    assert not (data / "attestation.toml").exists()
    with pytest.raises(MalformedCorim):
        publishers_of_release(world.reviews["good"])


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("[attestation]\nproducts = 5\n", "array of tables"),
        ('[[attestation.products]]\nmodel = "m"\nissuers = ["i"]\n', "vendor must be"),
        ('[[attestation.products]]\nvendor = "v"\nissuers = []\n', "issuers must list"),
        ('[[attestation.products]]\nvendor = "v"\nmodel = 3\nissuers = ["i"]\n', "model must"),
        ('[[attestation.products]]\nvendor = "v"\nissuers = ["i"]\nkey = 1\n', "unknown setting"),
        ('[[attestation.products]]\nvendor = "v"\nissuers = ["i"]\nevidence = {}\n', "evidence"),
        ('[[attestation.products]]\nvendor = "v"\nissuers = ["i"]\nevidence = 1\n', "evidence"),
        (
            '[[attestation.products]]\nvendor = "v"\nissuers = ["i"]\nevidence = {root = 1}\n',
            "evidence must be",
        ),
        (
            '[[attestation.products]]\nvendor = "v"\nissuers = ["i"]\n'
            'evidence = {format = "sev"}\n',
            "evidence format 'sev' is not one of",
        ),
    ],
)
def test_bad_products_tables(tmp_path: Path, table: str, message: str) -> None:
    data = tmp_path / "v"
    assert main(["attest", "init", "--data", str(data)]) == 0
    text = (data / "attestation.toml").read_text()
    if table.startswith("[attestation]"):
        text = text.replace("[attestation]\n", table, 1)
    else:
        text += table
    (data / "attestation.toml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_attestation_config(data)


# --- reference values are selected by the evidence's product ------------------------------

OTHER = "pkg:firmware/acme/other-rot"


def _other_product_release(world: World, name: str) -> bytes:
    """A release the vendor publishes for its other product only (and a SAFE review of it)."""
    if name not in world.bundles:
        world.release(name, svn=3, runtime=RUNTIME + name.encode(), publish=False)
    statement = reference_statement(
        world.bundles[name], world.vendor_key, iss=VENDOR_ISS, sub=OTHER, model=OTHER
    )
    return world.client.register(statement).transparent_statement


def _appraised(
    world: World,
    device_quote: bytes,
    nonce: bytes,
    corim: bytes,
    products: tuple[ReferencePublisher, ...],
) -> AttestationResult:
    endorsements = Endorsements.build(
        service_keys=world.service_keys,
        reference_statements=[world.references["good"], corim],
        review_statements=[world.reviews["good"], world.reviews["other-product"]],
        providers=world.providers,
        publishers=products,
        vendor_roots=world.ca.trust_anchors,
        now=NOW,
    )
    assert not endorsements.rejected
    return appraise_evidence(device_quote, endorsements, nonce=nonce, now=NOW, lifetime=600)


def test_reference_values_of_another_product_do_not_match_this_device(
    world: World, tmp_path: Path
) -> None:
    """The device runs firmware the vendor published for its other product only: with both
    products configured, those values are not this device's, so it is not affirming; they
    count only when the other product's entry selects this device's evidence."""
    corim = _other_product_release(world, "other-product")
    device = world.device(tmp_path / "d", "other-product")
    nonce = os.urandom(32)
    quote = device.quote(nonce)
    both = (
        ReferencePublisher(VENDOR_ISS, PRODUCT, frozenset((VENDOR_ISS,))),
        ReferencePublisher(VENDOR_ISS, OTHER, frozenset((VENDOR_ISS,))),
    )
    for products in (both, world.publishers):  # two entries, or one for every model
        result = _appraised(world, quote, nonce, corim, products)
        unselected = Endorsements.build(
            service_keys=world.service_keys,
            reference_statements=[world.references["good"], corim],
            publishers=products,
            now=NOW,
        ).unselected()  # what the verifier's configuration warns about
        assert unselected == tuple(products)
        assert result.status is TrustTier.WARNING
        appraisal = result.submods["ironroot"]
        assert appraisal.trust_vector["executables"] == AR4SI.UNRECOGNIZED_RUNTIME
        assert any(
            r.startswith("reference-values: no logged reference value for fmc")
            for r in appraisal.reasons
        )
    root = result.submods["ironroot"].evidence["identity"]["root"]
    # Each product names its devices: the values apply only to the one that selects them.
    this = {"format": "ironroot", "root": root}
    another = {"format": "ironroot", "root": "00" * 32}
    selected = (
        ReferencePublisher(VENDOR_ISS, PRODUCT, frozenset((VENDOR_ISS,)), tuple(another.items())),
        ReferencePublisher(VENDOR_ISS, OTHER, frozenset((VENDOR_ISS,)), tuple(this.items())),
    )
    assert _appraised(world, quote, nonce, corim, selected).status is TrustTier.AFFIRMING
    assert (
        Endorsements.build(
            service_keys=world.service_keys,
            reference_statements=[world.references["good"], corim],
            publishers=selected,
            now=NOW,
        ).unselected()
        == ()
    )
    swapped = (
        ReferencePublisher(VENDOR_ISS, PRODUCT, frozenset((VENDOR_ISS,)), tuple(this.items())),
        ReferencePublisher(VENDOR_ISS, OTHER, frozenset((VENDOR_ISS,)), tuple(another.items())),
    )
    result = _appraised(world, quote, nonce, corim, swapped)
    assert result.submods["ironroot"].trust_vector["executables"] == AR4SI.UNRECOGNIZED_RUNTIME
    # and a device of the first product is still affirming under it
    good = world.device(tmp_path / "g", "good")
    good_nonce = os.urandom(32)
    assert (
        _appraised(world, good.quote(good_nonce), good_nonce, corim, swapped).status
        is TrustTier.AFFIRMING
    )


def test_a_products_evidence_selector_is_configured_in_its_table(tmp_path: Path) -> None:
    (tmp_path / "attestation.toml").write_text(
        '[attestation]\n[[attestation.products]]\nvendor = "v"\nissuers = ["i"]\n'
        'evidence = { format = "snp", product = "Genoa" }\n'
    )
    config = load_attestation_config(tmp_path)
    assert config.products[0].evidence == (("format", "snp"), ("product", "Genoa"))


# --- environments narrower than a class -------------------------------------------------------


def _scoped_corim(world: World, name: str, **environment: Tagged) -> bytes:
    """The vendor publishes release ``name``'s CoRIM with every environment narrowed by
    ``environment`` (an instance or a group), and nothing for the class as a whole."""
    corim = reference_corim(world.bundles[name], vendor=VENDOR_ISS, model=PRODUCT)
    tags = []
    for comid in corim.comids:
        triples = tuple(
            dataclasses.replace(t, environment=dataclasses.replace(t.environment, **environment))
            for t in comid.triples.reference
        )
        tags.append(dataclasses.replace(comid, triples=Triples(reference=triples)))
    payload = dataclasses.replace(corim, tags=tuple(tags)).encode()
    statement = create_statement(
        world.vendor_key, payload, iss=VENDOR_ISS, sub=PRODUCT, content_type=CORIM_CONTENT_TYPE
    )
    return world.client.register(statement).transparent_statement


def _appraise_scoped(world: World, name: str, device: Device, scoped: bytes) -> Appraisal:
    endorsements = Endorsements.build(
        service_keys=world.service_keys,
        reference_statements=[scoped],
        review_statements=[world.reviews[name]],
        providers=world.providers,
        publishers=world.publishers,
        vendor_roots=world.ca.trust_anchors,
        now=NOW,
    )
    assert not endorsements.rejected
    nonce = os.urandom(32)
    result = appraise_evidence(device.quote(nonce), endorsements, nonce=nonce, now=NOW)
    return result.submods["ironroot"]


def _ueid(world: World, device: Device) -> bytes:
    nonce = os.urandom(32)
    options = VerifyOptions(now=NOW, nonce=nonce, roots=world.ca.trust_anchors)
    return bytes.fromhex(verify_evidence(device.quote(nonce), options).identity["ueid"])


def _unrecognized(appraisal: Appraisal) -> bool:
    return appraisal.trust_vector["executables"] == AR4SI.UNRECOGNIZED_RUNTIME and any(
        line.startswith("reference-values: no logged reference value for fmc")
        for line in appraisal.reasons
    )


def test_reference_values_for_one_device_instance_do_not_match_another(
    world: World, tmp_path: Path
) -> None:
    world.release("per-device", svn=3, runtime=RUNTIME + b"per-device", publish=False)
    owner = world.device(tmp_path / "owner", "per-device")
    other = world.device(tmp_path / "other", "per-device")
    scoped = _scoped_corim(world, "per-device", instance=Tagged(550, _ueid(world, owner)))
    assert _appraise_scoped(world, "per-device", owner, scoped).status is TrustTier.AFFIRMING
    assert _unrecognized(_appraise_scoped(world, "per-device", other, scoped))


@pytest.mark.parametrize(
    "scope",
    [
        {"instance": Tagged(37, b"\x07" * 16)},  # a UUID instance: no evidence names one
        {"group": Tagged(37, b"\x08" * 16)},  # nor a group
    ],
    ids=["uuid-instance", "group"],
)
def test_reference_values_for_an_instance_or_group_no_evidence_names_match_nothing(
    world: World, tmp_path: Path, scope: dict[str, Tagged]
) -> None:
    name = f"scoped-{next(iter(scope))}"
    world.release(name, svn=3, runtime=RUNTIME + name.encode(), publish=False)
    device = world.device(tmp_path / "device", name)
    scoped = _scoped_corim(world, name, **scope)
    assert _unrecognized(_appraise_scoped(world, name, device, scoped))


# --- the values of one product only: the evidence's --------------------------------------


OTHER_VENDOR = "https://other-vendor.example"
OTHER_MODEL = "pkg:firmware/other/bmc"


def _other_vendor_release(world: World, name: str) -> bytes:
    """Another vendor (its own issuer, here the one the service knows beside the vendor)
    publishes release ``name`` for its own product."""
    if name not in world.bundles:
        world.release(name, svn=3, runtime=RUNTIME + name.encode(), publish=False)
    statement = reference_statement(
        world.bundles[name],
        world.safe_key,
        iss=SAFE_ISS,
        sub=OTHER_MODEL,
        vendor=OTHER_VENDOR,
        model=OTHER_MODEL,
    )
    return world.client.register(statement).transparent_statement


def _selecting(vendor: str, model: str | None, issuer: str, root: str) -> ReferencePublisher:
    return ReferencePublisher(
        vendor, model, frozenset((issuer,)), (("format", "ironroot"), ("root", root))
    )


@pytest.mark.parametrize("config", ["vendor-wide", "same-vendor", "other-vendor"])
def test_a_device_running_another_products_release_is_not_affirming(
    world: World, tmp_path: Path, config: str
) -> None:
    """A device chaining to the vendor CA runs a release logged for another product (another
    model of its vendor, or another vendor's): the products configured select its evidence
    (a vendor-wide entry, or two entries whose selector is the same root), so the evidence
    names no one product and no logged value of any product applies: ``executables`` 33,
    whichever release it runs. One product selecting it is affirming, as before."""
    corim = (
        _other_vendor_release(world, "other-vendor")
        if config == "other-vendor"
        else _other_product_release(world, "other-product")
    )
    runs = "other-vendor" if config == "other-vendor" else "other-product"
    device = world.device(tmp_path / "d", runs)
    nonce = os.urandom(32)
    quote = device.quote(nonce)
    root = (
        verify_evidence(quote, VerifyOptions(now=NOW, nonce=nonce, roots=world.ca.trust_anchors))
    ).identity["root"]
    assert isinstance(root, str)
    if config == "vendor-wide":
        products = (_selecting(VENDOR_ISS, None, VENDOR_ISS, root),)
        other = (VENDOR_ISS, OTHER)
    elif config == "same-vendor":
        products = (
            _selecting(VENDOR_ISS, PRODUCT, VENDOR_ISS, root),
            _selecting(VENDOR_ISS, OTHER, VENDOR_ISS, root),
        )
        other = (VENDOR_ISS, OTHER)
    else:
        products = (
            _selecting(VENDOR_ISS, PRODUCT, VENDOR_ISS, root),
            _selecting(OTHER_VENDOR, OTHER_MODEL, SAFE_ISS, root),
        )
        other = (OTHER_VENDOR, OTHER_MODEL)
    endorsements = Endorsements.build(
        service_keys=world.service_keys,
        reference_statements=[world.references["good"], corim],
        review_statements=[world.reviews["good"], world.reviews[runs]],
        providers=world.providers,
        publishers=products,
        vendor_roots=world.ca.trust_anchors,
        now=NOW,
    )
    assert not endorsements.rejected
    assert endorsements.ambiguous() == products  # what the verifier's configuration warns about
    assert {(v.vendor, v.model) for v in endorsements.reference_values} == {
        (VENDOR_ISS, PRODUCT),
        other,
    }
    good = world.device(tmp_path / "g", "good")
    for quoted in (device, good):
        nonce = os.urandom(32)
        result = appraise_evidence(
            quoted.quote(nonce), endorsements, nonce=nonce, now=NOW, lifetime=600
        )
        appraisal = result.submods["ironroot"]
        assert result.status is TrustTier.WARNING
        assert appraisal.trust_vector["executables"] == AR4SI.UNRECOGNIZED_RUNTIME
        (reason,) = [r for r in appraisal.reasons if r.startswith("reference-values: ")]
        assert reason.startswith("reference-values: no logged reference value for fmc ")
        assert "(the evidence is of no one product: values of vendor " in reason
    # one product selecting it: its own release is affirming, the other's is not
    one = (
        _selecting(VENDOR_ISS, PRODUCT, VENDOR_ISS, root),
        _selecting(*other, SAFE_ISS if config == "other-vendor" else VENDOR_ISS, "00" * 32),
    )
    selected = dataclasses.replace(endorsements, products=one)
    assert selected.ambiguous() == ()
    nonce = os.urandom(32)
    result = appraise_evidence(good.quote(nonce), selected, nonce=nonce, now=NOW, lifetime=600)
    assert result.submods["ironroot"].trust_vector["executables"] == AR4SI.APPROVED_RUNTIME
    nonce = os.urandom(32)
    result = appraise_evidence(device.quote(nonce), selected, nonce=nonce, now=NOW, lifetime=600)
    appraisal = result.submods["ironroot"]
    assert appraisal.trust_vector["executables"] == AR4SI.UNRECOGNIZED_RUNTIME
    (reason,) = [r for r in appraisal.reasons if r.startswith("reference-values: ")]
    assert "(its logged values are of another product than the evidence's)" in reason
