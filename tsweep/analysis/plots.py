"""The figures a scaling-laws-for-transfer paper shows: matplotlib Figures, and their files.

(a) ``loss_vs_finetune``: per source, the fine-tuned loss against D_F at the final checkpoint,
    one colour per size, with the joint gap law's curve and its bootstrap band, and the
    from-scratch runs of the same sizes (crosses) for comparison.
(b) ``scratch_curves``: the from-scratch curves L(N, D), measured points and the per-size
    plateau law with its band, the plateau L(N, infinity), D(N) marked.
(c) ``dt_vs_df``: effective data transferred D_T against D_F per size, log-log, per source,
    with the Hernandez law and its band; runs outside the law (flagged) hollow.
(d) ``gaps``: G per source with its 95% interval, per size with a joint fit, in the law's
    units and in loss units at the largest D_F; unidentified values are listed, not drawn.
(e) ``loss_vs_p``: per source, the fine-tuned loss against pre-training tokens p, one line
    per D_F at the headline size, with the fitted law and (where G is identified) the floor
    that unlimited pre-training reaches: how much more pre-training still buys.
(f) ``gap_history``: each source's G (and multiplier) with its interval against the number
    of finished jobs, from ``fits/history.jsonl``: how the estimate settled.
(g) ``learning_curves``: every job's held-out loss against the tokens it has seen, from the
    store's evaluation rows, one panel per kind of job, its best evaluation marked.

How they read, the same in all of them (for a paper: one figure beside another must not
contradict it):

- A size is named ``mini (N=150k)`` and a count ``16k`` / ``4M`` everywhere
  (``tsweep.analysis.rendering.count`` and ``size_label``, which the tables use too), log axes
  included: their ticks are counts, never ``10^1`` or ``6x10^0``.
- A fitted law is a solid line over the range its data cover and a dashed line where it is
  extrapolated beyond them; a dotted line is a limit the law implies (a floor, D(N)); a band is
  the 95% interval of the law from its bootstrap refits. Every line style is in a legend.
- A quantity the design does not identify is said so in the panel, with the reason.

``figure_*`` functions take the report and tables and return a Figure (the notebook API); the
``plot_*`` wrappers and :func:`write_plots` save each as a PNG and, beside it, an SVG (vector,
for a paper) under ``{sweep_dir}/plots/``, through the sweep's filesystem (local or remote).
Matplotlib's object API with the Agg canvas: no pyplot state, safe in a Ray actor or a test.
"""

from __future__ import annotations

import io
import json
import math
import pickle
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import Formatter, FuncFormatter

from tsweep.analysis.actor import read_history, read_latest
from tsweep.analysis.design import read_decisions, read_design_state
from tsweep.analysis.fitter import FitResult, Mask, percentile_ci, percentile_interval
from tsweep.analysis.laws import Array, BarnettJoint, Law, get_law
from tsweep.analysis.records import TransferReport
from tsweep.analysis.rendering import count, size_label
from tsweep.analysis.transfer import transfer_report
from tsweep.core.layout import SweepLayout
from tsweep.core.store import Store

# 110 dpi: a 5-inch panel is 550 px, legible on a screen and in the HTML report (tsweep's choice);
# the SVG beside each PNG is what a paper takes.
DPI = 110
BAND_ALPHA = 0.18
# How far past the measured p the loss-vs-p figure draws the law (8x: three doublings, enough to
# see the floor approach; tsweep's choice), dashed as an extrapolation.
P_EXTRAPOLATE = 8.0
# The scratch curves' law drawn from half the smallest to four times the largest D (tsweep's
# choice: the plateau's approach shows), dashed outside the measured range.
D_BELOW, D_ABOVE = 0.5, 4.0
# The figures, in the order the report shows them; the file stem of each.
NAMES = ("loss_vs_finetune", "scratch_curves", "dt_vs_df", "gaps", "loss_vs_p", "gap_history", "learning_curves")
# and, for an adaptive design, "design" (figure_design)
FORMATS = ("png", "svg")
# Seconds of one core each figure takes to draw and save (PNG and SVG), measured on the demo's
# store (113 jobs, 2-core AMD EPYC): write_plots balances its processes' shares with them. The
# demo has no adaptive design: its figure's entry is a guess of the same order as the others.
DRAW_SECONDS = {
    "learning_curves": 1.47,
    "loss_vs_p": 0.86,
    "loss_vs_finetune": 0.78,
    "dt_vs_df": 0.68,
    "gap_history": 0.44,
    "scratch_curves": 0.41,
    "gaps": 0.35,
    "design": 0.5,
}
# Line styles, one meaning each (module docstring).
FITTED, EXTRAPOLATED, LIMIT = "-", "--", ":"


# ------------------------------------------------------------------ shared pieces
def _figure(n_panels: int, height: float = 4.0, width: float = 5.0) -> tuple[Figure, list[Axes]]:
    n = max(1, n_panels)
    fig = Figure(figsize=(width * n, height))
    FigureCanvasAgg(fig)
    return fig, [fig.add_subplot(1, n, i + 1) for i in range(n)]


