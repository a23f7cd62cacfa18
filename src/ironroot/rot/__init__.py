"""The silicon root of trust: DICE identities (X.509 with the TCG DICE extensions), fuses,
DICE layer derivation, measured boot, PCRs, quotes, DPE-style child identities, and monotonic
counters, over device state that is tamper-evident."""

from typing import TYPE_CHECKING

from ironroot._lazy import lazy_package

if TYPE_CHECKING:
    from ironroot.rot._asn1 import DECODE_ERRORS as ASN1_DECODE_ERRORS
    from ironroot.rot._boot import (
        PCR_COUNT,
        BootResult,
        BootState,
        DiceLayers,
        PcrEvent,
        cold_boot,
        derive_layers,
    )
    from ironroot.rot._ca import VendorCA
    from ironroot.rot._counter import MemoryCounter, MonotonicCounter
    from ironroot.rot._device import Device, DeviceCounter, ProvisionResult
    from ironroot.rot._dpe import ChildIdentity, derive_child_identity
    from ironroot.rot._fuses import Fuses, Lifecycle
    from ironroot.rot._kdf import derive_ecc_p384, derive_mldsa87, kdf
    from ironroot.rot._layers import DiceLayer
    from ironroot.rot._open_dice_cbor import OpenDiceCertificate, parse_open_dice_cbor
    from ironroot.rot._quote import (
        QuoteClaims,
        check_quote_log,
        check_quote_nonce,
        create_quote,
        verify_quote,
    )
    from ironroot.rot.dice import (
        KEY_PURPOSE_OIDS,
        ML_DSA_87_OID,
        MULTI_TCB_INFO_OID,
        OPEN_DICE_OID,
        TCB_INFO_OID,
        UEID_OID,
        DiceCertificate,
        DiceExtensions,
        Fwid,
        IntegrityRegister,
        InvalidExtension,
        OpenDiceInput,
        OperationalFlag,
        OperationalFlags,
        RiotCompositeDeviceId,
        SvnEncoding,
        TcbInfo,
        build_key_purpose_extension,
        build_multi_tcb_info_extension,
        build_tcb_info_extension,
        build_ueid_extension,
        encode_multi_tcb_info,
        encode_tcb_info,
        encode_ueid,
        load_dice_objects,
        parse_certificate,
        parse_certificates,
        parse_csr,
        parse_multi_tcb_info,
        parse_open_dice_input,
        parse_riot_extension,
        parse_tcb_info,
        parse_ueid,
        verify_chain,
        verify_signature,
    )

__all__ = [
    "ASN1_DECODE_ERRORS",
    "KEY_PURPOSE_OIDS",
    "ML_DSA_87_OID",
    "MULTI_TCB_INFO_OID",
    "OPEN_DICE_OID",
    "PCR_COUNT",
    "TCB_INFO_OID",
    "UEID_OID",
    "BootResult",
    "BootState",
    "ChildIdentity",
    "Device",
    "DeviceCounter",
    "DiceCertificate",
    "DiceExtensions",
    "DiceLayer",
    "DiceLayers",
    "Fuses",
    "Fwid",
    "IntegrityRegister",
    "InvalidExtension",
    "Lifecycle",
    "MemoryCounter",
    "MonotonicCounter",
    "OpenDiceCertificate",
    "OpenDiceInput",
    "OperationalFlag",
    "OperationalFlags",
    "PcrEvent",
    "ProvisionResult",
    "QuoteClaims",
    "RiotCompositeDeviceId",
    "SvnEncoding",
    "TcbInfo",
    "VendorCA",
    "build_key_purpose_extension",
    "build_multi_tcb_info_extension",
    "build_tcb_info_extension",
    "build_ueid_extension",
    "check_quote_log",
    "check_quote_nonce",
    "cold_boot",
    "create_quote",
    "derive_child_identity",
    "derive_ecc_p384",
    "derive_layers",
    "derive_mldsa87",
    "encode_multi_tcb_info",
    "encode_tcb_info",
    "encode_ueid",
    "kdf",
    "load_dice_objects",
    "parse_certificate",
    "parse_certificates",
    "parse_csr",
    "parse_multi_tcb_info",
    "parse_open_dice_cbor",
    "parse_open_dice_input",
    "parse_riot_extension",
    "parse_tcb_info",
    "parse_ueid",
    "verify_chain",
    "verify_quote",
    "verify_signature",
]

__getattr__, __dir__ = lazy_package(__name__, __file__)
