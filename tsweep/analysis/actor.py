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

A restarted actor (``max_restarts=-1``) rebuilds itself from ``fits/latest.json``: that report's
optima become one more start each for its next refit (never the only one: a warm start is one
start among the screened grid, so the live report cannot drift from a cold refit of the same
rows; tests/test_analysis_live.py checks it). ``refit`` is idempotent (it reads the whole store
each time), so a retried call is harmless and concurrent finishes need no bookkeeping: calls
queue on the actor, and a call that finds no row changed since the last refit returns that
report at once, so refits queued behind a long one coalesce into one.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import traceback
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from tsweep.analysis.report import TransferReport
from tsweep.analysis.transfer import transfer_report
from tsweep.core.jsonio import dumps
from tsweep.core.layout import SweepLayout
from tsweep.core.store import FINAL_STATUSES, Store

log = logging.getLogger(__name__)


def history_line(report: TransferReport) -> dict[str, Any]:
    """The compact record of one refit kept in fits/history.jsonl."""
    return {
        "timestamp": report.timestamp,
        "n_jobs_finished": report.n_jobs_finished,
        "n_rows": report.n_rows,
        "n_used": report.n_used,
        "noise": report.noise,
        "sources": report.headline(),
        "comparisons": [c.to_json() for c in report.comparisons],
    }


def read_history(sweep_dir: str) -> list[dict[str, Any]]:
    layout = SweepLayout(sweep_dir)
    if not layout.files.exists(layout.fit_history):
        return []
    out = []
    for line in layout.files.read_text(layout.fit_history).splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:  # a line cut short by a crash mid-append
            continue
    return out


def parse_latest(text: str) -> TransferReport | None:
    """fits/latest.json's text as a report; None if it is not one (cut short, or an older format)."""
    try:
        return TransferReport.from_json(json.loads(text))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def read_latest(sweep_dir: str) -> TransferReport | None:
    layout = SweepLayout(sweep_dir)
    try:
        return parse_latest(layout.files.read_text(layout.latest_fit))
    except (FileNotFoundError, UnicodeDecodeError):
        return None


def n_jobs_finished(table: pa.Table) -> int:
    """Jobs whose summary has a final status (what resume skips)."""
    return sum(1 for s in table.column("status").to_pylist() if s in FINAL_STATUSES)


def fingerprint(table: pa.Table) -> str:
    """What a refit depends on: every row's job id, status and loss."""
    rows = sorted(zip(*(table.column(c).to_pylist() for c in ("job_id", "status", "best_eval_loss"))),
                  key=lambda r: r[0])
    return hashlib.blake2b(repr(rows).encode(), digest_size=16).hexdigest()


class AnalysisActor:
    """Refits the sweep's transfer report from its store; see the module docstring."""

    def __init__(self, sweep_dir: str, bootstrap: int = 200, seed: int = 0) -> None:
        self.layout = SweepLayout(sweep_dir)
        self.bootstrap = int(bootstrap)
        self.seed = int(seed)
        self._latest = read_latest(self.layout.sweep_dir)
        self._seen: str | None = None
        self.last_error: str | None = None

    def refit(self) -> TransferReport | None:
        """Read every summary and refit (the previous fit is one more start), write latest.json
        and one history line; return the report. Calls that find no new or changed row since the
        last refit return it unchanged (so refits queued behind a long one coalesce).

        On an analysis error the error is recorded in the history and ``last_error``, and the
        previous report is returned (a sweep never stops because a fit failed).
        """
        try:
            table = Store(self.layout.store_root).read_summaries()
            seen = fingerprint(table)
            if seen == self._seen and self._latest is not None:
                return self._latest
            report = transfer_report(table, bootstrap=self.bootstrap, seed=self.seed, warm=self._latest)
            self._record(report.stamped(n_jobs_finished(table), _now()))
            self._seen, self.last_error = seen, None
        except Exception as exc:  # noqa: BLE001 - logged and recorded; the sweep goes on
            log.exception("analysis refit failed")
            self.last_error = f"{type(exc).__name__}: {exc}"
            self._append({"timestamp": _now(), "error": self.last_error, "traceback": traceback.format_exc(limit=5)})
        return self._latest

    def _record(self, report: TransferReport) -> None:
        self.layout.files.write_text(self.layout.latest_fit, dumps(report.to_json(), indent=1))
        self._append(history_line(report))
        self._latest = report

    def _append(self, line: Mapping[str, Any]) -> None:
        self.layout.files.append_text(self.layout.fit_history, dumps(line) + "\n")

    def latest(self) -> TransferReport | None:
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