class _MinorCounts(Formatter):
    """Minor tick labels of a log axis: none when two decades are labelled in view (the major
    labels suffice), the 2x and 5x ticks beside one, every tick when no decade is in view, so a
    narrow axis still reads."""

    def __init__(self, text: Callable[[float], str]) -> None:
        self.text = text

    def __call__(self, x: float, pos: int | None = None) -> str:
        assert self.axis is not None
        lo, hi = sorted(self.axis.get_view_interval())
        if lo <= 0 or x <= 0:
            return ""
        majors = math.floor(math.log10(hi)) - math.ceil(math.log10(lo)) + 1  # decades labelled in view
        if majors >= 2:
            return ""
        mantissa = x / 10 ** math.floor(math.log10(x) + 1e-9)
        whole = abs(mantissa - round(mantissa)) < 1e-6
        return self.text(x) if whole and (majors == 0 or round(mantissa) in (2, 5)) else ""


def _plain(x: float) -> str:
    return f"{x:g}"


def _log_axis(axis: Axis, text: Callable[[float], str] = count) -> None:
    """A log axis labelled as counts (or plain numbers): ``1k``, ``10k``, never ``10^4``."""
    axis.set_major_formatter(FuncFormatter(lambda x, _pos: text(x)))
    axis.set_minor_formatter(_MinorCounts(text))


def _finish(fig: Figure) -> Figure:
    for ax in fig.axes:
        for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
            if scale == "log" and not isinstance(axis.get_major_formatter(), FuncFormatter):
                _log_axis(axis)
    fig.tight_layout()
    return fig


def _legend(ax: Axes, extra: Sequence[Any] = (), **kw: Any) -> None:
    """The data's legend, and the line styles' proxies (``extra``) after it."""
    handles, labels = ax.get_legend_handles_labels()
    handles += list(extra)
    labels += [h.get_label() for h in extra]
    if handles:
        ax.legend(handles, labels, fontsize=7, **kw)


def _style(ls: str, label: str, **kw: Any) -> Line2D:
    return Line2D([], [], color=kw.pop("color", "0.3"), ls=ls, label=label, **kw)


def _band_patch(label: str = "95% band (bootstrap)") -> Patch:
    return Patch(color="0.3", alpha=BAND_ALPHA, label=label)


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9, wrap=True)


def _ok_rows(table: pa.Table) -> list[dict[str, Any]]:
    return [
        r
        for r in table.to_pylist()
        if r["status"] == "ok" and r["best_eval_loss"] is not None and np.isfinite(r["best_eval_loss"])
    ]


def _band(fit: FitResult, law: Law, **x: npt.ArrayLike) -> tuple[Array, Array] | None:
    """The 95% band of a law's prediction from the fit's bootstrap draws."""
    if fit.boot_params is None or len(fit.boot_params) < 10:
        return None
    draws = np.array([law.predict(dict(zip(law.params, row, strict=True)), **x) for row in fit.boot_params[:200]])
    return percentile_interval(draws, axis=0)


