"""A serving process's heap is settled before it serves (``ironroot.http.settle_heap``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from ironroot.http._server import YOUNG_COLLECTION_THRESHOLD

_PROBE = """
import gc, json
from ironroot.http import settle_heap
kept = [object() for _ in range(10)]  # made at start-up, kept for the process's life
before = (gc.get_freeze_count(), gc.get_threshold())
settle_heap()
print(json.dumps({"before": before, "after": (gc.get_freeze_count(), gc.get_threshold())}))
"""


def test_start_up_objects_are_frozen_and_young_objects_collected_less_often() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, check=True
    )
    seen = json.loads(out.stdout)
    (frozen_before, threshold_before) = seen["before"]
    (frozen_after, threshold_after) = seen["after"]
    assert frozen_before == 0
    assert frozen_after > 1000  # the modules and everything start-up made
    assert threshold_before[0] == 700  # CPython's default
    assert threshold_after == [YOUNG_COLLECTION_THRESHOLD, *threshold_before[1:]]
