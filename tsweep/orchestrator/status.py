"""``tsweep status``: what a sweep's store says about each of its planned jobs."""

from __future__ import annotations

from collections import Counter

from tsweep.core.layout import SweepLayout
from tsweep.orchestrator.plan import expand
from tsweep.core.store import Store
from tsweep.sweeps.schema import Sweep


def sweep_status(sweep: Sweep, layout: SweepLayout) -> dict:
    graph = expand(sweep, layout)
    store = Store(layout.store_root)
    # Read every shard, eval shards included (what resume does), so that a truncated eval shard
    # of a finished job is found and reported here, not only when the sweep is resumed.
    store.finished_job_ids(verify_evals=True)
    damaged = store.damaged_job_ids()
    summaries = store.read_summaries().to_pylist()
    by_id = {r["job_id"]: r for r in summaries}
    counts: Counter = Counter()
    rows = []
    for job in graph.jobs:
        r = by_id.get(job.job_id)
        state = "damaged" if job.job_id in damaged else r["status"] if r else "missing"
        reason = "unreadable shard set aside; resume re-runs it" if state == "damaged" else r["reason"] if r else None
        counts[state] += 1
        rows.append({"job_id": job.job_id, "label": job.label, "state": state,
                     "best_eval_loss": r["best_eval_loss"] if r else None, "reason": reason})
    quarantined = store.quarantined()
    text = [f"{sweep.name}: {len(graph.jobs)} jobs: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
            f"store: {layout.store_root}"]
    for row in rows:
        if row["state"] not in ("ok", "missing"):
            text.append(f"  {row['state']}: {row['label']} ({row['job_id']}): {row['reason']}")
    if quarantined:
        text.append(f"  {len(quarantined)} unreadable shard(s) set aside under store/quarantine; "
                    f"`tsweep resume {sweep.name}` re-runs their jobs")
    if counts.get("missing"):
        text.append(f"  {counts['missing']} job(s) not finished: `tsweep resume {sweep.name}` runs only those")
    return {"sweep": sweep.name, "counts": dict(counts), "jobs": rows, "quarantined": quarantined, "text": "\n".join(text)}
