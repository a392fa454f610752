"""A fit's convergence verdict is a property of the fit, not of the machine that ran it.

L-BFGS-B's exit flag depends on the last bits of the BLAS kernel (its line search can end
"abnormally" on an optimum it cannot improve in floating point), so a verdict taken from it
changes between machines. :func:`tsweep.analysis.fitter.stationarity` measures the step that is
left at the optimum in the fit's own standard errors. Here the same fits run under other BLAS
thread counts, other start orders and last-bit perturbations of the data, which move the last
bits the way another kernel does: every verdict must be the same, and a fit stopped early must
still be called unconverged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_analysis_laws import CASES as LAW_CASES
from test_analysis_laws import _grid_table

from tsweep.analysis import _blas, fitter
from tsweep.analysis.laws import get_law

# The laws' recovery tables (tests/test_analysis_laws.py), at the noise those tests use.
CASES = {name: LAW_CASES[name] for name in ("hernandez", "chinchilla", "barnett")}
NOISE = 0.005
CHINCHILLA_CSV = Path(__file__).parent / "data" / "chinchilla" / "approach3_subset.csv"


def _table(name: str, seed: int) -> dict:
    return _grid_table(name, NOISE, seed)[2]


def _tables() -> list[tuple[str, dict, float]]:
    import pyarrow.csv as pacsv

    out = [(name, _table(name, seed), fitter.HUBER_DELTA) for name in CASES for seed in (1, 2)]
    t = pacsv.read_csv(CHINCHILLA_CSV)
    out.append(("chinchilla", {c: t.column(c).to_numpy() for c in ("N", "D", "loss")}, fitter.PUBLISHED_DELTA))
    return out


def _last_bits(data: dict, response: str, k: int) -> dict:
    """The response moved by k units in the last place: what another BLAS kernel's rounding does."""
    y = np.asarray(data[response], dtype=float)
    return {**data, response: y + k * np.spacing(y)}


def _verdicts(threads: int, monkeypatch) -> list[bool]:
    monkeypatch.setattr(_blas, "BLAS_THREADS", threads)
    out = []
    for name, data, delta in _tables():
        law = get_law(name)
        for k in (0, 1, -3):
            out.append(fitter.fit(law, _last_bits(data, law.response, k), delta=delta).converged)
    return out


def test_verdicts_are_the_same_under_other_thread_counts_and_last_bits(monkeypatch):
    one = _verdicts(1, monkeypatch)
    two = _verdicts(2, monkeypatch)
    assert one == two
    assert all(one), "every table here is a well-posed fit; each must be converged"


@pytest.mark.parametrize("name", sorted(CASES))
def test_verdict_is_the_same_for_every_order_of_the_starts(name):
    law = get_law(name)
    data = _table(name, 1)
    logx, logy, _, _ = fitter.prepare(law, data)
    w = np.ones(logy.size)
    starts = fitter.screen(law, logx, logy, w, fitter.N_REFINE)
    rng = np.random.default_rng(0)
    verdicts, optima = [], []
    for _ in range(4):
        order = rng.permutation(len(starts))
        theta, _, ok = fitter._best_of(law, starts[order], logx, logy, w, fitter.HUBER_DELTA)
        verdicts.append(ok)
        optima.append(law.as_dict(theta))
    assert verdicts == [True] * 4
    for got in optima[1:]:
        for p, v in got.items():
            assert v == pytest.approx(optima[0][p], rel=1e-5)


def test_a_fit_stopped_short_of_its_optimum_is_unconverged():
    law = get_law("barnett")
    data = _table("barnett", 1)
    logx, logy, _, _ = fitter.prepare(law, data)
    w = np.ones(logy.size)
    best = np.array(fitter.fit(law, data).theta)
    assert fitter.stationarity(law, best, logx, logy, w) < fitter.STATIONARY_SE
    early, _, _ = fitter.batch_refine(law, law.grid()[0], logx, logy, w[None, :], max_iter=3)
    assert fitter.stationarity(law, early[0], logx, logy, w) > 1.0


def test_a_parameter_pinned_on_its_bound_is_not_counted_against_convergence():
    # a flat target: no power law bends, so the scales N_c and D_c run to their upper bounds
    law = get_law("kaplan")
    n = np.geomspace(1e6, 1e9, 12)
    d = np.geomspace(1e8, 1e11, 12)
    nn, dd = np.meshgrid(n, d, indexing="ij")
    y = 3.0 + 0.0 * nn.ravel() + 0.001 * np.random.default_rng(0).standard_normal(nn.size)
    res = fitter.fit(law, {"N": nn.ravel(), "D": dd.ravel(), law.response: y})
    assert any("sits on its bound" in w for w in res.warnings)
    assert res.converged, res.warnings
