"""The ``tsweep`` console script: argument parsing, printing and exit codes over :mod:`tsweep.api`
(every command is one or two calls of it; this module imports nothing else of tsweep).

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
import logging
import math
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from tsweep import api
from tsweep.api import UsageError, did_you_mean, quoted, without_query

if TYPE_CHECKING:
    from typing import TypeAlias

    Subparsers: TypeAlias = "argparse._SubParsersAction[Parser]"

Handler = Callable[[argparse.Namespace], int]


class CommandLineError(UsageError):
    """A command line argparse refuses, as one line that names the command (``prog``)."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog


class Parser(argparse.ArgumentParser):
    """argparse without its usage dump: a mistake is one line, with the nearest known command
    or choice when one is close (``tsweep gapz`` -> did you mean 'gaps'?)."""

    def error(self, message: str) -> NoReturn:
        if "required: COMMAND" in message:
            message = f"give a command: {', '.join(_commands(self))} (`tsweep --help` says what each does)"
        raise CommandLineError(self.prog, message)

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        choices = action.choices
        if choices is None or value in choices:
            return
        names = [str(c) for c in choices]
        if isinstance(action, argparse._SubParsersAction):
            raise argparse.ArgumentError(
                None, f"unknown command {value!r}{did_you_mean(str(value), names)} (commands: {', '.join(names)})"
            )
        raise argparse.ArgumentError(
            action, f"{value!r} is not one of {', '.join(names)}{did_you_mean(str(value), names)}"
        )


def _commands(parser: argparse.ArgumentParser) -> list[str]:
    """The command names of a parser with subcommands (none without)."""
    return [name for a in parser._actions if isinstance(a, argparse._SubParsersAction) for name in a.choices]


def _unrecognized(parser: argparse.ArgumentParser, command: str, extras: list[str]) -> CommandLineError:
    """Arguments a command does not take, with the nearest option it has for a mistyped one."""
    sub = next(
        (
            p
            for a in parser._actions
            if isinstance(a, argparse._SubParsersAction)
            for n, p in a.choices.items()
            if n == command
        ),
        parser,
    )
    options = [o for a in sub._actions for o in a.option_strings]
    first = extras[0]
    if first.startswith("-"):
        flag = first.split("=", 1)[0]
        known = f" (`{sub.prog} --help` lists them)"
        return CommandLineError(sub.prog, f"unknown option {flag}{did_you_mean(flag, options)}{known}")
    return CommandLineError(sub.prog, f"unexpected argument {quoted(first)}: `{sub.prog} --help` says what it takes")


def _sets(args: argparse.Namespace) -> list[str]:
    """Every ``--set KEY.PATH=VALUE`` given (several after one flag, or the flag repeated)."""
    return [kv for group in (getattr(args, "set", None) or []) for kv in group]


# ---------------------------------------------------------------- running
def cmd_plan(args: argparse.Namespace) -> int:
    if args.explain:
        rows = api.explain()
        width = max(len(r[0]) for r in rows)
        for path, default, text in rows:
            print(f"{path:<{width}}  {default:<14}  {text}")
        return 0
    if not args.sweep:
        raise UsageError("plan: give a SWEEP (or --explain for every setting a sweep can hold)")
    sweep, layout = api.resolve(args.sweep, args.storage, _sets(args))
    print(api.plan_table(sweep, layout=layout, cpus=args.cpus, gpus=args.gpus or 0.0))
    return 0


def _run_here(sweep: api.Sweep, layout: api.SweepLayout, args: argparse.Namespace) -> int:
    """Run on this machine (or join ``--address``), then print what ran and the gap table;
    exit 1 when a job failed or could not run."""
    res = api.run(
        sweep,
        layout=layout,
        address=getattr(args, "address", None),
        live=_live(args),
        on_start=lambda url: print(f"Ray dashboard: {url}" if url else "Ray dashboard: (joined cluster)", flush=True),
    )
    print(
        f"\n{sweep.name}: {res.planned} jobs planned, {res.skipped} already done, {res.ran} run "
        f"in {res.wall_time_s:.0f} s; results in {without_query(res.sweep_dir)}"
    )
    if res.design is not None:
        print(f"  {api.design_line(res.design)}")
    for f in res.failed:
        print(f"  failed: {f}")
    for job_id, why in res.blocked.items():
        print(f"  not run: {job_id}: {why}")
    print()
    print(api.SweepResults(sweep, layout).report().format_table())
    for png in res.plots:
        print(f"plot: {without_query(png)}")
    return 1 if (res.failed or res.blocked) else 0


def _live(args: argparse.Namespace) -> bool:
    """The live table in a terminal; progress lines in a pipe, a file or with --no-live."""
    return not args.no_live and sys.stdout.isatty()


