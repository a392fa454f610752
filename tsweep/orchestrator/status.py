"""``tsweep status``: what a sweep's store says about each of its planned jobs.

Read-only: every shard is read (eval shards too, what resume does, so that a truncated eval
shard of a finished job is reported here and not only when the sweep is resumed), and the
driver's lease (``lease.json``, :mod:`tsweep.orchestrator.lease`) is read; nothing is moved or
written. A shard that does not parse is reported as ``unreadable`` and its job as ``damaged``;
the next ``tsweep resume`` sets it aside and re-runs the job.

A job with eval rows but no summary row has started and not ended. While the sweep's lease is
live (a driver heartbeats it) such a job is ``running``; with no lease, or a stale one (its
driver was killed or lost), it is ``interrupted`` and ``tsweep resume`` continues it from its
last checkpoint. Either way the status shows its latest eval loss, step and tokens seen, and its
throughput from its eval rows: tokens between its last two evaluations over the training wall
time between them (``wall_time_s`` is the job's own clock, carried across resumes), or over the
whole run when it has one evaluation.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pyarrow as pa

from tsweep.analysis.design import design_line, read_decisions, read_design_state
from tsweep.core.job import Job
from tsweep.core.layout import SweepLayout, without_query
from tsweep.core.store import Store
from tsweep.orchestrator import lease as leases
from tsweep.orchestrator.plan import expand
from tsweep.sweeps import Sweep


def latest_evals(evals: pa.Table | None) -> dict[str, dict[str, Any]]:
    """Per job id: its latest eval row's ``step``, ``tokens_seen``, ``eval_loss``, and
    ``tokens_per_s`` (module docstring); from a table of eval rows (``EVAL_SCHEMA``)."""
    by_job: dict[str, list[dict[str, Any]]] = {}
    cols = ("job_id", "step", "tokens_seen", "eval_loss", "wall_time_s")
    for row in evals.select(list(cols)).to_pylist() if evals is not None else ():
        by_job.setdefault(row["job_id"], []).append(row)
    out = {}
    for job_id, rows in by_job.items():
        rows.sort(key=lambda r: r["step"])
        last = rows[-1]
        tps = None
        if len(rows) > 1:
            prev = rows[-2]
            dt, dn = last["wall_time_s"] - prev["wall_time_s"], last["tokens_seen"] - prev["tokens_seen"]
            tps = dn / dt if dt > 0 and dn >= 0 else None
        if tps is None and last["wall_time_s"] > 0:
            tps = last["tokens_seen"] / last["wall_time_s"]
        out[job_id] = {
            "step": last["step"],
            "tokens_seen": last["tokens_seen"],
            "eval_loss": last["eval_loss"],
            "tokens_per_s": tps,
            "evals": len(rows),
        }
    return out


def driver_state(layout: SweepLayout) -> dict[str, Any]:
    """``{"state": "running" | "stale" | "none", "holder", "reason"}`` from the sweep's lease."""
    held = leases.current(layout)
    if held is None:
        return {"state": "none", "holder": None, "reason": "no driver holds the sweep"}
    why = leases.stale_reason(held)
    return {
        "state": "stale" if why else "running",
        "holder": held.get("holder"),
        "reason": leases.describe(held) + (f": {why}" if why else ""),
    }


def _progress_text(p: dict[str, Any]) -> str:
    tps = f", {p['tokens_per_s']:,.0f} tok/s" if p["tokens_per_s"] is not None else ""
    return f"eval {p['eval_loss']:.4f} at step {p['step']:,}, {p['tokens_seen']:,} tokens{tps}"


def _state(
    summary: dict[str, Any] | None, progress: dict[str, Any] | None, damaged: bool, driver: dict[str, Any]
) -> tuple[str, str | None]:
    """A planned job's state and why, from its summary row, its latest evaluation, whether a
    shard of it is unreadable, and the driver's lease (module docstring)."""
    if damaged:
        return "damaged", "unreadable shard; resume re-runs it"
    if summary is not None:
        return summary["status"], summary["reason"]
    if progress is None:
        return "missing", None
    if driver["state"] == "running":
        return "running", _progress_text(progress)
    gone = "no driver holds the sweep" if driver["state"] == "none" else f"its driver is gone: {driver['reason']}"
    return "interrupted", f"{_progress_text(progress)}; {gone}"


def _job_row(
    job: Job, summary: dict[str, Any] | None, progress: dict[str, Any] | None, state: str, reason: str | None
) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "label": job.label,
        "state": state,
        "best_eval_loss": summary["best_eval_loss"] if summary else None,
        "reason": reason,
        "eval_loss": progress["eval_loss"] if progress else None,
        "step": progress["step"] if progress else None,
        "tokens_seen": progress["tokens_seen"] if progress else None,
        "tokens_per_s": progress["tokens_per_s"] if progress else None,
    }


def sweep_status(sweep: Sweep, layout: SweepLayout) -> dict[str, Any]:
    """Every planned job's state (``jobs``), the ``counts`` by state, the ``driver``, the
    ``unreadable`` and ``quarantined`` shards, and the ``text`` ``tsweep status`` prints."""
    graph = expand(sweep, layout)
    check = Store(layout.store_root).check()
    by_id = {r["job_id"]: r for r in check.summaries.to_pylist()}
    latest = latest_evals(check.evals)
    driver = driver_state(layout)
    counts: Counter[str] = Counter()
    rows = []
    design = read_design_state(layout) if sweep.design.adaptive else None
    chosen = {d["job_id"] for d in read_decisions(layout) if d.get("event") == "chose"} if design else set()
    for job in graph.jobs:
        summary, progress = by_id.get(job.job_id), latest.get(job.job_id)
        state, reason = _state(summary, progress, job.job_id in check.damaged, driver)
        if design is not None and state == "missing" and job.job_id not in chosen:
            state, reason = "not chosen", "the adaptive design has not chosen it"
        counts[state] += 1
        rows.append(_job_row(job, summary, progress, state, reason))
    out = {
        "sweep": sweep.name,
        "counts": dict(counts),
        "jobs": rows,
        "driver": driver,
        "unreadable": [without_query(p) for p in check.unreadable],
        "quarantined": [without_query(p) for p in check.quarantined],
        "design": design,
    }
    return {**out, "text": _status_text(out, len(graph.jobs), without_query(layout.store_root))}


def _status_text(status: dict[str, Any], n_jobs: int, store: str) -> str:
    name, counts, driver = status["sweep"], status["counts"], status["driver"]
    text = [
        f"{name}: {n_jobs} jobs: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
        f"store: {store}",
    ]
    if driver["state"] != "none":
        text.append(f"driver: {driver['state']}: {driver['reason']}")
    if status["design"] is not None:
        text.append(design_line(status["design"]))
        text += [f"  {t.get('line', t.get('name'))}" for t in status["design"].get("targets", [])]
    for row in status["jobs"]:
        if row["state"] not in ("ok", "missing", "not chosen"):
            text.append(f"  {row['state']}: {row['label']} ({row['job_id']}): {row['reason']}")
    if status["unreadable"]:
        text.append(
            f"  {len(status['unreadable'])} unreadable shard(s): `tsweep resume {name}` sets them aside and "
            f"re-runs their jobs"
        )
    if status["quarantined"]:
        text.append(f"  {len(status['quarantined'])} shard(s) set aside under store/quarantine")
    unfinished = counts.get("missing", 0) + counts.get("interrupted", 0)
    if unfinished and driver["state"] != "running":
        text.append(f"  {unfinished} job(s) not finished: `tsweep resume {name}` runs only those")
    return "\n".join(text)
