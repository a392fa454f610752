"""The measuring code of ``benchmarks/gpu_checks.py`` (MFU, packed jobs), run there when a CUDA device is present.

1. MFU of the largest ladder rung: the worker's training step (``workers.engine.build_engine``:
   DeepSpeed, bf16, the sweep's ZeRO stage, sdpa attention) on random tokens, model FLOPs per
   token from ``ModelSize.flops_per_token`` (Kaplan et al. 2020, table 1) over the device's
   dense bf16 peak. Goal >= 0.35.
2. Packing: ``k = 1 / plan.gpu_share(N)`` copies of a tiny pre-training job (the real
   ``run_job``: data path, evaluations, checkpoints, store writes) started together on one
   device, as Tune runs them with fractional GPUs, against the same job alone. The figure is
   aggregate tokens/s packed over tokens/s alone. Goal >= 3.

Each run starts in a fresh process (``spawn``), and the packed runs wait on one barrier so that
their training overlaps; a run's time is from the barrier to its summary row, set-up included,
the same for both sides. ``smoke=True`` shrinks both to toy sizes so that the code path runs on
a CPU in tests; its figures mean nothing.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import queue
import tempfile
import time

# Dense bf16 peak FLOP/s by device name (NVIDIA H100 SXM and H200 datasheets: 989.4 TFLOP/s
# without sparsity; H100 PCIe: 756 TFLOP/s; A100: 312 TFLOP/s, A100 datasheet;
# H100 NVL: 835 TFLOP/s, H100 NVL datasheet.) Most specific names first: the first match wins.
PEAK_BF16 = {"H200": 989e12, "H100 PCIe": 756e12, "H100 NVL": 835e12, "H100": 989e12, "A100": 312e12}

MFU_SIZE = "xl"  # the largest rung of workers.sizes.SIZE_LADDER
MFU_SEQ, MFU_BATCH, MFU_STEPS, MFU_WARMUP = 1024, 16, 20, 5
PACK_SIZE = "pico"
RUN_TIMEOUT_S = 600  # a packed run that dies (out of memory, say) must not hang the others
PACK_SWEEP = {
    "name": "bench-pack",
    "target": "synth",
    "sources": ["scratch", "src"],
    "corpora": {
        "synth": {"kind": "synthetic", "distance": 0.0, "seed": 0, "documents": 400},
        "src": {"kind": "synthetic", "distance": 0.3, "seed": 0, "documents": 12000},
    },
    "model_sizes": [PACK_SIZE],
    "finetune_tokens": [16_000],
    "pretrain": {"tokens": 2_000_000},
    "eval": {"tokens": 16_000, "interval_steps": 50, "patience_epochs": 0.5},
    "train": {"seq_len": 64, "batch_size": 32, "lr": 3e-3, "warmup_steps": 20},
    "resources": {"cpus": 1, "gpus": 1, "pack": True},
}


def peak_flops(device_name: str) -> float | None:
    for key, peak in PEAK_BF16.items():
        if key in device_name:
            return peak
    return None


def mfu(*, smoke: bool = False) -> dict:
    """Tokens/s and MFU of the worker's bf16 training step on the largest rung."""
    import torch

    from tsweep.core.sizes import get_size
    from tsweep.sweeps import parse_sweep
    from tsweep.workers.engine import build_engine, build_model
    from tsweep.workers.schedule import WSD

    size = get_size("pico" if smoke else MFU_SIZE)
    seq, batch, steps, warm = (32, 4, 3, 1) if smoke else (MFU_SEQ, MFU_BATCH, MFU_STEPS, MFU_WARMUP)
    sweep = parse_sweep(
        {
            **PACK_SWEEP,
            "name": "bench-mfu",
            "model_sizes": [size.name],
            "train": {"seq_len": seq, "batch_size": batch},
            "deepspeed": {"precision": "bf16"},
            "resources": {},
        }
    )
    vocab = 264
    engine = build_engine(build_model(size, vocab, seq, seed=0), sweep, lr=1e-4, schedule=WSD(warmup=0))
    dev = engine.device
    x = torch.randint(0, vocab, (batch, seq), device=dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    for i in range(steps + warm):
        if i == warm:
            sync()
            t0 = time.perf_counter()
        loss = engine(input_ids=x, labels=x).loss
        engine.backward(loss)
        engine.step()
    sync()
    tps = steps * batch * seq / (time.perf_counter() - t0)
    name = torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"
    del engine, loss  # free the device for the packed runs that follow
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    peak = peak_flops(name)
    achieved = tps * size.flops_per_token(seq)
    return {
        "size": size.name,
        "n_params": size.n_params,
        "device": name,
        "tokens_per_s": tps,
        "tflops": achieved / 1e12,
        "mfu": achieved / peak if peak else float("nan"),
    }


def _packed_worker(sweep_dict: dict, barrier, out) -> None:
    import torch

    from tsweep.core.layout import SweepLayout
    from tsweep.orchestrator.plan import expand
    from tsweep.sweeps import parse_sweep
    from tsweep.workers.runner import run_job

    torch.set_num_threads(1)
    sweep = parse_sweep(sweep_dict)
    with tempfile.TemporaryDirectory() as d:
        job = next(j for j in expand(sweep, SweepLayout(d)).jobs if j.kind == "pretrain")
        barrier.wait(timeout=RUN_TIMEOUT_S)
        t0 = time.time()
        s = run_job(job, sweep, d)
    out.put((t0, time.time(), s["tokens_seen"]))


def _run_together(sweep_dict: dict, k: int) -> float:
    """Aggregate tokens/s of ``k`` copies of the job started together."""
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(k), ctx.Queue()
    procs = [ctx.Process(target=_packed_worker, args=(sweep_dict, barrier, out)) for _ in range(k)]
    for p in procs:
        p.start()
    try:
        results = [out.get(timeout=RUN_TIMEOUT_S) for _ in procs]
    except queue.Empty:
        codes = [p.exitcode for p in procs]
        for p in procs:
            p.kill()
        raise RuntimeError(f"a packed run did not finish within {RUN_TIMEOUT_S} s (exit codes {codes})") from None
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"a packed run exited with {p.exitcode}")
    start, end = min(r[0] for r in results), max(r[1] for r in results)
    return sum(r[2] for r in results) / (end - start)


def packing(*, smoke: bool = False, k: int | None = None) -> dict:
    """Aggregate tokens/s of k packed tiny jobs on one device over one such job alone."""
    from tsweep.core.sizes import get_size
    from tsweep.data import SweepData
    from tsweep.orchestrator.plan import gpu_share
    from tsweep.sweeps import parse_sweep

    sweep = dict(PACK_SWEEP)
    if smoke:
        sweep["pretrain"] = {"tokens": 20_000}
        sweep["resources"] = {"cpus": 1}
        sweep["corpora"] = {name: {**c, "documents": 200} for name, c in PACK_SWEEP["corpora"].items()}
    k = k or round(1 / gpu_share(get_size(PACK_SIZE).n_params))
    SweepData(parse_sweep(sweep)).check()  # build the data cache outside the timings
    alone = _run_together(sweep, 1)
    packed = _run_together(sweep, k)
    return {
        "size": PACK_SIZE,
        "jobs": k,
        "alone_tokens_per_s": alone,
        "packed_tokens_per_s": packed,
        "ratio": packed / alone,
    }
