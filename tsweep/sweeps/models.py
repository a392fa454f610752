"""The typed sweep: one frozen, validated description of a transfer sweep, every field with a
description (what ``tsweep plan --explain`` prints, :mod:`tsweep.sweeps.reference`).

The grid is (model size N) x (fine-tune tokens D_F) x (pre-training source S, ``scratch``
included); the pre-training ``checkpoints`` are Barnett's p axis (arXiv 2408.16947, sec. 3),
read off one pre-training run per (S, N). ``Sweep.model_dump()`` is what job ids hash over.

Rules:

- Every model forbids unknown keys and is frozen; nothing downstream reads raw YAML.
- Token counts accept integers or short forms (``250k``, ``2M``, ``1.5B``) so YAMLs stay readable.
- Numbers are held to what the trainer and Ray can honour (finite learning rates and weights,
  seeds a generator takes, worker counts a cluster can hold, checkpoints at least one optimizer
  step apart).
- A validator raises ``ValueError`` (pydantic places it at the field), or :class:`FieldError`
  when the message belongs to another field path than the one validated (a cross-field check);
  :mod:`tsweep.sweeps.loader` turns either into one line, ``path: message``.

Imports: pydantic and ``tsweep.core`` (the contracts), and the DeepSpeed key tables
(:mod:`tsweep.sweeps.deepspeed_keys`); no YAML, no files, no torch.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from tsweep.core.cadence import branch_start
from tsweep.core.dataspec import BUILTIN_CORPORA, CorpusSpec, MixtureCorpus, TokenizerSpec
from tsweep.core.job import SCRATCH
from tsweep.core.layout import SweepLayout
from tsweep.core.sizes import SIZE_LADDER
from tsweep.core.units import parse_token_count
from tsweep.sweeps.deepspeed_keys import (
    DEEPSPEED_KEYS,
    DEEPSPEED_OWNED,
    DEEPSPEED_RESULT_NEUTRAL,
    DEEPSPEED_UNSUPPORTED,
)

__all__ = [
    "CONFIG_METADATA_KEYS",
    "DeepSpeedSettings",
    "EvalSettings",
    "FieldError",
    "FinetuneReplicates",
    "FitSettings",
    "ModelRung",
    "PretrainReplicates",
    "PretrainSettings",
    "PretrainedModel",
    "ReplicateCell",
    "ReplicateSettings",
    "Resources",
    "Sweep",
    "TokenCount",
    "TrackerSettings",
    "TrainSettings",
    "is_plain_name",
]

_T = TypeVar("_T")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")


class FieldError(ValueError):
    """A cross-field error that knows its own field path."""

    def __init__(self, path: str, message: str):
        super().__init__(message)
        self.path = path


def is_plain_name(name: str) -> bool:
    """Whether ``name`` can name a sweep or a corpus: letters, digits, '_', '.', '+', '-', no
    path separator, not '.' or '..', at most 64 characters, starting with a letter or digit."""
    return bool(_NAME_RE.match(name)) and name not in {".", ".."}


TokenCount = Annotated[int, BeforeValidator(parse_token_count)]
# a token count where 0 means "none"
TokenCountOrZero = Annotated[int, BeforeValidator(lambda v: 0 if v == 0 else parse_token_count(v))]


def _unique(values: list[_T], what: str) -> list[_T]:
    """``values`` unchanged; ValueError naming the first value that repeats and its index."""
    seen: set[_T] = set()
    for i, v in enumerate(values):
        if v in seen:
            raise ValueError(f"duplicate {what} {v!r} at index {i}")
        seen.add(v)
    return values


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class PretrainSettings(_Model):
    """One pre-training run per (source, size); an annealed checkpoint at each p gives Barnett's p axis."""

    tokens: TokenCount = Field(description="pre-training tokens of each (source, size) run: one pass over them")
    checkpoints: list[TokenCount] = Field(
        default_factory=list,
        description="token counts p below the budget at which an annealed checkpoint is saved "
        "(a cooldown branch of the stable run); the budget itself is always one",
    )
    max_epochs: float = Field(
        default=4.0,
        ge=1,
        le=16,
        description="passes over a source's training split that pre-training may make when "
        "its budget is larger than the split: up to 4 repetitions cost almost "
        "nothing against fresh data (Muennighoff et al. 2023, arXiv 2305.16264)",
    )

    @field_validator("checkpoints")
    @classmethod
    def _sorted_unique(cls, v: list[int]) -> list[int]:
        return sorted(_unique(v, "checkpoint"))

    @model_validator(mode="after")
    def _within_budget(self) -> PretrainSettings:
        for i, c in enumerate(self.checkpoints):
            if c > self.tokens:
                raise ValueError(f"checkpoints[{i}] = {c} is beyond the pre-training budget tokens = {self.tokens}")
        return self

    @property
    def p_axis(self) -> tuple[int, ...]:
        """Checkpoint token counts that fine-tunes start from; the final budget always included."""
        return tuple(sorted(set(self.checkpoints) | {self.tokens}))


