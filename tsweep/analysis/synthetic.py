"""Summary tables generated from known laws: the ground truth for tests and benchmarks.

A table has the schema of ``tsweep.core.store.SUMMARY_SCHEMA``: scratch runs on an (N, D) grid
from a Chinchilla law, one pre-training job per (source, size), and fine-tunes on a
(p, D_F) grid per (source, size). Fine-tune losses follow one of two laws (a single set of runs
cannot follow both exactly):

- ``mode="hernandez"``: L = scratch(N, D_F + k D_F^alpha N^beta), the fine-tune reaches the loss
  of a scratch model given D_T extra tokens (Hernandez et al. 2021, arXiv 2102.01293, eq. 1.2);
  every checkpoint is generated as if it were the final one.
- ``mode="barnett"``: L = (A p^-alpha + G) f^-beta + E_N (Barnett 2024, arXiv 2408.16947), the
  same terms for every size over each size's own floor E_N, the scratch law's plateau there
  (E + A N^-alpha of ``scratch``): a model given unlimited target data reaches one floor whatever
  it was pre-trained on, and the report checks that the two agree. (A source's ``E`` in
  ``barnett`` is the floor of the law on its own, as ``benchmarks/refit.py`` fits it.)

Noise is multiplicative, log-normal on the loss (``noise`` = its standard deviation in log
space), as the Huber-on-log objective assumes.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from tsweep.analysis.laws import Array, get_law
from tsweep.core.store import SCHEMA_VERSION, SUMMARY_SCHEMA

# Small-model scale (N ~ 1e5..1e7): values in the range tsweep's CPU ladders produce, with the
# data term dominant below D_bal(N) (see analysis/transfer.py) for every fine-tune size used here.
SCRATCH_TRUTH = {"A": 60.0, "B": 80.0, "E": 1.7, "alpha": 0.3, "beta": 0.25}
# Hernandez et al. 2021, Fig. 1 / sec. 1: text -> python and (text + non-python code) -> python.
HERNANDEZ_TRUTH = {
    "text": {"k": 1.9e4, "alpha": 0.18, "beta": 0.38},
    "code": {"k": 2.1e5, "alpha": 0.096, "beta": 0.38},
}
# Barnett-form truths chosen so that G, the A p^-alpha term and E are all resolvable on the grid.
BARNETT_TRUTH = {
    "text": {"A": 3.16e5, "alpha": 0.5, "G": 40.0, "beta": 0.3, "E": 1.7},
    "code": {"A": 3.16e5, "alpha": 0.5, "G": 10.0, "beta": 0.3, "E": 1.7},
}
SIZES = {"xs": 200_000, "s": 1_000_000, "m": 5_000_000, "l": 25_000_000}
SCRATCH_D = (1e6, 4e6, 1.6e7, 6.4e7, 2.56e8, 1e9)
FINETUNE_D = (1e5, 3e5, 1e6, 3e6)
PRETRAIN_P = (1e7, 3e7, 1e8, 3e8, 1e9)


def _row(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "sweep": "synthetic",
        "target": "target",
        "attempt": 0,
        "status": "ok",
        "reason": None,
        "best_step": 100,
        "best_tokens": None,
        "tokens_seen": 0,
        "data_chars": None,
        "epochs": 1.0,
        "wall_time_s": 1.0,
        "flops": 0.0,
        "finished_at": _dt.datetime(2024, 1, 1, tzinfo=_dt.timezone.utc),
    }
    base.update(kw)
    base["best_tokens"] = base["best_tokens"] if base["best_tokens"] is not None else int(base["data_tokens"])
    base["tokens_seen"] = int(base["tokens_seen"] or base["data_tokens"])
    base["flops"] = 6.0 * base["n_params"] * base["tokens_seen"]
    return base


def synthetic_summary(
    *,
    mode: str = "hernandez",
    sources: Sequence[str] = ("text", "code"),
    sizes: Mapping[str, int] = SIZES,
    scratch_d: Sequence[float] = SCRATCH_D,
    finetune_d: Sequence[float] = FINETUNE_D,
    pretrain_p: Sequence[float] = PRETRAIN_P,
    scratch: Mapping[str, float] = SCRATCH_TRUTH,
    hernandez: Mapping[str, Mapping[str, float]] = HERNANDEZ_TRUTH,
    barnett: Mapping[str, Mapping[str, float]] = BARNETT_TRUTH,
    noise: float = 0.003,
    seed: int = 0,
) -> pa.Table:
    """A summary table whose fine-tunes follow ``mode``'s law; see the module docstring."""
    if mode not in ("hernandez", "barnett"):
        raise ValueError(f"mode: must be 'hernandez' or 'barnett', got {mode!r}")
    rng = np.random.default_rng(seed)
    chin, barn = get_law("chinchilla"), get_law("barnett")

    def noisy(x: float | Array) -> float:
        return float(x * np.exp(noise * rng.standard_normal()))

    rows: list[dict[str, Any]] = []
    for size, n in sizes.items():
        for d in scratch_d:
            loss = chin.predict(scratch, N=n, D=d)
            rows.append(
                _row(
                    job_id=f"scratch-{size}-{d:.0f}",
                    kind="scratch",
                    source="scratch",
                    size=size,
                    n_params=n,
                    data_tokens=int(d),
                    pretrain_tokens=0,
                    best_eval_loss=noisy(loss),
                )
            )
    for src in sources:
        for size, n in sizes.items():
            rows.append(
                _row(
                    job_id=f"pretrain-{src}-{size}",
                    kind="pretrain",
                    source=src,
                    size=size,
                    n_params=n,
                    data_tokens=int(max(pretrain_p)),
                    pretrain_tokens=0,
                    best_eval_loss=noisy(3.0),
                )
            )
            for p in pretrain_p:
                for f in finetune_d:
                    if mode == "hernandez":
                        h = hernandez[src]
                        d_e = f + h["k"] * f ** h["alpha"] * n ** h["beta"]
                        loss = chin.predict(scratch, N=n, D=d_e)
                    else:
                        floor = scratch["E"] + scratch["A"] * n ** -scratch["alpha"]
                        loss = barn.predict({**barnett[src], "E": floor}, p=p, f=f)
                    rows.append(
                        _row(
                            job_id=f"ft-{src}-{size}-{p:.0f}-{f:.0f}",
                            kind="finetune",
                            source=src,
                            size=size,
                            n_params=n,
                            data_tokens=int(f),
                            pretrain_tokens=int(p),
                            best_eval_loss=noisy(loss),
                        )
                    )
    return pa.Table.from_pylist(rows, schema=SUMMARY_SCHEMA)
