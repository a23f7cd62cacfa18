"""The RoT's journal read on its own: which half is in force, and what of it is read."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from ironroot.platform._flash import Flash, RotFlashWriter
from ironroot.platform._journal import Journal
from ironroot.rot import MemoryCounter

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
KEY = bytes(range(32))


def _journal(tmp_path: Path, counter: MemoryCounter) -> tuple[Flash, Journal]:
    Flash.format(tmp_path / "flash", {"rot": 0})
    flash = Flash(tmp_path / "flash")
    return flash, Journal(flash, RotFlashWriter(flash), KEY, counter)


def test_the_newer_half_is_in_force_whatever_the_older_half_holds(tmp_path: Path) -> None:
    """Records fill half 0 until one starts half 1 (generation 2); the older half, its records
    damaged afterwards, changes nothing of what opens: the newer half's records."""
    counter = MemoryCounter()
    flash, journal = _journal(tmp_path, counter)
    assert journal.open() is None
    filler = {"pad": b"\x00" * 60_000}
    step = 0
    while step < 2 or len(journal.history) > 1:  # one record in force: it began half 1
        step += 1
        journal.append(f"step-{step}", {"n": step, **filler}, NOW)
    journal.append("after", {"n": step + 1}, NOW)
    region = flash.chip("rot").region("journal")
    with (tmp_path / "flash" / "rot.bin").open("r+b") as handle:  # every record of half 0
        handle.seek(region.offset + 64)
        handle.write(b"\xff" * (region.size // 2 - 64))
    again = Journal(flash, RotFlashWriter(flash), KEY, counter)
    last = again.open()
    assert last is not None
    assert (last.step, last.state) == ("after", {"n": step + 1})
    assert [r.step for r in again.history] == [f"step-{step}", "after"]
    assert counter.value() == last.ctr