class EvalSettings(_Model):
    """How every run is measured: on one held-out target set, and stopped on it in data units."""

    tokens: TokenCount = Field(
        default=32_768, description="held-out target tokens, the same for every job (its loss is every run's score)"
    )
    interval_steps: int = Field(
        default=20,
        gt=0,
        description="optimizer steps between evaluations at most (pre-training: the first of its doubling steps)",
    )
    per_epoch: int = Field(
        default=2,
        gt=0,
        description="evaluations per epoch at least, so a run over a few thousand tokens is still "
        "watched closely enough to stop at its best",
    )
    min_interval_tokens: TokenCountOrZero = Field(
        default=0,
        description="training tokens between two evaluations of a fine-tune or scratch run at least, "
        "whatever per_epoch asks: on the demo, fine-tunes of 1k-4k tokens (an epoch per "
        "step) evaluated 8k tokens every step and spent ~3/4 of their time evaluating",
    )
    patience_epochs: float = Field(
        default=2.0,
        gt=0,
        le=100,
        description="a fine-tune or scratch run ends its stable phase once its best "
        "evaluation improved by less than min_delta over this many epochs "
        "(patience measured in data, never before min_epochs)",
    )
    patience_tokens: TokenCount = Field(
        default=65_536,
        description="patience is at least this many training tokens, however few epochs they are: "
        "a run over a few thousand tokens otherwise gives up within a handful of steps "
        "on a loss plateau it would leave (measured on the synthetic target: models sit "
        "~60k tokens at 2.93 nats before they learn its structure)",
    )
    min_delta: float = Field(
        default=0.005,
        ge=0,
        lt=1,
        description="the relative improvement of the best evaluation over "
        "patience_epochs below which a run has settled: past its "
        "over-fitting minimum, or (a model too small to memorise its data) "
        "on its plateau, where more epochs buy less than the noise",
    )
    min_epochs: float = Field(
        default=1.0,
        ge=1,
        le=1000,
        description="no run stops before this many passes over its data (Hernandez et "
        "al. 2021's runs see every token at least once)",
    )

    @model_validator(mode="after")
    def _evaluated_within_patience(self) -> EvalSettings:
        if self.min_interval_tokens > self.patience_tokens:
            raise ValueError(
                f"eval.min_interval_tokens ({self.min_interval_tokens}) exceeds eval.patience_tokens "
                f"({self.patience_tokens}): a patience window would hold no evaluation"
            )
        return self


class TrainSettings(_Model):
    """The optimiser and the warmup-stable-decay schedule every run uses."""

    seq_len: int = Field(default=64, gt=1, le=1_048_576, description="tokens per training sequence")
    batch_size: int = Field(
        default=16, gt=0, le=1_048_576, description="sequences per optimizer step, all devices together"
    )
    lr: float | Literal["auto"] = Field(
        default="auto",
        description="peak learning rate; 'auto' is Kaplan et al. 2020 eq. D.1, LR(N) = 0.003239 - 0.0001395 log N",
    )
    lr_scale: float = Field(default=1.0, gt=0, le=1e3, description="multiplies the peak learning rate (also 'auto')")
    warmup_steps: int = Field(default=10, ge=0, le=10**9, description="linear warmup from 0 to the peak learning rate")
    cooldown: float = Field(
        default=0.2,
        gt=0,
        lt=1,
        description="length of the final linear decay to zero, as a fraction of the tokens "
        "trained before it: 0.2 matches a tuned cosine (Hägele et al. 2024, "
        "arXiv 2405.18392). Pre-training cools a branch at every checkpoint p; "
        "fine-tunes and scratch runs cool down once their stable phase ends",
    )
    weight_decay: float = Field(default=0.01, ge=0, le=10, description="AdamW weight decay (not on biases and norms)")
    grad_clip: float = Field(default=1.0, gt=0, le=1e6, description="gradient norm clipping threshold")
    max_epochs: float = Field(
        default=40.0,
        gt=0,
        le=10_000,
        description="the stable phase of a fine-tune or scratch run ends here at the "
        "latest; a run that gets here still improving is 'unconverged' "
        "and left out of every fit",
    )
    checkpoint_interval_evals: int = Field(
        default=5, gt=0, le=10**6, description="resume checkpoints every this many evaluation intervals"
    )
    seed: int = Field(default=0, ge=0, lt=2**31, description="the seed of every job's initialisation and data order")

    @field_validator("lr")
    @classmethod
    def _positive_lr(cls, v: float | Literal["auto"]) -> float | Literal["auto"]:
        if v != "auto" and not (v > 0 and math.isfinite(v)):
            raise ValueError(f"must be a positive finite number or 'auto', got {v!r}")
        return v

    def lr_for(self, n_params: int) -> float:
        base = 0.003239 - 0.0001395 * math.log(n_params) if self.lr == "auto" else self.lr
        return base * self.lr_scale


