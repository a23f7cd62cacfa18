"""``python -m ironroot``."""

import sys

try:
    from ironroot.cli import main
except KeyboardInterrupt:  # Ctrl-C while Python loads the command (the line of cli._main's)
    print("ironroot: interrupted: stopped by Ctrl-C (SIGINT)", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
