"""`tsweep fit` at scale: a 100,000-row table fitted with 100 bootstrap resamples, time and memory.

Each side runs in a child process so its peak resident memory is its own (``ru_maxrss`` of the
child). The table: the Chinchilla law at its published values (Besiroglu et al. 2024) on N from
1e6 to 1e10 and D from 1e8 to 1e12, log-normal noise of 1%, written to a Parquet file and fitted
through the console script, as a user would (``tsweep fit --law chinchilla --data ...
--bootstrap 100 --json``). Side by side: the same command at 10,000 rows, so the table shows how
time and memory grow with the table.

Goals (issue: ``tsweep fit`` at scale): at most 120 s and at most 2 GiB at 100k rows on 2 cores.

Peak memory is the child's own (``os.wait4`` returns that child's resource usage), not the
largest of every child this process has waited for.

Run: ``python benchmarks/fit_scale.py [--tiny]`` (about a minute on 2 CPU cores; ``--tiny``, the
suite's size: 1,000 and 3,000 rows with 10 resamples).
Last line: ``fit_scale_memory_ratio VALUE``: peak MiB at 100k rows over the 2 GiB budget (goal
<= 1); the line before it gives the time over its 120 s budget.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _machine

BUDGET_S = 120.0
BUDGET_MIB = 2048.0
SIZES, BOOTSTRAP = (10_000, 100_000), 100
TINY_SIZES, TINY_BOOTSTRAP = (1_000, 3_000), 10  # the suite's size, tsweep's choice
TRUTH = {"A": 482.0, "B": 2085.0, "E": 1.82, "alpha": 0.348, "beta": 0.366}  # Besiroglu et al. 2024


def table(n: int, path: str, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    N = 10 ** rng.uniform(6, 10, n)
    D = 10 ** rng.uniform(8, 12, n)
    loss = TRUTH["E"] + TRUTH["A"] / N ** TRUTH["alpha"] + TRUTH["B"] / D ** TRUTH["beta"]
    pq.write_table(pa.table({"N": N, "D": D, "loss": loss * np.exp(0.01 * rng.standard_normal(n))}), path)


def run(path: str, bootstrap: int = BOOTSTRAP) -> dict:
    """Wall seconds and peak MiB of one `tsweep fit` in a child process."""
    argv = [sys.executable, "-m", "tsweep", "fit", "--law", "chinchilla", "--data", path]
    argv += ["--bootstrap", str(bootstrap), "--json"]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"tsweep fit exited with {proc.returncode}: {err.read().decode()[-2000:]}")
        fit = json.loads(out.read())
    return {"wall": wall, "peak_mib": usage.ru_maxrss / 1024, "fit": fit}  # ru_maxrss: KiB on Linux


def main(tiny: bool = False) -> dict:
    """Both table sizes; ``tiny`` is the suite's size (``TINY_SIZES``, ``TINY_BOOTSTRAP``)."""
    machine = _machine.reference(tiny=tiny)
    sizes, bootstrap = (TINY_SIZES, TINY_BOOTSTRAP) if tiny else (SIZES, BOOTSTRAP)
    rows = []
    with tempfile.TemporaryDirectory(prefix="tsweep-fit-scale-") as tmp:
        for n in sizes:
            path = os.path.join(tmp, f"t{n}.parquet")
            table(n, path)
            rows.append((n, run(path, bootstrap)))
    print(f"{'rows':>8} {'seconds':>8} {'peak MiB':>9}  E [95% CI]")
    for n, r in rows:
        e = r["fit"]["params"]["E"]
        print(
            f"{n:>8,} {r['wall']:>8.1f} {r['peak_mib']:>9.0f}  "
            f"{e['value']:.4f} [{e['ci95'][0]:.4f}, {e['ci95'][1]:.4f}]"
        )
    big = rows[-1][1]
    grow = rows[-1][0] / rows[0][0]
    print(
        f"{rows[-1][0]:,} rows against the budget: {big['wall']:.1f} s of {BUDGET_S:.0f} s, {big['peak_mib']:.0f} MiB "
        f"of {BUDGET_MIB:.0f} MiB; time grows {big['wall'] / rows[0][1]['wall']:.1f}x for {grow:g}x the rows"
    )
    _machine.report(machine)
    print(f"fit_scale_time_ratio {big['wall'] / BUDGET_S:.3f}")
    print(f"fit_scale_memory_ratio {big['peak_mib'] / BUDGET_MIB:.3f}")
    return {"rows": rows, "time_ratio": big["wall"] / BUDGET_S, "memory_ratio": big["peak_mib"] / BUDGET_MIB}


if __name__ == "__main__":
    main(tiny="--tiny" in sys.argv[1:])
