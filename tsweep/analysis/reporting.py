"""Reading a sweep's results: the summary table, the transfer report, and the files made from them.

The summary table comes from the store; the report from the analysis actor's
``fits/latest.json`` (through ``TransferReport.from_json``) while it covers every finished job,
else it is refitted here, with the actor's optima as one more start each. ``tsweep gaps``,
``report`` and ``advise`` print and write what this module returns; ``gaps_json`` is the
``tsweep gaps --json`` contract of DESIGN.md: ``{"sources": [{"source", "G": {"value", "ci95"},
...}], ...}``, where a value the design cannot identify is null with its ``reason``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pyarrow as pa

from tsweep.analysis.actor import n_jobs_finished, read_latest
from tsweep.analysis.report import HEADLINE_ESTIMATES, TransferReport
from tsweep.analysis.transfer import transfer_report
from tsweep.core.errors import UsageError
from tsweep.core.layout import SweepLayout
from tsweep.core.store import Store

DEFAULT_BOOTSTRAP = 200  # resamples when a report must be refitted here (Besiroglu et al. 2024 used 4,000)


def load_report(sweep_dir: str, *, bootstrap: int | None = None) -> tuple[pa.Table, TransferReport]:
    """(summary table, report): fits/latest.json if it covers every finished job (and has the
    asked-for bootstrap), else a refit with its optima as extra starts."""
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
    b = bootstrap if bootstrap is not None else (latest.bootstrap if latest else DEFAULT_BOOTSTRAP)
    seed = latest.seed if latest else 0
    report = transfer_report(table, bootstrap=b, seed=seed, warm=latest)
    return table, report.stamped(finished, None)


def gaps_json(report: TransferReport) -> dict[str, Any]:
    """The ``tsweep gaps --json`` object."""
    return {
        "sweep": report.sweep,
        "n_jobs_finished": report.n_jobs_finished,
        "bootstrap": report.bootstrap,
        "noise": {"sigma_log_loss": report.noise, "dof": report.noise_dof},
        "left_out": dict(report.left_out),
        "scratch": {
            "curves": [{k: v for k, v in c.to_json().items() if k not in ("fit", "d", "loss")} for c in report.curves],
            "law": None if report.scratch is None else report.scratch.to_json(),
        },
        "sources": [{**s.headline(), "warnings": list(s.warnings)} for s in report.sources],
        "comparisons": [c.to_json() for c in report.comparisons],
        "warnings": list(report.warnings),
    }


def gaps_csv(report: TransferReport) -> str:
    """The gap table as CSV text, one row per source."""
    cols = ["source", "n_runs", "n_dt_runs", "gap_size", "f_ref"]
    for k in HEADLINE_ESTIMATES:
        cols += [k, f"{k}_ci95_lo", f"{k}_ci95_hi", f"{k}_reason"]
    cols += ["multiplier_D_F", "multiplier_N", "multiplier_basis"]
    f = io.StringIO()
    w = csv.writer(f)
    w.writerow(cols)
    for s in report.sources:
        row: list[Any] = [s.source, s.n_runs, s.n_dt_runs, s.gap_size or "", _cell(s.f_ref)]
        for k in HEADLINE_ESTIMATES:
            e = getattr(s, k)
            ci = e.ci95 or (None, None)
            row += [_cell(e.value), _cell(ci[0]), _cell(ci[1]), e.reason or ""]
        at = s.multiplier_at or {}
        row += [_cell(at.get("D_F")), _cell(at.get("N")), at.get("basis", "")]
        w.writerow(row)
    return f.getvalue()


def _cell(x: Any) -> str:
    return "" if x is None else repr(float(x))


def summary_markdown(report: TransferReport, plots: list[str], sweep_dir: str) -> str:
    lines = [f"# Transfer report: {report.sweep or Path(sweep_dir.rstrip('/')).name}", ""]
    lines.append(
        f"{report.n_jobs_finished if report.n_jobs_finished is not None else '?'} jobs finished; {report.n_used} of "
        f"{report.n_rows} summary rows in fits; intervals from a parametric bootstrap of {report.bootstrap} "
        f"resamples at the sweep's measured noise."
    )
    lines += ["", "```", report.format_table(), "```", ""]
    lines.append("Laws: per-size scratch curves L(D) = L_inf + B/D^b and D(N) (Hernandez et al. 2021); "
                 "L = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022); D_T = k D_F^alpha N^beta (Hernandez et al. "
                 "2021); L = (A_s p^-alpha_s + G_s) f^-beta + E, joint over sources (Barnett 2024). "
                 "See tsweep/analysis/transfer.py for the run flags and the bootstrap.")
    lines.append("")
    for p in plots:
        lines.append(f"![{Path(p).stem}](plots/{Path(p).name})")
    return "\n".join(lines) + "\n"

