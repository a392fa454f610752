"""The analysis commands of ``tsweep``: ``fit``, ``report``, ``advise``, and ``gaps`` (via
:func:`gaps_command`).

``orchestrator/cli.py`` owns the console script: it calls :func:`add_commands` on its
subparsers, resolves a SWEEP name to its folder into ``args.sweep_dir`` for ``report`` and
``advise``, and turns :class:`UsageError` into one line on stderr and exit code 2. Every handler
is ``handler(args) -> int``; ``python -m analysis.cli`` runs the same commands standalone (a
SWEEP is then a folder).

Reading a sweep: the summary table from ``{sweep_dir}/store`` and the actor's
``fits/latest.json``. The latter is used as is while it covers every finished job; otherwise
(the actor died, or never ran) the report is refitted here, warm-started from it.

``advise`` reads the headline Barnett fit of each source (Barnett 2024, arXiv 2408.16947):
L(p, f) = (A p^-alpha + G) f^-beta + E. At the sweep's current p (final checkpoint) and f
(largest fine-tune set) it compares the loss bought by 2x pre-training with 2x fine-tuning data,
and for a target loss X solves for f at the current p, f = ((A p^-alpha + G)/(X - E))^(1/beta),
and for p at the current f, p = (A / ((X - E) f^beta - G))^(1/alpha); the latter has no solution
when X <= G f^-beta + E, the floor that no amount of pre-training crosses (the point of G).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from analysis import fitter
from analysis.laws import LAWS, get_law

DEFAULT_BOOTSTRAP = 200  # resamples when a report must be refitted here (Besiroglu et al. 2024 used 4,000)


class UsageError(Exception):
    """Bad input to an analysis command: the CLI prints it as one line and exits 2."""


# ------------------------------------------------------------------ fit
def read_table(path: str) -> dict[str, np.ndarray]:
    """A CSV or Parquet file as column name -> numpy array."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    p = Path(path)
    if not p.is_file():
        raise UsageError(f"--data: no such file: {path}")
    try:
        if p.suffix.lower() == ".csv":
            table = pacsv.read_csv(p)
        elif p.suffix.lower() in (".parquet", ".pq"):
            table = pq.read_table(p)
        else:
            raise UsageError(f"--data: expected a .csv or .parquet file, got {p.name}")
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader error is bad input
        raise UsageError(f"--data: cannot read {path}: {type(exc).__name__}: {exc}") from None
    return {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}


def parse_map(items: list[str] | None, variables: tuple[str, ...]) -> dict[str, str]:
    """``VAR=COLUMN`` pairs -> {variable: column}; unmapped variables read the column of their name."""
    mapping = {v: v for v in variables}
    for item in items or []:
        var, sep, column = item.partition("=")
        if not sep or not var or not column:
            raise UsageError(f"--map: expected VAR=COLUMN, got {item!r}")
        if var not in variables:
            raise UsageError(f"--map: unknown variable {var!r}; this law's variables are {', '.join(variables)}")
        mapping[var] = column
    return mapping


def cmd_fit(args: argparse.Namespace) -> int:
    if args.law not in LAWS:
        raise UsageError(f"--law: unknown law {args.law!r}; known laws: {', '.join(sorted(LAWS))}")
    if args.bootstrap < 0:
        raise UsageError(f"--bootstrap: must be >= 0, got {args.bootstrap}")
    law = get_law(args.law)
    mapping = parse_map(args.map, law.variables)
    columns = read_table(args.data)
    data = {}
    for var, col in mapping.items():
        if col not in columns:
            raise UsageError(
                f"column {col!r} (variable {var}) not in {args.data}; columns: {', '.join(columns) or 'none'}"
            )
        try:
            data[var] = np.asarray(columns[col], dtype=float)
        except (TypeError, ValueError):
            raise UsageError(f"column {col!r} (variable {var}) is not numeric") from None
    try:
        result = fitter.fit(law, data, bootstrap=args.bootstrap, seed=args.seed)
    except fitter.FitError as exc:
        raise UsageError(str(exc)) from None
    if result.n_points < law.n_params:
        raise UsageError(f"{result.n_points} usable rows for {law.n_params} parameters of {law.name}: cannot fit")
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        print(format_fit(result))
    return 0


