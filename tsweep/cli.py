"""The ``tsweep`` console script: a thin layer over :mod:`tsweep.api`.

Commands: ``demo``, ``plan``, ``submit``, ``status``, ``resume``, ``gaps``, ``fit``, ``report``,
``advise``. ``main(argv)`` returns the exit code so tests can call it. Bad input of any kind (a
broken YAML, an unknown field, a missing corpus, a table without the columns a law needs)
raises :class:`tsweep.core.errors.UsageError`; it is printed as one line naming what is wrong,
with exit code 2, nothing written and no traceback.

SWEEP is a shipped sweep's name (``demo``), a YAML path, a sweep folder, a URI of one, or the
name of a sweep under the storage root (``--storage``, else ``$TSWEEP_STORAGE``, else
``~/tsweep_runs``); see :func:`tsweep.api.resolve`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Any

from tsweep import api
from tsweep.core.errors import UsageError
from tsweep.core.layout import without_query


def _sets(args) -> list[str]:
    """Every ``--set KEY.PATH=VALUE`` given (several after one flag, or the flag repeated)."""
    return [kv for group in (getattr(args, "set", None) or []) for kv in group]


def _storage(args) -> str | None:
    return api.storage_override(getattr(args, "storage", None))


# ---------------------------------------------------------------- running
def cmd_plan(args) -> int:
    from tsweep.orchestrator.planview import check_and_expand, format_plan
    from tsweep.sweeps.schema import explain

    if args.explain:
        rows = explain()
        width = max(len(r[0]) for r in rows)
        for path, default, text in rows:
            print(f"{path:<{width}}  {default:<14}  {text}")
        return 0
    if not args.sweep:
        raise UsageError("plan: give a SWEEP (or --explain for every setting a sweep can hold)")
    sweep, layout = api.resolve(args.sweep, args.storage, _sets(args))
    graph, data_tokens = check_and_expand(sweep, layout)
    cpus = args.cpus if args.cpus is not None else float(os.cpu_count() or 1)
    print(format_plan(graph, data_tokens, layout, cluster_cpus=cpus, cluster_gpus=args.gpus or 0.0))
    return 0


def _run(sweep, layout, args, *, live: bool) -> int:
    from tsweep.analysis.reporting import load_report
    from tsweep.orchestrator.planview import check_and_expand
    from tsweep.orchestrator.run import run_sweep

    check_and_expand(sweep, layout)
    res = run_sweep(sweep, layout=layout, address=getattr(args, "address", None), live=live,
                    on_start=lambda url: print(f"Ray dashboard: {url}" if url else "Ray dashboard: (joined cluster)",
                                               flush=True))
    print(f"\n{sweep.name}: {res.planned} jobs planned, {res.skipped} already done, {res.ran} run "
          f"in {res.wall_time_s:.0f} s; results in {without_query(res.sweep_dir)}")
    for f in res.failed:
        print(f"  failed: {f}")
    for job_id, why in res.blocked.items():
        print(f"  not run: {job_id}: {why}")
    print()
    print(load_report(res.sweep_dir)[1].format_table())
    for png in res.plots:
        print(f"plot: {without_query(png)}")
    return 1 if (res.failed or res.blocked) else 0


def _live(args) -> bool:
    """The live table in a terminal; progress lines in a pipe, a file or with --no-live."""
    return not args.no_live and sys.stdout.isatty()


def cmd_demo(args) -> int:
    return _run(*api.resolve_shipped("demo", args.storage, _sets(args)), args, live=_live(args))


def cmd_submit(args) -> int:
    sweep, layout = api.resolve(args.sweep, args.storage, _sets(args))
    if args.address and args.address.startswith(("http://", "https://")):
        job_id = api.submit(sweep, args.address, storage=_storage(args))
        print(f"submitted {sweep.name} as Ray job {job_id} to {args.address}")
        print(f"follow it: ray job logs --address {args.address} --follow {job_id}")
        return 0
    return _run(sweep, layout, args, live=_live(args))


def cmd_resume(args) -> int:
    return _run(*api.resolve(args.sweep, args.storage), args, live=_live(args))


def cmd_status(args) -> int:
    from tsweep.orchestrator.status import sweep_status

    sweep, layout = api.resolve(args.sweep, args.storage)
    st = sweep_status(sweep, layout)
    print(json.dumps(st, indent=2) if args.json else st["text"])
    return 0


# ---------------------------------------------------------------- results
def cmd_gaps(args) -> int:
    from tsweep.analysis.reporting import gaps_csv, gaps_json, load_report

    if args.csv:
        _writable(args.csv, "--csv")
    _, layout = api.resolve(args.sweep, args.storage)
    _, report = load_report(layout.sweep_dir)
    if args.csv:
        try:
            with open(args.csv, "w", newline="") as f:
                f.write(gaps_csv(report))
        except OSError as exc:
            raise UsageError(f"--csv: cannot write {args.csv}: {exc.strerror or exc}") from None
    print(json.dumps(gaps_json(report)) if args.json else report.format_table())
    if args.csv and not args.json:
        print(f"csv: {args.csv}")
    return 0


def _writable(path: str, flag: str) -> None:
    """A local file a command will write: its folder exists and it is not a folder itself."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UsageError(f"{flag}: {path} is a folder, not a file")
    if not os.path.isdir(folder):
        raise UsageError(f"{flag}: cannot write {path}: no folder {folder}")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"{flag}: cannot write {path}: {folder} is not writable")


