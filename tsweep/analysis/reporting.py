"""Reading a sweep's results: the summary table, the transfer report, and their files.

The summary table comes from the store; the report from the analysis actor's
``fits/latest.json`` while it covers every finished job, else it is refitted here, warm-started
from it. ``tsweep gaps`` and ``tsweep report`` print and write what this module returns.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tsweep.analysis.actor import HEADLINE_KEYS, n_jobs_finished, read_latest
from tsweep.analysis.transfer import format_table, transfer_report, warm_starts_from_json
from tsweep.core.errors import UsageError
from tsweep.core.jsonio import finite
from tsweep.core.layout import SweepLayout
from tsweep.core.store import Store

DEFAULT_BOOTSTRAP = 200  # resamples when a report must be refitted here (Besiroglu et al. 2024 used 4,000)


def load_report(sweep_dir: str, *, bootstrap: int | None = None) -> tuple[Any, dict[str, Any]]:
    """(summary table, report dict): fits/latest.json if it covers every finished job (and has
    the asked-for bootstrap), else a refit warm-started from it."""
    layout = SweepLayout(sweep_dir)
    if not layout.exists():
        raise UsageError(f"no sweep folder at {sweep_dir!r} (no sweep.yaml there)")
    table = Store(layout.store_root).read_summaries()
    finished = n_jobs_finished(table)
    latest = read_latest(sweep_dir)
    if (
        latest is not None
        and latest.get("n_jobs_finished") == finished
        and latest.get("n_rows") == table.num_rows
        and (bootstrap is None or latest.get("bootstrap") == bootstrap)
    ):
        return table, latest
    b = bootstrap if bootstrap is not None else int((latest or {}).get("bootstrap", DEFAULT_BOOTSTRAP))
    seed = int((latest or {}).get("seed", 0))
    report = transfer_report(table, bootstrap=b, seed=seed, warm=warm_starts_from_json(latest))
    out = finite(report.to_json())
    out["n_jobs_finished"] = finished
    return table, out


GAP_KEYS = (*HEADLINE_KEYS, "warnings")


def gaps_json(report: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "sweep": report.get("sweep"),
        "n_jobs_finished": report.get("n_jobs_finished"),
        "bootstrap": report.get("bootstrap"),
        "left_out": report.get("left_out", {}),
        "scratch": report.get("scratch"),
        "sources": [{"source": s["source"], **{k: s.get(k) for k in GAP_KEYS}} for s in report.get("sources", [])],
        "warnings": report.get("warnings", []),
    }


def gaps_csv(report: Mapping[str, Any]) -> str:
    """The gap table as CSV text, one row per source."""
    cols = ["source", "n_runs", "n_dt_runs", "gap_size"]
    for k in ("G", "k", "alpha", "beta", "multiplier"):
        cols += [k, f"{k}_ci95_lo", f"{k}_ci95_hi"]
    cols += ["multiplier_D_F", "multiplier_N", "multiplier_basis"]
    f = io.StringIO()
    w = csv.writer(f)
    w.writerow(cols)
    for s in report.get("sources", []):
        row: list[Any] = [s["source"], s.get("n_runs"), s.get("n_dt_runs"), s.get("gap_size") or ""]
        for k in ("G", "k", "alpha", "beta", "multiplier"):
            e = s.get(k) or {}
            ci = e.get("ci95") or [None, None]
            row += [_cell(e.get("value")), _cell(ci[0]), _cell(ci[1])]
        at = s.get("multiplier_at") or {}
        row += [_cell(at.get("D_F")), _cell(at.get("N")), at.get("basis", "")]
        w.writerow(row)
    return f.getvalue()


def _cell(x: Any) -> str:
    return "" if x is None else repr(float(x))


def summary_markdown(report: Mapping[str, Any], plots: list[str], sweep_dir: str) -> str:
    lines = [f"# Transfer report: {report.get('sweep') or Path(sweep_dir.rstrip('/')).name}", ""]
    lines.append(
        f"{report.get('n_jobs_finished', '?')} jobs finished; {report['n_used']} of {report['n_rows']} summary rows "
        f"in fits; intervals from {report.get('bootstrap', 0)} bootstrap resamples over runs."
    )
    lines += ["", "```", format_table(report), "```", ""]
    lines.append("Laws: scratch L = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022); "
                 "D_T = k D_F^alpha N^beta (Hernandez et al. 2021); "
                 "L = (A p^-alpha + G) f^-beta + E (Barnett 2024). See tsweep/analysis/transfer.py for the run flags.")
    lines.append("")
    for p in plots:
        lines.append(f"![{Path(p).stem}](plots/{Path(p).name})")
    return "\n".join(lines) + "\n"
