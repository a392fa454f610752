"""tsweep's Python API: what a notebook needs, and what the ``tsweep`` CLI is a thin layer over.

::

    import tsweep

    sweep = tsweep.load_sweep("demo")                 # a shipped name, a YAML, a sweep folder or a URI
    graph = tsweep.plan(sweep)                        # the job graph; runs nothing
    result = tsweep.run(sweep)                        # a local Ray cluster (or address=...)
    res = tsweep.open_sweep("demo")                   # a finished (or running) sweep's results
    res.summaries().to_pandas(); res.evals()          # pyarrow Tables of the store
    report = res.report()                             # the typed transfer report (.to_json(), .sources)
    report.to_pandas(); report.transfer_table()       # the gap table; one row per run (D_E, D_T, multiplier)
    res.figures()["loss_vs_p"]                        # every figure of the report, a matplotlib Figure
    tsweep.advise("demo")                             # more pre-training or more target data, per source
    tsweep.fit("barnett", df, map={"p": "pretrain_tokens", "f": "data_tokens", "loss": "best_eval_loss"})

The ``tsweep`` console script is argument parsing and printing over the functions here: every
command is one or two calls of this module (``plan_table``, ``run``, ``submit``, ``follow``,
``status``, ``SweepResults.report``/``write_report``/``advice``, ``fit``, the Grafana dashboard).

A sweep reference (``ref``) is resolved in this order: a shipped sweep's name (``demo``), a YAML
file (a path or a URI), a sweep folder holding ``sweep.yaml``, a URI of such a folder, or the
name of a sweep under the storage root (``storage``, else ``$TSWEEP_STORAGE``, else
``~/tsweep_runs``). A sweep folder is its own identity: its results stay in that folder whatever
name its ``sweep.yaml`` holds (a copied or renamed folder never writes into the original).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tsweep.core.errors import UsageError, did_you_mean, quoted
from tsweep.core.layout import Files, SweepLayout, is_uri, without_query
from tsweep.core.paths import join, local_path, resolve_root
from tsweep.core.store import Store
from tsweep.sweeps import Sweep, is_plain_name, loads_sweep, with_overrides
from tsweep.sweeps import load_sweep as _load_yaml

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    from matplotlib.figure import Figure

    from tsweep.analysis.advice import Device
    from tsweep.analysis.fitter import FitResult
    from tsweep.analysis.records import TransferReport
    from tsweep.orchestrator.plan import JobGraph
    from tsweep.orchestrator.run import RunResult

# The storage root of a sweep that names none: the sweep schema's default, one source of truth.
DEFAULT_STORAGE: str = Sweep.model_fields["storage_root"].default


# ---------------------------------------------------------------- finding a sweep
def storage_override(storage: str | None = None) -> str | None:
    """The storage root a user chose: ``storage``, else ``$TSWEEP_STORAGE``; None means each
    sweep's own ``storage_root``."""
    return storage or os.environ.get("TSWEEP_STORAGE") or None


def shipped_sweep_path(name: str) -> Path | None:
    """The YAML of a sweep shipped with tsweep (``demo``, ``synthetic_distance``, ...), if any."""
    path = resources.files("tsweep.sweeps") / f"{name}.yaml"
    return Path(str(path)) if path.is_file() else None


def shipped_sweep_names() -> list[str]:
    """The names of the sweeps shipped with tsweep, sorted."""
    from tsweep.sweeps import shipped_sweeps

    return [p.stem for p in shipped_sweeps()]


def _stored_names(root: str) -> list[str]:
    """The folders under a storage root (one listing), for a did-you-mean; none when it cannot
    be listed (the error being raised says what was not found, not why a listing failed)."""
    try:
        return Files(root).list_dirs(resolve_root(root))
    except (UsageError, OSError):
        return []


def storage_root(storage: str | None = None) -> str:
    """The storage root a command reads: ``storage``, else ``$TSWEEP_STORAGE``, else the default
    (:data:`DEFAULT_STORAGE`), ``~`` expanded."""
    return resolve_root(storage_override(storage) or DEFAULT_STORAGE)


