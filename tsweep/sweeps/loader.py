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
import re
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from tsweep.core.errors import SweepError, closest
from tsweep.sweeps.models import FieldError, Sweep
from tsweep.sweeps.paths import inline_files, resolve_paths

__all__ = [
    "MAX_YAML_BYTES",
    "MAX_YAML_NODES",
    "StrictLoader",
    "describe_errors",
    "dump_sweep",
    "known_keys",
    "load_sweep",
    "load_yaml",
    "loads_sweep",
    "members",
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


# pydantic's error types in the words a sweep's author reads (no validation-library wording):
# what the value must be, from the error's own context where it has one.
_MUST_BE: dict[str, str] = {
    "float_parsing": "a number",
    "float_type": "a number",
    "finite_number": "a finite number",
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "text",
    "list_type": "a list",
    "tuple_type": "a list",
    "set_type": "a list",
    "dict_type": "a mapping of keys to values",
    "model_type": "a mapping of settings",
    "model_attributes_type": "a mapping of settings",
    "none_required": "empty (null)",
}
_BOUNDS = {"gt": "> {}", "ge": ">= {}", "lt": "< {}", "le": "<= {}"}
# A union member's tag in an error location: a type name (``float``, ``literal['auto']``,
# ``list[int]``, ``function-after[...]``), never a sweep field (fields hold no brackets or dashes,
# and the type names below are no field's name).
_MEMBER_TAG = re.compile(r"^(float|int|str|bool|none|[a-z_-]+\[.*\])$")


def _must_be(err: ErrorDetails) -> str:
    """What the value at an error's location must be, in plain words (``a number``, ``> 0``)."""
    ctx = err.get("ctx") or {}
    kind = err["type"]
    if kind in _MUST_BE:
        return _MUST_BE[kind]
    if kind in ("literal_error", "enum"):
        return str(ctx.get("expected"))  # pydantic's own list of them: "'fp32' or 'bf16'"
    bound = next((k for k in _BOUNDS if k in ctx and kind.startswith(("greater", "less"))), None)
    if bound is not None:
        return _BOUNDS[bound].format(ctx[bound])
    if kind == "too_short":
        return f"at least {ctx.get('min_length')} item(s) long"
    if kind == "too_long":
        return f"at most {ctx.get('max_length')} item(s) long"
    msg = err["msg"]
    return msg[len("Input should be ") :] if msg.startswith("Input should be ") else msg


def _got(err: ErrorDetails) -> str:
    got = err.get("input")
    return "" if isinstance(got, (dict, list)) else f", got {got!r}"


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
    if err["type"] == "union_tag_invalid":
        ctx = err.get("ctx") or {}
        return f"{path}: {ctx.get('discriminator')} must be one of {ctx.get('expected_tags')}, got {ctx.get('tag')!r}"
    if err["type"] == "union_tag_not_found":
        return f"{path}: needs a {(err.get('ctx') or {}).get('discriminator')} key"
    if msg.startswith("["):  # a list validator naming its own index
        idx, _, rest = msg.partition("] ")
        return f"{path}{idx}]: {rest}"
    if err["type"] in {"value_error", "assertion_error"}:
        return f"{path}: {msg}"
    return f"{path}: must be {_must_be(err)}{_got(err)}"


def _describe_union(first: ErrorDetails, errors: list[ErrorDetails]) -> str | None:
    """One line for a value that matched no member of a union (``float | Literal['auto']``):
    every member's error sits at the same location plus the member's tag, with the same input.
    ``train.lr: must be a number or 'auto', got 'fast'``; None when ``first`` is no such error."""
    loc = first["loc"]
    if not loc or not isinstance(loc[-1], str) or not _MEMBER_TAG.match(loc[-1]):
        return None
    same = [
        e
        for e in errors
        if e["loc"][:-1] == loc[:-1] and isinstance(e["loc"][-1], str) and e.get("input") == first.get("input")
    ]
    if len(same) < 2 or not all(_MEMBER_TAG.match(str(e["loc"][-1])) for e in same):
        return None
    wants = list(dict.fromkeys(_must_be(e) for e in same))
    return f"{_format_loc(loc[:-1])}: must be {' or '.join(wants)}{_got(first)}"


def _describe_unknown(err: ErrorDetails) -> str:
    """An unknown key, with the nearest key the schema has there: ``finetune_token: unknown key;
    did you mean 'finetune_tokens'?`` (a misspelled key is also why a required one is missing, so
    it is named first)."""
    loc = err["loc"]
    key = str(loc[-1])
    near = closest(key, known_keys(loc[:-1]))
    parent = _format_loc(loc[:-1])
    hint = "" if near is None else f"; did you mean {near if parent == 'sweep' else f'{parent}.{near}'!r}?"
    return f"{_format_loc(loc)}: unknown key{hint} (`tsweep plan --explain` lists every setting)"


def describe_errors(errors: list[ErrorDetails]) -> str:
    """The one line a failed validation is reported as: an unknown key first, with the nearest
    known key; else the first error, a union's members' errors merged into one."""
    unknown = [e for e in errors if e["type"] == "extra_forbidden"]
    if unknown:
        return _describe_unknown(unknown[0])
    return _describe_union(errors[0], errors) or _describe(errors[0])


def members(annotation: Any) -> list[Any]:
    """The types a field's annotation admits: ``Annotated`` unwrapped, unions split, None dropped."""
    if get_origin(annotation) is Annotated:
        return members(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        return [m for a in get_args(annotation) for m in members(a)]
    return [] if annotation is type(None) else [annotation]


def _literals(model: type[BaseModel]) -> set[Any]:
    """Every Literal value a model's fields admit (a discriminated union's tag is one)."""
    return {
        v
        for f in model.model_fields.values()
        for m in members(f.annotation)
        if get_origin(m) is Literal
        for v in get_args(m)
    }


def known_keys(loc: tuple[int | str, ...], annotation: Any = Sweep) -> set[str]:
    """The keys the schema has at a location (an error's ``loc`` without its last part): the
    fields of every model reachable there, through mappings, lists and union tags."""
    out: set[str] = set()
    for m in members(annotation):
        model = m if isinstance(m, type) and issubclass(m, BaseModel) else None
        if not loc:
            out |= set(model.model_fields) if model is not None else set()
            continue
        head, rest = loc[0], loc[1:]
        if model is not None:
            f = model.model_fields.get(str(head))
            if f is not None:
                out |= known_keys(rest, f.annotation)
            elif head in _literals(model):  # the discriminated union's tag
                out |= known_keys(rest, model)
        elif get_origin(m) is dict:
            out |= known_keys(rest, get_args(m)[1])
        elif get_origin(m) in (list, tuple):
            out |= known_keys(rest, get_args(m)[0])
    return out


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
        raise SweepError(describe_errors(exc.errors())) from None


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
