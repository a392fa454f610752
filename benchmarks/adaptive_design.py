"""What share of the grid's compute the adaptive design needs for the grid's precision.

``tsweep.analysis.design`` chooses which jobs of a sweep's grid to run next from the report's
bootstrap ensemble. Whether that saves compute is measured here on simulated sweeps whose answer
is known (``tsweep.analysis.worlds``): the demo as measured (``demo``) and the demo with a third
source as good as target data (``near``, G = 0). Each draw is the full summary table of the
grid; a job's row is revealed when a method runs it.

The pool is the REAL demo plan (``tsweep/sweeps/demo.yaml`` through ``tsweep.orchestrator.plan
.expand``, 113 jobs with its replicates), so every cost is the plan's estimated FLOPs; each job
maps to the world's row of the same cell (kind, source, size, p, f, replicate, lineage). In the
``near`` world its third source gets d0.6's jobs cloned (same costs, its own pre-training). A
pre-training job has no row; a fine-tune is revealed only once its pre-training run has run, and
every method pays a pre-training run once.

Five methods spend compute over the same pool and the same draw, each in its own order:

- ``adaptive``: ``seed_design``, then ``choose`` (batch 4), refitting ``transfer_report`` on the
  revealed rows after each batch, until it chooses nothing (its stop reason is recorded);
- ``grid order``: the plan's job order;
- ``random``: a random order seeded per draw, each parent moved just before its first child;
- ``cheapest``: cheapest first, a fine-tune's cost counting its pre-training run's until that ran;
- ``D-optimal``: the seed design, then greedy by the increase of log det of the joint gap law's
  Fisher information per FLOP (the Jacobian of log loss in ``BarnettJoint``'s optimiser space,
  log A, alpha, log G, beta, log E, at a fit of the seed's fine-tunes, noise ``DEFAULT_NOISE``,
  plus a ridge), then the jobs that carry no information on the law in the plan's order.

At each compute share (the longest prefix of a method's order whose est FLOPs fit the share of
the grid's; the adaptive design's last state when it stopped before), the report on the revealed
rows is scored against the full grid's report of the same draw: the width ratio is the largest,
over the goal's targets (each source's G at the goal size, mini), of its 95% interval width over
the grid's (a target identified in the grid but not at the share: infinite; bounded in the grid:
the upper ends compared; neither identified nor bounded in the grid: it asks nothing, ratio 1),
and each G is scored against the truth (``worlds.outcome``). A draw meets the precision criterion
when its width ratio is at most ``CRITERION``. The same shares are also given in job-seconds, the
demo's measured wall times (``JOB_SECONDS``), since the plan's FLOPs are upper bounds: a 1k-token
fine-tune trains at least 64k tokens, as long as a 16k one.

Run: ``python benchmarks/adaptive_design.py [--draws 30] [--world demo|near|both] [--processes 1]
[--tiny]`` (30 draws of the demo world: 12.5 minutes on one core of a 2-core AMD EPYC under other
users' load; ``--tiny``, the suite's size: 2 draws, 20 bootstrap refits, shares 0.5 and 1.0, the
demo world: seconds).
Last line: ``adaptive_share_of_grid VALUE``, the smallest share of the grid's est FLOPs at which
the adaptive design meets the criterion in at least ``MEETS`` of the draws, in the demo world
(the ``near`` world's when only it ran); ``inf`` when no share within the grid does.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _machine

from tsweep.analysis import fitter
from tsweep.analysis.design import DEFAULT_NOISE, Candidate, Goal, choose, seed_design
from tsweep.analysis.laws import BarnettJoint
from tsweep.analysis.records import Estimate, TransferReport
from tsweep.analysis.transfer import g_estimates, transfer_report
from tsweep.analysis.worlds import World, design_worlds, draw, outcome, truths
from tsweep.api import shipped_sweep_path
from tsweep.orchestrator.plan import expand
from tsweep.sweeps import load_sweep

SHARES = (0.3, 0.4, 0.5, 0.6, 0.8, 1.0)
DRAWS = 30
# The report's bootstrap in the simulation: about 1 s per report on one core of a 2-core AMD EPYC,
# and at least design.MIN_ENSEMBLE members (tsweep's choice; the actor's default is 200).
BOOTSTRAP = 100
BATCH = 4  # jobs per refit: the demo's two cores twice over (tsweep's choice)
CRITERION = 1.25  # the grid's precision, within 25% of its widest G interval (tsweep's choice)
MEETS = 0.8  # a share counts when this many of the draws meet the criterion (tsweep's choice)
# The Fisher information's ridge, in (optimiser-space units)^-2: 1e-3 against a seed's ~1e5 per
# direction (12 points / 0.006^2), so it only keeps an unmeasured direction invertible (tsweep's choice).
RIDGE = 1e-3
WORLDS = {"demo": "demo", "near": "a source equal to the target"}
CLONE_OF = "d0.6"  # the demo source whose jobs a world's extra source copies (its A and alpha)
METHODS = ("adaptive", "grid order", "random", "cheapest", "D-optimal")
# The suite's size (tsweep's choice): seconds, still every method and the share of the grid.
TINY: dict[str, Any] = {"draws": 2, "bootstrap": 20, "shares": (0.5, 1.0), "worlds": ("demo",)}
# Median wall seconds per (kind, size, data tokens) of the demo run of 2026-12-07 on a 2-core AMD
# EPYC (its summary rows: 113 jobs, replicates included; one job per core). Fine-tunes are flat in
# f: every one trains at least 64k tokens (eval.patience_tokens). pico's 1k-token scratch run ended
# unconverged; its wall time counts.
JOB_SECONDS: dict[tuple[str, str, int], float] = {
    ("pretrain", "mini", 4_000_000): 215.3,  # 2 runs
    ("pretrain", "pico", 4_000_000): 52.4,  # 3 runs (one a replicate lineage)
    ("finetune", "mini", 1_000): 7.9,  # 10 runs each
    ("finetune", "mini", 2_000): 8.0,
    ("finetune", "mini", 4_000): 7.7,
    ("finetune", "mini", 16_000): 7.7,
    ("finetune", "pico", 1_000): 3.1,  # 17 runs (replicates included)
    ("finetune", "pico", 2_000): 3.4,  # 12 runs
    ("finetune", "pico", 4_000): 3.3,  # 17 runs
    ("finetune", "pico", 16_000): 3.2,  # 12 runs
    ("scratch", "mini", 1_000): 10.3,  # one run each
    ("scratch", "mini", 4_000): 10.5,
    ("scratch", "mini", 16_000): 12.1,
    ("scratch", "mini", 64_000): 25.2,
    ("scratch", "mini", 256_000): 60.8,
    ("scratch", "pico", 1_000): 4.4,
    ("scratch", "pico", 4_000): 5.6,
    ("scratch", "pico", 16_000): 6.4,
    ("scratch", "pico", 64_000): 6.9,
    ("scratch", "pico", 256_000): 14.9,
}

Cell = tuple[str, str, str, int, int, int, int]  # kind, source, size, p, f, replicate, lineage


# ------------------------------------------------------------------ the pool
@dataclass(frozen=True)
class Pool:
    """The plan's jobs as the design sees them, in the plan's order, and the goal they serve."""

    jobs: tuple[Candidate, ...]
    goal: Goal

    @property
    def by_id(self) -> dict[str, Candidate]:
        return {c.job_id: c for c in self.jobs}

    @property
    def flops(self) -> float:
        return sum(c.cost for c in self.jobs)

    @property
    def seconds(self) -> float:
        return sum(job_seconds(c) for c in self.jobs)

    def goal_sources(self) -> list[str]:
        return sorted({c.source for c in self.jobs if _informs(c, self.goal)})


def _informs(c: Candidate, goal: Goal) -> bool:
    """A fine-tune of the grid (no replicate) at a goal size: what the gap law is fitted on."""
    return c.kind == "finetune" and c.replicate == 0 and c.size in goal.sizes


def job_seconds(c: Candidate) -> float:
    key = (c.kind, c.size, int(c.f))
    if key not in JOB_SECONDS:
        raise KeyError(f"no measured wall time for {c.label} {key}: the demo plan changed; re-measure JOB_SECONDS")
    return JOB_SECONDS[key]


def _clone(c: Candidate, source: str) -> Candidate:
    tag = f"~{source}"
    return replace(
        c,
        job_id=c.job_id + tag,
        label=c.label.replace(CLONE_OF, source),
        source=source,
        parent=None if c.parent is None else c.parent + tag,
    )


def demo_pool(world: World) -> Pool:
    """The demo plan's jobs; a source of ``world`` that the demo lacks gets d0.6's grid jobs
    (not its replicates) cloned, each right after its original so the plan's order holds."""
    sweep = load_sweep(shipped_sweep_path("demo"))
    extra = [s for s in world.source_names if s not in sweep.sources]
    jobs: list[Candidate] = []
    for c in (Candidate.of(j) for j in expand(sweep).jobs):
        jobs.append(c)
        if c.source == CLONE_OF and c.replicate == 0:
            jobs += [_clone(c, s) for s in extra]
    goal = Goal.of(sweep.design, sweep.model_sizes, jobs)
    return Pool(tuple(jobs), goal)


