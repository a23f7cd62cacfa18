"""What every verb's ``--out`` may and may not replace (``ironroot.cli._output``).

An output never replaces a private key or an LMS state file, whatever name reaches it (the
key's own path, a symbolic link, a hard link), and whichever verb writes it: the key would be
lost, and an LMS state file rewound or lost means a one-time key signs twice. An output that
is a named pipe nobody reads is refused rather than waited on; ``/dev/stdout`` works whether
stdout is a file or a pipe; a terminal is never sent binary; a dangling link is not followed to
create a file elsewhere. Each refusal is one line, exit 2, no traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cbor2
import pytest

from ironroot.cli import main

_LMS = "SHA256-N24-H5-W4"


def _key(tmp_path: Path, name: str = "k", alg: str = "ES256") -> Path:
    extra = ["--lms-params", _LMS] if alg == "HSS-LMS" else []
    assert main(["key", "generate", "--alg", alg, "--out", str(tmp_path / name), *extra]) == 0
    return tmp_path / f"{name}.key"


def _sign(tmp_path: Path, out: Path | str, key: Path | None = None) -> list[str]:
    payload = tmp_path / "payload.bin"
    payload.write_bytes(b"payload")
    signer = key if key is not None else tmp_path / "signer.key"
    if key is None and not signer.exists():
        _key(tmp_path, "signer")
    return ["statement", "sign", str(payload), "--key", str(signer),
            "--iss", "https://i.example", "--sub", "s", "--out", str(out)]  # fmt: skip


def _refused(capsys: pytest.CaptureFixture[str], argv: list[str], key: Path) -> str:
    before = key.read_bytes()
    capsys.readouterr()
    assert main(argv) == 2, argv
    err = capsys.readouterr().err
    assert err.startswith("ironroot: config: "), err
    assert "Traceback" not in err
    assert key.read_bytes() == before  # the key is as it was
    assert not list(key.parent.glob(".*.tmp"))
    return err


def test_an_output_never_replaces_another_private_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = _key(tmp_path, "victim")
    err = _refused(capsys, _sign(tmp_path, victim), victim)
    assert f"{victim} holds a private key: writing the output there would replace it" in err


def test_an_output_never_replaces_its_own_signing_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = _key(tmp_path)
    _refused(capsys, _sign(tmp_path, key, key), key)


def test_an_output_never_replaces_a_private_key_through_a_link_or_a_hard_link(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = _key(tmp_path)
    soft = tmp_path / "soft.cose"
    soft.symlink_to(key)
    hard = tmp_path / "hard.cose"
    os.link(key, hard)
    for out in (soft, hard):
        err = _refused(capsys, _sign(tmp_path, out), key)
        assert "holds a private key" in err


def test_an_output_never_replaces_a_private_jwk_or_an_encrypted_pem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jwk = tmp_path / "k.jwk"
    jwk.write_text('{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "d": "AA"}')
    encrypted = tmp_path / "enc.pem"
    encrypted.write_text("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED")
    for victim in (jwk, encrypted):
        _refused(capsys, _sign(tmp_path, victim), victim)


def test_an_output_never_replaces_an_lms_state_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = _key(tmp_path, "lms", "HSS-LMS")
    hard = tmp_path / "other-name"
    os.link(state, hard)
    for out in (state, hard):
        err = _refused(capsys, _sign(tmp_path, out), state)
        assert "holds a private key" in err
    hard.unlink()  # the state file signs on as before
    assert main(_sign(tmp_path, tmp_path / "by-lms.cose", state)) == 0


def test_other_verbs_keep_the_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = _key(tmp_path)
    _refused(capsys, ["keyrelease", "tee-key", "--out", str(key)], key)
    _key(tmp_path, "ecc", "ES384")
    _key(tmp_path, "pqc", "ML-DSA-87")
    fmc = tmp_path / "fmc.bin"
    fmc.write_bytes(b"f" * 64)
    build = ["firmware", "build", "--fmc", str(fmc), "--runtime", str(fmc), "--svn", "1",
             "--vendor-ecc-key", str(tmp_path / "ecc.pub.pem"),
             "--vendor-pqc-key", str(tmp_path / "pqc.pub.pem"), "--pqc-type", "mldsa",
             "--not-before", "2026-01-01T00:00:00Z", "--not-after", "2036-01-01T00:00:00Z",
             "--out", str(key)]  # fmt: skip
    _refused(capsys, build, key)


def test_an_output_still_replaces_an_ordinary_file_and_an_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = tmp_path / "old.cose"
    old.write_bytes(b"an older statement")
    assert main(_sign(tmp_path, old)) == 0
    assert old.read_bytes()[:1] == b"\xd2"
    payload = tmp_path / "payload.bin"  # signed in place, as before
    assert main(_sign(tmp_path, payload)) == 0
    assert payload.read_bytes()[:1] == b"\xd2"


def _cli(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "ironroot", *argv],
        capture_output=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")},
        **kwargs,  # type: ignore[arg-type]
    )


def test_a_named_pipe_nobody_reads_is_refused_not_waited_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    capsys.readouterr()
    run = _cli(_sign(tmp_path, fifo))  # before: waited for a reader forever
    assert run.returncode == 2, run.stderr
    assert run.stderr.decode() == (
        f"ironroot: input-unavailable: {fifo}: a named pipe nobody reads: nothing was written\n"
    )


def test_dev_stdout_is_written_in_place_into_a_pipe(tmp_path: Path) -> None:
    """stdout then carries the output alone: the verb's own line goes to stderr (it followed
    the statement, which a reader then refused for its trailing bytes); under ``--json``,
    whose object stdout carries, it is refused."""
    run = _cli(_sign(tmp_path, "/dev/stdout"))  # stdout is a pipe here
    assert run.returncode == 0, run.stderr
    assert isinstance(cbor2.loads(run.stdout), cbor2.CBORTag)  # the statement, whole, alone
    assert run.stderr.startswith(b"wrote /dev/stdout (")
    statement = tmp_path / "from-stdout.cose"
    statement.write_bytes(run.stdout)
    assert main(["statement", "inspect", str(statement)]) == 0
    _key(tmp_path, "ecc", "ES384")
    _key(tmp_path, "pqc", "ML-DSA-87")
    fmc = tmp_path / "fmc.bin"
    fmc.write_bytes(b"f" * 64)
    build = ["firmware", "build", "--fmc", str(fmc), "--runtime", str(fmc), "--svn", "1",
             "--vendor-ecc-key", str(tmp_path / "ecc.pub.pem"),
             "--vendor-pqc-key", str(tmp_path / "pqc.pub.pem"), "--pqc-type", "mldsa",
             "--not-before", "2026-01-01T00:00:00Z", "--not-after", "2036-01-01T00:00:00Z",
             "--out", "/dev/stdout", "--json"]  # fmt: skip
    run = _cli(build)
    assert run.returncode == 2, run.stderr
    assert run.stderr.decode() == (
        "ironroot: config: /dev/stdout: is stdout, which carries the --json object: name a file\n"
    )
    assert json.loads(run.stdout)["error"]["code"] == "config"


def test_binary_is_never_written_to_a_terminal(tmp_path: Path) -> None:
    controller, terminal = os.openpty()
    name = os.ttyname(terminal)
    try:
        run = _cli(_sign(tmp_path, name))
    finally:
        os.close(controller)
        os.close(terminal)
    assert run.returncode == 2, run.stderr
    assert run.stderr.decode() == (
        f"ironroot: config: {name}: is a terminal and the output is binary: "
        "name a file, or redirect stdout\n"
    )


def test_a_dangling_link_is_not_followed_to_create_a_file_elsewhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = tmp_path / "out.cose"
    link.symlink_to(elsewhere / "planted")
    argv = _sign(tmp_path, link)
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == (
        f"ironroot: input-unavailable: {link}: is a symbolic link to {elsewhere / 'planted'}, "
        "which does not exist: no file is created through a link\n"
    )
    assert not (elsewhere / "planted").exists()
    assert link.is_symlink()


def test_a_kill_at_any_point_leaves_the_previous_output_or_the_new_one(tmp_path: Path) -> None:
    """``kill -9`` at each file operation of ``statement sign --out`` over an existing output
    (a real process, killed by ``tests/kill_points.py``): the output is the old bytes or a
    whole new statement, never a truncated one."""
    from kill_points import KILLER, run_killer

    killer = tmp_path / "killer.py"
    killer.write_text(KILLER)
    _key(tmp_path, "signer")
    out = tmp_path / "out.cose"
    old = b"the previous statement"
    out.write_bytes(old)
    tally = tmp_path / "tally"
    argv = _sign(tmp_path, out)
    assert run_killer(killer, argv, IRONROOT_TEST_KILL_TALLY=str(tally)).returncode == 0
    new = out.read_bytes()
    assert new[:1] == b"\xd2"
    operations = int(tally.read_text())
    assert operations >= 3  # the temporary file, its rename, the tally's own open
    for point in range(1, operations):
        out.write_bytes(old)
        run = run_killer(killer, argv, IRONROOT_TEST_KILL_AT=str(point))
        assert run.returncode == -9, point
        now = out.read_bytes()
        if now != old:  # a whole new statement (ES256 is randomized: same length, not bytes)
            assert len(now) == len(new), point
            assert isinstance(cbor2.loads(now), cbor2.CBORTag), point
        for leftover in tmp_path.glob(".*.tmp"):
            leftover.unlink()  # a temporary file a kill leaves: never the output


def test_a_dash_is_stdout_for_an_output_and_stdin_for_an_input(tmp_path: Path) -> None:
    """``-`` was taken as a file's name: ``--out -`` left a file called ``-`` in the working
    folder and printed nothing."""
    argv = _sign(tmp_path, "-")
    run = _cli(argv, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert not (tmp_path / "-").exists()
    assert isinstance(cbor2.loads(run.stdout), cbor2.CBORTag)
    assert run.stderr == b"wrote - (%d bytes, ES256)\n" % len(run.stdout)
    statement = run.stdout
    run = _cli(["statement", "inspect", "-", "--json"], input=statement, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["ok"] is True


def test_a_refused_output_costs_no_one_time_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The output is checked before the verb signs: a refused ``--out`` used to be found only
    after an LMS signature had spent one of the key's one-time leaves."""
    from ironroot.crypto import LmsPrivateKey

    state = _key(tmp_path, "lms", "HSS-LMS")
    victim = _key(tmp_path, "victim")
    left = LmsPrivateKey.load(state).remaining()
    _refused(capsys, _sign(tmp_path, victim, state), victim)
    assert LmsPrivateKey.load(state).remaining() == left


