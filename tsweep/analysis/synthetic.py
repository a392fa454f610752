"""Summary tables generated from known laws: the ground truth for tests and benchmarks.

A :class:`Design` is a sweep's shape: sizes (name -> N), the scratch D axis, the fine-tune D_F
axis, the pre-training checkpoints p and the sources. ``Design.of(sweep)`` reads it off a sweep
(every shipped YAML: :func:`shipped_designs`), so simulations follow the grids tsweep actually
runs; ``DEFAULT_DESIGN`` is a wide grid on which every law is identified.

A table has the schema of ``tsweep.core.store.SUMMARY_SCHEMA``: scratch runs on the (N, D) grid
from a Chinchilla law, one pre-training job per (source, size), and fine-tunes on the (p, D_F)
grid per (source, size). Fine-tune losses follow one of two laws (a single set of runs cannot
follow both exactly):

- ``mode="hernandez"``: L = scratch(N, D_F + k D_F^alpha N^beta), the fine-tune reaches the loss
  of a scratch model given D_T extra tokens (Hernandez et al. 2021, arXiv 2102.01293, eq. 1.2);
  every checkpoint is generated as if it were the final one.
- ``mode="barnett"``: L = (A p^-alpha + G) f^-beta + E (Barnett 2024, arXiv 2408.16947), the same
  for every size.

Noise is multiplicative, log-normal on the loss (``noise`` = its standard deviation in log
space), as the Huber-on-log objective assumes.

:func:`scaled_truths` gives laws in a design's own units (losses of 1.2-3 nats over its axes,
like tsweep's CPU runs), and :func:`gap_coverage` measures how often the report's 95% interval
for G holds the true G on simulations of a design (tests/test_analysis_coverage.py,
benchmarks/coverage.py).
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from tsweep.analysis.laws import get_law
from tsweep.analysis.transfer import transfer_report
from tsweep.core.sizes import get_size
from tsweep.core.store import SCHEMA_VERSION, SUMMARY_SCHEMA

# Small-model scale (N ~ 1e5..1e7): values in the range tsweep's CPU ladders produce.
SCRATCH_TRUTH = {"A": 60.0, "B": 80.0, "E": 1.7, "alpha": 0.3, "beta": 0.25}
# Hernandez et al. 2021, Fig. 1 / sec. 1: text -> python and (text + non-python code) -> python.
HERNANDEZ_TRUTH = {
    "text": {"k": 1.9e4, "alpha": 0.18, "beta": 0.38},
    "code": {"k": 2.1e5, "alpha": 0.096, "beta": 0.38},
}
# Barnett-form truths chosen so that G, the A p^-alpha term and E are all resolvable on the grid.
BARNETT_TRUTH = {
    "text": {"A": 3.16e5, "alpha": 0.5, "G": 40.0, "beta": 0.3, "E": 1.7},
    "code": {"A": 3.16e5, "alpha": 0.5, "G": 10.0, "beta": 0.3, "E": 1.7},
}


@dataclass(frozen=True)
class Design:
    """A sweep's shape; see the module docstring."""

    name: str
    sizes: Mapping[str, int]
    scratch_d: tuple[float, ...]
    finetune_d: tuple[float, ...]
    pretrain_p: tuple[float, ...]
    sources: tuple[str, ...]

    @classmethod
    def of(cls, sweep: Any) -> "Design":
        """The shape of a ``tsweep.sweeps.schema.Sweep``: its sizes, axes and p values."""
        p = set()
        if sweep.pretrain is not None and sweep.pretrain_sources:
            p |= {float(x) for x in (*sweep.pretrain.checkpoints, sweep.pretrain.tokens)}
        for model in sweep.pretrained.values():
            p |= {float(x) for x in model.revisions.values()}
        return cls(
            name=sweep.name,
            sizes={s: get_size(s).n_params for s in sweep.model_sizes},
            scratch_d=tuple(float(d) for d in sweep.scratch_axis),
            finetune_d=tuple(float(d) for d in sweep.finetune_tokens),
            pretrain_p=tuple(sorted(p)),
            sources=tuple(s for s in sweep.sources if s != "scratch"),
        )

    def with_p_span(self, span: float, points: int = 4) -> "Design":
        """The same design with ``points`` checkpoints spread geometrically over ``span``x up to
        its final p: how a sweep widened for the gap law would look (issue 12 asks for >= 32x)."""
        top = max(self.pretrain_p)
        p = tuple(float(x) for x in np.geomspace(top / span, top, points))
        return Design(f"{self.name}, p over {span:g}x", self.sizes, self.scratch_d, self.finetune_d, p, self.sources)

    def largest(self) -> "Design":
        """The same design at its largest size only (where the headline G is read)."""
        name, n = max(self.sizes.items(), key=lambda kv: kv[1])
        return Design(self.name, {name: n}, self.scratch_d, self.finetune_d, self.pretrain_p, self.sources)


