"""tsweep: scaling laws for transfer, measured at cluster scale.

The package, floor first (each layer imports only from the layers above it in this list):

- ``tsweep.core``: the contracts (job record, layout and filesystem, store and schema, size
  ladder, eval cadence, data specs, progress records, errors). No torch, no Ray.
- ``tsweep.sweeps``: the sweep schema and the shipped sweep YAMLs.
- ``tsweep.data``: what a job trains and evaluates on (sources, tokenizers, splits, cache).
- ``tsweep.workers``: one job's training on a DeepSpeed engine (torch), and its Tune trainable.
- ``tsweep.analysis``: the laws, the fitter, the transfer report, the analysis actor, plots.
- ``tsweep.orchestrator``: the job graph, the Tune searcher, the driver, progress, submission.
- ``tsweep.api`` (re-exported here, imported on first use) and ``tsweep.cli`` (the ``tsweep`` console script).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tsweep.api import SweepResults, advise, fit, follow, load_sweep, open_sweep, plan, resolve, run, submit

__all__ = ["SweepResults", "advise", "fit", "follow", "load_sweep", "open_sweep", "plan", "resolve", "run", "submit"]


def __getattr__(name: str) -> Any:
    """``tsweep.run`` and the rest of :data:`__all__`, imported from :mod:`tsweep.api` on first
    use. Lazily, because every Ray worker that runs a tsweep job imports this package first (to
    unpickle its trainable), and ``tsweep.api`` brings the analysis (scipy, pandas): seconds of
    a core per worker process that trains and never fits."""
    if name in __all__:
        return getattr(importlib.import_module("tsweep.api"), name)
    raise AttributeError(f"module 'tsweep' has no attribute {name!r}")
