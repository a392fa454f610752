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

The worker steps AdamW with torch's fused kernel (``tsweep.workers.engine``: one kernel over all
parameters instead of a dozen small ops per tensor, which on a small model is much of a step), and
the bare loop is the plain eager one, torch's default AdamW. So the figure is the worker, with
all its work, against the loop a researcher would write; a third side, the bare loop with the
fused AdamW, separates what the worker adds (worker over bare fused) from what the fused kernel
gains (bare fused over bare eager). Every rung of the demo is measured (pico, mini); the last
line is the largest's.

The three sides train the same run: the worker's training loss at each of its evaluations equals
the bare fused loop's at that step (the branches rewind exactly), and the fused loop's loss on
every one of the first 40 batches equals the eager loop's within 1e-4 (the kernels sum in another
order); both are printed as the largest difference.

Pre-training is measured because it is where the worker can waste time: a fine-tune or a
from-scratch run is evaluated every ``eval.interval_steps`` by design, since early stopping on
the held-out loss is its measurement, and that cost is the science, not overhead.

The GPU figures live in ``benchmarks/gpu_checks.py``.

Run: ``python benchmarks/worker_throughput.py [--tiny]`` (about 5 minutes on 2 CPU cores;
``--tiny``, the suite's size, 1/64 of the demo's budget, one round, in seconds).
Last line: ``worker_throughput RATIO`` (median of the rounds' worker tokens/s over the bare eager
loop's, on the largest rung; goal >= 0.95 with everything the worker does, and >= 1.3 from the
fused optimizer where a rung's step is dominated by it; each rung's ratio is on the lines before).
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
FASTER = 1.3  # the fused path's goal over the bare eager loop, where a rung gains from it (tsweep's)
FIRST_STEPS, FIRST_STEPS_TOL = 40, 1e-4  # the fused loop's losses equal the eager loop's over these steps


def demo_sweep(scale: float) -> Sweep:
    """The shipped demo with its pre-training budget and checkpoints scaled by ``scale``."""
    d = load_sweep(shipped_sweep_path(DEMO)).model_dump(mode="json")
    d.pop("replicates", None)  # replicate runs name the full grid's p; the benchmarked job is not one
    pre = d["pretrain"]
    pre["tokens"] = round(pre["tokens"] * scale)
    pre["checkpoints"] = [round(p * scale) for p in pre["checkpoints"]]
    return parse_sweep(d)


def rungs(jobs: list[Job]) -> list[Job]:
    """One pre-training job per model size (the first in plan order), smallest first."""
    found = [j for j in jobs if j.kind == LOOKUP_KIND]
    if not found:
        kinds = sorted({j.kind for j in jobs})
        raise LookupError(f"the {DEMO} sweep plans no {LOOKUP_KIND!r} job to benchmark (it plans {', '.join(kinds)})")
    first: dict[str, Job] = {}
    for j in found:
        first.setdefault(j.size, j)
    return sorted(first.values(), key=lambda j: j.n_params)


def planned_rungs(sweep: Sweep, sweep_dir: str) -> list[Job]:
    """The benchmarked jobs, planned into ``sweep_dir``."""
    return rungs(list(expand(sweep, SweepLayout(sweep_dir)).jobs))


def planned_job(sweep: Sweep, sweep_dir: str, size: str | None = None) -> Job:
    """The benchmarked job of ``size`` (default: the largest), planned into ``sweep_dir``."""
    found = planned_rungs(sweep, sweep_dir)
    return found[-1] if size is None else next(j for j in found if j.size == size)


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


def worker_run(sweep: Sweep, size: str | None = None) -> dict:
    """One run of the real worker on the pre-training job of ``size`` (default: the largest):
    tokens/s over every step it trained (wall time from its runner's start), tokens per
    CPU-second of the whole call (start-up included), its eval rows."""
    with tempfile.TemporaryDirectory() as d:
        job = planned_job(sweep, d, size)
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


def bare_run(sweep: Sweep, job: Job, fused: bool = False) -> dict:
    """The same training in a plain loop (torch's default AdamW, or with ``fused`` its fused
    kernel, as the worker steps it): tokens/s of the loop, tokens per CPU-second of the whole
    call (its set-up included, as the worker's), and the training loss of every step."""
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
        **({"fused": True} if fused else {}),
    )
    wsd = WSD(warmup=tr.warmup_steps)
    wsd.cool(branch_start(job.max_steps, tr.cooldown), job.max_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, wsd)
    tokens, seconds, losses = _machine.bare_loop(model, batches, opt, sched, tr.grad_clip)
    cpu = time.process_time() - cpu0
    return {"tokens_per_s": tokens / seconds, "tokens_per_cpu_s": tokens / cpu, "losses": losses}


def first_steps_gap(fused: dict, eager: dict, steps: int = FIRST_STEPS) -> float:
    """Largest difference of the fused loop's training loss from the eager loop's over the
    first ``steps`` batches."""
    return max(abs(a - b) for a, b in zip(fused["losses"][:steps], eager["losses"][:steps], strict=True))


def loss_gap(worker: dict, bare: dict) -> float:
    """Largest difference of the training loss at the worker's evaluations (after step s, the
    loss of batch s - 1) from the bare loop's loss on that batch."""
    losses = bare["losses"]
    return max(abs(loss - losses[s - 1]) for s, loss in worker["train_loss"].items() if 0 < s <= len(losses))


