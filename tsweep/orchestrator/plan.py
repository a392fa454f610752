"""Expand a sweep into its job graph, with content-addressed job ids.

The graph::

    pretrain(S, N)             one run per pre-training source S and size N, checkpoints at p
      -> finetune(S, N, p, D_F) starts from pretrain(S, N)'s checkpoint at p tokens
    scratch(N, D)              from random init on the target: the baseline law L(N, D)

A job's id hashes exactly the fields that change its result (corpus specs, tokenizer, size,
budgets, training and eval settings, precision, seed), never the sweep's name or the resources,
so re-submitting a sweep finds its finished jobs and a result-relevant edit gets a new id.
A fine-tune hashes its parent's *trajectory* (everything but the list of checkpoints) plus p,
so adding a checkpoint re-runs the pre-training but keeps the fine-tunes already done. A rung the
sweep declares (``models:``) enters with its whole definition, and the sweep's own DeepSpeed keys
with those that can change a result; a sweep without either keeps the ids it had.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace

from tsweep.core import cadence
from tsweep.core.cadence import eval_interval, pretrain_eval_steps
from tsweep.core.dataspec import MixtureCorpus
from tsweep.core.job import RECIPE_VERSION, SCRATCH, Job
from tsweep.core.layout import SweepLayout
from tsweep.core.sizes import ModelSize, get_size
from tsweep.sweeps import Sweep
from tsweep.workers.pretrained import HF_PREFIX, model_size, size_name
from tsweep.workers.rungs import declared_sizes

__all__ = ["Job", "JobGraph", "expand", "gpu_share", "size_of"]


@dataclass(frozen=True)
class JobGraph:
    sweep: Sweep
    jobs: tuple[Job, ...]
    by_id: dict[str, Job] = field(repr=False, compare=False)

    @property
    def pretrain(self) -> list[Job]:
        return [j for j in self.jobs if j.kind == "pretrain"]

    def children(self, job_id: str) -> list[Job]:
        return [j for j in self.jobs if j.parent == job_id]


# A model this size or larger keeps a whole GPU busy on its own; smaller ones share one, halving
# the share for each halving of N down to an eighth (tsweep's packing rule: an 8x smaller model's
# step cannot fill the device, and 8 processes per GPU is where context memory starts to bite).
FULL_GPU_PARAMS = 50_000_000


def gpu_share(n_params: int) -> float:
    """Fraction of one GPU a single-worker job of ``n_params`` gets when packing is on."""
    share = 1.0
    while share > 1 / 8 and n_params * 2 <= FULL_GPU_PARAMS * share:
        share /= 2
    return share


def size_of(name: str, declared: dict[str, ModelSize] | None = None) -> ModelSize:
    """A ladder rung, a rung the sweep declares (``declared``: :func:`declared_rungs`), or an
    existing model's architecture for ``hf:MODEL`` (resolved here, at plan time, so that workers
    never resolve sizes themselves)."""
    if declared and name in declared:
        return declared[name]
    return model_size(name[len(HF_PREFIX) :]) if name.startswith(HF_PREFIX) else get_size(name)


_size_of = size_of  # expand's own size_of closes over the sweep's declared rungs


def declared_rungs(sweep: Sweep) -> dict[str, ModelSize]:
    """The rungs ``sweep.models`` declares, checked against the tokenizer's vocabulary and the
    sequence length and counted (``tsweep.workers.rungs``); SweepError naming the field."""
    if not sweep.models:
        return {}
    vocab = 0
    if any(r.model_type is not None for r in sweep.models.values()):
        from tsweep.data.tokenizers import make_tokenizer

        vocab = make_tokenizer(sweep.tokenizer).vocab_size
    return declared_sizes(sweep.models, vocab_size=vocab, seq_len=sweep.train.seq_len)


def _seed(sweep: Sweep, key: str) -> int:
    """A job's seed: the sweep's, offset by a content hash (so jobs differ, and re-runs agree)."""
    return sweep.train.seed + int(key[:8], 16) % 10_000


def _digest(obj: dict) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _corpus_fingerprint(sweep: Sweep, name: str) -> dict:
    spec = sweep.corpus(name)
    out = {"name": name, "spec": spec.model_dump(mode="json")}
    if isinstance(spec, MixtureCorpus):
        out["parts"] = {p: _corpus_fingerprint(sweep, p) for p in sorted(spec.weights)}
    return out


def _common(sweep: Sweep) -> dict:
    return {
        "recipe": RECIPE_VERSION,
        "target": _corpus_fingerprint(sweep, sweep.target),
        "tokenizer": sweep.tokenizer.model_dump(mode="json"),
        "train": sweep.train.model_dump(mode="json"),
        "eval": sweep.eval.model_dump(mode="json"),
        "precision": sweep.deepspeed.precision,
        # the sweep's own DeepSpeed keys that can change a result; absent when it brings none, so
        # the ids of sweeps without them are what they were
        **({"deepspeed": sweep.deepspeed.result_config} if sweep.deepspeed.result_config else {}),
    }


def _size_fingerprint(sweep: Sweep, size: str) -> dict:
    """A size's name, and for a rung the sweep declares its whole definition (so changing it
    changes its jobs)."""
    rung = sweep.models.get(size)
    return {"size": size, **({"rung": rung.model_dump(mode="json")} if rung is not None else {})}


def pretrain_trajectory(sweep: Sweep, source: str, size: str) -> str:
    return _digest(
        {
            **_common(sweep),
            "kind": "pretrain",
            "source": _corpus_fingerprint(sweep, source),
            **_size_fingerprint(sweep, size),
            "tokens": sweep.pretrain.tokens,
        }
    )


def expand(sweep: Sweep, layout: SweepLayout | None = None) -> JobGraph:
    """The full job graph of a sweep, pre-training first (it gates everything else), every job
    resolved against the sweep's folder (default: ``sweep.layout()``)."""
    tr = sweep.train
    tokens_per_step = tr.batch_size * tr.seq_len
    res = sweep.resources
    jobs: list[Job] = []
    declared = declared_rungs(sweep)

    def size_of(name: str) -> ModelSize:
        return _size_of(name, declared)

    min_eval = cadence.min_eval_steps(
        min_interval_tokens=sweep.eval.min_interval_tokens, tokens_per_step=tokens_per_step
    )

    def est(size, steps: int, kind: str, data_tokens: int, branch_tokens: int = 0) -> float:
        """Upper bound on a job's FLOPs: its steps (and pre-training's cooldown branches) and its
        evaluations, each a forward pass: a third of a training step's FLOPs per token."""
        per_epoch = data_tokens / tokens_per_step
        interval = eval_interval(
            kind=kind,
            interval_steps=sweep.eval.interval_steps,
            steps_per_epoch=per_epoch,
            per_epoch=sweep.eval.per_epoch,
            min_steps=min_eval,
        )
        n_evals = 1 + (
            len(pretrain_eval_steps(interval=interval, max_steps=steps))
            if kind == "pretrain"
            else steps // interval + 1
        )
        trained = steps * tokens_per_step + branch_tokens
        return size_of(size).flops_per_token(tr.seq_len) * (trained + n_evals * sweep.eval.tokens / 3)

    def max_steps(kind: str, budget: int) -> int:
        patience = cadence.patience_steps(
            steps_per_epoch=budget / tokens_per_step,
            patience_epochs=sweep.eval.patience_epochs,
            patience_tokens=sweep.eval.patience_tokens,
            tokens_per_step=tokens_per_step,
        )
        return cadence.max_steps(
            kind=kind,
            data_tokens=budget,
            tokens_per_step=tokens_per_step,
            max_epochs=tr.max_epochs,
            cooldown=tr.cooldown,
            patience=patience,
        )

    branches = sum(round(tr.cooldown * p) for p in sweep.pretrain.p_axis[:-1]) if sweep.pretrain else 0

    common = dict(target=sweep.target, tokens_per_step=tokens_per_step, cpus=res.cpus, workers=res.workers)

    def gpus(size: str) -> float:
        if res.pack and res.gpus == 1 and res.workers == 1:
            return gpu_share(size_of(size).n_params)
        return res.gpus

    for source in sweep.pretrain_sources:
        for size in sweep.model_sizes:
            traj = pretrain_trajectory(sweep, source, size)
            pid = _digest({"trajectory": traj, "checkpoints": sweep.pretrain.p_axis})
            steps = max_steps("pretrain", sweep.pretrain.tokens)
            jobs.append(
                Job(
                    job_id=pid,
                    kind="pretrain",
                    source=source,
                    size=size,
                    n_params=size_of(size).n_params,
                    data_tokens=sweep.pretrain.tokens,
                    checkpoints=sweep.pretrain.p_axis,
                    max_steps=steps,
                    seed=_seed(sweep, traj),  # not the id: an extra checkpoint leaves the run as it was
                    est_flops=est(size, steps, "pretrain", sweep.pretrain.tokens, branches),
                    gpus=gpus(size),
                    **common,
                )
            )
            for p in sweep.pretrain.p_axis:
                for d_f in sweep.finetune_tokens:
                    fid = _digest({**_common(sweep), "kind": "finetune", "trajectory": traj, "p": p, "tokens": d_f})
                    steps_f = max_steps("finetune", d_f)
                    jobs.append(
                        Job(
                            job_id=fid,
                            kind="finetune",
                            source=source,
                            size=size,
                            n_params=size_of(size).n_params,
                            data_tokens=d_f,
                            pretrain_tokens=p,
                            parent=pid,
                            seed=_seed(sweep, fid),
                            max_steps=steps_f,
                            est_flops=est(size, steps_f, "finetune", d_f),
                            gpus=gpus(size),
                            **common,
                        )
                    )
    scratch_sizes = list(sweep.model_sizes)
    for source in sweep.model_sources:
        spec = sweep.pretrained[source]
        size = size_name(spec.model)
        if size not in scratch_sizes:
            scratch_sizes.append(size)
        for rev, p in sorted(spec.revisions.items(), key=lambda kv: kv[1]):
            for d_f in sweep.finetune_tokens:
                fid = _digest(
                    {**_common(sweep), "kind": "finetune", "model": spec.model, "revision": rev, "p": p, "tokens": d_f}
                )
                steps_f = max_steps("finetune", d_f)
                jobs.append(
                    Job(
                        job_id=fid,
                        kind="finetune",
                        source=source,
                        size=size,
                        n_params=size_of(size).n_params,
                        data_tokens=d_f,
                        pretrain_tokens=p,
                        model=spec.model,
                        revision=rev,
                        max_steps=steps_f,
                        seed=_seed(sweep, fid),
                        est_flops=est(size, steps_f, "finetune", d_f),
                        gpus=gpus(size),
                        **common,
                    )
                )
    for size in scratch_sizes:
        model = size[len(HF_PREFIX) :] if size.startswith(HF_PREFIX) else None
        for d in sweep.scratch_axis:
            sid = _digest({**_common(sweep), "kind": "scratch", **_size_fingerprint(sweep, size), "tokens": d})
            extra = {"model": model} if model else {}
            steps_s = max_steps("scratch", d)
            jobs.append(
                Job(
                    job_id=sid,
                    kind="scratch",
                    source=SCRATCH,
                    size=size,
                    n_params=size_of(size).n_params,
                    data_tokens=d,
                    max_steps=steps_s,
                    est_flops=est(size, steps_s, "scratch", d),
                    seed=_seed(sweep, sid),
                    gpus=gpus(size),
                    **extra,
                    **common,
                )
            )
    # Pre-training first, then the longest jobs: the order a scheduler should prefer.
    order = {"pretrain": 0, "finetune": 1, "scratch": 1}
    jobs.sort(key=lambda j: (order[j.kind], -j.est_flops))
    jobs = _resolve(jobs, layout or sweep.layout(), size_of)
    return JobGraph(sweep=sweep, jobs=tuple(jobs), by_id={j.job_id: j for j in jobs})


def _resolve(jobs: list[Job], layout: SweepLayout, size_of) -> list[Job]:
    """Each job with its shape, where it writes and (for a fine-tune of a pre-training run) the
    checkpoint it starts from."""
    out = [replace(j, shape=size_of(j.size), job_dir=layout.job_dir(j.job_id)) for j in jobs]
    by_id = {j.job_id: j for j in out}
    return [replace(j, init_from=by_id[j.parent].p_checkpoint(j.pretrain_tokens)) if j.parent else j for j in out]