class Resources(_Model):
    """Per job: CPUs and (possibly fractional) GPUs per worker, and the worker count.

    Bounds (tsweep's choices, what one Ray node and one job can hold): 1024 CPUs and 16 GPUs per
    worker (the largest cloud nodes), 4096 workers per job. A local cluster also refuses a job
    larger than itself when the sweep starts (it would wait forever)."""

    cpus: float = Field(default=1.0, gt=0, le=1024, description="CPUs each worker of a job holds")
    gpus: float = Field(
        default=0.0,
        ge=0,
        le=16,
        description="GPUs each worker holds: a fraction below one shares a GPU, above one a whole number",
    )
    workers: int = Field(
        default=1,
        gt=0,
        le=4096,
        description="Ray Train workers of one job (DeepSpeed ZeRO across them when more than one)",
    )
    lend_idle_cores: bool = Field(
        default=False,
        description="let running single-worker CPU jobs train on more threads while a node's other CPUs idle"
        " (a sweep's tail, a long pre-training its fine-tunes wait on), handed back as soon as new jobs"
        " start; off by default: a job's losses then depend on the schedule in their last bits, and an"
        " early stop can move by an evaluation, where on its own CPUs a job is bit-for-bit repeatable",
    )
    pack: bool = Field(
        default=True,
        description="pack small models several to a GPU (fractional GPUs chosen from the size; see plan.gpu_share)",
    )

    @field_validator("cpus", "gpus")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError(f"must be a finite number, got {v!r}")
        return v

    @field_validator("gpus")
    @classmethod
    def _whole_or_fraction(cls, v: float) -> float:
        if v > 1 and v != int(v):
            raise ValueError(f"more than one GPU must be a whole number, got {v}")
        return v


