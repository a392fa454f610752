"""`tsweep fit` at scale: a 100,000-row table fitted with 100 bootstrap resamples, time and memory.

Each side runs in a child process so its peak resident memory is its own (``ru_maxrss`` of the
child). The table: the Chinchilla law at its published values (Besiroglu et al. 2024) on N from
1e6 to 1e10 and D from 1e8 to 1e12, log-normal noise of 1%, written to a Parquet file and fitted
through the console script, as a user would (``tsweep fit --law chinchilla --data ...
--bootstrap 100 --json``). Side by side: the same command at 10,000 rows, so the table shows how
time and memory grow with the table.

Goals (issue: ``tsweep fit`` at scale): at most 120 s and at most 2 GiB at 100k rows on 2 cores.

Run: ``python benchmarks/fit_scale.py`` (about a minute on 2 CPU cores).
Last line: ``fit_scale_memory_ratio VALUE``: peak MiB at 100k rows over the 2 GiB budget (goal
<= 1); the line before it gives the time over its 120 s budget.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

BUDGET_S = 120.0
BUDGET_MIB = 2048.0
SIZES = (10_000, 100_000)
TRUTH = {"A": 482.0, "B": 2085.0, "E": 1.82, "alpha": 0.348, "beta": 0.366}  # Besiroglu et al. 2024


def table(n: int, path: str, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    N = 10 ** rng.uniform(6, 10, n)
    D = 10 ** rng.uniform(8, 12, n)
    loss = TRUTH["E"] + TRUTH["A"] / N ** TRUTH["alpha"] + TRUTH["B"] / D ** TRUTH["beta"]
    pq.write_table(pa.table({"N": N, "D": D, "loss": loss * np.exp(0.01 * rng.standard_normal(n))}), path)


def run(path: str) -> dict:
    """Wall seconds and peak MiB of one `tsweep fit` in a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "tsweep", "fit", "--law", "chinchilla", "--data", path, "--bootstrap", "100", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - t0
    peak = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before) / 1024  # KiB on Linux
    return {"wall": wall, "peak_mib": peak, "fit": json.loads(out.stdout)}


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="tsweep-fit-scale-") as tmp:
        for n in SIZES:
            path = os.path.join(tmp, f"t{n}.parquet")
            table(n, path)
            rows.append((n, run(path)))
    print(f"{'rows':>8} {'seconds':>8} {'peak MiB':>9}  E [95% CI]")
    for n, r in rows:
        e = r["fit"]["params"]["E"]
        print(
            f"{n:>8,} {r['wall']:>8.1f} {r['peak_mib']:>9.0f}  "
            f"{e['value']:.4f} [{e['ci95'][0]:.4f}, {e['ci95'][1]:.4f}]"
        )
    big = rows[-1][1]
    print(
        f"100k rows against the budget: {big['wall']:.1f} s of {BUDGET_S:.0f} s, {big['peak_mib']:.0f} MiB of "
        f"{BUDGET_MIB:.0f} MiB; time grows {big['wall'] / rows[0][1]['wall']:.1f}x for 10x the rows"
    )
    print(f"fit_scale_time_ratio {big['wall'] / BUDGET_S:.3f}")
    print(f"fit_scale_memory_ratio {big['peak_mib'] / BUDGET_MIB:.3f}")


if __name__ == "__main__":
    main()
