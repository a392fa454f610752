"""The compute of one job on its DeepSpeed engine: an optimizer step, an evaluation, and the
snapshot a pre-training branch rewinds to. No rows, no schedule decisions: the runner and the
kinds of job (``tsweep.workers.kinds``) decide when; this module does.

Every rank runs every call (ZeRO collectives); a step trains this rank's share of the batch
(``tsweep.workers.batches`` makes batch ``s`` a pure function of the step), an evaluation sums
each rank's share of the held-out set. Before every step and every evaluation batch it calls
``before_compute`` (the runner's thread governor takes its latest share of CPUs there,
``tsweep.workers.threads``), so a cooldown branch or a long evaluation follows the share too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from tsweep.sweeps import Sweep
from tsweep.workers import checkpoints
from tsweep.workers.batches import BatchStream
from tsweep.workers.engine import clip_gradients, rank_world

if TYPE_CHECKING:
    from deepspeed import DeepSpeedEngine

# the tag of a pre-training branch's snapshot in its scratch folder
_SNAPSHOT = "branch"


@torch.inference_mode()
def mean_eval_loss(
    engine: DeepSpeedEngine,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    batch: int,
    before_batch: Callable[[], object] = lambda: None,
) -> float:
    """Mean per-token loss over the whole eval set (token-weighted; ranks split it and sum)."""
    engine.eval()
    total, count = 0.0, 0
    dev = engine.device
    rank, world = rank_world()
    inputs, labels = inputs[rank::world], labels[rank::world]
    for i in range(0, len(inputs), batch):
        before_batch()
        x, y = inputs[i : i + batch].to(dev), labels[i : i + batch].to(dev)
        logits = engine(input_ids=x).logits.float()
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.size(-1)), y[:, 1:].reshape(-1), ignore_index=-100, reduction="sum"
        )
        total += loss.item()
        count += int((y[:, 1:] != -100).sum())
    engine.train()
    if world > 1:
        t = torch.tensor([total, float(count)], dtype=torch.float64, device=dev)
        torch.distributed.all_reduce(t)
        total, count = float(t[0]), int(t[1])
    return total / max(count, 1)


@dataclass
class Training:
    """One job's engine with its batches and held-out set, on this rank of ``world``."""

    engine: DeepSpeedEngine
    sweep: Sweep
    stream: BatchStream
    eval_x: torch.Tensor
    eval_y: torch.Tensor
    rank: int
    world: int
    before_compute: Callable[[], object] = field(default=lambda: None)

    @property
    def lead(self) -> bool:
        """Whether this rank writes rows, reports and weights (rank 0; every rank trains)."""
        return self.rank == 0

    def train_step(self, step: int) -> float:
        """One optimizer step on batch ``step``; returns its training loss."""
        self.before_compute()
        x, y = self.stream.batch(step)
        if self.world > 1:
            x, y = x[self.rank :: self.world], y[self.rank :: self.world]
        dev = self.engine.device
        loss = self.engine(input_ids=x.to(dev), labels=y.to(dev)).loss
        self.engine.backward(loss)
        clip_gradients(self.engine, self.sweep)
        self.engine.step()
        return float(loss.detach())

    def eval_loss(self) -> float:
        """Mean per-token loss on the held-out set."""
        batch = max(self.sweep.train.batch_size, 64)
        return mean_eval_loss(self.engine, self.eval_x, self.eval_y, batch, self.before_compute)

    def snapshot(self, folder: str) -> None:
        """Save the engine as it is (weights, optimizer, schedule) into ``folder``."""
        self.engine.save_checkpoint(folder, tag=_SNAPSHOT, save_latest=False)

    def rewind(self, folder: str) -> None:
        """Restore the engine from :meth:`snapshot` (DeepSpeed's own checkpoint, so every ZeRO
        stage is restored exactly), then remove the snapshot once every rank has read it."""
        with checkpoints.weights_only(self.engine):
            self.engine.load_checkpoint(folder, tag=_SNAPSHOT, load_module_strict=True)
        if self.world > 1:
            torch.distributed.barrier()  # every rank has read the snapshot before it goes
        if self.lead:
            checkpoints.remove(folder)

    def save_weights(self, dest: str) -> None:
        """The model at ``dest`` as a transformers folder (a collective; rank 0 writes)."""
        checkpoints.save_weights(self.engine, dest, self.lead)
