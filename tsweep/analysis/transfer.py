"""The transfer report's estimation: from a sweep's summary table to gaps, D_T laws and multipliers.

This module computes; ``tsweep.analysis.records`` holds what it returns (``TransferReport`` and
its parts, and their JSON) and ``tsweep.analysis.rendering`` prints it.

Inputs: the summary table of ``tsweep.core.store`` (one row per finished job). Only rows with
``status == "ok"`` and a finite ``best_eval_loss`` enter a fit; the report counts the rest by
reason (``unconverged`` runs among them: a loss that is not the best for its data is no point
on a law). A run's loss is its best held-out loss (Hernandez et al. 2021, sec. 2).

Every number the report prints with an interval is *identified* (``tsweep.analysis.fitter``'s
rule: off its bounds, a converged bootstrap, an interval finite and less than two decades wide);
otherwise it is null with the reason. The steps, each a pure function of the table:

1. From-scratch curves, per size N (Hernandez et al. 2021, sec. 2 and appendix): the measured
   losses L(N, D), and the ``plateau`` law L = L_inf + B D^-beta fitted to them, whose offset is
   the plateau L(N, infinity). D(N), the data at which L(N, D) comes within 1% of the plateau,
   is read off it; the report checks that the measured loss never rises with D.
2. Effective data transferred (Hernandez et al. 2021, eq. 1.1): for each fine-tune from the final
   (fully pre-trained) checkpoint of its (source, size), D_E is the data a from-scratch model of
   the same N needs for the same loss, *interpolated* on the measured from-scratch curve at that N
   (a monotone cubic in log-log through the scratch runs; :func:`interpolate_d_e`). Only beyond
   the measured range is the per-size plateau law used, and such runs are flagged
   ``extrapolated``. D_T = D_E - D_F; multiplier = D_E / D_F.
3. Low-data regime (Hernandez et al. 2021 fit their law there only): D_F <= 0.1 D(N), judged
   against the lower end of D(N)'s 95% interval, so a run enters only if it is low-data with
   confidence. A run's flag: ``ok``, ``extrapolated``, ``high_data``, ``no_transfer`` (D_T <= 0,
   Hernandez et al.'s ossification), ``beyond_plateau`` (below the plateau: no finite D_E) or
   ``no_scratch_curve``.
4. The D_T law per source, ``hernandez`` (D_T = k D_F^alpha N^beta), on its ``ok`` runs. Its
   intervals come from a parametric bootstrap that perturbs every measured loss, scratch runs and
   fine-tunes alike, by the noise measured on the gap fits, re-derives each D_E and flag, and
   refits: the uncertainty of the scratch curves propagates into D_T. The headline multiplier
   D_E / D_F is the reading of one run inside the design (the largest N, its smallest D_F), with
   its interval from the same resampled worlds (the run's D_E re-read in each), not the law's
   value there: where the losses do not follow the law's shape the law's reading is biased with
   a narrow interval. The N exponent beta, and k with it, need three model sizes: through two,
   any power law fits. k alone
   is the law extrapolated to D_F = N = 1, three to five decades outside any design, so its
   interval is wide even when the law is pinned down where it was measured (a shift of beta by
   0.1 moves k by N^0.1, 3x at N = 150k): k is printed when its own interval passes the rule.
5. The transfer gap (Barnett 2024, arXiv 2408.16947) per size, fitted jointly over the sources
   with shared beta and E (``barnett_joint``): L(p, f, s) = (A_s p^-alpha_s + G_s) f^-beta + E, on
   every fine-tune of that size (all checkpoints p). Sharing beta and E puts the sources' gaps on
   one scale, so they compare: each pair of sources gets the difference of their gaps with an
   interval. A source's headline G is that of the largest size where it is identified, also in
   loss units at the largest fine-tune budget f_ref: G f_ref^-beta, the loss that no amount of
   pre-training removes there. Intervals: a parametric bootstrap whose noise has a term per run
   and an offset shared by every fine-tune of one annealed checkpoint (their scales measured on
   the fit's residuals, ``fitter.moment_components``): those fine-tunes share that checkpoint's
   luck, which a bootstrap over runs would treat as independent; where the sweep has replicate
   runs (``tsweep.analysis.noise``), the scales they measure are the least the bootstrap draws.
   Before a G is printed, four checks (each withdraws the numbers it contradicts, with the reason):
   a zero gap that fits as well (a likelihood-ratio test on the boundary: "no measurable gap",
   printed as the one-sided bound "G < u"); a trend of the residuals in f or in p that the law
   cannot follow ("misfit"); a gap law floor E that disagrees with the from-scratch plateau of
   the same size ("floors disagree": G and G f_ref^-beta are read against that floor, so they
   are withdrawn; the difference of two sources' G in loss at f_ref, in which the floor cancels,
   is free of it and keeps its interval); and, per source, a loss
   that rises with p (ossification) or a pre-training term on its bound (flat in p), which take
   the source out of the joint fit. How often the intervals cover the truth is measured on
   simulated worlds that break each assumption (``tsweep.analysis.worlds``,
   ``tests/test_coverage.py``).
6. The global from-scratch law ``chinchilla`` (Hoffmann et al. 2022) on every scratch run, for
   reference: its E, A and alpha are printed only where the design identifies them (a few model
   sizes spanning a few x rarely do).

The noise of a run, as a function of its target tokens f (``noise.NoiseProfile``): sd(f) = sd0
(f / f0)^gamma. The slope gamma is measured on the gap fits' residuals within each checkpoint
(``fitter.noise_trend``, maximum likelihood, pooled over sizes; each gap fit's own bootstrap
measures its own the same way), sd0 is 1.4826 x the median absolute residual with that slope
divided out (a robust standard deviation of the loss in log space, at f0, the geometric mean f),
corrected for the degrees of freedom the fits used (sqrt(n / (n - P))). Outside the f range it
was measured on it is held at its ends, and it is never below the replicates' within. The plateau
fits (a handful of points each; a scratch run's f is its D) and the D_T bootstrap draw at it. A
noise that grows with f and a bootstrap that assumes one scale leave the intervals too narrow
where the largest f pins the floor (a simulated world with noise 2.5x larger at 16k than at 1k:
G f^-beta covered its truth in 84% of draws, the plateau in 81%; ``tests/test_coverage.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, TypedDict, overload

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from scipy import stats as scipy_stats
from scipy.interpolate import PchipInterpolator

from tsweep.analysis import fitter
from tsweep.analysis.fitter import FitResult, Mask
from tsweep.analysis.laws import Array, BarnettJoint, get_law
from tsweep.analysis.noise import NoiseProfile, ReplicateNoise, replicate_noise
from tsweep.analysis.records import (
    FLOOR_MISFIT,
    Comparison,
    Estimate,
    GapFit,
    RunTransfer,
    ScratchCurve,
    SourceTransfer,
    TransferReport,
)

SCRATCH_LAW = "chinchilla"
PLATEAU_LAW = "plateau"
DT_LAW = "hernandez"
# Hernandez et al. 2021, sec. 2: D(N) is where L(N, D) is within 1% of L(N, infinity), and the
# low-data regime is D_F <= 0.1 D(N).
NEAR_PLATEAU = 0.01
LOW_DATA_FRACTION = 0.1
# Runs behind a D_T law at least: two per parameter (tsweep's choice; with one spare point the
# three-parameter law interpolates and its bootstrap collapses onto the point estimate).
MIN_DT_RUNS = 6
# Huber delta of the D_T law, in log D_T: Huber's 95%-efficiency constant 1.345 sigma (Huber 1964)
# for sigma ~ 0.11, the residual scale of log D_T measured on the demo's D_T fits (0.10 and 0.16
# for its two sources: D_E is read off noisy scratch curves, so D_T is ten times noisier than a
# loss). The loss fits' delta (0.01) would put every residual in Huber's linear regime, where
# least absolute deviations has a flat valley of minimisers: a live and a cold fit of the same
# rows then reported different k and alpha at the same objective (to 1e-16).
DT_HUBER_DELTA = 0.15
# Noise scale when no gap fit gives one yet: 1% in log space, the level measured on the demo's
# first runs (a placeholder only until a gap fit exists; reported as such).
FALLBACK_NOISE = 0.01
FLAGS = ("ok", "extrapolated", "high_data", "no_transfer", "beyond_plateau", "no_scratch_curve")
# Ossification (Hernandez et al. 2021, sec. 3: pre-training can hurt, "ossify" the model): the
# fine-tuned loss of a source rising with p by more than this many standard errors of the slope
# of log loss on log p (one intercept per fine-tune budget). One-sided, 2.5 sigma: a false alarm
# in 0.6% of sources whose loss is flat in p (tsweep's choice; the law cannot describe a rise).
OSSIFICATION_T = 2.5
# A source is "no better than scratch" when more than this share of its runs with a D_E reading
# reach no lower loss than a from-scratch model on the same tokens (D_E <= D_F), with at least
# MIN_READ_RUNS readings (tsweep's choices: a majority, and one run is no evidence).
NO_TRANSFER_SHARE = 0.5
MIN_READ_RUNS = 3
# A source's G is told apart from zero when pinning it there raises the gap fit's objective by a
# likelihood ratio over 2.71: the 5% test of a parameter on the boundary of its space, whose null
# distribution is half chi-square(1), half zero (Self & Liang 1987, JASA 82:605), so chi-square(1)'s
# 90% quantile. Below it the report prints a one-sided bound, "G < u".
NO_GAP_LR = 2.71
NO_GAP = "no measurable gap"
# Misfit: a quadratic trend of the gap fit's residuals in log f (or, per source, in log p) whose
# chi-square on 2 degrees of freedom passes 13.8, the 99.9% quantile (a false alarm in 0.1% of
# tests at the noise level, fewer since a fit's residuals are smaller than its noise; tsweep's
# choice: a misfit verdict withdraws numbers, so it must be rare where the law holds).
MISFIT_CHI2 = 13.82
# Sharing beta and E: the joint gap fit against each source fitted apart (its own beta and E), an
# F-test on the residual sums of squares with 2S - 2 and n - 5S degrees of freedom (nested least
# squares, Seber & Wild 2003, sec. 5.3). Below this p-value sharing fails and the source that
# gains most from its own fit leaves the joint fit (tsweep's choice: 0.1%, the misfit test's rate,
# since a failed test takes a source out of every comparison).
SHARING_P = 0.001
SHARING = "breaks the shared beta and E"

WarmStarts = Mapping[str, "FitResult | Mapping[str, float]"]
Strings = npt.NDArray[np.object_]  # a text column, missing values as ""


class Columns(TypedDict):
    """The summary table's columns the report reads, in job-id order."""

    kind: Strings
    source: Strings
    size: Strings
    status: Strings
    job_id: Strings
    sweep: Strings
    n_params: Array  # NaN where missing
    data_tokens: Array
    pretrain_tokens: Array
    best_eval_loss: Array
    replicate: Array  # 0: a run of the grid; r > 0: its r-th replicate (stores before schema 2: 0)


