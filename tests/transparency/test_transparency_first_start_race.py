"""Two first starts of a transparency service on one data directory at once (two
``ironroot serve``, ``serve --init-only``, or a start and a service already running): whatever
the interleaving, the directory ends with one set of service keys, which every start that
went on signs with and every later start uses; the other start waits for nothing and fails
with ``InUse`` (exit 2), or finds the keys made and uses them. No key that may have signed is
ever replaced: every key file is written under the directory's lock."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ironroot.cli import main
from ironroot.cose import decode_key_set
from ironroot.crypto import Algorithm, load_signer
from ironroot.errors import InUse
from ironroot.log.layout import checkpoint_key_path, checkpoint_public_key_path, receipt_keys_path
from ironroot.transparency import TransparencyService, init_data_dir
from ironroot.transparency._config import receipt_key_path
from pause_points import PausedProcess, child_env
from scratch import in_memory

STORE_INDEPENDENT = True  # the default configuration's SQLite store
HERE = Path(__file__).parent
IN_USE = "is in use by another process"


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    with in_memory("ts-first-start-race-") as directory:
        yield directory


def _keys_in_use(data: Path) -> tuple[list[str], list[str]]:
    with TransparencyService.open(data) as service:
        return [k.kid.hex() for k in service.receipt_keys], list(service.checkpoint_vkeys)


def _one_set_of_keys(data: Path) -> tuple[list[str], list[str]]:
    """The keys the next two starts sign with: the same, those of the key files, and the only
    ones published."""
    first, again = _keys_in_use(data), _keys_in_use(data)
    assert first == again
    receipt = load_signer(receipt_key_path(data, Algorithm.ES384)).verifier()
    assert first[0] == [receipt.kid.hex()]
    assert list(decode_key_set(receipt_keys_path(data).read_bytes())) == [receipt.kid]
    checkpoint = load_signer(checkpoint_key_path(data)).verifier()
    assert checkpoint_public_key_path(data).read_bytes() == checkpoint.to_pem()  # type: ignore[attr-defined]
    return first


FIRST_STARTS = {
    "open": ([], HERE / "first_start.py"),
    "serve --init-only": (["serve", "--init-only", "--data"], None),
}


@pytest.mark.parametrize("first", sorted(FIRST_STARTS))
def test_a_start_while_a_first_start_writes_a_key_is_in_use_and_its_keys_are_kept(
    tmp_path: Path, first: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    argv, script = FIRST_STARTS[first]
    with PausedProcess(
        tmp_path / "pause", [*argv, str(data)], before="receipt-es384.key", script=script
    ) as writing:
        # It has chosen to make the receipt key and not yet put it in place.
        with pytest.raises(InUse, match=IN_USE) as caught:
            TransparencyService.open(data)
        assert caught.value.code == "in-use"
        capsys.readouterr()
        assert main(["serve", "--data", str(data), "--init-only"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"ironroot: in-use: the data directory {data} {IN_USE}")
        assert "Traceback" not in err
        done = writing.resume()
    assert done.returncode == 0, done.stderr
    assert b"Traceback" not in done.stderr
    _one_set_of_keys(data)


def test_a_running_service_s_directory_needs_nothing_and_another_init_leaves_it_as_it_is(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    before = _keys_in_use(data)
    files = {p: p.read_bytes() for p in (data / "keys").iterdir()}
    with TransparencyService.open(data):
        init_data_dir(data)
        assert main(["serve", "--data", str(data), "--init-only"]) == 0
    assert {p: p.read_bytes() for p in (data / "keys").iterdir()} == files
    assert _one_set_of_keys(data) == before


def test_a_key_to_make_while_a_service_holds_the_directory_is_in_use(tmp_path: Path) -> None:
    data = tmp_path / "data"
    init_data_dir(data)
    config = data / "ironroot.toml"
    text = config.read_text().replace(
        'receipt_algorithms = ["ES384"]', 'receipt_algorithms = ["ES384", "ES256"]'
    )
    with TransparencyService.open(data):
        config.write_text(text)
        with pytest.raises(InUse, match=IN_USE):
            init_data_dir(data)
        assert not receipt_key_path(data, Algorithm.ES256).exists()
    init_data_dir(data)
    assert receipt_key_path(data, Algorithm.ES256).exists()


def test_two_first_starts_at_once_end_with_one_set_of_keys_that_every_start_uses(
    tmp_path: Path,
) -> None:
    rounds = 20
    done = subprocess.run(
        [sys.executable, str(HERE / "racing_starts.py"), str(tmp_path), str(rounds)],
        env=child_env(),
        capture_output=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert b"Traceback" not in done.stderr
    for number in range(rounds):
        folder = tmp_path / str(number)
        results = [json.loads((folder / f"{n}.json").read_text()) for n in (1, 2)]
        receipt, checkpoint = _one_set_of_keys(folder / "data")
        used = {"receipt": receipt, "checkpoint": checkpoint}
        assert used in results, number  # one of them went on, with these keys
        for result in results:
            assert result in (used, {"error": "in-use"}), number
