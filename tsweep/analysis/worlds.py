"""Simulated sweeps whose answers are known: the ground truth an interval's coverage is measured on.

A :class:`World` is a sweep's design (sizes, scratch budgets D, checkpoints p, fine-tune budgets
f) and the laws that generate its losses, with the noise measured on real runs:

- from scratch, per size N: L(D) = E_N + B_N D^-b_N (the per-size plateau law of the report);
- fine-tuned from checkpoint p of source s: L(p, f) = (A_s p^-alpha_s + G_s) f^-beta + E_N
  (Barnett 2024, arXiv 2408.16947), with the same E_N as the scratch curve: a model of that size
  given unlimited target data reaches the same floor whatever it was pre-trained on.

Misspecification a world can carry (the report's laws cannot follow it; an honest report either
covers the truth anyway or says "not identified"):

- ``noise_slope``: run-to-run noise that grows with f, sigma(f) = within (f / f_min)^slope;
- ``bend``: the fine-tune curve bends in log f, its exponent beta + bend log(f / f_mid);
- ``between``: an offset shared by every fine-tune of one checkpoint (its luck);
- a source with G = 0 (its pre-training is as good as target data), a useless one (A = 0: the
  loss does not fall with p) and a rising one (``rise`` > 0: L grows as (p / p_min)^rise,
  Hernandez et al. 2021's ossification), for which no G exists.

:func:`truths` gives every number the report prints with an interval, computed from the laws
(the multiplier from the scratch law inverted at the noiseless fine-tuned loss). :func:`score`
reads a report against them: per quantity, whether it was identified and covered, bounded from
above and covered, not identified, or printed and wrong. ``tests/test_coverage.py`` runs the
report on hundreds of draws per world and holds the intervals to their promise.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from tsweep.analysis.records import Estimate, TransferReport
from tsweep.core.store import SCHEMA_VERSION, SUMMARY_SCHEMA


@dataclass(frozen=True)
class Source:
    """One pre-training source's term in the gap law at one size; ``rise`` > 0 makes its loss
    rise with p (no G exists then)."""

    A: float
    alpha: float
    G: float
    rise: float = 0.0
    beta_shift: float = 0.0  # its own f exponent, beta + beta_shift: a source the shared beta cannot hold


@dataclass(frozen=True)
class Size:
    """One model size: its scratch law, the shared gap-law exponent and every source's term."""

    name: str
    n_params: int
    E: float
    B: float
    b: float
    beta: float
    sources: Mapping[str, Source]


@dataclass(frozen=True)
class World:
    """A design and the laws behind it; see the module docstring."""

    name: str
    sizes: tuple[Size, ...]
    scratch_d: tuple[float, ...]
    p_axis: tuple[float, ...]
    f_axis: tuple[float, ...]
    within: float  # run-to-run noise in log loss at the smallest f
    between: float = 0.0  # per-checkpoint offset in log loss
    noise_slope: float = 0.0
    bend: float = 0.0
    misspecified: bool = False  # the report's laws cannot follow it (the coverage bar is 90%, not 93%)
    # replicate runs as the sweep declares them (tsweep.analysis.noise): (source, size, p, f) cells
    # re-run from the same checkpoint, and (source, size, f values) of a second pre-training lineage
    # whose every checkpoint is fine-tuned at those f
    replicate_cells: tuple[tuple[str, str, float, float], ...] = ()
    replicate_lineage: tuple[str, str, tuple[float, ...]] | None = None
    notes: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def source_names(self) -> list[str]:
        return sorted({s for size in self.sizes for s in size.sources})

    def sigma(self, f: float) -> float:
        """The run-to-run noise of a run on f target tokens (scratch runs: f = D, clipped to
        the fine-tune range)."""
        f = min(max(f, min(self.f_axis)), max(self.f_axis))
        return float(self.within * (f / min(self.f_axis)) ** self.noise_slope)

    def finetune_loss(self, size: Size, source: str, p: float, f: float) -> float:
        """The noiseless fine-tuned loss."""
        s = size.sources[source]
        f_mid = math.sqrt(min(self.f_axis) * max(self.f_axis))
        beta = size.beta + s.beta_shift + self.bend * math.log(f / f_mid)
        loss = (s.A * p**-s.alpha + s.G) * f**-beta + size.E
        return float(loss * (p / min(self.p_axis)) ** s.rise)

    def scratch_loss(self, size: Size, d: float) -> float:
        return float(size.E + size.B * d**-size.b)


