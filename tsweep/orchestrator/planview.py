"""``tsweep plan``: validate a sweep end to end and print every job; launches nothing.

Validation goes past the schema: every corpus the sweep names is opened and counted
(``SweepData.check``: missing files, empty corpora, budgets larger than the data, the hub when
offline) and every job is checked against its resources (a model that cannot fit its device's
memory is rejected here, not an hour into the sweep).
"""

from __future__ import annotations

import os

from tsweep.core.errors import SweepError
from tsweep.core.job import Job
from tsweep.core.layout import SweepLayout, without_query
from tsweep.core.units import duration, si
from tsweep.orchestrator.plan import JobGraph, expand
from tsweep.sweeps import Sweep

# Rough sustained training throughput used only for the plan's time column: about 1e10 FLOP/s per
# CPU core for these small models (measured here on the demo sizes), and 40% of an H100's dense
# bf16 peak of 989 TFLOP/s per GPU (NVIDIA H100 datasheet; 40% MFU is typical of tuned training).
CPU_FLOPS_PER_CORE = 1.0e10
GPU_FLOPS = 0.4 * 989e12
# Device memory assumed per GPU when checking that a job fits (an 80 GB A100/H100); override with
# TSWEEP_GPU_MEMORY_GB for other cards.
DEFAULT_GPU_MEMORY_GB = 80.0


def _host_memory_bytes() -> int:
    import psutil

    total: int = psutil.virtual_memory().total
    return total


