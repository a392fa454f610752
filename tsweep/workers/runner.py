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

:class:`JobRunner` names the steps: ``train_step``, ``evaluate``, ``maybe_save_p``,
``maybe_checkpoint``, ``summarize`` and ``state_dict``; :meth:`JobRunner.run` is the loop. Where
rows and progress go is the caller's: a :class:`RowSink` (the store) and a ``ProgressSink``
(Tune's ``report``, or a list in tests).

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
  it out. The training-loss check runs every step, so a pre-training run that blows up between
  its sparse evaluations stops before it saves (and releases) a broken checkpoint p.

Ray-free: the Tune trainable and the tests drive it the same way.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import torch

from tsweep.core.cadence import (
    branch_start,
    eval_interval,
    min_eval_steps,
    patience_steps,
    pretrain_eval_steps,
    stable_cap_steps,
)
from tsweep.core.job import Job
from tsweep.core.layout import Files, SweepLayout, without_query
from tsweep.core.records import Progress
from tsweep.core.store import SCHEMA_VERSION, Store
from tsweep.data import SweepData
from tsweep.sweeps import Sweep
from tsweep.workers import checkpoints
from tsweep.workers.batches import BatchStream, to_sequences
from tsweep.workers.engine import build_engine, build_model, clip_gradients, ensure_distributed, rank_world
from tsweep.workers.pretrained import load_model
from tsweep.workers.schedule import WSD, cooldown_steps

log = logging.getLogger(__name__)

# A smoothed training loss (or, in pre-training, an eval loss) this far above its first value
# means the run diverged (tsweep's choice; a loss that rises 50% over its start never comes back
# within an early-stopped budget). A fine-tune's eval loss may climb that far while it over-fits.
DIVERGENCE_FACTOR = 1.5
# Smoothing of the training loss for the divergence check: an exponential moving average with
# this weight on the newest step (about the last 20 steps), so one noisy batch cannot trip it.
TRAIN_LOSS_EMA = 0.05

ProgressSink = Callable[[Progress], None]


class RowSink(Protocol):
    """Where a job's rows go (the store implements it)."""

    def write_evals(self, job_id: str, rows: list[Mapping]) -> Any: ...

    def write_summary(self, row: Mapping) -> Any: ...

    def drop_evals_after(self, job_id: str, step: int) -> int: ...

    def start_fresh(self, job_id: str) -> None: ...

    def damaged_job_ids(self) -> set[str]: ...

    def read_evals(self, job_ids: list[str] | None = None) -> Any: ...


class JobFailed(RuntimeError):
    """A job that cannot run (e.g. its parent checkpoint is missing); Tune retries it."""


@dataclass
class LoopState:
    """Everything the loop needs to resume besides the engine's own state."""

    step: int = 0
    best_loss: float = math.inf
    best_step: int = 0
    first_loss: float | None = None
    last_loss: float | None = None
    first_train_loss: float | None = None
    train_loss_ema: float | None = None
    saved_p: list[int] = field(default_factory=list)
    wall_time_s: float = 0.0
    # the schedule's cooldown window, and why a fine-tune's or scratch run's stable phase ended
    cool_start: int | None = None
    cool_end: int | None = None
    stable_end: str | None = None  # "patience" | "max_epochs"
    best_history: list[tuple[int, float]] = field(default_factory=list)  # (step, best so far) at evaluations


@torch.inference_mode()
def mean_eval_loss(engine, inputs: torch.Tensor, labels: torch.Tensor, batch: int) -> float:
    """Mean per-token loss over the whole eval set (token-weighted; ranks split it and sum)."""
    engine.eval()
    total, count = 0.0, 0
    dev = engine.device
    rank, world = rank_world()
    inputs, labels = inputs[rank::world], labels[rank::world]
    for i in range(0, len(inputs), batch):
        x, y = inputs[i : i + batch].to(dev), labels[i : i + batch].to(dev)
        logits = engine(input_ids=x).logits.float()
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.size(-1)), y[:, 1:].reshape(-1), ignore_index=-100, reduction="sum"
        )
        total += loss.item()
        count += int((y[:, 1:] != -100).sum())
    engine.train()
    if world > 1:
        t = torch.tensor([total, float(count)], dtype=torch.float64, device=dev)
        torch.distributed.all_reduce(t)
        total, count = float(t[0]), int(t[1])
    return total / max(count, 1)


