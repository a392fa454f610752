"""Expand a sweep into its job graph, with content-addressed job ids.

The graph, one builder function per kind of job, all around one constructor (``_Planner.job``)::

    pretrain(S, N)               _pretrain_job: one run per pre-training source S and size N; it
                                 saves an annealed checkpoint (a cooldown branch) at every p
      -> finetune(S, N, p, D_F)  _finetune_of_run: starts from pretrain(S, N)'s checkpoint at p
    finetune(M, rev, D_F)        _finetune_of_model: starts from an existing model M at a revision
    scratch(N, D)                _scratch_job: from random init on the target, the baseline L(N, D)
                                 (at M's own architecture too)
    replicates                   _replicate_jobs: cells of the grid re-run with another seed, from
                                 the same checkpoint or from a replicate pre-training run

A replicate is an ordinary job: its id hashes its replicate index r (a pre-training replicate's
trajectory does, so its fine-tunes' ids follow) and its seed lies in band r of SEED_BAND seeds.
The grid's jobs hash no index, so a ``replicates:`` section leaves every id and seed of the grid
as it was.

A job's id hashes exactly the fields that change its result (corpus specs, tokenizer, size,
budgets, training and eval settings, precision, seed), never the sweep's name or the resources,
so re-submitting a sweep finds its finished jobs and a result-relevant edit gets a new id.
A fine-tune hashes its parent's *trajectory* (everything but the list of checkpoints) plus p,
so adding a checkpoint re-runs the pre-training but keeps the fine-tunes already done. A rung the
sweep declares (``models:``) enters with its whole definition, and the sweep's own DeepSpeed keys
with those that can change a result; a sweep without either keeps the ids it had.
``tests/test_sweeps.py`` pins ids of the demo, so a change to what is hashed is a deliberate one.

Every job leaves here resolved: its shape, its folder under the sweep's layout and, for a
fine-tune of a pre-training run, the checkpoint it starts from.

Imports: ``tsweep.core`` (the job record, cadence, sizes), ``tsweep.sweeps`` (the sweep), and
from ``tsweep.workers`` only what counts N where the formula of ``tsweep.core.sizes`` cannot
(:func:`resolve_sizes`): a rung declared as a transformers config and an existing model's
architecture are counted on the model instantiated on the meta device, which takes torch and
transformers, so the workers count them in a child process and the planner imports neither.
``tsweep.data`` only for a declared transformers rung's vocabulary (its tokenizer).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from tsweep.core import cadence
from tsweep.core.dataspec import MixtureCorpus
from tsweep.core.job import RECIPE_VERSION, SCRATCH, Job, JobKind
from tsweep.core.layout import SweepLayout
from tsweep.core.sizes import ModelSize, get_size
from tsweep.sweeps import PretrainedModel, Sweep
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

    @property
    def replicates(self) -> list[Job]:
        """The jobs the sweep's ``replicates:`` adds to its grid."""
        return [j for j in self.jobs if j.replicate]

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


def _model_sizes(sweep: Sweep) -> dict[str, str]:
    """The size name (``hf:MODEL``) of every existing model the sweep fine-tunes -> the model."""
    return {size_name(sweep.pretrained[s].model): sweep.pretrained[s].model for s in sweep.model_sources}


def resolve_sizes(sweep: Sweep) -> dict[str, ModelSize]:
    """Every size the sweep's jobs train, by name: its ladder rungs, its declared rungs, and the
    architecture of each existing model it fine-tunes (the module docstring says why the last
    two are counted by worker code)."""
    declared = declared_rungs(sweep)
    return {name: size_of(name, declared) for name in [*sweep.model_sizes, *_model_sizes(sweep)]}


# A job's seed is the sweep's plus a content hash modulo SEED_BAND; replicate r adds r bands
# (tsweep's choice: 10,000 seeds a band, so the grid's jobs rarely share one, and a replicate's
# seed lies in a band of its own and never equals the seed of the run it repeats).
SEED_BAND = 10_000


def _seed(sweep: Sweep, key: str, replicate: int = 0) -> int:
    """A job's seed: the sweep's, plus ``replicate`` bands, offset by a content hash (so jobs
    differ, and re-runs agree)."""
    return sweep.train.seed + replicate * SEED_BAND + int(key[:8], 16) % SEED_BAND


