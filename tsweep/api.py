"""tsweep's Python API: what a notebook needs, and what the ``tsweep`` CLI is a thin layer over.

::

    import tsweep

    sweep = tsweep.load_sweep("demo")                 # a shipped name, a YAML, a sweep folder or a URI
    graph = tsweep.plan(sweep)                        # the job graph; runs nothing
    result = tsweep.run(sweep)                        # a local Ray cluster (or address=...)
    res = tsweep.open_sweep("demo")                   # a finished (or running) sweep's results
    res.summaries().to_pandas(); res.evals()          # pyarrow Tables of the store
    report = res.report()                             # the typed transfer report (.to_json(), .sources)
    tsweep.fit("barnett", df, map={"p": "pretrain_tokens", "f": "data_tokens", "loss": "best_eval_loss"})

A sweep reference (``ref``) is resolved in this order: a shipped sweep's name (``demo``), a YAML
file (a path or a URI), a sweep folder holding ``sweep.yaml``, a URI of such a folder, or the
name of a sweep under the storage root (``storage``, else ``$TSWEEP_STORAGE``, else
``~/tsweep_runs``). A sweep folder is its own identity: its results stay in that folder whatever
name its ``sweep.yaml`` holds (a copied or renamed folder never writes into the original).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from tsweep.core.errors import UsageError
from tsweep.core.layout import Files, SweepLayout, is_uri, without_query
from tsweep.core.store import Store
from tsweep.sweeps import Sweep, is_plain_name, loads_sweep, with_overrides
from tsweep.sweeps import load_sweep as _load_yaml

DEFAULT_STORAGE = "~/tsweep_runs"


def storage_override(storage: str | None = None) -> str | None:
    """The storage root a user chose: ``storage``, else ``$TSWEEP_STORAGE``; None means each
    sweep's own ``storage_root``."""
    return storage or os.environ.get("TSWEEP_STORAGE") or None


def shipped_sweep_path(name: str) -> Path | None:
    """The YAML of a sweep shipped with tsweep (``demo``, ``synthetic_distance``, ...), if any."""
    path = resources.files("tsweep.sweeps") / f"{name}.yaml"
    return Path(str(path)) if path.is_file() else None


def _from_folder(folder: str) -> Sweep | None:
    layout = SweepLayout(folder)
    if not layout.files.is_file(layout.sweep_yaml):
        return None
    return loads_sweep(layout.files.read_text(layout.sweep_yaml), origin=layout.sweep_yaml)


def resolve(ref: str, storage: str | None = None, overrides: Sequence[str] = ()) -> tuple[Sweep, SweepLayout]:
    """A sweep and the folder its results live in, from any reference (module docstring), with
    ``KEY.PATH=VALUE`` overrides applied (``tsweep.sweeps.schema.with_overrides``); an override of
    ``name`` moves the results to that name's folder."""
    return _overridden(*_resolve(ref, storage), overrides, storage)


def _overridden(sweep: Sweep, layout: SweepLayout, overrides: Sequence[str], storage: str | None):
    if not overrides:
        return sweep, layout
    new = with_overrides(sweep, list(overrides))
    moved = new.name != sweep.name or new.storage_root != sweep.storage_root
    return new, (new.layout(storage_override(storage)) if moved else layout)


def _resolve(ref: str, storage: str | None) -> tuple[Sweep, SweepLayout]:
    if not ref or not ref.strip():
        raise UsageError("SWEEP: empty; give a sweep name, a YAML file, a sweep folder or a URI")
    shipped = shipped_sweep_path(ref) if "/" not in ref and os.sep not in ref else None
    path = Path(os.path.expanduser(ref))
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
        sweep = _from_folder(ref)
        if sweep is None:
            raise UsageError(
                f"{without_query(ref)}: no sweep.yaml there (a sweep folder holds the sweep.yaml it ran with)"
            )
        return sweep, SweepLayout(ref)
    root = storage_override(storage) or DEFAULT_STORAGE
    if not is_plain_name(ref):
        raise UsageError(
            f"sweep name {ref!r} must be a plain name (letters, digits, '_', '.', '+', '-', starting "
            f"with a letter or digit)"
        )
    stored = SweepLayout.under(root, ref)
    sweep = _from_folder(stored.sweep_dir)
    if sweep is not None:
        return sweep, stored
    if shipped is not None:
        sweep = _load_yaml(shipped)
        return sweep, sweep.layout(storage_override(storage))
    raise UsageError(
        f"no sweep named {ref!r}: not a shipped sweep, a YAML file, a folder, or a sweep under {without_query(root)}"
    )


def resolve_shipped(name: str, storage: str | None = None, overrides: Sequence[str] = ()) -> tuple[Sweep, SweepLayout]:
    """A shipped sweep (``demo``) and where its results go: its own storage root, or ``storage``."""
    path = shipped_sweep_path(name)
    if path is None:
        raise UsageError(f"no shipped sweep named {name!r}")
    sweep = _load_yaml(path)
    return _overridden(sweep, sweep.layout(storage_override(storage)), overrides, storage)