# ------------------------------------------------------------------ pure pieces
def _columns(table: pa.Table) -> Columns:
    def text(name: str) -> Strings:
        return np.array([("" if v is None else str(v)) for v in table.column(name).to_pylist()], dtype=object)

    def number(name: str) -> Array:
        return np.array([np.nan if v is None else float(v) for v in table.column(name).to_pylist()], dtype=float)

    return Columns(
        kind=text("kind"),
        source=text("source"),
        size=text("size"),
        status=text("status"),
        job_id=text("job_id"),
        sweep=text("sweep"),
        n_params=number("n_params"),
        data_tokens=number("data_tokens"),
        pretrain_tokens=number("pretrain_tokens"),
        best_eval_loss=number("best_eval_loss"),
        replicate=(
            np.nan_to_num(number("replicate")) if "replicate" in table.column_names else np.zeros(table.num_rows)
        ),
    )


def _sizes(c: Columns, rows: Mask) -> list[str]:
    """The sizes among ``rows``, smallest model first."""
    return sorted(set(c["size"][rows]), key=lambda s: float(np.max(c["n_params"][rows & (c["size"] == s)])))


def interpolate_d_e(scratch_d: Array, scratch_loss: Array, loss: float) -> float:
    """D at which the measured scratch curve (one N) reaches ``loss``, NaN outside the measured
    losses (no extrapolation); :func:`interpolate_d_e_many` for one loss."""
    return float(interpolate_d_e_many(scratch_d, scratch_loss, np.array([loss], dtype=float))[0])


def interpolate_d_e_many(scratch_d: Array, scratch_loss: Array, losses: Array) -> Array:
    """D at which the measured scratch curve (one N) reaches each of ``losses``, NaN outside the
    measured losses (no extrapolation).

    A from-scratch curve L(D) bends (it flattens toward its plateau), so a straight line in
    log-log between the two bracketing runs overstates D_E: by up to 7% (3% on average) for
    runs 4x apart on a plateau law like the demo's. Where the measured losses fall strictly with
    D, the curve is a monotone cubic (Fritsch-Carlson PCHIP, scipy's ``PchipInterpolator``) of
    log D against -log L, which follows the bend without overshooting: under 2% off everywhere
    on the same curve (``tests/test_analysis_transfer.py``). A curve that does not fall strictly
    (noise, an unconverged run) keeps the straight line between bracketing runs (the first
    bracket in D order)."""
    losses = np.asarray(losses, dtype=float)
    out = np.full(losses.shape, np.nan)
    if scratch_d.size < 2:
        return out
    order = np.argsort(scratch_d)
    ld, ll = np.log(scratch_d[order]), np.log(scratch_loss[order])
    with np.errstate(divide="ignore", invalid="ignore"):
        target = np.log(losses)
    if ld.size >= 3 and np.all(np.diff(ll) < 0) and np.all(np.diff(ld) > 0):
        inside = (ll[-1] <= target) & (target <= ll[0])
        out[inside] = np.exp(PchipInterpolator(-ll, ld, extrapolate=False)(-target[inside]))
        return out
    for i in range(ld.size - 1):
        lo, hi = sorted((ll[i], ll[i + 1]))
        todo = np.isnan(out) & (lo <= target) & (target <= hi)
        if ll[i] != ll[i + 1] and todo.any():
            t = (target[todo] - ll[i]) / (ll[i + 1] - ll[i])
            out[todo] = np.exp(ld[i] + t * (ld[i + 1] - ld[i]))
    return out


def plateau_d_e(params: Mapping[str, float], loss: float) -> float:
    """D at which the per-size plateau law reaches ``loss``; NaN at or below its plateau."""
    excess = loss - params["E"]
    if not excess > 0:
        return math.nan
    return float((params["B"] / excess) ** (1.0 / params["beta"]))


@overload
def d_of_n(B: float, E: float, beta: float) -> float: ...
@overload
def d_of_n(B: Array, E: Array, beta: Array) -> Array: ...
def d_of_n(B: float | Array, E: float | Array, beta: float | Array) -> float | Array:
    """D(N): where B D^-beta = 1% of the plateau E (Hernandez et al. 2021)."""
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        return (B / (NEAR_PLATEAU * E)) ** (1.0 / beta)


def read_run(curve: ScratchCurve | None, d_f: float, loss: float) -> tuple[float, str, str]:
    """(D_E, basis, flag) of one fine-tune against the scratch curve of its size; see the module
    docstring for the flags (the D_T sign and the low-data rule are applied by the caller)."""
    if curve is None or len(curve.d) < 2:
        return math.nan, "none", "no_scratch_curve"
    d_e = interpolate_d_e(np.asarray(curve.d), np.asarray(curve.loss), loss)
    if math.isfinite(d_e):
        return d_e, "interpolated", "ok"
    if curve.fit is None:
        return math.nan, "none", "no_scratch_curve"
    d_e = plateau_d_e(curve.fit.params, loss)
    if not math.isfinite(d_e):
        return math.nan, "none", "beyond_plateau"
    return d_e, "extrapolated", "extrapolated"


