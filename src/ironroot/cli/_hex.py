"""The one parser of bytes given as hex on the command line (hashes, nonces, salts).

:func:`parse_hex` reads an option's value in a verb (a bad value is a ``ConfigError``, exit 2,
naming the option); :func:`hex_bytes` is the same as an argparse ``type``.
"""

from __future__ import annotations

import argparse

from ironroot.errors import ConfigError

__all__ = ["hex_bytes", "parse_hex"]


def parse_hex(text: str, what: str) -> bytes:
    """``text`` as bytes; ``ConfigError`` naming ``what`` when it is not hex."""
    try:
        return bytes.fromhex(text)
    except ValueError as exc:
        raise ConfigError(f"{what} is not hex") from exc


def hex_bytes(text: str) -> bytes:
    """:func:`parse_hex` as an argparse ``type`` (a bad value is a usage error, exit 2)."""
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not hex") from None
