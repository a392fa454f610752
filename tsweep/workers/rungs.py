"""Rungs a sweep declares (``models:``): built, checked and counted the way the worker builds them.

A rung is a GPT-2 shape (counted by the ladder's formula, ``tsweep.core.sizes``) or a transformers
causal-LM config: its ``model_type`` (llama, gpt_neox, qwen2, ...) and config keys, with the
tokenizer's vocabulary. For the latter, :func:`hf_config` is the one place that turns the rung into
a transformers config, used both at plan time, to check it and count N, and by the worker, to build
the model (:func:`build_hf_model`), so the N in a job's id is the N of the model it trains.

N is counted on the model instantiated on the meta device (nothing allocated), as for an existing
model (``tsweep.workers.pretrained._count_non_embedding``): every parameter, less the token
embeddings, position embeddings and an untied output head (Kaplan et al. 2020, sec. 2.1).

The planner never imports torch: :func:`declared_sizes` runs the checks and the count in a child
process (``python -m tsweep.workers.rungs``, one for all rungs of a sweep) and turns a bad rung into
a :class:`SweepError` that names its field, e.g. ``models.l1.config.num_attention_heads: 3 does not
divide hidden_size 32``.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tsweep.core.errors import SweepError
from tsweep.core.sizes import ModelSize
from tsweep.workers.hf import causal_lm_from_config, quiet

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel

    from tsweep.sweeps import ModelRung

# Config keys that say how many positions a model can attend over, by architecture family.
_POSITION_KEYS = ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length", "seq_length")


class RungError(ValueError):
    """A bad rung config: ``field`` (relative to the rung) and a one-line message."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def hf_config(model_type: str, config: dict[str, Any], vocab_size: int, seq_len: int) -> PretrainedConfig:
    """The transformers config of a declared rung, checked: a known causal-LM ``model_type``,
    only keys its config class has, heads that divide the width, the tokenizer's vocabulary and
    at least ``seq_len`` positions. Raises :class:`RungError`."""
    cls = _config_class(model_type)
    defaults = cls()
    if config.get("vocab_size", vocab_size) != vocab_size:
        raise RungError(
            "config.vocab_size",
            f"{config['vocab_size']} but the tokenizer's vocabulary is {vocab_size} (tsweep sets it; leave it out)",
        )

    # before transformers' own checks (which some configs run on construction, with messages
    # that do not name the key), and once more on the built config (derived values)
    def value(key: str) -> Any:
        return config.get(key, getattr(defaults, key, None))

    _check_heads(config, value("hidden_size"), value("num_attention_heads"), config.get("num_key_value_heads"))
    try:
        cfg = cls(**{**config, "vocab_size": vocab_size, "use_cache": False})
    except Exception as exc:  # TypeError, ValueError, huggingface_hub's validation errors: the rung is at fault
        raise RungError("config", f"transformers refuses it: {type(exc).__name__}: {_first_line(exc)}") from None
    _check_known_keys(config, defaults, cfg)
    _check_heads(
        config,
        getattr(cfg, "hidden_size", None),
        getattr(cfg, "num_attention_heads", None),
        getattr(cfg, "num_key_value_heads", None),
    )
    _check_positions(cfg, seq_len)
    return cfg


def _config_class(model_type: str) -> type[PretrainedConfig]:
    """The config class of a causal-LM ``model_type`` transformers knows."""
    from transformers import CONFIG_MAPPING
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if model_type not in CONFIG_MAPPING:
        raise RungError("model_type", f"unknown transformers model_type {model_type!r} (e.g. llama, gpt_neox, qwen2)")
    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise RungError("model_type", f"{model_type!r} has no causal-LM model in transformers")
    return CONFIG_MAPPING[model_type]


def _check_known_keys(config: dict[str, Any], defaults: PretrainedConfig, cfg: PretrainedConfig) -> None:
    """Every key the rung sets is a setting of its config class. A config keeps keys it does not
    know as plain attributes (a typo changes nothing), and consumes the legacy ones it converts
    (rope_theta into rope_parameters): unknown is kept but not among the class's own settings."""
    for key in config:
        if not hasattr(defaults, key) and hasattr(cfg, key):
            raise RungError(f"config.{key}", f"not a setting of transformers' {type(cfg).__name__}")


def _check_positions(cfg: PretrainedConfig, seq_len: int) -> None:
    """At least ``seq_len`` positions: a model with fewer fails on its first training step."""
    for key in _POSITION_KEYS:
        n = getattr(cfg, key, None)
        if isinstance(n, int) and n < seq_len:
            raise RungError(f"config.{key}", f"{n} positions, fewer than train.seq_len = {seq_len}")