def flag_run(d_e: float, flag: str, d_f: float, curve: ScratchCurve | None) -> str:
    """The final flag of a run read as ``flag``: the D_T sign, then the low-data rule."""
    if flag != "ok":
        return flag
    if not d_e > d_f:
        return "no_transfer"
    if curve is None or curve.d_n_low is None or not d_f <= LOW_DATA_FRACTION * curve.d_n_low:
        return "high_data"
    return "ok"


def _warm(warm: WarmStarts | None, key: str) -> FitResult | Mapping[str, float] | None:
    return None if warm is None else warm.get(key)


# ------------------------------------------------------------------ the steps
def _scratch_curves(
    c: Columns, rows: Mask, noise: NoiseProfile, bootstrap: int, seed: int, warm: WarmStarts | None
) -> tuple[list[ScratchCurve], list[str]]:
    """Step 1 per size: the measured curve, its plateau fit, D(N) and the low-data yardstick."""
    curves, warnings = [], []
    law = get_law(PLATEAU_LAW)
    for size in _sizes(c, rows):
        sel = rows & (c["size"] == size)
        d, loss = c["data_tokens"][sel], c["best_eval_loss"][sel]
        order = np.argsort(d)
        d, loss = d[order], loss[order]
        monotone = bool(np.all(np.diff(loss) <= 0))
        if not monotone:
            warnings.append(
                f"scratch {size}: the loss rises with D somewhere ({', '.join(f'{x:.4g}' for x in loss)}): "
                f"a run did not reach the best loss for its data"
            )
        fit = None
        if np.unique(d).size >= law.n_params + 1:
            fit = fitter.fit(
                law,
                {"D": d, "loss": loss},
                bootstrap=bootstrap,
                seed=seed,
                resample="parametric",
                noise=noise.draws(d, bootstrap, seed, whole_runs=True),
                warm_start=_warm(warm, f"plateau/{size}"),
            )
        plateau = Estimate.of(fit, "E", f"needs >= {law.n_params + 1} scratch budgets, has {np.unique(d).size}")
        d_n, d_n_low = _d_n(fit)
        curves.append(
            ScratchCurve(
                size=size,
                n_params=int(c["n_params"][sel][0]),
                d=tuple(map(float, d)),
                loss=tuple(map(float, loss)),
                monotone=monotone,
                plateau=plateau,
                d_n=d_n,
                d_n_low=d_n_low,
                fit=fit,
            )
        )
    return curves, warnings


def _d_n(fit: FitResult | None) -> tuple[Estimate, float | None]:
    """D(N) of a plateau fit, and the lower end of its interval (the point estimate when no
    bootstrap ran: the low-data rule then reads that)."""
    if fit is None:
        return Estimate.missing("no plateau fit"), None
    point = float(d_of_n(fit.params["B"], fit.params["E"], fit.params["beta"]))
    if fit.boot_params is None:
        return Estimate.from_samples(point, None), point
    bp = fit.boot_params
    samples = d_of_n(bp[:, 0], bp[:, 1], bp[:, 2])
    estimate = Estimate.from_samples(point, samples)
    ci = fitter.percentile_ci(samples, center=point)
    return estimate, None if ci is None else ci[0]


def _gap_fits(
    c: Columns,
    ft_rows: Mask,
    bootstrap: int,
    seed: int,
    warm: WarmStarts | None,
    floor: tuple[float, float] | None = None,
) -> tuple[list[GapFit], list[str], dict[str, dict[str, str]]]:
    """Step 5: per size, the joint gap law over the sources with enough fine-tunes there. A
    source whose loss rises with p (:func:`ossification`) is left out of the joint fit, so that
    a law it cannot follow does not bend the shared beta and E of the others; returns (fits,
    warnings, source -> size -> why it was left out)."""
    fits, warnings = [], []
    excluded: dict[str, dict[str, str]] = {}
    single = get_law("barnett")
    sel_p = ft_rows & (c["pretrain_tokens"] > 0)
    f_ref = float(np.max(c["data_tokens"][sel_p])) if sel_p.any() else math.nan
    for size in _sizes(c, sel_p):
        rows = sel_p & (c["size"] == size)
        sources = []
        for src in sorted(set(c["source"][rows])):
            mine = rows & (c["source"] == src)
            n_p, n_f = np.unique(c["pretrain_tokens"][mine]).size, np.unique(c["data_tokens"][mine]).size
            if n_p >= 3 and n_f >= 3 and mine.sum() >= single.n_params + 1:
                rising = ossification(c["pretrain_tokens"][mine], c["data_tokens"][mine], c["best_eval_loss"][mine])
                if rising is None:
                    sources.append(src)
                else:
                    excluded.setdefault(src, {})[size] = rising
                    warnings.append(f"gap law: {src} at size {size} left out of the joint fit: {rising}")
            else:
                warnings.append(
                    f"gap law: {src} at size {size} has {n_p} distinct p and {n_f} distinct f; needs >= 3 of each"
                )
        while sources:
            gap = _joint_gap_fit(c, rows, sources, size, f_ref, bootstrap, seed, warm, floor)
            # first a source the shared beta and E cannot hold (it bends the others' terms, which
            # can then look flat), then a source whose pre-training term is unresolved: each
            # leaves the shared beta and E to the others
            breaker = _sharing_fails(c, rows, gap)
            flat = {s: why for s, why in ((s, _flat_reason(gap, i)) for i, s in enumerate(sources)) if why}
            drop = dict([breaker]) if breaker is not None else flat
            if not drop or len(drop) == len(sources):
                fits.append(gap)
                break
            for src, why in drop.items():
                excluded.setdefault(src, {})[size] = why
                warnings.append(f"gap law: {src} at size {size} left out of the joint fit: {why}")
            sources = [s for s in sources if s not in drop]
    return fits, warnings, excluded


def _joint_gap_fit(
    c: Columns,
    rows: Mask,
    sources: list[str],
    size: str,
    f_ref: float,
    bootstrap: int,
    seed: int,
    warm: WarmStarts | None,
    floor: tuple[float, float] | None = None,
) -> GapFit:
    """The joint gap law of ``sources`` on their fine-tunes at one size (module docstring, step 5);
    ``floor``: the (within, between) noise measured on replicate runs, below which the bootstrap's
    noise does not go."""
    use = rows & np.isin(c["source"], sources)
    law = BarnettJoint.of(len(sources))
    data = _gap_data(sources, c, use)
    code, p, f = data["source"], data["p"], data["f"]
    fit = fitter.fit(
        law,
        data,
        bootstrap=bootstrap,
        seed=seed,
        resample="parametric",
        groups=code * 1e15 + p,
        warm_start=_warm(warm, f"gap/{size}"),
        noise_floor=floor,
        noise_x=np.log(f),
    )
    fit = _misfit(fit, law, data, sources, floor)
    fit = _no_measurable_gaps(fit, law, data, sources)
    return GapFit(size=size, n_params=int(np.max(c["n_params"][use])), sources=tuple(sources), f_ref=f_ref, fit=fit)


