"""The process ``test_hsm_release_kill`` kills: a key release on the HSM in ``argv[1]`` (its
counter on the RoT device ``argv[2]``), the files it reads and writes in ``argv[1]``'s parent
folder: the verifier's key (``verifier.pem``) and the TEE's wrapping key (``tee.spki``) in,
the request (``request.json``: the nonce and the EAR, written before the release) and the
HSM's release statement (``released``, written once the release returned: the key handed
out) out. ``ready`` runs only what comes before the release itself: the power-up, the
user's login, the challenge and the EAR."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # run as a script: its helpers beside it
from hsm_kill_step import CONFIG, SECRET, USER, USER_PASS

from ironroot.crypto import PrivateKey
from ironroot.ear import Appraisal, AttestationResult, TrustTier, VerifierId, sign_ear_jwt
from ironroot.hsm import DirectoryStorage, Hsm, WrappingKey, bind_report_data

POLICY = 'status == "affirming"'
LABEL = "released"


def ear(verifier: PrivateKey, nonce: bytes, tee: WrappingKey, now: dt.datetime) -> bytes:
    """An affirming EAR binding ``nonce`` and ``tee``, signed by ``verifier``."""
    report_data = bind_report_data(nonce, tee)
    appraisal = Appraisal(
        TrustTier.AFFIRMING,
        {"instance-identity": 2, "configuration": 2},
        policy_id="test",
        evidence={"report_data": report_data.hex()},
    )
    iat = int(now.timestamp())
    result = AttestationResult(
        iat=iat,
        exp=iat + 600,
        verifier_id=VerifierId("Ironroot", "test"),
        submods={"rot": appraisal},
        nonce=report_data,
    )
    return sign_ear_jwt(result, verifier)


def main() -> None:
    directory = Path(sys.argv[1])
    files = directory.parent
    with DirectoryStorage.on_device(directory, sys.argv[2]) as storage:
        hsm = Hsm.open(storage, SECRET, config=CONFIG)
        try:
            user = hsm.login(USER, USER_PASS)
            (handle,) = [k.handle for k in hsm.keys(user) if k.attributes.label == LABEL]
            spki = (files / "tee.spki").read_bytes()
            nonce, _ = hsm.release_challenge(user)
            verifier = PrivateKey.from_pem((files / "verifier.pem").read_bytes())
            token = ear(verifier, nonce, WrappingKey.parse(spki), dt.datetime.now(dt.UTC))
            if sys.argv[3] == "ready":
                return
            request = {"nonce": nonce.hex(), "ear": token.decode()}
            (files / "request.json").write_text(json.dumps(request))
            released = hsm.release(user, handle, ear=token, nonce=nonce, recipient=spki)
            (files / "released").write_bytes(released.statement)
        finally:
            hsm.close()


if __name__ == "__main__":
    main()
