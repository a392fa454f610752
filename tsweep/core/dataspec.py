"""Typed specs of the data a sweep names: corpora (sources and targets) and the tokenizer.

A sweep YAML declares named corpora under ``corpora:``; a pre-training source or the target
names one of them. Each spec is a frozen pydantic model; its ``kind`` picks the builder in the
source registry (``tsweep.data.registry``). Unknown keys are rejected so a typo names its field.

Built-in names need no declaration: ``python``, ``pycode``, ``prose`` and ``c`` are the corpora
found in the running Python installation (standard-library code, the same code without its
docstrings and comments, the docstrings and pydoc topics, the CPython headers), so every machine
has them offline.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StdlibCorpus(_Spec):
    """Text from the running Python installation (offline everywhere)."""

    kind: Literal["stdlib"] = Field(default="stdlib", description="text from the running Python installation")
    corpus: Literal["python", "pycode", "prose", "c"] = Field(
        description="python: standard-library code; pycode: the same code without its docstrings and comments; "
        "prose: the docstrings and pydoc topics; c: the CPython headers"
    )


class SyntheticCorpus(_Spec):
    """A seeded family of structured token streams; ``distance`` 0 is the target, 1 unrelated."""

    kind: Literal["synthetic"] = Field(default="synthetic", description="a seeded family of token processes")
    distance: float = Field(
        ge=0.0,
        le=1.0,
        description="how far from the family's target: the chance that a symbol "
        "comes from an unrelated process (0: the target itself, 1: "
        "a process that shares only the alphabet with it)",
    )
    seed: int = Field(
        default=0,
        ge=0,
        lt=2**32,
        description="the family: sources and target of one seed are related (numpy takes seeds below 2**32)",
    )
    # The default is tsweep's choice: ~6M tokens, room for the shipped sweeps' 4M-token
    # pre-training budget without repeating a document.
    documents: int = Field(
        default=20_000,
        gt=0,
        le=10_000_000,
        description="documents generated (~300 tokens each); the default is millions of tokens, "
        "10 million documents (tsweep's cap) are billions",
    )


class FilesCorpus(_Spec):
    """Local text, jsonl or parquet files by glob, loaded through ``datasets``."""

    kind: Literal["files"] = Field(default="files", description="local files by glob")
    paths: tuple[str, ...] = Field(
        min_length=1, description="glob patterns; relative ones are read against the sweep file's folder"
    )
    format: Literal["text", "json", "parquet"] = Field(default="text", description="text, jsonl or parquet files")
    text_field: str = Field(default="text", description="the field holding the text (json and parquet)")
    # For ``text`` files: one document per file, per blank-line-separated paragraph, or per line.
    sample_by: Literal["document", "paragraph", "line"] = Field(
        default="document", description="text files: one document per file, per blank-line paragraph, or per line"
    )


class HubCorpus(_Spec):
    """A Hugging Face dataset, streamed: a hub name (needs hub access; fails fast offline) or a local
    folder of data files that ``datasets`` reads."""

    kind: Literal["hub"] = Field(
        default="hub", description="a Hugging Face dataset, streamed (a hub name needs hub access)"
    )
    name: str = Field(
        min_length=1,
        description="the dataset's hub name, or a local folder of data files (jsonl, csv, "
        "parquet, text) that datasets.load_dataset reads",
    )
    config: str | None = Field(default=None, description="its configuration, if it has several")
    split: str = Field(default="train", description="the split to read")
    revision: str | None = Field(default=None, description="a pinned revision (recommended: reproducible sweeps)")
    text_field: str = Field(default="text", description="the field holding the text")
    max_documents: int | None = Field(default=None, gt=0, description="read at most this many documents")


class MixtureCorpus(_Spec):
    """A weighted mixture of other named corpora (weights are normalised)."""

    kind: Literal["mixture"] = Field(default="mixture", description="a weighted mixture of other corpora")
    weights: dict[str, float] = Field(
        min_length=1, description="corpus name -> its share (positive, finite; normalised to sum to one)"
    )

    @field_validator("weights")
    @classmethod
    def _positive(cls, v: dict[str, float]) -> dict[str, float]:
        for name, w in v.items():
            if not (w > 0 and math.isfinite(w)):
                raise ValueError(f"weight of {name!r} must be positive and finite, got {w}")
        return v


CorpusSpec = Annotated[
    StdlibCorpus | SyntheticCorpus | FilesCorpus | HubCorpus | MixtureCorpus,
    Field(discriminator="kind"),
]

BUILTIN_CORPORA: dict[str, StdlibCorpus] = {
    "python": StdlibCorpus(corpus="python"),
    "pycode": StdlibCorpus(corpus="pycode"),
    "prose": StdlibCorpus(corpus="prose"),
    "c": StdlibCorpus(corpus="c"),
}


class TokenizerSpec(_Spec):
    """Byte-level by default (nothing to download); a named Hugging Face tokenizer optionally."""

    kind: Literal["bytes", "hf"] = Field(
        default="bytes", description="bytes (vocabulary 264, nothing to download) or a Hugging Face tokenizer"
    )
    name: str | None = Field(default=None, description="the Hugging Face tokenizer (kind hf)")

    @model_validator(mode="after")
    def _hf_needs_name(self) -> TokenizerSpec:
        if self.kind == "hf" and not self.name:
            raise ValueError("kind 'hf' needs a tokenizer name")
        return self
