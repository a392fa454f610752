"""``--set KEY.PATH=VALUE`` overrides of a sweep, each typed against the models and the result
validated as a whole.

Rules: a VALUE is read as YAML (``--set model_sizes=[pico,nano]``) by the loader's strict YAML
reader, except that a scalar set on a text field keeps the text the user typed (``--set
name=2024`` names a sweep ``"2024"``, not the integer): the field's type is read off the models'
annotations. A path's dotted part is kept whole where the sweep holds such a key (``--set
corpora.d0.6.distance=0.3`` sets corpus ``d0.6``'s distance). The overridden sweep goes through
:func:`~tsweep.sweeps.loader.parse_sweep`, so a bad override is named like a bad YAML field, in one line.

Imports: PyYAML, pydantic's ``BaseModel`` (to walk the annotations), ``tsweep.core``,
:mod:`tsweep.sweeps.models` and :mod:`tsweep.sweeps.loader`.
"""

from __future__ import annotations

from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel

from tsweep.core.errors import SweepError
from tsweep.sweeps.loader import StrictLoader, load_yaml, members, parse_sweep
from tsweep.sweeps.models import Sweep

__all__ = ["with_overrides"]

# What an override's field holds when it holds text (see _string_kind); None: anything else.
TextKind = Literal["str", "list[str]"] | None


def with_overrides(sweep: Sweep, overrides: list[str] | tuple[str, ...]) -> Sweep:
    """``sweep`` with ``KEY.PATH=VALUE`` settings applied (``--set train.lr=1e-3``), each VALUE
    read as YAML (``--set model_sizes=[pico,nano]``), then validated as a whole by the same
    schema, so a bad override is named like a bad YAML field. The result is what gets saved
    beside the results, and so enters job ids wherever it changes what a job computes."""
    if not overrides:
        return sweep
    data: dict[str, Any] = sweep.model_dump(mode="json")
    for item in overrides:
        key, sep, raw = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise SweepError(f"--set {item!r}: expected KEY.PATH=VALUE, e.g. train.lr=1e-3 (give SWEEP before --set)")
        parts = _key_path(data, parts)
        try:
            value = load_yaml(raw, f"--set {key}") if raw.strip() else None
            value = _as_typed(value, raw, _string_kind(Sweep, parts))
        except yaml.YAMLError as exc:
            raise SweepError(
                f"--set {key}: invalid YAML value {raw!r}: {getattr(exc, 'problem', None) or exc}"
            ) from None
        except RecursionError:
            raise SweepError(f"--set {key}: invalid YAML value: nested too deeply") from None
        node = data
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise SweepError(f"--set {key}: {'.'.join(parts[: i + 1])} is a value, not a section")
            node = child
        node[parts[-1]] = value
    return parse_sweep(data, origin="--set")


def _key_path(data: dict[str, Any], parts: list[str]) -> list[str]:
    """The keys a dotted ``--set`` path names, a dotted key kept whole where the sweep holds one
    (``corpora.d0.6.distance``: the corpus is ``d0.6``)."""
    out: list[str] = []
    node: Any = data
    i = 0
    while i < len(parts):
        held = node if isinstance(node, dict) else {}
        j = next((j for j in range(len(parts), i + 1, -1) if ".".join(parts[i:j]) in held), i + 1)
        out.append(".".join(parts[i:j]))
        node = held.get(out[-1])
        i = j
    return out


def _string_kind(model: Any, parts: list[str]) -> TextKind:
    """``"str"`` or ``"list[str]"`` when the schema field at ``parts`` holds text (every type its
    annotation admits agreeing), else None: an override's YAML scalar for such a field is kept as
    the text the user typed (``--set name=2024`` names a sweep ``"2024"``, not the integer)."""
    kinds: set[TextKind] = set()
    for m in members(model):
        if not parts:
            if m is str:
                kinds.add("str")
            elif get_origin(m) is list and members(get_args(m)[0]) == [str]:
                kinds.add("list[str]")
            else:
                kinds.add(None)
        elif isinstance(m, type) and issubclass(m, BaseModel):
            f = m.model_fields.get(parts[0])
            kinds.add(_string_kind(f.annotation, parts[1:]) if f is not None else None)
        elif get_origin(m) is dict:
            kinds.add(_string_kind(get_args(m)[1], parts[1:]))
        else:
            kinds.add(None)
    return kinds.pop() if len(kinds) == 1 else None


def _as_typed(value: Any, raw: str, kind: TextKind) -> Any:
    """An override's value with the scalars of a text field (``kind``, :func:`_string_kind`) as typed."""
    if kind == "str" and value is not None and not isinstance(value, (str, list, dict)):
        return raw.strip()
    if kind == "list[str]" and isinstance(value, list):
        node = yaml.compose(raw, Loader=StrictLoader)
        if isinstance(node, yaml.SequenceNode) and len(node.value) == len(value):
            return [
                n.value if isinstance(n, yaml.ScalarNode) and v is not None and not isinstance(v, str) else v
                for n, v in zip(node.value, value, strict=True)  # same length: checked above
            ]
    return value