def _jobs_api(args: argparse.Namespace) -> bool:
    """Whether ``--address`` names a dashboard (``http(s)://HEAD:8265``): the Jobs API path."""
    address: str | None = getattr(args, "address", None)
    jobs_api = address is not None and address.startswith(("http://", "https://"))
    if getattr(args, "follow", False) and not jobs_api:
        raise UsageError(
            "--follow: needs --address http://HEAD:8265 (a Ray dashboard); a run on this machine "
            "prints its progress itself"
        )
    return jobs_api


def _dispatch(sweep: api.Sweep, layout: api.SweepLayout, args: argparse.Namespace) -> int:
    """Run here (or join ``--address``), or hand the driver to the Jobs API and, with
    ``--follow``, print its output until it ends (exit code: the job's final status)."""
    if getattr(args, "sweep_dir", None):
        layout = api.SweepLayout(args.sweep_dir)
    if not _jobs_api(args):
        return _run_here(sweep, layout, args)
    job_id = api.submit(sweep, args.address, storage=args.storage, layout=layout)
    print(f"submitted {sweep.name} as Ray job {job_id} to {args.address}", flush=True)
    if not args.follow:
        print(f"follow it: {api.reattach_command(job_id, args.address)}")
        return 0
    print(f"following it (Ctrl-C detaches, the job goes on): results in {without_query(layout.sweep_dir)}", flush=True)
    return api.follow(job_id, args.address)


def cmd_demo(args: argparse.Namespace) -> int:
    _jobs_api(args)
    return _dispatch(*api.resolve_shipped("demo", args.storage, _sets(args)), args)


def cmd_submit(args: argparse.Namespace) -> int:
    _jobs_api(args)  # a bad flag combination is refused before the sweep is read
    return _dispatch(*api.resolve(args.sweep, args.storage, _sets(args)), args)


def cmd_resume(args: argparse.Namespace) -> int:
    _jobs_api(args)
    sweep, layout = api.resolve(args.sweep, args.storage)
    api.check_storage(layout, args.storage)  # finishing a sweep needs the root it ran under
    return _dispatch(sweep, layout, args)


def cmd_follow(args: argparse.Namespace) -> int:
    address = args.address or os.environ.get("RAY_API_SERVER_ADDRESS") or ""
    if not address:
        raise UsageError(
            "follow: give the cluster's dashboard with --address http://HEAD:8265 (or $RAY_API_SERVER_ADDRESS)"
        )
    return api.follow(args.job_id, address)


def cmd_status(args: argparse.Namespace) -> int:
    sweep, layout = api.resolve(args.sweep, args.storage)
    api.check_storage(layout, args.storage)
    st = api.status(sweep, layout=layout)
    print(json.dumps(st, indent=2) if args.json else st["text"])
    return 0


# ---------------------------------------------------------------- results
def cmd_gaps(args: argparse.Namespace) -> int:
    if args.csv:
        _writable(args.csv, "--csv")
    report = api.open_sweep(args.sweep, args.storage).report()
    if args.csv:
        try:
            with open(args.csv, "w", newline="") as f:
                f.write(api.gaps_csv(report))
        except OSError as exc:
            raise UsageError(f"--csv: cannot write {args.csv}: {exc.strerror or exc}") from None
    print(json.dumps(api.gaps_json(report)) if args.json else report.format_table())
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


def cmd_report(args: argparse.Namespace) -> int:
    if args.bootstrap is not None and args.bootstrap < 0:
        raise UsageError(f"--bootstrap: must be >= 0, got {args.bootstrap}")
    _check_target(args.target_loss)
    results = api.open_sweep(args.sweep, args.storage)
    for path in results.write_report(bootstrap=args.bootstrap, target_loss=args.target_loss):
        print(without_query(path))
    return 0


def _check_target(target_loss: float | None) -> None:
    if target_loss is not None and not (math.isfinite(target_loss) and target_loss > 0):
        raise UsageError(f"--target-loss: must be a positive finite loss (nats per token), got {target_loss}")


def cmd_advise(args: argparse.Namespace) -> int:
    _check_target(args.target_loss)
    if args.corpus_tokens is not None and not (math.isfinite(args.corpus_tokens) and args.corpus_tokens > 0):
        raise UsageError(f"--corpus-tokens: must be a positive finite token count, got {args.corpus_tokens}")
    entries = api.open_sweep(args.sweep, args.storage).advice(args.target_loss, corpus_tokens=args.corpus_tokens)
    print(json.dumps(entries) if args.json else api.format_advice(entries, args.target_loss))
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    if args.bootstrap < 0:
        raise UsageError(f"--bootstrap: must be >= 0, got {args.bootstrap}")
    mapping = _parse_map(args.map)
    table = api.read_table(args.data)
    result = api.fit(args.law, table, map=mapping, bootstrap=args.bootstrap, seed=args.seed, delta=args.delta)
    print(json.dumps(api.fit_json(result)) if args.json else api.format_fit(result))
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


