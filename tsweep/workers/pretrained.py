"""Existing pre-trained models as sources: a hub name (or local directory) and its revisions.

Barnett 2024 read the p axis off Pythia's step checkpoints (Biderman et al. 2023: each step is
1024 sequences of 2048 tokens, 2,097,152 tokens); a sweep names the revisions and the tokens
behind each. What tsweep needs from the model:
- its architecture, for scratch runs of the same shape and for N, the non-embedding parameter
  count (Kaplan et al. 2020, sec. 2.1: token, position and untied output embeddings excluded),
  counted on the meta device so nothing is allocated;
- its weights at a revision, for a fine-tune.
Hub access is needed the first time; afterwards the hub cache serves it. Offline with nothing
cached, :class:`ModelUnavailable` says so at ``tsweep plan`` time, at once, never a hang.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING, cast

from tsweep.core.errors import ModelUnavailable
from tsweep.core.sizes import ModelSize
from tsweep.workers.hf import causal_lm_from_config, output_embeddings

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel

HF_PREFIX = "hf:"


def size_name(model: str) -> str:
    return HF_PREFIX + model


def _offline() -> bool:
    return any(
        os.environ.get(v, "").lower() in {"1", "true", "yes"} for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


@functools.lru_cache(maxsize=64)
def load_config(model: str, revision: str | None = None) -> PretrainedConfig:
    from transformers import AutoConfig

    local = os.path.isdir(os.path.expanduser(model))
    try:
        config: PretrainedConfig = AutoConfig.from_pretrained(
            os.path.expanduser(model) if local else model,
            revision=None if local else revision,
            local_files_only=local or _offline(),
        )
        return config
    except (OSError, ValueError) as exc:
        where = "offline (HF_HUB_OFFLINE) and not in the local cache" if _offline() else "not reachable"
        raise ModelUnavailable(
            f"pretrained model {model!r}{f' revision {revision!r}' if revision else ''} is {where}: "
            f"{str(exc).splitlines()[0]}"
        ) from None


def _count_non_embedding(config: PretrainedConfig) -> int:
    import torch

    with torch.device("meta"):
        model = causal_lm_from_config(config)
    total: int = sum(p.numel() for p in model.parameters())
    seen: set[int] = set()
    emb = 0
    for mod in (model.get_input_embeddings(), output_embeddings(model)):
        if mod is None:
            continue
        weight = cast("torch.Tensor", mod.weight)  # a Module's attribute, which torch types loosely
        if id(weight) not in seen:
            seen.add(id(weight))
            emb += weight.numel()
    for name, mod in model.named_modules():
        if (
            isinstance(mod, torch.nn.Embedding)
            and id(mod.weight) not in seen
            and any(k in name for k in ("wpe", "position", "pos_emb"))
        ):
            seen.add(id(mod.weight))
            emb += mod.weight.numel()
    return total - emb


def _shape(model: str) -> dict[str, int]:
    cfg = load_config(model)

    def get(*names: str) -> int:
        value: int = next(getattr(cfg, n) for n in names if hasattr(cfg, n))
        return value

    return {
        "n_layer": get("num_hidden_layers", "n_layer"),
        "d_model": get("hidden_size", "n_embd"),
        "n_head": get("num_attention_heads", "n_head"),
        "exact_params": _count_non_embedding(cfg),
    }


@functools.lru_cache(maxsize=64)
def model_size(model: str) -> ModelSize:
    """An existing model's size: its shape from its config and N counted on the meta device.

    Counted in a child process so that the planner, which calls this, never imports torch."""
    load_config(model)  # fails fast, and in this process, when the model is not available
    proc = subprocess.run(
        [sys.executable, "-m", "tsweep.workers.pretrained", model],
        capture_output=True,
        text=True,
        env={**os.environ, "TRANSFORMERS_VERBOSITY": "error"},
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModelUnavailable(f"pretrained model {model!r}: cannot count its parameters: {last}")
    return ModelSize(name=size_name(model), **json.loads(proc.stdout.strip().splitlines()[-1]))


def load_model(model: str, revision: str | None, *, pretrained: bool, seed: int) -> PreTrainedModel:
    """The model at ``revision`` (a fine-tune's start) or its architecture freshly initialised."""
    import torch
    from transformers import AutoModelForCausalLM

    cfg = load_config(model, revision)
    if not pretrained:
        torch.manual_seed(seed)
        return causal_lm_from_config(cfg)
    local = os.path.isdir(os.path.expanduser(model))
    try:
        return AutoModelForCausalLM.from_pretrained(
            os.path.expanduser(model) if local else model,
            revision=None if local else revision,
            local_files_only=local or _offline(),
            torch_dtype=torch.float32,
        )
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(
            f"pretrained model {model!r} revision {revision!r}: {str(exc).splitlines()[0]}"
        ) from None


if __name__ == "__main__":  # ``model_size``'s child process: print the shape of argv[1] as JSON
    print(json.dumps(_shape(sys.argv[1])))