def format_fit(result: fitter.FitResult) -> str:
    law = get_law(result.law)
    lines = [f"{law.name}: {law.formula}   ({result.n_points} points, Huber loss {result.loss:.6g})"]
    for name, value in result.params.items():
        ci = "" if result.ci95 is None else f"   95% CI [{result.ci95[name][0]:.4g}, {result.ci95[name][1]:.4g}]"
        lines.append(f"  {name:>8} = {value:.4g}{ci}")
    if result.n_bootstrap:
        lines.append(f"  intervals: percentile bootstrap over rows, {result.n_bootstrap} resamples")
    lines += [f"  warning: {w}" for w in result.warnings]
    return "\n".join(lines)


# ------------------------------------------------------------------ reading a sweep
def _sweep_dir(args: argparse.Namespace) -> str:
    d = getattr(args, "sweep_dir", None) or getattr(args, "sweep", None)
    if not d or not os.path.isdir(d):
        raise UsageError(f"no sweep folder at {d!r}")
    return d


def load_report(sweep_dir: str, *, bootstrap: int | None = None) -> tuple[Any, dict[str, Any]]:
    """(summary table, report dict): fits/latest.json if it covers every finished job (and has
    the asked-for bootstrap), else a refit warm-started from it."""
    from analysis.actor import finite, n_jobs_finished, read_latest
    from analysis.transfer import transfer_report, warm_starts_from_json
    from orchestrator.store import Store

    if not os.path.isdir(sweep_dir):
        raise UsageError(f"no sweep folder at {sweep_dir!r}")
    table = Store(os.path.join(sweep_dir, "store")).read_summaries()
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


# ------------------------------------------------------------------ gaps
GAP_KEYS = ("G", "gap_size", "k", "alpha", "beta", "multiplier", "multiplier_at", "n_runs", "n_dt_runs", "warnings")


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


def _write_gaps_csv(path: str, report: Mapping[str, Any]) -> None:
    cols = ["source", "n_runs", "n_dt_runs", "gap_size"]
    for k in ("G", "k", "alpha", "beta", "multiplier"):
        cols += [k, f"{k}_ci95_lo", f"{k}_ci95_hi"]
    cols += ["multiplier_D_F", "multiplier_N", "multiplier_basis"]
    with open(path, "w", newline="") as f:
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


def _cell(x: Any) -> str:
    return "" if x is None else repr(float(x))


def gaps_command(sweep_dir: str, as_json: bool, csv_path: str | None = None) -> int:
    """``tsweep gaps``: per source G, k, alpha, beta, multiplier with intervals and run counts."""
    from analysis.transfer import format_table

    _, report = load_report(sweep_dir)
    if as_json:
        print(json.dumps(gaps_json(report)))
    else:
        print(format_table(report))
    if csv_path:
        _write_gaps_csv(csv_path, report)
        if not as_json:
            print(f"csv: {csv_path}")
    return 0


def cmd_gaps(args: argparse.Namespace) -> int:
    return gaps_command(_sweep_dir(args), as_json=args.json, csv_path=args.csv)


# ------------------------------------------------------------------ report
def summary_markdown(report: Mapping[str, Any], plots: list[str], sweep_dir: str) -> str:
    from analysis.transfer import format_table

    lines = [f"# Transfer report: {report.get('sweep') or os.path.basename(sweep_dir)}", ""]
    lines.append(
        f"{report.get('n_jobs_finished', '?')} jobs finished; {report['n_used']} of {report['n_rows']} summary rows "
        f"in fits; intervals from {report.get('bootstrap', 0)} bootstrap resamples over runs."
    )
    lines += ["", "```", format_table(report), "```", ""]
    lines.append("Laws: scratch L = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022); "
                 "D_T = k D_F^alpha N^beta (Hernandez et al. 2021); "
                 "L = (A p^-alpha + G) f^-beta + E (Barnett 2024). See analysis/transfer.py for the run flags.")
    lines.append("")
    for p in plots:
        rel = os.path.relpath(p, sweep_dir)
        lines.append(f"![{Path(p).stem}]({rel})")
    return "\n".join(lines) + "\n"