def _sweep_and_layout(sweep: Sweep | str, storage: str | None) -> tuple[Sweep, SweepLayout]:
    if isinstance(sweep, str):
        return resolve(sweep, storage)
    return sweep, sweep.layout(storage_override(storage))


def load_sweep(ref: str, storage: str | None = None, overrides: Sequence[str] = ()) -> Sweep:
    """A validated sweep from a name, YAML, folder or URI (module docstring), with ``KEY=VALUE``
    overrides (``["train.lr=1e-3"]``) validated by the same schema."""
    return resolve(ref, storage, overrides)[0]


def plan(sweep: Sweep | str, storage: str | None = None, *, check_data: bool = True):
    """The sweep's job graph, every job resolved; with ``check_data`` every corpus is opened
    and counted first (``tsweep plan``'s checks). Runs nothing."""
    from tsweep.orchestrator.plan import expand
    from tsweep.orchestrator.planview import check_and_expand

    sweep, layout = _sweep_and_layout(sweep, storage)
    return check_and_expand(sweep, layout)[0] if check_data else expand(sweep, layout)


def run(
    sweep: Sweep | str,
    *,
    storage: str | None = None,
    address: str | None = None,
    live: bool = False,
    num_cpus: int | None = None,
):
    """Run (or finish) a sweep on a local Ray cluster, or the one at ``address``; a RunResult."""
    from tsweep.orchestrator.planview import check_and_expand
    from tsweep.orchestrator.run import run_sweep

    sweep, layout = _sweep_and_layout(sweep, storage)
    check_and_expand(sweep, layout)
    return run_sweep(sweep, layout=layout, address=address, num_cpus=num_cpus, live=live)


def submit(sweep: Sweep | str, address: str, *, storage: str | None = None, layout: SweepLayout | None = None) -> str:
    """Hand a sweep to a running cluster's Jobs API (``http://HEAD:8265``); the Ray job id. The
    driver writes where a local run of the same reference would: ``layout`` (the folder
    :func:`resolve` found, e.g. a sweep folder given by path), else ``{storage}/{name}``."""
    from tsweep.orchestrator.planview import check_and_expand
    from tsweep.orchestrator.submit import submit_job

    sweep, resolved = _sweep_and_layout(sweep, storage)
    layout = layout or resolved
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


@dataclass(frozen=True)
class SweepResults:
    """A sweep's results, read from its folder (local or remote) at call time."""

    sweep: Sweep
    layout: SweepLayout

    @cached_property
    def store(self) -> Store:
        return Store(self.layout.store_root)

    def summaries(self):
        """One row per finished job (pyarrow Table; ``.to_pandas()`` for a DataFrame)."""
        return self.store.read_summaries()

    def evals(self, job_ids=None):
        """Every evaluation of every job (pyarrow Table)."""
        return self.store.read_evals(job_ids)

    def report(self, *, bootstrap: int | None = None):
        """The transfer report, a typed ``TransferReport`` (``.sources``, ``.format_table()``,
        ``.to_json()``): the analysis actor's latest while it covers every finished job."""
        from tsweep.analysis.reporting import load_report

        return load_report(self.layout.sweep_dir, bootstrap=bootstrap)[1]


def open_sweep(ref: str, storage: str | None = None) -> SweepResults:
    """The results of a sweep from its name, YAML, folder or URI."""
    sweep, layout = resolve(ref, storage)
    return SweepResults(sweep, layout)


def fit(law: str, data: Any, *, map: Mapping[str, str] | None = None, bootstrap: int = 0, seed: int = 0):
    """Fit a registered law (``chinchilla``, ``kaplan``, ``hernandez``, ``barnett``) to any table:
    a pandas DataFrame, a pyarrow Table or a mapping of columns; ``map`` names the column of each
    law variable (default: the column of its own name). A FitResult (``.params``, ``.ci95``,
    ``.to_json()``)."""
    from tsweep.analysis import fitter
    from tsweep.analysis.laws import LAWS, get_law

    if law not in LAWS:
        raise UsageError(f"law: unknown law {law!r}; known laws: {', '.join(sorted(LAWS))}")
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
    return fitter.fit(spec, values, bootstrap=bootstrap, seed=seed)


def _columns(data: Any) -> dict[str, Any]:
    if hasattr(data, "column_names") and hasattr(data, "column"):  # pyarrow Table
        return {n: data.column(n).to_numpy(zero_copy_only=False) for n in data.column_names}
    if hasattr(data, "columns") and hasattr(data, "__getitem__"):  # pandas DataFrame
        return {str(c): np.asarray(data[c]) for c in data.columns}
    if isinstance(data, Mapping):
        return dict(data)
    raise UsageError(f"data: expected a DataFrame, a pyarrow Table or a mapping of columns, got {type(data).__name__}")


__all__ = [
    "SweepResults",
    "fit",
    "follow",
    "load_sweep",
    "open_sweep",
    "plan",
    "resolve",
    "run",
    "storage_override",
    "submit",
]
