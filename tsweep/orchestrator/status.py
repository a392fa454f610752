"""``tsweep status``: what a sweep's store says about each of its planned jobs.

Read-only: every shard is read (eval shards too, what resume does, so that a truncated eval
shard of a finished job is reported here and not only when the sweep is resumed), nothing is
moved or written. A shard that does not parse is reported as ``unreadable`` and its job as
``damaged``; the next ``tsweep resume`` sets it aside and re-runs the job.
"""

from __future__ import annotations

from collections import Counter

from tsweep.core.layout import SweepLayout, without_query
from tsweep.core.store import Store
from tsweep.orchestrator.plan import expand
from tsweep.sweeps.schema import Sweep


def sweep_status(sweep: Sweep, layout: SweepLayout) -> dict:
    graph = expand(sweep, layout)
    check = Store(layout.store_root).check()
    by_id = {r["job_id"]: r for r in check.summaries.to_pylist()}
    counts: Counter = Counter()
    rows = []
    for job in graph.jobs:
        r = by_id.get(job.job_id)
        state = "damaged" if job.job_id in check.damaged else r["status"] if r else "missing"
        reason = "unreadable shard; resume re-runs it" if state == "damaged" else r["reason"] if r else None
        counts[state] += 1
        rows.append({"job_id": job.job_id, "label": job.label, "state": state,
                     "best_eval_loss": r["best_eval_loss"] if r else None, "reason": reason})
    unreadable = [without_query(p) for p in check.unreadable]
    quarantined = [without_query(p) for p in check.quarantined]
    text = [f"{sweep.name}: {len(graph.jobs)} jobs: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
            f"store: {without_query(layout.store_root)}"]
    for row in rows:
        if row["state"] not in ("ok", "missing"):
            text.append(f"  {row['state']}: {row['label']} ({row['job_id']}): {row['reason']}")
    if unreadable:
        text.append(f"  {len(unreadable)} unreadable shard(s): `tsweep resume {sweep.name}` sets them aside and "
                    f"re-runs their jobs")
    if quarantined:
        text.append(f"  {len(quarantined)} shard(s) set aside under store/quarantine")
    if counts.get("missing"):
        text.append(f"  {counts['missing']} job(s) not finished: `tsweep resume {sweep.name}` runs only those")
    return {"sweep": sweep.name, "counts": dict(counts), "jobs": rows, "unreadable": unreadable,
            "quarantined": quarantined, "text": "\n".join(text)}
