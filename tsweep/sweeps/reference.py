"""The settings reference: every setting a sweep YAML can hold, with its default and what it
means, read off the models' field descriptions (what ``tsweep plan --explain`` prints).

Rules: nothing is written here twice; a setting's meaning is its ``Field(description=...)`` on
the model, so the reference cannot drift from what the loader accepts.

Imports: pydantic's ``BaseModel``, ``tsweep.core.dataspec`` (the corpus kinds) and
:mod:`tsweep.sweeps.models`.
"""

from __future__ import annotations

from pydantic import BaseModel

from tsweep.core import dataspec
from tsweep.sweeps.models import ModelRung, PretrainSettings, Sweep

__all__ = ["explain"]


def explain(model: type[BaseModel] | None = None, prefix: str = "") -> list[tuple[str, str, str]]:
    """(field path, default, description) of every setting a sweep YAML can hold, corpus kinds
    included: what ``tsweep plan --explain`` prints."""
    model = model or Sweep
    rows: list[tuple[str, str, str]] = []
    for name, f in model.model_fields.items():
        default = "required" if f.is_required() else repr(f.get_default(call_default_factory=True))
        sub: type[BaseModel] | None = (
            f.annotation if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel) else None
        )
        if sub is None and name == "pretrain":  # PretrainSettings | None: optional, but a section
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
