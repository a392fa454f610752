"""GPU checks: what a session with a lent GPU runs as it is, in under 10 minutes.

1. MFU of the largest ladder rung (``xl``, 1.2B) in bf16 through the worker's own engine
   (``benchmarks/_worker_gpu.mfu``). Goal >= 0.35 on an H100.
2. Packed tiny jobs against one job per GPU: ``1 / plan.gpu_share(N)`` copies of a tiny
   pre-training job through the real ``run_job``, started together on one device, aggregate
   tokens/s over one such job alone (``benchmarks/_worker_gpu.packing``). Goal >= 3x.
3. With two or more devices, the two-GPU ZeRO path: a pre-training job of ``ZERO_SIZE`` under
   ZeRO-3 in bf16, once on one GPU and once on two (``resources.workers: 2``, one GPU each),
   each through the path a sweep takes (``orchestrator.run.sweep_tuner`` over
   ``workers.trainable.job_trainable``: a Tune trial that starts a Ray Train group). Tokens/s of
   two over one, and the two runs' best held-out losses, which must agree (two ranks that each
   take half of every batch compute the same update up to the order of sums).

On a machine without a CUDA device it prints one line and exits 0, so a CPU-only CI runs it.

Run: ``python benchmarks/gpu_checks.py [--tiny]`` (``--tiny``: toy sizes, the code paths only).
Last line: ``gpu_mfu VALUE``; the lines before it give the packing ratio and the ZeRO figures.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _machine
import _worker_gpu as g

ZERO_SIZE = "small"  # 4.7M: big enough that a step is GPU work, a minute a run; tsweep's choice
ZERO_TOKENS, ZERO_TOKENS_TINY = 4_000_000, 40_000
ZERO_SWEEP = {
    **g.PACK_SWEEP,
    "name": "bench-zero",
    "model_sizes": [ZERO_SIZE],
    "train": {"seq_len": 256, "batch_size": 32, "lr": 1e-3, "warmup_steps": 20},
    "deepspeed": {"zero_stage": 3, "precision": "bf16"},
}
MFU_GOAL, PACK_GOAL = 0.35, 3.0  # the goals for an H100


def devices() -> int:
    """CUDA devices this process sees (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def zero_sweep(workers: int, *, tiny: bool = False) -> dict:
    """The ZeRO check's sweep on ``workers`` GPUs (one each)."""
    tokens = ZERO_TOKENS_TINY if tiny else ZERO_TOKENS
    return {
        **ZERO_SWEEP,
        "name": f"bench-zero-{workers}",
        "pretrain": {"tokens": tokens},
        "resources": {"cpus": 1, "gpus": 1, "workers": workers, "pack": False},
    }


def zero_run(sweep_dict: dict, root: str) -> dict:
    """One pre-training job of ``sweep_dict`` through the sweep's Tune path; its summary row."""
    from tsweep.core.layout import SweepLayout
    from tsweep.core.store import Store
    from tsweep.orchestrator.plan import expand
    from tsweep.orchestrator.run import sweep_tuner
    from tsweep.orchestrator.scheduler import DependencySearcher
    from tsweep.sweeps import parse_sweep
    from tsweep.workers.trainable import job_trainable

    sweep = parse_sweep(sweep_dict)
    sweep_dir = os.path.join(root, sweep.name)
    job = next(j for j in expand(sweep, SweepLayout(sweep_dir)).jobs if j.kind == "pretrain")
    tuner = sweep_tuner(
        job_trainable(sweep.model_dump(mode="json"), sweep_dir),
        DependencySearcher([job]),
        num_samples=1,
        name=sweep.name,
        storage_path=os.path.join(root, "tune"),
        max_failures=0,
        callbacks=[],
    )
    grid = tuner.fit()
    if grid.errors:
        raise RuntimeError(f"{job.label} on {job.workers} GPUs failed: {grid.errors[0]}")
    (summary,) = Store(SweepLayout(sweep_dir).store_root).read_summaries().to_pylist()
    return summary


def zero_two_gpus(*, tiny: bool = False) -> dict:
    """Tokens/s on two GPUs over one, and the two runs' best held-out losses."""
    import ray

    from tsweep.data import SweepData
    from tsweep.orchestrator.run import init_ray
    from tsweep.sweeps import parse_sweep

    SweepData(parse_sweep(zero_sweep(1, tiny=tiny))).check()  # the data cache outside the timings
    init_ray(None)
    try:
        with tempfile.TemporaryDirectory(prefix="tsweep-zero-") as root:
            one, two = (zero_run(zero_sweep(w, tiny=tiny), root) for w in (1, 2))
    finally:
        ray.shutdown()
    tps = [s["tokens_seen"] / s["wall_time_s"] for s in (one, two)]
    return {
        "one_tokens_per_s": tps[0],
        "two_tokens_per_s": tps[1],
        "speedup": tps[1] / tps[0],
        "one_loss": one["best_eval_loss"],
        "two_loss": two["best_eval_loss"],
    }


def main(tiny: bool = False) -> dict | None:
    """Every check this machine's devices allow; None (and one line) without a CUDA device."""
    n = devices()
    if n == 0:
        print("gpu_checks: no CUDA device here (torch.cuda.is_available() is False): skipped")
        return None
    machine = _machine.reference(tiny=tiny)
    t0 = time.perf_counter()
    m = g.mfu(smoke=tiny)
    print(
        f"MFU, {m['size']} (N={m['n_params']:,}) bf16 on {m['device']}: {m['tokens_per_s']:,.0f} tokens/s, "
        f"{m['tflops']:.0f} TFLOP/s, MFU {m['mfu']:.3f} (goal >= {MFU_GOAL})"
    )
    p = g.packing(smoke=tiny)
    print(
        f"packing, {p['jobs']} {p['size']} jobs on one GPU: {p['packed_tokens_per_s']:,.0f} tokens/s against "
        f"{p['alone_tokens_per_s']:,.0f} for one job alone: {p['ratio']:.2f}x (goal >= {PACK_GOAL})"
    )
    z = None
    if n >= 2:
        z = zero_two_gpus(tiny=tiny)
        print(
            f"ZeRO-3 bf16, {ZERO_SIZE}: {z['two_tokens_per_s']:,.0f} tokens/s on 2 GPUs, {z['one_tokens_per_s']:,.0f} "
            f"on 1: {z['speedup']:.2f}x; best held-out loss {z['two_loss']:.4f} on 2, {z['one_loss']:.4f} on 1"
        )
    else:
        print(f"ZeRO on two GPUs: skipped, {n} device here")
    print(f"{n} CUDA device(s); the checks took {time.perf_counter() - t0:.0f} s")
    _machine.report(machine)
    print(f"gpu_packing_ratio {p['ratio']:.3f}")
    print(f"gpu_mfu {m['mfu']:.3f}")
    return {"mfu": m, "packing": p, "zero": z}


if __name__ == "__main__":
    main(tiny="--tiny" in sys.argv[1:])
