"""The sweep schema: one typed, frozen, validated description of a transfer sweep.

A sweep YAML becomes a :class:`Sweep` through :func:`load_sweep`; nothing downstream reads raw
YAML. Every model forbids unknown keys and is frozen. Any problem raises :class:`SweepError`
with exactly one line that names the field path, e.g.
``finetune_tokens[2]: must be a positive integer, got -5``: the CLI prints it and exits 2.

Token counts accept integers or short forms (``250k``, ``2M``, ``1.5B``) so YAMLs stay readable.
Numbers are held to what the trainer and Ray can honour (finite learning rates and weights,
seeds a generator takes, worker counts a cluster can hold, checkpoints at least one optimizer
step apart).

The YAML loader (:func:`loads_sweep`) is safe and strict: no Python objects, no duplicate keys
(the second would silently win), at most :data:`MAX_YAML_BYTES` of text and :data:`MAX_YAML_NODES`
nodes once aliases are expanded (a few hundred bytes of nested aliases can otherwise expand to
billions of nodes). Relative ``files`` globs are resolved against the sweep file's folder when
it is read (Tune runs every trial in a working directory of its own); so are the JSON files a
sweep may bring (a rung's transformers ``config_file``, a ``deepspeed.config_file``), which are read
then and inlined, so the sweep saved beside the results holds their content.
The grid is (model size N) x (fine-tune tokens D_F) x (pre-training source S, ``scratch``
included); the pre-training ``checkpoints`` are Barnett's p axis (arXiv 2408.16947, sec. 3),
read off one pre-training run per (S, N).
"""

from __future__ import annotations

import json
import math
import os
import re
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from tsweep.core.cadence import branch_start
from tsweep.core.dataspec import BUILTIN_CORPORA, CorpusSpec, MixtureCorpus, TokenizerSpec
from tsweep.core.errors import SweepError
from tsweep.core.job import SCRATCH
from tsweep.core.layout import SweepLayout
from tsweep.core.sizes import SIZE_LADDER
from tsweep.core.units import parse_token_count

__all__ = [
    "SCRATCH",
    "Sweep",
    "SweepError",
    "dump_sweep",
    "is_plain_name",
    "load_sweep",
    "loads_sweep",
    "parse_sweep",
    "shipped_sweeps",
]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")

# tsweep's choices: a sweep YAML is a few KB (the shipped ones are under 4 KB), so 1 MiB is room
# for any hand-written one; 100,000 nodes after alias expansion likewise.
MAX_YAML_BYTES = 1 << 20
MAX_YAML_NODES = 100_000


def is_plain_name(name: str) -> bool:
    """Whether ``name`` can name a sweep or a corpus: letters, digits, '_', '.', '+', '-', no
    path separator, not '.' or '..', at most 64 characters, starting with a letter or digit."""
    return bool(_NAME_RE.match(name)) and name not in {".", ".."}


TokenCount = Annotated[int, BeforeValidator(parse_token_count)]
# a token count where 0 means "none"
TokenCountOrZero = Annotated[int, BeforeValidator(lambda v: 0 if v == 0 else parse_token_count(v))]


def _unique(values: list, what: str) -> list:
    seen = set()
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
    def _positive_lr(cls, v):
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


