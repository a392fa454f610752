"""``python -m tsweep``: the same commands as the ``tsweep`` console script."""

import sys

from tsweep.cli import main

sys.exit(main())
