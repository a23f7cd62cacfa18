"""Ironroot: defense-in-depth from silicon to systems.

The layers live in subpackages (``ironroot.crypto``, ``ironroot.cose``, ``ironroot.merkle``,
``ironroot.log``, ``ironroot.transparency``, …); see ``docs/`` and ARCHITECTURE.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