def test_an_output_never_replaces_a_der_or_cose_private_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Private keys Ironroot does not load itself are still keys: PKCS#8 DER (plain and
    encrypted) and a COSE_Key with its private member (EC2/OKP ``d``, a symmetric ``k``)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    der = tmp_path / "k.der"
    der.write_bytes(
        key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    encrypted = tmp_path / "k.p8"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw"),
        )
    )
    ec2 = tmp_path / "ec2.cose"
    ec2.write_bytes(cbor2.dumps({1: 2, -1: 1, -2: b"x" * 32, -3: b"y" * 32, -4: b"d" * 32}))
    symmetric = tmp_path / "aes.cose"
    symmetric.write_bytes(cbor2.dumps({1: 4, -1: b"k" * 32}))
    for victim in (der, encrypted, ec2, symmetric):
        err = _refused(capsys, _sign(tmp_path, victim), victim)
        assert "holds a private key" in err
    public = tmp_path / "public.cose"  # a public COSE_Key is replaced as any file
    public.write_bytes(cbor2.dumps({1: 2, -1: 1, -2: b"x" * 32, -3: b"y" * 32}))
    assert main(_sign(tmp_path, public)) == 0


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="no /proc")
def test_an_output_where_no_file_can_be_made_names_the_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--out /proc/x``: the folder exists but takes no new file. The one line names the
    output given, not the temporary file the atomic write tried first."""
    assert main(_sign(tmp_path, "/proc/ironroot-out")) == 2
    assert capsys.readouterr().err == (
        "ironroot: input-unavailable: /proc/ironroot-out: no such file or directory\n"
    )


def _shared_folder(tmp_path: Path) -> Path:
    """A folder as ``/tmp`` is: sticky, and writable by every user."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    return shared


