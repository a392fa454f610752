"""The transfer report as typed objects: what ``analysis/transfer.py`` computes and every reader uses.

JSON exists only at the file boundary: the analysis actor writes ``TransferReport.to_json()`` to
``fits/latest.json``; ``tsweep gaps``, ``report``, ``advise``, the plots and the live view read
it back with ``TransferReport.from_json`` and use attributes. ``from_json(to_json(r))`` gives
back ``r``'s JSON exactly (a test checks it), non-finite floats travel as null
(``tsweep.core.jsonio``).

The objects, from the bottom up:

- :class:`ScratchCurve`: one size's from-scratch runs, its plateau L(N, inf), D(N) and the
  low-data limit it implies (Hernandez et al. 2021; ``analysis/scratch.py``);
- :class:`RunTransfer`: one fine-tune from a final pre-training checkpoint, its D_E, D_T,
  multiplier, whether D_E was extrapolated, and its flag (why it is or is not in the D_T law);
- :class:`GapFit`: the joint gap law of every source at one size (Barnett 2024; ``analysis/gap.py``),
  G and G in loss units per source;
- :class:`Comparison`: G of one source minus G of another at one size, with its interval;
- :class:`SourceTransfer`: a source's headline numbers (``HEADLINE_KEYS``) and its runs;
- :class:`TransferReport`: all of it, the sweep's noise level, and what was left out.

Every number is an :class:`~tsweep.analysis.identify.Estimate`: a value with its interval, or
null with the reason it is not identified.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from tsweep.analysis.fitter import FitResult
from tsweep.analysis.identify import Estimate
from tsweep.core.jsonio import num

# The numbers a source is summarised by: `tsweep gaps --json`, fits/history.jsonl, the live view.
HEADLINE_ESTIMATES = ("G", "G_loss", "k", "alpha", "beta", "multiplier")
HEADLINE_KEYS = (*HEADLINE_ESTIMATES, "gap_size", "f_ref", "multiplier_at", "n_runs", "n_dt_runs")
# Fine-tune flags (``RunTransfer.flag``): "ok" runs make the D_T law.
FLAGS = {
    "ok": "low-data, D_T > 0: in the D_T law",
    "high_data": "D_F > 0.1 D(N): outside Hernandez et al.'s low-data regime",
    "regime_unknown": "D(N) not identified at this size, so the regime is unknown",
    "no_transfer": "D_T <= 0: no better than scratch on the same data",
    "beyond_plateau": "loss at or below the scratch plateau L(N, inf): no finite D_E",
    "out_of_range": "loss outside the measured scratch curve and no per-size law to extrapolate with",
    "no_scratch": "fewer than 2 scratch runs at this size",
}


def _est(e: Estimate | None) -> dict[str, Any] | None:
    return None if e is None else e.to_json()


def _fit(f: FitResult | None) -> dict[str, Any] | None:
    return None if f is None else f.to_json()


def _float(x: Any) -> float:
    return math.nan if x is None else float(x)


@dataclass(frozen=True)
class ScratchCurve:
    size: str
    n_params: int
    d: tuple[float, ...]
    loss: tuple[float, ...]
    plateau: Estimate  # L(N, inf)
    data_limit: Estimate  # D(N)
    low_data_max: float | None  # the largest low-data D_F: 0.1 x D(N) (or its interval's lower end)
    basis: str  # what low_data_max comes from: "D(N)", "lower end of D(N)'s interval", "none"
    fit: FitResult | None
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "size": self.size, "n_params": self.n_params, "d": list(self.d), "loss": list(self.loss),
            "plateau": _est(self.plateau), "data_limit": _est(self.data_limit),
            "low_data_max": num(self.low_data_max) if self.low_data_max is not None else None, "basis": self.basis,
            "fit": _fit(self.fit), "warnings": list(self.warnings),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "ScratchCurve":
        return cls(
            size=d["size"], n_params=int(d["n_params"]), d=tuple(d["d"]), loss=tuple(d["loss"]),
            plateau=Estimate.from_json(d["plateau"]), data_limit=Estimate.from_json(d["data_limit"]),
            low_data_max=d.get("low_data_max"), basis=d["basis"], fit=FitResult.from_json(d.get("fit")),
            warnings=tuple(d.get("warnings", ())),
        )


@dataclass(frozen=True)
class RunTransfer:
    job_id: str
    size: str
    n_params: int
    d_f: float
    pretrain_tokens: int
    loss: float
    d_e: float  # NaN when there is none (see flag)
    d_t: float
    multiplier: float
    flag: str  # a key of FLAGS
    extrapolated: bool  # D_E from the per-size law beyond the measured scratch curve

    def to_json(self) -> dict[str, Any]:
        return {k: (num(v) if isinstance(v, float) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "RunTransfer":
        return cls(
            job_id=d["job_id"], size=d["size"], n_params=int(d["n_params"]), d_f=_float(d["d_f"]),
            pretrain_tokens=int(d["pretrain_tokens"]), loss=_float(d["loss"]), d_e=_float(d["d_e"]),
            d_t=_float(d["d_t"]), multiplier=_float(d["multiplier"]), flag=d["flag"],
            extrapolated=bool(d["extrapolated"]),
        )


@dataclass(frozen=True)
class GapFit:
    size: str
    n_params: int
    sources: tuple[str, ...]  # the sources in the joint fit, in the law's source order
    f_ref: float  # the largest D_F at this size: where G is also given in loss units
    fit: FitResult | None
    G: dict[str, Estimate]  # every source with fine-tunes at this size
    G_loss: dict[str, Estimate]  # G f_ref^-beta
    beta: Estimate
    E: Estimate
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "size": self.size, "n_params": self.n_params, "sources": list(self.sources), "f_ref": num(self.f_ref),
            "fit": _fit(self.fit), "G": {s: _est(e) for s, e in self.G.items()},
            "G_loss": {s: _est(e) for s, e in self.G_loss.items()}, "beta": _est(self.beta), "E": _est(self.E),
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "GapFit":
        return cls(
            size=d["size"], n_params=int(d["n_params"]), sources=tuple(d["sources"]), f_ref=_float(d["f_ref"]),
            fit=FitResult.from_json(d.get("fit")), G={s: Estimate.from_json(e) for s, e in d["G"].items()},
            G_loss={s: Estimate.from_json(e) for s, e in d["G_loss"].items()},
            beta=Estimate.from_json(d["beta"]), E=Estimate.from_json(d["E"]), warnings=tuple(d.get("warnings", ())),
        )

    def source_params(self, source: str) -> dict[str, float] | None:
        """One source's Barnett parameters (A, alpha, G, beta, E) from the joint optimum."""
        if self.fit is None or source not in self.sources:
            return None
        i = self.sources.index(source)
        p = self.fit.params
        return {"A": p[f"A_{i}"], "alpha": p[f"alpha_{i}"], "G": p[f"G_{i}"], "beta": p["beta"], "E": p["E"]}


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    size: str | None  # the size the difference is read at (the largest where both G are identified)
    f_ref: float | None
    dG: Estimate  # G_a - G_b
    dG_loss: Estimate  # (G_a - G_b) f_ref^-beta

    def to_json(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "size": self.size, "f_ref": None if self.f_ref is None else num(self.f_ref),
                "dG": _est(self.dG), "dG_loss": _est(self.dG_loss)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Comparison":
        return cls(a=d["a"], b=d["b"], size=d.get("size"), f_ref=d.get("f_ref"), dG=Estimate.from_json(d["dG"]),
                   dG_loss=Estimate.from_json(d["dG_loss"]))

    def statement(self) -> str:
        """What the difference says, in words."""
        if not self.dG.identified or self.dG.ci95 is None:
            return "no statement"
        lo, hi = self.dG.ci95
        if hi < 0:
            return f"{self.a} transfers better than {self.b} (smaller gap)"
        if lo > 0:
            return f"{self.b} transfers better than {self.a} (smaller gap)"
        return "no difference resolved (the interval contains 0)"


@dataclass(frozen=True)
class SourceTransfer:
    source: str
    n_runs: int  # ok fine-tunes of this source, every checkpoint
    n_dt_runs: int  # runs behind the D_T law
    G: Estimate
    G_loss: Estimate
    gap_size: str | None
    f_ref: float | None
    k: Estimate
    alpha: Estimate
    beta: Estimate
    multiplier: Estimate
    multiplier_at: dict[str, Any] | None  # {"D_F", "N", "basis": "law" | "measured"}
    hernandez: FitResult | None
    runs: tuple[RunTransfer, ...]
    warnings: tuple[str, ...] = ()

    def headline(self) -> dict[str, Any]:
        """The source and its HEADLINE_KEYS, as JSON."""
        j = self.to_json()
        return {"source": self.source, **{k: j[k] for k in HEADLINE_KEYS}}

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source, "n_runs": self.n_runs, "n_dt_runs": self.n_dt_runs, "G": _est(self.G),
            "G_loss": _est(self.G_loss), "gap_size": self.gap_size,
            "f_ref": None if self.f_ref is None else num(self.f_ref), "k": _est(self.k), "alpha": _est(self.alpha),
            "beta": _est(self.beta), "multiplier": _est(self.multiplier), "multiplier_at": self.multiplier_at,
            "hernandez": _fit(self.hernandez), "runs": [r.to_json() for r in self.runs], "warnings": list(self.warnings),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "SourceTransfer":
        e = Estimate.from_json
        return cls(
            source=d["source"], n_runs=int(d["n_runs"]), n_dt_runs=int(d["n_dt_runs"]), G=e(d["G"]),
            G_loss=e(d["G_loss"]), gap_size=d.get("gap_size"), f_ref=d.get("f_ref"), k=e(d["k"]),
            alpha=e(d["alpha"]), beta=e(d["beta"]), multiplier=e(d["multiplier"]),
            multiplier_at=d.get("multiplier_at"), hernandez=FitResult.from_json(d.get("hernandez")),
            runs=tuple(RunTransfer.from_json(r) for r in d.get("runs", ())), warnings=tuple(d.get("warnings", ())),
        )


@dataclass(frozen=True)
class TransferReport:
    sweep: str | None
    n_rows: int
    n_used: int
    left_out: dict[str, int]
    bootstrap: int
    seed: int
    noise: float | None  # the sweep's loss noise: residual standard deviation in log space
    noise_dof: int
    scratch: FitResult | None  # the global from-scratch law, E + A/N^alpha + B/D^beta
    curves: tuple[ScratchCurve, ...]
    gaps: tuple[GapFit, ...]
    sources: tuple[SourceTransfer, ...]
    comparisons: tuple[Comparison, ...]
    warnings: tuple[str, ...] = ()
    n_jobs_finished: int | None = None
    timestamp: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "sweep": self.sweep, "n_rows": self.n_rows, "n_used": self.n_used, "left_out": dict(self.left_out),
            "bootstrap": self.bootstrap, "seed": self.seed,
            "noise": None if self.noise is None else num(self.noise), "noise_dof": self.noise_dof,
            "n_jobs_finished": self.n_jobs_finished, "timestamp": self.timestamp,
            "scratch": _fit(self.scratch), "curves": [c.to_json() for c in self.curves],
            "gaps": [g.to_json() for g in self.gaps], "sources": [s.to_json() for s in self.sources],
            "comparisons": [c.to_json() for c in self.comparisons], "warnings": list(self.warnings),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "TransferReport":
        return cls(
            sweep=d.get("sweep"), n_rows=int(d["n_rows"]), n_used=int(d["n_used"]), left_out=dict(d["left_out"]),
            bootstrap=int(d["bootstrap"]), seed=int(d["seed"]), noise=d.get("noise"),
            noise_dof=int(d.get("noise_dof", 0)), scratch=FitResult.from_json(d.get("scratch")),
            curves=tuple(ScratchCurve.from_json(c) for c in d.get("curves", ())),
            gaps=tuple(GapFit.from_json(g) for g in d.get("gaps", ())),
            sources=tuple(SourceTransfer.from_json(s) for s in d.get("sources", ())),
            comparisons=tuple(Comparison.from_json(c) for c in d.get("comparisons", ())),
            warnings=tuple(d.get("warnings", ())), n_jobs_finished=d.get("n_jobs_finished"),
            timestamp=d.get("timestamp"),
        )

    def stamped(self, n_jobs_finished: int, timestamp: str | None) -> "TransferReport":
        """The report as of ``n_jobs_finished`` finished jobs, at ``timestamp``."""
        return replace(self, n_jobs_finished=n_jobs_finished, timestamp=timestamp)

    def source(self, name: str) -> SourceTransfer | None:
        return next((s for s in self.sources if s.source == name), None)

    def gap(self, size: str | None) -> GapFit | None:
        return next((g for g in self.gaps if g.size == size), None)

    def headline(self) -> list[dict[str, Any]]:
        """Per source, the HEADLINE_KEYS as JSON: fits/history.jsonl, `tsweep gaps --json`, the live view."""
        return [s.headline() for s in self.sources]

    def numbers(self) -> dict[str, Estimate]:
        """Every reported number by a path (``sources/prose/G``, ``gaps/micro/G/prose``, ...)."""
        out: dict[str, Estimate] = {}
        if self.scratch is not None:
            out.update({f"scratch/{k}": e for k, e in self.scratch.estimates.items()})
        for c in self.curves:
            out[f"curves/{c.size}/plateau"], out[f"curves/{c.size}/data_limit"] = c.plateau, c.data_limit
        for g in self.gaps:
            out.update({f"gaps/{g.size}/G/{s}": e for s, e in g.G.items()})
            out.update({f"gaps/{g.size}/G_loss/{s}": e for s, e in g.G_loss.items()})
            out[f"gaps/{g.size}/beta"], out[f"gaps/{g.size}/E"] = g.beta, g.E
        for s in self.sources:
            out.update({f"sources/{s.source}/{k}": getattr(s, k) for k in HEADLINE_ESTIMATES})
        for c in self.comparisons:
            out[f"comparisons/{c.a}-{c.b}/dG"], out[f"comparisons/{c.a}-{c.b}/dG_loss"] = c.dG, c.dG_loss
        return out

    def warm_starts(self) -> dict[str, tuple[float, ...]]:
        """Every fit's optimum (optimiser space) by key: one extra start for the next report."""
        out: dict[str, tuple[float, ...]] = {}
        if self.scratch is not None:
            out["scratch"] = self.scratch.theta
        for c in self.curves:
            if c.fit is not None:
                out[f"curve/{c.size}"] = c.fit.theta
        for g in self.gaps:
            if g.fit is not None:
                out[gap_key(g.size, g.sources)] = g.fit.theta
        for s in self.sources:
            if s.hernandez is not None:
                out[f"hernandez/{s.source}"] = s.hernandez.theta
        return out

    def format_table(self) -> str:
        return format_report(self)


def disagreements(a: TransferReport, b: TransferReport, *, rel: float = 1e-3, interval: float = 0.1) -> list[str]:
    """Every way two reports of the same rows disagree, as readable lines (none: they agree).

    The same numbers; for each, the same identified / not-identified verdict; identified values
    within ``rel``; interval ends within ``interval`` x the width of ``b``'s interval. What a live
    report and a cold refit of its final table must satisfy (tests/test_analysis_live.py,
    benchmarks/refit.py).
    """
    out = []
    x_all, y_all = a.numbers(), b.numbers()
    if set(x_all) != set(y_all):
        out.append(f"different numbers: {sorted(set(x_all) ^ set(y_all))}")
    for key in sorted(set(x_all) & set(y_all)):
        x, y = x_all[key], y_all[key]
        if x.identified != y.identified:
            out.append(f"{key}: {x.format()} vs {y.format()}")
        elif x.identified and not math.isclose(x.value, y.value, rel_tol=rel, abs_tol=1e-9):
            out.append(f"{key}: value {x.value:.6g} vs {y.value:.6g}")
        elif x.ci95 and y.ci95:
            width = max(y.ci95[1] - y.ci95[0], 1e-12)
            if max(abs(x.ci95[0] - y.ci95[0]), abs(x.ci95[1] - y.ci95[1])) > interval * width:
                out.append(f"{key}: interval {x.ci95} vs {y.ci95}")
    return out


def gap_key(size: str, sources: tuple[str, ...]) -> str:
    """Warm-start key of a joint gap fit: its size and the sources in it (which fix its law)."""
    return f"gap/{size}/{'|'.join(sources)}"


# ------------------------------------------------------------------ the table
def _cell(e: Estimate | None) -> str:
    return "-" if e is None or not e.identified else e.format()


def _columns(rows: list[list[str]], indent: str = "") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def format_report(r: TransferReport) -> str:
    """The report readable in a terminal: numbers where identified, '-' and the reason below otherwise."""
    left = ", ".join(f"{v} {k}" for k, v in r.left_out.items()) or "none"
    noise = "not measurable" if r.noise is None else f"sigma = {100 * r.noise:.2g}% in log loss, {r.noise_dof} dof"
    lines = [f"Transfer report: sweep {r.sweep or '?'}; {r.n_used} of {r.n_rows} summary rows in fits "
             f"(left out: {left}); bootstrap {r.bootstrap} (parametric; noise {noise})"]
    unidentified: list[str] = []

    def note(label: str, e: Estimate | None) -> None:
        if e is not None and not e.identified and e.reason:
            unidentified.append(f"- {label}: {e.reason}")

    lines.append("From scratch per size (Hernandez et al. 2021: D(N) within 1% of the plateau; low-data: D_F <= 0.1 D(N)):")
    rows = [["size", "N", "runs", "L(N,inf) [95% CI]", "D(N) [95% CI]", "low-data D_F <="]]
    for c in r.curves:
        limit = "-" if c.low_data_max is None else f"{c.low_data_max:.3g}" + (
            " (from D(N)'s lower end)" if c.basis != "D(N)" else "")
        rows.append([c.size, f"{c.n_params:.3g}", str(len(c.d)), _cell(c.plateau), _cell(c.data_limit), limit])
        note(f"{c.size} plateau", c.plateau)
        note(f"{c.size} D(N)", c.data_limit)
    lines += _columns(rows, "  ") if r.curves else ["  no scratch runs"]
    if r.scratch is not None:
        lines.append("Global scratch law L = E + A/N^alpha + B/D^beta: "
                     + ", ".join(f"{k} {_cell(e)}" for k, e in r.scratch.estimates.items()))
        for k, e in r.scratch.estimates.items():
            note(f"global scratch {k}", e)
    rows = [["source", "runs", "G [95% CI] (size)", "G f_ref^-beta [95% CI]", "k [95% CI]", "alpha [95% CI]",
             "beta [95% CI]", "multiplier @ (D_F, N)"]]
    for s in r.sources:
        g = _cell(s.G) + (f" ({s.gap_size})" if s.gap_size and s.G.identified else "")
        gl = _cell(s.G_loss) + (f" @ f={s.f_ref:.3g}" if s.f_ref and s.G_loss.identified else "")
        mult = _cell(s.multiplier)
        at = s.multiplier_at
        if at and s.multiplier.identified:
            mult += f"x @ ({at['D_F']:.3g}, {at['N']:.3g}){' measured' if at['basis'] == 'measured' else ''}"
        rows.append([s.source, f"{s.n_runs}/{s.n_dt_runs}", g, gl, _cell(s.k), _cell(s.alpha), _cell(s.beta), mult])
        for label, e in (("G", s.G), ("G f_ref^-beta", s.G_loss), ("k", s.k), ("alpha", s.alpha),
                         ("beta", s.beta), ("multiplier", s.multiplier)):
            note(f"{s.source} {label}" + (f" ({s.gap_size})" if label.startswith("G") and s.gap_size else ""), e)
    lines += _columns(rows)
    lines.append("runs = ok fine-tunes / runs behind the D_T law; G from the joint gap fit (shared beta, E) at the "
                 "largest size where it is identified")
    if r.comparisons:
        lines.append("Differences (G_a - G_b at one size, shared beta; lower G transfers better):")
        for c in r.comparisons:
            where = f" ({c.size}, f_ref = {c.f_ref:.3g})" if c.size and c.f_ref else ""
            lines.append(f"  {c.a} - {c.b}{where}: dG = {_cell(c.dG)}; in loss units {_cell(c.dG_loss)}: "
                         f"{c.statement()}")
            note(f"{c.a} - {c.b} dG", c.dG)
    if unidentified:
        lines.append("Not identified (null in --json, with these reasons):")
        lines += unidentified
    notes = [f"- {w}" for w in r.warnings]
    notes += [f"- scratch {c.size}: {w}" for c in r.curves for w in c.warnings]
    notes += [f"- {s.source}: {w}" for s in r.sources for w in s.warnings]
    if notes:
        lines.append("Warnings:")
        lines += notes
    return "\n".join(lines)
