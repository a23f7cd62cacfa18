"""Coverage-guided fuzzing of one target with atheris (libFuzzer), for long runs: ``make fuzz``.

    python tests/fuzz/atheris_main.py --list
    python tests/fuzz/atheris_main.py TARGET [libFuzzer options, e.g. -runs=1000000]

Ironroot is instrumented for coverage; the corpus starts from the target's seeds (valid inputs,
see ``_targets.py``) in ``$FUZZ_DIR/corpus/TARGET`` (default ``/tmp/ironroot-fuzz``). Half of
the mutations are libFuzzer's own, half the structure-aware ones of ``_mutate.py`` (CBOR, DER
inside anything, PEM, JSON, and byte changes biased to the end of the input). Any exception
that is not an Ironroot typed error is a crash: libFuzzer stops and writes the input to
``-artifact_prefix`` (the Makefile points it at ``$FUZZ_DIR/crashes/``). A crash found this way
gets a regression test in ``tests/fuzz/test_fuzz_regressions.py``.
"""

from __future__ import annotations

import contextlib
import os
import random
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))

with atheris.instrument_imports(include=["ironroot"]):
    from _mutate import mutate
    from _targets import TARGETS

    from ironroot.errors import IronrootError


def _corpus(name: str) -> Path:
    folder = Path(os.environ.get("FUZZ_DIR", "/tmp/ironroot-fuzz")) / "corpus" / name
    folder.mkdir(parents=True, exist_ok=True)
    if not any(folder.iterdir()):
        for number, seed in enumerate(TARGETS[name].seeds()):
            (folder / f"seed-{number:03d}").write_bytes(seed)
    return folder


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        raise SystemExit(2)
    if sys.argv[1] == "--list":
        print("\n".join(sorted(TARGETS)))
        return
    name = sys.argv[1]
    if name not in TARGETS:
        print(f"unknown target {name!r}; --list shows them", file=sys.stderr)
        raise SystemExit(2)
    target = TARGETS[name]
    corpus = _corpus(name)

    def test_one_input(data: bytes) -> None:
        with contextlib.suppress(IronrootError):
            target.run(data)

    def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
        rng = random.Random(seed)
        if rng.random() < 0.5:
            return bytes(atheris.Mutate(data, max_size))
        return mutate(data, rng)[:max_size]

    args = [sys.argv[0], *sys.argv[2:], str(corpus)]
    atheris.Setup(args, test_one_input, custom_mutator=custom_mutator)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
