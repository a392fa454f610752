"""A Ray Tune searcher that walks the job graph: a job is suggested once its inputs exist.

Tune asks ``suggest`` whenever it has room for another trial; the answer is the first waiting
job whose dependency is met (pre-training has none; a fine-tune needs its parent's checkpoint at
p tokens, which the parent reports the moment it is saved), or ``None`` to ask again later, or
``FINISHED`` when nothing is left. There is no phase barrier: a fine-tune from an early
checkpoint runs while its pre-training continues. Jobs whose parent failed for good are never
silently dropped: they are listed in ``blocked`` with the reason, and the driver reports them.

Multi-worker jobs: their Tune trial only coordinates and holds no CPU or GPU (its Ray Train
workers ask for the devices), so Tune's own resource accounting cannot hold them back. Given the
cluster's ``capacity``, the searcher therefore suggests a multi-worker job only while the
multi-worker jobs it has running leave room for it (or none is running, so that a job larger
than the cluster still waits for the autoscaler rather than forever). Otherwise every ready
multi-worker job would start a coordinator at once and their worker groups would queue in Ray
in no particular order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ray.tune.search import Searcher

from tsweep.core.job import Job
from tsweep.core.records import METRIC, Progress


class DependencySearcher(Searcher):
    def __init__(
        self,
        jobs: Iterable[Job],
        available: dict[str, set[int]] | None = None,
        capacity: Mapping[str, float] | None = None,
    ):
        super().__init__(metric=METRIC, mode="min")
        self.capacity = dict(capacity or {})  # cluster CPU / GPU totals, for multi-worker jobs
        self.multi_worker: dict[str, dict[str, float]] = {}  # trial_id -> devices its workers hold
        self.waiting: list[Job] = list(jobs)
        self.available: dict[str, set[int]] = {k: set(v) for k, v in (available or {}).items()}
        self.ended: set[str] = set()  # parents that finished (ok, diverged or failed for good)
        self.by_trial: dict[str, Job] = {}
        self.blocked: dict[str, str] = {}  # job_id -> reason

    # Tune checkpoints its searcher with the experiment and warns when it cannot. tsweep resumes
    # from the store instead (``tsweep resume`` plans again the jobs missing from it, and an
    # adaptive design continues from its log, ``fits/design.jsonl``), so there is nothing to save.
    def save(self, checkpoint_path: str) -> None:
        return None

    def restore(self, checkpoint_path: str) -> None:
        return None

    def _ready(self, job: Job) -> bool:
        return job.parent is None or job.pretrain_tokens in self.available.get(job.parent, set())

    @staticmethod
    def _footprint(job: Job) -> dict[str, float]:
        return {"CPU": job.cpus * job.workers, "GPU": job.gpus * job.workers}

    def _room_for(self, job: Job) -> bool:
        if job.workers <= 1 or not self.capacity or not self.multi_worker:
            return True
        need = self._footprint(job)
        return all(
            sum(f[k] for f in self.multi_worker.values()) + need[k] <= self.capacity.get(k, 0.0) + 1e-9
            for k in need
            if need[k]
        )

    def _block_orphans(self) -> None:
        keep = []
        for job in self.waiting:
            if job.parent in self.ended and not self._ready(job):
                self.blocked[job.job_id] = (
                    f"pre-training {job.parent} ended without a checkpoint at p={job.pretrain_tokens}"
                )
            else:
                keep.append(job)
        self.waiting = keep

    # Ray annotates suggest as returning a config or None; Searcher.FINISHED, the string its
    # docstring tells a searcher to return when it has nothing left, is not in that annotation.
    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]
        for i, job in enumerate(self.waiting):
            if self._ready(job) and self._room_for(job):
                self.waiting.pop(i)
                self.by_trial[trial_id] = job
                if job.workers > 1:
                    self.multi_worker[trial_id] = self._footprint(job)
                return {"job": job.to_dict()}
        self._block_orphans()
        return Searcher.FINISHED if not self.waiting else None

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        job = self.by_trial.get(trial_id)
        progress = Progress.from_metrics(result)
        if job is not None and job.kind == "pretrain" and progress is not None and progress.saved_p:
            self.available.setdefault(job.job_id, set()).update(p for p in job.checkpoints if p <= progress.saved_p)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        self.multi_worker.pop(trial_id, None)
        job = self.by_trial.get(trial_id)
        if job is None or job.kind != "pretrain":
            return
        if result:
            self.on_trial_result(trial_id, result)
        self.ended.add(job.job_id)
        self._block_orphans()
