"""Static tiles end to end: ``ironroot log export-tiles`` from a running service's data
directory or URL writes what the service serves, byte for byte; any static server (Python's
http.server here) then serves a log that ``ironroot log verify`` checks from the tiles alone;
``ironroot log serve-tiles`` answers with the service's own cache headers; ``--follow`` keeps
a mirror current until it is stopped."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from _tx_helpers import VENDOR_ISS, write_config

import ironroot
from ironroot.cli import main
from ironroot.cose import Problem, create_statement
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.log import (
    CACHE_CHECKPOINT,
    CACHE_FULL,
    CACHE_PARTIAL,
    NoteSigner,
    entry_bundles_for_size,
    tiles_for_size,
)
from ironroot.transparency import ServiceThread, TransparencyService, create_tiles_app
from ironroot.witness import Cosigner
from serving import answers, free_port, start_server

pytestmark = pytest.mark.integration

SRC = str(Path(ironroot.__file__).resolve().parents[1])
ENV = {**os.environ, "PYTHONPATH": SRC, "PYTHONDONTWRITEBYTECODE": "1"}
for _name in [n for n in ENV if n.startswith("IRONROOT_") and n != "IRONROOT_VECTORS"]:
    del ENV[_name]
ORIGIN = "transparency.example"


@dataclass
class Running:
    service: TransparencyService
    url: str
    data: Path
    vendor: PrivateKey
    count: int = 0

    def register(self, n: int) -> None:
        tickets = [
            self.service.submit(
                create_statement(self.vendor, b'{"n": %d}' % i, iss=VENDOR_ISS, sub=f"pkg:fw/{i}")
            )
            for i in range(self.count, self.count + n)
        ]
        for ticket in tickets:
            ticket.integrated.result(60)
        self.count += n

    @property
    def vkey(self) -> str:
        return self.service.checkpoint_vkeys[0]


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = write_config(tmp_path / "ts", issuers=[(VENDOR_ISS, vendor)])
    service = TransparencyService.open(data)
    with service, ServiceThread(service) as server:
        yield Running(service, server.url, data, vendor)


@pytest.fixture
def static_server() -> Iterator[callable]:  # type: ignore[valid-type]
    """Start servers over directories; each is stopped at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start(argv: list[str], probe: str = "/") -> str:
        def command(port: int) -> list[str]:
            return [*argv, "--port", str(port)] if "ironroot" in argv else [*argv, str(port)]

        served = start_server(command, answers(probe, status=None), env=ENV, pipes=True)
        started.append(served.process)
        return f"http://127.0.0.1:{served.port}"

    yield start
    for process in started:
        process.terminate()
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate(timeout=30)


def _http_server(directory: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "http.server",
        "--bind",
        "127.0.0.1",
        "--directory",
        str(directory),
    ]


