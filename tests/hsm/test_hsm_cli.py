"""``ironroot hsm``: init, identities, keys, operations, audit and tamper from the command line."""

from __future__ import annotations

import json
import resource
import shutil
import signal
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from _hsm_helpers import make_device
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import mlkem
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cli_parsers import reuse_parsers
from ironroot.cli import _main
from ironroot.crypto import save_signer
from ironroot.hsm import KeyType, unwrap_key_kem
from rot_counters import provisioned_device
from scratch import in_memory

OFFICER_PASS = b"officer-credential\n"
USER_PASS = b"user-credential"


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """Each test's directory, on tmpfs (``scratch.in_memory``): every HSM command syncs its
    store and audit log, and nothing here cuts the power."""
    with in_memory("hsm-cli-") as directory:
        yield directory


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    """An initialized HSM directory and the files the commands need."""
    reuse_parsers(monkeypatch)  # dozens of commands a test (tests/cli_parsers.py)
    monkeypatch.delenv("IRONROOT_HSM_CREDENTIAL", raising=False)
    provisioned_device(tmp_path / "rot")  # the root of trust that keeps the HSM's counter
    monkeypatch.setenv("IRONROOT_HSM_ROT_DEVICE", str(tmp_path / "rot"))
    device = make_device()
    files = {
        "secret": tmp_path / "sealing.secret",
        "other_secret": tmp_path / "other.secret",
        "device_key": tmp_path / "device.key",
        "device_chain": tmp_path / "device-chain.pem",
        "officer": tmp_path / "officer.cred",
        "user": tmp_path / "user.cred",
    }
    files["secret"].write_bytes(bytes(range(48)))
    files["other_secret"].write_bytes(bytes(range(1, 49)))
    save_signer(device.identity.signer, files["device_key"])  # type: ignore[arg-type]
    files["device_chain"].write_bytes(
        b"".join(
            x509.load_der_x509_certificate(c).public_bytes(Encoding.PEM)
            for c in device.identity.chain
        )
    )
    files["officer"].write_bytes(OFFICER_PASS)
    files["user"].write_bytes(USER_PASS)
    directory = tmp_path / "hsm"
    code = _main.main(
        [
            "hsm", "init", "--dir", str(directory), "--sealing-secret-file", str(files["secret"]),
            "--officer", "co", "--credential-file", str(files["officer"]),
            "--device-key", str(files["device_key"]),
            "--device-chain", str(files["device_chain"]), "--json",
        ]
    )  # fmt: skip
    assert code == 0
    return directory, files


def _run(cli: tuple[Path, dict[str, Path]], who: str, *argv: str) -> int:
    """Run ``argv`` (``hsm <verb> ...``) logged in as ``who``; options go after the verb."""
    directory, files = cli
    credential = files["officer" if who == "co" else "user"]
    return _main.main(
        [
            *argv,
            "--dir", str(directory), "--sealing-secret-file", str(files["secret"]),
            "--identity", who, "--credential-file", str(credential),
        ]
    )  # fmt: skip


def _hsm(*argv: str) -> list[str]:
    return ["hsm", *argv]


