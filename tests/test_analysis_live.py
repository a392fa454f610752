"""The live analysis equals a cold refit of the same rows, on a real demo store (issue 12: an
analysis that cannot contradict itself).

tests/data/demo holds the 72 summary rows of one real ``tsweep demo`` run (made before issue 12's
protocol: a 4x p range, two from-scratch curves that rise at 1M tokens). The analysis actor is fed
them in the order the sweep finished them (``finished_at``), refitting after every few, each refit
starting also from the previous one's fits; its final ``fits/latest.json`` must say what a cold
``transfer_report`` of the final table says, for *every* reported number (the global scratch
law, each size's plateau and D(N), each size's joint gap fit, every source's headline numbers,
every comparison): the same identified / not-identified verdict, identified values within 1e-3,
interval ends within 10% of the interval's width. tests/test_analysis_actor.py checks the same on
synthetic rows for the headline numbers.
"""

import dataclasses
import json
import math
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tsweep.analysis.actor import AnalysisActor, read_latest
from tsweep.analysis.records import FLOOR_MISFIT, Estimate, TransferReport
from tsweep.analysis.transfer import transfer_report
from tsweep.core.store import Store

DEMO = Path(__file__).parent / "data" / "demo" / "summary.parquet"
# a run of today's demo grid (tests/data/demo_synthetic/README.md): two identified gaps and a D_T
# law per source, whose live fit once differed from a cold one at the same objective
SYNTHETIC = Path(__file__).parent / "data" / "demo_synthetic" / "summary.parquet"
BOOT = 20
REFITS = 4  # refits while the rows arrive; the last one sees them all


def numbers(report: TransferReport) -> dict[str, Estimate]:
    """Every number the report prints, by a path."""
    out: dict[str, Estimate] = {}
    fits = {
        "scratch": report.scratch,
        **{f"gap/{g.size}": g.fit for g in report.gap_fits},
        **{f"plateau/{c.size}": c.fit for c in report.curves},
    }
    for key, fit in fits.items():
        for name in {} if fit is None else fit.params:
            out[f"{key}/{name}"] = Estimate.of(fit, name)
    for c in report.curves:
        out[f"curve/{c.size}/plateau"], out[f"curve/{c.size}/d_n"] = c.plateau, c.d_n
    for s in report.sources:
        for name in ("G", "G_loss", "k", "alpha", "beta", "multiplier"):
            out[f"source/{s.source}/{name}"] = getattr(s, name)
    for c in report.comparisons:
        out[f"comparison/{c.a}-{c.b}/d_G"], out[f"comparison/{c.a}-{c.b}/d_G_loss"] = c.d_G, c.d_G_loss
    return out


def disagreements(a: TransferReport, b: TransferReport) -> list[str]:
    """Every way report ``a`` disagrees with report ``b``, one line each (none: they agree)."""
    x_all, y_all = numbers(a), numbers(b)
    out = [f"only in one report: {k}" for k in sorted(set(x_all) ^ set(y_all))]
    for key in sorted(set(x_all) & set(y_all)):
        x, y = x_all[key], y_all[key]
        if x.identified != y.identified:
            out.append(f"{key}: {x} vs {y}")
        elif x.identified and not math.isclose(x.value, y.value, rel_tol=1e-3, abs_tol=1e-12):
            out.append(f"{key}: value {x.value:.6g} vs {y.value:.6g}")
        elif x.ci95 and y.ci95:
            width = max(y.ci95[1] - y.ci95[0], 1e-12)
            if max(abs(x.ci95[0] - y.ci95[0]), abs(x.ci95[1] - y.ci95[1])) > 0.1 * width:
                out.append(f"{key}: interval {x.ci95} vs {y.ci95}")
    return out


@pytest.fixture(scope="module")
def demo_rows():
    return sorted(pq.read_table(DEMO).to_pylist(), key=lambda r: r["finished_at"])