def _sharing_fails(c: Columns, rows: Mask, gap: GapFit) -> tuple[str, str] | None:
    """(source, why) when the joint fit's shared beta and E fail the F-test against every source
    fitted apart (:data:`SHARING_P`): the source without which the others share them best
    (:func:`_sharing_without`) leaves; None when sharing holds, or with too few runs to test it."""
    sources = list(gap.sources)
    resid = gap.fit.residuals
    use = rows & np.isin(c["source"], sources)
    n = int(use.sum())
    df1, df2 = 2 * len(sources) - 2, n - 5 * len(sources)
    if len(sources) < 2 or df2 < 3 or resid is None or resid.size != n:
        return None
    single = get_law("barnett")
    joint_ssr, own_ssr = {}, {}
    for src in sources:
        mine = use & (c["source"] == src)
        data = {"p": c["pretrain_tokens"][mine], "f": c["data_tokens"][mine], "loss": c["best_eval_loss"][mine]}
        own = fitter.fit(single, data)
        if own.residuals is None or own.residuals.size != int(mine.sum()):
            return None
        joint_ssr[src] = float(np.sum(resid[c["source"][use] == src] ** 2))
        own_ssr[src] = float(np.sum(own.residuals**2))
    apart = sum(own_ssr.values())
    if apart <= 0:
        return None
    f_stat = max(sum(joint_ssr.values()) - apart, 0.0) / df1 / (apart / df2)
    p_value = float(scipy_stats.f.sf(f_stat, df1, df2))
    if p_value >= SHARING_P:
        return None
    worst = min(sources, key=lambda s: _sharing_without(c, rows, gap, s, own_ssr))
    return worst, (
        f"{SHARING} at {gap.size}: the sources fitted apart fit better than with a shared beta and E "
        f"(F = {f_stat:.1f} on {df1} and {df2} degrees of freedom, p = {p_value:.1g}); without {worst} the "
        "others share them best, so its gap is not on their scale"
    )


def _sharing_without(c: Columns, rows: Mask, gap: GapFit, left: str, own_ssr: Mapping[str, float]) -> float:
    """The sharing test's F statistic over ``gap``'s sources but ``left`` (a joint fit of the
    others, no bootstrap); 0 when one source is left (nothing shared)."""
    others = [s for s in gap.sources if s != left]
    if len(others) < 2:
        return 0.0
    use = rows & np.isin(c["source"], others)
    code = np.array([others.index(s) for s in c["source"][use]])
    data = {
        "p": c["pretrain_tokens"][use],
        "f": c["data_tokens"][use],
        "source": code,
        "loss": c["best_eval_loss"][use],
    }
    fit = fitter.fit(BarnettJoint.of(len(others)), data)
    apart = sum(own_ssr[s] for s in others)
    df1, df2 = 2 * len(others) - 2, int(use.sum()) - 5 * len(others)
    if fit.residuals is None or df2 < 1 or apart <= 0:
        return math.inf
    return max(float(np.sum(fit.residuals**2)) - apart, 0.0) / df1 / (apart / df2)


def _trend_chi2(x: Array, y: Array, sigma: float) -> float:
    """The chi-square statistic (degrees of freedom: x's columns) of a regression of ``y`` on the
    columns of ``x``, both already centred, with a known noise ``sigma`` per element of y."""
    xtx = x.T @ x
    if sigma <= 0 or not np.all(np.isfinite(xtx)) or np.linalg.matrix_rank(xtx) < x.shape[1]:
        return 0.0
    coef = np.linalg.solve(xtx, x.T @ y)
    return float(coef @ xtx @ coef) / sigma**2


def _gap_data(sources: Sequence[str], c: Columns, use: Mask) -> dict[str, Array]:
    """The joint gap law's columns for the fine-tunes in ``use``: p, f, the source's index in
    ``sources`` and the loss."""
    code = np.array([sources.index(s) for s in c["source"][use]])
    loss = c["best_eval_loss"][use]
    return {"p": c["pretrain_tokens"][use], "f": c["data_tokens"][use], "source": code, "loss": loss}


def _hat(fit: FitResult, law: BarnettJoint, data: Mapping[str, Array]) -> Array:
    """The gap fit's hat matrix (``fitter.hat_matrix``), for its random-effects noise split."""
    logx, _, _, _ = fitter.prepare(law, data)
    return fitter.hat_matrix(law, np.asarray(fit.theta, dtype=float), logx)


def _misfit(
    fit: FitResult,
    law: BarnettJoint,
    data: Mapping[str, Array],
    sources: list[str],
    floor: tuple[float, float] | None,
) -> FitResult:
    """The joint fit with the gaps its residuals contradict marked "misfit" (module docstring,
    misfit). Two tests on the residuals, each a chi-square with 2 degrees of freedom of a
    quadratic trend at known noise (the fit's random-effects split, at least the replicates'):

    - in f, pooled over the size's sources, within each checkpoint (which removes the checkpoint's
      offset): a curve the shared f^-beta cannot follow makes every G of the size a misreading;
    - in p, per source, on each checkpoint's mean residual (its noise: between^2 + within^2 / n_f):
      a pre-training curve the A p^-alpha term cannot follow.
    """
    if fit.residuals is None or fit.residuals.size != np.asarray(data["loss"]).size:
        return fit
    r = np.asarray(fit.residuals, dtype=float)
    code, p = np.asarray(data["source"], dtype=int), np.asarray(data["p"], dtype=float)
    lf = np.log(np.asarray(data["f"], dtype=float))
    groups = code * 1e15 + p
    # the per-run noise may change with f (fitter.noise_trend): the f test weighs each row by it
    rel = fitter.noise_scales(lf, fitter.noise_trend(r, lf, groups))
    assert rel is not None
    within, between = fitter.moment_components(r, groups, _hat(fit, law, data), rel)
    if floor is not None:
        within, between = max(within, floor[0]), max(between, floor[1])
    marks = dict(fit.not_identified)
    _, inv = np.unique(groups, return_inverse=True)

    def demean(v: Array) -> Array:
        return v - (np.bincount(inv, weights=v) / np.bincount(inv))[inv]

    xf = np.column_stack([demean(lf), demean(lf**2)]) / rel[:, None]
    chi_f = _trend_chi2(xf, demean(r) / rel, within)
    if chi_f > MISFIT_CHI2:
        for s in range(len(sources)):
            marks[f"G_{s}"] = (
                f"misfit: the size's fine-tune curves bend away from the shared f^-beta (residual trend in f, "
                f"chi-square {chi_f:.3g} > {MISFIT_CHI2:g} on 2 degrees of freedom)"
            )
    for s, src in enumerate(sources):
        mine = code == s
        ps = np.unique(p[mine])
        if ps.size < 4:
            continue
        m = np.array([r[mine & (p == v)].mean() for v in ps])
        n_f = np.array([np.count_nonzero(mine & (p == v)) for v in ps])
        x = np.log(ps)
        xp = np.column_stack([x - x.mean(), x**2 - (x**2).mean()])
        sigma = math.sqrt(between**2 + within**2 / float(np.mean(n_f)))
        chi_p = _trend_chi2(xp, m - m.mean(), sigma)
        if chi_p > MISFIT_CHI2 and f"G_{s}" not in marks:
            marks[f"G_{s}"] = (
                f"misfit: {src}'s fine-tuned loss does not follow A p^-alpha + G over the checkpoints (residual "
                f"trend in p, chi-square {chi_p:.3g} > {MISFIT_CHI2:g} on 2 degrees of freedom)"
            )
    return replace(fit, not_identified=marks)


def _no_measurable_gaps(fit: FitResult, law: BarnettJoint, data: Mapping[str, Array], sources: list[str]) -> FitResult:
    """The joint fit with every G_s that a zero gap explains as well marked "no measurable gap"
    (:data:`NO_GAP`): pinning G_s at its lower bound and refitting the rest raises the objective
    by less than ``NO_GAP_LR`` (a likelihood-ratio test at 5%, :func:`fitter.pinned_excess`).
    A bootstrap cannot say this: it resamples around the fitted G, which is never zero, so its
    interval for a source as good as target data excludes the truth."""
    logx, logy, _, _ = fitter.prepare(law, data)
    theta = np.asarray(fit.theta, dtype=float)
    w = np.ones(logy.size)
    marks = dict(fit.not_identified)
    for s, src in enumerate(sources):
        if marks.get(f"G_{s}", "").startswith("misfit"):
            continue
        i = law.params.index(f"G_{s}")
        lr = fitter.pinned_excess(law, theta, logx, logy, w, i, law.bounds[i][0])
        if lr < NO_GAP_LR:
            marks[f"G_{s}"] = (
                f"{NO_GAP}: a zero gap fits {src}'s runs as well (likelihood ratio {lr:.2g} < {NO_GAP_LR:g}, 5% level)"
            )
    return replace(fit, not_identified=marks)