def cmd_list(args: argparse.Namespace) -> int:
    shipped, stored, root = api.list_sweeps(args.storage)
    if args.json:
        print(
            json.dumps(
                {"shipped": [vars(e) for e in shipped], "storage_root": root, "stored": [vars(e) for e in stored]}
            )
        )
        return 0
    width = max(len(e.name) for e in [*shipped, *stored])
    print("shipped sweeps (tsweep plan NAME shows the jobs; tsweep submit NAME runs one):")
    for e in shipped:
        print(f"  {e.name:<{width}}  {e.description}")
    print(f"\nsweeps under {without_query(root)}:" if stored else f"\nno sweeps under {without_query(root)} yet")
    for e in stored:
        named = f" (its sweep.yaml names {e.sweep_name!r})" if e.sweep_name not in (None, e.name) else ""
        jobs = "" if e.jobs_with_summary is None else f"{e.jobs_with_summary} job(s) with a summary; "
        print(f"  {e.name:<{width}}  {jobs}{e.description}{named}")
    return 0


def cmd_grafana(args: argparse.Namespace) -> int:
    if args.out and args.install:
        raise UsageError("grafana: give --out FILE or --install, not both")
    if args.out:
        print(api.write_grafana_dashboard(args.out))
    elif args.install:
        print(api.install_grafana_dashboard(wait_s=args.wait))
    else:
        print(api.grafana_dashboard_path())
    return 0