_OTHER_UID = 4242
"""A user that is neither this process nor the shared folder's owner (root)."""

_as_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="planting a link owned by another user needs root",
)


@_as_root
def test_an_output_is_not_written_through_a_link_another_user_planted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--out /tmp/out.cose`` where another user planted ``/tmp/out.cose -> ~/.bashrc``:
    the link was resolved by name (``realpath``) and the file it names replaced, which the
    kernel's own rule for shared sticky folders (``fs.protected_symlinks``) refuses. A link
    in the path's folders too (``/tmp/d -> ~/``)."""
    shared = _shared_folder(tmp_path)
    victim = tmp_path / "victim"
    victim.write_bytes(b"the victim's file")
    planted = shared / "out.cose"
    planted.symlink_to(victim)
    os.lchown(planted, _OTHER_UID, _OTHER_UID)
    folder = tmp_path / "victim-folder"
    folder.mkdir()
    (shared / "d").symlink_to(folder)
    os.lchown(shared / "d", _OTHER_UID, _OTHER_UID)
    for out, link in ((planted, planted), (shared / "d" / "new.cose", shared / "d")):
        argv = _sign(tmp_path, out)
        capsys.readouterr()
        assert main(argv) == 2, out
        assert capsys.readouterr().err == (
            f"ironroot: input-unavailable: {out}: {link} is a symbolic link of user "
            f"{_OTHER_UID} in {shared}, a folder every user may write: it is not followed "
            "(another user may have planted it)\n"
        )
    assert victim.read_bytes() == b"the victim's file"
    assert list(folder.iterdir()) == []
    own = shared / "own.cose"  # the user's own link there is followed, as before
    own.symlink_to(victim)
    assert main(_sign(tmp_path, own)) == 0
    assert victim.read_bytes()[:1] == b"\xd2"


