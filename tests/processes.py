"""Whether a process is still running, for tests and the suite's own housekeeping."""

from __future__ import annotations

from pathlib import Path

__all__ = ["process_running"]


def process_running(pid: int) -> bool:
    """``pid`` exists and has not exited (a zombie that nobody has reaped yet has exited:
    orphans on some machines wait long for init to reap them)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"