def _sizes(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Size name -> N, smallest first."""
    pairs = sorted({(r["n_params"], r["size"]) for r in rows})
    return {size: n for n, size in pairs}


def _size_colours(rows: list[dict[str, Any]]) -> dict[str, str]:
    sizes = _sizes([r for r in rows if r["kind"] in ("finetune", "scratch")])
    return {size: f"C{i}" for i, size in enumerate(sizes)}


def _split(x: Array, lo: float, hi: float) -> tuple[Mask, Mask, Mask]:
    """Masks of ``x`` below, inside and above the measured range [lo, hi] (each part keeps the
    shared end point, so the solid and dashed pieces join)."""
    inside = (x >= lo * (1 - 1e-9)) & (x <= hi * (1 + 1e-9))
    below = x <= lo * (1 + 1e-9)
    above = x >= hi * (1 - 1e-9)
    return below, inside, above


def _law_line(ax: Axes, x: Array, y: Array, lo: float, hi: float, color: str) -> None:
    """A law's curve: solid over [lo, hi], dashed outside it."""
    below, inside, above = _split(x, lo, hi)
    ax.plot(x[inside], y[inside], color=color, ls=FITTED)
    for part in (below, above):
        if part.sum() > 1:
            ax.plot(x[part], y[part], color=color, ls=EXTRAPOLATED)


# ------------------------------------------------------------------ (a) loss vs D_F
def figure_loss_vs_finetune(table: pa.Table, report: TransferReport) -> Figure:
    rows = _ok_rows(table)
    fig, axes = _figure(len(report.sources), width=5.5)
    colours = _size_colours(rows)
    n_of = _sizes(rows)
    for ax, src in zip(axes, report.sources, strict=False):  # one panel, empty, when there is no source
        ft = [r for r in rows if r["kind"] == "finetune" and r["source"] == src.source]
        drew_law = drew_band = False
        for size, c in colours.items():
            label = size_label(size, n_of[size])
            sc = sorted(
                (r for r in rows if r["kind"] == "scratch" and r["size"] == size), key=lambda r: r["data_tokens"]
            )
            if sc:
                ax.plot(
                    [r["data_tokens"] for r in sc],
                    [r["best_eval_loss"] for r in sc],
                    color=c,
                    marker="x",
                    ls=LIMIT,
                    lw=1,
                    label=f"{label} from scratch",
                )
            mine = [r for r in ft if r["size"] == size]
            if not mine:
                continue
            p_final = max(r["pretrain_tokens"] for r in mine)
            fin = [r for r in mine if r["pretrain_tokens"] == p_final]
            ax.scatter(
                [r["data_tokens"] for r in fin],
                [r["best_eval_loss"] for r in fin],
                color=c,
                zorder=3,
                label=f"{label} fine-tuned from p = {count(p_final)}",
            )
            gap = report.gap_fit(size)
            if gap is not None and src.source in gap.sources:
                f = np.geomspace(min(r["data_tokens"] for r in fin), max(r["data_tokens"] for r in fin), 50)
                law = BarnettJoint.of(len(gap.sources))
                s = np.full_like(f, gap.sources.index(src.source))
                ax.plot(f, law.predict(gap.fit.params, p=np.full_like(f, p_final), f=f, source=s), color=c)
                drew_law = True
                band = _band(gap.fit, law, p=np.full_like(f, p_final), f=f, source=s)
                if band is not None:
                    ax.fill_between(f, *band, color=c, alpha=BAND_ALPHA, lw=0)
                    drew_band = True
        title = src.source + (
            f": G = {src.G.value:.3g} at {src.gap_size}" if src.G.identified else ": G not identified"
        )
        ax.set(
            xscale="log",
            xlabel="target tokens (D_F fine-tuned, D from scratch)",
            ylabel="best eval loss (nats)",
            title=title,
        )
        extra = [_style(FITTED, "gap law L(p, f), fitted range")] if drew_law else []
        _legend(ax, extra + ([_band_patch()] if drew_band else []))
    if not report.sources:
        _empty(axes[0], "no ok fine-tunes yet")
    return _finish(fig)


# ------------------------------------------------------------------ (b) scratch curves
def figure_scratch_curves(report: TransferReport) -> Figure:
    fig, (ax,) = _figure(1, width=7.0, height=4.5)
    law = get_law("plateau")
    styles: dict[str, Any] = {}
    for i, curve in enumerate(report.curves):
        c = f"C{i}"
        ax.plot(curve.d, curve.loss, color=c, marker="x", ls="none", label=f"{size_label(curve.size, curve.n_params)}")
        if curve.fit is not None:
            d = np.geomspace(min(curve.d) * D_BELOW, max(curve.d) * D_ABOVE, 80)
            _law_line(ax, d, law.predict(curve.fit.params, D=d), min(curve.d), max(curve.d), c)
            styles["fit"] = _style(FITTED, "plateau law, fitted range")
            styles["extra"] = _style(EXTRAPOLATED, "plateau law, extrapolated")
            band = _band(curve.fit, law, D=d)
            if band is not None:
                ax.fill_between(d, *band, color=c, alpha=BAND_ALPHA, lw=0)
                styles["band"] = _band_patch()
        if curve.plateau.value is not None:
            ax.axhline(curve.plateau.value, color=c, ls="-.", lw=0.8)
            styles["plateau"] = _style("-.", "plateau L(N, inf)", lw=0.8)
        if curve.d_n.value is not None:
            ax.axvline(curve.d_n.value, color=c, ls=LIMIT, lw=0.8)
            styles["d_n"] = _style(LIMIT, "D(N): within 1% of the plateau", lw=0.8)
    if not report.curves:
        _empty(ax, "no scratch runs yet")
    ax.set(
        xscale="log",
        xlabel="D (target tokens, from scratch)",
        ylabel="best eval loss (nats)",
        title="from-scratch curves L(N, D)",
    )
    _legend(ax, list(styles.values()), loc="upper right")
    return _finish(fig)


# ------------------------------------------------------------------ (c) D_T vs D_F
def _dt_title(report: TransferReport, source: str) -> str:
    """The D_T law of a source as far as it is identified, or why there is none."""
    src = report.source(source)
    if src.hernandez is None:
        return f"{source}: no D_T law ({src.k.reason or 'not fitted'})"
    parts = []
    for name in ("alpha", "beta", "k"):
        e = getattr(src, name)
        parts.append(f"{name} = {e.value:.2g}" if e.identified else f"{name} n.i.")
    why = next((getattr(src, n).reason for n in ("beta", "k") if not getattr(src, n).identified), None)
    why = why.split("not identified: ", 1)[-1] if why else None
    title = f"{source}: D_T = k D_F^alpha N^beta; " + ", ".join(parts)
    return title + (f"\n(n.i. = not identified: {why})" if why else "")


def figure_dt_vs_df(report: TransferReport) -> Figure:
    fig, axes = _figure(len(report.sources), width=5.5, height=4.5)
    law = get_law("hernandez")
    for ax, src in zip(axes, report.sources, strict=False):  # one panel, empty, when there is no source
        runs = [r for r in src.runs if np.isfinite(r.d_t) and r.d_t > 0]
        extra: list[Any] = []
        for i, n in enumerate(sorted({r.n_params for r in runs})):
            mine = [r for r in runs if r.n_params == n]
            label = size_label(mine[0].size, n)
            ok = [r for r in mine if r.flag == "ok"]
            off = [r for r in mine if r.flag != "ok"]
            if ok:
                ax.scatter([r.d_f for r in ok], [r.d_t for r in ok], color=f"C{i}", label=f"{label}, in the law")
            if off:
                ax.scatter(
                    [r.d_f for r in off],
                    [r.d_t for r in off],
                    facecolors="none",
                    edgecolors=f"C{i}",
                    label=f"{label}, left out ({', '.join(sorted({r.flag for r in off}))})",
                )
            if src.hernandez is not None and ok:
                f = np.geomspace(min(r.d_f for r in ok), max(r.d_f for r in ok), 30)
                ax.plot(f, law.predict(src.hernandez.params, N=np.full_like(f, n), D_F=f), color=f"C{i}")
                extra = [_style(FITTED, "D_T law, fitted range")]
                band = _band(src.hernandez, law, N=np.full_like(f, n), D_F=f)
                if band is not None:
                    ax.fill_between(f, *band, color=f"C{i}", alpha=BAND_ALPHA, lw=0)
                    extra.append(_band_patch())
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="D_F (fine-tune tokens)",
            ylabel="D_T (effective data transferred, tokens)",
        )
        ax.set_title(_dt_title(report, src.source), fontsize=8)
        _legend(ax, extra)
        if not runs:
            _empty(ax, "no runs with D_T > 0")
    if not report.sources:
        _empty(axes[0], "no ok fine-tunes yet")
    return _finish(fig)


