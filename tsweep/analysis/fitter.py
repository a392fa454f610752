"""The fitting engine: Chinchilla approach 3 for any registered law, with bootstrap intervals.

Objective (Hoffmann et al. 2022, arXiv 2203.15556, sec. 3.3; Besiroglu et al. 2024,
arXiv 2404.10102, sec. 2): minimise ``sum_i w_i * Huber_delta(log_pred_i - log y_i)``, delta = 1e-3,
by L-BFGS-B from a grid of starts, keeping the best. Gradients are analytic: each law returns
the Jacobian of its log-prediction, and the Huber derivative is a clip.

How the many starts stay cheap (the cold path):
1. *Screen*: the objective of every grid start (4,500 for Chinchilla's grid) is evaluated in one
   vectorised numpy pass, shape (starts, runs).
2. *Refine*: the ``n_refine`` best-screened starts (default 12) are refined together by a
   vectorised Levenberg-Marquardt (:func:`batch_refine`), and L-BFGS-B finishes the best two.
   On the published fixture this lands on the same optimum as running L-BFGS-B from all 4,500
   starts (tests/test_analysis_fixture.py checks the published values), and an unidentified
   law (a flat valley) costs one capped L-BFGS-B run per polish instead of one per start.

The warm path (incremental refits) skips the screen: L-BFGS-B from the previous optimum, and
only if that run does not report convergence, from a few small perturbations of it too. That
is what makes a refit after each finished job cheap (benchmarks/refit.py measures it).

Bootstrap: resampling runs with replacement is the same as giving each run an integer weight
drawn from a multinomial, so a resample is a weight vector and no data are copied. ``groups``
resamples whole groups of rows instead (e.g. every row of one pre-training run). Each resample
is refitted warm from the point estimate, all resamples at once: a vectorised
Levenberg-Marquardt on the iteratively reweighted Huber problem (:func:`batch_refine`), with
L-BFGS-B finishing any resample it leaves unconverged. No process pool: on the fixture it does
1,000 resamples in about a second on one core, and it is safe inside a Ray actor.
Intervals are percentile intervals of the refitted parameters (2.5th, 97.5th).

The objective is multiplied by 1/delta^2 inside the optimiser only (same minimiser): L-BFGS-B's
``ftol`` is relative to max(|f|, 1), and the raw Huber sum (~1e-3 for Chinchilla's data) would
otherwise stop it early, the failure Besiroglu et al. 2024 trace the original fit's values to.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy.optimize import minimize

from tsweep.analysis._blas import single_threaded_blas
from tsweep.analysis.laws import Law, get_law
from tsweep.core.errors import UsageError
from tsweep.core.jsonio import num as _num

Array = np.ndarray

# Hoffmann et al. 2022 (sec. 3.3, Appendix D.2); kept by Besiroglu et al. 2024.
HUBER_DELTA = 1e-3
# Starts refined after the vectorised screen, and how many of the refined ones L-BFGS-B
# finishes (tsweep choices, checked on the fixture against refining all 4,500 starts).
N_REFINE = 12
N_POLISH = 2
N_POLISH_WARM = 1  # perturbations of one optimum share its basin: one polish is enough
# Perturbed copies of a warm start, and their scale in optimiser units (a tsweep choice: small
# next to the grid spacing, enough to leave a flat spot the previous optimum may sit on).
N_WARM_PERTURB = 2
WARM_PERTURB_SCALE = 0.05
# Central 95% of the bootstrap distribution (percentile interval).
CI_LEVEL = 0.95
# Vectorised Levenberg-Marquardt for the bootstrap (tsweep choices, checked against L-BFGS-B
# resample by resample on the fixture: same objective to ~1e-11 relative).
LM_MAX_ITER = 300
LM_LAMBDA0 = 1e-3
LM_LAMBDA_MAX = 1e8
LM_FTOL = 1e-12
LM_XTOL = 1e-10
MAX_POLISHED_STRAGGLERS = 5
STRAGGLER_FRACTION = 0.02
BOOT_CHUNK = 512  # resamples per vectorised batch: bounds memory at chunk x runs x params floats
# L-BFGS-B stopping rules (on the 1/delta^2-scaled objective). The iteration caps bound the cost
# of unidentified problems, which wander along a flat valley; such a fit is flagged unconverged.
# Well-posed fits stop far below them (57-183 iterations per start on the fixture).
_LBFGS_OPTIONS = {"maxiter": 1000, "ftol": 1e-13, "gtol": 1e-9}
_LBFGS_POLISH_MAXITER = 200  # finishing a bootstrap resample the vectorised refit left unconverged


class FitError(UsageError):
    """Data that no law can be fitted to (no rows, missing or non-positive columns)."""


# ------------------------------------------------------------------ results
@dataclass(frozen=True, eq=False)
class FitResult:
    """One fitted law: the contract behind ``tsweep fit --json``."""

    law: str
    params: dict[str, float]
    n_points: int
    loss: float
    theta: tuple[float, ...]  # the optimum in optimiser space: the next fit's warm start
    ci95: dict[str, tuple[float, float]] | None = None
    warnings: tuple[str, ...] = ()
    n_bootstrap: int = 0
    converged: bool = True
    # (resamples, params) in reported units, for intervals on quantities derived from the params.
    boot_params: Array | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        params: dict[str, dict[str, Any]] = {}
        for name, value in self.params.items():
            entry: dict[str, Any] = {"value": _num(value)}
            if self.ci95 is not None:
                lo, hi = self.ci95[name]
                entry["ci95"] = [_num(lo), _num(hi)]
            params[name] = entry
        out: dict[str, Any] = {
            "law": self.law,
            "n_points": self.n_points,
            "params": params,
            "loss": _num(self.loss),
            "warnings": list(self.warnings),
        }
        if self.n_bootstrap:
            out["bootstrap"] = self.n_bootstrap
        return out

    def predict(self, **x: Array) -> Array:
        return get_law(self.law).predict(self.params, **x)


# ------------------------------------------------------------------ objective
def _huber(r: Array, delta: float) -> tuple[Array, Array]:
    a = np.abs(r)
    val = np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))
    return val, np.clip(r, -delta, delta)


def objective(
    law: Law, theta: Array, logx: Mapping[str, Array], logy: Array, w: Array, delta: float = HUBER_DELTA
) -> Array:
    """Weighted Huber objective for a stack of parameter vectors ``theta`` (S, P) -> (S,)."""
    pred, _ = law.log_predict(np.atleast_2d(theta), logx)
    val, _ = _huber(pred - logy[None, :], delta)
    out = val @ w
    return np.where(np.isfinite(out), out, np.inf)


def _value_and_grad(
    theta: Array, law: Law, logx: Mapping[str, Array], logy: Array, w: Array, delta: float
) -> tuple[float, Array]:
    pred, jac = law.log_predict(theta[None, :], logx)
    val, d = _huber(pred[0] - logy, delta)
    scale = 1.0 / (delta * delta)
    f = float(val @ w) * scale
    g = np.einsum("n,np->p", d * w, jac[0]) * scale
    if not math.isfinite(f) or not np.all(np.isfinite(g)):
        return 1e300, np.zeros_like(theta)
    return f, g


@single_threaded_blas()
def _lbfgs(
    law: Law, theta0: Array, logx: Mapping[str, Array], logy: Array, w: Array, delta: float, maxiter: int | None = None
) -> tuple[Array, float, bool]:
    options = _LBFGS_OPTIONS if maxiter is None else {**_LBFGS_OPTIONS, "maxiter": maxiter}
    res = minimize(
        _value_and_grad,
        np.asarray(theta0, dtype=float),
        args=(law, logx, logy, w, delta),
        jac=True,
        method="L-BFGS-B",
        bounds=law.bounds,
        options=options,
    )
    return res.x, float(res.fun) * delta * delta, bool(res.success)


def _best_of(
    law: Law, starts: Array, logx: Mapping[str, Array], logy: Array, w: Array, delta: float, n_polish: int = 2
) -> tuple[Array, float, bool]:
    """The best optimum over ``starts``: all of them refined together by the vectorised
    :func:`batch_refine`, then the ``n_polish`` best finished by L-BFGS-B, keeping the best.

    Converged if a polish that reports convergence reaches the best objective (a start already
    at a kink of the Huber loss ends in a line-search "abnormal termination" while sitting on
    the optimum, so one report alone is not enough).
    """
    starts = np.atleast_2d(starts)
    th, f, _ = batch_refine(law, starts, logx, logy, np.tile(w, (starts.shape[0], 1)), delta=delta)
    order = np.argsort(np.where(np.isfinite(f), f, np.inf), kind="stable")
    runs = [_lbfgs(law, th[i] if np.isfinite(f[i]) else starts[i], logx, logy, w, delta) for i in order[:n_polish]]
    theta, best, _ = min(runs, key=lambda r: r[1])
    tol = 1e-9 * max(abs(best), 1e-300)
    converged = any(ok and fv <= best + tol for _, fv, ok in runs)
    return theta, best, converged


def _warm_fit(
    law: Law, theta0: Array, logx: Mapping[str, Array], logy: Array, w: Array, delta: float, seed: int
) -> tuple[Array, float, bool]:
    """L-BFGS-B from the previous optimum; only if that run does not report convergence (it sat
    on a kink or a flat spot) are the perturbed starts refined too, keeping the best."""
    theta, loss, ok = _lbfgs(law, theta0, logx, logy, w, delta)
    if ok:
        return theta, loss, True
    starts = warm_starts(law, theta0, seed)[1:]
    other, other_loss, other_ok = _best_of(law, starts, logx, logy, w, delta, N_POLISH_WARM)
    tol = 1e-9 * max(abs(min(loss, other_loss)), 1e-300)
    if other_loss < loss:
        return other, other_loss, other_ok
    return theta, loss, other_ok and other_loss <= loss + tol


def screen(
    law: Law, logx: Mapping[str, Array], logy: Array, w: Array, n_refine: int, delta: float = HUBER_DELTA
) -> Array:
    """The ``n_refine`` grid starts with the lowest objective, from one vectorised pass."""
    grid = law.grid()
    vals = objective(law, grid, logx, logy, w, delta)
    order = np.argsort(vals, kind="stable")
    return grid[order[: max(1, n_refine)]]


def warm_starts(law: Law, theta0: Array, seed: int = 0, n_perturb: int = N_WARM_PERTURB) -> Array:
    """The previous optimum plus ``n_perturb`` small perturbations of it, clipped into the bounds."""
    rng = np.random.default_rng(seed)
    lo, hi = np.array(law.bounds).T
    pert = theta0[None, :] + WARM_PERTURB_SCALE * rng.standard_normal((n_perturb, theta0.size))
    return np.clip(np.vstack([theta0[None, :], pert]), lo, hi)


# ------------------------------------------------------------------ data
def prepare(law: Law, data: Mapping[str, Any]) -> tuple[dict[str, Array], Array, list[str], Array]:
    """Logs of the law's variables, dropping rows that are missing, non-finite or non-positive.

    Returns (log inputs, log response, warnings, kept-row mask).
    """
    missing = [v for v in law.variables if v not in data]
    if missing:
        raise FitError(f"law {law.name!r} needs variables {list(law.variables)}; missing {missing}")
    cols = {}
    for v in law.variables:
        try:
            cols[v] = np.asarray(data[v], dtype=float).ravel()
        except (TypeError, ValueError):
            raise FitError(f"variable {v!r} is not numeric") from None
    n = {c.size for c in cols.values()}
    if len(n) != 1:
        raise FitError(f"variables have different lengths: { {v: c.size for v, c in cols.items()} }")
    keep = np.ones(next(iter(n)), dtype=bool)
    warnings: list[str] = []
    for v, c in cols.items():
        bad = ~(np.isfinite(c) & (c > 0))
        if bad.any():
            warnings.append(f"{int(bad.sum())} rows dropped: {v} missing, non-finite or <= 0")
        keep &= ~bad
    if not keep.any():
        raise FitError("no rows with positive, finite values of every variable")
    logx = {v: np.log(cols[v][keep]) for v in law.inputs}
    return logx, np.log(cols[law.response][keep]), warnings, keep


def span_warnings(law: Law, logx: Mapping[str, Array], n_points: int) -> list[str]:
    """Parameters the data cannot identify: too few distinct values of the input they need."""
    out = []
    if n_points <= law.n_params:
        out.append(f"{n_points} points for {law.n_params} parameters: the fit interpolates, parameters are not identified")
    by_var: dict[str, list[str]] = {}
    for p, (v, k) in law.spans.items():
        distinct = np.unique(np.round(logx[v], 9)).size
        if distinct < k:
            by_var.setdefault(f"{v}|{distinct}|{k}", []).append(p)
    for key, ps in by_var.items():
        v, distinct, k = key.split("|")
        out.append(f"{', '.join(ps)} not identified: {v} takes {distinct} distinct value(s), needs >= {k}")
    return out


def _at_bound(law: Law, theta: Array) -> Array:
    lo, hi = np.array(law.bounds).T
    tol = 1e-6 * (hi - lo)
    return (theta <= lo + tol) | (theta >= hi - tol)


# ------------------------------------------------------------------ bootstrap
def resample_weights(n: int, n_boot: int, seed: int, groups: Array | None = None) -> Array:
    """(n_boot, n) integer weights: resampling rows, or whole groups of rows, with replacement."""
    rng = np.random.default_rng(seed)
    if groups is None:
        return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(float)
    _, inv = np.unique(np.asarray(groups), return_inverse=True)
    g = int(inv.max()) + 1
    counts = rng.multinomial(g, np.full(g, 1.0 / g), size=n_boot).astype(float)
    return counts[:, inv]


@single_threaded_blas()
def batch_refine(
    law: Law,
    theta0: Array,
    logx: Mapping[str, Array],
    logy: Array,
    weights: Array,
    *,
    delta: float = HUBER_DELTA,
    max_iter: int = LM_MAX_ITER,
) -> tuple[Array, Array, Array]:
    """Minimise many weighted Huber problems at once, from ``theta0``: (P,) shared, or (S, P).

    ``weights`` is (S, n), one problem per row; ``logy`` is (n,) or (S, n) (a resample may carry
    its own responses, e.g. D_T re-derived under a resampled scratch law; give such rows weight
    0 where the response is undefined). Iteratively reweighted Gauss-Newton with
    Levenberg-Marquardt damping, vectorised over problems: the Huber loss is a half-quadratic,
    so with per-run weights min(1, delta/|r|) its stationary points are those of the weighted
    least-squares step below; a step is kept only if it lowers that problem's Huber objective.
    Returns (thetas (S, P), objective values (S,), converged mask (S,)).
    """
    weights = np.atleast_2d(np.asarray(weights, dtype=float))
    s, p = weights.shape[0], np.asarray(theta0).shape[-1]
    logy = np.broadcast_to(np.asarray(logy, dtype=float), (s, weights.shape[1]))
    lo, hi = np.array(law.bounds).T
    theta0 = np.asarray(theta0, dtype=float)
    theta = np.array(np.broadcast_to(theta0, (s, p)))

    def evaluate(th: Array, idx: Array) -> tuple[Array, Array, Array]:
        pred, jac = law.log_predict(th, logx)
        res = pred - logy[idx]
        val, _ = _huber(res, delta)
        f = np.einsum("sn,sn->s", val, weights[idx])
        return np.where(np.isfinite(f), f, np.inf), jac, res

    f, jac, res = evaluate(theta, np.arange(s))
    lam = np.full(s, LM_LAMBDA0)
    active = np.flatnonzero(np.isfinite(f))
    converged = np.zeros(s, dtype=bool)
    eye = np.eye(p)[None]
    for _ in range(max_iter):
        if active.size == 0:
            break
        a = active
        omega = weights[a] * np.minimum(1.0, delta / np.maximum(np.abs(res[a]), 1e-300))
        ja = jac[a]
        grad = np.einsum("sn,snp->sp", omega * res[a], ja)
        hess = np.einsum("snp,snq->spq", omega[:, :, None] * ja, ja)
        diag = np.einsum("spp->sp", hess)
        damped = hess + lam[a, None, None] * (eye * diag[:, :, None]) + 1e-12 * eye
        try:
            step = -np.linalg.solve(damped, grad[..., None])[..., 0]
        except np.linalg.LinAlgError:
            step = -np.stack([np.linalg.lstsq(m, g, rcond=None)[0] for m, g in zip(damped, grad)])
        trial = np.clip(theta[a] + step, lo, hi)
        f_new, jac_new, res_new = evaluate(trial, a)
        ok = f_new < f[a]
        rel = np.where(ok, (f[a] - f_new) / np.maximum(f[a], 1e-300), np.inf)
        moved = np.abs(trial - theta[a]).max(axis=1)
        keep = a[ok]
        theta[keep], f[keep], jac[keep], res[keep] = trial[ok], f_new[ok], jac_new[ok], res_new[ok]
        lam[a] = np.where(ok, np.maximum(lam[a] / 3.0, 1e-12), lam[a] * 4.0)
        # Done: a kept step that no longer improves, or no step that improves at any damping.
        done = (ok & ((rel < LM_FTOL) | (moved < LM_XTOL))) | (lam[a] > LM_LAMBDA_MAX)
        converged[a[done]] = True
        active = a[~done]
    return theta, f, converged


@single_threaded_blas()
def bootstrap_thetas(
    law: Law,
    theta0: Array,
    logx: Mapping[str, Array],
    logy: Array,
    weights: Array,
    *,
    delta: float = HUBER_DELTA,
) -> Array:
    """Refit every resample (a row of ``weights``) warm from ``theta0``; (n_boot, P), NaN where a refit failed.

    Vectorised (:func:`batch_refine`) in chunks; the few resamples it leaves unconverged are
    finished by L-BFGS-B from where it stopped.
    """
    weights = np.atleast_2d(weights)
    logy = np.asarray(logy, dtype=float)
    out = np.empty((weights.shape[0], np.asarray(theta0).size))
    for lo in range(0, weights.shape[0], BOOT_CHUNK):
        sl = slice(lo, lo + BOOT_CHUNK)
        ly = logy[sl] if logy.ndim == 2 else logy
        th, f, conv = batch_refine(law, theta0, logx, ly, weights[sl], delta=delta)
        stragglers = np.flatnonzero(~conv)
        # A few stragglers are finished by L-BFGS-B; many mean an unidentified law (a flat
        # valley neither method leaves), where their last iterate is as good an answer.
        if stragglers.size <= max(MAX_POLISHED_STRAGGLERS, STRAGGLER_FRACTION * conv.size):
            for i in stragglers:
                yi = ly[i] if ly.ndim == 2 else ly
                start = th[i] if np.isfinite(f[i]) else theta0
                th[i], f[i], _ = _lbfgs(law, start, logx, yi, weights[sl][i], delta, maxiter=_LBFGS_POLISH_MAXITER)
        th[~np.isfinite(f)] = np.nan
        out[sl] = th
    return out


def with_intervals(result: FitResult, law: Law, boot_thetas: Array) -> FitResult:
    """Attach percentile intervals from bootstrap optima (optimiser space) to a point fit."""
    ok = np.all(np.isfinite(boot_thetas), axis=1)
    warnings = list(result.warnings)
    if not ok.all():
        warnings.append(f"{int((~ok).sum())} of {ok.size} bootstrap refits failed and were left out")
    good = boot_thetas[ok]
    if good.shape[0] < 2:
        warnings.append("too few successful bootstrap refits for an interval")
        return replace(result, warnings=tuple(warnings), n_bootstrap=int(boot_thetas.shape[0]))
    tail = 100 * (1 - CI_LEVEL) / 2
    params = law.to_params(good)
    lo, hi = np.percentile(params, [tail, 100 - tail], axis=0)
    ci = {p: (float(lo[i]), float(hi[i])) for i, p in enumerate(law.params)}
    hit = _at_bound(law, good).mean(axis=0)
    for i, p in enumerate(law.params):
        if hit[i] > (1 - CI_LEVEL) / 2:
            warnings.append(
                f"{p}: {100 * hit[i]:.0f}% of bootstrap refits sit on its bound; the interval is unbounded on that side"
            )
    return replace(
        result, ci95=ci, warnings=tuple(warnings), n_bootstrap=int(boot_thetas.shape[0]), boot_params=params
    )


# ------------------------------------------------------------------ the entry point
def _warm_theta(law: Law, warm_start: FitResult | Mapping[str, float] | Sequence[float] | None) -> Array | None:
    if warm_start is None:
        return None
    if isinstance(warm_start, FitResult):
        if warm_start.law != law.name:
            return None
        return np.asarray(warm_start.theta, dtype=float)
    if isinstance(warm_start, Mapping):
        return law.from_params(warm_start)
    theta = np.asarray(warm_start, dtype=float)
    return theta if theta.shape == (law.n_params,) else None


@single_threaded_blas()
def fit(
    law: Law | str,
    data: Mapping[str, Any],
    *,
    bootstrap: int = 0,
    seed: int = 0,
    warm_start: FitResult | Mapping[str, float] | Sequence[float] | None = None,
    groups: Array | None = None,
    weights: Array | None = None,
    delta: float = HUBER_DELTA,
    n_refine: int = N_REFINE,
) -> FitResult:
    """Fit ``law`` to ``data`` (variable name -> column); see the module docstring.

    ``warm_start`` (a previous FitResult, or reported params by name) replaces the grid with the
    previous optimum and a few perturbations of it. ``groups`` (one label per row) makes the
    bootstrap resample whole groups. ``weights`` (one per row) weights the objective.
    """
    law = get_law(law) if isinstance(law, str) else law
    logx, logy, warnings, keep = prepare(law, data)
    n = int(logy.size)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float).ravel()[keep]
    if groups is not None:
        groups = np.asarray(groups).ravel()[keep]
    warnings += span_warnings(law, logx, n)

    theta0 = _warm_theta(law, warm_start)
    if theta0 is not None:
        theta, loss, converged = _warm_fit(law, theta0, logx, logy, w, delta, seed)
    else:
        starts = screen(law, logx, logy, w, n_refine, delta)
        theta, loss, converged = _best_of(law, starts, logx, logy, w, delta, N_POLISH)
    if not converged:
        warnings.append("L-BFGS-B did not report convergence from the best start")
    for i in np.flatnonzero(_at_bound(law, theta)):
        warnings.append(f"{law.params[i]}: the estimate sits on its bound ({law.opt_names[i]} = {theta[i]:.4g})")

    result = FitResult(
        law=law.name,
        params=law.as_dict(theta),
        n_points=n,
        loss=loss,
        theta=tuple(float(t) for t in theta),
        warnings=tuple(warnings),
        converged=converged,
    )
    if bootstrap > 0:
        wb = resample_weights(n, bootstrap, seed, groups) * w[None, :]
        result = with_intervals(result, law, bootstrap_thetas(law, theta, logx, logy, wb, delta=delta))
    return result


def format_fit(result: FitResult) -> str:
    """A fit as a few readable lines (``tsweep fit``)."""
    law = get_law(result.law)
    lines = [f"{law.name}: {law.formula}   ({result.n_points} points, Huber loss {result.loss:.6g})"]
    for name, value in result.params.items():
        ci = "" if result.ci95 is None else f"   95% CI [{result.ci95[name][0]:.4g}, {result.ci95[name][1]:.4g}]"
        lines.append(f"  {name:>8} = {value:.4g}{ci}")
    if result.n_bootstrap:
        lines.append(f"  intervals: percentile bootstrap over rows, {result.n_bootstrap} resamples")
    lines += [f"  warning: {w}" for w in result.warnings]
    return "\n".join(lines)