def test_a_session_of_commands(
    cli: tuple[Path, dict[str, Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory, files = cli
    capsys.readouterr()
    assert _run(cli, "co", "hsm", "identity", "add", "svc", "--role", "user",
                "--new-credential-file", str(files["user"])) == 0  # fmt: skip
    capsys.readouterr()
    assert _run(cli, "co", "hsm", "key", "generate", "--type", "EC-P384", "--label", "rcpt",
                "--json") == 0  # fmt: skip
    key = json.loads(capsys.readouterr().out)
    assert key["type"] == "EC-P384"
    assert key["exportable"] is False
    handle = key["handle"]
    message, signature = tmp_path / "msg", tmp_path / "msg.sig"
    message.write_bytes(b"hello")
    assert _run(cli, "svc", "hsm", "sign", handle, "--in", str(message),
                "--out", str(signature)) == 0  # fmt: skip
    # DER by default, as openssl and most tools expect: checked here with `cryptography` alone
    import base64

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    public = load_der_public_key(base64.b64decode(key["public_key_der"]))
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(signature.read_bytes(), b"hello", ec.ECDSA(hashes.SHA384()))
    assert _run(cli, "svc", "hsm", "verify", handle, "--in", str(message),
                "--signature", str(signature)) == 0  # fmt: skip
    raw = tmp_path / "msg.raw.sig"
    assert _run(cli, "svc", "hsm", "sign", handle, "--in", str(message),
                "--out", str(raw), "--format", "raw") == 0  # fmt: skip
    assert len(raw.read_bytes()) == 96  # r || s, as COSE and JOSE carry it
    assert _run(cli, "svc", "hsm", "verify", handle, "--in", str(message),
                "--signature", str(raw), "--format", "raw") == 0  # fmt: skip
    assert (
        _run(cli, "svc", "hsm", "verify", handle, "--in", str(message), "--signature", str(raw))
        == 2
    )  # raw given where DER is expected: malformed
    message.write_bytes(b"tampered")
    assert _run(cli, "svc", "hsm", "verify", handle, "--in", str(message),
                "--signature", str(signature)) == 1  # fmt: skip
    # a role without the right: exit 1, one line on stderr
    capsys.readouterr()
    assert _run(cli, "svc", "hsm", "key", "generate", "--type", "AES-256") == 1
    assert "role-not-permitted" in capsys.readouterr().err
    # the audit log verifies offline
    assert _main.main(_hsm("audit", "verify", "--dir", str(directory), "--json")) == 0
    assert json.loads(capsys.readouterr().out)["records"] > 5


def test_encrypt_wrap_attest(
    cli: tuple[Path, dict[str, Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, files = cli
    _run(cli, "co", "hsm", "identity", "add", "svc", "--role", "user",
         "--new-credential-file", str(files["user"]))  # fmt: skip
    capsys.readouterr()
    _run(cli, "co", "hsm", "key", "generate", "--type", "AES-256", "--usage", "encrypt",
         "--usage", "decrypt", "--exportable")  # fmt: skip
    handle = capsys.readouterr().out.strip()
    plain, sealed, back = tmp_path / "p", tmp_path / "c", tmp_path / "b"
    plain.write_bytes(b"data")
    back.write_bytes(b"")
    back.chmod(0o644)  # there already, world-readable: the plaintext is written owner-only
    assert _run(cli, "svc", "hsm", "encrypt", handle, "--in", str(plain), "--out", str(sealed)) == 0
    assert _run(cli, "svc", "hsm", "decrypt", handle, "--in", str(sealed), "--out", str(back)) == 0
    assert back.read_bytes() == b"data"
    assert stat.S_IMODE(back.stat().st_mode) == 0o600
    tee = mlkem.MLKEM768PrivateKey.generate()
    recipient = tmp_path / "tee.pub"
    recipient.write_bytes(
        tee.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    wrapped = tmp_path / "wrapped"
    # a recipient no officer approved: the key stays inside (exit 1, the code on stderr)
    capsys.readouterr()
    assert _run(cli, "svc", "hsm", "wrap", handle, "--recipient", str(recipient),
                "--out", str(wrapped)) == 1  # fmt: skip
    assert "recipient-not-approved" in capsys.readouterr().err
    assert not wrapped.exists()
    assert _run(cli, "svc", "hsm", "recipient", "add", "tee", str(recipient)) == 1  # a user
    assert _run(cli, "co", "hsm", "recipient", "add", "tee", str(recipient)) == 0
    capsys.readouterr()
    assert _run(cli, "svc", "hsm", "recipient", "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in listed["result"]] == ["tee"]
    assert _run(cli, "svc", "hsm", "wrap", handle, "--recipient", str(recipient),
                "--out", str(wrapped)) == 0  # fmt: skip
    key_type, _raw = unwrap_key_kem(tee, wrapped.read_bytes())
    assert key_type is KeyType.AES_256
    statement = tmp_path / "attestation"
    assert _run(cli, "svc", "hsm", "attest", handle, "--nonce-hex", "0011",
                "--out", str(statement)) == 0  # fmt: skip
    assert statement.read_bytes()[:1] == b"\xd2"


def test_lockout_and_offline_checkpoint(
    cli: tuple[Path, dict[str, Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory, files = cli
    _run(cli, "co", "hsm", "identity", "add", "aud", "--role", "auditor",
         "--new-credential-file", str(files["user"]))  # fmt: skip
    checkpoint, key = tmp_path / "cp", tmp_path / "att.pem"
    assert _run(cli, "aud", "hsm", "audit", "checkpoint", "--out", str(checkpoint)) == 0
    common = ["--dir", str(directory), "--sealing-secret-file", str(files["secret"])]
    assert _main.main(_hsm("info", *common, "--key-out", str(key))) == 0
    capsys.readouterr()
    assert _main.main(_hsm("audit", "verify", "--dir", str(directory),
                           "--checkpoint", str(checkpoint), "--key", str(key))) == 0  # fmt: skip
    wrong = tmp_path / "wrong.cred"
    wrong.write_bytes(b"not-the-credential")
    for _ in range(5):
        code = _main.main(_hsm("identity", "list", *common, "--identity", "aud",
                               "--credential-file", str(wrong)))  # fmt: skip
        assert code == 1
    capsys.readouterr()
    assert _run(cli, "aud", "hsm", "audit", "show") == 1  # locked out: a wrong credential's
    assert "unauthorized" in capsys.readouterr().err  # answer, even to the right one
    assert _run(cli, "co", "hsm", "identity", "list", "--json") == 0
    listed = {r["name"]: r for r in json.loads(capsys.readouterr().out)["result"]}
    assert listed["aud"]["locked"] is False  # not an officer's lock: a timed lockout
    assert listed["aud"]["locked_out_until"].endswith("Z")
    assert listed["co"]["locked_out_until"] is None
    assert _run(cli, "co", "hsm", "identity", "list") == 0
    assert "locked out until " in capsys.readouterr().out
    assert _run(cli, "co", "hsm", "identity", "unlock", "aud") == 0
    assert _run(cli, "aud", "hsm", "audit", "show", "--json") == 0


def _info(cli: tuple[Path, dict[str, Path]], capsys: pytest.CaptureFixture[str]) -> object:
    directory, files = cli
    capsys.readouterr()
    common = ["--dir", str(directory), "--sealing-secret-file", str(files["secret"])]
    assert _main.main(_hsm("info", *common, "--json")) == 0
    return json.loads(capsys.readouterr().out)["audit_segment_records"]


def test_the_cli_rotates_at_the_size_the_service_sealed(
    cli: tuple[Path, dict[str, Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: every CLI verb opened the HSM with a default ``HsmConfig`` and rotated at
    100,000 records, whatever ``[keyrelease.hsm] audit_segment_records`` the key service ran
    the same directory with. The size is sealed in the HSM's store, so every opener agrees."""
    directory, files = cli
    assert _info(cli, capsys) == 100_000  # init named none
    from ironroot.hsm import DirectoryStorage, Hsm, HsmConfig

    # the key service opens it with its configured size (KeyReleaseConfig.open does this)
    with DirectoryStorage.on_device(directory, tmp_path / "rot") as storage:
        hsm = Hsm.open(
            storage, files["secret"].read_bytes(), config=HsmConfig(audit_segment_records=5)
        )
        hsm.close()
    assert _info(cli, capsys) == 5
    for _ in range(4):
        assert _run(cli, "co", "hsm", "key", "list") == 0
    segments = sorted(directory.glob("audit-*.jsonl"))
    assert segments  # the CLI rotated at 5 records, not at 100,000
    capsys.readouterr()
    assert _main.main(_hsm("audit", "verify", "--dir", str(directory),
                           "--sealing-secret-file", str(files["secret"]))) == 0  # fmt: skip


def test_init_seals_the_segment_size_it_is_given(
    cli: tuple[Path, dict[str, Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _directory, files = cli
    other = tmp_path / "other-hsm"
    provisioned_device(tmp_path / "rot2")
    common = ["--dir", str(other), "--sealing-secret-file", str(files["secret"]),
              "--rot-device", str(tmp_path / "rot2")]  # fmt: skip
    init = ["init", *common, "--officer", "co", "--credential-file", str(files["officer"]),
            "--device-key", str(files["device_key"]),
            "--device-chain", str(files["device_chain"])]  # fmt: skip
    capsys.readouterr()
    assert _main.main(_hsm(*init, "--audit-segment-records", "1")) == 2
    assert "audit_segment_records must be an integer from 2 to 250000" in capsys.readouterr().err
    assert _main.main(_hsm(*init, "--audit-segment-records", "500")) == 0
    capsys.readouterr()
    assert _main.main(_hsm("info", *common, "--json")) == 0
    assert json.loads(capsys.readouterr().out)["audit_segment_records"] == 500


def test_audit_verify_refuses_a_key_without_a_checkpoint(
    cli: tuple[Path, dict[str, Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--key`` checks a ``--checkpoint`` only: given alone it was ignored (a missing or
    empty file too) and the check passed, as if the log had been checked against the key."""
    directory, _files = cli
    capsys.readouterr()
    argv = _hsm("audit", "verify", "--dir", str(directory), "--key", str(tmp_path / "missing"))
    assert _main.main(argv) == 2
    assert capsys.readouterr().err == (
        "ironroot: config: --key is the key a --checkpoint is checked with, and no "
        "--checkpoint was given\n"
    )


def test_another_device_and_tamper(
    cli: tuple[Path, dict[str, Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    directory, files = cli
    capsys.readouterr()
    other = ["--dir", str(directory), "--sealing-secret-file", str(files["other_secret"])]
    assert _main.main(_hsm("info", *other)) == 1
    assert "sealed-store" in capsys.readouterr().err
    common = ["--dir", str(directory), "--sealing-secret-file", str(files["secret"])]
    assert _run(cli, "co", "hsm", "self-test") == 0
    assert _main.main(_hsm("tamper", *common, "--yes")) == 0
    assert not (directory / "keystore.sealed").exists()
    assert _main.main(_hsm("info", *common)) == 1
    assert _main.main(_hsm("audit", "verify", "--dir", str(directory))) == 0


def test_credentials_come_from_the_environment(
    cli: tuple[Path, dict[str, Path]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    directory, files = cli
    monkeypatch.setenv("IRONROOT_HSM_CREDENTIAL", OFFICER_PASS.decode().strip())
    monkeypatch.setenv("IRONROOT_HSM_IDENTITY", "co")
    monkeypatch.setenv("IRONROOT_HSM_SEALING_SECRET_FILE", str(files["secret"]))
    capsys.readouterr()
    assert _main.main(_hsm("identity", "list", "--dir", str(directory), "--json")) == 0
    assert json.loads(capsys.readouterr().out)["result"] == [
        {"name": "co", "role": "officer", "locked": False, "locked_out_until": None}
    ]
    with pytest.raises(SystemExit):  # no option takes a credential itself
        _main.main(_hsm("identity", "list", "--dir", str(directory), "--password", "x"))


def test_a_credential_variable_holding_a_file_name_is_refused_not_tried(
    cli: tuple[Path, dict[str, Path]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    directory, files = cli
    monkeypatch.setenv("IRONROOT_HSM_CREDENTIAL", str(files["officer"]))  # a path, by mistake
    monkeypatch.setenv("IRONROOT_HSM_IDENTITY", "co")
    monkeypatch.setenv("IRONROOT_HSM_SEALING_SECRET_FILE", str(files["secret"]))
    for _ in range(6):  # more than the lockout allows: none of these was an attempt
        assert _main.main(_hsm("identity", "list", "--dir", str(directory))) == 2
    assert "set IRONROOT_HSM_CREDENTIAL_FILE" in capsys.readouterr().err
    monkeypatch.delenv("IRONROOT_HSM_CREDENTIAL")
    monkeypatch.setenv("IRONROOT_HSM_CREDENTIAL_FILE", str(files["officer"]))
    assert _main.main(_hsm("identity", "list", "--dir", str(directory))) == 0  # not locked


def test_audit_verify_with_the_sealing_secret_reports_a_cut_tail(
    cli: tuple[Path, dict[str, Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory, files = cli
    assert _run(cli, "co", "hsm", "key", "generate", "--type", "EC-P256") == 0
    assert _run(cli, "co", "hsm", "self-test") == 0
    sealed = ["audit", "verify", "--dir", str(directory),
              "--sealing-secret-file", str(files["secret"]),
              "--rot-device", str(tmp_path / "rot"), "--json"]  # fmt: skip
    capsys.readouterr()
    assert _main.main(_hsm(*sealed)) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["sealed"] is True
    assert report["anchored"] == report["records"]
    log = directory / "audit.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:-2]))
    # the public check alone cannot see a cut tail ...
    assert _main.main(_hsm("audit", "verify", "--dir", str(directory))) == 0
    capsys.readouterr()
    # ... the check with the sealing secret does, and says how much is missing
    assert _main.main(_hsm(*sealed)) == 1
    assert "its last 2 were cut" in capsys.readouterr().err


def test_audit_verify_without_the_rot_device_checks_the_sealed_head(
    cli: tuple[Path, dict[str, Path]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Was: without ``--rot-device`` every HSM on a root of trust's counter (all of them: the
    commands require one) was refused as "another HSM's files": the anchor names its counter,
    and the check compared that name with none. Now the check runs, and finds a cut tail."""
    directory, files = cli
    assert _run(cli, "co", "hsm", "self-test") == 0
    monkeypatch.delenv("IRONROOT_HSM_ROT_DEVICE")
    sealed = ["audit", "verify", "--dir", str(directory),
              "--sealing-secret-file", str(files["secret"]), "--json"]  # fmt: skip
    capsys.readouterr()
    assert _main.main(_hsm(*sealed)) == 0
    assert json.loads(capsys.readouterr().out)["sealed"] is True
    log = directory / "audit.jsonl"
    log.write_bytes(b"".join(log.read_bytes().splitlines(keepends=True)[:-1]))
    assert _main.main(_hsm(*sealed)) == 1
    assert "its last 1 were cut" in capsys.readouterr().err


def test_audit_verify_takes_the_rot_device_from_the_environment(
    cli: tuple[Path, dict[str, Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: ``audit verify`` ignored ``IRONROOT_HSM_ROT_DEVICE`` (every other hsm command
    takes it, and it took the sealing secret's variable): with both set, it checked every MAC
    but not the counter, so a copy of the whole HSM directory put back after later commits
    (a deleted key back, audit records gone) passed as "MACs and sealed head checked"."""
    directory, files = cli
    copy = tmp_path / "copy"
    shutil.copytree(directory, copy)
    assert _run(cli, "co", "hsm", "self-test") == 0  # later commits
    shutil.rmtree(directory)
    shutil.copytree(copy, directory)
    capsys.readouterr()
    assert _main.main(_hsm("audit", "verify", "--dir", str(directory),
                           "--sealing-secret-file", str(files["secret"]))) == 1  # fmt: skip
    assert "store-rolled-back: the anchor is older than the root of trust's counter" in (
        capsys.readouterr().err
    )


def test_audit_verify_while_the_hsm_commits_is_not_a_rollback(
    cli: tuple[Path, dict[str, Path]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Was: ``audit verify --rot-device`` read the counter after the files, so a commit of the
    running HSM in between (every security event is one) showed the anchor behind the
    counter: "an earlier copy of the HSM's files was restored", exit 1, on a live HSM almost
    every time. Now the counter is read before and after, and an anchor committed meanwhile
    is one the HSM wrote."""
    from ironroot.cli import hsm as hsm_cli
    from ironroot.hsm import DirectoryStorage, Hsm

    directory, files = cli
    storage = DirectoryStorage.on_device(directory, tmp_path / "rot")
    running = Hsm.open(storage, files["secret"].read_bytes())
    officer = running.login("co", OFFICER_PASS.rstrip(b"\n"))
    read_optional = hsm_cli._read_optional
    commits = []

    def read_then_commit(path: Path) -> bytes | None:
        data = read_optional(path)
        if path.name == "anchor.sealed" and len(commits) < 2:
            running.self_test(officer)  # a security event: the HSM commits, the counter moves
            commits.append(path)
        return data

    monkeypatch.setattr(hsm_cli, "_read_optional", read_then_commit)
    capsys.readouterr()
    try:
        assert _main.main(_hsm("audit", "verify", "--dir", str(directory),
                               "--sealing-secret-file", str(files["secret"]),
                               "--rot-device", str(tmp_path / "rot"), "--json")) == 0  # fmt: skip
    finally:
        running.close()
        storage.close()
    assert commits
    assert json.loads(capsys.readouterr().out)["sealed"] is True


def test_a_new_identitys_credential_file_readable_by_others_is_warned_about(
    cli: tuple[Path, dict[str, Path]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every credential file the CLI reads warns when others may read it, except, before, the
    one ``identity add`` read the new identity's credential from."""
    exposed = tmp_path / "svc.cred"
    exposed.write_bytes(USER_PASS)
    exposed.chmod(0o644)
    files = cli[1]
    files["officer"].chmod(0o600)
    caplog.clear()
    assert _run(cli, "co", "hsm", "identity", "add", "svc", "--role", "user",
                "--new-credential-file", str(exposed)) == 0  # fmt: skip
    assert f"{exposed} holds an HSM credential but is readable beyond its owner" in caplog.text


def test_the_hsm_needs_its_root_of_trust(
    cli: tuple[Path, dict[str, Path]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    directory, files = cli
    monkeypatch.delenv("IRONROOT_HSM_ROT_DEVICE")
    capsys.readouterr()
    common = ["--dir", str(directory), "--sealing-secret-file", str(files["secret"])]
    assert _main.main(_hsm("info", *common)) == 2
    assert "--rot-device" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("label", "shown"),
    [
        ("clear\x1b[2J", "clear[U+001B][2J"),
        ("two\nlines", "two[U+000A]lines"),
        ("node\u200b", "node[U+200B]"),  # looks like "node": zero width
        ("[red]x[/red]", "[red]x[/red]"),
    ],
)
def test_key_list_shows_a_label_as_written(
    cli: tuple[Path, dict[str, Path]], capsys: pytest.CaptureFixture[str], label: str, shown: str
) -> None:
    """A label is whatever its creator wrote (any client of a served HSM): ``key list``
    printed an escape sequence raw to the officer's terminal, a line break forged a row."""
    assert _run(cli, "co", "hsm", "key", "generate", "--type", "EC-P384", "--label", label,
                "--json") == 0  # fmt: skip
    handle = json.loads(capsys.readouterr().out)["handle"]
    assert _run(cli, "co", "hsm", "key", "list") == 0
    out = capsys.readouterr().out
    assert f"{handle}\tEC-P384\t{shown}\n" in out
    assert "\x1b" not in out
    assert len(out.splitlines()) == 1


def test_audit_show_text_names_a_release_binding_and_escapes_given_text() -> None:
    from ironroot.cli.hsm import audit_line
    from ironroot.hsm import AuditRecord, ReleaseBinding

    binding = ReleaseBinding(statement=b"\x01" * 32, recipient=b"\x02" * 32, ear=b"\x03" * 32)
    record = AuditRecord(
        seq=7,
        time=1_800_000_000,
        identity="user\x1b[2J",
        operation="release",
        key="db-key\x1b]0;owned\x07",
        result="ok",
        prev=bytes(32),
        release=binding,
    )
    line = audit_line(record)
    assert "\x1b" not in line
    assert "\x07" not in line
    fields = line.split("\t")
    assert [fields[0], fields[3], fields[5]] == ["7", "release", "ok"]
    assert fields[6] == f"release statement={'01' * 32} recipient={'02' * 32} ear={'03' * 32}"
    plain = AuditRecord(7, 1_800_000_000, "co", "login", None, "ok", bytes(32))
    assert audit_line(plain).split("\t")[4:] == ["-", "ok"]


def test_an_output_that_fails_part_way_leaves_the_file_as_it_was(
    cli: tuple[Path, dict[str, Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, files = cli
    _run(cli, "co", "hsm", "identity", "add", "svc", "--role", "user",
         "--new-credential-file", str(files["user"]))  # fmt: skip
    capsys.readouterr()
    _run(cli, "co", "hsm", "key", "generate", "--type", "AES-256", "--usage", "encrypt")
    handle = capsys.readouterr().out.strip()
    plain = tmp_path / "plain"
    before = bytes(range(256)) * 8192  # 2 MiB: its ciphertext is larger than the limit
    plain.write_bytes(before)
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit: EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, limit[1]))
    try:  # encrypted in place: the output named the same as the input
        code = _run(cli, "svc", "hsm", "encrypt", handle, "--in", str(plain), "--out", str(plain))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
        signal.signal(signal.SIGXFSZ, previous)
    assert code == 2
    assert "file too large" in capsys.readouterr().err
    assert plain.read_bytes() == before  # not truncated, not half-written
    assert not list(tmp_path.glob(".*.tmp"))


def test_audit_prune_is_an_officers_and_refuses_the_live_log(
    cli: tuple[Path, dict[str, Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    directory, _files = cli
    capsys.readouterr()
    # nothing archived yet: the live log starts at record 0 and is never pruned
    assert _run(cli, "co", "hsm", "audit", "prune", "--before", "5") == 2
    assert "records from 0 on are in the live log, which is never pruned" in (
        capsys.readouterr().err
    )
    log = (directory / "audit.jsonl").read_text()
    assert '"operation":"audit-prune","key":"before-5","result":"malformed"' in log


def test_info_writes_the_device_certificate_a_tee_trusts_alone(
    cli: tuple[Path, dict[str, Path]], tmp_path: Path
) -> None:
    """``--device-out``: the one certificate a TEE pins this HSM's release statements to
    (docs/keyrelease.md), not the chain up to the vendor's root."""
    directory, files = cli
    device = tmp_path / "device.pem"
    common = ["--dir", str(directory), "--sealing-secret-file", str(files["secret"])]
    assert _main.main(_hsm("info", *common, "--device-out", str(device))) == 0
    written = x509.load_pem_x509_certificates(device.read_bytes())
    given = x509.load_pem_x509_certificates(files["device_chain"].read_bytes())
    assert written == given[:1]


def test_an_output_never_replaces_the_sealing_secret_or_a_credential_it_read(
    cli: tuple[Path, dict[str, Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The sealing secret and a credential are raw bytes, nothing to recognise them by: the
    files the command read them from are what its output must not replace (the sealing secret
    gone is every key of the HSM gone), by any name."""
    _, files = cli
    _run(cli, "co", "hsm", "identity", "add", "svc", "--role", "user",
         "--new-credential-file", str(files["user"]))  # fmt: skip
    _run(cli, "co", "hsm", "key", "generate", "--type", "AES-256", "--usage", "encrypt")
    handle = capsys.readouterr().out.strip().splitlines()[-1]
    plain = tmp_path / "plain"
    plain.write_bytes(b"plaintext")
    other_name = tmp_path / "other-name"
    other_name.hardlink_to(files["secret"])
    for out, secret in (
        (files["secret"], files["secret"]),
        (other_name, files["secret"]),
        (files["user"], files["user"]),
    ):
        before = secret.read_bytes()
        code = _run(cli, "svc", "hsm", "encrypt", handle, "--in", str(plain), "--out", str(out))
        err = capsys.readouterr().err
        assert code == 2, err
        assert err.startswith(
            f"ironroot: config: {out} is the secret file {secret} this command read: "
            "writing the output there would replace it"
        ), err
        assert secret.read_bytes() == before
    assert _run(cli, "svc", "hsm", "encrypt", handle, "--in", str(plain), "--out", str(plain)) == 0


def test_an_output_never_replaces_a_file_of_the_hsm_directory(
    cli: tuple[Path, dict[str, Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The sealed key store replaced by a ciphertext is every key of the HSM lost."""
    directory, files = cli
    _run(cli, "co", "hsm", "identity", "add", "svc", "--role", "user",
         "--new-credential-file", str(files["user"]))  # fmt: skip
    _run(cli, "co", "hsm", "key", "generate", "--type", "AES-256", "--usage", "encrypt")
    handle = capsys.readouterr().out.strip().splitlines()[-1]
    plain = tmp_path / "plain"
    plain.write_bytes(b"plaintext")
    store = directory / "keystore.sealed"
    before = store.read_bytes()
    code = _run(cli, "svc", "hsm", "encrypt", handle, "--in", str(plain), "--out", str(store))
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith(
        f"ironroot: config: {store} is a file of {directory.resolve()}, which this command "
        "uses: writing the output there would replace it"
    ), err
    assert store.read_bytes() == before
    assert _run(cli, "svc", "hsm", "encrypt", handle, "--in", str(plain), "--out", str(plain)) == 0


def test_key_users_from_the_command_line(
    cli: tuple[Path, dict[str, Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, files = cli
    for name in ("svc", "svc2"):  # both log in with the user credential file
        assert _run(cli, "co", "hsm", "identity", "add", name, "--role", "user",
                    "--new-credential-file", str(files["user"])) == 0  # fmt: skip
    capsys.readouterr()
    assert _run(cli, "co", "hsm", "key", "generate", "--type", "EC-P256", "--user", "svc",
                "--json") == 0  # fmt: skip
    key = json.loads(capsys.readouterr().out)
    assert key["users"] == ["svc"]
    message = tmp_path / "msg"
    message.write_bytes(b"hello")
    sign = ("hsm", "sign", key["handle"], "--in", str(message), "--out", str(tmp_path / "sig"))
    assert _run(cli, "svc", *sign) == 0
    capsys.readouterr()
    assert _run(cli, "svc2", *sign) == 1
    assert "key-access-denied" in capsys.readouterr().err
    assert _run(cli, "co", "hsm", "key", "users", key["handle"], "--user", "svc",
                "--user", "svc2") == 0  # fmt: skip
    assert capsys.readouterr().out == f"{key['handle']}: svc, svc2\n"
    assert _run(cli, "svc2", *sign) == 0
    capsys.readouterr()
    assert _run(cli, "co", "hsm", "key", "users", key["handle"], "--any") == 0
    assert capsys.readouterr().out == f"{key['handle']}: every crypto user\n"
    assert _run(cli, "co", "hsm", "key", "generate", "--type", "EC-P256", "--user", "nobody") == 1
    assert "no identity 'nobody' to name as a key user" in capsys.readouterr().err


def test_a_release_policy_file_that_is_not_utf8_is_malformed(
    cli: tuple[Path, dict[str, Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--release-policy-file`` is read as UTF-8 text: other bytes are ``malformed`` (exit
    2, one line), as ``keyrelease policy check`` says, not a traceback (``internal-error``);
    no key is generated."""
    policy = tmp_path / "policy.cel"
    policy.write_bytes(b'status == "affirming" && submod == "\xff"')
    capsys.readouterr()
    code = _run(cli, "co", "hsm", "key", "generate", "--type", "AES-256", "--exportable",
                "--release-policy-file", str(policy))  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2, err
    assert "malformed" in err
    assert "internal-error" not in err
    assert "not UTF-8" in err
    assert _run(cli, "co", "hsm", "key", "list", "--json") == 0
    assert json.loads(capsys.readouterr().out)["result"] == []


def test_dual_control_from_the_command_line(
    cli: tuple[Path, dict[str, Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory, files = cli
    second = tmp_path / "co2.cred"
    second.write_bytes(b"second-officer-credential")
    second.chmod(0o600)
    assert _run(cli, "co", "hsm", "identity", "add", "co2", "--role", "officer",
                "--new-credential-file", str(second)) == 0  # fmt: skip
    assert _run(cli, "co", "hsm", "quorum", "2") == 0
    assert capsys.readouterr().out.endswith("officer quorum: 2\n")
    add_user = ("hsm", "identity", "add", "svc", "--role", "user",
                "--new-credential-file", str(files["user"]))  # fmt: skip
    assert _run(cli, "co", *add_user) == 1
    err = capsys.readouterr().err
    assert "identity-add is under dual control: it needs 2 crypto officers" in err
    assert _run(cli, "co", *add_user, "--approver", f"co2={second}") == 0
    capsys.readouterr()
    # an approver's wrong credential, or an approver given with no file and no terminal
    wrong = tmp_path / "wrong.cred"
    wrong.write_bytes(b"not-the-credential")
    wrong.chmod(0o600)
    assert _run(cli, "co", "hsm", "quorum", "1", "--approver", f"co2={wrong}") == 1
    assert "unknown identity or wrong credential" in capsys.readouterr().err
    assert _run(cli, "co", "hsm", "quorum", "1", "--approver", "co2") == 2
    assert "--approver co2: give NAME=FILE (no terminal to ask on)" in capsys.readouterr().err
    assert _run(cli, "co", "hsm", "quorum", "1", "--approver", "co2=") == 2
    capsys.readouterr()
    assert _main.main(["hsm", "info", "--dir", str(directory), "--sealing-secret-file",
                       str(files["secret"]), "--json"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["officer_quorum"] == 2
    assert _run(cli, "co", "hsm", "quorum", "1", "--approver", f"co2={second}") == 0


def _records(
    cli: tuple[Path, dict[str, Path]], tmp_path: Path, operation: str
) -> list[tuple[str, str | None, str]]:
    """``(identity, key, result)`` of the HSM's records of ``operation``, read as ``aud``."""
    from ironroot.hsm import DirectoryStorage, Hsm

    directory, files = cli
    with DirectoryStorage.on_device(directory, tmp_path / "rot") as storage:
        hsm = Hsm.open(storage, files["secret"].read_bytes())
        try:
            auditor = hsm.login("aud", USER_PASS)
            return [
                (r.identity, r.key, r.result)
                for r in hsm.audit_records(auditor)
                if r.operation == operation
            ]
        finally:
            hsm.close()


def test_an_approver_approves_the_command_s_own_operation_and_arguments(
    cli: tuple[Path, dict[str, Path]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``--approver`` logged in with the approvers: their records named no operation, and
    the session met the quorum for whichever dual-control operation the command ran. They
    now approve the command's operation with its arguments (``Hsm.approve``): the records
    say which, and the command runs nothing else with it."""
    from ironroot.hsm import Hsm

    _, files = cli
    second = tmp_path / "co2.cred"
    second.write_bytes(b"second-officer-credential")
    second.chmod(0o600)
    assert _run(cli, "co", "hsm", "identity", "add", "co2", "--role", "officer",
                "--new-credential-file", str(second)) == 0  # fmt: skip
    assert _run(cli, "co", "hsm", "identity", "add", "aud", "--role", "auditor",
                "--new-credential-file", str(files["user"])) == 0  # fmt: skip
    assert _run(cli, "co", "hsm", "identity", "add", "svc", "--role", "user",
                "--new-credential-file", str(files["user"])) == 0  # fmt: skip
    assert _run(cli, "co", "hsm", "quorum", "2") == 0
    assert _run(cli, "co", "hsm", "key", "generate", "--type", "AES-256") == 0
    handle = capsys.readouterr().out.strip().splitlines()[-1]
    approver = ("--approver", f"co2={second}")
    assert _run(cli, "co", "hsm", "key", "users", handle, "--user", "svc", *approver) == 0
    subject = f"key-users {handle}"
    assert _records(cli, tmp_path, "approve")[-1] == ("co2", subject, "ok")
    assert _records(cli, tmp_path, "approval")[-1] == ("co", subject, "ok")
    assert _records(cli, tmp_path, "key-users")[-1] == ("co+co2", handle, "ok")
    # a command that ran its operation with other arguments than it read: not approved
    set_users = Hsm.set_key_users
    monkeypatch.setattr(
        Hsm, "set_key_users", lambda self, s, h, users: set_users(self, s, h, ["co"])
    )
    capsys.readouterr()
    assert _run(cli, "co", "hsm", "key", "users", handle, "--user", "svc", *approver) == 1
    assert (
        f"the approval of key-users on {handle} was for other arguments than these"
        in capsys.readouterr().err
    )
    assert _records(cli, tmp_path, "key-users")[-1] == (
        "co",
        handle,
        "approval-parameters-mismatch",
    )
    # a command under no dual control takes no approver
    with pytest.raises(SystemExit) as usage:
        _run(cli, "co", "hsm", "key", "list", *approver)
    assert usage.value.code == 2
    assert "unrecognized arguments: --approver" in capsys.readouterr().err