class DeepSpeedSettings(_Model):
    """The DeepSpeed engine every job trains on.

    ``config`` (or ``config_file``, a JSON file read when the sweep is loaded, its path relative to
    the sweep file) is merged over tsweep's shipped config for the ZeRO stage
    (``tsweep/workers/deepspeed/zero{stage}.json``), dictionaries key by key; then tsweep sets the
    keys it owns (:data:`DEEPSPEED_OWNED`), which the user's config may therefore not hold. Its
    result-relevant keys (all but :data:`DEEPSPEED_RESULT_NEUTRAL`) enter every job's id."""

    zero_stage: int = Field(default=0, ge=0, le=3, description="ZeRO stage: 0 (none) to 3 (weights sharded too)")
    precision: Literal["fp32", "bf16"] = Field(
        default="fp32", description="training precision; fp16 is not available on DeepSpeed's CPU accelerator"
    )
    optimizer: Literal["torch_adamw"] = Field(
        default="torch_adamw", description="torch's AdamW, handed to DeepSpeed (no fused optimizer to compile)"
    )
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="DeepSpeed config keys merged over tsweep's shipped config for the ZeRO "
        "stage (e.g. zero_optimization.reduce_bucket_size, "
        "communication_data_type); batch, optimizer, scheduler, clipping and "
        "precision are tsweep's and refused here",
    )
    config_file: str | None = Field(
        default=None,
        description="a DeepSpeed JSON file (relative to the sweep file), read when the sweep is "
        "loaded: its keys go under config, whose own keys win",
    )

    @field_validator("config")
    @classmethod
    def _known_keys(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key, value in v.items():
            where = f"deepspeed.config.{key}"
            if key not in DEEPSPEED_KEYS:
                raise FieldError(where, "not a DeepSpeed config key (https://www.deepspeed.ai/docs/config-json/)")
            if key in DEEPSPEED_OWNED:
                raise FieldError(where, f"tsweep sets this itself; use {DEEPSPEED_OWNED[key]}")
            if key in DEEPSPEED_UNSUPPORTED:
                raise FieldError(where, "a DeepSpeed feature tsweep's training loop does not drive")
            if key == "zero_optimization":
                if not isinstance(value, dict):
                    raise FieldError(where, f"must be a mapping, got {type(value).__name__}")
                if "stage" in value:
                    raise FieldError(f"{where}.stage", "tsweep sets this itself; use deepspeed.zero_stage")
        return v

    @property
    def result_config(self) -> dict[str, Any]:
        """The user's DeepSpeed keys that can change a result (what job ids hash)."""
        return {k: v for k, v in self.config.items() if k not in DEEPSPEED_RESULT_NEUTRAL}


class TrackerSettings(_Model):
    """Experiment trackers to mirror every job to (opt-in; none of them enters a job's id)."""

    tensorboard: bool = Field(
        default=False,
        description="TensorBoard event files, one run per job, under the sweep's "
        "tune/ folder (Ray Tune's TBXLoggerCallback)",
    )
    wandb_project: str | None = Field(
        default=None,
        description="a Weights & Biases project: one run per job, named "
        "like its trial, the job's fields as its config; "
        "WANDB_MODE=offline works without a network",
    )
    mlflow_tracking_uri: str | None = Field(
        default=None, description="an MLflow tracking URI (file:///path or http://host:5000): one run per job"
    )
    mlflow_experiment: str | None = Field(default=None, description="the MLflow experiment (default: the sweep's name)")

    @property
    def any(self) -> bool:
        return self.tensorboard or bool(self.wandb_project) or bool(self.mlflow_tracking_uri)


class FitSettings(_Model):
    """How the analysis actor fits the laws."""

    bootstrap: int = Field(
        default=200,
        ge=0,
        le=100_000,
        description="bootstrap resamples behind every 95% interval "
        "(Besiroglu et al. 2024 used 4,000; at most "
        "100,000, tsweep's choice)",
    )
    seed: int = Field(
        default=0, ge=0, lt=2**63, description="seed of the bootstrap and of the fitter's screened starts"
    )


# Replicates (tsweep's bounds): a pre-training replicate is a whole pre-training run, so at most 3
# of one (source, size); a cell re-run more than 4 times spends on one point what spreading the
# pairs over more cells and more f buys for the same noise estimate (the analysis pools pairs
# over cells); at most 64 cells a block, more than any shipped grid has at one (source, size).
MAX_FINETUNE_REPLICATES = 4
MAX_PRETRAIN_REPLICATES = 3
MAX_REPLICATE_CELLS = 64


def _unique_cells(cells: list[ReplicateCell]) -> list[ReplicateCell]:
    """``cells`` unchanged; ValueError naming the first cell that repeats and its index."""
    seen: set[tuple[int, int]] = set()
    for i, c in enumerate(cells):
        if (c.p, c.f) in seen:
            raise ValueError(f"[{i}] repeats the cell p = {c.p:,}, f = {c.f:,}")
        seen.add((c.p, c.f))
    return cells


class ReplicateCell(_Model):
    """One cell (p, f) of the grid at a replicate block's source and size."""

    p: TokenCount = Field(
        description="pre-training tokens behind the checkpoint the fine-tune starts from: one of "
        "pretrain.checkpoints or pretrain.tokens"
    )
    f: TokenCount = Field(description="fine-tune tokens D_F: one of finetune_tokens")


class _ReplicateBlock(_Model):
    """What every replicate block checks: its cells are distinct."""

    @field_validator("cells", check_fields=False)
    @classmethod
    def _cells_unique(cls, v: list[ReplicateCell]) -> list[ReplicateCell]:
        return _unique_cells(v)


class FinetuneReplicates(_ReplicateBlock):
    """Fine-tunes re-run from the grid's own checkpoint with another seed (another data order):
    their difference from the grid's run of the same cell is run-to-run noise alone."""

    source: str = Field(description="a source tsweep pre-trains on (a corpus among sources)")
    size: str = Field(description="one of model_sizes")
    cells: list[ReplicateCell] = Field(
        min_length=1,
        max_length=MAX_REPLICATE_CELLS,
        description="the (p, f) cells re-run; spread them over f (the noise may change with f, and "
        "the analysis fits that from pairs at two f or more)",
    )
    runs: int = Field(
        default=1, ge=1, le=MAX_FINETUNE_REPLICATES, description="re-runs of each cell, each with its own seed"
    )


class PretrainReplicates(_ReplicateBlock):
    """One (source, size) pre-trained again with another seed, and some of its cells fine-tuned
    from the new run's checkpoints: their difference from the grid's cells carries run-to-run
    noise and the per-checkpoint offset. The replicate saves only the checkpoints its cells
    start from (and its budget), so at the smallest size it costs a small share of the grid."""

    source: str = Field(description="a source tsweep pre-trains on (a corpus among sources)")
    size: str = Field(description="one of model_sizes; the smallest is the cheapest")
    cells: list[ReplicateCell] = Field(
        min_length=1,
        max_length=MAX_REPLICATE_CELLS,
        description="the (p, f) cells fine-tuned from the replicate's checkpoints; spread them over p "
        "(each p is another checkpoint, another draw of its offset)",
    )
    runs: int = Field(
        default=1, ge=1, le=MAX_PRETRAIN_REPLICATES, description="replicate pre-training runs, each with its own seed"
    )


class ReplicateSettings(_Model):
    """Replicate runs, so the analysis measures the noise of its points instead of inferring it
    from its own fit's residuals. None by default: the grid's jobs and their ids are the same
    with or without this section."""

    finetune: FinetuneReplicates | None = Field(
        default=None, description="fine-tunes re-run from the same checkpoint: the run-to-run noise"
    )
    pretrain: PretrainReplicates | None = Field(
        default=None,
        description="a pre-training run repeated with another seed, and cells fine-tuned from it: "
        "run-to-run plus per-checkpoint noise",
    )

    @property
    def any(self) -> bool:
        return self.finetune is not None or self.pretrain is not None


# The adaptive design's defaults (tsweep's choices): a relative 95% half-width of 0.5 is what the
# demo's grid reaches for each source's G at its largest size (3.91 [2.03, 5.74] and 5.73 [3.50,
# 8.67]: 0.47 and 0.45), so by default an adaptive run asks for the grid's precision.
DEFAULT_GAP_HALF_WIDTH = 0.5


class DesignGoal(_Model):
    """What an adaptive design must learn before it stops (``tsweep.analysis.design``)."""

    gap_sizes: list[str] | None = Field(
        default=None,
        description="model sizes at which every source's transfer gap G is wanted (default: the largest "
        "of model_sizes, where the report reads its headline G)",
    )
    gap_half_width: float = Field(
        default=DEFAULT_GAP_HALF_WIDTH,
        gt=0,
        le=10,
        description="each G's 95% interval half-width relative to G (0.5: G within +-50%); a gap bounded "
        "from above counts once its bound is under this times the largest identified G, a source called flat or "
        "rising in p once its fine-tunes cover every checkpoint",
    )
    order: bool = Field(
        default=True,
        description="also every pair of sources' gaps at those sizes resolved (one transfers better), or "
        "declared unresolvable because even every remaining job of the grid would not resolve it",
    )


class DesignSettings(_Model):
    """How the sweep spends its compute: the whole grid, or an adaptive design that the analysis
    actor's refits steer and that stops when its goal is met or its budget is spent."""

    mode: Literal["grid", "adaptive"] = Field(
        default="grid",
        description="grid: every job of the grid; adaptive: a seed design that identifies the gap law, "
        "then the jobs that narrow the goal's intervals most per FLOP, chosen from the grid",
    )
    goal: DesignGoal = Field(default=DesignGoal(), description="what an adaptive design must learn")
    budget: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="the most an adaptive design spends, as a share of the grid's estimated FLOPs "
        "(the plan's upper bounds, so the share is known before anything runs)",
    )
    batch: int | None = Field(
        default=None,
        ge=1,
        le=4096,
        description="jobs an adaptive design chooses at one refit, so the cluster is never idle while the "
        "analysis actor refits (default: the number of jobs the cluster runs at once)",
    )

    @property
    def adaptive(self) -> bool:
        return self.mode == "adaptive"


