"""``ironroot log serve-tiles DIR`` serves nothing outside DIR: a symbolic link inside it — to
``/etc/passwd``-like files, to a folder elsewhere, even to a file inside — is a 404 problem as
for a missing file, and a path that climbs out (``..``, ``%2e%2e``, an encoded ``/``, a
backslash, a NUL byte) is refused before any file is read. Real requests to the app, with
real links in a temporary directory."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx
import pytest

from ironroot.cli import main
from ironroot.cose import Problem
from ironroot.transparency import create_tiles_app

STORE_INDEPENDENT = True  # files on disk only: no log store is opened

SECRET = b"root:x:0:0:root:/root:/bin/bash\n"
TILE = b"\x01" * (256 * 32)  # a full level-0 tile's size


def _get(directory: Path, *paths: str) -> list[httpx.Response]:
    app = create_tiles_app(directory)

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://mirror") as client:
            return [await client.get(p) for p in paths]

    return asyncio.run(run())


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A file and a folder outside the exported directory."""
    outside = tmp_path / "outside"
    (outside / "0").mkdir(parents=True)
    (outside / "passwd").write_bytes(SECRET)
    (outside / "0" / "000").write_bytes(TILE)
    return outside


@pytest.fixture
def mirror(tmp_path: Path) -> Path:
    out = tmp_path / "mirror"
    (out / "tile" / "0").mkdir(parents=True)
    (out / "tile" / "0" / "000").write_bytes(TILE)
    return out


def test_a_link_to_a_file_outside_is_a_404_never_its_bytes(mirror: Path, secret: Path) -> None:
    # was: 200 with the bytes of whatever the link named (/etc/passwd, a key)
    os.symlink(secret / "passwd", mirror / "checkpoint")
    (answer,) = _get(mirror, "/checkpoint")
    assert answer.status_code == 404
    assert Problem.from_cbor(answer.content).detail == "this mirror has no checkpoint"
    assert SECRET not in answer.content


def test_a_link_to_a_folder_outside_is_a_404(mirror: Path, secret: Path) -> None:
    # was: tile/1 -> a folder elsewhere, and every file of it was served as a tile
    os.symlink(secret / "0", mirror / "tile" / "1")
    os.symlink(secret / "0", mirror / "tile" / "entries")
    found = _get(mirror, "/tile/1/000", "/tile/entries/000", "/tile/0/000")
    assert [a.status_code for a in found] == [404, 404, 200]
    assert Problem.from_cbor(found[0].content).detail == "this mirror has no tile/1/000"
    assert found[2].content == TILE  # a regular file is served as before


def test_a_link_inside_the_directory_is_not_followed_either(mirror: Path) -> None:
    # the rule is simple and race-free (each name opened with O_NOFOLLOW): no link at all
    os.symlink("000", mirror / "tile" / "0" / "001")
    os.symlink(mirror / "tile" / "0", mirror / "tile" / "2")
    found = _get(mirror, "/tile/0/001", "/tile/2/000")
    assert [a.status_code for a in found] == [404, 404]


def test_the_directory_itself_may_be_a_link(mirror: Path, tmp_path: Path) -> None:
    (mirror / "checkpoint").write_bytes(b"a checkpoint\n")
    current = tmp_path / "current"
    os.symlink(mirror, current)  # e.g. a deployment that swaps a link to the latest copy
    found = _get(current, "/checkpoint", "/tile/0/000", "/ready")
    assert [a.status_code for a in found] == [200, 200, 200]


def test_a_mirror_without_a_checkpoint_is_not_ready_and_its_answer_names_no_path(
    mirror: Path,
) -> None:
    """``/ready`` (anyone may ask) answered ``storage: /srv/…/mirror holds no checkpoint
    yet``: where the server keeps its files. It names the check and the error's kind now."""
    (ready,) = _get(mirror, "/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"] == {"checkpoint": "storage: Storage Error"}
    assert str(mirror).encode() not in ready.content
    assert mirror.name.encode() not in ready.content


def test_a_linked_checkpoint_is_not_ready(mirror: Path, secret: Path) -> None:
    os.symlink(secret / "passwd", mirror / "checkpoint")
    (ready,) = _get(mirror, "/ready")
    assert ready.status_code == 503
    assert SECRET not in ready.content


@pytest.mark.parametrize(
    "path",
    [
        "/tile/%2e%2e/%2e%2e/outside/passwd",
        "/tile/0/%2e%2e/%2e%2e/%2e%2e/outside/passwd",
        "/tile/0%2f..%2f..%2f..%2foutside%2fpasswd",
        "/tile/%2E%2E%2F%2E%2E%2Foutside%2Fpasswd",
        "/tile/0/000%00",
        "/tile/0/%00/../../../outside/passwd",
        "/tile/0\\..\\..\\..\\outside\\passwd",
        "/tile/0/%5c..%5c..%5c..%5coutside%5cpasswd",
        "/checkpoint%00",
        "/checkpoint/..%2f..%2foutside%2fpasswd",
        "//outside/passwd",
        "/tile//0/000",
    ],
)
def test_paths_that_climb_out_are_refused_before_any_file_is_read(
    mirror: Path, secret: Path, path: str
) -> None:
    (answer,) = _get(mirror, path)
    assert answer.status_code in (400, 404), answer.status_code
    assert SECRET not in answer.content
    assert TILE not in answer.content
    assert Problem.from_cbor(answer.content).status == answer.status_code


@pytest.mark.parametrize("path", ["/tile/0%2F000", "/tile/0%2f000", "/tile%2F0/000"])
def test_an_encoded_slash_names_no_resource(mirror: Path, path: str) -> None:
    # RFC 3986 §2.2: "%2F" is not "/" (as "%30" is "0"); the tile was served under that name
    (answer,) = _get(mirror, path)
    assert answer.status_code == 400
    problem = Problem.from_cbor(answer.content)
    assert (problem.title, problem.extra["code"]) == ("Malformed Input", "malformed")
    assert problem.detail == "not a canonical tile path: it holds an encoded '/'"
    assert TILE not in answer.content


def test_the_cli_refuses_to_serve_a_directory_whose_checkpoint_is_a_link(
    mirror: Path,
    secret: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def serve(*args: object, **kwargs: object) -> None:
        raise AssertionError("served a directory whose checkpoint is a link")

    monkeypatch.setattr("ironroot.http.run_server", serve)  # never a server left running
    os.symlink(secret / "passwd", mirror / "checkpoint")
    assert main(["log", "serve-tiles", str(mirror)]) == 2
    assert "holds no checkpoint" in capsys.readouterr().err
