"""Token counts as people write them, and numbers as tsweep prints them.

Sweep YAMLs accept integers or short forms (``250k``, ``2M``, ``1.5B``); plans and labels print
them back the same way, so a job named ``finetune/prose@1M/micro/DF=64k`` reads like its YAML.
"""

from __future__ import annotations

import math
import re
from typing import Any

# Short forms, either case: k(ilo), M(ega) and G(iga) as in SI; B for billion, as token counts are
# usually written (Hoffmann et al. 2022: "1.4T tokens", "70B parameters").
_SUFFIX = {"k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9}
# The largest token count tsweep takes: 10^15, a hundred times the largest published pre-training
# runs (Llama 3: 15.6T tokens) and far inside the store's int64 columns (tsweep's choice).
MAX_TOKENS = 10**15
_SHORT = re.compile(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMbBgG]?)\s*")


def parse_token_count(v: Any) -> int:
    """A positive integer token count of at most :data:`MAX_TOKENS`, given as an integer, a whole
    float or a string such as ``250k`` / ``2M`` / ``1.5B``; ValueError otherwise. ``v`` is a value
    as YAML or a command line gives it, hence ``Any``."""
    n = _whole(_expand_short(v) if isinstance(v, str) else v)
    if n <= 0:
        raise ValueError(f"must be a positive integer, got {n!r}")
    if n > MAX_TOKENS:
        raise ValueError(f"must be at most {MAX_TOKENS:.0e} tokens, got {n:.3g}")
    return n


def _expand_short(text: str) -> float:
    """``"1.5M"`` as 1500000.0; ValueError for a string that is not a number with a short form."""
    m = _SHORT.fullmatch(text)
    if not m:
        raise ValueError(f"must be a positive integer (or like 250k, 2M), got {text!r}")
    return float(m.group(1)) * _SUFFIX.get(m.group(2).lower(), 1)


def _whole(v: Any) -> int:
    """``v`` as an int if it is one or a finite whole float (never a bool); ValueError otherwise."""
    if isinstance(v, float) and math.isfinite(v) and v == int(v):
        return int(v)
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    raise ValueError(f"must be a positive integer, got {v!r}")


def short_tokens(n: int) -> str:
    """``250000 -> 250k``, ``1500000 -> 1.5M``: the largest unit (k, M, B) whose thousandth divides
    ``n``, printed with ``%g`` (six significant digits, so not always exact: ``1234567 -> 1234.57k``,
    ``1000001 -> 1000k``); below 1000 the plain integer."""
    for unit, div in (("B", 10**9), ("M", 10**6), ("k", 10**3)):
        if n >= div and n % (div // 1000 or 1) == 0:
            return f"{n / div:g}{unit}"
    return str(n)


def si(x: float) -> str:
    """Three significant digits with an SI prefix: ``1.23G``."""
    for unit, div in (("E", 1e18), ("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= div:
            return f"{x / div:.3g}{unit}"
    return f"{x:.3g}"


def duration(s: float) -> str:
    """Seconds as ``45s``, ``12m`` or ``3.4h``."""
    if s < 90:
        return f"{s:.0f}s"
    if s < 5400:
        return f"{s / 60:.0f}m"
    return f"{s / 3600:.1f}h"