def cmd_report(args: argparse.Namespace) -> int:
    from analysis.plots import write_plots

    sweep_dir = _sweep_dir(args)
    table, report = load_report(sweep_dir, bootstrap=args.bootstrap)
    plots = write_plots(sweep_dir, table, report)
    md = os.path.join(sweep_dir, "summary.md")
    with open(md, "w") as f:
        f.write(summary_markdown(report, plots, sweep_dir))
    for p in [md, *plots]:
        print(p)
    return 0


# ------------------------------------------------------------------ advise
def advice(report: Mapping[str, Any], table: Any, target_loss: float | None = None) -> list[dict[str, Any]]:
    """Per source, what 2x pre-training vs 2x fine-tuning data buys, and what reaching a target takes."""
    law = get_law("barnett")
    rows = [r for r in table.to_pylist() if r["kind"] == "finetune" and r["status"] == "ok"]
    out = []
    for s in report.get("sources", []):
        entry: dict[str, Any] = {"source": s["source"], "size": s.get("gap_size")}
        fit = (s.get("barnett") or {}).get(s.get("gap_size") or "")
        if not fit:
            entry["note"] = "no gap law fitted for this source (see `tsweep gaps` warnings)"
            out.append(entry)
            continue
        prm = {k: v["value"] for k, v in fit["params"].items()}
        mine = [r for r in rows if r["source"] == s["source"] and r["size"] == s["gap_size"] and r["pretrain_tokens"] > 0]
        p = float(max(r["pretrain_tokens"] for r in mine))
        f = float(max(r["data_tokens"] for r in mine))
        loss = lambda pp, ff: float(law.predict(prm, p=pp, f=ff))  # noqa: E731
        now, l2p, l2f = loss(p, f), loss(2 * p, f), loss(p, 2 * f)
        floor = prm["G"] * f ** -prm["beta"] + prm["E"]
        entry.update({
            "p": p, "f": f, "loss_now": now, "loss_2x_pretrain": l2p, "loss_2x_finetune": l2f,
            "gain_2x_pretrain": now - l2p, "gain_2x_finetune": now - l2f,
            "better": "fine-tune data" if now - l2f > now - l2p else "pre-training",
            "pretrain_floor_at_f": floor, "G": prm["G"],
        })
        if target_loss is not None:
            entry.update(_solve_target(prm, p, f, target_loss, now))
        out.append(entry)
    return out


def _solve_target(prm: Mapping[str, float], p: float, f: float, x: float, now: float) -> dict[str, Any]:
    a, alpha, g, beta, e = (prm[k] for k in ("A", "alpha", "G", "beta", "E"))
    res: dict[str, Any] = {"target_loss": x}
    if x >= now:
        res["finetune_tokens_needed"] = f
        res["pretrain_tokens_needed"] = p
        res["note"] = "already at or below the target"
        return res
    if x <= e:
        res["finetune_tokens_needed"] = None
        res["pretrain_tokens_needed"] = None
        res["note"] = f"target <= E = {e:.4g}: unreachable under this law"
        return res
    res["finetune_tokens_needed"] = ((a * p ** -alpha + g) / (x - e)) ** (1.0 / beta) if beta > 0 else None
    room = (x - e) * f**beta - g
    if room > 0 and alpha > 0 and a > 0:
        res["pretrain_tokens_needed"] = (a / room) ** (1.0 / alpha)
    else:
        res["pretrain_tokens_needed"] = None
        res["note"] = (f"no amount of pre-training reaches {x:.4g} at f = {f:.3g}: "
                       f"the floor G f^-beta + E is {g * f ** -beta + e:.4g}")
    return res


def _fmt_tokens(x: float | None) -> str:
    return "unreachable" if x is None or not math.isfinite(x) else f"{x:.3g}"


