"""The transfer gap, comparable across sources (Barnett 2024, arXiv 2408.16947).

Barnett's law for fine-tuning after p pre-training tokens on f target tokens,
L(p, f) = (A p^-alpha + G) f^-beta + E, has no model size: it is fitted per size. tsweep fits it
*jointly over sources* at each size (``laws.BarnettJoint``): one beta and one E for the target at
that size, and A, alpha, G per source. With a separate beta per source, G_prose and G_prose+c
would be coefficients of different powers of f, in different units; with one beta they are
comparable, and so is their difference.

Per size, a source enters the joint fit if its fine-tunes span >= 3 distinct p (A, alpha and G
cannot be separated with fewer: two p values fit A p^-alpha + G exactly for any G); the fit
needs >= 3 distinct f overall (beta and E) and more runs than parameters. The p values must also
span ``MIN_P_SPAN`` (10x) for A, alpha and G to count as identified: over a range R the
pre-training term A p^-alpha changes by R^alpha, only 2x over the demo's old 4x range at
alpha = 0.5, which an offset G and a flatter power law fit equally well. On simulations of
such a grid at 1% noise the G intervals that passed every other rule held the true G in only
75% of cases (benchmarks/coverage.py), because G came out identified exactly when the noise
made it look large. Barnett 2024 read p off Pythia's step checkpoints over two orders of
magnitude; issue 12 asks tsweep's sweeps for >= 32x. Reported per source:

- **G**, and **G in loss units** at a reference f (``f_ref``, the largest fine-tune budget at that
  size): G f_ref^-beta is the part of the loss that unlimited pre-training cannot remove there;
- the **headline** G of a source: the largest size at which its G is identified (else the reason
  from the largest size that has a fit);
- **differences** G_a - G_b (and in loss units) for every pair of sources, at the largest size
  where both are identified, with the interval of the joint bootstrap (the two G's are fitted
  together, so their correlation is in the interval). Lower G means better transfer.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from tsweep.analysis.fitter import FitResult, Problem, at_bound, bound_shares
from tsweep.analysis.identify import Estimate, judge, missing
from tsweep.analysis.laws import barnett_joint
from tsweep.analysis.report import Comparison, GapFit

Array = np.ndarray

MIN_DISTINCT_P = 3  # A, alpha and G per source
MIN_DISTINCT_F = 3  # beta and E, shared
MIN_P_SPAN = 10.0  # largest p over smallest, for A, alpha and G to be identified (see the docstring)


def plan(
    p: Array, f: Array, source: Array, logloss: Array, warm: Callable[[tuple[str, ...]], Array | None]
) -> tuple[Problem | None, tuple[str, ...], dict[str, str]]:
    """The joint problem of one size's fine-tunes (p > 0), or None, and why each source left out is out.

    ``warm(sources)``: the previous optimum of the joint law of those sources, or None.
    Returns (problem, sources in the fit in code order, {source: reason}).
    """
    reasons: dict[str, str] = {}
    eligible = []
    for s in sorted(set(source)):
        distinct = np.unique(p[source == s]).size
        if distinct >= MIN_DISTINCT_P:
            eligible.append(s)
        else:
            reasons[s] = f"p takes {distinct} distinct value(s), needs >= {MIN_DISTINCT_P}"
    keep = np.isin(source, eligible)
    law = barnett_joint(max(1, len(eligible)))
    n_f = np.unique(f[keep]).size
    if not eligible or n_f < MIN_DISTINCT_F or keep.sum() <= law.n_params:
        why = (f"{int(keep.sum())} runs, {n_f} distinct f; needs >= {MIN_DISTINCT_F} distinct f and more runs "
               f"than the joint law's {law.n_params} parameters")
        for s in eligible:
            reasons[s] = why
        return None, (), reasons
    code = np.array([eligible.index(s) for s in source[keep]], dtype=float)
    logx = law.log_inputs({"p": p[keep], "f": f[keep], "source": code})
    design = {}
    for i, s in enumerate(eligible):
        span = float(p[source == s].max() / p[source == s].min())
        if span < MIN_P_SPAN:
            why = f"p spans {span:.3g}x, needs >= {MIN_P_SPAN:g}x to separate G from A p^-alpha"
            design.update({f"A_{i}": why, f"alpha_{i}": why, f"G_{i}": why})
    prob = Problem(law, logx, logloss[keep], warm=warm(tuple(eligible)), design=design)
    return prob, tuple(eligible), reasons


def _g_loss(theta: Array, i: int, f_ref: float) -> Array:
    """G_i f_ref^-beta from optimiser-space optima (..., P): exp(g_i - beta log f_ref)."""
    theta = np.asarray(theta, dtype=float)
    return np.exp(theta[..., 4 + 3 * i] - theta[..., 0] * np.log(f_ref))


def gap_fit(
    size: str, n_params: int, all_sources: Sequence[str], f_ref: float, prob: Problem | None,
    fit: FitResult | None, in_fit: tuple[str, ...], reasons: Mapping[str, str], warnings: Sequence[str] = (),
) -> GapFit:
    """One size's GapFit: G and G f_ref^-beta per source through the identification rule."""
    G: dict[str, Estimate] = {}
    G_loss: dict[str, Estimate] = {}
    design = {} if prob is None else prob.design_reasons()
    for s in all_sources:
        if s not in in_fit:
            G[s] = G_loss[s] = missing(f"not identified at {size}: {reasons.get(s, 'no fine-tunes')}")
            continue
        i = in_fit.index(s)
        G[s] = fit.estimates[f"G_{i}"]
        theta = np.asarray(fit.theta)
        law = prob.law
        on = at_bound(law, theta)
        share = bound_shares(law, prob.boot)[4 + 3 * i] if prob.boot is not None else (0.0, 0.0)
        G_loss[s] = judge(
            float(_g_loss(theta, i, f_ref)), None if prob.boot is None else _g_loss(prob.boot, i, f_ref), "scale",
            on_bound=bool(on[0] or on[4 + 3 * i]), bound_share=share,
            design=design.get(f"G_{i}"),
        )
    beta = fit.estimates["beta"] if fit else missing(f"not identified at {size}: no joint gap fit")
    E = fit.estimates["E"] if fit else missing(f"not identified at {size}: no joint gap fit")
    return GapFit(size=size, n_params=n_params, sources=in_fit, f_ref=f_ref, fit=fit, G=G, G_loss=G_loss, beta=beta,
                  E=E, warnings=tuple(warnings))