class PretrainedModel(_Model):
    """An existing pre-trained model as a source (a hub name or a local directory).

    Its ``revisions`` map a revision (e.g. Pythia's ``step143000``) to the pre-training tokens
    behind it, so one model's step checkpoints are Barnett's p axis without any pre-training.
    Fine-tunes start from each revision; scratch runs of the same architecture give the
    baseline at the same N."""

    model: str = Field(min_length=1, description="a hub model name or a local directory (transformers format)")
    revisions: dict[str, TokenCount] = Field(
        min_length=1, description="revision -> the pre-training tokens behind it: the p axis of this source"
    )


# Keys of a transformers config.json that describe the file rather than the model (and the
# weights' storage dtype, which deepspeed.precision decides): dropped when a rung's config_file is
# read, refused when written inline.
CONFIG_METADATA_KEYS = frozenset({"architectures", "transformers_version", "_name_or_path", "torch_dtype", "dtype"})


class ModelRung(_Model):
    """A size-ladder rung declared by the sweep: a GPT-2 shape (``n_layer``, ``d_model``,
    ``n_head``) or any causal-LM architecture transformers builds from a config (``model_type``
    with its ``config`` keys, or ``config_file``). Its N is counted at plan time (see
    ``tsweep.core.sizes``); its vocabulary is the tokenizer's."""

    n_layer: int | None = Field(default=None, gt=0, le=1024, description="GPT-2 shape: transformer blocks")
    d_model: int | None = Field(default=None, gt=0, le=1 << 16, description="GPT-2 shape: width")
    n_head: int | None = Field(default=None, gt=0, le=1024, description="GPT-2 shape: attention heads (divide d_model)")
    model_type: str | None = Field(
        default=None,
        min_length=1,
        description="a transformers model_type with a causal-LM head (llama, gpt_neox, "
        "qwen2, ...), built by AutoModelForCausalLM.from_config",
    )
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="that architecture's config keys (hidden_size, num_hidden_layers, ...); "
        "vocab_size is the tokenizer's and may be left out",
    )
    config_file: str | None = Field(
        default=None,
        description="a transformers config.json (relative to the sweep file), read when the sweep is "
        "loaded: its model_type and keys go here, inline config keys win; "
        "architectures, transformers_version, _name_or_path and torch_dtype are dropped",
    )


