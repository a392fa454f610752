"""The transfer report: from a sweep's summary table to gaps, D_T laws and data multipliers.

Inputs: the summary table of ``orchestrator/store.py`` (one row per finished job). Only rows
with ``status == "ok"`` and a finite ``best_eval_loss`` enter any fit; the report counts the rest
by reason. Every run is early-stopped at its best held-out loss, so ``best_eval_loss`` is *the*
loss of a run (Hernandez et al. 2021, arXiv 2102.01293, sec. 2).

1. From-scratch law (Hoffmann et al. 2022, arXiv 2203.15556): ``chinchilla`` on the scratch runs,
   N = n_params, D = data_tokens (the distinct target tokens, repeated over epochs), loss =
   best_eval_loss.
2. Effective data transferred (Hernandez et al. 2021, eq. 1.1): for each fine-tune from the
   *final* pre-training checkpoint of its (source, size) (the largest pretrain_tokens), D_E is the
   data a from-scratch model of the same N needs for the same loss, by inverting the scratch law:
   D_E = (B / (L - E - A/N^alpha))^(1/beta). D_T = D_E - D_F; multiplier = (D_F + D_T)/D_F = D_E/D_F.
   D_E is cross-checked by log-log interpolation between the measured scratch runs at that N.
3. Low-data regime (Hernandez et al. 2021 fit their law only there). A run enters the D_T fit
   only if its flag is ``ok``; the rule, in order:
   - ``beyond_plateau``: L <= E + A/N^alpha, the fine-tune beats the scratch law's infinite-data
     loss at that N, so no finite D_E exists;
   - ``no_transfer``: D_T <= 0, the fine-tune is no better than scratch on the same data
     (Hernandez et al.'s "ossification");
   - ``high_data``: D_F > D_bal(N) = (B N^alpha / A)^(1/beta), where the scratch law's data term
     B/D_F^beta has fallen below its size term A/N^alpha: scratch at that N is parameter-limited,
     small loss differences map to huge D differences, and Hernandez et al. saw D_T fall off
     their power law there. (``LOW_DATA_RATIO`` scales D_bal.)
   Runs whose D_E lies more than ``EXTRAPOLATION_FACTOR`` beyond the largest scratch D are kept
   but warned about.
4. Hernandez law per source: ``hernandez`` (D_T = k D_F^alpha N^beta) on its ``ok`` runs. Its
   intervals come from a bootstrap that resamples the scratch runs *and* the fine-tunes, refits
   the scratch law, re-derives every D_T and refits: the scratch law's uncertainty propagates.
   Headline multiplier: the law's (D_F + D_T)/D_F at the smallest D_F and the largest N among the
   runs behind it (the low-data, large-model corner where transfer matters most), with the same
   bootstrap's interval; with no D_T law, the measured multiplier of that corner's run instead.
5. Transfer gap (Barnett 2024, arXiv 2408.16947): ``barnett`` (p = pretrain_tokens > 0,
   f = data_tokens, loss) per (source, size), since the law has no N. The headline G of a source
   is that of its largest size with a fit (>= 3 distinct p, >= 3 distinct f, more points than
   parameters). Intervals: the fitter's bootstrap over runs.

Not enough data for a fit gives ``None`` and a warning, never a placeholder number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from tsweep.analysis import fitter
from tsweep.analysis.fitter import FitResult
from tsweep.analysis.laws import get_law

Array = np.ndarray

SCRATCH_LAW = "chinchilla"
DT_LAW = "hernandez"
GAP_LAW = "barnett"
# Scales D_bal(N) in the high-data rule (a tsweep choice; 1 = data term equals size term).
LOW_DATA_RATIO = 1.0
# D_E more than this many times the largest scratch D measured is an extrapolation of the law.
EXTRAPOLATION_FACTOR = 10.0
# Law-inverted and interpolated D_E further apart than this factor are reported.
INTERP_DISAGREEMENT = 2.0

WarmStarts = Mapping[str, "FitResult | Mapping[str, float]"]


# ------------------------------------------------------------------ records
@dataclass(frozen=True)
class Estimate:
    value: float
    ci95: tuple[float, float] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": _num(self.value)}
        if self.ci95 is not None:
            out["ci95"] = [_num(self.ci95[0]), _num(self.ci95[1])]
        return out


@dataclass(frozen=True)
class RunTransfer:
    """One fine-tune from a final pre-training checkpoint, read against the scratch law."""

    job_id: str
    size: str
    n_params: int
    d_f: float
    pretrain_tokens: int
    loss: float
    d_e: float  # NaN when undefined (beyond_plateau) or no scratch law
    d_e_interp: float  # NaN when the loss lies outside the measured scratch runs at this N
    d_t: float
    multiplier: float
    flag: str  # ok | beyond_plateau | no_transfer | high_data | no_scratch_law

    def to_json(self) -> dict[str, Any]:
        return {k: (_num(v) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class SourceTransfer:
    source: str
    n_runs: int  # ok fine-tunes of this source, every checkpoint
    n_dt_runs: int  # runs behind the D_T law
    G: Estimate | None
    gap_size: str | None  # the size whose Barnett fit gives G
    k: Estimate | None
    alpha: Estimate | None
    beta: Estimate | None
    multiplier: Estimate | None
    multiplier_at: dict[str, Any] | None  # {"D_F", "N", "basis": "law" | "measured"}
    hernandez: FitResult | None
    barnett: dict[str, FitResult | None]
    runs: tuple[RunTransfer, ...]
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        est = lambda e: None if e is None else e.to_json()  # noqa: E731
        return {
            "source": self.source,
            "n_runs": self.n_runs,
            "n_dt_runs": self.n_dt_runs,
            "G": est(self.G),
            "gap_size": self.gap_size,
            "k": est(self.k),
            "alpha": est(self.alpha),
            "beta": est(self.beta),
            "multiplier": est(self.multiplier),
            "multiplier_at": self.multiplier_at,
            "hernandez": None if self.hernandez is None else self.hernandez.to_json(),
            "barnett": {s: (None if f is None else f.to_json()) for s, f in self.barnett.items()},
            "runs": [r.to_json() for r in self.runs],
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class TransferReport:
    sweep: str | None
    scratch: FitResult | None
    sources: tuple[SourceTransfer, ...]
    n_rows: int
    n_used: int
    left_out: dict[str, int]
    bootstrap: int
    seed: int
    warnings: tuple[str, ...] = ()
    n_scratch_runs: int = 0
    scratch_points: dict[str, list[float]] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "sweep": self.sweep,
            "n_rows": self.n_rows,
            "n_used": self.n_used,
            "left_out": dict(self.left_out),
            "bootstrap": self.bootstrap,
            "seed": self.seed,
            "scratch": None if self.scratch is None else self.scratch.to_json(),
            "n_scratch_runs": self.n_scratch_runs,
            "sources": [s.to_json() for s in self.sources],
            "warnings": list(self.warnings),
        }

    def warm_starts(self) -> dict[str, FitResult]:
        """Every fit by key, to warm-start the next report."""
        out: dict[str, FitResult] = {}
        if self.scratch is not None:
            out["scratch"] = self.scratch
        for s in self.sources:
            if s.hernandez is not None:
                out[f"hernandez/{s.source}"] = s.hernandez
            for size, f in s.barnett.items():
                if f is not None:
                    out[f"barnett/{s.source}/{size}"] = f
        return out

    def format_table(self) -> str:
        return format_table(self.to_json())


def warm_starts_from_json(report: Mapping[str, Any] | None) -> dict[str, dict[str, float]]:
    """The fitted parameters of a report's JSON (e.g. fits/latest.json), keyed as ``warm_starts``."""
    out: dict[str, dict[str, float]] = {}
    if not report:
        return out

    def params(fit_json: Mapping[str, Any] | None) -> dict[str, float] | None:
        if not fit_json:
            return None
        vals = {k: v.get("value") for k, v in fit_json.get("params", {}).items()}
        return vals if all(isinstance(v, (int, float)) for v in vals.values()) and vals else None

    if (p := params(report.get("scratch"))) is not None:
        out["scratch"] = p
    for s in report.get("sources", []):
        if (p := params(s.get("hernandez"))) is not None:
            out[f"hernandez/{s['source']}"] = p
        for size, f in (s.get("barnett") or {}).items():
            if (p := params(f)) is not None:
                out[f"barnett/{s['source']}/{size}"] = p
    return out