@_as_root
def test_an_output_is_not_written_into_a_named_pipe_another_user_planted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A named pipe another user made in a shared folder, read by its maker: an output (a
    secret written 0600 too) was written into it, to whoever reads the other end."""
    shared = _shared_folder(tmp_path)
    fifo = shared / "out.cose"
    os.mkfifo(fifo)
    os.chown(fifo, _OTHER_UID, _OTHER_UID)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # the other user, reading
    try:
        argv = _sign(tmp_path, fifo)
        capsys.readouterr()
        assert main(argv) == 2
        assert capsys.readouterr().err == (
            f"ironroot: input-unavailable: {fifo}: belongs to user {_OTHER_UID} in {shared}, "
            "a folder every user may write: nothing is written into it (another user may "
            "have planted it)\n"
        )
        assert os.read(reader, 4096) == b""  # nothing came through
    finally:
        os.close(reader)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_an_output_written_in_place_that_fails_names_the_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--out /dev/full``: the one line said ``no space left on device`` and named no file,
    as if stdout or an input were full."""
    argv = _sign(tmp_path, "/dev/full")
    capsys.readouterr()
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        "ironroot: input-unavailable: /dev/full: no space left on device\n"
    )


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o7777


def test_an_output_keeps_to_the_umask_and_never_opens_up_the_file_it_replaces(
    tmp_path: Path,
) -> None:
    """Outputs were made 0644 whatever the umask (``fchmod`` of the temporary file), so an
    operator's ``umask 077`` left statements, bundles and public key files readable by every
    user; and an output replacing a file its owner had made private (0600) made it readable
    by all. An output's mode is now narrowed by the umask, as ``open(2)`` narrows it, and by
    the mode of the file it replaces; a private key stays 0600."""
    previous = os.umask(0o077)
    try:
        assert main(_sign(tmp_path, tmp_path / "new.cose")) == 0
        assert main(["key", "generate", "--alg", "ES256", "--out", str(tmp_path / "u")]) == 0
    finally:
        os.umask(previous)
    assert _mode(tmp_path / "new.cose") == 0o600
    assert [_mode(tmp_path / f"u{suffix}") for suffix in (".key", ".pub.pem", ".cose")] == [
        0o600,
        0o600,
        0o600,
    ]
    private = tmp_path / "private.cose"
    private.write_bytes(b"an older statement")
    private.chmod(0o640)
    previous = os.umask(0o022)
    try:
        assert main(_sign(tmp_path, private)) == 0
        assert main(_sign(tmp_path, tmp_path / "open.cose")) == 0
    finally:
        os.umask(previous)
    assert private.read_bytes()[:1] == b"\xd2"
    assert _mode(private) == 0o640
    assert _mode(tmp_path / "open.cose") == 0o644