def ossification(p: Array, f: Array, loss: Array) -> str | None:
    """Why a source's fine-tuned loss cannot follow the gap law: it rises with pre-training (the
    slope of log loss on log p, one intercept per fine-tune budget f, is positive by more than
    ``OSSIFICATION_T`` standard errors); None when it does not."""
    lp, y = np.log(np.asarray(p, dtype=float)), np.log(np.asarray(loss, dtype=float))
    levels = np.unique(f)
    x = np.column_stack([lp, *[(f == v).astype(float) for v in levels]])
    dof = y.size - x.shape[1]
    if dof < 2 or np.unique(lp).size < 3:
        return None
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ coef
    s2 = float(resid @ resid) / dof
    se = math.sqrt(max(s2 * float(np.linalg.pinv(x.T @ x)[0, 0]), 1e-300))
    slope = float(coef[0])
    if slope <= OSSIFICATION_T * se:
        return None
    return (
        f"ossification: the fine-tuned loss rises with pre-training ({100 * (10**slope - 1):+.2g}% per decade of p, "
        f"{slope / se:.1f} standard errors), so pre-training on it hurts here and no gap law holds"
    )


def g_estimates(gap: GapFit, source: str) -> tuple[Estimate, Estimate]:
    """(G, G f_ref^-beta) of one source from its size's joint fit.

    Two cases before the fitter's rule: a source whose pre-training term sits on a bound (A_s or
    alpha_s: its loss does not fall as a power of p over the design) has no G to report, since
    then G only names the level of a flat curve; and a G on its lower bound (no measurable gap:
    the source is as good as target data) is reported as a one-sided bound, "G < u", with u the
    95th percentile of its bootstrap refits."""
    s = gap.sources.index(source)
    fit = gap.fit
    flat = _flat_reason(gap, s)
    if flat is not None:
        return Estimate.missing(flat), Estimate.missing(flat)
    bounded = _upper_bounds(gap, s)
    if bounded is not None:
        return bounded
    g = Estimate.of(fit, f"G_{s}")
    if g.reason is not None:
        return g, Estimate.missing(g.reason)
    beta = fit.params["beta"]
    point = fit.params[f"G_{s}"] * gap.f_ref**-beta
    samples = None
    if fit.boot_params is not None:
        names = list(fit.params)
        bp = fit.boot_params
        samples = bp[:, names.index(f"G_{s}")] * gap.f_ref ** -bp[:, names.index("beta")]
    return g, Estimate.from_samples(point, samples)


def _flat_reason(gap: GapFit, s: int) -> str | None:
    """Why source ``s``'s pre-training term is not resolved (A_s or alpha_s on a bound at the
    estimate), or None."""
    law = BarnettJoint.of(len(gap.sources))
    on = fitter.at_bound(law, np.asarray(gap.fit.theta, dtype=float))
    names = [n for n in (f"A_{s}", f"alpha_{s}") if on[law.params.index(n)]]
    if not names:
        return None
    return (
        f"{' and '.join(names)} on {'its bound' if len(names) == 1 else 'their bounds'} at {gap.size}: the loss does "
        f"not fall as a power of p over the measured checkpoints, so pre-training on {gap.sources[s]} gains "
        f"nothing this design can measure, and G would only name the level of a flat curve"
    )


def _upper_bounds(gap: GapFit, s: int) -> tuple[Estimate, Estimate] | None:
    """The one-sided (G, G f_ref^-beta) of a source whose G sits on its lower bound, at the
    estimate or in more than the interval's tail of the bootstrap refits; None otherwise or
    when too few refits converged to bound it."""
    fit = gap.fit
    law = BarnettJoint.of(len(gap.sources))
    i = law.params.index(f"G_{s}")
    floor = math.exp(law.bounds[i][0] + 1e-6 * (law.bounds[i][1] - law.bounds[i][0]))
    if fit.boot_params is None or not fit.n_bootstrap:
        return None
    draws = fit.boot_params[:, i]
    on_floor = float(np.mean(draws <= floor))
    no_gap = fit.not_identified.get(f"G_{s}", "").startswith(NO_GAP)
    if not (no_gap or fit.params[f"G_{s}"] <= floor or on_floor > (1 - fitter.CI_LEVEL) / 2):
        return None
    if draws.size < fitter.MIN_BOOT_SUCCESS * fit.n_bootstrap:
        return None
    beta = fit.boot_params[:, law.params.index("beta")]
    q = 100 * fitter.CI_LEVEL
    test = (
        fit.not_identified[f"G_{s}"] if no_gap else f"G on its lower bound in {100 * on_floor:.0f}% of bootstrap refits"
    )
    why = (
        f"{NO_GAP} at {gap.size} ({test}): "
        f"{gap.sources[s]} is as good as target data within this design's resolution; one-sided {q:.0f}% bound"
    )
    return (
        Estimate(value=None, reason=why, upper=float(np.percentile(draws, q))),
        Estimate(value=None, reason=why, upper=float(np.percentile(draws * gap.f_ref**-beta, q))),
    )


def _floors_agree(gap_fits: list[GapFit], curves: Mapping[str, ScratchCurve]) -> tuple[list[GapFit], list[str]]:
    """The gap fits with every source's G withdrawn (:data:`FLOOR_MISFIT`) at each size where the
    gap law's floor E and the from-scratch plateau of the same size disagree (the 95% interval of
    their difference, over paired bootstrap draws, excludes zero), and a warning for each.

    Both are the loss a model of that size reaches on unlimited target data, whatever it was
    pre-trained on, so they must agree; where they do not, at least one law is wrong where its
    floor decides (a bend in the f-curve, say, is absorbed into E and beta), and G, read off
    f^-beta's extrapolation to E, is a misreading: it reads "not identified" with the reason,
    and so does G f_ref^-beta, the distance to that floor. A difference between two sources' G in
    loss units at the same f (``d_G_loss``) keeps its interval: the floor cancels in it. A G
    already withdrawn or bounded for another reason keeps that reason."""
    out, warnings = [], []
    for gap in gap_fits:
        curve = curves.get(gap.size)
        fit, plateau = gap.fit, None if curve is None else curve.fit
        if plateau is None or fit.boot_params is None or plateau.boot_params is None:
            out.append(gap)
            continue
        n = min(fit.boot_params.shape[0], plateau.boot_params.shape[0])
        e_gap = fit.boot_params[:n, list(fit.params).index("E")]
        e_scratch = plateau.boot_params[:n, list(plateau.params).index("E")]
        ci = fitter.percentile_ci(e_gap - e_scratch, center=fit.params["E"] - plateau.params["E"])
        if ci is None or ci[0] <= 0 <= ci[1]:
            out.append(gap)
            continue
        why = (
            f"{FLOOR_MISFIT} at {gap.size}: the gap law's E = {fit.params['E']:.4g} and the from-scratch plateau "
            f"{plateau.params['E']:.4g} differ by [{ci[0]:.3g}, {ci[1]:.3g}] (95%), so the f range does not pin the "
            f"floor G is read against: G is not identified there (the difference of two sources' G in loss at "
            f"f = {gap.f_ref:.3g}, where the floor cancels, is)"
        )
        warnings.append(why)
        marks = dict(fit.not_identified)
        for s in range(len(gap.sources)):
            marks.setdefault(f"G_{s}", why)
        out.append(replace(gap, fit=replace(fit, not_identified=marks)))
    return out, warnings


def _floor_only(gap: GapFit, s: int) -> bool:
    """The source's G is withdrawn only because the floors disagree (:func:`_floors_agree`)."""
    return gap.floor_doubt(gap.sources[s]) is not None


