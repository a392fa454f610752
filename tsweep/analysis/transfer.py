"""The transfer report: from a sweep's summary table to plateaus, D_T laws, gaps and their intervals.

Inputs: the summary table of ``tsweep.core.store`` (one row per finished job). Only rows with
``status == "ok"`` and a finite ``best_eval_loss`` enter any fit; the report counts the rest by
reason. A run's ``best_eval_loss`` is its best held-out loss for its unique-data budget
(Hernandez et al. 2021, arXiv 2102.01293, sec. 2): *the* loss of that run.

What is fitted (each step's science in its module):

1. **From scratch, per size** (``analysis/scratch.py``, Hernandez et al. 2021): the plateau
   L(N, inf) of each size's curve L(D) = L_inf + B D^-b, D(N) (within 1% of the plateau), and
   the low-data limit 0.1 D(N). The old rule (D_F below the D at which the global law's data
   and size terms balance) is gone: it hung on the split between E and A N^-alpha, which three
   small sizes cannot determine.
2. **From scratch, globally**: L(N, D) = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022,
   arXiv 2203.15556, approach 3), reported only as far as the design identifies it (three sizes
   spanning 4x do not pin E; the report then says so instead of printing E on its bound).
3. **Effective data transferred** (Hernandez et al. 2021, eq. 1.1): for each fine-tune from the
   final pre-training checkpoint of its (source, size), D_E is read off the *measured* scratch
   curve at the same N (interpolated; extrapolated with the per-size law only beyond the
   measured range, and flagged), D_T = D_E - D_F, multiplier D_E / D_F. The D_T law
   D_T = k D_F^alpha N^beta is fitted per source on its low-data runs with D_T > 0. Headline
   multiplier: the law's at the smallest D_F and largest N among those runs (the low-data,
   large-model corner where transfer matters most); with no law, that run's measured one.
4. **Transfer gap** (``analysis/gap.py``, Barnett 2024, arXiv 2408.16947): the gap law fitted per
   size jointly over sources (shared beta and E), G and G f_ref^-beta per source, and the
   difference between every pair of sources.

**Noise and intervals.** The bootstrap unit matters (Besiroglu et al. 2024, arXiv 2404.10102,
resample the independent unit). tsweep's rows are not exchangeable: every fine-tune of one
(source, size) starts from one pre-training run, and there is one such lineage per (source,
size), so a per-size gap fit has a single lineage and lineage resampling has nothing to
resample (the D_T law has 3-4 lineages per source: too few for a bootstrap over them). Row
resampling is worse than either: it treats fine-tunes of one lineage as independent and, on
designs of 3 x 3 runs, drops whole p levels from a resample, which makes the law unidentified
in that resample for reasons of resampling, not of data. tsweep therefore uses a *parametric
bootstrap conditional on the pre-training runs*: every loss of the sweep is perturbed in log
space by independent Gaussian noise of the sweep's own measured scale, and every number (the
plateaus, D(N), each D_E and D_T, the D_T law, the multiplier, every G, G in loss units, every
difference) is recomputed from the same perturbed table, so the dependence between them is
carried into their intervals. Given its checkpoint, a fine-tune is its own training run on its
own data order, so independent noise per run is the right model conditional on the lineage;
what it cannot include is seed-to-seed variation of pre-training itself, which one run per
(source, size) cannot measure (Hernandez et al. and Barnett likewise fit one run per model). The
noise scale sigma is the residual standard deviation of log-loss pooled over the per-size
scratch curves and the per-size joint gap fits, sum(r^2) / sum(n - P) (a misfit law inflates it,
which widens intervals rather than narrowing them); each resample draws its own scale,
sigma sqrt(dof / chi2_dof), so a sweep with few residual degrees of freedom carries the
uncertainty of its noise estimate into its intervals (the parametric analogue of a t interval). The perturbation of a run is drawn from a
generator seeded by the report's seed and the run's job id, so a run keeps its draws as other
runs finish and a live report converges to the cold refit of the same rows.

Every reported number passes the identification rule of ``analysis/identify.py`` and is either
a value with its interval or null with the reason. Not enough data for a fit gives null and the
reason, never a placeholder number.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from tsweep.analysis import gap, scratch
from tsweep.analysis.fitter import FitResult, Problem, at_bound, bound_shares
from tsweep.analysis.identify import MIN_CONVERGED, Estimate, judge, missing, percentile_interval
from tsweep.analysis.laws import get_law
from tsweep.analysis.report import (
    GapFit, RunTransfer, ScratchCurve, SourceTransfer, TransferReport, gap_key,
)

Array = np.ndarray

SCRATCH_LAW = "chinchilla"
DT_LAW = "hernandez"
CURVE_LAW = "plateau"

WarmStarts = Mapping[str, Any]


# ------------------------------------------------------------------ the table
@dataclass(frozen=True)
class _Table:
    """The ok scratch and fine-tune rows, sorted by job id, and the bookkeeping of the rest."""

    kind: Array
    source: Array
    size: Array
    job_id: Array
    n: Array
    d: Array
    p: Array
    loss: Array
    final_p: dict[tuple[str, str], float]  # (source, size) -> largest p among all its fine-tunes
    n_rows: int
    left_out: dict[str, int]
    sweep: str | None

    @property
    def logloss(self) -> Array:
        return np.log(self.loss)

    def n_of(self, size: str) -> int:
        return int(np.max(self.n[self.size == size]))


def _strings(table: pa.Table, name: str) -> Array:
    return np.array([("" if v is None else str(v)) for v in table.column(name).to_pylist()], dtype=object)


def _floats(table: pa.Table, name: str) -> Array:
    return np.array([np.nan if v is None else float(v) for v in table.column(name).to_pylist()], dtype=float)


def read_table(table: pa.Table) -> _Table:
    c = {k: _strings(table, k) for k in ("kind", "source", "size", "status", "job_id", "sweep")}
    c.update({k: _floats(table, k) for k in ("n_params", "data_tokens", "pretrain_tokens", "best_eval_loss")})
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
    leave("unknown kind", ok & ~np.isin(c["kind"], ["pretrain", "finetune", "scratch"]))
    used = ok & np.isin(c["kind"], ["finetune", "scratch"])
    # The final checkpoint of a lineage is the largest p among *all* its fine-tunes, so a failed
    # final-checkpoint fine-tune never silently promotes an earlier checkpoint.
    ft = c["kind"] == "finetune"
    final_p: dict[tuple[str, str], float] = {}
    for s, z, p in zip(c["source"][ft], c["size"][ft], c["pretrain_tokens"][ft]):
        final_p[(s, z)] = max(final_p.get((s, z), -math.inf), float(p))
    order = np.flatnonzero(used)[np.argsort(c["job_id"][used], kind="stable")]
    return _Table(
        kind=c["kind"][order], source=c["source"][order], size=c["size"][order], job_id=c["job_id"][order],
        n=c["n_params"][order], d=c["data_tokens"][order], p=c["pretrain_tokens"][order],
        loss=c["best_eval_loss"][order], final_p=final_p, n_rows=len(c["kind"]), left_out=left_out,
        sweep=next((s for s in c["sweep"] if s), None),
    )


def row_noise(job_ids: Array, n_boot: int, seed: int) -> Array:
    """(n_boot, rows) standard normal draws, each run's from a generator seeded by (seed, job id)."""
    out = np.empty((n_boot, len(job_ids)))
    for j, job in enumerate(job_ids):
        key = int.from_bytes(hashlib.blake2b(str(job).encode(), digest_size=8).digest(), "little")
        out[:, j] = np.random.default_rng([seed, key]).standard_normal(n_boot)
    return out


