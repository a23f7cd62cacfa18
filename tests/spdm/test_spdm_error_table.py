"""Ironroot's responder against the table of hostile request sequences (_spdm_error_table):
the exact ERROR (SPDMVersion, ErrorCode, ErrorData, ExtendedErrorData) it answers to the last
request of each, on a fresh responder. The same table, answered by libspdm's
spdm_responder_emu, is checked in test_spdm_emu_interop.py."""

from __future__ import annotations

import pytest
from _spdm_error_table import ROWS, Answer, Row
from _spdm_helpers import Device, make_responder

from ironroot.spdm import (
    ErrorResponse,
    SocketTransportType,
    decode_transport_message,
    encode_transport_message,
)


@pytest.fixture(scope="module")
def device() -> Device:
    return Device()


@pytest.mark.parametrize("transport", ["MCTP", "PCI_DOE", "TCP"])
@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_hostile_sequence_gets_the_tabled_answer(device: Device, row: Row, transport: str) -> None:
    """Each request goes through the binding (PCI DOE pads it to whole 4-byte words; the
    responder is told so), as the emulator's requests do."""
    kind = SocketTransportType[transport]
    responder = make_responder(device, alignment=kind.alignment)
    answers = [
        responder(decode_transport_message(kind, encode_transport_message(kind, request)))
        for request in row.requests
    ]
    for before in answers[:-1]:  # the set-up steps succeed; only the last request is hostile
        assert before[1] != 0x7F, ErrorResponse.decode(before)
    expected = row.answers(transport)[0]
    assert str(Answer.of(answers[-1])) == str(expected)
    assert Answer.of(answers[-1]) == expected
    if expected.code == 0x7F:
        assert ErrorResponse.decode(answers[-1]).encode() == answers[-1]


def test_the_table_names_each_sequence_once() -> None:
    names = [row.name for row in ROWS]
    assert len(set(names)) == len(names)
    sequences = [(row.requests, row.emu_version) for row in ROWS]
    assert len(set(sequences)) == len(sequences)
    assert {row.rule for row in ROWS} == {"spec", "same", "ours"}
    # every divergence from libspdm is a decision: DSP0274 names Ironroot's answer, or it is ours
    for row in ROWS:
        for transport in ("MCTP", "PCI_DOE", "TCP"):
            ours, libspdm = row.answers(transport)
            if libspdm is not None and libspdm != ours:
                assert row.rule in ("spec", "ours"), (transport, row.name)