def headline(gaps: Sequence[GapFit], source: str) -> GapFit | None:
    """The size a source's G is read at: the largest with its G identified, else the largest with
    a fit that includes it, else the largest that has its fine-tunes at all."""
    ordered = sorted(gaps, key=lambda g: g.n_params, reverse=True)
    for test in (lambda g: g.G.get(source) is not None and g.G[source].identified,
                 lambda g: source in g.sources, lambda g: source in g.G):
        hit = next((g for g in ordered if test(g)), None)
        if hit is not None:
            return hit
    return None


def comparisons(gaps: Sequence[GapFit], sources: Sequence[str], boots: Mapping[str, Array | None]) -> list[Comparison]:
    """G_a - G_b for every pair of sources, at the largest size where both are identified.

    ``boots``: each size's joint bootstrap stack (optimiser space), or None.
    """
    out = []
    ordered = sorted(gaps, key=lambda g: g.n_params, reverse=True)
    for a, b in itertools.combinations(sorted(sources), 2):
        both = [g for g in ordered if a in g.sources and b in g.sources]
        g = next((g for g in both if g.G[a].identified and g.G[b].identified), both[0] if both else None)
        if g is None:
            why = missing("not identified: no size where both sources are in one joint gap fit")
            out.append(Comparison(a, b, None, None, why, why))
            continue
        ia, ib = g.sources.index(a), g.sources.index(b)
        design = None
        for s in (a, b):
            if not g.G[s].identified:
                design = f"G of {s} at {g.size}: {g.G[s].reason.removeprefix('not identified: ')}"
                break
        theta, boot = np.asarray(g.fit.theta), boots.get(g.size)
        law = barnett_joint(len(g.sources))
        on = at_bound(law, theta)
        on_bound = bool(on[4 + 3 * ia] or on[4 + 3 * ib])
        shares = bound_shares(law, boot) if boot is not None else None
        share = (0.0, 0.0) if shares is None else tuple(max(x, y) for x, y in zip(shares[4 + 3 * ia], shares[4 + 3 * ib]))

        def diff(th: Array) -> Array:
            return np.exp(th[..., 4 + 3 * ia]) - np.exp(th[..., 4 + 3 * ib])

        def diff_loss(th: Array) -> Array:
            return _g_loss(th, ia, g.f_ref) - _g_loss(th, ib, g.f_ref)

        dG, dG_loss = (
            judge(float(fn(theta)), None if boot is None else fn(boot), "difference", on_bound=on_bound,
                  bound_share=share, design=design)
            for fn in (diff, diff_loss)
        )
        out.append(Comparison(a, b, g.size, g.f_ref, dG, dG_loss))
    return out
