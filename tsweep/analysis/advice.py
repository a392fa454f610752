"""``tsweep advise``: to reach a target loss, more pre-training, more target data, or from scratch?

A decision, read off the report's fits with their bootstrap draws. Per source, at its headline
size N (the joint gap law of Barnett 2024, arXiv 2408.16947: L(p, f) = (A p^-alpha + G) f^-beta
+ E, beta and E shared over sources), three routes to a target loss X, each the *smallest*
budget that reaches it, also when X is already met (then the budget is below the current one):

- more target data, fine-tuned from the current checkpoint p: f = (C(p) / (X - E))^(1/beta) with
  C(p) = A p^-alpha + G read at the measured p; it needs beta, E and C(p) identified;
- more pre-training at the current f: p = (A / ((X - E) f^beta - G))^(1/alpha), no solution when
  X <= G f^-beta + E (the floor no pre-training crosses: the point of G); it needs A and alpha,
  which a design whose p axis does not reach the floor often cannot pin down;
- from scratch at the same N, on target data only: D = (B / (X - L_inf))^(1/beta_N) from the
  size's plateau law L = L_inf + B D^-beta_N (Hernandez et al. 2021, sec. 2), with its bootstrap.

Only identified terms enter an answer: a route whose law has an unidentified term answers "not
identified" and says which. Where a size's gaps are withdrawn only because its gap law's floor
disagrees with the from-scratch plateau ("floors disagree", ``tsweep.analysis.transfer``), the
law still describes the runs where they were measured, so the target-data route answers inside
the measured f range and reads "not identified" with that reason past it, where the floor
decides; the pre-training route, which needs G, reads "not identified".

Each answer is solved on every bootstrap draw of its law (the draws ``FitResult.boot_params``
keeps); its interval is the central 95% of those answers, a draw that cannot reach X counting as
infinite. An answer has a point value only when it is decided:

- "beyond the design": the point lies more than ``DESIGN_REACH`` x outside the measured range of
  its axis (p, f or the scratch D) or past the target corpus, when its size is given: no point
  value, since a power law read that far off its data is a guess;
- "undetermined": its interval spans more than ``fitter.MAX_SCALE_RATIO`` (100x), the rule every
  scale quantity of the report is held to, or reaches "unreachable";
- "unreachable": the point law has no solution (X at or below its floor).

The cost of every option: FLOPs at 6 N per token trained (Kaplan et al. 2020, arXiv 2001.08361,
sec. 2.1), where a fine-tune or scratch run trains over its D unique tokens for several epochs
(the tokens trained per unique token measured on the sweep's runs of that kind and size,
interpolated in log D, held at the measured ends); and device-hours at the sweep's measured
throughput (tokens trained per second of wall time, per kind and size, from the store) times the
devices one job holds (``Device.of`` the sweep's resources). A fine-tune route counts the
pre-training behind its checkpoint too: a researcher weighing the routes for a new model pays it.

Without a target: what 2x more target data and 2x more pre-training each buy at the current
(p, f), with intervals, each only where its terms are identified.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pyarrow as pa

from tsweep.analysis import fitter
from tsweep.analysis.fitter import FitResult
from tsweep.analysis.laws import Array
from tsweep.analysis.records import Estimate, GapFit, ScratchCurve, SourceTransfer, TransferReport
from tsweep.core.jsonio import finite
from tsweep.sweeps import Resources

# Kaplan et al. 2020 (arXiv 2001.08361, sec. 2.1): training costs ~6 N FLOPs per token (2 N
# forward, 4 N backward), embeddings aside.
FLOPS_PER_PARAM_TOKEN = 6.0
# tsweep's choice: a budget more than 4x outside the range an axis was measured on is read off a
# power law beyond its data (one doubling each side of a design's usual factor of 2 spacing more).
DESIGN_REACH = 4.0
# An answer whose interval's ends are further apart than this is undetermined: the fitter's rule
# for every scale quantity it reports (fitter.MAX_SCALE_RATIO, 100x).
UNDETERMINED_RATIO = fitter.MAX_SCALE_RATIO
ROUTES = ("target data", "pre-training", "from scratch")
STATUSES = ("ok", "beyond the design", "undetermined", "unreachable", "not identified")


@dataclass(frozen=True)
class Device:
    """What a device-hour counts, and how many of them one job of the sweep holds."""

    name: str
    per_job: float

    @classmethod
    def of(cls, resources: Resources) -> Device:
        if resources.gpus > 0:
            return cls("GPU", resources.gpus * resources.workers)
        return cls("CPU core", resources.cpus * resources.workers)


@dataclass(frozen=True)
class Design:
    """What the sweep measured at one size: the axes' ranges, tokens trained per unique token,
    throughput; read from the summary table's ok rows."""

    size: str
    n_params: float
    p: tuple[float, float]  # fine-tunes' pre-training tokens (min, max)
    f: tuple[float, float]  # fine-tune budgets (min, max)
    d: tuple[float, float] | None  # scratch budgets (min, max)
    epochs: Mapping[str, tuple[Array, Array]]  # kind -> (log unique tokens, log tokens trained per unique)
    rate: Mapping[str, float]  # kind -> tokens trained per second of one job

    def trained(self, kind: str, unique: float) -> float:
        """Tokens a run of ``kind`` trains to learn from ``unique`` tokens (measured epochs)."""
        if kind not in self.epochs or not math.isfinite(unique):
            return unique
        ld, lr = self.epochs[kind]
        return unique * math.exp(float(np.interp(math.log(unique), ld, lr)))

    def hours(self, kind: str, tokens: float) -> float | None:
        rate = self.rate.get(kind)
        return None if rate is None else tokens / rate / 3600.0