def check_storage(layout: SweepLayout, storage: str | None = None) -> None:
    """For a command that reads results: when they are looked for under a storage root the user
    chose (``storage`` or ``$TSWEEP_STORAGE``) and that root is a local path, it must be an
    existing folder, else one line naming it ("missing 94" under a root that does not exist
    would read as lost results). A URI is not checked: an object store has no folders, only keys
    under a prefix."""
    chosen = storage_override(storage)
    folder = None if chosen is None else local_path(chosen)
    if folder is None or os.path.dirname(layout.sweep_dir.rstrip("/")) != folder.rstrip("/"):
        return
    if not os.path.isdir(folder):
        where = "--storage" if storage else "$TSWEEP_STORAGE"
        raise UsageError(f"{where} {quoted(chosen or '')}: no such folder (a storage root holds one folder per sweep)")


@dataclass(frozen=True)
class SweepEntry:
    """One sweep :func:`list_sweeps` found: its name, where it is, its description (shipped) or
    the jobs with a summary in its store (stored), and the sweep name its ``sweep.yaml`` holds."""

    name: str
    where: str
    description: str = ""
    jobs_with_summary: int | None = None
    sweep_name: str | None = None


def list_sweeps(storage: str | None = None) -> tuple[list[SweepEntry], list[SweepEntry], str]:
    """(shipped sweeps, sweeps under the storage root, that root): what ``tsweep list`` prints.
    A folder under the root counts when it holds a readable ``sweep.yaml``; each is read once and
    its store listed once (no shard is read)."""
    shipped = [
        SweepEntry(
            name,
            str(shipped_sweep_path(name)),
            description=_load_yaml(shipped_sweep_path(name) or "").description or "",
        )
        for name in shipped_sweep_names()
    ]
    root = storage_root(storage)
    stored = [e for e in (_stored_entry(root, name) for name in _stored_names(root)) if e is not None]
    return shipped, stored, root


def _stored_entry(root: str, name: str) -> SweepEntry | None:
    folder = join(root, name)
    try:
        sweep = _from_folder(folder)
    except UsageError:  # a damaged sweep.yaml: listed, so the user sees the folder exists
        return SweepEntry(name, without_query(folder), description="(its sweep.yaml does not validate)")
    if sweep is None:
        return None
    jobs = len(Store(SweepLayout(folder).store_root).summary_job_ids())
    return SweepEntry(name, without_query(folder), sweep.description or "", jobs, sweep.name)


def _from_folder(folder: str) -> Sweep | None:
    layout = SweepLayout(folder)
    if not layout.files.is_file(layout.sweep_yaml):
        return None
    return loads_sweep(layout.files.read_text(layout.sweep_yaml), origin=layout.sweep_yaml)


def resolve(ref: str, storage: str | None = None, overrides: Sequence[str] = ()) -> tuple[Sweep, SweepLayout]:
    """A sweep and the folder its results live in, from any reference (module docstring), with
    ``KEY.PATH=VALUE`` overrides applied (``tsweep.sweeps.with_overrides``); an override of
    ``name`` moves the results to that name's folder."""
    return _overridden(*_resolve(ref, storage), overrides, storage)


def _overridden(
    sweep: Sweep, layout: SweepLayout, overrides: Sequence[str], storage: str | None
) -> tuple[Sweep, SweepLayout]:
    if not overrides:
        return sweep, layout
    new = with_overrides(sweep, list(overrides))
    moved = new.name != sweep.name or new.storage_root != sweep.storage_root
    return new, (new.layout(storage_override(storage)) if moved else layout)


def _resolve(ref: str, storage: str | None) -> tuple[Sweep, SweepLayout]:
    if not ref or not ref.strip():
        raise UsageError("SWEEP: empty; give a sweep name, a YAML file, a sweep folder or a URI")
    path = Path(os.path.expanduser(ref))
    _probe_path(path, ref)
    if is_uri(ref) and without_query(ref).endswith((".yaml", ".yml")):
        files = Files(ref)
        if not files.is_file(ref):
            raise UsageError(f"{without_query(ref)}: no such sweep file")
        sweep = loads_sweep(files.read_text(ref), origin=without_query(ref))
        return sweep, sweep.layout(storage_override(storage))
    if path.suffix in {".yaml", ".yml"} or (path.is_file() and not is_uri(ref)):
        sweep = _load_yaml(path)
        return sweep, sweep.layout(storage_override(storage))
    if is_uri(ref) or path.is_dir():
        found = _from_folder(ref)
        if found is None:
            raise UsageError(
                f"{without_query(ref)}: no sweep.yaml there (a sweep folder holds the sweep.yaml it ran with)"
            )
        return found, SweepLayout(ref)
    return _by_name(ref, storage)