def cell(c: Candidate, by_id: Mapping[str, Candidate]) -> Cell:
    """Where ``c`` sits in a world's table; a fine-tune's lineage is its pre-training run's replicate."""
    parent = by_id.get(c.parent or "")
    lineage = parent.replicate if parent is not None else c.replicate
    return (c.kind, c.source, c.size, int(c.p), int(c.f), c.replicate, lineage)


def match_rows(pool: Pool, table: pa.Table) -> dict[str, int]:
    """job id -> its row of ``table``: every job but pre-training has exactly one, every row one job."""
    cols = {k: table.column(k).to_pylist() for k in ("kind", "source", "size", "pretrain_tokens", "data_tokens")}
    reps, lins = table.column("replicate").to_pylist(), table.column("lineage").to_pylist()
    rows: dict[Cell, int] = {}
    for i in range(table.num_rows):
        key = (*(cols[k][i] for k in cols), reps[i], lins[i])
        if key in rows:
            raise RuntimeError(f"the world has two rows of cell {key}")
        rows[key] = i  # type: ignore[index]
    by_id = pool.by_id
    out = {c.job_id: rows.pop(cell(c, by_id)) for c in pool.jobs if c.kind != "pretrain"}
    if rows:
        raise RuntimeError(f"{len(rows)} rows of the world match no job of the plan, e.g. {next(iter(rows))}")
    return out


