"""``make demo``: the path of trust, end to end, with the real commands.

Every step runs the ``ironroot`` command a user would type (printed before it runs) against a
real ``ironroot serve`` on a fresh data directory, so the demo doubles as runnable
documentation. It stops the server and exits non-zero if any step fails.

The platform act (16–20: a DC-SCM node and its PFM; an update pushed over Redfish to a real
``ironroot platform serve``, refused while the firmware is not on the log, committed with its
receipt; a power loss mid-update; protected flash and recovery) runs its thirty-odd commands in
this process through ``ironroot.cli.main`` — the same commands, printed the same way, without
an interpreter start-up each — so that it takes seconds; its Redfish requests are printed as
the ``curl`` commands that make them.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel

__all__ = ["main"]

console = Console(highlight=False, soft_wrap=True)


class DemoFailed(Exception):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Demo:
    def __init__(self, workdir: Path) -> None:
        self.work = workdir
        self.exe = [sys.executable, "-m", "ironroot"]
        self.server: subprocess.Popen[bytes] | None = None
        self.redfish: subprocess.Popen[bytes] | None = None
        self.manifest_digest = ""
        self.key_hash = ""
        self.nonce = ""

    def step(self, title: str) -> None:
        console.print()
        console.print(Panel.fit(title, style="bold cyan"), soft_wrap=False)  # wrap, never crop

    def run(self, *args: str, expect: int = 0) -> str:
        shown = "ironroot " + " ".join(shlex.quote(a) for a in args)
        console.print(f"[dim]$[/dim] [bold]{shown}[/bold]")
        proc = subprocess.run(
            [*self.exe, *args], cwd=self.work, capture_output=True, text=True, check=False
        )
        out = (proc.stdout + proc.stderr).rstrip()
        if out:
            console.print(out, markup=False)
        if proc.returncode != expect:
            raise DemoFailed(f"`{shown}` exited {proc.returncode}, expected {expect}")
        return proc.stdout

    def cli(self, *args: str, expect: int = 0, show: bool = True, tail: int = 0) -> str:
        """Run an ``ironroot`` command in this process (``ironroot.cli.main``, what the
        executable runs) in the demo's directory: the same command, without a start-up each.
        ``show=False`` runs it without printing; ``tail`` prints only its last lines. Returns
        what it printed (standard output and error, in order)."""
        from ironroot.cli import main as ironroot_main

        shown = "ironroot " + " ".join(shlex.quote(a) for a in args)
        out = io.StringIO()
        with (
            contextlib.chdir(self.work),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(out),
        ):
            code = ironroot_main(list(args))
        lines = out.getvalue().rstrip().splitlines()
        if show:
            console.print(f"[dim]$[/dim] [bold]{shown}[/bold]")
            if tail and len(lines) > tail:
                console.print(f"  … ({len(lines) - tail} earlier lines)", style="dim")
                lines = lines[-tail:]
        if lines and (show or code != expect):
            console.print("\n".join(lines), markup=False)
        if code != expect:
            raise DemoFailed(f"`{shown}` exited {code}, expected {expect}")
        return out.getvalue()

    def _spawn(self, args: Sequence[str], port: int) -> subprocess.Popen[bytes]:
        """Start ``ironroot ARGS`` in the background and wait until it listens on ``port``."""
        console.print(f"[dim]$[/dim] [bold]ironroot {' '.join(args)} &[/bold]")
        process = subprocess.Popen([*self.exe, *args], cwd=self.work)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise DemoFailed(f"`ironroot {args[0]}` exited during start-up")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return process
            except OSError:
                time.sleep(0.05)
        process.kill()
        process.wait()
        raise DemoFailed(f"`ironroot {args[0]}` did not start within 30 s")

    def start_server(self, data: str, port: int) -> None:
        self.server = self._spawn(["serve", "--data", data, "--port", str(port)], port)

    def start_redfish(self, node: str, port: int) -> None:
        args = ["platform", "serve", "--node", node, "--port", str(port), "--log-level", "error"]
        self.redfish = self._spawn(args, port)

    @staticmethod
    def _stop(process: subprocess.Popen[bytes] | None) -> None:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop_server(self) -> None:
        self._stop(self.server)
        self.server = None

    def stop_redfish(self) -> None:
        self._stop(self.redfish)
        self.redfish = None


class _Redfish:
    """A Redfish client (httpx) that prints each request as the ``curl`` command making it."""

    def __init__(self, url: str, work: Path) -> None:
        import httpx

        self.url = url
        self.work = work
        self.http = httpx.Client(base_url=url, timeout=60)

    def close(self) -> None:
        self.http.close()

    def _show(self, command: str) -> None:
        console.print(f"[dim]$[/dim] [bold]{command}[/bold]", soft_wrap=True)

    def login(self, login_file: Path) -> None:
        self._show(
            f"curl -si {self.url}/redfish/v1/SessionService/Sessions "
            f"-H 'Content-Type: application/json' -d @{login_file.name}"
        )
        response = self.http.post(
            "/redfish/v1/SessionService/Sessions", content=login_file.read_bytes(),
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        if response.status_code != 201:
            raise DemoFailed(f"login answered {response.status_code}: {response.text[:300]}")
        token = response.headers["x-auth-token"]
        self.http.headers["X-Auth-Token"] = token
        console.print(
            f"HTTP {response.status_code} {response.reason_phrase}\n"
            f"Location: {response.headers['location']}\n"
            f"X-Auth-Token: {token[:8]}… (as $TOKEN in every request below)",
            markup=False,
        )

    def get(self, path: str) -> dict[str, Any]:
        self._show(f'curl -s -H "X-Auth-Token: $TOKEN" {self.url}{path}')
        response = self.http.get(path)
        if response.status_code != 200:
            raise DemoFailed(f"GET {path} answered {response.status_code}: {response.text[:300]}")
        body: dict[str, Any] = response.json()
        return body

    def wait(self, monitor: str) -> None:
        """Poll a task monitor until the task has ended (it answers 202 while it runs)."""
        self._show(f'curl -s -H "X-Auth-Token: $TOKEN" {self.url}{monitor}   # until not 202')
        deadline = time.monotonic() + 60
        while (response := self.http.get(monitor)).status_code == 202:
            if time.monotonic() > deadline:
                raise DemoFailed("the update task did not end within 60 s")
            time.sleep(0.02)
        console.print(f"HTTP {response.status_code} {response.reason_phrase}", markup=False)

    def push(
        self, uri: str, target: str, parts: Sequence[tuple[str, str]], *, expect: int
    ) -> dict[str, Any]:
        """A multipart push of the files ``parts`` (part name, file) for ``target``."""
        params = json.dumps({"Targets": [target]})
        shown = " ".join(f"-F {name}=@{path}" for name, path in parts)
        self._show(
            f'curl -si -H "X-Auth-Token: $TOKEN" {self.url}{uri} '
            f"-F 'UpdateParameters={params};type=application/json' {shown}"
        )
        files: list[tuple[str, tuple[str | None, bytes | str, str]]] = [
            ("UpdateParameters", (None, params, "application/json"))
        ]
        for name, path in parts:
            data = (self.work / path).read_bytes()
            files.append((name, (Path(path).name, data, "application/octet-stream")))
        response = self.http.post(uri, files=files)
        console.print(f"HTTP {response.status_code} {response.reason_phrase}", markup=False)
        if response.status_code != expect:
            console.print(response.text, markup=False)
            raise DemoFailed(f"the push answered {response.status_code}, expected {expect}")
        body: dict[str, Any] = response.json()
        if expect == 202:
            console.print(f"Location: {response.headers['location']}", markup=False)
        return body


def _transparency(demo: Demo, url: str, port: int) -> None:
    demo.step("1. A Code Transparency Service on the embedded store (SQLite)")
    demo.run("serve", "--data", "tsdata", "--init-only")
    demo.run("key", "generate", "--alg", "ES384", "--out", "vendor")
    demo.run("key", "generate", "--alg", "ES384", "--out", "lab")
    for name in ("vendor.pub.pem", "lab.pub.pem"):
        shutil.copy(demo.work / name, demo.work / "tsdata" / name)
    with (demo.work / "tsdata" / "ironroot.toml").open("a", encoding="utf-8") as f:
        f.write(
            '\n[[transparency.issuers]]\niss = "https://vendor.example"\nkey = "vendor.pub.pem"\n'
            '\n[[transparency.issuers]]\niss = "https://labs.example"\nkey = "lab.pub.pem"\n'
        )
    console.print(
        "# trust the vendor and the review lab: two [[transparency.issuers]] in ironroot.toml",
        markup=False,
        style="dim",
    )
    demo.start_server("tsdata", port)

    demo.step("2. The vendor signs and registers statements; receipts come back")
    (demo.work / "release.json").write_text('{"product": "bmc", "version": "1.2.3"}\n')
    (demo.work / "firmware.bin").write_bytes(os.urandom(256 * 1024))
    demo.run(
        "statement", "sign", "release.json", "--key", "vendor.key",
        "--iss", "https://vendor.example", "--sub", "pkg:firmware/bmc@1.2.3",
        "--content-type", "application/json", "--out", "release.cose",
    )  # fmt: skip
    demo.run(
        "statement", "sign", "firmware.bin", "--key", "vendor.key", "--hash-envelope",
        "--iss", "https://vendor.example", "--sub", "pkg:firmware/bmc-image@1.2.3",
        "--content-type", "application/octet-stream",
        "--location", "https://vendor.example/bmc-1.2.3.bin", "--out", "firmware.cose",
    )  # fmt: skip
    for name in ("release.cose", "firmware.cose"):
        demo.run("statement", "register", name, "--url", url)

    demo.step("3. Anyone verifies the transparent statements offline")
    keys = demo.work / "service-keys.cbor"
    import httpx

    keys.write_bytes(httpx.get(url + "/.well-known/scitt-keys").content)
    console.print(
        f"[dim]$[/dim] [bold]curl -s {url}/.well-known/scitt-keys > service-keys.cbor[/bold]"
    )
    for name in ("release.cose.ts", "firmware.cose.ts"):
        demo.run(
            "statement", "verify", name, "--service-keys", "service-keys.cbor",
            "--issuer-key", "vendor.pub.pem",
        )  # fmt: skip

    demo.step("4. A statement the policy refuses: signed by an unknown key")
    demo.run("key", "generate", "--alg", "ES256", "--out", "mallory")
    demo.run(
        "statement", "sign", "release.json", "--key", "mallory.key",
        "--iss", "https://vendor.example", "--sub", "pkg:firmware/bmc@6.6.6",
        "--out", "mallory.cose",
    )  # fmt: skip
    demo.run("statement", "register", "mallory.cose", "--url", url, expect=1)


def _firmware_and_boot(demo: Demo, url: str) -> None:
    demo.step("5. The vendor builds and signs firmware with ECDSA P-384 and ML-DSA-87")
    demo.run("key", "generate", "--alg", "ML-DSA-87", "--out", "vendor-pqc")
    (demo.work / "fmc.bin").write_bytes(os.urandom(32 * 1024))
    (demo.work / "runtime.bin").write_bytes(os.urandom(128 * 1024))
    descriptor = demo.run(
        "firmware", "key-descriptor", "--ecc", "vendor.pub.pem", "--pqc", "vendor-pqc.pub.pem",
        "--json",
    )  # fmt: skip
    key_hash = demo.key_hash = json.loads(descriptor)["vendor_key_descriptor_hash"]
    demo.run(
        "firmware", "build", "--fmc", "fmc.bin", "--runtime", "runtime.bin", "--svn", "3",
        "--vendor-ecc-key", "vendor.pub.pem", "--vendor-pqc-key", "vendor-pqc.pub.pem",
        "--pqc-type", "mldsa", "--not-before", "2026-01-01T00:00:00+00:00",
        "--not-after", "2036-01-01T00:00:00+00:00", "--out", "bmc-fw.unsigned",
    )  # fmt: skip
    demo.run(
        "firmware", "sign", "bmc-fw.unsigned", "--ecc-key", "vendor.key",
        "--pqc-key", "vendor-pqc.key", "--out", "bmc-fw.bin",
    )  # fmt: skip
    demo.run("firmware", "verify", "bmc-fw.bin", "--vendor-key-hash", key_hash)

    demo.step("6. Publication: the manifest digest and its reference values go on the log")
    published = demo.run(
        "firmware", "publish", "bmc-fw.bin", "--url", url, "--key", "vendor.key",
        "--iss", "https://vendor.example", "--sub", "pkg:firmware/bmc@1.2.3",
        "--out-dir", "published", "--json",
    )  # fmt: skip
    demo.manifest_digest = json.loads(published)["manifest_digest"]
    for name in sorted((demo.work / "published").iterdir()):
        demo.run(
            "statement", "verify", f"published/{name.name}", "--service-keys", "service-keys.cbor"
        )

    demo.step("7. Manufacturing: a vendor CA issues the device's IDevID; fuses are blown")
    demo.run("rot", "ca-init", "--out", "ca")
    demo.run(
        "rot", "provision", "--device", "device",
        "--vendor-ca-key", "ca/vendor-ca-ecc.key.pem",
        "--vendor-ca-cert", "ca/vendor-ca-ecc.cert.pem",
        "--vendor-ca-key", "ca/vendor-ca-mldsa.key.pem",
        "--vendor-ca-cert", "ca/vendor-ca-mldsa.cert.pem", "--vendor-key-hash", key_hash,
    )  # fmt: skip

    demo.step("8. Measured boot: verify, extend PCRs, derive the DICE layers")
    demo.run("rot", "boot", "--device", "device", "--bundle", "bmc-fw.bin")
    demo.run("rot", "show", "--device", "device")
    demo.run("rot", "inspect-cert", "device/idevid-ecc.cert.der")
    cvm = hashlib.sha384(b"confidential VM image 2026.11").hexdigest()
    demo.run(
        "rot", "derive-child", "--device", "device", "--measurement", cvm, "--label", "cvm",
        "--out", "cvm",
    )  # fmt: skip
    demo.run("rot", "inspect-cert", "cvm/cvm-ecc.cert.der")

    demo.step("9. A quote for a verifier's nonce, checked against the vendor CA")
    nonce = demo.nonce = os.urandom(32).hex()
    demo.run("rot", "quote", "--device", "device", "--nonce", nonce, "--out", "quote.cbor")
    demo.run(
        "rot", "verify-quote", "quote.cbor", "--nonce", nonce,
        "--vendor-ca-cert", "ca/vendor-ca-ecc.cert.pem",
        "--vendor-ca-cert", "ca/vendor-ca-mldsa.cert.pem",
    )  # fmt: skip

    demo.step("10. Tampered firmware is refused and the device keeps its state")
    tampered = bytearray((demo.work / "bmc-fw.bin").read_bytes())
    tampered[-100] ^= 0x01
    (demo.work / "bmc-fw-tampered.bin").write_bytes(bytes(tampered))
    demo.run("rot", "boot", "--device", "device", "--bundle", "bmc-fw-tampered.bin", expect=1)


_SFR: dict[str, Any] = {
    "review_framework_version": "1.1",
    "device": {
        "vendor": "Vendor Inc",
        "product": "BMC firmware",
        "category": "bmc",
        "repo_tag": "v1.2.3",
        "fw_version": "1.2.3",
        "fw_hash_sha2_384": "",
        "fw_hash_sha2_512": "",
    },
    "audit": {
        "srp": "Example Labs",
        "methodology": "whitebox",
        "completion_date": "2026-11-01",
        "report_version": "1.0",
        "scope_number": 1,
        "cvss_version": "3.1",
        "issues": [
            {
                "title": "Verbose error leaks a heap address",
                "cvss_score": "3.1",
                "cvss_vector": "AV:N/AC:H/PR:L/UI:N/S:U/C:L/I:N/A:N",
                "cwe": "CWE-209",
                "description": "An error message includes a pointer value.",
                "cve": None,
            }
        ],
    },
}


def _attestation(demo: Demo, url: str) -> None:
    demo.step("11. An OCP SAFE review of that firmware, signed by the lab and logged")
    report = dict(_SFR, device=dict(_SFR["device"], fw_hash_sha2_384=demo.manifest_digest))
    (demo.work / "review.json").write_text(json.dumps(report, indent=2))
    demo.run("key", "generate", "--alg", "ES512", "--out", "lab-sfr")
    demo.run("safe", "sign", "review.json", "--key", "lab-sfr.key", "--kid", "Example Labs",
             "--out", "review.jws")  # fmt: skip
    demo.run(
        "safe", "publish", "review.jws", "--url", url, "--key", "lab.key",
        "--iss", "https://labs.example", "--provider-key", "Example Labs=lab-sfr.pub.pem",
    )  # fmt: skip

    demo.step("12. The verifier trusts only what is logged: reference values, reviews")
    # The vendor's first release names the product and the one issuer allowed to publish its
    # reference values: a CoRIM from anyone else the log accepts (the lab) would not count.
    demo.run("attest", "init", "--data", "verifier", "--release", "published/bmc-fw.corim.ts")
    verifier = demo.work / "verifier"
    for src, folder in (
        ("ca/vendor-ca-ecc.cert.pem", "vendor-ca"),
        ("ca/vendor-ca-mldsa.cert.pem", "vendor-ca"),
        ("service-keys.cbor", "service-keys"),
        ("review.jws.ts", "reviews"),
    ):
        shutil.copy(demo.work / src, verifier / folder)
    (verifier / "review-providers" / "Example_Labs").mkdir()
    shutil.copy(demo.work / "lab-sfr.pub.pem", verifier / "review-providers" / "Example_Labs")
    console.print(
        "# copied: vendor CA certs, service keys, the SFR transparent statement, the lab's SFR"
        " key (init took the CoRIM)",
        style="dim",
    )

    demo.step("13. Appraisal of the device's quote: an EAR, verified offline")
    demo.run(
        "attest", "appraise", "quote.cbor", "--data", "verifier", "--nonce", demo.nonce,
        "--out", "device.ear.jwt",
    )  # fmt: skip
    shown = json.loads(demo.run("key", "show", "verifier/verifier-es384.pem", "--json"))
    (demo.work / "verifier.jwk").write_text(json.dumps({"keys": [shown["jwk"]]}))
    demo.run("attest", "verify-result", "device.ear.jwt", "--keys", "verifier.jwk")

    demo.step(
        "14. Not affirming: signed firmware that was never logged appraises as a warning "
        "(no published reference value matches it), so nothing that needs affirming is granted"
    )
    (demo.work / "runtime-secret.bin").write_bytes(os.urandom(128 * 1024))
    demo.run(
        "firmware", "build", "--fmc", "fmc.bin", "--runtime", "runtime-secret.bin", "--svn", "3",
        "--vendor-ecc-key", "vendor.pub.pem", "--vendor-pqc-key", "vendor-pqc.pub.pem",
        "--pqc-type", "mldsa", "--not-before", "2026-01-01T00:00:00+00:00",
        "--not-after", "2036-01-01T00:00:00+00:00", "--out", "secret.unsigned",
    )  # fmt: skip
    demo.run(
        "firmware", "sign", "secret.unsigned", "--ecc-key", "vendor.key",
        "--pqc-key", "vendor-pqc.key", "--out", "secret.bin",
    )  # fmt: skip
    demo.run(
        "rot", "provision", "--device", "device2",
        "--vendor-ca-key", "ca/vendor-ca-ecc.key.pem",
        "--vendor-ca-cert", "ca/vendor-ca-ecc.cert.pem",
        "--vendor-ca-key", "ca/vendor-ca-mldsa.key.pem",
        "--vendor-ca-cert", "ca/vendor-ca-mldsa.cert.pem", "--vendor-key-hash", demo.key_hash,
    )  # fmt: skip
    demo.run("rot", "boot", "--device", "device2", "--bundle", "secret.bin")
    nonce = os.urandom(32).hex()
    demo.run("rot", "quote", "--device", "device2", "--nonce", nonce, "--out", "quote2.cbor")
    demo.run(
        "attest", "appraise", "quote2.cbor", "--data", "verifier", "--nonce", nonce,
        "--out", "device2.ear.jwt", expect=1,
    )  # fmt: skip


def _key_release(demo: Demo) -> None:
    demo.step("15. Secure key release: an HSM key only for an attested confidential VM")
    console.print(
        "# two confidential VMs (DPE children of RoT hosts) attest; the key's Azure-style"
        " release policy admits one, refuses the other",
        style="dim",
    )
    demo.run("keyrelease", "demo", "--workdir", "keyrelease")


_NODE = "pkg:platform/acme/node-1"
_VENDOR = "https://vendor.example"
_COMPONENTS = ("bmc", "host", "nic", "gpu", "nvme")
_DEVICES = ("nic", "gpu", "nvme")
_VALIDITY = (
    "--not-before",
    "2026-01-01T00:00:00+00:00",
    "--not-after",
    "2036-01-01T00:00:00+00:00",
)


def _build(demo: Demo, component: str, version: str, svn: int, *, show: bool = True) -> str:
    """Build and sign ``<component>-<version>.bin`` with the vendor's two keys."""
    name = f"{component}-{version}"
    (demo.work / f"{name}.runtime").write_bytes(os.urandom(16 * 1024))
    demo.cli(
        "firmware", "build", "--fmc", "fmc.bin", "--runtime", f"{name}.runtime",
        "--svn", str(svn), "--vendor-ecc-key", "vendor.pub.pem",
        "--vendor-pqc-key", "vendor-pqc.pub.pem", "--pqc-type", "mldsa", *_VALIDITY,
        "--out", f"{name}.unsigned", show=show,
    )  # fmt: skip
    demo.cli(
        "firmware", "sign", f"{name}.unsigned", "--ecc-key", "vendor.key",
        "--pqc-key", "vendor-pqc.key", "--out", f"{name}.bin", show=show,
    )  # fmt: skip
    return f"{name}.bin"