def _paths(size: int) -> list[str]:
    return ["checkpoint"] + [a.path for a in [*tiles_for_size(size), *entry_bundles_for_size(size)]]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_export_serve_and_verify_from_static_tiles_alone(
    running: Running,
    tmp_path: Path,
    static_server: callable,
    capsys: pytest.CaptureFixture[str],  # type: ignore[valid-type]
) -> None:
    running.register(300)
    out = tmp_path / "mirror"
    assert main(["log", "export-tiles", str(out), "--data", str(running.data), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["size"], report["previous_size"]) == (300, 0)
    assert report["origin"] == ORIGIN
    assert report["keys"] == [running.vkey]
    # byte for byte what the service serves, and nothing else
    with httpx.Client(base_url=running.url) as http:
        served = {path: http.get(f"/{path}").content for path in _paths(300)}
    assert _files(out) == served

    # the same from the service's URL
    assert main(["log", "export-tiles", str(tmp_path / "by-url"), "--url", running.url]) == 0
    text = capsys.readouterr().out
    assert f"origin: {ORIGIN}" in text
    assert f"key:    {running.vkey}" in text
    assert _files(tmp_path / "by-url") == served

    # any static web server serves it; log verify checks it from the tiles alone
    url = static_server(_http_server(out), "/checkpoint")
    keys = ["--origin", ORIGIN, "--key", running.vkey]
    assert main(["log", "verify", url, *keys]) == 0
    assert "ok: log transparency.example verified" in capsys.readouterr().out
    assert main(["log", "verify", str(out), *keys, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["size"] == 300
    # static tiles carry no keys: a usage error saying what to give
    assert main(["log", "verify", url]) == 2
    assert "give --origin and --key" in capsys.readouterr().err
    assert main(["log", "verify", str(out)]) == 2
    assert "give --origin and --key" in capsys.readouterr().err
    # a mirror of the mirror, from the static server
    assert main(["log", "export-tiles", str(tmp_path / "again"), "--url", url, *keys]) == 0
    capsys.readouterr()
    assert _files(tmp_path / "again") == served

    # a tampered copy fails verification, naming what is wrong
    bad = tmp_path / "tampered"
    shutil.copytree(out, bad)
    bundle = bad / "tile/entries/000"
    data = bundle.read_bytes()
    bundle.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert main(["log", "verify", str(bad), *keys]) == 1
    assert "tile/0/000 differs from the tile recomputed" in capsys.readouterr().err


def test_serve_tiles_answers_as_the_service_does(
    running: Running,
    tmp_path: Path,
    static_server: callable,
    capsys: pytest.CaptureFixture[str],  # type: ignore[valid-type]
) -> None:
    running.register(260)
    out = tmp_path / "mirror"
    assert main(["log", "export-tiles", str(out), "--data", str(running.data)]) == 0
    capsys.readouterr()
    argv = [sys.executable, "-m", "ironroot", "log", "serve-tiles", str(out)]
    mirror = static_server(argv, "/health")
    expected = {
        "checkpoint": CACHE_CHECKPOINT,
        "tile/0/000": CACHE_FULL,
        "tile/0/001.p/4": CACHE_PARTIAL,
        "tile/1/000.p/1": CACHE_PARTIAL,
        "tile/entries/000": CACHE_FULL,
        "tile/entries/001.p/4": CACHE_PARTIAL,
    }
    with httpx.Client(base_url=running.url) as service, httpx.Client(base_url=mirror) as static:
        for path, cache in expected.items():
            ours, theirs = static.get(f"/{path}"), service.get(f"/{path}")
            assert ours.status_code == theirs.status_code == 200, path
            assert ours.content == theirs.content, path
            assert ours.headers["cache-control"] == theirs.headers["cache-control"] == cache
            assert ours.headers["content-type"] == theirs.headers["content-type"], path
        assert static.get("/checkpoint").headers["content-type"] == "text/plain; charset=utf-8"
        assert static.get("/tile/0/000").headers["content-type"] == "application/octet-stream"
        assert static.get("/tile/0/001.p/5").status_code == 404  # no checkpoint needs it
        assert static.get("/tile/0/1").status_code == 400  # not a canonical tile path
        assert static.get("/secret").status_code == 404
        assert static.get("/ready").json()["status"] == "ready"
    assert main(["log", "verify", mirror, "--origin", ORIGIN, "--key", running.vkey]) == 0


def test_follow_keeps_a_mirror_current_until_stopped(running: Running, tmp_path: Path) -> None:
    running.register(10)
    out = tmp_path / "mirror"
    argv = [sys.executable, "-m", "ironroot", "log", "export-tiles", str(out)]
    argv += ["--data", str(running.data), "--follow", "--interval", "0.1", "--json"]
    process = subprocess.Popen(argv, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:

        def exported() -> int:
            try:
                return int((out / "checkpoint").read_text().split("\n")[1])
            except (OSError, IndexError):
                return -1

        for target in (10, 300, 301):
            if running.count < target:
                running.register(target - running.count)
            deadline = time.monotonic() + 60
            while exported() != target:
                assert process.poll() is None, process.communicate()[1].decode()
                assert time.monotonic() < deadline
                time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr.decode()
    sizes = [json.loads(line)["size"] for line in stdout.decode().splitlines()]
    assert sizes == sorted(set(sizes))  # one line per step that grew the mirror
    assert (sizes[0], sizes[-1]) == (10, 301)
    assert 300 in sizes
    with httpx.Client(base_url=running.url) as http:
        served = {path: http.get(f"/{path}").content for path in _paths(301)}
    files = _files(out)
    assert {p: files[p] for p in served} == served
    # and the narrower partials of tile 1 that readers of earlier checkpoints may still need
    # (the follower may have seen sizes between 10 and 300 when the batches landed apart)
    older = {f"tile/{kind}/001.p/{w}" for kind in ("0", "entries") for w in range(1, 45)}
    assert set(files) - set(served) <= older


def test_follow_stops_on_a_log_that_does_not_verify(running: Running, tmp_path: Path) -> None:
    running.register(3)
    out = tmp_path / "mirror"
    assert main(["log", "export-tiles", str(out), "--data", str(running.data)]) == 0
    other = PrivateKey.generate(Algorithm.ED25519)
    stranger = NoteSigner(ORIGIN, other).verifier().vkey  # the right name, another key
    argv = [sys.executable, "-m", "ironroot", "log", "export-tiles", str(out), "--url"]
    argv += [running.url, "--follow", "--origin", ORIGIN, "--key", stranger]
    done = subprocess.run(argv, env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "unknown-issuer: the note carries no signature from a trusted key" in done.stderr


def test_the_witnessed_checkpoint_is_the_one_exported(
    running: Running, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    running.register(5)
    witnessed = running.service.log.checkpoint()
    running.register(5)
    witness = Cosigner("w.example/a", PrivateKey.generate(Algorithm.ED25519)).verifier().vkey
    config = running.data / "ironroot.toml"
    text = config.read_text().replace("[log]\n", "[log]\nwitness_quorum = 1\n", 1)
    config.write_text(text + f"[[log.witnesses]]\nurl = 'http://127.0.0.1:9'\nkey = '{witness}'\n")
    out = tmp_path / "mirror"
    assert main(["log", "export-tiles", str(out), "--data", str(running.data)]) == 1
    assert "no checkpoint has been witnessed yet" in capsys.readouterr().err
    (running.data / "witnessed-checkpoint").write_bytes(witnessed)
    assert main(["log", "export-tiles", str(out), "--data", str(running.data)]) == 0
    assert (out / "checkpoint").read_bytes() == witnessed
    assert "at size 5" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["named-pipe", "directory", "empty"])
def test_a_witnessed_checkpoint_that_is_no_note_file_is_a_storage_error_at_once(
    running: Running, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    """``export-tiles --data`` reads the witnessed checkpoint as the service does: a named
    pipe is not waited on (it was, forever), a folder or an empty file is said to be what it
    is (a source ``--follow`` retries), never read as a malformed checkpoint."""
    running.register(3)
    witness = Cosigner("w.example/a", PrivateKey.generate(Algorithm.ED25519)).verifier().vkey
    config = running.data / "ironroot.toml"
    text = config.read_text().replace("[log]\n", "[log]\nwitness_quorum = 1\n", 1)
    config.write_text(text + f"[[log.witnesses]]\nurl = 'http://127.0.0.1:9'\nkey = '{witness}'\n")
    path = running.data / "witnessed-checkpoint"
    {"named-pipe": os.mkfifo, "directory": os.mkdir, "empty": Path.touch}[kind](path)
    argv = ["log", "export-tiles", str(tmp_path / "mirror"), "--data", str(running.data)]
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(main(argv)), daemon=True)
    thread.start()
    thread.join(30)
    if thread.is_alive():  # release the read that waits for a writer, then fail
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(30)
        pytest.fail("export-tiles waited for a writer of the witnessed checkpoint")
    assert codes == [1]
    err = capsys.readouterr().err
    assert "ironroot: storage:" in err
    assert "witnessed-checkpoint" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--data", "{data}", "--key", "{vkey}"], "--key needs --origin"),
        (["--url", "ftp://x"], "must start with http"),
        (["--data", "{tmp}"], "holds no log"),
        (["--data", "{data}", "--follow", "--interval", "0"], "--interval"),
    ],
)
def test_export_usage_errors(
    running: Running,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    values = {"data": str(running.data), "vkey": running.vkey, "tmp": str(tmp_path)}
    args = [a.format(**values) for a in argv]
    assert main(["log", "export-tiles", str(tmp_path / "out"), *args]) == 2
    assert message in capsys.readouterr().err


def test_serve_tiles_refuses_a_directory_without_a_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["log", "serve-tiles", str(tmp_path)]) == 2
    assert "holds no checkpoint" in capsys.readouterr().err


def test_follow_retries_a_source_that_is_down(running: Running, tmp_path: Path) -> None:
    running.register(4)
    source = tmp_path / "source"
    assert main(["log", "export-tiles", str(source), "--data", str(running.data)]) == 0
    port = free_port()  # the follower polls it before the server starts: kept
    out = tmp_path / "mirror"
    argv = [sys.executable, "-m", "ironroot", "log", "export-tiles", str(out), "--follow"]
    argv += ["--url", f"http://127.0.0.1:{port}", "--origin", ORIGIN, "--key", running.vkey]
    argv += ["--interval", "0.1"]
    follower = subprocess.Popen(argv, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    server = None
    try:
        assert follower.stderr is not None
        first = follower.stderr.readline().decode()  # a poll found nothing listening
        assert "cannot reach" in first, first
        assert "retrying" in first, first
        server = subprocess.Popen(
            [*_http_server(source), str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 60
        while not (out / "checkpoint").exists():
            assert follower.poll() is None, follower.communicate()[1].decode()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        follower.send_signal(signal.SIGINT)
        stdout, stderr = follower.communicate(timeout=60)
    finally:
        for process in (follower, server):
            if process is not None and process.poll() is None:
                process.kill()
                process.communicate()
    assert follower.returncode == 0, stderr.decode()
    assert "at size 4" in stdout.decode()
    assert (out / "checkpoint").read_bytes() == (source / "checkpoint").read_bytes()


def test_serve_tiles_problems_never_name_the_mirrors_files(tmp_path: Path) -> None:
    out = tmp_path / "mirror-on-disk"
    (out / "tile" / "0").mkdir(parents=True)
    (out / "checkpoint").write_bytes(b"not read here\n")
    (out / "tile/0/001").write_bytes(b"\0" * (256 * (2 + 0xFFFF) + 4097))  # > any resource
    app = create_tiles_app(out)

    async def get_both() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://mirror") as client:
            return await client.get("/tile/0/x001/000"), await client.get("/tile/0/001")

    missing, too_large = asyncio.run(get_both())
    assert missing.status_code == 404
    assert Problem.from_cbor(missing.content).detail == "this mirror has no tile/0/x001/000"
    assert too_large.status_code == 503
    assert Problem.from_cbor(too_large.content).detail == "this mirror cannot serve tile/0/001"
    for answer in (missing, too_large):
        assert b"mirror-on-disk" not in answer.content
