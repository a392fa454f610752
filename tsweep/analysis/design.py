"""The adaptive design: which jobs of the grid to run next, read off the analysis actor's refit.

A grid spends every job whatever the first ones already said. An adaptive design spends its
compute where the report is still unsure. Its pool is the grid itself (the same jobs and content
ids), and its goal is what the sweep's ``design.goal`` asks:

- every source's transfer gap G at the goal's sizes with a relative 95% half-width under
  ``gap_half_width``, or settled another way, once the data can carry the verdict
  (:func:`_confirmed`): bounded from above (no measurable gap) under ``gap_half_width`` times the
  largest identified G, or withdrawn for a loss that rises or stays flat in p, measured at every
  checkpoint;
- with ``order``, every pair of those gaps resolved (one source transfers better), or
  *unresolvable*: both gaps pinned, and conditioning on every remaining job of the grid would
  still leave the pair's difference under one projected standard deviation.

How it chooses, in three steps:

1. **A seed design** (:func:`seed_design`) that can identify the joint gap law at every goal size:
   each source's pre-training run there, and six fine-tunes on the smallest, middle and largest p
   and f (the four corners, the centre, the largest p at the middle f: the three distinct p and f
   the report needs before a source enters the joint fit, against its three parameters plus the
   shared beta and E). The replicates the sweep declares run in the seed too, each with the
   grid's run of its cell: a pair measures the noise every interval rests on (without the grid's
   runs, the demo's replicates alone leave the within-run noise 2 degrees of freedom; with them,
   13, for 1% of the grid's est. FLOPs).
2. **Then, at every refit** (:func:`choose`), the next ``batch`` jobs by the expected shrinkage of
   the open targets' variance per FLOP. The uncertainty model is the one the report already has:
   the bootstrap ensemble of the joint gap fit (``FitResult.boot_params``), not a second one. In
   each ensemble member the targets (log G per source, G_a - G_b per pair) and every candidate's
   log loss are computed; their joint covariance gives, for a candidate observed with the
   report's noise, the linear-Gaussian reduction of each target's variance,
   Cov(T, y)^2 / (Var(y) + sigma^2) (a V-optimal design read off an ensemble, as the ensemble
   Kalman filter does). Each open target's reduction counts relative to its current variance;
   the sum is divided by the candidate's expected FLOPs (:func:`calibrate`: what finished runs of
   its kind cost), its pre-training run's included when that has not run. After each pick the
   covariance is conditioned on it (a rank-one update), so a batch does not pick the same
   information twice. Sources outside the joint fit (not fitted yet, or called flat or rising
   before every checkpoint is measured) get at least one job of each batch (:func:`_spread`).
3. **It stops** (:func:`choose`'s second value) when every target is settled ("goal met"), when the next
   job would pass the budget ("budget spent"), or when no remaining job narrows an open target
   ("nothing left narrows the goal").

Every function is pure: the same report and pool give the same choice, which is what lets
``tsweep resume`` continue a design from its decision log. ``benchmarks/adaptive_design.py``
measures, on simulated worlds at the demo's measured laws and noise, what share of the grid's
compute the design needs for the grid's precision, against a random order, cheapest-first, the
grid's order and a D-optimal design.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from tsweep.analysis.laws import BarnettJoint
from tsweep.analysis.records import GapFit, TransferReport
from tsweep.analysis.transfer import g_estimates
from tsweep.core.job import Job
from tsweep.core.layout import SweepLayout

# The least ensemble a choice is read off (tsweep's choice: a covariance of 8 + candidates
# dimensions from fewer draws is mostly noise); below it the design fills the (log p, log f)
# square instead (:func:`_spread`).
MIN_ENSEMBLE = 20
# A z-score of 1.96: a pair resolved at 95% needs |G_a - G_b| > 1.96 sd.
Z95 = 1.959964
# A pair is unresolvable when, with every remaining job of the grid observed, its difference would
# still be under this many projected standard deviations (tsweep's choice: 1, not 1.96, so that a
# pair near the line keeps the design going; the projection is linear and early ensembles are wide).
UNRESOLVABLE_Z = 1.0
# The noise assumed for a candidate before any fit has measured one: the demo's run-to-run noise
# in log loss (0.48-0.74% on its gap fits, tsweep/analysis/worlds.py's DEMO_NOISE).
DEFAULT_NOISE = 0.006


@dataclass(frozen=True)
class Candidate:
    """A job of the grid as the design sees it: where it sits on the law and what it costs."""

    job_id: str
    label: str
    kind: str  # pretrain | finetune | scratch
    source: str
    size: str
    p: float  # pre-training tokens of a fine-tune's checkpoint (0 otherwise)
    f: float  # its data tokens (D_F, D, or the pre-training budget)
    cost: float  # estimated FLOPs (the plan's upper bound): what the budget counts
    parent: str | None = None
    replicate: int = 0
    expected: float | None = None  # FLOPs expected from the runs measured so far (:func:`calibrate`)

    @property
    def price(self) -> float:
        """What a choice weighs it at: the expected FLOPs where measured runs give them, else the plan's."""
        return self.cost if self.expected is None else self.expected

    @classmethod
    def of(cls, job: Job) -> Candidate:
        return cls(
            job_id=job.job_id,
            label=job.label,
            kind=job.kind,
            source=job.source,
            size=job.size,
            p=float(job.pretrain_tokens),
            f=float(job.data_tokens),
            cost=float(job.est_flops),
            parent=job.parent,
            replicate=job.replicate,
        )


