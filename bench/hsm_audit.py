"""What a durable, anchored audit record costs on disk, against a bare fsync'd append.

Run: ``make bench`` (or ``.venv/bin/python bench/hsm_audit.py [--seconds S] [--rounds R]``).

Setup (not timed): a provisioned root-of-trust device and a built-in HSM in a directory on
this machine's disk (``DirectoryStorage`` bound to the device's ``hsm`` counter), a crypto-user
session and an EC P-256 key. Timed, in interleaved rounds (median reported):

* **refusal**: ``Hsm.encrypt`` with a signing key, refused ``KeyUsageNotPermitted``: a
  security event, so its record is appended and fsynced, the anchor (sealed head) written
  atomically, and the RoT counter incremented before the call returns;
* **counter**: one RoT ``DeviceCounter.increment()`` alone (MAC'd state file, fsynced);
* **use**: ``Hsm.sign``, whose record waits for a group commit (256) like every key use;
* **fsync append**: one 200-byte line appended to a file in the same directory and fsynced:
  the least any durable record costs.

It prints operations/s and each rate as a ratio of the fsync-append rate.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from hsm import device_identity  # bench/hsm.py: the same self-signed device
from ironroot.errors import KeyUsageNotPermitted
from ironroot.hsm import DirectoryStorage, Hsm, HsmConfig, KeyType, Role
from ironroot.rot import Device, VendorCA


def rate(call: Callable[[], object], seconds: float) -> float:
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        call()
        count += 1
    return count / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="per path per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    now = dt.datetime.now(dt.UTC)
    # on disk, not tmpfs: the point is what fsync costs here
    with tempfile.TemporaryDirectory(dir=Path.cwd(), prefix=".bench-hsm-audit-") as work:
        root = Path(work)
        rot = Device.create(root / "rot")
        rot.provision(
            VendorCA.generate(now=now - dt.timedelta(days=2)),
            vendor_key_hash=bytes(range(48)),
            now=now - dt.timedelta(days=1),
        )
        storage = DirectoryStorage(root / "hsm", counter=rot.counter("hsm"))
        hsm = Hsm.initialize(
            storage,
            bytes(48),
            officer="officer",
            credential=b"officer-credential",
            device=device_identity(),
            config=HsmConfig(scrypt_n=2**10),
        )
        officer = hsm.login("officer", b"officer-credential")
        hsm.add_identity(officer, "service", Role.USER, b"service-credential")
        handle = hsm.generate(officer, KeyType.EC_P256)
        user = hsm.login("service", b"service-credential")
        other = rot.counter("bench")
        line = b"x" * 199 + b"\n"
        fd = os.open(root / "append.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

        def refusal() -> None:
            try:
                hsm.encrypt(user, handle, b"m")
            except KeyUsageNotPermitted:
                return
            raise SystemExit("the refusal was not refused")

        def append() -> None:
            os.write(fd, line)
            os.fsync(fd)

        paths: dict[str, Callable[[], object]] = {
            "refusal": refusal,
            "counter": other.increment,
            "use": lambda: hsm.sign(user, handle, b"m"),
            "fsync append": append,
        }
        rates: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(args.rounds):
            for name, call in paths.items():
                rates[name].append(rate(call, args.seconds))
        os.close(fd)
        hsm.close()
        storage.close()
    median = {name: statistics.median(values) for name, values in rates.items()}
    base = median["fsync append"]
    print(f"HSM audit durability on disk, median of {args.rounds} rounds of {args.seconds} s:")
    for name, value in median.items():
        print(
            f"  {name:<13} {value:>9,.0f}/s  {1000 / value:7.3f} ms  {value / base:6.2f} of fsync"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