def noise_scales(sigma: float, dof: int, n_boot: int, seed: int) -> Array:
    """One noise scale per resample: sigma * sqrt(dof / chi2_dof), the spread of the true scale
    given its estimate from ``dof`` residual degrees of freedom (as a t interval widens a normal
    one). With few degrees of freedom a resample may be noisier than the residuals suggest; with
    many this is sigma itself."""
    chi2 = np.random.default_rng([seed, dof]).chisquare(dof, n_boot)
    return sigma * np.sqrt(dof / chi2)


def pooled_noise(problems: list[Problem]) -> tuple[float | None, int]:
    """(sigma, degrees of freedom): residual scale of log-loss pooled over ``problems``."""
    ss, dof = 0.0, 0
    for prob in problems:
        if prob.n > prob.law.n_params:
            ss += float(np.sum(prob.residuals() ** 2))
            dof += prob.n - prob.law.n_params
    return (math.sqrt(ss / dof), dof) if dof else (None, 0)


def _warm(warm: WarmStarts | None, key: str) -> Array | None:
    if warm is None or key not in warm:
        return None
    return np.asarray(warm[key], dtype=float)


# ------------------------------------------------------------------ the report
def transfer_report(
    table: pa.Table,
    *,
    bootstrap: int = 200,
    seed: int = 0,
    warm: WarmStarts | TransferReport | None = None,
) -> TransferReport:
    """Fit every law a sweep's summary table supports; see the module docstring."""
    if isinstance(warm, TransferReport):
        warm = warm.warm_starts()
    t = read_table(table)
    warnings: list[str] = []
    scr = t.kind == "scratch"
    sizes = sorted(set(t.size), key=t.n_of)

    # 1. point fits: per-size scratch curves, the global scratch law, per-size joint gap laws
    curve_law = get_law(CURVE_LAW)
    curves: dict[str, tuple[Array, Problem | None]] = {}
    for z in sorted(set(t.size[scr]), key=t.n_of):
        idx = np.flatnonzero(scr & (t.size == z))
        fits = np.unique(t.d[idx]).size >= curve_law.spans["L_inf"][1]
        prob = Problem(curve_law, curve_law.log_inputs({"D": t.d[idx]}), t.logloss[idx], _warm(warm, f"curve/{z}"))
        curves[z] = (idx, prob.solve() if fits else None)

    sc_law = get_law(SCRATCH_LAW)
    sc_idx = np.flatnonzero(scr)
    sc_prob = None
    if sc_idx.size > sc_law.n_params and np.unique(t.d[sc_idx]).size >= 3:
        sc_prob = Problem(sc_law, sc_law.log_inputs({"N": t.n[sc_idx], "D": t.d[sc_idx]}), t.logloss[sc_idx],
                          _warm(warm, "scratch")).solve()
    else:
        warnings.append(f"global scratch law not fitted: {sc_idx.size} ok scratch runs with "
                        f"{np.unique(t.d[sc_idx]).size} distinct D; needs > {sc_law.n_params} runs and >= 3 distinct D")

    ft = (t.kind == "finetune") & (t.p > 0)
    sources = sorted(set(t.source[t.kind == "finetune"]))
    gap_plans: dict[str, tuple[Array, Problem | None, tuple[str, ...], dict[str, str]]] = {}
    for z in sizes:
        idx = np.flatnonzero(ft & (t.size == z))
        if idx.size == 0:
            continue
        prob, in_fit, reasons = gap.plan(t.p[idx], t.d[idx], t.source[idx], t.logloss[idx],
                                         lambda srcs, z=z: _warm(warm, gap_key(z, srcs)))
        if prob is not None:
            keep = np.isin(t.source[idx], in_fit)
            idx, prob = idx[keep], prob.solve()
        gap_plans[z] = (idx, prob, in_fit, reasons)

    # 2. the sweep's noise, and the perturbed tables of the parametric bootstrap
    sigma, dof = pooled_noise([p for _, p in curves.values() if p is not None]
                              + [p for _, p, _, _ in gap_plans.values() if p is not None])
    ystar = None
    if bootstrap > 0 and sigma is not None:
        ystar = t.logloss[None, :] + noise_scales(sigma, dof, bootstrap, seed)[:, None] * row_noise(
            t.job_id, bootstrap, seed)
    elif bootstrap > 0:
        warnings.append("no intervals: the sweep's noise is not measurable yet (no fit has more runs than "
                        "parameters)")

    def boot(prob: Problem | None, idx: Array) -> FitResult | None:
        if prob is None:
            return None
        if ystar is not None:
            prob.bootstrap(ystar[:, idx])
        return prob.result()

    # 3. scratch curves, global law, gaps, through the identification rule
    curve_reports = [_curve(t, z, idx, prob, boot(prob, idx), ystar is not None) for z, (idx, prob) in curves.items()]
    scratch_fit = boot(sc_prob, sc_idx)
    if scratch_fit is not None:
        warnings += [f"global scratch law: {w}" for w in scratch_fit.warnings]

    gap_reports: list[GapFit] = []
    for z, (idx, prob, in_fit, reasons) in gap_plans.items():
        fit = boot(prob, idx)
        here = sorted(set(t.source[ft & (t.size == z)]))
        f_ref = float(np.max(t.d[ft & (t.size == z)]))
        notes = [] if fit is None else list(fit.warnings)
        gap_reports.append(gap.gap_fit(z, t.n_of(z), here, f_ref, prob, fit, in_fit, reasons, notes))
    comps = gap.comparisons(gap_reports, sources, {z: (p.boot if p else None) for z, (_, p, _, _) in gap_plans.items()})

    # 4. D_E, D_T and the D_T law per source
    by_size = {c.size: c for c in curve_reports}
    source_reports = [
        _source(t, s, gap_reports, by_size, curves, ystar, _warm(warm, f"hernandez/{s}")) for s in sources
    ]
    if not sources:
        warnings.append("no ok fine-tune runs yet: no transfer estimates")
    return TransferReport(
        sweep=t.sweep, n_rows=t.n_rows, n_used=int(t.kind.size), left_out=t.left_out, bootstrap=bootstrap,
        seed=seed, noise=sigma, noise_dof=dof, scratch=scratch_fit, curves=tuple(curve_reports),
        gaps=tuple(gap_reports), sources=tuple(source_reports), comparisons=tuple(comps), warnings=tuple(warnings),
    )