def _comparable(gap: GapFit, s: int) -> bool:
    """A source enters a comparison when its G is identified or bounded from above."""
    g, _ = g_estimates(gap, gap.sources[s])
    return g.identified or g.upper is not None


def _not_comparable(gap: GapFit, s: int) -> str:
    """Why a source's gap enters no comparison, named by the source: its G's own reason."""
    src = gap.sources[s]
    why = gap.fit.not_identified.get(f"G_{s}") or g_estimates(gap, src)[0].reason
    return f"G({src}) not identified: {why}"


def _one_sided(gap: GapFit, a: str, b: str) -> str | None:
    """Why a pair with a one-sided gap ("G < u") has no two-sided difference, and what the bound
    says: the other source's gap is larger when the lower end of its interval passes u. A
    difference drawn from the bootstrap would exclude the truth there: the refits scatter around
    the fitted gap, never around zero. None when neither gap is one-sided."""
    ga, gb = g_estimates(gap, a)[0], g_estimates(gap, b)[0]
    if ga.upper is None and gb.upper is None:
        return None
    if ga.upper is not None and gb.upper is not None:
        return f"both gaps one-sided at {gap.size} (G({a}) < {ga.upper:.3g}, G({b}) < {gb.upper:.3g}): not resolved"
    low, high = (a, gb) if ga.upper is not None else (b, ga)
    bound = (ga if ga.upper is not None else gb).upper
    other = b if low == a else a
    if high.ci95 is not None and bound is not None and high.ci95[0] > bound:
        return (
            f"one-sided: G({low}) < {bound:.3g} < {high.ci95[0]:.3g}, the lower end of G({other})'s interval: "
            f"{low} transfers better at {gap.size}"
        )
    return f"one-sided: G({low}) < {bound:.3g} does not clear G({other})'s interval at {gap.size}: not resolved"


def _comparisons(gap: GapFit) -> list[Comparison]:
    """Every pair of the size's sources: the difference of their gaps, with its interval."""
    out: list[Comparison] = []
    fit = gap.fit
    if fit.boot_params is None:
        return out
    names = list(fit.params)
    bp = fit.boot_params
    for i, a in enumerate(gap.sources):
        for j in range(i + 1, len(gap.sources)):
            b = gap.sources[j]
            ga, gb = f"G_{i}", f"G_{j}"
            why = next((_not_comparable(gap, k) for k in (i, j) if not _comparable(gap, k)), None)
            why = why or _one_sided(gap, a, b)
            # the floor cancels in a difference in loss at one f: a floor misfit alone leaves it
            why_loss = None if why is not None and _floor_only(gap, i) and _floor_only(gap, j) else why
            diff = bp[:, names.index(ga)] - bp[:, names.index(gb)]
            scale = gap.f_ref ** -bp[:, names.index("beta")]
            point = fit.params[ga] - fit.params[gb]
            point_loss = point * gap.f_ref ** -fit.params["beta"]
            out.append(
                Comparison(
                    a=a,
                    b=b,
                    size=gap.size,
                    d_G=Estimate.from_samples(point, diff, positive=False, reason=why),
                    d_G_loss=Estimate.from_samples(point_loss, diff * scale, positive=False, reason=why_loss),
                )
            )
    return out


def _gap_rows(gap: GapFit, c: Columns, ft_rows: Mask) -> tuple[Mask, Array] | None:
    """The rows a gap fit was fitted on (in its order) and their checkpoint groups; None when its
    residuals are not those rows' (a fit read back from JSON keeps none)."""
    if gap.fit.residuals is None:
        return None
    use = ft_rows & (c["pretrain_tokens"] > 0) & (c["size"] == gap.size) & np.isin(c["source"], gap.sources)
    if int(use.sum()) != gap.fit.residuals.size:
        return None
    code = np.array([gap.sources.index(s) for s in c["source"][use]])
    return use, code * 1e15 + c["pretrain_tokens"][use]


def _noise(gap_fits: list[GapFit], c: Columns, ft_rows: Mask) -> NoiseProfile | None:
    """The run-to-run noise of the module docstring, as a function of f, with its standard errors:
    measured on the gap fits' residuals within each checkpoint (``fitter.within_noise``, pooled
    over sizes); None without a gap fit whose residuals are at hand. ``between`` is set apart."""
    res, fs, ids, used, offset = [], [], [], 0, 0
    for g in gap_fits:
        rows = _gap_rows(g, c, ft_rows)
        if rows is None or g.fit.residuals is None or g.fit.residuals.size <= len(g.fit.theta):
            continue
        res.append(g.fit.residuals)
        fs.append(c["data_tokens"][rows[0]])
        # checkpoint groups, distinct across sizes
        inv = np.unique(rows[1], return_inverse=True)[1]
        ids.append(inv + offset)
        offset += int(inv.max()) + 1
        used += len(g.fit.theta)
    if not res:
        return None
    r, f = np.concatenate(res), np.concatenate(fs)
    w = fitter.within_noise(r, np.log(f), used, np.concatenate(ids))
    return NoiseProfile(
        sd0=w.sd0,
        gamma=w.gamma,
        f0=math.exp(w.x0),
        f_lo=float(f.min()),
        f_hi=float(f.max()),
        se_log_sd0=w.se_log_sd0,
        se_gamma=w.se_gamma,
    )


def _checkpoint_noise(gap_fits: list[GapFit], c: Columns, ft_rows: Mask) -> float:
    """The offset shared by every fine-tune of one checkpoint, in log loss: the random-effects
    split of the gap fits' residuals (``fitter.moment_components``), pooled over sizes. The
    fine-tunes behind a source's D_T law all start from its final checkpoint, so they share it."""
    shares = []
    for g in gap_fits:
        rows = _gap_rows(g, c, ft_rows)
        if rows is None or g.fit.residuals is None:
            continue
        use, groups = rows
        hat = _hat(g.fit, BarnettJoint.of(len(g.sources)), _gap_data(list(g.sources), c, use))
        shares.append(fitter.moment_components(g.fit.residuals, groups, hat)[1])
    return float(np.sqrt(np.mean(np.square(shares)))) if shares else 0.0


def _dt_law(
    src: str,
    runs: list[RunTransfer],
    curves: Mapping[str, ScratchCurve],
    noise: NoiseProfile,
    bootstrap: int,
    seed: int,
    warm: WarmStarts | None,
    between: float = 0.0,
) -> tuple[FitResult | None, Estimate, dict[str, Any] | None, list[str]]:
    """The Hernandez law of one source on its ok runs, with the parametric bootstrap of the
    module docstring; (fit, headline multiplier, where it is read, warnings)."""
    law = get_law(DT_LAW)
    ok = [r for r in runs if r.flag == "ok"]
    n_sizes, n_dfs = len({r.n_params for r in ok}), len({r.d_f for r in ok})
    if len(ok) < MIN_DT_RUNS or n_sizes < 2 or n_dfs < 2:
        why = (
            f"D_T law not fitted: {len(ok)} low-data runs with D_E interpolated, over {n_sizes} sizes and {n_dfs} "
            f"fine-tune budgets; needs >= {MIN_DT_RUNS} runs, >= 2 sizes and >= 2 budgets"
        )
        measured = _measured_multiplier(ok)
        return None, measured[0], measured[1], [why]
    n = np.array([r.n_params for r in ok], dtype=float)
    d_f = np.array([r.d_f for r in ok])
    fit = fitter.fit(
        law,
        {"N": n, "D_F": d_f, "D_T": np.array([r.d_t for r in ok])},
        seed=seed,
        warm_start=_warm(warm, f"hernandez/{src}"),
        delta=DT_HUBER_DELTA,
    )
    n_star = float(n.max())
    f_star = float(d_f[n == n_star].min())
    at: dict[str, Any] = {"D_F": f_star, "N": n_star, "basis": "measured"}
    if bootstrap <= 0:
        return fit, Estimate.missing("no bootstrap"), at, []
    thetas, d_e_draws = _dt_bootstrap(fit, ok, curves, noise, bootstrap, seed, between)
    fit = fitter.with_intervals(
        fit,
        law,
        thetas,
        resample="parametric",
        spans=fitter.span_reasons(law, {"N": np.log(n), "D_F": np.log(d_f)}, len(ok)),
    )
    # The headline multiplier is the run's own reading at (f*, N*), with its interval from the same
    # resampled worlds: the D_T law smooths over runs with a shape of its own, and where the
    # losses do not follow it (Barnett's law, say) its value at one point is biased while its
    # interval is narrow; on simulated worlds the law's reading covered the true multiplier in
    # 57-80% of draws (tests/test_coverage.py).
    j = next(i for i, r in enumerate(ok) if r.n_params == n_star and r.d_f == f_star)
    draws = d_e_draws[:, j] / f_star
    outside = float(np.mean(~np.isfinite(draws)))
    reason = None
    if outside > (1 - fitter.CI_LEVEL) / 2:
        reason = (
            f"the run's loss leaves the measured scratch curve in {100 * outside:.0f}% of bootstrap worlds, "
            f"so its D_E has no two-sided interval"
        )
    return fit, Estimate.from_samples(ok[j].multiplier, draws, reason=reason), at, []


