"""Anti-rollback across a real crash: a child process increments a counter or boots ever newer
firmware in a loop, reporting each value once the call returned; it is killed with SIGKILL at
an arbitrary moment. The reopened device must open, and never hold less than a value a
returned call reported (a counter or the SVN fuse never goes backwards)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from _rot_helpers import NOW, Product, snapshot

from ironroot.crypto import Algorithm
from ironroot.errors import Conflict, FuseError, SvnRollback
from ironroot.rot import Device, Lifecycle, VendorCA

_SRC = str(Path(__file__).resolve().parents[2] / "src")
_HELPERS = str(Path(__file__).resolve().parent)

_COUNTER = """
import sys
from ironroot.rot import Device
counter = Device(sys.argv[1]).counter("hsm")
while True:
    print(counter.increment(), flush=True)
"""

_BOOTS = """
import datetime as dt, sys
from ironroot.rot import Device
device = Device(sys.argv[1])
bundles = [open(p, "rb").read() for p in sys.argv[2:]]
now = dt.datetime.fromisoformat("{now}")
for bundle in bundles:
    print(device.boot(bundle, now=now).svn, flush=True)
while True:  # the newest again and again: every boot rewrites the NV state
    print(device.boot(bundles[-1], now=now).svn, flush=True)
"""


def _run_and_kill(code: str, args: list[str], reports: int) -> list[int]:
    """Run ``code``, SIGKILL it after ``reports`` lines, return every value it reported."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([_SRC, _HELPERS])}
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        env=env,
    )
    assert child.stdout is not None
    values = []
    try:
        while len(values) < reports:
            line = child.stdout.readline()
            assert line, "the child stopped before it was killed"
            values.append(int(line))
        child.send_signal(signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
    values.extend(int(line) for line in child.stdout.read().split())
    child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    return values


@pytest.mark.parametrize("reports", [3, 17])
def test_a_counter_killed_mid_increment_never_goes_back(device: Device, reports: int) -> None:
    values = _run_and_kill(_COUNTER, [str(device.directory)], reports)
    assert values == list(range(1, len(values) + 1))
    after = Device(device.directory).counter("hsm")
    # the increment in flight when the kill came is either lost or kept, never more
    assert after.value() in (values[-1], values[-1] + 1)
    assert after.increment() == after.value()


def test_the_svn_fuse_killed_mid_boot_never_goes_back(
    device: Device, product: Product, tmp_path: Path
) -> None:
    paths = []
    for svn in (3, 4, 5, 6):
        path = tmp_path / f"svn{svn}.bin"
        path.write_bytes(product.bundle(svn=svn))
        paths.append(str(path))
    values = _run_and_kill(_BOOTS.format(now=NOW.isoformat()), [str(device.directory), *paths], 9)
    assert values[:4] == [3, 4, 5, 6]
    reopened = Device(device.directory)
    assert reopened.fuses.svn == 6
    with pytest.raises(SvnRollback):
        reopened.boot(product.bundle(svn=5), now=NOW)
    assert reopened.boot(product.bundle(svn=6), now=NOW).svn == 6


_PROVISION_KILLED = """
import datetime as dt, os, signal, sys
from ironroot.rot import Device, VendorCA

class KilledWhileIssuing:
    '''The vendor CA is reached once the UDS is fused: the power goes there.'''
    def issue_idevid(self, csr, *, now):
        os.kill(os.getpid(), signal.SIGKILL)

now = dt.datetime.fromisoformat("{now}")
Device.create(sys.argv[1]).provision(
    KilledWhileIssuing(), vendor_key_hash=bytes.fromhex(sys.argv[2]), now=now
)
"""


def test_a_provisioning_killed_after_the_uds_is_fused_is_finished_by_the_next(
    tmp_path: Path, product: Product, vendor_ca: VendorCA
) -> None:
    """SIGKILL between the two fuse writes of provisioning (the UDS fused, lifecycle
    manufacturing; no IDevID certificate, no vendor key hash). Before, every later
    ``provision`` refused with Conflict ("already provisioned") and nothing else issues IDevID
    certificates: the device could never get its identity. Now the next call finishes it,
    keeping the UDS the first one fused."""
    directory = tmp_path / "device"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([_SRC, _HELPERS])}
    code = textwrap.dedent(_PROVISION_KILLED.format(now=NOW.isoformat()))
    done = subprocess.run(
        [sys.executable, "-c", code, str(directory), product.descriptor_hash.hex()],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    device = Device(directory)
    assert device.fuses.uds_programmed
    assert device.fuses.lifecycle is Lifecycle.MANUFACTURING
    assert not (directory / "idevid-ecc.cert.der").exists()
    uds_fused = device.fuses.uds_seed
    result = device.provision(vendor_ca, vendor_key_hash=product.descriptor_hash, now=NOW)
    fuses = Device(directory).fuses
    assert fuses.uds_seed == uds_fused
    assert fuses.lifecycle is Lifecycle.PRODUCTION
    assert fuses.vendor_key_hash == product.descriptor_hash
    assert (directory / "idevid-ecc.cert.der").read_bytes() == result.certificates[Algorithm.ES384]
    assert Device(directory).boot(product.bundle(), now=NOW).svn == 3
    with pytest.raises(Conflict):
        device.provision(vendor_ca, vendor_key_hash=product.descriptor_hash, now=NOW)


@pytest.mark.parametrize(
    ("vendor_key_hash", "owner_key_hash"),
    [(bytes(48), None), (b"\x01" * 47, None), (None, b"\x01" * 3)],
    ids=["zero-vendor-hash", "short-vendor-hash", "short-owner-hash"],
)
def test_a_refused_provisioning_argument_fuses_nothing(
    tmp_path: Path,
    product: Product,
    vendor_ca: VendorCA,
    vendor_key_hash: bytes | None,
    owner_key_hash: bytes | None,
) -> None:
    """A key hash the fuses refuse was found only after the UDS was fused and the IDevID
    certificates written: FuseError, and a device stuck in manufacturing that ``provision``
    refused for ever. Now it is refused before the first fuse write."""
    device = Device.create(tmp_path / "device")
    before = snapshot(device.directory)
    with pytest.raises(FuseError) as info:
        device.provision(
            vendor_ca,
            vendor_key_hash=vendor_key_hash or product.descriptor_hash,
            owner_key_hash=owner_key_hash,
            now=NOW,
        )
    assert info.type is FuseError
    assert snapshot(device.directory) == before
    assert device.fuses.lifecycle is Lifecycle.UNPROVISIONED
    device.provision(vendor_ca, vendor_key_hash=product.descriptor_hash, now=NOW)
    assert device.fuses.lifecycle is Lifecycle.PRODUCTION
