"""Per-trial overhead: tsweep's Tune set-up against raw Ray Tune, both with an empty trainable.

tsweep side: :func:`tsweep.orchestrator.run.sweep_tuner`, exactly what ``run_sweep`` runs: the
DependencySearcher (concurrency-limited to ``run.max_pending_trials``), ``job_trainable`` +
``with_resources`` (resources from each job), ``reuse_actors``, job-named trials and trial
folders, and the LiveProgress (no terminal view) and AnalysisFeed callbacks (the analysis actor
is a stub with an empty ``refit``). Jobs are independent scratch jobs, so every trial is ready.
Raw side: ``tune.Tuner(fn, TuneConfig(num_samples=N, reuse_actors=True))`` with Tune's own
variant generator and defaults otherwise (its CSV, JSON and TensorBoard loggers on; tsweep turns
them off, ``tsweep.orchestrator.run.TUNE_LOGGERS_OFF``). Tune's default ``reuse_actors=False`` would start a
new worker process per trial, measuring process start-up rather than Tune; both sides reuse.

Both trainables report one identical result and return. Each round runs both sides (order
alternating) at ``SMALL`` and ``N`` trials on 4 logical CPUs; one warm-up round is not counted.
Per trial = wall time of ``fit()`` / trials (fixed start-up amortised over N trials); the
marginal cost per trial (slope between the two sizes) is shown beside it.

Run: ``python benchmarks/trial_overhead.py [--tiny]`` (about 3 minutes on 2 CPU cores; ``--tiny``,
the suite's size: one round of 2 and 4 trials a side, no warm-up, in seconds).
Last line: ``trial_overhead_ratio VALUE`` (median tsweep s/trial over median raw s/trial at N
trials; goal <= 1.3).
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _machine
from scheduling import stub_analysis_actor

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

GOAL = 1.3
SLOTS = 4
N = 60
SMALL = 20
ROUNDS = 3
TINY = {"n": 4, "small": 2, "rounds": 1, "warmup": False}  # the suite's size, tsweep's choice

RESULT = {"best_eval_loss": 5.0, "saved_p": 0, "done": True}


def raw_trainable(config: dict) -> None:
    from ray import tune

    tune.report(dict(RESULT))


def tsweep_trainable(config: dict, *, sweep_dict: dict, sweep_dir: str) -> None:
    from ray import tune

    tune.report(dict(RESULT))


def _sweep(n: int):
    from tsweep.sweeps import parse_sweep

    return parse_sweep(
        {
            "name": "bench-trial-overhead",
            "target": "python",
            "sources": ["scratch", "prose"],
            "model_sizes": ["nano"],
            "finetune_tokens": [8000],
            "scratch_tokens": [1000 * (i + 1) for i in range(n)],
            "pretrain": {"tokens": "100k"},
            "resources": {"cpus": 1},
        }
    )


def run_raw(n: int, storage: str) -> float:
    from ray import tune

    from tsweep.orchestrator.run import TUNE_LOGGERS_OFF

    # Tune's defaults, its own loggers on, whatever tsweep's side set in this process before
    before = os.environ.pop(TUNE_LOGGERS_OFF, None)
    try:
        return _fit_raw(tune, n, storage)
    finally:
        if before is not None:
            os.environ[TUNE_LOGGERS_OFF] = before


def _fit_raw(tune: Any, n: int, storage: str) -> float:
    tuner = tune.Tuner(
        raw_trainable,
        tune_config=tune.TuneConfig(num_samples=n, reuse_actors=True),
        run_config=tune.RunConfig(name=f"raw-{time.time_ns()}", storage_path=storage, verbose=0),
    )
    t0 = time.perf_counter()
    grid = tuner.fit()
    wall = time.perf_counter() - t0
    assert len(grid) == n and not grid.errors, grid.errors
    return wall


def run_tsweep(n: int, storage: str, actor) -> float:

    from tsweep.orchestrator.plan import expand
    from tsweep.orchestrator.progress import AnalysisFeed, LiveProgress
    from tsweep.orchestrator.run import max_pending_trials, sweep_tuner
    from tsweep.orchestrator.scheduler import DependencySearcher
    from tsweep.workers.trainable import job_trainable

    sweep = _sweep(n)
    jobs = [j for j in expand(sweep).jobs if j.kind == "scratch"]
    assert len(jobs) == n
    callbacks = [LiveProgress(sweep.name, jobs, os.path.join(storage, "latest.json"), live=False), AnalysisFeed(actor)]
    tuner = sweep_tuner(
        job_trainable(sweep.model_dump(mode="json"), storage, fn=tsweep_trainable),
        DependencySearcher(jobs),
        num_samples=n,
        name=f"tsweep-{time.time_ns()}",
        storage_path=storage,
        max_failures=0,
        callbacks=callbacks,
    )
    t0 = time.perf_counter()
    grid = tuner.fit()
    wall = time.perf_counter() - t0
    assert len(grid) == n and not grid.errors, grid.errors
    global _TSWEEP_PENDING
    _TSWEEP_PENDING = str(max_pending_trials(jobs))
    return wall


_TSWEEP_PENDING: str | None = None


def _pickle_by_value() -> None:
    """Ship this module's functions to the workers by value (imported by the tests, it is not on
    the workers' path)."""
    if __name__ != "__main__":
        from ray import cloudpickle

        cloudpickle.register_pickle_by_value(sys.modules[__name__])


