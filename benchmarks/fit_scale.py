"""`tsweep fit` at scale: time and peak memory of a 100k-row fit with 100 bootstrap resamples.

Issue 12 asks for 100k rows, bootstrap 100, in <= 2 minutes and <= 2 GiB; before the fitter
screened its grid starts on a subsample and in bounded chunks, memory grew as (grid starts x
rows) and a 100k-row table ran past 22 GiB. Each fit runs in its own process, so its peak
resident memory (``ru_maxrss``, imports included) is its own. The table: a Chinchilla law
(Besiroglu et al. 2024's scale of noise: 2% log-normal) on random (N, D); and the same for the
Barnett gap law.

Run: ``python benchmarks/fit_scale.py`` (no arguments; about 2 minutes on 2 cores; ``--rows``
and ``--bootstrap`` for other sizes). Last line: ``fit_scale_over_budget VALUE``, the larger of
seconds / 120 and peak MiB / 2048 at 100k rows (goal <= 1).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

BUDGET_S = 120.0
BUDGET_MIB = 2048.0
NOISE = 0.02
TRUTH = {
    "chinchilla": ({"A": 60.0, "B": 80.0, "E": 1.7, "alpha": 0.3, "beta": 0.25}, {"N": (1e5, 1e8), "D": (1e6, 1e10)}),
    "barnett": ({"A": 3.16e5, "alpha": 0.5, "G": 40.0, "beta": 0.3, "E": 1.7}, {"p": (1e7, 1e10), "f": (1e5, 1e8)}),
}


def one(law: str, rows: int, bootstrap: int) -> dict:
    """Fit ``law`` to a ``rows``-row table in this process; time, peak memory, the estimates."""
    from tsweep.analysis import fitter
    from tsweep.analysis.laws import get_law

    truth, ranges = TRUTH[law]
    rng = np.random.default_rng(0)
    data = {v: np.exp(rng.uniform(np.log(lo), np.log(hi), rows)) for v, (lo, hi) in ranges.items()}
    data["loss"] = get_law(law).predict(truth, **data) * np.exp(NOISE * rng.standard_normal(rows))
    t0 = time.perf_counter()
    res = fitter.fit(law, data, bootstrap=bootstrap, seed=0)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    covered = sum(bool(e.identified and e.ci95[0] <= truth[p] <= e.ci95[1]) for p, e in res.estimates.items())
    return {"law": law, "rows": rows, "bootstrap": bootstrap, "seconds": seconds, "peak_mib": peak,
            "converged": res.converged, "covered": f"{covered}/{len(res.estimates)}"}


def _child(law: str, rows: int, bootstrap: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--one", law, "--rows", str(rows), "--bootstrap", str(bootstrap)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--bootstrap", type=int, default=100)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.rows, args.bootstrap)))
        return
    results = [_child(law, n, args.bootstrap) for law in TRUTH for n in (args.rows // 10, args.rows)]
    print(f"tsweep fit: {args.bootstrap} bootstrap resamples, {NOISE:.0%} log-normal noise, one process per fit")
    head = f"{'law':<11} {'rows':>8} {'seconds':>8} {'peak MiB':>9} {'converged':>10} {'truth in 95% CI':>16}"
    print(head)
    print("-" * len(head))
    for r in results:
        print(f"{r['law']:<11} {r['rows']:>8} {r['seconds']:>8.1f} {r['peak_mib']:>9.0f} {str(r['converged']):>10} "
              f"{r['covered']:>16}")
    big = [r for r in results if r["rows"] == args.rows]
    worst = max(max(r["seconds"] / BUDGET_S, r["peak_mib"] / BUDGET_MIB) for r in big)
    print(f"budget at {args.rows} rows: {BUDGET_S:.0f} s and {BUDGET_MIB:.0f} MiB; worst share used: {worst:.2f}")
    print(f"fit_scale_over_budget {worst:.3f}")


if __name__ == "__main__":
    main()
