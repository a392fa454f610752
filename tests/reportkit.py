"""A finished ``demo`` sweep folder for the report and notebook-API tests, built from stored data.

The summary rows are a real run of today's demo grid (``tests/data/demo_synthetic``: two sources,
pico and mini; its gap law floors disagree with its scratch plateaus at both sizes, so its gaps
are withdrawn and the sources are ordered by their gaps in loss at the largest f, apart at mini).
The analysis actor is fed them in the order the
sweep finished them, refitting four times, so ``fits/latest.json`` and ``fits/history.jsonl`` are
what a live sweep leaves. The store of that run kept no evaluation rows, so each job gets a
learning curve drawn through its own summary: evaluations every ``tokens_seen / 12`` tokens on a
power law from half a nat above ``best_eval_loss`` down to it at
``best_tokens``, flat or slightly rising after it (over-fitting, which early stopping ends). They
are there to be drawn; no number in any table is computed from them.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from tsweep.analysis.actor import AnalysisActor
from tsweep.api import shipped_sweep_path
from tsweep.core.layout import SweepLayout
from tsweep.core.store import Store
from tsweep.sweeps import dump_sweep, load_sweep

DATA = Path(__file__).parent / "data"
DEMO_ROWS = DATA / "demo_synthetic" / "summary.parquet"
OLD_DEMO_ROWS = DATA / "demo" / "summary.parquet"
START_RISE = 0.5  # nats above its best a job's first evaluation sits
EVALS_PER_JOB = 12


def _curve(row: dict[str, Any]) -> list[dict[str, Any]]:
    """Evaluation rows through a job's summary (module docstring)."""
    seen, best_at, best = row["tokens_seen"], row["best_tokens"] or row["tokens_seen"], row["best_eval_loss"]
    if best is None or not math.isfinite(best) or seen <= 0:
        return []
    out = []
    for i in range(1, EVALS_PER_JOB + 1):
        t = max(1, seen * i // EVALS_PER_JOB)
        if t <= best_at:  # a power law down to the best evaluation, from START_RISE above it
            first = max(1, seen // EVALS_PER_JOB)
            loss = best + START_RISE * ((best_at / t) ** 0.5 - 1) / max((best_at / first) ** 0.5 - 1, 1e-9)
        else:
            loss = best * (1 + 0.01 * math.log(t / best_at))
        keys = ("schema_version", "sweep", "job_id", "kind", "source", "target", "size", "n_params")
        out.append(
            {
                **{k: row[k] for k in keys},
                "data_tokens": row["data_tokens"],
                "pretrain_tokens": row["pretrain_tokens"],
                "attempt": row["attempt"],
                "step": i,
                "tokens_seen": t,
                "epoch": i / EVALS_PER_JOB,
                "train_loss": None,
                "eval_loss": max(best, loss) if t != best_at else best,
                "wall_time_s": row["wall_time_s"] * i / EVALS_PER_JOB,
            }
        )
    return out


def demo_folder(root: Path, *, rows: Path = DEMO_ROWS, name: str = "demo", bootstrap: int = 50) -> str:
    """``{root}/{name}``: the shipped demo's sweep.yaml, the store (summaries and evaluation rows)
    and the analysis actor's fits, as a finished ``tsweep demo`` leaves them."""
    sweep_dir = os.path.join(str(root), name)
    layout = SweepLayout(sweep_dir)
    shipped = shipped_sweep_path("demo")
    assert shipped is not None
    layout.files.write_text(layout.sweep_yaml, dump_sweep(load_sweep(shipped)))
    store = Store(layout.store_root)
    summary = sorted(pq.read_table(rows).to_pylist(), key=lambda r: r["finished_at"])
    actor = AnalysisActor(sweep_dir, bootstrap=bootstrap, seed=0)
    step = max(1, len(summary) // 4)
    for i, r in enumerate(summary, 1):
        r = dict(r, sweep=name)
        store.write_summary(r)
        store.write_evals(r["job_id"], _curve(r))
        if i % step == 0 or i == len(summary):
            actor.refit()
    return sweep_dir