def cmd_report(args) -> int:
    from tsweep.analysis.plots import write_plots
    from tsweep.analysis.reporting import load_report, report_html, summary_markdown

    if args.bootstrap is not None and args.bootstrap < 0:
        raise UsageError(f"--bootstrap: must be >= 0, got {args.bootstrap}")
    _, layout = api.resolve(args.sweep, args.storage)
    table, report = load_report(layout.sweep_dir, bootstrap=args.bootstrap)
    plots = write_plots(layout.sweep_dir, table, report)
    layout.files.write_text(layout.summary_md, summary_markdown(report, plots, layout.sweep_dir))
    layout.files.write_text(layout.report_html, report_html(report, plots, layout))
    for p in [layout.report_html, layout.summary_md, *plots]:
        print(without_query(p))
    return 0


def cmd_advise(args) -> int:
    from tsweep.analysis.advice import advice, format_advice
    from tsweep.analysis.reporting import load_report

    if args.target_loss is not None and not (math.isfinite(args.target_loss) and args.target_loss > 0):
        raise UsageError(f"--target-loss: must be a positive finite loss (nats per token), got {args.target_loss}")
    _, layout = api.resolve(args.sweep, args.storage)
    table, report = load_report(layout.sweep_dir)
    entries = advice(report, table, args.target_loss)
    print(json.dumps(entries) if args.json else format_advice(entries, args.target_loss))
    return 0


def cmd_fit(args) -> int:
    from tsweep.analysis.fitter import format_fit
    from tsweep.analysis.tables import read_table

    if args.bootstrap < 0:
        raise UsageError(f"--bootstrap: must be >= 0, got {args.bootstrap}")
    mapping = _parse_map(args.map)
    result = api.fit(args.law, read_table(args.data), map=mapping, bootstrap=args.bootstrap, seed=args.seed)
    print(json.dumps(result.to_json()) if args.json else format_fit(result))
    return 0


def _parse_map(groups: list[list[str]] | None) -> dict[str, str]:
    """``--map p=pretrain_tokens f=ft_tokens`` and repeated ``--map`` flags alike."""
    mapping: dict[str, str] = {}
    for item in (i for g in groups or [] for i in g):
        var, sep, column = item.partition("=")
        if not sep or not var or not column:
            raise UsageError(f"--map: expected VAR=COLUMN, got {item!r}")
        mapping[var] = column
    return mapping


# ---------------------------------------------------------------- wiring
SWEEP_HELP = "a shipped sweep's name, a YAML file, a sweep folder or URI, or a sweep name under the storage root"


