"""The analysis actor: refit the transfer laws every time a job finishes.

``AnalysisActor`` is a plain class (tests call it with no cluster); ``start_analysis_actor``
wraps it as a named Ray actor in an explicit namespace (Ray's pattern for a singleton service),
and is the only place in ``analysis/`` that imports Ray.

State: none of its own. The truth is the store (every finished job's summary row) and the
``fits/`` folder it writes:

    fits/latest.json     the latest transfer report (written to a temporary name, then renamed,
                         so a reader such as the live progress view never sees half a file)
    fits/history.jsonl   one compact line per refit: n_jobs_finished, timestamp and the headline
                         estimates, the input of the "gap vs jobs finished" plot

Refits are coalesced. A finished job *requests* a refit (:meth:`AnalysisActor.request`, which
returns at once); one background thread refits while requests are outstanding, so a burst of
finished jobs costs one refit, not one each, and the queue never grows behind a slow fit (under a
loaded machine a refit can take longer than a job). :meth:`AnalysisActor.refit` refits now and
returns the report: the driver's final, synchronous refit.

A restarted actor (``max_restarts=-1``) rebuilds itself from ``fits/latest.json``: that report's
fits join the starts of its next refit (a warm start is one start among the screened grid, so a
refit cannot settle somewhere a cold fit of the same rows would not), and it loses nothing.
``refit`` is idempotent (it reads the whole store each time), so a retried call is harmless and
concurrent finishes need no bookkeeping: calls queue on the actor and the last one sees every
row. A refit whose rows equal those of the last report it fitted returns that report as it is
(:func:`rows_key`): the driver's final refit after a live one that already saw every job costs a
read of the store, not a second bootstrap, and its answer is the one the live view showed.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import threading
import traceback
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from tsweep.analysis.records import TransferReport
from tsweep.analysis.transfer import transfer_report
from tsweep.core.errors import StoreError
from tsweep.core.jsonio import dumps, finite
from tsweep.core.layout import SweepLayout, without_query
from tsweep.core.store import FINAL_STATUSES, Store

if TYPE_CHECKING:
    import ray.actor

log = logging.getLogger(__name__)


def history_line(report: TransferReport) -> dict[str, Any]:
    """The compact record of one refit kept in fits/history.jsonl: the headline per source."""
    return {
        "timestamp": report.timestamp,
        "n_jobs_finished": report.n_jobs_finished,
        "n_rows": report.n_rows,
        "n_used": report.n_used,
        "sources": [{"source": s.source, **s.headline()} for s in report.sources],
    }


def read_history(sweep_dir: str) -> list[dict[str, Any]]:
    """The refits recorded in fits/history.jsonl, oldest first; a line cut short by a crash is
    left out. A file that is not UTF-8 text was damaged some other way: StoreError, one line
    naming it (``tsweep report`` reads it before it writes anything, so it exits 2 with nothing
    half-written)."""
    layout = SweepLayout(sweep_dir)
    if not layout.files.exists(layout.fit_history):
        return []
    try:
        text = layout.files.read_text(layout.fit_history)
    except UnicodeDecodeError as exc:
        raise StoreError(
            f"{without_query(layout.fit_history)}: not UTF-8 text (byte {exc.start} is 0x{exc.object[exc.start]:02x}); "
            "it should hold one JSON line per refit: move it aside to write the report without the gap history"
        ) from None
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:  # a line cut short by a crash mid-append
            continue
    return out


def read_latest(sweep_dir: str) -> TransferReport | None:
    """The actor's latest report; None when there is none or it cannot be read as one (an older
    or hand-edited file: it is refitted then, never trusted half-way)."""
    layout = SweepLayout(sweep_dir)
    try:
        return TransferReport.from_json(json.loads(layout.files.read_text(layout.latest_fit)))
    except (FileNotFoundError, ValueError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
        return None


def rows_key(table: pa.Table) -> str:
    """A digest of a summary table's rows whatever their order: two tables with the same key
    give the same report."""
    columns = sorted(table.column_names)
    rows = sorted(repr(row) for row in zip(*(table.column(c).to_pylist() for c in columns), strict=True))
    return hashlib.sha256("\n".join([repr(columns), *rows]).encode()).hexdigest()


def n_jobs_finished(table: pa.Table) -> int:
    """Jobs whose summary has a final status (what resume skips)."""
    return sum(1 for s in table.column("status").to_pylist() if s in FINAL_STATUSES)


class AnalysisActor:
    """Refits the sweep's transfer report from its store; see the module docstring."""

    def __init__(self, sweep_dir: str, bootstrap: int = 200, seed: int = 0) -> None:
        self.layout = SweepLayout(sweep_dir)
        self.bootstrap = int(bootstrap)
        self.seed = int(seed)
        self._lock = threading.Lock()  # one refit at a time
        self._wanted = threading.Event()  # a refit has been requested since the last one began
        self._worker: threading.Thread | None = None
        self._latest = read_latest(self.layout.sweep_dir)
        self._latest_key: str | None = None  # rows_key of the table behind _latest, once this actor fitted it
        self._warm: Mapping[str, Any] = {} if self._latest is None else self._latest.warm_starts()

    def request(self) -> None:
        """Ask for a refit soon (a job finished); returns at once. Requests made while a refit
        runs are served by one more refit after it."""
        self._wanted.set()
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._serve, name="tsweep-refit", daemon=True)
            self._worker.start()

    def _serve(self) -> None:
        while self._wanted.is_set():
            self._wanted.clear()
            self.refit()

    def refit(self) -> dict[str, Any]:
        """Refit now (after any refit in progress): read every summary, fit with the previous fits
        among the starts, write latest.json and one history line.

        Returns the report dict; on an analysis error, ``{"error": ..., "latest": <previous
        report>}`` (a sweep never stops because a fit failed) and the error is recorded in the
        history.
        """
        with self._lock:
            return self._refit()

    def _refit(self) -> dict[str, Any]:
        try:
            table = Store(self.layout.store_root).read_summaries()
            key = rows_key(table)
            if self._latest is not None and key == self._latest_key:
                return self._latest_json()
            report = transfer_report(table, bootstrap=self.bootstrap, seed=self.seed, warm=self._warm)
            out = self._record(report, n_jobs_finished(table))
            self._latest_key = key
        except Exception as exc:
            log.exception("analysis refit failed")
            self._append(
                {
                    "timestamp": _now(),
                    "error": f"{type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc(limit=5),
                }
            )
            return {
                "error": f"{type(exc).__name__}: {exc}",
                "latest": None if self._latest is None else self._latest.to_json(),
            }
        return out

    def _record(self, report: TransferReport, finished: int) -> dict[str, Any]:
        report = replace(report, n_jobs_finished=finished, timestamp=_now())
        out: dict[str, Any] = finite(report.to_json())
        self.layout.files.write_text(self.layout.latest_fit, dumps(out, indent=1))
        self._append(history_line(report))
        self._latest, self._warm = report, report.warm_starts()
        return out

    def _append(self, line: Mapping[str, Any]) -> None:
        self.layout.files.append_text(self.layout.fit_history, dumps(line) + "\n")

    def latest(self) -> dict[str, Any] | None:
        return None if self._latest is None else self._latest_json()

    def _latest_json(self) -> dict[str, Any]:
        assert self._latest is not None
        out: dict[str, Any] = finite(self._latest.to_json())
        return out


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def start_analysis_actor(
    name: str, namespace: str, *, detached: bool = False, **kwargs: Any
) -> ray.actor.ActorProxy[AnalysisActor]:  # ray's name for an actor handle
    """The named analysis actor in ``namespace``: created, or the running one if it exists.

    ``num_cpus=0``: it must never wait behind training trials for a CPU; it is placed on the
    driver's node when that node is alive (a worker node may be pre-empted). ``max_restarts=-1``:
    a crashed actor comes back and rebuilds from the store and fits/. ``max_task_retries=2``:
    ``refit`` is idempotent, so retrying one lost to a crash is safe. ``detached`` keeps it alive
    after the driver exits (then kill it with ``ray.kill``). ``kwargs`` go to AnalysisActor.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    remote_cls = ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=2)(AnalysisActor)
    # Beside the driver when it can be (soft): the driver's node is the one the sweep cannot lose.
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
    options: dict[str, Any] = {"name": name, "namespace": namespace, "get_if_exists": True, "scheduling_strategy": here}
    if detached:
        options["lifetime"] = "detached"
    return remote_cls.options(**options).remote(**kwargs)
