import sys

from dhclib.cli import main

sys.exit(main())
