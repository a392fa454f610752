"""Typed doors into transformers, for the calls its own annotations leave untyped: a causal LM
built from a config (random init, or on the meta device to count it), its output head, and quiet
logging. The one place that knows those calls are unannotated, so that the rest of the workers
type-check strictly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from transformers import PretrainedConfig, PreTrainedModel


def causal_lm_from_config(config: PretrainedConfig) -> PreTrainedModel:
    """``AutoModelForCausalLM.from_config``: the architecture of ``config``, freshly initialised
    (under the torch device and seed in effect)."""
    from transformers import AutoModelForCausalLM

    model: PreTrainedModel = AutoModelForCausalLM.from_config(config)  # type: ignore[no-untyped-call]
    return model


def output_embeddings(model: PreTrainedModel) -> torch.nn.Module | None:
    """The model's output head (None when it has none)."""
    head: torch.nn.Module | None = model.get_output_embeddings()  # type: ignore[no-untyped-call]
    return head


def quiet() -> None:
    """transformers' logging down to errors (its config chatter is not signal)."""
    import transformers

    transformers.utils.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