def _check_heads(config: dict[str, Any], width: object, heads: object, kv: object) -> None:
    if not (isinstance(width, int) and isinstance(heads, int) and heads > 0):
        return
    if config.get("head_dim") is None and width % heads:
        raise RungError("config.num_attention_heads", f"{heads} does not divide hidden_size {width}")
    if isinstance(kv, int) and kv > 0 and heads % kv:
        raise RungError("config.num_key_value_heads", f"{kv} does not divide num_attention_heads {heads}")


def build_hf_model(size: ModelSize, vocab_size: int, seq_len: int, seed: int) -> PreTrainedModel:
    """A declared transformers rung, randomly initialised (seeded), in float32: exactly what the
    sweep's config says (dropout included: tsweep changes no key but the vocabulary and the cache)."""
    import torch

    assert size.config is not None, f"{size.name} is not a transformers rung"
    cfg = hf_config(size.model_type, json.loads(size.config), vocab_size, seq_len)
    torch.manual_seed(seed)
    quiet()
    return causal_lm_from_config(cfg)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def _shape_of(model_type: str, config: dict[str, Any], vocab_size: int, seq_len: int) -> dict[str, int]:
    import torch

    from tsweep.workers.pretrained import _count_non_embedding

    cfg = hf_config(model_type, config, vocab_size, seq_len)
    try:
        with torch.device("meta"):
            causal_lm_from_config(cfg)
    except Exception as exc:  # anything transformers raises building it: the rung is at fault
        raise RungError("config", f"transformers cannot build it: {type(exc).__name__}: {_first_line(exc)}") from None

    def get(*names: str) -> int:
        value: int = next((getattr(cfg, n) for n in names if isinstance(getattr(cfg, n, None), int)), 0)
        return value

    return {
        "n_layer": get("num_hidden_layers", "n_layer", "num_layers"),
        "d_model": get("hidden_size", "n_embd", "d_model"),
        "n_head": get("num_attention_heads", "n_head", "num_heads"),
        "exact_params": _count_non_embedding(cfg),
    }


def _count_all(request: dict[str, Any]) -> dict[str, Any]:
    """The child process's work: every rung's shape, or the first bad rung's field and message."""
    out: dict[str, dict[str, int]] = {}
    for name, rung in request["rungs"].items():
        try:
            out[name] = _shape_of(rung["model_type"], rung["config"], request["vocab_size"], request["seq_len"])
        except RungError as exc:
            return {"error": {"field": f"models.{name}.{exc.field}", "message": str(exc)}}
    return {"sizes": out}


def canonical(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, separators=(",", ":"))


@functools.lru_cache(maxsize=32)
def _count_in_child(request_json: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "tsweep.workers.rungs"],
        input=request_json,
        capture_output=True,
        text=True,
        env={**os.environ, "TRANSFORMERS_VERBOSITY": "error"},
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise SweepError(f"models: cannot count the declared rungs' parameters: {last}")
    reply: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return reply


def declared_sizes(models: Mapping[str, ModelRung], *, vocab_size: int, seq_len: int) -> dict[str, ModelSize]:
    """Every rung a sweep declares (``Sweep.models``) as a :class:`ModelSize`; the transformers
    ones checked and counted in one child process. Raises :class:`SweepError` naming the field."""
    sizes: dict[str, ModelSize] = {}
    hf: dict[str, dict[str, Any]] = {}
    for name, rung in models.items():
        if rung.model_type is None:
            assert rung.n_layer and rung.d_model and rung.n_head, "the schema requires the whole GPT-2 shape"
            sizes[name] = ModelSize(name=name, n_layer=rung.n_layer, d_model=rung.d_model, n_head=rung.n_head)
        else:
            hf[name] = {"model_type": rung.model_type, "config": rung.config}
    if hf:
        reply = _count_in_child(json.dumps({"rungs": hf, "vocab_size": vocab_size, "seq_len": seq_len}, sort_keys=True))
        if "error" in reply:
            raise SweepError(f"{reply['error']['field']}: {reply['error']['message']}")
        for name, shape in reply["sizes"].items():
            sizes[name] = ModelSize(
                name=name, model_type=hf[name]["model_type"], config=canonical(hf[name]["config"]), **shape
            )
    return sizes


if __name__ == "__main__":  # ``declared_sizes``'s child process: a request on stdin, a reply on stdout
    print(json.dumps(_count_all(json.loads(sys.stdin.read()))))
