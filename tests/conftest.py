"""Shared fixtures: where the interop vectors are."""

from __future__ import annotations

import gc
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from cli_parsers import parsers_reused
from hypothesis_budget import examples
from ironroot_vectors import vectors_dir, vectors_missing
from processes import process_running

__all__ = ["vectors_dir"]

# Property tests that do not name their number of examples draw Hypothesis's default (100) in
# the full suite and a fifth of it in the fast tier (tests/hypothesis_budget.py).
settings.register_profile("ironroot", max_examples=examples(100))
settings.load_profile("ironroot")


# Every test's temporary directory on tmpfs. The product makes each write durable (fsync of the
# file and its directory); on this kind of machine's disk one fsync takes ~4 ms, so the suite
# spent most of its wall clock waiting for syncs, not checking anything. No test cuts the
# machine's power: kill -9 and injected faults leave the kernel's page cache in place, so the
# tests prove the same on tmpfs (tests/scratch.py says the same for the tests that used it
# first). A run gets its own directory, so runs side by side (worktrees, CI jobs) never clear
# each other's; a directory left by a run that has ended is removed by the next run, so at
# most one finished run's files (kept for a look after a failure) stay in memory. `--basetemp`
# or IRONROOT_TEST_TMP=disk keeps pytest's default place.
_TMPFS = Path("/dev/shm")


def _tmpfs_base() -> Path | None:
    if os.environ.get("IRONROOT_TEST_TMP") == "disk":
        return None
    if not (_TMPFS.is_dir() and os.access(_TMPFS, os.W_OK)):
        return None
    return _TMPFS / f"ironroot-pytest-{os.getuid()}"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if config.option.basetemp is not None or hasattr(config, "workerinput"):
        return  # chosen by the caller, or an xdist worker (its controller chose)
    base = _tmpfs_base()
    if base is None:
        return
    base.mkdir(mode=0o700, exist_ok=True)
    for old in base.iterdir():  # runs that have ended
        ended = old.name.isdigit() and not process_running(int(old.name))
        if ended and int(old.name) != os.getpid():
            shutil.rmtree(old, ignore_errors=True)
    config.option.basetemp = str(base / str(os.getpid()))


# The cyclic garbage collector, set for a test process. Collection imports every module the
# suite touches (ironroot, cryptography, hypothesis, starlette, ...): some 130,000 objects that
# live as long as the process, and Python's default thresholds (700, 10, 10) walked all of them
# in each full collection, some thirty times a minute in the busy modules. Frozen (never
# walked again) and with collections ten times rarer, the collector took 1.0 s instead of
# 4.8 s of a 30 s run of the log, NVIDIA-evidence and audit-bundle tests (with coverage), and
# their CPU time fell by 13-22%. Reference counting still frees everything not in a cycle at
# once; cycles are freed later (the tests close what they open: leaks fail them either way).
_GC_THRESHOLDS = (10_000, 20, 20)


def pytest_collection_finish(session: pytest.Session) -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)


@pytest.fixture(scope="session")
def vectors() -> Path:
    """The vectors folder; skips the test, saying why, when it is absent."""
    path = vectors_dir()
    if path is None:
        vectors_missing(
            "interop vectors not found: set IRONROOT_VECTORS or provide ../shared/vectors"
        )
    return path


@pytest.fixture(autouse=True)
def _cli_parsers_reused(request: pytest.FixtureRequest) -> Iterator[None]:
    """In-process ``ironroot.cli.main`` runs reuse each group's parser (tests/cli_parsers.py),
    except in a test that patches anything: it may patch a verb the parser points at."""
    if "monkeypatch" in request.fixturenames:
        yield
        return
    with parsers_reused():
        yield


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """A test that starts a service configures the ``ironroot`` logger (handler, level) the way
    the service's process would; undo that, so later tests see the defaults."""
    import logging

    logger = logging.getLogger("ironroot")
    handlers, level = list(logger.handlers), logger.level
    yield
    for handler in list(logger.handlers):
        if handler not in handlers:
            logger.removeHandler(handler)
    logger.setLevel(level)


