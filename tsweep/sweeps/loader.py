"""Sweep YAML in, validated :class:`~tsweep.sweeps.models.Sweep` out (and back to YAML), every
problem one readable line.

What it does, in order: reads the text (a file, :func:`load_sweep`, or a string,
:func:`loads_sweep`), loads it safely and strictly, resolves what the sweep names relative to its
own folder, inlines the JSON files it brings, and validates the result against the models
(:func:`parse_sweep`). :func:`dump_sweep` writes the YAML a sweep folder's ``sweep.yaml`` holds.

Rules:

- Safe and strict YAML: no Python objects, no duplicate keys (the second would silently win), at
  most :data:`MAX_YAML_BYTES` of text and :data:`MAX_YAML_NODES` nodes once aliases are expanded
  (a few hundred bytes of nested aliases can otherwise expand to billions of nodes).
- Relative ``files`` globs, and a hub corpus named by a relative local dataset folder, are made
  absolute against the sweep file's folder when it is read (Tune runs every trial in a working
  directory of its own). So are the JSON files a sweep may bring (a rung's transformers
  ``config_file``, a ``deepspeed.config_file``), which are read then and inlined, so the sweep
  saved beside the results holds their content and job ids hash it, never a path.
- Any problem raises :class:`SweepError` with exactly one line that names the field path, e.g.
  ``finetune_tokens[2]: must be a positive integer, got -5``: the CLI prints it and exits 2.

The models say what is valid; :mod:`tsweep.sweeps.paths` does the resolving and inlining; this
module reads, enforces the YAML limits, and words the errors.

Imports: PyYAML, pydantic's errors, ``tsweep.core``, :mod:`tsweep.sweeps.models` and
:mod:`tsweep.sweeps.paths`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from tsweep.core.errors import SweepError
from tsweep.sweeps.models import FieldError, Sweep
from tsweep.sweeps.paths import inline_files, resolve_paths

__all__ = [
    "MAX_YAML_BYTES",
    "MAX_YAML_NODES",
    "StrictLoader",
    "dump_sweep",
    "load_sweep",
    "load_yaml",
    "loads_sweep",
    "parse_sweep",
]

# tsweep's choices: a sweep YAML is a few KB (the shipped ones are under 4 KB), so 1 MiB is room
# for any hand-written one; 100,000 nodes after alias expansion likewise.
MAX_YAML_BYTES = 1 << 20
MAX_YAML_NODES = 100_000


def _format_loc(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as a sweep field path (``eval.tokens``, ``finetune_tokens[2]``)."""
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


def _describe(err: ErrorDetails) -> str:
    """One pydantic error as the one line a user reads: ``path: message``."""
    path = _format_loc(err["loc"])
    ctx_err = (err.get("ctx") or {}).get("error")
    if isinstance(ctx_err, FieldError):
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


def parse_sweep(data: Any, *, origin: str = "sweep", base_dir: str | None = None) -> Sweep:
    """Validate a sweep from plain data; relative ``files`` globs and ``config_file`` paths are
    resolved against ``base_dir`` (default: the working directory)."""
    if not isinstance(data, dict):
        raise SweepError(f"{origin}: the top level must be a mapping of sweep fields, got {type(data).__name__}")
    base_dir = base_dir or os.getcwd()
    data = inline_files(data, base_dir)
    try:
        return Sweep.model_validate(resolve_paths(data, base_dir))
    except ValidationError as exc:
        raise SweepError(_describe(exc.errors()[0])) from None


# PyYAML ships no type stubs here (types-PyYAML is not a dependency): SafeLoader is Any to mypy.
class StrictLoader(yaml.SafeLoader):  # type: ignore[misc]
    """PyYAML's safe loader, refusing duplicate keys (see :func:`loads_sweep`)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
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
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


def _expanded_nodes(node: Any, memo: dict[int, int], path: set[int]) -> int:
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


def load_yaml(text: str, origin: str) -> Any:
    """The plain data of YAML ``text``, loaded safely and strictly within the limits (module
    docstring); SweepError naming ``origin`` past a limit, ``yaml.YAMLError`` for bad YAML."""
    if len(text) > MAX_YAML_BYTES:
        raise SweepError(f"{origin}: {len(text):,} characters is more than a sweep file may hold ({MAX_YAML_BYTES:,})")
    loader = StrictLoader(text)
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
        data = load_yaml(text, origin)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SweepError(f"{origin}: invalid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    except RecursionError:
        raise SweepError(f"{origin}: invalid YAML: nested too deeply") from None
    return parse_sweep(data, origin=origin, base_dir=base_dir)


def load_sweep(path: str | os.PathLike[str]) -> Sweep:
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


def dump_sweep(sweep: Sweep) -> str:
    """The YAML text of a validated sweep (what a sweep folder's ``sweep.yaml`` holds)."""
    text: str = yaml.safe_dump(sweep.model_dump(mode="json"), sort_keys=False)
    return text