def _full_state_dict(engine) -> dict[str, torch.Tensor] | None:
    """Full fp32 weights on the CPU; a collective under ZeRO-3 (sharded weights), after which
    only rank 0 holds them (the others get None)."""
    if engine.zero_optimization_partition_weights():
        state = engine._zero3_consolidated_16bit_state_dict()
    else:
        state = engine.module.state_dict()
    if state is None:
        return None
    return {k: (v.float() if v.is_floating_point() else v).detach().cpu().contiguous() for k, v in state.items()}


def save_weights(engine, dest: str, lead: bool) -> None:
    """The model at ``dest`` as a transformers folder (``save_pretrained``), published whole."""
    state = _full_state_dict(engine)  # every rank joins the gather
    if not lead:
        return
    with checkpoints.writing_dir(dest) as tmp:
        engine.module.save_pretrained(tmp, state_dict=state, safe_serialization=True)


def load_weights(model: torch.nn.Module, src: str) -> None:
    """Load a p-checkpoint written by :func:`save_weights` (safetensors: no code is unpickled),
    every byte checked against its manifest first."""
    from safetensors.torch import load_file

    with checkpoints.verified_dir(src) as local:
        model.load_state_dict(load_file(f"{local}/{checkpoints.WEIGHTS_FILE}"), strict=False)


def _loop_state(state: Mapping[str, Any]) -> LoopState | None:
    try:
        return LoopState(**state)
    except TypeError:
        return None


