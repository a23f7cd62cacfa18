"""``python -m ironroot.demo``."""

import sys

from ironroot.demo import main

sys.exit(main())
