"""The fitting engine: Chinchilla approach 3 for any registered law, with bootstrap intervals.

Objective (Hoffmann et al. 2022, arXiv 2203.15556, sec. 3.3; Besiroglu et al. 2024,
arXiv 2404.10102, sec. 2): minimise ``sum_i w_i * Huber_delta(log_pred_i - log y_i)`` by
L-BFGS-B from a grid of starts, keeping the best. Gradients are analytic: each law returns the
Jacobian of its log-prediction, and the Huber derivative is a clip.

The Huber delta. Hoffmann et al. used delta = 1e-3 on thousands of large runs whose losses
scatter by well under 1%; that delta turns a fit of tsweep's small runs, whose best losses
scatter by 1-3% in log space (3% measured on the demo store: ``analysis/transfer.py`` fits the
noise of every sweep), into a median regression that wastes most of the data. tsweep's default
is ``HUBER_DELTA = 0.02``: Huber's tuning constant 1.345 sigma, which keeps 95% of least
squares' efficiency under Gaussian noise (Huber 1964; Holland & Welsch 1977), at sigma = 1.5%,
the middle of that range, while a run 3 sigma off still counts linearly, not quadratically.
Published fits are reproduced with their own delta (``PUBLISHED_DELTA``; the Chinchilla fixture
test does exactly that and matches Besiroglu et al.'s values to 1-2%).

A fit that cannot contradict itself:

1. *Screen*: the objective of every grid start (4,500 for Chinchilla's grid) is evaluated in one
   vectorised pass, without Jacobians, in chunks of starts and, above ``SCREEN_ROWS`` rows, on a
   fixed random subsample of the rows, so memory is bounded whatever the table's size (a
   100k-row table once needed 22 GiB here). A law whose product grid is too large (the joint
   gap law of several sources) screens its own separable grid (``Law.candidate_starts``).
2. *Refine*: the ``n_refine`` best-screened starts, plus any warm start (the previous fit of a
   live analysis), are refined on all rows by a vectorised Levenberg-Marquardt
   (:func:`batch_refine`, in memory-bounded chunks), and L-BFGS-B finishes the best two. A warm
   start is one start among the screened grid, never the only one: a previous optimum on a
   degenerate edge (G at its floor) cannot lock the next fit there.
3. *Off the bounds, or a wider search*: if any parameter of the best optimum sits on a bound, the
   next ``WIDE_FACTOR`` x ``n_refine`` screened starts are refined too, keeping the better.

Bootstrap. Each resample is a weight vector (rows resampled with replacement, or whole groups)
or its own responses (a parametric bootstrap, as the transfer report uses); all resamples are
refitted at once from the point estimate by :func:`batch_refine`. A resample that does not
converge, or that lands on a bound the point estimate is not on, is refitted cold: from its own
screened grid plus where it stopped, all such resamples refined in one vectorised batch; a
resample still unconverged is a failure (NaN) and is counted against the identification rule
(``analysis/identify.py``), never kept at its last iterate. Once more resamples have failed
than that rule allows (5%), the rest are counted as failures without a cold refit: the verdict
cannot change, and an unidentified law would otherwise cost a full refit per resample. Intervals are percentile
intervals (2.5th, 97.5th).

The objective is multiplied by 1/delta^2 inside L-BFGS-B only (same minimiser): its ``ftol`` is
relative to max(|f|, 1), and the raw Huber sum (~1e-3 for Chinchilla's data) would otherwise stop
it early, the failure Besiroglu et al. 2024 trace the original fit's values to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize

from tsweep.analysis._blas import single_threaded_blas
from tsweep.analysis.identify import MIN_CONVERGED, Estimate, judge
from tsweep.analysis.laws import Law, get_law, huber
from tsweep.core.errors import UsageError
from tsweep.core.jsonio import num

Array = np.ndarray

HUBER_DELTA = 0.02  # see the module docstring
PUBLISHED_DELTA = 1e-3  # Hoffmann et al. 2022 (sec. 3.3, Appendix D.2); kept by Besiroglu et al. 2024
# Starts refined after the screen, how many of the refined ones L-BFGS-B finishes, and how much
# wider the search is when the best optimum sits on a bound (tsweep choices, checked on the
# fixture against refining all 4,500 starts).
N_REFINE = 12
N_POLISH = 2
WIDE_FACTOR = 4
# Screened starts beside its own end point for a bootstrap resample refitted cold (tsweep's
# choice: a resample is a small perturbation of the point fit's table, so its best screened
# starts are the point fit's few best, and every cold refit of a report runs in one batch).
N_COLD = 4
# Rows the screen evaluates (a fixed random subsample above it) and the array elements one
# vectorised chunk may hold (tsweep choices: 32 MB per float array; a start's ranking on 2,048
# rows of a smooth law is its ranking on all of them, and the refine uses every row).
SCREEN_ROWS = 2048
CHUNK_ELEMENTS = 4_000_000
# Vectorised Levenberg-Marquardt (tsweep choices, checked against L-BFGS-B resample by resample
# on the fixture: same objective to ~1e-11 relative).
LM_MAX_ITER = 300
LM_LAMBDA0 = 1e-3
LM_LAMBDA_MAX = 1e8
LM_FTOL = 1e-10
LM_XTOL = 1e-10
# L-BFGS-B stopping rules (on the 1/delta^2-scaled objective). The iteration cap bounds the cost
# of unidentified problems, which wander along a flat valley; such a fit is flagged unconverged.
# Well-posed fits stop far below it (57-183 iterations per start on the fixture).
_LBFGS_OPTIONS = {"maxiter": 1000, "ftol": 1e-13, "gtol": 1e-9}


class FitError(UsageError):
    """Data that no law can be fitted to (no rows, missing or non-positive columns)."""


# ------------------------------------------------------------------ results
@dataclass(frozen=True, eq=False)
class FitResult:
    """One fitted law: the contract behind ``tsweep fit --json``.

    ``params`` are the optimum in reported units (what a plot draws); ``estimates`` apply the
    identification rule to each (``analysis/identify.py``): what may be printed as a number.
    """

    law: str
    params: dict[str, float]
    n_points: int
    loss: float
    theta: tuple[float, ...]  # the optimum in optimiser space: a later fit's warm start
    estimates: dict[str, Estimate] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    n_bootstrap: int = 0
    converged: bool = True
    # (resamples, P) optimiser-space optima, NaN where a resample failed: the stack from which
    # derived quantities (G in loss units, differences, D(N)) get their intervals.
    boot_thetas: Array | None = field(default=None, repr=False)

    @property
    def ci95(self) -> dict[str, tuple[float, float] | None] | None:
        if not self.n_bootstrap:
            return None
        return {p: e.ci95 for p, e in self.estimates.items()}

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "law": self.law,
            "n_points": self.n_points,
            "params": {p: e.to_json() for p, e in self.estimates.items()},
            "loss": num(self.loss),
            "theta": [float(t) for t in self.theta],
            "converged": self.converged,
            "warnings": list(self.warnings),
        }
        if self.n_bootstrap:
            out["bootstrap"] = self.n_bootstrap
        else:
            for entry in out["params"].values():
                entry.pop("ci95")
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any] | None) -> "FitResult | None":
        if d is None:
            return None
        law = get_law(d["law"])
        theta = np.asarray(d["theta"], dtype=float)
        return cls(
            law=d["law"],
            params=law.as_dict(theta),
            n_points=int(d["n_points"]),
            loss=float(d["loss"]) if d.get("loss") is not None else float("nan"),
            theta=tuple(float(t) for t in theta),
            estimates={p: Estimate.from_json(e) for p, e in d["params"].items()},
            warnings=tuple(d.get("warnings", ())),
            n_bootstrap=int(d.get("bootstrap", 0)),
            converged=bool(d.get("converged", True)),
        )

    def predict(self, **x: Array) -> Array:
        return get_law(self.law).predict(self.params, **x)


@dataclass(frozen=True)
class Optimum:
    theta: Array
    loss: float
    converged: bool


# ------------------------------------------------------------------ objective
def objective(
    law: Law, theta: Array, logx: Mapping[str, Array], logy: Array, w: Array, delta: float = HUBER_DELTA
) -> Array:
    """Weighted Huber objective for a stack of parameter vectors ``theta`` (S, P) -> (S,), in
    chunks of starts so that memory stays within ``CHUNK_ELEMENTS`` per array."""
    theta = np.atleast_2d(theta)
    out = np.empty(theta.shape[0])
    step = max(1, CHUNK_ELEMENTS // max(1, logy.size))
    for lo in range(0, theta.shape[0], step):
        pred, _ = law.log_predict(theta[lo : lo + step], logx, jac=False)
        val, _ = huber(pred - logy[None, :], delta)
        out[lo : lo + step] = val @ w
    return np.where(np.isfinite(out), out, np.inf)


def _value_and_grad(
    theta: Array, law: Law, logx: Mapping[str, Array], logy: Array, w: Array, delta: float
) -> tuple[float, Array]:
    pred, jac = law.log_predict(theta[None, :], logx)
    val, d = huber(pred[0] - logy, delta)
    scale = 1.0 / (delta * delta)
    f = float(val @ w) * scale
    g = np.einsum("n,np->p", d * w, jac[0]) * scale
    if not np.isfinite(f) or not np.all(np.isfinite(g)):
        return 1e300, np.zeros_like(theta)
    return f, g


@single_threaded_blas()
def _lbfgs(
    law: Law, theta0: Array, logx: Mapping[str, Array], logy: Array, w: Array, delta: float
) -> tuple[Array, float, bool]:
    res = minimize(
        _value_and_grad,
        np.asarray(theta0, dtype=float),
        args=(law, logx, logy, w, delta),
        jac=True,
        method="L-BFGS-B",
        bounds=law.bounds,
        options=_LBFGS_OPTIONS,
    )
    return res.x, float(res.fun) * delta * delta, bool(res.success)


def at_bound(law: Law, theta: Array) -> Array:
    """Which optimiser-space coordinates of ``theta`` ((P,) or (S, P)) sit on a bound."""
    lo, hi = np.array(law.bounds).T
    tol = 1e-6 * (hi - lo)
    return (theta <= lo + tol) | (theta >= hi - tol)


def _subsample(logx: Mapping[str, Array], logy: Array, w: Array) -> tuple[dict[str, Array], Array, Array]:
    if logy.size <= SCREEN_ROWS:
        return dict(logx), logy, w
    idx = np.sort(np.random.default_rng(0).choice(logy.size, SCREEN_ROWS, replace=False))
    return {k: v[idx] for k, v in logx.items()}, logy[idx], w[idx]


def screen(
    law: Law, logx: Mapping[str, Array], logy: Array, w: Array, n_refine: int, delta: float = HUBER_DELTA
) -> Array:
    """The ``n_refine`` best starts: the law's own screen, or the grid's lowest objectives,
    evaluated on at most ``SCREEN_ROWS`` rows."""
    sx, sy, sw = _subsample(logx, logy, w)
    own = law.candidate_starts(sx, sy, sw, delta, n_refine)
    if own is not None:
        return own
    grid = law.grid()
    order = np.argsort(objective(law, grid, sx, sy, sw, delta), kind="stable")
    return grid[order[: max(1, n_refine)]]


def _best_of(
    law: Law, starts: Array, logx: Mapping[str, Array], logy: Array, w: Array, delta: float
) -> Optimum:
    """All ``starts`` refined together by :func:`batch_refine`, the ``N_POLISH`` best finished by
    L-BFGS-B, keeping the best. Converged if a finished start reaches the best objective and
    either L-BFGS-B or the Levenberg-Marquardt refine reported convergence for it (near an
    optimum in double precision, L-BFGS-B's line search can end "abnormally" while sitting on it,
    so its report alone is not enough)."""
    starts = np.atleast_2d(starts)
    th, f, lm_ok = batch_refine(law, starts, logx, logy, w[None, :], delta=delta)
    order = np.argsort(np.where(np.isfinite(f), f, np.inf), kind="stable")[:N_POLISH]
    runs = [(*_lbfgs(law, th[i] if np.isfinite(f[i]) else starts[i], logx, logy, w, delta), bool(lm_ok[i]))
            for i in order]
    theta, best, _, _ = min(runs, key=lambda r: r[1])
    tol = 1e-9 * max(abs(best), 1e-300)
    return Optimum(theta, best, any((ok or lm) and fv <= best + tol for _, fv, ok, lm in runs))


def optimise(
    law: Law,
    logx: Mapping[str, Array],
    logy: Array,
    w: Array,
    *,
    delta: float = HUBER_DELTA,
    warm: Array | None = None,
    n_refine: int = N_REFINE,
) -> Optimum:
    """The best optimum from the screened grid (plus ``warm``, one more start); a wider search if
    it sits on a bound. See the module docstring."""
    starts = screen(law, logx, logy, w, WIDE_FACTOR * n_refine, delta)
    first = starts[:n_refine] if warm is None else np.vstack([np.asarray(warm, dtype=float)[None, :], starts[:n_refine]])
    best = _best_of(law, first, logx, logy, w, delta)
    if at_bound(law, best.theta).any() and starts.shape[0] > n_refine:
        wide = _best_of(law, starts[n_refine:], logx, logy, w, delta)
        if wide.loss < best.loss - 1e-9 * max(abs(best.loss), 1e-300):
            best = wide
    return best


# ------------------------------------------------------------------ data
def prepare(law: Law, data: Mapping[str, Any]) -> tuple[dict[str, Array], Array, list[str], Array]:
    """The law's inputs as the optimiser sees them (logs; index inputs as codes) and the log
    response, dropping rows that are missing, non-finite or non-positive.

    Returns (inputs, log response, warnings, kept-row mask).
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
        bad = ~(np.isfinite(c) & ((c >= 0) if v in law.index_inputs else (c > 0)))
        if bad.any():
            warnings.append(f"{int(bad.sum())} rows dropped: {v} missing, non-finite or <= 0")
        keep &= ~bad
    if not keep.any():
        raise FitError("no rows with positive, finite values of every variable")
    logx = law.log_inputs({v: cols[v][keep] for v in law.inputs})
    return logx, np.log(cols[law.response][keep]), warnings, keep


