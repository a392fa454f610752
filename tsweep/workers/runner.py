"""One job's training and evaluation: pre-train, fine-tune or from-scratch, on a DeepSpeed engine.

What a run measures (Hernandez et al. 2021, sec. 2; the laws assume it): its score is its best
held-out loss for its unique-data budget, reached for real. Every run is evaluated on one fixed
held-out target set and follows the warmup-stable-decay schedule of ``tsweep.workers.schedule``:
- a fine-tune or scratch run trains epochs over exactly its D_F (or D) tokens at the stable rate
  until its best evaluation is ``eval.patience_epochs`` old, and at least ``eval.patience_tokens``
  (never before ``eval.min_epochs``),
  which means it has passed its data-limited (over-fitting) minimum, then cools down and keeps
  its best evaluation. A run whose stable phase reaches ``train.max_epochs`` first was still
  improving: its summary says ``unconverged`` and the analysis leaves it out, with a warning.
- a pre-training run makes one pass over its source budget and saves an annealed checkpoint at
  every p (a cooldown branch; the final p is the run's own decay). Fine-tunes start from those,
  with a fresh optimizer.

When evaluations happen (``tsweep.core.cadence``): a fine-tune or scratch run every
``eval_interval`` steps (at least ``eval.per_epoch`` times an epoch) and at the end of its
cooldown; a pre-training run at step 0, at doubling step counts and at its end (its loss at p is
the first evaluation of every fine-tune from p, so it is not measured twice). Progress is
reported every interval and as soon as a checkpoint p is saved (the scheduler releases that
checkpoint's fine-tunes on this report).

The design: a job is started, then run.
- :func:`tsweep.workers.startup.start` does all the I/O before the first step (the DeepSpeed
  config written, the state restored from the store and the resume checkpoints, or both
  cleared) and returns a :class:`~tsweep.workers.startup.Started` job.
- The loop, :meth:`JobRunner.run`, is the same for every kind: train a step, check its loss,
  then ask the job's kind (a :class:`~tsweep.workers.kinds.Strategy`, ``tsweep.workers.kinds``)
  what is due: a p-checkpoint, an evaluation, early stopping, the end. What differs between
  kinds (end condition, patience, what is saved, which losses mean divergence) lives there only.
- :class:`JobRunner` names the steps it owns: ``evaluate``, ``maybe_checkpoint``, ``flush``,
  ``progress``, ``summarize`` and ``state_dict``. Where rows and progress go is the caller's: a
  :class:`RowSink` (the store) and a ``ProgressSink`` (Tune's ``report``, or a list in tests).
  :meth:`JobRunner.start` (and :func:`run_job`, which opens the sweep's store) starts and builds it.

Fault tolerance, the why of the order of operations:
- Every ``train.checkpoint_interval_evals`` eval intervals the buffered eval rows are flushed to
  the store *first*, then the engine state is saved. A job killed in between resumes from the
  older checkpoint and deletes the shards written after it, so rows are never duplicated or lost.
- A resumed job sees the same batches (``tsweep.workers.batches``) and restores the loop state
  (best evaluation, phase, cooldown window), so its result matches an uninterrupted run within
  noise. A pre-training branch runs between two checkpoints as one unit: a kill inside it
  repeats it.
- A non-finite loss, or an eval loss or smoothed training loss far above its first value,
  ends the job as ``diverged`` with the reason in the store; the sweep goes on and fits leave
  it out (``tsweep.workers.state``). The training-loss check runs every step, so a pre-training
  run that blows up between its sparse evaluations stops before it saves (and releases) a
  broken checkpoint p.

Ray-free: the Tune trainable and the tests drive it the same way.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any, Protocol

from tsweep.core.job import Job
from tsweep.core.layout import SweepLayout, without_query
from tsweep.core.records import Progress
from tsweep.core.store import SCHEMA_VERSION, Store
from tsweep.data import SweepData
from tsweep.sweeps import Sweep
from tsweep.workers import checkpoints
from tsweep.workers.kinds import Strategy, strategy_for
from tsweep.workers.startup import Started, StoredRows, start
from tsweep.workers.state import Outcome, train_loss_divergence
from tsweep.workers.threads import ThreadGovernor

ProgressSink = Callable[[Progress], None]


class RowSink(StoredRows, Protocol):
    """Where a job's rows go (the store implements it), and what its start-up reads there."""

    def write_evals(self, job_id: str, rows: list[Mapping[str, Any]]) -> Any: ...

    def write_summary(self, row: Mapping[str, Any]) -> Any: ...