# ------------------------------------------------------------------ pure pieces
def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _columns(table: pa.Table) -> dict[str, Array]:
    cols: dict[str, Array] = {}
    for name in ("kind", "source", "size", "status", "job_id", "sweep"):
        cols[name] = np.array([("" if v is None else str(v)) for v in table.column(name).to_pylist()], dtype=object)
    for name in ("n_params", "data_tokens", "pretrain_tokens", "best_eval_loss"):
        vals = table.column(name).to_pylist()
        cols[name] = np.array([np.nan if v is None else float(v) for v in vals], dtype=float)
    return cols


def effective_data(scratch: Mapping[str, Any], n: Array, loss: Array) -> Array:
    """D_E = (B / (L - E - A/N^alpha))^(1/beta), NaN where L <= E + A/N^alpha.

    ``scratch`` holds chinchilla params as floats or as (S, 1) arrays (a bootstrap stack).
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        excess = loss - scratch["E"] - scratch["A"] * n ** (-scratch["alpha"])
        d_e = (scratch["B"] / excess) ** (1.0 / scratch["beta"])
    return np.where(excess > 0, d_e, np.nan)


def balance_data(scratch: Mapping[str, Any], n: Array) -> Array:
    """D_bal(N) = (B N^alpha / A)^(1/beta): where the scratch law's data and size terms are equal."""
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        return (scratch["B"] * n ** scratch["alpha"] / scratch["A"]) ** (1.0 / scratch["beta"])


