"""From-scratch curves per model size, read the way Hernandez et al. 2021 read them.

Hernandez et al. 2021 (arXiv 2102.01293, sec. 2 and appendix A) measure effective data
transferred against the *measured* from-scratch curve of each model size, because a global
L(N, D) law fitted their small models too poorly to invert. tsweep follows them exactly:

- **Plateau** L(N, inf): each size's scratch runs are fitted with L(D) = L_inf + B D^-b (the
  ``plateau`` law), where the design allows (>= 4 distinct D: three parameters with an offset).
- **D(N)**: the data at which L(N, D) comes within ``PLATEAU_TOLERANCE`` (1%) of L(N, inf):
  B D^-b = 0.01 L_inf, so D(N) = (B / (0.01 L_inf))^(1/b) (:func:`data_limit`).
- **Low-data regime**: a fine-tune is low-data iff D_F <= ``LOW_DATA_FRACTION`` (0.1) x D(N).
  Where D(N) is not identified but its interval has a finite, positive lower end, the rule uses
  that lower end: a run low-data against it is low-data for every D(N) the data allow (a
  conservative reading, reported as such); with no lower end the regime is unknown.
- **D_E**: the D at which the measured from-scratch curve of the same N reaches the fine-tune's
  loss, by linear interpolation in (log D, log L) between measured runs (:func:`effective_data`).
  The measured curve is first made non-increasing by isotonic regression (pool adjacent
  violators, Barlow et al. 1972): more unique data cannot make the best loss worse, and a run
  that scored worse with more data (cut short, or noise) would otherwise make D_E ambiguous.
  Beyond the measured range the fitted per-size law extrapolates, anchored at the measured end
  point so the curve stays continuous: D = D_end ((L_end - L_inf) / (L - L_inf))^(1/b). Such
  runs are flagged ``extrapolated``; a loss at or below L_inf has no finite D_E (beyond the
  plateau).

Every function is vectorised over a leading axis of bootstrap resamples, so the transfer report
recomputes D(N) and D_E under each perturbed table with the same code as the point estimate.
"""

from __future__ import annotations

import math

import numpy as np

Array = np.ndarray

PLATEAU_TOLERANCE = 0.01  # Hernandez et al. 2021: "within 1% of L(N, infinity)"
LOW_DATA_FRACTION = 0.1  # Hernandez et al. 2021: low-data means D_F <= 0.1 D(N)

# effective_data's outcome per run
INTERPOLATED, EXTRAPOLATED, BEYOND_PLATEAU, NO_LAW = 0, 1, 2, 3


def isotonic_decreasing(y: Array) -> Array:
    """The non-increasing sequence closest to ``y`` in least squares (pool adjacent violators)."""
    blocks: list[list[float]] = []  # [mean, count]
    for v in np.asarray(y, dtype=float):
        blocks.append([float(v), 1.0])
        while len(blocks) > 1 and blocks[-2][0] < blocks[-1][0]:
            m2, c2 = blocks.pop()
            m1, c1 = blocks.pop()
            blocks.append([(m1 * c1 + m2 * c2) / (c1 + c2), c1 + c2])
    return np.concatenate([np.full(int(c), m) for m, c in blocks])


def monotone_curve(d: Array, logl: Array) -> tuple[Array, Array]:
    """(log D, log L) of the measured curve, isotonic and strictly decreasing: a pooled block
    keeps its smallest D (the least data that reaches that loss)."""
    order = np.argsort(d, kind="stable")
    ld, ll = np.log(np.asarray(d, dtype=float)[order]), isotonic_decreasing(np.asarray(logl, dtype=float)[order])
    first = np.concatenate([[True], ll[1:] < ll[:-1]])
    return ld[first], ll[first]


def rises(d: Array, loss: Array) -> list[tuple[float, float]]:
    """The (D, next D) pairs between which the measured loss rises: what isotonic regression pools."""
    order = np.argsort(d, kind="stable")
    dd, ll = np.asarray(d, dtype=float)[order], np.asarray(loss, dtype=float)[order]
    return [(float(dd[i]), float(dd[i + 1])) for i in range(dd.size - 1) if ll[i + 1] > ll[i]]


def data_limit(theta: Array) -> Array:
    """D(N) from plateau-law optima (..., 3) in optimiser space (l_inf, b_log, b): the D at which
    B D^-b = PLATEAU_TOLERANCE * L_inf."""
    theta = np.asarray(theta, dtype=float)
    l_inf, b_log, b = theta[..., 0], theta[..., 1], theta[..., 2]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.exp((b_log - math.log(PLATEAU_TOLERANCE) - l_inf) / b)


def _anchored(ld_end: float, ll_end: float, theta: Array, target: Array) -> Array:
    """D where the plateau law through (D_end, L_end) with the fitted L_inf and b reaches ``target``."""
    l_inf, b = math.exp(theta[0]), theta[2]
    l_end, l_t = math.exp(ll_end), np.exp(target)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = (l_end - l_inf) / (l_t - l_inf)
        out = np.exp(ld_end + np.log(ratio) / b)
    return np.where((l_t > l_inf) & (l_end > l_inf) & (b > 0), out, np.nan)


def effective_data(d: Array, logl: Array, target: Array, plateau: Array | None) -> tuple[Array, Array]:
    """D_E for fine-tune log-losses ``target`` against one size's measured scratch curve.

    ``d``: the scratch runs' D (m,); ``logl``: their log-losses, (m,) or a bootstrap stack (B, m);
    ``target``: fine-tune log-losses (k,) or (B, k); ``plateau``: the per-size law's optimum (3,)
    or (B, 3) in optimiser space, or None. Returns (D_E, outcome), each (B, k) (or (k,)): the
    outcome per run is INTERPOLATED, EXTRAPOLATED, BEYOND_PLATEAU (loss at or below L_inf) or
    NO_LAW (outside the measured range with no per-size law to extrapolate with).
    """
    single = np.ndim(logl) == 1 and np.ndim(target) == 1
    logl, target = np.atleast_2d(logl), np.atleast_2d(target)
    n_b = max(logl.shape[0], target.shape[0])
    logl = np.broadcast_to(logl, (n_b, logl.shape[1]))
    target = np.broadcast_to(target, (n_b, target.shape[1]))
    if plateau is not None:
        plateau = np.broadcast_to(np.asarray(plateau, dtype=float), (n_b, 3))
    d_e = np.full(target.shape, np.nan)
    outcome = np.full(target.shape, NO_LAW, dtype=int)
    for i in range(n_b):
        ld, ll = monotone_curve(d, logl[i])
        t = target[i]
        inside = (t <= ll[0]) & (t >= ll[-1])
        # np.interp needs increasing x: the curve read from its largest D down.
        d_e[i, inside] = np.exp(np.interp(t[inside], ll[::-1], ld[::-1]))
        outcome[i, inside] = INTERPOLATED
        th = None if plateau is None else plateau[i]
        if th is None or not np.all(np.isfinite(th)):
            continue
        # Worse than the least-data run: extrapolate down from it (no finite answer: no law).
        # Better than the most-data run: extrapolate up, and no finite answer is the plateau.
        for side, k, missed in ((t > ll[0], 0, NO_LAW), (t < ll[-1], -1, BEYOND_PLATEAU)):
            if side.any():
                ext = _anchored(ld[k], ll[k], th, t[side])
                d_e[i, side] = ext
                outcome[i, side] = np.where(np.isfinite(ext), EXTRAPOLATED, missed)
    return (d_e[0], outcome[0]) if single else (d_e, outcome)
