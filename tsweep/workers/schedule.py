"""The learning-rate schedule of every run: warmup, stable, decay (WSD), with movable cooldowns.

A constant ("stable") learning rate after a linear warmup, and a linear decay to zero over a
*cooldown* window that the run sets when it knows where it ends (MiniCPM's warmup-stable-decay,
Hu et al. 2024, arXiv 2404.06395; Hägele et al. 2024, arXiv 2405.18392, who show a cooldown of
about 20% of training matches a tuned cosine schedule of the same length):

- pre-training knows its end: its final cooldown covers the last ``cooldown`` of the budget,
  and each earlier checkpoint p gets a *branch*: from step (1 - cooldown) p the weights are
  cooled to p, saved, and the run goes back to where it branched at the stable rate. Each p is
  then a model that has seen exactly p tokens with a finished decay, for the cost of its
  cooldown only.
- a fine-tune or scratch run does not know its end: it trains at the stable rate until its best
  evaluation is ``eval.patience_epochs`` old (it has passed its data-limited minimum) or it
  reaches ``train.max_epochs``, then cools down over ``cooldown`` of the steps so far. Its score
  is its best evaluation, which the cooldown brings down to an annealed loss.

``WSD`` is the callable ``torch.optim.lr_scheduler.LambdaLR`` calls with the optimizer step; its
window is plain state the runner saves with its own (a resumed run restores it).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class WSD:
    """LR factor of step ``s``: warmup, 1, and a linear decay to 0 inside ``[cool_start, cool_end)``."""

    warmup: int
    cool_start: int | None = None
    cool_end: int | None = None

    def __call__(self, step: int) -> float:
        factor = (step + 1) / self.warmup if self.warmup and step < self.warmup else 1.0
        if self.cool_start is not None and self.cool_end is not None and step >= self.cool_start:  # set together
            span = max(1, self.cool_end - self.cool_start)
            factor *= max(0.0, 1.0 - (step - self.cool_start) / span)
        return factor

    def cool(self, start: int, end: int) -> None:
        """Decay linearly to zero from ``start`` to ``end``."""
        self.cool_start, self.cool_end = int(start), int(max(end, start + 1))

    def stable(self) -> None:
        """Back to the stable rate (after a pre-training branch)."""
        self.cool_start = self.cool_end = None


def cooldown_steps(stable_steps: int, fraction: float) -> int:
    """Steps of a cooldown that follows ``stable_steps`` steps: ``fraction`` of them, at least one."""
    return max(1, round(fraction * stable_steps))
