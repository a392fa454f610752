"""Model and DeepSpeed engine construction: one path for CPU and GPU.

- The model is transformers' ``GPT2LMHeadModel`` built from a size-ladder rung (random init,
  seeded, no dropout: runs are short and early-stopped, Hernandez et al. 2021 sec. 2). Its
  activation is GPT-2's tanh-approximate GELU computed by one fused torch kernel
  (``gelu_pytorch_tanh``) rather than the eight elementwise ops of ``gelu_new``: the same
  function, and about a quarter of a small model's forward time on a CPU.
- The engine is DeepSpeed's, with torch's AdamW handed in (so DeepSpeed JIT-compiles no
  optimizer of its own), run as torch's fused kernel: one pass over every parameter instead of
  a dozen small ops per tensor, which is much of a small model's step on a CPU
  (``benchmarks/worker_throughput.py`` measures it per rung against the eager loop). ZeRO stage
  and precision come from the sweep, and so do any DeepSpeed keys the sweep brings
  (``deepspeed.config``), merged over the shipped config for the stage. On a machine without
  CUDA, DeepSpeed's CPU accelerator is used with gloo; with CUDA, NCCL and bf16.
- A single-process job brings up a one-rank process group itself (loopback, a free port);
  under Ray Train the group already exists and is reused. DeepSpeed's shared-memory all-reduce
  op, which training never calls, is not built (:func:`skip_shm_comm`).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from importlib import resources
from typing import TYPE_CHECKING, Any

import torch

from tsweep.core.sizes import ModelSize
from tsweep.sweeps import Sweep, deep_merge
from tsweep.workers.hf import quiet

if TYPE_CHECKING:
    from deepspeed import DeepSpeedEngine


def pick_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def rank_world() -> tuple[int, int]:
    """This process's rank and the group's size (0, 1 with no group)."""
    d = torch.distributed
    if d.is_available() and d.is_initialized():
        return d.get_rank(), d.get_world_size()
    return 0, 1


def ensure_distributed() -> None:
    """Initialise torch.distributed once per process (a one-rank group on loopback if alone).

    Alone, this process acts as its own launcher: DeepSpeed requires the variables a launcher
    (torchrun, Ray Train) sets, so exactly those are set, once per process, as torchrun would."""
    import deepspeed

    skip_shm_comm()  # also under Ray Train, whose group exists before DeepSpeed's backend starts
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return
    if "WORLD_SIZE" not in os.environ or os.environ.get("TSWEEP_OWN_GROUP") == "1":
        os.environ.update(
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(_free_port()),
            RANK="0",
            LOCAL_RANK="0",
            WORLD_SIZE="1",
            TSWEEP_OWN_GROUP="1",
        )
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    deepspeed.init_distributed(dist_backend=backend, verbose=False)


def skip_shm_comm() -> None:
    """Keep DeepSpeed from building its shared-memory all-reduce op, which training never uses.

    DeepSpeed's torch backend builds ``deepspeed_shm_comm`` (C++, JIT) in every process it starts
    in, for ``inference_all_reduce`` only (tensor-parallel inference); training's collectives go
    through the process group. The build costs 25 s of both cores of a 2-core AMD EPYC the first
    time on a machine (a newcomer's first ``tsweep demo``: ahead of its first two jobs) and 0.2 s
    per process after. An op DeepSpeed's probe of compatible ops marks incompatible is never built
    (``deepspeed.ops.__compatible_ops__``, kept in the module so that an edit persists), and the
    backend falls back to the process group."""
    import deepspeed.ops
    from deepspeed.accelerator import get_accelerator

    builder = get_accelerator().create_op_builder("ShareMemCommBuilder")
    if builder is not None:
        deepspeed.ops.__compatible_ops__[builder.NAME] = False


def build_model(size: ModelSize, vocab_size: int, seq_len: int, seed: int) -> torch.nn.Module:
    """A rung's model, randomly initialised (seeded): tsweep's GPT-2, or a transformers
    architecture the sweep declares (``tsweep.workers.rungs``)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    if size.config is not None:
        from tsweep.workers.rungs import build_hf_model

        return build_hf_model(size, vocab_size, seq_len, seed)

    cfg = GPT2Config(
        vocab_size=vocab_size,
        n_positions=seq_len,
        n_embd=size.d_model,
        n_layer=size.n_layer,
        n_head=size.n_head,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=None,
        eos_token_id=None,
        use_cache=False,
        loss_type="ForCausalLM",
        activation_function="gelu_pytorch_tanh",
    )  # type: ignore[call-arg]  # loss_type: kept as an extra attribute, left out of GPT2Config's signature
    torch.manual_seed(seed)
    quiet()  # config chatter, not signal
    model = GPT2LMHeadModel(cfg)
    if torch.cuda.is_available():
        model.config._attn_implementation = "sdpa"
    return model


# The shipped per-stage DeepSpeed configs (bucket sizes, overlap, ...), package data beside this
# module; the sweep's own DeepSpeed keys (deepspeed.config) are merged over them, then tsweep
# overrides the keys it owns (batch, clipping, precision, stage) and passes its own optimizer and
# schedule (the schema refuses those keys in a user's config).
DEEPSPEED_CONFIGS = resources.files("tsweep.workers") / "deepspeed"
_OWNED_ELSEWHERE = ("optimizer", "scheduler", "fp16")


def clips_in_torch(sweep: Sweep) -> bool:
    """Whether tsweep clips gradients itself with torch's fused ``clip_grad_norm_``: with ZeRO 0
    in fp32, DeepSpeed would clip parameter by parameter plus an all-reduce of the norm (7% of
    a small model's step on a CPU, measured by ``benchmarks/worker_throughput.py``). The
    gradients are already averaged over ranks when ``engine.backward`` returns, so the norm is
    the same. Sharded or bf16 runs keep DeepSpeed's clipping, which sees its own shards and
    fp32 master gradients."""
    return sweep.deepspeed.zero_stage == 0 and sweep.deepspeed.precision == "fp32"


def clip_gradients(engine: DeepSpeedEngine, sweep: Sweep) -> None:
    """Call between ``engine.backward`` and ``engine.step``."""
    if clips_in_torch(sweep):
        torch.nn.utils.clip_grad_norm_(engine.module.parameters(), sweep.train.grad_clip)


def deepspeed_config(sweep: Sweep, micro_batch: int, world_size: int) -> dict[str, Any]:
    ds = sweep.deepspeed
    base = json.loads((DEEPSPEED_CONFIGS / f"zero{ds.zero_stage}.json").read_text())
    for key in _OWNED_ELSEWHERE:
        base.pop(key, None)
    base = {**base, "steps_per_print": 10**12, "wall_clock_breakdown": False}  # quiet unless the user asks
    base = deep_merge(base, ds.config)
    zero = {**base.get("zero_optimization", {}), "stage": ds.zero_stage}
    if not torch.cuda.is_available():
        zero.pop("overlap_comm", None)  # overlapping needs CUDA streams
    return {
        **base,
        "train_micro_batch_size_per_gpu": micro_batch,
        "gradient_accumulation_steps": 1,
        "gradient_clipping": 0.0 if clips_in_torch(sweep) else sweep.train.grad_clip,
        "zero_optimization": zero,
        "bf16": {"enabled": ds.precision == "bf16"},
        "zero_allow_untested_optimizer": True,
    }


def build_engine(
    model: torch.nn.Module, sweep: Sweep, *, lr: float, schedule: Callable[[int], float]
) -> DeepSpeedEngine:
    """A DeepSpeed engine around ``model`` with AdamW and ``schedule`` (step -> LR factor, a
    ``tsweep.workers.schedule.WSD``) as its LambdaLR."""
    import deepspeed

    ensure_distributed()
    world = torch.distributed.get_world_size()
    micro = max(1, sweep.train.batch_size // world)
    tr = sweep.train
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for p in model.parameters():
        (no_decay if p.ndim < 2 else decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": tr.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr,
        betas=(0.9, 0.95),
        eps=1e-8,
        fused=True,  # module docstring: one kernel for every parameter, CPU and CUDA alike
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=opt, lr_scheduler=sched, config=deepspeed_config(sweep, micro, world)
    )
    if world == 1 and sweep.deepspeed.zero_stage == 0:
        # Averaging gradients over one rank is the identity; skip the flatten-copy-allreduce.
        engine.enable_backward_allreduce = False
    return engine