# ------------------------------------------------------------------ one draw
class Sim:
    """One draw of a world: its table, the grid's rows, and the reports on what was revealed
    (cached by the revealed rows: two methods at the same state get the same report)."""

    def __init__(self, world: World, pool: Pool, seed: int, bootstrap: int):
        self.world, self.pool, self.seed, self.bootstrap = world, pool, seed, bootstrap
        self.table = draw(world, seed)
        self.rows = match_rows(pool, self.table)
        self.by_id = pool.by_id
        self.cache: dict[tuple[int, ...], TransferReport] = {}

    def revealed(self, chosen: Iterable[str]) -> tuple[int, ...]:
        """The rows of the jobs in ``chosen`` whose pre-training run (if any) is in it too."""
        ran = set(chosen)
        ok = [j for j in ran if j in self.rows and (self.by_id[j].parent or j) in ran]
        return tuple(sorted(self.rows[j] for j in ok))

    def report(self, chosen: Iterable[str]) -> TransferReport:
        idx = self.revealed(chosen)
        if idx not in self.cache:
            table = self.table.take(pa.array(idx, type=pa.int64()))
            self.cache[idx] = transfer_report(table, bootstrap=self.bootstrap, seed=self.seed)
        return self.cache[idx]


def with_parents(order: Iterable[str], by_id: Mapping[str, Candidate]) -> list[str]:
    """``order`` without repeats, each pre-training run moved just before its first child."""
    out: list[str] = []
    seen: set[str] = set()
    for j in order:
        parent = by_id[j].parent
        for k in (parent, j):
            if k is not None and k not in seen:
                seen.add(k)
                out.append(k)
    return out