def _curve(t: _Table, size: str, idx: Array, prob: Problem | None, fit: FitResult | None, booted: bool) -> ScratchCurve:
    d, loss = t.d[idx], t.loss[idx]
    order = np.argsort(d)
    notes = [f"scratch loss rises with D from {a:.3g} to {b:.3g} tokens (pooled by isotonic regression for D_E)"
             for a, b in scratch.rises(d, loss)]
    if fit is None:
        why = missing(f"not identified: {np.unique(d).size} distinct scratch D at {size}, needs >= 4")
        return ScratchCurve(size, t.n_of(size), tuple(d[order].tolist()), tuple(loss[order].tolist()), why, why,
                            None, "none", None, tuple(notes))
    theta = np.asarray(fit.theta)
    law = prob.law
    samples = None if prob.boot is None else scratch.data_limit(prob.boot)
    any_bound = 0.0 if prob.boot is None else float(np.mean(at_bound(law, prob.boot).any(axis=1)))
    d_n = judge(float(scratch.data_limit(theta)), samples, "scale", on_bound=bool(at_bound(law, theta).any()),
                bound_share=(any_bound, 0.0))
    limit, basis = None, "none"
    if d_n.identified:
        limit, basis = scratch.LOW_DATA_FRACTION * d_n.value, "D(N)"
    elif booted and samples is not None and np.isfinite(samples).mean() >= MIN_CONVERGED:
        ci = percentile_interval(samples)
        if ci is not None and ci[0] > 0:
            limit, basis = scratch.LOW_DATA_FRACTION * ci[0], "lower end of D(N)'s interval"
    notes += list(fit.warnings)
    return ScratchCurve(size, t.n_of(size), tuple(d[order].tolist()), tuple(loss[order].tolist()),
                        fit.estimates["L_inf"], d_n, limit, basis, fit, tuple(notes))