class Sweep(_Model):
    """A whole sweep. ``Sweep.model_dump()`` is what job ids hash over (field by field)."""

    name: str = Field(description="the sweep's name: its folder under the storage root")
    description: str = Field(default="", description="one line saying what the sweep asks")
    target: str = Field(
        description="the corpus every job is evaluated on, and that fine-tunes and scratch runs train on"
    )
    sources: list[str] = Field(
        min_length=1,
        description="pre-training sources (corpora or pretrained models), and 'scratch' for the from-scratch baseline",
    )
    corpora: dict[str, CorpusSpec] = Field(
        default_factory=dict, description="named corpora beyond the built-in python, prose and c"
    )
    tokenizer: TokenizerSpec = Field(
        default=TokenizerSpec(), description="bytes (nothing to download) or a named Hugging Face tokenizer"
    )
    models: dict[str, ModelRung] = Field(
        default_factory=dict,
        description="rungs declared by this sweep, by name: a GPT-2 shape or a transformers config",
    )
    model_sizes: list[str] = Field(
        min_length=1, description="rungs of the size ladder (tsweep.core.sizes) or declared under models: the N axis"
    )
    finetune_tokens: list[TokenCount] = Field(min_length=1, description="fine-tune budgets D_F (unique target tokens)")
    scratch_tokens: list[TokenCount] | None = Field(
        default=None,
        description="from-scratch budgets D (default: the fine-tune budgets); they must bracket what "
        "the fine-tunes reach, since D_E is interpolated on them",
    )
    pretrain: PretrainSettings | None = Field(
        default=None, description="the pre-training runs (required when a source is a corpus)"
    )
    pretrained: dict[str, PretrainedModel] = Field(
        default_factory=dict, description="existing pre-trained models as sources"
    )
    eval: EvalSettings = Field(default=EvalSettings(), description="how every run is measured")
    train: TrainSettings = Field(default=TrainSettings(), description="the optimiser and schedule of every run")
    resources: Resources = Field(default=Resources(), description="what each job asks of the cluster")
    deepspeed: DeepSpeedSettings = Field(default=DeepSpeedSettings(), description="the training engine")
    fit: FitSettings = Field(default=FitSettings(), description="how the laws are fitted")
    trackers: TrackerSettings = Field(
        default=TrackerSettings(), description="experiment trackers every job is mirrored to, and the final gaps"
    )
    replicates: ReplicateSettings = Field(
        default=ReplicateSettings(),
        description="cells re-run with other seeds, to measure the noise of a point (none by default)",
    )
    design: DesignSettings = Field(
        default=DesignSettings(),
        description="the whole grid (default) or an adaptive design that stops when it has learnt its goal",
    )
    storage_root: str = Field(
        default="~/tsweep_runs", description="where the sweep's folder goes: a path or a URI (s3://, gs://, file://)"
    )
    max_failures: int = Field(
        default=2, ge=0, le=100, description="retries of a job whose process dies, each resuming from its checkpoint"
    )

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        if not is_plain_name(v):
            raise ValueError(
                f"must be letters, digits, '_', '.', '+' or '-' (no path separators, at most 64), got {v!r}"
            )
        return v

    @field_validator("sources")
    @classmethod
    def _sources_unique(cls, v: list[str]) -> list[str]:
        return _unique(v, "source")

    @field_validator("models")
    @classmethod
    def _rungs(cls, v: dict[str, ModelRung]) -> dict[str, ModelRung]:
        for name, rung in v.items():
            _check_rung(name, rung)
        return v

    @field_validator("model_sizes")
    @classmethod
    def _known_sizes(cls, v: list[str], info: ValidationInfo) -> list[str]:
        _unique(v, "size")
        declared = info.data.get("models") or {}
        for i, s in enumerate(v):
            if s not in SIZE_LADDER and s not in declared:
                raise ValueError(
                    f"[{i}] unknown size {s!r}; declare it under models or use one of {', '.join(SIZE_LADDER)}"
                )
        return v

    @field_validator("finetune_tokens", "scratch_tokens")
    @classmethod
    def _budgets_unique(cls, v: list[int] | None) -> list[int] | None:
        return None if v is None else sorted(_unique(v, "token budget"))

    @field_validator("corpora")
    @classmethod
    def _corpus_names(cls, v: dict[str, CorpusSpec]) -> dict[str, CorpusSpec]:
        for name in v:
            if not _NAME_RE.match(name) or name == SCRATCH:
                raise ValueError(f"corpus name {name!r} must be a plain name other than 'scratch'")
        return v

    @model_validator(mode="after")
    def _references(self) -> Sweep:
        known = set(self.corpora) | set(BUILTIN_CORPORA)
        if self.target not in known:
            raise FieldError(
                "target", f"unknown corpus {self.target!r}; declare it under corpora or use one of {sorted(known)}"
            )
        for i, s in enumerate(self.sources):
            if s != SCRATCH and s not in known and s not in self.pretrained:
                raise FieldError(
                    f"sources[{i}]",
                    f"unknown corpus {s!r}; declare it under corpora or pretrained, or use one of {sorted(known)}",
                )
        for name in self.pretrained:
            if name in known:
                raise FieldError(f"pretrained.{name}", "a pretrained source cannot share its name with a corpus")
        if self.pretrain_sources and self.pretrain is None:
            raise FieldError("pretrain", "required field is missing (sources include a corpus to pre-train on)")
        if self.model_sources and self.tokenizer.kind != "hf":
            raise FieldError("tokenizer", "pretrained sources need their model's tokenizer: kind hf with its name")
        for name, spec in self.corpora.items():
            if isinstance(spec, MixtureCorpus):
                for part in spec.weights:
                    if part not in known or part == name:
                        raise FieldError(f"corpora.{name}.weights", f"unknown corpus {part!r} in mixture")
        if not any(s != SCRATCH for s in self.sources):
            raise FieldError("sources", "needs at least one pre-training source besides 'scratch'")
        self._checkpoints_are_steps()
        self._replicates_in_grid()
        self._design_sizes()
        return self

    def _design_sizes(self) -> None:
        """The adaptive goal names sizes of the grid; FieldError naming the entry."""
        for i, size in enumerate(self.design.goal.gap_sizes or []):
            if size not in self.model_sizes:
                raise FieldError(
                    f"design.goal.gap_sizes[{i}]", f"{size!r} is not one of model_sizes {self.model_sizes}"
                )

    def _replicates_in_grid(self) -> None:
        """Every replicate block names a source tsweep pre-trains, a size of the grid, and cells
        of the grid; FieldError naming the field."""
        blocks = {"finetune": self.replicates.finetune, "pretrain": self.replicates.pretrain}
        for key, block in blocks.items():
            if block is not None:
                _check_replicate_block(f"replicates.{key}", block, self)

    def _checkpoints_are_steps(self) -> None:
        """Every p at least one optimizer step, no two p on the same step (the worker saves p at
        step round(p / tokens per step): two such p would be the same weights under two names),
        no intermediate p on the run's last step, and every intermediate p its own cooldown
        branch, leaving the run after step 0 at a step no other p's branch leaves at (the worker
        keys branches by that step: two on one step would save one p with other weights)."""
        if self.pretrain is None:
            return
        per_step = self.train.batch_size * self.train.seq_len
        final = math.ceil(self.pretrain.tokens / per_step)
        steps: dict[int, int] = {}  # the optimizer step each p is saved at
        starts: dict[int, int] = {}  # the step each intermediate p's cooldown branch leaves the run
        for i, p in enumerate(self.pretrain.checkpoints):
            where = f"pretrain.checkpoints[{i}]"
            step = _checkpoint_step(where, p, per_step, steps)
            if p != self.pretrain.tokens:  # else the run's own end
                _record_branch(
                    where, p, step, final=final, per_step=per_step, cooldown=self.train.cooldown, starts=starts
                )
        if self.pretrain.tokens < per_step:
            raise FieldError(
                "pretrain.tokens",
                f"{self.pretrain.tokens:,} tokens is less than one optimizer step "
                f"(train.batch_size x train.seq_len = {per_step:,} tokens)",
            )

    # ------------------------------------------------------------ derived views
    @property
    def scratch_axis(self) -> list[int]:
        return list(self.scratch_tokens or self.finetune_tokens)

    @property
    def pretrain_sources(self) -> list[str]:
        """Sources that tsweep pre-trains on (corpora)."""
        return [s for s in self.sources if s != SCRATCH and s not in self.pretrained]

    @property
    def model_sources(self) -> list[str]:
        """Sources that are existing pre-trained models."""
        return [s for s in self.sources if s in self.pretrained]

    def corpus(self, name: str) -> CorpusSpec:
        """The spec of a corpus the sweep declares, or of a built-in one."""
        return self.corpora.get(name) or BUILTIN_CORPORA[name]

    def layout(self, storage_root: str | None = None) -> SweepLayout:
        """Where this sweep's files live under ``storage_root`` (default: its own)."""
        return SweepLayout.under(storage_root or self.storage_root, self.name)

    def sweep_dir(self, storage_root: str | None = None) -> str:
        return self.layout(storage_root).sweep_dir