def _measured_multiplier(ok: list[RunTransfer]) -> tuple[Estimate, dict[str, Any] | None]:
    if not ok:
        return Estimate.missing("no low-data run with an interpolated D_E"), None
    n_star = max(r.n_params for r in ok)
    run = min((r for r in ok if r.n_params == n_star), key=lambda r: r.d_f)
    return (
        Estimate.missing(f"no D_T law; measured at one run: {run.multiplier:.3g}x (no interval)"),
        {"D_F": run.d_f, "N": float(n_star), "basis": "measured"},
    )


def _dt_bootstrap(
    fit: FitResult,
    ok: list[RunTransfer],
    curves: Mapping[str, ScratchCurve],
    noise: NoiseProfile,
    bootstrap: int,
    seed: int,
    between: float = 0.0,
) -> tuple[Array, Array]:
    """Hernandez refits on resampled worlds: every scratch and fine-tune loss times exp(noise *
    z) (the fine-tunes of one size also times their checkpoint's shared offset), D_E
    re-interpolated, runs whose flag changes dropped (weight 0) from that resample. Returns the
    refits and every run's D_E in every world (NaN outside the measured scratch curve)."""
    law = get_law(DT_LAW)
    rng = np.random.default_rng(seed)
    logy = np.zeros((bootstrap, len(ok)))
    weights = np.zeros((bootstrap, len(ok)))
    d_e_draws = np.full((bootstrap, len(ok)), np.nan)
    # each resample at a noise drawn from how well the residuals measured it (noise.NoiseProfile)
    shaken = {
        size: np.asarray(c.loss)[None, :]
        * np.exp(noise.draws(c.d, bootstrap, seed + k, whole_runs=True) * rng.standard_normal((bootstrap, len(c.loss))))
        for k, (size, c) in enumerate(sorted(curves.items()))
    }
    run_sd = noise.draws([r.d_f for r in ok], bootstrap, seed + len(curves))
    run_noise = np.exp(run_sd * rng.standard_normal((bootstrap, len(ok))))
    # the runs of one size start from one checkpoint: they share its offset
    sizes = sorted({r.size for r in ok})
    offsets = between * rng.standard_normal((bootstrap, len(sizes)))
    run_noise *= np.exp(offsets[:, [sizes.index(r.size) for r in ok]])
    loss, d_f = np.array([r.loss for r in ok]), np.array([r.d_f for r in ok])
    for size in sorted({r.size for r in ok}):
        cols = np.array([j for j, r in enumerate(ok) if r.size == size])
        d = np.asarray(curves[size].d)
        for b in range(bootstrap):
            d_e = interpolate_d_e_many(d, shaken[size][b], loss[cols] * run_noise[b, cols])
            d_e_draws[b, cols] = d_e
            gain = d_e > d_f[cols]
            logy[b, cols[gain]] = np.log(d_e[gain] - d_f[cols][gain])
            weights[b, cols[gain]] = 1.0
    logx = {"N": np.log([r.n_params for r in ok]), "D_F": np.log([r.d_f for r in ok])}
    thetas = fitter.bootstrap_thetas(law, np.array(fit.theta), logx, logy, weights, seed=seed, delta=DT_HUBER_DELTA)
    used = weights > 0
    thin = (
        (used.sum(axis=1) < law.n_params + 1)
        | (np.array([np.unique(logx["N"][u]).size for u in used]) < 2)
        | (np.array([np.unique(logx["D_F"][u]).size for u in used]) < 2)
    )
    thetas[thin] = np.nan
    return thetas, d_e_draws


# ------------------------------------------------------------------ the report
def transfer_report(
    table: pa.Table, *, bootstrap: int = 200, seed: int = 0, warm: WarmStarts | None = None
) -> TransferReport:
    """Every law the summary table supports; see the module docstring.

    The rows are read in job-id order: a store returns them in whatever order its shards lie,
    and the parametric bootstrap draws its noise by row, so without a canonical order the same
    rows read twice could get different intervals (and a live report differ from a cold one)."""
    c = _columns(table.sort_by("job_id") if table.num_rows else table)
    scratch_rows, ft_rows, left_out, warnings = _select(c)

    # 5. gap fits first: their residuals give the noise scale the rest uses
    measured = replicate_noise(table)
    floor = _floor(measured)
    if floor is not None:
        warnings.append(
            f"noise measured on replicate runs: {100 * floor[0]:.2g}% per run, {100 * floor[1]:.2g}% per checkpoint "
            f"(log loss); every bootstrap draws at least these"
        )
    gap_fits, gap_warnings, excluded = _gap_fits(c, ft_rows, bootstrap, seed, warm, floor)
    warnings += gap_warnings
    warnings += [f"gap law at {g.size}: {w}" for g in gap_fits for w in g.fit.warnings]
    profile = _noise(gap_fits, c, ft_rows)
    between = _checkpoint_noise(gap_fits, c, ft_rows)
    if floor is not None:
        whole = math.hypot(floor[0], floor[1])
        profile = replace(profile or NoiseProfile(sd0=floor[0]), floor=floor[0], whole_floor=whole)
        between = max(between, floor[1])
    noise = None if profile is None else max(profile.sd0, profile.floor) or None
    if noise is None:
        warnings.append(
            f"no gap fit yet: the noise scale of the scratch and D_T intervals is a placeholder "
            f"({FALLBACK_NOISE:g} in log loss)"
        )
    # 1. scratch curves and plateaus
    profile = profile if noise is not None and profile is not None else NoiseProfile(sd0=FALLBACK_NOISE)
    curves, curve_warnings = _scratch_curves(c, scratch_rows, profile, bootstrap, seed + 1, warm)
    warnings += curve_warnings
    by_size = {cv.size: cv for cv in curves}
    gap_fits, floor_warnings = _floors_agree(gap_fits, by_size)
    warnings += floor_warnings
    # 6. the global scratch law, for reference
    scratch_fit = None
    sn, sd, sl = c["n_params"][scratch_rows], c["data_tokens"][scratch_rows], c["best_eval_loss"][scratch_rows]
    chin = get_law(SCRATCH_LAW)
    if sn.size >= chin.n_params + 1 and np.unique(sd).size >= 3:
        scratch_fit = fitter.fit(
            chin, {"N": sn, "D": sd, "loss": sl}, bootstrap=bootstrap, seed=seed + 2, warm_start=_warm(warm, "scratch")
        )
    # 2-4 and the headlines, per source
    sources = []
    for i, src in enumerate(sorted(set(c["source"][ft_rows]))):
        sources.append(
            _source_report(
                src,
                c,
                ft_rows,
                by_size,
                gap_fits,
                excluded.get(src, {}),
                profile,
                bootstrap,
                seed + 10 + i,
                warm,
                between,
            )
        )
    if not ft_rows.any():
        warnings.append("no ok fine-tune runs yet: no transfer estimates")
    comparisons = [cmp for g in gap_fits for cmp in _comparisons(g)]
    return TransferReport(
        sweep=next((s for s in c["sweep"] if s), None),
        scratch=scratch_fit,
        curves=tuple(curves),
        gap_fits=tuple(gap_fits),
        sources=tuple(sources),
        comparisons=tuple(comparisons),
        noise=noise,
        noise_slope=profile.gamma if noise is not None else None,
        n_rows=len(c["kind"]),
        n_used=int((scratch_rows | ft_rows).sum()),
        left_out=left_out,
        bootstrap=bootstrap,
        seed=seed,
        warnings=tuple(warnings),
    )