DEFAULT_DESIGN = Design(
    name="synthetic",
    sizes={"xs": 200_000, "s": 1_000_000, "m": 5_000_000, "l": 25_000_000},
    scratch_d=(1e6, 4e6, 1.6e7, 6.4e7, 2.56e8, 1e9),
    finetune_d=(1e5, 3e5, 1e6, 3e6),
    pretrain_p=(1e7, 3e7, 1e8, 3e8, 1e9),
    sources=("text", "code"),
)


def shipped_designs() -> dict[str, Design]:
    """The design of every sweep YAML shipped in ``tsweep/sweeps``."""
    from importlib import resources

    from tsweep.sweeps.schema import load_sweep

    out = {}
    for entry in sorted(resources.files("tsweep.sweeps").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            with resources.as_file(entry) as path:
                sweep = load_sweep(path)
            out[sweep.name] = Design.of(sweep)
    return out


@dataclass(frozen=True)
class Truths:
    scratch: Mapping[str, float]
    barnett: Mapping[str, Mapping[str, float]]
    hernandez: Mapping[str, Mapping[str, float]] = field(default_factory=dict)


DEFAULT_TRUTHS = Truths(SCRATCH_TRUTH, BARNETT_TRUTH, HERNANDEZ_TRUTH)


def _geo_mid(xs: Sequence[float]) -> float:
    return math.exp(0.5 * (math.log(min(xs)) + math.log(max(xs))))


def scaled_truths(design: Design) -> Truths:
    """Laws in a design's units, shaped like tsweep's CPU runs on the python target.

    Scratch: E = 1.2, the size term 0.4 nats at the middle size (alpha 0.3), the data term
    1.2 nats at the smallest D (beta 0.4): about 2.8 nats at the least data, 1.7 at the most.
    Gap law per source: E = 1.2, beta = 0.3, alpha = 0.5, G such that G f^-beta is 0.5 nats at
    the middle fine-tune budget for the first source, falling to half that for the last (a
    spread of transfer quality like prose vs prose+code), and A such that the pre-training term
    equals G at the middle of the p axis, so both terms are present over the design. D_T law:
    Hernandez et al.'s alpha 0.18 and beta 0.38, k such that D_T = 2 D_F at the smallest D_F and
    middle N.
    """
    n_mid, d_min = _geo_mid(list(design.sizes.values())), min(design.scratch_d)
    scratch = {"E": 1.2, "alpha": 0.3, "beta": 0.4, "A": 0.4 * n_mid**0.3, "B": 1.2 * d_min**0.4}
    f_mid, p_mid = _geo_mid(design.finetune_d), _geo_mid(design.pretrain_p)
    k = len(design.sources)
    barnett, hernandez = {}, {}
    for i, s in enumerate(design.sources):
        g = 0.5 * f_mid**0.3 * 0.5 ** (i / max(1, k - 1))
        barnett[s] = {"A": g * p_mid**0.5, "alpha": 0.5, "G": g, "beta": 0.3, "E": 1.2}
        kk = 2.0 * min(design.finetune_d) ** (1 - 0.18) * n_mid**-0.38 * (1.0 + i)
        hernandez[s] = {"k": kk, "alpha": 0.18, "beta": 0.38}
    return Truths(scratch, barnett, hernandez)


def _row(**kw: Any) -> dict[str, Any]:
    base = {
        "schema_version": SCHEMA_VERSION, "sweep": "synthetic", "target": "target", "attempt": 0, "status": "ok",
        "reason": None, "best_step": 100, "best_tokens": None, "tokens_seen": 0, "data_chars": None,
        "epochs": 1.0, "wall_time_s": 1.0, "flops": 0.0,
        "finished_at": _dt.datetime(2024, 1, 1, tzinfo=_dt.timezone.utc),
    }
    base.update(kw)
    base["best_tokens"] = base["best_tokens"] if base["best_tokens"] is not None else int(base["data_tokens"])
    base["tokens_seen"] = int(base["tokens_seen"] or base["data_tokens"])
    base["flops"] = 6.0 * base["n_params"] * base["tokens_seen"]
    return base


def synthetic_summary(
    design: Design = DEFAULT_DESIGN,
    *,
    mode: str = "hernandez",
    truths: Truths = DEFAULT_TRUTHS,
    noise: float = 0.003,
    seed: int = 0,
    finetunes_only: bool = False,
) -> pa.Table:
    """A summary table whose fine-tunes follow ``mode``'s law; see the module docstring.
    ``finetunes_only`` leaves out scratch and pre-training jobs (all a gap fit reads)."""
    if mode not in ("hernandez", "barnett"):
        raise ValueError(f"mode: must be 'hernandez' or 'barnett', got {mode!r}")
    rng = np.random.default_rng(seed)
    chin, barn = get_law("chinchilla"), get_law("barnett")
    noisy = lambda x: float(x * np.exp(noise * rng.standard_normal()))  # noqa: E731
    rows: list[dict[str, Any]] = []
    for size, n in design.sizes.items():
        for d in () if finetunes_only else design.scratch_d:
            loss = chin.predict(truths.scratch, N=n, D=d)
            rows.append(_row(job_id=f"scratch-{size}-{d:.0f}", kind="scratch", source="scratch", size=size,
                             n_params=n, data_tokens=int(d), pretrain_tokens=0, best_eval_loss=noisy(loss)))
    for src in design.sources:
        for size, n in design.sizes.items():
            if not finetunes_only:
                rows.append(_row(job_id=f"pretrain-{src}-{size}", kind="pretrain", source=src, size=size,
                                 n_params=n, data_tokens=int(max(design.pretrain_p)), pretrain_tokens=0,
                                 best_eval_loss=noisy(3.0)))
            for p in design.pretrain_p:
                for f in design.finetune_d:
                    if mode == "hernandez":
                        h = truths.hernandez[src]
                        d_e = f + h["k"] * f ** h["alpha"] * n ** h["beta"]
                        loss = chin.predict(truths.scratch, N=n, D=d_e)
                    else:
                        loss = barn.predict(truths.barnett[src], p=p, f=f)
                    rows.append(_row(job_id=f"ft-{src}-{size}-{p:.0f}-{f:.0f}", kind="finetune", source=src,
                                     size=size, n_params=n, data_tokens=int(f), pretrain_tokens=int(p),
                                     best_eval_loss=noisy(loss)))
    return pa.Table.from_pylist(rows, schema=SUMMARY_SCHEMA)


def finishing_order(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Rows in the order a sweep finishes them: a job's time is its training compute (N x
    tokens), a fine-tune starts when its pre-training run ends, so small sizes and scratch runs
    come first and the large fine-tunes last."""
    ends: dict[tuple[str, str], float] = {}
    for r in rows:
        if r["kind"] == "pretrain":
            ends[(r["source"], r["size"])] = float(r["n_params"]) * float(r["data_tokens"])

    def finish(r: Mapping[str, Any]) -> float:
        own = float(r["n_params"]) * float(r["data_tokens"])
        return own + (ends.get((r["source"], r["size"]), 0.0) if r["kind"] == "finetune" else 0.0)

    return sorted(rows, key=lambda r: (finish(r), r["job_id"]))


@dataclass(frozen=True)
class Coverage:
    """How a design's G intervals behave on simulations: per replicate and source."""

    design: str
    noise: float
    replicates: int
    identified: int  # (replicate, source) pairs with G identified
    covered: int  # ... whose 95% interval holds the true G
    total: int  # (replicate, source) pairs

    @property
    def honest(self) -> float:
        """Share of pairs where the interval holds the truth or the report says "not identified"."""
        return (self.covered + self.total - self.identified) / self.total

    @property
    def coverage(self) -> float | None:
        """Share of identified pairs whose interval holds the truth (None if none identified)."""
        return self.covered / self.identified if self.identified else None


def gap_coverage(
    design: Design, *, noise: float, replicates: int, bootstrap: int, seed: int = 0, truths: Truths | None = None
) -> Coverage:
    """Simulate ``design``'s fine-tunes ``replicates`` times under its scaled gap law with
    log-normal ``noise``, run the transfer report, and count how often each source's headline G
    is identified and its interval holds the truth."""
    truths = truths or scaled_truths(design)
    identified = covered = total = 0
    for r in range(replicates):
        table = synthetic_summary(design, mode="barnett", truths=truths, noise=noise, seed=seed + r,
                                  finetunes_only=True)
        report = transfer_report(table, bootstrap=bootstrap, seed=seed + r)
        for s in report.sources:
            total += 1
            if s.G.identified:
                identified += 1
                lo, hi = s.G.ci95
                covered += lo <= truths.barnett[s.source]["G"] <= hi
    return Coverage(design.name, noise, replicates, identified, covered, total)