def _probe_path(path: Path, ref: str, what: str = "SWEEP") -> None:
    """Refuse a reference no filesystem can hold (a name past the OS's file-name length) in one
    line, before anything looks for it; other errors are the answers of the checks that follow."""
    try:
        path.exists()
    except OSError as exc:
        raise UsageError(f"{what} {quoted(ref)}: not a usable path or name ({exc.strerror or exc})") from None


def _by_name(ref: str, storage: str | None) -> tuple[Sweep, SweepLayout]:
    """A sweep under the storage root by that name, else the shipped sweep of that name."""
    root = storage_override(storage) or DEFAULT_STORAGE
    if "/" in ref or os.sep in ref:
        raise UsageError(f"{without_query(ref)}: no such sweep file or folder")
    if not is_plain_name(ref):
        raise UsageError(
            f"sweep name {quoted(ref)} must be a plain name (at most 64 letters, digits, '_', '.', '+', "
            f"'-', starting with a letter or digit)"
        )
    folder = local_path(root)
    if folder is not None:
        _probe_path(Path(folder), root, "storage root")
    stored = SweepLayout.under(root, ref)
    found = _from_folder(stored.sweep_dir)
    if found is not None:
        return found, stored
    shipped = shipped_sweep_path(ref)
    if shipped is not None:
        sweep = _load_yaml(shipped)
        return sweep, sweep.layout(storage_override(storage))
    hint = did_you_mean(ref, [*shipped_sweep_names(), *_stored_names(root)])
    raise UsageError(
        f"no sweep named {ref!r}: not a shipped sweep, a YAML file, a folder, or a sweep under "
        f"{without_query(root)}{hint} (`tsweep list` shows them)"
    )


def resolve_shipped(name: str, storage: str | None = None, overrides: Sequence[str] = ()) -> tuple[Sweep, SweepLayout]:
    """A shipped sweep (``demo``) and where its results go: its own storage root, or ``storage``."""
    path = shipped_sweep_path(name)
    if path is None:
        raise UsageError(f"no shipped sweep named {name!r}")
    sweep = _load_yaml(path)
    return _overridden(sweep, sweep.layout(storage_override(storage)), overrides, storage)


def _sweep_and_layout(
    sweep: Sweep | str, storage: str | None, layout: SweepLayout | None = None
) -> tuple[Sweep, SweepLayout]:
    """``sweep`` resolved, and where its results go: ``layout`` when given (a folder
    :func:`resolve` found, or ``SweepLayout(path)``), else ``{storage}/{name}``."""
    if isinstance(sweep, str):
        sweep, resolved = resolve(sweep, storage)
        return sweep, layout or resolved
    return sweep, layout or sweep.layout(storage_override(storage))


def load_sweep(ref: str, storage: str | None = None, overrides: Sequence[str] = ()) -> Sweep:
    """A validated sweep from a name, YAML, folder or URI (module docstring), with ``KEY=VALUE``
    overrides (``["train.lr=1e-3"]``) validated by the same schema."""
    return resolve(ref, storage, overrides)[0]


def explain() -> list[tuple[str, str, str]]:
    """(field path, default, description) of every setting a sweep YAML can hold."""
    from tsweep.sweeps import explain as _explain

    return _explain()


# ---------------------------------------------------------------- planning and running
def plan(sweep: Sweep | str, storage: str | None = None, *, check_data: bool = True) -> JobGraph:
    """The sweep's job graph, every job resolved; with ``check_data`` every corpus is opened
    and counted first (``tsweep plan``'s checks). Runs nothing."""
    from tsweep.orchestrator.plan import expand
    from tsweep.orchestrator.planview import check_and_expand

    sweep, layout = _sweep_and_layout(sweep, storage)
    return check_and_expand(sweep, layout)[0] if check_data else expand(sweep, layout)


def plan_table(
    sweep: Sweep | str,
    storage: str | None = None,
    *,
    layout: SweepLayout | None = None,
    cpus: float | None = None,
    gpus: float = 0.0,
) -> str:
    """What ``tsweep plan`` prints: every job with its shape and cost after the same checks as
    :func:`plan`, and the wall time on ``cpus`` (default: this machine's) and ``gpus``."""
    from tsweep.orchestrator.planview import check_and_expand, format_plan

    sweep, layout = _sweep_and_layout(sweep, storage, layout)
    graph, data_tokens = check_and_expand(sweep, layout)
    cpus = cpus if cpus is not None else float(os.cpu_count() or 1)
    return format_plan(graph, data_tokens, layout, cluster_cpus=cpus, cluster_gpus=gpus)