def design_at(table: pa.Table, size: str, source: str | None = None) -> Design | None:
    """The :class:`Design` of one size (fine-tune axes of ``source`` when given); None when the
    table has no ok run there."""
    rows = [r for r in table.to_pylist() if r["size"] == size and r["status"] == "ok"]
    if not rows:
        return None
    ft = [r for r in rows if r["kind"] == "finetune" and r["pretrain_tokens"] > 0]
    mine = [r for r in ft if source is None or r["source"] == source] or ft
    scratch = [r for r in rows if r["kind"] == "scratch"]

    def span(vals: list[float]) -> tuple[float, float]:
        return (min(vals), max(vals)) if vals else (math.nan, math.nan)

    return Design(
        size=size,
        n_params=float(max(r["n_params"] for r in rows)),
        p=span([float(r["pretrain_tokens"]) for r in mine]),
        f=span([float(r["data_tokens"]) for r in mine]),
        d=span([float(r["data_tokens"]) for r in scratch]) if scratch else None,
        epochs={k: v for k in ("pretrain", "finetune", "scratch") if (v := _epochs(rows, k)) is not None},
        rate={k: rt for k in ("pretrain", "finetune", "scratch") if (rt := _rate(rows, k)) is not None},
    )


def _epochs(rows: list[dict[str, Any]], kind: str) -> tuple[Array, Array] | None:
    """log D -> log(tokens trained / D), the median per distinct D of ``kind``'s runs."""
    by_d: dict[float, list[float]] = {}
    for r in rows:
        if r["kind"] == kind and r["data_tokens"] > 0 and r["tokens_seen"] > 0:
            by_d.setdefault(float(r["data_tokens"]), []).append(r["tokens_seen"] / r["data_tokens"])
    if not by_d:
        return None
    ds = sorted(by_d)
    return np.log(ds), np.log([float(np.median(by_d[d])) for d in ds])


def _rate(rows: list[dict[str, Any]], kind: str) -> float | None:
    """Tokens trained per second of wall time over ``kind``'s runs (their evaluations included)."""
    sel = [r for r in rows if r["kind"] == kind and r["wall_time_s"] > 0]
    seconds = sum(float(r["wall_time_s"]) for r in sel)
    return sum(float(r["tokens_seen"]) for r in sel) / seconds if seconds > 0 else None


