"""Store ingest: eval rows per second written as workers write them, with and without a reader.

Writers: ``WRITERS`` processes (as a sweep runs several jobs at once), each standing for jobs
that flush their eval rows with :meth:`Store.write_evals` at every resume checkpoint, i.e. shards
of ``TrainSettings.checkpoint_interval_evals`` rows (5 by default), the size ``run_job`` writes
for fine-tunes and from-scratch runs (pre-training, evaluated at doubling steps, writes fewer).
Each writer cycles over its own job ids, so the store fills the way a sweep's does: many jobs,
many small shards, step ranges growing.

Reader: one process that, while the writers run, loops over the two ways the store is read:
:meth:`Store.read_evals` of everything (what the analysis actor's refit does) and a
``pyarrow.dataset`` query over the eval folder (fine-tune rows, a few columns; what a notebook
does). Its reads, failures and latencies are counted.

Side by side in one run, alternating, ``ROUNDS`` each, every phase on a fresh store: ingest with
no reader, ingest with the reader. Medians.

Run: ``python benchmarks/store_ingest.py [--tiny]`` (about 2 minutes on 2 CPU cores; ``--tiny``,
the suite's size: one writer of 20 shards, one round, in seconds).
Last line: ``store_ingest_rows_per_s VALUE`` (median ingest rate with the reader running).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _machine

from tsweep.core.store import EVAL_SCHEMA, SCHEMA_VERSION, Store
from tsweep.sweeps import TrainSettings

WRITERS = 2
JOBS_PER_WRITER = 16
SHARDS_PER_WRITER = 3000
ROWS_PER_SHARD = TrainSettings().checkpoint_interval_evals
ROUNDS = 2
EVAL_INTERVAL = 20
TOKENS_PER_STEP = 16 * 64
TINY = {"shards": 20, "rounds": 1, "writers": 1, "jobs": 4}  # the suite's size, tsweep's choice


def _rows(job_id: str, kind: str, first_eval: int, n: int) -> list[dict]:
    key = dict(
        schema_version=SCHEMA_VERSION,
        sweep="bench-store",
        job_id=job_id,
        kind=kind,
        source="prose",
        target="python",
        size="micro",
        n_params=56640,
        data_tokens=1_000_000,
        pretrain_tokens=250_000,
        attempt=0,
    )
    out = []
    for e in range(first_eval, first_eval + n):
        step = e * EVAL_INTERVAL
        out.append(
            {
                **key,
                "step": step,
                "tokens_seen": step * TOKENS_PER_STEP,
                "epoch": step / 1000,
                "train_loss": 3.0 - 0.001 * e,
                "eval_loss": 3.1 - 0.001 * e,
                "wall_time_s": 0.5 * e,
            }
        )
    return out


def _writer(root: str, wid: int, shards: int, jobs: int, go, out) -> None:
    store = Store(root)
    ids = [f"w{wid}-job{j:03d}" for j in range(jobs)]
    kinds = ["finetune", "finetune", "scratch", "pretrain"]
    batches = [
        (_rows(ids[i % jobs], kinds[i % len(kinds)], (i // jobs) * ROWS_PER_SHARD, ROWS_PER_SHARD))
        for i in range(shards)
    ]
    go.wait()
    t0 = time.perf_counter()
    for i, rows in enumerate(batches):
        store.write_evals(ids[i % jobs], rows)
    out.put((wid, t0, time.perf_counter(), shards * ROWS_PER_SHARD))


def _reader(root: str, go, stop, out) -> None:
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    store = Store(root)
    lat = {"read_evals": [], "dataset": []}
    fails = {"read_evals": 0, "dataset": 0}
    errors: list[str] = []
    rows = 0
    go.wait()
    while not stop.is_set():
        t = time.perf_counter()
        try:
            rows = store.read_evals().num_rows
            if not rows:  # nothing written yet: not a read worth timing
                time.sleep(0.01)
                continue
            lat["read_evals"].append(time.perf_counter() - t)
        except Exception as exc:
            fails["read_evals"] += 1
            errors.append(f"read_evals: {type(exc).__name__}: {exc}"[:200])
        t = time.perf_counter()
        try:
            d = ds.dataset(os.path.join(root, "eval"), format="parquet", schema=EVAL_SCHEMA)
            d.to_table(columns=["job_id", "step", "eval_loss"], filter=pc.field("kind") == "finetune")
            lat["dataset"].append(time.perf_counter() - t)
        except FileNotFoundError:
            pass  # no shard written yet
        except Exception as exc:
            fails["dataset"] += 1
            errors.append(f"dataset: {type(exc).__name__}: {exc}"[:200])
    out.put(
        {
            "lat": lat,
            "fails": fails,
            "errors": errors[:3],
            "rows_last_seen": rows,
            "quarantined": len(store.quarantined()),
        }
    )


def phase(with_reader: bool, writers: int, shards: int, jobs: int) -> dict:
    """One ingest phase on a fresh store; rows/s over the span from the first writer's start to the last one's end."""
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="tsweep-store-") as root:
        go, stop = ctx.Event(), ctx.Event()
        wq, rq = ctx.Queue(), ctx.Queue()
        procs = [ctx.Process(target=_writer, args=(root, w, shards, jobs, go, wq)) for w in range(writers)]
        reader = ctx.Process(target=_reader, args=(root, go, stop, rq)) if with_reader else None
        for p in procs + ([reader] if reader else []):
            p.start()
        time.sleep(1.0)  # let the processes import and build their rows before the clock starts
        go.set()
        done = [wq.get() for _ in procs]
        stop.set()
        rstats = rq.get() if reader else None
        for p in procs + ([reader] if reader else []):
            p.join()
        rows = sum(d[3] for d in done)
        span = max(d[2] for d in done) - min(d[1] for d in done)
        written = Store(root).read_evals().num_rows
    if written != rows:
        raise RuntimeError(f"store holds {written} eval rows after writing {rows}")
    return {"rows": rows, "seconds": span, "rows_per_s": rows / span, "reader": rstats}


def main(
    shards: int = SHARDS_PER_WRITER,
    rounds: int = ROUNDS,
    writers: int = WRITERS,
    jobs: int = JOBS_PER_WRITER,
    tiny: bool = False,
) -> dict:
    """``rounds`` of both phases; ``tiny`` is the suite's size (``TINY``)."""
    if tiny:
        shards, rounds, writers, jobs = TINY["shards"], TINY["rounds"], TINY["writers"], TINY["jobs"]
    machine = _machine.reference(tiny=tiny)
    alone, shared, readers = [], [], []
    for r in range(rounds):
        order = [False, True] if r % 2 == 0 else [True, False]
        for with_reader in order:
            res = phase(with_reader, writers, shards, jobs)
            (shared if with_reader else alone).append(res["rows_per_s"])
            if with_reader:
                readers.append(res["reader"])
    a, s = statistics.median(alone), statistics.median(shared)
    lat_re = [x for rd in readers for x in rd["lat"]["read_evals"]]
    lat_ds = [x for rd in readers for x in rd["lat"]["dataset"]]
    fails = {k: sum(rd["fails"][k] for rd in readers) for k in ("read_evals", "dataset")}
    quarantined = sum(rd["quarantined"] for rd in readers)
    print(
        f"{writers} writer processes x {shards} shards of {ROWS_PER_SHARD} rows ({jobs} jobs each); "
        f"{rounds} rounds, medians\n"
    )
    print(f"{'measure':40} {'value':>12}")
    print(f"{'ingest rows/s, no reader':40} {a:>12,.0f}")
    print(f"{'ingest rows/s, reader running':40} {s:>12,.0f}")
    print(f"{'  ratio (with / without reader)':40} {s / a:>12.3f}")
    print(f"{'shards/s, reader running':40} {s / ROWS_PER_SHARD:>12,.0f}")
    for name, lat in (("read_evals", lat_re), ("pyarrow.dataset query", lat_ds)):
        med = f"{statistics.median(lat):.3f}" if lat else "-"
        print(f"{'  ' + name + ': reads, median s':40} {len(lat):>5} {med:>6}")
    print(f"{'  reads failed (read_evals / dataset)':40} {fails['read_evals']:>5} {fails['dataset']:>6}")
    print(f"{'  shards quarantined by readers':40} {quarantined:>12}")
    for rd in readers:
        for e in rd["errors"]:
            print(f"  e.g. {e}")
    _machine.report(machine)
    print(f"store_ingest_rows_per_s {s:.1f}")
    return {"rows_per_s": s, "rows_per_s_alone": a, "read_failures": fails, "quarantined": quarantined}


if __name__ == "__main__":
    main(tiny="--tiny" in sys.argv[1:])
