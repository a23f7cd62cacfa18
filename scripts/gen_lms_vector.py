"""Generate ``tests/crypto/data/lms-sha256-n24-h15-w4.json``: an HSS/LMS known-good vector.

The Caliptra vendor parameter set (LMS_SHA256_M24_H15 with LMOTS_SHA256_N24_W4, SP 800-208)
takes about 40 s of key generation in ``pyhsslms`` (2^15 one-time keys), too long to repeat in
every test run. This script does it once, through the product's own
:meth:`ironroot.crypto.LmsPrivateKey.generate` and ``sign``, and writes the public key, two
messages and their signatures (leaves 0 and 1). ``tests/crypto/test_crypto_lms.py`` verifies
them with the product's verifier and, independently, with ``pyhsslms``'s own, so the parameter
table, the signature walk and the key encoding of that set stay checked without the key
generation. The private key is thrown away: the vector needs none.

A fresh run draws a fresh key (the product generates keys from ``secrets`` only), so the
file changes every time: regenerate it only when the encoding changes, and review the diff.

    python scripts/gen_lms_vector.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from ironroot.crypto import LmsPrivateKey  # noqa: E402

PARAMETER_SET = "SHA256-N24-H15-W4"
OUT = ROOT / "tests" / "crypto" / "data" / "lms-sha256-n24-h15-w4.json"
MESSAGES = (b"one", b"two")


def main() -> int:
    with tempfile.TemporaryDirectory() as work:
        signer = LmsPrivateKey.generate(Path(work) / "h15.key", PARAMETER_SET)
        signatures = [signer.sign(message) for message in MESSAGES]
        public = signer.public_key.raw_bytes()
    vector = {
        "about": "HSS/LMS (RFC 8554, one level) with the SP 800-208 set "
        f"{PARAMETER_SET}; written by scripts/gen_lms_vector.py",
        "parameter_set": PARAMETER_SET,
        "public_key": public.hex(),
        "signatures": [
            {"message": message.hex(), "leaf": leaf, "signature": signature.hex()}
            for leaf, (message, signature) in enumerate(zip(MESSAGES, signatures, strict=True))
        ],
    }
    OUT.write_text(json.dumps(vector, indent=1) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
