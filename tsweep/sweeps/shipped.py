"""The sweep YAMLs shipped with tsweep (``tsweep/sweeps/*.yaml``, ``demo`` first among them in
the docs): where they are, nothing about what they hold.

Imports: the standard library only.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["shipped_sweeps"]


def shipped_sweeps() -> list[Path]:
    """Every shipped sweep YAML, sorted by name."""
    return sorted(Path(__file__).parent.glob("*.yaml"))
