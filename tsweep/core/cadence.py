"""When a job is evaluated: a pure function of its kind and length, shared by the worker
(``workers.train``) and the planner's cost estimate (``orchestrator.plan``). Why this cadence is
explained in ``workers.train``'s docstring. No torch here, so the planner stays light.
"""

from __future__ import annotations


def eval_steps(*, kind: str, interval: int, max_steps: int) -> set[int]:
    """The steps after which a job is evaluated (step 0 is always evaluated first).

    Early-stopped kinds: every ``interval`` steps. Pre-training: ``interval * 2**k``. Both
    always include ``max_steps``.
    """
    if kind != "pretrain":
        return {*range(interval, max_steps + 1, interval), max_steps}
    doubling = set()
    s = interval
    while s < max_steps:
        doubling.add(s)
        s *= 2
    return doubling | {max_steps}
