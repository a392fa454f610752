"""The live analysis equals a cold refit of the same rows (issue 12: an analysis that cannot
contradict itself).

The analysis actor is fed a sweep's rows in the order a sweep finishes them and refits as they
arrive, each refit starting also from the previous one's optima; its final ``fits/latest.json``
must equal a cold ``transfer_report`` of the final table: the same identified / not-identified
verdict for every reported number, identified values within 1e-3, intervals whose ends agree to
10% of their width. On the real demo store (tests/data/demo) and on synthetic tables at the
shipped demo grid's shape.
"""

import dataclasses
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tsweep.analysis.actor import AnalysisActor, read_latest
from tsweep.analysis.identify import missing
from tsweep.analysis.report import disagreements
from tsweep.analysis.synthetic import Design, finishing_order, scaled_truths, shipped_designs, synthetic_summary
from tsweep.analysis.transfer import transfer_report
from tsweep.core.store import Store

DEMO = Path(__file__).parent / "data" / "demo" / "summary.parquet"
BOOT = 40
REFITS = 4  # refits while rows arrive, then the final one


def _live(tmp_path, rows):
    sweep_dir = str(tmp_path / "sweep")
    store = Store(os.path.join(sweep_dir, "store"))
    actor = AnalysisActor(sweep_dir, bootstrap=BOOT, seed=0)
    step = max(1, len(rows) // (REFITS + 1))
    for i, r in enumerate(rows, 1):
        store.write_summary(r)
        if i % step == 0 or i == len(rows):
            actor.refit()
    return read_latest(sweep_dir), store.read_summaries()


def test_the_live_report_on_the_demo_store_equals_a_cold_refit(tmp_path):
    rows = sorted(pq.read_table(DEMO).to_pylist(), key=lambda r: r["finished_at"])
    live, table = _live(tmp_path, rows)
    cold = transfer_report(table, bootstrap=BOOT, seed=0)
    assert live.n_jobs_finished == 72
    assert disagreements(live, cold) == []
    # what the old analysis printed as G = 2.06e-09 [2.06e-09, 3.04e-09] for prose+c
    for s in live.sources:
        assert s.G.value is None or s.G.ci95[0] > 1e-6, s.G


@pytest.mark.parametrize("seed", [0, 1])
def test_the_live_report_on_a_synthetic_demo_grid_equals_a_cold_refit(tmp_path, seed):
    design: Design = shipped_designs()["demo"]
    table = synthetic_summary(design, mode="barnett", truths=scaled_truths(design), noise=0.01, seed=seed)
    live, final = _live(tmp_path, finishing_order(table.to_pylist()))
    cold = transfer_report(final, bootstrap=BOOT, seed=0)
    assert disagreements(live, cold) == []
    assert sum(e.identified for e in cold.numbers().values()) >= 5  # the comparison is not vacuous


def test_differences_finds_a_disagreement():
    """The comparison itself can fail: a report against a copy with one number turned null, and
    against the same rows with other bootstrap draws (a different interval)."""
    table = pq.read_table(DEMO)
    a = transfer_report(table, bootstrap=BOOT, seed=0)
    assert disagreements(a, a) == []
    s = next(s for s in a.sources if s.multiplier.identified)
    nulled = dataclasses.replace(a, sources=tuple(
        dataclasses.replace(x, multiplier=missing("x")) if x is s else x for x in a.sources))
    assert disagreements(nulled, a) == [f"sources/{s.source}/multiplier: - (x) vs {s.multiplier.format()}"]
    other = transfer_report(table, bootstrap=BOOT, seed=7)
    assert any("interval" in d for d in disagreements(other, a))
