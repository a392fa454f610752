"""Typed specs of the data a sweep names: corpora (sources and targets) and the tokenizer.

A sweep YAML declares named corpora under ``corpora:``; a pre-training source or the target
names one of them. Each spec is a frozen pydantic model; its ``kind`` picks the builder in the
source registry (``workers.data.sources``). Unknown keys are rejected so a typo names its field.

Built-in names need no declaration: ``python``, ``prose`` and ``c`` are the corpora found in the
running Python installation (standard-library code, docstrings and pydoc topics, CPython headers),
so every machine has them offline.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StdlibCorpus(_Spec):
    """Text from the running Python installation (offline everywhere)."""

    kind: Literal["stdlib"] = "stdlib"
    corpus: Literal["python", "prose", "c"]


class SyntheticCorpus(_Spec):
    """A seeded family of structured token streams; ``distance`` 0 is the target, 1 unrelated."""

    kind: Literal["synthetic"] = "synthetic"
    distance: float = Field(ge=0.0, le=1.0, description="0 is the target itself, 1 a process that shares only the "
                                                        "alphabet with it")
    seed: int = Field(default=0, ge=0, lt=2**32, description="the family's seed (numpy takes seeds below 2**32 here)")
    documents: int = Field(default=20_000, gt=0, le=10_000_000,
                           description="documents in the generated corpus; the default is millions of tokens, and "
                                       "10 million documents (tsweep's cap) are billions")


class FilesCorpus(_Spec):
    """Local text, jsonl or parquet files by glob, loaded through ``datasets``."""

    kind: Literal["files"] = "files"
    paths: tuple[str, ...] = Field(min_length=1)
    format: Literal["text", "json", "parquet"] = "text"
    text_field: str = "text"
    # For ``text`` files: one document per file, per blank-line-separated paragraph, or per line.
    sample_by: Literal["document", "paragraph", "line"] = "document"


class HubCorpus(_Spec):
    """A Hugging Face hub dataset by name; needs hub access (fails fast offline)."""

    kind: Literal["hub"] = "hub"
    name: str = Field(min_length=1)
    config: str | None = None
    split: str = "train"
    revision: str | None = None
    text_field: str = "text"
    max_documents: int | None = Field(default=None, gt=0)


class MixtureCorpus(_Spec):
    """A weighted mixture of other named corpora (weights are normalised)."""

    kind: Literal["mixture"] = "mixture"
    weights: dict[str, float] = Field(min_length=1, description="corpus name -> its share (positive, finite; "
                                                                 "normalised to sum to one)")

    @field_validator("weights")
    @classmethod
    def _positive(cls, v: dict[str, float]) -> dict[str, float]:
        for name, w in v.items():
            if not (w > 0 and math.isfinite(w)):
                raise ValueError(f"weight of {name!r} must be positive and finite, got {w}")
        return v


CorpusSpec = Annotated[
    Union[StdlibCorpus, SyntheticCorpus, FilesCorpus, HubCorpus, MixtureCorpus],
    Field(discriminator="kind"),
]

BUILTIN_CORPORA: dict[str, StdlibCorpus] = {
    "python": StdlibCorpus(corpus="python"),
    "prose": StdlibCorpus(corpus="prose"),
    "c": StdlibCorpus(corpus="c"),
}


class TokenizerSpec(_Spec):
    """Byte-level by default (nothing to download); a named Hugging Face tokenizer optionally."""

    kind: Literal["bytes", "hf"] = "bytes"
    name: str | None = None

    @model_validator(mode="after")
    def _hf_needs_name(self) -> "TokenizerSpec":
        if self.kind == "hf" and not self.name:
            raise ValueError("kind 'hf' needs a tokenizer name")
        return self