def _publish(demo: Demo, url: str, bundle: str, component: str, *, show: bool = True) -> None:
    demo.cli(
        "firmware", "publish", bundle, "--url", url, "--key", "vendor.key", "--iss", _VENDOR,
        "--sub", f"pkg:firmware/acme/{component}", "--out-dir", "published", show=show,
    )  # fmt: skip


def _pfm(demo: Demo, url: str, svn: int, images: Sequence[str]) -> str:
    """Build, sign and publish PFM ``node-<svn>.pfm`` allowing ``images`` (NAME=VER:SVN:FILE)."""
    out = f"node-{svn}.pfm"
    demo.cli(
        "platform", "pfm", "build", "--platform", _NODE, "--svn", str(svn),
        *(arg for image in images for arg in ("--image", image)),
        "--ecc-key", "vendor.key", "--pqc-key", "vendor-pqc.key", "--out", out,
    )  # fmt: skip
    demo.cli(
        "platform", "pfm", "publish", out, "--url", url, "--key", "vendor.key",
        "--iss", _VENDOR, "--sub", _NODE,
    )  # fmt: skip
    return out


def _platform_factory(demo: Demo, url: str) -> None:
    demo.step(
        "16. A DC-SCM node: firmware for its BMC, host, NIC, GPU and NVMe, and the Platform "
        "Firmware Manifest (PFM) that allows it, signed by the vendor and on the log"
    )
    _publish(demo, url, _build(demo, "bmc", "1.0", 1), "bmc")
    for component in _COMPONENTS[1:]:
        _publish(demo, url, _build(demo, component, "1.0", 1, show=False), component, show=False)
    console.print(
        "# the same three commands for host, nic, gpu and nvme 1.0 (output omitted)", style="dim"
    )
    _pfm(demo, url, 1, [f"{c}=1.0:1:{c}-1.0.bin" for c in _COMPONENTS])
    demo.cli(
        "rot", "provision", "--device", "node-rot",
        "--vendor-ca-key", "ca/vendor-ca-ecc.key.pem",
        "--vendor-ca-cert", "ca/vendor-ca-ecc.cert.pem",
        "--vendor-ca-key", "ca/vendor-ca-mldsa.key.pem",
        "--vendor-ca-cert", "ca/vendor-ca-mldsa.cert.pem", "--vendor-key-hash", demo.key_hash,
    )  # fmt: skip
    issuers = "\n".join(f'{c} = ["{_VENDOR}"]' for c in (*_COMPONENTS, "pfm"))
    trust = (
        f'platform = "{_NODE}"\nhealthy_boots = 3\n\n'
        '[vendor]\necc = ["vendor.pub.pem"]\npqc = ["vendor-pqc.pub.pem"]\n\n'
        '[transparency]\nservice_keys = ["service-keys.cbor"]\n\n'
        f"[issuers]\n{issuers}\n"
    )
    (demo.work / "platform.toml").write_text(trust)
    console.print("# platform.toml: what the node trusts for its updates", style="dim")
    console.print(trust.rstrip(), markup=False, style="dim")
    init = [
        "platform", "init", "--node", "node", "--rot-device", "node-rot",
        "--trust", "platform.toml", "--pfm", "node-1.pfm", "--pfm-statement", "node-1.pfm.ts",
    ]  # fmt: skip
    for c in _COMPONENTS:
        init += ["--image", f"{c}={c}-1.0.bin"]
        init += ["--statement", f"{c}=published/{c}-1.0.manifest.ts"]
        if c in _DEVICES:
            init += ["--statement", f"{c}=published/{c}-1.0.corim.ts"]
            init += ["--device", f"{c}={_VENDOR},pkg:firmware/acme/{c}"]
    password = os.urandom(12).hex()
    (demo.work / "admin.pw").write_text(password + "\n")
    (demo.work / "login.json").write_text(json.dumps({"UserName": "admin", "Password": password}))
    init += ["--admin", "admin", "--admin-password-file", "admin.pw"]
    demo.cli(*init)
    console.print(
        "# admin.pw: the first Redfish Administrator's password (login.json has it too)",
        style="dim",
    )
    demo.cli("platform", "boot", "--node", "node")


