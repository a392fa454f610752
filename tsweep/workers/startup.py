"""A job's start-up: everything it reads and writes before its first step, in this order.

1. The process group (a one-rank group when the job runs alone) and this rank; rank 0 counts
   the attempt (``attempts`` beside the job's checkpoints: the ``attempt`` column of its rows).
2. Its data: the training slice (a pre-training budget larger than its source repeats it), the
   deterministic batch stream over it (``tsweep.workers.batches``) and the held-out target set.
3. Its model and engine: a rung's seeded random init, a hub model's architecture (with its
   weights, for a fine-tune of it), or the parent's p-checkpoint, every byte checked against its
   manifest (missing: :class:`JobFailedError`, which Tune retries; corrupt: also withdrawn, so
   that the driver re-runs the pre-training that makes it). Rank 0 writes the DeepSpeed config
   the engine was given, ``deepspeed.json``, beside the job's checkpoints.
4. Its loop state: the newest resume state that verifies and loads (a damaged one falls back to
   the one before), with the job's eval shards written after it deleted from the store, so rows
   are never duplicated; or, with none, or with a shard of this job the store cannot read (a
   hole in its rows that resuming would keep), a fresh start: resume states removed, the job's
   rows cleared.
5. What a killed earlier attempt left on this node: a pre-training branch's snapshot, and the
   staging folders of dead processes.

The result, :class:`Started`, holds no open I/O: the runner (``tsweep.workers.runner``) and the
job's kind (``tsweep.workers.kinds``) take it from there.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import torch

from tsweep.core.cadence import eval_interval, min_eval_steps
from tsweep.core.job import Job
from tsweep.core.layout import Files, without_query
from tsweep.data import SweepData
from tsweep.sweeps import Sweep
from tsweep.workers import checkpoints
from tsweep.workers.batches import BatchStream, to_sequences
from tsweep.workers.engine import build_engine, build_model, ensure_distributed, rank_world
from tsweep.workers.pretrained import load_model
from tsweep.workers.schedule import WSD
from tsweep.workers.state import LoopState, loop_state
from tsweep.workers.training import Training

if TYPE_CHECKING:
    from deepspeed import DeepSpeedEngine

log = logging.getLogger(__name__)

EngineBuilder = Callable[[], "DeepSpeedEngine"]


class JobFailedError(RuntimeError):
    """A job that cannot run (e.g. its parent checkpoint is missing); Tune retries it."""


class StoredRows(Protocol):
    """What the start-up needs of the store: this job's rows, read, trimmed or cleared."""

    def read_evals(self, job_ids: list[str] | None = None) -> Any: ...

    def damaged_job_ids(self) -> set[str]: ...

    def drop_evals_after(self, job_id: str, step: int) -> int: ...

    def start_fresh(self, job_id: str) -> None: ...


@dataclass(frozen=True)
class Pace:
    """A job's steps in tokens and epochs, and how often it is evaluated and checkpointed."""

    tokens_per_step: int
    steps_per_epoch: float
    interval: int  # steps between evaluations (pre-training: the first; then doubling)
    checkpoint_every: int  # steps between resume states

    @classmethod
    def of(cls, job: Job, sweep: Sweep, n_seq: int) -> Pace:
        tr, ev = sweep.train, sweep.eval
        tokens_per_step = tr.batch_size * tr.seq_len
        steps_per_epoch = n_seq / tr.batch_size
        interval = eval_interval(
            kind=job.kind,
            interval_steps=ev.interval_steps,
            steps_per_epoch=steps_per_epoch,
            per_epoch=ev.per_epoch,
            min_steps=min_eval_steps(min_interval_tokens=ev.min_interval_tokens, tokens_per_step=tokens_per_step),
        )
        return cls(tokens_per_step, steps_per_epoch, interval, interval * tr.checkpoint_interval_evals)


@dataclass(frozen=True)
class Started:
    """A job ready for its first (or resumed) step."""

    job: Job
    sweep: Sweep
    training: Training
    schedule: WSD  # the engine's LR schedule, whose cooldown window the job's kind moves
    state: LoopState
    pace: Pace
    attempt: int
    data_chars: int  # characters behind the training slice (the summary's ``data_chars``)


def start(job: Job, sweep: Sweep, *, rows: StoredRows, data: SweepData | None = None) -> Started:
    """Run the start-up of ``job`` (module docstring) on every rank of its group."""
    ensure_distributed()
    rank, world = rank_world()
    lead = rank == 0  # only rank 0 writes rows, reports and weights; every rank trains
    attempt = checkpoints.next_attempt(job) if lead else 0
    data = data or SweepData(sweep)
    train_slice = data.train_tokens(job.corpus, _train_budget(job, data))
    stream = BatchStream(
        train_slice.tokens, seq_len=sweep.train.seq_len, batch_size=sweep.train.batch_size, seed=job.seed
    )
    eval_x, eval_y = to_sequences(data.eval_tokens().tokens, sweep.train.seq_len)
    schedule = WSD(warmup=sweep.train.warmup_steps)
    build = _engine_builder(job, sweep, data.vocab_size, schedule)
    engine = build()
    if lead:
        _write_deepspeed_config(job, engine)
    state, engine = restore(job, rows, engine, build, lead=lead, attempt=attempt)
    if lead:
        _clear_leftovers(job)
    training = Training(engine, sweep, stream, eval_x, eval_y, rank, world)
    return Started(job, sweep, training, schedule, state, Pace.of(job, sweep, stream.n_seq), attempt, train_slice.chars)


