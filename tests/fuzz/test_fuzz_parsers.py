"""Every parser that takes untrusted bytes, fuzzed with structure-aware mutations of valid
inputs: only Ironroot's typed errors may escape (a CI-sized budget, ``Target.examples``
mutated inputs per target; `make fuzz` runs the same targets coverage-guided for as long as
it is given)."""

from __future__ import annotations

import random

import pytest
from _mutate import mutate
from _targets import TARGETS, Target
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.errors import IronrootError
from ironroot_vectors import vectors_missing


def _settings(count: int) -> settings:
    return settings(
        max_examples=examples(count),
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def check(target: Target, data: bytes) -> None:
    """Run ``target`` on ``data``; anything but a typed error fails, naming the input."""
    try:
        target.run(data)
    except IronrootError:
        pass
    except Exception as exc:  # the defect this harness exists to find
        raise AssertionError(
            f"{target.name}: {type(exc).__name__}: {exc} on input {data.hex()}"
        ) from exc


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_seeds_are_handled(name: str) -> None:
    target = TARGETS[name]
    seeds = target.seeds()
    if not seeds:
        vectors_missing(f"{name}: no seed inputs (its seeds come from the interop vectors)")
    for seed in seeds:
        check(target, seed)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_mutated_inputs_raise_only_typed_errors(name: str) -> None:
    target = TARGETS[name]
    seeds = target.seeds()
    if not seeds:
        vectors_missing(f"{name}: no seed inputs (its seeds come from the interop vectors)")

    @_settings(target.examples)
    @given(data=st.data())
    def mutated(data: st.DataObject) -> None:
        seed = data.draw(st.sampled_from(seeds), label="seed")
        rng = random.Random(data.draw(st.integers(0, 2**32 - 1), label="rng"))
        check(target, mutate(seed, rng))

    mutated()


@pytest.mark.parametrize("name", sorted(TARGETS))
@settings(max_examples=examples(15), deadline=None, derandomize=True, database=None)
@given(raw=st.binary(max_size=4096))
def test_raw_bytes_raise_only_typed_errors(name: str, raw: bytes) -> None:
    check(TARGETS[name], raw)
