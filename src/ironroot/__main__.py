"""``python -m ironroot``."""

import sys

from ironroot.cli import main

sys.exit(main())
