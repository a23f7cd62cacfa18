"""The demo's own honesty: an attack is "refused" only by the check it names, never by an
earlier, unrelated error. For a few attacks the attacker's one change is left out (the bit
not flipped, the key not swapped, the EAR made for the key sent with it, the key's own user
asking) and the same attempt, in the same world, must then go through — reported **not
refused** — while the real attack next to it is refused with its exact error.

One story (the acts at the test size, in this process) for the whole module, in a single
test: the acts take most of the time, and the world lives in this worker only.
"""

from __future__ import annotations

import dataclasses
import functools
import io
from pathlib import Path

import pytest

from ironroot.demo import ACTS, ATTACKS, Narrator, Story, run_attack

pytestmark = pytest.mark.integration

HARMLESS = {
    # attack name -> the attempt's keyword that leaves the attacker's change out
    "tampered-log-row": {"flip": False},
    "hsm-other-user": {"as_key_user": True},
    "stolen-ear": {"same_key": True},
    "swapped-release": {"swap": False},
    "tampered-audit": {"flip": False},
    "debug-unlocked": {"debug_locked": True},  # its code, verification-failed, is generic
}


def test_an_attack_without_its_change_goes_through_and_is_reported_not_refused(
    tmp_path: Path,
) -> None:
    story = Story(tmp_path / "work", Narrator(io.StringIO(), width=200), nodes=3, wave_size=2)
    try:
        for act in ACTS:
            act.run(story)
        attacks = {a.name: a for a in ATTACKS}
        for name, harmless in HARMLESS.items():
            attack = attacks[name]
            benign = dataclasses.replace(
                attack, attempt=functools.partial(attack.attempt, **harmless)
            )
            result = run_attack(story, benign)
            assert result.refused is False, (name, result)
            # nothing raised, or a service answered 2xx (the attempt's NotRefused)
            assert result.error_class in (None, "NotRefused"), (name, result)
            assert result.error_code is None, (name, result)
            assert "went through" in result.message, (name, result)
            assert result.to_json()["outcome"] == "not-refused"
            real = run_attack(story, attack)
            assert real.refused is True, (name, real)
            assert (real.error_class, real.error_code) == (attack.expect.__name__, attack.code)
    finally:
        story.close()
