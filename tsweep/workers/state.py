"""What a job carries from step to step: its resumable loop state, its outcome, and the
divergence rules read off its losses.

:class:`LoopState` is tsweep's part of every resume state (saved as a dict in DeepSpeed's client
state beside the engine's own); its fields are the format: a resume state whose fields differ
(another tsweep version) does not load (:func:`loop_state`), and the job starts over. Every field
exists for every kind of job; the early-stopping ones (``cool_start``, ``cool_end``,
``stable_end``, ``best_history``) stay at their defaults in pre-training.

:class:`Outcome` is how the job is going (``ok``, ``diverged``, ``unconverged``) and why; it is not
saved, since a job saves resume state only while it is ``ok``.

Divergence (the module docstring of ``tsweep.workers.runner`` says what it ends): a non-finite
loss, or a smoothed training loss (every kind) or an eval loss (pre-training only: a fine-tune's
eval loss may climb that far while it over-fits) far above its first value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# A smoothed training loss (or, in pre-training, an eval loss) this far above its first value
# means the run diverged (tsweep's choice; a loss that rises 50% over its start never comes back
# within an early-stopped budget). A fine-tune's eval loss may climb that far while it over-fits.
DIVERGENCE_FACTOR = 1.5
# Smoothing of the training loss for the divergence check: an exponential moving average with
# this weight on the newest step (about the last 20 steps), so one noisy batch cannot trip it.
TRAIN_LOSS_EMA = 0.05


@dataclass
class LoopState:
    """Everything the loop needs to resume besides the engine's own state."""

    step: int = 0
    best_loss: float = math.inf
    best_step: int = 0
    first_loss: float | None = None
    last_loss: float | None = None
    first_train_loss: float | None = None
    train_loss_ema: float | None = None
    saved_p: list[int] = field(default_factory=list)
    wall_time_s: float = 0.0
    core_seconds: float | None = None  # thread-seconds trained so far (tsweep.workers.threads)
    # the schedule's cooldown window, and why a fine-tune's or scratch run's stable phase ended
    cool_start: int | None = None
    cool_end: int | None = None
    stable_end: str | None = None  # "patience" | "max_epochs"
    best_history: list[tuple[int, float]] = field(default_factory=list)  # (step, best so far) at evaluations


def loop_state(state: Mapping[str, Any]) -> LoopState | None:
    """The loop state a resume state holds; None for one of another tsweep version."""
    try:
        return LoopState(**state)
    except TypeError:
        return None


@dataclass
class Outcome:
    """How the job is going: ``ok``, ``diverged`` or ``unconverged``, and why."""

    status: str = "ok"
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def diverged(self, reason: str) -> None:
        self.status, self.reason = "diverged", reason


def train_loss_divergence(state: LoopState, step: int, loss: float, *, warmup: int) -> str | None:
    """Fold a step's training loss into the smoothed one; why the run diverged, if it did."""
    if not math.isfinite(loss):
        return f"non-finite training loss at step {step}"
    first = state.first_train_loss
    ema = state.train_loss_ema
    if first is None or ema is None:
        first = ema = state.first_train_loss = loss
    ema = state.train_loss_ema = ema + TRAIN_LOSS_EMA * (loss - ema)
    if step > warmup and ema > DIVERGENCE_FACTOR * first:
        return f"smoothed training loss {ema:.3f} exceeds {DIVERGENCE_FACTOR}x the first {first:.3f} at step {step}"
    return None


def eval_loss_divergence(state: LoopState, step: int, loss: float, *, warmup: int) -> str | None:
    """Why an eval loss far above the first one (after warmup) means the run diverged, if it does."""
    first = state.first_loss
    if first is not None and step > warmup and loss > DIVERGENCE_FACTOR * first:
        return f"eval loss {loss:.3f} exceeds {DIVERGENCE_FACTOR}x the initial {first:.3f}"
    return None
