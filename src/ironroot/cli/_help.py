"""Help for every verb: an example each, a line for every option, defaults shown.

:func:`apply_help` runs over the whole parser once the groups are registered: a verb without an
epilog gets its example from :data:`EXAMPLES`, an argument without help gets the phrase
:data:`ARGUMENT_HELP` has for its name (the same argument means the same thing in every group),
and every parser shows an option's default when it has one. ``tests/test_cli_help.py`` checks
that nothing is left without either.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Final

__all__ = ["ARGUMENT_HELP", "EXAMPLES", "HelpFormatter", "apply_help"]

_HSM: Final = "$HSM"  # --dir, --rot-device, --sealing-secret-file, --identity, --credential-file

EXAMPLES: Final[dict[str, str]] = {
    "key generate": "ironroot key generate --alg ES384 --out vendor",
    "key show": "ironroot key show vendor.pub.pem --json",
    "statement sign": "ironroot statement sign release.json --key vendor.key "
    "--iss https://vendor.example --sub pkg:firmware/bmc@1.2.3 --out release.cose",
    "statement register": "ironroot statement register release.cose --url http://127.0.0.1:8000",
    "statement verify": "ironroot statement verify release.cose.ts --service-keys "
    "http://127.0.0.1:8000 --issuer-key vendor.pub.pem",
    "log verify": "ironroot log verify tsdata   (or: ironroot log verify https://ts.example)",
    "firmware build": "ironroot firmware build --fmc fmc.bin --runtime rt.bin --svn 3 "
    "--vendor-ecc-key ecc.pub.pem --vendor-pqc-key mldsa.pub.pem "
    "--not-before 2026-01-01T00:00:00Z --not-after 2027-01-01T00:00:00Z --out unsigned.bin",
    "firmware sign": "ironroot firmware sign unsigned.bin --ecc-key ecc.key --pqc-key mldsa.key "
    "--out bundle.bin",
    "firmware verify": "ironroot firmware verify bundle.bin --vendor-key-hash HEX --min-svn 3",
    "firmware inspect": "ironroot firmware inspect bundle.bin --json",
    "firmware key-descriptor": "ironroot firmware key-descriptor --ecc ecc.pub.pem "
    "--pqc mldsa.pub.pem",
    "firmware publish": "ironroot firmware publish bundle.bin --url http://127.0.0.1:8000 "
    "--key vendor.key --iss https://vendor.example --sub pkg:firmware/bmc "
    "--vendor-key-hash HEX --out-dir published",
    "firmware leaves": "ironroot firmware leaves published/*.manifest.ts --json",
    "rot inspect-cert": "ironroot rot inspect-cert rt-alias.cert.der --json",
    "rot ca-init": "ironroot rot ca-init --out vendor-ca",
    "rot provision": "ironroot rot provision --device dev --vendor-ca-key vendor-ca/ca.key "
    "--vendor-ca-cert vendor-ca/ca.pem --vendor-key-hash HEX",
    "rot boot": "ironroot rot boot --device dev --bundle bundle.bin",
    "rot quote": "ironroot rot quote --device dev --nonce HEX --out quote.cbor",
    "rot verify-quote": "ironroot rot verify-quote quote.cbor --nonce HEX "
    "--vendor-ca-cert vendor-ca/ca.pem",
    "rot sealing-secret": "ironroot rot sealing-secret --device dev --label hsm "
    "--out sealing.secret",
    "rot derive-child": "ironroot rot derive-child --device dev --measurement HEX --label cvm "
    "--out cvm",
    "rot show": "ironroot rot show --device dev --json",
    "rot fuse": "ironroot rot fuse --device dev revoke-ecc 1 --key-count 2",
    "rot counter show": "ironroot rot counter show --device dev hsm",
    "rot counter increment": "ironroot rot counter increment --device dev hsm",
    "spdm device-init": "ironroot spdm device-init spdm-dev --algorithm p384",
    "spdm responder": "ironroot spdm responder --device spdm-dev --listen 127.0.0.1:2323",
    "spdm requester": "ironroot spdm requester --connect 127.0.0.1:2323 --root spdm-dev/root.pem "
    "--out measurements.json",
    "safe sign": "ironroot safe sign report.json --key lab.key --kid lab-2026 --out report.jws",
    "safe verify": "ironroot safe verify report.jws --provider-key lab.pub.pem",
    "safe publish": "ironroot safe publish report.jws --url http://127.0.0.1:8000 --key lab.key "
    "--iss https://lab.example",
    "safe query": "ironroot safe query --hash HEX --dir reviews --provider-key lab.pub.pem",
    "evidence verify": "ironroot evidence verify quote.cbor --nonce HEX --cert vendor-ca.pem",
    "evidence inspect": "ironroot evidence inspect snp-report.bin --json",
    "evidence formats": "ironroot evidence formats",
    "attest init": "ironroot attest init --data verifier --release bmc-fw.corim.ts",
    "attest appraise": "ironroot attest appraise quote.cbor --data verifier --nonce HEX "
    "--out ear.jwt",
    "attest verify-result": "ironroot attest verify-result ear.jwt --keys "
    "http://127.0.0.1:8100/attestation/keys",
    "hsm init": "ironroot hsm init --dir hsm --rot-device rot --sealing-secret-file "
    "sealing.secret --officer alice --credential-file alice.cred --device-key device.key "
    "--device-chain device-chain.pem",
    "hsm info": "ironroot hsm info --dir hsm --rot-device rot --sealing-secret-file "
    "sealing.secret --key-out attestation.pem",
    "hsm identity add": f"ironroot hsm identity add svc --role user --new-credential-file "
    f"svc.cred {_HSM}",
    "hsm identity lock": f"ironroot hsm identity lock svc {_HSM}",
    "hsm identity unlock": f"ironroot hsm identity unlock svc {_HSM}",
    "hsm identity list": f"ironroot hsm identity list {_HSM} --json",
    "hsm quorum": f"ironroot hsm quorum 2 {_HSM} --approver officer2=officer2.cred",
    "hsm key generate": f"ironroot hsm key generate --type EC-P384 --usage sign --usage verify "
    f"--label receipts {_HSM}",
    "hsm key list": f"ironroot hsm key list {_HSM}",
    "hsm key show": f"ironroot hsm key show HANDLE {_HSM}",
    "hsm key delete": f"ironroot hsm key delete HANDLE {_HSM}",
    "hsm key users": f"ironroot hsm key users HANDLE --user ts --user ts2 {_HSM}",
    "hsm verifier add": f"ironroot hsm verifier add https://verifier.example verifier.pub.pem "
    f"{_HSM}",
    "hsm verifier remove": f"ironroot hsm verifier remove https://verifier.example {_HSM}",
    "hsm verifier list": f"ironroot hsm verifier list {_HSM}",
    "hsm recipient add": f"ironroot hsm recipient add escrow escrow-mlkem.pub.pem {_HSM}",
    "hsm recipient remove": f"ironroot hsm recipient remove escrow {_HSM}",
    "hsm recipient list": f"ironroot hsm recipient list {_HSM}",
    "hsm sign": f"ironroot hsm sign HANDLE --in data.bin --out data.sig {_HSM}",
    "hsm verify": f"ironroot hsm verify HANDLE --in data.bin --signature data.sig {_HSM}",
    "hsm encrypt": f"ironroot hsm encrypt HANDLE --in secret.txt --out secret.enc {_HSM}",
    "hsm decrypt": f"ironroot hsm decrypt HANDLE --in secret.enc --out secret.txt {_HSM}",
    "hsm wrap": f"ironroot hsm wrap HANDLE --recipient tee.pub.pem --out key.wrapped {_HSM}",
    "hsm unwrap": f"ironroot hsm unwrap --unwrapping-key HANDLE --in key.wrapped {_HSM}",
    "hsm derive": f"ironroot hsm derive HANDLE --info session-2026 {_HSM}",
    "hsm attest": f"ironroot hsm attest HANDLE --nonce-hex HEX --out key.attestation {_HSM}",
    "hsm self-test": f"ironroot hsm self-test {_HSM}",
    "hsm audit show": f"ironroot hsm audit show {_HSM} --json",
    "hsm audit verify": "ironroot hsm audit verify --dir hsm --sealing-secret-file "
    "sealing.secret --rot-device rot",
    "hsm audit prune": f"ironroot hsm audit prune --before 200002 {_HSM}",
    "hsm audit checkpoint": f"ironroot hsm audit checkpoint --out audit.cp --register "
    f"http://127.0.0.1:8000 {_HSM}",
    "hsm tamper": "ironroot hsm tamper --dir hsm --rot-device rot --sealing-secret-file "
    "sealing.secret --yes",
    "keyrelease policy check": "ironroot keyrelease policy check db-key.policy.json",
    "keyrelease tee-key": "ironroot keyrelease tee-key --out tee.key",
    "keyrelease challenge": "ironroot keyrelease challenge --url http://127.0.0.1:8200",
    "keyrelease report-data": "ironroot keyrelease report-data --tee-key tee.key --nonce HEX",
    "keyrelease request": "ironroot keyrelease request --url http://127.0.0.1:8200 --key db-key "
    "--ear ear.jwt --tee-key tee.key --nonce HEX --out released.cbor",
    "keyrelease unwrap": "ironroot keyrelease unwrap released.cbor --tee-key tee.key "
    "--nonce HEX --hsm-root hsm-vendor-root.pem --key db-key --out db-key.bin",
    "keyrelease verifier remove": "ironroot keyrelease verifier remove https://verifier.example "
    "--url https://127.0.0.1:8200 --ca ca.pem --identity officer --credential-file officer.cred",
    "keyrelease audit prune": "ironroot keyrelease audit prune --before 200000 "
    "--url https://127.0.0.1:8200 --ca ca.pem --identity officer --credential-file officer.cred",
    "keyrelease demo": "ironroot keyrelease demo --workdir /tmp/keyrelease-demo",
}
"""``group verb`` → one example command line."""

ARGUMENT_HELP: Final[dict[str, str]] = {
    "json": "print one JSON object on stdout, even on failure",
    "device": "the root-of-trust device directory",
    "handle": "the key's handle in the HSM",
    "name": "the name (of the identity, verifier or counter)",
    "input": "the input file",
    "out": "where to write the output",
    "out_dir": "the directory to write the outputs into",
    "dir": "the directory",
    "data": "the service's data directory",
    "bundle": "the firmware bundle",
    "unsigned": "the unsigned firmware bundle (from firmware build)",
    "statement": "the Signed or Transparent Statement (COSE)",
    "report": "the OCP SAFE Short Form Report",
    "file": "the input file",
    "policy": "the release policy file (CEL or Azure JSON)",
    "released": "the released key (from keyrelease request)",
    "tee_key": "the TEE's wrapping key pair (from keyrelease tee-key)",
    "nonce": "the nonce, hex",
    "workdir": "the working directory for the demo's files",
    "type": "the key type",
    "role": "the identity's role",
    "format": "the output format",
    "transport": "the spdm-emu socket transport",
    "algorithm": "the device key's algorithm",
    "measurement_hash": "how measurement blocks are sent: raw or hashed",
    "vendor_ca_cert": "the vendor CA certificate (PEM) the quote must chain to",
    "min_svn": "the lowest security version number accepted",
    "anti_rollback_disabled": "verify as a device whose anti-rollback fuse is blown",
    "ecc": "vendor ECDSA P-384 public key files",
    "pqc": "vendor ML-DSA-87 or LMS public key files",
    "pqc_type": "the post-quantum algorithm: mldsa or lms",
    "fmc_version": "the FMC version number",
    "runtime_version": "the runtime version number",
    "vendor_ecc_key": "vendor ECDSA P-384 public key files (PEM)",
    "vendor_pqc_key": "vendor ML-DSA-87 or LMS public key files",
    "signature": "the signature file",
    "unwrapping_key": "the handle of the HSM key that unwraps",
    "write": "the fuse write",
}
"""An argument's help by its destination name, for arguments that did not declare one."""


class HelpFormatter(argparse.HelpFormatter):
    """Shows an option's default (when it has one worth showing) after its help."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" in text
            or "default" in text
            or default in (None, False, argparse.SUPPRESS, [], ())
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)"


def _parsers(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield "", parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in dict.fromkeys(action.choices.items()):
                for path, node in _parsers(child):
                    yield f"{name} {path}".strip(), node


def apply_help(parser: argparse.ArgumentParser) -> None:
    """Examples, argument help and default display for every parser under ``parser``."""
    for path, node in _parsers(parser):
        node.formatter_class = HelpFormatter
        if node.get_default("func") is not None and not node.epilog and path in EXAMPLES:
            example = EXAMPLES[path]
            node.epilog = f"example: {example}"
            if _HSM in example:
                node.epilog += (
                    f" ({_HSM}: --dir hsm --rot-device rot --sealing-secret-file "
                    "sealing.secret --identity alice --credential-file alice.cred)"
                )
        for action in node._actions:
            if not action.help and action.dest in ARGUMENT_HELP:
                action.help = ARGUMENT_HELP[action.dest]
