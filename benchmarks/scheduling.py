"""Scheduling: makespan of a 300-job sweep graph under tsweep's scheduler, against its lower bound.

The graph is the real one: :func:`orchestrator.plan.expand` on a sweep of 2 pre-training
sources x 4 sizes (nano..tiny), Barnett's p axis of 4 checkpoints, 8 fine-tune budgets and 9
scratch budgets: 8 pre-trainings, 256 fine-tunes (each released when its parent passes its
checkpoint p), 36 scratch runs. Each job is a calibrated stand-in: a Tune function trainable
that sleeps for a time proportional to the job's planned FLOPs (``Job.est_flops``), scaled so
that the lower bound is ``LB_S`` seconds; a pre-training stand-in reports ``saved_p`` as it
passes each checkpoint, as ``tsweep.workers.runner.JobRunner`` does. Stand-ins sleep, so 4 logical CPUs
(1 per job, as a sweep's ``resources: {cpus: 1}``) run on 2 physical cores.

The jobs go through :func:`orchestrator.run.sweep_tuner`, the exact Tune set-up of
``run_sweep`` (DependencySearcher, ``with_resources``, ``reuse_actors``, the pending-trial limit,
the live-progress and analysis-feed callbacks; the analysis actor is a stub whose ``refit`` does
nothing, so the figure is about scheduling, not fitting).

Measured side by side:
- tsweep: one Tune run, fine-tunes released at their checkpoint.
- naive two-phase: the pre-training as one Tune run, then everything else as a second one
  (a global phase barrier), through the same set-up.
- the lower bound ``max(critical path, total work / slots)``, and a zero-overhead simulation
  of the same priority rule (what the policy alone would give; the rest is Tune's per-trial cost).

Run: ``python benchmarks/scheduling.py [--tiny]`` (about 5 minutes on 2 CPU cores; ``--tiny``,
the suite's size: a 7-job graph, a 2 s lower bound on 2 slots, in under a minute).
Last line: ``scheduling_makespan_ratio VALUE`` (tsweep makespan / lower bound; goal <= 1.15).
"""

from __future__ import annotations

import heapq
import logging
import os
import sys
import tempfile
import time

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _machine

from tsweep.core.job import Job
from tsweep.orchestrator.plan import expand
from tsweep.sweeps import parse_sweep

GOAL = 1.15
SLOTS = 4
LB_S = 100.0  # seconds of the lower bound at scale 1

SWEEP = {
    "name": "bench-scheduling",
    "target": "python",
    "sources": ["scratch", "prose", "prose+c"],
    "corpora": {"prose+c": {"kind": "mixture", "weights": {"prose": 0.5, "c": 0.5}}},
    "model_sizes": ["nano", "micro", "mini", "tiny"],
    "finetune_tokens": ["8k", "16k", "32k", "64k", "128k", "256k", "512k", "1M"],
    "scratch_tokens": ["8k", "16k", "32k", "64k", "128k", "256k", "512k", "1M", "2M"],
    "pretrain": {"tokens": "4M", "checkpoints": ["500k", "1M", "2M"]},
    "train": {"max_epochs": 1},
    "resources": {"cpus": 1},
}

# The suite's size: 1 pre-training, 4 fine-tunes, 2 scratch runs.
TINY_SWEEP = {
    **SWEEP,
    "sources": ["scratch", "prose"],
    "model_sizes": ["nano"],
    "finetune_tokens": ["8k", "64k"],
    "scratch_tokens": ["8k", "64k"],
    "pretrain": {"tokens": "1M", "checkpoints": ["250k"]},
}
TINY = {"scale": 0.02, "sweep": TINY_SWEEP, "slots": 2}  # a 2 s lower bound on the suite's 2-CPU cluster


# ------------------------------------------------------------------ the graph and its bounds
def build_jobs(sweep_dict: dict = SWEEP) -> list[Job]:
    return list(expand(parse_sweep(sweep_dict)).jobs)


def durations(jobs: list[Job], lb_s: float, slots: int) -> dict[str, float]:
    """Seconds per job, proportional to planned FLOPs, scaled so the lower bound is ``lb_s``."""
    flops = {j.job_id: j.est_flops for j in jobs}
    cp, work = _bounds(jobs, flops, slots)
    scale = lb_s / max(cp, work)
    return {k: v * scale for k, v in flops.items()}


def _checkpoint_time(parent: Job, dur: float, p: int) -> float:
    return dur * p / parent.data_tokens  # a pre-training's FLOPs grow linearly in tokens seen


def _bounds(jobs: list[Job], dur: dict[str, float], slots: int) -> tuple[float, float]:
    """(critical path, total work / slots)."""
    by_id = {j.job_id: j for j in jobs}
    cp = 0.0
    for j in jobs:
        c = dur[j.job_id]
        if j.parent in by_id:
            c += _checkpoint_time(by_id[j.parent], dur[j.parent], j.pretrain_tokens)
        cp = max(cp, c)
    return cp, sum(dur.values()) / slots