# ------------------------------------------------------------------ (d) gaps
class _GapPoint(NamedTuple):
    source: str
    size: str
    G: float
    G_ci: tuple[float, float]
    G_loss: float  # G f_ref^-beta
    G_loss_ci: tuple[float, float]


def _gap_points(report: TransferReport) -> list[_GapPoint]:
    """Every identified G, in the law's units and in loss units, with their intervals."""
    out = []
    for gap in report.gap_fits:
        fit = gap.fit
        if fit.boot_params is None or fit.ci95 is None:
            continue
        names = list(fit.params)
        for s, src in enumerate(gap.sources):
            g = f"G_{s}"
            if not fit.identified(g):
                continue
            bp = fit.boot_params
            loss_draws = bp[:, names.index(g)] * gap.f_ref ** -bp[:, names.index("beta")]
            point_loss = fit.params[g] * gap.f_ref ** -fit.params["beta"]
            ci_loss = percentile_ci(loss_draws, center=point_loss)
            out.append(
                _GapPoint(src, gap.size, fit.params[g], fit.ci95[g], point_loss, ci_loss or (point_loss, point_loss))
            )
    return out


def figure_gaps(report: TransferReport) -> Figure:
    fig, (ax_g, ax_l) = _figure(2, height=4.3)
    points = _gap_points(report)
    sources = sorted({p.source for p in points} | {s.source for s in report.sources})
    sizes = [(g.size, g.n_params) for g in report.gap_fits]
    width = 0.8 / max(1, len(sizes))
    in_units = [(p.G, p.G_ci) for p in points]
    in_loss = [(p.G_loss, p.G_loss_ci) for p in points]
    for ax, values in ((ax_g, in_units), (ax_l, in_loss)):
        for j, (size, n) in enumerate(sizes):
            xs: list[float] = []
            ys: list[float] = []
            lo: list[float] = []
            hi: list[float] = []
            for p, (value, ci) in zip(points, values, strict=True):
                if p.size == size:
                    xs.append(sources.index(p.source) + (j - (len(sizes) - 1) / 2) * width)
                    ys.append(value)
                    lo.append(value - ci[0])
                    hi.append(ci[1] - value)
            if xs:
                ax.errorbar(
                    xs,
                    ys,
                    yerr=[np.maximum(lo, 0), np.maximum(hi, 0)],
                    fmt="o",
                    capsize=4,
                    color=f"C{j}",
                    label=f"{size_label(size, n)}, 95% CI",
                )
        ax.set_xticks(range(len(sources)), sources)
        ax.set_xlim(-0.6, len(sources) - 0.4)
        _legend(ax)
        if not points:
            _empty(ax, "no gap identified (why: below)" if report.gap_fits else "no gap fit yet")
    f_ref = report.gap_fits[0].f_ref if report.gap_fits else float("nan")
    ax_g.set(ylabel="transfer gap G", title="G per source and size (joint fit: shared beta, E)")
    ax_l.set(ylabel=f"G f^-beta at f = {count(f_ref)} (nats)", title="the loss more pre-training cannot remove")
    missing = [f"{s.source}: {_short_reason(s.G.reason)}" for s in report.sources if not s.G.identified]
    missing += _absent_sizes(report, points)
    if missing:
        fig.text(0.01, 0.01, "not identified: " + "; ".join(missing), fontsize=7, va="bottom", wrap=True)
    return _finish(fig)