def _again(replicate: int) -> dict[str, int]:
    """What a replicate adds to the hash of its id: nothing for a run of the grid, so that its id
    is the same with or without a ``replicates:`` section."""
    return {"replicate": replicate} if replicate else {}


def _digest(obj: dict[str, Any]) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _corpus_fingerprint(sweep: Sweep, name: str) -> dict[str, Any]:
    spec = sweep.corpus(name)
    out = {"name": name, "spec": spec.model_dump(mode="json")}
    if isinstance(spec, MixtureCorpus):
        out["parts"] = {p: _corpus_fingerprint(sweep, p) for p in sorted(spec.weights)}
    return out


def _common(sweep: Sweep) -> dict[str, Any]:
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


def _size_fingerprint(sweep: Sweep, size: str) -> dict[str, Any]:
    """A size's name, and for a rung the sweep declares its whole definition (so changing it
    changes its jobs)."""
    rung = sweep.models.get(size)
    return {"size": size, **({"rung": rung.model_dump(mode="json")} if rung is not None else {})}


def pretrain_trajectory(sweep: Sweep, source: str, size: str, tokens: int, replicate: int = 0) -> str:
    """The hash of a pre-training run's trajectory over ``tokens``: everything that shapes its
    weights (a replicate's seed too), not the checkpoints it saves (so a fine-tune's id survives
    a new checkpoint)."""
    return _digest(
        {
            **_common(sweep),
            "kind": "pretrain",
            "source": _corpus_fingerprint(sweep, source),
            **_size_fingerprint(sweep, size),
            "tokens": tokens,
            **_again(replicate),
        }
    )


def expand(sweep: Sweep, layout: SweepLayout | None = None) -> JobGraph:
    """The full job graph of a sweep, pre-training first (it gates everything else), every job
    resolved against the sweep's folder (default: ``sweep.layout()``)."""
    plan = _Planner.of(sweep, layout)
    jobs: list[Job] = []
    runs: dict[tuple[str, str], tuple[Job, str]] = {}  # (source, size) -> the grid's run, its trajectory
    if sweep.pretrain is not None:  # None only when no source is a corpus (the sweep checks it)
        for source in sweep.pretrain_sources:
            for size in sweep.model_sizes:
                traj = pretrain_trajectory(sweep, source, size, sweep.pretrain.tokens)
                run = _pretrain_job(plan, sweep.pretrain.tokens, sweep.pretrain.p_axis, source, size, traj)
                runs[source, size] = run, traj
                jobs.append(run)
                jobs += [
                    _finetune_of_run(plan, run, traj, p, d_f)
                    for p in sweep.pretrain.p_axis
                    for d_f in sweep.finetune_tokens
                ]
    for source in sweep.model_sources:
        spec = sweep.pretrained[source]
        jobs += [
            _finetune_of_model(plan, source, spec, rev, p, d_f)
            for rev, p in sorted(spec.revisions.items(), key=lambda kv: kv[1])
            for d_f in sweep.finetune_tokens
        ]
    models = _model_sizes(sweep)
    scratch_sizes = [*sweep.model_sizes, *(s for s in models if s not in sweep.model_sizes)]
    jobs += [_scratch_job(plan, size, models.get(size), d) for size in scratch_sizes for d in sweep.scratch_axis]
    jobs += _replicate_jobs(plan, runs)
    # Pre-training first, then the longest jobs: the order a scheduler should prefer (a stable sort).
    order = {"pretrain": 0, "finetune": 1, "scratch": 1}
    jobs.sort(key=lambda j: (order[j.kind], -j.est_flops))
    return JobGraph(sweep=sweep, jobs=tuple(jobs), by_id={j.job_id: j for j in jobs})


# ------------------------------------------------------------------ one builder per kind of job
def _pretrain_job(
    plan: _Planner, tokens: int, p_axis: tuple[int, ...], source: str, size: str, traj: str, replicate: int = 0
) -> Job:
    """Pre-training on ``source`` at ``size``: one pass over its ``tokens``, an annealed checkpoint
    (a cooldown branch off the stable run) at every p of ``p_axis`` (``tokens`` the last). Its id
    adds the checkpoints to its trajectory; its seed is the trajectory's alone, so an extra
    checkpoint leaves the run as it was."""
    branch_tokens = sum(round(plan.sweep.train.cooldown * p) for p in p_axis[:-1])
    return plan.job(
        kind="pretrain",
        job_id=_digest({"trajectory": traj, "checkpoints": p_axis}),
        seed_key=traj,
        source=source,
        size=size,
        data_tokens=tokens,
        branch_tokens=branch_tokens,
        checkpoints=p_axis,
        replicate=replicate,
        lineage=replicate,
    )


