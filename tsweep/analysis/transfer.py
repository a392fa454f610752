"""The transfer report: from a sweep's summary table to gaps, D_T laws and data multipliers.

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
   (log-log between the bracketing runs). Only beyond the measured range is the per-size plateau
   law used, and such runs are flagged ``extrapolated``. D_T = D_E - D_F; multiplier = D_E / D_F.
3. Low-data regime (Hernandez et al. 2021 fit their law there only): D_F <= 0.1 D(N), judged
   against the lower end of D(N)'s 95% interval, so a run enters only if it is low-data with
   confidence. A run's flag: ``ok``, ``extrapolated``, ``high_data``, ``no_transfer`` (D_T <= 0,
   Hernandez et al.'s ossification), ``beyond_plateau`` (below the plateau: no finite D_E) or
   ``no_scratch_curve``.
4. The D_T law per source, ``hernandez`` (D_T = k D_F^alpha N^beta), on its ``ok`` runs. Its
   intervals come from a parametric bootstrap that perturbs every measured loss, scratch runs and
   fine-tunes alike, by the noise measured on the gap fits, re-derives each D_E and flag, and
   refits: the uncertainty of the scratch curves propagates into D_T. The headline multiplier
   D_E / D_F is read at a point inside the design (the largest N, its smallest D_F) with its own
   bootstrap interval; it is identified when the law's exponents and that interval are. k alone
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
   the fit's residuals, ``fitter.noise_components``): those fine-tunes share that checkpoint's
   luck, which a bootstrap over runs would treat as independent. On simulations of the shipped
   grid shapes its 95% intervals cover the true G in 92-97% of draws at the noise measured here
   (``tests/test_analysis_coverage.py``).
6. The global from-scratch law ``chinchilla`` (Hoffmann et al. 2022) on every scratch run, for
   reference: its E, A and alpha are printed only where the design identifies them (a few model
   sizes spanning a few x rarely do).

The noise scale: 1.4826 x the median absolute residual of the gap fits (a robust standard
deviation of the loss in log space), pooled over sizes; the plateau fits (a handful of points
each) and the D_T bootstrap use it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from tsweep.analysis import fitter
from tsweep.analysis.fitter import FitResult
from tsweep.analysis.laws import BarnettJoint, get_law
from tsweep.core.jsonio import num

Array = np.ndarray

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
# The per-source quantities a report leads with, in the gap table, the history and the gauges.
HEADLINE_KEYS = ("G", "G_loss", "gap_size", "k", "alpha", "beta", "multiplier", "multiplier_at", "n_runs", "n_dt_runs")

WarmStarts = Mapping[str, "FitResult | Mapping[str, float]"]


# ------------------------------------------------------------------ records
@dataclass(frozen=True)
class Estimate:
    """A reported number: identified (a value and its 95% interval) or not (None and why)."""

    value: float | None
    ci95: tuple[float, float] | None = None
    reason: str | None = None

    @property
    def identified(self) -> bool:
        return self.value is not None

    @classmethod
    def missing(cls, reason: str) -> Estimate:
        return cls(None, None, reason)

    @classmethod
    def of(cls, fit: FitResult | None, name: str, why_missing: str = "not fitted") -> Estimate:
        """Parameter ``name`` of ``fit``, or None with the reason it is not identified."""
        if fit is None:
            return cls.missing(why_missing)
        if not fit.identified(name):
            return cls.missing(f"{name} not identified: {fit.not_identified[name]}")
        return cls(float(fit.params[name]), None if fit.ci95 is None else fit.ci95[name])

    @classmethod
    def from_samples(
        cls, value: float, samples: Array | None, *, positive: bool = True, reason: str | None = None
    ) -> Estimate:
        """A derived quantity with its percentile interval from bootstrap samples; not identified
        when ``reason`` is given or the interval breaks the fitter's rule."""
        if reason is not None:
            return cls.missing(reason)
        ci = percentile_ci(samples) if samples is not None else None
        if ci is None:
            return cls.missing("no bootstrap interval")
        lo, hi = ci
        if positive and (lo <= 0 or hi / lo > fitter.MAX_SCALE_RATIO):
            return cls.missing(f"its 95% interval [{lo:.3g}, {hi:.3g}] spans more than {fitter.MAX_SCALE_RATIO:g}x")
        return cls(float(value), ci)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": num(self.value)}
        if self.ci95 is not None:
            out["ci95"] = [num(self.ci95[0]), num(self.ci95[1])]
        if self.reason is not None:
            out["reason"] = self.reason
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any] | None) -> Estimate:
        if not d:
            return cls.missing("not reported")
        ci = d.get("ci95")
        return cls(d.get("value"), None if ci is None or None in ci else (float(ci[0]), float(ci[1])), d.get("reason"))


