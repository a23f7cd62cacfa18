"""``python -m ironroot``."""

import sys

try:
    from ironroot.cli import main
except KeyboardInterrupt:  # Ctrl-C while Python loads the command
    sys.exit(130)

sys.exit(main())