# The test tiers. `make test-fast` runs the unit tier: `-m "not integration and not slow"`.
# A module is in the integration tier when its source (or a test world it imports) starts a
# server, a subprocess or a browser, or talks to PostgreSQL; the patterns below find them, so
# a new test module is placed without anyone remembering to mark it. `slow` marks single tests
# that are unit tests but take seconds (parameter-set key generation, exhaustive bit flips).
_INTEGRATION = re.compile(
    r"ServerThread|serve_fleet|run_server|subprocess|Popen|multiprocessing|os\.fork|"
    r"playwright|psycopg|IRONROOT_TEST_PG|pg_store|socket\.socket|uvicorn|spdm_emu|"
    r"run_cli_process|sys\.executable"
)
_WORLDS = re.compile(r"^from (\w+) import|^import (\w+)", re.MULTILINE)
_TESTS = Path(__file__).parent
_tier_cache: dict[Path, bool] = {}


def _starts_things(path: Path, seen: frozenset[Path] = frozenset()) -> bool:
    if path in _tier_cache:
        return _tier_cache[path]
    try:
        source = path.read_text(encoding="utf-8")
    except OSError:
        return False
    found = bool(_INTEGRATION.search(source))
    if not found:  # a test world beside the module, or a shared one under tests/
        for match in _WORLDS.finditer(source):
            name = match.group(1) or match.group(2)
            for candidate in (path.parent / f"{name}.py", _TESTS / f"{name}.py"):
                fresh = candidate.is_file() and candidate not in seen and candidate != path
                if fresh and _starts_things(candidate, seen | {path}):
                    found = True
                    break
            if found:
                break
    _tier_cache[path] = found
    return found


# Whole-system worlds (a fleet of platforms, a dashboard, the demo) are integration tests even
# when they stay in one process; fuzzing and the CLI sweeps run every parser or command many
# times over and are slow by design.
_INTEGRATION_FOLDERS = frozenset({"web", "demo", "fleet", "platform", "audit"})
_SLOW_FOLDERS = frozenset({"fuzz", "rot_runtime"})
_SLOW_MODULES = re.compile(r"^test_.*cli.*\.py$")
_SESSION_WORLD_FOLDERS = frozenset({"web"})  # tests/web/conftest.py: one world per session
# Then the folders whose tests take longest (3-7 s each: sequencer kills and outages, worker
# and crash processes, the DMTF validators, the demo), so that they run early, not last.
_LONG_FOLDERS = ("transparency", "log", "platform", "demo")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.fspath))
        if _starts_things(path) or path.parent.name in _INTEGRATION_FOLDERS:
            item.add_marker(pytest.mark.integration)
        if path.parent.name in _SLOW_FOLDERS or _SLOW_MODULES.match(path.name):
            item.add_marker(pytest.mark.slow)

    # Integration tests first (a stable sort: modules stay whole, in their order). They take
    # seconds each; run last, one of them kept a worker busy while the other had nothing left
    # (pytest-xdist hands tests out in this order), so the quick unit tests now fill the end.
    # Among them, the folders whose modules share one session-scoped world come first: work
    # stealing (`make test`) gives the first worker the head of the list and takes stolen
    # tests from the tail, so a world at the head is built by one worker only. The folders of
    # the longest tests follow: at the end of the integration tests (where the first worker's
    # share ends, and other workers steal from), they were the run's last tests, one worker
    # finishing a 5 s test while the others had nothing left.
    def order(item: pytest.Item) -> tuple[bool, bool, int]:
        folder = Path(str(item.fspath)).parent.name
        long = _LONG_FOLDERS.index(folder) if folder in _LONG_FOLDERS else len(_LONG_FOLDERS)
        integration = item.get_closest_marker("integration") is not None
        return not integration, folder not in _SESSION_WORLD_FOLDERS, long

    items.sort(key=order)