def transfer_flags(scratch: Mapping[str, Any], n: Array, d_f: Array, loss: Array) -> tuple[Array, Array]:
    """(D_T, flag) per run under a scratch law; see the module docstring for the rule."""
    d_e = effective_data(scratch, n, loss)
    d_t = d_e - d_f
    shape = np.broadcast(d_t, d_f).shape
    flag = np.full(shape, "ok", dtype=object)
    high = np.broadcast_to(d_f > LOW_DATA_RATIO * balance_data(scratch, n), shape)
    flag[high] = "high_data"
    flag[np.broadcast_to(~(d_t > 0), shape)] = "no_transfer"
    flag[np.broadcast_to(~np.isfinite(d_e), shape)] = "beyond_plateau"
    return d_t, flag


def interpolate_d_e(scratch_d: Array, scratch_loss: Array, loss: float) -> float:
    """D at which the measured scratch curve (one N) reaches ``loss``: linear in log D vs log L.

    NaN when ``loss`` lies outside the measured losses (no extrapolation).
    """
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


def _estimate(fit: FitResult | None, name: str) -> Estimate | None:
    if fit is None:
        return None
    ci = None if fit.ci95 is None else fit.ci95[name]
    return Estimate(fit.params[name], ci)


def _percentile_ci(samples: Array) -> tuple[float, float] | None:
    good = samples[np.isfinite(samples)]
    if good.size < 2:
        return None
    tail = 100 * (1 - fitter.CI_LEVEL) / 2
    lo, hi = np.percentile(good, [tail, 100 - tail])
    return float(lo), float(hi)


def _warm(warm: WarmStarts | None, key: str) -> FitResult | Mapping[str, float] | None:
    return None if warm is None else warm.get(key)


