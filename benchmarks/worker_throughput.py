"""Worker throughput: tsweep's real training step against a bare PyTorch loop, side by side.

The job: the shipped demo sweep's largest pre-training job, looked up by what it is (the
pre-training job of the most parameters, the first in plan order on a tie), not by a name, so a
demo that changes its sizes or sources is followed; a demo with no pre-training job fails with
one line saying so. Its budget and its checkpoints p are scaled by ``SCALE`` (the demo's 4M tokens
and p = 125k .. 2M become 1M and 31k .. 500k), so the cooldown branches keep their share.

The worker side is ``tsweep.workers.runner.run_job`` on that job, with everything the worker
does: the DeepSpeed engine, the cached data path, evaluations at the pre-training cadence (step 0,
doubling steps from ``eval.interval_steps``, the end), a cooldown branch to every intermediate p
(snapshot, decay, save the p-checkpoint, rewind), the final checkpoint, resume checkpoints and
store writes. Its tokens are all the steps it trained, the branches' steps included, over its
wall time. The bare side is the same model (same seed), batches, optimizer and parameter
groups, warmup-stable-decay schedule and gradient clipping in a plain ``for`` loop over tensors
already in memory (``_machine.bare_loop``), with no evaluation, branch or checkpoint. Each round
runs both, the order alternating; the figure is the median over rounds of the round's ratio, so
a shared machine's load, which drifts over minutes, weighs on both sides of each ratio alike.
Beside it, the same ratio in tokens per CPU-second of each whole call (start-up and set-up
included on both sides): one thread's CPU time does not count the time it waited for a core, so
on a machine shared with other work it is the steadier of the two.

Both sides train the same run: the worker's training loss at each of its evaluations equals the
bare loop's at that step (the branches rewind exactly), printed as the largest difference.

Pre-training is measured because it is where the worker can waste time: a fine-tune or a
from-scratch run is evaluated every ``eval.interval_steps`` by design, since early stopping on
the held-out loss is its measurement, and that cost is the science, not overhead.

The GPU figures live in ``benchmarks/gpu_checks.py``.

Run: ``python benchmarks/worker_throughput.py [--tiny]`` (about 5 minutes on 2 CPU cores;
``--tiny``, the suite's size, 1/64 of the demo's budget, one round, in seconds).
Last line: ``worker_throughput RATIO`` (median of the rounds' worker tokens/s over bare tokens/s;
goal >= 0.95).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _machine

from tsweep.api import shipped_sweep_path
from tsweep.core.cadence import branch_start
from tsweep.core.job import Job
from tsweep.core.layout import SweepLayout
from tsweep.core.store import Store
from tsweep.data import SweepData
from tsweep.orchestrator.plan import expand
from tsweep.sweeps import Sweep, load_sweep, parse_sweep
from tsweep.workers.batches import BatchStream
from tsweep.workers.engine import build_model, pick_device
from tsweep.workers.runner import run_job
from tsweep.workers.schedule import WSD

GOAL = 0.95
DEMO = "demo"
LOOKUP_KIND = "pretrain"  # the kind of job looked up (tsweep.core.job.Job.kind)
SCALE, ROUNDS = 1 / 4, 3  # 1M tokens, about 40 s a side on one core of a 2-core AMD EPYC; tsweep's choice
TINY_SCALE, TINY_ROUNDS = 1 / 64, 1  # 62.5k tokens: seconds a side, the branches and evaluations all present


def demo_sweep(scale: float) -> Sweep:
    """The shipped demo with its pre-training budget and checkpoints scaled by ``scale``."""
    d = load_sweep(shipped_sweep_path(DEMO)).model_dump(mode="json")
    d.pop("replicates", None)  # replicate runs name the full grid's p; the benchmarked job is not one
    pre = d["pretrain"]
    pre["tokens"] = round(pre["tokens"] * scale)
    pre["checkpoints"] = [round(p * scale) for p in pre["checkpoints"]]
    return parse_sweep(d)


def largest_pretrain(jobs: list[Job]) -> Job:
    """The pre-training job of the most parameters (the first in plan order on a tie)."""
    found = [j for j in jobs if j.kind == LOOKUP_KIND]
    if not found:
        kinds = sorted({j.kind for j in jobs})
        raise LookupError(f"the {DEMO} sweep plans no {LOOKUP_KIND!r} job to benchmark (it plans {', '.join(kinds)})")
    return max(found, key=lambda j: j.n_params)


def planned_job(sweep: Sweep, sweep_dir: str) -> Job:
    """The benchmarked job, planned into ``sweep_dir``."""
    return largest_pretrain(list(expand(sweep, SweepLayout(sweep_dir)).jobs))


def branch_steps(job: Job, sweep: Sweep) -> int:
    """Steps the worker trains in cooldown branches: from each intermediate p's branch start to
    its p (``tsweep.workers.kinds.Pretraining``)."""
    per_step = sweep.train.batch_size * sweep.train.seq_len
    total = 0
    for p in job.checkpoints:
        p_steps = max(1, round(p / per_step))
        if p_steps < job.max_steps:
            total += p_steps - branch_start(p_steps, sweep.train.cooldown)
    return total


def worker_run(sweep: Sweep) -> dict:
    """One run of the real worker: tokens/s over every step it trained (wall time from its
    runner's start), tokens per CPU-second of the whole call (start-up included), its eval rows."""
    with tempfile.TemporaryDirectory() as d:
        job = planned_job(sweep, d)
        cpu0 = time.process_time()
        s = run_job(job, sweep, d)
        cpu = time.process_time() - cpu0
        evals = Store(SweepLayout(d).store_root).read_evals([job.job_id]).to_pylist()
    per_step = sweep.train.batch_size * sweep.train.seq_len
    tokens = s["tokens_seen"] + branch_steps(job, sweep) * per_step
    train_loss = {r["step"]: r["train_loss"] for r in evals if r["train_loss"] is not None}
    return {
        "tokens_per_s": tokens / s["wall_time_s"],
        "tokens_per_cpu_s": tokens / cpu,
        "tokens": tokens,
        "evals": len(evals),
        "train_loss": train_loss,
    }


def bare_run(sweep: Sweep, job: Job) -> dict:
    """The same training in a plain loop: tokens/s of the loop, tokens per CPU-second of the
    whole call (its set-up included, as the worker's), and the training loss of every step."""
    cpu0 = time.process_time()
    tr = sweep.train
    data = SweepData(sweep)
    stream = BatchStream(
        data.train_tokens(job.corpus, job.data_tokens).tokens,
        seq_len=tr.seq_len,
        batch_size=tr.batch_size,
        seed=job.seed,
    )
    dev = pick_device()
    batches = [tuple(t.to(dev) for t in stream.batch(i)) for i in range(job.max_steps)]
    assert job.shape is not None, "the planner resolves every job's shape"
    model = build_model(job.shape, data.vocab_size, tr.seq_len, seed=job.seed).to(dev)
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]  # as workers.engine.build_engine groups them
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": tr.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=tr.lr_for(job.n_params),
        betas=(0.9, 0.95),
        eps=1e-8,
    )
    wsd = WSD(warmup=tr.warmup_steps)
    wsd.cool(branch_start(job.max_steps, tr.cooldown), job.max_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, wsd)
    tokens, seconds, losses = _machine.bare_loop(model, batches, opt, sched, tr.grad_clip)
    cpu = time.process_time() - cpu0
    return {"tokens_per_s": tokens / seconds, "tokens_per_cpu_s": tokens / cpu, "losses": losses}