def run(
    sweep: Sweep | str,
    *,
    storage: str | None = None,
    layout: SweepLayout | None = None,
    address: str | None = None,
    live: bool = False,
    num_cpus: int | None = None,
    on_start: Callable[[str | None], object] | None = None,
) -> RunResult:
    """Run (or finish) a sweep on a new local Ray cluster, or the one at ``address``, writing
    into ``layout`` (default ``{storage}/{name}``); a RunResult. ``on_start`` is called with the
    Ray dashboard's URL (None on a joined cluster) once the cluster is up."""
    from tsweep.orchestrator.run import run_sweep

    sweep, layout = _sweep_and_layout(sweep, storage, layout)
    return run_sweep(sweep, layout=layout, address=address, num_cpus=num_cpus, live=live, on_start=on_start)


def submit(sweep: Sweep | str, address: str, *, storage: str | None = None, layout: SweepLayout | None = None) -> str:
    """Hand a sweep to a running cluster's Jobs API (``http://HEAD:8265``); the Ray job id. The
    driver writes where a local run of the same reference would: ``layout`` (the folder
    :func:`resolve` found, e.g. a sweep folder given by path), else ``{storage}/{name}``."""
    from tsweep.orchestrator.planview import check_and_expand
    from tsweep.orchestrator.submit import submit_job

    sweep, layout = _sweep_and_layout(sweep, storage, layout)
    check_and_expand(sweep, layout)
    default = sweep.layout(storage_override(storage)).sweep_dir
    return submit_job(
        sweep,
        address,
        storage=storage_override(storage),
        sweep_dir=layout.sweep_dir if layout.sweep_dir != default else None,
    )


def follow(job_id: str, address: str) -> int:
    """Print a submitted sweep's driver output (its progress lines, then the gap table) until the
    Ray job ends, reconnecting across dropped connections; the exit code of its final status
    (``tsweep.orchestrator.follow``)."""
    from tsweep.orchestrator.follow import follow as _follow

    return _follow(job_id, address)


def reattach_command(job_id: str, address: str) -> str:
    """The ``tsweep follow`` command that re-attaches to a submitted sweep."""
    from tsweep.orchestrator.follow import reattach_hint

    return reattach_hint(job_id, address)


def status(sweep: Sweep | str, storage: str | None = None, *, layout: SweepLayout | None = None) -> dict[str, Any]:
    """What a sweep's store and lease say about each planned job (``tsweep status``): ``jobs``,
    ``counts`` by state, ``driver``, damaged shards, and the ``text`` the command prints.
    Reads only; a storage root the user chose must exist (:func:`check_storage`)."""
    from tsweep.orchestrator.status import sweep_status

    sweep, found = _sweep_and_layout(sweep, storage, layout)
    if layout is None:
        check_storage(found, storage)
    return sweep_status(sweep, found)


