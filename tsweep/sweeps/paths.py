"""The paths a sweep YAML holds, relative to its own file: made absolute, or read and inlined.

A trial runs in a working directory of its own, and a sweep's folder keeps only its
``sweep.yaml``, so nothing in a validated sweep may depend on where it was read from:

- a ``files`` corpus's relative globs, and a hub corpus named by a relative local dataset
  folder, are made absolute against the sweep file's folder (:func:`resolve_paths`);
- the JSON files a sweep brings (a rung's transformers ``config_file``, a
  ``deepspeed.config_file``) are read and inlined under ``config``, inline keys winning
  (:func:`inline_files`), so the sweep saved beside the results holds their content and job ids
  hash it, never a path.

Rules: plain data in, plain data out (before validation; the input is never mutated); a file that
cannot be used raises :class:`SweepError` with one line naming the field that names it.

Imports: the standard library, ``tsweep.core`` and :mod:`tsweep.sweeps.models` (for
``CONFIG_METADATA_KEYS``).
"""

from __future__ import annotations

import json
import os
from typing import Any

from tsweep.core.errors import SweepError
from tsweep.sweeps.models import CONFIG_METADATA_KEYS

__all__ = ["MAX_JSON_BYTES", "deep_merge", "inline_files", "resolve_paths"]

# tsweep's choice, the room a sweep YAML has (tsweep.sweeps.loader.MAX_YAML_BYTES): a model or
# DeepSpeed config is a few KB.
MAX_JSON_BYTES = 1 << 20


def resolve_paths(data: dict[str, Any], base_dir: str) -> dict[str, Any]:
    """``data`` with every relative ``files`` glob, and every hub corpus named by a relative local
    dataset folder, made absolute against ``base_dir`` (a trial runs in a working directory of its
    own, where a relative path would match nothing)."""
    corpora = data.get("corpora")
    if not isinstance(corpora, dict):
        return data
    return {**data, "corpora": {name: _resolve_corpus(spec, base_dir) for name, spec in corpora.items()}}


def _resolve_corpus(spec: Any, base_dir: str) -> Any:
    if not isinstance(spec, dict):
        return spec
    if spec.get("kind") == "files" and isinstance(spec.get("paths"), list):
        paths = [
            os.path.normpath(os.path.join(base_dir, p))
            if isinstance(p, str) and p and not (os.path.isabs(p) or p.startswith("~") or "://" in p)
            else p
            for p in spec["paths"]
        ]
        return {**spec, "paths": paths}
    if spec.get("kind", "hub") == "hub" and isinstance(spec.get("name"), str):
        local = os.path.join(base_dir, os.path.expanduser(spec["name"]))
        if not os.path.isabs(os.path.expanduser(spec["name"])) and os.path.isdir(local):
            return {**spec, "name": os.path.normpath(local)}  # a local dataset folder, not a hub name
    return spec


def inline_files(data: dict[str, Any], base_dir: str) -> dict[str, Any]:
    """``data`` with every rung's ``config_file`` and the ``deepspeed.config_file`` read and
    inlined under ``config`` (inline keys win), so that the sweep saved beside its results holds
    the settings themselves and job ids hash their content, never a path."""
    models = data.get("models")
    if isinstance(models, dict):
        data = {**data, "models": {name: _inline_rung(name, rung, base_dir) for name, rung in models.items()}}
    ds = data.get("deepspeed")
    if isinstance(ds, dict) and ds.get("config_file") is not None:
        ds = dict(ds)
        loaded = _read_json("deepspeed.config_file", ds.pop("config_file"), base_dir)
        ds["config"] = deep_merge(loaded, _inline_config(ds))
        data = {**data, "deepspeed": ds}
    return data


def _inline_rung(name: str, rung: Any, base_dir: str) -> Any:
    """A rung with its transformers ``config_file`` read into ``model_type`` and ``config``, less
    the keys that describe the file rather than the model."""
    if not isinstance(rung, dict) or rung.get("config_file") is None:
        return rung
    rung = dict(rung)
    loaded = _read_json(f"models.{name}.config_file", rung.pop("config_file"), base_dir)
    file_type = loaded.pop("model_type", None)
    if rung.get("model_type") is None and file_type is not None:
        rung["model_type"] = file_type
    elif file_type is not None and file_type != rung.get("model_type"):
        raise SweepError(f"models.{name}.model_type: {rung.get('model_type')!r} but its config_file says {file_type!r}")
    rung["config"] = {**{k: v for k, v in loaded.items() if k not in CONFIG_METADATA_KEYS}, **_inline_config(rung)}
    return rung


def _inline_config(section: dict[str, Any]) -> dict[str, Any]:
    """The ``config`` a section holds inline, or none when it holds no mapping there."""
    config = section.get("config")
    return config if isinstance(config, dict) else {}


def _read_json(where: str, path: Any, base_dir: str) -> dict[str, Any]:
    """The JSON object in file ``path`` (relative to ``base_dir``); SweepError naming ``where``."""
    if not isinstance(path, str) or not path:
        raise SweepError(f"{where}: must be a path to a JSON file, got {path!r}")
    full = os.path.normpath(os.path.join(base_dir, os.path.expanduser(path)))
    if not os.path.isfile(full):
        raise SweepError(f"{where}: {full}: no such file")
    if os.path.getsize(full) > MAX_JSON_BYTES:
        raise SweepError(f"{where}: {full}: more than {MAX_JSON_BYTES:,} bytes")
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


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` merged into ``base``, mappings key by key (what DeepSpeed configs need); neither
    is changed."""
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
