"""Tables for ``tsweep fit``: any CSV or Parquet file, with the law's variables mapped to columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from tsweep.core.errors import UsageError


def read_table(path: str) -> dict[str, np.ndarray]:
    """A CSV or Parquet file as column name -> numpy array."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"--data: no such file: {path}")
    try:
        if p.suffix.lower() == ".csv":
            table = pacsv.read_csv(p)
        elif p.suffix.lower() in (".parquet", ".pq"):
            table = pq.read_table(p)
        else:
            raise UsageError(f"--data: expected a .csv or .parquet file, got {p.name}")
    except UsageError:
        raise
    except Exception as exc:
        raise UsageError(f"--data: cannot read {path}: {type(exc).__name__}: {exc}") from None
    seen: set[str] = set()
    for name in table.column_names:
        if name in seen:
            raise UsageError(f"--data: column {name!r} appears more than once in {path}; name each column once")
        seen.add(name)
    return {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}