def _absent_sizes(report: TransferReport, points: list[_GapPoint]) -> list[str]:
    """Why a size's gaps are missing from the figure for sources whose headline G is shown at
    another size (a size whose floors disagree, say): "at SIZE, SOURCES: reason"."""
    shown = {(p.source, p.size) for p in points}
    headline = {s.source for s in report.sources if s.G.identified}
    out = []
    for gap in report.gap_fits:
        why: dict[str, list[str]] = {}
        for s, src in enumerate(gap.sources):
            if src in headline and (src, gap.size) not in shown:
                why.setdefault(_short_reason(gap.fit.not_identified.get(f"G_{s}")), []).append(src)
        out += [f"at {gap.size}, {', '.join(srcs)}: {reason}" for reason, srcs in why.items()]
    return out


def _short_reason(reason: str | None) -> str:
    """A withdrawn number's reason as a figure's note holds it: its first clause, without the
    "size: G_0 not identified:" prefix (the report's text carries the whole reason)."""
    why = (reason or "no reason recorded").split("not identified: ", 1)[-1]
    return why.split(": ", 1)[0]


# ------------------------------------------------------------------ (e) loss vs p
def _headline_size(report: TransferReport, source: str, tuned: list[dict[str, Any]]) -> str | None:
    """The size a source's G comes from, else the largest with a gap fit for it, else the
    largest with fine-tunes."""
    src = report.source(source)
    widest = max((g for g in report.gap_fits if source in g.sources), key=lambda g: g.n_params, default=None)
    if src.gap_size:
        return src.gap_size
    if widest is not None:
        return widest.size
    sizes = _sizes(tuned)
    return list(sizes)[-1] if sizes else None


def figure_loss_vs_p(table: pa.Table, report: TransferReport) -> Figure:
    """Per source: fine-tuned loss against p, one colour per D_F, at the size its G comes from,
    with the joint gap law's curves (dashed past the largest measured p) and its floor
    G f^-beta + E where G is identified."""
    rows = _ok_rows(table)
    fig, axes = _figure(len(report.sources), width=5.5, height=4.3)
    n_of = _sizes(rows)
    for ax, src in zip(axes, report.sources, strict=False):  # one panel, empty, when there is no source
        tuned = [r for r in rows if r["kind"] == "finetune" and r["source"] == src.source]
        size = _headline_size(report, src.source, tuned)
        mine = [r for r in tuned if r["size"] == size]
        gap = report.gap_fit(size) if size else None
        fitted = gap is not None and src.source in gap.sources
        floor = fitted and gap is not None and gap.fit.identified(f"G_{gap.sources.index(src.source)}")
        p_lo = min((r["pretrain_tokens"] for r in mine), default=1)
        p_max = max((r["pretrain_tokens"] for r in mine), default=1)
        for i, d_f in enumerate(sorted({r["data_tokens"] for r in mine})):
            pts = sorted((r for r in mine if r["data_tokens"] == d_f), key=lambda r: r["pretrain_tokens"])
            ax.scatter(
                [r["pretrain_tokens"] for r in pts],
                [r["best_eval_loss"] for r in pts],
                color=f"C{i}",
                label=f"D_F = {count(d_f)}",
            )
            if fitted and gap is not None:
                p = np.geomspace(p_lo, p_max * P_EXTRAPOLATE, 60)
                law = BarnettJoint.of(len(gap.sources))
                s = np.full_like(p, gap.sources.index(src.source))
                y = law.predict(gap.fit.params, p=p, f=np.full_like(p, d_f), source=s)
                _law_line(ax, p, y, p_lo, p_max, f"C{i}")
                if floor:
                    prm = gap.source_params(src.source)
                    ax.axhline(prm["G"] * d_f ** -prm["beta"] + prm["E"], color=f"C{i}", ls=LIMIT, lw=0.8)
        if fitted:
            ax.axvspan(p_max, p_max * P_EXTRAPOLATE, color="0.92", zorder=0)
        why = "" if src.G.identified else ("; no gap fit" if not fitted else "; G not identified")
        ax.set(
            xscale="log",
            xlabel="p (pre-training tokens)",
            ylabel="best eval loss (nats)",
            title=f"{src.source} at {size_label(size, n_of[size]) if size in n_of else '-'}{why}",
        )
        extra: list[Any] = []
        if fitted:
            extra += [
                _style(FITTED, "gap law, measured p"),
                _style(EXTRAPOLATED, "gap law, extrapolated (shaded)"),
            ]
        if floor:
            extra.append(_style(LIMIT, "floor G f^-beta + E (p -> inf)", lw=0.8))
        _legend(ax, extra, ncol=2)
        if not mine:
            _empty(ax, "no fine-tunes yet")
    if not report.sources:
        _empty(axes[0], "no ok fine-tunes yet")
    return _finish(fig)


