"""LMS state restored from an older copy (a backup, a VM snapshot, a copied directory).

A new process opening the state file cannot tell an older copy from the latest one by the file
alone; a copy would sign again with one-time keys it already spent, and two LMS signatures
under one one-time key let anyone forge. A key bound to a root-of-trust monotonic counter
(``LmsPrivateKey.generate(..., counter=)``, ``load(..., counter=)``) refuses such a copy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ironroot.crypto import LmsPrivateKey
from ironroot.errors import Conflict, StateReuse
from rot_counters import provisioned_device

H5 = "SHA256-N24-H5-W4"


def _leaf(signature: bytes) -> int:
    return int.from_bytes(signature[4:8], "big")  # HSS Nspk = 0, then the LMS q


def test_an_unbound_key_cannot_tell_a_restored_copy(tmp_path: Path) -> None:
    """The hole, kept visible: without a counter a new process signs again with a used leaf
    (the reason docs/crypto.md says to bind every signing key to a counter)."""
    key = LmsPrivateKey.generate(tmp_path / "lms.state", H5)
    shutil.copy2(key.path, tmp_path / "backup")
    first = key.sign(b"release 1")
    shutil.copy2(tmp_path / "backup", key.path)
    again = LmsPrivateKey.load(key.path).sign(b"release 2")
    assert _leaf(first) == _leaf(again) == 0


def test_a_restored_copy_of_a_bound_state_is_refused(tmp_path: Path) -> None:
    rot = provisioned_device(tmp_path / "rot")
    key = LmsPrivateKey.generate(tmp_path / "lms.state", H5, counter=rot.counter("lms-vendor"))
    first = key.sign(b"release 1")
    shutil.copy2(key.path, tmp_path / "backup")  # yesterday's backup: leaf 1 is next
    second = LmsPrivateKey.load(key.path, counter=rot.counter("lms-vendor")).sign(b"release 2")
    assert [_leaf(first), _leaf(second)] == [0, 1]
    live = LmsPrivateKey.load(key.path, counter=rot.counter("lms-vendor"))
    shutil.copy2(tmp_path / "backup", key.path)
    with pytest.raises(StateReuse, match=r"older copy .* counter 'lms-vendor'") as caught:
        LmsPrivateKey.load(key.path, counter=rot.counter("lms-vendor"))
    assert caught.value.code == "state-reuse"
    assert "written at counter 2, the counter is at 3" in caught.value.detail
    # A signer that was already open when the copy was put back refuses too.
    with pytest.raises(StateReuse, match="older copy"):
        live.sign(b"release 3")


def test_a_copied_directory_restored_whole_is_refused(tmp_path: Path) -> None:
    """The key's directory copied and put back: only the counter, held outside it, says so."""
    rot = provisioned_device(tmp_path / "rot")
    keys = tmp_path / "keys"
    keys.mkdir()
    key = LmsPrivateKey.generate(keys / "lms.state", H5, counter=rot.counter("lms"))
    shutil.copytree(keys, tmp_path / "snapshot")
    key.sign(b"release 1")
    shutil.rmtree(keys)
    shutil.copytree(tmp_path / "snapshot", keys)
    with pytest.raises(StateReuse, match="older copy"):
        LmsPrivateKey.load(keys / "lms.state", counter=rot.counter("lms")).sign(b"release 2")


def test_a_bound_state_opened_without_its_counter_is_refused(tmp_path: Path) -> None:
    rot = provisioned_device(tmp_path / "rot")
    key = LmsPrivateKey.generate(tmp_path / "lms.state", H5, counter=rot.counter("lms"))
    unbound = LmsPrivateKey.load(key.path)  # opens for its public key and what is left
    assert (unbound.public_key, unbound.remaining()) == (key.public_key, 32)
    with pytest.raises(StateReuse, match="bound to the root-of-trust counter 'lms': open it"):
        unbound.sign(b"x")
    with pytest.raises(StateReuse, match="bound to the root-of-trust counter 'lms', not 'other'"):
        LmsPrivateKey.load(key.path, counter=rot.counter("other"))


def test_an_unbound_state_binds_only_to_an_unused_counter(tmp_path: Path) -> None:
    rot = provisioned_device(tmp_path / "rot")
    key = LmsPrivateKey.generate(tmp_path / "lms.state", H5)
    key.sign(b"before binding")
    bound = LmsPrivateKey.load(key.path, counter=rot.counter("lms"))
    assert _leaf(bound.sign(b"after binding")) == 1
    assert rot.counter("lms").value() == 1
    other = LmsPrivateKey.generate(tmp_path / "other.state", H5)
    with pytest.raises(StateReuse, match="counter 'lms' is at 1"):
        LmsPrivateKey.load(other.path, counter=rot.counter("lms"))


def test_a_key_is_generated_on_an_unused_counter_only(tmp_path: Path) -> None:
    """As an HSM initializes on a counter at 0 only: a second key on a counter in use would
    put the first key's state behind it."""
    rot = provisioned_device(tmp_path / "rot")
    LmsPrivateKey.generate(tmp_path / "first.state", H5, counter=rot.counter("lms"))
    with pytest.raises(Conflict, match="counter 'lms' is at 1: it is in use") as caught:
        LmsPrivateKey.generate(tmp_path / "second.state", H5, counter=rot.counter("lms"))
    assert type(caught.value) is Conflict
    assert not (tmp_path / "second.state").exists()


def test_the_counter_moved_by_someone_else_is_refused(tmp_path: Path) -> None:
    """A counter shared with another key (or user) makes this key's state look old: one
    counter per key."""
    rot = provisioned_device(tmp_path / "rot")
    key = LmsPrivateKey.generate(tmp_path / "lms.state", H5, counter=rot.counter("lms"))
    rot.counter("lms").increment()
    with pytest.raises(StateReuse, match="older copy"):
        key.sign(b"x")


def test_a_crash_between_the_state_write_and_the_increment_rolls_forward(tmp_path: Path) -> None:
    """The state is written (leaf reserved, counter value c + 1) before the counter is
    incremented; a crash in between leaves the state one ahead, which the next open accepts
    and rolls forward: the reserved leaf is lost, never used twice."""
    rot = provisioned_device(tmp_path / "rot")
    counter = rot.counter("lms")
    key = LmsPrivateKey.generate(tmp_path / "lms.state", H5, counter=counter)
    assert _leaf(key.sign(b"a")) == 0
    before = counter.value()

    class Crash(Exception):
        pass

    class Dying:
        name = "lms"

        def value(self) -> int:
            return counter.value()

        def increment(self) -> int:
            raise Crash

    with pytest.raises(Crash):
        LmsPrivateKey.load(key.path, counter=Dying()).sign(b"b")
    assert counter.value() == before
    reopened = LmsPrivateKey.load(key.path, counter=counter)
    assert counter.value() == before + 1  # rolled forward
    assert _leaf(reopened.sign(b"c")) == 2  # leaf 1 was reserved by the crashed signer: lost
