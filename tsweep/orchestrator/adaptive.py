"""The adaptive design on the cluster: a Tune searcher that asks the analysis actor what to run next.

``design.mode: adaptive`` runs the sweep through :class:`AdaptiveSearcher` instead of the plain
:class:`~tsweep.orchestrator.scheduler.DependencySearcher`. Its pool is the grid (the same jobs and
content ids); what it runs is decided by ``tsweep.analysis.design`` on the analysis actor's latest
refit (``fits/latest.json``, which carries the joint gap fits' bootstrap ensembles):

1. At start it queues the seed design (or, on ``resume``, the jobs its log chose that have not
   finished, then continues).
2. When Tune asks for a job and none it chose is ready, it waits for a refit that has seen every
   finished job, then chooses the next ``batch`` (default: the cluster's job slots) by the expected
   narrowing of the goal's intervals per FLOP, each job weighed at the FLOPs the finished runs
   say it will do (``design.calibrate``; the budget counts the plan's estimates). A refit that
   never comes (an analysis error) is waited for :data:`REFIT_WAIT_S` at most while nothing
   runs; then the choice is made on the latest refit there is.
3. It stops choosing when the goal is met, the budget is spent or no job left narrows the goal; the
   jobs it chose still finish; then Tune's run ends. Jobs it never chose are not failed or
   blocked: ``status`` lists them as not chosen.

Everything it decides is written beside the fits, so a person (and ``resume``) can read it:

    fits/design.jsonl   one line per choice (job, reason, spend) and one per stop (why)
    fits/design.json    the latest state: each target's width against its goal, the compute spent
                        against the grid's, the last choices, the stop reason

A killed driver loses nothing: every choice is logged before its job is handed to Tune, and a
chosen job is a grid job with a content id, so ``resume`` skips it if it finished and runs it if
not. Choices are a pure function of the finished rows and the log, so a resumed design continues
the same rule (Tune's timing can change which refit saw which job, never which jobs may run).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ray.tune.search import Searcher

from tsweep.analysis.actor import read_latest
from tsweep.analysis.design import (
    Candidate,
    Decision,
    Goal,
    calibrate,
    choose,
    describe,
    read_decisions,
    read_design_state,
    targets,
)
from tsweep.core.job import Job
from tsweep.core.jsonio import dumps
from tsweep.core.layout import SweepLayout
from tsweep.core.store import Store
from tsweep.orchestrator.scheduler import DependencySearcher

# tsweep's choice: while nothing runs, a refit (seconds on a sweep of a hundred runs) is waited for
# this long before the design chooses on the latest refit there is; a failed refit never comes.
REFIT_WAIT_S = 300.0
# How often the searcher reads fits/latest.json while it waits for a refit (Tune asks many times a second).
POLL_S = 1.0
RECENT_CHOICES = 8  # choices kept in fits/design.json for the live view and the report


class AdaptiveSearcher(DependencySearcher):
    """Releases the jobs the design chooses, as their dependencies appear (module docstring)."""

    def __init__(
        self,
        todo: Iterable[Job],
        available: dict[str, set[int]],
        *,
        pool: Sequence[Job],
        goal_settings: Any,
        model_sizes: Sequence[str],
        layout: SweepLayout,
        batch: int,
        capacity: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__([], available, capacity)
        self.layout = layout
        self.unfinished = {j.job_id: j for j in todo}
        self.pool = [Candidate.of(j) for j in pool]
        self.by_id = {c.job_id: c for c in self.pool}
        self.goal = Goal.of(goal_settings, model_sizes, self.pool)
        self.grid_flops = sum(c.cost for c in self.pool)
        self.batch = batch
        self.finished = {c.job_id for c in self.pool if c.job_id not in self.unfinished}
        self.refit_due = len(self.finished)  # finished jobs with a summary: what a fresh refit has seen
        self.committed: set[str] = set(self.finished)
        self.running: set[str] = set()
        self.stopped: str | None = None
        self.recent: list[dict[str, Any]] = []
        self._last_poll = 0.0
        self._idle_since: float | None = None
        self._resume_log()
        if not self.waiting:
            self._decide(read_latest(layout.sweep_dir))

    # ----------------------------------------------------------- the log
    def _resume_log(self) -> None:
        """Queue what an earlier driver chose and did not finish, in the order it chose it."""
        for line in read_decisions(self.layout):
            job_id = line.get("job_id")
            if line.get("event") == "chose" and job_id in self.by_id and job_id not in self.committed:
                self._enqueue(job_id)
                self.recent = [*self.recent, line][-RECENT_CHOICES:]

    @property
    def spent(self) -> float:
        return sum(self.by_id[j].cost for j in self.committed if j in self.by_id)

    def _enqueue(self, job_id: str) -> None:
        """Commit ``job_id`` (and its pre-training run, where that has not run) to the queue."""
        parent = self.by_id[job_id].parent
        if parent and parent not in self.committed:
            self._enqueue(parent)
        self.committed.add(job_id)
        job = self.unfinished.get(job_id)
        if job is not None and job_id not in self.finished:
            self.waiting.append(job)

    # ----------------------------------------------------------- choosing
    def _fresh(self) -> tuple[bool, Any]:
        """(whether the latest refit has seen every finished job, that refit)."""
        report = read_latest(self.layout.sweep_dir)
        seen = report.n_jobs_finished if report is not None and report.n_jobs_finished is not None else -1
        return seen >= self.refit_due, report

    def _measured(self) -> dict[str, float]:
        """FLOPs each finished run did (the store's summaries), which weigh the next choice."""
        table = Store(self.layout.store_root).read_summaries()
        return {
            job_id: float(flops or 0.0)
            for job_id, flops in zip(table.column("job_id").to_pylist(), table.column("flops").to_pylist(), strict=True)
        }

    def _decide(self, report: Any) -> None:
        pool = calibrate(self.pool, self._measured()) if self.finished else self.pool
        decisions, why = choose(report, self.goal, pool, self.committed, batch=self.batch, spent=self.spent)
        for d in decisions:
            self._log_choice(d)
            self._enqueue(d.job_id)
        if not decisions:
            self.stopped = why or "nothing left narrows the goal"
            self._append({"event": "stop", "reason": self.stopped, **self._spend()})
        self._write_state(report)

    def _spend(self) -> dict[str, Any]:
        return {
            "spent_flops": self.spent,
            "grid_flops": self.grid_flops,
            "share": self.spent / self.grid_flops if self.grid_flops else 0.0,
            "finished": len(self.finished),
            "time": time.time(),
        }

    def _log_choice(self, d: Decision) -> None:
        line = {"event": "chose", **d.to_json(), **self._spend()}
        self._append(line)
        self.recent = [*self.recent, line][-RECENT_CHOICES:]

    def _append(self, line: Mapping[str, Any]) -> None:
        self.layout.files.append_text(self.layout.design_log, dumps(line) + "\n")

    def _write_state(self, report: Any) -> None:
        remaining = [c for c in self.pool if c.job_id not in self.committed]
        state = targets(report, self.goal, self.pool, remaining)
        out = {
            "goal": {"sizes": list(self.goal.sizes), "half_width": self.goal.half_width, "order": self.goal.order},
            "budget_flops": self.goal.budget,
            "targets": [t.to_json() | {"line": describe(t, self.goal)} for t in state],
            "chosen": len(self.committed),
            "pool": len(self.pool),
            "stopped": self.stopped,
            "recent": self.recent,
            **self._spend(),
        }
        self.layout.files.write_text(self.layout.design_state, dumps(out, indent=1))

    # ----------------------------------------------------------- Tune's side
    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]
        config = self._take(trial_id)
        if config is not None:
            return config
        if self.stopped is None and time.monotonic() - self._last_poll >= POLL_S:
            self._last_poll = time.monotonic()
            fresh, report = self._fresh()
            idle = self._waited_long_enough()
            if fresh or idle:
                self._decide(report)
                config = self._take(trial_id)
                if config is not None:
                    return config
        self._block_orphans()
        if self.stopped is not None and not self.waiting and not self.running:
            return Searcher.FINISHED
        return None

    def _waited_long_enough(self) -> bool:
        if self.running or self.waiting:
            self._idle_since = None
            return False
        now = time.monotonic()
        if self._idle_since is None:
            self._idle_since = now
        return now - self._idle_since >= REFIT_WAIT_S

    def _take(self, trial_id: str) -> dict[str, Any] | None:
        for i, job in enumerate(self.waiting):
            if self._ready(job) and self._room_for(job):
                self.waiting.pop(i)
                self.by_trial[trial_id] = job
                self.running.add(trial_id)
                if job.workers > 1:
                    self.multi_worker[trial_id] = self._footprint(job)
                return {"job": job.to_dict()}
        return None

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        super().on_trial_complete(trial_id, result, error)
        self.running.discard(trial_id)
        job = self.by_trial.get(trial_id)
        if job is not None:
            self.finished.add(job.job_id)
            self.refit_due += 0 if error else 1

    def final_state(self) -> dict[str, Any]:
        """The design's state after the final refit (written to fits/design.json too)."""
        self._write_state(read_latest(self.layout.sweep_dir))
        return read_design_state(self.layout) or {}
