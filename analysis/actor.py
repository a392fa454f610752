"""The analysis actor: refit the transfer laws every time a job finishes.

``AnalysisActor`` is a plain class (tests call it with no cluster); ``start_analysis_actor``
wraps it as a named Ray actor in an explicit namespace (Ray's pattern for a singleton service),
and is the only place in ``analysis/`` that imports Ray.

State: none of its own. The truth is the store (every finished job's summary row) and the
``fits/`` folder it writes:

    fits/latest.json     the latest transfer report (written to a temporary name, then os.replace'd,
                         so a reader such as the live progress view never sees half a file)
    fits/history.jsonl   one compact line per refit: n_jobs_finished, timestamp and the headline
                         estimates, the input of the "gap vs jobs finished" plot

A restarted actor (``max_restarts=-1``) rebuilds itself from ``fits/latest.json``: that report's
parameters become the warm starts of its next refit, so a restart costs one cold-ish refit at
worst and loses nothing. ``refit`` is idempotent (it reads the whole store each time), so a
retried call is harmless and concurrent finishes need no bookkeeping: calls queue on the actor
and the last one sees every row.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import traceback
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from analysis.transfer import TransferReport, transfer_report, warm_starts_from_json

log = logging.getLogger(__name__)

LATEST = "latest.json"
HISTORY = "history.jsonl"
HEADLINE_KEYS = ("G", "gap_size", "k", "alpha", "beta", "multiplier", "multiplier_at", "n_runs", "n_dt_runs")


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if obj == obj and abs(obj) != float("inf") else None
    if isinstance(obj, Mapping):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def atomic_write_json(path: str, obj: Any) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(finite(obj), f, indent=1, allow_nan=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def history_line(report: Mapping[str, Any]) -> dict[str, Any]:
    """The compact record of one refit kept in fits/history.jsonl."""
    scratch = report.get("scratch")
    return {
        "timestamp": report.get("timestamp"),
        "n_jobs_finished": report.get("n_jobs_finished"),
        "n_rows": report.get("n_rows"),
        "n_used": report.get("n_used"),
        "scratch": None if not scratch else {k: v.get("value") for k, v in scratch["params"].items()},
        "sources": [{"source": s["source"], **{k: s.get(k) for k in HEADLINE_KEYS}} for s in report.get("sources", [])],
    }


def read_history(sweep_dir: str) -> list[dict[str, Any]]:
    path = os.path.join(sweep_dir, "fits", HISTORY)
    out = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:  # a line cut short by a crash mid-append
                    continue
    except FileNotFoundError:
        pass
    return out


def read_latest(sweep_dir: str) -> dict[str, Any] | None:
    try:
        with open(os.path.join(sweep_dir, "fits", LATEST)) as f:
            return json.load(f)
    except (FileNotFoundError, ValueError):
        return None


def n_jobs_finished(table: pa.Table) -> int:
    """Jobs whose summary has a final status (what resume skips)."""
    from orchestrator.store import FINAL_STATUSES

    return sum(1 for s in table.column("status").to_pylist() if s in FINAL_STATUSES)


class AnalysisActor:
    """Refits the sweep's transfer report from its store; see the module docstring."""

    def __init__(self, sweep_dir: str, store_root: str, bootstrap: int = 200, seed: int = 0) -> None:
        self.sweep_dir = sweep_dir
        self.store_root = store_root
        self.bootstrap = int(bootstrap)
        self.seed = int(seed)
        self.fits_dir = os.path.join(sweep_dir, "fits")
        self._latest = read_latest(sweep_dir)
        self._warm: Mapping[str, Any] = warm_starts_from_json(self._latest)

    def refit(self, job_summary_row: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Read every summary, refit warm from the previous fit, write latest.json + one history line.

        ``job_summary_row``: the row of the job that just finished, used if the store does not
        show it yet (a reader on eventually consistent object storage). Returns the report dict;
        on an analysis error, ``{"error": ..., "latest": <previous report>}`` (a sweep never stops
        because a fit failed) and the error is recorded in the history.
        """
        from orchestrator.store import SUMMARY_SCHEMA, Store

        try:
            table = Store(self.store_root).read_summaries()
            if job_summary_row is not None and job_summary_row.get("job_id") not in set(
                table.column("job_id").to_pylist()
            ):
                row = dict(job_summary_row)
                row.setdefault("finished_at", _dt.datetime.now(_dt.timezone.utc))
                table = pa.concat_tables([table, pa.Table.from_pylist([row], schema=SUMMARY_SCHEMA)])
            report = transfer_report(table, bootstrap=self.bootstrap, seed=self.seed, warm=self._warm)
            out = self._record(report, n_jobs_finished(table))
        except Exception as exc:  # noqa: BLE001 - logged and recorded; the sweep goes on
            log.exception("analysis refit failed")
            self._append({"timestamp": _now(), "error": f"{type(exc).__name__}: {exc}",
                          "traceback": traceback.format_exc(limit=5)})
            return {"error": f"{type(exc).__name__}: {exc}", "latest": self._latest}
        return out

    def _record(self, report: TransferReport, finished: int) -> dict[str, Any]:
        out = finite(report.to_json())
        out["n_jobs_finished"] = finished
        out["timestamp"] = _now()
        atomic_write_json(os.path.join(self.fits_dir, LATEST), out)
        self._append(history_line(out))
        self._latest, self._warm = out, report.warm_starts()
        return out

    def _append(self, line: Mapping[str, Any]) -> None:
        os.makedirs(self.fits_dir, exist_ok=True)
        with open(os.path.join(self.fits_dir, HISTORY), "a") as f:
            f.write(json.dumps(finite(line), allow_nan=False) + "\n")
            f.flush()

    def latest(self) -> dict[str, Any] | None:
        return self._latest


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def start_analysis_actor(name: str, namespace: str, *, detached: bool = False, **kwargs: Any):
    """The named analysis actor in ``namespace``: created, or the running one if it exists.

    ``num_cpus=0``: it must never wait behind training trials for a CPU. ``max_restarts=-1``:
    a crashed actor comes back and rebuilds from the store and fits/. ``max_task_retries=2``:
    ``refit`` is idempotent, so retrying one lost to a crash is safe. ``detached`` keeps it alive
    after the driver exits (then kill it with ``ray.kill``). ``kwargs`` go to AnalysisActor.
    """
    import ray

    remote_cls = ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=2)(AnalysisActor)
    options: dict[str, Any] = {"name": name, "namespace": namespace, "get_if_exists": True}
    if detached:
        options["lifetime"] = "detached"
    return remote_cls.options(**options).remote(**kwargs)
