"""Figures of a sweep, written as PNGs under ``{sweep_dir}/plots/``.

(a) ``loss_vs_finetune.png``: eval loss vs fine-tune tokens, one panel per source; points at the
    final pre-training checkpoint (filled) and earlier ones (faint), the joint gap law's curve
    per size at the final p, and the from-scratch baseline (each size's fitted curve, dashed).
(b) ``dt_vs_df.png``: effective data transferred D_T vs D_F per N, log-log, one panel per source,
    with the fitted Hernandez law; runs outside the low-data regime are hollow.
(c) ``gap_history.png``: the gap estimate G with its 95% interval (and the headline multiplier)
    against the number of jobs finished, from ``fits/history.jsonl``: how the estimate settles.

Matplotlib's object API with the Agg canvas: no pyplot state, no global backend switch, safe in
a Ray actor or a test process. Every function returns the paths it wrote.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tsweep.analysis.actor import read_history, read_latest
from tsweep.analysis.laws import get_law
from tsweep.analysis.report import TransferReport
from tsweep.analysis.transfer import transfer_report
from tsweep.core.layout import SweepLayout
from tsweep.core.store import Store

DPI = 110


def _figure(n_panels: int, height: float = 4.0) -> tuple[Figure, list]:
    n = max(1, n_panels)
    fig = Figure(figsize=(5.0 * n, height))
    FigureCanvasAgg(fig)
    return fig, [fig.add_subplot(1, n, i + 1) for i in range(n)]


def _save(fig: Figure, sweep_dir: str, name: str) -> str:
    layout = SweepLayout(sweep_dir)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, dpi=DPI, format="png")
    path = layout.plot(name)
    layout.files.write_bytes(path, buf.getvalue())
    return path


def _legend(ax) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    return [
        r for r in table.to_pylist()
        if r["status"] == "ok" and r["best_eval_loss"] is not None and np.isfinite(r["best_eval_loss"])
    ]


def plot_loss_vs_finetune(sweep_dir: str, table: pa.Table, report: TransferReport) -> str:
    rows = _rows(table)
    fig, axes = _figure(len(report.sources))
    barn, curve_law = get_law("barnett"), get_law("plateau")
    sizes = sorted({(r["n_params"], r["size"]) for r in rows if r["kind"] in ("finetune", "scratch")})
    colours = {size: f"C{i}" for i, (_, size) in enumerate(sizes)}
    curves = {c.size: c for c in report.curves}
    d_all = [r["data_tokens"] for r in rows if r["kind"] in ("finetune", "scratch")]
    for ax, src in zip(axes, report.sources):
        ft = [r for r in rows if r["kind"] == "finetune" and r["source"] == src.source]
        for _, size in sizes:
            c = colours[size]
            mine = [r for r in ft if r["size"] == size]
            if mine:
                p_final = max(r["pretrain_tokens"] for r in mine)
                fin = [r for r in mine if r["pretrain_tokens"] == p_final]
                early = [r for r in mine if r["pretrain_tokens"] != p_final]
                ax.scatter([r["data_tokens"] for r in fin], [r["best_eval_loss"] for r in fin], color=c,
                           label=f"{size} fine-tuned (p={p_final:.3g})", zorder=3)
                if early:
                    ax.scatter([r["data_tokens"] for r in early], [r["best_eval_loss"] for r in early], color=c,
                               alpha=0.3, s=12)
                gap = report.gap(size)
                params = None if gap is None else gap.source_params(src.source)
                if params is not None and p_final > 0:
                    f = np.geomspace(min(r["data_tokens"] for r in mine), max(r["data_tokens"] for r in mine), 60)
                    ax.plot(f, barn.predict(params, p=np.full_like(f, p_final), f=f), color=c)
            sc = [r for r in rows if r["kind"] == "scratch" and r["size"] == size]
            if sc:
                ax.scatter([r["data_tokens"] for r in sc], [r["best_eval_loss"] for r in sc], color=c, marker="x",
                           label=f"{size} from scratch")
            curve = curves.get(size)
            if curve is not None and curve.fit is not None and d_all:
                d = np.geomspace(min(d_all), max(d_all), 60)
                ax.plot(d, curve_law.predict(curve.fit.params, D=d), color=c, ls="--", lw=1)
        title = src.source
        if src.G.identified:
            title += f"  (G = {src.G.value:.3g}, {src.gap_size})"
        ax.set(xscale="log", xlabel="target tokens (D_F fine-tuned, D from scratch)", ylabel="best eval loss",
               title=title)
        _legend(ax)
    if not report.sources:
        axes[0].text(0.5, 0.5, "no ok fine-tunes yet", ha="center", transform=axes[0].transAxes)
    return _save(fig, sweep_dir, "loss_vs_finetune.png")


def plot_dt_vs_df(sweep_dir: str, report: TransferReport) -> str:
    fig, axes = _figure(len(report.sources))
    law = get_law("hernandez")
    for ax, src in zip(axes, report.sources):
        runs = [r for r in src.runs if np.isfinite(r.d_t) and r.d_t > 0]
        ns = sorted({r.n_params for r in runs})
        fit = src.hernandez
        for i, n in enumerate(ns):
            mine = [r for r in runs if r.n_params == n]
            ok = [r for r in mine if r.flag == "ok"]
            off = [r for r in mine if r.flag != "ok"]
            ax.scatter([r.d_f for r in ok], [r.d_t for r in ok], color=f"C{i}", label=f"N={n:.3g}")
            if off:
                ax.scatter([r.d_f for r in off], [r.d_t for r in off], facecolors="none", edgecolors=f"C{i}")
            if fit:
                f = np.geomspace(min(r.d_f for r in mine), max(r.d_f for r in mine), 30)
                ax.plot(f, law.predict(fit.params, N=np.full_like(f, n), D_F=f), color=f"C{i}")
        title = src.source
        if fit:
            p = fit.params
            title += f": D_T = {p['k']:.3g} D_F^{p['alpha']:.2f} N^{p['beta']:.2f}"
        ax.set(xscale="log", yscale="log", xlabel="D_F (fine-tune tokens)", ylabel="D_T (effective data transferred)",
               title=title)
        _legend(ax)
        if not runs:
            ax.text(0.5, 0.5, "no runs with D_T > 0", ha="center", transform=ax.transAxes)
    if not report.sources:
        axes[0].text(0.5, 0.5, "no ok fine-tunes yet", ha="center", transform=axes[0].transAxes)
    return _save(fig, sweep_dir, "dt_vs_df.png")


def plot_gap_history(sweep_dir: str, history: list[Mapping[str, Any]]) -> str:
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
                ax.errorbar(xs, ys, yerr=[np.maximum(lo, 0), np.maximum(hi, 0)], color=f"C{i}", marker="o",
                            capsize=3, label=name)
    ax_g.set(xlabel="jobs finished", ylabel="transfer gap G (95% CI)", title="gap estimate as jobs finish")
    ax_m.set(xlabel="jobs finished", ylabel="effective data multiplier (95% CI)", yscale="log",
             title="multiplier at smallest D_F, largest N")
    for ax in (ax_g, ax_m):
        _legend(ax)
        if not names:
            ax.text(0.5, 0.5, "no estimates yet", ha="center", transform=ax.transAxes)
    return _save(fig, sweep_dir, "gap_history.png")


def write_plots(
    sweep_dir: str, table: pa.Table | None = None, report: TransferReport | None = None
) -> list[str]:
    """All three figures. Reads the store (``{sweep_dir}/store``) and ``fits/latest.json`` when
    ``table``/``report`` are not given; with no fit yet, fits one (without a bootstrap)."""
    if table is None:
        table = Store(SweepLayout(sweep_dir).store_root).read_summaries()
    if report is None:
        report = read_latest(sweep_dir)
    if report is None:
        report = transfer_report(table, bootstrap=0)
    return [
        plot_loss_vs_finetune(sweep_dir, table, report),
        plot_dt_vs_df(sweep_dir, report),
        plot_gap_history(sweep_dir, read_history(sweep_dir)),
    ]
