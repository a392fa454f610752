"""Worker throughput: tsweep's real training step against a bare PyTorch loop, side by side.

The worker side is ``tsweep.workers.runner.run_job`` on the demo sweep's largest pre-training
job (nano on prose), shortened to 1M tokens and without intermediate checkpoints (a cooldown
branch trains extra steps that a tokens/s figure would not count): DeepSpeed engine, the cached
data path, evaluation at the worker's pre-training cadence (step 0, doubling steps from
``eval.interval_steps``, the end), the final checkpoint, resume checkpoints and store writes,
all included. The bare side is the same model, batch, optimizer, warmup-stable-decay schedule
and gradient clipping in a plain ``for`` loop over tensors already in memory, with no
evaluation at all. Rounds alternate between the two and the medians are compared.

Pre-training is measured because it is where the worker can waste time: a fine-tune or a
from-scratch run is evaluated every ``eval.interval_steps`` by design, since early stopping on
the held-out loss is its measurement (in the demo about a fifth of such a run's time), and that
cost is the science, not overhead.

With a CUDA device both sides run on it, and the GPU figures of ``benchmarks/_worker_gpu.py``
follow: MFU of the largest ladder rung in bf16 (goal >= 0.35) and packed tiny jobs against one
job per GPU (goal >= 3x).

Run: ``python benchmarks/worker_throughput.py`` (a few minutes on 2 CPU cores).
Last line: ``worker_throughput RATIO`` (worker tokens/s over bare tokens/s; goal >= 0.90).
"""

from __future__ import annotations

import statistics
import tempfile
import time

import torch

from tsweep.api import shipped_sweep_path
from tsweep.core.cadence import branch_start
from tsweep.core.layout import SweepLayout
from tsweep.core.store import Store
from tsweep.data import SweepData
from tsweep.orchestrator.plan import expand
from tsweep.sweeps import load_sweep, parse_sweep
from tsweep.workers.batches import BatchStream
from tsweep.workers.engine import build_model, pick_device
from tsweep.workers.runner import run_job
from tsweep.workers.schedule import WSD

ROUNDS = 3
DEMO = shipped_sweep_path("demo")
SIZE, SOURCE = "nano", "prose"  # the demo's largest pre-training run


def planned_job(sweep, sweep_dir: str):
    """The benchmarked job, planned into ``sweep_dir``."""
    graph = expand(sweep, SweepLayout(sweep_dir))
    return next(j for j in graph.jobs if j.kind == "pretrain" and j.size == SIZE and j.source == SOURCE)


def worker_run(sweep) -> tuple[float, int]:
    """(tokens/s, evaluations made) of one run of the real worker."""
    with tempfile.TemporaryDirectory() as d:
        job = planned_job(sweep, d)
        s = run_job(job, sweep, d)
        evals = Store(SweepLayout(d).store_root).read_evals([job.job_id]).num_rows
    return s["tokens_seen"] / s["wall_time_s"], evals


def bare_tps(sweep, job) -> float:
    tr = sweep.train
    data = SweepData(sweep)
    stream = BatchStream(
        data.train_tokens(job.corpus, job.data_tokens).tokens, seq_len=tr.seq_len, batch_size=tr.batch_size, seed=0
    )
    dev = pick_device()
    batches = [tuple(t.to(dev) for t in stream.batch(i)) for i in range(job.max_steps)]
    model = build_model(job.shape, data.vocab_size, tr.seq_len, seed=0).to(dev)
    opt = torch.optim.AdamW(
        model.parameters(), lr=tr.lr_for(job.n_params), betas=(0.9, 0.95), weight_decay=tr.weight_decay
    )
    wsd = WSD(warmup=tr.warmup_steps)
    wsd.cool(branch_start(job.max_steps, tr.cooldown), job.max_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, wsd)
    model.train()
    t0 = time.perf_counter()
    for x, y in batches:
        loss = model(input_ids=x, labels=y).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tr.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    if dev == "cuda":
        torch.cuda.synchronize()  # the worker syncs every step when it reads the loss
    return job.max_steps * tr.batch_size * tr.seq_len / (time.perf_counter() - t0)


def main() -> None:
    torch.set_num_threads(1)
    d = load_sweep(DEMO).model_dump(mode="json")
    d["pretrain"] = {"tokens": 1_000_000, "checkpoints": []}
    d.pop("replicates")  # its cells name the demo's checkpoints, which this run does not save
    sweep = parse_sweep(d)
    job = planned_job(sweep, tempfile.gettempdir())
    SweepData(sweep).check()  # build the data cache outside the timings
    worker_run(sweep)  # warm-up: JIT-built comm op, allocator
    w, b = [], []
    for _ in range(ROUNDS):
        tps, evals = worker_run(sweep)
        w.append(tps)
        b.append(bare_tps(sweep, job))
    wm, bm = statistics.median(w), statistics.median(b)
    print(
        f"model {job.size} (N={job.n_params:,}), batch {sweep.train.batch_size} x {sweep.train.seq_len}, "
        f"{job.max_steps} steps, 1 thread; the worker evaluated {sweep.eval.tokens:,} tokens {evals} times "
        f"(interval {sweep.eval.interval_steps} steps, doubling)"
    )
    print(f"{'path':34} {'tokens/s (median)':>18} {'rounds':>30}")
    print(f"{'tsweep worker (DeepSpeed, evals)':34} {wm:>18,.0f} {', '.join(f'{x:,.0f}' for x in w):>30}")
    print(f"{'bare PyTorch loop (no evals)':34} {bm:>18,.0f} {', '.join(f'{x:,.0f}' for x in b):>30}")
    if torch.cuda.is_available():
        gpu_figures()
    print(f"worker_throughput {wm / bm:.3f}")


def gpu_figures() -> None:
    import _worker_gpu as g

    m = g.mfu()
    print(
        f"\nMFU, {m['size']} (N={m['n_params']:,}) bf16 on {m['device']}: {m['tokens_per_s']:,.0f} tokens/s, "
        f"{m['tflops']:.0f} TFLOP/s, MFU {m['mfu']:.3f} (goal >= 0.35)"
    )
    p = g.packing()
    print(
        f"packing, {p['jobs']} {p['size']} jobs on one GPU: {p['packed_tokens_per_s']:,.0f} tokens/s against "
        f"{p['alone_tokens_per_s']:,.0f} for one job alone: {p['ratio']:.2f}x (goal >= 3)"
    )


if __name__ == "__main__":
    main()
