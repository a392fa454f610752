"""The size ladder: what model "size X" is, kept apart from how N parameters are trained.

Each rung is a GPT-2-style decoder (transformers' ``GPT2LMHeadModel``) given by layers, width
and heads. N is the exact non-embedding parameter count, the quantity the scaling laws use
(Kaplan et al. 2020, sec. 2.1: embeddings, token and position, are excluded). Per layer a
GPT-2 block holds 12 d^2 + 13 d parameters (attention 4 d^2 + 4 d, MLP 8 d^2 + 5 d, two layer
norms 4 d), plus the final layer norm's 2 d; ``tests/test_sizes.py`` checks this against the
instantiated model.

The small rungs run on one CPU core in seconds (CI, the demo); the large ones are for GPUs.
No torch here: the planner sizes jobs without importing it.

A sweep may declare rungs of its own (``models:`` in the sweep YAML): a GPT-2 shape, which is
counted by the formula above, or any causal-LM architecture transformers builds from a config
(``model_type`` plus its keys). Such a rung carries its config as canonical JSON (``config``)
and an ``exact_params`` counted on the instantiated model on the meta device at plan time by
``tsweep.workers.rungs`` (a child process: no torch here), with the same exclusions as Kaplan et
al.: token and position embeddings and an untied output head.
"""

from __future__ import annotations

from dataclasses import dataclass

# Bytes of training state per parameter, (kept whole on every device, sharded over the workers)
# by ZeRO stage: weights 4, gradients 4 and Adam's two moments 8, the 16 Rajbhandari et al. 2020
# count for mixed-precision Adam (sec. 3.1); stage 1 shards the moments, stage 2 the gradients
# too, stage 3 everything (their sec. 5).
_STATE_BYTES = {0: (16, 0), 1: (8, 8), 2: (4, 12), 3: (0, 16)}
# Activation bytes per token per layer per unit of width, in 16-bit: sbh(34 + 5as/h) for a layer
# without recomputation (Korthikanti et al. 2022, sec. 4.1), of which this keeps the 34...
_ACT_BYTES = 34
# ...times this margin: tsweep's choice, carried from the estimate's first version with no
# measurement behind it; it stands for the 5as/h attention term left out (as large as the 34 at
# seq_len = 6.8 d_model / n_head) and the allocator's overhead, so that the plan refuses a job
# rather than let it run out of memory.
_ACT_MARGIN = 2


@dataclass(frozen=True, kw_only=True)
class ModelSize:
    """One rung: a GPT-2 shape (layers, width, heads), or another architecture's with its N counted."""

    name: str
    n_layer: int
    d_model: int
    n_head: int
    # N counted on an instantiated model (an existing model's architecture), not derived
    exact_params: int | None = None
    # a transformers architecture other than tsweep's GPT-2: its model_type and its config keys as
    # canonical JSON (sorted keys; vocab_size is the tokenizer's, set when the model is built)
    model_type: str = "gpt2"
    config: str | None = None

    def __post_init__(self) -> None:
        if self.config is None and self.d_model % self.n_head:
            raise ValueError(f"size {self.name}: d_model {self.d_model} is not divisible by n_head {self.n_head}")

    @property
    def n_params(self) -> int:
        """Exact non-embedding parameters N."""
        if self.exact_params is not None:
            return self.exact_params
        d = self.d_model
        return self.n_layer * (12 * d * d + 13 * d) + 2 * d

    def embedding_params(self, vocab_size: int, seq_len: int) -> int:
        """Token and position embeddings (GPT-2's output head is tied to the token embedding)."""
        return (vocab_size + seq_len) * self.d_model

    def flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs per token: 6 N plus attention's 6 n_layer seq_len d_model
        (Kaplan et al. 2020, table 1, forward 2N + 2 n_layer n_ctx d_attn, backward twice that)."""
        return 6.0 * self.n_params + 6.0 * self.n_layer * seq_len * self.d_model

    def train_memory_bytes(self, vocab_size: int, seq_len: int, micro_batch: int, zero_stage: int, workers: int) -> int:
        """Rough training memory per device: :data:`_STATE_BYTES` per parameter, embeddings included,
        ZeRO dividing the sharded part over ``workers``, plus activations, :data:`_ACT_BYTES` d
        bytes per token per layer times :data:`_ACT_MARGIN`."""
        p = self.n_params + self.embedding_params(vocab_size, seq_len)
        whole, sharded = _STATE_BYTES[zero_stage]
        states = p * whole + p * sharded / max(workers, 1)
        acts = _ACT_BYTES * self.d_model * seq_len * micro_batch * self.n_layer * _ACT_MARGIN
        return int(states + acts)


def _ladder(*sizes: ModelSize) -> dict[str, ModelSize]:
    """The rungs by name, in the order given (smallest first)."""
    return {s.name: s for s in sizes}


# N in the comments. gpt2-124m and medium are GPT-2 small's and medium's shapes (Radford et al.
# 2019, table 2; the released small model's 124M counts its embeddings); the other rungs are
# tsweep's choice, about 2 to 6 times apart in N, the smallest trained on one CPU core in seconds.
SIZE_LADDER: dict[str, ModelSize] = _ladder(
    ModelSize(name="pico", n_layer=1, d_model=32, n_head=2),  # 13k
    ModelSize(name="nano", n_layer=2, d_model=32, n_head=2),  # 25k
    ModelSize(name="micro", n_layer=2, d_model=48, n_head=2),  # 57k
    ModelSize(name="mini", n_layer=3, d_model=64, n_head=4),  # 150k
    ModelSize(name="tiny", n_layer=4, d_model=128, n_head=4),  # 793k
    ModelSize(name="small", n_layer=6, d_model=256, n_head=8),  # 4.7M
    ModelSize(name="base", n_layer=8, d_model=512, n_head=8),  # 25M
    ModelSize(name="gpt2-124m", n_layer=12, d_model=768, n_head=12),  # 85M
    ModelSize(name="medium", n_layer=24, d_model=1024, n_head=16),  # 302M
    ModelSize(name="large", n_layer=24, d_model=1536, n_head=16),  # 680M
    ModelSize(name="xl", n_layer=24, d_model=2048, n_head=16),  # 1.2B
)


def get_size(name: str) -> ModelSize:
    """A ladder rung by name. (An existing model's architecture, ``hf:MODEL``, is resolved by the
    planner from the model's config: see ``tsweep.workers.pretrained``.)"""
    try:
        return SIZE_LADDER[name]
    except KeyError:
        raise KeyError(f"unknown model size {name!r}; known: {', '.join(SIZE_LADDER)}") from None