def _finetune_of_run(plan: _Planner, run: Job, traj: str, p: int, d_f: int, replicate: int = 0) -> Job:
    """A fine-tune on ``d_f`` target tokens from pre-training ``run``'s checkpoint at ``p`` tokens;
    its id hashes the run's trajectory, not the run's id (module docstring), and its replicate
    index when it is a re-run of its cell."""
    key = {"kind": "finetune", "trajectory": traj, "p": p, "tokens": d_f, **_again(replicate)}
    fid = _digest({**_common(plan.sweep), **key})
    return plan.job(
        kind="finetune",
        job_id=fid,
        seed_key=fid,
        source=run.source,
        size=run.size,
        data_tokens=d_f,
        pretrain_tokens=p,
        parent=run.job_id,
        init_from=run.p_checkpoint(p),
        replicate=replicate,
        lineage=run.lineage,
    )


def _replicate_jobs(plan: _Planner, runs: dict[tuple[str, str], tuple[Job, str]]) -> list[Job]:
    """The jobs of the sweep's ``replicates:`` (``runs``: the grid's pre-training runs and their
    trajectories by (source, size)).

    - Fine-tune replicate r of a cell: the grid's fine-tune again, from the grid's own checkpoint,
      with seed band r (another data order): its difference from the grid's run is run-to-run
      noise alone.
    - Pre-training replicate r: the grid's run again with seed band r (another initialisation
      and data order), saving only the checkpoints its cells start from (and its budget); its
      cells' fine-tunes start from it (lineage r), so their difference from the grid's cells
      carries the per-checkpoint offset as well.
    """
    sweep, reps, pretrain = plan.sweep, plan.sweep.replicates, plan.sweep.pretrain
    if pretrain is None or not reps.any:  # the sweep requires pre-training for any replicate
        return []
    jobs: list[Job] = []
    if (ft := reps.finetune) is not None:
        run, traj = runs[ft.source, ft.size]
        jobs += [_finetune_of_run(plan, run, traj, c.p, c.f, r) for r in range(1, ft.runs + 1) for c in ft.cells]
    if (pt := reps.pretrain) is not None:
        p_axis = tuple(sorted({c.p for c in pt.cells} | {pretrain.tokens}))
        for r in range(1, pt.runs + 1):
            traj = pretrain_trajectory(sweep, pt.source, pt.size, pretrain.tokens, replicate=r)
            run = _pretrain_job(plan, pretrain.tokens, p_axis, pt.source, pt.size, traj, replicate=r)
            jobs += [run, *(_finetune_of_run(plan, run, traj, c.p, c.f, r) for c in pt.cells)]
    return jobs


def _finetune_of_model(plan: _Planner, source: str, spec: PretrainedModel, revision: str, p: int, d_f: int) -> Job:
    """A fine-tune on ``d_f`` target tokens from an existing model at ``revision`` (``p`` tokens of
    pre-training behind it), at the model's own architecture."""
    key = {"kind": "finetune", "model": spec.model, "revision": revision, "p": p, "tokens": d_f}
    fid = _digest({**_common(plan.sweep), **key})
    return plan.job(
        kind="finetune",
        job_id=fid,
        seed_key=fid,
        source=source,
        size=size_name(spec.model),
        data_tokens=d_f,
        pretrain_tokens=p,
        model=spec.model,
        revision=revision,
    )


def _scratch_job(plan: _Planner, size: str, model: str | None, d: int) -> Job:
    """Training from random init on ``d`` target tokens at ``size`` (an existing ``model``'s
    architecture when ``size`` is one): a point of the baseline law L(N, D)."""
    sid = _digest({**_common(plan.sweep), "kind": "scratch", **_size_fingerprint(plan.sweep, size), "tokens": d})
    return plan.job(kind="scratch", job_id=sid, seed_key=sid, source=SCRATCH, size=size, data_tokens=d, model=model)


