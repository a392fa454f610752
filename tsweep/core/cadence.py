"""When a job is evaluated, and how many steps it runs: pure functions of its kind and its data,
shared by the worker (``tsweep.workers.runner``), the planner's cost estimate
(``tsweep.orchestrator.plan``) and the sweep models' checks (``tsweep.sweeps.models``). Why
patience, a capped stable phase and cooldowns: ``tsweep.workers.schedule``. No torch here.
"""

from __future__ import annotations

import math


def eval_interval(*, kind: str, interval_steps: int, steps_per_epoch: float, per_epoch: int, min_steps: int = 1) -> int:
    """Steps between evaluations. Pre-training: ``interval_steps``, the first of the doubling
    intervals of :func:`pretrain_eval_steps`. Fine-tunes and scratch runs: at most
    ``interval_steps`` and at least ``per_epoch`` times per epoch, since their score is their best
    evaluation and their patience is counted in epochs, but never more often than every
    ``min_steps`` (a run whose epoch is a step or two would otherwise spend most of its time
    evaluating)."""
    if kind == "pretrain":
        return interval_steps
    return max(1, min_steps, min(interval_steps, math.floor(steps_per_epoch / per_epoch)))


def min_eval_steps(*, min_interval_tokens: int, tokens_per_step: int) -> int:
    """The fewest steps between two evaluations of a fine-tune or scratch run."""
    return max(1, math.ceil(min_interval_tokens / tokens_per_step))


def pretrain_eval_steps(*, interval: int, max_steps: int) -> set[int]:
    """A pre-training run's evaluations after step 0: ``interval * 2**k`` and its end (evenly
    spaced on the log-token axis the laws use; its loss at each p is read by the fine-tunes)."""
    doubling = set()
    s = interval
    while s < max_steps:
        doubling.add(s)
        s *= 2
    return doubling | {max_steps}


def patience_steps(
    *, steps_per_epoch: float, patience_epochs: float, patience_tokens: int, tokens_per_step: int
) -> int:
    """Steps over which an early-stopped run's best evaluation must improve: ``patience_epochs``
    of its data, and at least ``patience_tokens`` (so a tiny budget is not given up on within a
    handful of steps on a loss plateau)."""
    return max(1, math.ceil(max(patience_epochs * steps_per_epoch, patience_tokens / tokens_per_step)))


def stable_cap_steps(*, steps_per_epoch: float, max_epochs: float, patience: int = 0) -> int:
    """The last step of an early-stopped run's stable phase: ``max_epochs`` of its data, and at
    least two patience windows, so that patience, not the cap, can end a run over a tiny budget
    (1k tokens at 64k tokens of patience would otherwise always end at the cap, unconverged)."""
    return max(1, math.ceil(max_epochs * steps_per_epoch), 2 * patience)


def max_steps(
    *, kind: str, data_tokens: int, tokens_per_step: int, max_epochs: float, cooldown: float, patience: int = 0
) -> int:
    """Steps a job runs at most: one pass for pre-training; the capped stable phase and its
    cooldown for the others (the planner's cost bound; patience usually ends them earlier)."""
    steps_per_epoch = data_tokens / tokens_per_step
    if kind == "pretrain":
        return max(1, math.ceil(steps_per_epoch))
    cap = stable_cap_steps(steps_per_epoch=steps_per_epoch, max_epochs=max_epochs, patience=patience)
    return cap + max(1, round(cooldown * cap))


def branch_start(p_steps: int, fraction: float) -> int:
    """The step at which a pre-training cooldown leaves the stable run to end at ``p_steps``: the
    last ``fraction`` of the p tokens are the decay (Hägele et al. 2024 count the cooldown inside
    the budget, so a p-checkpoint has seen exactly p tokens)."""
    return max(0, p_steps - max(1, round(fraction * p_steps)))