@pytest.fixture(scope="module")
def cold():
    return transfer_report(pq.read_table(DEMO), bootstrap=BOOT, seed=0)


def _replay(path: Path, tmp_path, refits: int, boot: int) -> TransferReport:
    """The analysis actor fed a real store's rows in the order the sweep finished them."""
    rows = sorted(pq.read_table(path).to_pylist(), key=lambda r: r["finished_at"])
    sweep_dir = str(tmp_path / "demo")
    store = Store(os.path.join(sweep_dir, "store"))
    actor = AnalysisActor(sweep_dir, bootstrap=boot, seed=0)
    step = max(1, len(rows) // refits)
    for i, r in enumerate(rows, 1):
        store.write_summary(r)
        if i % step == 0 or i == len(rows):
            actor.refit()
    assert store.read_summaries().num_rows == len(rows)
    return read_latest(sweep_dir)


def test_the_live_report_on_a_real_demo_store_equals_a_cold_refit(tmp_path, demo_rows, cold):
    live = _replay(DEMO, tmp_path, REFITS, BOOT)
    assert live.n_jobs_finished == len(demo_rows) == 72
    assert len(numbers(cold)) > 40
    assert disagreements(live, cold) == []
    # what the analysis before issue 12 printed for prose+c: G = 2.06e-09 [2.06e-09, 3.04e-09]
    for s in live.sources:
        assert not s.G.identified or s.G.ci95[0] > 1e-6, s.G


def test_the_live_report_on_the_synthetic_demo_equals_a_cold_refit(tmp_path):
    """Ten refits as the 78 rows arrive, at the sweep's own 200 resamples: every number the
    same as a cold report, both D_T exponents alpha and both multipliers identified (k and the
    N exponent are not: the demo has two model sizes), the two gaps withdrawn with the same
    reason (this run's gap law floors disagree with its scratch plateaus at both sizes) and their
    difference in loss at the largest f identified."""
    live = _replay(SYNTHETIC, tmp_path, 10, 200)
    cold = transfer_report(pq.read_table(SYNTHETIC), bootstrap=200, seed=0)
    assert live.n_jobs_finished == 78
    assert disagreements(live, cold) == []
    for s in cold.sources:
        assert s.alpha.identified and s.multiplier.identified, s
        assert not s.G.identified and FLOOR_MISFIT in (s.G.reason or ""), s.G
        assert not s.k.identified and "needs >= 3" in s.k.reason
    assert next(c for c in cold.comparisons if c.d_G_loss.identified)


def test_a_refit_from_the_optima_a_real_live_run_held_equals_a_cold_fit():
    """The real run's actor ended on optima that a cold fit of the same rows did not reach (the
    D_T law's flat valley under a loss-sized Huber delta); taken as starts, they must change
    nothing now."""
    table = pq.read_table(SYNTHETIC)
    optima = json.loads((SYNTHETIC.parent / "live_optima.json").read_text())
    cold = transfer_report(table, bootstrap=BOOT, seed=0)
    warm = transfer_report(table, bootstrap=BOOT, seed=0, warm=optima)
    assert disagreements(warm, cold) == []


def test_the_comparison_can_fail(cold):
    """A report against a copy with one identified number turned null, and against the same rows
    with other bootstrap draws."""
    a = cold
    assert disagreements(a, a) == []
    key, est = next((k, e) for k, e in numbers(a).items() if k.startswith("curve/") and e.identified)
    size = key.split("/")[1]
    nulled = dataclasses.replace(
        a,
        curves=tuple(dataclasses.replace(c, plateau=Estimate.missing("x")) if c.size == size else c for c in a.curves),
    )
    assert disagreements(nulled, a) == [f"curve/{size}/plateau: {Estimate.missing('x')} vs {est}"]
    other = transfer_report(pq.read_table(DEMO), bootstrap=BOOT, seed=7)
    assert any("interval" in d for d in disagreements(other, a))