# ------------------------------------------------------------------ what every job shares
@dataclass(frozen=True)
class _Planner:
    """What every job of one sweep is built from: the sweep, its layout, the sizes its jobs train
    (resolved once), and the step arithmetic of its cost estimate."""

    sweep: Sweep
    layout: SweepLayout
    sizes: dict[str, ModelSize]
    tokens_per_step: int
    min_eval_steps: int

    @classmethod
    def of(cls, sweep: Sweep, layout: SweepLayout | None) -> _Planner:
        sizes = resolve_sizes(sweep)  # first: a bad rung or an unavailable model is the error to report
        tokens_per_step = sweep.train.batch_size * sweep.train.seq_len
        return cls(
            sweep=sweep,
            layout=layout or sweep.layout(),
            sizes=sizes,
            tokens_per_step=tokens_per_step,
            min_eval_steps=cadence.min_eval_steps(
                min_interval_tokens=sweep.eval.min_interval_tokens, tokens_per_step=tokens_per_step
            ),
        )

    def job(
        self,
        *,
        kind: JobKind,
        job_id: str,
        seed_key: str,
        source: str,
        size: str,
        data_tokens: int,
        branch_tokens: int = 0,
        checkpoints: tuple[int, ...] = (),
        pretrain_tokens: int = 0,
        parent: str | None = None,
        init_from: str | None = None,
        model: str | None = None,
        revision: str | None = None,
        replicate: int = 0,
        lineage: int = 0,
    ) -> Job:
        """The one constructor of a job: the fields its builder decides, and those that follow
        from the sweep (steps, seed, cost, resources, shape, folder)."""
        shape = self.sizes[size]
        steps = self.max_steps(kind, data_tokens)
        res = self.sweep.resources
        return Job(
            job_id=job_id,
            kind=kind,
            source=source,
            target=self.sweep.target,
            size=size,
            n_params=shape.n_params,
            data_tokens=data_tokens,
            pretrain_tokens=pretrain_tokens,
            parent=parent,
            checkpoints=checkpoints,
            model=model,
            revision=revision,
            max_steps=steps,
            seed=_seed(self.sweep, seed_key, replicate),
            replicate=replicate,
            lineage=lineage,
            tokens_per_step=self.tokens_per_step,
            est_flops=self.est_flops(shape, steps, kind, data_tokens, branch_tokens),
            cpus=res.cpus,
            gpus=gpu_share(shape.n_params) if res.pack and res.gpus == 1 and res.workers == 1 else res.gpus,
            workers=res.workers,
            shape=shape,
            job_dir=self.layout.job_dir(job_id),
            init_from=init_from,
        )

    def max_steps(self, kind: str, budget: int) -> int:
        """Steps a job over ``budget`` tokens runs at most (``tsweep.core.cadence.max_steps``)."""
        ev, tr = self.sweep.eval, self.sweep.train
        patience = cadence.patience_steps(
            steps_per_epoch=budget / self.tokens_per_step,
            patience_epochs=ev.patience_epochs,
            patience_tokens=ev.patience_tokens,
            tokens_per_step=self.tokens_per_step,
        )
        return cadence.max_steps(
            kind=kind,
            data_tokens=budget,
            tokens_per_step=self.tokens_per_step,
            max_epochs=tr.max_epochs,
            cooldown=tr.cooldown,
            patience=patience,
        )

    def est_flops(self, shape: ModelSize, steps: int, kind: str, data_tokens: int, branch_tokens: int) -> float:
        """Upper bound on a job's FLOPs: its steps (and pre-training's cooldown branches) and its
        evaluations, each a forward pass: a third of a training step's FLOPs per token."""
        ev = self.sweep.eval
        interval = cadence.eval_interval(
            kind=kind,
            interval_steps=ev.interval_steps,
            steps_per_epoch=data_tokens / self.tokens_per_step,
            per_epoch=ev.per_epoch,
            min_steps=self.min_eval_steps,
        )
        n_evals = 1 + (
            len(cadence.pretrain_eval_steps(interval=interval, max_steps=steps))
            if kind == "pretrain"
            else steps // interval + 1
        )
        trained = steps * self.tokens_per_step + branch_tokens
        return shape.flops_per_token(self.sweep.train.seq_len) * (trained + n_evals * ev.tokens / 3)
