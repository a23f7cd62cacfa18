"""Fuzzing of one target with the structure-aware mutations alone, for long runs where atheris
is not installed (no coverage guidance: each input is one to three mutations of a seed).

    python tests/fuzz/mutate_main.py --list
    python tests/fuzz/mutate_main.py TARGET [-runs=N] [-seed=S]

Input ``i`` is ``mutate(seed, Random(S + i))`` of a seed drawn with the same generator, so a
run is reproducible and input ``i`` can be made again alone. Any exception that is not an
Ironroot typed error is a crash: the first input of each kind (exception type and the line
that raised it) is written to ``$FUZZ_DIR/crashes/TARGET-<i>`` (default
``/tmp/ironroot-fuzz``) and the run goes on. At the end: inputs run, inputs per second, the
slowest input, peak memory, the typed errors seen most, and the crashes; the exit status is 1
when anything crashed.
"""

from __future__ import annotations

import logging
import os
import random
import resource
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _mutate import mutate
from _targets import TARGETS

from ironroot.errors import IronrootError


def _option(name: str, default: int) -> int:
    for arg in sys.argv[2:]:
        if arg.startswith(f"-{name}="):
            return int(arg.split("=", 1)[1])
    return default


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        return 2
    if sys.argv[1] == "--list":
        print("\n".join(sorted(TARGETS)))
        return 0
    name = sys.argv[1]
    if name not in TARGETS:
        print(f"unknown target {name!r}; --list shows them", file=sys.stderr)
        return 2
    runs, first = _option("runs", 10_000), _option("seed", 0)
    crashes_dir = Path(os.environ.get("FUZZ_DIR", "/tmp/ironroot-fuzz")) / "crashes"
    crashes_dir.mkdir(parents=True, exist_ok=True)
    logging.disable(logging.CRITICAL)  # the services' own refusals, logged on every input
    target = TARGETS[name]
    started = time.perf_counter()
    seeds = target.seeds()
    if not seeds:
        print(f"{name}: no seed inputs", file=sys.stderr)
        return 2
    print(f"{name}: {len(seeds)} seed(s), made in {time.perf_counter() - started:.1f} s")
    outcomes: Counter[str] = Counter()
    crashes: dict[tuple[str, str, int], int] = {}
    slowest = 0.0
    started = time.perf_counter()
    for number in range(first, first + runs):
        rng = random.Random(number)
        data = mutate(rng.choice(seeds), rng)
        began = time.perf_counter()
        try:
            target.run(data)
            outcomes["accepted"] += 1
        except IronrootError as exc:
            outcomes[exc.code] += 1
        except Exception as exc:  # the defect this harness exists to find
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            kind = (type(exc).__name__, frame.filename, frame.lineno or 0)
            if kind not in crashes:
                crashes[kind] = number
                (crashes_dir / f"{name}-{number}").write_bytes(data)
                print(f"crash at input {number}: {type(exc).__name__}: {exc}"[:400])
                traceback.print_exc(limit=-3)
        slowest = max(slowest, time.perf_counter() - began)
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{name}: {runs} inputs in {elapsed:.1f} s ({runs / elapsed:.0f}/s), slowest "
        f"{slowest * 1000:.0f} ms, peak RSS {peak:.0f} MiB, {len(crashes)} kind(s) of crash"
    )
    print("  " + ", ".join(f"{code} {count}" for code, count in outcomes.most_common(12)))
    return 1 if crashes else 0


if __name__ == "__main__":
    raise SystemExit(main())