def each_ratio(ratios: list[float]) -> str:
    return ", ".join(f"{x:.3f}" for x in ratios)


def one_rung(sweep: Sweep, job: Job, rounds: int) -> dict:
    """``rounds`` rounds of the worker, the bare eager loop and the bare fused loop on ``job``,
    the order rotating each round; medians, each round's ratios and the loss differences."""
    sides: dict[str, list[dict]] = {"worker": [], "eager": [], "fused": []}
    run = {
        "worker": lambda: worker_run(sweep, job.size),
        "eager": lambda: bare_run(sweep, job),
        "fused": lambda: bare_run(sweep, job, fused=True),
    }
    order = list(sides)
    for r in range(rounds):
        for name in order[r % 3 :] + order[: r % 3]:
            sides[name].append(run[name]())
    w, e, f = sides["worker"], sides["eager"], sides["fused"]

    def per_round(key: str, a: list[dict], b: list[dict]) -> list[float]:
        return [x[key] / y[key] for x, y in zip(a, b, strict=True)]

    return {
        "job": job,
        "worker": w,
        "bare": e,
        "fused": f,
        "median": {name: statistics.median(r["tokens_per_s"] for r in rs) for name, rs in sides.items()},
        "ratios": per_round("tokens_per_s", w, e),
        "cpu_ratios": per_round("tokens_per_cpu_s", w, e),
        "overhead": per_round("tokens_per_s", w, f),
        "fused_gain": per_round("tokens_per_s", f, e),
        "loss_gap": max(loss_gap(wr, fr) for wr, fr in zip(w, f, strict=True)),
        "first_steps_gap": max(first_steps_gap(fr, er) for fr, er in zip(f, e, strict=True)),
    }


def main(tiny: bool = False) -> dict:
    scale, rounds = (TINY_SCALE, TINY_ROUNDS) if tiny else (SCALE, ROUNDS)
    sweep = demo_sweep(scale)
    jobs = planned_rungs(sweep, tempfile.gettempdir())
    machine = _machine.reference(tiny=tiny)
    torch.set_num_threads(1)  # a sweep's CPU job gets one core (resources.cpus: 1)
    SweepData(sweep).check()  # build the data cache outside the timings
    if not tiny:
        worker_run(demo_sweep(TINY_SCALE))  # warm-up: DeepSpeed's first engine, the allocator
    results = [one_rung(sweep, job, rounds) for job in jobs]
    tr, top = sweep.train, results[-1]
    job = top["job"]
    print(
        f"{DEMO}'s pre-training jobs, one per rung: {', '.join(f'{j.label} (N={j.n_params:,})' for j in jobs)}; "
        f"{job.data_tokens:,} tokens each ({scale:g} of the demo's), p = {', '.join(f'{p:,}' for p in job.checkpoints)}"
    )
    print(
        f"batch {tr.batch_size} x {tr.seq_len}, {job.max_steps} steps + {branch_steps(job, sweep)} in cooldown "
        f"branches, 1 thread, {pick_device()}; the worker evaluated {sweep.eval.tokens:,} tokens "
        f"{top['worker'][0]['evals']} times (interval {sweep.eval.interval_steps} steps, doubling)"
    )
    print(f"{'rung / path':46} {'tokens/s (median)':>18} {'rounds':>26}")
    for res in results:
        for label, key in (
            ("tsweep worker (DeepSpeed, evals, branches)", "worker"),
            ("bare loop, eager AdamW (training only)", "bare"),
            ("bare loop, fused AdamW (training only)", "fused"),
        ):
            each = ", ".join(f"{r['tokens_per_s']:,.0f}" for r in res[key])
            median = res["median"]["eager" if key == "bare" else key]
            print(f"{res['job'].size + ': ' + label:46} {median:>18,.0f} {each:>26}")
        for label, key in (
            ("worker / bare eager, each round", "ratios"),
            ("  per CPU-second, set-up included", "cpu_ratios"),
            ("worker / bare fused (what the worker adds)", "overhead"),
            ("bare fused / bare eager (the fused kernel)", "fused_gain"),
        ):
            print(
                f"{res['job'].size + ': ' + label:46} {statistics.median(res[key]):>18.3f} {each_ratio(res[key]):>26}"
            )
        print(
            f"{res['job'].size}: training loss at the worker's evaluations within {res['loss_gap']:.1e} of the bare "
            f"fused loop's; the fused loop's first {FIRST_STEPS} losses within {res['first_steps_gap']:.1e} of the "
            f"eager loop's (goal {FIRST_STEPS_TOL:g})"
        )
    print(f"goal: worker / bare eager >= {GOAL} with everything the worker does; >= {FASTER} where the rung gains")
    _machine.report(machine)
    ratio = statistics.median(top["ratios"])
    print(f"worker_throughput {ratio:.3f}")
    return {**top, "ratio": ratio, "sweep": sweep, "rungs": results}


if __name__ == "__main__":
    try:
        main(tiny="--tiny" in sys.argv[1:])
    except LookupError as exc:
        raise SystemExit(f"worker_throughput: {exc}") from None
