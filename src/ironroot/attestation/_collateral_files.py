"""Collateral from files: Intel's TDX collateral directory and CRL files (I/O for the CLI and
the verifier's configuration; the verification itself is pure, in
:mod:`ironroot.attestation.evidence`).

A collateral directory holds what Intel's PCS serves, under these names (other files are
ignored)::

    tcb_info.json, tcb_info_*.json    TCB Info bodies (GET /tdx/certification/v4/tcb?fmspc=…),
                                      one per FMSPC
    qe_identity.json                  TD QE Identity body (GET /tdx/certification/v4/qe/identity)
    tcb_signing_chain.pem             the TCB-Info-Issuer-Chain response header: PEM, or the
                                      header value as sent (URL-encoded PEM)
    pck_crl*.der, pck_crl*.pem        PCK CRLs (GET /sgx/certification/v4/pckcrl?ca=platform|
                                      processor&encoding=der)
    root_crl.der, root_crl.pem        the Intel SGX Root CA CRL

CRL files given on their own (``--crl``, ``crls`` in ``attestation.toml``) may be DER or PEM,
AMD's or Intel's; a folder stands for the ``*.der``, ``*.pem`` and ``*.crl`` files in it.

A collateral holds one TCB Info per platform (id, FMSPC, PCE-ID): a later file for the same
one is a problem (``MalformedCollateral``) and is left out. It holds at most
:attr:`TdxCollateral.max_crls` distinct CRLs (the same CRL in two files counts once): the
directory's, then those given on their own, in that order; a CRL file beyond the limit is a
problem (``MalformedCollateral``) and is left out.

``strict`` reading (the CLI) raises the first problem as a typed error; lenient reading (a
service starting) leaves the bad file out and returns one line per problem, so one bad file
never stops a service.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from ironroot._fileio import read_limited
from ironroot.attestation.evidence import (
    StaleCollateral,
    TdxCollateral,
    load_crls,
    load_tdx_collateral,
    parse_qe_identity,
    parse_tcb_info,
)
from ironroot.attestation.evidence._revocation import common_name, freshness
from ironroot.attestation.evidence._tdx_collateral import collateral_signing_chain
from ironroot.errors import ConfigError, IronrootError, MalformedCollateral

__all__ = [
    "COLLATERAL_FILES",
    "CollateralFiles",
    "read_crls",
    "read_tdx_collateral",
    "stale_at",
]

COLLATERAL_FILES: Final = {
    "tcb_info": ("tcb_info.json", "tcb_info_*.json"),
    "qe_identity": ("qe_identity.json",),
    "signing_chain": ("tcb_signing_chain.pem",),
    "crls": ("pck_crl*.der", "pck_crl*.pem", "root_crl.der", "root_crl.pem"),
}
"""The file names of a collateral directory (glob patterns), by role."""

_MAX_FILE: Final = 1024 * 1024
_CRL_SUFFIXES: Final = frozenset((".der", ".pem", ".crl"))


@dataclass(frozen=True, slots=True)
class CollateralFiles:
    """What was read: the collateral (``None`` when there is none) and the problems."""

    collateral: TdxCollateral | None
    problems: tuple[str, ...] = ()


def _read(path: Path) -> bytes:
    try:
        return read_limited(path, _MAX_FILE)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc


def _matching(directory: Path, patterns: Iterable[str]) -> list[Path]:
    found: dict[Path, None] = {}
    for pattern in patterns:
        for path in sorted(directory.glob(pattern)):
            if path.is_file():
                found[path] = None
    return list(found)


class _Problems:
    __slots__ = ("lines", "strict")

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.lines: list[str] = []

    def report(self, path: Path | str, error: IronrootError) -> None:
        if self.strict:
            raise error
        self.lines.append(f"{path}: {error.code}: {error.detail}")


def read_tdx_collateral(
    directory: Path | None = None,
    *,
    tcb_info: Sequence[Path] = (),
    qe_identity: Path | None = None,
    signing_chain: Path | None = None,
    crls: Sequence[Path] = (),
    strict: bool = True,
) -> CollateralFiles:
    """Read a collateral directory (see the module documentation) and/or single files (which
    add a TCB Info, or replace the directory's QE Identity or signing chain; ``crls``: CRL files
    or folders added to the directory's CRLs)."""
    problems = _Problems(strict)
    infos: list[tuple[Path, bytes]] = []
    qe_path: Path | None = None
    chain_path: Path | None = None
    crl_paths: list[Path] = []
    if directory is not None:
        if not directory.is_dir():
            problems.report(directory, ConfigError(f"{directory} is not a directory"))
        else:
            infos_paths = _matching(directory, COLLATERAL_FILES["tcb_info"])
            qe_paths = _matching(directory, COLLATERAL_FILES["qe_identity"])
            chain_paths = _matching(directory, COLLATERAL_FILES["signing_chain"])
            crl_paths = _matching(directory, COLLATERAL_FILES["crls"])
            for path in infos_paths:
                try:
                    infos.append((path, _read(path)))
                except IronrootError as exc:
                    problems.report(path, exc)
            qe_path = qe_paths[0] if qe_paths else None
            chain_path = chain_paths[0] if chain_paths else None
    for path in tcb_info:
        try:
            infos.append((path, _read(path)))
        except IronrootError as exc:
            problems.report(path, exc)
    qe_path = qe_identity or qe_path
    chain_path = signing_chain or chain_path
    kept_infos: list[bytes] = []
    seen: set[tuple[str, bytes, bytes]] = set()
    for path, data in infos:
        try:
            info = parse_tcb_info(data)  # each file on its own, so one bad file is left out alone
            key = (info.id, info.fmspc, info.pce_id)
            if key in seen:  # a collateral holds one per platform: the later file is left out
                raise MalformedCollateral(
                    f"a second {info.id} TCB Info for FMSPC {info.fmspc.hex()}: left out"
                )
            seen.add(key)
            kept_infos.append(data)
        except IronrootError as exc:
            problems.report(path, exc)
    qe_data = _optional(qe_path, problems, check=parse_qe_identity)
    # parsed as it is read, as the QE Identity is: a chain given with nothing to check would
    # otherwise be left out unread, however malformed
    chain_data = _optional(chain_path, problems, check=collateral_signing_chain)
    crls_found = _read_crl_files([*crl_paths, *crls], problems)
    all_crls = _bounded_crls(crls_found, problems)
    if not kept_infos and qe_data is None and not all_crls:
        return CollateralFiles(None, tuple(problems.lines))
    if (kept_infos or qe_data is not None) and chain_data is None:
        if chain_path is None:  # a chain that did not load is reported already
            where = directory / "tcb_signing_chain.pem" if directory else "collateral"
            problems.report(
                where,
                ConfigError(
                    "TCB Info and QE Identity need tcb_signing_chain.pem (PCS header "
                    "TCB-Info-Issuer-Chain); they are left out"
                ),
            )
        kept_infos, qe_data = [], None
    try:
        collateral = load_tdx_collateral(
            tcb_info=kept_infos, qe_identity=qe_data, signing_chain=chain_data
        )
    except IronrootError as exc:
        problems.report(chain_path or "collateral", exc)
        collateral = TdxCollateral()
    collateral = TdxCollateral(
        tcb_infos=collateral.tcb_infos,
        qe_identity=collateral.qe_identity,
        signing_chain=collateral.signing_chain,
        crls=all_crls,
    )
    return CollateralFiles(collateral, tuple(problems.lines))


def _optional(
    path: Path | None, problems: _Problems, *, check: Callable[[bytes], object] | None = None
) -> bytes | None:
    if path is None:
        return None
    try:
        data = _read(path)
        if check is not None:
            check(data)
        return data
    except IronrootError as exc:
        problems.report(path, exc)
        return None


def read_crls(
    paths: Sequence[Path], *, strict: bool = True
) -> tuple[tuple[x509.CertificateRevocationList, ...], tuple[str, ...]]:
    """The CRLs in ``paths`` (files, or folders of ``*.der``/``*.pem``/``*.crl``)."""
    problems = _Problems(strict)
    found = _read_crl_files(paths, problems)
    return tuple(crl for _, crl in found), tuple(problems.lines)


def _read_crl_files(
    paths: Sequence[Path], problems: _Problems
) -> list[tuple[Path, x509.CertificateRevocationList]]:
    """Each CRL of ``paths`` with the file it came from."""
    out: list[tuple[Path, x509.CertificateRevocationList]] = []
    for path in paths:
        if path.is_dir():
            files = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _CRL_SUFFIXES
            )
        else:
            files = [path]
        for file in files:
            try:
                out.extend((file, crl) for crl in load_crls(_read(file)))
            except IronrootError as exc:
                problems.report(file, exc)
    return out