# Top-level keys of a DeepSpeed config (https://www.deepspeed.ai/docs/config-json/ and DeepSpeed
# 0.19's deepspeed/runtime/config.py, which reads them); any other key is a typo DeepSpeed would
# silently ignore, so a user's DeepSpeed JSON holding one is refused.
DEEPSPEED_KEYS = frozenset(
    {
        "train_batch_size",
        "train_micro_batch_size_per_gpu",
        "gradient_accumulation_steps",
        "optimizer",
        "scheduler",
        "communication_data_type",
        "seq_parallel_communication_data_type",
        "prescale_gradients",
        "gradient_predivide_factor",
        "gradient_allreduce_op",
        "sparse_gradients",
        "fp16",
        "bf16",
        "amp",
        "torch_autocast",
        "gradient_clipping",
        "zero_optimization",
        "aio",
        "autotuning",
        "flops_profiler",
        "activation_checkpointing",
        "sparse_attention",
        "data_efficiency",
        "curriculum_learning",
        "tensorboard",
        "wandb",
        "csv_monitor",
        "comet",
        "elasticity",
        "comms_logger",
        "compression_training",
        "checkpoint",
        "data_types",
        "steps_per_print",
        "wall_clock_breakdown",
        "dump_state",
        "memory_breakdown",
        "disable_allgather",
        "zero_allow_untested_optimizer",
        "zero_force_ds_cpu_optimizer",
        "dataloader_drop_last",
        "use_data_before_expert_parallelism",
        "use_node_local_storage",
        "hybrid_engine",
        "pipeline",
        "weight_quantization",
        "compile",
        "nebula",
        "eigenvalue",
        "progressive_layer_drop",
        "quantize_training",
        "timers",
        "graph_harvesting",
        "log_level",
        "disable_python_gc",
        "tensor_parallel",
    }
)
# Keys tsweep sets itself from the sweep (its batch, optimizer, schedule, clipping and precision):
# a user's DeepSpeed JSON may not hold them; each names the sweep field to use instead.
DEEPSPEED_OWNED = {
    "train_batch_size": "train.batch_size",
    "train_micro_batch_size_per_gpu": "train.batch_size",
    "gradient_accumulation_steps": "train.batch_size",
    "optimizer": "train.lr, train.weight_decay (tsweep hands DeepSpeed torch's AdamW)",
    "scheduler": "train.warmup_steps, train.cooldown (tsweep's warmup-stable-decay schedule)",
    "gradient_clipping": "train.grad_clip",
    "fp16": "deepspeed.precision (fp32 or bf16)",
    "bf16": "deepspeed.precision (fp32 or bf16)",
    "amp": "deepspeed.precision (fp32 or bf16)",
    "torch_autocast": "deepspeed.precision (fp32 or bf16)",
    "zero_allow_untested_optimizer": "nothing: tsweep's torch AdamW needs it on",
}
# DeepSpeed features that change what a step computes or which data it sees through code of their
# own (pipeline stages, elastic batches, curricula, layer dropping, compression): tsweep's loop
# does not drive them, so a config that turns them on is refused rather than half-honoured.
DEEPSPEED_UNSUPPORTED = frozenset(
    {
        "pipeline",
        "elasticity",
        "curriculum_learning",
        "data_efficiency",
        "progressive_layer_drop",
        "compression_training",
        "sparse_attention",
        "hybrid_engine",
        "autotuning",
        "eigenvalue",
        "quantize_training",
        "weight_quantization",
    }
)
# Keys that change logging, profiling, I/O or memory, never a result: left out of job ids.
DEEPSPEED_RESULT_NEUTRAL = frozenset(
    {
        "steps_per_print",
        "wall_clock_breakdown",
        "dump_state",
        "memory_breakdown",
        "flops_profiler",
        "comms_logger",
        "tensorboard",
        "wandb",
        "csv_monitor",
        "comet",
        "timers",
        "log_level",
        "disable_python_gc",
        "aio",
        "use_node_local_storage",
        "checkpoint",
        "nebula",
    }
)


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
                raise _FieldError(where, "not a DeepSpeed config key (https://www.deepspeed.ai/docs/config-json/)")
            if key in DEEPSPEED_OWNED:
                raise _FieldError(where, f"tsweep sets this itself; use {DEEPSPEED_OWNED[key]}")
            if key in DEEPSPEED_UNSUPPORTED:
                raise _FieldError(where, "a DeepSpeed feature tsweep's training loop does not drive")
            if key == "zero_optimization":
                if not isinstance(value, dict):
                    raise _FieldError(where, f"must be a mapping, got {type(value).__name__}")
                if "stage" in value:
                    raise _FieldError(f"{where}.stage", "tsweep sets this itself; use deepspeed.zero_stage")
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
            where = f"models.{name}"
            if not is_plain_name(name):
                raise _FieldError(where, "a rung's name must be a plain name (letters, digits, '_', '.', '+', '-')")
            if name in SIZE_LADDER:
                raise _FieldError(where, "a built-in rung has this name; pick another")
            shape = {"n_layer": rung.n_layer, "d_model": rung.d_model, "n_head": rung.n_head}
            if any(x is not None for x in shape.values()):
                for key, x in shape.items():
                    if x is None:
                        raise _FieldError(
                            f"{where}.{key}",
                            "required field is missing (a GPT-2 shape needs n_layer, d_model and n_head)",
                        )
                for key in ("model_type", "config"):
                    if getattr(rung, key):
                        raise _FieldError(
                            f"{where}.{key}", "a rung is a GPT-2 shape or a transformers config, not both"
                        )
                if rung.d_model % rung.n_head:
                    raise _FieldError(f"{where}.n_head", f"{rung.n_head} does not divide d_model {rung.d_model}")
                continue
            if rung.model_type is None:
                raise _FieldError(
                    f"{where}.model_type",
                    "required field is missing (or give n_layer, d_model and n_head for a GPT-2 shape)",
                )
            if "model_type" in rung.config:
                raise _FieldError(f"{where}.config.model_type", f"give it as {where}.model_type")
            for key in rung.config:
                if key in CONFIG_METADATA_KEYS:
                    raise _FieldError(
                        f"{where}.config.{key}",
                        "describes a file, not the model (precision is deepspeed.precision); leave it out",
                    )
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
    def _budgets_unique(cls, v):
        return None if v is None else sorted(_unique(v, "token budget"))

    @field_validator("corpora")
    @classmethod
    def _corpus_names(cls, v: dict) -> dict:
        for name in v:
            if not _NAME_RE.match(name) or name == SCRATCH:
                raise ValueError(f"corpus name {name!r} must be a plain name other than 'scratch'")
        return v

    @model_validator(mode="after")
    def _references(self) -> Sweep:
        known = set(self.corpora) | set(BUILTIN_CORPORA)
        if self.target not in known:
            raise _FieldError(
                "target", f"unknown corpus {self.target!r}; declare it under corpora or use one of {sorted(known)}"
            )
        for i, s in enumerate(self.sources):
            if s != SCRATCH and s not in known and s not in self.pretrained:
                raise _FieldError(
                    f"sources[{i}]",
                    f"unknown corpus {s!r}; declare it under corpora or pretrained, or use one of {sorted(known)}",
                )
        for name in self.pretrained:
            if name in known:
                raise _FieldError(f"pretrained.{name}", "a pretrained source cannot share its name with a corpus")
        if self.pretrain_sources and self.pretrain is None:
            raise _FieldError("pretrain", "required field is missing (sources include a corpus to pre-train on)")
        if self.model_sources and self.tokenizer.kind != "hf":
            raise _FieldError("tokenizer", "pretrained sources need their model's tokenizer: kind hf with its name")
        for name, spec in self.corpora.items():
            if isinstance(spec, MixtureCorpus):
                for part in spec.weights:
                    if part not in known or part == name:
                        raise _FieldError(f"corpora.{name}.weights", f"unknown corpus {part!r} in mixture")
        if not any(s != SCRATCH for s in self.sources):
            raise _FieldError("sources", "needs at least one pre-training source besides 'scratch'")
        self._checkpoints_are_steps()
        return self

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
        steps: dict[int, int] = {}
        starts: dict[int, int] = {}  # the step each intermediate p's cooldown branch leaves the run
        for i, p in enumerate(self.pretrain.checkpoints):
            if p < per_step:
                raise _FieldError(
                    f"pretrain.checkpoints[{i}]",
                    f"{p:,} tokens is less than one optimizer step "
                    f"(train.batch_size x train.seq_len = {per_step:,} tokens)",
                )
            step = round(p / per_step)
            if step in steps:
                raise _FieldError(
                    f"pretrain.checkpoints[{i}]",
                    f"{p:,} tokens lands on optimizer step {step:,}, as "
                    f"{steps[step]:,} does ({per_step:,} tokens a step): the same weights twice",
                )
            steps[step] = p
            if p == self.pretrain.tokens:
                continue  # the run's own end
            if step >= final:
                raise _FieldError(
                    f"pretrain.checkpoints[{i}]",
                    f"{p:,} tokens lands on the run's last step ({final:,}): "
                    f"the final weights twice; leave it out (the final budget is always a checkpoint)",
                )
            start = branch_start(step, self.train.cooldown)
            if start < 1:
                raise _FieldError(
                    f"pretrain.checkpoints[{i}]",
                    f"{p:,} tokens is too few for a cooldown branch ({step} optimizer step(s) of {per_step:,} tokens)",
                )
            if start in starts:
                raise _FieldError(
                    f"pretrain.checkpoints[{i}]",
                    f"{p:,} tokens branches off at step {start:,}, as "
                    f"{starts[start]:,} does (train.cooldown = {self.train.cooldown}): space them further",
                )
            starts[start] = p
        if self.pretrain.tokens < per_step:
            raise _FieldError(
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

    def corpus(self, name: str):
        return self.corpora.get(name) or BUILTIN_CORPORA[name]

    def layout(self, storage_root: str | None = None) -> SweepLayout:
        """Where this sweep's files live under ``storage_root`` (default: its own)."""
        return SweepLayout.under(storage_root or self.storage_root, self.name)

    def sweep_dir(self, storage_root: str | None = None) -> str:
        return self.layout(storage_root).sweep_dir


class _FieldError(ValueError):
    """A cross-field error that knows its own field path."""

    def __init__(self, path: str, message: str):
        super().__init__(message)
        self.path = path


def _format_loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in str(part) or str(part).startswith("function-"):
            continue  # pydantic's internal validator/union tags
        elif part in {"stdlib", "synthetic", "files", "hub", "mixture"} and out.startswith("corpora."):
            continue  # discriminated-union tag
        else:
            out += ("." if out else "") + str(part)
    return out or "sweep"


def _describe(err: dict) -> str:
    path = _format_loc(err["loc"])
    ctx_err = (err.get("ctx") or {}).get("error")
    if isinstance(ctx_err, _FieldError):
        return f"{ctx_err.path}: {ctx_err}"
    msg = err["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    if err["type"] == "extra_forbidden":
        return f"{path}: unknown key"
    if err["type"] == "missing":
        return f"{path}: required field is missing"
    if msg.startswith("["):  # a list validator naming its own index
        idx, _, rest = msg.partition("] ")
        return f"{path}{idx}]: {rest}"
    got = err.get("input")
    if err["type"] not in {"value_error", "assertion_error"} and not isinstance(got, (dict, list)):
        msg = f"{msg}, got {got!r}"
    return f"{path}: {msg}"


def _resolve_globs(data: dict, base_dir: str) -> dict:
    """``data`` with every relative ``files`` glob, and every hub corpus named by a relative local
    dataset folder, made absolute against ``base_dir`` (a trial runs in a working directory of its
    own, where a relative path would match nothing)."""
    corpora = data.get("corpora")
    if not isinstance(corpora, dict):
        return data
    out = {}
    for name, spec in corpora.items():
        if isinstance(spec, dict) and spec.get("kind") == "files" and isinstance(spec.get("paths"), list):
            paths = [
                os.path.normpath(os.path.join(base_dir, p))
                if isinstance(p, str) and p and not (os.path.isabs(p) or p.startswith("~") or "://" in p)
                else p
                for p in spec["paths"]
            ]
            spec = {**spec, "paths": paths}
        elif isinstance(spec, dict) and spec.get("kind", "hub") == "hub" and isinstance(spec.get("name"), str):
            local = os.path.join(base_dir, os.path.expanduser(spec["name"]))
            if not os.path.isabs(os.path.expanduser(spec["name"])) and os.path.isdir(local):
                spec = {**spec, "name": os.path.normpath(local)}  # a local dataset folder, not a hub name
        out[name] = spec
    return {**data, "corpora": out}


def _read_json(where: str, path: Any, base_dir: str) -> dict[str, Any]:
    """The JSON object in file ``path`` (relative to ``base_dir``); SweepError naming ``where``."""
    if not isinstance(path, str) or not path:
        raise SweepError(f"{where}: must be a path to a JSON file, got {path!r}")
    full = os.path.normpath(os.path.join(base_dir, os.path.expanduser(path)))
    if not os.path.isfile(full):
        raise SweepError(f"{where}: {full}: no such file")
    if os.path.getsize(full) > MAX_YAML_BYTES:
        raise SweepError(f"{where}: {full}: more than {MAX_YAML_BYTES:,} bytes")
    try:
        with open(full, encoding="utf-8") as f:
            obj = json.load(f)
    except json.JSONDecodeError as exc:
        raise SweepError(f"{where}: {full}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except (UnicodeDecodeError, OSError) as exc:
        raise SweepError(f"{where}: {full}: cannot read it: {getattr(exc, 'strerror', None) or exc}") from None
    if not isinstance(obj, dict):
        raise SweepError(f"{where}: {full}: must hold a JSON object, got {type(obj).__name__}")
    return obj


def _inline_files(data: dict, base_dir: str) -> dict:
    """``data`` with every rung's ``config_file`` and the ``deepspeed.config_file`` read and
    inlined under ``config`` (inline keys win), so that the sweep saved beside its results holds
    the settings themselves and job ids hash their content, never a path."""
    models = data.get("models")
    if isinstance(models, dict):
        out = {}
        for name, rung in models.items():
            if isinstance(rung, dict) and rung.get("config_file") is not None:
                rung = dict(rung)
                loaded = _read_json(f"models.{name}.config_file", rung.pop("config_file"), base_dir)
                file_type = loaded.pop("model_type", None)
                if rung.get("model_type") is None and file_type is not None:
                    rung["model_type"] = file_type
                elif file_type is not None and file_type != rung.get("model_type"):
                    raise SweepError(
                        f"models.{name}.model_type: {rung.get('model_type')!r} but its config_file says {file_type!r}"
                    )
                inline = rung.get("config") if isinstance(rung.get("config"), dict) else {}
                rung["config"] = {**{k: v for k, v in loaded.items() if k not in CONFIG_METADATA_KEYS}, **inline}
            out[name] = rung
        data = {**data, "models": out}
    ds = data.get("deepspeed")
    if isinstance(ds, dict) and ds.get("config_file") is not None:
        ds = dict(ds)
        loaded = _read_json("deepspeed.config_file", ds.pop("config_file"), base_dir)
        inline = ds.get("config") if isinstance(ds.get("config"), dict) else {}
        ds["config"] = deep_merge(loaded, inline)
        data = {**data, "deepspeed": ds}
    return data


def deep_merge(base: dict, over: dict) -> dict:
    """``over`` merged into ``base``, mappings key by key (what DeepSpeed configs need)."""
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_sweep(data: Any, *, origin: str = "sweep", base_dir: str | None = None) -> Sweep:
    """Validate a sweep from plain data; relative ``files`` globs and ``config_file`` paths are
    resolved against ``base_dir`` (default: the working directory)."""
    if not isinstance(data, dict):
        raise SweepError(f"{origin}: the top level must be a mapping of sweep fields, got {type(data).__name__}")
    base_dir = base_dir or os.getcwd()
    data = _inline_files(data, base_dir)
    try:
        return Sweep.model_validate(_resolve_globs(data, base_dir))
    except ValidationError as exc:
        raise SweepError(_describe(exc.errors()[0])) from None


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing duplicate keys (see :func:`loads_sweep`)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    dup = key in seen
                except TypeError:  # an unhashable key: the constructor below names it
                    break
                if dup:
                    raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _expanded_nodes(node, memo: dict[int, int], path: set[int]) -> int:
    """Nodes in ``node`` with every alias expanded (aliases share node objects); ValueError for a
    recursive structure."""
    if id(node) in memo:
        return memo[id(node)]
    if id(node) in path:
        raise ValueError("an alias refers to a node that contains it (a recursive structure)")
    path.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        n = 1 + sum(_expanded_nodes(child, memo, path) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        n = 1 + sum(_expanded_nodes(k, memo, path) + _expanded_nodes(v, memo, path) for k, v in node.value)
    else:
        n = 1
    path.discard(id(node))
    memo[id(node)] = n
    return n


def _load_yaml(text: str, origin: str) -> Any:
    if len(text) > MAX_YAML_BYTES:
        raise SweepError(f"{origin}: {len(text):,} characters is more than a sweep file may hold ({MAX_YAML_BYTES:,})")
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        try:
            n = _expanded_nodes(node, {}, set())
        except ValueError as exc:
            raise SweepError(f"{origin}: invalid YAML: {exc}") from None
        if n > MAX_YAML_NODES:
            raise SweepError(f"{origin}: {n:,} YAML nodes once aliases are expanded, more than {MAX_YAML_NODES:,}")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def loads_sweep(text: str, *, origin: str = "sweep", base_dir: str | None = None) -> Sweep:
    """Validate a sweep from YAML text (loaded safely and strictly: module docstring)."""
    try:
        data = _load_yaml(text, origin)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SweepError(f"{origin}: invalid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    except RecursionError:
        raise SweepError(f"{origin}: invalid YAML: nested too deeply") from None
    return parse_sweep(data, origin=origin, base_dir=base_dir)


def load_sweep(path: str | os.PathLike) -> Sweep:
    """Read and validate a sweep YAML file; its relative ``files`` globs are resolved against its folder."""
    p = Path(path)
    if not p.is_file():
        raise SweepError(f"{path}: no such sweep file")
    if p.stat().st_size > MAX_YAML_BYTES:
        raise SweepError(f"{path}: {p.stat().st_size:,} bytes is more than a sweep file may hold ({MAX_YAML_BYTES:,})")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SweepError(f"{path}: not a UTF-8 text file") from None
    except OSError as exc:
        raise SweepError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    return loads_sweep(text, origin=str(path), base_dir=str(p.resolve().parent))


def explain(model: type[BaseModel] = None, prefix: str = "") -> list[tuple[str, str, str]]:
    """(field path, default, description) of every setting a sweep YAML can hold, corpus kinds
    included: what ``tsweep plan --explain`` prints."""
    from tsweep.core import dataspec

    model = model or Sweep
    rows: list[tuple[str, str, str]] = []
    for name, f in model.model_fields.items():
        default = "required" if f.is_required() else repr(f.get_default(call_default_factory=True))
        sub = f.annotation if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel) else None
        if sub is None and name == "pretrain":
            sub = PretrainSettings
        if sub is not None:
            rows.append((prefix + name, "", f.description or ""))
            rows += explain(sub, f"{prefix}{name}.")
        else:
            rows.append((prefix + name, default if len(default) < 40 else "...", f.description or ""))
    if model is Sweep:
        rows += explain(ModelRung, "models.NAME.")
        for spec in (
            dataspec.StdlibCorpus,
            dataspec.SyntheticCorpus,
            dataspec.FilesCorpus,
            dataspec.HubCorpus,
            dataspec.MixtureCorpus,
        ):
            kind = spec.model_fields["kind"].default
            rows += explain(spec, f"corpora.NAME ({kind}).")
    return rows


def with_overrides(sweep: Sweep, overrides: list[str] | tuple[str, ...]) -> Sweep:
    """``sweep`` with ``KEY.PATH=VALUE`` settings applied (``--set train.lr=1e-3``), each VALUE
    read as YAML (``--set model_sizes=[pico,nano]``), then validated as a whole by the same
    schema, so a bad override is named like a bad YAML field. The result is what gets saved
    beside the results, and so enters job ids wherever it changes what a job computes."""
    if not overrides:
        return sweep
    data = sweep.model_dump(mode="json")
    for item in overrides:
        key, sep, raw = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise SweepError(f"--set {item!r}: expected KEY.PATH=VALUE, e.g. train.lr=1e-3 (give SWEEP before --set)")
        try:
            value = _load_yaml(raw, f"--set {key}") if raw.strip() else None
            value = _as_typed(value, raw, _string_kind(Sweep, parts))
        except yaml.YAMLError as exc:
            raise SweepError(
                f"--set {key}: invalid YAML value {raw!r}: {getattr(exc, 'problem', None) or exc}"
            ) from None
        except RecursionError:
            raise SweepError(f"--set {key}: invalid YAML value: nested too deeply") from None
        node = data
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise SweepError(f"--set {key}: {'.'.join(parts[: i + 1])} is a value, not a section")
            node = child
        node[parts[-1]] = value
    return parse_sweep(data, origin="--set")


def _members(annotation: Any) -> list:
    """The types a field's annotation admits: ``Annotated`` unwrapped, unions split, None dropped."""
    if get_origin(annotation) is Annotated:
        return _members(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        return [m for a in get_args(annotation) for m in _members(a)]
    return [] if annotation is type(None) else [annotation]


def _string_kind(model: Any, parts: list[str]) -> str | None:
    """``"str"`` or ``"list[str]"`` when the schema field at ``parts`` holds text (every type its
    annotation admits agreeing), else None: an override's YAML scalar for such a field is kept as
    the text the user typed (``--set name=2024`` names a sweep ``"2024"``, not the integer)."""
    kinds = set()
    for m in _members(model):
        if not parts:
            if m is str:
                kinds.add("str")
            elif get_origin(m) is list and _members(get_args(m)[0]) == [str]:
                kinds.add("list[str]")
            else:
                kinds.add(None)
        elif isinstance(m, type) and issubclass(m, BaseModel):
            f = m.model_fields.get(parts[0])
            kinds.add(_string_kind(f.annotation, parts[1:]) if f is not None else None)
        elif get_origin(m) is dict:
            kinds.add(_string_kind(get_args(m)[1], parts[1:]))
        else:
            kinds.add(None)
    return kinds.pop() if len(kinds) == 1 else None


def _as_typed(value: Any, raw: str, kind: str | None) -> Any:
    """An override's value with the scalars of a text field (``kind``, :func:`_string_kind`) as typed."""
    if kind == "str" and value is not None and not isinstance(value, (str, list, dict)):
        return raw.strip()
    if kind == "list[str]" and isinstance(value, list):
        node = yaml.compose(raw, Loader=_StrictLoader)
        if isinstance(node, yaml.SequenceNode) and len(node.value) == len(value):
            return [
                n.value if isinstance(n, yaml.ScalarNode) and v is not None and not isinstance(v, str) else v
                for n, v in zip(node.value, value)
            ]
    return value


def dump_sweep(sweep: Sweep) -> str:
    """The YAML text of a validated sweep (what a sweep folder's ``sweep.yaml`` holds)."""
    return yaml.safe_dump(sweep.model_dump(mode="json"), sort_keys=False)


def shipped_sweeps() -> list[Path]:
    return sorted(Path(__file__).parent.glob("*.yaml"))