# ------------------------------------------------------------------ solving for a target
def finetune_tokens(c: Array | float, beta: Array | float, e: Array | float, x: float) -> Array:
    """f at which (C f^-beta + E) = x; inf where x <= E."""
    c, beta, e = np.asarray(c, float), np.asarray(beta, float), np.asarray(e, float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = (c / (x - e)) ** (1.0 / beta)
    return np.where((x > e) & (beta > 0), out, np.inf)


def pretrain_tokens(a: Array | float, alpha: Array | float, g: Array | float, beta: Array | float,
                    e: Array | float, f: float, x: float) -> Array:  # fmt: skip
    """p at which ((A p^-alpha + G) f^-beta + E) = x at fixed f; inf where x is at or below the
    floor G f^-beta + E."""
    a, alpha, g = np.asarray(a, float), np.asarray(alpha, float), np.asarray(g, float)
    room = (x - np.asarray(e, float)) * f ** np.asarray(beta, float) - g
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = (a / room) ** (1.0 / alpha)
    return np.where((room > 0) & (alpha > 0) & (a > 0), out, np.inf)


def _interval(draws: Array | None) -> tuple[float, float] | None:
    """The central CI_LEVEL interval of answers, an unreachable draw (inf) counted as the
    largest; None with fewer than two draws."""
    if draws is None or draws.size < 2:
        return None
    tail = 100 * (1 - fitter.CI_LEVEL) / 2
    lo, hi = np.percentile(draws, [tail, 100 - tail], method="nearest")
    return float(lo), float(hi)


def _finite_rows(bp: Array | None) -> Array | None:
    if bp is None:
        return None
    keep = np.all(np.isfinite(bp), axis=1)
    return bp[keep] if keep.any() else None


@dataclass(frozen=True)
class Route:
    """One way to the target: its axis, the law's answer (point and draws), or why it has none."""

    name: str
    axis: str  # "f", "p" or "D": the budget it solves for
    at: dict[str, float]  # the other budget, held where it is
    point: float = math.nan
    draws: Array | None = None
    missing: str | None = None  # why a term of its law is not identified
    floor: str = ""  # the loss no budget on this axis goes below, as text ("E = 2.32")
    floor_doubt: str | None = None  # why that floor is in doubt: answers past the measured range have none


def _status(route: Route, measured: tuple[float, float], corpus: float | None) -> tuple[str, str | None]:
    """(status, reason) of a route's answer: module docstring."""
    if route.missing is not None:
        return "not identified", route.missing
    ci = _interval(route.draws)
    reach = "" if route.draws is None else f"; {_share(route.draws):.0f}% of bootstrap draws reach it"
    lo, hi = measured
    if route.floor_doubt is not None and not route.point <= hi:
        return "not identified", (
            f"the answer lies past the measured {route.axis} range [{lo:.3g}, {hi:.3g}], where the law's floor "
            f"decides, and {route.floor_doubt.split(':', 1)[0]}"
        )
    if not math.isfinite(route.point):
        return "unreachable", f"the target is at or below this route's floor, {route.floor}{reach}"
    if route.point > DESIGN_REACH * hi or route.point < lo / DESIGN_REACH:
        return "beyond the design", (
            f"the answer lies more than {DESIGN_REACH:g}x outside the measured {route.axis} range "
            f"[{lo:.3g}, {hi:.3g}]: a guess, given no point value"
        )
    if corpus is not None and route.axis != "p" and route.point > corpus:
        return "beyond the design", f"more target tokens than the target corpus holds ({corpus:.3g})"
    if ci is None:
        return "undetermined", "no bootstrap draws to give it an interval"
    if not math.isfinite(ci[1]) or ci[1] > UNDETERMINED_RATIO * ci[0]:
        return "undetermined", f"its 95% interval spans more than {UNDETERMINED_RATIO:g}x{reach}"
    return "ok", None


def _share(draws: Array) -> float:
    """Percent of a route's bootstrap answers that reach the target."""
    return 100 * float(np.mean(np.isfinite(draws)))


def _answer(
    route: Route, design: Design, corpus: float | None, cost: Callable[[float], dict[str, float]]
) -> dict[str, Any]:
    """A route as the JSON ``tsweep advise --json`` prints: module docstring."""
    measured = {"f": design.f, "p": design.p, "D": design.d or (math.nan, math.nan)}[route.axis]
    status, reason = _status(route, measured, corpus)
    ci = None if route.missing is not None else _interval(route.draws)
    out: dict[str, Any] = {
        "route": route.name,
        "axis": route.axis,
        "at": route.at,
        "status": status,
        "tokens": route.point if status == "ok" else None,
        "ci95": None if ci is None or not math.isfinite(ci[0]) else [ci[0], ci[1] if math.isfinite(ci[1]) else None],
        "measured": list(measured),
    }
    if reason is not None:
        out["reason"] = reason
    if status == "ok":
        out["cost"] = cost(route.point)
    if ci is not None and math.isfinite(ci[1]):
        ends = [cost(ci[0]), cost(ci[1])]
        out["cost_ci95"] = {k: [ends[0][k], ends[1][k]] for k in ends[0]}
    return out


def _cost(design: Design, device: Device, pre: float, kind: str, unique: float, have: float = 0.0) -> dict[str, float]:
    """FLOPs and device-hours of ``pre`` pre-training tokens and a ``kind`` run on ``unique``
    target tokens (module docstring); ``*_new``: less the ``have`` pre-training tokens the
    sweep's checkpoint already holds."""
    tgt = design.trained(kind, unique)
    n6 = FLOPS_PER_PARAM_TOKEN * design.n_params
    out = {
        "flops": n6 * (pre + tgt),
        "flops_new": n6 * (max(pre - have, 0.0) + tgt),
        "flops_pretrain": n6 * pre,
        "target_tokens_trained": tgt,
    }
    for key, tokens in (("device_hours", pre), ("device_hours_new", max(pre - have, 0.0))):
        hours = [design.hours("pretrain", tokens) if tokens else 0.0, design.hours(kind, tgt)]
        if all(h is not None for h in hours):
            out[key] = sum(h for h in hours if h is not None) * device.per_job
    return out


# ------------------------------------------------------------------ the routes
def _gap_routes(gap: GapFit, source: str, p: float, f: float, x: float) -> tuple[Route, Route]:
    """The target-data and pre-training routes of one source on its size's joint gap law."""
    fit = gap.fit
    s = gap.sources.index(source)
    prm = gap.source_params(source)
    names = list(fit.params)
    bp = _finite_rows(fit.boot_params)

    def col(name: str) -> Array:
        assert bp is not None
        return bp[:, names.index(name)]

    shared = _unidentified(fit, ("beta", "E"), s)
    c_point, c_est = _c_of_p(gap, s, p, bp)
    ft_missing = shared or (None if c_est.identified else f"A p^-alpha + G at p = {p:.3g}: {c_est.reason}")
    ft = Route(
        "target data",
        "f",
        {"p": p},
        point=float(finetune_tokens(c_point, prm["beta"], prm["E"], x)),
        draws=None if bp is None else finetune_tokens(_c_draws(bp, names, s, p), col("beta"), col("E"), x),
        missing=ft_missing,
        floor=f"E = {prm['E']:.4g}",
    )
    pre = Route(
        "pre-training",
        "p",
        {"f": f},
        point=float(pretrain_tokens(prm["A"], prm["alpha"], prm["G"], prm["beta"], prm["E"], f, x)),
        draws=None
        if bp is None
        else pretrain_tokens(col(f"A_{s}"), col(f"alpha_{s}"), col(f"G_{s}"), col("beta"), col("E"), f, x),
        missing=shared or _unidentified(fit, (f"A_{s}", f"alpha_{s}", f"G_{s}"), s),
        floor=f"G f^-beta + E = {prm['G'] * f ** -prm['beta'] + prm['E']:.4g} at f = {f:.3g}",
    )
    return ft, pre


def _unidentified(fit: FitResult, names: tuple[str, ...], s: int) -> str | None:
    """Why the first of ``names`` that the fit does not identify is not (named as in the
    single-source law), or None."""
    for n in names:
        if not fit.identified(n):
            return f"{n.replace(f'_{s}', '')} not identified ({fit.not_identified[n]})"
    return None


def _c_draws(bp: Array, names: list[str], s: int, p: float) -> Array:
    a, alpha, g = (bp[:, names.index(f"{k}_{s}")] for k in ("A", "alpha", "G"))
    out: Array = a * p**-alpha + g
    return out


def _c_of_p(gap: GapFit, s: int, p: float, bp: Array | None) -> tuple[float, Estimate]:
    """C(p) = A p^-alpha + G at a measured p, and its estimate under the scale rule."""
    prm = gap.fit.params
    point = prm[f"A_{s}"] * p ** -prm[f"alpha_{s}"] + prm[f"G_{s}"]
    draws = None if bp is None else _c_draws(bp, list(prm), s, p)
    return point, Estimate.from_samples(point, draws)


def scratch_route(curve: ScratchCurve | None, x: float) -> Route:
    """From scratch at the curve's size: D = (B / (x - L_inf))^(1/beta) on its plateau law."""
    if curve is None or curve.fit is None:
        return Route("from scratch", "D", {}, missing="no from-scratch curve fitted at this size")
    fit = curve.fit
    prm = fit.params
    missing = next(
        (
            f"{n} of the plateau law not identified ({fit.not_identified[n]})"
            for n in fit.params
            if not fit.identified(n)
        ),
        None,
    )
    bp = _finite_rows(fit.boot_params)
    names = list(prm)
    draws = None
    if bp is not None:
        draws = finetune_tokens(bp[:, names.index("B")], bp[:, names.index("beta")], bp[:, names.index("E")], x)
    return Route(
        "from scratch",
        "D",
        {},
        point=float(finetune_tokens(prm["B"], prm["beta"], prm["E"], x)),
        draws=draws,
        missing=missing,
        floor=f"the plateau L_inf = {prm['E']:.4g} of {curve.size}",
    )


# ------------------------------------------------------------------ per source
def advice(
    report: TransferReport,
    table: pa.Table,
    target_loss: float | None = None,
    *,
    device: Device | None = None,
    corpus_tokens: float | None = None,
) -> list[dict[str, Any]]:
    """Per source, the routes to ``target_loss`` with their intervals and costs, the cheapest
    decided one, and what 2x more of each kind of token buys (module docstring).
    ``corpus_tokens``: the target corpus's training tokens, when known."""
    dev = device or Device("job", 1.0)
    entries = [
        _source_advice(report, table, s.source, _advice_size(report, s), target_loss, dev, corpus_tokens)
        for s in report.sources
    ]
    out: list[dict[str, Any]] = finite(entries)
    return out


def _source_advice(
    report: TransferReport,
    table: pa.Table,
    source: str,
    size: str | None,
    x: float | None,
    device: Device,
    corpus: float | None,
) -> dict[str, Any]:
    src = report.source(source)
    gap = report.gap_fit(size) if size else None
    doubt = None if gap is None or source not in gap.sources else gap.floor_doubt(source)
    if gap is None or source not in gap.sources or not (src.G.identified or doubt):
        size = _scratch_size(report)
        entry: dict[str, Any] = {"source": source, "size": size, "note": f"no identified gap law: {src.G.reason}"}
        design = design_at(table, size, None) if size else None
        if x is not None and design is not None:
            scratch = _answer(scratch_route(_curve(report, size), x), design, corpus, _scratch_cost(design, device))
            entry.update(
                target_loss=x,
                options=[scratch],
                cheapest=_cheapest([scratch], "flops_new"),
                cheapest_total=_cheapest([scratch], "flops"),
            )
        return entry
    design = design_at(table, gap.size, source)
    assert design is not None  # the gap law was fitted on this size's rows
    p, f = design.p[1], design.f[1]
    prm = gap.source_params(source)
    s = gap.sources.index(source)
    bp = _finite_rows(gap.fit.boot_params)
    now = _loss_now(gap, s, p, f, bp)
    entry = {
        "source": source,
        "size": gap.size,
        "n_params": design.n_params,
        "p": p,
        "f": f,
        "loss_now": now.to_json(),
        "device": device.name,
        "double": _doubling(gap, s, p, f, bp),
    }
    if doubt is not None:
        entry["floor_doubt"] = doubt
    if x is None:
        return entry
    ft, pre = _gap_routes(gap, source, p, f, x)
    ft = replace(ft, floor_doubt=doubt)
    options = [
        _answer(ft, design, corpus, lambda t: _cost(design, device, p, "finetune", t, have=p)),
        _answer(pre, design, corpus, lambda t: _cost(design, device, t, "finetune", f, have=p)),
        _answer(scratch_route(_curve(report, gap.size), x), design, corpus, _scratch_cost(design, device)),
    ]
    law_now = _law_loss(prm, p, f)
    entry.update(
        target_loss=x,
        met=law_now <= x,
        options=options,
        cheapest=_cheapest(options, "flops_new"),
        cheapest_total=_cheapest(options, "flops"),
    )
    return entry


def _law_loss(prm: Mapping[str, float], p: float, f: float) -> float:
    return float((prm["A"] * p ** -prm["alpha"] + prm["G"]) * f ** -prm["beta"] + prm["E"])


def _scratch_cost(design: Design, device: Device) -> Callable[[float], dict[str, float]]:
    return lambda t: _cost(design, device, 0.0, "scratch", t)


def _curve(report: TransferReport, size: str | None) -> ScratchCurve | None:
    return next((c for c in report.curves if c.size == size), None)


def _advice_size(report: TransferReport, src: SourceTransfer) -> str | None:
    """The size advice reads ``src`` at: its headline G's, else the largest size whose gap law
    holds it with its G withdrawn only for the floors' disagreement."""
    doubted = [g for g in report.gap_fits if src.source in g.sources and g.floor_doubt(src.source)]
    return src.gap_size or (max(doubted, key=lambda g: g.n_params).size if doubted else None)


def _scratch_size(report: TransferReport) -> str | None:
    """The largest size with a fitted from-scratch curve (the route a source without a gap law
    is weighed against)."""
    fitted = [c for c in report.curves if c.fit is not None]
    return max(fitted, key=lambda c: c.n_params).size if fitted else None


def _cheapest(options: list[dict[str, Any]], key: str) -> str | None:
    """The decided route (status ok) of least ``key`` FLOPs (``flops``: the whole model;
    ``flops_new``: beyond the sweep's checkpoint); None when no route is decided."""
    ok = [o for o in options if o["status"] == "ok"]
    return str(min(ok, key=lambda o: float(o["cost"][key]))["route"]) if ok else None


def _loss_now(gap: GapFit, s: int, p: float, f: float, bp: Array | None) -> Estimate:
    prm = gap.source_params(gap.sources[s])
    point = _law_loss(prm, p, f)
    if bp is None:
        return Estimate(value=point)
    names = list(gap.fit.params)
    draws = _c_draws(bp, names, s, p) * f ** -bp[:, names.index("beta")] + bp[:, names.index("E")]
    return Estimate.from_samples(point, draws)


def _doubling(gap: GapFit, s: int, p: float, f: float, bp: Array | None) -> dict[str, Any]:
    """What 2x target data and 2x pre-training each buy at (p, f), in loss, with intervals;
    each only where its terms are identified."""
    fit = gap.fit
    prm = gap.source_params(gap.sources[s])
    names = list(fit.params)

    def gain(point: float, draws: Array | None, why: str | None) -> Estimate:
        return Estimate.from_samples(point, draws, reason=why)

    c_point, c_est = _c_of_p(gap, s, p, bp)
    ft_why = _unidentified(fit, ("beta",), s) or (None if c_est.identified else f"A p^-alpha + G: {c_est.reason}")
    pre_why = _unidentified(fit, ("beta", f"A_{s}", f"alpha_{s}"), s)
    ft_point = c_point * f ** -prm["beta"] * (1 - 2 ** -prm["beta"])
    pre_point = prm["A"] * p ** -prm["alpha"] * (1 - 2 ** -prm["alpha"]) * f ** -prm["beta"]
    ft_draws = pre_draws = None
    if bp is not None:
        beta, a, alpha = bp[:, names.index("beta")], bp[:, names.index(f"A_{s}")], bp[:, names.index(f"alpha_{s}")]
        ft_draws = _c_draws(bp, names, s, p) * f**-beta * (1 - 2**-beta)
        pre_draws = a * p**-alpha * (1 - 2**-alpha) * f**-beta
    out: dict[str, Any] = {
        "target data": gain(ft_point, ft_draws, ft_why).to_json(),
        "pre-training": gain(pre_point, pre_draws, pre_why).to_json(),
    }
    better = None
    if ft_why is None and pre_why is None and ft_draws is not None and pre_draws is not None:
        ci = fitter.percentile_ci(ft_draws - pre_draws, center=ft_point - pre_point)
        if ci is not None and (ci[0] > 0 or ci[1] < 0):
            better = "target data" if ci[0] > 0 else "pre-training"
    out["better"] = better
    return out


# ------------------------------------------------------------------ text
def _tokens(o: dict[str, Any]) -> str:
    ci = o.get("ci95")
    span = "" if ci is None else f" [{ci[0]:.3g}, {'unreachable' if ci[1] is None else f'{ci[1]:.3g}'}]"
    if o["status"] == "ok":
        return f"{o['tokens']:.3g}{span} tokens"
    return f"{o['status']}{span}: {o['reason']}"


def _cost_text(o: dict[str, Any], device: str) -> str:
    c = o.get("cost")
    if c is None:
        return ""
    ci = o.get("cost_ci95", {})

    def amount(key: str, unit: str) -> str:
        if c.get(key) is None:
            return ""
        span = f" [{ci[key][0]:.2g}, {ci[key][1]:.2g}]" if ci.get(key) and None not in ci[key] else ""
        return f"{c[key]:.2g}{span} {unit}"

    new = ", ".join(x for x in (amount("flops_new", "FLOPs"), amount("device_hours_new", f"{device}-hours")) if x)
    total = ", ".join(x for x in (amount("flops", "FLOPs"), amount("device_hours", f"{device}-hours")) if x)
    return f"; costs {new} beyond the sweep's checkpoints ({total} in all)"


def _estimate_text(e: Mapping[str, Any]) -> str:
    if e.get("value") is None:
        return f"not identified ({e.get('reason', 'no reason recorded')})"
    ci = e.get("ci95")
    return f"{e['value']:.3g}" + ("" if ci is None else f" [{ci[0]:.3g}, {ci[1]:.3g}]")


def format_advice(entries: list[dict[str, Any]], target_loss: float | None = None) -> str:
    """The advice as readable lines (``tsweep advise``, and the report's advice section)."""
    out: list[str] = []
    for a in entries:
        if "note" in a:
            out.append(f"{a['source']}: {a['note']}")
        else:
            out.append(
                f"{a['source']} at {a['size']} (N = {a['n_params']:.3g}): the law gives "
                f"{_estimate_text(a['loss_now'])} at p = {a['p']:.3g}, f = {a['f']:.3g}"
            )
            if "floor_doubt" in a:
                out.append(f"  read only where measured: {a['floor_doubt']}")
            d = a["double"]
            out.append(
                f"  2x target data buys {_estimate_text(d['target data'])} nats; "
                f"2x pre-training buys {_estimate_text(d['pre-training'])}"
                + (f"; {d['better']} buys more" if d["better"] else "")
            )
        if target_loss is None or "options" not in a:
            continue
        met = " (met now)" if a.get("met") else ""
        out.append(f"  to reach {target_loss:g}{met}, the smallest budget by each route:")
        device = a.get("device", "job")
        for o in a["options"]:
            where = ", ".join(f"{k} = {v:.3g}" for k, v in o["at"].items())
            label = f"{o['route']} ({o['axis']}{', at ' + where if where else ''})"
            out.append(f"    {label}: {_tokens(o)}{_cost_text(o, device)}")
        if a["cheapest"] is None:
            out.append("  cheapest route: none is decided by this design")
        else:
            out.append(
                f"  cheapest decided route: {a['cheapest']} given the sweep's checkpoints, "
                f"{a['cheapest_total']} for a model trained from nothing"
            )
    out.append(
        "(95% intervals from the report's bootstrap draws; beyond the design: past "
        f"{DESIGN_REACH:g}x the measured range; undetermined: an interval over {UNDETERMINED_RATIO:g}x)"
    )
    return "\n".join(out)
