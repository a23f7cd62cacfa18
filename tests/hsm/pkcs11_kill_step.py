"""The process ``test_hsm_pkcs11_kill`` kills: a service's ``ServiceKeys`` on the PKCS#11
token of ``SOFTHSM2_CONF``, with its data directory ``argv[1]`` and the SoftHSM2 library
``argv[2]``, running the step ``argv[3]``: ``open`` (open and close), ``create`` (make the
receipt key if it has none) or ``list`` (print, as JSON, the ``CKA_ID`` of every object on the
token and the handles the data directory records)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pkcs11

from ironroot.crypto import Algorithm
from ironroot.hsm import ServiceKeys, ServiceKeysConfig

LABEL, PIN = "ironroot-kill", "1234"
PURPOSE = "receipt-ES384"


def main() -> None:
    data, library, step = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    if step == "list":
        token = pkcs11.lib(library).get_token(token_label=LABEL)
        with token.open(user_pin=PIN) as session:
            ids = sorted(
                f"{obj.object_class.name}:{obj[pkcs11.Attribute.ID].hex()}"
                for obj in session.get_objects()
            )
        recorded = data / "keys" / "handles.json"
        handles = json.loads(recorded.read_text()) if recorded.exists() else {}
        print(json.dumps({"objects": ids, "handles": handles}))
        return
    table = {
        "backend": "pkcs11",
        "pkcs11_library": library,
        "pkcs11_token": LABEL,
        "pkcs11_pin_file": "token.pin",
    }
    with ServiceKeys(ServiceKeysConfig.parse(table, data)) as keys:
        if step == "create":
            keys.signer(PURPOSE, Algorithm.ES384, create=True)
        elif step != "open":
            raise SystemExit(f"no step {step}")


if __name__ == "__main__":
    main()
