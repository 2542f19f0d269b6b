"""``python -m dhclib``: the command line (dhclib.cli)."""

import sys

from dhclib.cli import main

sys.exit(main())
