"""The process ``test_hsm_refusal_kill`` kills: refused releases (made-up nonces) sent together
from ``THREADS`` threads to the HSM in ``argv[1]`` (its counter on the RoT device ``argv[2]``),
so that they are group-committed. Each thread, once a refusal is answered (``release`` raised),
appends the refusal's number to ``answered`` in ``argv[1]``'s parent folder."""

from __future__ import annotations

import secrets
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # run as a script: its helpers beside it
from hsm_kill_step import CONFIG, SECRET, USER, USER_PASS
from hsm_release_kill_step import LABEL

from ironroot.errors import StaleNonce
from ironroot.hsm import DirectoryStorage, Hsm

THREADS = 6
EACH = 3


def ear(number: int) -> bytes:
    """The (made-up) EAR of refusal ``number``: its record binds this EAR's digest."""
    return f"not an EAR {number}".encode()


def main() -> None:
    directory = Path(sys.argv[1])
    answered = directory.parent / "answered"
    lock = threading.Lock()
    with DirectoryStorage.on_device(directory, sys.argv[2]) as storage:
        hsm = Hsm.open(storage, SECRET, config=CONFIG)
        user = hsm.login(USER, USER_PASS)
        (handle,) = [k.handle for k in hsm.keys(user) if k.attributes.label == LABEL]
        spki = (directory.parent / "tee.spki").read_bytes()

        def refused(first: int) -> None:
            for number in range(first, first + EACH):
                try:
                    hsm.release(
                        user, handle, ear=ear(number), nonce=secrets.token_bytes(32), recipient=spki
                    )
                except StaleNonce:
                    with lock, answered.open("a") as out:
                        out.write(f"{number}\n")

        threads = [threading.Thread(target=refused, args=(i * EACH,)) for i in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        hsm.close()


if __name__ == "__main__":
    main()
