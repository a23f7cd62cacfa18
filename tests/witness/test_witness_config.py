"""The witness's data directory: configurations it writes can be read back, whatever
characters an origin or a name holds (c2sp.org/tlog-checkpoint allows any but controls)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import ConfigError
from ironroot.log import NoteSigner
from ironroot.witness import WitnessedLog, add_log, init_witness_dir, load_witness_config

ODD = [
    "log.example/\U0001f600",  # past U+FFFF: JSON's ASCII escape is two surrogates
    "log.example/\u2028line-separator",
    "log.example/\u0085next-line",
    "log.example/\u202eoverride",
    'log.example/"quoted"\\back',
]


def _log(origin: str) -> WitnessedLog:
    # the key carries the origin's name where a key name may (no spaces: U+2028 and U+0085 are)
    name = origin if not any(c.isspace() for c in origin) else "log.example/key"
    key = PrivateKey.generate(Algorithm.ED25519)
    return WitnessedLog(origin, (NoteSigner(name, key).verifier(),))


@pytest.mark.parametrize("origin", ODD)
def test_a_log_with_an_odd_origin_is_added_and_read_back(tmp_path: Path, origin: str) -> None:
    log = _log(origin)
    init_witness_dir(tmp_path / "added", name="witness.example/w1")
    config = add_log(tmp_path / "added", log)
    assert [(x.origin, x.verifiers) for x in config.logs] == [(origin, log.verifiers)]
    config = init_witness_dir(tmp_path / "initial", name="witness.example/w1", logs=[log])
    assert [(x.origin, x.verifiers) for x in config.logs] == [(origin, log.verifiers)]


def test_a_witness_name_past_u_ffff_is_written_and_read_back(tmp_path: Path) -> None:
    name = "witness.example/\U0001f600"
    assert init_witness_dir(tmp_path, name=name).name == name
    assert load_witness_config(tmp_path).name == name


def test_a_configuration_that_is_a_pipe_is_read_as_empty_not_waited_on(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    os.mkfifo(tmp_path / "witness.toml")  # nobody writes to it
    run = subprocess.run(  # in a process of its own: one that waits is stopped, and fails
        [sys.executable, "-m", "ironroot", "witness", "show", "--data", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (run.returncode, run.stderr) == (
        2,
        f"ironroot: config: {tmp_path}/witness.toml has no [witness] table\n",
    )


def test_a_log_naming_one_checkpoint_key_twice_is_refused() -> None:
    # signed-note: a name and key id identify one key. With two, the log's signature line was
    # served twice beside the witness's cosignatures (or a second key with the first's name
    # and key id hid it, and every checkpoint it signed was refused as untrusted).
    verifier = NoteSigner("log.example/a", PrivateKey.generate(Algorithm.ED25519)).verifier()
    named = f"names the checkpoint key log.example/a+{verifier.key_id.hex()} twice"
    with pytest.raises(ConfigError, match=re.escape(named)):
        WitnessedLog("log.example/a", (verifier, verifier))


def test_a_configuration_naming_one_log_key_twice_is_refused(tmp_path: Path) -> None:
    init_witness_dir(tmp_path, name="witness.example/w1")
    vkey = NoteSigner("log.example/a", PrivateKey.generate(Algorithm.ED25519)).verifier().vkey
    with (tmp_path / "witness.toml").open("a") as out:
        out.write(f'[[witness.logs]]\norigin = "log.example/a"\nkeys = ["{vkey}", "{vkey}"]\n')
    with pytest.raises(ConfigError, match="twice") as caught:
        load_witness_config(tmp_path)
    assert "witness.logs[0]" in caught.value.detail


def _add_logs(directory: Path, prefix: str, count: int, start: object) -> None:
    start.wait()  # type: ignore[attr-defined]
    for number in range(count):
        add_log(directory, _log(f"log.example/{prefix}{number}"))


def test_logs_added_by_two_processes_at_once_are_all_kept(tmp_path: Path) -> None:
    """``add_log`` reads, extends and writes the configuration: two at once used to keep one
    writer's tables and lose the other's. Each now holds the configuration's lock."""
    import multiprocessing

    directory = tmp_path / "w"
    init_witness_dir(directory, name="witness.example/w1")
    context = multiprocessing.get_context("fork")
    start = context.Barrier(2)
    workers = [
        context.Process(target=_add_logs, args=(directory, prefix, 30, start))
        for prefix in ("a", "b")
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [w.exitcode for w in workers] == [0, 0]
    origins = {log.origin for log in load_witness_config(directory).logs}
    assert origins == {f"log.example/{p}{n}" for p in ("a", "b") for n in range(30)}
