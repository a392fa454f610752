"""The noise of a point, measured from replicate runs instead of inferred from a fit's residuals.

A fine-tune's log loss is y = mu(cell) + b(checkpoint) + e(run): ``b`` an offset shared by every
fine-tune of one annealed checkpoint ("between", per-checkpoint noise) and ``e`` the run's own
noise ("within", run-to-run: data order). The residuals of the joint gap fit underestimate both
(each source's p-curve absorbs the checkpoint offsets), so a sweep's ``replicates:`` re-runs some
cells with other seeds, and :func:`replicate_noise` reads the two scales off their differences:

- Same checkpoint (one cell, one lineage, several seeds): the runs differ by ``e`` alone, so
  var(y1 - y2) = 2 within^2. Pooled over groups: within^2 = sum of squared deviations from each
  group's mean / sum of (runs - 1), with that many degrees of freedom (one per pair); its 95%
  interval is the chi-square one (exact for normal noise).
- Across checkpoints: a replicate pre-training run's checkpoint at p has its own offset, shared
  by its fine-tunes at every f. So the unit is one (source, size, p): a table of cell means M[f, k]
  over the cells f that every lineage k of it has (C cells, K lineages). With one run a cell,
  y1 - y2 at one f has var 2 (within^2 + between^2), but the differences at several f of one p
  share their offsets, so they are not independent pairs. A two-way analysis of variance without
  replication separates them: the lineages' spread, C sum_k (mean_k M - mean M)^2 on K - 1
  degrees of freedom, has mean square C between^2 + h within^2 (h = 1 with one run a cell; the
  mean of 1/runs otherwise), and the interaction, on (C - 1)(K - 1) degrees of freedom, has h
  within^2: run-to-run noise that the pre-training replicate measures on its own, pooled into
  within. Pooled over units, between^2 = (MS_lineages - h within^2) / C (C, h averaged over units
  by degrees of freedom), clamped at 0 (then with a note: the checkpoints differ no more than
  their runs do), its 95% interval the modified large-sample one for a difference of two
  independent mean squares (Ting, Burdick, Graybill, Jeyaratnam and Lu 1990, J. Stat. Comput.
  Simul. 35; Burdick and Graybill 1992, "Confidence Intervals on Variance Components", sec. 3.3),
  built on chi-square and F quantiles, which keeps near 95% coverage also where between is small
  against within. Its ``df`` is the lineages' degrees of freedom (a unit of K lineages gives
  K - 1, however many f it has).
- Noise that changes with f: sigma(f) = sigma0 (f / f0)^gamma, fitted by maximum likelihood to
  the same-checkpoint groups (each group's sum of squares is sigma(f)^2 chi-square with its
  degrees of freedom: a gamma regression of the variance with a log link), f0 the geometric mean
  of their f weighted by degrees of freedom, the standard error of gamma from the Fisher
  information (2 df per group on (log sigma0, gamma) times (1, log f/f0)).

Only fine-tunes with status ``ok`` count (what the gap fits use); pre-training rows compare whole
runs of different seeds, not a fine-tune's noise. A table without the replicate columns (a
version-1 store) has seed 0 and every run in lineage 0: no pairs, and the answer is None.

Pure: a pyarrow table in, a frozen dataclass out; no store, no Ray.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from scipy import stats

__all__ = ["FSlope", "NoiseProfile", "NoiseScale", "ReplicateNoise", "replicate_noise"]

# Two-sided 95% intervals, as every interval tsweep prints.
LEVEL = 0.95
_TAIL = (1 - LEVEL) / 2


@dataclass(frozen=True)
class NoiseScale:
    """A standard deviation in log loss with its 95% interval and degrees of freedom."""

    sd: float
    ci95: tuple[float, float]
    df: int  # one per pair of runs (a group of n runs gives n - 1)


@dataclass(frozen=True)
class FSlope:
    """How the run-to-run noise changes with f: sigma(f) = sigma0 (f / f0)^gamma."""

    gamma: float
    gamma_se: float
    sigma0: float
    f0: float
    n_f: int  # distinct f values behind it


@dataclass(frozen=True)
class NoiseProfile:
    """The noise of a run in log loss as a function of its target tokens f (a scratch run's D).

    The run's own term: within(f) = sd0 (f / f0)^gamma, held at its ends outside [f_lo, f_hi], the
    range it was measured on (a trend read off fine-tunes of 1k-16k tokens says nothing of a 256k
    scratch run), and at least ``floor`` (the replicates' within, where measured). A whole run (a
    scratch run: its own initialisation and data order) is at least ``whole_floor``, what the
    replicates measure for a run from another pre-training seed, sqrt(within^2 + between^2): the
    residuals' within already carries whatever the laws do not follow, so it is not added to.

    The residuals that measure it pin it only so well (the standard errors of log sd0 and gamma):
    :meth:`draws` gives each bootstrap resample a noise drawn from that uncertainty, so a plateau
    fitted on a handful of scratch runs is not read at a noise the data might have understated (a
    simulated world with noise 2.5x larger at 16k: the noise measured at 16k scattered by 17%
    around its truth over 30 draws, and the plateau fitted at the measured noise alone covered its
    truth in 86% of 80 draws)."""

    sd0: float
    gamma: float = 0.0
    f0: float = 1.0
    f_lo: float = 1.0
    f_hi: float = 1.0
    floor: float = 0.0
    whole_floor: float = 0.0
    se_log_sd0: float = 0.0
    se_gamma: float = 0.0

    def _within(self, f: npt.ArrayLike, sd0: np.ndarray, gamma: np.ndarray) -> np.ndarray:
        ff = np.clip(np.asarray(f, dtype=float), self.f_lo, self.f_hi)
        out: np.ndarray = np.maximum(sd0 * (ff / self.f0) ** gamma, self.floor)
        return out

    def at(self, f: npt.ArrayLike) -> np.ndarray:
        """within(f) per element of ``f``."""
        return self._within(f, np.asarray(self.sd0), np.asarray(self.gamma))

    def whole(self, f: npt.ArrayLike) -> np.ndarray:
        """A whole run's noise per element of ``f``."""
        out: np.ndarray = np.maximum(self.at(f), self.whole_floor)
        return out

    def draws(self, f: npt.ArrayLike, n: int, seed: int, whole_runs: bool = False) -> np.ndarray:
        """(n, len(f)): per resample, the noise of each f, its sd0 and gamma drawn from their
        standard errors (normal in log sd0 and in gamma); ``whole_runs``: at least ``whole_floor``."""
        rng = np.random.default_rng((seed, 0x6E6F6973))  # a stream of its own, apart from the noise it scales
        sd0 = self.sd0 * np.exp(self.se_log_sd0 * rng.standard_normal((n, 1)))
        gamma = self.gamma + self.se_gamma * rng.standard_normal((n, 1))
        out = self._within(np.atleast_1d(np.asarray(f, dtype=float))[None, :], sd0, gamma)
        if whole_runs:
            out = np.maximum(out, self.whole_floor)
        return out


@dataclass(frozen=True)
class ReplicateNoise:
    """Run-to-run (within) and per-checkpoint (between) noise measured from replicates.

    ``within`` is None without two runs of one checkpoint (or a replicate checkpoint at two f),
    ``between`` without runs from two checkpoints of one p or without ``within`` to take from
    them, ``f_slope`` without same-checkpoint runs at two f. ``notes`` say what could not be
    measured and why."""

    within: NoiseScale | None
    between: NoiseScale | None
    f_slope: FSlope | None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Group:
    """The runs of one cell and one lineage (one checkpoint): their log losses, distinct seeds."""

    f: float
    y: np.ndarray

    @property
    def ss(self) -> float:
        return float(np.sum((self.y - self.y.mean()) ** 2))

    @property
    def df(self) -> int:
        return int(self.y.size) - 1


def replicate_noise(table: pa.Table) -> ReplicateNoise | None:
    """The noise scales the replicates in ``table`` (summary rows) measure; None when it holds no
    two runs of one cell (module docstring)."""
    cells = _cells(table)
    if not cells:
        return None
    groups = [g for lineages in cells.values() for g in lineages.values() if g.df > 0]
    units = _units(cells)
    notes: list[str] = []
    within = _within(groups, units)
    between = None
    if units and within is None:
        notes.append("no two runs of one checkpoint: between is not separable from within")
    elif units and within is not None:
        between, clamped = _between(units, within)
        if clamped:
            notes.append(
                "between clamped at 0: fine-tunes from other checkpoints differ no more than runs "
                "from the same one; its interval's upper end is what the runs allow"
            )
    if within is None:
        notes.append("no two runs of one checkpoint: within is not measured")
    slope = _f_slope(groups)
    if groups and slope is None:
        notes.append("same-checkpoint runs at one f only: the noise's change with f is not measured")
    return ReplicateNoise(within=within, between=between, f_slope=slope, notes=tuple(notes))


# ------------------------------------------------------------------ reading the table
def _values(table: pa.Table, name: str) -> list[object]:
    """A column as a list; None for every row when the table lacks it (a version-1 store)."""
    return table.column(name).to_pylist() if name in table.column_names else [None] * table.num_rows


def _texts(table: pa.Table, name: str, default: str) -> list[str]:
    return [default if v is None else str(v) for v in _values(table, name)]


def _ints(table: pa.Table, name: str) -> list[int]:
    """Integers, a null as 0 (a version-1 store's seed, replicate and lineage: a run of the grid)."""
    return [0 if v is None else int(str(v)) for v in _values(table, name)]


def _cells(table: pa.Table) -> dict[tuple[str, str, int, int], dict[int, _Group]]:
    """The ok fine-tunes' log losses by cell (source, size, p, f), then by lineage (checkpoint),
    one run per seed; only cells with two runs or more."""
    kind, source, size = (_texts(table, c, "") for c in ("kind", "source", "size"))
    status = _texts(table, "status", "ok")
    p, f, seed, lineage = (_ints(table, c) for c in ("pretrain_tokens", "data_tokens", "seed", "lineage"))
    loss = [math.nan if v is None else float(str(v)) for v in _values(table, "best_eval_loss")]
    runs: dict[tuple[str, str, int, int], dict[int, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for i, y in enumerate(loss):
        if kind[i] == "finetune" and status[i] == "ok" and y > 0 and math.isfinite(y):
            runs[source[i], size[i], p[i], f[i]][lineage[i]].setdefault(seed[i], math.log(y))
    return {
        key: {lin: _Group(f=float(key[3]), y=np.array(list(by_seed.values()))) for lin, by_seed in lineages.items()}
        for key, lineages in runs.items()
        if len(lineages) > 1 or any(len(v) > 1 for v in lineages.values())
    }


# ------------------------------------------------------------------ the scales
def _chi2_interval(ms: float, df: int) -> tuple[float, float]:
    """95% interval of a standard deviation whose mean square ``ms`` has ``df`` degrees of freedom."""
    lo = df * ms / stats.chi2.ppf(1 - _TAIL, df)
    hi = df * ms / stats.chi2.ppf(_TAIL, df)
    return math.sqrt(lo), math.sqrt(hi)


@dataclass(frozen=True)
class _Unit:
    """One (source, size, p) with runs from two checkpoints or more: the mean squares of its
    lineages (df K - 1) and of its cells x lineages interaction (df (C - 1)(K - 1)), C and h."""

    ss_lineage: float
    df_lineage: int
    ss_interaction: float
    df_interaction: int
    n_cells: int
    h: float  # the mean of 1/runs over its cell means: what within^2 is scaled by in them


def _units(cells: dict[tuple[str, str, int, int], dict[int, _Group]]) -> list[_Unit]:
    """The cross-checkpoint units (module docstring), each over the cells every lineage has."""
    by_p: dict[tuple[str, str, int], list[dict[int, _Group]]] = defaultdict(list)
    for (source, size, p, _), lineages in cells.items():
        by_p[source, size, p].append(lineages)
    units = []
    for rows in by_p.values():
        ks = sorted({k for row in rows for k in row})
        complete = [row for row in rows if all(k in row for k in ks)]
        if len(ks) < 2 or not complete:
            continue
        m = np.array([[row[k].y.mean() for k in ks] for row in complete])  # cells x lineages
        inv_n = np.array([[1 / row[k].y.size for k in ks] for row in complete])
        c, k = m.shape
        resid = m - m.mean(axis=1, keepdims=True) - m.mean(axis=0, keepdims=True) + m.mean()
        units.append(
            _Unit(
                ss_lineage=float(c * np.sum((m.mean(axis=0) - m.mean()) ** 2)),
                df_lineage=k - 1,
                ss_interaction=float(np.sum(resid**2)),
                df_interaction=(c - 1) * (k - 1),
                n_cells=c,
                h=float(inv_n.mean()),
            )
        )
    return units


def _within(groups: Sequence[_Group], units: Sequence[_Unit]) -> NoiseScale | None:
    """within from the same-checkpoint groups and the units' interactions, pooled."""
    df = sum(g.df for g in groups) + sum(u.df_interaction for u in units)
    if df == 0:
        return None
    ss = sum(g.ss for g in groups) + sum(u.ss_interaction / u.h for u in units)
    ms = ss / df
    return NoiseScale(sd=math.sqrt(ms), ci95=_chi2_interval(ms, df), df=df)


def _between(units: Sequence[_Unit], within: NoiseScale) -> tuple[NoiseScale, bool]:
    """between = sqrt((MS_lineages - h within^2) / C), clamped at 0 (the flag says so), with the
    modified large-sample interval of a difference of mean squares (module docstring). Where even
    its upper end is below 0, the upper end is the chi-square one of MS_lineages / C alone (what
    between^2 cannot exceed whatever within is), never a claim that between is exactly 0."""
    n1 = sum(u.df_lineage for u in units)
    s1 = sum(u.ss_lineage for u in units) / n1
    c_bar = sum(u.df_lineage * u.n_cells for u in units) / n1
    h_bar = sum(u.df_lineage * u.h for u in units) / n1
    lower, est, upper = _mls(s1, n1, within.sd**2, within.df, 1 / c_bar, h_bar / c_bar)
    if upper <= 0:  # the lineages differ far less than runs do: bound between by their spread alone
        upper = n1 * s1 / stats.chi2.ppf(_TAIL, n1) / c_bar
    scale = NoiseScale(
        sd=math.sqrt(max(est, 0.0)), ci95=(math.sqrt(max(lower, 0.0)), math.sqrt(max(upper, 0.0))), df=n1
    )
    return scale, est <= 0


def _mls(s1: float, n1: int, s2: float, n2: int, c1: float, c2: float) -> tuple[float, float, float]:
    """(lower, estimate, upper) of c1 E[s1] - c2 E[s2], s1 and s2 independent mean squares on n1
    and n2 degrees of freedom: the modified large-sample interval (Burdick and Graybill 1992,
    sec. 3.3, after Ting et al. 1990), each end at the 2.5% level."""
    f_hi, f_lo = stats.f.ppf(1 - _TAIL, n1, n2), stats.f.ppf(_TAIL, n1, n2)  # F(n1, n2) quantiles
    g1 = 1 - n1 / stats.chi2.ppf(1 - _TAIL, n1)
    h1 = n1 / stats.chi2.ppf(_TAIL, n1) - 1
    g2 = 1 - n2 / stats.chi2.ppf(1 - _TAIL, n2)
    h2 = n2 / stats.chi2.ppf(_TAIL, n2) - 1
    g12 = ((f_hi - 1) ** 2 - g1**2 * f_hi**2 - h2**2) / f_hi
    h12 = ((1 - f_lo) ** 2 - h1**2 * f_lo**2 - g2**2) / f_lo
    a, b = c1 * s1, c2 * s2
    est = a - b
    lower = est - math.sqrt(max(0.0, g1**2 * a**2 + h2**2 * b**2 + g12 * a * b))
    upper = est + math.sqrt(max(0.0, h1**2 * a**2 + g2**2 * b**2 + h12 * a * b))
    return lower, est, upper


def _f_slope(groups: Sequence[_Group]) -> FSlope | None:
    """sigma(f) = sigma0 (f/f0)^gamma by maximum likelihood over the same-checkpoint groups; None
    with fewer than two distinct f (module docstring)."""
    fs = np.array([g.f for g in groups])
    if np.unique(fs).size < 2:
        return None
    df = np.array([g.df for g in groups], dtype=float)
    ss = np.array([g.ss for g in groups])
    f0 = float(np.exp(np.sum(df * np.log(fs)) / df.sum()))
    x = np.log(fs / f0)
    design = np.stack([np.ones_like(x), x], axis=1)
    info = 2 * (design * df[:, None]).T @ design  # Fisher information of (log sigma0, gamma)
    theta = np.array([0.5 * math.log(max(ss.sum() / df.sum(), 1e-300)), 0.0])
    for _ in range(100):  # Fisher scoring on -log L = sum df log sigma^2 + ss / sigma^2, up to constants
        var = np.exp(2 * design @ theta)
        score = design.T @ (ss / var - df)
        step = np.linalg.solve(info, score)
        theta = theta + step
        if float(np.max(np.abs(step))) < 1e-10:
            break
    cov = np.linalg.inv(info)
    return FSlope(
        gamma=float(theta[1]),
        gamma_se=float(math.sqrt(cov[1, 1])),
        sigma0=float(math.exp(theta[0])),
        f0=f0,
        n_f=int(np.unique(fs).size),
    )