def _row(
    job_id: str,
    kind: str,
    source: str,
    size: Size,
    d: float,
    p: float,
    loss: float,
    replicate: int = 0,
    lineage: int = 0,
) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "job_id": job_id,
        "sweep": "world",
        "kind": kind,
        "source": source,
        "target": "target",
        "size": size.name,
        "n_params": size.n_params,
        "data_tokens": int(d),
        "pretrain_tokens": int(p),
        "attempt": 0,
        "status": "ok",
        "reason": None,
        "best_eval_loss": loss,
        "best_step": 100,
        "best_tokens": int(d),
        "tokens_seen": int(d),
        "data_chars": None,
        "epochs": 1.0,
        "wall_time_s": 1.0,
        "flops": 6.0 * size.n_params * d,
        "finished_at": _dt.datetime(2024, 1, 1, tzinfo=_dt.timezone.utc),
        "seed": 10_000 * replicate,
        "replicate": replicate,
        "lineage": lineage,
    }


def draw(world: World, seed: int) -> pa.Table:
    """One simulated summary table of ``world``: every scratch run, every fine-tune and every
    replicate, with multiplicative log-normal noise (a term per run at :meth:`World.sigma`, and
    an offset per checkpoint, which a replicate of the same checkpoint shares)."""
    rng = np.random.default_rng(seed)
    rows = []
    offsets: dict[tuple[str, str, float], float] = {}

    def finetune(size: Size, src: str, p: float, f: float, replicate: int = 0, lineage: int = 0) -> None:
        key = (src, size.name, p) if lineage == 0 else (f"{src}~{lineage}", size.name, p)
        if key not in offsets:
            offsets[key] = world.between * rng.standard_normal()
        noise = offsets[key] + world.sigma(f) * rng.standard_normal()
        loss = world.finetune_loss(size, src, p, f) * math.exp(noise)
        job = f"f-{src}-{size.name}-{p:.0f}-{f:.0f}-r{replicate}"
        rows.append(_row(job, "finetune", src, size, f, p, loss, replicate, lineage))

    for size in world.sizes:
        for d in world.scratch_d:
            loss = world.scratch_loss(size, d) * math.exp(world.sigma(d) * rng.standard_normal())
            rows.append(_row(f"s-{size.name}-{d:.0f}", "scratch", "scratch", size, d, 0, loss))
        for src in sorted(size.sources):
            for p in world.p_axis:
                for f in world.f_axis:
                    finetune(size, src, p, f)
    by_name = {s.name: s for s in world.sizes}
    for src, size_name, p, f in world.replicate_cells:
        finetune(by_name[size_name], src, p, f, replicate=1)
    if world.replicate_lineage is not None:
        src, size_name, fs = world.replicate_lineage
        for p in world.p_axis:
            for f in fs:
                finetune(by_name[size_name], src, p, f, replicate=1, lineage=1)
    return pa.Table.from_pylist(rows, schema=SUMMARY_SCHEMA)