@_as_root
def test_a_folder_output_is_checked_before_a_key_is_written_into_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``rot ca-init --out /tmp/ca`` where another user planted ``/tmp/ca -> ~/keys``: the CA
    key was written through the link (with ``write_atomic``, unchecked) before the first
    certificate (``write_output``) was refused, and stayed there; ``spdm device-init`` and
    ``log export-tiles`` wrote into it unchecked, ``fleet init`` made its fleet (its keys)
    there. A folder of outputs is checked, and made,
    before anything is written (``ironroot.cli._output.output_folder``)."""
    shared = _shared_folder(tmp_path)
    victim = tmp_path / "victim-folder"
    victim.mkdir()
    planted = shared / "out"
    planted.symlink_to(victim)
    os.lchown(planted, _OTHER_UID, _OTHER_UID)
    message = (
        f"{planted} is a symbolic link of user {_OTHER_UID} in {shared}, a folder every "
        "user may write: it is not followed (another user may have planted it)\n"
    )
    for argv in (
        ["rot", "ca-init", "--out", str(planted)],
        ["spdm", "device-init", str(planted)],
        ["log", "export-tiles", str(planted), "--data", str(tmp_path / "no-log")],
        [
            "fleet",
            "init",
            "--fleet",
            str(planted),
            "--class",
            str(tmp_path / "no-class"),
            "--vendor-ca",
            str(tmp_path / "no-ca"),
        ],
    ):
        capsys.readouterr()
        assert main(argv) == 2, argv
        assert capsys.readouterr().err == f"ironroot: input-unavailable: {planted}: {message}"
        assert list(victim.iterdir()) == [], argv


def test_a_folder_output_is_never_made_through_a_link_to_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As for a file: ``mkdir`` of a link to nothing was ``file exists``; made through it,
    the folder would be wherever the link points."""
    link = tmp_path / "out"
    link.symlink_to(tmp_path / "elsewhere")
    capsys.readouterr()
    assert main(["rot", "ca-init", "--out", str(link)]) == 2
    assert capsys.readouterr().err == (
        f"ironroot: input-unavailable: {link}: is a symbolic link to {tmp_path / 'elsewhere'}, "
        "which does not exist: no folder is made through a link\n"
    )
    assert not (tmp_path / "elsewhere").exists()
    afile = tmp_path / "a-file"
    afile.write_bytes(b"")
    assert main(["spdm", "device-init", str(afile)]) == 2
    assert capsys.readouterr().err == (
        f"ironroot: input-unavailable: {afile}: is not a folder (it is a file)\n"
    )


def test_an_output_never_replaces_a_pkcs12_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A PKCS#12 (``.p12``, ``.pfx``) file holds a private key, password-protected or not,
    and was replaced as any file: its DER is no PKCS#8 key. Encrypted, what it holds cannot
    be told, so every PKCS#12 file is kept."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import pkcs12

    key = ec.generate_private_key(ec.SECP256R1())
    for name, encryption in (
        ("plain.p12", serialization.NoEncryption()),
        ("locked.pfx", serialization.BestAvailableEncryption(b"pw")),
    ):
        victim = tmp_path / name
        victim.write_bytes(pkcs12.serialize_key_and_certificates(b"k", key, None, None, encryption))
        err = _refused(capsys, _sign(tmp_path, victim), victim)
        assert f"{victim} holds a private key" in err


