"""The analysis actor's refit: its cost per finished job, and its agreement with a cold refit.

The actor refits the whole transfer report as jobs finish, each refit also starting from the
previous one's optima (one more start beside the screened grid, never the only one). This feeds
sweeps to the actor in the order a sweep finishes them, refitting every few jobs, then compares
its final report with a cold ``transfer_report`` of the final table (the same seed and
resamples) number by number (``analysis.report.disagreements``), and times both.

Sweeps: the real demo store (tests/data/demo, 72 jobs), the shipped demo grid simulated from
known laws at 1% noise (72 jobs), and a wide 192-job synthetic sweep where every law is
identified.

Run: ``python benchmarks/refit.py`` (no arguments; a few minutes on 2 cores). Last line:
``refit_live_over_cold VALUE``: the final live refit's time over the cold refit's on the same
table, worst sweep (warm starts buy agreement, not speed: a value near 1 is the design).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from tsweep.analysis.actor import AnalysisActor
from tsweep.analysis.report import disagreements
from tsweep.analysis.synthetic import DEFAULT_DESIGN, finishing_order, scaled_truths, shipped_designs, synthetic_summary
from tsweep.analysis.transfer import transfer_report
from tsweep.core.store import Store

BOOTSTRAP = 200
EVERY = 8  # jobs between refits (refits queued behind a long one coalesce, so the actor sees batches)
DEMO = Path(__file__).resolve().parents[1] / "tests" / "data" / "demo" / "summary.parquet"


def sweeps() -> dict[str, list[dict]]:
    demo = shipped_designs()["demo"]
    return {
        "demo store": sorted(pq.read_table(DEMO).to_pylist(), key=lambda r: r["finished_at"]),
        "demo grid, simulated": finishing_order(synthetic_summary(
            demo, mode="barnett", truths=scaled_truths(demo), noise=0.01, seed=0).to_pylist()),
        "wide synthetic": finishing_order(synthetic_summary(
            DEFAULT_DESIGN, mode="barnett", truths=scaled_truths(DEFAULT_DESIGN), noise=0.01, seed=0).to_pylist()),
    }


def bench(rows: list[dict]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(os.path.join(tmp, "store"))
        actor = AnalysisActor(tmp, bootstrap=BOOTSTRAP, seed=0)
        times = []
        for i, r in enumerate(rows, 1):
            store.write_summary(r)
            if i % EVERY == 0 or i == len(rows):
                t0 = time.perf_counter()
                live = actor.refit()
                times.append(time.perf_counter() - t0)
        table = store.read_summaries()
        t0 = time.perf_counter()
        cold = transfer_report(table, bootstrap=BOOTSTRAP, seed=0)
        cold_s = time.perf_counter() - t0
    return {
        "jobs": len(rows), "refits": len(times), "median": statistics.median(times), "last": times[-1],
        "cold": cold_s, "disagree": disagreements(live, cold),
        "identified": sum(e.identified for e in cold.numbers().values()), "numbers": len(cold.numbers()),
    }


def main() -> None:
    results = {name: bench(rows) for name, rows in sweeps().items()}
    print(f"Live refits (every {EVERY} jobs, bootstrap {BOOTSTRAP}) against a cold refit of the final table")
    head = (f"{'sweep':<22} {'jobs':>5} {'refits':>7} {'median s':>9} {'last s':>7} {'cold s':>7} "
            f"{'identified':>11} {'disagreements':>14}")
    print(head)
    print("-" * len(head))
    for name, r in results.items():
        print(f"{name:<22} {r['jobs']:>5} {r['refits']:>7} {r['median']:>9.2f} {r['last']:>7.2f} {r['cold']:>7.2f} "
              f"{r['identified']:>5}/{r['numbers']:<5} {len(r['disagree']):>14}")
        for d in r["disagree"]:
            print(f"    {d}")
    worst = max(r["last"] / r["cold"] for r in results.values())
    print(f"refit_live_over_cold {worst:.3f}")


if __name__ == "__main__":
    main()
