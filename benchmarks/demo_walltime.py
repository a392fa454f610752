"""Demo wall time: the README's first command, `tsweep demo`, exactly as a newcomer runs it.

The console script runs in a pseudo-terminal (so it draws its live table, as in a terminal),
with a fresh, empty HOME: a new Ray cluster, an empty storage root (``~/tsweep_runs``) and, with
``--cold-cache`` (the default), an empty data cache, so tokenizing the corpora counts too. Ray
start-up, every training job, the analysis actor, the final report and the plots are all in the
figure. Side by side: the jobs' own training, read from the sweep's store afterwards, so the
table shows what the orchestration adds around the training. A job's training counts in
*core-seconds* (the summary's ``core_seconds``: its wall time weighted by the torch threads it
trained on), since a sweep with ``resources.lend_idle_cores: true`` lends idle CPUs to the jobs
that run (``tsweep.orchestrator.cores``); the jobs' summed wall time is printed beside it.

Run: ``python benchmarks/demo_walltime.py [--warm-cache] [--tiny]`` (about ten minutes on 2 CPU
cores; ``--tiny``, the suite's size: the same command with ``--set`` cutting the demo to 5 jobs
on small corpora, :func:`tiny_sets`, in about a minute).
Last line: ``demo_wall_time_s VALUE`` (goal: at most 600 on 2 cores); the line before it gives
the wall time over the jobs' summed core-seconds divided by the cores (``demo_over_training``, at
least 1 up to the timing noise: the jobs ran inside the wall time on at most the cluster's CPUs;
goal <= 1.05: no core idle, nothing around the training).
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _machine

GOAL_S = 600.0
# What a launcher (torchrun, or tsweep's own one-rank group in this process) sets: a newcomer's
# shell has none of them, and a job that inherited them would join this process's group.
LAUNCHER_VARS = ("MASTER_ADDR", "MASTER_PORT", "RANK", "LOCAL_RANK", "WORLD_SIZE")
# The suite's size (tsweep's choice): one source, one size, one fine-tune budget, two scratch
# budgets, a 32k-token pre-training with one p, corpora of 300 documents, 10 bootstrap resamples.
TINY_SETS = [
    "sources=[scratch,d0.6]",
    "model_sizes=[pico]",
    "finetune_tokens=[1k]",
    "scratch_tokens=[1k,4k]",
    "pretrain.tokens=32k",
    "pretrain.checkpoints=[8k]",
    "eval.tokens=2k",
    "eval.patience_tokens=4k",
    "eval.min_interval_tokens=1k",
    "fit.bootstrap=10",
    "corpora={synth: {kind: synthetic, distance: 0.0, seed: 0, documents: 300},"
    " d0.6: {kind: synthetic, distance: 0.6, seed: 0, documents: 300}}",
]


def tiny_sets() -> list[str]:
    """``TINY_SETS``, and no replicate runs where the sweep schema has them (their cells name the
    full grid's p and f, which the cut demo does not have)."""
    from tsweep.sweeps import Sweep

    return TINY_SETS + (["replicates={}"] if "replicates" in Sweep.model_fields else [])


def run_in_pty(argv: list[str], env: dict) -> tuple[int, str, float]:
    """(exit code, what it drew, wall seconds) of ``argv`` run in a pseudo-terminal."""
    t0 = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe(argv[0], argv, env)
    out = []
    while True:
        ready, _, _ = select.select([fd], [], [], 5.0)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out.append(chunk.decode("utf-8", errors="replace"))
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), "".join(out), time.perf_counter() - t0


def tsweep_command() -> list[str]:
    """The ``tsweep`` console script beside this interpreter (as the README runs it), else the
    same entry point through ``python -m tsweep``."""
    script = shutil.which("tsweep", path=os.path.dirname(sys.executable))
    return [script] if script else [sys.executable, "-m", "tsweep"]