def flops_of(ids: Iterable[str], by_id: Mapping[str, Candidate]) -> float:
    return sum(by_id[j].cost for j in set(ids))


def prefix(order: Sequence[str], budget: float, by_id: Mapping[str, Candidate]) -> list[str]:
    """The longest prefix of ``order`` whose est FLOPs fit ``budget``."""
    out, spent = [], 0.0
    for j in order:
        spent += by_id[j].cost
        if spent > budget * (1 + 1e-9):
            break
        out.append(j)
    return out


# ------------------------------------------------------------------ the methods
@dataclass(frozen=True)
class Adaptive:
    order: tuple[str, ...]
    stop: str
    refits: int


def run_adaptive(sim: Sim, batch: int) -> Adaptive:
    """The design as the orchestrator runs it: the seed, then ``choose`` after each refit."""
    pool, by_id = sim.pool, sim.by_id
    # each job weighed at what it costs, as the searcher weighs it once runs have finished
    # (design.calibrate on their measured FLOPs): here the demo's measured seconds
    weighed = [replace(c, expected=job_seconds(c)) for c in pool.jobs]
    order = with_parents((c.job_id for c in seed_design(pool.jobs, pool.goal)), by_id)
    for refits in range(1, len(pool.jobs) + 2):
        report = sim.report(order)
        decisions, why = choose(report, pool.goal, weighed, order, batch=batch, spent=flops_of(order, by_id))
        if not decisions:
            return Adaptive(tuple(order), why or "no decision and no reason", refits)
        more = with_parents([*order, *(d.job_id for d in decisions)], by_id)
        if len(more) == len(order):
            return Adaptive(tuple(order), "chose only jobs it had already run", refits)
        order = more
    return Adaptive(tuple(order), "more refits than jobs", len(pool.jobs) + 1)


def grid_order(pool: Pool) -> list[str]:
    return [c.job_id for c in pool.jobs]