def check_resources(sweep: Sweep, graph: JobGraph, vocab_size: int) -> None:
    gpu_mem = float(os.environ.get("TSWEEP_GPU_MEMORY_GB", DEFAULT_GPU_MEMORY_GB)) * 2**30
    for job in graph.jobs:
        size = job.shape
        if size is None:  # expand resolves every job's shape
            raise ValueError(f"{job.label}: a job without a shape (not from expand)")
        micro = max(1, sweep.train.batch_size // job.workers)
        need = size.train_memory_bytes(vocab_size, sweep.train.seq_len, micro, sweep.deepspeed.zero_stage, job.workers)
        have = gpu_mem * min(job.gpus, 1.0) if job.gpus > 0 else _host_memory_bytes()
        if need > have:
            raise SweepError(
                f"model_sizes: {job.size} needs about {need / 2**30:.1f} GiB per device for {job.label} "
                f"but its resources give {have / 2**30:.1f} GiB (resources.gpus={job.gpus}); "
                f"raise resources, the ZeRO stage or lower train.batch_size"
            )


def check_data_and_resources(sweep: Sweep, graph: JobGraph) -> dict[str, int]:
    """Every corpus opened, counted and tokenized into the data cache (``SweepData.check``),
    and every job of ``graph`` checked against its device's memory; the tokens each corpus's
    splits make available."""
    from tsweep.data import SweepData

    data = SweepData(sweep)
    available = data.check()
    check_resources(sweep, graph, data.vocab_size)
    return available


def check_and_expand(sweep: Sweep, layout: SweepLayout | None = None) -> tuple[JobGraph, dict[str, int]]:
    """The sweep's job graph, validated end to end (:func:`check_data_and_resources`), and the
    tokens each corpus makes available."""
    graph = expand(sweep, layout)
    return graph, check_data_and_resources(sweep, graph)


# Seconds a Ray trial costs beyond its training (actor start-up, reporting): measured by
# benchmarks/trial_overhead.py at 1-2 s on this 2-core machine.
TRIAL_OVERHEAD_S = 1.5


def est_seconds(job: Job) -> float:
    rate = GPU_FLOPS * job.gpus * job.workers if job.gpus > 0 else CPU_FLOPS_PER_CORE * job.cpus * job.workers
    return job.est_flops / rate


def device_hours(job: Job) -> tuple[str, float]:
    """("GPU" or "CPU core", hours) a job holds its devices for, at most."""
    if job.gpus > 0:
        return "GPU", est_seconds(job) * job.gpus * job.workers / 3600
    return "CPU core", est_seconds(job) * job.cpus * job.workers / 3600


def wall_estimate(graph: JobGraph, cpus: float, gpus: float) -> float:
    """Seconds the sweep takes at most on a cluster of ``cpus`` CPUs and ``gpus`` GPUs: the longer
    of its critical path (a pre-training run, then its longest fine-tune) and its work spread over
    the job slots the cluster has."""

    def slots(j: Job) -> float:
        fits = [cpus / (j.cpus * j.workers)] + ([gpus / (j.gpus * j.workers)] if j.gpus else [])
        return max(1.0, min(fits))

    busy = sum((est_seconds(j) + TRIAL_OVERHEAD_S) / slots(j) for j in graph.jobs)
    chains = [
        est_seconds(p) + max((est_seconds(c) for c in graph.children(p.job_id)), default=0.0) for p in graph.pretrain
    ]
    return max([busy, *chains, 0.0])


def replicate_cost(graph: JobGraph) -> str:
    """The jobs the sweep's ``replicates:`` adds, and their est. FLOPs as a share of the grid's."""
    extra = graph.replicates
    grid = sum(j.est_flops for j in graph.jobs if not j.replicate)
    added = sum(j.est_flops for j in extra)
    kinds = ", ".join(f"{n} {k}" for k in ("pretrain", "finetune") if (n := sum(j.kind == k for j in extra)))
    return (
        f"replicates: {len(extra)} jobs ({kinds}), +{100 * added / grid:.1f}% compute "
        f"({si(added)} est FLOPs over the grid's {si(grid)})"
    )


def design_cost(graph: JobGraph) -> str:
    """An adaptive design's goal, its budget beside the grid's est. FLOPs, and its seed design's
    share (the least it spends before it can choose)."""
    from tsweep.analysis.design import Candidate, Goal, seed_design

    sw = graph.sweep
    pool = [Candidate.of(j) for j in graph.jobs]
    goal = Goal.of(sw.design, sw.model_sizes, pool)
    grid = sum(c.cost for c in pool)
    seed = seed_design(pool, goal)
    seed_flops = sum(c.cost for c in seed)
    order = " and every pair's order" if goal.order else ""
    return (
        f"design: adaptive; goal: every source's G at {', '.join(goal.sizes)} within +-{100 * goal.half_width:.0f}%"
        f"{order}; budget {si(goal.budget)} est FLOPs ({100 * sw.design.budget:.0f}% of the grid's {si(grid)}); "
        f"seed design {len(seed)} jobs, {si(seed_flops)} ({100 * seed_flops / grid:.0f}%); "
        "the rest is chosen as results arrive"
    )


def format_plan(
    graph: JobGraph,
    available: dict[str, int],
    layout: SweepLayout | None = None,
    *,
    cluster_cpus: float = 1.0,
    cluster_gpus: float = 0.0,
) -> str:
    sw = graph.sweep
    where = without_query((layout or sw.layout()).sweep_dir)
    lines = [
        f"sweep {sw.name}: {len(graph.jobs)} jobs "
        f"({len(graph.pretrain)} pretrain, {sum(j.kind == 'finetune' for j in graph.jobs)} finetune, "
        f"{sum(j.kind == 'scratch' for j in graph.jobs)} scratch) -> {where}",
        "corpora (training tokens available): " + ", ".join(f"{k} {v:,}" for k, v in sorted(available.items())),
        "",
        f"{'job':44} {'N':>10} {'tokens':>10} {'max steps':>9} {'est FLOPs':>10} {'est time':>8}  resources         id",
    ]
    total_flops = 0.0
    for j in graph.jobs:
        tokens = j.data_tokens
        res = f"{j.cpus:g} cpu" + (f", {j.gpus:g} gpu" if j.gpus else "") + (f" x{j.workers}" if j.workers > 1 else "")
        lines.append(
            f"{j.label:44} {j.n_params:>10,} {tokens:>10,} {j.max_steps:>9,} {si(j.est_flops):>10} "
            f"{duration(est_seconds(j)):>8}  {res:17} {j.job_id}"
        )
        total_flops += j.est_flops
    lines += ["", f"{'kind':10} {'jobs':>5} {'est FLOPs':>10} {'device-hours':>22}"]
    for kind in ("pretrain", "finetune", "scratch"):
        jobs = [j for j in graph.jobs if j.kind == kind]
        if jobs:
            unit = device_hours(jobs[0])[0]
            hours = sum(device_hours(j)[1] for j in jobs)
            lines.append(f"{kind:10} {len(jobs):>5} {si(sum(j.est_flops for j in jobs)):>10} {hours:>12.3g} {unit}-h")
    unit = device_hours(graph.jobs[0])[0] if graph.jobs else "CPU core"
    hours = sum(device_hours(j)[1] for j in graph.jobs)
    lines.append(f"{'total':10} {len(graph.jobs):>5} {si(total_flops):>10} {hours:>12.3g} {unit}-h")
    if graph.replicates:
        lines.append(replicate_cost(graph))
    if sw.design.adaptive:
        lines.append(design_cost(graph))
    wall = wall_estimate(graph, cluster_cpus, cluster_gpus)
    lines += [
        "",
        f"wall time on {cluster_cpus:g} CPUs"
        + (f" and {cluster_gpus:g} GPUs" if cluster_gpus else "")
        + f": about {duration(wall)} at most (FLOPs are upper bounds: fine-tunes and scratch runs stop "
        f"early; set the cluster with --cpus/--gpus)",
    ]
    return "\n".join(lines)