def test_an_output_with_a_long_name_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A name of 242 to 255 bytes is a file's name, but the temporary file beside it
    (``.<name>.XXXXXXXX.tmp``, 14 bytes more) was not: ``file name too long``. The
    temporary file takes as much of the name as fits."""
    for name in ("a" * 255, "é" * 127):  # 255 and 254 bytes
        out = tmp_path / name
        capsys.readouterr()
        assert main(_sign(tmp_path, out)) == 0, capsys.readouterr().err
        assert out.read_bytes()[:1] == b"\xd2"
        assert not list(tmp_path.glob(".*.tmp"))


def test_an_output_named_with_a_trailing_slash_is_no_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--out new.cose/`` wrote a file ``new.cose`` (``Path`` drops the ``/``), and
    ``--out old.cose/`` replaced the file ``old.cose``: a name ending in ``/`` names a
    folder, and the system refuses a file there (``EISDIR``, ``ENOTDIR``)."""
    old = tmp_path / "old.cose"
    old.write_bytes(b"an older statement")
    for out in (tmp_path / "new.cose", old):
        argv = _sign(tmp_path, f"{out}/")
        capsys.readouterr()
        assert main(argv) == 2
        assert capsys.readouterr().err == (
            f"ironroot: input-unavailable: {out}/: ends in /, which names a folder: "
            "name the file to write\n"
        )
    assert not (tmp_path / "new.cose").exists()
    assert old.read_bytes() == b"an older statement"


def test_an_output_that_cannot_be_renamed_into_place_names_the_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file the rename cannot replace (a mount point here: ``EBUSY``; a file of another
    user in ``/tmp``: ``EPERM``): the one line named the temporary file, which is gone."""
    out = tmp_path / "mounted.cose"
    out.write_bytes(b"a file mounted over")
    source = tmp_path / "source"
    source.write_bytes(b"")
    mount = subprocess.run(
        ["mount", "--bind", str(source), str(out)], capture_output=True, check=False
    )
    if mount.returncode != 0:
        pytest.skip("a bind mount needs root and the right to mount")
    try:
        argv = _sign(tmp_path, out)
        capsys.readouterr()
        assert main(argv) == 2
        assert capsys.readouterr().err == (
            f"ironroot: input-unavailable: {out}: device or resource busy\n"
        )
    finally:
        subprocess.run(["umount", str(out)], check=True)
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_key_prefix_ending_in_a_slash_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``key generate --out keys/`` wrote ``keys.key``, ``keys.pub.pem`` and ``keys.cose``
    beside the folder the user named, not in it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keys").mkdir()
    capsys.readouterr()
    assert main(["key", "generate", "--alg", "ES256", "--out", "keys/"]) == 2
    assert capsys.readouterr().err == (
        "ironroot: input-unavailable: keys/: ends in /, which names a folder: give the "
        "prefix of the key's files (keys/NAME)\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keys"]


def test_every_verb_that_signs_or_registers_checks_its_output_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only ``statement sign``/``register`` and ``firmware sign`` checked ``--out`` before
    they signed or registered: ``safe publish``, ``rim register``, ``platform pfm publish``
    signed with the key (an LMS key spends a one-time leaf) and registered the statement on
    the log (a second entry when the user runs it again), and ``safe sign``, ``platform pfm
    sign``, ``fleet desired sign`` signed, all before the output was refused. Each is
    refused here before it reads its input, signs or connects (the input is garbage and the
    service unreachable: either would be reported first)."""
    from ironroot.crypto import LmsPrivateKey

    lms = _key(tmp_path, "lms", "HSS-LMS")
    victim = _key(tmp_path, "victim")
    left = LmsPrivateKey.load(lms).remaining()
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"garbage")
    nowhere = "http://127.0.0.1:9"
    out = ["--out", str(victim)]
    for argv in (
        ["safe", "publish", str(garbage), "--url", nowhere, "--key", str(lms), "--iss", "i", *out],
        ["rim", "register", str(garbage), "--url", nowhere, "--key", str(lms), "--iss", "i", *out],
        ["platform", "pfm", "publish", str(garbage), "--url", nowhere, "--key", str(lms),
         "--iss", "i", "--sub", "s", *out],
        ["safe", "sign", str(garbage), "--key", str(lms), "--kid", "k", *out],
        ["platform", "pfm", "sign", str(garbage), "--ecc-key", str(victim), "--pqc-key", str(lms),
         *out],
        ["fleet", "desired", "sign", str(garbage), "--fleet", str(tmp_path / "no-fleet"),
         "--key", str(lms), "--iss", "i", *out],
    ):  # fmt: skip
        err = _refused(capsys, argv, victim)
        assert f"{victim} holds a private key" in err, argv
    assert LmsPrivateKey.load(lms).remaining() == left