# ------------------------------------------------------------------ the truth and the score
def truths(world: World, report: TransferReport | None = None) -> dict[str, float]:
    """Quantity -> true value, for every number the report prints with an interval where the
    world's laws define it: ``plateau/<size>``, ``G/<source>/<size>``, ``G_loss/<source>/<size>``
    (at the largest f), ``dG/<a>-<b>/<size>`` and ``dG_loss/...``, and ``multiplier/<source>``
    at the point the report reads it (``report``'s ``multiplier_at``; the world's largest size
    and smallest f without one). A rising source has no G."""
    out: dict[str, float] = {}
    f_ref = max(world.f_axis)
    for size in world.sizes:
        out[f"plateau/{size.name}"] = size.E
        gaps = {n: s.G for n, s in size.sources.items() if s.rise == 0}
        # the f exponent at f_ref, with the world's bend (and a source's own shift)
        beta_ref = size.beta + world.bend * math.log(f_ref / math.sqrt(min(world.f_axis) * f_ref))
        for n, g in gaps.items():
            out[f"G/{n}/{size.name}"] = g
            out[f"G_loss/{n}/{size.name}"] = g * f_ref ** -(beta_ref + size.sources[n].beta_shift)
        # gaps on one scale compare; a source with its own f exponent has none in common with the others
        names = sorted(n for n in gaps if size.sources[n].beta_shift == 0)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                out[f"dG/{a}-{b}/{size.name}"] = gaps[a] - gaps[b]
                out[f"dG_loss/{a}-{b}/{size.name}"] = (gaps[a] - gaps[b]) * f_ref**-beta_ref
    largest = max(world.sizes, key=lambda s: s.n_params)
    for src in world.source_names:
        at = None if report is None else next((s.multiplier_at for s in report.sources if s.source == src), None)
        n_at = float(at["N"]) if at else float(largest.n_params)
        f = float(at["D_F"]) if at else min(world.f_axis)
        size = next(s for s in world.sizes if s.n_params == n_at)
        if src not in size.sources:
            continue
        loss = world.finetune_loss(size, src, max(world.p_axis), f)
        excess = loss - size.E
        if excess > 0:
            out[f"multiplier/{src}"] = (size.B / excess) ** (1.0 / size.b) / f
    return out


def reported(report: TransferReport) -> dict[str, Estimate]:
    """The numbers the report prints with an interval, under the names :func:`truths` uses: the
    plateaus, each source's headline G and G_loss (at the size it names; the largest size when
    it names none), its multiplier, and every comparison."""
    largest = report.gap_fits[-1].size if report.gap_fits else None
    out: dict[str, Estimate] = {f"plateau/{c.size}": c.plateau for c in report.curves}
    for s in report.sources:
        size = s.gap_size or largest
        out[f"G/{s.source}/{size}"], out[f"G_loss/{s.source}/{size}"] = s.G, s.G_loss
        out[f"multiplier/{s.source}"] = s.multiplier
    for c in report.comparisons:
        out[f"dG/{c.a}-{c.b}/{c.size}"] = c.d_G
        out[f"dG_loss/{c.a}-{c.b}/{c.size}"] = c.d_G_loss
    return out


OUTCOMES = ("covered", "missed", "bound_ok", "bound_missed", "not_identified", "absent")


def outcome(est: Estimate | None, truth: float | None) -> str:
    """How one printed number fares against the truth (``truth`` None: the world has none, so
    any interval printed is wrong): one of ``OUTCOMES``."""
    if est is None:
        return "absent"
    if est.identified:
        if truth is None:
            return "missed"
        lo, hi = est.ci95 if est.ci95 is not None else (math.nan, math.nan)
        return "covered" if lo <= truth <= hi else "missed"
    if est.upper is not None:
        return "bound_ok" if truth is not None and truth <= est.upper else "bound_missed"
    return "not_identified"


def score(world: World, report: TransferReport) -> dict[str, str]:
    """Quantity -> outcome for every number the report prints (:func:`reported`), against the
    world's truth (None where the world has none: a G for a rising source)."""
    truth = truths(world, report)
    return {q: outcome(est, truth.get(q)) for q, est in sorted(reported(report).items())}


