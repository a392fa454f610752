"""JSON at the file boundary: tsweep's records are typed objects everywhere else.

JSON has no NaN or infinity, so every non-finite float becomes ``null`` on the way out
(:func:`finite`); readers turn ``null`` back into "unknown", never into a number.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None, through mappings (as dicts), lists and
    tuples (as lists); anything else as it is."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def dumps(obj: Any, **kw: Any) -> str:
    """Strict JSON of ``obj`` (non-finite floats as null); ``kw`` goes to :func:`json.dumps`."""
    return json.dumps(finite(obj), allow_nan=False, **kw)


def num(x: float | None) -> float | None:
    """A float for JSON: None for missing or non-finite values."""
    return None if x is None or not math.isfinite(x) else float(x)