# ------------------------------------------------------------------ (f) history
def _history_series(
    lines: Sequence[Mapping[str, Any]], name: str, key: str
) -> tuple[list[float], list[float], list[float], list[float]]:
    xs: list[float] = []
    ys: list[float] = []
    lo: list[float] = []
    hi: list[float] = []
    for h in lines:
        est = next((s.get(key) for s in h.get("sources", []) if s["source"] == name), None)
        if est and est.get("value") is not None:
            v = est["value"]
            ci = est.get("ci95") or [v, v]
            xs.append(h["n_jobs_finished"])
            ys.append(v)
            lo.append(v - (ci[0] if ci[0] is not None else v))
            hi.append((ci[1] if ci[1] is not None else v) - v)
    return xs, ys, lo, hi


def figure_gap_history(history: Sequence[Mapping[str, Any]]) -> Figure:
    fig, (ax_g, ax_m) = _figure(2)
    lines = [h for h in history if "error" not in h and h.get("n_jobs_finished") is not None]
    names = sorted({s["source"] for h in lines for s in h.get("sources", [])})
    for i, name in enumerate(names):
        for ax, key in ((ax_g, "G"), (ax_m, "multiplier")):
            xs, ys, lo, hi = _history_series(lines, name, key)
            if xs:
                ax.errorbar(
                    xs,
                    ys,
                    yerr=[np.maximum(lo, 0), np.maximum(hi, 0)],
                    color=f"C{i}",
                    marker="o",
                    capsize=3,
                    label=f"{name}, 95% CI",
                )
    ax_g.set(xlabel="jobs finished", ylabel="transfer gap G", title="gap estimate as jobs finish")
    ax_m.set(
        xlabel="jobs finished",
        ylabel="effective data multiplier (x)",
        yscale="log",
        title="multiplier at smallest D_F, largest N",
    )
    _log_axis(ax_m.yaxis, _plain)
    for ax in (ax_g, ax_m):
        _legend(ax)
        if not ax.has_data():
            _empty(ax, "no identified estimate yet")
    return _finish(fig)


def figure_design(
    history: Sequence[Mapping[str, Any]], state: Mapping[str, Any], log: Sequence[Mapping[str, Any]]
) -> Figure:
    """An adaptive design at work: each source's headline G half-width (relative, 95%) as jobs
    finish, against the goal; and the share of the grid's est. FLOPs the design had chosen, against
    its budget (``fits/history.jsonl``, ``fits/design.json``, ``fits/design.jsonl``)."""
    fig, (ax_w, ax_c) = _figure(2)
    lines = [h for h in history if "error" not in h and h.get("n_jobs_finished") is not None]
    names = sorted({s["source"] for h in lines for s in h.get("sources", [])})
    for i, name in enumerate(names):
        xs, ys, lo, hi = _history_series(lines, name, "G")
        width = [(a + b) / (2 * y) for y, a, b in zip(ys, lo, hi, strict=True) if y > 0]
        if width:
            ax_w.plot(xs[: len(width)], width, color=f"C{i}", marker="o", label=f"G({name})")
    goal = float(state.get("goal", {}).get("half_width") or 0.0)
    if goal:
        ax_w.axhline(goal, color="0.3", ls="--", label=f"goal +-{100 * goal:.0f}%")
    ax_w.set(
        xlabel="jobs finished", ylabel="95% half-width / G", title="the goal's gaps as jobs finish", ylim=(0, None)
    )
    chose = [d for d in log if d.get("event") == "chose"]
    if chose:
        ax_c.step(
            [float(d.get("finished", 0)) for d in chose],
            [100 * float(d.get("share", 0.0)) for d in chose],
            where="post",
            color="C0",
            label="chosen so far",
        )
    grid = float(state.get("grid_flops") or 0.0)
    if grid:
        ax_c.axhline(100 * float(state.get("budget_flops", grid)) / grid, color="0.3", ls="--", label="budget")
        ax_c.axhline(100 * float(state.get("share", 0.0)), color="C1", ls=":", label="chosen in all")
    ax_c.set(
        xlabel="jobs finished", ylabel="% of the grid's est. FLOPs", title="compute the design chose", ylim=(0, 105)
    )
    for ax in (ax_w, ax_c):
        _legend(ax)
        if not ax.has_data():
            _empty(ax, "no identified estimate yet")
    return _finish(fig)


# ------------------------------------------------------------------ (g) learning curves
KINDS = ("pretrain", "finetune", "scratch")