class JobRunner:
    """Trains one job to completion (or divergence); see the module docstring."""

    def __init__(
        self,
        job: Job,
        sweep: Sweep,
        *,
        rows: RowSink,
        report: ProgressSink | None = None,
        data: SweepData | None = None,
    ):
        self.job, self.sweep, self.rows, self.report = job, sweep, rows, report
        ensure_distributed()
        self.rank, self.world = rank_world()
        self.lead = self.rank == 0  # only rank 0 writes rows, reports and weights; every rank trains
        self.attempt = checkpoints.next_attempt(job) if self.lead else 0
        tr = sweep.train
        data = data or SweepData(sweep)
        self.seed = job.seed
        # a pre-training budget larger than its source repeats it (pretrain.max_epochs, checked at plan time)
        budget = min(job.data_tokens, data.available_tokens(job.corpus)) if job.kind == "pretrain" else job.data_tokens
        self.train_slice = data.train_tokens(job.corpus, budget)
        self.stream = BatchStream(self.train_slice.tokens, seq_len=tr.seq_len, batch_size=tr.batch_size, seed=self.seed)
        self.eval_x, self.eval_y = to_sequences(data.eval_tokens().tokens, tr.seq_len)
        self.schedule = WSD(warmup=tr.warmup_steps)
        self.vocab_size = data.vocab_size
        self.engine = self._new_engine()
        if self.lead:  # what DeepSpeed was given, beside the job's checkpoints (engine.config: its own copy)
            Files(job.deepspeed_file).write_text(
                job.deepspeed_file, json.dumps(self.engine.config, indent=1, sort_keys=True, default=str)
            )
        self.tokens_per_step = tr.batch_size * tr.seq_len
        self.steps_per_epoch = self.stream.n_seq / tr.batch_size
        self.early_stop = job.kind != "pretrain"
        self.interval = eval_interval(
            kind=job.kind,
            interval_steps=sweep.eval.interval_steps,
            steps_per_epoch=self.steps_per_epoch,
            per_epoch=sweep.eval.per_epoch,
            min_steps=min_eval_steps(
                min_interval_tokens=sweep.eval.min_interval_tokens, tokens_per_step=self.tokens_per_step
            ),
        )
        self.checkpoint_every = self.interval * tr.checkpoint_interval_evals
        if self.early_stop:
            self.patience_steps = patience_steps(
                steps_per_epoch=self.steps_per_epoch,
                patience_epochs=sweep.eval.patience_epochs,
                patience_tokens=sweep.eval.patience_tokens,
                tokens_per_step=self.tokens_per_step,
            )
            self.stable_cap = stable_cap_steps(
                steps_per_epoch=self.steps_per_epoch, max_epochs=tr.max_epochs, patience=self.patience_steps
            )
            self.min_steps = math.ceil(sweep.eval.min_epochs * self.steps_per_epoch)
            self.evals_at: set[int] = set()
        else:
            self.evals_at = pretrain_eval_steps(interval=self.interval, max_steps=job.max_steps)
            final = job.max_steps
            self.schedule.cool(branch_start(final, tr.cooldown), final)
        self.key = dict(
            schema_version=SCHEMA_VERSION,
            sweep=sweep.name,
            job_id=job.job_id,
            kind=job.kind,
            source=job.source,
            target=job.target,
            size=job.size,
            n_params=job.n_params,
            data_tokens=job.data_tokens,
            pretrain_tokens=job.pretrain_tokens,
            attempt=self.attempt,
        )
        self.buffer: list[dict] = []
        self.status, self.reason = "ok", None
        self.last_train_loss: float | None = None
        self.state = self._restore()
        if self.state.cool_start is not None:
            self.schedule.cool(self.state.cool_start, self.state.cool_end)
        self.pending_p = [p for p in job.checkpoints if p not in self.state.saved_p]
        # pre-training: the step at which each intermediate p's cooldown branch leaves the run
        self.branches = {
            branch_start(self._p_steps(p), tr.cooldown): p for p in self.pending_p if self._p_steps(p) < job.max_steps
        }
        self.t_start = time.perf_counter() - self.state.wall_time_s

    # ------------------------------------------------------------ set-up
    def _new_engine(self):
        return build_engine(
            self._model(self.vocab_size),
            self.sweep,
            lr=self.sweep.train.lr_for(self.job.n_params),
            schedule=self.schedule,
        )

    def _model(self, vocab_size: int) -> torch.nn.Module:
        job, tr = self.job, self.sweep.train
        if job.model is not None:  # an existing pre-trained model's architecture (and weights, to fine-tune)
            return load_model(job.model, job.revision, pretrained=job.kind == "finetune", seed=self.seed)
        model = build_model(job.shape, vocab_size, tr.seq_len, self.seed)
        if job.init_from is not None:
            if not checkpoints.published(job.init_from):
                raise JobFailed(f"{job.label}: parent checkpoint {without_query(job.init_from)} does not exist")
            try:
                load_weights(model, job.init_from)
            except checkpoints.CorruptCheckpoint as exc:
                # withdrawn, so that the driver re-runs the pre-training that makes it
                checkpoints.unpublish(job.init_from)
                raise JobFailed(f"{job.label}: parent checkpoint is corrupt and was withdrawn: {exc}") from None
        return model

    def _restore(self) -> LoopState:
        """Resume from the newest of the job's resume states that verifies and loads (a damaged
        one falls back to the one before), or start over and clear what an earlier attempt left.
        A shard of this job that does not parse (or was set aside) lost rows from before its
        checkpoint: resuming would leave that hole, so such a job starts over."""
        job = self.job
        self.rows.read_evals([job.job_id])  # finds this job's unreadable shards, if any
        damaged = job.job_id in self.rows.damaged_job_ids()
        resume = job.resume_dir
        if not damaged:
            state, self.engine = checkpoints.load_resume(self.engine, resume, self._new_engine)
            loop = _loop_state(state) if state is not None else None
            if state is not None and loop is None:  # a state this version cannot read: step 0
                log.warning("%s: resume state of another tsweep version; starting over", job.label)
                self.engine = self._new_engine()
            if loop is not None:
                dropped = self.rows.drop_evals_after(job.job_id, loop.step) if self.lead else 0
                log.info(
                    "%s: resumed at step %d (attempt %d, %d later eval shards dropped)",
                    job.label,
                    loop.step,
                    self.attempt,
                    dropped,
                )
                return loop
        if self.lead:
            if damaged:
                log.info("%s: unreadable shards; starting over instead of resuming", job.label)
            checkpoints.remove(resume)  # before start_fresh clears the quarantine entries
            self.rows.start_fresh(job.job_id)
        return LoopState()

    # ------------------------------------------------------------ the named steps
    def train_step(self, step: int) -> float:
        """One optimizer step on batch ``step``; returns its training loss."""
        x, y = self.stream.batch(step)
        if self.world > 1:
            x, y = x[self.rank :: self.world], y[self.rank :: self.world]
        dev = self.engine.device
        loss = self.engine(input_ids=x.to(dev), labels=y.to(dev)).loss
        self.engine.backward(loss)
        clip_gradients(self.engine, self.sweep)
        self.engine.step()
        return float(loss.detach())

    def evaluate(self, step: int) -> float:
        """Evaluate on the held-out set, buffer the row, update early stopping and divergence."""
        st, tr = self.state, self.sweep.train
        loss = mean_eval_loss(self.engine, self.eval_x, self.eval_y, batch=max(tr.batch_size, 64))
        self.buffer.append(
            {
                **self.key,
                "step": step,
                "tokens_seen": step * self.tokens_per_step,
                "epoch": self.stream.epochs_after(step),
                "train_loss": self.last_train_loss,
                "eval_loss": loss,
                "wall_time_s": time.perf_counter() - self.t_start,
            }
        )
        if st.first_loss is None:
            st.first_loss = loss
        if not math.isfinite(loss):
            self._diverged(f"non-finite eval loss at step {step}")
        elif not self.early_stop and step > tr.warmup_steps and loss > DIVERGENCE_FACTOR * st.first_loss:
            # pre-training only: a run over repeated data whose eval loss climbs while its training
            # loss falls is over-fitting, which patience ends and the best evaluation scores (its
            # divergence shows in the training loss, _check_train_loss)
            self._diverged(f"eval loss {loss:.3f} exceeds {DIVERGENCE_FACTOR}x the initial {st.first_loss:.3f}")
        if loss < st.best_loss:
            st.best_loss, st.best_step = loss, step
        st.last_loss = loss
        return loss

    def _p_steps(self, p: int) -> int:
        return max(1, round(p / self.tokens_per_step))

    def maybe_save_p(self, step: int) -> bool:
        """Pre-training: at a branch point, cool a copy of the run down to its checkpoint p and
        save it (then go back to the stable run); at the end, save the final p. True if saved."""
        if self.early_stop:
            return False
        p = self.branches.get(step)
        if p is not None and p in self.pending_p:
            self._branch(step, p)
            return True
        if step == self.job.max_steps and self.pending_p:
            for p in list(self.pending_p):  # the final p (and any p within the last step)
                self._save_p(p)
            return True
        return False

    def _branch(self, step: int, p: int) -> None:
        """Train steps [step, p_steps) with the LR decaying to zero, save the weights as p, and
        restore the stable run as it was at ``step`` (DeepSpeed's own checkpoint, so every ZeRO
        stage is restored exactly; the batches are a function of the step, so the stable run
        later trains on the same tokens)."""
        end = self._p_steps(p)
        snap = checkpoints.scratch_dir(self.job)
        self.engine.save_checkpoint(snap, tag="branch", save_latest=False)
        self.schedule.cool(step, end)
        for s in range(step, end):
            loss = self.train_step(s)
            if not math.isfinite(loss):
                self._diverged(f"non-finite training loss in the cooldown branch to p={p} at step {s + 1}")
                break
        if self.status == "ok":
            self._save_p(p)
        with checkpoints.weights_only(self.engine):
            self.engine.load_checkpoint(snap, tag="branch", load_module_strict=True)
        if self.world > 1:
            torch.distributed.barrier()  # every rank has read the snapshot before it goes
        if self.lead:
            checkpoints.remove(snap)
        self.schedule.stable()
        final = self.job.max_steps
        self.schedule.cool(branch_start(final, self.sweep.train.cooldown), final)

    def _save_p(self, p: int) -> None:
        save_weights(self.engine, self.job.p_checkpoint(p), self.lead)
        self.pending_p.remove(p)
        self.state.saved_p.append(p)

    def maybe_checkpoint(self, step: int, *, force: bool = False) -> None:
        """Every ``checkpoint_every`` steps: rows first, then the engine state (module docstring)."""
        if not force and (step % self.checkpoint_every or self.status != "ok"):
            return
        st = self.state
        st.step, st.wall_time_s = step, time.perf_counter() - self.t_start
        self.flush()
        # a collective: every rank writes its own part (ZeRO shards); published with a manifest
        checkpoints.save_resume(self.engine, self.job.resume_dir, step, self.state_dict(), lead=self.lead)

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
        self.report(
            Progress(
                job_id=self.job.job_id,
                label=self.job.label,
                kind=self.job.kind,
                step=step,
                tokens_seen=step * self.tokens_per_step,
                eval_loss=best if done else st.last_loss,
                train_loss=self.last_train_loss,
                best_eval_loss=best,
                tokens_per_s=step * self.tokens_per_step / max(wall, 1e-9),
                saved_p=max(st.saved_p, default=0),
                done=done,
                status=self.status if done else "running",
            )
        )

    def summarize(self, step: int) -> dict[str, Any]:
        st = self.state
        tokens_seen = step * self.tokens_per_step
        best_ok = math.isfinite(st.best_loss)
        if self.status == "ok" and st.stable_end == "max_epochs":
            self.status = "unconverged"
            self.reason = (
                f"still improving when its stable phase reached train.max_epochs = "
                f"{self.sweep.train.max_epochs:g} (best evaluation at epoch "
                f"{st.best_step / self.steps_per_epoch:.1f})"
            )
        return {
            **self.key,
            "status": self.status,
            "reason": self.reason,
            "best_eval_loss": st.best_loss if best_ok else None,
            "best_step": st.best_step if best_ok else None,
            "best_tokens": st.best_step * self.tokens_per_step if best_ok else None,
            "tokens_seen": tokens_seen,
            "data_chars": self.train_slice.chars,
            "epochs": self.stream.epochs_after(step),
            "wall_time_s": time.perf_counter() - self.t_start,
            "flops": self.job.shape.flops_per_token(self.sweep.train.seq_len) * tokens_seen,
        }

    # ------------------------------------------------------------ the loop
    def _diverged(self, reason: str) -> None:
        self.status, self.reason = "diverged", reason

    def _check_train_loss(self, step: int, loss: float) -> None:
        st = self.state
        if not math.isfinite(loss):
            self._diverged(f"non-finite training loss at step {step}")
            return
        if st.first_train_loss is None:
            st.first_train_loss = st.train_loss_ema = loss
        st.train_loss_ema += TRAIN_LOSS_EMA * (loss - st.train_loss_ema)
        if step > self.sweep.train.warmup_steps and st.train_loss_ema > DIVERGENCE_FACTOR * st.first_train_loss:
            self._diverged(
                f"smoothed training loss {st.train_loss_ema:.3f} exceeds {DIVERGENCE_FACTOR}x the first "
                f"{st.first_train_loss:.3f} at step {step}"
            )

    def _should_evaluate(self, step: int) -> bool:
        if not self.early_stop:
            return step in self.evals_at
        st = self.state
        return step % self.interval == 0 or (st.cool_end is not None and step == st.cool_end)

    def _end_stable_phase(self, step: int) -> None:
        """A fine-tune or scratch run: start the cooldown once its best evaluation improved by
        less than ``eval.min_delta`` over the last ``eval.patience_epochs`` (at least ``eval.patience_tokens``) (it passed its
        over-fitting minimum, or a model too small to memorise its data reached its plateau), or
        its stable phase hits the epoch cap."""
        st = self.state
        if st.cool_start is not None:
            return
        st.best_history.append((step, st.best_loss))
        then = [b for s, b in st.best_history if s <= step - self.patience_steps]
        if then:
            st.best_history = st.best_history[len(then) - 1 :]  # keep what a later check may need
        settled = bool(then) and then[-1] - st.best_loss < self.sweep.eval.min_delta * then[-1]
        if step >= self.min_steps and settled:
            st.stable_end = "patience"
        elif step >= self.stable_cap:
            st.stable_end = "max_epochs"
        else:
            return
        st.cool_start, st.cool_end = step, step + cooldown_steps(step, self.sweep.train.cooldown)
        self.schedule.cool(st.cool_start, st.cool_end)

    def _done(self, step: int) -> bool:
        if not self.early_stop:
            return step >= self.job.max_steps
        return self.state.cool_end is not None and step >= self.state.cool_end

    def run(self, *, stop_after_steps: int | None = None) -> dict[str, Any]:
        """Train to the end and return the summary row; ``stop_after_steps`` checkpoints and
        returns ``{}`` there instead (tests use it to stand for a kill)."""
        step = self.state.step
        if self.lead:
            checkpoints.clear_scratch(self.job)
            checkpoints.clear_stale_staging()
        if step == 0:
            self.evaluate(0)
            self.progress(0)
        self.engine.train()
        while not self._done(step) and self.status == "ok":
            self.last_train_loss = self.train_step(step)
            step += 1
            self._check_train_loss(step, self.last_train_loss)
            if self.status != "ok":
                break
            saved = self.maybe_save_p(step)
            evaluated = self._should_evaluate(step)
            if evaluated:
                self.evaluate(step)
                if self.early_stop:
                    self._end_stable_phase(step)
            if saved or evaluated or step % self.interval == 0:
                self.progress(step)
            if self._done(step):
                break
            self.maybe_checkpoint(step)
            if stop_after_steps is not None and step >= stop_after_steps:
                self.maybe_checkpoint(step, force=True)
                return {}
        self.flush()
        summary = self.summarize(step)
        if self.lead:
            self.rows.write_summary(summary)
            checkpoints.remove(self.job.resume_dir)
        self.progress(step, done=True)
        return summary


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
    return JobRunner(job, sweep, rows=rows, report=report).run(stop_after_steps=stop_after_steps)