def design_reasons(law: Law, logx: Mapping[str, Array], n_points: int) -> dict[str, str]:
    """Parameters the design cannot identify, each with why (too few points, too few distinct
    values of the input it needs)."""
    out: dict[str, str] = {}
    for p, (v, k) in law.spans.items():
        distinct = np.unique(np.round(logx[v], 9)).size
        if distinct < k:
            out[p] = f"{v} takes {distinct} distinct value(s), needs >= {k}"
    if n_points <= law.n_params:
        for p in law.params:
            out.setdefault(p, f"{n_points} points for {law.n_params} parameters")
    return out


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

    ``weights`` is (S, n) or (1, n) shared by every problem; ``logy`` is (n,) or (S, n) (a
    resample may carry its own responses; give rows weight 0 where the response is undefined).
    Iteratively reweighted Gauss-Newton with Levenberg-Marquardt damping: the Huber loss is a
    half-quadratic, so with per-run weights min(1, delta/|r|) its stationary points are those of
    the weighted least-squares step below; a step is kept only if it lowers that problem's
    Huber objective. Problems are solved in chunks that keep every array within
    ``CHUNK_ELEMENTS``. Returns (thetas (S, P), objective values (S,), converged mask (S,)).
    """
    weights = np.atleast_2d(np.asarray(weights, dtype=float))
    logy = np.asarray(logy, dtype=float)
    theta0 = np.asarray(theta0, dtype=float)
    n, p = weights.shape[1], law.n_params
    s = max(weights.shape[0], logy.shape[0] if logy.ndim == 2 else 1, theta0.shape[0] if theta0.ndim == 2 else 1)
    out_t, out_f, out_c = np.empty((s, p)), np.empty(s), np.empty(s, dtype=bool)
    step = max(1, CHUNK_ELEMENTS // max(1, n * (p + 1)))
    for lo in range(0, s, step):
        sl = slice(lo, min(s, lo + step))
        k = sl.stop - sl.start
        out_t[sl], out_f[sl], out_c[sl] = _lm(
            law,
            np.broadcast_to(theta0[sl] if theta0.ndim == 2 else theta0, (k, p)),
            logx,
            np.broadcast_to(logy[sl] if logy.ndim == 2 else logy, (k, n)),
            np.broadcast_to(weights[sl] if weights.shape[0] > 1 else weights, (k, n)),
            delta,
            max_iter,
        )
    return out_t, out_f, out_c


def _lm(
    law: Law, theta0: Array, logx: Mapping[str, Array], logy: Array, weights: Array, delta: float, max_iter: int
) -> tuple[Array, Array, Array]:
    s, p = theta0.shape
    lo, hi = np.array(law.bounds).T
    theta = np.array(theta0)

    def evaluate(th: Array, idx: Array) -> tuple[Array, Array, Array]:
        pred, jac = law.log_predict(th, logx)
        res = pred - logy[idx]
        val, _ = huber(res, delta)
        f = (val * weights[idx]).sum(axis=1)
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
        wja = omega[:, :, None] * ja
        grad = ((omega * res[a])[:, None, :] @ ja)[:, 0, :]
        hess = wja.transpose(0, 2, 1) @ ja
        diag = np.diagonal(hess, axis1=1, axis2=2)
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
    n_refine: int = N_COLD,
) -> Array:
    """Refit every resample (a row of ``weights``, and of ``logy`` if it is (B, n)) from ``theta0``;
    (B, P) optima, NaN where a resample failed. See the module docstring for the cold refits."""
    weights = np.atleast_2d(np.asarray(weights, dtype=float))
    logy = np.asarray(logy, dtype=float)
    theta0 = np.asarray(theta0, dtype=float)
    th, _, conv = batch_refine(law, theta0, logx, logy, weights, delta=delta)
    new_bound = (at_bound(law, th) & ~at_bound(law, theta0)[None, :]).any(axis=1)
    # Unconverged first; once more resamples have failed than the identification rule allows,
    # the verdict is settled and the rest are counted as failures without a refit.
    redo = np.concatenate([np.flatnonzero(~conv), np.flatnonzero(conv & new_bound)])
    allowed = int((1 - MIN_CONVERGED) * th.shape[0])
    step, failed = max(8, allowed + 1), 0
    for lo in range(0, redo.size, step):
        idx = redo[lo : lo + step]
        ys = logy[idx] if logy.ndim == 2 else np.broadcast_to(logy, (idx.size, logy.size))
        ws = weights[idx] if weights.shape[0] > 1 else np.broadcast_to(weights, (idx.size, weights.shape[1]))
        th[idx], conv[idx] = _cold_batch(law, logx, ys, ws, th[idx], delta, n_refine)
        failed += int((~conv[idx]).sum())
        if failed > allowed:
            break
    th[~conv] = np.nan
    return th


def _cold_batch(
    law: Law, logx: Mapping[str, Array], logy: Array, weights: Array, warm: Array, delta: float, n_refine: int
) -> tuple[Array, Array]:
    """Refit resamples (rows of ``logy``/``weights``) from their own screened grid plus ``warm``,
    all refinements in one vectorised batch; (best optima, converged) per resample."""
    r = logy.shape[0]
    starts = []
    for i in range(r):
        own = screen(law, logx, logy[i], weights[i], n_refine, delta)
        own = np.vstack([own, np.repeat(own[:1], n_refine - own.shape[0], axis=0)]) if own.shape[0] < n_refine else own
        w0 = warm[i] if np.all(np.isfinite(warm[i])) else own[0]
        starts.append(np.vstack([w0[None, :], own]))
    k = n_refine + 1
    th, f, conv = batch_refine(law, np.concatenate(starts), logx, np.repeat(logy, k, axis=0),
                               np.repeat(weights, k, axis=0), delta=delta)
    f = np.where(np.isfinite(f), f, np.inf).reshape(r, k)
    best = np.argmin(f, axis=1) + k * np.arange(r)
    return th[best], conv[best]


def bound_shares(law: Law, thetas: Array) -> list[tuple[float, float]]:
    """Per parameter, the fraction of (finite) resamples on its lower and on its upper bound."""
    good = thetas[np.all(np.isfinite(thetas), axis=1)]
    if good.shape[0] == 0:
        return [(0.0, 0.0)] * law.n_params
    lo, hi = np.array(law.bounds).T
    tol = 1e-6 * (hi - lo)
    low = (good <= lo + tol).sum(axis=0) / thetas.shape[0]
    high = (good >= hi - tol).sum(axis=0) / thetas.shape[0]
    return list(zip(low.tolist(), high.tolist()))


def judge_params(
    law: Law, theta: Array, boot: Array | None, design: Mapping[str, str] | None = None
) -> dict[str, Estimate]:
    """Every reported parameter of an optimum through the identification rule."""
    theta = np.asarray(theta, dtype=float)
    values = law.to_params(theta)
    samples = None if boot is None else law.to_params(boot)
    bounds = at_bound(law, theta)
    shares = bound_shares(law, boot) if boot is not None else [(0.0, 0.0)] * law.n_params
    return {
        p: judge(
            float(values[i]),
            None if samples is None else samples[:, i],
            law.kinds[p],
            on_bound=bool(bounds[i]),
            bound_share=shares[i],
            design=(design or {}).get(p),
        )
        for i, p in enumerate(law.params)
    }


def result(
    law: Law,
    opt: Optimum,
    n_points: int,
    *,
    boot: Array | None = None,
    design: Mapping[str, str] | None = None,
    warnings: Sequence[str] = (),
) -> FitResult:
    """A FitResult from an optimum and (optionally) its bootstrap stack."""
    notes = list(warnings)
    if not opt.converged:
        notes.append("L-BFGS-B did not report convergence from the best start")
    for i in np.flatnonzero(at_bound(law, opt.theta)):
        notes.append(f"{law.params[i]}: the estimate sits on its bound ({law.opt_names[i]} = {opt.theta[i]:.4g})")
    if boot is not None:
        failed = int((~np.all(np.isfinite(boot), axis=1)).sum())
        if failed:
            notes.append(f"{failed} of {boot.shape[0]} bootstrap refits failed to converge (counted, not kept)")
    return FitResult(
        law=law.name,
        params=law.as_dict(opt.theta),
        n_points=n_points,
        loss=opt.loss,
        theta=tuple(float(t) for t in opt.theta),
        estimates=judge_params(law, opt.theta, boot, design),
        warnings=tuple(notes),
        n_bootstrap=0 if boot is None else int(boot.shape[0]),
        converged=opt.converged,
        boot_thetas=boot,
    )


# ------------------------------------------------------------------ one problem, two phases
@dataclass(eq=False)
class Problem:
    """A law on some rows, fitted in two phases: the point optimum first (:meth:`solve`), the
    bootstrap later (:meth:`bootstrap`), once the noise level that the transfer report pools
    over every problem is known."""

    law: Law
    logx: dict[str, Array]
    logy: Array
    warm: Array | None = None
    design: dict[str, str] = field(default_factory=dict)  # reasons beyond the law's spans, by parameter
    opt: Optimum | None = None
    boot: Array | None = None

    def design_reasons(self) -> dict[str, str]:
        return {**design_reasons(self.law, self.logx, self.n), **self.design}

    def solve(self, delta: float = HUBER_DELTA) -> "Problem":
        self.opt = optimise(self.law, self.logx, self.logy, np.ones(self.logy.size), delta=delta, warm=self.warm)
        return self

    @property
    def n(self) -> int:
        return int(self.logy.size)

    def residuals(self) -> Array:
        pred, _ = self.law.log_predict(np.asarray(self.opt.theta)[None, :], self.logx, jac=False)
        return pred[0] - self.logy

    def bootstrap(self, logy: Array, weights: Array | None = None, delta: float = HUBER_DELTA) -> Array:
        """Refit each row of ``logy`` (B, n) from the optimum; the stack is kept and returned."""
        w = np.ones((1, self.n)) if weights is None else weights
        self.boot = bootstrap_thetas(self.law, self.opt.theta, self.logx, logy, w, delta=delta)
        return self.boot

    def result(self, warnings: Sequence[str] = ()) -> FitResult:
        return result(self.law, self.opt, self.n, boot=self.boot, design=self.design_reasons(), warnings=warnings)


# ------------------------------------------------------------------ the entry point
def _warm_theta(law: Law, warm_start: FitResult | Mapping[str, float] | Sequence[float] | None) -> Array | None:
    if warm_start is None:
        return None
    if isinstance(warm_start, FitResult):
        return np.asarray(warm_start.theta, dtype=float) if warm_start.law == law.name else None
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

    ``warm_start`` (a previous FitResult, reported params by name, or an optimiser-space point)
    is one more start beside the screened grid. ``bootstrap`` resamples rows (``groups``: one
    label per row, resamples whole groups) with replacement. ``weights`` weights the objective.
    """
    law = get_law(law) if isinstance(law, str) else law
    logx, logy, warnings, keep = prepare(law, data)
    n = int(logy.size)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float).ravel()[keep]
    opt = optimise(law, logx, logy, w, delta=delta, warm=_warm_theta(law, warm_start), n_refine=n_refine)
    boot = None
    if bootstrap > 0:
        g = None if groups is None else np.asarray(groups).ravel()[keep]
        wb = resample_weights(n, bootstrap, seed, g) * w[None, :]
        boot = bootstrap_thetas(law, opt.theta, logx, logy, wb, delta=delta)
    return result(law, opt, n, boot=boot, design=design_reasons(law, logx, n), warnings=warnings)


def format_fit(fit_result: FitResult) -> str:
    """A fit as a few readable lines (``tsweep fit``)."""
    law = get_law(fit_result.law)
    lines = [f"{law.name}: {law.formula}   ({fit_result.n_points} points, Huber loss {fit_result.loss:.6g})"]
    for name, est in fit_result.estimates.items():
        if est.value is None:
            lines.append(f"  {name:>8} = -   {est.reason}   (optimum {fit_result.params[name]:.4g})")
        else:
            ci = f"   95% CI [{est.ci95[0]:.4g}, {est.ci95[1]:.4g}]" if est.ci95 else ""
            lines.append(f"  {name:>8} = {est.value:.4g}{ci}")
    if fit_result.n_bootstrap:
        lines.append(f"  intervals: percentile bootstrap over rows, {fit_result.n_bootstrap} resamples")
    lines += [f"  warning: {w}" for w in fit_result.warnings]
    return "\n".join(lines)

