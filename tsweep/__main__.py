"""``python -m tsweep``: the same commands as the ``tsweep`` console script."""

from tsweep.cli import console

console()