def _floor(measured: ReplicateNoise | None) -> tuple[float, float] | None:
    """(within, between) measured on replicate runs (0 where not measured), or None."""
    if measured is None or (measured.within is None and measured.between is None):
        return None
    w, b = measured.within, measured.between
    return (w.sd if w else 0.0, b.sd if b else 0.0)


def _select(c: Columns) -> tuple[Mask, Mask, dict[str, int], list[str]]:
    """(scratch rows, fine-tune rows, rows left out by reason, warnings): the rows that enter a fit."""
    warnings: list[str] = []
    left_out: dict[str, int] = {}

    def leave(reason: str, mask: Mask) -> None:
        if int(mask.sum()):
            left_out[reason] = left_out.get(reason, 0) + int(mask.sum())

    not_ok = c["status"] != "ok"
    for st in sorted(set(c["status"][not_ok])):
        leave(f"status={st or 'missing'}", c["status"] == st)
    if left_out.get("status=unconverged"):
        warnings.append(
            f"{left_out['status=unconverged']} run(s) left out as unconverged: still improving at "
            f"train.max_epochs, so their loss is not the best for their data"
        )
    no_loss = ~not_ok & ~(np.isfinite(c["best_eval_loss"]) & (c["best_eval_loss"] > 0))
    leave("no finite best_eval_loss", no_loss)
    ok = ~not_ok & ~no_loss
    leave("pretrain job (enters only through its fine-tunes)", ok & (c["kind"] == "pretrain"))
    leave(
        "replicate (measures the noise; tsweep.analysis.noise)", ok & (c["replicate"] > 0) & (c["kind"] != "pretrain")
    )
    ok &= c["replicate"] == 0
    leave("unknown kind", ok & ~np.isin(c["kind"], ["pretrain", "finetune", "scratch"]))
    return ok & (c["kind"] == "scratch"), ok & (c["kind"] == "finetune"), left_out, warnings


def _source_report(
    src: str,
    c: Columns,
    ft_rows: Mask,
    curves: Mapping[str, ScratchCurve],
    gap_fits: list[GapFit],
    excluded: Mapping[str, str],
    noise: NoiseProfile,
    bootstrap: int,
    seed: int,
    warm: WarmStarts | None,
    between: float = 0.0,
) -> SourceTransfer:
    """Steps 2-4 for one source, and its headline gap (``excluded``: size -> why the source
    was left out of that size's joint gap fit)."""
    rows = ft_rows & (c["source"] == src)
    warnings: list[str] = []
    runs = _final_runs(src, c, rows, curves)
    counts = {f: sum(r.flag == f for r in runs) for f in FLAGS[1:] if any(r.flag == f for r in runs)}
    if counts:
        warnings.append("left out of the D_T law: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    hern, multiplier, mult_at, dt_warnings = _dt_law(src, runs, curves, noise, bootstrap, seed, warm, between)
    warnings += dt_warnings
    G, G_loss, gap_size = _headline_gap(src, gap_fits, excluded)
    worse = _no_better_than_scratch(src, runs)
    if worse is not None:
        G, G_loss, gap_size = Estimate.missing(worse), Estimate.missing(worse), None
    return SourceTransfer(
        source=src,
        n_runs=int(rows.sum()),
        n_dt_runs=sum(r.flag == "ok" for r in runs) if hern is not None else 0,
        G=G,
        G_loss=G_loss,
        gap_size=gap_size,
        k=Estimate.of(hern, "k", "no D_T law"),
        alpha=Estimate.of(hern, "alpha", "no D_T law"),
        beta=Estimate.of(hern, "beta", "no D_T law"),
        multiplier=multiplier,
        multiplier_at=mult_at,
        hernandez=hern,
        runs=tuple(runs),
        warnings=tuple(warnings),
    )


def _final_runs(src: str, c: Columns, rows: Mask, curves: Mapping[str, ScratchCurve]) -> list[RunTransfer]:
    """Steps 2-3: the source's fine-tunes from the final checkpoint of each size, read against
    the scratch curve of that size. The final checkpoint is the largest p among *all* of this
    source's fine-tunes there, so a failed final fine-tune never promotes an earlier one."""
    everything = (c["kind"] == "finetune") & (c["source"] == src)
    runs = []
    for j in np.flatnonzero(rows):
        size = c["size"][j]
        final_p = np.max(c["pretrain_tokens"][everything & (c["size"] == size)])
        if c["pretrain_tokens"][j] != final_p:
            continue
        curve = curves.get(size)
        d_f, loss = float(c["data_tokens"][j]), float(c["best_eval_loss"][j])
        d_e, basis, flag = read_run(curve, d_f, loss)
        runs.append(
            RunTransfer(
                job_id=str(c["job_id"][j]),
                size=size,
                n_params=int(c["n_params"][j]),
                d_f=d_f,
                pretrain_tokens=int(c["pretrain_tokens"][j]),
                loss=loss,
                d_e=d_e,
                d_t=d_e - d_f,
                multiplier=d_e / d_f,
                basis=basis,
                flag=flag_run(d_e, flag, d_f, curve),
            )
        )
    return runs


def _headline_gap(
    src: str, gap_fits: list[GapFit], excluded: Mapping[str, str]
) -> tuple[Estimate, Estimate, str | None]:
    """(G, G f_ref^-beta, size) of the largest size where the source's G is identified; else
    the largest size where it is bounded from above ("G < u"); else not identified, with the
    reason given at the largest size that fitted the source (or left it out of its fit)."""
    reasons = [f"{size}: {why}" for size, why in excluded.items()]
    bounded: tuple[Estimate, Estimate, str | None] | None = None
    for gap in reversed(gap_fits):
        if src not in gap.sources:
            continue
        g, gl = g_estimates(gap, src)
        if g.identified:
            return g, gl, gap.size
        if g.upper is not None and bounded is None:
            bounded = (g, gl, gap.size)
        reasons.append(f"{gap.size}: {g.reason}")
    if bounded is not None:
        return bounded
    if not reasons:
        return Estimate.missing("no gap fit for this source"), Estimate.missing("no gap fit"), None
    why = _largest_first(reasons, gap_fits)
    return Estimate.missing(why), Estimate.missing(why), None


def _largest_first(reasons: list[str], gap_fits: list[GapFit]) -> str:
    """The reason at the largest size among ``reasons`` ("size: why" strings)."""
    order = {g.size: i for i, g in enumerate(gap_fits)}
    return max(reasons, key=lambda r: order.get(r.split(":")[0], -1))


def _no_better_than_scratch(src: str, runs: list[RunTransfer]) -> str | None:
    """Why the source is no better than training from scratch: most of its final-checkpoint
    fine-tunes with a D_E reading reach no lower loss than a from-scratch model given the same
    target tokens (D_E <= D_F); None otherwise."""
    read = [r for r in runs if math.isfinite(r.d_e)]
    worse = [r for r in read if not r.d_e > r.d_f]
    if len(read) < MIN_READ_RUNS or len(worse) <= NO_TRANSFER_SHARE * len(read):
        return None
    return (
        f"no better than scratch: {len(worse)} of {len(read)} fine-tunes from {src}'s final checkpoints reach no "
        f"lower loss than a from-scratch model on the same target tokens (D_E <= D_F)"
    )