@dataclass(frozen=True)
class Tally:
    """Outcomes of one quantity over many draws."""

    counts: Mapping[str, int]

    @property
    def draws(self) -> int:
        return sum(self.counts.values())

    @property
    def identified(self) -> int:
        return self.counts.get("covered", 0) + self.counts.get("missed", 0)

    @property
    def coverage(self) -> float:
        """Covered among identified draws (NaN when none was)."""
        return self.counts.get("covered", 0) / self.identified if self.identified else math.nan

    @property
    def wrong(self) -> int:
        """Draws where a printed number excluded the truth (an interval or a one-sided bound)."""
        return self.counts.get("missed", 0) + self.counts.get("bound_missed", 0)


def tally(scores: Sequence[Mapping[str, str]]) -> dict[str, Tally]:
    """Per quantity, the count of each outcome over ``scores`` (one per draw)."""
    keys = sorted({q for s in scores for q in s})
    return {q: Tally({o: n for o in OUTCOMES if (n := sum(s.get(q) == o for s in scores))}) for q in keys}


# ------------------------------------------------------------------ the worlds
# The demo as measured (tsweep/sweeps/demo.yaml, a run on a 2-core AMD EPYC, 2026-12-07): the joint
# gap law fitted per size (beta, A_s, alpha_s, G_s) and the per-size plateau law of the scratch runs
# (E, B, b). The gap law's own E (pico 2.330, mini 2.296) sits above the scratch plateau (2.292,
# 2.177) and above mini's measured scratch loss at 256k tokens (2.299), which no single floor can
# hold; the world takes the scratch plateau as the floor of both, the world a consistent law implies.
DEMO_SIZES = (
    Size(
        name="pico",
        n_params=12_768,
        E=2.2923,
        B=55.30,
        b=0.6324,
        beta=0.5349,
        sources={"d0.6": Source(A=3.364e9, alpha=1.6398, G=7.645), "d0.9": Source(A=7.506e5, alpha=0.9325, G=10.434)},
    ),
    Size(
        name="mini",
        n_params=150_080,
        E=2.1766,
        B=4.890,
        b=0.3033,
        beta=0.4279,
        sources={"d0.6": Source(A=6.081e5, alpha=1.0375, G=3.905), "d0.9": Source(A=7.841e9, alpha=1.8292, G=5.728)},
    ),
)
# The demo's axes (tsweep/sweeps/demo.yaml); pico's scratch curve starts at 4k in the demo, the
# world gives both sizes the same budgets.
DEMO_AXES = {
    "scratch_d": (1e3, 4e3, 16e3, 64e3, 256e3),
    "p_axis": (125e3, 500e3, 1e6, 2e6, 4e6),
    "f_axis": (1e3, 2e3, 4e3, 16e3),
}
# The demo's replicates (tsweep/sweeps/demo.yaml): d0.6 at pico re-run at p = 125k and 4M for every
# f, and pre-trained again with every checkpoint fine-tuned at f = 1k and 4k.
DEMO_REPLICATES = {
    "replicate_cells": tuple(("d0.6", "pico", p, f) for p in (125e3, 4e6) for f in (1e3, 2e3, 4e3, 16e3)),
    "replicate_lineage": ("d0.6", "pico", (1e3, 4e3)),
}
# The demo's noise: the gap fits' residual scale corrected for degrees of freedom, 0.48% (mini) and
# 0.74% (pico); a checkpoint offset of 0.2% (a fifth of the run-to-run variance, tsweep's choice
# where no replicate measured it).
DEMO_NOISE = {"within": 0.006, "between": 0.002}
F_MID = math.sqrt(DEMO_AXES["f_axis"][0] * DEMO_AXES["f_axis"][-1])  # the demo's middle f, 4k


def _with_source(sizes: tuple[Size, ...], name: str, make: Any) -> tuple[Size, ...]:
    """``sizes`` with one more source, ``make(size)`` its term at each size."""
    return tuple(Size(**{**s.__dict__, "sources": {**s.sources, name: make(s)}}) for s in sizes)