def _bounded_crls(
    found: Sequence[tuple[Path, x509.CertificateRevocationList]], problems: _Problems
) -> tuple[x509.CertificateRevocationList, ...]:
    """The distinct CRLs of ``found`` (one CRL in two files counts once), at most as many as a
    collateral holds: a file beyond the limit is a problem and is left out."""
    out: list[x509.CertificateRevocationList] = []
    seen: set[bytes] = set()
    limit = TdxCollateral.max_crls
    for path, crl in found:
        key = crl.fingerprint(hashes.SHA256())
        if key in seen:
            continue
        if len(out) >= limit:
            problems.report(
                path, MalformedCollateral(f"more than {limit} CRLs in the collateral: left out")
            )
            continue
        seen.add(key)
        out.append(crl)
    return tuple(out)


def stale_at(
    collateral: TdxCollateral | None,
    crls: Sequence[x509.CertificateRevocationList],
    now: datetime,
) -> list[StaleCollateral]:
    """The collateral and CRLs that are stale at ``now`` (for a warning when a service starts;
    each verification judges freshness again at its own time)."""
    out = [] if collateral is None else collateral.stale(now)
    seen = set()
    for crl in (*crls, *(collateral.crls if collateral is not None else ())):
        key = id(crl)
        if key in seen:
            continue
        seen.add(key)
        item = freshness(
            f"CRL of {common_name(crl.issuer)}", crl.last_update_utc, crl.next_update_utc, now
        )
        if item is not None:
            out.append(item)
    return out