# ------------------------------------------------------------------ the report
def transfer_report(
    table: pa.Table,
    *,
    bootstrap: int = 200,
    seed: int = 0,
    warm: WarmStarts | None = None,
) -> TransferReport:
    """Fit every law a sweep's summary table supports; see the module docstring."""
    c = _columns(table)
    n_rows = len(c["kind"])
    warnings: list[str] = []
    left_out: dict[str, int] = {}

    def leave(reason: str, mask: Array) -> None:
        if int(mask.sum()):
            left_out[reason] = left_out.get(reason, 0) + int(mask.sum())

    not_ok = c["status"] != "ok"
    for st in sorted(set(c["status"][not_ok])):
        leave(f"status={st or 'missing'}", c["status"] == st)
    no_loss = ~not_ok & ~(np.isfinite(c["best_eval_loss"]) & (c["best_eval_loss"] > 0))
    leave("no finite best_eval_loss", no_loss)
    ok = ~not_ok & ~no_loss
    leave("pretrain job (enters only through its fine-tunes)", ok & (c["kind"] == "pretrain"))
    unknown = ok & ~np.isin(c["kind"], ["pretrain", "finetune", "scratch"])
    leave("unknown kind", unknown)
    scratch_rows = ok & (c["kind"] == "scratch")
    ft_rows = ok & (c["kind"] == "finetune")
    sweep = next((s for s in c["sweep"] if s), None)

    # 1. the from-scratch law
    sn, sd, sl = c["n_params"][scratch_rows], c["data_tokens"][scratch_rows], c["best_eval_loss"][scratch_rows]
    scratch_law = get_law(SCRATCH_LAW)
    scratch_fit: FitResult | None = None
    need = scratch_law.n_params + 1
    if sn.size >= need and np.unique(sd).size >= 3:
        scratch_fit = fitter.fit(
            scratch_law, {"N": sn, "D": sd, "loss": sl}, seed=seed, warm_start=_warm(warm, "scratch")
        )
    else:
        warnings.append(
            f"scratch law not fitted: {sn.size} ok scratch runs with {np.unique(sd).size} distinct D; "
            f"needs >= {need} runs and >= 3 distinct D, so no D_T, D_E or multiplier"
        )

    # bootstrap stack of scratch laws, shared by every source's D_T bootstrap
    scratch_boot: dict[str, Array] | None = None
    if scratch_fit is not None and bootstrap > 0:
        logx, logy, _, _ = fitter.prepare(scratch_law, {"N": sn, "D": sd, "loss": sl})
        wb = fitter.resample_weights(logy.size, bootstrap, seed)
        thetas = fitter.bootstrap_thetas(scratch_law, np.array(scratch_fit.theta), logx, logy, wb)
        scratch_fit = fitter.with_intervals(scratch_fit, scratch_law, thetas)
        p = scratch_law.to_params(thetas)
        scratch_boot = {name: p[:, i : i + 1] for i, name in enumerate(scratch_law.params)}

    if scratch_fit is not None:
        warnings += [f"scratch law: {w}" for w in scratch_fit.warnings]

    sources = []
    for i, src in enumerate(sorted(set(c["source"][ft_rows]))):
        sources.append(
            _source_report(
                src, c, ft_rows & (c["source"] == src), (c["kind"] == "finetune") & (c["source"] == src),
                scratch_fit, scratch_boot, (sn, sd, sl), bootstrap, seed + 1 + i, warm,
            )
        )
    if not ft_rows.any():
        warnings.append("no ok fine-tune runs yet: no transfer estimates")
    return TransferReport(
        sweep=sweep,
        scratch=scratch_fit,
        sources=tuple(sources),
        n_rows=n_rows,
        n_used=int((scratch_rows | ft_rows).sum()),
        left_out=left_out,
        bootstrap=bootstrap,
        seed=seed,
        warnings=tuple(warnings),
        n_scratch_runs=int(sn.size),
        scratch_points={"N": sn.tolist(), "D": sd.tolist(), "loss": sl.tolist()},
    )