def build_parser() -> argparse.ArgumentParser:
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("tsweep")
    except PackageNotFoundError:  # running from a source tree that is not installed
        v = "unknown"
    p = argparse.ArgumentParser(prog="tsweep", description="Scaling laws for transfer, measured at cluster scale.")
    p.add_argument("--version", action="version", version=f"tsweep {v}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn, help_: str, *, sweep: bool = True) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        if sweep:
            sp.add_argument("sweep", metavar="SWEEP", help=SWEEP_HELP)
        sp.add_argument("--storage", metavar="URI", help="storage root (default: $TSWEEP_STORAGE, else the sweep's own)")
        sp.set_defaults(handler=fn)
        return sp

    def runs(sp: argparse.ArgumentParser, address: bool = True) -> None:
        if address:
            sp.add_argument("--address", metavar="URL", help="a running Ray cluster (ray://HOST:10001 or an address)")
        sp.add_argument("--no-live", action="store_true", help="progress lines instead of the live table")

    def settable(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("--set", action="append", nargs="+", metavar="KEY.PATH=VALUE",
                        help="override a sweep setting (VALUE read as YAML), validated like the YAML and saved with "
                             "the sweep: --set train.lr=1e-3 model_sizes=[pico,nano]; --set name=NEW runs it apart")
        return sp

    demo = settable(add("demo", cmd_demo, "run the embedded default sweep (demo) on a local Ray cluster", sweep=False))
    runs(demo, address=False)
    pl = add("plan", cmd_plan, "validate a sweep and print every job with its cost; launches nothing", sweep=False)
    pl.add_argument("sweep", metavar="SWEEP", nargs="?", help=SWEEP_HELP)
    settable(pl)
    pl.add_argument("--explain", action="store_true", help="print every setting a sweep YAML can hold, with its "
                                                           "default and what it means")
    pl.add_argument("--cpus", type=float, default=None, metavar="N",
                    help="CPUs of the cluster to estimate the wall time for (default: this machine's)")
    pl.add_argument("--gpus", type=float, default=None, metavar="N", help="GPUs of that cluster (default: 0)")
    s = settable(add("submit", cmd_submit, "run a sweep (locally, on --address, or via the Jobs API at http://HEAD:8265)"))
    runs(s)
    runs(add("resume", cmd_resume, "finish a sweep: re-run only the jobs missing from its store"))
    st = add("status", cmd_status, "jobs done, failed and missing for a sweep")
    st.add_argument("--json", action="store_true")
    g = add("gaps", cmd_gaps, "fitted transfer gaps and effective data transferred, per source")
    g.add_argument("--json", action="store_true", help="print the JSON contract")
    g.add_argument("--csv", metavar="FILE", help="also write the table as CSV")
    r = add("report", cmd_report, "write a sweep's plots and summary.md")
    r.add_argument("--bootstrap", type=int, default=None, metavar="N",
                   help="refit with N resamples (default: reuse the analysis actor's latest fit)")
    a = add("advise", cmd_advise, "per source: more pre-training or more fine-tuning data?")
    a.add_argument("--target-loss", type=float, default=None, metavar="X", help="also solve for the tokens that reach loss X")
    a.add_argument("--json", action="store_true")

    from tsweep.analysis.laws import LAWS

    f = sub.add_parser("fit", help="fit a scaling law to any table (.csv or .parquet)",
                       description="Fit a scaling law to a table: Huber loss on log values, L-BFGS-B from a grid "
                                   "of starts (Hoffmann et al. 2022, approach 3).")
    f.add_argument("--law", required=True, metavar="NAME", help=f"one of: {', '.join(sorted(LAWS))}")
    f.add_argument("--data", required=True, metavar="FILE", help="a .csv or .parquet table")
    f.add_argument("--map", action="append", nargs="+", metavar="VAR=COLUMN",
                   help="read law variable VAR from COLUMN (default: the column named VAR); several pairs, or repeat")
    f.add_argument("--bootstrap", type=int, default=0, metavar="N", help="bootstrap resamples for 95%% intervals")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--json", action="store_true", help="print the JSON contract")
    f.set_defaults(handler=cmd_fit)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except UsageError as exc:
        print(f"tsweep {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tsweep {args.command}: interrupted; `tsweep resume` finishes what is missing", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`tsweep plan ... | head`): nothing left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _one_line(exc: BaseException) -> str:
    text: Any = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
