"""Incremental refit cost: a refit with the previous fit among its starts vs a cold one, on a
500-run table.

The analysis actor refits as jobs finish. Cold, a fit screens the whole starting grid (4,500
points for Chinchilla, Hoffmann et al. 2022 Appendix D.2) and refines the best starts. A refit
adds the previous optimum and two perturbations of it to those starts, never replacing them
(tsweep/analysis/fitter.py): a live fit must equal a cold fit of the same rows, so a refit costs
about what a cold fit costs, and this benchmark checks that it never does worse. It measures both
on the same data after one more run arrives, and times 1,000 bootstrap resamples.

Table: 500 runs from a Chinchilla law (and a Barnett law) with 1% log-normal loss noise.
Timings are medians over repeats, each repeat adding a different new run.

Run: ``python benchmarks/refit.py [--tiny]`` (about a minute on 2 cores; ``--tiny``, the suite's
size: a 120-run table, 1 cold and 2 warm repeats, 20 resamples, in seconds). Last line:
``refit_warm_over_cold VALUE`` (median refit / median cold fit for the Chinchilla law: about 1,
the price of a refit that cannot settle where a cold fit would not; it was 0.02-0.03 when a warm
start replaced the grid, which is how live fits locked onto G = 0).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _machine

from tsweep.analysis import fitter
from tsweep.analysis.laws import get_law
from tsweep.analysis.synthetic import BARNETT_TRUTH, SCRATCH_TRUTH

NOISE = 0.01
COLD_REPEATS = 5
WARM_REPEATS = 20
N_BOOT = 1000
GRID = (20, 25)  # the table: 20 x 25 = 500 runs
REPORT_BOOT = 200
# The suite's size (tsweep's choice): seconds, and still a fit that recovers the law.
TINY = {"cold": 1, "warm": 2, "boot": 20, "grid": (10, 12), "report_boot": 5}


def _table(law_name: str, seed: int, grid: tuple[int, int] = GRID) -> dict[str, np.ndarray]:
    law = get_law(law_name)
    if law_name == "chinchilla":
        a, b = np.meshgrid(np.geomspace(1e5, 1e8, grid[0]), np.geomspace(1e6, 1e10, grid[1]), indexing="ij")
        truth = SCRATCH_TRUTH
    else:
        a, b = np.meshgrid(np.geomspace(1e7, 1e10, grid[0]), np.geomspace(1e5, 1e8, grid[1]), indexing="ij")
        truth = BARNETT_TRUTH["text"]
    x, y = law.inputs
    data = {x: a.ravel(), y: b.ravel()}
    rng = np.random.default_rng(seed)
    data[law.response] = law.predict(truth, **data) * np.exp(NOISE * rng.standard_normal(a.size))
    return data


def _add_run(law_name: str, data: dict[str, np.ndarray], i: int) -> dict[str, np.ndarray]:
    """The table plus one new run at a random point of the same ranges."""
    law = get_law(law_name)
    rng = np.random.default_rng(10_000 + i)
    new = {v: float(np.exp(rng.uniform(np.log(data[v].min()), np.log(data[v].max())))) for v in law.inputs}
    truth = SCRATCH_TRUTH if law_name == "chinchilla" else BARNETT_TRUTH["text"]
    new[law.response] = float(law.predict(truth, **new)) * float(np.exp(NOISE * rng.standard_normal()))
    return {k: np.append(v, new[k]) for k, v in data.items()}


def _time(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def bench(
    law_name: str,
    cold_repeats: int = COLD_REPEATS,
    warm_repeats: int = WARM_REPEATS,
    n_boot: int = N_BOOT,
    grid: tuple[int, int] = GRID,
) -> dict:
    data = _table(law_name, seed=0, grid=grid)
    previous = fitter.fit(law_name, data)  # the actor's last fit, before the new run
    cold_t, warm_t, gaps = [], [], []
    for i in range(max(cold_repeats, warm_repeats)):
        more = _add_run(law_name, data, i)
        tw, warm = _time(lambda more=more: fitter.fit(law_name, more, warm_start=previous))
        warm_t.append(tw)
        if i < cold_repeats:
            tc, cold = _time(lambda more=more: fitter.fit(law_name, more))
            cold_t.append(tc)
            gaps.append((warm.loss - cold.loss) / cold.loss)
    tb, boot = _time(lambda: fitter.fit(law_name, _add_run(law_name, data, 0), bootstrap=n_boot, warm_start=previous))
    return {
        "n": float(data[get_law(law_name).response].size + 1),
        "cold": statistics.median(cold_t),
        "warm": statistics.median(warm_t),
        "worst_rel_gap": max(gaps),
        "boot": tb,
        "boot_failed": float(sum("failed" in w for w in boot.warnings)),
        "params": dict(warm.params),
    }


def bench_report(bootstrap: int = REPORT_BOOT) -> tuple[float, float]:
    """The actor's whole refit: a transfer report on a 192-job synthetic sweep."""
    from tsweep.analysis.synthetic import synthetic_summary
    from tsweep.analysis.transfer import transfer_report

    table = synthetic_summary(mode="barnett", seed=0)
    cold_t, first = _time(lambda: transfer_report(table, bootstrap=bootstrap, seed=0))
    warm_t, _ = _time(lambda: transfer_report(table, bootstrap=bootstrap, seed=0, warm=first.warm_starts()))
    return cold_t, warm_t


def main(tiny: bool = False) -> dict:
    """Both laws and the actor's report; ``tiny`` is the suite's size (``TINY``)."""
    machine = _machine.reference(tiny=tiny)
    cold_n, warm_n, n_boot, grid, report_boot = (
        (TINY["cold"], TINY["warm"], TINY["boot"], TINY["grid"], TINY["report_boot"])
        if tiny
        else (COLD_REPEATS, WARM_REPEATS, N_BOOT, GRID, REPORT_BOOT)
    )
    results = {name: bench(name, cold_n, warm_n, n_boot, grid) for name in ("chinchilla", "barnett")}
    report_cold, report_warm = bench_report(report_boot)
    print(f"Incremental refit after one new run (medians: cold x{cold_n}, warm x{warm_n}; {NOISE:.0%} loss noise)")
    head = (
        f"{'law':<11} {'runs':>5} {'cold s':>8} {'warm s':>8} {'warm/cold':>10} {'warm-cold loss':>15} "
        f"{f'{n_boot} boot s':>12}"
    )
    print(head)
    print("-" * len(head))
    for name, r in results.items():
        print(
            f"{name:<11} {int(r['n']):>5} {r['cold']:>8.3f} {r['warm']:>8.4f} {r['warm'] / r['cold']:>10.3f} "
            f"{r['worst_rel_gap']:>+15.1e} {r['boot']:>12.2f}"
        )
    print("warm-cold loss: worst relative objective difference (<= 0: warm as good as cold)")
    print(
        f"transfer report, 192-job synthetic sweep, {report_boot} resamples: cold {report_cold:.2f} s, "
        f"warm {report_warm:.2f} s (the analysis actor's refit; bootstraps dominate)"
    )
    c = results["chinchilla"]
    _machine.report(machine)
    print(f"refit_warm_over_cold {c['warm'] / c['cold']:.4f}")
    return {"results": results, "ratio": c["warm"] / c["cold"], "report_s": (report_cold, report_warm)}


if __name__ == "__main__":
    main(tiny="--tiny" in sys.argv[1:])