def _check_replicate_block(where: str, block: FinetuneReplicates | PretrainReplicates, sweep: Sweep) -> None:
    """A replicate block's source, size and cells against ``sweep``'s grid; FieldError naming the field."""
    if block.source not in sweep.pretrain_sources:
        known = sweep.pretrain_sources
        raise FieldError(f"{where}.source", f"{block.source!r} is not a source this sweep pre-trains (one of {known})")
    if block.size not in sweep.model_sizes:
        raise FieldError(f"{where}.size", f"{block.size!r} is not one of model_sizes {sweep.model_sizes}")
    p_axis = sweep.pretrain.p_axis if sweep.pretrain is not None else ()  # a pre-training source requires it
    for i, cell in enumerate(block.cells):
        if cell.p not in p_axis:
            grid = ", ".join(f"{p:,}" for p in p_axis)
            raise FieldError(
                f"{where}.cells[{i}].p",
                f"{cell.p:,} is not a checkpoint of the grid (pretrain.checkpoints and pretrain.tokens: {grid})",
            )
        if cell.f not in sweep.finetune_tokens:
            grid = ", ".join(f"{f:,}" for f in sweep.finetune_tokens)
            raise FieldError(f"{where}.cells[{i}].f", f"{cell.f:,} is not one of finetune_tokens ({grid})")