def design_worlds() -> dict[str, World]:
    """The worlds the coverage test runs: the demo as measured, and the demo broken in each way
    the report's laws cannot follow or its users will bring (module docstring)."""
    base = World(name="demo", sizes=DEMO_SIZES, **DEMO_AXES, **DEMO_NOISE, **DEMO_REPLICATES)  # type: ignore[arg-type]
    d06 = {s.name: s.sources["d0.6"] for s in DEMO_SIZES}
    d09 = {s.name: s.sources["d0.9"] for s in DEMO_SIZES}
    worlds = [
        base,
        # run-to-run noise 2.5x larger at f = 16k than at 1k (the demo's residuals grew 2-3x)
        World(**{**base.__dict__, "name": "noise grows with f", "within": 0.004, "noise_slope": 0.33}),
        # the f-exponent drifts by 0.03 per e-fold of f: a curve the power law in f cannot follow
        World(**{**base.__dict__, "name": "bent f-curve", "bend": 0.03, "misspecified": True}),
        # checkpoint luck twice the run-to-run noise (four times its variance)
        World(**{**base.__dict__, "name": "checkpoint offsets", "within": 0.003, "between": 0.006}),
        # a third source as good as target data (G = 0) with d0.6's pre-training term
        World(
            **{
                **base.__dict__,
                "name": "a source equal to the target",
                "sizes": _with_source(DEMO_SIZES, "near", lambda s: Source(d06[s.name].A, d06[s.name].alpha, 0.0)),
            }
        ),
        # a third source whose pre-training does nothing (A = 0): flat in p, worse than scratch
        World(
            **{
                **base.__dict__,
                "name": "a useless source",
                "sizes": _with_source(DEMO_SIZES, "flat", lambda s: Source(1e-9, 0.5, 2.5 * d09[s.name].G)),
            }
        ),
        # a third source with d0.9's loss at the middle f (4k) that falls faster with f (beta + 0.3,
        # its terms scaled by 4k^0.3 to keep the level): a shared beta
        # and E cannot hold it, and must not drag the others' gaps (the middle source of a
        # ground-truth sweep sat above its fitted curves, pulled by the shared beta and E)
        World(
            **{
                **base.__dict__,
                "name": "a source with its own f exponent",
                "sizes": _with_source(
                    DEMO_SIZES,
                    "apart",
                    lambda s: Source(
                        d09[s.name].A * F_MID**0.3, d09[s.name].alpha, d09[s.name].G * F_MID**0.3, beta_shift=0.3
                    ),
                ),
                "misspecified": True,
            }
        ),
        # a third source whose loss rises with p, 3.6% from 125k to 4M (the unrelated source of a
        # ground-truth sweep rose 2.75 -> 2.85): no G exists
        World(
            **{
                **base.__dict__,
                "name": "a rising source",
                "sizes": _with_source(
                    DEMO_SIZES, "rising", lambda s: Source(1e-9, 0.5, 2.5 * d09[s.name].G, rise=0.0103)
                ),
                "misspecified": True,
            }
        ),
    ]
    return {w.name: w for w in worlds}


def _one_draw(args: tuple[World, int, int]) -> dict[str, str]:
    from tsweep.analysis.transfer import transfer_report

    world, seed, bootstrap = args
    return score(world, transfer_report(draw(world, seed), bootstrap=bootstrap, seed=seed))


def simulate(world: World, draws: int, *, bootstrap: int = 200, seed: int = 0, processes: int = 1) -> dict[str, Tally]:
    """The report on ``draws`` simulated tables of ``world`` (seeds ``seed``, ``seed + 1``, ...),
    each scored against the truth, tallied per quantity; over ``processes`` worker processes."""
    jobs = [(world, seed + i, bootstrap) for i in range(draws)]
    if processes <= 1:
        return tally([_one_draw(j) for j in jobs])
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        return tally(pool.map(_one_draw, jobs, chunksize=1))
