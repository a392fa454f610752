"""Deterministic batches over a fixed token budget.

The budget's tokens are cut into sequences of ``seq_len`` (the last one padded, its padding
masked out of the loss with -100, so exactly the budget's tokens are trained on). Epoch ``e``
visits the sequences in a permutation seeded by (seed, e); batch ``s`` is a pure function of
(seed, s). A job resumed at step s therefore sees exactly the batches an uninterrupted run
would have seen, and epochs over the data are counted, not hidden.
"""

from __future__ import annotations

import numpy as np
import torch

IGNORE = -100


def to_sequences(tokens: np.ndarray, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, labels) of shape (n_seq, seq_len); padding in the last row is ignored by the loss."""
    n = len(tokens)
    n_seq = max(1, -(-n // seq_len))
    flat = np.zeros(n_seq * seq_len, dtype=np.int64)
    flat[:n] = tokens
    inputs = torch.from_numpy(flat.reshape(n_seq, seq_len))
    labels = inputs.clone()
    labels.view(-1)[n:] = IGNORE
    return inputs, labels


class BatchStream:
    """Batch ``s`` of a seeded, epoch-shuffled stream over a fixed set of sequences."""

    def __init__(self, tokens: np.ndarray, *, seq_len: int, batch_size: int, seed: int):
        self.inputs, self.labels = to_sequences(tokens, seq_len)
        self.n_seq = len(self.inputs)
        self.batch_size = batch_size
        self.seed = seed
        self.n_tokens = len(tokens)
        self._perm_cache: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        perm = self._perm_cache.get(epoch)
        if perm is None:
            if len(self._perm_cache) > 2:  # a batch spans at most two epochs unless the data is tiny
                self._perm_cache.clear()
            perm = self._perm_cache[epoch] = np.random.default_rng([self.seed, epoch]).permutation(self.n_seq)
        return perm

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        pos = np.arange(step * self.batch_size, (step + 1) * self.batch_size)
        epochs, offsets = np.divmod(pos, self.n_seq)
        idx = np.empty_like(pos)
        for e in np.unique(epochs):
            sel = epochs == e
            idx[sel] = self._perm(int(e))[offsets[sel]]
        t = torch.from_numpy(idx)
        return self.inputs[t], self.labels[t]

    def epochs_after(self, steps: int) -> float:
        """Passes over the data after ``steps`` optimizer steps."""
        return steps * self.batch_size / self.n_seq