def cmd_advise(args: argparse.Namespace) -> int:
    sweep_dir = _sweep_dir(args)
    table, report = load_report(sweep_dir)
    entries = advice(report, table, args.target_loss)
    if args.json:
        print(json.dumps(entries))
        return 0
    for a in entries:
        if "note" in a and "loss_now" not in a:
            print(f"{a['source']}: {a['note']}")
            continue
        print(f"{a['source']} (size {a['size']}, p = {a['p']:.3g}, f = {a['f']:.3g}): loss {a['loss_now']:.4g}")
        print(f"  2x pre-training tokens -> {a['loss_2x_pretrain']:.4g} (-{a['gain_2x_pretrain']:.3g}); "
              f"2x fine-tune tokens -> {a['loss_2x_finetune']:.4g} (-{a['gain_2x_finetune']:.3g}): "
              f"{a['better']} buys more")
        print(f"  floor with unlimited pre-training at this f: {a['pretrain_floor_at_f']:.4g} (G = {a['G']:.3g})")
        if args.target_loss is not None:
            print(f"  to reach {args.target_loss:g}: {_fmt_tokens(a['finetune_tokens_needed'])} fine-tune tokens at "
                  f"p = {a['p']:.3g}, or {_fmt_tokens(a['pretrain_tokens_needed'])} pre-training tokens at "
                  f"f = {a['f']:.3g}")
            if a.get("note"):
                print(f"  note: {a['note']}")
    print("(point estimates of the headline Barnett fit per source; its intervals: `tsweep gaps`)")
    return 0


# ------------------------------------------------------------------ wiring
def add_commands(subparsers: Any) -> None:
    """Register ``fit``, ``report`` and ``advise`` on the ``tsweep`` subparsers."""
    f = subparsers.add_parser("fit", help="fit a scaling law to any table (.csv or .parquet)",
                              description="Fit a scaling law to a table: Huber loss on log values, "
                                          "L-BFGS-B from a grid of starts (Hoffmann et al. 2022, approach 3).")
    f.add_argument("--law", required=True, metavar="NAME", help=f"one of: {', '.join(sorted(LAWS))}")
    f.add_argument("--data", required=True, metavar="FILE", help="a .csv or .parquet table")
    f.add_argument("--map", action="append", metavar="VAR=COLUMN",
                   help="read law variable VAR from COLUMN (default: the column named VAR); repeatable")
    f.add_argument("--bootstrap", type=int, default=0, metavar="N", help="bootstrap resamples for 95%% intervals")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--json", action="store_true", help="print the JSON contract")
    f.set_defaults(handler=cmd_fit)

    r = subparsers.add_parser("report", help="write a sweep's plots and summary.md")
    r.add_argument("sweep", metavar="SWEEP", help="sweep name or folder")
    r.add_argument("--storage", metavar="URI", help="storage root (default: the sweep's storage_root)")
    r.add_argument("--bootstrap", type=int, default=None, metavar="N",
                   help="refit with N resamples (default: reuse the actor's latest fit)")
    r.set_defaults(handler=cmd_report)

    a = subparsers.add_parser("advise", help="per source: more pre-training or more fine-tuning data?")
    a.add_argument("sweep", metavar="SWEEP", help="sweep name or folder")
    a.add_argument("--storage", metavar="URI", help="storage root (default: the sweep's storage_root)")
    a.add_argument("--target-loss", type=float, default=None, metavar="X",
                   help="also solve for the tokens that reach loss X")
    a.add_argument("--json", action="store_true")
    a.set_defaults(handler=cmd_advise)


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (``python -m analysis.cli``): the same commands, plus ``gaps`` on a folder."""
    parser = argparse.ArgumentParser(prog="python -m analysis.cli")
    sub = parser.add_subparsers(dest="command", required=True)
    add_commands(sub)
    g = sub.add_parser("gaps", help="transfer gaps of a sweep folder")
    g.add_argument("sweep", metavar="SWEEP_DIR")
    g.add_argument("--json", action="store_true")
    g.add_argument("--csv", metavar="FILE")
    g.set_defaults(handler=cmd_gaps)
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except UsageError as exc:
        print(f"{args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