# ---------------------------------------------------------------- results
@dataclass(frozen=True)
class SweepResults:
    """A sweep's results, read from its folder (local or remote) at call time."""

    sweep: Sweep
    layout: SweepLayout

    @cached_property
    def store(self) -> Store:
        return Store(self.layout.store_root)

    def summaries(self) -> pa.Table:
        """One row per finished job (pyarrow Table; ``.to_pandas()`` for a DataFrame)."""
        return self.store.read_summaries()

    def evals(self, job_ids: Sequence[str] | None = None) -> pa.Table:
        """Every evaluation of every job (pyarrow Table)."""
        return self.store.read_evals(job_ids)

    def report(self, *, bootstrap: int | None = None) -> TransferReport:
        """The transfer report, a typed ``TransferReport`` (``.sources``, ``.format_table()``,
        ``.to_json()``): the analysis actor's latest while it covers every finished job, else a
        refit (with ``bootstrap`` resamples when given)."""
        return self._table_and_report(bootstrap)[1]

    def _table_and_report(self, bootstrap: int | None = None) -> tuple[pa.Table, TransferReport]:
        from tsweep.analysis.reporting import load_report

        return load_report(self.layout.sweep_dir, bootstrap=bootstrap)

    def write_report(self, *, bootstrap: int | None = None, target_loss: float | None = None) -> list[str]:
        """Write ``report.html`` (one self-contained file), ``summary.md`` and every figure as
        ``plots/*.png`` with an SVG beside each into the sweep folder (``tsweep report``); the
        paths written: the page, the summary, the PNGs, the SVGs. Both carry the advice of
        :meth:`advice` (at ``target_loss`` when given)."""
        from tsweep.analysis.actor import read_history
        from tsweep.analysis.advice import advice, format_advice
        from tsweep.analysis.design import read_decisions, read_design_state
        from tsweep.analysis.page import report_html
        from tsweep.analysis.plots import save_figure
        from tsweep.analysis.reporting import summary_markdown

        layout = self.layout
        read_history(layout.sweep_dir)  # a damaged history refuses the report before anything is written
        table, report = self._table_and_report(bootstrap)
        made = self._figures(table, report)
        saved = {name: save_figure(fig, layout.sweep_dir, name) for name, fig in made.items()}
        pngs = [paths[0] for paths in saved.values()]
        svgs = [(name, layout.files.read_bytes(paths[1])) for name, paths in saved.items()]
        entries = advice(report, table, target_loss, device=self._device())
        text = format_advice(entries, target_loss)
        state = read_design_state(layout)
        design = None if state is None else (state, read_decisions(layout))
        layout.files.write_text(
            layout.summary_md, summary_markdown(report, pngs, layout.sweep_dir, advice=text, design=state)
        )
        page = report_html(report, table, svgs, config_yaml=self._config_yaml(), advice=(entries, text), design=design)
        layout.files.write_text(layout.report_html, page)
        return [layout.report_html, layout.summary_md, *pngs, *(paths[1] for paths in saved.values())]

    def figures(self, *, bootstrap: int | None = None) -> dict[str, Figure]:
        """Every figure of ``tsweep report`` as a matplotlib Figure, by name (``loss_vs_finetune``,
        ``scratch_curves``, ``dt_vs_df``, ``gaps``, ``loss_vs_p``, ``gap_history``,
        ``learning_curves``): ``fig.savefig("x.pdf")`` for a paper. Writes nothing."""
        return self._figures(*self._table_and_report(bootstrap))

    def _figures(self, table: pa.Table, report: TransferReport) -> dict[str, Figure]:
        from tsweep.analysis.actor import read_history
        from tsweep.analysis.plots import design_files, figures

        sweep_dir = self.layout.sweep_dir
        return figures(table, report, read_history(sweep_dir), self.evals(), design_files(sweep_dir))

    def transfer_table(self, *, bootstrap: int | None = None) -> pd.DataFrame:
        """The per-run transfer table (pandas): one row per fine-tune from a final checkpoint,
        with its source, size, N, p, D_F, loss, D_E, D_T, multiplier and flag
        (``TransferReport.transfer_table``)."""
        return self.report(bootstrap=bootstrap).transfer_table()

    def _config_yaml(self) -> str:
        layout = self.layout
        if layout.files.is_file(layout.sweep_yaml):
            return layout.files.read_text(layout.sweep_yaml)
        from tsweep.sweeps import dump_sweep

        return dump_sweep(self.sweep)

    def advice(self, target_loss: float | None = None, *, corpus_tokens: float | None = None) -> list[dict[str, Any]]:
        """Per source: the smallest budgets that reach ``target_loss`` by more target data, more
        pre-training and from scratch, with intervals and costs (``tsweep advise``); without a
        target, what 2x of each kind of token buys. ``corpus_tokens``: the target corpus's training
        tokens, past which an answer is beyond the design."""
        from tsweep.analysis.advice import advice

        table, report = self._table_and_report()
        return advice(report, table, target_loss, device=self._device(), corpus_tokens=corpus_tokens)

    def _device(self) -> Device:
        from tsweep.analysis.advice import Device

        return Device.of(self.sweep.resources)


def open_sweep(ref: str, storage: str | None = None) -> SweepResults:
    """The results of a sweep from its name, YAML, folder or URI (a storage root the user chose
    must exist: :func:`check_storage`)."""
    sweep, layout = resolve(ref, storage)
    check_storage(layout, storage)
    return SweepResults(sweep, layout)


