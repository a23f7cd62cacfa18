"""The verifier's endorsements take GPU RIMs from the same reference statements as CoRIMs: only
with receipts, only from a configured publisher of the RIM's product, refused with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from _rim_helpers import (
    DRIVER_FILE,
    NOW,
    REGISTRANT,
    VBIOS_FILE,
    VBIOS_ID,
    RimLog,
    RimPki,
    golden_blocks,
    swid,
    vector_rim,
)
from cryptography.hazmat.primitives.serialization import Encoding

from ironroot.attestation import (
    Endorsements,
    ReferencePublisher,
    init_attestation_dir,
    load_attestation_config,
    rim_from_statement,
)
from ironroot.cose import create_statement, encode_key_set
from ironroot.errors import UnknownIssuer
from ironroot.rim import RIM_CONTENT_TYPE, rim_statement

NVIDIA = ReferencePublisher("NVIDIA Corporation", "GH100", frozenset((REGISTRANT,)))
LOGGED = {
    "project": "1010",
    "sku": "0200",
    "chip": "882",
    "vbios_version": "96.00.5E.00.01",
    "driver_version": "545.00",
}


def test_logged_rims_become_endorsements(rim_log: RimLog, logged: dict[str, bytes]) -> None:
    endorsements = Endorsements.build(
        service_keys=rim_log.service_keys,
        reference_statements=[("driver.ts", logged["driver"]), ("vbios.ts", logged["vbios"])],
        publishers=(NVIDIA,),
        now=NOW,
    )
    assert endorsements.rejected == ()
    assert len(endorsements.rims) == 2
    assert len(endorsements.reference_values) == 0
    blocks = golden_blocks(vector_rim(DRIVER_FILE), vector_rim(VBIOS_FILE))
    assert str(endorsements.rims.appraise(blocks, **LOGGED).vbios.rim_id) == VBIOS_ID


def test_a_rim_without_receipt_is_left_out_with_the_reason(
    rim_log: RimLog, logged: dict[str, bytes]
) -> None:
    unlogged = rim_statement(
        vector_rim(VBIOS_FILE), rim_log.key, iss=REGISTRANT, rim_id=VBIOS_ID, now=NOW
    )
    endorsements = Endorsements.build(
        service_keys=rim_log.service_keys,
        reference_statements=[
            ("bare.swidtag", vector_rim(VBIOS_FILE)),
            ("unlogged.cose", unlogged),
            ("driver.ts", logged["driver"]),
        ],
        publishers=(NVIDIA,),
        now=NOW,
    )
    assert len(endorsements.rims) == 1
    assert [line.split(": ")[:2] for line in endorsements.rejected] == [
        ["bare.swidtag", "no-receipt"],
        ["unlogged.cose", "no-receipt"],
    ]


def test_rims_need_a_publisher_of_their_product(rim_log: RimLog, logged: dict[str, bytes]) -> None:
    for publishers in (
        (),
        (ReferencePublisher("NVIDIA Corporation", "GB100", frozenset((REGISTRANT,))),),
        (ReferencePublisher("NVIDIA Corporation", None, frozenset(("https://other.example",))),),
    ):
        with pytest.raises(UnknownIssuer) as caught:
            rim_from_statement(
                logged["vbios"], service_keys=rim_log.service_keys, publishers=publishers, now=NOW
            )
        assert caught.value.code == "publisher-not-allowed"
    every_model = ReferencePublisher("NVIDIA Corporation", None, frozenset((REGISTRANT,)))
    rim_from_statement(
        logged["vbios"], service_keys=rim_log.service_keys, publishers=(every_model,), now=NOW
    )


def test_rims_are_checked_at_a_time(rim_log: RimLog, logged: dict[str, bytes]) -> None:
    endorsements = Endorsements.build(
        service_keys=rim_log.service_keys,
        reference_statements=[("vbios.ts", logged["vbios"])],
        publishers=(NVIDIA,),
    )
    assert len(endorsements.rims) == 0
    assert endorsements.rejected[0].startswith("vbios.ts: config: ")


def test_a_verifier_directory_takes_rims_and_extra_rim_roots(
    rim_log: RimLog, logged: dict[str, bytes], pki: RimPki, tmp_path: Path
) -> None:
    """``reference-values/`` holds RIM statements beside CoRIMs; ``rim_roots`` adds a lab's RIM
    root to NVIDIA's pinned one (left out, a RIM under it is refused)."""
    lab_rim = pki.sign(swid(version="96.00.5E.00.07"))
    lab_id = "NV_GPU_VBIOS_1010_0200_882_96005E0007"
    lab = create_statement(
        rim_log.key, lab_rim, iss=REGISTRANT, sub=lab_id, content_type=RIM_CONTENT_TYPE
    )
    data = tmp_path / "verifier"
    init_attestation_dir(data)
    (data / "reference-values" / "vbios.swid.ts").write_bytes(logged["vbios"])
    (data / "reference-values" / "lab.swid.ts").write_bytes(
        rim_log.client.register(lab).transparent_statement
    )
    (data / "service-keys" / "scitt.cbor").write_bytes(
        encode_key_set(list(rim_log.service_keys.values()))
    )
    products = (
        '\n[[attestation.products]]\nvendor = "NVIDIA Corporation"\nmodel = "GH100"\n'
        f'issuers = ["{REGISTRANT}"]\n'
    )
    config = data / "attestation.toml"
    config.write_text(config.read_text() + products)
    endorsements = load_attestation_config(data).endorsements(NOW)
    assert [str(r) for r in endorsements.rims] == [VBIOS_ID]
    assert len(endorsements.rejected) == 1
    assert "lab.swid.ts: chain-not-trusted" in endorsements.rejected[0]

    (data / "rim-roots").mkdir()
    (data / "rim-roots" / "lab.pem").write_bytes(pki.root.public_bytes(Encoding.PEM))
    text = config.read_text().replace(
        'reference_values = ["reference-values"]',
        'reference_values = ["reference-values"]\nrim_roots = ["rim-roots"]',
    )
    config.write_text(text)
    endorsements = load_attestation_config(data).endorsements(NOW)
    assert endorsements.rejected == ()
    assert sorted(str(r) for r in endorsements.rims) == [VBIOS_ID, lab_id]
