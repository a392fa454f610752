"""The figures a scaling-laws-for-transfer paper shows, as PNGs under ``{sweep_dir}/plots/``.

(a) ``loss_vs_finetune.png``: per source, the fine-tuned loss against D_F at the final
    checkpoint, one colour per size, with the joint gap law's curve and its bootstrap band, and
    the from-scratch runs of the same sizes (crosses) for comparison.
(b) ``scratch_curves.png``: the from-scratch curves L(N, D), measured points and the per-size
    plateau law with its band, the plateau L(N, infinity) dashed, D(N) marked.
(c) ``dt_vs_df.png``: effective data transferred D_T against D_F per size, log-log, per source,
    with the Hernandez law and its band; runs outside the law (flagged) hollow.
(d) ``gaps.png``: G per source with its 95% interval, per size with a joint fit, in the law's
    units and in loss units at the largest D_F; unidentified values are listed, not drawn.
(e) ``loss_vs_p.png``: per source, the fine-tuned loss against pre-training tokens p, one line
    per D_F at the headline size, with the fitted law and (dotted, where G is identified) the
    floor that unlimited pre-training reaches: how much more pre-training still buys.
(f) ``gap_history.png``: each source's G (and multiplier) with its interval against the number
    of finished jobs, from ``fits/history.jsonl``: how the estimate settled.

Everything is read from the typed :class:`TransferReport` and the summary table. Matplotlib's
object API with the Agg canvas: no pyplot state, safe in a Ray actor or a test. Every function
returns the path it wrote (through the sweep's filesystem, local or remote).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tsweep.analysis.actor import read_history, read_latest
from tsweep.analysis.fitter import FitResult, percentile_ci, percentile_interval
from tsweep.analysis.laws import Array, BarnettJoint, Law, get_law
from tsweep.analysis.records import TransferReport
from tsweep.analysis.transfer import transfer_report
from tsweep.core.layout import SweepLayout
from tsweep.core.store import Store

DPI = 110
BAND_ALPHA = 0.18


def _figure(n_panels: int, height: float = 4.0, width: float = 5.0) -> tuple[Figure, list[Axes]]:
    n = max(1, n_panels)
    fig = Figure(figsize=(width * n, height))
    FigureCanvasAgg(fig)
    return fig, [fig.add_subplot(1, n, i + 1) for i in range(n)]


def _save(fig: Figure, sweep_dir: str, name: str) -> str:
    from matplotlib.ticker import NullFormatter

    layout = SweepLayout(sweep_dir)
    for ax in fig.axes:  # a log axis over a decade or two labels its minor ticks on top of each other;
        for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):  # with fewer than
            if scale != "log":  # two labelled decades the minor labels are the only ones: keep them
                continue
            lo, hi = sorted(axis.get_view_interval())
            if sum(lo <= t <= hi for t in axis.get_majorticklocs()) >= 2:
                axis.set_minor_formatter(NullFormatter())
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, dpi=DPI, format="png")
    path = layout.plot(name)
    layout.files.write_bytes(path, buf.getvalue())
    return path


def _legend(ax: Axes) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9)


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


def _size_colours(rows: list[dict[str, Any]]) -> dict[str, str]:
    sizes = sorted({(r["n_params"], r["size"]) for r in rows if r["kind"] in ("finetune", "scratch")})
    return {size: f"C{i}" for i, (_, size) in enumerate(sizes)}


# ------------------------------------------------------------------ (a) loss vs D_F
def plot_loss_vs_finetune(sweep_dir: str, table: pa.Table, report: TransferReport) -> str:
    rows = _ok_rows(table)
    fig, axes = _figure(len(report.sources))
    colours = _size_colours(rows)
    for ax, src in zip(axes, report.sources, strict=False):  # one panel, empty, when there is no source
        ft = [r for r in rows if r["kind"] == "finetune" and r["source"] == src.source]
        for size, c in colours.items():
            mine = [r for r in ft if r["size"] == size]
            sc = sorted(
                (r for r in rows if r["kind"] == "scratch" and r["size"] == size), key=lambda r: r["data_tokens"]
            )
            if sc:
                ax.plot(
                    [r["data_tokens"] for r in sc],
                    [r["best_eval_loss"] for r in sc],
                    color=c,
                    marker="x",
                    ls=":",
                    lw=1,
                    label=f"{size} from scratch",
                )
            if not mine:
                continue
            p_final = max(r["pretrain_tokens"] for r in mine)
            fin = [r for r in mine if r["pretrain_tokens"] == p_final]
            ax.scatter(
                [r["data_tokens"] for r in fin],
                [r["best_eval_loss"] for r in fin],
                color=c,
                zorder=3,
                label=f"{size} fine-tuned (p={p_final:.3g})",
            )
            gap = report.gap_fit(size)
            if gap is not None and src.source in gap.sources:
                f = np.geomspace(min(r["data_tokens"] for r in fin), max(r["data_tokens"] for r in fin), 50)
                law = BarnettJoint.of(len(gap.sources))
                s = np.full_like(f, gap.sources.index(src.source))
                ax.plot(f, law.predict(gap.fit.params, p=np.full_like(f, p_final), f=f, source=s), color=c)
                band = _band(gap.fit, law, p=np.full_like(f, p_final), f=f, source=s)
                if band is not None:
                    ax.fill_between(f, *band, color=c, alpha=BAND_ALPHA, lw=0)
        title = src.source + (
            f"  (G = {src.G.value:.3g} at {src.gap_size})" if src.G.identified else "  (G not identified)"
        )
        ax.set(
            xscale="log",
            xlabel="target tokens (D_F fine-tuned, D from scratch)",
            ylabel="best eval loss (nats)",
            title=title,
        )
        _legend(ax)
    if not report.sources:
        _empty(axes[0], "no ok fine-tunes yet")
    return _save(fig, sweep_dir, "loss_vs_finetune.png")


# ------------------------------------------------------------------ (b) scratch curves
def plot_scratch_curves(sweep_dir: str, report: TransferReport) -> str:
    fig, (ax,) = _figure(1, width=6.0)
    law = get_law("plateau")
    for i, curve in enumerate(report.curves):
        c = f"C{i}"
        ax.plot(curve.d, curve.loss, color=c, marker="x", ls="none", label=f"{curve.size} (N={curve.n_params:,})")
        if curve.fit is not None:
            d = np.geomspace(min(curve.d) / 2, max(curve.d) * 4, 60)
            ax.plot(d, law.predict(curve.fit.params, D=d), color=c, lw=1)
            band = _band(curve.fit, law, D=d)
            if band is not None:
                ax.fill_between(d, *band, color=c, alpha=BAND_ALPHA, lw=0)
        if curve.plateau.value is not None:
            ax.axhline(curve.plateau.value, color=c, ls="--", lw=0.8)
        if curve.d_n.value is not None:
            ax.axvline(curve.d_n.value, color=c, ls=":", lw=0.8)
    if not report.curves:
        _empty(ax, "no scratch runs yet")
    ax.set(
        xscale="log",
        xlabel="D (target tokens, from scratch)",
        ylabel="best eval loss (nats)",
        title="from-scratch curves; dashed: plateau L(N, inf); dotted: D(N)",
    )
    _legend(ax)
    return _save(fig, sweep_dir, "scratch_curves.png")


# ------------------------------------------------------------------ (c) D_T vs D_F
def plot_dt_vs_df(sweep_dir: str, report: TransferReport) -> str:
    fig, axes = _figure(len(report.sources))
    law = get_law("hernandez")
    for ax, src in zip(axes, report.sources, strict=False):  # one panel, empty, when there is no source
        runs = [r for r in src.runs if np.isfinite(r.d_t) and r.d_t > 0]
        for i, n in enumerate(sorted({r.n_params for r in runs})):
            mine = [r for r in runs if r.n_params == n]
            ok = [r for r in mine if r.flag == "ok"]
            off = [r for r in mine if r.flag != "ok"]
            ax.scatter([r.d_f for r in ok], [r.d_t for r in ok], color=f"C{i}", label=f"N={n:.3g}")
            if off:
                ax.scatter(
                    [r.d_f for r in off],
                    [r.d_t for r in off],
                    facecolors="none",
                    edgecolors=f"C{i}",
                    label=f"N={n:.3g}, left out ({', '.join(sorted({r.flag for r in off}))})",
                )
            if src.hernandez is not None:
                f = np.geomspace(min(r.d_f for r in mine), max(r.d_f for r in mine), 30)
                ax.plot(f, law.predict(src.hernandez.params, N=np.full_like(f, n), D_F=f), color=f"C{i}")
                band = _band(src.hernandez, law, N=np.full_like(f, n), D_F=f)
                if band is not None:
                    ax.fill_between(f, *band, color=f"C{i}", alpha=BAND_ALPHA, lw=0)
        title = src.source
        if src.k.identified:
            title += f": D_T = {src.k.value:.3g} D_F^{src.alpha.value:.2f} N^{src.beta.value:.2f}"
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="D_F (fine-tune tokens)",
            ylabel="D_T (effective data transferred)",
            title=title,
        )
        _legend(ax)
        if not runs:
            _empty(ax, "no runs with D_T > 0")
    if not report.sources:
        _empty(axes[0], "no ok fine-tunes yet")
    return _save(fig, sweep_dir, "dt_vs_df.png")


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
            ci_loss = percentile_ci(loss_draws)
            point_loss = fit.params[g] * gap.f_ref ** -fit.params["beta"]
            out.append(
                _GapPoint(src, gap.size, fit.params[g], fit.ci95[g], point_loss, ci_loss or (point_loss, point_loss))
            )
    return out


def plot_gaps(sweep_dir: str, report: TransferReport) -> str:
    fig, (ax_g, ax_l) = _figure(2)
    points = _gap_points(report)
    sources = sorted({p.source for p in points})
    sizes = [g.size for g in report.gap_fits]
    width = 0.8 / max(1, len(sizes))
    in_units = [(p.G, p.G_ci) for p in points]
    in_loss = [(p.G_loss, p.G_loss_ci) for p in points]
    for ax, values in ((ax_g, in_units), (ax_l, in_loss)):
        for j, size in enumerate(sizes):
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
                    xs, ys, yerr=[np.maximum(lo, 0), np.maximum(hi, 0)], fmt="o", capsize=4, color=f"C{j}", label=size
                )
        ax.set_xticks(range(len(sources)), sources)
        _legend(ax)
        if not points:
            _empty(ax, "no identified gap yet")
    f_ref = report.gap_fits[0].f_ref if report.gap_fits else float("nan")
    ax_g.set(ylabel="transfer gap G (95% CI)", title="G per source and size (joint fit: shared beta, E)")
    ax_l.set(ylabel=f"G f^-beta at f = {f_ref:.3g} (nats, 95% CI)", title="the loss more pre-training cannot remove")
    missing = [f"{s.source}: {s.G.reason}" for s in report.sources if not s.G.identified]
    if missing:
        fig.text(0.01, 0.01, "not identified: " + "; ".join(missing), fontsize=7, va="bottom")
    return _save(fig, sweep_dir, "gaps.png")


# ------------------------------------------------------------------ (e) loss vs p
def plot_loss_vs_p(sweep_dir: str, table: pa.Table, report: TransferReport) -> str:
    """Per source: fine-tuned loss against p, one colour per D_F, at the size its G comes from
    (else the largest size with a gap fit for it, else the largest with fine-tunes), with the
    joint gap law's curves where it was fitted and its floor G f^-beta + E where G is identified."""
    rows = _ok_rows(table)
    fig, axes = _figure(len(report.sources))
    for ax, src in zip(axes, report.sources, strict=False):  # one panel, empty, when there is no source
        tuned = [r for r in rows if r["kind"] == "finetune" and r["source"] == src.source]
        widest = max((g for g in report.gap_fits if src.source in g.sources), key=lambda g: g.n_params, default=None)
        size = (
            src.gap_size
            or (widest.size if widest is not None else None)
            or max(
                (r["size"] for r in tuned),
                key=lambda s: next(r["n_params"] for r in tuned if r["size"] == s),
                default=None,
            )
        )
        mine = [r for r in tuned if r["size"] == size]
        gap = report.gap_fit(size) if size else None
        p_max = max((r["pretrain_tokens"] for r in mine), default=1)
        for i, d_f in enumerate(sorted({r["data_tokens"] for r in mine})):
            pts = sorted((r for r in mine if r["data_tokens"] == d_f), key=lambda r: r["pretrain_tokens"])
            ax.scatter(
                [r["pretrain_tokens"] for r in pts],
                [r["best_eval_loss"] for r in pts],
                color=f"C{i}",
                label=f"D_F = {d_f:,}",
            )
            if gap is not None and src.source in gap.sources:
                p = np.geomspace(pts[0]["pretrain_tokens"], p_max * 8, 50)
                law = BarnettJoint.of(len(gap.sources))
                s = np.full_like(p, gap.sources.index(src.source))
                ax.plot(p, law.predict(gap.fit.params, p=p, f=np.full_like(p, d_f), source=s), color=f"C{i}")
                if gap.fit.identified(f"G_{gap.sources.index(src.source)}"):  # the floor, where it is known
                    prm = gap.source_params(src.source)
                    ax.axhline(prm["G"] * d_f ** -prm["beta"] + prm["E"], color=f"C{i}", ls=":", lw=0.8)
        why = (
            ""
            if src.G.identified
            else (" (no gap fit)" if gap is None or src.source not in gap.sources else " (G not identified)")
        )
        ax.set(
            xscale="log",
            xlabel="p (pre-training tokens)",
            ylabel="best eval loss (nats)",
            title=f"{src.source} at {size or '-'}{why}",
        )
        _legend(ax)
        if not mine:
            _empty(ax, "no fine-tunes yet")
    if not report.sources:
        _empty(axes[0], "no ok fine-tunes yet")
    return _save(fig, sweep_dir, "loss_vs_p.png")