def main(n: int = N, small: int | None = SMALL, rounds: int = ROUNDS, warmup: bool = True, tiny: bool = False) -> dict:
    """Both sides at ``small`` (None: skip) and ``n`` trials, ``rounds`` times; one warm-up round
    first; ``tiny`` is the suite's size (``TINY``)."""
    import ray

    if tiny:
        n, small, rounds, warmup = TINY["n"], TINY["small"], TINY["rounds"], TINY["warmup"]
    machine = _machine.reference(tiny=tiny)
    _pickle_by_value()
    started = not ray.is_initialized()
    if started:
        ray.init(
            num_cpus=SLOTS,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
            namespace="tsweep-bench",
        )
    sizes = (small, n) if small else (n,)
    walls: dict[tuple[str, int], list[float]] = {(s, k): [] for s in ("raw", "tsweep") for k in sizes}
    cpus = int(ray.cluster_resources().get("CPU", 0))
    try:
        actor = stub_analysis_actor()
        with tempfile.TemporaryDirectory(prefix="tsweep-overhead-") as tmp:
            if warmup:  # worker processes, imports, first experiment folders
                run_raw(sizes[0], tmp)
                run_tsweep(sizes[0], tmp, actor)
            for r in range(rounds):
                sides = [("raw", lambda k: run_raw(k, tmp)), ("tsweep", lambda k: run_tsweep(k, tmp, actor))]
                if r % 2:
                    sides.reverse()
                for side, fn in sides:
                    for k in sizes:
                        walls[(side, k)].append(fn(k))
    finally:
        if started:
            ray.shutdown()

    med = {key: statistics.median(v) for key, v in walls.items()}
    per = {s: med[(s, n)] / n for s in ("raw", "tsweep")}
    marginal = {s: (med[(s, n)] - med[(s, small)]) / (n - small) if small else float("nan") for s in ("raw", "tsweep")}
    print(
        f"empty trainable, {cpus} logical CPUs, {rounds} rounds (medians); pending trials: raw Tune's default, "
        f"tsweep {_TSWEEP_PENDING}\n"
    )
    print(f"{'measure':36} {'raw Tune':>10} {'tsweep':>10} {'ratio':>7}")
    rows = [(f"fit() wall, {k} trials (s)", med[("raw", k)], med[("tsweep", k)]) for k in sizes]
    rows.append((f"per trial at {n} (s)", per["raw"], per["tsweep"]))
    if small:
        rows.append((f"marginal per trial {small}->{n} (s)", marginal["raw"], marginal["tsweep"]))
    for label, a, b in rows:
        print(f"{label:36} {a:>10.3f} {b:>10.3f} {b / a if a > 0 else float('nan'):>7.2f}")
    print(
        f"\nall rounds, {n} trials: raw {', '.join(f'{w:.2f}' for w in walls[('raw', n)])}; "
        f"tsweep {', '.join(f'{w:.2f}' for w in walls[('tsweep', n)])}   goal ratio <= {GOAL}"
    )
    _machine.report(machine)
    ratio = per["tsweep"] / per["raw"]
    print(f"trial_overhead_ratio {ratio:.3f}")
    return {"ratio": ratio, "per_trial": per, "marginal": marginal}


if __name__ == "__main__":
    main(tiny="--tiny" in sys.argv[1:])
