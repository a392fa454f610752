"""Honest intervals for G: simulations of the demo's grid at the laws and noise measured on a real
demo run, of a grid too narrow in p to identify G, and of one wide enough to.

A number printed with an interval is a promise: on every simulated table the report must either
hold the true G inside its 95% interval or say "not identified" (``honest``). Where the design
can identify G it must also do so in most draws, so that "not identified" cannot carry the test,
and its coverage among the draws it identifies must not be demonstrably below 85% (a one-sided
binomial test at 5%).

The demo truths are the joint gap law fitted at mini to real runs of the demo's grid family on 2
CPU cores (tsweep/sweeps/demo.yaml: synthetic sources 0.6 and 0.9 away from the target). "demo":
a run of the shipped grid (p = 125k..4M, f = 1k..16k; G = 3.96 and 5.74, residuals 0.47% per run).
"demo, 16x-p run 1" and "demo, 16x-p run 2": two runs of the earlier grid with p = 125k..2M
(G = 8.45 and 12.2, residuals 0.43%; G = 5.10 and 7.47, residuals 0.68%), simulated on the shipped
grid as other plausible worlds; in the second the nearer source's G is often not identified. The
noise simulated is a term per run and an offset shared by every fine-tune of one checkpoint
(0.2%, so the bootstrap's random-effects split is exercised). The narrow design is the earlier
prose -> python demo as measured (its fine-tuned loss still fell as a power of p at 4M tokens,
alpha ~ 0.08, G on its bound, 3.2% noise per run, 2.2% per checkpoint): there the report must
say "not identified".
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tsweep.analysis import fitter
from tsweep.analysis.laws import get_law
from tsweep.api import load_sweep

DRAWS = 30
BOOTSTRAP = 100
COVERAGE = 0.85  # the bar for "honest" and for coverage among identified draws


def _binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


# mini, measured on a run of the shipped demo.yaml (module docstring)
DEMO_TRUTH = {
    "beta": 0.428,
    "E": 2.296,
    "A_0": 1.017e6,
    "alpha_0": 1.083,
    "G_0": 3.962,
    "A_1": 8.445e9,
    "alpha_1": 1.836,
    "G_1": 5.741,
}
DEMO_NOISE = {"within": 0.0047, "between": 0.002}
# mini, measured on a run of the earlier 16x-p grid (tests/data/demo_synthetic, epochs capped at 40)
RUN1_TRUTH = {
    "beta": 0.5549,
    "E": 2.323,
    "A_0": 4.262e6,
    "alpha_0": 1.098,
    "G_0": 8.455,
    "A_1": 1.396e7,
    "alpha_1": 1.192,
    "G_1": 12.24,
}
RUN1_NOISE = {"within": 0.0043, "between": 0.002}
# mini, measured on a second run of the 16x-p grid (max_epochs 100): G_0 = 5.10 with an interval
# over 100x there, G_1 = 7.47
FINAL_TRUTH = {
    "beta": 0.4903,
    "E": 2.324,
    "A_0": 9.363e5,
    "alpha_0": 1.061,
    "G_0": 5.103,
    "A_1": 1.059e9,
    "alpha_1": 1.571,
    "G_1": 7.469,
}
FINAL_NOISE = {"within": 0.0068, "between": 0.002}
# the prose -> python design of an earlier demo (nano, measured): p = 125k..4M, f = 4k..32k
NARROW_TRUTH = {
    "beta": 0.04674,
    "E": 3.059e-07,
    "A_0": 11.09,
    "alpha_0": 0.08393,
    "G_0": 2.061e-09,
    "A_1": 10.28,
    "alpha_1": 0.07795,
    "G_1": 2.061e-09,
}
NARROW_NOISE = {"within": 0.032, "between": 0.022}


def _demo_grid():
    sweep = load_sweep("demo")
    return np.array(sweep.pretrain.p_axis, dtype=float), np.array(sweep.finetune_tokens, dtype=float)


def _narrow_grid():
    return np.array([125e3, 500e3, 1e6, 2e6, 4e6]), np.array([4e3, 12e3, 32e3])


def _wide_grid():
    return np.geomspace(1e4, 1e7, 7), np.array([1e3, 4e3, 16e3, 64e3])  # p over 1000x, f over 64x


DESIGNS = {
    # the demo as measured: G identified and covered
    "demo": dict(grid=_demo_grid, truth=DEMO_TRUTH, **DEMO_NOISE, identifies=0.6),
    # the laws of two runs of the earlier grid, on the shipped grid
    "demo, 16x-p run 1": dict(grid=_demo_grid, truth=RUN1_TRUTH, **RUN1_NOISE, identifies=0.6),
    # the nearer source's gap smaller and the noise larger: its G is often not identified at mini;
    # whatever is printed must still cover
    "demo, 16x-p run 2": dict(grid=_demo_grid, truth=FINAL_TRUTH, **FINAL_NOISE, identifies=0.2),
    # a p axis where the loss still falls as a slow power law: G cannot be told apart; it must say so
    "narrow p": dict(grid=_narrow_grid, truth=NARROW_TRUTH, **NARROW_NOISE, identifies=0.0),
    # the same with a real gap of the size its interval allowed: still too narrow a p range
    "narrow p, G > 0": dict(
        grid=_narrow_grid, truth={**NARROW_TRUTH, "G_0": 1.0, "G_1": 2.0}, **NARROW_NOISE, identifies=0.0
    ),
    # a grid whose p range reaches the floor: G must be identified and covered
    "wide p": dict(
        grid=_wide_grid,
        truth={
            "beta": 0.3,
            "E": 1.5,
            "A_0": 300.0,
            "alpha_0": 0.5,
            "G_0": 2.0,
            "A_1": 300.0,
            "alpha_1": 0.5,
            "G_1": 4.0,
        },
        within=0.01,
        between=0.005,
        identifies=0.6,
    ),
}


def _table(grid, n_src: int):
    p, f = grid()
    P, F = (a.ravel() for a in np.meshgrid(p, f, indexing="ij"))
    return np.tile(P, n_src), np.tile(F, n_src), np.repeat(np.arange(n_src), P.size)


@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_g_is_covered_or_not_identified(name):
    design = DESIGNS[name]
    truth = design["truth"]
    gaps = [k for k in truth if k.startswith("G_")]
    p, f, src = _table(design["grid"], len(gaps))
    law = get_law(f"barnett_joint:{len(gaps)}")
    groups = src * 1e15 + p
    _, inv = np.unique(groups, return_inverse=True)
    honest = {g: 0 for g in gaps}
    covered = {g: 0 for g in gaps}
    identified = {g: 0 for g in gaps}
    for i in range(DRAWS):
        rng = np.random.default_rng(1000 + i)
        noise = (
            design["within"] * rng.standard_normal(p.size) + design["between"] * rng.standard_normal(inv.max() + 1)[inv]
        )
        loss = law.predict(truth, p=p, f=f, source=src) * np.exp(noise)
        fit = fitter.fit(
            law,
            {"p": p, "f": f, "source": src, "loss": loss},
            bootstrap=BOOTSTRAP,
            seed=i,
            resample="parametric",
            groups=groups,
        )
        for g in gaps:
            if fit.identified(g):
                identified[g] += 1
                lo, hi = fit.ci95[g]
                covered[g] += lo <= truth[g] <= hi
                honest[g] += lo <= truth[g] <= hi
            else:
                honest[g] += 1
    print(f"{name}: honest {honest}, identified {identified}, covered {covered} of {DRAWS}")
    for g in gaps:
        assert honest[g] >= COVERAGE * DRAWS, (g, honest, identified)
        assert identified[g] >= design["identifies"] * DRAWS, (g, identified)
        # coverage among the identified draws must not be demonstrably below 85%: a one-sided
        # binomial test at 5% (with 7 identified draws, 5 covered passes and 3 fails)
        assert _binomial_cdf(covered[g], identified[g], COVERAGE) >= 0.05, (g, covered, identified)