def _row_key(started: Started) -> dict[str, Any]:
    """The columns every row of the job carries."""
    job = started.job
    return dict(
        schema_version=SCHEMA_VERSION,
        sweep=started.sweep.name,
        job_id=job.job_id,
        kind=job.kind,
        source=job.source,
        target=job.target,
        size=job.size,
        n_params=job.n_params,
        data_tokens=job.data_tokens,
        pretrain_tokens=job.pretrain_tokens,
        attempt=started.attempt,
        seed=job.seed,
        replicate=job.replicate,
        lineage=job.lineage,
    )


class JobRunner:
    """Trains one started job to completion (or divergence); see the module docstring."""

    def __init__(
        self,
        started: Started,
        strategy: Strategy,
        *,
        rows: RowSink,
        report: ProgressSink | None = None,
        threads: ThreadGovernor | None = None,
    ):
        self.job, self.sweep, self.state, self.pace = started.job, started.sweep, started.state, started.pace
        self.training, self.data_chars = started.training, started.data_chars
        self.strategy, self.outcome = strategy, strategy.outcome
        self.rows, self.report = rows, report
        self.lead = started.training.lead
        self.key = _row_key(started)
        self.buffer: list[Mapping[str, Any]] = []
        self.last_train_loss: float | None = None
        self.t_start = time.perf_counter() - self.state.wall_time_s
        # the job's torch threads (its own CPUs, or lent ones: tsweep.workers.threads); a runner
        # without a governor keeps the count it was started with
        self.threads = threads or ThreadGovernor(_torch_threads())
        self.training.before_compute = self.threads.apply  # every step, branch and eval batch
        # thread-seconds of earlier attempts (a resume state from before they were kept: its wall
        # time on its own threads), and the governor's count when this runner started (it may
        # have started before the job's start-up, which wall_time_s leaves out too)
        st = self.state
        self.core_s_before = st.wall_time_s * self.threads.own if st.core_seconds is None else st.core_seconds
        self.core_s_start = self.threads.core_seconds()

    @classmethod
    def start(
        cls,
        job: Job,
        sweep: Sweep,
        *,
        rows: RowSink,
        report: ProgressSink | None = None,
        data: SweepData | None = None,
        threads: ThreadGovernor | None = None,
    ) -> JobRunner:
        """Start ``job`` (``tsweep.workers.startup``) and the runner of its kind."""
        started = start(job, sweep, rows=rows, data=data)
        return cls(started, strategy_for(started, Outcome()), rows=rows, report=report, threads=threads)

    # ------------------------------------------------------------ the loop
    def run(self, *, stop_after_steps: int | None = None) -> dict[str, Any]:
        """Train to the end and return the summary row; ``stop_after_steps`` checkpoints and
        returns ``{}`` there instead (tests use it to stand for a kill)."""
        step = self.state.step
        if step == 0:
            self.evaluate(0)
            self.progress(0)
        self.training.engine.train()
        while not self.strategy.done(step) and self.outcome.ok:
            self.last_train_loss = self.training.train_step(step)
            step += 1
            if not self._loss_is_sound(step, self.last_train_loss):
                break
            self._after_step(step)
            if self.strategy.done(step):
                break
            self.maybe_checkpoint(step)
            if stop_after_steps is not None and step >= stop_after_steps:
                self.maybe_checkpoint(step, force=True)
                return {}
        return self._finish(step)

    def _loss_is_sound(self, step: int, loss: float) -> bool:
        """Check the training loss of ``step`` for divergence (every kind, every step)."""
        reason = train_loss_divergence(self.state, step, loss, warmup=self.sweep.train.warmup_steps)
        if reason is not None:
            self.outcome.diverged(reason)
        return self.outcome.ok

    def _after_step(self, step: int) -> None:
        """What the job's kind has due after ``step`` steps, then progress when there is news."""
        saved = self.strategy.after_step(step)
        evaluated = self.strategy.should_evaluate(step)
        if evaluated:
            self.evaluate(step)
            self.strategy.after_evaluation(step)
        if saved or evaluated or step % self.pace.interval == 0:
            self.progress(step)

    def _finish(self, step: int) -> dict[str, Any]:
        """Flush the rows, write the summary and drop the resume state (rank 0), report done."""
        self.flush()
        summary = self.summarize(step)
        if self.lead:
            self.rows.write_summary(summary)
            checkpoints.remove(self.job.resume_dir)
        # hand lent CPUs back now: Tune ends a trial on its report with done=True, and the
        # function's thread may never return from that report to its caller's clean-up
        self.threads.close()
        self.progress(step, done=True)
        return summary

    # ------------------------------------------------------------ the named steps
    def evaluate(self, step: int) -> float:
        """Evaluate on the held-out set, buffer the row, update the best loss and divergence."""
        st = self.state
        loss = self.training.eval_loss()
        self.buffer.append(self._eval_row(step, loss))
        if st.first_loss is None:
            st.first_loss = loss
        reason = (
            f"non-finite eval loss at step {step}"
            if not math.isfinite(loss)
            else self.strategy.eval_divergence(step, loss)
        )
        if reason is not None:
            self.outcome.diverged(reason)
        if loss < st.best_loss:
            st.best_loss, st.best_step = loss, step
        st.last_loss = loss
        return loss

    def _eval_row(self, step: int, loss: float) -> dict[str, Any]:
        return {
            **self.key,
            "step": step,
            "tokens_seen": step * self.pace.tokens_per_step,
            "epoch": self.training.stream.epochs_after(step),
            "train_loss": self.last_train_loss,
            "eval_loss": loss,
            "wall_time_s": time.perf_counter() - self.t_start,
        }

    def maybe_checkpoint(self, step: int, *, force: bool = False) -> None:
        """Every ``checkpoint_every`` steps: rows first, then the engine state (module docstring)."""
        if not force and (step % self.pace.checkpoint_every or not self.outcome.ok):
            return
        st = self.state
        st.step, st.wall_time_s = step, time.perf_counter() - self.t_start
        st.core_seconds = self.core_seconds()
        self.flush()
        # a collective: every rank writes its own part (ZeRO shards); published with a manifest
        checkpoints.save_resume(self.training.engine, self.job.resume_dir, step, self.state_dict(), lead=self.lead)

    def flush(self) -> None:
        if self.lead:
            self.rows.write_evals(self.job.job_id, self.buffer)
        self.buffer.clear()

    def state_dict(self) -> dict[str, Any]:
        return asdict(self.state)

    def progress(self, step: int, *, done: bool = False) -> None:
        if self.report is None:
            return
        st = self.state
        wall = time.perf_counter() - self.t_start
        best = st.best_loss if math.isfinite(st.best_loss) else None
        tokens_seen = step * self.pace.tokens_per_step
        self.report(
            Progress(
                job_id=self.job.job_id,
                label=self.job.label,
                kind=self.job.kind,
                step=step,
                tokens_seen=tokens_seen,
                eval_loss=best if done else st.last_loss,
                train_loss=self.last_train_loss,
                best_eval_loss=best,
                tokens_per_s=tokens_seen / max(wall, 1e-9),
                saved_p=max(st.saved_p, default=0),
                done=done,
                status=self.outcome.status if done else "running",
                threads=self.threads.current,
            )
        )

    def core_seconds(self) -> float:
        """Thread-seconds the job has trained on, over every attempt (this rank's)."""
        return self.core_s_before + self.threads.core_seconds() - self.core_s_start

    def summarize(self, step: int) -> dict[str, Any]:
        """The summary row, once the job's kind has had its final word on the outcome."""
        self.strategy.conclude()
        st = self.state
        tokens_seen = step * self.pace.tokens_per_step
        best_ok = math.isfinite(st.best_loss)
        shape = self.job.shape
        assert shape is not None, "the planner resolves every job's shape"
        return {
            **self.key,
            "status": self.outcome.status,
            "reason": self.outcome.reason,
            "best_eval_loss": st.best_loss if best_ok else None,
            "best_step": st.best_step if best_ok else None,
            "best_tokens": st.best_step * self.pace.tokens_per_step if best_ok else None,
            "tokens_seen": tokens_seen,
            "data_chars": self.data_chars,
            "epochs": self.training.stream.epochs_after(step),
            "wall_time_s": time.perf_counter() - self.t_start,
            # every rank trains on its own CPUs alone (lending is for single-worker jobs)
            "core_seconds": self.core_seconds() * self.training.world,
            "flops": shape.flops_per_token(self.sweep.train.seq_len) * tokens_seen,
        }


def run_job(
    job: Job, sweep: Sweep, sweep_dir: str, *, report: ProgressSink | None = None, stop_after_steps: int | None = None
) -> dict[str, Any]:
    """Train ``job`` with its rows going to the store under ``sweep_dir``; its summary row."""
    layout = SweepLayout(sweep_dir)
    if not layout.contains(job.job_dir):
        raise ValueError(
            f"{job.label} was planned for another sweep folder ({without_query(job.job_dir)}), "
            f"not {without_query(layout.sweep_dir)}"
        )
    rows = Store(layout.store_root)
    return JobRunner.start(job, sweep, rows=rows, report=report).run(stop_after_steps=stop_after_steps)


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())