def loss_gap(worker: dict, bare: dict) -> float:
    """Largest difference of the training loss at the worker's evaluations (after step s, the
    loss of batch s - 1) from the bare loop's loss on that batch."""
    losses = bare["losses"]
    return max(abs(loss - losses[s - 1]) for s, loss in worker["train_loss"].items() if 0 < s <= len(losses))


def each_ratio(ratios: list[float]) -> str:
    return ", ".join(f"{x:.3f}" for x in ratios)


def main(tiny: bool = False) -> dict:
    scale, rounds = (TINY_SCALE, TINY_ROUNDS) if tiny else (SCALE, ROUNDS)
    sweep = demo_sweep(scale)
    job = planned_job(sweep, tempfile.gettempdir())
    machine = _machine.reference(tiny=tiny)
    torch.set_num_threads(1)  # a sweep's CPU job gets one core (resources.cpus: 1)
    SweepData(sweep).check()  # build the data cache outside the timings
    if not tiny:
        worker_run(demo_sweep(TINY_SCALE))  # warm-up: DeepSpeed's first engine, the allocator
    w, b = [], []
    for r in range(rounds):
        if r % 2:
            b.append(bare_run(sweep, job))
            w.append(worker_run(sweep))
        else:
            w.append(worker_run(sweep))
            b.append(bare_run(sweep, job))
    ratios = [wr["tokens_per_s"] / br["tokens_per_s"] for wr, br in zip(w, b, strict=True)]
    cpu_ratios = [wr["tokens_per_cpu_s"] / br["tokens_per_cpu_s"] for wr, br in zip(w, b, strict=True)]
    wm = statistics.median(r["tokens_per_s"] for r in w)
    bm = statistics.median(r["tokens_per_s"] for r in b)
    gap = max(loss_gap(wr, br) for wr, br in zip(w, b, strict=True))
    tr = sweep.train
    print(
        f"{DEMO}'s largest pre-training job: {job.label}, {job.size} (N={job.n_params:,}), "
        f"{job.data_tokens:,} tokens ({scale:g} of the demo's), p = {', '.join(f'{p:,}' for p in job.checkpoints)}"
    )
    print(
        f"batch {tr.batch_size} x {tr.seq_len}, {job.max_steps} steps + {branch_steps(job, sweep)} in cooldown "
        f"branches, 1 thread, {pick_device()}; the worker evaluated {sweep.eval.tokens:,} tokens {w[0]['evals']} "
        f"times (interval {sweep.eval.interval_steps} steps, doubling)"
    )
    print(f"{'path':44} {'tokens/s (median)':>18} {'rounds':>26}")
    for label, rs, m in (
        ("tsweep worker (DeepSpeed, evals, branches)", w, wm),
        ("bare PyTorch loop (training only)", b, bm),
    ):
        each = ", ".join(f"{r['tokens_per_s']:,.0f}" for r in rs)
        print(f"{label:44} {m:>18,.0f} {each:>26}")
    print(f"{'worker / bare, each round':44} {statistics.median(ratios):>18.3f} {each_ratio(ratios):>26}")
    cpu_med = statistics.median(cpu_ratios)
    print(f"{'  per CPU-second, set-up included':44} {cpu_med:>18.3f} {each_ratio(cpu_ratios):>26}")
    print(f"same run: training loss at the worker's evaluations within {gap:.1e} of the bare loop's")
    print(f"goal: worker / bare >= {GOAL}")
    _machine.report(machine)
    ratio = statistics.median(ratios)
    print(f"worker_throughput {ratio:.3f}")
    return {
        "ratio": ratio,
        "ratios": ratios,
        "cpu_ratios": cpu_ratios,
        "worker": w,
        "bare": b,
        "loss_gap": gap,
        "job": job,
        "sweep": sweep,
    }


if __name__ == "__main__":
    try:
        main(tiny="--tiny" in sys.argv[1:])
    except LookupError as exc:
        raise SystemExit(f"worker_throughput: {exc}") from None