@dataclass(frozen=True)
class Goal:
    """What the design must learn (the sweep's ``design.goal``) and what it may spend."""

    sizes: tuple[str, ...]
    half_width: float
    order: bool
    budget: float  # FLOPs

    @classmethod
    def of(cls, settings: Any, model_sizes: Sequence[str], pool: Iterable[Candidate]) -> Goal:
        """From the sweep's ``design`` settings: its sizes (default: the largest, the last of
        ``model_sizes``), and its budget as a share of the pool's estimated FLOPs."""
        sizes = tuple(settings.goal.gap_sizes or [model_sizes[-1]])
        grid = sum(c.cost for c in pool)
        return cls(sizes, float(settings.goal.gap_half_width), bool(settings.goal.order), settings.budget * grid)


@dataclass(frozen=True)
class Target:
    """One thing the goal asks, and where the latest refit leaves it."""

    name: str  # "G(d0.6)@mini" or "G(d0.6)-G(d0.9)@mini"
    size: str
    sources: tuple[str, ...]
    state: str  # open | met | bounded | withdrawn | unresolvable
    width: float | None = None  # relative 95% half-width of a G
    why: str = ""
    value: float | None = None  # G where identified, its upper bound where bounded

    @property
    def settled(self) -> bool:
        return self.state != "open"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "state": self.state, "width": self.width, "why": self.why}


@dataclass(frozen=True)
class Decision:
    """One job the design chose, and why."""

    job_id: str
    label: str
    reason: str
    gain: float  # relative variance reduction of the open targets per PFLOP (0 in the seed)

    def to_json(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "label": self.label, "reason": self.reason, "gain": self.gain}


# ------------------------------------------------------------------ costs
def calibrate(pool: Sequence[Candidate], measured: Mapping[str, float]) -> list[Candidate]:
    """``pool`` with each candidate's expected FLOPs from the finished runs (``measured``: job id
    -> FLOPs the run did). The plan's estimates are upper bounds (a fine-tune or scratch run stops
    on patience), and not uniformly so: on the demo a fine-tune of mini does 1.0-1.4e11 FLOPs at
    every f while the plan bounds f = 1k at 2.5e11 and f = 16k at 2.6e12. A choice weighed by
    the bounds would favour small f for no reason. Expected: the median measured FLOPs of finished
    runs of the same kind, size and tokens; else the plan's bound times the median measured/bound
    ratio of the same kind and size, then of the same kind; else the bound."""
    by_id = {c.job_id: c for c in pool}
    ratios: dict[tuple[str, ...], list[float]] = {}
    same: dict[tuple[str, str, float], list[float]] = {}
    for job_id, flops in measured.items():
        c = by_id.get(job_id)
        if c is None or not flops > 0 or not c.cost > 0:
            continue
        same.setdefault((c.kind, c.size, c.f), []).append(flops)
        ratios.setdefault((c.kind, c.size), []).append(flops / c.cost)
        ratios.setdefault((c.kind,), []).append(flops / c.cost)

    def expected(c: Candidate) -> float | None:
        if (c.kind, c.size, c.f) in same:
            return float(np.median(same[c.kind, c.size, c.f]))
        for key in ((c.kind, c.size), (c.kind,)):
            if key in ratios:
                return c.cost * float(np.median(ratios[key]))
        return None

    return [replace(c, expected=expected(c)) for c in pool]