def _source(
    t: _Table,
    src: str,
    gaps: list[GapFit],
    curves: Mapping[str, ScratchCurve],
    problems: Mapping[str, tuple[Array, Problem | None]],
    ystar: Array | None,
    warm: Array | None,
) -> SourceTransfer:
    notes: list[str] = []
    mine = (t.kind == "finetune") & (t.source == src)
    final = mine & np.array([t.p[j] == t.final_p.get((src, t.size[j]), -1.0) for j in range(t.kind.size)])
    idx = np.flatnonzero(final)
    d_e = np.full(idx.size, np.nan)
    flags = np.full(idx.size, "no_scratch", dtype=object)
    extrap = np.zeros(idx.size, dtype=bool)
    d_e_boot = None if ystar is None else np.full((ystar.shape[0], idx.size), np.nan)
    for z in sorted(set(t.size[idx])):
        at = t.size[idx] == z
        sc_idx, prob = problems.get(z, (np.array([], dtype=int), None))
        if sc_idx.size < 2:
            continue
        curve = curves[z]
        plateau = None if prob is None else prob.opt.theta
        run_idx = idx[at]
        de, outcome = scratch.effective_data(t.d[sc_idx], t.logloss[sc_idx], t.logloss[run_idx], plateau)
        d_e[at], extrap[at] = de, outcome == scratch.EXTRAPOLATED
        d_f = t.d[run_idx]
        flag = np.where(outcome == scratch.NO_LAW, "out_of_range",
                        np.where(outcome == scratch.BEYOND_PLATEAU, "beyond_plateau", "ok")).astype(object)
        live = flag == "ok"
        if curve.low_data_max is None:
            flag[live] = "regime_unknown"
        else:
            flag[live & (d_f > curve.low_data_max)] = "high_data"
        flag[(flag == "ok") & ~(de - d_f > 0)] = "no_transfer"
        flags[at] = flag
        if ystar is not None:
            pb = None if prob is None or prob.boot is None else prob.boot
            d_e_boot[:, at] = scratch.effective_data(t.d[sc_idx], ystar[:, sc_idx], ystar[:, run_idx], pb)[0]
    n, d_f = t.n[idx], t.d[idx]
    d_t = d_e - d_f
    runs = tuple(
        RunTransfer(job_id=str(t.job_id[r]), size=str(t.size[r]), n_params=int(n[j]), d_f=float(d_f[j]),
                    pretrain_tokens=int(t.p[r]), loss=float(t.loss[r]), d_e=float(d_e[j]), d_t=float(d_t[j]),
                    multiplier=float(d_e[j] / d_f[j]), flag=str(flags[j]), extrapolated=bool(extrap[j]))
        for j, r in enumerate(idx)
    )
    counts = {f: int((flags == f).sum()) for f in sorted(set(flags)) if f != "ok"}
    if counts:
        notes.append("left out of the D_T law: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    good = flags == "ok"
    if (extrap & good).any():
        notes.append(f"{int((extrap & good).sum())} run(s) in the D_T law have D_E extrapolated beyond the measured "
                     "scratch curve by its per-size law")

    hern, multiplier, mult_at = _dt_law(n, d_f, d_t, good, d_e_boot, warm, notes)
    head = gap.headline(gaps, src)
    if head is None:
        G = G_loss = missing("not identified: no fine-tunes from a pre-training checkpoint (p > 0)")
    else:
        G, G_loss = head.G[src], head.G_loss[src]
        notes += [f"gap law ({head.size}): {w}" for w in head.warnings]
    e = (lambda name: hern.estimates[name]) if hern is not None else (
        lambda name: missing("not identified: no D_T law (see warnings)"))
    return SourceTransfer(
        source=src, n_runs=int(mine.sum()), n_dt_runs=int(good.sum()) if hern is not None else 0, G=G, G_loss=G_loss,
        gap_size=None if head is None else head.size, f_ref=None if head is None else head.f_ref,
        k=e("k"), alpha=e("alpha"), beta=e("beta"), multiplier=multiplier, multiplier_at=mult_at, hernandez=hern,
        runs=runs, warnings=tuple(notes),
    )


def _dt_law(
    n: Array, d_f: Array, d_t: Array, good: Array, d_e_boot: Array | None, warm: Array | None, notes: list[str]
) -> tuple[FitResult | None, Estimate, dict[str, Any] | None]:
    """The D_T law on the ``good`` runs, its bootstrap on re-derived D_T, and the headline multiplier."""
    law = get_law(DT_LAW)
    if not good.any():
        return None, missing("not identified: no low-data run with D_T > 0"), None
    n_star = float(n[good].max())
    j = np.flatnonzero(good & (n == n_star))
    j = int(j[np.argmin(d_f[j])])
    f_star = float(d_f[j])
    n_good, nn, nf = int(good.sum()), np.unique(n[good]).size, np.unique(d_f[good]).size
    if n_good <= law.n_params or nn < 2 or nf < 2:
        notes.append(f"D_T law not fitted: {n_good} low-data runs with D_T > 0, {nn} distinct N, {nf} distinct D_F; "
                     f"needs > {law.n_params} runs and >= 2 of each")
        samples = None if d_e_boot is None else d_e_boot[:, j] / f_star
        m = judge(float((d_t[j] + f_star) / f_star), samples, "scale")
        return None, m, {"D_F": f_star, "N": n_star, "basis": "measured"}
    prob = Problem(law, law.log_inputs({"N": n[good], "D_F": d_f[good]}), np.log(d_t[good]), warm).solve()
    if d_e_boot is not None:
        dt_b = d_e_boot[:, good] - d_f[good][None, :]
        valid = np.isfinite(dt_b) & (dt_b > 0)
        thetas = prob.bootstrap(np.log(np.where(valid, dt_b, 1.0)), valid.astype(float))
        used_n = [np.unique(n[good][v]).size for v in valid]
        used_f = [np.unique(d_f[good][v]).size for v in valid]
        thin = (valid.sum(axis=1) <= law.n_params) | (np.array(used_n) < 2) | (np.array(used_f) < 2)
        thetas[thin] = np.nan  # too few runs left in that resample to fit the law: a failed resample
    fit = prob.result([])
    theta = np.asarray(fit.theta)

    def mult(th: Array) -> Array:
        return 1.0 + np.exp(th[..., 0] + (th[..., 1] - 1.0) * np.log(f_star) + th[..., 2] * np.log(n_star))

    shares = [0.0, 0.0] if prob.boot is None else [max(s) for s in bound_shares(law, prob.boot)]
    m = judge(float(mult(theta)), None if prob.boot is None else mult(prob.boot), "scale",
              on_bound=bool(at_bound(law, theta).any()), bound_share=(max(shares), 0.0))
    notes += [f"D_T law: {w}" for w in fit.warnings]
    return fit, m, {"D_F": f_star, "N": n_star, "basis": "law"}
