"""The child of ``test_transparency_first_start_kill``: the first start of a transparency
service over ``sys.argv[1]`` (its data directory made, its configuration and keys written,
its public keys published), then a clean close."""

from __future__ import annotations

import sys
from pathlib import Path

from ironroot.transparency import TransparencyService

TransparencyService.open(Path(sys.argv[1])).close()