# ------------------------------------------------------------------ the seed
def _spread_three(values: Sequence[float]) -> tuple[float, float, float]:
    """The smallest, middle and largest of ``values`` (repeated when there are fewer than three)."""
    v = sorted(set(values))
    return v[0], v[len(v) // 2], v[-1]


def seed_design(pool: Sequence[Candidate], goal: Goal) -> list[Candidate]:
    """The jobs that can identify the joint gap law at every goal size (module docstring, step
    1), in the order they should run: pre-training first, then fine-tunes, then replicates."""
    chosen: dict[str, Candidate] = {}
    by_id = {c.job_id: c for c in pool}
    for size in goal.sizes:
        tunes = [c for c in pool if c.kind == "finetune" and c.size == size and c.replicate == 0]
        for source in sorted({c.source for c in tunes}):
            mine = [c for c in tunes if c.source == source]
            (p0, p1, p2), (f0, f1, f2) = _spread_three([c.p for c in mine]), _spread_three([c.f for c in mine])
            # the four corners, the centre and the largest p at the middle f: three distinct p and
            # three distinct f (what the report needs before a source enters the joint fit), six points
            cells = {(p0, f0), (p0, f2), (p2, f0), (p2, f2), (p1, f1), (p2, f1)}
            for c in mine:
                if (c.p, c.f) in cells:
                    chosen.setdefault(c.job_id, c)
    grid_cell = {
        (c.source, c.size, c.p, c.f): c
        for c in pool
        if c.kind == "finetune" and c.replicate == 0 and by_id.get(c.parent or "", c).replicate == 0
    }
    for c in pool:
        if c.replicate > 0:
            chosen.setdefault(c.job_id, c)
            # and the grid's run of the same cell: a replicate measures the noise against it
            partner = grid_cell.get((c.source, c.size, c.p, c.f)) if c.kind == "finetune" else None
            if partner is not None:
                chosen.setdefault(partner.job_id, partner)
    for c in list(chosen.values()):  # every chosen fine-tune's pre-training run
        parent = by_id.get(c.parent or "")
        while parent is not None and parent.job_id not in chosen:
            chosen[parent.job_id] = parent
            parent = by_id.get(parent.parent or "")
    rank = {"pretrain": 0, "finetune": 1, "scratch": 2}
    return sorted(chosen.values(), key=lambda c: (c.replicate > 0, rank[c.kind], -c.cost, c.label))


# ------------------------------------------------------------------ the ensemble
@dataclass(frozen=True)
class Ensemble:
    """The joint gap fit's bootstrap draws at one size, as the design reads them."""

    gap: GapFit
    draws: np.ndarray  # (members, params) in reported units, finite rows only

    def column(self, name: str) -> np.ndarray:
        return self.draws[:, list(self.gap.fit.params).index(name)]

    def source(self, source: str, key: str) -> np.ndarray:
        return self.column(f"{key}_{self.gap.sources.index(source)}")

    def log_loss(self, c: Candidate) -> np.ndarray:
        """Every member's predicted log loss of fine-tune ``c`` (Barnett's law)."""
        a, alpha, g = (self.source(c.source, k) for k in ("A", "alpha", "G"))
        loss = (a * c.p**-alpha + g) * c.f ** -self.column("beta") + self.column("E")
        out: np.ndarray = np.log(np.maximum(loss, 1e-12))
        return out


def ensemble(report: TransferReport, size: str) -> Ensemble | None:
    """The bootstrap ensemble of ``size``'s joint gap fit, or None when it has fewer than
    :data:`MIN_ENSEMBLE` finite members."""
    gap = report.gap_fit(size)
    if gap is None or gap.fit.boot_params is None:
        return None
    bp = np.asarray(gap.fit.boot_params, dtype=float)
    if bp.ndim != 2 or bp.shape[1] != len(BarnettJoint.of(len(gap.sources)).params):
        return None
    bp = bp[np.all(np.isfinite(bp), axis=1)]
    return Ensemble(gap, bp) if len(bp) >= MIN_ENSEMBLE else None


# ------------------------------------------------------------------ the targets
def _gap_target(report: TransferReport, size: str, source: str, goal: Goal) -> Target:
    name = f"G({source})@{size}"
    gap = report.gap_fit(size)
    if gap is None or source not in gap.sources:
        why = _left_out(report, size, source)
        if why is not None:
            return Target(name, size, (source,), "withdrawn", why=why)
        return Target(name, size, (source,), "open", why="not fitted yet")
    g, _ = g_estimates(gap, source)
    if g.upper is not None:
        return Target(name, size, (source,), "bounded", why=f"G < {g.upper:.3g}", value=g.upper)
    if g.identified and g.ci95 is not None and g.value:
        width = (g.ci95[1] - g.ci95[0]) / (2 * abs(g.value))
        state = "met" if width <= goal.half_width else "open"
        return Target(name, size, (source,), state, width=width, value=g.value)
    reason = g.reason or "not identified"
    if "on its bound" in reason or "on their bounds" in reason:  # flat in p: more of this grid cannot help
        return Target(name, size, (source,), "withdrawn", why=reason)
    return Target(name, size, (source,), "open", why=reason)


def _left_out(report: TransferReport, size: str, source: str) -> str | None:
    """Why the report took a source with fine-tunes at ``size`` out of its joint fit (a loss that
    rises with p, a pre-training term on its bound), from the report's warning; None when it did
    not (it has too few runs there yet)."""
    prefix = f"gap law: {source} at size {size} left out of the joint fit: "
    for warning in report.warnings:
        if warning.startswith(prefix):
            return warning[len(prefix) :]
    return None


def _pair_target(report: TransferReport, size: str, a: str, b: str) -> Target:
    name = f"G({a})-G({b})@{size}"
    for c in report.comparisons:
        if c.size == size and {c.a, c.b} == {a, b}:
            if c.resolved:
                return Target(name, size, (a, b), "met", why="resolved")
            return Target(name, size, (a, b), "open", why=c.d_G.reason or "interval spans zero")
    return Target(name, size, (a, b), "open", why="no comparison yet")


def _confirmed(t: Target, goal: Goal, gaps: Sequence[Target], pool: Sequence[Candidate], taken: set[str]) -> Target:
    """A verdict that ends a target only once the data can carry it (an early fit on six points
    can call a source flat or bound its G loosely):

    - withdrawn (flat or rising in p) counts once the source's fine-tunes at that size cover
      every checkpoint p of the grid;
    - a bound "G < u" counts once u is under ``half_width`` times the largest G identified at
      that size (the bound then says the source transfers at least that much better).
    """
    if t.state == "withdrawn":
        mine = [c for c in pool if c.kind == "finetune" and c.size == t.size and c.source == t.sources[0]]
        every, have = {c.p for c in mine}, {c.p for c in mine if c.job_id in taken}
        if have != every:
            why = f"{t.why} (on {len(have)} of {len(every)} checkpoints: measuring the rest before it counts)"
            return Target(t.name, t.size, t.sources, "open", why=why)
    if t.state == "bounded":
        largest = max((g.value or 0.0 for g in gaps if g.state in ("open", "met") and g.width is not None), default=0.0)
        if not (t.value is not None and largest > 0 and t.value <= goal.half_width * largest):
            why = f"{t.why}; counts once under {goal.half_width:g} x the largest identified G"
            return Target(t.name, t.size, t.sources, "open", why=why, value=t.value)
    return t


def targets(
    report: TransferReport | None, goal: Goal, pool: Sequence[Candidate], remaining: Sequence[Candidate]
) -> list[Target]:
    """Every target of ``goal`` as the latest refit leaves it (a verdict counts once the data
    can carry it, :func:`_confirmed`); a pair no remaining job can resolve is ``unresolvable``
    (module docstring)."""
    out: list[Target] = []
    taken = {c.job_id for c in pool} - {c.job_id for c in remaining}
    for size in goal.sizes:
        sources = sorted({c.source for c in pool if c.kind == "finetune" and c.size == size and c.replicate == 0})
        raw = [
            _gap_target(report, size, s, goal) if report is not None else Target(f"G({s})@{size}", size, (s,), "open")
            for s in sources
        ]
        gaps = [_confirmed(t, goal, raw, pool, taken) for t in raw]
        out += gaps
        if not goal.order:
            continue
        ens = ensemble(report, size) if report is not None else None
        fitted = set(ens.gap.sources) if ens is not None else set()
        comparable = [t.sources[0] for t in raw if t.state in ("open", "met", "bounded")]
        # a pair is declared unresolvable only on gaps the ensemble pins (an early ensemble of
        # bounded or unidentified gaps projects nothing worth stopping on)
        pinned = {t.sources[0] for t in raw if t.width is not None}
        left = [c for c in remaining if _informs(c, size, ens)]
        for i, a in enumerate(comparable):
            for b in comparable[i + 1 :]:
                pair = (
                    _pair_target(report, size, a, b)
                    if report is not None
                    else Target(f"G({a})-G({b})@{size}", size, (a, b), "open")
                )
                if (
                    pair.state == "open"
                    and ens is not None
                    and {a, b} <= fitted & pinned
                    and _hopeless(ens, a, b, left, report)
                ):
                    pair = Target(
                        pair.name,
                        size,
                        (a, b),
                        "unresolvable",
                        why="every remaining job of the grid "
                        f"would leave the difference under {UNRESOLVABLE_Z:g} projected sd",
                    )
                out.append(pair)
    return out


def _informs(c: Candidate, size: str, ens: Ensemble | None) -> bool:
    return c.kind == "finetune" and c.size == size and c.replicate == 0 and (ens is None or c.source in ens.gap.sources)


def _noise(report: TransferReport | None) -> float:
    return float(report.noise) if report is not None and report.noise else DEFAULT_NOISE


def _hopeless(ens: Ensemble, a: str, b: str, left: Sequence[Candidate], report: TransferReport | None) -> bool:
    """Whether observing every job in ``left`` would still leave G_a - G_b under
    :data:`UNRESOLVABLE_Z` projected standard deviations."""
    diff = ens.source(a, "G") - ens.source(b, "G")
    point = ens.gap.source_params(a)["G"] - ens.gap.source_params(b)["G"]
    if not left:
        return abs(point) < UNRESOLVABLE_Z * float(np.std(diff))
    y = np.column_stack([ens.log_loss(c) for c in left])
    z = np.column_stack([diff, y])
    cov = np.atleast_2d(np.cov(z, rowvar=False))
    c_ty, c_yy = cov[0, 1:], cov[1:, 1:] + _noise(report) ** 2 * np.eye(len(left))
    post = cov[0, 0] - c_ty @ np.linalg.solve(c_yy, c_ty)
    return abs(point) < UNRESOLVABLE_Z * math.sqrt(max(post, 0.0))


# ------------------------------------------------------------------ the choice
def _target_draws(ens: Ensemble, open_targets: Sequence[Target]) -> np.ndarray:
    """(members, targets): log G for a gap, G_a - G_b for a pair."""
    cols = []
    for t in open_targets:
        if len(t.sources) == 1:
            cols.append(np.log(np.maximum(ens.source(t.sources[0], "G"), 1e-12)))
        else:
            cols.append(ens.source(t.sources[0], "G") - ens.source(t.sources[1], "G"))
    return np.column_stack(cols)


def _cost(c: Candidate, ran: set[str], by_id: Mapping[str, Candidate], *, plan: bool = False) -> float:
    """``c``'s FLOPs plus its pre-training run's where that has not run or been chosen: the
    plan's estimates (what the budget counts) or, for ranking, the expected ones."""
    parent = by_id.get(c.parent or "")
    extra = 0.0 if parent is None or parent.job_id in ran else (parent.cost if plan else parent.price)
    return (c.cost if plan else c.price) + extra


def choose(
    report: TransferReport | None,
    goal: Goal,
    pool: Sequence[Candidate],
    chosen: Iterable[str],
    *,
    batch: int,
    spent: float,
) -> tuple[list[Decision], str | None]:
    """The next jobs, up to ``batch``, and why the design stops when it chooses none (module
    docstring, steps 2-3). ``chosen``: job ids already run or committed; ``spent``: their FLOPs."""
    taken = set(chosen)
    by_id = {c.job_id: c for c in pool}
    remaining = [c for c in pool if c.job_id not in taken]
    state = targets(report, goal, pool, remaining)
    if all(t.settled for t in state):
        return [], "goal met"
    seed = [c for c in seed_design(pool, goal) if c.job_id not in taken]
    if seed:
        return _within_budget(
            [Decision(c.job_id, c.label, _seed_reason(c), 0.0) for c in seed],
            by_id,
            taken,
            goal,
            spent,
        )
    measured: list[Decision] = []  # targets the ensemble can speak for
    filling: list[Decision] = []  # sources outside the joint fit, or no ensemble yet
    for size in goal.sizes:
        open_here = [t for t in state if t.size == size and not t.settled]
        if not open_here:
            continue
        ens = ensemble(report, size) if report is not None else None
        fitted = set(ens.gap.sources) if ens is not None else set()
        inside = [t for t in open_here if ens is not None and set(t.sources) <= fitted]
        outside = {s for t in open_here if t not in inside for s in t.sources if s not in fitted}
        if ens is not None and inside:
            cands = [c for c in remaining if _informs(c, size, ens)]
            measured += _greedy(ens, inside, cands, taken, by_id, batch, _noise(report))
        if outside:
            cands = [c for c in remaining if _informs(c, size, None) and c.source in outside]
            filling += _spread(cands, pool, taken, batch)
    # sources outside the fit get at least one job of each batch (their verdict waits on them);
    # the rest go by measured narrowing per FLOP
    picks = (filling[: max(1, batch // 2)] + sorted(measured, key=lambda d: -d.gain))[:batch]
    if not picks:
        return [], "nothing left narrows the goal"
    return _within_budget(picks, by_id, taken, goal, spent)


def _seed_reason(c: Candidate) -> str:
    """Why a job is in the seed design."""
    if c.replicate:
        return "seed design: a replicate the sweep declares, measures the noise every interval rests on"
    if c.kind == "pretrain":
        return "seed design: the pre-training run the seed's fine-tunes start from"
    return "seed design: identifies the gap law"


def _within_budget(
    picks: list[Decision], by_id: Mapping[str, Candidate], taken: set[str], goal: Goal, spent: float
) -> tuple[list[Decision], str | None]:
    """The leading ``picks`` whose FLOPs, with those of pre-training runs not yet taken, fit the
    budget; "budget spent" when not even the first does."""
    out, ran = [], set(taken)
    for d in picks:
        cost = _cost(by_id[d.job_id], ran, by_id, plan=True)
        if spent + cost > goal.budget * (1 + 1e-9):
            break
        out.append(d)
        spent += cost
        ran |= {d.job_id, by_id[d.job_id].parent or ""}
    return (out, None) if out else ([], "budget spent")


def _greedy(
    ens: Ensemble,
    open_targets: Sequence[Target],
    cands: Sequence[Candidate],
    taken: set[str],
    by_id: Mapping[str, Candidate],
    batch: int,
    noise: float,
) -> list[Decision]:
    """Up to ``batch`` of ``cands`` by relative variance reduction of the open targets per FLOP,
    conditioning the ensemble covariance on each pick (module docstring, step 2)."""
    if not cands:
        return []
    t = _target_draws(ens, open_targets)
    y = np.column_stack([ens.log_loss(c) for c in cands])
    m = t.shape[1]
    cov = np.atleast_2d(np.cov(np.column_stack([t, y]), rowvar=False))
    var0 = np.maximum(np.diag(cov)[:m], 1e-300)
    ran = set(taken)
    out: list[Decision] = []
    free = list(range(len(cands)))
    for _ in range(min(batch, len(cands))):
        best, best_score, best_gain = -1, 0.0, np.zeros(m)
        for i in free:
            col = cov[:, m + i]
            denom = col[m + i] + noise**2
            gain = col[:m] ** 2 / denom / var0
            score = float(gain.sum()) / _cost(cands[i], ran, by_id)
            if score > best_score:
                best, best_score, best_gain = i, score, gain
        if best < 0:
            break
        c = cands[best]
        col = cov[:, m + best].copy()
        cov -= np.outer(col, col) / (col[m + best] + noise**2)
        free.remove(best)
        ran |= {c.job_id, c.parent or ""}
        top = int(np.argmax(best_gain))
        out.append(
            Decision(
                c.job_id,
                c.label,
                f"narrows {open_targets[top].name} most per FLOP: its variance by "
                f"{100 * best_gain[top]:.0f}% ({100 * float(best_gain.sum()):.0f}% over {m} open target(s))",
                best_score * 1e15,
            )
        )
    return out


def _spread(cands: Sequence[Candidate], pool: Sequence[Candidate], taken: set[str], batch: int) -> list[Decision]:
    """Without an ensemble (the fit is not bootstrapped yet): the candidates farthest, in
    (log p, log f), from the runs of their source already taken, so the design fills its square."""
    have = [c for c in pool if c.job_id in taken and c.kind == "finetune"]
    out: list[Decision] = []
    left = list(cands)
    for _ in range(min(batch, len(left))):

        def distance(c: Candidate) -> float:
            mine = [h for h in have if h.source == c.source and h.size == c.size]
            if not mine:
                return math.inf
            return min(math.hypot(math.log(c.p / h.p), math.log(c.f / h.f)) for h in mine)

        pick = max(left, key=lambda c: (distance(c), -c.cost, c.label))
        left.remove(pick)
        have.append(pick)
        out.append(
            Decision(
                pick.job_id,
                pick.label,
                f"{pick.source} is outside the joint fit's ensemble at {pick.size}: fills its (p, f) square",
                0.0,
            )
        )
    return out


def describe(t: Target, goal: Goal) -> str:
    """One line per target for the live view and the report: its width against the goal."""
    if t.width is not None and len(t.sources) == 1:
        return f"{t.name}: +-{100 * t.width:.0f}% (goal +-{100 * goal.half_width:.0f}%) {t.state}"
    return f"{t.name}: {t.state}" + (f" ({t.why})" if t.why and t.state != "met" else "")


def design_line(state: Mapping[str, Any]) -> str:
    """One line for a person: where the adaptive design stands or why it stopped, and its spend."""
    why = f"stopped: {state['stopped']}" if state.get("stopped") else "still choosing"
    budget = state.get("budget_flops") or 0.0
    grid = state.get("grid_flops") or 0.0
    return (
        f"adaptive design {why}; {state.get('chosen', 0)} of {state.get('pool', 0)} grid jobs chosen, "
        f"{100 * float(state.get('share', 0.0)):.0f}% of the grid's est. FLOPs"
        + (f" (budget {100 * budget / grid:.0f}%)" if grid else "")
    )


# ------------------------------------------------------------------ the design's files
def read_decisions(layout: SweepLayout) -> list[dict[str, Any]]:
    """The design log's lines, oldest first (a line cut short by a crash is left out)."""
    if not layout.files.exists(layout.design_log):
        return []
    out = []
    for line in layout.files.read_text(layout.design_log).splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def read_design_state(layout: SweepLayout) -> dict[str, Any] | None:
    """The design's latest state (``fits/design.json``), or None for a grid sweep."""
    try:
        state: dict[str, Any] = json.loads(layout.files.read_text(layout.design_state))
        return state
    except (FileNotFoundError, ValueError, UnicodeDecodeError):
        return None