def lower_bound(jobs: list[Job], dur: dict[str, float], slots: int) -> float:
    return max(_bounds(jobs, dur, slots))


def simulate(jobs: list[Job], dur: dict[str, float], slots: int, available: dict[str, set[int]] | None = None) -> float:
    """Makespan of the DependencySearcher's rule with zero overhead: whenever a slot is free, the
    first job in plan order whose checkpoint exists starts."""
    waiting = list(jobs)
    avail = {k: set(v) for k, v in (available or {}).items()}
    events: list[tuple[float, int, str, int]] = []
    t, free, end = 0.0, slots, 0.0

    def ready(j: Job) -> bool:
        return j.parent is None or j.pretrain_tokens in avail.get(j.parent, set())

    while True:
        while free:
            k = next((i for i, j in enumerate(waiting) if ready(j)), None)
            if k is None:
                break
            j = waiting.pop(k)
            free -= 1
            heapq.heappush(events, (t + dur[j.job_id], 1, j.job_id, 0))
            for p in j.checkpoints:
                heapq.heappush(events, (t + _checkpoint_time(j, dur[j.job_id], p), 0, j.job_id, p))
        if not events:
            return end
        t, is_end, jid, p = heapq.heappop(events)
        if is_end:
            free += 1
            end = max(end, t)
        else:
            avail.setdefault(jid, set()).add(p)


# ------------------------------------------------------------------ the stand-in job
def standin(config: dict, *, seconds: dict[str, float], sweep_dir: str) -> None:
    """Sleep for the job's share of the budget; report like ``tsweep.workers.runner.JobRunner``: an eval at
    step 0, ``saved_p`` as each pre-training checkpoint passes, and a final result."""
    from ray import tune

    from tsweep.core.records import Progress

    job = config["job"]
    t0 = time.time()
    dur = seconds[job["job_id"]]

    def report(saved: int, done: bool = False, **extra) -> None:
        progress = Progress(
            job_id=job["job_id"],
            label=job["job_id"],
            kind=job["kind"],
            step=saved,
            tokens_seen=saved,
            best_eval_loss=5.0,
            saved_p=saved,
            done=done,
        )
        tune.report({**progress.to_metrics(), "t_start": t0, **extra})

    report(0)
    saved = 0
    for p in job["checkpoints"]:
        time.sleep(max(0.0, t0 + dur * p / job["data_tokens"] - time.time()))
        saved = p
        if p < job["data_tokens"]:
            report(saved)
    time.sleep(max(0.0, t0 + dur - time.time()))
    report(saved, done=True, t_end=time.time())


def _pickle_by_value() -> None:
    """Ship this module's functions to the workers by value: imported as a module (the tests do),
    it is not importable on the workers' path."""
    if __name__ != "__main__":
        from ray import cloudpickle

        cloudpickle.register_pickle_by_value(sys.modules[__name__])


def stub_analysis_actor():
    """A do-nothing analysis actor, so the benchmarks time scheduling, not fitting."""
    import ray

    @ray.remote(num_cpus=0)
    class _StubAnalysis:
        def request(self):
            return None

        def refit(self):
            return None

    return _StubAnalysis.remote()


def tune_run(
    jobs: list[Job], seconds: dict[str, float], storage: str, name: str, available: dict[str, set[int]] | None = None
) -> dict:
    """One Tune run of ``jobs`` through run_sweep's set-up; wall time of ``fit`` and the trials' spans."""
    from ray import tune

    from tsweep.orchestrator.progress import AnalysisFeed, LiveProgress
    from tsweep.orchestrator.run import sweep_tuner
    from tsweep.orchestrator.scheduler import DependencySearcher

    searcher = DependencySearcher(jobs, available)
    callbacks = [
        LiveProgress(name, jobs, os.path.join(storage, "latest.json"), live=False),
        AnalysisFeed(stub_analysis_actor()),
    ]
    tuner = sweep_tuner(
        tune.with_parameters(standin, seconds=seconds, sweep_dir=storage),
        searcher,
        num_samples=len(jobs),
        name=name,
        storage_path=storage,
        max_failures=0,
        callbacks=callbacks,
    )
    t0 = time.time()
    grid = tuner.fit()
    wall = time.time() - t0
    errors = [r.error for r in grid if r.error is not None]
    if errors or searcher.blocked:
        raise RuntimeError(f"{name}: {len(errors)} failed trials, {len(searcher.blocked)} blocked: {errors[:1]}")
    spans = [(r.metrics["t_start"] - t0, r.metrics["t_end"] - t0) for r in grid]
    return {"wall": wall, "spans": spans, "n": len(grid)}


