"""Demo wall time: the README's first command, `tsweep demo`, exactly as a newcomer runs it.

The console script runs in a pseudo-terminal (so it draws its live table, as in a terminal),
with a fresh, empty HOME: a new Ray cluster, an empty storage root (``~/tsweep_runs``) and, with
``--cold-cache`` (the default), an empty data cache, so tokenizing the corpora counts too. Ray
start-up, every training job, the analysis actor, the final report and the plots are all in the
figure. Side by side: the sum of the jobs' own training time, read from the sweep's store
afterwards, so the table shows what the orchestration adds around the training.

Run: ``python benchmarks/demo_walltime.py [--warm-cache] [--tiny]`` (about ten minutes on 2 CPU
cores; ``--tiny``, the suite's size: the same command with ``--set`` cutting the demo to 5 jobs
on small corpora, :func:`tiny_sets`, in about a minute).
Last line: ``demo_wall_time_s VALUE`` (goal: at most 600 on 2 cores); the line before it gives
the wall time over the jobs' summed training time divided by the cores (``demo_over_training``,
at least 1: the jobs ran inside the wall time, at most one per core; goal <= 1.05).
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


def torch_extensions_dir() -> str:
    """Where torch keeps the C++ ops it builds for this Python and torch (DeepSpeed's shared-memory
    all-reduce among them): ``$TORCH_EXTENSIONS_DIR``, else the default root and torch's
    ``py<version>_<cpu|cu<version>>`` folder (``torch.utils.cpp_extension._get_build_directory``)."""
    import torch
    from torch.utils.cpp_extension import get_default_build_root

    if os.environ.get("TORCH_EXTENSIONS_DIR"):
        return os.environ["TORCH_EXTENSIONS_DIR"]
    cu = "cpu" if torch.version.cuda is None else f"cu{torch.version.cuda.replace('.', '')}"
    return os.path.join(get_default_build_root(), f"py{sys.version_info.major}{sys.version_info.minor}_{cu}")


def main(warm_cache: bool = False, tiny: bool = False) -> dict:
    """``tsweep demo`` from a fresh HOME (``tiny``: with ``--set TINY_SETS``). ``warm_cache``
    keeps this user's data cache; ``tiny`` keeps this user's built torch ops (a fresh HOME makes
    the first two jobs build DeepSpeed's shared-memory op, about a minute on a loaded 2-core
    machine, which the full run counts and the suite need not)."""
    machine = _machine.reference(tiny=tiny)
    argv = tsweep_command() + ["demo"] + (["--set", *tiny_sets()] if tiny else [])
    with tempfile.TemporaryDirectory(prefix="tsweep-demo-home-") as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TSWEEP_") and k not in LAUNCHER_VARS}
        env.update(HOME=home, TERM=env.get("TERM", "xterm"), PYTHONUNBUFFERED="1")
        if warm_cache:
            env["TSWEEP_DATA_CACHE"] = os.path.expanduser("~/.cache/tsweep/data")
        if tiny:
            env["TORCH_EXTENSIONS_DIR"] = torch_extensions_dir()
        code, drawn, wall = run_in_pty(argv, env)
        if code != 0:
            print(drawn[-4000:])
            raise SystemExit(f"tsweep demo exited with {code}")
        import tsweep

        runs = tsweep.open_sweep(os.path.join(home, "tsweep_runs", "demo")).summaries()
        job_s = sum(runs.column("wall_time_s").to_pylist())
    cores = os.cpu_count() or 1
    print(f"{'what':46} {'seconds':>9}")
    print(f"{'tsweep demo, in a terminal, from a fresh HOME':46} {wall:>9.1f}")
    print(f"{'the jobs training, summed / ' + str(cores) + ' cores':46} {job_s / cores:>9.1f}")
    print(f"{'jobs':46} {runs.num_rows:>9}")
    print(f"{'wall - that (start-up, idle cores, report)':46} {wall - job_s / cores:>9.1f}")
    _machine.report(machine)
    print(f"demo_over_training {wall / (job_s / cores):.3f}")
    print(f"demo_wall_time_s {wall:.1f}")
    return {"wall_s": wall, "job_s": job_s, "jobs": runs.num_rows, "cores": cores, "drawn": drawn}


if __name__ == "__main__":
    main(warm_cache="--warm-cache" in sys.argv[1:], tiny="--tiny" in sys.argv[1:])
