"""The child of ``test_fleet_scan``: ``scan_killed.py FLEET ISSUER`` runs a scan round of the
fleet ``FLEET`` triggered by a statement of ``ISSUER`` and is killed (``os._exit``, as by
``kill -9``) as it starts attesting the first node: the triggered nodes stay written down."""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

from ironroot.fleet import Fleet, Scanner
from ironroot.monitor import MonitorEvent


def killed(node_id: str, now: dt.datetime) -> str:
    os._exit(9)


event = MonitorEvent("statement", "log.example", "http://log", 1, iss=sys.argv[2], sub="x")
Scanner(Fleet.open(Path(sys.argv[1])), killed, period=86400, concurrency=1).scan(
    dt.datetime(2026, 6, 1, 12, 0, 10, tzinfo=dt.UTC), [event]
)
