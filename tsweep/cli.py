"""The ``tsweep`` console script: a thin layer over :mod:`tsweep.api`.

Commands: ``demo``, ``plan``, ``submit``, ``status``, ``resume``, ``follow``, ``gaps``, ``fit``,
``report``, ``advise``, ``grafana``. ``submit``, ``resume`` and ``demo`` with ``--address
http://HEAD:8265`` hand the driver to the cluster's Jobs API (``--follow`` then prints its progress
until it ends; ``tsweep follow JOB_ID`` re-attaches; see :mod:`tsweep.orchestrator.follow` for the
exit codes). ``main(argv)`` returns the exit code so tests can call it. Bad input of any kind (a
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
    from tsweep.sweeps import explain

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
    res = run_sweep(
        sweep,
        layout=layout,
        address=getattr(args, "address", None),
        live=live,
        on_start=lambda url: print(f"Ray dashboard: {url}" if url else "Ray dashboard: (joined cluster)", flush=True),
    )
    print(
        f"\n{sweep.name}: {res.planned} jobs planned, {res.skipped} already done, {res.ran} run "
        f"in {res.wall_time_s:.0f} s; results in {without_query(res.sweep_dir)}"
    )
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


def _jobs_api(args) -> bool:
    """Whether ``--address`` names a dashboard (``http(s)://HEAD:8265``): the Jobs API path."""
    address = getattr(args, "address", None)
    jobs_api = bool(address) and address.startswith(("http://", "https://"))
    if getattr(args, "follow", False) and not jobs_api:
        raise UsageError(
            "--follow: needs --address http://HEAD:8265 (a Ray dashboard); a run on this machine "
            "prints its progress itself"
        )
    return jobs_api


def _dispatch(sweep, layout, args) -> int:
    """Run here (or join ``--address``), or hand the driver to the Jobs API and, with
    ``--follow``, print its output until it ends (exit code: the job's final status)."""
    if getattr(args, "sweep_dir", None):
        from tsweep.core.layout import SweepLayout

        layout = SweepLayout(args.sweep_dir)
    if not _jobs_api(args):
        return _run(sweep, layout, args, live=_live(args))
    from tsweep.orchestrator.follow import reattach_hint

    job_id = api.submit(sweep, args.address, storage=_storage(args), layout=layout)
    print(f"submitted {sweep.name} as Ray job {job_id} to {args.address}", flush=True)
    if not args.follow:
        print(f"follow it: {reattach_hint(job_id, args.address)}")
        return 0
    print(f"following it (Ctrl-C detaches, the job goes on): results in {without_query(layout.sweep_dir)}", flush=True)
    return api.follow(job_id, args.address)


def cmd_demo(args) -> int:
    _jobs_api(args)
    return _dispatch(*api.resolve_shipped("demo", args.storage, _sets(args)), args)


def cmd_submit(args) -> int:
    _jobs_api(args)  # a bad flag combination is refused before the sweep is read
    return _dispatch(*api.resolve(args.sweep, args.storage, _sets(args)), args)


def cmd_resume(args) -> int:
    _jobs_api(args)
    return _dispatch(*api.resolve(args.sweep, args.storage), args)


def cmd_follow(args) -> int:
    from tsweep.orchestrator.follow import check_address

    address = args.address or os.environ.get("RAY_API_SERVER_ADDRESS") or ""
    if not address:
        raise UsageError(
            "follow: give the cluster's dashboard with --address http://HEAD:8265 (or $RAY_API_SERVER_ADDRESS)"
        )
    check_address(address)
    return api.follow(args.job_id, address)


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


def cmd_grafana(args) -> int:
    from tsweep.orchestrator import grafana

    if args.out and args.install:
        raise UsageError("grafana: give --out FILE or --install, not both")
    if args.out:
        print(grafana.write(args.out))
    elif args.install:
        print(grafana.install(wait_s=args.wait))
    else:
        print(grafana.dashboard_path())
    return 0


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
        sp.add_argument(
            "--storage", metavar="URI", help="storage root (default: $TSWEEP_STORAGE, else the sweep's own)"
        )
        sp.set_defaults(handler=fn)
        return sp

    def runs(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--address",
            metavar="URL",
            help="a running Ray cluster: http://HEAD:8265 (its dashboard) submits the driver through the "
            "Jobs API; ray://HEAD:10001 or HOST:PORT joins it from here",
        )
        sp.add_argument(
            "--follow",
            action="store_true",
            help="with --address http://...: print the driver's progress until the job ends; exit 0 "
            "SUCCEEDED, 1 FAILED, 3 STOPPED, 4 cluster unreachable; Ctrl-C detaches",
        )
        sp.add_argument("--no-live", action="store_true", help="progress lines instead of the live table")

    def settable(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument(
            "--set",
            action="append",
            nargs="+",
            metavar="KEY.PATH=VALUE",
            help="override a sweep setting (VALUE read as YAML), validated like the YAML and saved with "
            "the sweep: --set train.lr=1e-3 model_sizes=[pico,nano]; --set name=NEW runs it apart",
        )
        return sp

    demo = settable(add("demo", cmd_demo, "run the embedded default sweep (demo) on a local Ray cluster", sweep=False))
    runs(demo)
    pl = add("plan", cmd_plan, "validate a sweep and print every job with its cost; launches nothing", sweep=False)
    pl.add_argument("sweep", metavar="SWEEP", nargs="?", help=SWEEP_HELP)
    settable(pl)
    pl.add_argument(
        "--explain",
        action="store_true",
        help="print every setting a sweep YAML can hold, with its default and what it means",
    )
    pl.add_argument(
        "--cpus",
        type=float,
        default=None,
        metavar="N",
        help="CPUs of the cluster to estimate the wall time for (default: this machine's)",
    )
    pl.add_argument("--gpus", type=float, default=None, metavar="N", help="GPUs of that cluster (default: 0)")
    s = settable(
        add("submit", cmd_submit, "run a sweep (locally, on --address, or via the Jobs API at http://HEAD:8265)")
    )
    runs(s)
    s.add_argument(
        "--sweep-dir",
        metavar="DIR",
        help="write the results into this sweep folder (a path or URI) "
        "instead of STORAGE/NAME; a remote submit of a sweep folder "
        "passes it to the driver",
    )
    runs(add("resume", cmd_resume, "finish a sweep: re-run only the jobs missing from its store"))
    fo = sub.add_parser(
        "follow",
        help="print a submitted sweep's progress until its Ray job ends (re-attach)",
        description="Print a submitted sweep's driver output until its Ray job ends, reconnecting "
        "when the connection drops; exit 0 SUCCEEDED, 1 FAILED, 3 STOPPED, 4 cluster "
        "unreachable, 130 detached (Ctrl-C; the job goes on).",
    )
    fo.add_argument("job_id", metavar="JOB_ID", help="the Ray job id `tsweep submit --address http://...` printed")
    fo.add_argument(
        "--address", metavar="URL", help="the cluster's dashboard, http://HEAD:8265 (default: $RAY_API_SERVER_ADDRESS)"
    )
    fo.set_defaults(handler=cmd_follow)
    st = add("status", cmd_status, "jobs done, failed and missing for a sweep")
    st.add_argument("--json", action="store_true")
    g = add("gaps", cmd_gaps, "fitted transfer gaps and effective data transferred, per source")
    g.add_argument("--json", action="store_true", help="print the JSON contract")
    g.add_argument("--csv", metavar="FILE", help="also write the table as CSV")
    r = add("report", cmd_report, "write a sweep's plots and summary.md")
    r.add_argument(
        "--bootstrap",
        type=int,
        default=None,
        metavar="N",
        help="refit with N resamples (default: reuse the analysis actor's latest fit)",
    )
    a = add("advise", cmd_advise, "per source: more pre-training or more fine-tuning data?")
    a.add_argument(
        "--target-loss", type=float, default=None, metavar="X", help="also solve for the tokens that reach loss X"
    )
    a.add_argument("--json", action="store_true")

    gr = sub.add_parser(
        "grafana",
        help="the Grafana dashboard of tsweep's metrics: print its path, write a copy, or "
        "add it to this Ray head's Grafana",
        description="tsweep's Grafana dashboard (jobs by state, tokens/s, transfer gap G per source). "
        "With no option, print the path of the shipped JSON.",
    )
    gr.add_argument("--out", metavar="FILE", help="write the dashboard JSON to FILE (to import in Grafana)")
    gr.add_argument(
        "--install",
        action="store_true",
        help="add it to the dashboards Ray's Grafana provisioning serves on this head "
        "(/tmp/ray/session_latest/metrics/grafana/dashboards); run after `ray start --head`",
    )
    gr.add_argument(
        "--wait",
        type=float,
        default=60.0,
        metavar="S",
        help="with --install: seconds to wait for Ray to write its own dashboards (default 60)",
    )
    gr.set_defaults(handler=cmd_grafana)

    from tsweep.analysis.laws import LAWS

    f = sub.add_parser(
        "fit",
        help="fit a scaling law to any table (.csv or .parquet)",
        description="Fit a scaling law to a table: Huber loss on log values, L-BFGS-B from a grid "
        "of starts (Hoffmann et al. 2022, approach 3).",
    )
    f.add_argument("--law", required=True, metavar="NAME", help=f"one of: {', '.join(sorted(LAWS))}")
    f.add_argument("--data", required=True, metavar="FILE", help="a .csv or .parquet table")
    f.add_argument(
        "--map",
        action="append",
        nargs="+",
        metavar="VAR=COLUMN",
        help="read law variable VAR from COLUMN (default: the column named VAR); several pairs, or repeat",
    )
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
