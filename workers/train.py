"""One job's training and evaluation: pre-train, fine-tune or from-scratch, on a DeepSpeed engine.

The recipe follows Hernandez et al. 2021 (sec. 2): every run is evaluated on one fixed held-out
target set and its result is its best held-out loss (early stopping, ``eval.patience``). A
pre-training run trains one pass over its source budget and saves weights at each checkpoint
token count p (Barnett 2024's p axis from one run); a fine-tune starts from those weights with a
fresh optimizer and trains epochs over exactly D_F target tokens.

When evaluations happen (``workers.cadence.eval_steps``): an early-stopped run (fine-tune,
scratch) is evaluated every ``eval.interval_steps`` steps (at least once per epoch), since its
result *is* its best eval. A pre-training run is never early-stopped, so it is evaluated only where its loss curve is
read: at step 0, at doubling step counts from ``interval_steps`` (evenly spaced on the log-token
axis the laws use) and at its end. Its loss at a checkpoint p is the first evaluation of every
fine-tune from p (same weights, same eval set), so it is not measured twice. The eval share of
a pre-training run thus shrinks as the run grows instead of staying a fixed fraction; progress
is still reported every interval and as soon as a checkpoint p is saved (the scheduler releases
that checkpoint's fine-tunes on this report).

Fault tolerance, the why of the order of operations:
- Every ``train.checkpoint_interval_evals`` eval intervals the buffered eval rows are flushed to
  the store *first*, then the engine state is saved. A job killed in between resumes from the
  older checkpoint and deletes the shards written after it, so rows are never duplicated or lost.
- A resumed job sees the same batches (``workers.batches``) and restores the early-stopping
  state, so its result matches an uninterrupted run within noise.
- A non-finite loss, or an eval loss or smoothed training loss far above its first value,
  ends the job as ``diverged`` with the reason in the store; the sweep goes on and fits leave
  it out. The training-loss check runs every step, so a pre-training run that blows up between
  its sparse evaluations stops before it saves (and releases) a broken checkpoint p.

Ray-free: ``run_job`` is called by the Tune trainable and directly by tests.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from orchestrator.layout import SweepLayout
from orchestrator.plan import Job
from orchestrator.store import SCHEMA_VERSION, Store
from sweeps.schema import Sweep
from workers.batches import BatchStream, to_sequences
from workers.cadence import eval_steps
from workers.engine import build_engine, build_model, clip_gradients, ensure_distributed
from workers.pretrained import load_model
from workers.sizes import get_size

log = logging.getLogger(__name__)

# An eval loss (or smoothed training loss) this far above its first value means the run diverged
# (tsweep's choice; a loss that rises 50% over its start never comes back within an
# early-stopped budget).
DIVERGENCE_FACTOR = 1.5
# Smoothing of the training loss for the divergence check: an exponential moving average with
# this weight on the newest step (about the last 20 steps), so one noisy batch cannot trip it.
TRAIN_LOSS_EMA = 0.05


class JobFailed(RuntimeError):
    """A job that cannot run (e.g. its parent checkpoint is missing); Tune retries it."""


@dataclass
class _State:
    step: int = 0
    best_loss: float = math.inf
    best_step: int = 0
    bad_evals: int = 0
    first_loss: float | None = None
    last_loss: float | None = None
    first_train_loss: float | None = None
    train_loss_ema: float | None = None
    saved_p: list[int] = field(default_factory=list)
    wall_time_s: float = 0.0


def _attempt(layout: SweepLayout, job_id: str) -> int:
    """Count starts of this job (0 for the first); kept beside its checkpoints."""
    path = os.path.join(layout.job_dir(job_id), "attempts")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    n = int(open(path).read() or 0) if os.path.exists(path) else 0
    with open(path + ".tmp", "w") as f:
        f.write(str(n + 1))
    os.replace(path + ".tmp", path)
    return n


@torch.inference_mode()
def evaluate(engine, inputs: torch.Tensor, labels: torch.Tensor, batch: int) -> float:
    """Mean per-token loss over the whole eval set (token-weighted; ranks split it and sum)."""
    engine.eval()
    total, count = 0.0, 0
    dev = engine.device
    rank, world = _rank_world()
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


def _rank_world() -> tuple[int, int]:
    d = torch.distributed
    if d.is_available() and d.is_initialized():
        return d.get_rank(), d.get_world_size()
    return 0, 1


def _save_weights(engine, path: str, lead: bool) -> None:
    """Full weights at a checkpoint token count; a collective under ZeRO-3 (sharded weights)."""
    if engine.zero_optimization_partition_weights():
        state = engine._zero3_consolidated_16bit_state_dict()  # noqa: SLF001 (DeepSpeed's gather)
    else:
        state = engine.module.state_dict()
    if not lead:
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    torch.save({k: (v.float() if v.is_floating_point() else v).detach().cpu() for k, v in state.items()}, tmp)
    os.replace(tmp, path)  # fine-tunes are released when this file exists: never half-written


def run_job(
    job: Job,
    sweep: Sweep,
    sweep_dir: str,
    *,
    report: Callable[[dict], None] | None = None,
    stop_after_steps: int | None = None,
) -> dict:
    """Train one job to completion (or divergence) and return its summary row.

    ``report`` (Tune's ``tune.report``) receives a metrics dict every eval interval, after every
    evaluation and as soon as a checkpoint p is saved;
    ``stop_after_steps`` stops early without a summary (used by tests to simulate a kill).
    """
    from workers.data import SweepData

    layout = SweepLayout(sweep_dir)
    store = Store(layout.store_root)
    ensure_distributed()
    rank, world = _rank_world()
    lead = rank == 0  # only rank 0 writes rows, reports and weights; every rank trains
    attempt = _attempt(layout, job.job_id) if lead else 0
    size = get_size(job.size)
    tr = sweep.train
    data = SweepData(sweep)
    seed = tr.seed + int(job.job_id[:8], 16) % 10_000

    train_slice = data.train_tokens(job.corpus, job.data_tokens)
    stream = BatchStream(train_slice.tokens, seq_len=tr.seq_len, batch_size=tr.batch_size, seed=seed)
    eval_x, eval_y = to_sequences(data.eval_tokens().tokens, tr.seq_len)

    if job.model is not None:  # an existing pre-trained model's architecture (and weights, to fine-tune)
        model = load_model(job.model, job.revision, pretrained=job.kind == "finetune", seed=seed)
    else:
        model = build_model(size, data.vocab_size, tr.seq_len, seed)
    if job.kind == "finetune" and job.parent is not None:
        src = layout.p_checkpoint(job.parent, job.pretrain_tokens)
        if not os.path.exists(src):
            raise JobFailed(f"{job.label}: parent checkpoint {src} does not exist")
        model.load_state_dict(torch.load(src, map_location="cpu", weights_only=True))
    engine = build_engine(model, sweep, lr=tr.lr_for(size.n_params), total_steps=job.max_steps)

    st = _State()
    resume = layout.resume_dir(job.job_id)
    # A shard of this job set aside as unreadable lost rows from before its checkpoint: resuming
    # would leave that hole, and the quarantine entry would keep the job unfinished for good, so
    # it starts over. (Checked before ``latest`` on every rank: see the ordering below.)
    damaged = job.job_id in store.damaged_job_ids()
    if os.path.exists(os.path.join(resume, "latest")) and not damaged:
        _, client = engine.load_checkpoint(resume, load_module_strict=True)
        st = _State(**client["tsweep_state"])
        dropped = store.drop_evals_after(job.job_id, st.step) if lead else 0
        log.info("%s: resumed at step %d (attempt %d, %d later eval shards dropped)", job.label, st.step, attempt, dropped)
    elif lead:
        if damaged:
            log.info("%s: unreadable shards in quarantine; starting over instead of resuming", job.label)
        shutil.rmtree(resume, ignore_errors=True)  # before start_fresh clears the quarantine entries
        store.start_fresh(job.job_id)

    steps_per_epoch = max(1, math.ceil(stream.n_seq / tr.batch_size))
    early_stop = job.kind != "pretrain"
    interval = min(sweep.eval.interval_steps, steps_per_epoch) if early_stop else sweep.eval.interval_steps
    tokens_per_step = tr.batch_size * tr.seq_len
    pending_p = [p for p in job.checkpoints if p not in st.saved_p]
    evals_at = eval_steps(kind=job.kind, interval=interval, max_steps=job.max_steps)
    checkpoint_every = interval * tr.checkpoint_interval_evals
    key = dict(
        schema_version=SCHEMA_VERSION, sweep=sweep.name, job_id=job.job_id, kind=job.kind, source=job.source,
        target=job.target, size=job.size, n_params=job.n_params, data_tokens=job.data_tokens,
        pretrain_tokens=job.pretrain_tokens, attempt=attempt,
    )
    rows: list[dict] = []
    status, reason = "ok", None
    t_start = time.perf_counter() - st.wall_time_s
    last_train_loss = None
    dev = engine.device

    def flush() -> None:
        if lead:
            store.write_evals(job.job_id, rows)
        rows.clear()

    def eval_now(step: int) -> float:
        nonlocal status, reason
        loss = evaluate(engine, eval_x, eval_y, batch=max(tr.batch_size, 64))
        wall = time.perf_counter() - t_start
        rows.append({**key, "step": step, "tokens_seen": step * tokens_per_step,
                     "epoch": stream.epochs_after(step), "train_loss": last_train_loss, "eval_loss": loss,
                     "wall_time_s": wall})
        if st.first_loss is None:
            st.first_loss = loss
        if not math.isfinite(loss):
            status, reason = "diverged", f"non-finite eval loss at step {step}"
        elif step > tr.warmup_steps and loss > DIVERGENCE_FACTOR * st.first_loss:
            status, reason = "diverged", f"eval loss {loss:.3f} exceeds {DIVERGENCE_FACTOR}x the initial {st.first_loss:.3f}"
        if loss < st.best_loss:
            st.best_loss, st.best_step, st.bad_evals = loss, step, 0
        else:
            st.bad_evals += 1
        st.last_loss = loss
        return loss

    def progress(step: int) -> None:
        if report is not None:
            wall = time.perf_counter() - t_start
            report({"job_id": job.job_id, "label": job.label, "kind": job.kind, "step": step,
                    "tokens_seen": step * tokens_per_step, "eval_loss": st.last_loss, "train_loss": last_train_loss,
                    "best_eval_loss": st.best_loss, "tokens_per_s": step * tokens_per_step / max(wall, 1e-9),
                    "saved_p": max(st.saved_p, default=0), "done": False})

    def checkpoint(step: int) -> None:
        st.step, st.wall_time_s = step, time.perf_counter() - t_start
        flush()  # rows first: see the module docstring
        engine.save_checkpoint(resume, tag=f"step{step}", client_state={"tsweep_state": st.__dict__.copy()})
        _prune_old_tags(resume, keep=f"step{step}")

    if st.step == 0 and not rows:
        eval_now(0)
        progress(0)
    step = st.step
    engine.train()
    while step < job.max_steps and status == "ok":
        x, y = stream.batch(step)
        if world > 1:
            x, y = x[rank::world], y[rank::world]
        loss = engine(input_ids=x.to(dev), labels=y.to(dev)).loss
        engine.backward(loss)
        clip_gradients(engine, sweep)
        engine.step()
        step += 1
        last_train_loss = float(loss.detach())
        if not math.isfinite(last_train_loss):
            status, reason = "diverged", f"non-finite training loss at step {step}"
            break
        if st.first_train_loss is None:
            st.first_train_loss = st.train_loss_ema = last_train_loss
        st.train_loss_ema += TRAIN_LOSS_EMA * (last_train_loss - st.train_loss_ema)
        if step > tr.warmup_steps and st.train_loss_ema > DIVERGENCE_FACTOR * st.first_train_loss:
            status, reason = "diverged", (f"smoothed training loss {st.train_loss_ema:.3f} exceeds "
                                          f"{DIVERGENCE_FACTOR}x the first {st.first_train_loss:.3f} at step {step}")
            break
        saved = False
        while pending_p and step * tokens_per_step >= pending_p[0]:
            p = pending_p.pop(0)
            _save_weights(engine, layout.p_checkpoint(job.job_id, p), lead)
            st.saved_p.append(p)
            saved = True
        if step in evals_at:
            eval_now(step)
        if saved or step in evals_at or step % interval == 0:
            progress(step)
        if early_stop and st.bad_evals >= sweep.eval.patience:
            break
        if step % checkpoint_every == 0 and step < job.max_steps and status == "ok":
            checkpoint(step)
        if stop_after_steps is not None and step >= stop_after_steps:
            checkpoint(step)
            return {}
    flush()
    tokens_seen = step * tokens_per_step
    best_ok = math.isfinite(st.best_loss)
    summary = {
        **key,
        "status": status,
        "reason": reason,
        "best_eval_loss": st.best_loss if best_ok else None,
        "best_step": st.best_step if best_ok else None,
        "best_tokens": st.best_step * tokens_per_step if best_ok else None,
        "tokens_seen": tokens_seen,
        "data_chars": train_slice.chars,
        "epochs": stream.epochs_after(step),
        "wall_time_s": time.perf_counter() - t_start,
        "flops": size.flops_per_token(tr.seq_len) * tokens_seen,
    }
    if lead:
        store.write_summary(summary)
        shutil.rmtree(resume, ignore_errors=True)
    if report is not None:
        report({"job_id": job.job_id, "label": job.label, "kind": job.kind, "step": step, "tokens_seen": tokens_seen,
                "eval_loss": st.best_loss, "best_eval_loss": st.best_loss, "status": status,
                "saved_p": max(st.saved_p, default=0), "done": True})
    return summary


def _prune_old_tags(resume: str, keep: str) -> None:
    for name in os.listdir(resume):
        full = os.path.join(resume, name)
        if os.path.isdir(full) and name != keep:
            shutil.rmtree(full, ignore_errors=True)

