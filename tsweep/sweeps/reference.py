"""The settings reference: every setting a sweep YAML can hold, with its default and what it
means, read off the models' field descriptions (what ``tsweep plan --explain`` prints).

Rules: nothing is written here twice; a setting's meaning is its ``Field(description=...)`` on
the model, so the reference cannot drift from what the loader accepts.

Imports: pydantic's ``BaseModel``, ``tsweep.core.dataspec`` (the corpus kinds) and
:mod:`tsweep.sweeps.models`.
"""

from __future__ import annotations

from typing import Any, get_args, get_origin

from pydantic import BaseModel

from tsweep.core import dataspec
from tsweep.sweeps.models import ModelRung, Sweep

__all__ = ["explain"]


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _section(annotation: Any) -> tuple[type[BaseModel], str] | None:
    """The model a field holds and the suffix its settings' paths take: a section (``""``), also
    an optional one (``PretrainSettings | None`` is a section a sweep may leave out), or a list of
    entries (``"[]"``); None for a plain setting (a mapping by name is explained apart)."""
    if _is_model(annotation):
        return annotation, ""
    args = get_args(annotation)
    if get_origin(annotation) is list and args and _is_model(args[0]):
        return args[0], "[]"
    models = [a for a in args if _is_model(a)]
    if len(models) == 1 and type(None) in args:
        return models[0], ""
    return None


def explain(model: type[BaseModel] | None = None, prefix: str = "") -> list[tuple[str, str, str]]:
    """(field path, default, description) of every setting a sweep YAML can hold, corpus kinds
    included: what ``tsweep plan --explain`` prints."""
    model = model or Sweep
    rows: list[tuple[str, str, str]] = []
    for name, f in model.model_fields.items():
        default = "required" if f.is_required() else repr(f.get_default(call_default_factory=True))
        section = _section(f.annotation)
        if section is not None:
            rows.append((prefix + name, "", f.description or ""))
            rows += explain(section[0], f"{prefix}{name}{section[1]}.")
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