def _platform_update(demo: Demo, url: str) -> None:
    demo.step(
        "17. BMC 2.0 is signed and a new PFM allowing it is on the log, but the firmware "
        "itself is not: pushed over Redfish, the RoT refuses it (400, failing check: receipt)"
    )
    bmc2 = _build(demo, "bmc", "2.0", 2)
    images = [f"{c}=1.0:1:{c}-1.0.bin" for c in _COMPONENTS] + [f"bmc=2.0:2:{bmc2}"]
    _pfm(demo, url, 2, images)
    port = _free_port()
    demo.start_redfish("node", port)
    redfish = _Redfish(f"http://127.0.0.1:{port}", demo.work)
    try:
        redfish.login(demo.work / "login.json")
        push = redfish.get("/redfish/v1/UpdateService")["MultipartHttpPushUri"]
        console.print(f'"MultipartHttpPushUri": "{push}"', markup=False)
        target = "/redfish/v1/UpdateService/FirmwareInventory/bmc-active"
        pfm = [("OemIronrootPfm", "node-2.pfm"), ("OemIronrootPfmStatement", "node-2.pfm.ts")]
        error = redfish.push(push, target, [("UpdateFile", bmc2), *pfm], expect=400)["error"]
        info = error["@Message.ExtendedInfo"][0]
        check = {k: info["Oem"]["Ironroot"][k] for k in ("Check", "Code")}
        shown = {
            "code": error["code"],
            "message": error["message"],
            "@Message.ExtendedInfo": [{"MessageId": info["MessageId"], "Oem": {"Ironroot": check}}],
        }
        console.print("# the Redfish error body, abridged:", style="dim")
        console.print(json.dumps({"error": shown}, indent=2), markup=False)

        demo.step(
            "18. The vendor publishes BMC 2.0; a power loss while the RoT writes the inactive "
            "slot (a fault drill) ends, at the next boot, on the old firmware"
        )
        _publish(demo, url, bmc2, "bmc")
        manifest = "published/bmc-2.0.manifest.ts"
        demo.cli(
            "platform", "update", bmc2, "--component", "bmc", "--statement", manifest,
            "--pfm", "node-2.pfm", "--pfm-statement", "node-2.pfm.ts", "--node", "node",
            "--inject", "write", expect=1,
        )  # fmt: skip
        demo.cli("platform", "boot", "--node", "node")
        demo.cli("platform", "journal", "--node", "node", tail=4)

        demo.step(
            "19. Over Redfish with its receipt: a task verifies, writes, activates, reboots "
            "through the RoT and commits BMC 2.0"
        )
        parts = [("UpdateFile", bmc2), ("OemIronrootStatement", manifest), *pfm]
        task = redfish.push(push, target, parts, expect=202)
        redfish.wait(task["TaskMonitor"])
        task = redfish.get(task["@odata.id"])
        console.print(
            f"TaskState {task['TaskState']}, TaskStatus {task['TaskStatus']}, "
            f"PercentComplete {task['PercentComplete']}",
            markup=False,
        )
        for m in task["Messages"]:
            console.print(f"  {m['MessageId'].rsplit('.', 1)[-1]}: {m['Message']}", markup=False)
        active = redfish.get(target)
        oem = active["Oem"]["Ironroot"]
        console.print(
            f"Version {active['Version']}, SVN {oem['SVN']}, SHA384 {oem['SHA384'][:32]}…, "
            f"Updateable {active['Updateable']}",
            markup=False,
        )
    finally:
        redfish.close()
        demo.stop_redfish()