# ------------------------------------------------------------------ the benchmark
def main(
    scale: float = 1.0, sweep: dict | None = None, slots: int = SLOTS, naive: bool = True, tiny: bool = False
) -> dict:
    """Run both plans on ``slots`` logical CPUs; ``scale`` multiplies the lower bound (``LB_S``);
    ``naive=False`` skips the two-phase runs; ``tiny`` is the suite's size (``TINY``)."""
    import ray

    if tiny:
        scale, sweep, slots = TINY["scale"], TINY["sweep"], TINY["slots"]
    machine = _machine.reference(tiny=tiny)
    jobs = build_jobs(sweep or SWEEP)
    lb_s = LB_S * scale
    dur = durations(jobs, lb_s, slots)
    cp, work = _bounds(jobs, dur, slots)
    lb = max(cp, work)
    pre = [j for j in jobs if j.kind == "pretrain"]
    rest = [j for j in jobs if j.kind != "pretrain"]
    all_ckpts = {j.job_id: set(j.checkpoints) for j in pre}
    sim_tsweep = simulate(jobs, dur, slots)
    sim_naive = simulate(pre, dur, slots) + simulate(rest, dur, slots, all_ckpts)

    _pickle_by_value()
    started = not ray.is_initialized()
    if started:
        ray.init(
            num_cpus=slots,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
            namespace="tsweep-bench",
        )
    try:
        with tempfile.TemporaryDirectory(prefix="tsweep-sched-") as tmp:
            ts = tune_run(jobs, dur, os.path.join(tmp, "tsweep"), "tsweep")
            from tsweep.orchestrator.run import max_pending_trials

            pending = max_pending_trials(jobs)
            if naive:
                n1 = tune_run(pre, dur, os.path.join(tmp, "naive1"), "naive-pretrain")
                n2 = tune_run(rest, dur, os.path.join(tmp, "naive2"), "naive-rest", available=all_ckpts)
            else:
                n1 = n2 = {"wall": float("nan")}
    finally:
        if started:
            ray.shutdown()

    naive_wall = n1["wall"] + n2["wall"]
    busy = sum(dur.values())
    starts = sorted(s for s, _ in ts["spans"])
    first_start = starts[0]
    last_end = max(e for _, e in ts["spans"])
    kinds = {k: sum(j.kind == k for j in jobs) for k in ("pretrain", "finetune", "scratch")}
    ds = sorted(dur.values())

    print(
        f"graph: {len(jobs)} jobs ({kinds['pretrain']} pretrain, {kinds['finetune']} finetune, "
        f"{kinds['scratch']} scratch) on {slots} slots; job seconds min {ds[0]:.3f} median "
        f"{ds[len(ds) // 2]:.2f} max {ds[-1]:.1f}"
    )
    print(
        f"lower bound {lb:.1f} s = max(critical path {cp:.1f} s, work/slots {work:.1f} s); "
        f"Tune pending trials {pending}\n"
    )
    print(f"{'plan':34} {'makespan s':>11} {'/ lower bound':>14}")
    rows = [
        ("lower bound", lb),
        ("zero-overhead sim, tsweep rule", sim_tsweep),
        ("zero-overhead sim, two-phase", sim_naive),
        ("tsweep (Tune, one run)", ts["wall"]),
        ("  fit() start -> first trial start", first_start),
        (
            f"  first trial start -> {min(slots, len(starts))} running",
            starts[min(slots, len(starts)) - 1] - first_start,
        ),
        ("  first trial start -> last end", last_end - first_start),
        ("  last trial end -> fit() returns", ts["wall"] - last_end),
        ("naive two-phase (Tune, two runs)", naive_wall),
        ("  phase 1: pre-training", n1["wall"]),
        ("  phase 2: fine-tune + scratch", n2["wall"]),
    ]
    for label, v in rows:
        print(f"{label:34} {v:>11.1f} {v / lb:>14.3f}")
    print(
        f"\nslot utilisation (tsweep): {busy / (slots * ts['wall']):.1%}; "
        f"Tune cost per trial (makespan over the zero-overhead sim, spread over slots): "
        f"{(ts['wall'] - sim_tsweep) * slots / len(jobs):.3f} slot-s"
    )
    print(f"naive two-phase / tsweep: {naive_wall / ts['wall']:.3f}   goal for tsweep / lower bound: <= {GOAL}")
    _machine.report(machine)
    ratio = ts["wall"] / lb
    print(f"scheduling_makespan_ratio {ratio:.3f}")
    return {
        "ratio": ratio,
        "tsweep_s": ts["wall"],
        "naive_s": naive_wall,
        "lower_bound_s": lb,
        "sim_tsweep_s": sim_tsweep,
        "sim_naive_s": sim_naive,
    }


if __name__ == "__main__":
    main(tiny="--tiny" in sys.argv[1:])