def advise(
    sweep: str | SweepResults, target_loss: float | None = None, *, storage: str | None = None
) -> list[dict[str, Any]]:
    """More pre-training, more target data, or from scratch? ``tsweep advise`` as a list of dicts,
    one per source (``tsweep.analysis.advice``): the loss its law gives now and what 2x of each
    kind of token buys (``double``, with ``better`` where one buys more with 95% confidence), and
    with ``target_loss`` every route's smallest budget with its interval and cost (``options``)
    and the cheapest decided one (``cheapest``). ``sweep``: a reference (as :func:`open_sweep`
    takes) or the results of one. ``pandas.DataFrame(tsweep.advise("demo", 2.4))`` for a table."""
    results = sweep if isinstance(sweep, SweepResults) else open_sweep(sweep, storage)
    return results.advice(target_loss)


def gaps_json(report: TransferReport) -> dict[str, Any]:
    """The ``tsweep gaps --json`` contract of a report."""
    from tsweep.analysis.reporting import gaps_json as _gaps_json

    return _gaps_json(report)


def gaps_csv(report: TransferReport) -> str:
    """The gap table as CSV text (``tsweep gaps --csv``)."""
    from tsweep.analysis.reporting import gaps_csv as _gaps_csv

    return _gaps_csv(report)


def format_advice(entries: list[dict[str, Any]], target_loss: float | None = None) -> str:
    """:meth:`SweepResults.advice` as the text ``tsweep advise`` prints."""
    from tsweep.analysis.advice import format_advice as _format_advice

    return _format_advice(entries, target_loss)


# ---------------------------------------------------------------- fitting any table
def law_names() -> list[str]:
    """The registered laws :func:`fit` knows, sorted."""
    from tsweep.analysis.laws import LAWS

    return sorted(LAWS)


def read_table(path: str) -> dict[str, np.ndarray]:
    """A ``.csv`` or ``.parquet`` file as column name -> array, ready for :func:`fit`."""
    from tsweep.analysis.tables import read_table as _read_table

    return _read_table(path)


def fit(
    law: str,
    data: Any,
    *,
    map: Mapping[str, str] | None = None,
    bootstrap: int = 0,
    seed: int = 0,
    delta: float | None = None,
) -> FitResult:
    """Fit a registered law (``chinchilla``, ``kaplan``, ``hernandez``, ``barnett``) to any table:
    a pandas DataFrame, a pyarrow Table or a mapping of columns; ``map`` names the column of each
    law variable (default: the column of its own name). ``delta`` is the Huber loss's delta on
    log residuals (default: the fitter's ``HUBER_DELTA``; ``1e-3`` is the published Chinchilla
    procedure, Hoffmann et al. 2022). A FitResult (``.params``, ``.ci95``, ``.not_identified``,
    ``.to_json()``)."""
    from tsweep.analysis import fitter
    from tsweep.analysis.laws import LAWS, get_law

    if law not in LAWS:
        raise UsageError(f"law: unknown law {law!r}; known laws: {', '.join(sorted(LAWS))}{did_you_mean(law, LAWS)}")
    if delta is not None and not (math.isfinite(delta) and delta > 0):
        raise UsageError(f"delta: must be a positive finite number (the Huber loss's delta), got {delta!r}")
    spec = get_law(law)
    columns = _columns(data)
    for var in map or {}:
        if var not in spec.variables:
            raise UsageError(f"map: unknown variable {var!r}; {law}'s variables are {', '.join(spec.variables)}")
    values = {}
    for var in spec.variables:
        col = (map or {}).get(var, var)
        if col not in columns:
            raise UsageError(
                f"column {col!r} (variable {var}) not in the table; columns: {', '.join(columns) or 'none'}"
            )
        try:
            values[var] = np.asarray(columns[col], dtype=float)
        except (TypeError, ValueError):
            raise UsageError(f"column {col!r} (variable {var}) is not numeric") from None
    return fitter.fit(
        spec, values, bootstrap=bootstrap, seed=seed, delta=fitter.HUBER_DELTA if delta is None else delta
    )


# The fitter's reason for a parameter of a fit without a bootstrap (no interval to judge it by):
# such a point estimate is printed, the parameters the design or a bound rules out are not.
_NO_INTERVAL = "no bootstrap interval"


def _unidentified(result: FitResult) -> dict[str, str]:
    """The parameters to print as "not identified", with why (``_NO_INTERVAL`` aside)."""
    return {p: why for p, why in result.not_identified.items() if not (result.ci95 is None and why == _NO_INTERVAL)}


