"""The process ``test_hsm_audit_crash`` kills: it opens the HSM in ``argv[1]`` (its counter on
the RoT device ``argv[2]``), signs until killed with a segment of ``argv[3]`` records, and
prints ``D <size> <head hex>`` after each record is durable and anchored."""

from __future__ import annotations

import sys

from ironroot.hsm import DirectoryStorage, Hsm, HsmConfig, KeyType

CONFIG = HsmConfig(scrypt_n=2**10, audit_group_commit=1, audit_segment_records=int(sys.argv[3]))


def main() -> None:
    storage = DirectoryStorage.on_device(sys.argv[1], sys.argv[2])
    hsm = Hsm.open(storage, bytes(range(48)), config=CONFIG)
    handle = hsm.generate(hsm.login("officer", b"officer-credential"), KeyType.ED25519)
    user = hsm.login("service", b"user-credential")
    while True:
        hsm.sign(user, handle, b"m")  # group commit 1: durable and anchored on return
        print("D", hsm._audit_size, hsm._audit_head.hex(), flush=True)


if __name__ == "__main__":
    main()