def _source_report(
    src: str,
    c: Mapping[str, Array],
    rows: Array,
    all_rows: Array,
    scratch_fit: FitResult | None,
    scratch_boot: dict[str, Array] | None,
    scratch_pts: tuple[Array, Array, Array],
    bootstrap: int,
    seed: int,
    warm: WarmStarts | None,
) -> SourceTransfer:
    warnings: list[str] = []
    # final pre-training checkpoint per size: the largest p among *all* its fine-tunes, so a
    # failed final-checkpoint fine-tune never silently promotes an earlier checkpoint.
    final_p: dict[str, float] = {}
    for size in set(c["size"][all_rows]):
        final_p[size] = float(np.max(c["pretrain_tokens"][all_rows & (c["size"] == size)]))
    final = rows & np.array([c["pretrain_tokens"][j] == final_p.get(c["size"][j], -1) for j in range(len(rows))])
    idx = np.flatnonzero(final)
    n, d_f, loss = c["n_params"][idx], c["data_tokens"][idx], c["best_eval_loss"][idx]

    # 2-3. D_E, D_T, flags
    runs: list[RunTransfer] = []
    sn, sd, sl = scratch_pts
    if scratch_fit is not None:
        d_t, flags = transfer_flags(scratch_fit.params, n, d_f, loss)
    else:
        d_t, flags = np.full(idx.size, np.nan), np.full(idx.size, "no_scratch_law", dtype=object)
    for j, r in enumerate(idx):
        at_n = sn == n[j]
        d_i = interpolate_d_e(sd[at_n], sl[at_n], float(loss[j]))
        d_e = d_t[j] + d_f[j]
        runs.append(
            RunTransfer(
                job_id=str(c["job_id"][r]), size=str(c["size"][r]), n_params=int(n[j]), d_f=float(d_f[j]),
                pretrain_tokens=int(c["pretrain_tokens"][r]), loss=float(loss[j]), d_e=float(d_e),
                d_e_interp=d_i, d_t=float(d_t[j]), multiplier=float(d_e / d_f[j]), flag=str(flags[j]),
            )
        )
    counts = {f: int((flags == f).sum()) for f in sorted(set(flags)) if f != "ok"}
    if counts:
        warnings.append(
            "left out of the D_T law: " + ", ".join(f"{v} {k}" for k, v in counts.items()) + " (see flag rule)"
        )
    far = [r for r in runs if math.isfinite(r.d_e) and sd.size and r.d_e > EXTRAPOLATION_FACTOR * sd.max()]
    if far:
        warnings.append(f"{len(far)} run(s) have D_E > {EXTRAPOLATION_FACTOR:g}x the largest scratch D: extrapolated")
    disagree = [
        r for r in runs
        if math.isfinite(r.d_e) and math.isfinite(r.d_e_interp)
        and abs(math.log(r.d_e / r.d_e_interp)) > math.log(INTERP_DISAGREEMENT)
    ]
    if disagree:
        warnings.append(
            f"{len(disagree)} run(s): law-inverted D_E and interpolated D_E differ by > {INTERP_DISAGREEMENT:g}x"
        )

    # 4. the D_T law, with a bootstrap that propagates the scratch law's uncertainty
    good = flags == "ok"
    dt_law = get_law(DT_LAW)
    hern: FitResult | None = None
    multiplier: Estimate | None = None
    mult_at: dict[str, Any] | None = None
    n_dt = int(good.sum())
    if n_dt >= dt_law.n_params + 1 and np.unique(n[good]).size >= 2 and np.unique(d_f[good]).size >= 2:
        hern = fitter.fit(
            dt_law, {"N": n[good], "D_F": d_f[good], "D_T": d_t[good]},
            seed=seed, warm_start=_warm(warm, f"hernandez/{src}"),
        )
        n_star, f_star = float(n[good].max()), float(d_f[good][n[good] == n[good].max()].min())
        mult_at = {"D_F": f_star, "N": n_star, "basis": "law"}
        m_boot = None
        if scratch_boot is not None:
            thetas = _dt_bootstrap(hern, scratch_boot, n, d_f, loss, bootstrap, seed)
            hern = fitter.with_intervals(hern, dt_law, thetas)
            p = dt_law.to_params(thetas)
            m_boot = 1.0 + p[:, 0] * f_star ** (p[:, 1] - 1.0) * n_star ** p[:, 2]
        h = hern.params
        m = 1.0 + h["k"] * f_star ** (h["alpha"] - 1.0) * n_star ** h["beta"]
        multiplier = Estimate(m, None if m_boot is None else _percentile_ci(m_boot))
    else:
        if scratch_fit is not None:
            warnings.append(
                f"D_T law not fitted: {n_dt} low-data runs with {np.unique(n[good]).size} distinct N and "
                f"{np.unique(d_f[good]).size} distinct D_F; needs >= {dt_law.n_params + 1} runs, >= 2 of each"
            )
        if n_dt:
            n_star = float(n[good].max())
            j = np.flatnonzero(good & (n == n_star))
            j = j[np.argmin(d_f[j])]
            mult_at = {"D_F": float(d_f[j]), "N": n_star, "basis": "measured"}
            multiplier = Estimate(float((d_t[j] + d_f[j]) / d_f[j]), None)

    # 5. the transfer gap per size
    gap_law = get_law(GAP_LAW)
    barnett: dict[str, FitResult | None] = {}
    by_size = sorted(set(c["size"][rows]), key=lambda s: float(np.max(c["n_params"][rows & (c["size"] == s)])))
    for size in by_size:
        sel = rows & (c["size"] == size) & (c["pretrain_tokens"] > 0)
        p, f, l = c["pretrain_tokens"][sel], c["data_tokens"][sel], c["best_eval_loss"][sel]
        if p.size >= gap_law.n_params + 1 and np.unique(p).size >= 3 and np.unique(f).size >= 3:
            barnett[size] = fitter.fit(
                gap_law, {"p": p, "f": f, "loss": l}, bootstrap=bootstrap, seed=seed,
                warm_start=_warm(warm, f"barnett/{src}/{size}"),
            )
        else:
            barnett[size] = None
            warnings.append(
                f"gap law not fitted for size {size}: {p.size} runs, {np.unique(p).size} distinct p, "
                f"{np.unique(f).size} distinct f; needs >= {gap_law.n_params + 1} runs, >= 3 of each"
            )
    gap_size = next((s for s in reversed(by_size) if barnett[s] is not None), None)
    if hern is not None:
        warnings += [f"D_T law: {w}" for w in hern.warnings]
    if gap_size is not None:
        warnings += [f"gap law ({gap_size}): {w}" for w in barnett[gap_size].warnings]
    return SourceTransfer(
        source=src,
        n_runs=int(rows.sum()),
        n_dt_runs=n_dt if hern is not None else 0,
        G=_estimate(barnett[gap_size], "G") if gap_size else None,
        gap_size=gap_size,
        k=_estimate(hern, "k"),
        alpha=_estimate(hern, "alpha"),
        beta=_estimate(hern, "beta"),
        multiplier=multiplier,
        multiplier_at=mult_at,
        hernandez=hern,
        barnett=barnett,
        runs=tuple(runs),
        warnings=tuple(warnings),
    )


