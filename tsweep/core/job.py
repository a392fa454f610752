"""The job record: one training run of a sweep, resolved at plan time.

The job graph (built by ``tsweep.orchestrator.plan``)::

    pretrain(S, N)              one run per pre-training source S and size N; it saves an
                                annealed checkpoint at every p (Barnett's p axis)
      -> finetune(S, N, p, D_F) starts from pretrain(S, N)'s checkpoint at p tokens
    scratch(N, D)               from random init on the target: the baseline law L(N, D)

Replicates are ordinary jobs with another seed (``replicate`` r >= 1): a fine-tune re-run from the
grid's checkpoint, or a pre-training run re-run with the fine-tunes of some of its cells (their
``lineage`` is r too).

A :class:`Job` carries everything a worker needs and nothing it must work out: its size's shape,
where it starts from (``init_from``: the parent's checkpoint at p, or ``model`` at ``revision``)
and where it writes (``job_dir``). Its ``job_id`` is a content address over the fields that
change its result (see the planner), never over paths or resources, so the same job under
another storage root or on other hardware has the same id.

Ray-free and torch-free: the record travels through Tune's trial config as a plain dict
(:meth:`Job.to_dict` / :meth:`Job.from_dict`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from tsweep.core.layout import JobLayout
from tsweep.core.sizes import ModelSize
from tsweep.core.units import short_tokens

SCRATCH = "scratch"  # the "source" of from-scratch runs
JobKind = Literal["pretrain", "finetune", "scratch"]
JOB_KINDS: tuple[str, ...] = ("pretrain", "finetune", "scratch")

# Bump when the training recipe changes results for the same config, so old results are not
# reused (job ids hash it).
# 2: fused tanh-GELU; pre-training evaluated at doubling steps.
# 3: warmup-stable-decay everywhere: annealed p-checkpoints (cooldown branches), fine-tunes and
#    scratch runs stopped on patience in epochs after at least one epoch, then cooled down.
RECIPE_VERSION = 3


@dataclass(frozen=True, kw_only=True)
class Job:
    """One run; see the module docstring. The fields after ``workers`` are resolved by the planner:
    the shape to build and the paths (the names under ``job_dir`` are :attr:`layout`'s)."""

    job_id: str
    kind: JobKind
    source: str  # pre-training source; "scratch" for scratch jobs
    target: str
    size: str  # size-ladder name, or "hf:MODEL" for an existing model's architecture
    n_params: int  # non-embedding parameters N (Kaplan et al. 2020, sec. 2.1)
    data_tokens: int  # pretrain budget | D_F | D
    pretrain_tokens: int = 0  # p, for fine-tunes
    parent: str | None = None  # pretrain job id, for fine-tunes of a pre-training run
    checkpoints: tuple[int, ...] = ()  # p values a pretrain job saves
    model: str | None = None  # an existing pre-trained model (hub name or directory)
    revision: str | None = None  # its revision a fine-tune starts from
    max_steps: int
    seed: int = 0  # initialisation and data order (a pre-training run's depends on its trajectory only)
    # Replicates (the sweep's ``replicates:``): 0 for a run of the grid, r >= 1 for the r-th re-run of
    # its cell with another seed. ``lineage`` is the replicate index of the pre-training run behind
    # the job (its own for a pre-training run, its parent's for a fine-tune): two fine-tunes of one
    # cell and one lineage start from the same checkpoint.
    replicate: int = 0
    lineage: int = 0
    tokens_per_step: int
    est_flops: float
    cpus: float
    gpus: float
    workers: int
    shape: ModelSize | None = None  # the ladder rung to build; None: the model's own architecture
    job_dir: str = ""  # where this job writes its checkpoints (a path or URI)
    init_from: str | None = None  # the parent's checkpoint at p that a fine-tune loads

    @property
    def corpus(self) -> str:
        """The corpus this job trains on."""
        return self.source if self.kind == "pretrain" else self.target

    @property
    def label(self) -> str:
        """A name that says what the job is (trial names, dashboard, logs). A replicate ends in
        ``/r1``; a fine-tune from a replicate pre-training run's checkpoint says so at its p
        (``finetune/d0.6@4M~r1/pico/DF=1k/r1``)."""
        again = f"/r{self.replicate}" if self.replicate else ""
        if self.kind == "pretrain":
            return f"pretrain/{self.source}/{self.size}{again}"
        if self.kind == "finetune":
            at = (self.revision or short_tokens(self.pretrain_tokens)) + (f"~r{self.lineage}" if self.lineage else "")
            return f"finetune/{self.source}@{at}/{self.size}/DF={short_tokens(self.data_tokens)}{again}"
        return f"scratch/{self.size}/D={short_tokens(self.data_tokens)}{again}"

    @property
    def layout(self) -> JobLayout:
        """The names under this job's folder (:class:`tsweep.core.layout.JobLayout`)."""
        return JobLayout(self.job_dir)

    def p_checkpoint(self, p: int) -> str:
        """Where this pre-training job saves its annealed checkpoint at ``p`` tokens."""
        return self.layout.p_checkpoint(p)

    @property
    def resume_dir(self) -> str:
        """Where this job keeps the state it resumes from after its process dies."""
        return self.layout.resume_dir

    @property
    def deepspeed_file(self) -> str:
        """The DeepSpeed config this job's engine was given (shipped, the sweep's keys, tsweep's)."""
        return self.layout.deepspeed_file

    @property
    def attempts_file(self) -> str:
        """The count of this job's starts (0 before its first), beside its checkpoints."""
        return self.layout.attempts_file

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain data (the shape as a dict, tuples as lists), for Tune's trial config."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["shape"] = None if self.shape is None else asdict(self.shape)
        d["checkpoints"] = list(self.checkpoints)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Job:
        """The inverse of :meth:`to_dict`, also after a trip through JSON (lists for tuples)."""
        shape = d.get("shape")
        return cls(
            **{
                **d,
                "checkpoints": tuple(d.get("checkpoints", ())),
                "shape": None if shape is None else ModelSize(**shape),
            }
        )