# ------------------------------------------------------------------ (f) history
def plot_gap_history(sweep_dir: str, history: Sequence[Mapping[str, Any]]) -> str:
    fig, (ax_g, ax_m) = _figure(2)
    lines = [h for h in history if "error" not in h and h.get("n_jobs_finished") is not None]
    names = sorted({s["source"] for h in lines for s in h.get("sources", [])})
    for i, name in enumerate(names):
        for ax, key in ((ax_g, "G"), (ax_m, "multiplier")):
            xs, ys, lo, hi = [], [], [], []
            for h in lines:
                est = next((s.get(key) for s in h.get("sources", []) if s["source"] == name), None)
                if est and est.get("value") is not None:
                    v = est["value"]
                    ci = est.get("ci95") or [v, v]
                    xs.append(h["n_jobs_finished"])
                    ys.append(v)
                    lo.append(v - (ci[0] if ci[0] is not None else v))
                    hi.append((ci[1] if ci[1] is not None else v) - v)
            if xs:
                ax.errorbar(
                    xs,
                    ys,
                    yerr=[np.maximum(lo, 0), np.maximum(hi, 0)],
                    color=f"C{i}",
                    marker="o",
                    capsize=3,
                    label=name,
                )
    ax_g.set(xlabel="jobs finished", ylabel="transfer gap G (95% CI)", title="gap estimate as jobs finish")
    ax_m.set(
        xlabel="jobs finished",
        ylabel="effective data multiplier (95% CI)",
        yscale="log",
        title="multiplier at smallest D_F, largest N",
    )
    for ax in (ax_g, ax_m):
        _legend(ax)
        if not ax.has_data():
            _empty(ax, "no identified estimate yet")
    return _save(fig, sweep_dir, "gap_history.png")


def write_plots(sweep_dir: str, table: pa.Table | None = None, report: TransferReport | None = None) -> list[str]:
    """Every figure. Reads the store and ``fits/latest.json`` when ``table``/``report`` are not
    given; with no fit yet, fits one (without a bootstrap)."""
    if table is None:
        table = Store(SweepLayout(sweep_dir).store_root).read_summaries()
    if report is None:
        report = read_latest(sweep_dir) or transfer_report(table, bootstrap=0)
    return [
        plot_loss_vs_finetune(sweep_dir, table, report),
        plot_scratch_curves(sweep_dir, report),
        plot_dt_vs_df(sweep_dir, report),
        plot_gaps(sweep_dir, report),
        plot_loss_vs_p(sweep_dir, table, report),
        plot_gap_history(sweep_dir, read_history(sweep_dir)),
    ]