def timeline(runs: list[dict], t_start: float, t_end: float, cores: int) -> dict[str, float]:
    """Where the wall time went, from the jobs' summaries (epoch seconds ``t_start`` .. ``t_end``
    of the command): before the first job trained (Ray, the data, the first engine), the
    CPU-seconds no job trained on between the first start and the last end (per job start-up,
    scheduling, a core with no job ready), and after the last job (final refit, report, plots).
    A job trained from ``finished_at - wall_time_s`` to ``finished_at``."""
    ends = [r["finished_at"].timestamp() for r in runs]
    starts = [e - r["wall_time_s"] for e, r in zip(ends, runs, strict=True)]
    first, last = min(starts), max(ends)
    core_s = sum(r["wall_time_s"] if r["core_seconds"] is None else r["core_seconds"] for r in runs)
    return {
        "before_first_job_s": first - t_start,
        "idle_core_s_between": (last - first) * cores - core_s,
        "after_last_job_s": t_end - last,
    }


def main(warm_cache: bool = False, tiny: bool = False) -> dict:
    """``tsweep demo`` from a fresh HOME (``tiny``: with ``--set TINY_SETS``). ``warm_cache``
    keeps this user's data cache."""
    machine = _machine.reference(tiny=tiny)
    argv = tsweep_command() + ["demo"] + (["--set", *tiny_sets()] if tiny else [])
    with tempfile.TemporaryDirectory(prefix="tsweep-demo-home-") as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TSWEEP_") and k not in LAUNCHER_VARS}
        env.update(HOME=home, TERM=env.get("TERM", "xterm"), PYTHONUNBUFFERED="1")
        if warm_cache:
            env["TSWEEP_DATA_CACHE"] = os.path.expanduser("~/.cache/tsweep/data")
        t_start = time.time()
        code, drawn, wall = run_in_pty(argv, env)
        t_end = time.time()
        if code != 0:
            print(drawn[-4000:])
            raise SystemExit(f"tsweep demo exited with {code}")
        import tsweep

        runs = tsweep.open_sweep(os.path.join(home, "tsweep_runs", "demo")).summaries().to_pylist()
    job_s = sum(r["wall_time_s"] for r in runs)
    core_s = sum(r["wall_time_s"] if r["core_seconds"] is None else r["core_seconds"] for r in runs)
    cores = os.cpu_count() or 1
    spent = timeline(runs, t_start, t_end, cores)
    print(f"{'what':52} {'seconds':>9}")
    print(f"{'tsweep demo, in a terminal, from a fresh HOME':52} {wall:>9.1f}")
    print(f"{'the jobs training, core-seconds summed / ' + str(cores) + ' cores':52} {core_s / cores:>9.1f}")
    print(f"{'  of which on idle CPUs lent to them':52} {(core_s - job_s) / cores:>9.1f}")
    print(f"{'the jobs training, wall time summed / ' + str(cores) + ' cores':52} {job_s / cores:>9.1f}")
    print(f"{'jobs':52} {len(runs):>9}")
    print(f"{'wall - core-seconds / cores (start-up, idle, report)':52} {wall - core_s / cores:>9.1f}")
    print(f"{'  before the first job trained (Ray, data, engine)':52} {spent['before_first_job_s']:>9.1f}")
    print(f"{'  no job training on a core in between, / cores':52} {spent['idle_core_s_between'] / cores:>9.1f}")
    print(f"{'  after the last job (final refit, report, plots)':52} {spent['after_last_job_s']:>9.1f}")
    _machine.report(machine)
    print(f"demo_over_training {wall / (core_s / cores):.3f}")
    print(f"demo_wall_time_s {wall:.1f}")
    return {
        "wall_s": wall,
        "job_s": job_s,
        "core_s": core_s,
        "jobs": len(runs),
        "cores": cores,
        "drawn": drawn,
        **spent,
    }


if __name__ == "__main__":
    main(warm_cache="--warm-cache" in sys.argv[1:], tiny="--tiny" in sys.argv[1:])