def random_order(pool: Pool, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    ids = grid_order(pool)
    return with_parents([ids[i] for i in rng.permutation(len(ids))], pool.by_id)


def cheapest_order(pool: Pool) -> list[str]:
    """Cheapest first; a fine-tune costs its pre-training run's FLOPs too until that has run."""
    by_id, left, ran = pool.by_id, list(pool.jobs), set[str]()
    out: list[str] = []
    while left:

        def cost(c: Candidate) -> float:
            parent = by_id.get(c.parent or "")
            return c.cost + (parent.cost if parent is not None and parent.job_id not in ran else 0.0)

        pick = min(left, key=lambda c: (cost(c), c.label))
        for j in with_parents([pick.job_id], by_id):
            if j not in ran:
                ran.add(j)
                out.append(j)
                left.remove(by_id[j])
    return out


def _law_inputs(cands: Sequence[Candidate], sources: Sequence[str]) -> dict[str, np.ndarray]:
    return {
        "p": np.array([c.p for c in cands]),
        "f": np.array([c.f for c in cands]),
        "source": np.array([sources.index(c.source) for c in cands]),
    }


def _jacobian(law: BarnettJoint, theta: np.ndarray, cands: Sequence[Candidate], sources: Sequence[str]) -> np.ndarray:
    """(candidates, params): d log L / d theta in the law's optimiser space at ``theta``."""
    x = _law_inputs(cands, sources)
    logx = {"p": np.log(x["p"]), "f": np.log(x["f"]), "source": x["source"]}
    _, jac = law.log_predict(theta[None, :], logx)
    out: np.ndarray = jac[0]
    return out


def d_optimal_order(sim: Sim) -> list[str]:
    """The seed, then greedy by log det of the Fisher information per FLOP, then the rest."""
    pool, by_id = sim.pool, sim.by_id
    order = with_parents((c.job_id for c in seed_design(pool.jobs, pool.goal)), by_id)
    for size in pool.goal.sizes:
        order = with_parents([*order, *_d_optimal_at(sim, size, order)], by_id)
    return with_parents([*order, *grid_order(pool)], by_id)


def _d_optimal_at(sim: Sim, size: str, ran: Sequence[str]) -> list[str]:
    pool, by_id = sim.pool, sim.by_id
    seen = [by_id[j] for j in ran if _informs(by_id[j], pool.goal) and by_id[j].size == size and j in sim.rows]
    sources = sorted({c.source for c in seen})
    if not sources or len(seen) < BarnettJoint.of(len(sources)).n_params:
        return []
    law = BarnettJoint.of(len(sources))
    loss = sim.table.column("best_eval_loss").to_numpy()
    fit = fitter.fit(law, {**_law_inputs(seen, sources), "loss": loss[[sim.rows[c.job_id] for c in seen]]})
    theta = np.asarray(fit.theta, dtype=float)
    info = RIDGE * np.eye(law.n_params) + _fisher(_jacobian(law, theta, seen, sources))
    done = set(ran)
    cands = [c for c in pool.jobs if _informs(c, pool.goal) and c.size == size and c.source in sources]
    cands = [c for c in cands if c.job_id not in done]
    jac = _jacobian(law, theta, cands, sources) if cands else np.zeros((0, law.n_params))
    out: list[str] = []
    free = list(range(len(cands)))
    while free:
        inv = np.linalg.inv(info)
        gains = [
            math.log1p(float(jac[i] @ inv @ jac[i]) / DEFAULT_NOISE**2) / _unrun_cost(cands[i], done, by_id)
            for i in free
        ]
        best = free[int(np.argmax(gains))]
        info += _fisher(jac[best : best + 1])
        free.remove(best)
        done |= {cands[best].job_id, cands[best].parent or ""}
        out.append(cands[best].job_id)
    return out


def _fisher(jac: np.ndarray) -> np.ndarray:
    out: np.ndarray = jac.T @ jac / DEFAULT_NOISE**2
    return out


def _unrun_cost(c: Candidate, done: set[str], by_id: Mapping[str, Candidate]) -> float:
    parent = by_id.get(c.parent or "")
    return c.cost + (parent.cost if parent is not None and parent.job_id not in done else 0.0)


# ------------------------------------------------------------------ the score
def g_at(report: TransferReport, size: str, source: str) -> Estimate | None:
    """The G of ``source`` at ``size`` as the goal reads it (None: not in a joint fit there)."""
    gap = report.gap_fit(size)
    if gap is None or source not in gap.sources:
        return None
    return g_estimates(gap, source)[0]


def width_ratio(share: Estimate | None, grid: Estimate | None) -> float:
    """One target's interval at a share against the grid's (module docstring)."""
    if grid is None or (not grid.identified and grid.upper is None):
        return 1.0
    if grid.identified and grid.ci95 is not None:
        if share is None or not share.identified or share.ci95 is None:
            return math.inf
        return (share.ci95[1] - share.ci95[0]) / (grid.ci95[1] - grid.ci95[0])
    top = None
    if share is not None:
        top = share.upper if share.upper is not None else (share.ci95[1] if share.ci95 is not None else None)
    return math.inf if top is None or grid.upper is None else top / grid.upper


@dataclass(frozen=True)
class Point:
    """One method's state at one share of one draw."""

    jobs: tuple[str, ...]
    flops_share: float
    seconds_share: float
    ratio: float
    outcomes: dict[str, str]  # target -> worlds.outcome


def score(sim: Sim, jobs: Sequence[str]) -> Point:
    pool = sim.pool
    report, grid = sim.report(jobs), sim.report(grid_order(pool))
    truth = truths(sim.world)
    ratios, outcomes = [], {}
    for size in pool.goal.sizes:
        for src in pool.goal_sources():
            est = g_at(report, size, src)
            ratios.append(width_ratio(est, g_at(grid, size, src)))
            outcomes[f"G/{src}/{size}"] = outcome(est, truth.get(f"G/{src}/{size}"))
    by_id = sim.by_id
    return Point(
        tuple(jobs),
        flops_of(jobs, by_id) / pool.flops,
        sum(job_seconds(by_id[j]) for j in set(jobs)) / pool.seconds,
        max(ratios),
        outcomes,
    )


def one_draw(args: tuple[str, int, int, tuple[float, ...], int]) -> dict[str, Any]:
    """Every method on draw ``seed`` of world ``name``, scored at every share."""
    name, seed, bootstrap, shares, batch = args
    world = design_worlds()[WORLDS[name]]
    pool = demo_pool(world)
    sim = Sim(world, pool, seed, bootstrap)
    t0 = time.perf_counter()
    adaptive = run_adaptive(sim, batch)
    orders = {
        "adaptive": list(adaptive.order),
        "grid order": grid_order(pool),
        "random": random_order(pool, seed),
        "cheapest": cheapest_order(pool),
        "D-optimal": d_optimal_order(sim),
    }
    points = {m: {s: score(sim, prefix(o, s * pool.flops, sim.by_id)) for s in shares} for m, o in orders.items()}
    return {
        "world": name,
        "seed": seed,
        "orders": orders,
        "points": points,
        "stop": adaptive.stop,
        "stopped": score(sim, adaptive.order),
        "grid": score(sim, grid_order(pool)),
        "refits": adaptive.refits,
        "reports": len(sim.cache),
        "seconds": time.perf_counter() - t0,
    }


# ------------------------------------------------------------------ the summary
def smallest_share(draws: Sequence[Mapping[str, Any]], method: str, shares: Sequence[float]) -> float | None:
    """The smallest share at which at least ``MEETS`` of the draws meet the criterion."""
    for s in sorted(shares):
        if meet_rate(draws, method, s) >= MEETS:
            return s
    return None


def meet_rate(draws: Sequence[Mapping[str, Any]], method: str, share: float) -> float:
    return sum(d["points"][method][share].ratio <= CRITERION for d in draws) / len(draws)


def coverage(points: Iterable[Point]) -> tuple[int, int, int]:
    """(covered, identified, one-sided bounds that missed) over every target of ``points``."""
    outs = [o for p in points for o in p.outcomes.values()]
    return outs.count("covered"), outs.count("covered") + outs.count("missed"), outs.count("bound_missed")


def summarise(name: str, draws: Sequence[Mapping[str, Any]], shares: Sequence[float]) -> dict[str, Any]:
    rows = []
    for m in METHODS:
        for s in shares:
            pts = [d["points"][m][s] for d in draws]
            rows.append(
                {
                    "method": m,
                    "share": s,
                    "meets": meet_rate(draws, m, s),
                    "median_ratio": statistics.median(p.ratio for p in pts),
                    "coverage": coverage(pts),
                    "seconds_share": statistics.median(p.seconds_share for p in pts),
                }
            )
    smallest = {m: smallest_share(draws, m, shares) for m in METHODS}
    return {
        "world": name,
        "rows": rows,
        "smallest": smallest,
        "smallest_seconds": {
            m: None if s is None else statistics.median(d["points"][m][s].seconds_share for d in draws)
            for m, s in smallest.items()
        },
        "stop_share": statistics.median(d["stopped"].flops_share for d in draws),
        "stop_seconds": statistics.median(d["stopped"].seconds_share for d in draws),
        "stop_reasons": Counter(d["stop"] for d in draws),
        "left_short": left_short(draws),
    }


IDENTIFIED = ("covered", "missed")


def left_short(draws: Sequence[Mapping[str, Any]]) -> Counter[str]:
    """How the adaptive design's last state left the G the full grid identifies, per target and
    draw: ``identified`` or its outcome there (``bound_ok``/``bound_missed``: bounded, ``absent``:
    withdrawn or not fitted, ``not_identified``)."""
    out: Counter[str] = Counter()
    for d in draws:
        for q, grid in d["grid"].outcomes.items():
            if grid in IDENTIFIED:
                at_stop = d["stopped"].outcomes[q]
                out["identified" if at_stop in IDENTIFIED else at_stop] += 1
    return out


def _fmt_share(s: float | None) -> str:
    return "not within the grid" if s is None else f"{s:.2f}"


def print_summary(summary: Mapping[str, Any], n: int, bootstrap: int, batch: int, wall: float) -> None:
    print(
        f"World {summary['world']!r}: {n} draws, bootstrap {bootstrap}, batch {batch}; criterion: every goal G's "
        f"95% interval at most {CRITERION}x the full grid's in the same draw ({wall:.0f} s)"
    )
    head = f"{'method':<11} {'share':>5} {'meets':>6} {'median ratio':>13} {'G coverage':>15} {'job-s share':>12}"
    print(head)
    print("-" * len(head))
    for r in summary["rows"]:
        cov, ident, bad = r["coverage"]
        cov_s = f"{cov / ident:.2f} ({cov}/{ident})" if ident else "- (0/0)"
        print(
            f"{r['method']:<11} {r['share']:>5.2f} {r['meets']:>6.2f} {r['median_ratio']:>13.2f} {cov_s:>15}"
            f"{'!' if bad else ' '}{r['seconds_share']:>11.2f}"
        )
    print("meets: share of draws within the criterion; G coverage: intervals covering the truth among identified;")
    print("job-s share: the jobs' measured demo wall times over the grid's (median); '!': a one-sided bound missed")
    print(f"smallest share with >= {MEETS:.0%} of draws meeting the criterion (est FLOPs; job-seconds):")
    for m in METHODS:
        s, js = summary["smallest"][m], summary["smallest_seconds"][m]
        print(f"  {m:<11} {_fmt_share(s)}" + ("" if js is None else f" (job-s {js:.2f})"))
    reasons = ", ".join(f"{why} x{k}" for why, k in summary["stop_reasons"].most_common())
    print(
        f"adaptive design stopped at a median {summary['stop_share']:.2f} of the grid's est FLOPs "
        f"({summary['stop_seconds']:.2f} of its job-seconds); stop reasons: {reasons}"
    )
    short = ", ".join(f"{k} x{n}" for k, n in summary["left_short"].most_common())
    print(f"the G the full grid identifies, where the adaptive design stopped: {short}")


def main(
    tiny: bool = False, draws: int = DRAWS, world: str = "demo", processes: int = 1, bootstrap: int = BOOTSTRAP
) -> dict[str, Any]:
    machine = _machine.reference(tiny=tiny)
    shares: tuple[float, ...] = TINY["shares"] if tiny else SHARES
    names: tuple[str, ...] = TINY["worlds"] if tiny else (("demo", "near") if world == "both" else (world,))
    n, boot = (TINY["draws"], TINY["bootstrap"]) if tiny else (draws, bootstrap)
    out: dict[str, Any] = {"shares": shares, "bootstrap": boot, "batch": BATCH, "worlds": {}}
    for name in names:
        t0 = time.perf_counter()
        jobs = [(name, seed, boot, shares, BATCH) for seed in range(n)]
        results = _map(jobs, processes)
        summary = summarise(name, results, shares)
        print_summary(summary, n, boot, BATCH, time.perf_counter() - t0)
        out["worlds"][name] = {"draws": results, "summary": summary, "wall_s": time.perf_counter() - t0}
    head = "demo" if "demo" in out["worlds"] else names[0]
    figure = out["worlds"][head]["summary"]["smallest"]["adaptive"]
    out["figure"] = math.inf if figure is None else figure
    _machine.report(machine)
    print(f"adaptive_share_of_grid {out['figure']:.2f}" if figure is not None else "adaptive_share_of_grid inf")
    return out


def _map(jobs: list[tuple[str, int, int, tuple[float, ...], int]], processes: int) -> list[dict[str, Any]]:
    if processes <= 1:
        return [one_draw(j) for j in jobs]
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        return pool.map(one_draw, jobs, chunksize=1)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=DRAWS)
    ap.add_argument("--world", choices=("demo", "near", "both"), default="demo")
    ap.add_argument("--processes", type=int, default=1)
    ap.add_argument("--tiny", action="store_true")
    a = ap.parse_args()
    main(tiny=a.tiny, draws=a.draws, world=a.world, processes=a.processes)