# ---------------------------------------------------------------- wiring
SWEEP_HELP = "a shipped sweep's name, a YAML file, a sweep folder or URI, or a sweep name under the storage root"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tsweep")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="tsweep", description="Scaling laws for transfer, measured at cluster scale.")
    p.add_argument("--version", action="version", version=f"tsweep {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_demo(sub)
    _add_plan(sub)
    _add_submit_and_resume(sub)
    _add_follow(sub)
    _add_result_commands(sub)
    _add_grafana(sub)
    _add_fit(sub)
    _add_list(sub)
    return p


def _command(sub: Subparsers, name: str, fn: Handler, help_: str, *, sweep: bool = True) -> argparse.ArgumentParser:
    """A command that reads a sweep: SWEEP (unless ``sweep`` is False) and ``--storage``."""
    sp = sub.add_parser(name, help=help_, description=help_)
    if sweep:
        sp.add_argument("sweep", metavar="SWEEP", help=SWEEP_HELP)
    sp.add_argument("--storage", metavar="URI", help="storage root (default: $TSWEEP_STORAGE, else the sweep's own)")
    sp.set_defaults(handler=fn)
    return sp


def _runs(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The flags of a command that runs a sweep: where, and how its progress is shown."""
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
    return sp


def _settable(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
    sp.add_argument(
        "--set",
        action="append",
        nargs="+",
        metavar="KEY.PATH=VALUE",
        help="override a sweep setting (VALUE read as YAML), validated like the YAML and saved with "
        "the sweep: --set train.lr=1e-3 model_sizes=[pico,nano]; --set name=NEW runs it apart",
    )
    return sp


def _add_demo(sub: Subparsers) -> None:
    help_ = "run the embedded default sweep (demo) on a local Ray cluster"
    _runs(_settable(_command(sub, "demo", cmd_demo, help_, sweep=False)))


def _add_submit_and_resume(sub: Subparsers) -> None:
    help_ = "run a sweep (locally, on --address, or via the Jobs API at http://HEAD:8265)"
    s = _runs(_settable(_command(sub, "submit", cmd_submit, help_)))
    s.add_argument(
        "--sweep-dir",
        metavar="DIR",
        help="write the results into this sweep folder (a path or URI) "
        "instead of STORAGE/NAME; a remote submit of a sweep folder "
        "passes it to the driver",
    )
    _runs(_command(sub, "resume", cmd_resume, "finish a sweep: re-run only the jobs missing from its store"))


def _add_plan(sub: Subparsers) -> None:
    help_ = "validate a sweep and print every job with its cost; launches nothing"
    pl = _command(sub, "plan", cmd_plan, help_, sweep=False)
    pl.add_argument("sweep", metavar="SWEEP", nargs="?", help=SWEEP_HELP)
    _settable(pl)
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


def _add_follow(sub: Subparsers) -> None:
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


def _add_result_commands(sub: Subparsers) -> None:
    st = _command(sub, "status", cmd_status, "jobs done, failed and missing for a sweep")
    st.add_argument("--json", action="store_true")
    g = _command(sub, "gaps", cmd_gaps, "fitted transfer gaps and effective data transferred, per source")
    g.add_argument("--json", action="store_true", help="print the JSON contract")
    g.add_argument("--csv", metavar="FILE", help="also write the table as CSV")
    r = _command(sub, "report", cmd_report, "write a sweep's plots and summary.md")
    r.add_argument(
        "--bootstrap",
        type=int,
        default=None,
        metavar="N",
        help="refit with N resamples (default: reuse the analysis actor's latest fit)",
    )
    r.add_argument(
        "--target-loss",
        type=float,
        default=None,
        metavar="X",
        help="the advice section solves for the budgets that reach X",
    )
    a = _command(sub, "advise", cmd_advise, "per source: more pre-training or more fine-tuning data?")
    a.add_argument(
        "--target-loss",
        type=float,
        default=None,
        metavar="X",
        help="the smallest budgets that reach loss X by more target data, more pre-training and from scratch",
    )
    a.add_argument(
        "--corpus-tokens",
        type=float,
        default=None,
        metavar="N",
        help="training tokens of the target corpus: an answer past them is beyond the design",
    )
    a.add_argument("--json", action="store_true")


def _add_grafana(sub: Subparsers) -> None:
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


def _add_list(sub: Subparsers) -> None:
    help_ = "the shipped sweeps, and the sweeps under the storage root"
    ls = _command(sub, "list", cmd_list, help_, sweep=False)
    ls.add_argument("--json", action="store_true", help="print them as JSON")


def _laws_epilog() -> str:
    """Every law ``fit`` knows: its formula, its variables (the columns it reads) and parameters."""
    lines = ["laws (--law NAME; a variable is read from the column of its name, or --map VAR=COLUMN):"]
    for name, formula, variables, params in api.law_help():
        lines.append(f"  {name:<11} {formula}")
        lines += [f"  {'':<11}   {var:<5} {meaning}" for var, meaning in variables]
        lines.append(f"  {'':<11}   fitted: {', '.join(params)}")
    return "\n".join(lines)


def _add_fit(sub: Subparsers) -> None:
    f = sub.add_parser(
        "fit",
        help="fit a scaling law to any table (.csv or .parquet)",
        description="Fit a scaling law to a table: Huber loss on log values, L-BFGS-B from a grid\n"
        "of starts (Hoffmann et al. 2022, approach 3). A parameter the table cannot identify\n"
        "is printed as 'not identified' with the reason, never as a number.",
        epilog=_laws_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    f.add_argument("--law", required=True, metavar="NAME", help=f"one of: {', '.join(api.law_names())}")
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
    f.add_argument(
        "--delta",
        type=float,
        default=None,
        metavar="X",
        help="the Huber loss's delta on log residuals (default 0.01, tsweep's, for a few dozen runs with "
        "1-3%% loss noise); 1e-3 is the published Chinchilla procedure (Hoffmann et al. 2022)",
    )
    f.add_argument("--json", action="store_true", help="print the JSON contract")
    f.set_defaults(handler=cmd_fit)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, extras = parser.parse_known_args(argv)
        if extras:
            raise _unrecognized(parser, args.command, extras)
    except CommandLineError as exc:
        print(f"{exc.prog}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    handler: Handler = args.handler
    try:
        return int(handler(args) or 0)
    except UsageError as exc:
        print(f"tsweep {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tsweep {args.command}: interrupted; `tsweep resume` finishes what is missing", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`tsweep plan ... | head`): nothing left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


# Commands that start, join and contact no Ray cluster and leave nothing running behind them:
# console() ends their process with os._exit once the output is flushed. (demo, submit, resume
# and follow exit the ordinary way: Ray's own exit hooks stop the cluster a run started.)
READ_COMMANDS = frozenset({"plan", "status", "gaps", "report", "advise", "fit", "list", "grafana"})


def console() -> NoReturn:
    """The console script (``tsweep``, ``python -m tsweep``): :func:`main`, then the exit.

    A read command ends with ``os._exit`` once stdout, stderr and the log handlers are flushed,
    skipping the interpreter's teardown: that is where native libraries can abort a finished
    command (exit -6 after its output was printed). pyarrow finalizes its S3 subsystem in an
    ``atexit`` hook while S3 clients cached by :mod:`tsweep.core.files` are still alive, and
    Arrow's and OpenBLAS's thread pools and jemalloc's background thread are torn down by C++
    static destructors racing the interpreter's own finalization on a loaded machine. A read
    command has nothing left to release by then: every file it writes is written whole (or
    not at all) before :func:`main` returns. ``tests/test_cli.py`` runs one in a loop."""
    argv = sys.argv[1:]
    rc = main(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in READ_COMMANDS:
        sys.exit(rc)
    _flush()
    os._exit(rc)


def _flush() -> None:
    """Flush what a command printed and logged (a reader that went away is no error here)."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can reach it
            pass


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


if __name__ == "__main__":
    console()