@dataclass(frozen=True)
class ScratchCurve:
    """The measured from-scratch curve of one model size, and its plateau."""

    size: str
    n_params: int
    d: tuple[float, ...]
    loss: tuple[float, ...]
    monotone: bool  # the loss never rises with D
    plateau: Estimate  # L(N, infinity)
    d_n: Estimate  # D(N): the data within 1% of the plateau
    d_n_low: float | None  # the lower end of D(N)'s 95% interval (the low-data rule's yardstick;
    # the point estimate when no bootstrap ran)
    fit: FitResult | None

    def to_json(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "n_params": self.n_params,
            "d": list(self.d),
            "loss": list(self.loss),
            "monotone": self.monotone,
            "plateau": self.plateau.to_json(),
            "d_n": self.d_n.to_json(),
            "d_n_low": num(self.d_n_low),
            "fit": None if self.fit is None else self.fit.to_json(),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ScratchCurve:
        return cls(
            d["size"],
            int(d["n_params"]),
            tuple(d["d"]),
            tuple(d["loss"]),
            bool(d["monotone"]),
            Estimate.from_json(d["plateau"]),
            Estimate.from_json(d["d_n"]),
            d.get("d_n_low"),
            None if d.get("fit") is None else FitResult.from_json(d["fit"]),
        )


@dataclass(frozen=True)
class RunTransfer:
    """One fine-tune from a final pre-training checkpoint, read against the scratch curve."""

    job_id: str
    size: str
    n_params: int
    d_f: float
    pretrain_tokens: int
    loss: float
    d_e: float  # NaN when there is none (beyond_plateau, no_scratch_curve)
    d_t: float
    multiplier: float
    basis: str  # interpolated | extrapolated | none
    flag: str  # one of FLAGS

    def to_json(self) -> dict[str, Any]:
        return {k: (num(v) if isinstance(v, float) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> RunTransfer:
        nan = lambda v: math.nan if v is None else float(v)  # noqa: E731
        return cls(
            d["job_id"],
            d["size"],
            int(d["n_params"]),
            nan(d["d_f"]),
            int(d["pretrain_tokens"]),
            nan(d["loss"]),
            nan(d["d_e"]),
            nan(d["d_t"]),
            nan(d["multiplier"]),
            d["basis"],
            d["flag"],
        )


@dataclass(frozen=True)
class GapFit:
    """The joint gap law of one model size over the sources that have enough fine-tunes there."""

    size: str
    n_params: int
    sources: tuple[str, ...]
    f_ref: float
    fit: FitResult

    def source_params(self, source: str) -> dict[str, float]:
        law = BarnettJoint.of(len(self.sources))
        return law.source_params(self.fit.params, self.sources.index(source))

    def to_json(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "n_params": self.n_params,
            "sources": list(self.sources),
            "f_ref": self.f_ref,
            "fit": self.fit.to_json(),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> GapFit:
        return cls(d["size"], int(d["n_params"]), tuple(d["sources"]), float(d["f_ref"]), FitResult.from_json(d["fit"]))


@dataclass(frozen=True)
class SourceTransfer:
    source: str
    n_runs: int  # ok fine-tunes of this source, every checkpoint
    n_dt_runs: int  # runs behind the D_T law
    G: Estimate
    G_loss: Estimate  # G f_ref^-beta: the loss no pre-training removes at f_ref
    gap_size: str | None  # the size whose joint gap fit gives the headline G
    k: Estimate
    alpha: Estimate
    beta: Estimate
    multiplier: Estimate
    multiplier_at: dict[str, Any] | None  # {"D_F", "N", "basis": "law" | "measured"}
    hernandez: FitResult | None
    runs: tuple[RunTransfer, ...]
    warnings: tuple[str, ...] = ()

    def headline(self) -> dict[str, Any]:
        """The per-source numbers of HEADLINE_KEYS, as JSON values."""
        return {k: v for k, v in self.to_json().items() if k in HEADLINE_KEYS}

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "n_runs": self.n_runs,
            "n_dt_runs": self.n_dt_runs,
            "G": self.G.to_json(),
            "G_loss": self.G_loss.to_json(),
            "gap_size": self.gap_size,
            "k": self.k.to_json(),
            "alpha": self.alpha.to_json(),
            "beta": self.beta.to_json(),
            "multiplier": self.multiplier.to_json(),
            "multiplier_at": self.multiplier_at,
            "hernandez": None if self.hernandez is None else self.hernandez.to_json(),
            "runs": [r.to_json() for r in self.runs],
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> SourceTransfer:
        e = Estimate.from_json
        return cls(
            d["source"],
            int(d["n_runs"]),
            int(d["n_dt_runs"]),
            e(d.get("G")),
            e(d.get("G_loss")),
            d.get("gap_size"),
            e(d.get("k")),
            e(d.get("alpha")),
            e(d.get("beta")),
            e(d.get("multiplier")),
            d.get("multiplier_at"),
            None if d.get("hernandez") is None else FitResult.from_json(d["hernandez"]),
            tuple(RunTransfer.from_json(r) for r in d.get("runs", ())),
            tuple(d.get("warnings", ())),
        )


@dataclass(frozen=True)
class Comparison:
    """Source ``a`` against source ``b`` at one size: the difference of their gaps."""

    a: str
    b: str
    size: str
    d_G: Estimate  # G_a - G_b
    d_G_loss: Estimate  # in loss units at f_ref

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "size": self.size,
            "d_G": self.d_G.to_json(),
            "d_G_loss": self.d_G_loss.to_json(),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Comparison:
        return cls(d["a"], d["b"], d["size"], Estimate.from_json(d["d_G"]), Estimate.from_json(d["d_G_loss"]))

    @property
    def resolved(self) -> bool:
        """The interval of the difference excludes zero: one source transfers better."""
        ci = self.d_G.ci95
        return ci is not None and (ci[0] > 0 or ci[1] < 0)


@dataclass(frozen=True)
class TransferReport:
    sweep: str | None
    scratch: FitResult | None
    curves: tuple[ScratchCurve, ...]
    gap_fits: tuple[GapFit, ...]
    sources: tuple[SourceTransfer, ...]
    comparisons: tuple[Comparison, ...]
    noise: float | None  # the loss noise in log space (module docstring); None: no gap fit yet
    n_rows: int
    n_used: int
    left_out: dict[str, int]
    bootstrap: int
    seed: int
    warnings: tuple[str, ...] = ()
    n_jobs_finished: int | None = None
    timestamp: str | None = None

    def source(self, name: str) -> SourceTransfer:
        return next(s for s in self.sources if s.source == name)

    def gap_fit(self, size: str) -> GapFit | None:
        return next((g for g in self.gap_fits if g.size == size), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "sweep": self.sweep,
            "n_rows": self.n_rows,
            "n_used": self.n_used,
            "left_out": dict(self.left_out),
            "bootstrap": self.bootstrap,
            "seed": self.seed,
            "noise": num(self.noise),
            "n_jobs_finished": self.n_jobs_finished,
            "timestamp": self.timestamp,
            "scratch": None if self.scratch is None else self.scratch.to_json(),
            "curves": [c.to_json() for c in self.curves],
            "gap_fits": [g.to_json() for g in self.gap_fits],
            "sources": [s.to_json() for s in self.sources],
            "comparisons": [c.to_json() for c in self.comparisons],
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> TransferReport:
        """The report from its JSON (``fits/latest.json``); every reader goes through this."""
        return cls(
            sweep=d.get("sweep"),
            scratch=None if d.get("scratch") is None else FitResult.from_json(d["scratch"]),
            curves=tuple(ScratchCurve.from_json(c) for c in d.get("curves", ())),
            gap_fits=tuple(GapFit.from_json(g) for g in d.get("gap_fits", ())),
            sources=tuple(SourceTransfer.from_json(s) for s in d.get("sources", ())),
            comparisons=tuple(Comparison.from_json(c) for c in d.get("comparisons", ())),
            noise=d.get("noise"),
            n_rows=int(d.get("n_rows", 0)),
            n_used=int(d.get("n_used", 0)),
            left_out=dict(d.get("left_out", {})),
            bootstrap=int(d.get("bootstrap", 0)),
            seed=int(d.get("seed", 0)),
            warnings=tuple(d.get("warnings", ())),
            n_jobs_finished=d.get("n_jobs_finished"),
            timestamp=d.get("timestamp"),
        )

    def warm_starts(self) -> dict[str, FitResult]:
        """Every fit by key, to join the starts of the next report's fits."""
        out: dict[str, FitResult] = {}
        if self.scratch is not None:
            out["scratch"] = self.scratch
        for c in self.curves:
            if c.fit is not None:
                out[f"plateau/{c.size}"] = c.fit
        for g in self.gap_fits:
            out[f"gap/{g.size}"] = g.fit
        for s in self.sources:
            if s.hernandez is not None:
                out[f"hernandez/{s.source}"] = s.hernandez
        return out

    def format_table(self) -> str:
        return format_table(self)


# ------------------------------------------------------------------ pure pieces
def percentile_ci(samples: Array | None) -> tuple[float, float] | None:
    if samples is None:
        return None
    good = np.asarray(samples, dtype=float)
    good = good[np.isfinite(good)]
    if good.size < 2:
        return None
    tail = 100 * (1 - fitter.CI_LEVEL) / 2
    lo, hi = np.percentile(good, [tail, 100 - tail])
    return float(lo), float(hi)


def _columns(table: pa.Table) -> dict[str, Array]:
    cols: dict[str, Array] = {}
    for name in ("kind", "source", "size", "status", "job_id", "sweep"):
        cols[name] = np.array([("" if v is None else str(v)) for v in table.column(name).to_pylist()], dtype=object)
    for name in ("n_params", "data_tokens", "pretrain_tokens", "best_eval_loss"):
        vals = table.column(name).to_pylist()
        cols[name] = np.array([np.nan if v is None else float(v) for v in vals], dtype=float)
    return cols


def interpolate_d_e(scratch_d: Array, scratch_loss: Array, loss: float) -> float:
    """D at which the measured scratch curve (one N) reaches ``loss``: linear in log D vs log L
    between the two runs that bracket it. NaN outside the measured losses (no extrapolation)."""
    if scratch_d.size < 2:
        return math.nan
    order = np.argsort(scratch_d)
    ld, ll = np.log(scratch_d[order]), np.log(scratch_loss[order])
    target = math.log(loss)
    for i in range(ld.size - 1):
        lo, hi = sorted((ll[i], ll[i + 1]))
        if lo <= target <= hi and ll[i] != ll[i + 1]:
            t = (target - ll[i]) / (ll[i + 1] - ll[i])
            return float(math.exp(ld[i] + t * (ld[i + 1] - ld[i])))
    return math.nan


def plateau_d_e(params: Mapping[str, float], loss: float) -> float:
    """D at which the per-size plateau law reaches ``loss``; NaN at or below its plateau."""
    excess = loss - params["E"]
    if not excess > 0:
        return math.nan
    return float((params["B"] / excess) ** (1.0 / params["beta"]))


def d_of_n(B: Array, E: Array, beta: Array) -> Array:
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
    if flag != "ok":
        return flag
    if not d_e > d_f:
        return "no_transfer"
    if curve is None or curve.d_n_low is None or not d_f <= LOW_DATA_FRACTION * curve.d_n_low:
        return "high_data"
    return "ok"


def _warm(warm: WarmStarts | None, key: str):
    return None if warm is None else warm.get(key)


# ------------------------------------------------------------------ the steps
def _scratch_curves(
    c: Mapping[str, Array], rows: Array, noise: float, bootstrap: int, seed: int, warm: WarmStarts | None
) -> tuple[list[ScratchCurve], list[str]]:
    curves, warnings = [], []
    law = get_law(PLATEAU_LAW)
    for size in sorted(set(c["size"][rows]), key=lambda s: float(np.max(c["n_params"][rows & (c["size"] == s)]))):
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
                noise=noise,
                warm_start=_warm(warm, f"plateau/{size}"),
            )
        plateau = Estimate.of(fit, "E", f"needs >= {law.n_params + 1} scratch budgets, has {np.unique(d).size}")
        d_n, d_n_low = Estimate.missing("no plateau fit"), None
        if fit is not None:
            point = float(d_of_n(fit.params["B"], fit.params["E"], fit.params["beta"]))
            samples, d_n_low = None, point  # without a bootstrap the rule reads the point estimate
            if fit.boot_params is not None:
                bp = fit.boot_params
                samples = d_of_n(bp[:, 0], bp[:, 1], bp[:, 2])
                ci = percentile_ci(samples)
                d_n_low = None if ci is None else ci[0]
            d_n = Estimate.from_samples(point, samples)
        curves.append(
            ScratchCurve(
                size,
                int(c["n_params"][sel][0]),
                tuple(map(float, d)),
                tuple(map(float, loss)),
                monotone,
                plateau,
                d_n,
                d_n_low,
                fit,
            )
        )
    return curves, warnings


def _gap_fits(
    c: Mapping[str, Array], ft_rows: Array, bootstrap: int, seed: int, warm: WarmStarts | None
) -> tuple[list[GapFit], list[str]]:
    fits, warnings = [], []
    single = get_law("barnett")
    sel_p = ft_rows & (c["pretrain_tokens"] > 0)
    f_ref = float(np.max(c["data_tokens"][sel_p])) if sel_p.any() else math.nan
    for size in sorted(set(c["size"][sel_p]), key=lambda s: float(np.max(c["n_params"][sel_p & (c["size"] == s)]))):
        rows = sel_p & (c["size"] == size)
        sources = []
        for src in sorted(set(c["source"][rows])):
            mine = rows & (c["source"] == src)
            n_p, n_f = np.unique(c["pretrain_tokens"][mine]).size, np.unique(c["data_tokens"][mine]).size
            if n_p >= 3 and n_f >= 3 and mine.sum() >= single.n_params + 1:
                sources.append(src)
            else:
                warnings.append(
                    f"gap law: {src} at size {size} has {n_p} distinct p and {n_f} distinct f; needs >= 3 of each"
                )
        if not sources:
            continue
        use = rows & np.isin(c["source"], sources)
        code = np.array([sources.index(s) for s in c["source"][use]])
        law = BarnettJoint.of(len(sources))
        p, f = c["pretrain_tokens"][use], c["data_tokens"][use]
        fit = fitter.fit(
            law,
            {"p": p, "f": f, "source": code, "loss": c["best_eval_loss"][use]},
            bootstrap=bootstrap,
            seed=seed,
            resample="parametric",
            groups=code * 1e15 + p,
            warm_start=_warm(warm, f"gap/{size}"),
        )
        fits.append(GapFit(size, int(np.max(c["n_params"][use])), tuple(sources), f_ref, fit))
    return fits, warnings


def _g_estimates(gap: GapFit, source: str) -> tuple[Estimate, Estimate]:
    """(G, G f_ref^-beta) of one source from its size's joint fit."""
    s = gap.sources.index(source)
    fit = gap.fit
    g = Estimate.of(fit, f"G_{s}")
    if not g.identified:
        return g, Estimate.missing(g.reason)
    beta = fit.params["beta"]
    point = fit.params[f"G_{s}"] * gap.f_ref**-beta
    samples = None
    if fit.boot_params is not None:
        names = list(fit.params)
        bp = fit.boot_params
        samples = bp[:, names.index(f"G_{s}")] * gap.f_ref ** -bp[:, names.index("beta")]
    return g, Estimate.from_samples(point, samples)


def _comparisons(gap: GapFit) -> list[Comparison]:
    out = []
    fit = gap.fit
    if fit.boot_params is None:
        return out
    names = list(fit.params)
    bp = fit.boot_params
    for i, a in enumerate(gap.sources):
        for j in range(i + 1, len(gap.sources)):
            b = gap.sources[j]
            ga, gb = f"G_{i}", f"G_{j}"
            why = next((f"{n} not identified" for n in (ga, gb) if not fit.identified(n)), None)
            diff = bp[:, names.index(ga)] - bp[:, names.index(gb)]
            scale = gap.f_ref ** -bp[:, names.index("beta")]
            point = fit.params[ga] - fit.params[gb]
            point_loss = point * gap.f_ref ** -fit.params["beta"]
            out.append(
                Comparison(
                    a,
                    b,
                    gap.size,
                    Estimate.from_samples(point, diff, positive=False, reason=why),
                    Estimate.from_samples(point_loss, diff * scale, positive=False, reason=why),
                )
            )
    return out


def _noise(gap_fits: list[GapFit]) -> float | None:
    res = [g.fit.residuals for g in gap_fits if g.fit.residuals is not None and g.fit.residuals.size > len(g.fit.theta)]
    if not res:
        return None
    r = np.concatenate(res)
    return float(1.4826 * np.median(np.abs(r - np.median(r))))


def _dt_law(
    src: str,
    runs: list[RunTransfer],
    curves: Mapping[str, ScratchCurve],
    noise: float,
    bootstrap: int,
    seed: int,
    warm: WarmStarts | None,
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
    at = {"D_F": f_star, "N": n_star, "basis": "law"}
    h = fit.params
    point = 1.0 + h["k"] * f_star ** (h["alpha"] - 1.0) * n_star ** h["beta"]
    if bootstrap <= 0:
        return fit, Estimate.missing("no bootstrap"), at, []
    thetas = _dt_bootstrap(fit, ok, curves, noise, bootstrap, seed)
    fit = fitter.with_intervals(
        fit, law, thetas, spans=fitter.span_reasons(law, {"N": np.log(n), "D_F": np.log(d_f)}, len(ok))
    )
    p = law.to_params(thetas)
    m = 1.0 + p[:, 0] * f_star ** (p[:, 1] - 1.0) * n_star ** p[:, 2]
    # The multiplier is read inside the design; it needs the law's shape (its exponents) and its
    # own interval, not k, which is the law extrapolated to D_F = N = 1 (module docstring, step 4).
    shape = [name for name in ("alpha", "beta") if not fit.identified(name)]
    reason = f"the D_T law's {' and '.join(shape)} not identified" if shape else None
    return fit, Estimate.from_samples(point, m, reason=reason), at, []


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
    fit: FitResult, ok: list[RunTransfer], curves: Mapping[str, ScratchCurve], noise: float, bootstrap: int, seed: int
) -> Array:
    """Hernandez refits on resampled worlds: every scratch and fine-tune loss times exp(noise *
    z), D_E re-interpolated, runs whose flag changes dropped (weight 0) from that resample."""
    law = get_law(DT_LAW)
    rng = np.random.default_rng(seed)
    logy = np.zeros((bootstrap, len(ok)))
    weights = np.zeros((bootstrap, len(ok)))
    shaken = {
        size: np.asarray(c.loss)[None, :] * np.exp(noise * rng.standard_normal((bootstrap, len(c.loss))))
        for size, c in curves.items()
    }
    run_noise = np.exp(noise * rng.standard_normal((bootstrap, len(ok))))
    for j, r in enumerate(ok):
        curve = curves[r.size]
        d = np.asarray(curve.d)
        for b in range(bootstrap):
            d_e = interpolate_d_e(d, shaken[r.size][b], r.loss * run_noise[b, j])
            if d_e > r.d_f:
                logy[b, j], weights[b, j] = math.log(d_e - r.d_f), 1.0
    logx = {"N": np.log([r.n_params for r in ok]), "D_F": np.log([r.d_f for r in ok])}
    thetas = fitter.bootstrap_thetas(law, np.array(fit.theta), logx, logy, weights, seed=seed, delta=DT_HUBER_DELTA)
    used = weights > 0
    thin = (
        (used.sum(axis=1) < law.n_params + 1)
        | (np.array([np.unique(logx["N"][u]).size for u in used]) < 2)
        | (np.array([np.unique(logx["D_F"][u]).size for u in used]) < 2)
    )
    thetas[thin] = np.nan
    return thetas


# ------------------------------------------------------------------ the report
def transfer_report(
    table: pa.Table, *, bootstrap: int = 200, seed: int = 0, warm: WarmStarts | None = None
) -> TransferReport:
    """Every law the summary table supports; see the module docstring.

    The rows are read in job-id order: a store returns them in whatever order its shards lie,
    and the parametric bootstrap draws its noise by row, so without a canonical order the same
    rows read twice could get different intervals (and a live report differ from a cold one)."""
    c = _columns(table.sort_by("job_id") if table.num_rows else table)
    n_rows = len(c["kind"])
    warnings: list[str] = []
    left_out: dict[str, int] = {}

    def leave(reason: str, mask: Array) -> None:
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
    leave("unknown kind", ok & ~np.isin(c["kind"], ["pretrain", "finetune", "scratch"]))
    scratch_rows = ok & (c["kind"] == "scratch")
    ft_rows = ok & (c["kind"] == "finetune")

    # 5. gap fits first: their residuals give the noise scale the rest uses
    gap_fits, gap_warnings = _gap_fits(c, ft_rows, bootstrap, seed, warm)
    warnings += gap_warnings
    noise = _noise(gap_fits)
    if noise is None:
        warnings.append(
            f"no gap fit yet: the noise scale of the scratch and D_T intervals is a placeholder "
            f"({FALLBACK_NOISE:g} in log loss)"
        )
    # 1. scratch curves and plateaus
    curves, curve_warnings = _scratch_curves(c, scratch_rows, noise or FALLBACK_NOISE, bootstrap, seed + 1, warm)
    warnings += curve_warnings
    by_size = {cv.size: cv for cv in curves}
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
            _source_report(src, c, ft_rows, by_size, gap_fits, noise or FALLBACK_NOISE, bootstrap, seed + 10 + i, warm)
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
        n_rows=n_rows,
        n_used=int((scratch_rows | ft_rows).sum()),
        left_out=left_out,
        bootstrap=bootstrap,
        seed=seed,
        warnings=tuple(warnings),
    )


def _source_report(
    src: str,
    c: Mapping[str, Array],
    ft_rows: Array,
    curves: Mapping[str, ScratchCurve],
    gap_fits: list[GapFit],
    noise: float,
    bootstrap: int,
    seed: int,
    warm: WarmStarts | None,
) -> SourceTransfer:
    rows = ft_rows & (c["source"] == src)
    warnings: list[str] = []
    # fine-tunes from the final checkpoint of each size: the largest p among *all* of this
    # source's fine-tunes there, so a failed final fine-tune never promotes an earlier checkpoint
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
        flag = flag_run(d_e, flag, d_f, curve)
        d_t = d_e - d_f
        runs.append(
            RunTransfer(
                str(c["job_id"][j]),
                size,
                int(c["n_params"][j]),
                d_f,
                int(c["pretrain_tokens"][j]),
                loss,
                d_e,
                d_t,
                d_e / d_f,
                basis,
                flag,
            )
        )
    counts = {f: sum(r.flag == f for r in runs) for f in FLAGS[1:] if any(r.flag == f for r in runs)}
    if counts:
        warnings.append("left out of the D_T law: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    hern, multiplier, mult_at, dt_warnings = _dt_law(src, runs, curves, noise, bootstrap, seed, warm)
    warnings += dt_warnings
    # the headline gap: the largest size where this source's G is identified
    G, G_loss, gap_size = Estimate.missing("no gap fit for this source"), Estimate.missing("no gap fit"), None
    for gap in reversed(gap_fits):
        if src not in gap.sources:
            continue
        g, gl = _g_estimates(gap, src)
        if g.identified:
            G, G_loss, gap_size = g, gl, gap.size
            break
        if gap_size is None and not G.identified:
            G, G_loss = Estimate.missing(f"{gap.size}: {g.reason}"), Estimate.missing(f"{gap.size}: {g.reason}")
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


# ------------------------------------------------------------------ the table
def fmt(e: Estimate | None) -> str:
    if e is None or not e.identified:
        return "not identified"
    s = f"{e.value:.3g}"
    if e.ci95 is not None:
        s += f" [{e.ci95[0]:.3g}, {e.ci95[1]:.3g}]"
    return s


def format_table(report: TransferReport) -> str:
    """The gap table, readable in a terminal, with every 'not identified' explained below it."""
    left = ", ".join(f"{v} {k}" for k, v in report.left_out.items()) or "none"
    lines = [
        f"Transfer report: sweep {report.sweep or '?'}; {report.n_used} of {report.n_rows} summary rows in fits "
        f"(left out: {left}); bootstrap {report.bootstrap}; loss noise "
        f"{'%.2g%%' % (100 * report.noise) if report.noise is not None else 'not measured yet'}"
    ]
    f_ref = next((g.f_ref for g in report.gap_fits), None)
    header = [
        "source",
        "runs",
        "G [95% CI] (size)",
        f"G f^-beta at f={f_ref:.3g}" if f_ref else "G f^-beta",
        "k",
        "alpha",
        "beta",
        "multiplier @ (D_F, N)",
    ]
    rows = [header]
    notes = []
    for s in report.sources:
        mult = fmt(s.multiplier)
        if s.multiplier.identified and s.multiplier_at:
            mult += f"x @ ({s.multiplier_at['D_F']:.3g}, {s.multiplier_at['N']:.3g})"
        rows.append(
            [
                s.source,
                f"{s.n_runs}/{s.n_dt_runs}",
                fmt(s.G) + (f" ({s.gap_size})" if s.gap_size else ""),
                fmt(s.G_loss),
                fmt(s.k),
                fmt(s.alpha),
                fmt(s.beta),
                mult,
            ]
        )
        for name in ("G", "k", "multiplier"):
            e = getattr(s, name)
            if not e.identified:
                why = (
                    e.reason if e.reason.startswith(f"{name} not identified") else f"{name} not identified: {e.reason}"
                )
                notes.append(f"- {s.source}: {why}")
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    lines.append("runs = ok fine-tunes / runs behind the D_T law; G from the largest size where it is identified")
    for cmp in report.comparisons:
        verdict = ("apart" if cmp.resolved else "not resolved") if cmp.d_G.identified else "not identified"
        lines.append(f"G({cmp.a}) - G({cmp.b}) at {cmp.size}: {fmt(cmp.d_G)} ({verdict})")
    plateaus = [f"{cv.size} {fmt(cv.plateau)}" for cv in report.curves]
    if plateaus:
        lines.append("From-scratch plateaus L(N, inf): " + "; ".join(plateaus))
    if report.scratch is not None:
        ps = ", ".join(f"{k}={fmt(Estimate.of(report.scratch, k))}" for k in report.scratch.params)
        lines.append(f"From-scratch law ({report.scratch.law}, {report.scratch.n_points} runs): {ps}")
    notes += [f"- {w}" for w in report.warnings]
    for s in report.sources:
        notes += [f"- {s.source}: {w}" for w in s.warnings]
    if notes:
        lines.append("Notes:")
        lines += list(dict.fromkeys(notes))
    return "\n".join(lines)
