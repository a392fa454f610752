"""Honest intervals: on simulations of the shipped sweeps' grids, with the noise measured on their
runs, the 95% interval of G covers the true G in at least 85% of the draws where the report calls
G identified (and the design identifies it in most draws, or it would claim too much).

The truths are the laws fitted to real runs of each sweep; the noise has the structure the gap
fit's bootstrap assumes and the runs show: a term per run and an offset shared by every
fine-tune of one annealed checkpoint (``tsweep.analysis.fitter.noise_components``).
"""

from __future__ import annotations

import numpy as np
import pytest

from tsweep.analysis import fitter
from tsweep.analysis.laws import get_law
from tsweep.api import load_sweep

DRAWS = 40
BOOTSTRAP = 100

# Per sweep: the joint gap law of one size fitted to its real runs, and the noise measured there
# (per-run and per-checkpoint standard deviations of log loss).
DESIGNS = {
    "demo": {
        "truth": {"beta": 0.25, "E": 0.9, "A_0": 30.0, "alpha_0": 0.35, "G_0": 2.0, "A_1": 30.0,
                  "alpha_1": 0.35, "G_1": 3.0},
        "within": 0.01, "between": 0.005,
    },
}


def _grid(name: str):
    sweep = load_sweep(name)
    p = np.array(sweep.pretrain.p_axis, dtype=float)
    f = np.array(sweep.finetune_tokens, dtype=float)
    P, F = (a.ravel() for a in np.meshgrid(p, f, indexing="ij"))
    n_src = len(sweep.pretrain_sources)
    return np.tile(P, n_src), np.tile(F, n_src), np.repeat(np.arange(n_src), P.size)


@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_gap_interval_coverage_on_the_shipped_grid(name):
    design = DESIGNS[name]
    truth = design["truth"]
    p, f, src = _grid(name)
    law = get_law(f"barnett_joint:{src.max() + 1}")
    groups = src * 1e15 + p
    _, inv = np.unique(groups, return_inverse=True)
    gaps = [k for k in truth if k.startswith("G_")]
    covered = {g: 0 for g in gaps}
    identified = {g: 0 for g in gaps}
    for i in range(DRAWS):
        rng = np.random.default_rng(1000 + i)
        noise = design["within"] * rng.standard_normal(p.size) + design["between"] * rng.standard_normal(inv.max() + 1)[inv]
        loss = law.predict(truth, p=p, f=f, source=src) * np.exp(noise)
        fit = fitter.fit(law, {"p": p, "f": f, "source": src, "loss": loss}, bootstrap=BOOTSTRAP, seed=i,
                         resample="parametric", groups=groups)
        for g in gaps:
            if fit.identified(g):
                identified[g] += 1
                lo, hi = fit.ci95[g]
                covered[g] += lo <= truth[g] <= hi
    for g in gaps:
        assert identified[g] >= 0.6 * DRAWS, (g, identified)
        assert covered[g] >= 0.85 * identified[g], (g, covered, identified)