def _train_budget(job: Job, data: SweepData) -> int:
    """Tokens to train on: a pre-training budget larger than its source repeats it
    (``pretrain.max_epochs``, checked at plan time)."""
    if job.kind == "pretrain":
        return min(job.data_tokens, data.available_tokens(job.corpus))
    return job.data_tokens


def _clear_leftovers(job: Job) -> None:
    """What killed attempts left on this node (module docstring, step 5); none is in use now."""
    checkpoints.clear_scratch(job)
    checkpoints.clear_stale_staging()


# ------------------------------------------------------------ model and engine
def _engine_builder(job: Job, sweep: Sweep, vocab_size: int, schedule: WSD) -> EngineBuilder:
    """Builds a fresh engine of the job's initial model (again after a resume that failed part-way)."""

    def build() -> DeepSpeedEngine:
        return build_engine(
            _model(job, sweep, vocab_size), sweep, lr=sweep.train.lr_for(job.n_params), schedule=schedule
        )

    return build


def _model(job: Job, sweep: Sweep, vocab_size: int) -> torch.nn.Module:
    """The job's initial model: an existing pre-trained model's architecture (and weights, to
    fine-tune), or a rung's, randomly initialised or loaded from the parent's p-checkpoint."""
    if job.model is not None:
        return load_model(job.model, job.revision, pretrained=job.kind == "finetune", seed=job.seed)
    assert job.shape is not None, "the planner gives every job a rung or a model"
    model = build_model(job.shape, vocab_size, sweep.train.seq_len, job.seed)
    if job.init_from is not None:
        _load_parent(model, job, job.init_from)
    return model


def _load_parent(model: torch.nn.Module, job: Job, parent: str) -> None:
    if not checkpoints.published(parent):
        raise JobFailedError(f"{job.label}: parent checkpoint {without_query(parent)} does not exist")
    try:
        checkpoints.load_weights(model, parent)
    except checkpoints.CorruptCheckpointError as exc:
        # withdrawn, so that the driver re-runs the pre-training that makes it
        checkpoints.unpublish(parent)
        raise JobFailedError(f"{job.label}: parent checkpoint is corrupt and was withdrawn: {exc}") from None


def _write_deepspeed_config(job: Job, engine: DeepSpeedEngine) -> None:
    """What DeepSpeed was given, beside the job's checkpoints (``engine.config``: its own copy)."""
    text = json.dumps(engine.config, indent=1, sort_keys=True, default=str)
    Files(job.deepspeed_file).write_text(job.deepspeed_file, text)


# ------------------------------------------------------------ loop state
def restore(
    job: Job, rows: StoredRows, engine: DeepSpeedEngine, rebuild: EngineBuilder, *, lead: bool, attempt: int
) -> tuple[LoopState, DeepSpeedEngine]:
    """Resume from the newest of the job's resume states that verifies and loads, or start over
    and clear what an earlier attempt left (module docstring, step 4); the loop state and the
    engine, ``engine`` or a rebuilt one."""
    rows.read_evals([job.job_id])  # finds this job's unreadable shards, if any
    damaged = job.job_id in rows.damaged_job_ids()
    if not damaged:
        loop, engine = _resume(job, engine, rebuild)
        if loop is not None:
            dropped = rows.drop_evals_after(job.job_id, loop.step) if lead else 0
            log.info(
                "%s: resumed at step %d (attempt %d, %d later eval shards dropped)",
                job.label,
                loop.step,
                attempt,
                dropped,
            )
            return loop, engine
    if lead:
        _start_over(job, rows, damaged)
    return LoopState(), engine


def _resume(job: Job, engine: DeepSpeedEngine, rebuild: EngineBuilder) -> tuple[LoopState | None, DeepSpeedEngine]:
    """The loop state of the newest usable resume state, loaded into the engine; None if none."""
    state, engine = checkpoints.load_resume(engine, job.resume_dir, rebuild)
    if state is None:
        return None, engine
    loop = loop_state(state)
    if loop is None:  # a state this version cannot read: step 0
        log.warning("%s: resume state of another tsweep version; starting over", job.label)
        return None, rebuild()
    return loop, engine


def _start_over(job: Job, rows: StoredRows, damaged: bool) -> None:
    if damaged:
        log.info("%s: unreadable shards; starting over instead of resuming", job.label)
    checkpoints.remove(job.resume_dir)  # before start_fresh clears the quarantine entries
    rows.start_fresh(job.job_id)