def _dt_bootstrap(
    hern: FitResult,
    scratch_boot: Mapping[str, Array],
    n: Array,
    d_f: Array,
    loss: Array,
    bootstrap: int,
    seed: int,
) -> Array:
    """Hernandez refits, one per scratch-law resample, on resampled fine-tunes with re-derived D_T.

    Row b pairs scratch resample b with fine-tune resample b; a run whose flag under that
    scratch law is not ``ok`` gets weight 0 in that resample. Resamples left with too little
    data to identify the law give NaN.
    """
    law = get_law(DT_LAW)
    d_t, flags = transfer_flags(scratch_boot, n[None, :], d_f[None, :], loss[None, :])
    valid = flags == "ok"
    w = fitter.resample_weights(n.size, bootstrap, seed) * valid
    logy = np.where(valid, np.log(np.where(valid, d_t, 1.0)), 0.0)
    logx = {"N": np.log(n), "D_F": np.log(d_f)}
    thetas = fitter.bootstrap_thetas(law, np.array(hern.theta), logx, logy, w)
    used = w > 0
    distinct_n = np.array([np.unique(n[u]).size for u in used])
    distinct_f = np.array([np.unique(d_f[u]).size for u in used])
    thin = (used.sum(axis=1) < law.n_params + 1) | (distinct_n < 2) | (distinct_f < 2)
    thetas[thin] = np.nan
    return thetas


# ------------------------------------------------------------------ the table
def _fmt(e: Mapping[str, Any] | None) -> str:
    if not e or e.get("value") is None:
        return "-"
    s = f"{e['value']:.3g}"
    if e.get("ci95") and None not in e["ci95"]:
        s += f" [{e['ci95'][0]:.3g}, {e['ci95'][1]:.3g}]"
    return s


def format_table(report: Mapping[str, Any]) -> str:
    """The gap table of a report's JSON, readable in a terminal."""
    lines = []
    left = ", ".join(f"{v} {k}" for k, v in report.get("left_out", {}).items()) or "none"
    lines.append(
        f"Transfer report: sweep {report.get('sweep') or '?'}; {report['n_used']} of {report['n_rows']} "
        f"summary rows in fits (left out: {left}); bootstrap {report.get('bootstrap', 0)}"
    )
    sc = report.get("scratch")
    if sc:
        ps = ", ".join(f"{k}={_fmt(v)}" for k, v in sc["params"].items())
        lines.append(f"From scratch ({sc['law']}, {sc['n_points']} runs): {ps}")
    else:
        lines.append("From scratch: not fitted")
    header = ["source", "runs", "G [95% CI]", "k [95% CI]", "alpha [95% CI]", "beta [95% CI]", "multiplier @ (D_F, N)"]
    rows = [header]
    for s in report.get("sources", []):
        at = s.get("multiplier_at")
        mult = _fmt(s.get("multiplier"))
        if at and mult != "-":
            mult += f"x @ ({at['D_F']:.3g}, {at['N']:.3g}){' measured' if at['basis'] == 'measured' else ''}"
        g = _fmt(s.get("G")) + (f" ({s['gap_size']})" if s.get("gap_size") else "")
        rows.append([s["source"], f"{s['n_runs']}/{s['n_dt_runs']}", g, _fmt(s.get("k")), _fmt(s.get("alpha")),
                     _fmt(s.get("beta")), mult])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
    lines.append("runs = ok fine-tunes / runs behind the D_T law; G from the largest size with a gap fit (in parentheses)")
    notes = [f"- {w}" for w in report.get("warnings", [])]
    for s in report.get("sources", []):
        notes += [f"- {s['source']}: {w}" for w in s.get("warnings", [])]
    if notes:
        lines.append("Warnings:")
        lines += notes
    return "\n".join(lines)
