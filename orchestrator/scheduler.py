"""A Ray Tune searcher that walks the job graph: a job is suggested once its inputs exist.

Tune asks ``suggest`` whenever it has room for another trial; the answer is the first waiting
job whose dependency is met (pre-training has none; a fine-tune needs its parent's checkpoint at
p tokens, which the parent reports the moment it is saved), or ``None`` to ask again later, or
``FINISHED`` when nothing is left. There is no phase barrier: a fine-tune from an early
checkpoint runs while its pre-training continues. Jobs whose parent failed for good are never
silently dropped: they are listed in ``blocked`` with the reason, and the driver reports them.
"""

from __future__ import annotations

from collections.abc import Iterable

from ray.tune.search import Searcher

from orchestrator.plan import Job


class DependencySearcher(Searcher):
    def __init__(self, jobs: Iterable[Job], available: dict[str, set[int]] | None = None):
        super().__init__(metric="best_eval_loss", mode="min")
        self.waiting: list[Job] = list(jobs)
        self.available: dict[str, set[int]] = {k: set(v) for k, v in (available or {}).items()}
        self.ended: set[str] = set()  # parents that finished (ok, diverged or failed for good)
        self.by_trial: dict[str, Job] = {}
        self.blocked: dict[str, str] = {}  # job_id -> reason

    def _ready(self, job: Job) -> bool:
        return job.parent is None or job.pretrain_tokens in self.available.get(job.parent, set())

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

    def suggest(self, trial_id: str):
        for i, job in enumerate(self.waiting):
            if self._ready(job):
                self.waiting.pop(i)
                self.by_trial[trial_id] = job
                return {"job": job.to_dict()}
        self._block_orphans()
        return Searcher.FINISHED if not self.waiting else None

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        job = self.by_trial.get(trial_id)
        saved = result.get("saved_p") or 0
        if job is not None and job.kind == "pretrain" and saved:
            self.available.setdefault(job.job_id, set()).update(p for p in job.checkpoints if p <= saved)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        job = self.by_trial.get(trial_id)
        if job is None or job.kind != "pretrain":
            return
        if result:
            self.on_trial_result(trial_id, result)
        self.ended.add(job.job_id)
        self._block_orphans()

    def job_of(self, trial_id: str) -> Job | None:
        return self.by_trial.get(trial_id)