def _check_rung(name: str, rung: ModelRung) -> None:
    """A declared rung's name and its definition, one GPT-2 shape or one transformers config;
    FieldError naming the field."""
    where = f"models.{name}"
    if not is_plain_name(name):
        raise FieldError(where, "a rung's name must be a plain name (letters, digits, '_', '.', '+', '-')")
    if name in SIZE_LADDER:
        raise FieldError(where, "a built-in rung has this name; pick another")
    if any(x is not None for x in (rung.n_layer, rung.d_model, rung.n_head)):
        _check_gpt2_shape(where, rung)
    else:
        _check_hf_config(where, rung)


def _check_gpt2_shape(where: str, rung: ModelRung) -> None:
    shape = {"n_layer": rung.n_layer, "d_model": rung.d_model, "n_head": rung.n_head}
    for key, x in shape.items():
        if x is None:
            raise FieldError(
                f"{where}.{key}", "required field is missing (a GPT-2 shape needs n_layer, d_model and n_head)"
            )
    for key in ("model_type", "config"):
        if getattr(rung, key):
            raise FieldError(f"{where}.{key}", "a rung is a GPT-2 shape or a transformers config, not both")
    d_model, n_head = rung.d_model, rung.n_head
    if d_model is not None and n_head is not None and d_model % n_head:  # both given: checked above
        raise FieldError(f"{where}.n_head", f"{n_head} does not divide d_model {d_model}")


def _check_hf_config(where: str, rung: ModelRung) -> None:
    if rung.model_type is None:
        raise FieldError(
            f"{where}.model_type", "required field is missing (or give n_layer, d_model and n_head for a GPT-2 shape)"
        )
    if "model_type" in rung.config:
        raise FieldError(f"{where}.config.model_type", f"give it as {where}.model_type")
    for key in rung.config:
        if key in CONFIG_METADATA_KEYS:
            raise FieldError(
                f"{where}.config.{key}",
                "describes a file, not the model (precision is deepspeed.precision); leave it out",
            )


def _checkpoint_step(where: str, p: int, per_step: int, steps: dict[int, int]) -> int:
    """The optimizer step checkpoint ``p`` is saved at, recorded in ``steps``; FieldError when it
    is less than a step or shares its step with another p (the same weights twice)."""
    if p < per_step:
        raise FieldError(
            where,
            f"{p:,} tokens is less than one optimizer step (train.batch_size x train.seq_len = {per_step:,} tokens)",
        )
    step = round(p / per_step)
    if step in steps:
        raise FieldError(
            where,
            f"{p:,} tokens lands on optimizer step {step:,}, as "
            f"{steps[step]:,} does ({per_step:,} tokens a step): the same weights twice",
        )
    steps[step] = p
    return step


def _record_branch(
    where: str, p: int, step: int, *, final: int, per_step: int, cooldown: float, starts: dict[int, int]
) -> None:
    """Record the step an intermediate checkpoint ``p``'s cooldown branch leaves the run at in
    ``starts``; FieldError when ``p`` is on the run's last step, leaves before step 1, or leaves
    where another p's branch does."""
    if step >= final:
        raise FieldError(
            where,
            f"{p:,} tokens lands on the run's last step ({final:,}): "
            f"the final weights twice; leave it out (the final budget is always a checkpoint)",
        )
    start = branch_start(step, cooldown)
    if start < 1:
        raise FieldError(
            where, f"{p:,} tokens is too few for a cooldown branch ({step} optimizer step(s) of {per_step:,} tokens)"
        )
    if start in starts:
        raise FieldError(
            where,
            f"{p:,} tokens branches off at step {start:,}, as "
            f"{starts[start]:,} does (train.cooldown = {cooldown}): space them further",
        )
    starts[start] = p
