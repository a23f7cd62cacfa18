"""Start time of every command group, against the interpreter's own start, in one run.

Run: ``make bench`` (or ``.venv/bin/python bench/cli_start.py [--runs N]``).

Each figure is the median wall time of ``N`` fresh processes running ``ironroot <group>
--help`` (the parser of that group is built, as for any of its verbs, and nothing runs), and of
``ironroot --version``; the baseline is ``python -c pass`` measured alternately with them, so a
busy machine moves both. It prints seconds, the ratio to the baseline, and whether the group
starts under the 0.2 s target.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from ironroot.cli._main import GROUPS  # the table the command itself lists

TARGET = 0.2


def wall(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="processes per command")
    args = parser.parse_args()
    found = shutil.which("ironroot", path=str(Path(sys.executable).parent))
    ironroot = [found] if found else [sys.executable, "-m", "ironroot"]
    commands = {"--version": [*ironroot, "--version"]}
    commands.update({g: [*ironroot, g, "--help"] for g in GROUPS})
    baseline_runs: list[float] = []
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, argv in commands.items():
            baseline_runs.append(wall([sys.executable, "-c", "pass"]))
            times[name].append(wall(argv))
    baseline = statistics.median(baseline_runs)
    print(f"command start, median of {args.runs} processes; python -c pass: {baseline:.3f} s")
    slow = []
    for name, runs in times.items():
        t = statistics.median(runs)
        mark = "ok" if t < TARGET else "SLOW"
        if t >= TARGET:
            slow.append(name)
        print(f"  ironroot {name:<11} {t:6.3f} s  {t / baseline:5.1f}× python  {mark}")
    print(f"every group under {TARGET} s" if not slow else f"over {TARGET} s: {', '.join(slow)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
