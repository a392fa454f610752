"""Typed progress reports: what a running job tells the driver, and how the driver reads it.

A worker reports a :class:`Progress` every eval interval, after every evaluation, the moment a
checkpoint p is saved (the scheduler releases that checkpoint's fine-tunes on it) and when it
ends. It travels through Ray Tune as a flat metrics dict (:meth:`Progress.to_metrics`); the
scheduler and the live view turn Tune's result back into a record (:meth:`Progress.from_metrics`)
and read attributes, so the keys are written in this one place.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

# Tune's own metric: the searcher is built with metric="best_eval_loss", mode="min".
METRIC = "best_eval_loss"


@dataclass(frozen=True, kw_only=True)
class Progress:
    """One report of a running (or ended) job; see the module docstring."""

    job_id: str
    label: str
    kind: str
    step: int
    tokens_seen: int
    eval_loss: float | None = None  # the latest evaluation (the best one when done)
    train_loss: float | None = None
    best_eval_loss: float | None = None
    tokens_per_s: float = 0.0
    saved_p: int = 0  # the largest checkpoint p saved so far (0: none)
    done: bool = False
    status: str = "running"  # running | ok | diverged | unconverged
    threads: int = 1  # torch threads the job trains on now: its CPUs plus any lent idle ones

    def to_metrics(self) -> dict[str, Any]:
        """The record as Tune's metrics dict: every field, ``best_eval_loss`` +inf until known."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        # Tune keeps a metric it can compare; an unevaluated run reports +inf, not None.
        if out[METRIC] is None or not math.isfinite(out[METRIC]):
            out[METRIC] = math.inf
        return out

    @classmethod
    def from_metrics(cls, result: Mapping[str, Any] | None) -> Progress | None:
        """The record inside a Tune result (which adds keys of its own); None if there is none."""
        if not result or "job_id" not in result:
            return None
        kw = {f.name: result[f.name] for f in fields(cls) if f.name in result}
        best = kw.get("best_eval_loss")
        if best is not None and not math.isfinite(best):
            kw["best_eval_loss"] = None
        return cls(**kw)
