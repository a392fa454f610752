"""The sweeps layer: a sweep YAML, validated into one typed, frozen :class:`Sweep`; and the sweep
YAMLs shipped with tsweep (``demo.yaml`` first).

Its modules, one job each (floor first; each imports only those above it, ``tsweep.core``,
pydantic and PyYAML, never torch, Ray or a higher layer of tsweep):

- ``deepspeed_keys``: which DeepSpeed config keys a sweep may hold, and which enter job ids.
- ``models``: the typed config, every field with a description, and its validation.
- ``paths``: what a sweep names relative to its file, made absolute or read and inlined.
- ``loader``: YAML text or file -> validated :class:`Sweep` (and back), errors in one line.
- ``overrides``: ``--set KEY.PATH=VALUE`` typed against the models.
- ``reference``: every setting with its default and meaning (``tsweep plan --explain``).
- ``shipped``: where the shipped sweep YAMLs are.

This package re-exports what the rest of tsweep uses, so importers write
``from tsweep.sweeps import Sweep, load_sweep``; the modules are the place to read.
"""

from tsweep.core.errors import SweepError
from tsweep.sweeps.loader import dump_sweep, load_sweep, loads_sweep, parse_sweep
from tsweep.sweeps.models import (
    DeepSpeedSettings,
    EvalSettings,
    FitSettings,
    ModelRung,
    PretrainedModel,
    PretrainSettings,
    Resources,
    Sweep,
    TrackerSettings,
    TrainSettings,
    is_plain_name,
)
from tsweep.sweeps.overrides import with_overrides
from tsweep.sweeps.paths import deep_merge
from tsweep.sweeps.reference import explain
from tsweep.sweeps.shipped import shipped_sweeps

__all__ = [
    "DeepSpeedSettings",
    "EvalSettings",
    "FitSettings",
    "ModelRung",
    "PretrainSettings",
    "PretrainedModel",
    "Resources",
    "Sweep",
    "SweepError",
    "TrackerSettings",
    "TrainSettings",
    "deep_merge",
    "dump_sweep",
    "explain",
    "is_plain_name",
    "load_sweep",
    "loads_sweep",
    "parse_sweep",
    "shipped_sweeps",
    "with_overrides",
]
