"""Crashes in the admission directory. An admission set-up cut short (a crash before any of
its files lands, or between two of them) is finished by the next set-up:
``AdmissionAuthority.open`` says it is not set up (``NotFound``) until ``config.json``, written
last, is there, and ``init`` run again completes it, keeping the keys the first run wrote
(never replaced, never used for anything before). A CRL added and cut short before its event
gets its event from the next add. The cut is a fault injected at each rename or link that
lands a file (``write_atomic``'s last step), or at the event's commit: what the disk holds
then is what a ``kill -9`` there leaves."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.fleet.admission_world import AdmissionWorld, admission_world
from tests.fleet.fleet_world import node_class
from tests.fleet.test_fleet_revocation import _crl
from tests.platform.node_world import NOW, World, make_world

from ironroot.errors import NotFound
from ironroot.fleet import AdmissionAuthority, Fleet, add_crl


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("admission-crash-world")) as w:
        yield w


@pytest.fixture(scope="module")
def aw(world: World) -> AdmissionWorld:
    return admission_world(world)


_KEYS = ("ca.key.pem", "verifier.key.pem")


class _Cut(BaseException):
    """The process died here (nothing may catch it and go on)."""


def _cut_at(monkeypatch: pytest.MonkeyPatch, at: int) -> list[int]:
    """Raise :class:`_Cut` instead of the ``at``-th rename or link (0: never); the list
    returned counts the ones made."""
    seen = [0]

    def wrap(real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            seen[0] += 1
            if seen[0] == at:
                raise _Cut
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(os, "replace", wrap(os.replace))
    monkeypatch.setattr(os, "link", wrap(os.link))
    return seen


def _init(aw: AdmissionWorld, fleet: Fleet) -> AdmissionAuthority:
    return AdmissionAuthority.init(fleet, vendor_roots=list(aw.vendor_ca.trust_anchors), now=NOW)


def test_an_admission_set_up_cut_short_anywhere_is_finished_by_the_next(
    world: World, aw: AdmissionWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as m:
        counted = Fleet.create(tmp_path / "counted", node_class=node_class(world))
        seen = _cut_at(m, 0)
        _init(aw, counted)
        landings = seen[0]
    assert landings >= 5  # CA key and certificate, verifier key and its public key, roots, config
    for at in range(1, landings + 1):
        fleet = Fleet.create(tmp_path / f"cut-{at}", node_class=node_class(world))
        with monkeypatch.context() as m:
            _cut_at(m, at)
            with pytest.raises(_Cut):
                _init(aw, fleet)
        with pytest.raises(NotFound) as info:  # config.json, the last file, did not land
            AdmissionAuthority.open(fleet)
        assert type(info.value) is NotFound
        assert "admission is not set up" in info.value.detail
        folder = tmp_path / f"cut-{at}" / "admission"
        keys = {n: (folder / n).read_bytes() for n in _KEYS if (folder / n).exists()}
        made = _init(aw, fleet)  # the set-up is made again, from where it stopped
        opened = AdmissionAuthority.open(fleet)
        assert opened.ca.certificate == made.ca.certificate, at
        for name, data in keys.items():  # a key the first run made is kept, never replaced
            assert (folder / name).read_bytes() == data, (at, name)
            assert (folder / name).stat().st_mode & 0o777 == 0o600
        assert {n for n in os.listdir(folder) if n.endswith(".tmp")} == set()
        # one event says admission was set up, whichever run recorded it
        assert len(fleet.events(kind="admission-initialized")) == 1, at


def test_a_crl_added_and_cut_short_before_its_event_gets_it_when_added_again(
    world: World, aw: AdmissionWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CRL's file lands, then the ``crl-added`` event: a crash between the two left a CRL
    in force that no event recorded, and adding it again recorded nothing (the file was
    there). Now the event is recorded by the next add, once."""
    fleet = Fleet.create(tmp_path / "fleet", node_class=node_class(world))
    crl = _crl(aw.vendor_ca.ecc_certificate, aw.vendor_ca.ecc_key, 7)

    def cut(*args: object, **kwargs: object) -> None:
        raise _Cut

    with monkeypatch.context() as m:
        m.setattr(Fleet, "record", cut)
        with pytest.raises(_Cut):
            add_crl(fleet, crl, now=NOW)
    name = add_crl(fleet, crl, now=NOW)
    assert (fleet.directory / "admission" / "crls" / name).is_file()
    assert add_crl(fleet, crl, now=NOW) == name  # and once only
    events = fleet.events(kind="crl-added")
    assert [e.detail["file"] for e in events] == [name]


def test_an_admission_set_up_cut_short_at_its_event_is_never_in_force_without_it(
    world: World, aw: AdmissionWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ``admission-initialized`` event was recorded after ``config.json``: a crash between
    the two left admission in force (it opened, issued credentials) with no event saying it
    was set up, and nothing recorded it later (``init`` was ``Conflict``)."""
    fleet = Fleet.create(tmp_path / "fleet", node_class=node_class(world))

    def cut(*args: object, **kwargs: object) -> None:
        raise _Cut

    with monkeypatch.context() as m:
        m.setattr(Fleet, "record", cut)
        with pytest.raises(_Cut):
            _init(aw, fleet)
    try:
        AdmissionAuthority.open(fleet)
    except NotFound:
        _init(aw, fleet)
    AdmissionAuthority.open(fleet)
    assert len(fleet.events(kind="admission-initialized")) == 1