def figure_learning_curves(evals: pa.Table, table: pa.Table) -> Figure:
    """Per kind of job: held-out loss against tokens seen, one thin line per job, coloured by
    size (pre-training: by source and size), the job's best evaluation marked."""
    fig, axes = _figure(len(KINDS), width=5.0, height=4.0)
    rows = evals.select(["job_id", "kind", "source", "size", "n_params", "tokens_seen", "eval_loss"]).to_pylist()
    best = {r["job_id"]: r for r in table.to_pylist()}
    sizes = _sizes(rows)
    for ax, kind in zip(axes, KINDS, strict=True):
        mine = [r for r in rows if r["kind"] == kind]
        by_job: dict[str, list[dict[str, Any]]] = {}
        for r in mine:
            by_job.setdefault(r["job_id"], []).append(r)
        keys = sorted({(r["source"], r["size"]) for r in mine}, key=lambda k: (k[0], sizes[k[1]]))
        order: list[Any] = keys if kind == "pretrain" else list(sizes)  # sizes: smallest first
        colour = {k: f"C{i}" for i, k in enumerate(order)}
        labelled: set[Any] = set()
        for job, pts in sorted(by_job.items()):
            pts.sort(key=lambda r: r["tokens_seen"])
            key: Any = (pts[0]["source"], pts[0]["size"]) if kind == "pretrain" else pts[0]["size"]
            name = size_label(pts[0]["size"], pts[0]["n_params"])
            label = (f"{pts[0]['source']}, {name}" if kind == "pretrain" else name) if key not in labelled else None
            labelled.add(key)
            x = [max(r["tokens_seen"], 1) for r in pts]
            ax.plot(x, [r["eval_loss"] for r in pts], color=colour[key], lw=0.8, alpha=0.6, label=label)
            b = best.get(job)
            if b is not None and b.get("best_tokens") and b.get("best_eval_loss") is not None:
                ax.plot([b["best_tokens"]], [b["best_eval_loss"]], color=colour[key], marker=".", ls="none")
        ax.set(xscale="log", xlabel="tokens seen", ylabel="eval loss (nats)", title=f"{kind} ({len(by_job)} jobs)")
        extra = [_style("none", "best evaluation (the run's score)", marker=".")] if by_job else []
        _legend(ax, extra)
        if not by_job:
            _empty(ax, f"no {kind} evaluations in the store")
    return _finish(fig)


# ------------------------------------------------------------------ files
def figures(
    table: pa.Table,
    report: TransferReport,
    history: Sequence[Mapping[str, Any]] = (),
    evals: pa.Table | None = None,
    design: tuple[Mapping[str, Any], Sequence[Mapping[str, Any]]] | None = None,
    *,
    only: Sequence[str] | None = None,
) -> dict[str, Figure]:
    """Every figure by name (:data:`NAMES`), from the summary table, the report, the fit history
    and the store's evaluation rows (none: the learning-curve panels say so); with an adaptive
    design's state and log, its figure too. ``only``: just the figures of those names."""
    from tsweep.core.store import EVAL_SCHEMA

    rows = evals if evals is not None else EVAL_SCHEMA.empty_table()
    makers: dict[str, Callable[[], Figure]] = {
        "loss_vs_finetune": lambda: figure_loss_vs_finetune(table, report),
        "scratch_curves": lambda: figure_scratch_curves(report),
        "dt_vs_df": lambda: figure_dt_vs_df(report),
        "gaps": lambda: figure_gaps(report),
        "loss_vs_p": lambda: figure_loss_vs_p(table, report),
        "gap_history": lambda: figure_gap_history(history),
        "learning_curves": lambda: figure_learning_curves(rows, table),
    }
    if design is not None:
        makers["design"] = lambda: figure_design(history, *design)
    return {name: make() for name, make in makers.items() if only is None or name in only}


def save_figure(fig: Figure, sweep_dir: str, name: str) -> list[str]:
    """``plots/{name}.png`` and ``plots/{name}.svg`` (text as paths: the SVG needs no fonts);
    the paths, PNG first."""
    layout = SweepLayout(sweep_dir)
    out = []
    for fmt in FORMATS:
        buf = io.BytesIO()
        fig.savefig(buf, dpi=DPI, format=fmt, metadata={"Date": None} if fmt == "svg" else None)
        path = layout.plot(f"{name}.{fmt}")
        layout.files.write_bytes(path, buf.getvalue())
        out.append(path)
    return out


def plot_loss_vs_finetune(sweep_dir: str, table: pa.Table, report: TransferReport) -> str:
    return save_figure(figure_loss_vs_finetune(table, report), sweep_dir, "loss_vs_finetune")[0]


def plot_scratch_curves(sweep_dir: str, report: TransferReport) -> str:
    return save_figure(figure_scratch_curves(report), sweep_dir, "scratch_curves")[0]


def plot_dt_vs_df(sweep_dir: str, report: TransferReport) -> str:
    return save_figure(figure_dt_vs_df(report), sweep_dir, "dt_vs_df")[0]


def plot_gaps(sweep_dir: str, report: TransferReport) -> str:
    return save_figure(figure_gaps(report), sweep_dir, "gaps")[0]


def plot_loss_vs_p(sweep_dir: str, table: pa.Table, report: TransferReport) -> str:
    return save_figure(figure_loss_vs_p(table, report), sweep_dir, "loss_vs_p")[0]


def plot_gap_history(sweep_dir: str, history: Sequence[Mapping[str, Any]]) -> str:
    return save_figure(figure_gap_history(history), sweep_dir, "gap_history")[0]


