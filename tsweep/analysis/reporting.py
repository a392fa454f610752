"""Reading a sweep's results: the summary table, the transfer report, and the files they become.

The summary table comes from the store; the report from the analysis actor's
``fits/latest.json`` while it covers every finished job (and the asked-for bootstrap), else it
is refitted here, its previous fits joining the starts. ``tsweep gaps`` and ``tsweep report``
print and write what this module returns; JSON exists only at those boundaries. The HTML page is
``tsweep.analysis.page``'s.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa

from tsweep.analysis.actor import n_jobs_finished, read_latest
from tsweep.analysis.design import design_line
from tsweep.analysis.records import HEADLINE_KEYS, TransferReport
from tsweep.analysis.rendering import format_table
from tsweep.analysis.transfer import transfer_report
from tsweep.core.errors import UsageError
from tsweep.core.jsonio import finite, num
from tsweep.core.layout import SweepLayout
from tsweep.core.store import Store

# Resamples when a report must be refitted here and no earlier fit says how many (Besiroglu et
# al. 2024 used 4,000 for the published intervals; 200 keeps a refit to seconds).
DEFAULT_BOOTSTRAP = 200


def load_report(sweep_dir: str, *, bootstrap: int | None = None) -> tuple[pa.Table, TransferReport]:
    """(summary table, report): fits/latest.json if it covers every finished job (and has the
    asked-for bootstrap), else a fresh fit of the table."""
    layout = SweepLayout(sweep_dir)
    if not layout.exists():
        raise UsageError(f"no sweep folder at {sweep_dir!r} (no sweep.yaml there)")
    table = Store(layout.store_root).read_summaries()
    finished = n_jobs_finished(table)
    latest = read_latest(sweep_dir)
    if (
        latest is not None
        and latest.n_jobs_finished == finished
        and latest.n_rows == table.num_rows
        and (bootstrap is None or latest.bootstrap == bootstrap)
    ):
        return table, latest
    b = bootstrap if bootstrap is not None else (latest.bootstrap if latest is not None else DEFAULT_BOOTSTRAP)
    seed = latest.seed if latest is not None else 0
    report = transfer_report(table, bootstrap=b, seed=seed, warm=None if latest is None else latest.warm_starts())
    return table, replace(report, n_jobs_finished=finished)


def gaps_json(report: TransferReport) -> dict[str, Any]:
    """The ``tsweep gaps --json`` contract: per source, G (and G in loss units), the D_T law's k,
    alpha, beta, the multiplier, each ``{"value", "ci95"}`` or ``{"value": null, "reason"}``."""
    full = report.to_json()
    out: dict[str, Any] = finite(
        {
            "sweep": report.sweep,
            "n_jobs_finished": report.n_jobs_finished,
            "bootstrap": report.bootstrap,
            "noise": num(report.noise),
            "left_out": report.left_out,
            "sources": [
                {"source": s["source"], **{k: s.get(k) for k in HEADLINE_KEYS}, "warnings": s["warnings"]}
                for s in full["sources"]
            ],
            "comparisons": full["comparisons"],
            "plateaus": [
                {"size": c["size"], "n_params": c["n_params"], "L_inf": c["plateau"], "D_N": c["d_n"]}
                for c in full["curves"]
            ],
            "warnings": list(report.warnings),
        }
    )
    return out


CSV_ESTIMATES = ("G", "G_loss", "k", "alpha", "beta", "multiplier")


def gaps_csv(report: TransferReport) -> str:
    """The gap table as CSV text, one row per source; an unidentified value is an empty cell."""
    cols = ["source", "n_runs", "n_dt_runs", "gap_size"]
    for k in CSV_ESTIMATES:
        cols += [k, f"{k}_ci95_lo", f"{k}_ci95_hi"]
    cols += ["multiplier_D_F", "multiplier_N", "multiplier_basis"]
    f = io.StringIO()
    w = csv.writer(f)
    w.writerow(cols)
    for s in report.sources:
        row: list[Any] = [s.source, s.n_runs, s.n_dt_runs, s.gap_size or ""]
        for k in CSV_ESTIMATES:
            e = getattr(s, k)
            lo, hi = e.ci95 if e.ci95 is not None else (None, None)
            row += [_cell(e.value), _cell(lo), _cell(hi)]
        at = s.multiplier_at or {}
        row += [_cell(at.get("D_F")), _cell(at.get("N")), at.get("basis", "")]
        w.writerow(row)
    return f.getvalue()


def _cell(x: Any) -> str:
    return "" if x is None else repr(float(x))


def summary_markdown(
    report: TransferReport,
    plots: list[str],
    sweep_dir: str,
    *,
    advice: str | None = None,
    design: Mapping[str, Any] | None = None,
) -> str:
    """``summary.md``: the gap table, the laws, the advice (``tsweep advise``'s text) and the plots."""
    lines = [f"# Transfer report: {report.sweep or Path(sweep_dir.rstrip('/')).name}", ""]
    lines.append(
        f"{report.n_jobs_finished if report.n_jobs_finished is not None else '?'} jobs finished; "
        f"{report.n_used} of {report.n_rows} summary rows in fits; intervals from {report.bootstrap} "
        f"bootstrap resamples (module docstring of tsweep/analysis/transfer.py says which)."
    )
    lines += ["", "```", format_table(report), "```", ""]
    lines.append(
        "Laws: per-size scratch curve L = L_inf + B/D^beta; D_T = k D_F^alpha N^beta (Hernandez et al. "
        "2021); L = (A_s p^-alpha_s + G_s) f^-beta + E per size, beta and E shared across sources "
        "(Barnett 2024)."
    )
    lines.append("")
    if advice is not None:
        lines += ["## More pre-training, more target data, or from scratch?", "", "```", advice, "```", ""]
    if design is not None:
        lines += ["## Adaptive design", "", design_line(design), ""]
        lines += [f"- {t.get('line', t.get('name'))}" for t in design.get("targets", [])] + [""]
    for p in plots:
        lines.append(f"![{Path(p).stem}](plots/{Path(p).name})")
    return "\n".join(lines) + "\n"