def _platform_recovery(demo: Demo) -> None:
    demo.step(
        "20. Flash: the BMC may not write the host's firmware; a corrupted region is detected "
        "at boot and restored from recovery"
    )
    (demo.work / "junk.bin").write_bytes(b"\xff" * 64)
    demo.cli(
        "platform", "flash-write", "--node", "node", "--chip", "host", "--offset", "0x1100",
        "--data-file", "junk.bin", expect=1,
    )  # fmt: skip
    with (demo.work / "node" / "flash" / "host.bin").open("r+b") as chip:
        chip.seek(0x1100)
        chip.write(b"\xff" * 64)
    console.print(
        "# a bad chip (or someone with a programmer) changes 64 bytes of the host's active slot"
        " in node/flash/host.bin at 0x1100",
        style="dim",
    )
    demo.cli("platform", "boot", "--node", "node")
    demo.cli("platform", "events", "--node", "node", tail=6)


def _audit(demo: Demo, url: str) -> None:
    demo.step("21. The log: checkpoint, and a full recomputation by an auditor")
    import httpx

    console.print(f"[dim]$[/dim] [bold]curl -s {url}/checkpoint[/bold]")
    console.print(httpx.get(url + "/checkpoint").text.rstrip(), markup=False)
    demo.run("log", "verify", url)
    demo.stop_server()
    demo.run("log", "verify", "tsdata")


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m ironroot.demo",
        description="Walk the whole path of trust with the real commands, in a temporary "
        "directory: transparency service, firmware, root of trust, SAFE review, attestation, "
        "key release, a platform's firmware updates and recovery, and the auditor's check "
        "(what `make demo` runs).",
    )
    parser.add_argument("--keep", action="store_true", help="keep the demo's directory")
    keep = parser.parse_args(argv if argv is not None else sys.argv[1:]).keep
    work = Path(tempfile.mkdtemp(prefix="ironroot-demo-"))
    demo = Demo(work)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    console.print(f"[bold]Ironroot demo[/bold] in {work}")
    try:
        _transparency(demo, url, port)
        _firmware_and_boot(demo, url)
        _attestation(demo, url)
        _key_release(demo)
        _platform_factory(demo, url)
        _platform_update(demo, url)
        _platform_recovery(demo)
        _audit(demo, url)
    except DemoFailed as exc:
        console.print(f"[bold red]demo failed:[/bold red] {exc}")
        return 1
    finally:
        demo.stop_redfish()
        demo.stop_server()
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    console.print("\n[bold green]demo complete[/bold green]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