def design_files(sweep_dir: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """An adaptive design's state and log, or None for a grid sweep."""
    layout = SweepLayout(sweep_dir)
    state = read_design_state(layout)
    return None if state is None else (state, read_decisions(layout))


def _save_figures(
    sweep_dir: str,
    names: Sequence[str],
    table: pa.Table,
    report: TransferReport,
    history: Sequence[Mapping[str, Any]],
    evals: pa.Table,
    design: tuple[Mapping[str, Any], Sequence[Mapping[str, Any]]] | None,
) -> dict[str, str]:
    """The figures ``names`` made and saved (:func:`save_figure`): ``{name: PNG path}``. One
    process's share of :func:`write_plots`: this one's, or a helper's (:func:`_helper_main`)."""
    made = figures(table, report, history, evals, design, only=names)
    return {name: save_figure(fig, sweep_dir, name)[0] for name, fig in made.items()}


def write_plots(
    sweep_dir: str,
    table: pa.Table | None = None,
    report: TransferReport | None = None,
    evals: pa.Table | None = None,
    *,
    processes: int = 1,
    helpers: Sequence[subprocess.Popen[bytes]] | None = None,
) -> list[str]:
    """Every figure as a PNG, an SVG beside each; the PNGs' paths in :data:`NAMES` order. Reads
    the store (summaries and evaluations) and ``fits/latest.json`` for what is not given; with no
    fit yet, fits one (without a bootstrap).

    ``processes`` > 1 draws the figures in that many processes: this one and fresh interpreters
    (:func:`_start_helper`), started first so that their imports overlap the store's reading,
    each given a share of about equal cost (:func:`shares`). Drawing and saving the figures
    takes seconds of one core, and at the end of a sweep every core is idle. The files are the
    same bytes whichever process drew them. ``helpers``: those interpreters, started earlier by
    :func:`start_helpers` (a driver starts them before its final refit, so their imports overlap
    it); they are used up here."""
    helpers = list(helpers) if helpers is not None else start_helpers(processes - 1)
    if len(helpers) != processes - 1:
        raise ValueError(f"write_plots: {len(helpers)} helpers for {processes} processes")
    try:
        store = Store(SweepLayout(sweep_dir).store_root)
        if table is None:
            table = store.read_summaries()
        if report is None:
            report = read_latest(sweep_dir) or transfer_report(table, bootstrap=0)
        if evals is None:
            evals = store.read_evals()
        inputs = (table, report, read_history(sweep_dir), evals, design_files(sweep_dir))
        names = [*NAMES, *(["design"] if inputs[-1] is not None else [])]
        mine, *theirs = shares(names, processes)
        for helper, share in zip(helpers, theirs, strict=True):
            _send(helper, sweep_dir, share, inputs)
        saved = _save_figures(sweep_dir, mine, *inputs)
        for helper in helpers:
            saved.update(_helper_result(helper))
    finally:
        stop_helpers(helpers)  # any never sent its share: this process failed first
    return [saved[name] for name in names]


def shares(names: Sequence[str], processes: int) -> list[list[str]]:
    """``names`` dealt to ``processes`` processes so each draws about the same seconds
    (:data:`DRAW_SECONDS`; longest first, each to the least loaded): ``[this one's, ...]``."""
    load = [0.0] * processes
    out: list[list[str]] = [[] for _ in range(processes)]
    for name in sorted(names, key=lambda n: -DRAW_SECONDS.get(n, 1.0)):
        i = load.index(min(load))
        out[i].append(name)
        load[i] += DRAW_SECONDS.get(name, 1.0)
    return out


def start_helpers(n: int) -> list[subprocess.Popen[bytes]]:
    """``n`` figure-drawing interpreters for :func:`write_plots`, importing while the caller
    does something else; :func:`stop_helpers` ends any that are never used."""
    return [_start_helper() for _ in range(n)]


def stop_helpers(helpers: Sequence[subprocess.Popen[bytes]]) -> None:
    """End the helpers that were never sent a share (the caller failed before drawing)."""
    for helper in helpers:
        if helper.poll() is None and helper.stdin is not None and not helper.stdin.closed:
            helper.kill()
            helper.wait()


def _start_helper() -> subprocess.Popen[bytes]:
    """A ``python -m tsweep.analysis.plots`` process that draws the share it is sent: its inputs
    pickled on its stdin, the paths it saved as JSON on its stdout. A fresh interpreter rather
    than a multiprocessing child, which would re-run the caller's ``__main__`` (a user's script)."""
    return subprocess.Popen(
        [sys.executable, "-m", "tsweep.analysis.plots"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )


def _send(helper: subprocess.Popen[bytes], sweep_dir: str, names: Sequence[str], inputs: tuple[Any, ...]) -> None:
    assert helper.stdin is not None
    helper.stdin.write(pickle.dumps((sweep_dir, list(names), inputs), protocol=pickle.HIGHEST_PROTOCOL))
    helper.stdin.close()


def _helper_result(helper: subprocess.Popen[bytes]) -> dict[str, str]:
    assert helper.stdout is not None
    out = helper.stdout.read()
    if helper.wait() != 0:
        raise RuntimeError(f"the figure-drawing process exited with {helper.returncode}")
    saved: dict[str, str] = json.loads(out)
    return saved


def _helper_main() -> None:
    sweep_dir, names, inputs = pickle.loads(sys.stdin.buffer.read())
    sys.stdout.write(json.dumps(_save_figures(sweep_dir, names, *inputs)))


if __name__ == "__main__":
    _helper_main()