def format_fit(result: FitResult) -> str:
    """A fit as the table ``tsweep fit`` prints: a parameter the data cannot identify (too few
    rows or distinct values, an estimate on its bound, an interval that says nothing) is printed
    as "not identified" with the reason, never as a number."""
    from tsweep.analysis.fitter import format_fit as _format_fit

    lines = _format_fit(result).splitlines()  # a header, then one line per parameter
    unidentified = _unidentified(result)
    for i, name in enumerate(result.params, start=1):
        if name in unidentified and lines[i].split("=")[0].strip() == name:
            lines[i] = f"  {name:>8} = not identified: {unidentified[name]}"
    if result.ci95 is None:
        lines.insert(len(result.params) + 1, "  intervals: none (--bootstrap N for 95% intervals and their verdict)")
    return "\n".join(lines)


def fit_json(result: FitResult) -> dict[str, Any]:
    """The ``tsweep fit --json`` contract: the fit's JSON, where a parameter is not identified
    its ``value`` and ``ci95`` null and its ``reason`` given (as ``tsweep gaps --json`` does)."""
    out = result.to_json()
    for name, why in _unidentified(result).items():
        entry = out["params"][name]
        entry.update(value=None, reason=why)
        if "ci95" in entry:
            entry["ci95"] = None
    return out


def law_help() -> list[tuple[str, str, list[tuple[str, str]], tuple[str, ...]]]:
    """(name, formula, [(variable, meaning)], parameters) of every law :func:`fit` knows."""
    from tsweep.analysis.laws import LAWS, VARIABLE_MEANINGS

    return [
        (name, law.formula, [(v, VARIABLE_MEANINGS.get(v, "")) for v in law.variables], law.params)
        for name, law in sorted(LAWS.items())
    ]


def _columns(data: Any) -> dict[str, Any]:
    if hasattr(data, "column_names") and hasattr(data, "column"):  # pyarrow Table
        return {n: data.column(n).to_numpy(zero_copy_only=False) for n in data.column_names}
    if hasattr(data, "columns") and hasattr(data, "__getitem__"):  # pandas DataFrame
        return {str(c): np.asarray(data[c]) for c in data.columns}
    if isinstance(data, Mapping):
        return dict(data)
    raise UsageError(f"data: expected a DataFrame, a pyarrow Table or a mapping of columns, got {type(data).__name__}")


# ---------------------------------------------------------------- the Grafana dashboard
def grafana_dashboard_path() -> str:
    """The shipped Grafana dashboard of tsweep's gauges (a JSON file to import)."""
    from tsweep.orchestrator import grafana

    return grafana.dashboard_path()


def write_grafana_dashboard(path: str) -> str:
    """A copy of the dashboard at ``path`` (written whole or not at all); the path."""
    from tsweep.orchestrator import grafana

    return grafana.write(path)


def install_grafana_dashboard(wait_s: float = 60.0) -> str:
    """On a Ray head: add the dashboard to those Ray's Grafana serves, once Ray has written its
    own (waiting up to ``wait_s``); the file written."""
    from tsweep.orchestrator import grafana

    return grafana.install(wait_s=wait_s)


def design_line(state: Mapping[str, Any]) -> str:
    """One line on an adaptive design's state (``fits/design.json``): why it stopped, its spend."""
    from tsweep.analysis.design import design_line as line

    return line(state)


__all__ = [
    "DEFAULT_STORAGE",
    "Sweep",
    "SweepEntry",
    "SweepLayout",
    "SweepResults",
    "UsageError",
    "advise",
    "check_storage",
    "design_line",
    "did_you_mean",
    "explain",
    "fit",
    "fit_json",
    "follow",
    "format_advice",
    "format_fit",
    "gaps_csv",
    "gaps_json",
    "grafana_dashboard_path",
    "install_grafana_dashboard",
    "law_help",
    "law_names",
    "list_sweeps",
    "load_sweep",
    "open_sweep",
    "plan",
    "plan_table",
    "quoted",
    "read_table",
    "reattach_command",
    "resolve",
    "resolve_shipped",
    "run",
    "shipped_sweep_names",
    "shipped_sweep_path",
    "status",
    "storage_override",
    "storage_root",
    "submit",
    "without_query",
    "write_grafana_dashboard",
]
