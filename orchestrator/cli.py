"""The ``tsweep`` console script (contract in DESIGN.md).

Commands: ``demo``, ``plan``, ``submit``, ``status``, ``resume``, ``gaps``, and the analysis
commands ``fit``, ``report``, ``advise``. ``main(argv)`` returns the exit code so tests can
call it. Bad input of any kind (a broken YAML, an unknown field, a missing corpus) prints one
line naming what is wrong and exits 2, with nothing written and no traceback.

SWEEP is a YAML path or the name of a sweep under the storage root (``--storage``, else
``$TSWEEP_STORAGE``, else ``~/tsweep_runs``), whose folder holds the ``sweep.yaml`` it ran with.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from orchestrator.layout import SweepLayout
from orchestrator.planview import check_and_expand, format_plan
from sweeps.schema import SweepError, load_sweep, loads_sweep

DEMO_YAML = Path(__file__).resolve().parent.parent / "sweeps" / "demo.yaml"
DEFAULT_STORAGE = "~/tsweep_runs"


class UsageError(Exception):
    """Bad input: printed as one line, exit code 2."""


def _storage(args) -> str | None:
    return getattr(args, "storage", None) or os.environ.get("TSWEEP_STORAGE")


def resolve_sweep(ref: str, storage: str | None):
    """A sweep from a YAML path, or from its stored ``sweep.yaml`` by name."""
    path = Path(ref)
    if path.suffix in {".yaml", ".yml"} or path.exists() or "/" in ref or os.sep in ref:
        return load_sweep(path)
    if ref in {".", ".."} or not ref.replace("-", "").replace("_", "").replace(".", "").replace("+", "").isalnum():
        raise UsageError(f"sweep name {ref!r} must be a plain name (no path separators)")
    root = storage or DEFAULT_STORAGE
    if "://" in root:  # a store on shared object storage: read the sweep.yaml it ran with
        import pyarrow.fs as pafs

        fs, base = pafs.FileSystem.from_uri(f"{root.rstrip('/')}/{ref}/sweep.yaml")
        try:
            with fs.open_input_stream(base) as f:
                return loads_sweep(f.read().decode("utf-8"), origin=f"{root}/{ref}/sweep.yaml")
        except FileNotFoundError:
            raise UsageError(f"no sweep named {ref!r} under {root}") from None
    stored = Path(os.path.expanduser(root)) / ref / "sweep.yaml"
    if not stored.exists():
        raise UsageError(f"no sweep named {ref!r} under {root} (looked for {stored})")
    return load_sweep(stored)


def _sweep_dir(args) -> str:
    sweep = resolve_sweep(args.sweep, _storage(args))
    return sweep.sweep_dir(_storage(args))


# ---------------------------------------------------------------- commands
def cmd_plan(args) -> int:
    sweep = load_sweep(args.sweep)
    graph, data_tokens = check_and_expand(sweep)
    print(format_plan(graph, data_tokens, storage=_storage(args)))
    return 0


def _run(sweep, args, *, live: bool = True) -> int:
    from analysis.cli import gaps_command
    from orchestrator.run import run_sweep

    check_and_expand(sweep)
    res = run_sweep(sweep, storage_root=_storage(args), address=getattr(args, "address", None), live=live,
                    on_start=lambda url: print(f"Ray dashboard: {url}" if url else "Ray dashboard: (joined cluster)"))
    print(f"\n{sweep.name}: {res.planned} jobs planned, {res.skipped} already done, {res.ran} run "
          f"in {res.wall_time_s:.0f} s; results in {res.sweep_dir}")
    for f in res.failed:
        print(f"  failed: {f}")
    for job_id, why in res.blocked.items():
        print(f"  not run: {job_id}: {why}")
    print()
    gaps_command(res.sweep_dir, as_json=False)
    for png in res.plots:
        print(f"plot: {png}")
    return 1 if (res.failed or res.blocked) else 0


def cmd_demo(args) -> int:
    return _run(load_sweep(DEMO_YAML), args, live=not args.no_live)


def cmd_submit(args) -> int:
    sweep = load_sweep(args.sweep) if Path(args.sweep).exists() else resolve_sweep(args.sweep, _storage(args))
    if args.address and args.address.startswith(("http://", "https://")):
        from orchestrator.submit import SubmitError, submit_job

        check_and_expand(sweep)
        try:
            job_id = submit_job(sweep, args.address, storage=_storage(args))
        except SubmitError as exc:
            raise UsageError(str(exc)) from None
        print(f"submitted {sweep.name} as Ray job {job_id} to {args.address}")
        print(f"follow it: ray job logs --address {args.address} --follow {job_id}")
        return 0
    return _run(sweep, args, live=not args.no_live)


def cmd_resume(args) -> int:
    return _run(resolve_sweep(args.sweep, _storage(args)), args, live=not args.no_live)


def cmd_status(args) -> int:
    from orchestrator.status import sweep_status

    sweep = resolve_sweep(args.sweep, _storage(args))
    st = sweep_status(sweep, _storage(args))
    if args.json:
        print(json.dumps(st, indent=2))
    else:
        print(st["text"])
    return 0


def cmd_gaps(args) -> int:
    from analysis.cli import gaps_command

    return gaps_command(_sweep_dir(args), as_json=args.json, csv_path=args.csv)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tsweep", description="Scaling laws for transfer, measured at cluster scale.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name, fn, help_, sweep=True):
        sp = sub.add_parser(name, help=help_, description=help_)
        if sweep:
            sp.add_argument("sweep", metavar="SWEEP", help="sweep YAML path, or a sweep name under the storage root")
        sp.add_argument("--storage", metavar="URI", help="storage root (default: the sweep's storage_root)")
        sp.set_defaults(handler=fn)
        return sp

    d = add("demo", cmd_demo, "run the embedded default sweep (sweeps/demo.yaml) on a local Ray cluster", sweep=False)
    d.add_argument("--no-live", action="store_true", help="plain output instead of the live view")
    add("plan", cmd_plan, "validate a sweep and print every job; launches nothing")
    s = add("submit", cmd_submit, "run a sweep (locally, on --address ray://..., or via the Jobs API at http://HEAD:8265)")
    s.add_argument("--address", metavar="URL", help="Ray cluster: http(s)://HEAD:8265 submits a Ray job")
    s.add_argument("--no-live", action="store_true")
    r = add("resume", cmd_resume, "finish a sweep: re-run only the jobs missing from its store")
    r.add_argument("--address", metavar="URL")
    r.add_argument("--no-live", action="store_true")
    st = add("status", cmd_status, "jobs done, running, failed and missing for a sweep")
    st.add_argument("--json", action="store_true")
    g = add("gaps", cmd_gaps, "fitted transfer gaps and effective data transferred, per source")
    g.add_argument("--json", action="store_true", help="print the JSON contract")
    g.add_argument("--csv", metavar="FILE", help="also write the table as CSV")

    from analysis.cli import add_commands

    add_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from analysis.cli import UsageError as AnalysisUsageError
    from workers.data import DataError
    from workers.pretrained import ModelUnavailable

    parser = build_parser()
    args = parser.parse_args(argv)
    if hasattr(args, "sweep") and args.command in {"report", "advise"}:
        try:
            args.sweep_dir = _sweep_dir(args)
        except (SweepError, UsageError) as exc:
            print(f"tsweep {args.command}: error: {exc}", file=sys.stderr)
            return 2
    try:
        return int(args.handler(args) or 0)
    except (SweepError, UsageError, AnalysisUsageError, DataError, ModelUnavailable) as exc:
        print(f"tsweep {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - no input file may produce a traceback at plan time
        if args.command != "plan":
            raise
        print(f"tsweep plan: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tsweep {args.command}: interrupted; `tsweep resume` finishes what is missing", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
